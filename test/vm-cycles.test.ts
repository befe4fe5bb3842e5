// The cycle model: meter arithmetic, the opcode price table, determinism, the report line, and the calibrated profile's
// predictions against JCAlgTest (a model check: predicted times are arithmetic, nothing here is timed).
import { describe, it, expect } from 'vitest';
import { createMeter, estimateUs, formatReport, opcodeCostTable, pagesTouched, resolveCryptoCost } from '../emulator/vm/cycles.ts';
import { OPCODES } from '../emulator/vm/opcodes.ts';
import { DEFAULT_CYCLE_PROFILE as P } from '../emulator/vm/profiles/jcop4.ts';
import { DEFAULT_PROFILE } from '../emulator/profile.ts';
import type { CycleProfile } from '../emulator/vm/types.ts';
import { benchCycles, JCALGTEST_J3R180, modelRunner, runBytecodes } from '../bench/cycles.ts';

describe('meter arithmetic', () => {
  it('adds each kind of charge with the profile prices and counts natives and NVM bytes', () => {
    const m = createMeter(P);
    m.charge(100);
    m.addOpcodeCycles(1000);
    m.bytecodes += 4;
    m.native();
    m.native();
    m.ramWrite(10);
    m.nvmWrite(70, 2);
    m.transactionLog(70);
    m.nvmCopySource(3);
    m.crypto('SHA-256/digest', 64);
    const r = m.report();
    const expected =
      100 + 1000 + 2 * P.nativeCallCycles + 10 * P.ramWriteByteCycles + 70 * P.nvmWriteByteCycles + 2 * P.nvmPageCycles +
      70 * P.transactionByteCycles + 3 * P.nvmCopySourceByteCycles! +
      P.crypto['SHA-256/digest'].fixed + 64 * P.crypto['SHA-256/digest'].perByte;
    expect(r).toEqual({
      bytecodes: 4,
      cycles: expected,
      nativeCalls: 2,
      persistentBytesWritten: 70,
      estimatedUs: (expected / P.clockHz) * 1e6,
      ioBytes: 0,
    });
  });

  it('adds transmission time only when I/O was charged: bytes at the T=1 rate plus the per-APDU overhead', () => {
    const m = createMeter(P);
    m.charge(32_000); // 1 ms at 32 MHz
    expect(m.report().estimatedUs).toBeCloseTo(1000, 9);
    m.io(5 + 255, 256 + 2);
    const r = m.report();
    expect(r.ioBytes).toBe(518);
    expect(r.estimatedUs).toBeCloseTo(1000 + (518 / P.ioBytesPerSecond) * 1e6 + P.ioApduOverheadUs, 9);
    m.io(5, 2);
    expect(m.report().estimatedUs).toBeCloseTo(1000 + (525 / P.ioBytesPerSecond) * 1e6 + 2 * P.ioApduOverheadUs, 9);
  });

  it('reset() zeroes every counter and report() returns a fresh object each time', () => {
    const m = createMeter(P);
    m.bytecodes = 7;
    m.native();
    m.nvmWrite(1, 1);
    m.io(4, 2);
    const a = m.report();
    m.reset();
    const b = m.report();
    expect(b).toEqual({ bytecodes: 0, cycles: 0, nativeCalls: 0, persistentBytesWritten: 0, estimatedUs: 0, ioBytes: 0 });
    expect(a).not.toBe(b);
    expect(a.bytecodes).toBe(7); // an earlier report is not changed by later charges
  });

  it('prices crypto keys from the table, scales absent RSA/EC/AES sizes, and falls back for unknown keys', () => {
    const at = (op: string, n: number) => {
      const m = createMeter(P);
      m.crypto(op, n);
      return m.report().cycles;
    };
    expect(at('AES-128/CBC', 32)).toBe(P.crypto['AES-128/CBC'].fixed + 32 * P.crypto['AES-128/CBC'].perByte);
    expect(at('RSA-1024-CRT/sign', 0)).toBe(Math.round(P.crypto['RSA-2048-CRT/sign'].fixed / 8)); // cubic
    expect(at('RSA-4096/public', 0)).toBe(Math.round(P.crypto['RSA-2048/public'].fixed * 4)); // quadratic
    expect(at('RSA-1024/sign', 0)).toBe(Math.round(P.crypto['RSA-2048/sign'].fixed / 8));
    expect(at('RSA-4096-CRT/keygen', 0)).toBe(Math.round(P.crypto['RSA-2048-CRT/keygen'].fixed * 2 ** 2.75));
    expect(at('EC-384/sign', 0)).toBe(Math.round(P.crypto['EC-256/sign'].fixed * 1.5)); // linear on this card
    expect(resolveCryptoCost(P, 'AES-192/CMAC').perByte).toBe(Math.round((P.crypto['AES-128/CMAC'].perByte * 12) / 10));
    expect(at('XYZ/frobnicate', 10)).toBe(P.crypto.fallback.fixed + 10 * P.crypto.fallback.perByte);
    expect(at('SHA-256/digest', -5)).toBe(P.crypto['SHA-256/digest'].fixed); // a negative length charges no bytes
  });

  it('resolves every operation key the API natives use without falling back', () => {
    const keys = [
      'RSA-2048-CRT/sign', 'RSA-2048/sign', 'RSA-2048/public', 'RSA-2048-CRT/keygen', 'RSA-2048/keygen',
      'RSA-1024-CRT/sign', 'RSA-3072/public', 'RSA-4096-CRT/keygen', 'RSA-1024/keygen',
      'EC-256/sign', 'EC-256/verify', 'EC-256/keygen', 'EC-256/ecdh', 'EC-384/ecdh',
      'SHA-1/digest', 'SHA-256/digest', 'SHA-384/digest', 'SHA-512/digest', 'SHA-256/update',
      'AES-128/CBC', 'AES-128/ECB', 'AES-256/CBC', 'AES-128/CMAC', 'DES3/CBC', 'RNG/generate', 'KEY/set',
    ];
    for (const k of keys) {
      const c = resolveCryptoCost(P, k);
      expect(c, k).not.toBe(P.crypto.fallback);
      expect(c.fixed + c.perByte, k).toBeGreaterThan(0);
    }
  });

  it('counts pages touched by a write range', () => {
    expect(pagesTouched(0, 256, 64)).toBe(4);
    expect(pagesTouched(1, 256, 64)).toBe(5);
    expect(pagesTouched(63, 2, 64)).toBe(2);
    expect(pagesTouched(10, 1, 64)).toBe(1);
    expect(pagesTouched(10, 0, 64)).toBe(0);
  });
});

