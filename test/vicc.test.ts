// The vicc side of the vpcd protocol, against a fake vpcd written here (a net.Server / net.Socket speaking the framing).
import { describe, it, expect, afterEach } from 'vitest';
import { createServer, connect } from 'node:net';
import type { Server, Socket } from 'node:net';
import { openChip } from '../emulator/card.ts';
import type { Chip } from '../emulator/card.ts';
import { fromHex, hex } from '../emulator/bytes.ts';
import { PowerLoss } from '../emulator/store.ts';
import { Ctrl, connectToVpcd, encodeFrame, frameReader, handleMessage, listenForVpcd } from '../emulator/transport/vicc.ts';
import type { ViccCard, ViccHandle } from '../emulator/transport/vicc.ts';
import { prng } from './helpers/prng.ts';

const SELECT_ISD = '00A4040008A000000151000000';
const GET_CPLC = '80CA9F7F00';
const GET_IIN = '80CA004200';

/** The vpcd end of one connection: frames out, frames in (parsed here independently of vicc.ts). */
interface Peer {
  socket: Socket;
  /** Sends raw bytes (for split/merged frame tests). */
  raw(bytes: Uint8Array): void;
  send(payload: Uint8Array): void;
  /** Next reply frame's payload. */
  reply(): Promise<Uint8Array>;
  /** Sends a payload and waits for its reply. */
  ask(payload: Uint8Array | string): Promise<Uint8Array>;
  closed: Promise<void>;
  /** Reply frames received and not yet taken. */
  readonly queued: number;
}

function peer(socket: Socket): Peer {
  let buf = Buffer.alloc(0);
  const frames: Uint8Array[] = [];
  const waiting: ((f: Uint8Array) => void)[] = [];
  socket.setNoDelay(true);
  socket.on('data', (chunk: Buffer) => {
    buf = Buffer.concat([buf, chunk]);
    while (buf.length >= 2 && buf.length >= 2 + buf.readUInt16BE(0)) {
      const n = buf.readUInt16BE(0);
      const f = new Uint8Array(buf.subarray(2, 2 + n));
      buf = buf.subarray(2 + n);
      const w = waiting.shift();
      if (w) w(f);
      else frames.push(f);
    }
  });
  socket.on('error', () => {});
  const closed = new Promise<void>((r) => socket.once('close', () => r()));
  const p: Peer = {
    socket,
    raw: (b) => void socket.write(b),
    send: (payload) => {
      const head = Buffer.alloc(2);
      head.writeUInt16BE(payload.length);
      socket.write(Buffer.concat([head, payload]));
    },
    reply: () => {
      const f = frames.shift();
      if (f) return Promise.resolve(f);
      // A missing answer fails the test in seconds instead of at the 60 s test timeout.
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error('no reply within 5 s')), 5000);
        waiting.push((f) => {
          clearTimeout(timer);
          resolve(f);
        });
        void closed.then(() => reject(new Error('connection closed before a reply')));
      });
    },
    ask: (payload) => {
      p.send(typeof payload === 'string' ? fromHex(payload) : payload);
      return p.reply();
    },
    closed,
    get queued() {
      return frames.length;
    },
  };
  return p;
}

/** A fake vpcd: listens like pcscd's vpcd driver and hands out each vicc connection as a Peer. */
interface FakeVpcd {
  server: Server;
  port: number;
  nextPeer(): Promise<Peer>;
  close(): Promise<void>;
}

