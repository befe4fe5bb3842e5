// The vicc side of vsmartcard's vpcd protocol: the chip as a card in pcscd's "Virtual PCD" reader, over plain TCP.
// Wire format (vsmartcard vpcd.c sendToVICC/recvFromVICC): every message is a 2-byte big-endian length + payload.
// vpcd → vicc: a 1-byte payload is control (00 power off, 01 power on, 02 reset, 04 get ATR), a longer one a C-APDU.
// Only GET ATR and C-APDUs are answered. A zero-length answer makes vpcd eject the card (vicc_transmit: r <= 0).
import { createConnection, createServer } from 'node:net';
import type { Server, Socket } from 'node:net';
import { concat, readU16, u16 } from '../bytes.ts';
import { SW } from '../iso.ts';
import { PowerLoss } from '../store.ts';
import type { Chip } from '../card.ts';

/** What the transport needs of a card: the emulated chip or a test fake. */
export type ViccCard = Pick<Chip, 'atr' | 'powerUp' | 'powerDown' | 'reset' | 'transmit'>;

export const VPCD_PORT = 35963;
/** Largest payload a 2-byte length can carry. */
export const MAX_FRAME = 0xffff;

export const Ctrl = { POWER_OFF: 0x00, POWER_ON: 0x01, RESET: 0x02, GET_ATR: 0x04 } as const;

export interface ViccHandle {
  /** Resolves once connected (normal mode, first connection) or listening (reversed mode). */
  readonly ready: Promise<void>;
  /** Normal mode: the vpcd port dialled; reversed mode: the port actually listened on (useful with port 0). */
  readonly port: number;
  /** True while a vpcd (or relay) connection is up. */
  readonly connected: boolean;
  /** Connections made so far (normal mode: successful connects; reversed mode: accepted peers). */
  readonly connections: number;
  /** Stops reconnecting/listening and drops the connection; the card is powered down. */
  close(): Promise<void>;
}

export interface ConnectOptions {
  host?: string;
  port?: number;
  /** Dial again with backoff when vpcd is not there or drops the connection (pcscd restart). Default true. */
  reconnect?: boolean;
  /** First and largest delay between attempts, ms (defaults 100 and 2000; doubles each failure). */
  minDelayMs?: number;
  maxDelayMs?: number;
  /**
   * After a power cut the card stays out of the reader this long (ms, default 1000) before dialling again, so that
   * pcscd's presence polling (every 400 ms) sees a removal and a new insertion rather than a card that never left.
   */
  removalMs?: number;
  log?: (message: string) => void;
}

export interface ListenOptions {
  /** Interface to bind; default 127.0.0.1. Use 0.0.0.0 for a phone relay on the LAN (no authentication!). */
  host?: string;
  /** Default 35963; 0 picks a free port (see handle.port). */
  port?: number;
  log?: (message: string) => void;
}

/** Prefixes the 2-byte big-endian length. Payloads over 0xFFFF cannot be framed. */
export function encodeFrame(payload: Uint8Array): Uint8Array {
  if (payload.length > MAX_FRAME) throw new RangeError(`vpcd frame payload of ${payload.length} bytes exceeds ${MAX_FRAME}`);
  return concat(u16(payload.length), payload);
}

/** Reassembles frames from TCP chunks: partial frames wait for more bytes, one chunk may hold many frames. */
export function frameReader(onFrame: (payload: Uint8Array) => void): (chunk: Uint8Array) => void {
  let pending = new Uint8Array(0);
  return (chunk) => {
    const buf = pending.length ? concat(pending, chunk) : chunk;
    let off = 0;
    while (buf.length - off >= 2) {
      const len = readU16(buf, off);
      if (buf.length - off - 2 < len) break;
      // Copy so a consumer may keep the payload after the socket reuses its buffer.
      onFrame(buf.slice(off + 2, off + 2 + len));
      off += 2 + len;
    }
    pending = off === buf.length ? new Uint8Array(0) : buf.slice(off);
  };
}

/** Result of one vpcd message: bytes to send back (maybe none) and whether the card vanished (power cut). */
interface Reply {
  frame: Uint8Array | null;
  lost: boolean;
}

const NONE: Reply = { frame: null, lost: false };

