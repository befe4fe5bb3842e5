// The four sample applets (test/fixtures/asm) end to end: GP LOAD/INSTALL under SCP03 on a chip with the VM, their
// APDUs in-process, the echo sample through a vpcd-side TCP client (listen mode) and through the real pcscd, and the
// determinism of the cycle reports (same chip state + same APDUs ⇒ identical counts).
import { listening } from './helpers/listening.ts';
import { acquireVpcdSlot } from './helpers/vpcd-slot.ts';
import { vpcdPeer } from './helpers/vpcd-peer.ts';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFile, spawnSync } from 'node:child_process';
import { connect } from 'node:net';
import { copyFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createPublicKey, verify } from 'node:crypto';
import { fromHex, hex } from '../emulator/bytes.ts';
import { openChip } from '../emulator/card.ts';
import type { Chip } from '../emulator/card.ts';
import { openMemoryStore } from '../emulator/store.ts';
import { Ctrl, connectToVpcd, listenForVpcd } from '../emulator/transport/vicc.ts';
import type { ViccHandle } from '../emulator/transport/vicc.ts';
import type { CycleReport } from '../emulator/vm/types.ts';
import { isArray } from '../emulator/vm/types.ts';
import type { VmRuntime } from '../emulator/vm/runtime.ts';
import { ASM_SAMPLES, sampleBlock } from './fixtures/asm/samples.ts';
import type { SampleName } from './fixtures/asm/samples.ts';
import { tx } from './helpers/chip.ts';
import { loadAndInstall, lv, vmChip } from './helpers/vm-chip.ts';

const select = (aid: Uint8Array) => '00A40400' + lv(hex(aid));
const ascii = (s: string) => hex(new TextEncoder().encode(s));

async function install(chip: Chip, ...names: SampleName[]): Promise<void> {
  for (const n of names) {
    const s = ASM_SAMPLES[n];
    await loadAndInstall(chip, hex(s.packageAid), sampleBlock(n), hex(s.appletAid));
  }
}

