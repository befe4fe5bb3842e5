// The cycle meter every part of the VM charges (issue 3 §6): plain-number counters, no clocks, no randomness, so the
// same chip state and APDUs give the same counts. Charge paths never allocate; report() does. docs/cycle-model.md.
import { OPCODES } from './opcodes.ts';
import type { CycleMeter, CycleProfile, CycleReport } from './types.ts';
import { DEFAULT_CYCLE_PROFILE } from './profiles/jcop4.ts';

/** The meter the VM uses: the CycleMeter contract plus the interpreter's and the runtime's counters. */
export interface VmCycleMeter extends CycleMeter {
  /** Bytecodes executed; the interpreter increments it directly (meter.bytecodes += n). */
  bytecodes: number;
  /** Adds the summed opcodeCostTable() cycles of the bytecodes the interpreter counted. */
  addOpcodeCycles(sum: number): void;
  /** Charges one APDU exchange on the contact interface: command bytes in, response bytes out (data + SW). */
  io(commandBytes: number, responseBytes: number): void;
  /** Extra cost of a copy whose source and destination are both persistent (profile.nvmCopySourceByteCycles). */
  nvmCopySource(bytes: number): void;
  /** Transaction/backup logging of `bytes` persistent bytes (inside a transaction or an atomic Util.arrayCopy). */
  transactionLog(bytes: number): void;
}

interface CryptoCost {
  fixed: number;
  perByte: number;
}

/** Reference sizes and size exponents for keys absent from the profile (documented in the profile's derivation). */
const RSA_EXPONENT: Record<string, number> = { sign: 3, public: 2, keygen: 3.25, 'CRT/sign': 3, 'CRT/keygen': 2.75 };
const EC_EXPONENT = 1;
const AES_ROUNDS: Record<string, number> = { '128': 10, '192': 12, '256': 14 };

/**
 * Resolves an operation key to its cost: the profile's entry, else one scaled from a reference size (RSA from 2048,
 * EC from 256, AES from 128 by rounds), else the profile's "fallback" entry, else a native call's cost.
 */
export function resolveCryptoCost(profile: CycleProfile, op: string): CryptoCost {
  const direct = profile.crypto[op];
  if (direct) return direct;
  const rsa = /^RSA-(\d+)(-CRT)?\/(sign|public|keygen)$/.exec(op);
  if (rsa) {
    const kind = rsa[3] === 'public' ? 'public' : (rsa[2] ? 'CRT/' : '') + rsa[3];
    const refKey = `RSA-2048${rsa[2] && rsa[3] !== 'public' ? '-CRT' : ''}/${rsa[3]}`;
    const ref = profile.crypto[refKey];
    if (ref) return scaled(ref, (Number(rsa[1]) / 2048) ** RSA_EXPONENT[kind]);
  }
  const ec = /^EC-(\d+)\/(\w+)$/.exec(op);
  if (ec) {
    const ref = profile.crypto[`EC-256/${ec[2]}`];
    if (ref) return scaled(ref, (Number(ec[1]) / 256) ** EC_EXPONENT);
  }
  const aes = /^AES-(128|192|256)\/(\w+)$/.exec(op);
  if (aes) {
    const ref = profile.crypto[`AES-128/${aes[2]}`];
    if (ref) return { fixed: ref.fixed, perByte: Math.round((ref.perByte * AES_ROUNDS[aes[1]]) / 10) };
  }
  return profile.crypto.fallback ?? { fixed: profile.nativeCallCycles, perByte: 0 };
}

function scaled(c: CryptoCost, factor: number): CryptoCost {
  return { fixed: Math.round(c.fixed * factor), perByte: Math.round(c.perByte * factor) };
}

const TABLES = new WeakMap<CycleProfile, Float64Array>();

/**
 * Cycles per opcode (index = opcode byte): the cost class price, or the per-mnemonic override; invoke opcodes also
 * include profile.invokeCycles (frame set-up), so the interpreter charges nothing else per call. Unassigned = 0.
 * The table is built once per profile object and shared; do not mutate it.
 */
export function opcodeCostTable(profile: CycleProfile): Float64Array {
  const cached = TABLES.get(profile);
  if (cached) return cached;
  const t = new Float64Array(256);
  for (const op of OPCODES) {
    if (!op) continue;
    const base = profile.opcodeOverrides?.[op.mnemonic] ?? profile.opcodeCycles[op.cost];
    if (base === undefined || !(base > 0)) throw new Error(`cycle profile "${profile.name}" has no price for ${op.mnemonic} (${op.cost})`);
    t[op.code] = base + (op.cost === 'invoke' ? profile.invokeCycles : 0);
  }
  TABLES.set(profile, t);
  return t;
}

/** What an estimate needs: cycles, I/O bytes and APDU count (default: one APDU when any I/O was charged). */
export interface EstimateInput {
  cycles: number;
  ioBytes: number;
  apdus?: number;
}