/** A logger that cannot take the connection down with it. */
function safeLog(log?: (message: string) => void): (message: string) => void {
  return (m) => {
    try {
      log?.(m);
    } catch {
      // A failing logger loses the line, not the card.
    }
  };
}

function describe(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/** Answers one vpcd payload with the card. Never throws: a failing card is logged and answered 6F00 or not at all. */
export function handleMessage(card: ViccCard, payload: Uint8Array, log: (m: string) => void): Reply {
  if (payload.length === 0) {
    log('vicc: empty message from vpcd ignored');
    return NONE;
  }
  try {
    if (payload.length === 1) return control(card, payload[0], log);
    let rsp = card.transmit(payload);
    if (rsp.length > MAX_FRAME) {
      log(`vicc: response of ${rsp.length} bytes exceeds the vpcd frame limit; answering 6F00`);
      rsp = u16(SW.UNKNOWN);
    }
    return { frame: encodeFrame(rsp), lost: false };
  } catch (e) {
    if (e instanceof PowerLoss) {
      // The relay sees the card removed: an empty answer makes vpcd eject it, and the connection is then dropped.
      log(`vicc: power lost (${e.message}); the card leaves the reader`);
      return { frame: u16(0), lost: true };
    }
    log(`vicc: card failed: ${describe(e)}`);
    return payload.length === 1 ? NONE : { frame: encodeFrame(u16(SW.UNKNOWN)), lost: false };
  }
}

function control(card: ViccCard, code: number, log: (m: string) => void): Reply {
  switch (code) {
    case Ctrl.POWER_OFF:
      card.powerDown();
      return NONE;
    case Ctrl.POWER_ON:
      card.powerUp();
      return NONE;
    case Ctrl.RESET:
      card.reset();
      return NONE;
    case Ctrl.GET_ATR:
      // Polled by IFDHICCPresence (pcscd: every 400 ms), powered or not: the answer is what "card present" means.
      return { frame: encodeFrame(card.atr), lost: false };
    default:
      log(`vicc: unknown control byte ${code.toString(16).padStart(2, '0')} ignored`);
      return NONE;
  }
}

/** Serves one connection until it closes. Calls onEnd once, whatever ended it; onLost on a power cut. */
function serve(socket: Socket, card: ViccCard, log: (m: string) => void, onEnd: () => void, onLost = () => {}): void {
  let ended = false;
  let dropping = false;
  const end = () => {
    if (ended) return;
    ended = true;
    try {
      card.powerDown();
    } catch (e) {
      log(`vicc: power down failed: ${describe(e)}`);
    }
    onEnd();
  };
  socket.setNoDelay(true);
  socket.setKeepAlive(true, 10_000);
  const feed = frameReader((payload) => {
    if (ended || dropping || socket.destroyed) return;
    const r = handleMessage(card, payload, log);
    if (r.frame && socket.writable) socket.write(r.frame);
    if (r.lost) {
      // Let the empty answer flush, then hang up; a peer that never closes its side is cut after a second.
      dropping = true;
      onLost();
      socket.end();
      setTimeout(() => socket.destroy(), 1000).unref();
    }
  });
  socket.on('data', (chunk: Buffer) => feed(new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.length)));
  socket.on('error', (e) => log(`vicc: connection error: ${e.message}`));
  socket.on('close', end);
}