describe('sample applets installed through GP LOAD/INSTALL under SCP03', () => {
  it('echo: echoes data, counts 00..10, refuses other INS', async () => {
    const { chip } = vmChip();
    await install(chip, 'echo');
    expect(tx(chip, select(ASM_SAMPLES.echo.appletAid)).sw).toBe(0x9000);
    const data = hex(Uint8Array.from({ length: 200 }, (_, i) => (i * 7) & 0xff));
    expect(tx(chip, '80010000' + lv(data) + '00')).toEqual({ data, sw: 0x9000, hex: data + '9000' });
    expect(tx(chip, '8001000000').data).toBe(''); // no data in, none out
    expect(tx(chip, '8002000000').data).toBe('000102030405060708090A0B0C0D0E0F10');
    expect(tx(chip, '80FF000000').sw).toBe(0x6d00);
  });

  it('pin: 63C2, 63C1, 63C0 then 6983; the secret only after VERIFY; validation gone after a power cycle; tries persist', async () => {
    const store = openMemoryStore();
    const { chip } = vmChip({ store });
    await install(chip, 'pin');
    const pin = ASM_SAMPLES.pin.appletAid;
    const verifyPin = (c: Chip, p: string) => tx(c, '00200000' + lv(ascii(p))).sw;
    const tries = (c: Chip) => tx(c, '8024000000').data;
    const SECRET = ascii('the secret');

    expect(tx(chip, select(pin)).sw).toBe(0x9000);
    expect(tries(chip)).toBe('03');
    expect(tx(chip, '8022000000').sw).toBe(0x6982); // not validated
    expect(verifyPin(chip, '0000')).toBe(0x63c2);
    expect(tries(chip)).toBe('02');
    expect(verifyPin(chip, '12345')).toBe(0x63c1); // a longer PIN with the right prefix is wrong too
    expect(tries(chip)).toBe('01');
    expect(verifyPin(chip, '1234')).toBe(0x9000);
    expect(tries(chip)).toBe('03'); // reset by a successful check
    expect(tx(chip, '8022000000')).toMatchObject({ data: SECRET, sw: 0x9000 });

    // The validated flag is transient: a power cycle clears it (JC API OwnerPIN).
    chip.powerDown();
    chip.powerUp();
    expect(tx(chip, select(pin)).sw).toBe(0x9000);
    expect(tx(chip, '8022000000').sw).toBe(0x6982);
    expect(verifyPin(chip, '9999')).toBe(0x63c2);

    // The try counter is persistent: a new chip on the same medium still has 2 tries.
    const again = openChip({ store });
    expect(tx(again, select(pin)).sw).toBe(0x9000);
    expect(tries(again)).toBe('02');
    expect(verifyPin(again, '1111')).toBe(0x63c1);
    expect(verifyPin(again, '2222')).toBe(0x63c0);
    expect(tries(again)).toBe('00');
    expect(verifyPin(again, '1234')).toBe(0x6983); // blocked: even the right PIN
    expect(tx(again, '8022000000').sw).toBe(0x6982);
    const third = openChip({ store });
    expect(tx(third, select(pin)).sw).toBe(0x9000);
    expect(verifyPin(third, '1234')).toBe(0x6983); // still blocked after reopening
    expect(tx(third, '80FF000000').sw).toBe(0x6d00);
  });

  it('rsa: the modulus in two halves; signatures verify with node:crypto as RSA-SHA256 PKCS#1 v1.5 (e = 65537)', async () => {
    const { chip, vm } = vmChip();
    await install(chip, 'rsa');
    expect(tx(chip, select(ASM_SAMPLES.rsa.appletAid)).sw).toBe(0x9000);
    const lo = tx(chip, '8030000000');
    const hi = tx(chip, '8030010000');
    expect([lo.sw, hi.sw]).toEqual([0x9000, 0x9000]);
    expect([lo.data.length, hi.data.length]).toEqual([256, 256]);
    expect(tx(chip, '8030020000').sw).toBe(0x6b00);
    const n = fromHex(lo.data + hi.data);
    expect(n[0] & 0x80).toBe(0x80); // a full 2048-bit modulus
    expect(n[255] & 1).toBe(1);
    const key = createPublicKey({ key: { kty: 'RSA', n: Buffer.from(n).toString('base64url'), e: 'AQAB' }, format: 'jwk' });

    const responses: string[] = [lo.data, hi.data];
    for (const msg of ['', 'hello', 'x'.repeat(255)]) {
      const data = ascii(msg);
      const r = tx(chip, '80320000' + (data ? lv(data) : '') + '00');
      expect(r.sw).toBe(0x9000);
      expect(r.data.length).toBe(512);
      responses.push(r.data);
      expect(verify('sha256', fromHex(data), key, fromHex(r.data))).toBe(true);
      expect(verify('sha256', fromHex(data + '00'), key, fromHex(r.data))).toBe(false);
    }
    // PKCS#1 v1.5 signatures are deterministic.
    expect(tx(chip, '8032000005' + ascii('hello') + '00').data).toBe(responses[3]);

    // The heap stores key components as they are (a documented simplification), so the state is not checked; what must
    // hold is that no APDU ever returns a private component.
    const priv = privateComponents(vm);
    expect(priv.length).toBe(5); // p, q, dp, dq, pq
    for (const c of priv) {
      expect(c.length).toBeGreaterThanOrEqual(120);
      for (const r of responses) expect(r).not.toContain(hex(c.subarray(0, 16)));
    }
    expect(tx(chip, '80FF000000').sw).toBe(0x6d00);
  }, 60_000);

  it('counter: increments persist, aborted increments do not', async () => {
    const store = openMemoryStore();
    const { chip } = vmChip({ store });
    await install(chip, 'counter');
    expect(tx(chip, select(ASM_SAMPLES.counter.appletAid)).sw).toBe(0x9000);
    for (let i = 1; i <= 20; i++) expect(tx(chip, '8010000000').data).toBe(i.toString(16).padStart(4, '0').toUpperCase());
    expect(tx(chip, '8012000000').data).toBe('0014');
    const again = openChip({ store });
    expect(tx(again, select(ASM_SAMPLES.counter.appletAid)).sw).toBe(0x9000);
    expect(tx(again, '8014000000').data).toBe('0014');
  });

  it('all four live together on one chip, each answering its own commands', async () => {
    const { chip } = vmChip();
    await install(chip, 'echo', 'counter', 'pin', 'rsa');
    expect(tx(chip, select(ASM_SAMPLES.counter.appletAid)).sw).toBe(0x9000);
    expect(tx(chip, '8010000000').data).toBe('0001');
    expect(tx(chip, select(ASM_SAMPLES.echo.appletAid)).sw).toBe(0x9000);
    expect(tx(chip, '8001000002CAFE00').data).toBe('CAFE');
    expect(tx(chip, '8010000000').sw).toBe(0x6d00); // the echo applet has no INS 10
    expect(tx(chip, select(ASM_SAMPLES.pin.appletAid)).sw).toBe(0x9000);
    expect(tx(chip, '8024000000').data).toBe('03');
    expect(tx(chip, select(ASM_SAMPLES.counter.appletAid)).sw).toBe(0x9000);
    expect(tx(chip, '8014000000').data).toBe('0001');
  }, 60_000);
});

