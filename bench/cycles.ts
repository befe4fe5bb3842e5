// Predicted vs published timing (issue 3 §6): each JCAlgTest operation on the NXP JCOP4 J3R180, as the same workload
// (the loop body's bytecodes + what the API call charges), priced by a cycle profile. `tsx bench/cycles.ts` prints it.
// The runner is pluggable: the default prices a modelled workload; a runner that executes real bytecode on the VM and
// returns the meter's CycleReport for one operation can replace it (benchCycles(runner)).
import { pathToFileURL } from 'node:url';
import { createMeter, formatReport, opcodeCostTable, pagesTouched } from '../emulator/vm/cycles.ts';
import type { VmCycleMeter } from '../emulator/vm/cycles.ts';
import { BY_MNEMONIC } from '../emulator/vm/opcodes.ts';
import { DEFAULT_CYCLE_PROFILE } from '../emulator/vm/profiles/jcop4.ts';
import type { CycleProfile, CycleReport } from '../emulator/vm/types.ts';

/** One JCAlgTest measurement and the workload of one operation ("avg op", baseline-subtracted: no I/O). */
export interface CycleWorkload {
  /** JCAlgTest method name, e.g. "ALG_SHA_256 MessageDigest_doFinal()". */
  name: string;
  /** The statement JCAlgTest repeats (AlgPerformanceTest.java), for a runner that builds the real applet. */
  java: string;
  publishedMs: number;
  /** calibration: the figure a profile number was derived from; check: not used in the derivation. */
  role: 'calibration' | 'check';
  /** One of issue 3's ±20 % targets. */
  target: boolean;
  /** The loop body's bytecodes for one operation (call site + loop), by mnemonic. */
  bytecodes: readonly string[];
  /** What the API call charges through the meter (natives, crypto, heap writes). */
  charges(m: VmCycleMeter, p: CycleProfile): void;
}

export interface CycleBenchRow {
  name: string;
  publishedMs: number;
  predictedMs: number;
  /** (predicted − published) / published × 100. */
  errorPct: number;
  role: CycleWorkload['role'];
  target: boolean;
  report: CycleReport;
}

/** Produces the cycle report of exactly one operation of a workload. */
export type WorkloadRunner = (w: CycleWorkload, profile: CycleProfile) => CycleReport;

// Loop overhead per iteration (javac puts the test at the bottom): bound in a local, or in m_testSettings's field.
const LOOP_LOCAL = ['sinc', 'sload', 'sload', 'if_scmplt'];
const LOOP_FIELD = ['sinc', 'sload', 'getfield_a_this', 'getfield_s', 'if_scmplt'];
// engine.doFinal(m_ram1, (short) 0, len, m_ram2, (short) 0) and its result popped; same shape for sign().
const DOFINAL = ['getfield_a_this', 'getfield_a_this', 'sconst_0', 'sload', 'getfield_a_this', 'sconst_0', 'invokevirtual', 'pop'];
const VERIFY = ['getfield_a_this', 'getfield_a_this', 'sconst_0', 'sload', 'getfield_a_this', 'sconst_0', 'sload', 'invokevirtual', 'pop'];
const UPDATE = ['getfield_a_this', 'getfield_a_this', 'sconst_0', 'sload', 'invokevirtual']; // void update(in, off, len)
const GENKEY = ['getfield_a_this', 'invokevirtual'];
const SET_KEY = ['getfield_a_this', 'getfield_a_this', 'sconst_0', 'sload', 'invokeinterface'];
const INIT = ['getfield_a_this', 'sload', 'sconst_2', 'srem', 'ifne', 'getfield_a_this', 'goto', 'getfield_a_this', 'getfield_b', 'invokevirtual'];
const COPY = ['getfield_a_this', 'sconst_0', 'getfield_a_this', 'sload', 'sload', 'invokestatic', 'pop'];
const FILL = ['getfield_a_this', 'sconst_0', 'sload', 'bspush', 'invokestatic', 'pop'];
// m_ram1[(byte) i] ^= m_ram1[(byte) (i + 16)] for i = 0..15, unrolled (SWAlgs_xor).
const XOR = Array.from({ length: 16 }, (_, i) => [
  'getfield_a_this', i <= 5 ? `sconst_${i}` : 'bspush', 'dup2', 'baload', 'getfield_a_this', 'bspush', 'baload', 'sxor', 'bastore',
]).flat();

