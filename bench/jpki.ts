// JPKI AP benchmarks (issue 5): on a My Number Card issued with emulator/personalise/mynumber-card.ts and a phone SE
// provisioned with emulator/personalise/phone.ts — COMPUTE DIGITAL SIGNATURE APDUs/s in-process, the OpenSC login+sign
// sequence per second, the cycle model's estimated on-chip time of that sequence and of the phone's personalisation
// APDUs (per APDU, with what the meter charged), and the host wall time to issue a card and provision a phone.
// bench/run.ts prints it; `tsx bench/jpki.ts` prints it alone.
import { X509Certificate, constants, createHash, generateKeyPairSync, privateDecrypt, verify } from 'node:crypto';
import type { KeyObject } from 'node:crypto';
import { cpus, loadavg } from 'node:os';
import { pathToFileURL } from 'node:url';
import { concat, fromHex, hex } from '../emulator/bytes.ts';
import { encodeCommand } from '../emulator/apdu.ts';
import { openChip } from '../emulator/card.ts';
import type { Chip } from '../emulator/card.ts';
import type { ApduTransport } from '../emulator/host/gp-client.ts';
import { JPKI_AID } from '../emulator/host/jpki-perso.ts';
import { appletBlock } from '../emulator/personalise/caps.ts';
import { issueMyNumberCard } from '../emulator/personalise/mynumber-card.ts';
import { provisionPhone } from '../emulator/personalise/phone.ts';
import { createTestCa } from '../emulator/personalise/test-ca.ts';
import type { TestCa } from '../emulator/personalise/test-ca.ts';
import { execUs } from '../emulator/vm/cycles.ts';
import type { VmCycleMeter } from '../emulator/vm/cycles.ts';
import { DEFAULT_CYCLE_PROFILE } from '../emulator/vm/profiles/jcop4.ts';
import type { ReportPhase, VmRuntime } from '../emulator/vm/runtime.ts';
import type { CycleProfile, CycleReport } from '../emulator/vm/types.ts';

export interface JpkiBenchOptions {
  /** Timed runs per throughput row (median and min–max reported). */
  runs?: number;
  /** COMPUTE DIGITAL SIGNATURE APDUs per run. */
  signs?: number;
  /** Login+sign sequences per run. */
  logins?: number;
  /** Warm-up APDUs (signs) / sequences before the timed runs. */
  warmup?: number;
  /** Timed card issuances and phone provisionings (each after one untimed, instrumented first one). */
  issues?: number;
}

/** Median and range of a set of per-run values. */
export interface Spread {
  median: number;
  min: number;
  max: number;
  values: number[];
}

/** One APDU's cycle model result: the phases' reports summed, and the meter's cycles by what charged them. */
export interface ApduCost {
  label: string;
  command: string;
  phases: ReportPhase[];
  report: CycleReport;
  execUs: number;
  ioUs: number;
  /** Cycles by category: 'bytecodes', 'native calls', 'NVM writes', …, or a crypto key ('RSA-2048-CRT/sign'). */
  charges: Map<string, number>;
}

export interface SequenceCost {
  apdus: ApduCost[];
  total: ApduCost;
}

export interface TokenResults {
  /** COMPUTE DIGITAL SIGNATURE APDUs/s (auth key, after VERIFY). */
  signPerSecond: Spread;
  /** SELECT AP, SELECT EF 0018, VERIFY, SELECT EF 0017, COMPUTE DIGITAL SIGNATURE, per second. */
  loginPerSecond: Spread;
  /** The same five APDUs after a warm reset, through the cycle model. */
  sequence: SequenceCost;
}

