// A seeded mutational APDU fuzzer for one installed applet: corpus commands (hex) are mutated (header fields, Lc/Le
// lies, truncation, extension, bit flips, byte insertion/removal, data-field edits and splices, re-encodings as ISO
// cases 1–4 in short and extended form, random bytes), sent to the chip, and every answer is checked: no exception out
// of transmit, a well-formed R-APDU with an ISO status word, no data with an error status (ISO 7816-4 §5.1.3), a
// status word the caller allows, no 6F00 unless allowed, no "internal error" in the chip log. Setup commands (e.g.
// SELECT) are replayed periodically and an invariant callback runs every K commands. The result is a report; failing
// is the caller's decision. watchTries follows the try counters of an applet's PINs for such invariants.
import { concat, fromHex, hex } from '../../emulator/bytes.ts';
import { decodeCla, encodeCommand, parseCommand } from '../../emulator/apdu.ts';
import type { CommandApdu } from '../../emulator/apdu.ts';
import type { Chip } from '../../emulator/card.ts';
import { isValidSw, swHex } from '../../emulator/iso.ts';
import { prng } from './prng.ts';

export type Rng = ReturnType<typeof prng>;

export type SwRule = ReadonlySet<number> | ((sw: number, command: Uint8Array) => boolean);
type Check = string | undefined | Promise<string | undefined>;
export type Setup = string[] | ((chip: Chip) => Check);

export interface FuzzTarget {
  name: string;
  chip: Chip;
  /** Valid command APDUs in hex, the material for mutation. */
  corpus: string[];
  /**
   * Run at the start, every setupEvery commands and before each invariant check: commands (hex) that must each answer
   * 9000, or a function (e.g. one opening an SCP03 session) returning a problem or nothing.
   */
  setup?: Setup;
  setupEvery?: number;
  /** Status words the applet may answer (plus 6F00 when allow6F00). */
  allowedSws: SwRule;
  allow6F00?: boolean;
  /** Called after every command with its status word and response data (to track state for the invariant). */
  observe?: (command: Uint8Array, sw: number, data: Uint8Array) => void;
  /** Runs every invariantEvery commands and once at the end; a returned string is a failure. */
  invariant?: (chip: Chip, sent: number) => Check;
  invariantEvery?: number;
  /** The chip's log lines (vmChip's logs): a new line containing "internal error" is a failure. */
  logs?: string[];
  /**
   * Mutants the card OS would take for itself (interindustry SELECT by name, MANAGE CHANNEL, GET RESPONSE) change the
   * selection under the fuzzer, so by default their INS is flipped to a neighbour; 'send' sends them as they are.
   */
  osCommands?: 'avoid' | 'send';
}

export interface FuzzOptions {
  seed: number;
  count: number;
  /** Stop collecting (and sending) after this many failures; default 20. */
  maxFailures?: number;
}

export interface FuzzFailure {
  index: number;
  mutation: string;
  command: string;
  response: string;
  reason: string;
}

export interface FuzzReport {
  name: string;
  seed: number;
  sent: number;
  sws: Map<number, number>;
  mutations: Map<string, number>;
  osAvoided: number;
  setups: number;
  invariantChecks: number;
  failures: FuzzFailure[];
  ms: number;
}

const CLAS = [0x00, 0x80, 0x81, 0x82, 0x83, 0x84, 0x88, 0x8c, 0x90, 0xc0, 0xc1, 0xcf, 0xe0, 0x01, 0x04, 0x0c, 0x10, 0x40, 0x60, 0xa0, 0xff];
const NES = [0, 1, 2, 3, 0x10, 0x7f, 0x80, 0xf0, 0xff, 256, 257, 0x1000, 65535, 65536];

/** Mutation operators with their weights (sum 100). */
const OPS: [string, number][] = [
  ['corpus', 4],
  ['header', 10],
  ['truncate', 5],
  ['extend', 5],
  ['lc', 5],
  ['le', 5],
  ['bitflip', 8],
  ['insert', 5],
  ['delete', 5],
  ['reshape', 14],
  ['data', 22],
  ['splice', 6],
  ['random', 6],
];
const OP_TOTAL = OPS.reduce((s, [, w]) => s + w, 0);