const B = 256; // JCAlgTest fixed data length

function digest(alg: string, method: 'doFinal' | 'update', ms: number, role: CycleWorkload['role'] = 'calibration', target = false): CycleWorkload {
  const key = alg.replace('ALG_SHA_', 'SHA-').replace(/^ALG_SHA$/, 'SHA-1');
  return {
    name: `${alg} MessageDigest_${method}() 256 B`,
    java: method === 'doFinal' ? 'm_digest.doFinal(m_ram1, (short) 0, chunkDataLen, m_ram2, (short) 0)' : 'm_digest.update(m_ram1, (short) 0, chunkDataLen)',
    publishedMs: ms,
    role,
    target,
    bytecodes: [...(method === 'doFinal' ? DOFINAL : UPDATE), ...LOOP_LOCAL],
    charges: (m) => {
      m.native();
      m.crypto(`${key}/${method === 'doFinal' ? 'digest' : 'update'}`, B);
    },
  };
}

function signature(label: string, ms: number, primitive: string, verify: boolean, role: CycleWorkload['role'], target = false): CycleWorkload {
  return {
    name: `${label} Signature_${verify ? 'verify' : 'sign'}() 256 B`,
    java: verify
      ? 'm_signatureVerify.verify(m_ram1, (short) 0, chunkDataLen, m_ram2, (short) 0, signLen)'
      : 'm_signatureSign.sign(m_ram1, (short) 0, chunkDataLen, m_ram2, (short) 0)',
    publishedMs: ms,
    role,
    target,
    bytecodes: [...(verify ? VERIFY : DOFINAL), ...LOOP_LOCAL],
    charges: (m) => {
      m.native();
      m.crypto('SHA-1/digest', B); // ALG_RSA_SHA_PKCS1 and ALG_ECDSA_SHA hash with SHA-1
      m.crypto(primitive, B);
    },
  };
}

function keygen(label: string, ms: number, key: string, role: CycleWorkload['role'], target = false): CycleWorkload {
  return {
    name: `${label} KeyPair_genKeyPair()`,
    java: 'm_keyPair1.genKeyPair()',
    publishedMs: ms,
    role,
    target,
    bytecodes: [...GENKEY, ...LOOP_FIELD],
    charges: (m) => {
      m.native();
      m.crypto(key, 0);
    },
  };
}

function cipher(label: string, ms: number, key: string, role: CycleWorkload['role'], target = false): CycleWorkload {
  return {
    name: `${label} Cipher_doFinal() 256 B`,
    java: 'm_cipher.doFinal(m_ram1, (short) 0, chunkDataLen, m_ram2, (short) 0)',
    publishedMs: ms,
    role,
    target,
    bytecodes: [...DOFINAL, ...LOOP_LOCAL],
    charges: (m) => {
      m.native();
      m.crypto(key, B);
    },
  };
}

type Mem = 'RAM' | 'EEPROM';