export interface JpkiBenchResults {
  card: TokenResults;
  phone: TokenResults;
  /** The phone's SP-TSM session and app steps on the JPKI AP (personalisation path), per APDU. */
  phonePerso: ApduCost[];
  /** The card issuer's JPKI personalisation APDUs, per APDU. */
  cardPerso: ApduCost[];
  /** Host wall time, ms. */
  caMs: number;
  cardIssueMs: Spread;
  phoneProvisionMs: Spread;
  /** Two host RSA-2048 key generations (what issuing a card does on the host), ms per pair. */
  hostKeygenPairMs: Spread;
  /** One host RSA-2048 CRT private operation (node:crypto, no padding), µs. */
  hostRsaPrivateUs: Spread;
  load: { before: number[]; after: number[] };
  rows: [string, string, string][];
  tables: string;
}

const AUTH_PIN = '1234';
const SHA256_DIGEST_INFO = fromHex('3031300D060960864801650304020105000420');
const MESSAGE = new TextEncoder().encode('jpki-se bench: login and sign');

const apdu = (cla: number, ins: number, p1: number, p2: number, data: Uint8Array = new Uint8Array(0), ne = 0): Uint8Array =>
  encodeCommand({ cla, ins, p1, p2, data, ne });
const sw = (r: Uint8Array): number => (r[r.length - 2] << 8) | r[r.length - 1];

/** OpenSC card-jpki.c's login and sign with the auth key (jpki.md §1): five APDUs. */
function loginSequence(pin: string, digestInfo: Uint8Array): [string, Uint8Array][] {
  return [
    ['SELECT AP', apdu(0x00, 0xa4, 0x04, 0x0c, fromHex(JPKI_AID))],
    ['SELECT EF 0018 (auth PIN)', apdu(0x00, 0xa4, 0x02, 0x0c, fromHex('0018'))],
    ['VERIFY auth PIN', apdu(0x00, 0x20, 0x00, 0x80, new TextEncoder().encode(pin))],
    ['SELECT EF 0017 (auth key)', apdu(0x00, 0xa4, 0x02, 0x0c, fromHex('0017'))],
    ['COMPUTE DIGITAL SIGNATURE (auth)', apdu(0x80, 0x2a, 0x00, 0x80, digestInfo, 256)],
  ];
}

function spread(values: number[]): Spread {
  const s = [...values].sort((a, b) => a - b);
  return { median: s[s.length >> 1], min: s[0], max: s[s.length - 1], values };
}

/** `runs` timed runs of `n` operations after `warmup` untimed ones; operations per second per run. */
function rateRuns(runs: number, n: number, warmup: number, op: () => void): Spread {
  for (let i = 0; i < warmup; i++) op();
  const rates: number[] = [];
  for (let r = 0; r < runs; r++) {
    const t0 = performance.now();
    for (let i = 0; i < n; i++) op();
    rates.push((n / (performance.now() - t0)) * 1000);
  }
  return spread(rates);
}

// ---------------------------------------------------------------------------------------------------------------
// Chips and the cycle meter

interface BenchChip {
  chip: Chip;
  vm: VmRuntime;
  transport: ApduTransport;
}

function newChip(): BenchChip {
  let vm: VmRuntime | undefined;
  const chip = openChip({ onVm: (r) => (vm = r) });
  chip.powerUp();
  if (!vm) throw new Error('the chip has no VM');
  return { chip, vm, transport: { transmit: async (a) => chip.transmit(a) } };
}

type ChargeName = 'addOpcodeCycles' | 'charge' | 'native' | 'nvmWrite' | 'transactionLog' | 'nvmCopySource' | 'ramWrite';
const CATEGORY: Record<ChargeName, string> = {
  addOpcodeCycles: 'bytecodes',
  charge: 'frame set-up',
  native: 'native calls',
  nvmWrite: 'NVM writes',
  transactionLog: 'transaction log',
  nvmCopySource: 'NVM→NVM copy',
  ramWrite: 'RAM writes',
};

interface PhaseCost {
  phase: ReportPhase;
  report: CycleReport;
  charges: Map<string, number>;
}