/** The private CRT components of every RSA key in the heap (read from the VM's memory, as an attacker could not). */
function privateComponents(vm: VmRuntime): Uint8Array[] {
  const heap = vm.vm!.heap;
  const out: Uint8Array[] = [];
  for (let ref = 1; ref < 100_000; ref++) {
    const o = heap.peek(ref);
    if (!o || isArray(o) || o.native?.fam !== 'RSA_CRT') continue;
    for (const name of ['p', 'q', 'dp', 'dq', 'pq']) {
      const a = heap.peek(o.native[name + 'Ref'] as number);
      if (!a || !isArray(a)) continue;
      const d = a.data as Uint8Array;
      out.push(d.slice(2, 2 + ((d[0] << 8) | d[1])));
    }
  }
  return out;
}

// ---------------------------------------------------------------------------------------------------------------
// vpcd transport

describe('the echo sample through vpcd', () => {
  it('a vpcd-side client dials the listening vicc: power on, ATR, SELECT, echo', async () => {
    const { chip } = vmChip();
    await install(chip, 'echo');
    chip.powerDown();
    const h = listenForVpcd(chip, { port: 0 });
    await h.ready;
    const s = connect({ host: '127.0.0.1', port: h.port });
    try {
      await new Promise<void>((res, rej) => s.once('connect', () => res()).once('error', rej));
      const p = vpcdPeer(s);
      p.send(Uint8Array.of(Ctrl.POWER_ON));
      expect(await p.ask(Uint8Array.of(Ctrl.GET_ATR))).toBe(hex(chip.atr));
      expect((await p.ask(select(ASM_SAMPLES.echo.appletAid))).slice(-4)).toBe('9000');
      expect(await p.ask('80010000051122334455' + '00')).toBe('11223344559000');
      expect(await p.ask('8002000000')).toBe('000102030405060708090A0B0C0D0E0F109000');
      expect(await p.ask('80FF000000')).toBe('6D00');
      p.send(Uint8Array.of(Ctrl.RESET));
      // After a reset the basic channel holds the ISD again, which has no INS 01; selected again, echo answers.
      expect(await p.ask('8001000001AA00')).toBe('6D00');
      expect(await p.ask(select(ASM_SAMPLES.echo.appletAid))).toBe('9000');
      expect(await p.ask('8001000001AA00')).toBe('AA9000');
    } finally {
      s.destroy();
      await h.close();
    }
  });
});

