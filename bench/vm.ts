// Java Card VM benchmarks (issue 3): interpreter speed on real bytecode run through the chip (simple loop, call-heavy
// loop), APDUs/s of the echo sample in-process, RSA-2048 sign of the rsa sample, and the predicted-vs-published cycle
// table with the SWAlgs_xor row measured on the VM. bench/run.ts prints these rows; `tsx bench/vm.ts` prints them alone.
import { pathToFileURL } from 'node:url';
import { concat, fromHex, hex } from '../emulator/bytes.ts';
import { encodeCommand } from '../emulator/apdu.ts';
import { encodeLength } from '../emulator/tlv.ts';
import { openChip } from '../emulator/card.ts';
import type { Chip } from '../emulator/card.ts';
import { openSecureChannel } from '../emulator/scp03.ts';
import { assemble } from '../emulator/vm/cap/asm.ts';
import { writeLoadFileDataBlock } from '../emulator/vm/cap/write.ts';
import type { VmRuntime } from '../emulator/vm/runtime.ts';
import type { CycleProfile, CycleReport } from '../emulator/vm/types.ts';
import { execUs, formatReport } from '../emulator/vm/cycles.ts';
import { DEFAULT_CYCLE_PROFILE } from '../emulator/vm/profiles/jcop4.ts';
import { ASM_SAMPLES, sampleBlock } from '../test/fixtures/asm/samples.ts';
import type { SampleName } from '../test/fixtures/asm/samples.ts';
import { benchCycles, formatCycleTable, modelRunner } from './cycles.ts';
import type { CycleBenchRow, WorkloadRunner } from './cycles.ts';

const KEY = fromHex('404142434445464748494A4B4C4D4E4F');
const BENCH_PACKAGE = 'F0000001B001';
const BENCH_APPLET = 'F0000001B00101';
const INNER = 10_000;
/** Bytecodes per call-loop iteration (two calls). */
const CALL_LOOP_BYTECODES = 19;

/** XOR body of JCAlgTest SWAlgs_xor: m_ram1[(byte) i] ^= m_ram1[(byte) (i + 16)] for i = 0..15, unrolled. */
const XOR_BODY = Array.from({ length: 16 }, (_, i) =>
  [`getfield_a_this ram`, i <= 5 ? `sconst_${i}` : `bspush ${i}`, 'dup2', 'baload', 'getfield_a_this ram', `bspush ${16 + i}`, 'baload', 'sxor', 'bastore']
    .map((s) => `    ${s}`)
    .join('\n'),
).join('\n');

/**
 * The bench applet. P1 = outer iterations (0..127). INS 01: simple loop, 11 bytecodes per inner iteration
 * (sload sload sadd sstore sload sconst_1 sadd sstore sload sspush if_scmplt), 10 000 inner iterations per outer one.
 * INS 02: call-heavy loop, an invokestatic and an invokevirtual per inner iteration (19 bytecodes, 8 of them in the
 * callees). INS 03: P1 iterations of SWAlgs_xor on a CLEAR_ON_DESELECT byte array, loop [sinc sload sload if_scmplt_w].
 * Each answers the short accumulator (INS 01: Σ inner index, INS 02: +3 per iteration), which the bench checks.
 */