function pickOp(r: Rng): string {
  let x = r.int(OP_TOTAL);
  for (const [name, w] of OPS) {
    if (x < w) return name;
    x -= w;
  }
  return 'corpus';
}

function tryParse(a: Uint8Array): CommandApdu | undefined {
  try {
    return parseCommand(a);
  } catch {
    return undefined;
  }
}

/** Mutates a command's data field, keeping its header and re-encoding Lc (and its Le) correctly. */
function mutateData(r: Rng, data: Uint8Array, others: Uint8Array[]): Uint8Array {
  let d: Uint8Array = data.slice();
  const edits = 1 + r.int(3);
  for (let e = 0; e < edits; e++) {
    const k = r.int(8);
    if (k === 0 && d.length) d[r.int(d.length)] = r.int(256);
    else if (k === 1 && d.length) d[r.int(d.length)] ^= 1 << r.int(8);
    else if (k === 2 && d.length) {
      // A length-like byte: off by one, zero, 80/81/82 forms, or FF.
      const at = r.int(d.length);
      d[at] = r.pick([(d[at] + 1) & 0xff, (d[at] - 1) & 0xff, 0, 0x7f, 0x80, 0x81, 0x82, 0x83, 0xff]);
    } else if (k === 3) {
      const at = r.int(d.length + 1);
      d = concat(d.subarray(0, at), r.bytes(1 + r.int(4)), d.subarray(at));
    } else if (k === 4 && d.length) {
      const at = r.int(d.length);
      d = concat(d.subarray(0, at), d.subarray(Math.min(d.length, at + 1 + r.int(4))));
    } else if (k === 5) d = d.subarray(0, r.int(d.length + 1)).slice();
    else if (k === 6 && others.length) {
      // Splice: a slice of another corpus entry's data inserted or appended.
      const o = r.pick(others);
      const from = r.int(o.length + 1);
      const piece = o.subarray(from, from + 1 + r.int(Math.max(1, o.length - from)));
      const at = r.int(d.length + 1);
      d = concat(d.subarray(0, at), piece, r.next() < 0.5 ? d.subarray(at) : new Uint8Array(0));
    } else if (k === 7 && d.length > 1) {
      // Duplicate a segment (repeated TLVs).
      const from = r.int(d.length);
      const seg = d.subarray(from, from + 1 + r.int(d.length - from));
      d = concat(d, seg);
    }
  }
  return d.length > 255 && r.next() < 0.8 ? d.subarray(0, 255) : d;
}

