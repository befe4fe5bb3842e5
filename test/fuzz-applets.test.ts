// Fuzz (issue 5): seeded mutated APDUs against the project's applets, each built from Java source and installed on a
// fresh VM chip, through test/helpers/applet-fuzz.ts. Per applet: only the status words of its README table, no host
// exception, no 6F00, no internal error in the chip log, and the applet's invariants every few hundred commands.
// A new applet is one more entry in CASES (name, build, setup, corpus, allowed status words, checks).
// JPKI_FUZZ_SEED / JPKI_FUZZ_COUNT override the seed and size for exploratory runs. Without javac the cases are skipped
// unless JPKI_REQUIRE_JDK=1.
import { afterAll, describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ROOT, apiClassesIn, buildSample } from '../applet/build.ts';
import type { Sample } from '../applet/build.ts';
import type { Chip } from '../emulator/card.ts';
import { hex } from '../emulator/bytes.ts';
import { fuzzApplet, summary } from './helpers/applet-fuzz.ts';
import type { FuzzReport, FuzzTarget, Setup, SwRule } from './helpers/applet-fuzz.ts';
import { secure, tx } from './helpers/chip.ts';
import { gpInstall, gpLoad, lv, vmChip } from './helpers/vm-chip.ts';

const HAVE_JDK = spawnSync('javac', ['-version']).status === 0;
const SKIP = !HAVE_JDK && process.env.JPKI_REQUIRE_JDK !== '1';
if (SKIP) console.warn('fuzz-applets: javac not found on PATH, skipping (set JPKI_REQUIRE_JDK=1 to fail instead)');
const SEED = process.env.JPKI_FUZZ_SEED === undefined ? undefined : Number(process.env.JPKI_FUZZ_SEED);
const COUNT = process.env.JPKI_FUZZ_COUNT === undefined ? undefined : Number(process.env.JPKI_FUZZ_COUNT);

// --- building and installing -----------------------------------------------------------------------------------

let work = '';
let apiClasses = '';
const blocks = new Map<string, Uint8Array>();
afterAll(() => {
  if (work) rmSync(work, { recursive: true, force: true });
});

/** The Load File Data Block of an applet under applet/, compiled and converted into a shared temporary folder. */
function buildBlock(sample: Sample): Uint8Array {
  const done = blocks.get(sample.name);
  if (done) return done;
  if (!work) {
    work = mkdtempSync(join(tmpdir(), 'jpki-fuzz-applets-'));
    apiClasses = apiClassesIn(work);
  }
  const b = buildSample(sample, new Map(), {
    apiClasses,
    classesRoot: join(work, 'classes'),
    capRoot: join(work, 'cap'),
    samplesDir: join(ROOT, 'applet'),
  });
  if (!b.ok || !b.block) throw new Error(`${sample.name} build failed:\n${b.compile.output}\n${b.messages.join('\n')}`);
  blocks.set(sample.name, b.block);
  return b.block;
}

/** A fresh VM chip with the package loaded and one instance installed under the ISD (SCP03, default keys). */
async function chipWith(sample: Sample, instanceAid: string, params = ''): Promise<{ chip: Chip; logs: string[] }> {
  const block = buildBlock(sample);
  const { chip, logs } = vmChip();
  const sc = await secure(chip);
  const l = await gpLoad(sc, sample.packageAid, block);
  if (l.sw !== 0x9000) throw new Error(`LOAD ${sample.name}: ${l.sw.toString(16)}`);
  const i = await gpInstall(sc, sample.packageAid, sample.applets[0].aid, instanceAid, params);
  if (i.sw !== 0x9000) throw new Error(`INSTALL ${sample.name}: ${i.sw.toString(16)}`);
  return { chip, logs };
}

// --- the table ---------------------------------------------------------------------------------------------------

/** Per-run state hooks of a case: observe every answer, check the invariant, assert on the finished report. */
interface Checks {
  observe?: FuzzTarget['observe'];
  invariant?: FuzzTarget['invariant'];
  after?: (report: FuzzReport) => void;
}