export const BENCH_SOURCE = `
.package com.jpkise.bench ${BENCH_PACKAGE} 1.0
.import javacard/framework
.applet ${BENCH_APPLET} Bench

.class public Bench extends Applet
  .field private ram [B

  .method protected <init>()V
    .stack 2
    aload_0
    invokespecial Applet.<init>()V
    bspush 32
    sconst_2
    invokestatic JCSystem.makeTransientByteArray(SB)[B
    putfield_a_this ram
    return
  .end method

  .method public static install([BSB)V
    .stack 2
    new Bench
    dup
    invokespecial Bench.<init>()V
    invokevirtual Applet.register()V
    return
  .end method

  .method public static inc(S)S
    .stack 2
    sload_0
    sconst_1
    sadd
    sreturn
  .end method

  .method public twice(S)S
    .stack 2
    sload_1
    sconst_2
    sadd
    sreturn
  .end method

  .method public process(Ljavacard/framework/APDU;)V
    .stack 8
    .locals 5
    aload_0
    invokevirtual Applet.selectingApplet()Z
    ifeq dispatch
    return
  dispatch:
    aload_1
    invokevirtual APDU.getBuffer()[B
    astore_2
    aload_2
    sconst_2
    baload
    sstore_3
    sconst_0
    sstore 6
    sconst_0
    sstore 4
    aload_2
    sconst_1
    baload
    slookupswitch unknown 0x01:s_otest 0x02:c_otest 0x03:x_test
  s_outer:
    sconst_0
    sstore 5
  s_inner:
    sload 6
    sload 5
    sadd
    sstore 6
    sload 5
    sconst_1
    sadd
    sstore 5
    sload 5
    sspush ${INNER}
    if_scmplt s_inner
    sinc 4 1
  s_otest:
    sload 4
    sload_3
    if_scmplt s_outer
    goto_w done
  c_outer:
    sconst_0
    sstore 5
  c_inner:
    sload 6
    invokestatic Bench.inc(S)S
    sstore 6
    aload_0
    sload 6
    invokevirtual Bench.twice(S)S
    sstore 6
    sinc 5 1
    sload 5
    sspush ${INNER}
    if_scmplt c_inner
    sinc 4 1
  c_otest:
    sload 4
    sload_3
    if_scmplt c_outer
    goto_w done
  x_body:
${XOR_BODY}
    sinc 4 1
  x_test:
    sload 4
    sload 3
    if_scmplt_w x_body
  done:
    aload_2
    sconst_0
    sload 6
    invokestatic Util.setShort([BSS)S
    pop
    aload_1
    sconst_0
    sconst_2
    invokevirtual APDU.setOutgoingAndSend(SS)V
    return
  unknown:
    sspush ISO7816.SW_INS_NOT_SUPPORTED
    invokestatic ISOException.throwIt(S)V
    return
  .end method
.end class
`;

export interface VmBenchChip {
  chip: Chip;
  vm: VmRuntime;
  /** Sends a command; throws unless the status word is 9000. */
  send(apdu: Uint8Array): Uint8Array;
  close(): void;
}

const apdu = (cla: number, ins: number, p1: number, p2: number, data: Uint8Array = new Uint8Array(0), ne = 0): Uint8Array =>
  encodeCommand({ cla, ins, p1, p2, data, ne });

function lv(b: Uint8Array): Uint8Array {
  return concat(Uint8Array.of(b.length), b);
}

/** GP INSTALL [for load], LOAD in 200-byte blocks and INSTALL [for install and make selectable] under SCP03. */
async function installCap(chip: Chip, block: Uint8Array, elf: Uint8Array, app: Uint8Array): Promise<void> {
  const sc = await openSecureChannel(async (a) => chip.transmit(a), { keys: { enc: KEY, mac: KEY, dek: KEY }, level: 0x03 });
  const check = async (cmd: Uint8Array, what: string) => {
    const r = await sc.transmit(cmd);
    const sw = (r[r.length - 2] << 8) | r[r.length - 1];
    if (sw !== 0x9000) throw new Error(`${what} ${hex(elf)}: ${sw.toString(16)}`);
  };
  const none = Uint8Array.of(0);
  await check(apdu(0x80, 0xe6, 0x02, 0x00, concat(lv(elf), none, none, none, none), 256), 'INSTALL [for load]');
  const file = concat(Uint8Array.of(0xc4), encodeLength(block.length), block);
  for (let i = 0, n = 0; i < file.length; i += 200, n++)
    await check(apdu(0x80, 0xe8, i + 200 >= file.length ? 0x80 : 0x00, n, file.subarray(i, i + 200), 256), 'LOAD');
  const params = fromHex('C900');
  await check(apdu(0x80, 0xe6, 0x0c, 0x00, concat(lv(elf), lv(app), lv(app), lv(none), lv(params), none), 256), 'INSTALL [for install]');
}

/** An in-memory chip with the bench applet and the given samples installed; the bench applet is not selected. */
export async function benchChip(samples: readonly SampleName[] = []): Promise<VmBenchChip> {
  let vm: VmRuntime | undefined;
  const chip = openChip({ onVm: (r) => (vm = r) });
  chip.powerUp();
  const pkg = assemble(BENCH_SOURCE, { file: 'bench.jca' }).pkg;
  await installCap(chip, writeLoadFileDataBlock(pkg), fromHex(BENCH_PACKAGE), fromHex(BENCH_APPLET));
  for (const s of samples) await installCap(chip, sampleBlock(s), ASM_SAMPLES[s].packageAid, ASM_SAMPLES[s].appletAid);
  if (!vm) throw new Error('the chip has no VM');
  return {
    chip,
    vm,
    send(a) {
      const r = chip.transmit(a);
      const sw = (r[r.length - 2] << 8) | r[r.length - 1];
      if (sw !== 0x9000) throw new Error(`${hex(a.subarray(0, 4))}: ${sw.toString(16)}`);
      return r;
    },
    close: () => chip.close(),
  };
}