/** Util.arrayCopy[NonAtomic] of 256 B; persistent destinations are written over the pages the range touches. */
function utilCopy(src: Mem, dst: Mem, atomic: boolean, ms: number, role: CycleWorkload['role'], target = false): CycleWorkload {
  const same = src === dst;
  const dstOff = same ? B : 0; // JCAlgTest copies [0, 256) to [256, 512) within one array, or to offset 0 of the other
  return {
    name: `Util_arrayCopy${atomic ? '' : 'NonAtomic'}_${same ? src : `${src}2${dst}`}() 256 B`,
    java: `Util.arrayCopy${atomic ? '' : 'NonAtomic'}(${src === 'RAM' ? 'm_ram1' : 'm_eeprom1'}, (short) 0, ${dst === 'RAM' ? 'm_ram1' : 'm_eeprom1'}, ${same ? 'chunkDataLen' : '(short) 0'}, chunkDataLen)`,
    publishedMs: ms,
    role,
    target,
    bytecodes: [...COPY, ...LOOP_FIELD],
    charges: (m, p) => {
      m.native();
      if (dst === 'RAM') {
        m.ramWrite(B);
        return;
      }
      m.nvmWrite(B, pagesTouched(dstOff, B, p.nvmPageBytes));
      if (src === 'EEPROM') m.nvmCopySource(B);
      if (atomic) m.transactionLog(B); // Util.arrayCopy is atomic: the destination is backed up first (JCAPI Util)
    },
  };
}

function utilFill(dst: Mem, ms: number, role: CycleWorkload['role']): CycleWorkload {
  return {
    name: `Util_arrayFillNonAtomic_${dst}() 256 B`,
    java: `Util.arrayFillNonAtomic(${dst === 'RAM' ? 'm_ram1' : 'm_eeprom1'}, (short) 0, chunkDataLen, (byte) 0x55)`,
    publishedMs: ms,
    role,
    target: false,
    bytecodes: [...FILL, ...LOOP_FIELD],
    charges: (m, p) => {
      m.native();
      if (dst === 'RAM') m.ramWrite(B);
      else m.nvmWrite(B, pagesTouched(0, B, p.nvmPageBytes));
    },
  };
}

function setKey(bits: number, ms: number, role: CycleWorkload['role']): CycleWorkload {
  const len = bits / 16; // a CRT component (p) is half the modulus
  return {
    name: `TYPE_RSA_PRIVATE_CRT LENGTH_RSA_${bits} setP() (${len} B)`,
    java: 'm_rsaprivatecrt_key.setP(m_ram1, (short) 0, len)',
    publishedMs: ms,
    role,
    target: false,
    bytecodes: [...SET_KEY, ...LOOP_FIELD],
    charges: (m) => {
      m.native();
      m.crypto('KEY/set', len);
    },
  };
}