/** One mutant of a corpus command; the operator's name comes back with it. */
export function mutate(r: Rng, base: Uint8Array, corpus: Uint8Array[], datas: Uint8Array[]): { op: string; apdu: Uint8Array } {
  const op = pickOp(r);
  let a: Uint8Array = base.slice();
  const c = tryParse(base);
  switch (op) {
    case 'corpus':
      break;
    case 'header': {
      const fields = 1 + r.int(3);
      for (let i = 0; i < fields; i++) {
        const at = r.int(4);
        if (at === 0) a[0] = r.next() < 0.7 ? r.pick(CLAS) : r.int(256);
        else if (at === 1) a[1] = r.next() < 0.5 ? r.pick(corpus)[1] : r.int(256);
        else a[at] = r.next() < 0.4 ? r.pick(corpus)[at] : r.next() < 0.5 ? r.int(4) : r.int(256);
      }
      break;
    }
    case 'truncate':
      a = a.subarray(0, r.int(a.length)).slice();
      break;
    case 'extend':
      a = concat(a, r.bytes(1 + r.int(r.next() < 0.9 ? 4 : 64)));
      break;
    case 'lc':
      if (a.length > 4) a[4] = r.next() < 0.6 ? (a[4] + r.pick([1, -1, 2, -2])) & 0xff : r.int(256);
      else a = concat(a, Uint8Array.of(1 + r.int(255)));
      break;
    case 'le':
      if (c && c.ne && r.next() < 0.6) a[a.length - 1] = r.int(256);
      else if (c && c.ne) a = a.subarray(0, a.length - 1).slice(); // Le dropped: case 4 → 3, case 2 → 1
      else a = concat(a, Uint8Array.of(r.int(256)));
      break;
    case 'bitflip': {
      const n = 1 + r.int(3);
      for (let i = 0; i < n && a.length; i++) a[r.int(a.length)] ^= 1 << r.int(8);
      break;
    }
    case 'insert': {
      const at = r.int(a.length + 1);
      a = concat(a.subarray(0, at), r.bytes(1 + r.int(4)), a.subarray(at));
      break;
    }
    case 'delete': {
      const at = r.int(a.length);
      a = concat(a.subarray(0, at), a.subarray(at + 1 + r.int(3)));
      break;
    }
    case 'reshape': {
      if (!c) break;
      // Well-formed: any ISO case in short or extended form, with the header or data possibly changed.
      let data: Uint8Array = c.data;
      const shape = r.int(4);
      if (shape === 0) data = new Uint8Array(0);
      else if (shape === 1 && !data.length) data = r.bytes(1 + r.int(16));
      else if (shape === 2) data = mutateData(r, data, datas);
      const ne = r.next() < 0.3 ? 0 : r.pick(NES);
      const head = { cla: c.cla, ins: c.ins, p1: c.p1, p2: c.p2 };
      if (r.next() < 0.3) head.cla = r.pick(CLAS);
      if (r.next() < 0.2) head.p2 = r.int(256);
      a = encodeCommand({ ...head, data, ne, extended: r.next() < 0.35 });
      break;
    }
    case 'data': {
      if (!c) break;
      const data = mutateData(r, c.data, datas);
      a = encodeCommand({ cla: c.cla, ins: c.ins, p1: c.p1, p2: c.p2, data, ne: c.ne, extended: c.extended && r.next() < 0.5 });
      break;
    }
    case 'splice': {
      const other = tryParse(r.pick(corpus));
      if (!c || !other) break;
      a = encodeCommand({ cla: c.cla, ins: c.ins, p1: c.p1, p2: c.p2, data: other.data.length ? other.data : r.bytes(r.int(8)), ne: r.next() < 0.5 ? c.ne : other.ne });
      break;
    }
    case 'random':
      a = r.bytes(r.next() < 0.95 ? r.int(40) : 256 + r.int(600));
      break;
  }
  return { op, apdu: a };
}

/** Whether the card OS (not the selected applet) takes this command: SELECT by name, MANAGE CHANNEL, GET RESPONSE. */
export function isOsCommand(a: Uint8Array): boolean {
  if (a.length < 4) return false;
  const cla = decodeCla(a[0]);
  if (!cla || !cla.interindustry) return false;
  return a[1] === 0x70 || a[1] === 0xc0 || (a[1] === 0xa4 && a[2] === 0x04);
}

function allowed(rule: SwRule, sw: number, cmd: Uint8Array): boolean {
  return typeof rule === 'function' ? rule(sw, cmd) : rule.has(sw);
}