async function fakeVpcd(port = 0): Promise<FakeVpcd> {
  const sockets = new Set<Socket>();
  const peers: Peer[] = [];
  const waiting: ((p: Peer) => void)[] = [];
  const server = createServer((s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
    const p = peer(s);
    const w = waiting.shift();
    if (w) w(p);
    else peers.push(p);
  });
  await new Promise<void>((res, rej) => {
    server.once('error', rej);
    server.listen(port, '127.0.0.1', () => res());
  });
  const addr = server.address();
  if (!addr || typeof addr !== 'object') throw new Error('no address');
  return {
    server,
    port: addr.port,
    nextPeer: () => {
      const p = peers.shift();
      return p ? Promise.resolve(p) : new Promise((r) => waiting.push(r));
    },
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}

async function freePort(): Promise<number> {
  const f = await fakeVpcd();
  const port = f.port;
  await f.close();
  return port;
}

function until(cond: () => boolean, what: string, ms = 5000): Promise<void> {
  const t0 = Date.now();
  return new Promise((resolve, reject) => {
    const tick = () => {
      if (cond()) resolve();
      else if (Date.now() - t0 > ms) reject(new Error(`timed out waiting for ${what}`));
      else setTimeout(tick, 5);
    };
    tick();
  });
}

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!();
});

function track<T extends { close(): Promise<void> | void }>(x: T): T {
  cleanups.push(() => x.close());
  return x;
}

/** The real chip wrapped so tests can see the control calls it got and cut its power on a chosen APDU. */
function observed(chip: Chip) {
  const calls: string[] = [];
  let cutOn: string | null = null;
  const card: ViccCard = {
    get atr() {
      return chip.atr;
    },
    powerUp: () => (calls.push('on'), chip.powerUp()),
    powerDown: () => (calls.push('off'), chip.powerDown()),
    reset: () => (calls.push('reset'), chip.reset()),
    transmit: (apdu) => {
      if (cutOn !== null && hex(apdu) === cutOn) {
        cutOn = null;
        chip.powerDown();
        throw new PowerLoss('test cut');
      }
      return chip.transmit(apdu);
    },
  };
  return { card, calls, cutOn: (apdu: string) => void (cutOn = apdu) };
}

describe('framing', () => {
  it('prefixes a 2-byte big-endian length and refuses payloads over 65535 bytes', () => {
    expect(hex(encodeFrame(fromHex('0102')))).toBe('00020102');
    expect(hex(encodeFrame(new Uint8Array(0)))).toBe('0000');
    expect(encodeFrame(new Uint8Array(0xffff)).subarray(0, 2)).toEqual(Uint8Array.of(0xff, 0xff));
    expect(() => encodeFrame(new Uint8Array(0x10000))).toThrow(/65536 bytes exceeds 65535/);
  });

  it('reassembles frames split at every byte and several frames in one chunk, including empty ones', () => {
    const frames = [fromHex('04'), new Uint8Array(0), fromHex(SELECT_ISD), new Uint8Array(300).fill(7)];
    const stream = Buffer.concat(frames.map((f) => encodeFrame(f)));
    for (let cut = 0; cut <= stream.length; cut++) {
      const got: string[] = [];
      const feed = frameReader((p) => got.push(hex(p)));
      feed(new Uint8Array(stream.subarray(0, cut)));
      feed(new Uint8Array(stream.subarray(cut)));
      expect(got, `cut at ${cut}`).toEqual(frames.map((f) => hex(f)));
    }
    const got: string[] = [];
    const feed = frameReader((p) => got.push(hex(p)));
    for (const b of stream) feed(Uint8Array.of(b));
    expect(got).toEqual(frames.map((f) => hex(f)));
  });

  it('hands out copies: a payload survives reuse of the chunk it came in', () => {
    const chunk = new Uint8Array(encodeFrame(fromHex('A1A2A3')));
    let kept: Uint8Array | null = null;
    frameReader((p) => (kept = p))(chunk);
    chunk.fill(0);
    expect(hex(kept!)).toBe('A1A2A3');
  });
});