/** The phases of one APDU as one: reports summed, charges merged. */
function merge(parts: readonly PhaseCost[]): { phases: ReportPhase[]; report: CycleReport; charges: Map<string, number> } {
  const charges = new Map<string, number>();
  for (const p of parts) for (const [k, v] of p.charges) charges.set(k, (charges.get(k) ?? 0) + v);
  return { phases: parts.map((p) => p.phase), report: sumReports(parts.map((p) => p.report)), charges };
}

interface Probe {
  /** Each phase's report and cycles by category since the last take(). */
  take(): PhaseCost[];
  close(): void;
}

/**
 * Attributes every charge to the VM's meter to a category (each charge method is wrapped: it still charges exactly
 * what it did, and the cycles it added are recorded), and collects the per-phase reports of each APDU.
 */
function probe(vm: VmRuntime): Probe {
  const meter: VmCycleMeter | undefined = vm.vm?.cycles;
  if (!meter) throw new Error('the VM is not powered');
  const m: VmCycleMeter = meter;
  // Charges since the meter's last reset (a report covers exactly those), and what the reports of this APDU covered.
  let pending = new Map<string, number>();
  let parts: PhaseCost[] = [];
  const cyclesNow = () => m.report().cycles;
  const add = (name: string, c: number) => pending.set(name, (pending.get(name) ?? 0) + c);
  const saved = {
    crypto: m.crypto,
    addOpcodeCycles: m.addOpcodeCycles,
    charge: m.charge,
    native: m.native,
    nvmWrite: m.nvmWrite,
    transactionLog: m.transactionLog,
    nvmCopySource: m.nvmCopySource,
    ramWrite: m.ramWrite,
    reset: m.reset,
  };
  m.crypto = (op: string, bytes: number) => {
    const c0 = cyclesNow();
    saved.crypto(op, bytes);
    add(op, cyclesNow() - c0);
  };
  const wrap = <A extends unknown[]>(name: ChargeName, f: (...args: A) => void) => (...args: A) => {
    const c0 = cyclesNow();
    f(...args);
    add(CATEGORY[name], cyclesNow() - c0);
  };
  m.addOpcodeCycles = wrap('addOpcodeCycles', saved.addOpcodeCycles);
  m.charge = wrap('charge', saved.charge);
  m.native = wrap('native', saved.native);
  m.nvmWrite = wrap('nvmWrite', saved.nvmWrite);
  m.transactionLog = wrap('transactionLog', saved.transactionLog);
  m.nvmCopySource = wrap('nvmCopySource', saved.nvmCopySource);
  m.ramWrite = wrap('ramWrite', saved.ramWrite);
  m.reset = () => {
    saved.reset();
    pending = new Map();
  };
  const previous = vm.onReport;
  vm.onReport = (report, phase) => {
    const attributed = [...pending.values()].reduce((a, b) => a + b, 0);
    // A charge path the probe does not see would make the breakdown lie: refuse rather than print it.
    if (attributed !== report.cycles) throw new Error(`probe saw ${attributed} of ${report.cycles} cycles (${phase})`);
    parts.push({ phase, report, charges: pending });
    pending = new Map();
    previous?.(report, phase);
  };
  return {
    take() {
      const out = parts;
      parts = [];
      return out;
    },
    close() {
      Object.assign(m, saved);
      vm.onReport = previous;
    },
  };
}

function sumReports(rs: readonly CycleReport[]): CycleReport {
  const t: CycleReport = { bytecodes: 0, cycles: 0, nativeCalls: 0, persistentBytesWritten: 0, estimatedUs: 0, ioBytes: 0 };
  for (const r of rs) {
    t.bytecodes += r.bytecodes;
    t.cycles += r.cycles;
    t.nativeCalls += r.nativeCalls;
    t.persistentBytesWritten += r.persistentBytesWritten;
    t.estimatedUs += r.estimatedUs;
    t.ioBytes += r.ioBytes;
  }
  return t;
}