describe('opcode price table', () => {
  const table = opcodeCostTable(P);

  it('gives every assigned opcode a positive price and unassigned codes none', () => {
    for (let code = 0; code < 256; code++) {
      const op = OPCODES[code];
      if (op) expect(table[code], op.mnemonic).toBeGreaterThan(0);
      else expect(table[code], code.toString(16)).toBe(0);
    }
  });

  it('prices by cost class, applies overrides, and folds frame set-up into the invoke opcodes', () => {
    const code = (m: string) => OPCODES.findIndex((o) => o?.mnemonic === m);
    expect(table[code('sload_0')]).toBe(P.opcodeCycles.load);
    expect(table[code('baload')]).toBe(P.opcodeCycles.array_load);
    expect(table[code('idiv')]).toBe(P.opcodeCycles.int_div);
    expect(table[code('invokevirtual')]).toBe(P.opcodeCycles.invoke + P.invokeCycles);
    expect(table[code('invokeinterface')]).toBe(P.opcodeOverrides!.invokeinterface + P.invokeCycles);
    expect(table[code('invokeinterface')]).toBeGreaterThan(table[code('invokevirtual')]);
    expect(table[code('new')]).toBeGreaterThan(table[code('sadd')]);
  });

  it('is built once per profile, and refuses a profile that leaves a cost class unpriced', () => {
    expect(opcodeCostTable(P)).toBe(table);
    const { switch: _dropped, ...rest } = P.opcodeCycles;
    const broken: CycleProfile = { ...P, opcodeCycles: rest };
    expect(() => opcodeCostTable(broken)).toThrow(/stableswitch \(switch\)/);
  });
});

describe('determinism', () => {
  it('gives identical reports for the same workload, run after run', () => {
    const once = () => JCALGTEST_J3R180.map((w) => modelRunner(w, P));
    expect(once()).toEqual(once());
  });

  it('gives the same count whether bytecodes are charged one by one or summed', () => {
    const seq = ['sload_1', 'bspush', 'sadd', 'sstore_1', 'getfield_a_this', 'invokevirtual', 'if_scmplt'];
    const a = createMeter(P);
    runBytecodes(a, seq);
    const b = createMeter(P);
    for (const s of seq) runBytecodes(b, [s]);
    expect(b.report()).toEqual(a.report());
    expect(a.report().bytecodes).toBe(seq.length);
  });
});