/** JCAlgTest 1.8.0, NXP JCOP4 J3R180 SECID P71 (2021-10), ms per operation (javacard.md §4.2 and the CSV it cites). */
export const JCALGTEST_J3R180: readonly CycleWorkload[] = [
  signature('ALG_RSA_SHA_PKCS1 RSA-2048 CRT', 60.68, 'RSA-2048-CRT/sign', false, 'calibration', true),
  signature('ALG_RSA_SHA_PKCS1 RSA-2048', 155.32, 'RSA-2048/sign', false, 'calibration'),
  signature('ALG_RSA_SHA_PKCS1 RSA-2048', 11.02, 'RSA-2048/public', true, 'calibration'),
  { ...cipher('ALG_RSA_PKCS1 RSA-2048 CRT private', 53.51, 'RSA-2048-CRT/sign', 'check'), name: 'ALG_RSA_PKCS1 RSA-2048 CRT decrypt Cipher_doFinal()' },
  keygen('ALG_RSA_CRT LENGTH_RSA_2048', 5224.7, 'RSA-2048-CRT/keygen', 'calibration', true),
  keygen('ALG_RSA_CRT LENGTH_RSA_1024', 763.8, 'RSA-1024-CRT/keygen', 'check'),
  keygen('ALG_RSA_CRT LENGTH_RSA_3072', 13003.4, 'RSA-3072-CRT/keygen', 'check'),
  keygen('ALG_RSA_CRT LENGTH_RSA_4096', 37686.7, 'RSA-4096-CRT/keygen', 'check'),
  keygen('ALG_RSA LENGTH_RSA_2048', 4921.05, 'RSA-2048/keygen', 'calibration'),
  keygen('ALG_RSA LENGTH_RSA_1024', 561.2, 'RSA-1024/keygen', 'check'),
  keygen('ALG_RSA LENGTH_RSA_4096', 55901.1, 'RSA-4096/keygen', 'check'),
  signature('ALG_ECDSA_SHA P-256', 31.96, 'EC-256/sign', false, 'calibration'),
  signature('ALG_ECDSA_SHA P-256', 30.22, 'EC-256/verify', true, 'calibration'),
  signature('ALG_ECDSA_SHA P-384', 45.33, 'EC-384/sign', false, 'check'),
  signature('ALG_ECDSA_SHA P-384', 47.58, 'EC-384/verify', true, 'check'),
  keygen('ALG_EC_FP LENGTH_EC_FP_256', 26.8, 'EC-256/keygen', 'calibration'),
  keygen('ALG_EC_FP LENGTH_EC_FP_384', 38.75, 'EC-384/keygen', 'check'),
  {
    name: 'ALG_EC_SVDP_DH P-256 KeyAgreement_generateSecret()',
    java: 'm_keyAgreement.generateSecret(m_ram1, (short) 0, wLen, m_ram2, (short) 0)',
    publishedMs: 20.04,
    role: 'calibration',
    target: false,
    bytecodes: [...DOFINAL, ...LOOP_FIELD],
    charges: (m) => {
      m.native();
      m.crypto('EC-256/ecdh', 65);
    },
  },
  {
    name: 'ALG_EC_SVDP_DH P-384 KeyAgreement_generateSecret()',
    java: 'm_keyAgreement.generateSecret(m_ram1, (short) 0, wLen, m_ram2, (short) 0)',
    publishedMs: 30.58,
    role: 'check',
    target: false,
    bytecodes: [...DOFINAL, ...LOOP_FIELD],
    charges: (m) => {
      m.native();
      m.crypto('EC-384/ecdh', 97);
    },
  },
  digest('ALG_SHA_256', 'doFinal', 7.92, 'calibration', true),
  digest('ALG_SHA_256', 'update', 6.25),
  digest('ALG_SHA_224', 'doFinal', 7.93, 'check'),
  digest('ALG_SHA', 'doFinal', 5.34),
  digest('ALG_SHA', 'update', 4.11),
  digest('ALG_SHA_384', 'doFinal', 8.84),
  digest('ALG_SHA_512', 'doFinal', 8.85),
  cipher('ALG_AES_BLOCK_128_CBC_NOPAD', 1.86, 'AES-128/CBC', 'calibration', true),
  cipher('ALG_DES_CBC_NOPAD 3DES-2KEY', 1.91, 'DES3/CBC', 'calibration'),
  {
    name: 'ALG_SECURE_RANDOM RandomData_generateData() 256 B',
    java: 'm_random.generateData(m_ram1, (short) 0, chunkDataLen)',
    publishedMs: 1.18,
    role: 'calibration',
    target: false,
    bytecodes: [...UPDATE, ...LOOP_LOCAL],
    charges: (m) => {
      m.native();
      m.crypto('RNG/generate', B);
    },
  },
  {
    name: 'ALG_AES_BLOCK_128_CBC_NOPAD Cipher_init()',
    java: 'm_cipher.init((i % 2 == 0) ? m_key1 : m_key2, (byte) m_testSettings.initMode)',
    publishedMs: 6.09,
    role: 'calibration',
    target: false,
    bytecodes: [...INIT, ...LOOP_FIELD],
    charges: (m) => {
      m.native();
      m.crypto('CIPHER/init', 0);
    },
  },
  setKey(1024, 6.18, 'calibration'),
  setKey(1280, 6.29, 'check'),
  setKey(1536, 6.41, 'calibration'),
  utilCopy('RAM', 'RAM', true, 0.18, 'calibration'),
  utilCopy('RAM', 'RAM', false, 0.17, 'check'),
  utilCopy('EEPROM', 'RAM', true, 0.17, 'check'),
  utilFill('RAM', 0.15, 'check'),
  utilCopy('RAM', 'EEPROM', false, 2.81, 'calibration'),
  utilCopy('RAM', 'EEPROM', true, 2.86, 'calibration'),
  utilCopy('EEPROM', 'EEPROM', true, 5.34, 'check', true),
  utilCopy('EEPROM', 'EEPROM', false, 5.32, 'calibration'),
  utilFill('EEPROM', 2.74, 'check'),
  {
    name: 'SWAlgs_xor() (16 unrolled byte XORs, 148 bytecodes)',
    java: 'm_ram1[(byte) 0] ^= m_ram1[(byte) 16]; … m_ram1[(byte) 15] ^= m_ram1[(byte) 31];',
    publishedMs: 1.45,
    role: 'calibration',
    target: false,
    bytecodes: [...XOR, ...LOOP_LOCAL],
    charges: (m) => {
      for (let i = 0; i < 16; i++) m.ramWrite(1); // each bastore writes one byte of a transient array
    },
  },
];

