// Fuzz (issue 3): 100 000 seeded random and mutated APDUs against the four sample applets (echo, counter, pin, rsa)
// installed through GP LOAD/INSTALL under SCP03 on a chip with a state file. Every answer is a well-formed R-APDU with
// an ISO status word, the host never throws (nor logs an internal error), the PIN try counter never goes back up
// without a correct VERIFY, the counter never goes down, the RSA key never changes, and the state file loads again
// afterwards with every applet answering.
//
// RSA-2048 signing costs about 1 ms of node:crypto per command, so sign commands (INS 32) are capped at SIGN_BUDGET:
// beyond it, and for 90 % of rsa commands before it, a mutant's INS 32 is turned into another INS.
import { describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { concat, fromHex, hex } from '../emulator/bytes.ts';
import { isValidSw } from '../emulator/iso.ts';
import { encodeCommand, parseCommand } from '../emulator/apdu.ts';
import type { Chip } from '../emulator/card.ts';
import { ASM_SAMPLES, sampleBlock } from './fixtures/asm/samples.ts';
import type { SampleName } from './fixtures/asm/samples.ts';
import { prng } from './helpers/prng.ts';
import { ISD, secure, tx } from './helpers/chip.ts';
import { apdu, gpInstall, loadAndInstall, lv, vmChip } from './helpers/vm-chip.ts';

/** JPKI_FUZZ_SEED / JPKI_FUZZ_COUNT override the seed and size for exploratory runs; the defaults are what CI runs. */
const SEED = Number(process.env.JPKI_FUZZ_SEED ?? 0x5eed_0003);
const TOTAL = Number(process.env.JPKI_FUZZ_COUNT ?? 100_000);
const PHASE = 40; // commands per applet phase, after a clean SELECT
const SIGN_BUDGET = 300;
const NAMES: SampleName[] = ['echo', 'counter', 'pin', 'rsa'];
const AID = Object.fromEntries(NAMES.map((n) => [n, hex(ASM_SAMPLES[n].appletAid)])) as Record<SampleName, string>;
const PIN_OK = '31323334';
const select = (aid: string, cla = 0x00) => fromHex(apdu(cla, 0xa4, 0x04, 0x00, aid));

/** Valid (and some deliberately odd) commands per applet, before mutation. */
const CORPUS: Record<SampleName, string[]> = {
  echo: [
    apdu(0, 0x01, 0, 0, '0102030405'),
    apdu(0, 0x01, 0, 0, '0102030405', 256),
    apdu(0, 0x01, 0, 0, 'AA'.repeat(255), 256),
    apdu(0, 0x01, 0, 0, '', 256),
    '00010000',
    apdu(0, 0x02, 0, 0, '', 0x11),
    apdu(0, 0x02, 0, 0, '', 256),
    apdu(0, 0x02, 0, 0, '', 5),
    '0001000000000401020304', // extended Lc: echo does not implement ExtendedLength
    '000200000000FF',
    apdu(0, 0x7f, 0, 0, ''),
  ],
  counter: ['00100000', apdu(0, 0x10, 0, 0, '', 2), apdu(0, 0x12, 0, 0, '', 2), apdu(0, 0x14, 0, 0, '', 2), apdu(0x80, 0x14, 0, 0, '', 1), apdu(0, 0x10, 0, 0, '11223344', 2)],
  pin: [
    apdu(0, 0x20, 0, 0, PIN_OK),
    apdu(0, 0x20, 0, 0, PIN_OK),
    apdu(0, 0x20, 0, 0x80, PIN_OK),
    apdu(0, 0x20, 0, 0, '31323335'),
    apdu(0, 0x20, 0, 0, '3132'),
    apdu(0, 0x20, 0, 0, '313233343536373839'),
    apdu(0, 0x20, 0, 0, ''),
    apdu(0, 0x22, 0, 0, '', 256),
    apdu(0, 0x22, 0, 0, '', 4),
    apdu(0, 0x24, 0, 0, '', 1),
  ],
  rsa: [apdu(0, 0x30, 0, 0, '', 128), apdu(0, 0x30, 1, 0, '', 128), apdu(0, 0x30, 2, 0, '', 128), apdu(0, 0x30, 0, 0, '', 0x40), apdu(0, 0x32, 0, 0, '00112233', 256), apdu(0, 0x32, 0, 0, '', 256)],
};

/** Commands any phase may draw: logical channels, GET RESPONSE, SELECTs of the other applets, chained commands. */
const COMMON = [
  '0070000001',
  '0070800100',
  '00708001',
  '00C0000000',
  '00C0000010',
  ...NAMES.map((n) => apdu(0x01, 0xa4, 0x04, 0x00, AID[n])),
  ...NAMES.map((n) => apdu(0x00, 0xa4, 0x04, 0x00, AID[n])),
  apdu(0x00, 0xa4, 0x04, 0x00, 'A0000001510A00'), // partial AID
  apdu(0x00, 0xa4, 0x04, 0x02, 'A0000001510A00'), // next occurrence
  apdu(0x10, 0x01, 0, 0, '0102'), // chaining bit set
  apdu(0x00, 0xa4, 0x04, 0x00, 'A000000151000000'),
];

const CLAS = [0x00, 0x80, 0x84, 0x90, 0x10, 0x01, 0x02, 0x03, 0x0c, 0x40, 0x41, 0x4f, 0x60, 0xe0, 0xff];
const INSS = [0x01, 0x02, 0x10, 0x12, 0x14, 0x20, 0x22, 0x24, 0x30, 0x32, 0xa4, 0xc0, 0x70, 0xca, 0xe6, 0xe8, 0x00, 0xff, 0x61, 0x6c];

type Rng = ReturnType<typeof prng>;

/** Header + body re-encoded with extended lengths (or with lies in them). */
function extended(r: Rng, a: Uint8Array): Uint8Array {
  const head = a.subarray(0, 4);
  const lc = a.length > 5 ? Math.min(a[4], a.length - 5) : 0;
  const data = a.subarray(5, 5 + lc);
  const lie = r.next() < 0.3 ? r.int(0x10000) : data.length;
  const ne = r.int(3) === 0 ? new Uint8Array(0) : Uint8Array.of(r.int(256), r.int(256));
  if (!data.length && r.next() < 0.5) return concat(head, Uint8Array.of(0), ne.length ? ne : Uint8Array.of(0, 0));
  return concat(head, Uint8Array.of(0, lie >> 8, lie & 0xff), data, ne);
}

/** 1–3 edits of a command: CLA/INS/P1/P2, Lc and Le lies, extended forms, truncation, bytes flipped/added/removed. */
function mutate(r: Rng, base: Uint8Array): Uint8Array {
  let a: Uint8Array = base.slice();
  const edits = 1 + r.int(3);
  for (let e = 0; e < edits; e++) {
    const k = r.int(12);
    if (k === 0 && a.length) a[0] = r.next() < 0.7 ? r.pick(CLAS) : a[0] ^ (1 << r.int(8));
    else if (k === 1 && a.length > 1) a[1] = r.next() < 0.6 ? r.pick(INSS) : r.int(256);
    else if (k === 2 && a.length > 2) a[2] = r.next() < 0.5 ? r.int(4) : r.int(256);
    else if (k === 3 && a.length > 3) a[3] = r.next() < 0.5 ? r.int(4) : r.int(256);
    else if (k === 4 && a.length > 4) a[4] = r.next() < 0.5 ? (a[4] + (r.next() < 0.5 ? 1 : -1)) & 0xff : r.int(256); // Lc lie
    else if (k === 5) a = a.length > 4 && r.next() < 0.5 ? concat(a.subarray(0, a.length - 1), Uint8Array.of(r.int(256))) : concat(a, Uint8Array.of(r.int(256))); // Le
    else if (k === 6 && a.length >= 4) a = extended(r, a);
    else if (k === 7) a = a.subarray(0, r.int(a.length + 1)).slice(); // truncation
    else if (k === 8) a = concat(a, r.bytes(1 + r.int(8)));
    else if (k === 9 && a.length) a[r.int(a.length)] ^= 1 + r.int(255);
    else if (k === 10 && a.length) {
      const at = r.int(a.length);
      a = concat(a.subarray(0, at), a.subarray(at + 1 + r.int(3)));
    } else if (k === 11) {
      const at = r.int(a.length + 1);
      a = concat(a.subarray(0, at), r.bytes(1 + r.int(4)), a.subarray(at));
    }
  }
  return a;
}

/** A well-formed mutant: header fields, data bytes and length, Ne and the short/extended form changed, then re-encoded. */
function reshape(r: Rng, base: Uint8Array): Uint8Array {
  const c = parseCommand(base);
  let data: Uint8Array = c.data.slice();
  let ne = c.ne;
  const edits = 1 + r.int(3);
  for (let e = 0; e < edits; e++) {
    const k = r.int(8);
    if (k === 0) c.cla = r.next() < 0.7 ? r.pick(CLAS) : r.int(256);
    else if (k === 1) c.ins = r.next() < 0.6 ? r.pick(INSS) : r.int(256);
    else if (k === 2) c.p1 = r.next() < 0.6 ? r.int(4) : r.int(256);
    else if (k === 3) c.p2 = r.next() < 0.6 ? r.int(4) : r.int(256);
    else if (k === 4 && data.length) data[r.int(data.length)] = r.int(256);
    else if (k === 5) data = r.next() < 0.5 ? data.subarray(0, r.int(data.length + 1)) : concat(data, r.bytes(1 + r.int(r.next() < 0.9 ? 16 : 300)));
    else if (k === 6) ne = r.pick([0, 1, 2, 0x11, 0x80, 0xff, 256, 257, 4096, 65536, r.int(300)]);
    else c.extended = !c.extended;
  }
  return encodeCommand({ cla: c.cla, ins: c.ins, p1: c.p1, p2: c.p2, data, ne, extended: c.extended });
}

function contains(a: Uint8Array, needle: Uint8Array): boolean {
  outer: for (let i = 0; i + needle.length <= a.length; i++) {
    for (let j = 0; j < needle.length; j++) if (a[i + j] !== needle[j]) continue outer;
    return true;
  }
  return false;
}

/** The PIN try counter as seen from outside: it may only rise after a command that could be a correct VERIFY. */
class PinTracker {
  tries = 3;
  mayReset = false;
  observations = 0;
  resetsSeen = 0;
  values = new Set<number>();

  command(cmd: Uint8Array, sw: number): void {
    if (cmd.length < 2 || cmd[1] !== 0x20) return;
    if (sw === 0x9000 && contains(cmd, fromHex(PIN_OK))) this.mayReset = true;
    else if ((sw & 0xfff0) === 0x63c0) this.observe(sw & 0x0f, cmd);
    else if (sw === 0x6983) this.observe(0, cmd);
  }

  observe(x: number, cmd?: Uint8Array): void {
    this.observations++;
    this.values.add(x);
    if (x > 3 || (!this.mayReset && x > this.tries))
      throw new Error(`PIN try counter rose from ${this.tries} to ${x} without a correct VERIFY${cmd ? ` (after ${hex(cmd)})` : ''}`);
    if (this.mayReset && x > this.tries) this.resetsSeen++;
    this.tries = x;
    this.mayReset = false;
  }

  reinstalled(): void {
    this.tries = 3;
    this.mayReset = false;
  }
}

function sw(resp: Uint8Array): number {
  return (resp[resp.length - 2] << 8) | resp[resp.length - 1];
}

/** A response is 2..65538 bytes, ends in an ISO status word, and an error status carries no data (ISO 7816-4 §5.1.3). */
function checkResponse(cmd: Uint8Array, resp: Uint8Array): number {
  const where = () => `for ${hex(cmd)} → ${hex(resp)}`;
  if (resp.length < 2 || resp.length > 65538) throw new Error(`response of ${resp.length} bytes ${where()}`);
  const s = sw(resp);
  if (!isValidSw(s)) throw new Error(`invalid SW ${s.toString(16)} ${where()}`);
  const sw1 = s >> 8;
  if (sw1 >= 0x64 && sw1 <= 0x6f && resp.length !== 2) throw new Error(`error status with data ${where()}`);
  return s;
}

describe('VM sample applet fuzz', () => {
  it(`survives ${TOTAL.toLocaleString('en')} seeded random and mutated APDUs to echo, counter, pin and rsa`, { timeout: 120_000 }, async () => {
    const dir = mkdtempSync(join(tmpdir(), 'jpki-fuzz-vm-'));
    const state = join(dir, 'chip.img');
    try {
      let { chip, logs } = vmChip({ state, fsync: false });
      chip.powerUp();
      for (const n of NAMES) await loadAndInstall(chip, hex(ASM_SAMPLES[n].packageAid), sampleBlock(n), AID[n]);
      expect(tx(chip, hex(select(AID.rsa))).sw).toBe(0x9000);
      const modulus = tx(chip, apdu(0, 0x30, 0, 0, '', 128)).data + tx(chip, apdu(0, 0x30, 1, 0, '', 128)).data;
      expect(modulus.length).toBe(512);

      const r = prng(SEED);
      const pin = new PinTracker();
      const sws = new Map<SampleName, Map<number, number>>(NAMES.map((n) => [n, new Map()]));
      let counter = 0; // highest counter value seen
      let counterReads = 0;
      let signs = 0;
      let modulusReads = 0;
      let reinstalls = 0;
      let sent = 0;
      let powerCycles = 0;
      let reopened = false;

      const send = (cmd: Uint8Array): number => {
        const resp = chip.transmit(cmd);
        return checkResponse(cmd, resp);
      };
      // Logical channels the fuzz opened are closed first: an applet active there cannot be selected on channel 0.
      const closeChannels = () => {
        for (let ch = 1; ch < chip.profile.logicalChannels; ch++) send(Uint8Array.of(0x00, 0x70, 0x80, ch));
      };
      const readTries = (): number => {
        closeChannels();
        expect(send(select(AID.pin))).toBe(0x9000);
        const t = tx(chip, apdu(0, 0x24, 0, 0, '', 1));
        expect(t.sw).toBe(0x9000);
        return parseInt(t.data, 16);
      };

      while (sent < TOTAL) {
        const target = r.pick(NAMES);
        closeChannels();
        expect(send(select(AID[target])), `SELECT ${target}`).toBe(0x9000);
        for (let k = 0; k < PHASE && sent < TOTAL; k++) {
          const mode = r.next();
          let cmd: Uint8Array;
          if (mode < 0.12) cmd = r.bytes(r.next() < 0.97 ? r.int(48) : 256 + r.int(1200));
          else if (mode < 0.22) cmd = mutate(r, fromHex(r.pick(COMMON)));
          else if (mode < 0.32) cmd = fromHex(r.pick(CORPUS[target]));
          else if (mode < 0.62) cmd = reshape(r, fromHex(r.pick(CORPUS[target])));
          else cmd = mutate(r, fromHex(r.pick(CORPUS[target])));
          // Cap RSA signing (node:crypto time), whichever applet the command reaches.
          if (cmd.length > 1 && cmd[1] === 0x32 && (signs >= SIGN_BUDGET || (target === 'rsa' && r.next() < 0.9))) cmd[1] = r.pick([0x30, 0x31, 0x33, 0xb2]);
          if (cmd.length > 1 && cmd[1] === 0x32) signs++;
          const resp = chip.transmit(cmd);
          const s = checkResponse(cmd, resp);
          sent++;
          const hist = sws.get(target)!;
          hist.set(s, (hist.get(s) ?? 0) + 1);
          pin.command(cmd, s);
          const data = resp.subarray(0, resp.length - 2);
          // Counter: reads never go down; an increment answers more than any value seen before it.
          if (target === 'counter' && s === 0x9000 && data.length === 2 && cmd.length > 1 && [0x10, 0x12, 0x14].includes(cmd[1])) {
            const v = (data[0] << 8) | data[1];
            if (v < counter || (cmd[1] === 0x10 && v === counter && counterReads > 0)) throw new Error(`counter went from ${counter} to ${v} (${hex(cmd)})`);
            counter = v;
            counterReads++;
          }
          // RSA: a modulus half is always one of the two halves read at install time.
          if (target === 'rsa' && s === 0x9000 && data.length === 128 && cmd[1] === 0x30) {
            const h = hex(data);
            if (h !== modulus.slice(0, 256) && h !== modulus.slice(256)) throw new Error(`modulus changed: ${h}`);
            modulusReads++;
          }
        }
        if (target === 'pin') {
          pin.observe(readTries());
          if (pin.tries === 0) {
            // Blocked: reinstall the instance so the fuzz keeps reaching VERIFY (a new instance starts with 3 tries).
            closeChannels();
            expect(send(select(ISD))).toBe(0x9000);
            const sc = await secure(chip);
            expect((await sc.send(apdu(0x80, 0xe4, 0x00, 0x00, '4F' + lv(AID.pin)))).sw).toBe(0x9000);
            const ins = await gpInstall(sc, hex(ASM_SAMPLES.pin.packageAid), AID.pin, AID.pin);
            expect(ins.sw, logs.slice(-3).join(' / ')).toBe(0x9000);
            pin.reinstalled();
            reinstalls++;
            expect(readTries()).toBe(3);
          }
        }
        if (sent % 10_000 < PHASE) {
          chip.powerUp();
          powerCycles++;
        }
        if (!reopened && sent >= TOTAL / 2) {
          // Halfway: close the state file and reopen it, as a host restart would.
          expect(logs.filter((l) => l.includes('internal error'))).toEqual([]);
          chip.close();
          ({ chip, logs } = vmChip({ state, fsync: false, create: false }));
          chip.powerUp();
          reopened = true;
        }
      }

      // Clean reads of the final state, then the same after reopening the state file.
      const finalState = (c: Chip) => {
        const out: Record<string, string> = {};
        expect(tx(c, hex(select(AID.echo))).sw).toBe(0x9000);
        out.echo = tx(c, apdu(0, 0x01, 0, 0, 'CAFE', 256)).hex;
        expect(tx(c, hex(select(AID.counter))).sw).toBe(0x9000);
        out.counter = tx(c, apdu(0, 0x14, 0, 0, '', 2)).hex;
        expect(tx(c, hex(select(AID.pin))).sw).toBe(0x9000);
        out.tries = tx(c, apdu(0, 0x24, 0, 0, '', 1)).hex;
        expect(tx(c, hex(select(AID.rsa))).sw).toBe(0x9000);
        out.modulus = tx(c, apdu(0, 0x30, 0, 0, '', 128)).data + tx(c, apdu(0, 0x30, 1, 0, '', 128)).data;
        return out;
      };
      const before = finalState(chip);
      expect(before.echo).toBe('CAFE9000');
      expect(before.modulus).toBe(modulus);
      expect(parseInt(before.counter.slice(0, 4), 16)).toBeGreaterThanOrEqual(counter);
      pin.observe(parseInt(before.tries.slice(0, 2), 16));
      expect(logs.filter((l) => l.includes('internal error'))).toEqual([]);
      chip.close();

      const again = vmChip({ state, fsync: false, create: false });
      again.chip.powerUp();
      expect(finalState(again.chip)).toEqual(before);
      // The PIN still verifies (unless blocked) and the counter still counts after the reopen.
      expect(tx(again.chip, hex(select(AID.pin))).sw).toBe(0x9000);
      expect(tx(again.chip, apdu(0, 0x20, 0, 0, PIN_OK)).sw).toBe(before.tries === '009000' ? 0x6983 : 0x9000);
      expect(tx(again.chip, hex(select(AID.counter))).sw).toBe(0x9000);
      expect(tx(again.chip, apdu(0, 0x10, 0, 0, '', 2)).data).toBe(((parseInt(before.counter.slice(0, 4), 16) + 1) & 0xffff).toString(16).padStart(4, '0').toUpperCase());
      again.chip.close();

      // The fuzz reached the applets' own paths, not only the length checks.
      const count = (n: SampleName, s: number) => sws.get(n)!.get(s) ?? 0;
      for (const n of NAMES) for (const s of [0x9000, 0x6d00, 0x6e00, 0x6700]) expect(count(n, s), `${n} ${s.toString(16)}`).toBeGreaterThan(0);
      expect(count('echo', 0x6f00) + count('echo', 0x6700)).toBeGreaterThan(0);
      expect(count('pin', 0x6982)).toBeGreaterThan(0);
      expect(count('pin', 0x63c2)).toBeGreaterThan(0);
      expect(count('rsa', 0x6b00)).toBeGreaterThan(0);
      expect(pin.observations).toBeGreaterThan(1000);
      expect(pin.resetsSeen).toBeGreaterThan(10); // correct VERIFYs did restore the counter
      expect(counterReads).toBeGreaterThan(1000);
      expect(modulusReads).toBeGreaterThan(500);
      expect(signs).toBeGreaterThan(50);
      expect(signs).toBeLessThanOrEqual(SIGN_BUDGET);
      expect(powerCycles).toBeGreaterThanOrEqual(9);
      expect(reopened).toBe(true);
      console.log(
        `fuzz-vm: ${sent} APDUs, ${signs} signs, ${pin.observations} PIN observations (${pin.resetsSeen} resets, ${reinstalls} reinstalls), ` +
          `counter ${counter}, ${powerCycles} power cycles; SWs: ` +
          NAMES.map((n) => `${n} ${[...sws.get(n)!.entries()].sort((a, b) => b[1] - a[1]).slice(0, 8).map(([s, c]) => `${s.toString(16)}×${c}`).join(' ')}`).join(' | '),
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
  // Found by this fuzz: DELETE left an instance's objects (and every INSTALL its bArray) on the heap, so after about
  // 250 reinstalls of the PIN applet INSTALL failed with SystemException.NO_TRANSIENT_SPACE.
  it('DELETE gives an instance\'s and a package\'s memory back; INSTALL keeps no bArray', async () => {
    const { chip, vm } = vmChip();
    chip.powerUp();
    const elf = hex(ASM_SAMPLES.pin.packageAid);
    // The JCRE's own objects (APDU buffer, exception objects) exist before the baseline is taken.
    await loadAndInstall(chip, hex(ASM_SAMPLES.echo.packageAid), sampleBlock('echo'), AID.echo);
    expect(tx(chip, hex(select(AID.echo))).sw).toBe(0x9000);
    expect(tx(chip, '00FF0000').sw).toBe(0x6d00);
    expect(tx(chip, hex(select(ISD))).sw).toBe(0x9000);
    const empty = vm.vm!.heap.usage();
    await loadAndInstall(chip, elf, sampleBlock('pin'), AID.pin);
    const installed = vm.vm!.heap.usage();
    expect(installed.objects).toBeGreaterThan(empty.objects);
    const sc = await secure(chip);
    for (let i = 0; i < 400; i++) {
      expect((await sc.send(apdu(0x80, 0xe4, 0x00, 0x00, '4F' + lv(AID.pin)))).sw).toBe(0x9000);
      expect((await gpInstall(sc, elf, AID.pin, AID.pin)).sw, `reinstall ${i}`).toBe(0x9000);
    }
    expect(vm.vm!.heap.usage()).toEqual(installed);
    // Deleting the package and its instance frees the static arrays too.
    expect((await sc.send(apdu(0x80, 0xe4, 0x00, 0x80, '4F' + lv(elf)))).sw).toBe(0x9000);
    expect(vm.vm!.heap.usage()).toEqual(empty);
    chip.close();
  });
});