// ---------------------------------------------------------------------------------------------------------------
// Real pcscd (vsmartcard vpcd). Slot 0 (TCP 35963) by default: test/pcsc.test.ts uses slot 1 and may run at the same time;
// test/opensc-jpki.test.ts shares slot 0 through a lock file (helpers/vpcd-slot.ts).

const REQUIRE = process.env.JPKI_REQUIRE_PCSC === '1';
const PORT = Number(process.env.JPKI_VPCD_VM_TEST_PORT ?? 35963);
const READER = `Virtual PCD 00 ${String(PORT - 35963).padStart(2, '0')}`;

const pcscReason = spawnSync('opensc-tool', ['--version']).error
  ? 'opensc-tool is not installed'
  : !listening(PORT)
    ? `nothing listens on TCP ${PORT}: pcscd with vsmartcard-vpcd is not running (bash .ci/pcscd.sh)`
    : null;
if (pcscReason && !REQUIRE) console.warn(`echo-through-pcscd test skipped: ${pcscReason} (JPKI_REQUIRE_PCSC=1 fails instead)`);

/** Runs a tool without blocking the event loop (this process is the card pcscd talks to). */
function run(cmd: string, args: string[]): Promise<string> {
  return new Promise((resolve, reject) =>
    execFile(cmd, args, { timeout: 20_000 }, (err, stdout, stderr) =>
      err ? reject(new Error(`${cmd} ${args.join(' ')}: ${err.message}\n${stdout}${stderr}`)) : resolve(stdout),
    ),
  );
}

/** Hex of the bytes opensc-tool printed after each "Received (SW1=…, SW2=…)" line, data then SW. */
function openscResponses(out: string): string[] {
  const rsps: string[] = [];
  let cur: { data: string; sw: string } | null = null;
  for (const line of out.split('\n')) {
    const m = /^Received \(SW1=0x([0-9a-f]{2}), SW2=0x([0-9a-f]{2})\)/i.exec(line);
    if (m) {
      if (cur) rsps.push(cur.data + cur.sw);
      cur = { data: '', sw: (m[1] + m[2]).toUpperCase() };
      continue;
    }
    const cols = /^((?:[0-9A-F]{2} )+)/.exec(line);
    if (cur && cols) cur.data += cols[1].slice(0, 48).replace(/ /g, '');
    else if (cur) {
      rsps.push(cur.data + cur.sw);
      cur = null;
    }
  }
  if (cur) rsps.push(cur.data + cur.sw);
  return rsps;
}

