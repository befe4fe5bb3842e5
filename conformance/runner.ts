// The conformance runner: replays parsed scripts against a target, case by case (conformance/README.md "Running"):
// a warm reset, the file's prologue, the case's steps; the first failing step ends the case. It does what a host
// stack would: T=0 follow-ups (61XX GET RESPONSE, 6CXX resend), logical channel bits in the CLA, SCP03 wrapping.
import { X509Certificate, constants, publicDecrypt } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { decodeCla, encodeCla, encodeCommand, parseCommand } from '../emulator/apdu.ts';
import type { CommandApdu, CommandFields } from '../emulator/apdu.ts';
import { loadCommands } from '../emulator/host/gp-client.ts';
import { concat, equal, hex } from '../emulator/bytes.ts';
import { loadFileDataBlock, readCapFile } from '../emulator/cap-reader.ts';
import { swHex, swMeaning } from '../emulator/iso.ts';
import { Level, Scp03Error, hostAuthenticate, hostInitializeUpdate, hostUnwrap, hostWrap } from '../emulator/scp03.ts';
import type { KeySet, Session } from '../emulator/scp03.ts';
import { readHeader } from '../emulator/tlv.ts';
import type { Target } from '../emulator/transport/target.ts';
import { formatDiff, formatDataDiff } from './report.ts';
import { evalExpr, expandText } from './script/expr.ts';
import type { Vars } from './script/expr.ts';
import { matchResponse } from './script/pattern.ts';
import type { PowerControl } from './targets.ts';
import { ScriptError } from './types.ts';
import type { ApduRecord, Case, CaseResult, Expr, ResponsePattern, RunResult, ScriptFile, SourcePos, Step } from './types.ts';

export interface RunFilter {
  /** A case runs if it has any of these tags (absent or empty: every case). */
  tags?: string[];
  /** A case with any of these tags does not run. */
  excludeTags?: string[];
  /** Globs (`*`, `?`) on case ids; a case runs if one matches (absent or empty: every case). */
  ids?: string[];
}

export interface RunOptions {
  /** Variables set before any file runs (--var): they win over `default`. */
  vars?: Vars;
  /** Profiles given (--profile): a case runs only if all its `requires` are among them. */
  profiles?: string[];
  filter?: RunFilter;
  /** After the first failed or errored mandatory case, the remaining ones are reported skipped. */
  stopOnFail?: boolean;
  /** Every wire exchange, echo and case start, as it happens. */
  trace?: (line: string) => void;
  /** Each case's result, as soon as it is known. */
  onCase?: (r: CaseRun) => void;
}

/** An `echo` line of a case, with the number of APDUs recorded before it (to interleave it in logs). */
export interface EchoLine {
  text: string;
  after: number;
}

/**
 * A case's result as the runner produces it: the shared CaseResult plus its echo output and start time.
 * (CaseResult of types.ts has no field for either; the reports read them when present.)
 */
export interface CaseRun extends CaseResult {
  echoes: EchoLine[];
  /** ISO 8601. */
  startedAt: string;
}

export interface ConformanceRun extends RunResult {
  cases: CaseRun[];
}

/** A step did not get what it expected: the case fails (not an error of the script or the target). */
class StepFailure extends Error {
  readonly diff: string | undefined;
  constructor(message: string, diff?: string) {
    super(message);
    this.name = 'StepFailure';
    this.diff = diff;
  }
}

const GET_RESPONSE = 0xc0;

// --- selection ---------------------------------------------------------------------------------------------------

/** `*` any run of characters, `?` one; the whole id must match. */
export function globMatch(glob: string, id: string): boolean {
  const re = glob.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*').replace(/\?/g, '.');
  return new RegExp(`^${re}$`).test(id);
}

/** Whether the filters let a case run. */
export function selected(c: Case, filter: RunFilter = {}): boolean {
  if (filter.tags?.length && !c.tags.some((t) => filter.tags!.includes(t))) return false;
  if (filter.excludeTags?.length && c.tags.some((t) => filter.excludeTags!.includes(t))) return false;
  if (filter.ids?.length && !filter.ids.some((g) => globMatch(g, c.id))) return false;
  return true;
}

/** A case id used twice across the files of a run (README: ids are unique across every file of a run). */
export function duplicateIds(files: ScriptFile[]): ScriptError[] {
  const seen = new Map<string, SourcePos>();
  const out: ScriptError[] = [];
  for (const f of files)
    for (const c of f.cases) {
      const first = seen.get(c.id);
      if (first) out.push(new ScriptError(c.pos, `case id ${c.id} is already used at ${first.file}:${first.line}:${first.col}`));
      else seen.set(c.id, c.pos);
    }
  return out;
}