/** Normal mode: dial vpcd (pcscd's listening driver) and act as the card in that reader. */
export function connectToVpcd(card: ViccCard, opts: ConnectOptions = {}): ViccHandle {
  const host = opts.host ?? '127.0.0.1';
  const port = opts.port ?? VPCD_PORT;
  const reconnect = opts.reconnect ?? true;
  const minDelay = opts.minDelayMs ?? 100;
  const maxDelay = opts.maxDelayMs ?? 2000;
  const removalMs = opts.removalMs ?? 1000;
  const log = safeLog(opts.log);
  checkPort(port, false);

  let closed = false;
  let socket: Socket | null = null;
  let connected = false;
  let connections = 0;
  let timer: NodeJS.Timeout | null = null;
  let wake: (() => void) | null = null;
  let resolveReady!: () => void;
  let rejectReady!: (e: Error) => void;
  const ready = new Promise<void>((res, rej) => {
    resolveReady = res;
    rejectReady = rej;
  });
  ready.catch(() => {}); // the caller may never await ready; a rejection must not become unhandled

  let lost = false;
  let failures = 0;
  /** One connection attempt; resolves when that connection is over (refused, dropped or closed). */
  const once = () =>
    new Promise<boolean>((done) => {
      const s = createConnection({ host, port });
      socket = s;
      let up = false;
      s.once('connect', () => {
        up = true;
        connected = true;
        connections++;
        failures = 0;
        log(`vicc: connected to vpcd at ${host}:${port}`);
        resolveReady();
        serve(
          s,
          card,
          log,
          () => {
            connected = false;
            s.destroy();
          },
          () => (lost = true),
        );
      });
      s.on('error', (e) => {
        // Once per outage, then every 30th try: a vicc waiting for pcscd should not flood the log.
        if (!up && (failures++ === 0 || failures % 30 === 0)) log(`vicc: vpcd at ${host}:${port} not reachable: ${e.message}`);
      });
      s.once('close', () => {
        connected = false;
        socket = null;
        if (up && !closed) log(`vicc: vpcd at ${host}:${port} closed the connection`);
        done(up);
      });
    });

  void (async () => {
    let delay = minDelay;
    while (!closed) {
      const wasUp = await once();
      if (closed) break;
      if (!reconnect) {
        if (!wasUp) rejectReady(new Error(`vpcd at ${host}:${port} is not reachable (is pcscd with vsmartcard-vpcd running?)`));
        break;
      }
      const wait = lost ? Math.max(removalMs, minDelay) : wasUp ? minDelay : delay;
      lost = false;
      delay = wasUp ? minDelay : Math.min(delay * 2, maxDelay);
      await new Promise<void>((r) => {
        wake = r;
        timer = setTimeout(r, wait);
      });
      wake = timer = null;
    }
    rejectReady(new Error('vicc closed before it reached vpcd'));
  })();

  return {
    ready,
    port,
    get connected() {
      return connected;
    },
    get connections() {
      return connections;
    },
    async close() {
      closed = true;
      if (timer) clearTimeout(timer);
      wake?.();
      const s = socket;
      if (s && !s.destroyed) await new Promise<void>((r) => s.once('close', () => r()).destroy());
    },
  };
}

/** Reversed mode: listen for vpcd ("DEVICENAME host:port" in reader.conf) or the Android card-emulator relay. */
export function listenForVpcd(card: ViccCard, opts: ListenOptions = {}): ViccHandle {
  const host = opts.host ?? '127.0.0.1';
  const log = safeLog(opts.log);
  const requested = opts.port ?? VPCD_PORT;
  checkPort(requested, true);
  let active: Socket | null = null;
  let connections = 0;
  let actualPort = requested;
  const server: Server = createServer((s) => {
    connections++;
    // One card sits in one reader: a newer peer (say, the phone reconnecting after a network blip) replaces the old.
    if (active) {
      log('vicc: a new peer connected; dropping the previous connection');
      active.destroy();
    }
    active = s;
    log(`vicc: peer ${s.remoteAddress ?? '?'}:${s.remotePort ?? '?'} connected`);
    serve(s, card, log, () => {
      if (active === s) active = null;
      s.destroy();
    });
  });
  server.on('error', (e) => log(`vicc: listener error: ${e.message}`));
  const ready = new Promise<void>((res, rej) => {
    const fail = (e: Error) => rej(new Error(`cannot listen for vpcd on ${host}:${requested}: ${e.message}`));
    server.once('error', fail);
    server.listen(requested, host, () => {
      server.off('error', fail);
      const a = server.address();
      if (a && typeof a === 'object') actualPort = a.port;
      log(`vicc: waiting for vpcd on ${host}:${actualPort}`);
      res();
    });
  });
  ready.catch(() => {});
  return {
    ready,
    get port() {
      return actualPort;
    },
    get connected() {
      return active !== null;
    },
    get connections() {
      return connections;
    },
    async close() {
      await ready.catch(() => {}); // a listen still under way would otherwise finish after close
      const closing = new Promise<void>((r) => server.close(() => r()));
      active?.destroy();
      if (server.listening) await closing;
    },
  };
}

function checkPort(port: number, allowZero: boolean): void {
  if (!Number.isInteger(port) || port < (allowZero ? 0 : 1) || port > 0xffff)
    throw new RangeError(`vpcd port must be an integer ${allowZero ? 0 : 1}..65535, got ${port}`);
}
