// A seeded mutational APDU fuzzer for one installed applet: corpus commands (hex) are mutated (header fields, Lc/Le
// lies, truncation, extension, bit flips, byte insertion/removal, data-field edits and splices, re-encodings as ISO
// cases 1–4 in short and extended form, random bytes), sent to the chip, and every answer is checked: no exception out
// of transmit, a well-formed R-APDU with an ISO status word, no data with an error status (ISO 7816-4 §5.1.3), a
// status word the caller allows, no 6F00 unless allowed, no "internal error" in the chip log. Setup commands (e.g.
// SELECT) are replayed periodically and an invariant callback runs every K commands. The result is a report; failing
// is the caller's decision.
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