function cost(label: string, command: Uint8Array, phases: ReportPhase[], report: CycleReport, charges: Map<string, number>, profile: CycleProfile): ApduCost {
  const ex = execUs(profile, report.cycles);
  return { label, command: hex(command.subarray(0, 4)), phases, report, execUs: ex, ioUs: Math.max(0, report.estimatedUs - ex), charges };
}

function totalOf(label: string, costs: readonly ApduCost[], profile: CycleProfile): ApduCost {
  const charges = new Map<string, number>();
  for (const c of costs) for (const [k, v] of c.charges) charges.set(k, (charges.get(k) ?? 0) + v);
  return cost(label, new Uint8Array(0), [], sumReports(costs.map((c) => c.report)), charges, profile);
}

// ---------------------------------------------------------------------------------------------------------------
// Measurements

/** The login+sign sequence once after a warm reset (the ISD selected, as a card OpenSC just connected to). */
function sequenceCost(b: BenchChip, pin: string, digestInfo: Uint8Array): SequenceCost {
  const profile = b.vm.vm?.cycles.profile ?? DEFAULT_CYCLE_PROFILE;
  b.chip.reset();
  const p = probe(b.vm);
  try {
    const apdus = loginSequence(pin, digestInfo).map(([label, cmd]) => {
      const r = b.chip.transmit(cmd);
      if (sw(r) !== 0x9000) throw new Error(`${label}: ${sw(r).toString(16)}`);
      const t = merge(p.take());
      return cost(label, cmd, t.phases, t.report, t.charges, profile);
    });
    return { apdus, total: totalOf('total', apdus, profile) };
  } finally {
    p.close();
  }
}

/** Sign and login+sign throughput on a personalised token, each signature's length and status checked. */
function tokenBench(b: BenchChip, certificate: Uint8Array, o: Required<JpkiBenchOptions>): TokenResults {
  const digestInfo = concat(SHA256_DIGEST_INFO, createHash('sha256').update(MESSAGE).digest());
  const seq = loginSequence(AUTH_PIN, digestInfo);
  const send = (label: string, cmd: Uint8Array): Uint8Array => {
    const r = b.chip.transmit(cmd);
    if (sw(r) !== 0x9000) throw new Error(`${label}: ${sw(r).toString(16)}`);
    return r;
  };
  for (const [label, cmd] of seq) send(label, cmd);
  // The signature verifies with the certificate's key: the chip signed with the personalised auth key.
  const sig = send('COMPUTE DIGITAL SIGNATURE', seq[4][1]).subarray(0, -2);
  const key: KeyObject = new X509Certificate(certificate).publicKey;
  if (sig.length !== 256 || !verify('sha256', MESSAGE, key, sig)) throw new Error('the auth signature does not verify with the auth certificate');
  const sign = seq[4][1];
  const signPerSecond = rateRuns(o.runs, o.signs, o.warmup, () => {
    const r = b.chip.transmit(sign);
    if (r.length !== 258 || sw(r) !== 0x9000) throw new Error(`sign answered ${sw(r).toString(16)}`);
  });
  const loginPerSecond = rateRuns(o.runs, o.logins, Math.ceil(o.warmup / 5), () => {
    for (const [label, cmd] of seq) send(label, cmd);
  });
  return { signPerSecond, loginPerSecond, sequence: sequenceCost(b, AUTH_PIN, digestInfo) };
}