async function until(cond: () => Promise<boolean>, what: string, ms = 10_000): Promise<void> {
  const t0 = Date.now();
  for (;;) {
    if (await cond().catch(() => false)) return;
    if (Date.now() - t0 > ms) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe.runIf(!pcscReason || REQUIRE)('the echo sample through the real pcscd', () => {
  let chip: Chip;
  let vicc: ViccHandle | undefined;
  let release: (() => void) | undefined;

  beforeAll(async () => {
    if (pcscReason) throw new Error(`PC/SC is required but unavailable: ${pcscReason}`);
    release = await acquireVpcdSlot(PORT, 600_000); // shared with opensc-jpki and the conformance runs through vpcd
    chip = vmChip().chip;
    await install(chip, 'echo');
    chip.powerDown();
    const list = await run('opensc-tool', ['-l']);
    const row = list.split('\n').find((l) => l.endsWith(READER));
    if (!row) throw new Error(`pcscd has no reader "${READER}" (opensc-tool -l):\n${list}`);
    if (/^\d+\s+Yes/.test(row)) throw new Error(`"${READER}" already holds a card: another vicc uses port ${PORT}`);
    vicc = connectToVpcd(chip, { port: PORT, reconnect: true });
    await vicc.ready;
    await until(async () => (await run('opensc-tool', ['-r', READER, '-a'])).trim() !== '', `pcscd to see the card in "${READER}"`);
  }, 660_000);

  afterAll(async () => {
    await vicc?.close();
    release?.();
  });

  it('opensc-tool selects the echo applet and gets the echo back', async () => {
    const data = hex(Uint8Array.from({ length: 40 }, (_, i) => 0xa0 + i));
    const apdus = [select(ASM_SAMPLES.echo.appletAid), '80010000' + lv(data) + '00', '8002000000', '80FF000000'];
    const got = openscResponses(await run('opensc-tool', ['-r', READER, '-c', 'default', ...apdus.flatMap((a) => ['-s', a])]));
    expect(got).toEqual(['9000', data + '9000', '000102030405060708090A0B0C0D0E0F109000', '6D00']);
  }, 30_000);
});

// ---------------------------------------------------------------------------------------------------------------
// Determinism of the cycle model

/** Installs the four samples and runs a fixed script; the cycle report of every VM command, in order. */
async function scriptedReports(chip: Chip, vm: VmRuntime, what: 'install' | 'script'): Promise<CycleReport[]> {
  const out: CycleReport[] = [];
  if (what === 'install')
    for (const n of ['echo', 'counter', 'pin'] as const) {
      await install(chip, n);
      out.push(vm.lastReport()!);
    }
  const script = [
    select(ASM_SAMPLES.echo.appletAid),
    '8001000004DEADBEEF00',
    '8002000000',
    select(ASM_SAMPLES.counter.appletAid),
    '8010000000',
    '8010000000',
    '8012000000',
    '8014000000',
    select(ASM_SAMPLES.pin.appletAid),
    '002000000431313131',
    '0020000004' + ascii('1234'),
    '8022000000',
    '80FF000000',
  ];
  for (const a of script) {
    const before = vm.lastReport();
    tx(chip, a);
    const r = vm.lastReport()!;
    expect(r).not.toBe(before); // every command of the script ran in the VM
    out.push(r);
  }
  return out;
}

describe('determinism of cycle counts', () => {
  it('two fresh chips, same installs and APDUs: identical reports (bytecodes, cycles, NVM bytes, natives)', async () => {
    const a = vmChip();
    const b = vmChip();
    const ra = await scriptedReports(a.chip, a.vm, 'install');
    const rb = await scriptedReports(b.chip, b.vm, 'install');
    expect(ra.length).toBe(16);
    expect(rb).toEqual(ra);
    expect(ra.some((r) => r.persistentBytesWritten > 0)).toBe(true);
    expect(ra.every((r) => r.cycles > 0)).toBe(true);
    // And the script run again on the same chips is again identical between them.
    expect(await scriptedReports(b.chip, b.vm, 'script')).toEqual(await scriptedReports(a.chip, a.vm, 'script'));
  });

  it('a chip state reopened from its file gives the same counts as the chip that made it, and as another copy', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'jpki-vm-det-'));
    try {
      const first = join(dir, 'a.img');
      const made = vmChip({ state: first, fsync: false });
      await scriptedReports(made.chip, made.vm, 'install');
      made.chip.close();
      const copy = join(dir, 'b.img');
      copyFileSync(first, copy);
      const a = vmChip({ state: first, fsync: false });
      const b = vmChip({ state: copy, fsync: false });
      const ra = await scriptedReports(a.chip, a.vm, 'script');
      const rb = await scriptedReports(b.chip, b.vm, 'script');
      expect(rb).toEqual(ra);
      a.chip.close();
      b.chip.close();
      // A chip that never closed, given the same history and a power cycle (RAM as after reopening: OwnerPIN's
      // validated flag is transient and changes what VERIFY writes), counts the same for the script too.
      const live = vmChip();
      await scriptedReports(live.chip, live.vm, 'install');
      live.chip.powerDown();
      live.chip.powerUp();
      expect(await scriptedReports(live.chip, live.vm, 'script')).toEqual(ra);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