describe('one message at a time (handleMessage)', () => {
  const atr = fromHex('3B800101');
  const fake = (transmit: (a: Uint8Array) => Uint8Array): ViccCard => ({
    atr,
    powerUp: () => atr,
    powerDown: () => {},
    reset: () => atr,
    transmit,
  });
  const logs: string[] = [];
  const log = (m: string) => logs.push(m);

  it('answers GET ATR, stays silent on power on/off/reset, unknown control bytes and empty messages', () => {
    const card = fake(() => fromHex('9000'));
    expect(hex(handleMessage(card, Uint8Array.of(Ctrl.GET_ATR), log).frame!)).toBe('00043B800101');
    for (const c of [Ctrl.POWER_OFF, Ctrl.POWER_ON, Ctrl.RESET, 0x03, 0xff]) expect(handleMessage(card, Uint8Array.of(c), log)).toEqual({ frame: null, lost: false });
    expect(handleMessage(card, new Uint8Array(0), log).frame).toBeNull();
    expect(logs.some((m) => m.includes('unknown control byte ff'))).toBe(true);
  });

  it('turns a card that throws into 6F00, and a power cut into an empty answer that drops the card', () => {
    const broken = fake(() => {
      throw new Error('defect');
    });
    expect(hex(handleMessage(broken, fromHex('00B0000000'), log).frame!)).toBe('00026F00');
    const cut = fake(() => {
      throw new PowerLoss();
    });
    expect(handleMessage(cut, fromHex('00B0000000'), log)).toEqual({ frame: Uint8Array.of(0, 0), lost: true });
    const badPower: ViccCard = { ...fake(() => fromHex('9000')), powerUp: () => { throw new Error('no power'); } };
    expect(handleMessage(badPower, Uint8Array.of(Ctrl.POWER_ON), log).frame).toBeNull();
  });

  it('answers 6F00 when a response cannot fit in one frame', () => {
    const huge = fake(() => new Uint8Array(0x10001));
    expect(hex(handleMessage(huge, fromHex('00B0000000'), log).frame!)).toBe('00026F00');
  });
});