describe('formatReport', () => {
  it('prints counts grouped in thousands, NVM bytes, and the estimate split into execution and I/O', () => {
    const r = { bytecodes: 312, cycles: 48_210, nativeCalls: 0, persistentBytesWritten: 64, ioBytes: 10, estimatedUs: 0 };
    r.estimatedUs = estimateUs(P, r); // 1 506.6 µs exec + 10 B and one APDU of I/O
    expect(formatReport(r, P)).toBe('312 bytecodes, 48 210 cycles, 64 B NVM, est. 3.42 ms (exec 1.51 ms + I/O 1.91 ms)');
    expect(formatReport(r, null)).toBe('312 bytecodes, 48 210 cycles, 64 B NVM, est. 3.42 ms');
  });

  it('mentions native calls when there were some and prints long times in whole milliseconds', () => {
    const m = createMeter(P);
    m.bytecodes = 1_234_567;
    m.native();
    m.crypto('RSA-2048-CRT/keygen', 0);
    expect(formatReport(m.report())).toBe(
      `1 234 567 bytecodes, ${String(1299 + P.crypto['RSA-2048-CRT/keygen'].fixed).replace(/\B(?=(\d{3})+(?!\d))/g, ' ')} cycles, 1 native, 0 B NVM, est. 5 225 ms (exec 5 225 ms + I/O 0 ms)`,
    );
  });
});

describe('calibrated JCOP4 J3R180 profile', () => {
  it('predicts the five issue-3 target operations within ±20 % of JCAlgTest', () => {
    const rows = benchCycles().filter((r) => r.target);
    expect(rows.map((r) => r.name)).toEqual([
      'ALG_RSA_SHA_PKCS1 RSA-2048 CRT Signature_sign() 256 B',
      'ALG_RSA_CRT LENGTH_RSA_2048 KeyPair_genKeyPair()',
      'ALG_SHA_256 MessageDigest_doFinal() 256 B',
      'ALG_AES_BLOCK_128_CBC_NOPAD Cipher_doFinal() 256 B',
      'Util_arrayCopy_EEPROM() 256 B',
    ]);
    for (const r of rows) expect(Math.abs(r.errorPct), r.name).toBeLessThanOrEqual(20);
  });

  it('reproduces the SWAlgs_xor calibration: 148 bytecodes ≈ 9.8 µs each', () => {
    const xor = benchCycles().find((r) => r.name.startsWith('SWAlgs_xor'))!;
    expect(xor.report.bytecodes).toBe(148);
    expect(Math.abs(xor.errorPct)).toBeLessThan(1);
  });

  it('documents a derivation for every priced quantity and is the default chip profile\'s timing model', () => {
    for (const k of [
      'clockHz', 'opcodeCycles', 'invokeCycles', 'nativeCallCycles', 'nvmWriteByteCycles', 'nvmPageCycles', 'nvmPageBytes',
      'transactionByteCycles', 'ramWriteByteCycles', 'nvmCopySourceByteCycles', 'ioBytesPerSecond', 'ioApduOverheadUs',
    ]) expect(P.derivation[k]?.length ?? 0, k).toBeGreaterThan(20);
    expect(DEFAULT_PROFILE.cycles).toBe(P);
    expect(DEFAULT_PROFILE.commitCapacity).toBe(5120);
    expect(DEFAULT_PROFILE.nvmPageBytes).toBe(P.nvmPageBytes);
    expect(DEFAULT_PROFILE.maxFrameDepth).toBeGreaterThan(0);
    expect(DEFAULT_PROFILE.maxStackWords).toBeGreaterThan(DEFAULT_PROFILE.maxFrameDepth);
  });

  it('predicts a persistent write slower than the same RAM write and NVM→NVM slower than RAM→NVM', () => {
    const byName = new Map(benchCycles().map((r) => [r.name, r.predictedMs]));
    expect(byName.get('Util_arrayCopyNonAtomic_RAM2EEPROM() 256 B')!).toBeGreaterThan(10 * byName.get('Util_arrayCopyNonAtomic_RAM() 256 B')!);
    expect(byName.get('Util_arrayCopyNonAtomic_EEPROM() 256 B')!).toBeGreaterThan(byName.get('Util_arrayCopyNonAtomic_RAM2EEPROM() 256 B')!);
  });
});