// --- class byte ----------------------------------------------------------------------------------------------------

/**
 * The CLA of a command as written, moved to logical channel N (ISO 7816-4 §5.4.1): 0–3 in b2-b1 of the first
 * interindustry coding, 4–19 as N−4 in b4-b1 with b7 set. b8 (proprietary) and chaining (b5) are kept; the SM
 * indication moves between b4-b3 (0–3) and b6 (4–19), GP's 04 ↔ 20 as the SCP03 wrap reads them. On channel 0 the
 * CLA goes out as written (so a script can still write an explicit class); an RFU class always does.
 */
export function claForChannel(cla: number, channel: number): number {
  if (channel === 0 || !decodeCla(cla)) return cla;
  const prop = cla & 0x80;
  const chain = cla & 0x10;
  const further = (cla & 0x40) !== 0;
  if (channel < 4) return prop | chain | (further ? (cla & 0x20 ? 0x04 : 0) : cla & 0x0c) | channel;
  if (channel > 19) throw new RangeError(`logical channel ${channel} out of range 0–19`);
  return prop | 0x40 | (further ? cla & 0x20 : cla & 0x0c ? 0x20 : 0) | chain | (channel - 4);
}

// --- the run -------------------------------------------------------------------------------------------------------

const sw1 = (r: Uint8Array) => r[r.length - 2];
const swOf = (r: Uint8Array) => (r[r.length - 2] << 8) | r[r.length - 1];
const message = (e: unknown) => (e instanceof Error ? e.message : String(e));

function hasPower(t: Target): t is Target & PowerControl {
  const p = t as Target & Partial<PowerControl>;
  return typeof p.powerUp === 'function' && typeof p.powerDown === 'function';
}

/** The pattern a `>` without `<` has: 9000 and no data. */
function okPattern(pos: SourcePos, restAllowed = false): ResponsePattern {
  return { data: restAllowed ? [{ kind: 'star' }] : [], sw: [{ value: 0x9000, mask: 0xffff }], text: restAllowed ? '* 9000' : '9000', pos };
}

function tryParse(apdu: Uint8Array): CommandApdu | undefined {
  try {
    return parseCommand(apdu);
  } catch {
    return undefined;
  }
}

export async function runScripts(files: ScriptFile[], target: Target, opts: RunOptions = {}): Promise<ConformanceRun> {
  const started = new Date();
  const t0 = performance.now();
  const profiles = opts.profiles ?? [];
  const cases: CaseRun[] = [];
  let stoppedBy: string | null = null;
  for (const file of files)
    for (const c of file.cases) {
      if (!selected(c, opts.filter)) continue;
      let r: CaseRun;
      const missing = c.requires.filter((t) => !profiles.includes(t));
      if (stoppedBy !== null) r = skipped(c, file, `not run: stopped after ${stoppedBy} failed`);
      else if (missing.length) r = skipped(c, file, `requires ${missing.join(' ')}`);
      else r = await runCase(file, c, target, opts);
      cases.push(r);
      opts.onCase?.(r);
      if (opts.stopOnFail && stoppedBy === null && r.mandatory && (r.outcome === 'fail' || r.outcome === 'error')) stoppedBy = r.id;
    }
  return { target: target.name, startedAt: started.toISOString(), ms: performance.now() - t0, cases };
}

function base(c: Case, file: ScriptFile): Omit<CaseRun, 'outcome' | 'ms'> {
  return {
    id: c.id,
    title: c.title,
    file: c.file,
    suite: file.suite,
    refs: c.refs,
    tags: c.tags,
    mandatory: c.mandatory,
    apdus: [],
    echoes: [],
    startedAt: new Date().toISOString(),
  };
}

function skipped(c: Case, file: ScriptFile, why: string): CaseRun {
  return { ...base(c, file), outcome: 'skip', message: why, ms: 0 };
}

/** What a case carries from step to step. */
interface CaseState {
  vars: Vars;
  channel: number;
  /** Open secure channels, by logical channel. */
  sessions: Map<number, Session>;
  /** `scp03 corrupt-mac` is pending: the next command carrying a C-MAC goes out with its last MAC byte flipped. */
  corruptNext: boolean;
  /** The last command as it went on the wire, for `replay`. */
  last: { wire: Uint8Array; channel: number } | null;
  atr: Uint8Array;
  apdus: ApduRecord[];
  echoes: EchoLine[];
}