const PERSO_NAMES: Record<number, string> = {
  0x50: 'INITIALIZE UPDATE',
  0x82: 'EXTERNAL AUTHENTICATE',
  0xe0: 'GET SE IDENTIFIER',
  0xe2: 'GENERATE COMMITMENT',
  0xe4: 'GENERATE KEY PAIR',
  0xe6: 'IMPORT KEY COMPONENT',
  0xe8: 'WRITE CERTIFICATE',
  0xea: 'SET PIN',
  0xec: 'SET TEMPORARY PIN',
  0xf4: 'LOCK',
  0xa4: 'SELECT',
  0x2c: 'RESET RETRY COUNTER',
  0xca: 'REVEAL TEMPORARY PIN',
};
const COMPONENT: Record<number, string> = { 1: 'P', 2: 'Q', 3: 'DP1', 4: 'DQ1', 5: 'PQ' };
const KIND: Record<number, string> = { 0x17: 'auth', 0x1a: 'sign', 0x18: 'auth', 0x1b: 'sign', 0x98: 'auth', 0x9b: 'sign', 0x01: 'sign', 0x02: 'sign CA', 0x0a: 'auth', 0x0b: 'auth CA' };
/** Commands whose P2 names the key kind, PIN or certificate EF. */
const P2_NAMES_KIND = new Set([0xe2, 0xe4, 0xe6, 0xe8, 0xea, 0xec, 0xca, 0x2c]);

/** Basic or logical channel of a class byte (ISO 7816-4 §5.4.1: first and further interindustry values). */
const channelOf = (cla: number): number => ((cla & 0x40) !== 0 ? 4 + (cla & 0x0f) : cla & 0x03);

/**
 * A transport that runs each APDU through the probe and keeps the cost of those the JPKI AP processed (the AP is
 * selected on that channel, tracked from SELECT-by-AID answers; the security domains are native and unmetered).
 */
function jpkiRecorder(b: BenchChip): { transport: ApduTransport; costs: ApduCost[]; close(): void } {
  const p = probe(b.vm);
  const profile = b.vm.vm?.cycles.profile ?? DEFAULT_CYCLE_PROFILE;
  const selected = new Map<number, string>();
  const costs: ApduCost[] = [];
  const transport: ApduTransport = {
    transmit: async (cmd) => {
      const r = b.chip.transmit(cmd);
      const parts = p.take();
      const [cla, ins, p1, p2] = cmd;
      const isSelectAid = ins === 0xa4 && p1 === 0x04;
      const isClose = ins === 0x70 && p1 === 0x80; // MANAGE CHANNEL close: P2 names the channel
      const ch = isClose ? p2 : channelOf(cla);
      const wasJpki = selected.get(ch) === JPKI_AID;
      // A short SELECT of 5 bytes has no data (its fifth byte is Le): the default applet, never the JPKI AP.
      if (isSelectAid && sw(r) === 0x9000) selected.set(ch, cmd.length > 5 ? hex(cmd.subarray(5, 5 + cmd[4])) : 'default');
      if (isClose && sw(r) === 0x9000) selected.delete(ch);
      const nowJpki = selected.get(ch) === JPKI_AID;
      // The AP's phases: all when it is (still) selected, except another applet's deselect() when it was just selected;
      // only its deselect() when another applet (or a channel close) replaced it.
      const mine = nowJpki ? parts.filter((x) => wasJpki || x.phase !== 'deselect') : wasJpki ? parts.filter((x) => x.phase === 'deselect') : [];
      const t = merge(mine);
      if (t.report.cycles > 0) {
        const name = PERSO_NAMES[ins] ?? `INS ${ins.toString(16).toUpperCase()}`;
        const kind = P2_NAMES_KIND.has(ins) ? KIND[p2] : undefined;
        const label = !nowJpki
          ? `deselect (${isClose ? 'channel closed' : 'another applet selected'})`
          : isSelectAid
            ? 'SELECT AP'
            : ins === 0xe8
              ? `${name} ${kind ?? p2.toString(16)} block ${p1 & 0x7f}${p1 & 0x80 ? ' (last)' : ''}`
              : ins === 0xe6
                ? `${name} ${COMPONENT[p1] ?? p1} (${kind})`
                : `${name}${kind ? ` (${kind})` : ''}`;
        costs.push(cost(label, cmd, t.phases, t.report, t.charges, profile));
      }
      return r;
    },
  };
  return { transport, costs, close: () => p.close() };
}