/** Runs count mutants against the target; never throws for what the chip does (failures are in the report). */
export async function fuzzApplet(t: FuzzTarget, o: FuzzOptions): Promise<FuzzReport> {
  const started = performance.now();
  const r = prng(o.seed);
  const maxFailures = o.maxFailures ?? 20;
  const corpus = t.corpus.map(fromHex);
  const datas = corpus.map((c) => tryParse(c)?.data ?? new Uint8Array(0)).filter((d) => d.length > 0);
  const setupEvery = t.setupEvery ?? 64;
  const invariantEvery = t.invariantEvery ?? 500;
  const report: FuzzReport = {
    name: t.name,
    seed: o.seed,
    sent: 0,
    sws: new Map(),
    mutations: new Map(),
    osAvoided: 0,
    setups: 0,
    invariantChecks: 0,
    failures: [],
    ms: 0,
  };
  let logMark = t.logs?.length ?? 0;
  const fail = (mutation: string, cmd: Uint8Array, resp: Uint8Array | undefined, reason: string) => {
    if (report.failures.length < maxFailures)
      report.failures.push({ index: report.sent, mutation, command: hex(cmd), response: resp ? hex(resp) : '', reason });
  };
  const newLogErrors = (): string[] => {
    if (!t.logs) return [];
    const fresh = t.logs.slice(logMark).filter((l) => l.includes('internal error'));
    logMark = t.logs.length;
    return fresh;
  };
  /** Sends one command; undefined when transmit threw (recorded as a failure). */
  const send = (cmd: Uint8Array, mutation: string): { sw: number; data: Uint8Array } | undefined => {
    let resp: Uint8Array;
    try {
      resp = t.chip.transmit(cmd);
    } catch (e) {
      fail(mutation, cmd, undefined, `host exception: ${e instanceof Error ? e.message : String(e)}`);
      return undefined;
    }
    if (resp.length < 2) {
      fail(mutation, cmd, resp, `response of ${resp.length} bytes`);
      return undefined;
    }
    const sw = (resp[resp.length - 2] << 8) | resp[resp.length - 1];
    const data = resp.subarray(0, resp.length - 2);
    if (!isValidSw(sw)) fail(mutation, cmd, resp, `invalid status word ${swHex(sw)}`);
    else if (sw >> 8 >= 0x64 && sw >> 8 <= 0x6f && data.length) fail(mutation, cmd, resp, `error status ${swHex(sw)} with data`);
    if (sw === 0x6f00 && !t.allow6F00) fail(mutation, cmd, resp, 'uncaught applet exception (6F00)');
    else if (mutation !== 'setup' && sw !== 0x6f00 && !allowed(t.allowedSws, sw, cmd)) fail(mutation, cmd, resp, `status word ${swHex(sw)} not allowed`);
    for (const line of newLogErrors()) fail(mutation, cmd, resp, `chip log: ${line.split('\n')[0]}`);
    return { sw, data };
  };
  const problem = async (what: string, run: () => Check): Promise<void> => {
    let p: string | undefined;
    try {
      p = await run();
    } catch (e) {
      p = `${what} threw: ${e instanceof Error ? e.message : String(e)}`;
    }
    if (p) fail(what, new Uint8Array(0), undefined, p);
    for (const line of newLogErrors()) fail(what, new Uint8Array(0), undefined, `chip log: ${line.split('\n')[0]}`);
  };
  const setup = async () => {
    report.setups++;
    const s = t.setup ?? [];
    if (typeof s === 'function') return problem('setup', () => s(t.chip));
    for (const h of s) {
      const a = fromHex(h);
      const res = send(a, 'setup');
      if (res && res.sw !== 0x9000) fail('setup', a, undefined, `setup answered ${swHex(res.sw)}`);
    }
  };
  const invariant = async () => {
    const check = t.invariant;
    if (!check) return;
    await setup();
    report.invariantChecks++;
    await problem('invariant', () => check(t.chip, report.sent));
  };

  await setup();
  while (report.sent < o.count && report.failures.length < maxFailures) {
    const base = r.pick(corpus);
    const m = mutate(r, base, corpus, datas);
    let cmd = m.apdu;
    if ((t.osCommands ?? 'avoid') === 'avoid' && isOsCommand(cmd)) {
      cmd = cmd.slice();
      cmd[1] ^= 0x01;
      report.osAvoided++;
    }
    report.mutations.set(m.op, (report.mutations.get(m.op) ?? 0) + 1);
    const res = send(cmd, m.op);
    report.sent++;
    if (res) {
      report.sws.set(res.sw, (report.sws.get(res.sw) ?? 0) + 1);
      t.observe?.(cmd, res.sw, res.data);
    } else await setup();
    if (report.sent % invariantEvery === 0) await invariant();
    else if (report.sent % setupEvery === 0) await setup();
  }
  await invariant();
  report.ms = performance.now() - started;
  return report;
}

/** One line: count, time, the most frequent status words and the mutation mix. */
export function summary(rep: FuzzReport): string {
  const sws = [...rep.sws.entries()].sort((a, b) => b[1] - a[1]).map(([s, n]) => `${swHex(s)}×${n}`).join(' ');
  const ops = [...rep.mutations.entries()].sort((a, b) => b[1] - a[1]).map(([s, n]) => `${s} ${n}`).join(', ');
  return `${rep.name}: ${rep.sent} APDUs in ${(rep.ms / 1000).toFixed(1)} s (seed ${rep.seed}), ${rep.invariantChecks} invariant checks, ${rep.setups} setups, ${rep.osAvoided} OS commands turned; SWs ${sws}; mutations ${ops}`;
}