async function runCase(file: ScriptFile, c: Case, target: Target, opts: RunOptions): Promise<CaseRun> {
  const r = base(c, file);
  const t0 = performance.now();
  const trace = opts.trace;
  trace?.(`case ${c.id} — ${c.title}`);
  const st: CaseState = {
    vars: new Map(opts.vars ?? []),
    channel: 0,
    sessions: new Map(),
    corruptNext: false,
    last: null,
    atr: new Uint8Array(0),
    apdus: r.apdus,
    echoes: r.echoes,
  };
  let current: SourcePos = c.pos;
  const done = (outcome: CaseRun['outcome'], extra: Partial<CaseRun> = {}): CaseRun => ({ ...r, ...extra, outcome, ms: performance.now() - t0 });
  try {
    st.atr = await target.reset();
    for (const step of [...file.prologue, ...c.steps]) {
      current = step.pos;
      await runStep(step, st, target, file, trace);
    }
    return done('pass');
  } catch (e) {
    if (e instanceof StepFailure) {
      trace?.(`  FAIL ${current.file}:${current.line}:${current.col}: ${e.message}`);
      return done('fail', { message: e.message, diff: e.diff, at: current });
    }
    if (e instanceof ScriptError) {
      trace?.(`  ERROR ${e.message}`);
      return done('error', { message: e.reason, at: e.pos });
    }
    trace?.(`  ERROR ${current.file}:${current.line}:${current.col}: ${message(e)}`);
    return done('error', { message: message(e), at: current });
  }
}

async function runStep(step: Step, st: CaseState, target: Target, file: ScriptFile, trace: RunOptions['trace']): Promise<void> {
  const io: Io = { st, target, getResponse: file.getResponse, trace };
  switch (step.op) {
    case 'send':
      return send(io, step.pos, step.apdu, step.expect, step.raw);
    case 'var':
      if (!step.onlyIfUnset || !st.vars.has(step.name)) st.vars.set(step.name, evalExpr(step.expr, st.vars));
      return;
    case 'assert': {
      const left = evalExpr(step.left, st.vars);
      const right = evalExpr(step.right, st.vars);
      if (equal(left, right) !== step.equal) {
        const why = step.equal ? 'assert ==: the two sides differ' : 'assert !=: the two sides are equal';
        throw new StepFailure(`${why} (${hex(left) || 'empty'} ${step.equal ? '≠' : '='} ${hex(right) || 'empty'})`, assertDiff(left, right, step.equal));
      }
      return;
    }
    case 'power':
      return power(io, step.action);
    case 'atr': {
      const m = matchResponse(step.pattern, st.atr, undefined, st.vars);
      if (!m.ok) throw new StepFailure(`ATR: ${m.reason}`, formatDataDiff('atr', [step.pattern], st.atr, m.at, m.reason));
      for (const [k, v] of m.captures) st.vars.set(k, v);
      return;
    }
    case 'channel':
      st.channel = step.channel;
      return;
    case 'scp03-open':
      return scp03Open(io, step);
    case 'scp03-close':
      st.sessions.delete(st.channel);
      return;
    case 'scp03-corrupt-mac':
      st.corruptNext = true;
      return;
    case 'load':
      return load(io, step.pos, step.path, step.block);
    case 'verify-signature':
      return verifySignature(evalExpr(step.cert, st.vars), evalExpr(step.data, st.vars), evalExpr(step.sig, st.vars));
    case 'echo': {
      const text = expandText(step.text, st.vars, step.pos, 'hex');
      st.echoes.push({ text, after: st.apdus.length });
      trace?.(`  # ${text}`);
      return;
    }
  }
}

interface Io {
  st: CaseState;
  target: Target;
  getResponse: boolean;
  trace: RunOptions['trace'];
}

async function power(io: Io, action: 'up' | 'down' | 'reset'): Promise<void> {
  const { st, target } = io;
  // After any of them the channels and the secure channels are gone (README "power up / power down / reset").
  st.sessions.clear();
  st.channel = 0;
  if (action === 'reset') st.atr = await target.reset();
  else if (action === 'up') st.atr = hasPower(target) ? await target.powerUp() : await target.reset();
  else if (hasPower(target)) await target.powerDown();
  else throw new Error(`target ${target.name} cannot power the card down`);
  io.trace?.(`  ${action === 'reset' ? 'reset' : `power ${action}`}${action === 'down' ? '' : `: ATR ${hex(st.atr)}`}`);
}