/** Host wall time of `n` runs of `f`, ms each. */
async function timeRuns(n: number, f: () => Promise<void>): Promise<Spread> {
  const ms: number[] = [];
  for (let i = 0; i < n; i++) {
    const t0 = performance.now();
    await f();
    ms.push(performance.now() - t0);
  }
  return spread(ms);
}

export async function benchJpki(opts: JpkiBenchOptions = {}): Promise<JpkiBenchResults> {
  const o: Required<JpkiBenchOptions> = { runs: 7, signs: 500, logins: 300, warmup: 100, issues: 5, ...opts };
  const before = loadavg();
  // The CAPs are read (or built) once here, so that no issuance below pays for it.
  for (const name of ['jpki', 'textap', 'aram'] as const) appletBlock(name);

  const t0 = performance.now();
  const ca: TestCa = await createTestCa();
  const caMs = performance.now() - t0;

  // Card: the first issuance through the recorder (per-APDU costs), the next ones timed on fresh chips.
  const first = newChip();
  const rec = jpkiRecorder(first);
  await issueMyNumberCard(rec.transport, { ca });
  rec.close();
  first.chip.close();
  let card: BenchChip | undefined;
  let cardCert: Uint8Array = new Uint8Array(0);
  const cardIssueMs = await timeRuns(o.issues, async () => {
    card?.chip.close();
    card = newChip();
    cardCert = (await issueMyNumberCard(card.transport, { ca })).certificates.auth;
  });
  const hostKeygenPairMs = await timeRuns(o.issues, async () => {
    generateKeyPairSync('rsa', { modulusLength: 2048 });
    generateKeyPairSync('rsa', { modulusLength: 2048 });
  });

  // Phone: same shape.
  const firstPhone = newChip();
  const prec = jpkiRecorder(firstPhone);
  await provisionPhone(prec.transport, { ca });
  prec.close();
  firstPhone.chip.close();
  let phone: BenchChip | undefined;
  let phoneCert: Uint8Array = new Uint8Array(0);
  const phoneProvisionMs = await timeRuns(o.issues, async () => {
    phone?.chip.close();
    phone = newChip();
    phoneCert = (await provisionPhone(phone.transport, { ca })).certificates.auth;
  });
  if (!card || !phone) throw new Error('no issued token');

  const cardResults = tokenBench(card, cardCert, o);
  const phoneResults = tokenBench(phone, phoneCert, o);
  card.chip.close();
  phone.chip.close();

  // What the in-process sign costs the host: node:crypto's RSA-2048 CRT private operation alone (the VM calls the same).
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const block = concat(Uint8Array.of(0x00, 0x01), new Uint8Array(256 - 3 - 51).fill(0xff), Uint8Array.of(0x00), new Uint8Array(51).fill(0x5a));
  const perSecond = rateRuns(o.runs, o.signs, o.warmup, () => {
    privateDecrypt({ key: privateKey, padding: constants.RSA_NO_PADDING }, block);
  });
  const hostRsaPrivateUs = spread(perSecond.values.map((v) => 1e6 / v));

  const partial = {
    card: cardResults,
    phone: phoneResults,
    phonePerso: prec.costs,
    cardPerso: rec.costs,
    caMs,
    cardIssueMs,
    phoneProvisionMs,
    hostKeygenPairMs,
    hostRsaPrivateUs,
    load: { before, after: loadavg() },
  };
  return { ...partial, rows: jpkiRows(partial, o), tables: jpkiTables(partial) };
}

// ---------------------------------------------------------------------------------------------------------------
// Formatting

const n0 = (v: number) => Math.round(v).toLocaleString('en');
const ms2 = (us: number) => (us / 1000).toFixed(us >= 100_000 ? 0 : 2);
const rateText = (s: Spread, unit: string) => `${n0(s.median)} ${unit} (median of ${s.values.length}; ${n0(s.min)}–${n0(s.max)})`;
const msText = (s: Spread) => `${n0(s.median)} ms (median of ${s.values.length}; ${n0(s.min)}–${n0(s.max)})`;