// --- try counters -------------------------------------------------------------------------------------------------

/** A reference (PIN, password) of the applet under fuzz: how to query its counter and present a value. */
export interface TriesRef {
  name: string;
  /** The retry query by SFI (hex, e.g. 00 20 00 98): 63Cx with x tries left, 9000 when verified since selection. */
  query: string;
  /** VERIFY of a value by SFI (hex), so that presenting it leaves the current EF alone. */
  verify: (value: Uint8Array) => string;
  /** Tries after a correct presentation. */
  limit: number;
  /** Whether a value of this length may be this reference's; the references' lengths must not overlap. */
  fits: (length: number) => boolean;
  /** The right value now; the watch follows the fuzzer's successful changes. */
  value: Uint8Array;
}

/** A command whose 9000 gives a reference a new value (full counter): its INS and the new value in its data. */
export interface TriesSetter {
  ins: number;
  value: (data: Uint8Array) => Uint8Array;
}

export interface TriesOptions {
  /** The chip under fuzz, for the queries the watch sends after each fuzzed command that may touch a counter. */
  chip: Chip;
  /** INS after which the counters are read at once (default VERIFY 20, CHANGE REFERENCE DATA 24, RESET RETRY COUNTER 2C). */
  follow?: number[];
  /**
   * Until this many fuzzed commands, a reference found at its last try gets its right value (SFI form, current EF
   * untouched), so the fuzz sees every 63Cx but cannot block it, and each check presents every right value; afterwards
   * nothing is presented and the fuzz may block the references. Absent: checks always present, no keep-alive.
   */
  keepAliveUntil?: number;
}

export interface TriesStats {
  /** VERIFYs with data the fuzzer sent that answered 9000 / 63Cx, per reference (by the value's length). */
  right: Map<string, number>;
  wrong: Map<string, number>;
  /** Successful value changes (setters) per reference. */
  changed: Map<string, number>;
  /** Counter reads after fuzzed commands, and the presentations of a last try's right value. */
  reads: number;
  keptAlive: Map<string, number>;
  /** Fuzzed commands seen when a reference was first found blocked. */
  blockedAt: Map<string, number>;
  /** Harness revivals (see TriesWatch.check). */
  revived: Map<string, number>;
}

export interface TriesWatch {
  refs: TriesRef[];
  stats: TriesStats;
  /**
   * The fuzzer's observe hook: follows VERIFY answers and the setters' 9000s; after a command with a followed INS it
   * reads every counter by its retry query and fails when one went up without that command being a correct VERIFY or
   * a setter that answered 9000.
   */
  observe(cmd: Uint8Array, sw: number): void;
  /**
   * The periodic check, run right after a reselection (nothing verified): the same counter comparison; a reference at
   * 0 tries is handed to `revive` (the caller's own unblock, which must bring the counter back to its limit) when
   * given; then, while keepAliveUntil allows, every reference with tries left is presented its right value, which must
   * answer 9000 (so protected files can be read).
   */
  check(revive?: (ref: TriesRef) => Check): Promise<string | undefined>;
  /** Whether the last check presented this reference's right value (so what it guards must be open). */
  verified(name: string): boolean;
}

const bump = (m: Map<string, number>, k: string) => m.set(k, (m.get(k) ?? 0) + 1);
const statusOf = (r: Uint8Array) => (r.length < 2 ? -1 : (r[r.length - 2] << 8) | r[r.length - 1]);