interface AppletFuzzCase {
  name: string;
  seed: number;
  count: number;
  build: () => Promise<{ chip: Chip; logs: string[] }>;
  /** Commands (hex) replayed periodically, or a function such as one opening an SCP03 session. */
  setup: Setup;
  corpus: string[];
  /** The status words of the applet's README table, and those the card OS answers around the applet. */
  allowedSws: SwRule;
  checks?: (chip: Chip) => Checks;
  /** Status words the run must reach (so the fuzz got past the length and class checks). */
  mustReach: number[];
}

// --- ARA-M (applet/aram) -----------------------------------------------------------------------------------------

const ARAM_AID = 'A00000015141434C00';
const ARAM: Sample = {
  name: 'aram',
  package: 'jp.jpkise.aram',
  packageAid: 'A00000015141434C',
  version: '1.0',
  applets: [{ class: 'jp.jpkise.aram.AraM', aid: ARAM_AID }],
  uses: [],
};

const berLen = (n: number): string => (n < 0x80 ? '' : '81') + n.toString(16).padStart(2, '0').toUpperCase();
const tlv = (tag: string, v = ''): string => (tag + berLen(v.length / 2) + v).toUpperCase();
const refDo = (aid: string, h: string) => tlv('E1', aid + h);
const rule = (aid: string, h: string, ar: string) => tlv('E2', refDo(aid, h) + tlv('E3', ar));
const storeData = (cmd: string) => '80E29000' + lv(cmd);
const getSpecific = (ref: string) => '80CAFF50' + lv(ref) + '00';

const JPKI = tlv('4F', 'D392F000260100000001');
const OTHER = tlv('4F', 'D392F000260100000002');
const ALL_AIDS = tlv('4F');
const DEFAULT_APP = tlv('C0');
const SHA1 = tlv('C1', '11'.repeat(20));
const SHA1_B = tlv('C1', '22'.repeat(20));
const SHA256 = tlv('C1', '33'.repeat(32));
const ALL_APPS = tlv('C1');
const ALWAYS = tlv('D0', '01');
const NEVER = tlv('D0', '00');
const FILTERS = tlv('D0', '80CA0000FFFF0000' + '00B00000FF000000');
const NFC_ON = tlv('D1', '01');
const PERM = tlv('DB', '0000000000000001');
const bigRule = (i: number) => rule(tlv('4F', 'D392F00026010000' + i.toString(16).padStart(4, '0')), SHA256, FILTERS + NFC_ON + PERM);

/** Every command of applet/aram/README.md's APDU table, valid, before mutation. */
const ARAM_CORPUS = [
  '80CAFF4000',
  '80CAFF40F0',
  '80CAFF6000',
  '80CAFF60F0',
  '80CADF2000',
  getSpecific(refDo(JPKI, SHA1)),
  getSpecific(refDo(JPKI, SHA256)),
  getSpecific(refDo(OTHER, SHA1_B)),
  getSpecific(refDo(DEFAULT_APP, SHA1)),
  getSpecific(refDo(ALL_AIDS, ALL_APPS)),
  storeData(tlv('F0', rule(JPKI, SHA1, ALWAYS))),
  storeData(tlv('F0', rule(JPKI, ALL_APPS, NEVER) + rule(OTHER, SHA1_B, FILTERS + NFC_ON))),
  storeData(tlv('F0', rule(ALL_AIDS, ALL_APPS, NEVER + tlv('D1', '00')) + rule(DEFAULT_APP, SHA1, ALWAYS + PERM))),
  storeData(tlv('F0', rule(ALL_AIDS, SHA256, ALWAYS))),
  // Stores of three large rules each (about 210 bytes): eight of them fill the 2048-byte store (6A84).
  ...Array.from({ length: 8 }, (_, i) => storeData(tlv('F0', bigRule(3 * i) + bigRule(3 * i + 1) + bigRule(3 * i + 2)))),
  storeData('F100'),
  storeData(tlv('F1', JPKI)),
  storeData(tlv('F1', DEFAULT_APP)),
  storeData(tlv('F1', refDo(OTHER, SHA1_B))),
  storeData(tlv('F1', rule(ALL_AIDS, SHA256, ALWAYS))),
  storeData('F200'),
  storeData(tlv('F3', JPKI)),
  storeData('F400'),
];