/**
 * One exchange with the T=0 follow-ups a reader driver does (ISO 7816-3 §10.3.3, ISO 7816-4 §5.3.4) unless the file
 * turned them off: 6CXX → the same command with Le = XX; 61XX → GET RESPONSE on the command's channel until the
 * data is complete, the pieces joined. Returns the final response (still protected, if it was) and the wall time.
 */
async function exchange(io: Io, wire: Uint8Array): Promise<{ response: Uint8Array; ms: number }> {
  const t0 = performance.now();
  const once = async (a: Uint8Array) => {
    io.trace?.(`  > ${hex(a)}`);
    const r = await io.target.transmit(a);
    io.trace?.(`  < ${hex(r)}`);
    if (r.length < 2) throw new Error(`the card answered ${r.length} byte(s), no status word`);
    return r;
  };
  let r = await once(wire);
  if (io.getResponse && sw1(r) === 0x6c) {
    const c = tryParse(wire);
    if (c?.ne) r = await once(encodeCommand({ ...c, ne: r[r.length - 1] || 256 }));
  }
  const channel = decodeCla(wire[0])?.channel ?? 0;
  const parts: Uint8Array[] = [];
  for (let n = 0; io.getResponse && sw1(r) === 0x61; n++) {
    if (n >= 256) throw new Error('the card keeps answering 61XX (256 GET RESPONSEs)');
    parts.push(r.subarray(0, r.length - 2));
    r = await once(encodeCommand({ cla: encodeCla(channel), ins: GET_RESPONSE, p1: 0, p2: 0, ne: r[r.length - 1] || 256 }));
  }
  return { response: parts.length ? concat(...parts, r) : r, ms: performance.now() - t0 };
}

/** Flips the last byte of the C-MAC (the last data byte; Le, if any, is not part of the MAC). */
function corruptMac(wire: Uint8Array): Uint8Array {
  const c = parseCommand(wire);
  const data = c.data.slice();
  data[data.length - 1] ^= 0xff;
  return encodeCommand({ cla: c.cla, ins: c.ins, p1: c.p1, p2: c.p2, data, ne: c.ne, extended: c.extended });
}

/**
 * Sends a command as written on the current channel: channel bits, then the SCP03 wrap (hostWrap keeps the channel
 * bits and adds the SM indication), the exchange, the unwrap, the record. Returns the plain response (data ‖ SW).
 */
async function transmitCommand(io: Io, pos: SourcePos, cmd: Uint8Array, raw: boolean): Promise<{ wire: Uint8Array; response: Uint8Array }> {
  const { st } = io;
  const plain = cmd.length ? concat(Uint8Array.of(claForChannel(cmd[0], st.channel)), cmd.subarray(1)) : cmd;
  const session = raw ? undefined : st.sessions.get(st.channel);
  let wire = session ? hostWrap(session, plain) : plain;
  if (session && session.level & Level.CMAC && st.corruptNext) {
    wire = corruptMac(wire);
    st.corruptNext = false;
  }
  st.last = { wire, channel: st.channel };
  const { response, ms } = await exchange(io, wire);
  let shown = response;
  let unwrapError: string | undefined;
  if (session) {
    try {
      shown = hostUnwrap(session, response);
    } catch (e) {
      if (!(e instanceof Scp03Error)) throw e;
      unwrapError = e.message; // R-MAC does not verify, bad R-ENC padding: the card's answer is wrong
    }
  }
  st.apdus.push({ pos, channel: st.channel, command: wire, response: shown, ms });
  if (unwrapError !== undefined) throw new StepFailure(unwrapError, formatDiff(wire, [], response, -1, unwrapError));
  return { wire, response: shown };
}

/** The first `<` alternative that matches; the captures go into the variables. Otherwise the step fails. */
function expectResponse(st: CaseState, command: Uint8Array, expect: ResponsePattern[], response: Uint8Array): void {
  const data = response.subarray(0, response.length - 2);
  const sw = swOf(response);
  let best: { at: number; reason: string; progress: number } | undefined;
  for (const p of expect) {
    const m = matchResponse(p, data, sw, st.vars);
    if (m.ok) {
      for (const [k, v] of m.captures) st.vars.set(k, v);
      return;
    }
    // Report the alternative that got furthest (-1: the data matched, only the SW did not).
    const progress = m.at < 0 ? data.length + 1 : m.at;
    if (!best || progress > best.progress) best = { at: m.at, reason: m.reason, progress };
  }
  const reason = best?.reason ?? 'no pattern';
  throw new StepFailure(reason, formatDiff(command, expect, response, best?.at ?? -1, reason));
}