/** Watches the try counters of `refs` (all at their limits when the run starts). */
export function watchTries(refs: TriesRef[], setters: TriesSetter[], o: TriesOptions): TriesWatch {
  const follow = new Set(o.follow ?? [0x20, 0x24, 0x2c]);
  const last = new Map(refs.map((r) => [r.name, r.limit]));
  const refilled = new Set<string>();
  const stats: TriesStats = { right: new Map(), wrong: new Map(), changed: new Map(), reads: 0, keptAlive: new Map(), blockedAt: new Map(), revived: new Map() };
  let problem: string | undefined;
  let seen = 0;
  const verified = new Set<string>();
  const keepingAlive = () => o.keepAliveUntil === undefined || seen <= o.keepAliveUntil;
  const byLength = (n: number) => refs.find((r) => r.fits(n));
  const present = (ref: TriesRef): string | undefined => {
    const sw = statusOf(o.chip.transmit(fromHex(ref.verify(ref.value))));
    last.set(ref.name, ref.limit);
    return sw === 0x9000 ? undefined : `the right value of ${ref.name} answered ${swHex(sw)}`;
  };
  /** Reads every counter and compares it with the last reading; the counters (-1: unreadable) or a problem. */
  const read = (why: string): Map<string, number> => {
    const now = new Map<string, number>();
    stats.reads++;
    for (const ref of refs) {
      const sw = statusOf(o.chip.transmit(fromHex(ref.query)));
      const tries = sw === 0x9000 ? ref.limit : (sw & 0xfff0) === 0x63c0 ? sw & 0x0f : -1;
      now.set(ref.name, tries);
      if (tries < 0) {
        problem ??= `retry query of ${ref.name} answered ${swHex(sw)}`;
        continue;
      }
      const before = last.get(ref.name) ?? ref.limit;
      if (tries > before && !refilled.has(ref.name)) problem ??= `${ref.name}: try counter went up from ${before} to ${tries} ${why}`;
      if (tries === 0 && !stats.blockedAt.has(ref.name)) stats.blockedAt.set(ref.name, seen);
      last.set(ref.name, tries);
      refilled.delete(ref.name);
    }
    return now;
  };
  return {
    refs,
    stats,
    observe(cmd, sw) {
      seen++;
      const c = tryParse(cmd);
      if (c && c.data.length && c.ins === 0x20) {
        const ref = byLength(c.data.length);
        if (ref && sw === 0x9000) {
          bump(stats.right, ref.name);
          refilled.add(ref.name);
          if (hex(c.data) !== hex(ref.value)) problem ??= `VERIFY ${hex(cmd)} answered 9000 with a value that is not ${ref.name}'s`;
        } else if (ref && (sw & 0xfff0) === 0x63c0) bump(stats.wrong, ref.name);
        else if (!ref && sw === 0x9000) problem ??= `VERIFY ${hex(cmd)} answered 9000 with a value of no reference's length`;
      }
      const setter = c && sw === 0x9000 ? setters.find((s) => s.ins === c.ins) : undefined;
      if (c && setter) {
        const v = setter.value(c.data);
        const ref = byLength(v.length);
        if (ref) {
          ref.value = v.slice();
          refilled.add(ref.name);
          bump(stats.changed, ref.name);
        } else problem ??= `${hex(cmd)} answered 9000 but sets no known reference`;
      }
      if (cmd.length < 2 || !follow.has(cmd[1])) return;
      const now = read(`after ${hex(cmd)} (${swHex(sw)})`);
      if (o.keepAliveUntil === undefined || seen > o.keepAliveUntil) return;
      for (const ref of refs) {
        if (now.get(ref.name) !== 1) continue;
        bump(stats.keptAlive, ref.name);
        problem ??= present(ref);
      }
    },
    async check(revive) {
      read('since the last check');
      for (const ref of refs) {
        if (last.get(ref.name) !== 0 || !revive) continue;
        const p = await revive(ref);
        if (p) problem ??= `${ref.name}: revival failed: ${p}`;
        else {
          bump(stats.revived, ref.name);
          last.set(ref.name, ref.limit);
        }
      }
      // Presented after every revival: a revival may reselect the applet and end the verifications.
      verified.clear();
      for (const ref of refs) {
        if (last.get(ref.name) === 0 || !keepingAlive()) continue;
        const p = present(ref);
        if (p) problem ??= p;
        else verified.add(ref.name);
      }
      const found = problem;
      problem = undefined;
      return found;
    },
    verified: (name) => verified.has(name),
  };
}