/** The README's status words: its table, and the card OS's 6881 (channel not open) and 61xx (answer longer than Ne). */
const ARAM_SWS = new Set([0x9000, 0x6e00, 0x6d00, 0x6a86, 0x6700, 0x6985, 0x6984, 0x6982, 0x6981, 0x6a88, 0x6a80, 0x6a89, 0x6a84, 0x6881]);
const aramSw = (sw: number): boolean => ARAM_SWS.has(sw) || sw >> 8 === 0x61;

interface RuleListProblem {
  problem: string;
}

/** Parses a BER length at p (minimal forms 1, 81 xx, 82 xx xx); [length, offset after it] or a problem. */
function berLength(b: Uint8Array, p: number, end: number): [number, number] | RuleListProblem {
  if (p >= end) return { problem: `length missing at ${p}` };
  const f = b[p];
  if (f < 0x80) return [f, p + 1];
  if (f === 0x81 && p + 1 < end && b[p + 1] >= 0x80) return [b[p + 1], p + 2];
  if (f === 0x82 && p + 2 < end && b[p + 1] > 0 && b[p + 1] < 0x80) return [(b[p + 1] << 8) | b[p + 2], p + 3];
  return { problem: `bad length byte ${f.toString(16)} at ${p}` };
}

/** The children of a constructed value [p, end) as { tag, value } (single-byte tags), or a problem. */
function children(b: Uint8Array, p: number, end: number): { tag: number; v: Uint8Array }[] | RuleListProblem {
  const out: { tag: number; v: Uint8Array }[] = [];
  while (p < end) {
    const l = berLength(b, p + 1, end);
    if ('problem' in l) return l;
    const [n, v] = l;
    if (v + n > end) return { problem: `TLV ${b[p].toString(16)} overruns its parent` };
    out.push({ tag: b[p], v: b.subarray(v, v + n) });
    p = v + n;
  }
  return out;
}

/** Checks a Response-ALL-REF-AR-DO value against the README grammar; the REF-DOs (hex) or a problem. */
function checkRuleList(value: Uint8Array): string[] | RuleListProblem {
  const rules = children(value, 0, value.length);
  if ('problem' in rules) return rules;
  const refs: string[] = [];
  for (const r of rules) {
    if (r.tag !== 0xe2) return { problem: `not a REF-AR-DO: ${r.tag.toString(16)}` };
    if (r.v.length + 2 > 240) return { problem: 'REF-AR-DO over 240 bytes' };
    const parts = children(r.v, 0, r.v.length);
    if ('problem' in parts) return parts;
    if (parts.length !== 2 || parts[0].tag !== 0xe1 || parts[1].tag !== 0xe3) return { problem: `REF-AR-DO is not E1 E3: ${hex(r.v)}` };
    const ref = children(parts[0].v, 0, parts[0].v.length);
    if ('problem' in ref) return ref;
    if (ref.length !== 2) return { problem: `REF-DO with ${ref.length} parts` };
    const [aid, hash] = ref;
    if (aid.tag === 0x4f ? aid.v.length !== 0 && (aid.v.length < 5 || aid.v.length > 16) : aid.tag !== 0xc0 || aid.v.length !== 0)
      return { problem: `bad AID-REF-DO ${aid.tag.toString(16)}/${aid.v.length}` };
    if (hash.tag !== 0xc1 || ![0, 20, 32].includes(hash.v.length)) return { problem: `bad DeviceAppID-REF-DO ${hash.tag.toString(16)}/${hash.v.length}` };
    const ar = children(parts[1].v, 0, parts[1].v.length);
    if ('problem' in ar) return ar;
    if (!ar.length) return { problem: 'empty AR-DO' };
    let last = 0;
    for (const d of ar) {
      const order = d.tag === 0xd0 ? 1 : d.tag === 0xd1 ? 2 : d.tag === 0xdb ? 3 : 0;
      if (order <= last) return { problem: `AR-DO child ${d.tag.toString(16)} unknown, repeated or out of order` };
      last = order;
      if (order === 1 && !(d.v.length === 1 ? d.v[0] <= 1 : d.v.length > 0 && d.v.length % 8 === 0)) return { problem: 'bad APDU-AR-DO' };
      if (order === 2 && (d.v.length !== 1 || d.v[0] > 1)) return { problem: 'bad NFC-AR-DO' };
      if (order === 3 && d.v.length !== 8) return { problem: 'bad PERM-AR-DO' };
    }
    const key = hex(parts[0].v);
    if (refs.includes(key)) return { problem: `two rules with REF-DO ${key}` };
    refs.push(key);
  }
  return refs;
}