function select(b: VmBenchChip, aid: Uint8Array | string): void {
  b.send(apdu(0x00, 0xa4, 0x04, 0x00, typeof aid === 'string' ? fromHex(aid) : aid));
}

export interface LoopResult {
  /** Bytecodes executed per second of wall time (the APDU's own overhead included): the median APDU, and the range. */
  perSecond: number;
  min: number;
  max: number;
  /** Bytecodes of one APDU (the cycle meter's count). */
  bytecodes: number;
  report: CycleReport;
}

/** Runs INS `ins` with P1 = outer iterations `reps` times after three warm-ups; bytecodes from the cycle meter. */
function runLoop(b: VmBenchChip, ins: number, outer: number, reps: number, expected: number): LoopResult {
  const cmd = apdu(0x00, ins, outer, 0x00);
  const r = b.send(cmd);
  const acc = (r[0] << 8) | r[1];
  if (r.length !== 4 || acc !== (expected & 0xffff)) throw new Error(`loop ${ins} answered ${hex(r)}, not ${(expected & 0xffff).toString(16)}`);
  for (let i = 0; i < 3; i++) b.send(cmd); // warm-up: V8 optimises the dispatch loop over the first APDUs
  const rates: number[] = [];
  let report: CycleReport | undefined;
  for (let i = 0; i < reps; i++) {
    const t0 = performance.now();
    b.send(cmd);
    const ms = performance.now() - t0;
    report = b.vm.lastReport()!;
    rates.push((report.bytecodes / ms) * 1000);
  }
  rates.sort((x, y) => x - y);
  return { perSecond: rates[rates.length >> 1], min: rates[0], max: rates[rates.length - 1], bytecodes: report!.bytecodes, report: report! };
}

/** Simple-loop bytecodes/s: 100 × 10 000 iterations of 11 short-arithmetic bytecodes per APDU. */
export function benchSimpleLoop(b: VmBenchChip, reps = 9): LoopResult {
  select(b, BENCH_APPLET);
  return runLoop(b, 0x01, 100, reps, 100 * ((INNER * (INNER - 1)) / 2));
}

/** Call-heavy bytecodes/s: 50 × 10 000 iterations of invokestatic + invokevirtual (19 bytecodes) per APDU. */
export function benchCallLoop(b: VmBenchChip, reps = 9): LoopResult {
  select(b, BENCH_APPLET);
  return runLoop(b, 0x02, 50, reps, 50 * INNER * 3);
}

/** Echo sample APDUs/s in-process: INS 01 with 16 bytes of data (case 4), the response checked for length. */
export function benchEcho(b: VmBenchChip, n = 100_000): { perSecond: number; report: CycleReport } {
  select(b, ASM_SAMPLES.echo.appletAid);
  const cmd = apdu(0x00, 0x01, 0x00, 0x00, fromHex('00112233445566778899AABBCCDDEEFF'), 256);
  for (let i = 0; i < 5_000; i++) b.chip.transmit(cmd);
  const t0 = performance.now();
  for (let i = 0; i < n; i++) {
    const r = b.chip.transmit(cmd);
    if (r.length !== 18) throw new Error(`echo answered ${hex(r)}`);
  }
  const ms = performance.now() - t0;
  return { perSecond: (n / ms) * 1000, report: b.vm.lastReport()! };
}

/** RSA-2048 CRT sign (SHA-256 PKCS#1) APDUs/s of the rsa sample, and the cycle report of one (predicted time on chip). */
export function benchRsaSign(b: VmBenchChip, n = 200): { perSecond: number; report: CycleReport } {
  select(b, ASM_SAMPLES.rsa.appletAid);
  const cmd = apdu(0x00, 0x32, 0x00, 0x00, new Uint8Array(32).fill(0x5a), 256);
  for (let i = 0; i < 10; i++) b.send(cmd);
  const t0 = performance.now();
  for (let i = 0; i < n; i++) b.send(cmd);
  const ms = performance.now() - t0;
  return { perSecond: (n / ms) * 1000, report: b.vm.lastReport()! };
}