async function send(io: Io, pos: SourcePos, apdu: Expr | null, expect: ResponsePattern[], raw: boolean): Promise<void> {
  const { st } = io;
  const patterns = expect.length ? expect : [okPattern(pos)];
  if (apdu === null) {
    // replay: the last wire bytes again, MAC and all. The response is matched as received, never unwrapped: the card
    // must refuse a replayed command (6982 or the like, with no R-MAC), and a session it would still honour is a failure.
    if (!st.last) throw new ScriptError(pos, 'replay: no command has been sent yet in this case');
    const { wire, channel } = st.last;
    const { response, ms } = await exchange(io, wire);
    st.apdus.push({ pos, channel, command: wire, response, ms });
    expectResponse(st, wire, patterns, response);
    return;
  }
  const cmd = evalExpr(apdu, st.vars);
  const { wire, response } = await transmitCommand(io, pos, cmd, raw);
  expectResponse(st, wire, patterns, response);
}

function checkKey(pos: SourcePos, what: string, key: Uint8Array): Uint8Array {
  if (key.length !== 16 && key.length !== 24 && key.length !== 32)
    throw new ScriptError(pos, `scp03 open: ${what} has ${key.length} bytes; an AES key has 16, 24 or 32`);
  return key;
}

/**
 * INITIALIZE UPDATE + EXTERNAL AUTHENTICATE (GPC Amd D §7.1, §7.2) on the current channel. `i=HH`, when given, is
 * the i parameter the card must announce; its b1 picks S16 mode for the host challenge. Without it S8 is tried, and
 * S16 after a 6700 (as GlobalPlatformPro does).
 */
async function scp03Open(io: Io, step: Extract<Step, { op: 'scp03-open' }>): Promise<void> {
  const { st } = io;
  const pos = step.pos;
  const keys: KeySet = {
    enc: checkKey(pos, 'key ENC', evalExpr(step.enc, st.vars)),
    mac: checkKey(pos, 'key MAC', evalExpr(step.mac, st.vars)),
    dek: checkKey(pos, 'key DEK', evalExpr(step.dek, st.vars)),
  };
  const cla = encodeCla(st.channel, { proprietary: true });
  let kvn = step.kvn;
  if (step.kvnExpr) {
    const v = evalExpr(step.kvnExpr, st.vars);
    if (v.length !== 1) throw new ScriptError(pos, `scp03 open: kvn= is ${v.length} bytes (${hex(v)}); a key version number is one byte`);
    kvn = v[0];
  }
  const host = { keys, kvn, level: step.level, cla, ...(step.i !== undefined ? { s16: (step.i & 0x01) !== 0 } : {}) };
  st.sessions.delete(st.channel);
  const sendPlain = async (apdu: Uint8Array) => {
    st.last = { wire: apdu, channel: st.channel };
    const { response, ms } = await exchange(io, apdu);
    st.apdus.push({ pos, channel: st.channel, command: apdu, response, ms });
    return response;
  };
  const mustBeOk = (what: string, apdu: Uint8Array, r: Uint8Array) => {
    if (swOf(r) === 0x9000) return;
    const why = `${what} answered ${swHex(swOf(r))} (${swMeaning(swOf(r))})`;
    throw new StepFailure(`scp03 open: ${why}`, formatDiff(apdu, [okPattern(pos, true)], r, -1, why));
  };
  let iu = hostInitializeUpdate(host);
  let r = await sendPlain(iu.apdu);
  if (swOf(r) === 0x6700 && step.i === undefined) {
    iu = hostInitializeUpdate({ ...host, s16: true });
    r = await sendPlain(iu.apdu);
  }
  mustBeOk('INITIALIZE UPDATE', iu.apdu, r);
  let auth: ReturnType<typeof hostAuthenticate>;
  try {
    auth = hostAuthenticate(host, iu.hostChallenge, r.subarray(0, r.length - 2));
  } catch (e) {
    if (e instanceof Scp03Error) throw new StepFailure(`scp03 open: ${e.message}`);
    throw e;
  }
  if (step.i !== undefined && auth.info.i !== step.i)
    throw new StepFailure(`scp03 open: the card announced i=${hex(Uint8Array.of(auth.info.i))}, the script expects i=${hex(Uint8Array.of(step.i))}`);
  let ea = auth.externalAuthenticate;
  if (st.corruptNext) {
    ea = corruptMac(ea);
    st.corruptNext = false;
  }
  mustBeOk('EXTERNAL AUTHENTICATE', ea, await sendPlain(ea));
  st.sessions.set(st.channel, auth.session);
  io.trace?.(`  # SCP03 session open on channel ${st.channel}: level ${hex(Uint8Array.of(step.level))}, kvn ${hex(Uint8Array.of(auth.info.kvn))}, i ${hex(Uint8Array.of(auth.info.i))}`);
}