/** Counts and prices bytecodes by mnemonic the way the interpreter does (meter.bytecodes += n; addOpcodeCycles(sum)). */
export function runBytecodes(meter: VmCycleMeter, mnemonics: readonly string[]): void {
  const table = opcodeCostTable(meter.profile);
  let sum = 0;
  for (const m of mnemonics) {
    const op = BY_MNEMONIC.get(m);
    if (!op) throw new Error(`unknown mnemonic ${m}`);
    sum += table[op.code];
  }
  meter.bytecodes += mnemonics.length;
  meter.addOpcodeCycles(sum);
}

/** The default runner: one operation of the modelled workload through a fresh meter. */
export const modelRunner: WorkloadRunner = (w, profile) => {
  const meter = createMeter(profile);
  runBytecodes(meter, w.bytecodes);
  w.charges(meter, profile);
  return meter.report();
};

export function benchCycles(
  runner: WorkloadRunner = modelRunner,
  profile: CycleProfile = DEFAULT_CYCLE_PROFILE,
  workloads: readonly CycleWorkload[] = JCALGTEST_J3R180,
): CycleBenchRow[] {
  return workloads.map((w) => {
    const report = runner(w, profile);
    const predictedMs = report.estimatedUs / 1000;
    return {
      name: w.name,
      publishedMs: w.publishedMs,
      predictedMs,
      errorPct: ((predictedMs - w.publishedMs) / w.publishedMs) * 100,
      role: w.role,
      target: w.target,
      report,
    };
  });
}

/** The predicted-vs-published table as Markdown (for BENCHMARKS.md). */
export function formatCycleTable(rows: readonly CycleBenchRow[], profile: CycleProfile = DEFAULT_CYCLE_PROFILE): string {
  const fmt = (v: number) => (v >= 100 ? v.toFixed(0) : v >= 10 ? v.toFixed(1) : v.toFixed(2));
  const lines = [
    `Cycle profile ${profile.name} (${profile.clockHz / 1e6} MHz nominal) vs JCAlgTest, NXP JCOP4 J3R180, ms per operation:`,
    '',
    '| operation (JCAlgTest) | published | predicted | error | bytecodes | cycles | role |',
    '|---|---:|---:|---:|---:|---:|---|',
  ];
  for (const r of rows) {
    const err = `${r.errorPct >= 0 ? '+' : ''}${r.errorPct.toFixed(1)} %`;
    const role = r.role + (r.target ? ' · target ±20 %' : '');
    lines.push(`| ${r.name} | ${fmt(r.publishedMs)} | ${fmt(r.predictedMs)} | ${err} | ${r.report.bytecodes} | ${r.report.cycles.toLocaleString('en')} | ${role} |`);
  }
  return lines.join('\n');
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const rows = benchCycles();
  console.log(formatCycleTable(rows));
  const xor = rows[rows.length - 1];
  console.log(`\nSWAlgs_xor as a trace line: ${formatReport(xor.report)}`);
}