type Measured = Omit<JpkiBenchResults, 'rows' | 'tables'>;

function jpkiRows(r: Measured, o: Required<JpkiBenchOptions>): [string, string, string][] {
  const rows: [string, string, string][] = [];
  for (const [name, t] of [['card', r.card], ['phone', r.phone]] as const) {
    rows.push([`JPKI ${name}: COMPUTE DIGITAL SIGNATURE (auth, RSA-2048 CRT), in-process`, rateText(t.signPerSecond, 'APDUs/s') + `, ${o.signs} per run`, 'reported']);
    rows.push([`JPKI ${name}: OpenSC login+sign (5 APDUs), in-process`, rateText(t.loginPerSecond, 'sequences/s') + `, ${o.logins} per run`, 'reported']);
    rows.push([`JPKI ${name}: login+sign, estimated on J3R180 (cycle model)`, `${ms2(t.sequence.total.report.estimatedUs)} ms (exec ${ms2(t.sequence.total.execUs)} + I/O ${ms2(t.sequence.total.ioUs)})`, 'reported (JCAlgTest RSA-2048 CRT sign: 60.7 ms)']);
  }
  const keygen = r.phonePerso.find((c) => c.label.startsWith('GENERATE KEY PAIR'));
  if (keygen) rows.push(['JPKI phone: GENERATE KEY PAIR, estimated on J3R180', `${ms2(keygen.report.estimatedUs)} ms (exec ${ms2(keygen.execUs)} + I/O ${ms2(keygen.ioUs)})`, 'reported (JCAlgTest RSA-2048 CRT keygen: 5 225 ms)']);
  const cert = certWrite(r.phonePerso, 'auth');
  if (cert) rows.push([`JPKI phone: WRITE CERTIFICATE auth (${cert.blocks} APDUs, ${cert.bytes} B), estimated on J3R180`, `${ms2(cert.total.report.estimatedUs)} ms (exec ${ms2(cert.total.execUs)} + I/O ${ms2(cert.total.ioUs)})`, 'reported']);
  rows.push(['host RSA-2048 CRT private operation (node:crypto, no padding)', `${r.hostRsaPrivateUs.median.toFixed(0)} µs (median of ${r.hostRsaPrivateUs.values.length}; ${r.hostRsaPrivateUs.min.toFixed(0)}–${r.hostRsaPrivateUs.max.toFixed(0)})`, 'reported']);
  rows.push(['issue a My Number Card (issueMyNumberCard, host wall time)', msText(r.cardIssueMs), 'reported']);
  rows.push(['2 × host RSA-2048 keygen alone (what one issuance generates on the host)', msText(r.hostKeygenPairMs), 'reported']);
  rows.push(['provision a phone (provisionPhone, host wall time)', msText(r.phoneProvisionMs), 'reported']);
  rows.push(['create the test CA (createTestCa: 2 RSA-2048 keys + 2 certificates), once', `${n0(r.caMs)} ms`, 'reported']);
  return rows;
}

function certWrite(costs: readonly ApduCost[], kind: string): { blocks: number; bytes: number; total: ApduCost } | undefined {
  const blocks = costs.filter((c) => c.label.startsWith(`WRITE CERTIFICATE ${kind} block`));
  if (blocks.length === 0) return undefined;
  return {
    blocks: blocks.length,
    bytes: blocks.reduce((n, c) => n + c.report.ioBytes, 0),
    total: totalOf(`WRITE CERTIFICATE ${kind} (${blocks.length} APDUs)`, blocks, DEFAULT_CYCLE_PROFILE),
  };
}

/** The largest charges of an APDU, e.g. "RSA-2048-CRT/sign 55.34 ms, CIPHER/init 5.88 ms". */
function topCharges(c: ApduCost, n = 3): string {
  const profile = DEFAULT_CYCLE_PROFILE;
  return [...c.charges.entries()]
    .filter(([, v]) => v > 0)
    .sort((a, b) => b[1] - a[1])
    .slice(0, n)
    .map(([k, v]) => `${k} ${ms2(execUs(profile, v))}`)
    .join(', ');
}