describe('normal mode: the vicc dials vpcd', () => {
  it('powers up, answers GET ATR and APDUs with the real chip, and powers down on request', async () => {
    const vpcd = track(await fakeVpcd());
    const chip = openChip();
    const o = observed(chip);
    const h = track(connectToVpcd(o.card, { port: vpcd.port }));
    const p = await vpcd.nextPeer();
    await h.ready;
    expect(h.connected).toBe(true);
    expect(h.port).toBe(vpcd.port);
    // The sequence pcscd uses: power on, ATR, commands, power off, with ATR polls in between.
    p.send(Uint8Array.of(Ctrl.POWER_ON));
    expect(hex(await p.ask(Uint8Array.of(Ctrl.GET_ATR)))).toBe(hex(chip.atr));
    const fci = await p.ask(SELECT_ISD);
    expect(hex(fci.subarray(0, 2))).toBe('6F67');
    expect(hex(fci.subarray(-2))).toBe('9000');
    const cplc = await p.ask(GET_CPLC);
    expect(hex(cplc)).toBe(`9F7F2A${hex(chip.profile.cplc)}9000`);
    expect(hex(await p.ask(GET_IIN))).toMatch(/^42.*9000$/);
    p.send(Uint8Array.of(Ctrl.RESET));
    p.send(Uint8Array.of(Ctrl.POWER_OFF));
    expect(hex(await p.ask(Uint8Array.of(Ctrl.GET_ATR)))).toBe(hex(chip.atr)); // presence polls are answered powered off
    expect(o.calls).toEqual(['on', 'reset', 'off']);
    expect(chip.powered).toBe(false);
  });

  it('answers frames split across TCP writes and frames merged into one write, in order', async () => {
    const vpcd = track(await fakeVpcd());
    const chip = openChip();
    track(connectToVpcd(chip, { port: vpcd.port }));
    const p = await vpcd.nextPeer();
    const msgs = [Uint8Array.of(Ctrl.GET_ATR), fromHex(SELECT_ISD), fromHex(GET_CPLC), fromHex(GET_IIN)];
    const want = [hex(chip.atr)];
    const ref = openChip();
    for (const m of msgs.slice(1)) want.push(hex(ref.transmit(m)));
    const stream = Buffer.concat(msgs.map((m) => encodeFrame(m)));
    // One byte per write, each flushed before the next.
    for (const b of stream) {
      p.raw(Uint8Array.of(b));
      await new Promise((r) => setTimeout(r, 1));
    }
    const one = [];
    for (let i = 0; i < msgs.length; i++) one.push(hex(await p.reply()));
    expect(one).toEqual(want);
    // All in one write.
    p.raw(stream);
    const merged = [];
    for (let i = 0; i < msgs.length; i++) merged.push(hex(await p.reply()));
    expect(merged).toEqual(want);
  });

  it('survives random traffic: every APDU gets one answer, control bytes none, and the chip still works', async () => {
    const vpcd = track(await fakeVpcd());
    const chip = openChip();
    track(connectToVpcd(chip, { port: vpcd.port }));
    const p = await vpcd.nextPeer();
    const r = prng(0x5eed);
    let expected = 0;
    const parts: Uint8Array[] = [];
    for (let i = 0; i < 300; i++) {
      const len = r.pick([0, 1, 1, 2, 4, 5, 6, 9, 40, 261, 300]);
      const payload = len === 1 ? Uint8Array.of(r.pick([0, 1, 2, 3, 4, 0x80])) : r.bytes(len);
      parts.push(encodeFrame(payload));
      if (len > 1 || (len === 1 && payload[0] === Ctrl.GET_ATR)) expected++;
    }
    // Random chunking of the whole stream.
    const stream = Buffer.concat(parts);
    for (let off = 0; off < stream.length; ) {
      const n = 1 + r.int(200);
      p.raw(new Uint8Array(stream.subarray(off, off + n)));
      off += n;
    }
    for (let i = 0; i < expected; i++) {
      const f = await p.reply();
      expect(f.length === chip.atr.length || f.length >= 2).toBe(true);
    }
    expect(hex(await p.ask(GET_IIN))).toMatch(/9000$/);
    expect(p.queued).toBe(0); // nothing more than one answer per APDU
  });

  it('waits for vpcd to appear, and reconnects after vpcd (pcscd) restarts', async () => {
    const port = await freePort();
    const chip = openChip();
    const logs: string[] = [];
    const h = track(connectToVpcd(chip, { port, minDelayMs: 10, maxDelayMs: 40, log: (m) => logs.push(m) }));
    await until(() => logs.some((m) => m.includes('not reachable')), 'a refused attempt');
    expect(h.connected).toBe(false);
    let vpcd = await fakeVpcd(port);
    let p = await vpcd.nextPeer();
    await h.ready;
    p.send(Uint8Array.of(Ctrl.POWER_ON));
    expect(hex(await p.ask(GET_IIN))).toMatch(/9000$/);
    expect(chip.powered).toBe(true);
    await vpcd.close(); // pcscd goes away
    await until(() => !h.connected, 'the drop to be seen');
    expect(chip.powered).toBe(false); // the card left the reader
    vpcd = track(await fakeVpcd(port));
    p = await vpcd.nextPeer();
    expect(hex(await p.ask(Uint8Array.of(Ctrl.GET_ATR)))).toBe(hex(chip.atr));
    expect(hex(await p.ask(SELECT_ISD)).slice(-4)).toBe('9000');
    expect(h.connections).toBe(2);
  });

  it('without reconnect, ready rejects when nothing listens', async () => {
    const port = await freePort();
    const h = track(connectToVpcd(openChip(), { port, reconnect: false }));
    await expect(h.ready).rejects.toThrow(/not reachable/);
    expect(h.connections).toBe(0);
  });

  it('after close it stops dialling and ready rejects if it never connected', async () => {
    const port = await freePort();
    const h = connectToVpcd(openChip(), { port, minDelayMs: 10 });
    await h.close();
    await expect(h.ready).rejects.toThrow(/closed before/);
    const vpcd = track(await fakeVpcd(port));
    let got = false;
    void vpcd.nextPeer().then(() => (got = true));
    await new Promise((r) => setTimeout(r, 100));
    expect(got).toBe(false);
  });

  it('a power cut answers an empty frame, the card leaves the reader, then comes back powered off', async () => {
    const vpcd = track(await fakeVpcd());
    const chip = openChip();
    const o = observed(chip);
    const logs: string[] = [];
    const h = track(connectToVpcd(o.card, { port: vpcd.port, minDelayMs: 10, removalMs: 20, log: (m) => logs.push(m) }));
    const p = await vpcd.nextPeer();
    p.send(Uint8Array.of(Ctrl.POWER_ON));
    o.cutOn(GET_CPLC);
    expect(hex(await p.ask(GET_CPLC))).toBe(''); // zero-length frame: vpcd ejects the card
    await p.closed;
    expect(logs.some((m) => m.includes('power lost'))).toBe(true);
    const again = await vpcd.nextPeer();
    await until(() => h.connections === 2, 'the second connection');
    expect(chip.powered).toBe(false);
    again.send(Uint8Array.of(Ctrl.POWER_ON));
    expect(hex(await again.ask(GET_CPLC))).toBe(`9F7F2A${hex(chip.profile.cplc)}9000`);
  });

  it('keeps serving when the logger throws', async () => {
    const vpcd = track(await fakeVpcd());
    const h = track(connectToVpcd(openChip(), { port: vpcd.port, log: () => { throw new Error('broken logger'); } }));
    const p = await vpcd.nextPeer();
    p.send(Uint8Array.of(0x7f)); // unknown control byte: logged
    expect(hex(await p.ask(GET_IIN))).toMatch(/9000$/);
    expect(h.connected).toBe(true);
  });

  it('rejects a bad port at once', () => {
    expect(() => connectToVpcd(openChip(), { port: 0 })).toThrow(RangeError);
    expect(() => connectToVpcd(openChip(), { port: 70000 })).toThrow(/1\.\.65535, got 70000/);
    expect(() => listenForVpcd(openChip(), { port: -1 })).toThrow(/0\.\.65535/);
  });
});

