// Fuzz (issue 3): 10 000 seeded mutants of the four sample CAP files (byte flips, truncations, inserted and deleted
// bytes, bytes of the Method component, component size lies, swapped/dropped/duplicated components, components taken
// from another sample, lies in the C4 load file wrapper), each sent through GP INSTALL [for load] + LOAD under SCP03 —
// the card's real APDU path. A refused LOAD answers a GP/ISO error (6A80 for a malformed CAP) and changes nothing on
// the chip: not a single persistent write, the same registry, no linked unit. An accepted mutant is installed,
// selected on a logical channel and sent commands: only valid status words. It is then deleted, which must restore
// the registry. The host never throws and nothing logs an internal error (a JS exception caught at the card boundary).
//
// The VM runtime here has a bytecode budget of 1 M per command instead of the chip's 200 M, so that a mutant whose
// loop no longer ends answers 6F00 in milliseconds; everything else is the chip's default wiring.
import { describe, expect, it } from 'vitest';
import { concat, fromHex, hex } from '../emulator/bytes.ts';
import { isValidSw } from '../emulator/iso.ts';
import { encodeLength } from '../emulator/tlv.ts';
import { openChip } from '../emulator/card.ts';
import { openMemoryStore } from '../emulator/store.ts';
import { DEFAULT_PROFILE } from '../emulator/profile.ts';
import { createVmRuntime } from '../emulator/vm/runtime.ts';
import { ASM_SAMPLES, sampleBlock } from './fixtures/asm/samples.ts';
import type { SampleName } from './fixtures/asm/samples.ts';
import { prng } from './helpers/prng.ts';
import { ISD, secure, tx } from './helpers/chip.ts';
import type { Rsp } from './helpers/chip.ts';
import { apdu, gpInstall, lv } from './helpers/vm-chip.ts';

/** JPKI_FUZZ_SEED / JPKI_FUZZ_COUNT override the seed and size for exploratory runs; the defaults are what CI runs. */
const SEED = Number(process.env.JPKI_FUZZ_SEED ?? 0xcafe_0003);
const MUTANTS = Number(process.env.JPKI_FUZZ_COUNT ?? 10_000);
const NAMES: SampleName[] = ['echo', 'counter', 'pin', 'rsa'];
const WEIGHTS: SampleName[] = ['echo', 'echo', 'echo', 'counter', 'counter', 'pin', 'pin', 'pin', 'rsa', 'rsa'];
/** RSA mutants generate an RSA-2048 key at install (node:crypto, ~0.1–0.3 s): only this many get installed. */
const RSA_INSTALLS = 6;
/** Status words a refused LOAD may answer (GPCS 2.3.1 Table 11-60 and §11.1.3 general errors). */
const REFUSALS = new Set([0x6a80, 0x6a84, 0x6985, 0x6a88, 0x6581]);

/** A few commands each sample understands, sent (on channel 1) to an installed mutant. */
const COMMANDS: Record<SampleName, string[]> = {
  echo: [apdu(0, 0x01, 0, 0, '0102030405', 256), apdu(0, 0x02, 0, 0, '', 256), apdu(0, 0x7f, 0, 0, '')],
  counter: [apdu(0, 0x10, 0, 0, '', 2), apdu(0, 0x12, 0, 0, '', 2), apdu(0, 0x14, 0, 0, '', 2)],
  pin: [apdu(0, 0x20, 0, 0, '31323335'), apdu(0, 0x20, 0, 0, '31323334'), apdu(0, 0x22, 0, 0, '', 256), apdu(0, 0x24, 0, 0, '', 1)],
  rsa: [apdu(0, 0x30, 0, 0, '', 128), apdu(0, 0x30, 1, 0, '', 128), apdu(0, 0x32, 0, 0, '00112233', 256)],
};

type Rng = ReturnType<typeof prng>;

interface Component {
  tag: number;
  bytes: Uint8Array; // tag + size + info
}

/** The components of a Load File Data Block in order (tag u1, size u2, info; JCVM 3.0.5 §6.1). */
function components(block: Uint8Array): Component[] {
  const out: Component[] = [];
  for (let off = 0; off < block.length; ) {
    const size = (block[off + 1] << 8) | block[off + 2];
    out.push({ tag: block[off], bytes: block.subarray(off, off + 3 + size) });
    off += 3 + size;
  }
  return out;
}

const join = (cs: Component[]): Uint8Array => concat(...cs.map((c) => c.bytes));