/** Execution time on the chip in µs: cycles / clock. */
export function execUs(profile: CycleProfile, cycles: number): number {
  return (cycles / profile.clockHz) * 1e6;
}

/** Transmission time in µs: bytes at the profile's T=1 rate plus the per-APDU framing overhead. */
export function ioUs(profile: CycleProfile, ioBytes: number, apdus: number): number {
  return (ioBytes / profile.ioBytesPerSecond) * 1e6 + apdus * profile.ioApduOverheadUs;
}

/** Estimated time on the chip (µs): execution plus transmission. */
export function estimateUs(profile: CycleProfile, r: EstimateInput): number {
  const apdus = r.apdus ?? (r.ioBytes > 0 ? 1 : 0);
  return execUs(profile, r.cycles) + ioUs(profile, r.ioBytes, apdus);
}

export function createMeter(profile: CycleProfile): VmCycleMeter {
  const costs = new Map<string, CryptoCost>(); // resolved keys: the charge path allocates only on a key's first use
  const byteNvm = profile.nvmWriteByteCycles;
  const pageNvm = profile.nvmPageCycles;
  const byteRam = profile.ramWriteByteCycles;
  const byteTx = profile.transactionByteCycles;
  const byteSrc = profile.nvmCopySourceByteCycles ?? 0;
  const nativeCost = profile.nativeCallCycles;
  let cycles = 0;
  let nativeCalls = 0;
  let nvmBytes = 0;
  let ioBytes = 0;
  let apdus = 0;

  const meter: VmCycleMeter = {
    profile,
    bytecodes: 0,
    addOpcodeCycles(sum: number): void {
      cycles += sum;
    },
    charge(c: number): void {
      cycles += c;
    },
    crypto(op: string, bytes: number): void {
      let c = costs.get(op);
      if (c === undefined) {
        c = resolveCryptoCost(profile, op);
        costs.set(op, c);
      }
      cycles += c.fixed + c.perByte * (bytes > 0 ? bytes : 0);
    },
    nvmWrite(bytes: number, pages: number): void {
      cycles += bytes * byteNvm + pages * pageNvm;
      nvmBytes += bytes;
    },
    ramWrite(bytes: number): void {
      cycles += bytes * byteRam;
    },
    native(): void {
      nativeCalls++;
      cycles += nativeCost;
    },
    nvmCopySource(bytes: number): void {
      cycles += bytes * byteSrc;
    },
    transactionLog(bytes: number): void {
      cycles += bytes * byteTx;
    },
    io(commandBytes: number, responseBytes: number): void {
      ioBytes += commandBytes + responseBytes;
      apdus++;
    },
    report(): CycleReport {
      return {
        bytecodes: meter.bytecodes,
        cycles,
        nativeCalls,
        persistentBytesWritten: nvmBytes,
        estimatedUs: estimateUs(profile, { cycles, ioBytes, apdus }),
        ioBytes,
      };
    },
    reset(): void {
      meter.bytecodes = 0;
      cycles = 0;
      nativeCalls = 0;
      nvmBytes = 0;
      ioBytes = 0;
      apdus = 0;
    },
  };
  return meter;
}

/** Pages of `pageBytes` touched by writing [offset, offset + length) — what the heap passes to nvmWrite(). */
export function pagesTouched(offset: number, length: number, pageBytes: number): number {
  if (length <= 0) return 0;
  return Math.floor((offset + length - 1) / pageBytes) - Math.floor(offset / pageBytes) + 1;
}

/** "312 bytecodes, 48 210 cycles, 64 B NVM, est. 4.02 ms (exec 3.1 ms + I/O 0.9 ms)"; the profile's clock splits exec/I/O. */
export function formatReport(r: CycleReport, profile: CycleProfile | null = DEFAULT_CYCLE_PROFILE): string {
  const parts = [`${group(r.bytecodes)} bytecodes`, `${group(r.cycles)} cycles`];
  if (r.nativeCalls > 0) parts.push(`${group(r.nativeCalls)} native`);
  parts.push(`${group(r.persistentBytesWritten)} B NVM`);
  let est = `est. ${ms(r.estimatedUs)}`;
  if (profile) {
    const exec = execUs(profile, r.cycles);
    est += ` (exec ${ms(exec)} + I/O ${ms(Math.max(0, r.estimatedUs - exec))})`;
  }
  return `${parts.join(', ')}, ${est}`;
}

/** Thousands grouped by spaces (SI style): 48 210. */
function group(n: number): string {
  const s = String(Math.round(n));
  return s.replace(/\B(?=(\d{3})+(?!\d))/g, ' ');
}

/** Milliseconds with three significant digits (0.0123 ms, 4.02 ms, 61.2 ms, 5 225 ms). */
function ms(us: number): string {
  const v = us / 1000;
  if (v === 0) return '0 ms';
  if (v >= 1000) return `${group(v)} ms`;
  return `${Number(v.toPrecision(3))} ms`;
}