function costTable(title: string, costs: readonly ApduCost[], total?: ApduCost): string {
  const lines = [title, '', '| APDU | bytecodes | cycles | NVM B | I/O B | exec ms | I/O ms | est. ms | largest charges (ms) |', '|---|---:|---:|---:|---:|---:|---:|---:|---|'];
  const line = (c: ApduCost, bold = false) => {
    const b = (s: string) => (bold ? `**${s}**` : s);
    lines.push(
      `| ${b(c.label)} | ${n0(c.report.bytecodes)} | ${n0(c.report.cycles)} | ${n0(c.report.persistentBytesWritten)} | ${n0(c.report.ioBytes)} | ${ms2(c.execUs)} | ${ms2(c.ioUs)} | ${b(ms2(c.report.estimatedUs))} | ${topCharges(c)} |`,
    );
  };
  for (const c of costs) line(c);
  if (total) line(total, true);
  return lines.join('\n');
}

/** The phone's personalisation APDUs grouped: the write blocks of one certificate as one row. */
function groupPerso(costs: readonly ApduCost[]): ApduCost[] {
  const out: ApduCost[] = [];
  for (const c of costs) {
    const m = /^WRITE CERTIFICATE (.+) block \d+/.exec(c.label);
    if (!m) {
      out.push(c);
      continue;
    }
    const prev = out.at(-1);
    const name = `WRITE CERTIFICATE ${m[1]}`;
    if (prev && prev.label.startsWith(`${name} (`)) {
      const blocks = Number(/\((\d+) APDUs\)/.exec(prev.label)?.[1] ?? '1') + 1;
      out[out.length - 1] = totalOf(`${name} (${blocks} APDUs)`, [prev, c], DEFAULT_CYCLE_PROFILE);
    } else out.push(totalOf(`${name} (1 APDUs)`, [c], DEFAULT_CYCLE_PROFILE));
  }
  return out;
}

function jpkiTables(r: Measured): string {
  const parts = [
    costTable('Card (issueMyNumberCard), OpenSC login+sign after a warm reset, cycle profile jcop4-j3r180:', r.card.sequence.apdus, r.card.sequence.total),
    costTable('Phone (provisionPhone), the same sequence on the basic channel:', r.phone.sequence.apdus, r.phone.sequence.total),
    costTable('Phone personalisation on the JPKI AP (SP-TSM session at level 33, then the app through the ACE), per command:', groupPerso(r.phonePerso), totalOf('total on the JPKI AP', r.phonePerso, DEFAULT_CYCLE_PROFILE)),
    costTable('Card personalisation on the JPKI AP (issuer session at level 33), per command:', groupPerso(r.cardPerso), totalOf('total on the JPKI AP', r.cardPerso, DEFAULT_CYCLE_PROFILE)),
  ];
  return parts.join('\n\n');
}

export function printJpkiBench(r: JpkiBenchResults): void {
  console.log('\n### JPKI AP (issue 5)\n');
  console.log(`Load average (1/5/15 min) before ${r.load.before.map((v) => v.toFixed(2)).join(' / ')}, after ${r.load.after.map((v) => v.toFixed(2)).join(' / ')}.\n`);
  console.log('| measurement | result | target |\n|---|---|---|');
  for (const [a, b, c] of r.rows) console.log(`| ${a} | ${b} | ${c} |`);
  console.log(`\n${r.tables}`);
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  console.log(`Machine: ${cpus().length} × ${cpus()[0]?.model ?? 'cpu'}, Node ${process.version}`);
  const t0 = performance.now();
  const r = await benchJpki();
  printJpkiBench(r);
  console.log(`\nbench/jpki.ts took ${((performance.now() - t0) / 1000).toFixed(1)} s.`);
}