/** One mutation of a block; `pristine` gives the other samples' components for swaps. Returns the kind's name too. */
function mutateBlock(r: Rng, block: Uint8Array, pristine: Record<SampleName, Component[]>): { block: Uint8Array; kind: string } {
  const cs = components(block);
  const k = r.int(13);
  const at = () => r.int(block.length);
  switch (k) {
    case 0: {
      const b = block.slice();
      for (let i = 1 + r.int(4); i > 0; i--) b[at()] = r.next() < 0.5 ? r.int(256) : b[at()] ^ (1 << r.int(8));
      return { block: b, kind: 'byte flips' };
    }
    case 1:
      return { block: block.slice(0, at()), kind: 'truncation' };
    case 2: {
      const p = at();
      return { block: concat(block.subarray(0, p), r.bytes(1 + r.int(8)), block.subarray(p)), kind: 'inserted bytes' };
    }
    case 3: {
      const p = at();
      return { block: concat(block.subarray(0, p), block.subarray(p + 1 + r.int(8))), kind: 'deleted bytes' };
    }
    case 4: {
      // Size lie: the component's size field changes, its info stays (the stream desynchronises or ends early).
      const i = r.int(cs.length);
      const c = cs[i].bytes.slice();
      const size = (c[1] << 8) | c[2];
      const lie = r.pick([size + 1, size - 1, size + 2 + r.int(16), Math.max(0, size - 2 - r.int(16)), 0, 0xffff, r.int(0x10000)]) & 0xffff;
      c[1] = lie >> 8;
      c[2] = lie & 0xff;
      cs[i] = { tag: cs[i].tag, bytes: c };
      return { block: join(cs), kind: 'size lie' };
    }
    case 5: {
      const i = r.int(cs.length);
      const j = r.int(cs.length);
      [cs[i], cs[j]] = [cs[j], cs[i]];
      return { block: join(cs), kind: 'swapped components' };
    }
    case 6:
      cs.splice(r.int(cs.length), 1);
      return { block: join(cs), kind: 'dropped component' };
    case 7: {
      const i = r.int(cs.length);
      cs.splice(r.int(cs.length + 1), 0, cs[i]);
      return { block: join(cs), kind: 'duplicated component' };
    }
    case 8: {
      // A component of the same type from another sample (consistent in itself, foreign to this package).
      const i = r.int(cs.length);
      const other = pristine[r.pick(NAMES)].find((c) => c.tag === cs[i].tag);
      if (other) cs[i] = other;
      return { block: join(cs), kind: 'foreign component' };
    }
    case 9:
    case 10: {
      // Inside one component's info: 1–3 bytes, or a u2 nudged (offsets, counts, indexes, tokens, branch targets).
      const i = r.int(cs.length);
      const c = cs[i].bytes.slice();
      if (c.length > 3) {
        if (k === 9) for (let n = 1 + r.int(3); n > 0; n--) c[3 + r.int(c.length - 3)] = r.int(256);
        else {
          const p = 3 + r.int(c.length - 3);
          const v = (((c[p] << 8) | (c[p + 1] ?? 0)) + r.pick([1, -1, 2, 0x100, -0x100, 0x8000])) & 0xffff;
          c[p] = v >> 8;
          if (p + 1 < c.length) c[p + 1] = v & 0xff;
        }
      }
      cs[i] = { tag: cs[i].tag, bytes: c };
      return { block: join(cs), kind: `inside component ${cs[i].tag}` };
    }
    case 11: {
      // Bytecode: 1–2 bytes of the Method component (tag 7) changed, so that code the verifier lets through runs oddly.
      const i = cs.findIndex((c) => c.tag === 7 && c.bytes.length > 3);
      if (i < 0) return { block: block.slice(0, -1), kind: 'truncation' }; // (after an earlier mutation: no Method left)
      const c = cs[i].bytes.slice();
      for (let n = 1 + r.int(2); n > 0; n--) c[3 + r.int(c.length - 3)] = r.next() < 0.5 ? r.int(256) : c[3 + r.int(c.length - 3)];
      cs[i] = { tag: 7, bytes: c };
      return { block: join(cs), kind: 'bytecode' };
    }
    default: {
      // Several of the above.
      let b = block;
      for (let n = 2 + r.int(3); n > 0; n--) {
        const m = mutateBlock(r, b, pristine);
        if (m.block.length >= 3) b = m.block;
      }
      return { block: b, kind: 'several' };
    }
  }
}