/** GET DATA [all] then [next] until the announced length is read: the whole FF40 TLV (hex), or a problem. */
function readAllRules(chip: Chip): string | RuleListProblem {
  let r = tx(chip, '80CAFF4000');
  if (r.sw !== 0x9000) return { problem: `GET DATA [all] answered ${r.sw.toString(16)}` };
  let data = r.data;
  const head = Uint8Array.from(Buffer.from(data.slice(0, 10), 'hex'));
  if (head[0] !== 0xff || head[1] !== 0x40) return { problem: `GET DATA [all] answered ${data.slice(0, 8)}…` };
  const l = berLength(head, 2, head.length);
  if ('problem' in l) return l;
  const total = l[1] + l[0];
  for (let parts = 0; data.length / 2 < total; parts++) {
    if (parts > 40) return { problem: 'GET DATA [next] never ends' };
    r = tx(chip, '80CAFF6000');
    if (r.sw !== 0x9000 || !r.data.length) return { problem: `GET DATA [next] answered ${r.sw.toString(16)} after ${data.length / 2} of ${total} bytes` };
    data += r.data;
  }
  if (data.length / 2 !== total) return { problem: `GET DATA [all]/[next] gave ${data.length / 2} bytes for ${total}` };
  const list = checkRuleList(Uint8Array.from(Buffer.from(data.slice(l[1] * 2), 'hex')));
  if ('problem' in list) return { problem: `rule list: ${list.problem}` };
  return data;
}

/** The refresh tag as a 64-bit number. */
function refreshTag(chip: Chip): bigint | RuleListProblem {
  const r = tx(chip, '80CADF2000');
  if (r.sw !== 0x9000 || !/^DF2008[0-9A-F]{16}$/.test(r.data)) return { problem: `refresh tag answer ${r.hex}` };
  return BigInt('0x' + r.data.slice(6));
}

/** A GET DATA [specific] answer: FF50 L { one AR-DO } with the README's AR-DO grammar; undefined when well-formed. */
function checkSpecificAnswer(data: Uint8Array): string | undefined {
  if (data[0] !== 0xff || data[1] !== 0x50) return `not FF50: ${hex(data)}`;
  const l = berLength(data, 2, data.length);
  if ('problem' in l) return l.problem;
  if (l[1] + l[0] !== data.length) return `FF50 length ${l[0]} for ${data.length - l[1]} bytes`;
  const v = data.subarray(l[1]);
  // The rule-list grammar applied to a synthetic REF-AR-DO around the answered AR-DO.
  const list = checkRuleList(Uint8Array.from([0xe2, 6 + v.length, 0xe1, 4, 0x4f, 0, 0xc1, 0, ...v]));
  return 'problem' in list ? `FF50 answer ${hex(data)}: ${list.problem}` : undefined;
}

/**
 * ARA-M invariants: the rule list always parses (README grammar, no duplicate REF-DO); the refresh tag moved by exactly
 * the number of successful STORE DATA since the last check (+1 each, README); without one the rules did not change;
 * every GET DATA [specific] answer is one well-formed AR-DO.
 */
function aramChecks(): Checks {
  let updates = 0;
  let totalUpdates = 0;
  let lastTag: bigint | undefined;
  let lastRules: string | undefined;
  let multiPart = 0;
  let maxRules = 0;
  let specificAnswers = 0;
  let badAnswer: string | undefined;
  return {
    observe(cmd, sw, data) {
      if (sw !== 0x9000 || cmd.length < 4 || (cmd[0] & 0xfc) !== 0x80) return;
      if (cmd[1] === 0xe2) {
        updates++;
        totalUpdates++;
      } else if (cmd[1] === 0xca && cmd[2] === 0xff && cmd[3] === 0x50) {
        specificAnswers++;
        badAnswer ??= checkSpecificAnswer(data);
      }
    },
    invariant(chip) {
      if (badAnswer) {
        const problem = badAnswer;
        badAnswer = undefined;
        return problem;
      }
      const tag = refreshTag(chip);
      if (typeof tag !== 'bigint') return tag.problem;
      const rules = readAllRules(chip);
      if (typeof rules !== 'string') return rules.problem;
      if (rules.length / 2 > 256) multiPart++;
      maxRules = Math.max(maxRules, rules.length / 2);
      try {
        if (lastTag !== undefined) {
          const moved = (tag - lastTag) & 0xffff_ffff_ffff_ffffn;
          if (moved !== BigInt(updates)) return `refresh tag moved by ${moved} for ${updates} successful updates`;
          if (updates === 0 && rules !== lastRules) return 'the rules changed without a successful update';
        }
        return undefined;
      } finally {
        lastTag = tag;
        lastRules = rules;
        updates = 0;
      }
    },
    after(report) {
      // The fuzz reached the update paths and long rule lists, not only the parsers' error exits.
      expect(totalUpdates).toBeGreaterThan(1000);
      expect(multiPart).toBeGreaterThan(0);
      expect(specificAnswers).toBeGreaterThan(100);
      console.log(`aram: ${totalUpdates} successful updates, ${specificAnswers} GET DATA [specific] answers, ${multiPart} multi-part rule lists (largest FF40 TLV ${maxRules} bytes), ${report.invariantChecks} checks`);
    },
  };
}