/** The CycleReport of one SWAlgs_xor operation on the VM: (report of 2N iterations − report of N) / N, execution only. */
export function xorReport(b: VmBenchChip, profile: CycleProfile, n = 50): CycleReport {
  select(b, BENCH_APPLET);
  const run = (iterations: number): CycleReport => {
    b.send(apdu(0x00, 0x03, iterations, 0x00));
    return b.vm.lastReport()!;
  };
  const one = run(n);
  const two = run(2 * n);
  const per = (k: keyof CycleReport) => (two[k] - one[k]) / n;
  const cycles = per('cycles');
  return {
    bytecodes: per('bytecodes'),
    cycles,
    nativeCalls: per('nativeCalls'),
    persistentBytesWritten: per('persistentBytesWritten'),
    estimatedUs: execUs(profile, cycles), // JCAlgTest subtracts its baseline: no I/O in "avg op"
    ioBytes: 0,
  };
}

/**
 * A benchCycles runner: SWAlgs_xor executed on the VM (when asked for the chip's own cycle profile), every other
 * workload modelled (bench/cycles.ts). `onVm` receives the names of the workloads that ran on the VM.
 */
export function vmRunner(b: VmBenchChip, onVm: (name: string) => void = () => {}): WorkloadRunner {
  return (w, profile) => {
    if (w.name.startsWith('SWAlgs_xor') && profile === b.vm.vm?.cycles.profile) {
      onVm(w.name);
      return xorReport(b, profile);
    }
    return modelRunner(w, profile);
  };
}

export interface VmBenchResults {
  rows: [string, string, string][];
  cycleRows: CycleBenchRow[];
  cycleTable: string;
}

const n0 = (v: number) => Math.round(v).toLocaleString('en');

/** Every VM row for bench/run.ts, plus the predicted-vs-published table (xor row measured on the VM). */
export async function benchVm(): Promise<VmBenchResults> {
  const b = await benchChip(['echo', 'rsa']);
  try {
    const rows: [string, string, string][] = [];
    const M = (v: number) => `${n0(v / 1e6)} M`;
    const simple = benchSimpleLoop(b);
    rows.push([
      'VM simple loop (sload/sadd/sstore/if_scmplt …), through the chip',
      `${M(simple.perSecond)} bytecodes/s (median of 9 APDUs of ${M(simple.bytecodes)}; ${M(simple.min)}–${M(simple.max)})`,
      '≥ 50 M/s',
    ]);
    const calls = benchCallLoop(b);
    rows.push([
      'VM call-heavy loop (invokestatic + invokevirtual)',
      `${M(calls.perSecond)} bytecodes/s = ${M((2 * calls.perSecond) / CALL_LOOP_BYTECODES)} calls/s (median of 9 APDUs of ${M(calls.bytecodes)}; ${M(calls.min)}–${M(calls.max)})`,
      '≥ 10 M/s',
    ]);
    const echo = benchEcho(b);
    rows.push(['echo sample (16 B), in-process', `${n0(echo.perSecond)} APDUs/s`, '≥ 50 000']);
    const rsa = benchRsaSign(b);
    rows.push(['rsa sample: RSA-2048 CRT sign (SHA-256, PKCS#1), in-process', `${n0(rsa.perSecond)} APDUs/s`, 'reported']);
    rows.push(['rsa sample sign APDU, predicted on J3R180 (cycle model)', formatReport(rsa.report, b.vm.vm?.cycles.profile ?? DEFAULT_CYCLE_PROFILE), 'reported (JCAlgTest sign alone: 60.7 ms)']);
    // Rows executed on the VM (SWAlgs_xor) say so in their name.
    const onVm = new Set<string>();
    const cycleRows = benchCycles(vmRunner(b, (name) => onVm.add(name))).map((r) => (onVm.has(r.name) ? { ...r, name: `${r.name} — run on the VM` } : r));
    return { rows, cycleRows, cycleTable: formatCycleTable(cycleRows) };
  } finally {
    b.close();
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const r = await benchVm();
  console.log('| measurement | result | target |\n|---|---|---|');
  for (const [a, c, d] of r.rows) console.log(`| ${a} | ${c} | ${d} |`);
  console.log('');
  console.log(r.cycleTable);
}