/** The Load File (GPCS Table 11-60): C4 around the block, sometimes with a lie in the wrapper or a DAP block before. */
function loadFile(r: Rng, block: Uint8Array): Uint8Array {
  const c4 = concat(Uint8Array.of(0xc4), encodeLength(block.length), block);
  const x = r.next();
  if (x < 0.9) return c4;
  if (x < 0.93) return concat(Uint8Array.of(0xc4), encodeLength(block.length + r.pick([1, -1, 100])), block);
  if (x < 0.95) return concat(fromHex('E20A4F05A000000151C301AA'), c4); // a DAP block (accepted, not verified)
  if (x < 0.97) return concat(c4, r.bytes(1 + r.int(4)));
  if (x < 0.99) return concat(Uint8Array.of(r.pick([0xd4, 0xc3, 0x00, 0xff])), encodeLength(block.length), block);
  return block; // no wrapper at all
}

describe('CAP LOAD fuzz', () => {
  it(`refuses or safely runs ${MUTANTS.toLocaleString('en')} mutated sample CAP files loaded through GP LOAD under SCP03`, { timeout: 180_000 }, async () => {
    const internal: string[] = [];
    let logLines = 0;
    const log = (m: string) => {
      logLines++;
      if (/internal error|TypeError|RangeError|ReferenceError/.test(m)) internal.push(m);
    };
    const store = openMemoryStore();
    const vm = createVmRuntime({ store, profile: DEFAULT_PROFILE, log, maxBytecodes: 1_000_000 });
    const chip = openChip({ store, vm: false, runtimes: [vm], log });
    chip.powerUp();
    let sc = await secure(chip);

    const pristineBlocks = Object.fromEntries(NAMES.map((n) => [n, sampleBlock(n)])) as Record<SampleName, Uint8Array>;
    const pristine = Object.fromEntries(NAMES.map((n) => [n, components(pristineBlocks[n])])) as Record<SampleName, Component[]>;
    for (const n of NAMES) expect(join(pristine[n])).toEqual(pristineBlocks[n]);

    const registry = () => JSON.stringify(chip.model());
    const baseline = registry();
    const r = prng(SEED);
    const refusedBy = new Map<number, number>();
    const kinds = new Map<string, { refused: number; accepted: number }>();
    const runSws = new Map<number, number>();
    let accepted = 0;
    let installed = 0;
    let installRefused = 0;
    let rsaInstalls = 0;
    let sanity = 0;

    /** INSTALL [for load] + LOAD blocks of up to 232 bytes (C-DEC padding and C-MAC keep them short); the first non-9000 answer or the last one. */
    const load = async (elf: string, file: Uint8Array): Promise<Rsp> => {
      const i = await sc.send(apdu(0x80, 0xe6, 0x02, 0x00, lv(elf) + '00000000', 256));
      expect(i.sw, `INSTALL [for load] ${elf}`).toBe(0x9000);
      let last = i;
      for (let off = 0, n = 0; off < file.length || n === 0; off += 232, n++) {
        last = await sc.send(apdu(0x80, 0xe8, off + 232 >= file.length ? 0x80 : 0x00, n, hex(file.subarray(off, off + 232)), 256));
        if (last.sw !== 0x9000) return last;
      }
      return last;
    };

    /** Installs the first module of a loaded file, talks to it on channel 1, deletes the load file with its instances. */
    const exercise = async (name: SampleName, elf: string): Promise<void> => {
      const entry = chip.model().registry.elfs.find((e) => e.aid === elf);
      expect(entry, `load file ${elf} after 9000`).toBeDefined();
      const mod = entry!.modules[0];
      const mayInstall = mod !== undefined && (name !== 'rsa' || rsaInstalls < RSA_INSTALLS);
      if (mayInstall) {
        if (name === 'rsa') rsaInstalls++;
        const ins = await gpInstall(sc, elf, mod, mod);
        expect(isValidSw(ins.sw)).toBe(true);
        if (ins.sw === 0x9000) {
          installed++;
          // The sample's commands, then a few with a random INS of that sample, P1-P2 and data (malformed code paths).
          const insCodes = [...new Set(COMMANDS[name].map((c) => parseInt(c.slice(2, 4), 16)))];
          const extra = Array.from({ length: 4 }, () => apdu(0x01, r.pick(insCodes), r.int(3), r.int(3), hex(r.bytes(r.int(12))), r.pick([0, 1, 2, 256])));
          const cmds = [apdu(0x00, 0x70, 0x00, 0x01, ''), apdu(0x01, 0xa4, 0x04, 0x00, mod), ...COMMANDS[name].map((c) => '01' + c.slice(2)), ...extra, '00708001'];
          for (const c of cmds) {
            const resp = chip.transmit(fromHex(c));
            expect(resp.length).toBeGreaterThanOrEqual(2);
            const s = (resp[resp.length - 2] << 8) | resp[resp.length - 1];
            if (!isValidSw(s)) throw new Error(`mutant ${name} answered ${hex(resp)} to ${c}`);
            runSws.set(s, (runSws.get(s) ?? 0) + 1);
          }
        } else installRefused++;
      }
      const del = await sc.send(apdu(0x80, 0xe4, 0x00, 0x80, '4F' + lv(elf)));
      expect(del.sw, `DELETE ${elf}`).toBe(0x9000);
      expect(registry()).toBe(baseline);
      expect(vm.unit(elf)).toBeUndefined();
    };

    for (let m = 0; m < MUTANTS; m++) {
      const name = r.pick(WEIGHTS);
      const elf = hex(ASM_SAMPLES[name].packageAid);
      let mutant = pristineBlocks[name];
      let kind = '';
      while (hex(mutant) === hex(pristineBlocks[name])) ({ block: mutant, kind } = mutateBlock(r, pristineBlocks[name], pristine));
      const file = loadFile(r, mutant);
      const writes = store.writeCount;
      const resp = await load(elf, file);
      const k = kinds.get(kind) ?? { refused: 0, accepted: 0 };
      kinds.set(kind, k);
      if (resp.sw !== 0x9000) {
        if (!REFUSALS.has(resp.sw)) throw new Error(`LOAD of a ${kind} mutant of ${name} answered ${resp.sw.toString(16)}`);
        refusedBy.set(resp.sw, (refusedBy.get(resp.sw) ?? 0) + 1);
        k.refused++;
        // Nothing changed: no persistent write, same registry, nothing linked under the load file AID.
        expect(store.writeCount, `writes after a refused ${kind} mutant`).toBe(writes);
        expect(registry()).toBe(baseline);
        expect(vm.unit(elf)).toBeUndefined();
      } else {
        accepted++;
        k.accepted++;
        await exercise(name, elf);
      }
      if (m % 1000 === 999) {
        // The refusals left the chip as good as new: every pristine sample still loads, installs and answers.
        const s = NAMES[sanity++ % NAMES.length];
        const e = hex(ASM_SAMPLES[s].packageAid);
        expect((await load(e, loadFile(prng(0), pristineBlocks[s]))).sw).toBe(0x9000);
        const a = hex(ASM_SAMPLES[s].appletAid);
        expect((await gpInstall(sc, e, a, a)).sw).toBe(0x9000);
        expect(tx(chip, '0070000001').sw).toBe(0x9000);
        expect(tx(chip, apdu(0x01, 0xa4, 0x04, 0x00, a)).sw).toBe(0x9000);
        expect(tx(chip, '01' + COMMANDS[s][s === 'pin' ? 3 : 0].slice(2)).sw).toBe(0x9000);
        expect(tx(chip, '00708001').sw).toBe(0x9000);
        expect((await sc.send(apdu(0x80, 0xe4, 0x00, 0x80, '4F' + lv(e)))).sw).toBe(0x9000);
        expect(registry()).toBe(baseline);
        // A power cycle and a fresh secure channel now and then.
        chip.powerUp();
        sc = await secure(chip);
      }
    }
    expect(internal).toEqual([]);
    expect(registry()).toBe(baseline);
    expect(tx(chip, '00A4040008' + ISD).sw).toBe(0x9000);
    chip.close();

    const refused = MUTANTS - accepted;
    // Most mutants are refused, nearly all with 6A80; some survive (mutations the CAP format cannot detect) and run.
    expect(refused).toBeGreaterThan(MUTANTS / 2);
    expect(refusedBy.get(0x6a80) ?? 0).toBeGreaterThan(refused * 0.95);
    expect(accepted).toBeGreaterThan(100);
    expect(installed).toBeGreaterThan(50);
    expect(runSws.get(0x9000) ?? 0).toBeGreaterThan(100);
    for (const kind of ['byte flips', 'truncation', 'inserted bytes', 'deleted bytes', 'size lie', 'swapped components', 'dropped component', 'duplicated component', 'foreign component'])
      expect(kinds.get(kind)?.refused ?? 0, kind).toBeGreaterThan(0);
    console.log(
      `fuzz-cap: ${MUTANTS} mutants, ${refused} refused (${[...refusedBy].map(([s, c]) => `${s.toString(16)}×${c}`).join(' ')}), ${accepted} accepted, ` +
        `${installed} installed (${installRefused} INSTALL refused), applet SWs ${[...runSws].sort((a, b) => b[1] - a[1]).map(([s, c]) => `${s.toString(16)}×${c}`).join(' ')}; ${logLines} log lines; by kind: ` +
        [...kinds].map(([kd, v]) => `${kd} ${v.refused}/${v.accepted}`).join(', '),
    );
  });
});