const CASES: AppletFuzzCase[] = [
  {
    name: 'ARA-M',
    seed: 0x5eed_0005,
    count: 100_000,
    build: () => chipWith(ARAM, ARAM_AID, '01'),
    setup: ['00A40400' + lv(ARAM_AID) + '00'],
    corpus: ARAM_CORPUS,
    allowedSws: aramSw,
    checks: aramChecks,
    mustReach: [0x9000, 0x6a80, 0x6a88, 0x6a89, 0x6a84, 0x6a86, 0x6981, 0x6984, 0x6985, 0x6700, 0x6d00, 0x6e00, 0x6881],
  },
];

describe.skipIf(SKIP)('applet fuzz', () => {
  it('the harness reports host exceptions, 6F00, status words outside the table and invariant problems', async () => {
    const { chip, logs } = await chipWith(ARAM, ARAM_AID, '01');
    let n = 0;
    // The same chip, except that every 500th command throws and every 700th answers 6F00.
    const faulty: Chip = {
      ...chip,
      transmit(a: Uint8Array): Uint8Array {
        n++;
        if (n % 500 === 0) throw new Error('boom');
        if (n % 700 === 0) return Uint8Array.of(0x6f, 0x00);
        return chip.transmit(a);
      },
    };
    const report = await fuzzApplet(
      {
        name: 'self-test',
        chip: faulty,
        corpus: ARAM_CORPUS,
        setup: ['00A40400' + lv(ARAM_AID) + '00'],
        allowedSws: (sw) => sw !== 0x6a89 && aramSw(sw),
        invariant: (_chip, sent) => (sent === 1000 ? 'planted problem' : undefined),
        invariantEvery: 1000,
        logs,
      },
      { seed: 7, count: 3000, maxFailures: 1000 },
    );
    const reasons = new Set(report.failures.map((f) => f.reason.replace(/ [0-9A-F]{4} /, ' xxxx ')));
    expect(reasons).toEqual(new Set(['host exception: boom', 'uncaught applet exception (6F00)', 'status word xxxx not allowed', 'planted problem']));
    expect(report.failures.filter((f) => f.reason.includes('not allowed')).every((f) => f.response.endsWith('6A89'))).toBe(true);
    chip.close();
  });


  for (const c of CASES) {
    it(`${c.name}: ${(COUNT ?? c.count).toLocaleString('en')} mutated APDUs answer only table status words and keep the invariants`, { timeout: 120_000 }, async () => {
      const { chip, logs } = await c.build();
      const checks = c.checks?.(chip) ?? {};
      const report = await fuzzApplet(
        { name: c.name, chip, corpus: c.corpus, setup: c.setup, allowedSws: c.allowedSws, observe: checks.observe, invariant: checks.invariant, invariantEvery: 250, logs },
        { seed: SEED ?? c.seed, count: COUNT ?? c.count },
      );
      console.log(summary(report));
      expect(report.failures).toEqual([]);
      expect(report.sent).toBe(COUNT ?? c.count);
      for (const sw of c.mustReach) expect(report.sws.get(sw) ?? 0, `SW ${sw.toString(16)} reached`).toBeGreaterThan(0);
      checks.after?.(report);
      chip.close();
    });
  }
});