/**
 * LOAD (GPCS 2.3.1 §11.6) of a CAP file's Load File Data Block in blocks of `block` bytes (gp-client's loadCommands),
 * through the session if one is open. Each LOAD must answer 9000 (a receipt, if any, is accepted).
 */
async function load(io: Io, pos: SourcePos, pathText: string, block: number): Promise<void> {
  const path = resolve(dirname(pos.file), expandText(pathText, io.st.vars, pos, 'utf8'));
  let lfdb: Uint8Array;
  try {
    lfdb = loadFileDataBlock(readCapFile(new Uint8Array(readFileSync(path))));
  } catch (e) {
    throw new ScriptError(pos, `load ${path}: ${message(e)}`);
  }
  if (!Number.isInteger(block) || block < 1 || block > 0xffff) throw new ScriptError(pos, `load: block size ${block} is outside 1–65535`);
  let loads: CommandFields[];
  try {
    loads = loadCommands(lfdb, block);
  } catch (e) {
    throw new ScriptError(pos, `load: ${message(e)}`);
  }
  const blocks = loads.length;
  for (const [n, c] of loads.entries()) {
    const { wire, response } = await transmitCommand(io, pos, encodeCommand(c), false);
    if (swOf(response) !== 0x9000) {
      const why = `LOAD block ${n + 1} of ${blocks} answered ${swHex(swOf(response))} (${swMeaning(swOf(response))})`;
      throw new StepFailure(why, formatDiff(wire, [okPattern(pos, true)], response, -1, why));
    }
  }
}

/** The first DER TLV of the bytes (a certificate read from an EF comes with FF filler after it). */
function firstTlv(b: Uint8Array): Uint8Array {
  try {
    return b.subarray(0, readHeader(b, 0).end);
  } catch (e) {
    throw new StepFailure(`verify-signature: the certificate is not DER: ${message(e)}`);
  }
}

/** RSA PKCS#1 v1.5 (block type 1): the signature, opened with the certificate's public key, must be `data`. */
function verifySignature(certBytes: Uint8Array, data: Uint8Array, sig: Uint8Array): void {
  let cert: X509Certificate;
  try {
    cert = new X509Certificate(firstTlv(certBytes));
  } catch (e) {
    if (e instanceof StepFailure) throw e;
    throw new StepFailure(`verify-signature: not an X.509 certificate: ${message(e)}`);
  }
  const subject = cert.subject.replace(/\n/g, ', ');
  if (cert.publicKey.asymmetricKeyType !== 'rsa')
    throw new StepFailure(`verify-signature: the certificate's key (subject ${subject}) is ${cert.publicKey.asymmetricKeyType ?? 'unknown'}, not RSA`);
  let opened: Uint8Array | undefined;
  try {
    opened = new Uint8Array(publicDecrypt({ key: cert.publicKey, padding: constants.RSA_PKCS1_PADDING }, sig));
  } catch {
    opened = undefined; // wrong length or not a type 1 block: does not verify
  }
  if (!opened || !equal(opened, data)) throw new StepFailure(`signature does not verify under the certificate's key (subject ${subject})`);
}

/** Two byte strings one above the other, ^^ under the first difference. */
function assertDiff(left: Uint8Array, right: Uint8Array, wantEqual: boolean): string {
  const lines = [`left:  ${spaced(left)}`, `right: ${spaced(right)}`];
  if (wantEqual) {
    let i = 0;
    while (i < left.length && i < right.length && left[i] === right[i]) i++;
    lines.push(`${' '.repeat(7 + i * 3)}^^`);
  }
  return lines.join('\n');
}

const spaced = (b: Uint8Array) => (b.length ? Array.from(b, (x) => x.toString(16).toUpperCase().padStart(2, '0')).join(' ') : '(empty)');