describe('reversed mode: vpcd or the Android relay dials the vicc', () => {
  async function dial(h: ViccHandle): Promise<Peer> {
    const s = connect({ host: '127.0.0.1', port: h.port });
    await new Promise<void>((res, rej) => s.once('connect', () => res()).once('error', rej));
    cleanups.push(() => void s.destroy());
    return peer(s);
  }

  it('serves a relay that powers on and sends APDUs without ever asking for the ATR', async () => {
    const chip = openChip();
    const h = track(listenForVpcd(chip, { port: 0 }));
    await h.ready;
    expect(h.port).toBeGreaterThan(0);
    const p = await dial(h);
    p.send(Uint8Array.of(Ctrl.POWER_ON));
    expect(hex(await p.ask(SELECT_ISD)).slice(-4)).toBe('9000');
    expect(hex(await p.ask(GET_CPLC))).toBe(`9F7F2A${hex(chip.profile.cplc)}9000`);
    p.send(Uint8Array.of(Ctrl.POWER_OFF)); // ACardEmulator on deactivation
    await until(() => !chip.powered, 'power off');
    expect(h.connected).toBe(true);
  });

  it('a newer peer replaces the old one; close stops listening', async () => {
    const chip = openChip();
    const h = listenForVpcd(chip, { port: 0 });
    await h.ready;
    const first = await dial(h);
    expect(hex(await first.ask(Uint8Array.of(Ctrl.GET_ATR)))).toBe(hex(chip.atr));
    const second = await dial(h);
    await first.closed;
    expect(hex(await second.ask(GET_IIN))).toMatch(/9000$/);
    expect(h.connections).toBe(2);
    const port = h.port;
    await h.close();
    await second.closed;
    const s = connect({ host: '127.0.0.1', port });
    await expect(new Promise((res, rej) => s.once('connect', res).once('error', rej))).rejects.toThrow(/ECONNREFUSED/);
  });

  it('ready rejects with the address when the port is taken', async () => {
    const busy = track(await fakeVpcd());
    const h = listenForVpcd(openChip(), { port: busy.port });
    await expect(h.ready).rejects.toThrow(new RegExp(`cannot listen for vpcd on 127.0.0.1:${busy.port}: .*EADDRINUSE`));
    await h.close();
  });
});
