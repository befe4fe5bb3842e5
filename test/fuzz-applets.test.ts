// Fuzz (issue 5): seeded mutated APDUs against the project's applets, each built from Java source and installed on a
// fresh VM chip, through test/helpers/applet-fuzz.ts: ARA-M, the text AP (LOCKed) and the JPKI AP as a LOCKed card and
// as a personalised phone (with an SCP03 session the personalisation mutants go through). Per applet: only the status
// words of its README / doc tables, no host exception, no 6F00, no internal error in the chip log, and the applet's
// invariants every few hundred commands (for the PIN holders also: try counters that never go up without a correct
// VERIFY the fuzz sent, data files unchanged, keys that still sign under the right PIN).
// A new applet is one more entry in CASES (name, build, setup, corpus, allowed status words, checks).
// JPKI_FUZZ_SEED / JPKI_FUZZ_COUNT override the seed and size for exploratory runs. Without javac the cases are skipped
// unless JPKI_REQUIRE_JDK=1.
import { afterAll, describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ROOT, apiClassesIn, buildSample, loadProductApplet } from '../applet/build.ts';
import type { Sample } from '../applet/build.ts';
import type { Chip } from '../emulator/card.ts';
import { constants, createHash, publicDecrypt, verify as verifySignature } from 'node:crypto';
import type { KeyObject } from 'node:crypto';
import { encodeCommand, parseCommand } from '../emulator/apdu.ts';
import { concat, fromHex, hex } from '../emulator/bytes.ts';
import { swHex } from '../emulator/iso.ts';
import { hostWrap, openSecureChannel } from '../emulator/scp03.ts';
import type { Session } from '../emulator/scp03.ts';
import { openMemoryStore } from '../emulator/store.ts';
import type { ChipStore } from '../emulator/store.ts';
import { JPKI_AID, openJpkiPerso, revealTemporaryPin, unblockPin } from '../emulator/host/jpki-perso.ts';
import type { CertEf, KeyKind } from '../emulator/host/jpki-perso.ts';
import { TEXT_AP_AID, openTextApPerso, parseAttributesEf, parseMyNumberEf } from '../emulator/host/textap-perso.ts';
import type { Attributes } from '../emulator/host/textap-perso.ts';
import { fuzzApplet, summary, watchTries } from './helpers/applet-fuzz.ts';
import type { FuzzReport, FuzzTarget, Setup, SwRule, TriesRef, TriesWatch } from './helpers/applet-fuzz.ts';
import { DEFAULT_KEYS, secure, tx } from './helpers/chip.ts';
import { APSD_KEYS, AUTH_PIN, SIGN_PW, TEST_SE_ID, cardChip, phoneChip } from './helpers/jpki.ts';
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

/** A chip ready for the fuzz, its log lines, and the case's state hooks (made with what the build knows). */
interface Built {
  chip: Chip;
  logs: string[];
  checks?: Checks;
  /** Replayed periodically instead of the case's setup (e.g. one that needs the built chip's keys). */
  setup?: Setup;
}

interface AppletFuzzCase {
  name: string;
  seed: number;
  count: number;
  /** Makes the chip for a run of `count` commands. */
  build: (count: number) => Promise<Built>;
  /** Commands (hex) replayed periodically, or a function such as one opening an SCP03 session. */
  setup: Setup;
  setupEvery?: number;
  /** Commands between invariant checks (default 250). */
  invariantEvery?: number;
  corpus: string[];
  /** The status words of the applet's README table, and those the card OS answers around the applet. */
  allowedSws: SwRule;
  /** Status words the run must reach (so the fuzz got past the length and class checks). */
  mustReach: number[];
}

// --- ARA-M (applet/aram) -----------------------------------------------------------------------------------------

const ARAM_AID = 'A00000015141434C00';
const ARAM = loadProductApplet('aram');

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
  if (v.length === 0) return undefined; // FF50 00: no applicable rule (SEAC 1.1 Table 4-3)
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

// --- JPKI AP (applet/jpki, docs/jpki-applet.md): card and phone profiles -----------------------------------------

const ascii = (s: string): string => hex(new TextEncoder().encode(s));
const h2 = (n: number): string => n.toString(16).padStart(2, '0').toUpperCase();
const sw1sw2 = (r: Uint8Array): number => (r[r.length - 2] << 8) | r[r.length - 1];
const sha = (alg: string, m: string): string => createHash(alg).update(m).digest('hex').toUpperCase();
/** DigestInfo of SHA-256 and SHA-1 (PKCS #1 v2.2 §9.2 note 1) of a message. */
const digestInfo256 = (m: string): string => '3031300D060960864801650304020105000420' + sha('sha256', m);
const digestInfo1 = (m: string): string => '3021300906052B0E03021A05000414' + sha('sha1', m);

const JPKI_SELECT = '00A4040C' + lv(JPKI_AID);
const JPKI_FIDS = ['0001', '0002', '0006', '0008', '000A', '000B', '0017', '0018', '001A', '001B'];
const selectEf = (fid: string, p2 = '0C'): string => '00A402' + p2 + '02' + fid;
const verifyHex = (p2: string, value: string): string => '002000' + p2 + lv(ascii(value));
const signHex = (p2: string, di: string): string => '802A00' + p2 + lv(di) + '00';
/** READ BINARY of a whole EF by SFI with an extended Le (the JPKI AP implements ExtendedLength). */
const readWhole = (sfi: number, size: number): Uint8Array => encodeCommand({ cla: 0, ins: 0xb0, p1: 0x80 | sfi, p2: 0, ne: size, extended: true });

/** Every card-interface command of docs/jpki-applet.md, valid, before mutation (both profiles). */
const JPKI_CARD_INTERFACE = [
  ...JPKI_FIDS.map((f) => selectEf(f)),
  selectEf('0001', '00'),
  selectEf('001B', '00'),
  selectEf('3F00'),
  selectEf('0005'),
  '00A40000023F00',
  // READ BINARY: current EF at offsets, SFI forms, extended Le, past the end, PIN / key EFs, unknown SFI, bad P1.
  '00B0000000',
  '00B0000104',
  '00B007FF00',
  '00B0080000',
  '00B0009F00',
  '00B0810000',
  '00B0820010',
  '00B0860000',
  '00B0880003',
  '00B08A0000',
  '00B08B8000',
  '00B0970000',
  '00B09B0000',
  '00B0850000',
  '00B0C10000',
  hex(readWhole(0x01, 0x800)),
  hex(readWhole(0x0b, 0x800)),
  '00B0000000' + '0400',
  // VERIFY: right values by SFI and on the current EF, one wrong password, retry queries, not a PIN, P1≠00.
  verifyHex('98', AUTH_PIN),
  verifyHex('9B', SIGN_PW),
  verifyHex('80', AUTH_PIN),
  verifyHex('80', SIGN_PW),
  verifyHex('9B', 'WRONG1'),
  '00200098',
  '0020009B',
  '00200080',
  verifyHex('81', AUTH_PIN),
  verifyHex('97', AUTH_PIN),
  '00200198' + lv(ascii(AUTH_PIN)),
  // CHANGE REFERENCE DATA: the same value again, bad formats, current EF.
  '00240198' + lv(ascii(AUTH_PIN)),
  '0024019B' + lv(ascii(SIGN_PW)),
  '00240180' + lv(ascii(SIGN_PW)),
  '00240198' + lv(ascii('12A4')),
  '0024019B' + lv(ascii('abc123')),
  '00240097' + lv(ascii(AUTH_PIN)),
  // COMPUTE DIGITAL SIGNATURE with DigestInfos, by SFI and on the current EF; not a key EF; P1≠00.
  signHex('97', digestInfo256('jpki fuzz')),
  signHex('9A', digestInfo256('jpki fuzz')),
  signHex('80', digestInfo256('current')),
  signHex('9A', digestInfo1('sha-1')),
  signHex('98', digestInfo256('pin ef')),
  '802A0197' + lv(digestInfo256('p1')) + '00',
  // GET CHALLENGE, SET SESSION KEY, other INS.
  '0084000008',
  '0084000000',
  '0084000108',
  '80AE0000' + lv('00'.repeat(16)),
  '00CA000000',
  '80B0000000',
];

/** A one-block DER "certificate" (30 82 LL LL): the CA EFs take whatever DER comes (no key check). */
const TINY_DER = '3082000A' + '0101FF' + '0203010001' + '0500';
/**
 * The personalisation commands of docs/jpki-applet.md in plain form with CLA 84 (what a session wraps) and CLA 80, and
 * INITIALIZE UPDATE / EXTERNAL AUTHENTICATE; a LOCKed card answers all of them 6D00.
 */
function jpkiPersoCommands(seId: string): string[] {
  return [
    '84E0000000',
    '84E2001700',
    '84E2001A00',
    '84E4001A000000',
    '84E6011780' + '5A'.repeat(128),
    '84E8800B' + lv(TINY_DER),
    '84E88102' + lv(TINY_DER),
    '84E80001' + lv('308203' + 'A5'.repeat(100)),
    '84EA0018' + lv(ascii('9876')),
    '84EC0018',
    '84EC001B',
    '84EE001B' + lv(seId),
    '84EE0018' + lv('00'.repeat(16)),
    '84F00017',
    '84F2001A',
    '84F40000',
    '80E0000000',
    '80EC0018',
    '80F00000',
    '8050000008' + '00'.repeat(8) + '00',
    '8482030010' + '11'.repeat(16),
  ];
}

/** The app-side commands of the phone (REVEAL TEMPORARY PIN, RESET RETRY COUNTER); on a card they answer 6D00. */
const JPKI_APP_SIDE = [
  '80CA011800',
  '80CA011B00',
  '80CA001800',
  '002C0098' + lv(ascii('12345678' + AUTH_PIN)),
  '002C009B' + lv(ascii('87654321' + SIGN_PW)),
  '002C0080' + lv(ascii('00000000' + '4321')),
  '002C0098' + lv(ascii('1234')),
];

/**
 * Status words of docs/jpki-applet.md's card-interface table (63C0–63C5: 5 tries at most), and the card OS's 6881 /
 * 61xx. Not 6985: its only source there (a key not present) cannot happen on a personalised card, so a 6985 would be an
 * app-side or personalisation command reaching the card past its 6D00.
 */
const JPKI_CARD_SWS = new Set([0x9000, 0x6700, 0x6981, 0x6982, 0x6984, 0x6986, 0x6a80, 0x6a82, 0x6a86, 0x6a88, 0x6b00, 0x6d00, 0x6e00, 0x6881]);
const jpkiCardSw = (sw: number): boolean => JPKI_CARD_SWS.has(sw) || (sw >= 0x63c0 && sw <= 0x63c5) || sw >> 8 === 0x61;

/** The auth PIN (EF 0018, 4 digits, 3 tries) and the sign password (EF 001B, 6–16 of [A-Z0-9], 5 tries). */
function jpkiRefs(authPin: string, signPin: string): TriesRef[] {
  const enc = (s: string) => new TextEncoder().encode(s);
  return [
    { name: 'auth PIN', query: '00200098', verify: (v) => '00200098' + lv(hex(v)), limit: 3, fits: (n) => n === 4, value: enc(authPin) },
    { name: 'sign password', query: '0020009B', verify: (v) => '0020009B' + lv(hex(v)), limit: 5, fits: (n) => n >= 6 && n <= 16, value: enc(signPin) },
  ];
}

/** EF content as it must read: the DER, then FF up to the EF size. */
const efImage = (der: Uint8Array, size = 0x800): Uint8Array => {
  const out = new Uint8Array(size).fill(0xff);
  out.set(der);
  return out;
};

/** Whether `data` is a slice of one of the images (what a READ BINARY may answer). */
const sliceOf = (data: Uint8Array, images: Uint8Array[]): boolean => {
  const d = hex(data);
  return images.some((img) => {
    const h = hex(img);
    for (let at = h.indexOf(d); at >= 0; at = h.indexOf(d, at + 1)) if (at % 2 === 0) return true;
    return false;
  });
};

interface JpkiState {
  chip: Chip;
  profile: 'card' | 'phone';
  publicKeys: Record<KeyKind, KeyObject>;
  certs: Record<CertEf, Uint8Array>;
  tries: TriesWatch;
  /** The phone's revival of a blocked or temporary-PIN reference (INITIALISE PIN flow), run by the harness. */
  revive?: (ref: TriesRef) => Promise<string | undefined>;
  /** Extra observation and report lines (the phone's temporary-PIN model). */
  observe?: FuzzTarget['observe'];
  extra?: () => string;
}

/**
 * JPKI invariants: the try counters (watchTries); every signature the fuzz obtained verifies under one of the two
 * public keys and holds the command's data; the certificate EFs read exactly as personalised (a WRITE CERTIFICATE
 * that answered 9000 on its last block is the only way to change one: the EF then holds a DER and FF filler); at the
 * end both keys sign with the right PIN, or a blocked PIN refuses (6984) and the key does not sign (6982).
 */
function jpkiChecks(st: JpkiState): Checks {
  const { chip } = st;
  const certFid: Record<CertEf, number> = { sign: 0x01, signCa: 0x02, auth: 0x0a, authCa: 0x0b };
  const expected = new Map<number, Uint8Array>((Object.keys(certFid) as CertEf[]).map((ef) => [certFid[ef], efImage(st.certs[ef])]));
  const rewritten = new Set<number>();
  // EF 0006 (token name, space-padded, then FF) and EF 0008 (both certificates present).
  const name = st.profile === 'card' ? 'JPKIAPICCTOKEN2' : 'JPKIAPGPSETOKEN';
  const fixed = [efImage(new TextEncoder().encode(name.padEnd(32, ' ')), 160), fromHex('8F8F00')];
  let reads = 0;
  const signed: Record<KeyKind, number> = { auth: 0, sign: 0 };
  let badAnswer: string | undefined;
  let certReads = 0;
  let certWrites = 0;
  let lockedOut = 0;
  const signer = (input: Uint8Array, sig: Uint8Array): KeyKind | undefined => {
    for (const kind of ['auth', 'sign'] as const) {
      try {
        const plain = publicDecrypt({ key: st.publicKeys[kind], padding: constants.RSA_PKCS1_PADDING }, sig);
        if (hex(plain) === hex(input)) return kind;
      } catch {
        // not this key
      }
    }
    return undefined;
  };
  return {
    observe(cmd, sw, data) {
      st.tries.observe(cmd, sw);
      st.observe?.(cmd, sw, data);
      if (sw !== 0x9000 || cmd.length < 5) return;
      if (cmd[1] === 0x2a) {
        const c = parseCommand(cmd);
        const kind = data.length === 256 ? signer(c.data, data) : undefined;
        if (kind) signed[kind]++;
        else badAnswer ??= `COMPUTE DIGITAL SIGNATURE ${hex(cmd)} answered ${hex(data.subarray(0, 16))}… that no key's signature of the data`;
      } else if (cmd[1] === 0xb0 && data.length && rewritten.size === 0) {
        // Every answer is a slice of an EF as personalised (while no certificate write is pending a check).
        reads++;
        if (!sliceOf(data, [...expected.values(), ...fixed])) badAnswer ??= `READ BINARY ${hex(cmd)} answered ${hex(data.subarray(0, 16))}…, in no EF`;
      } else if (cmd[1] === 0xe8 && cmd[2] & 0x80) {
        rewritten.add(cmd[3]);
        certWrites++;
      }
    },
    async invariant() {
      if (badAnswer) {
        const p = badAnswer;
        badAnswer = undefined;
        return p;
      }
      const p = await st.tries.check(st.revive);
      if (p) return p;
      for (const [fid, image] of expected) {
        const r = chip.transmit(readWhole(fid, image.length));
        const sw = sw1sw2(r);
        const data = r.subarray(0, r.length - 2);
        // EF 0001 needs the sign password, the phone's EF 000A the auth PIN: shut only when the check did not verify it.
        const guard = fid === 0x01 ? st.tries.refs[1] : fid === 0x0a && st.profile === 'phone' ? st.tries.refs[0] : undefined;
        if (sw === 0x6982 && guard && !st.tries.verified(guard.name)) {
          lockedOut++;
          continue;
        }
        if (sw !== 0x9000) return `READ BINARY of EF ${h2(fid)} answered ${swHex(sw)}`;
        certReads++;
        if (rewritten.has(fid)) {
          const len = data[0] === 0x30 && data[1] === 0x82 ? 4 + ((data[2] << 8) | data[3]) : -1;
          if (len < 0 || len > data.length || data.subarray(len).some((b) => b !== 0xff)) return `EF ${h2(fid)} after WRITE CERTIFICATE is not a DER with FF filler: ${hex(data.subarray(0, 8))}…`;
          expected.set(fid, data.slice());
          rewritten.delete(fid);
        } else if (hex(data) !== hex(image)) return `EF ${h2(fid)} changed without a WRITE CERTIFICATE: ${hex(data.subarray(0, 16))}…`;
      }
      return undefined;
    },
    after(report) {
      // The keys still sign under the right PIN, or the PIN is blocked (card: for good).
      for (const [kind, ref] of [['auth', st.tries.refs[0]], ['sign', st.tries.refs[1]]] as const) {
        expect(sw1sw2(chip.transmit(fromHex(JPKI_SELECT)))).toBe(0x9000);
        const q = sw1sw2(chip.transmit(fromHex(ref.query)));
        const message = `final ${kind}`;
        const sign = signHex(kind === 'auth' ? '97' : '9A', digestInfo256(message));
        const v = sw1sw2(chip.transmit(fromHex(ref.verify(ref.value))));
        const r = chip.transmit(fromHex(sign));
        if (q === 0x63c0) {
          expect(v, `${ref.name} blocked`).toBe(0x6984);
          expect(sw1sw2(r)).toBe(0x6982);
          continue;
        }
        expect(v, `${ref.name} right value`).toBe(0x9000);
        expect(sw1sw2(r)).toBe(0x9000);
        expect(verifySignature('sha256', Buffer.from(message), st.publicKeys[kind], r.subarray(0, r.length - 2))).toBe(true);
      }
      const t = st.tries.stats;
      const line = (m: Map<string, number>) => [...m].map(([k, n]) => `${k} ${n}`).join(', ') || 'none';
      console.log(
        `${report.name}: signatures auth ${signed.auth} / sign ${signed.sign}; ${reads} READ BINARY answers; VERIFY right ${line(t.right)}; wrong ${line(t.wrong)}; ` +
          `changed ${line(t.changed)}; ${t.reads} counter reads, last try kept alive ${line(t.keptAlive)}; blocked at ${line(t.blockedAt)}; revived ${line(t.revived)}; cert EFs read ${certReads} (${lockedOut} shut: PIN blocked or not presented), ` +
          `${certWrites} certificate writes${st.extra ? '; ' + st.extra() : ''}`,
      );
      // The fuzz reached the signing path with both keys, not only the refusals.
      expect(signed.auth).toBeGreaterThan(0);
      expect(signed.sign).toBeGreaterThan(0);
    },
  };
}

/** The PINs are kept from blocking for the first 90 % of a run; in the rest the fuzz may block them (6984 paths). */
const keepAlive = (count: number): number => Math.floor(count * 0.9);

/** Reopens a chip on its store with a log (the personalisation helpers make their chips without one). */
function reopen(chip: Chip, store: ChipStore): { chip: Chip; logs: string[] } {
  chip.powerDown();
  if (!store.powered) store.powerUp();
  const { chip: again, logs } = vmChip({ store });
  return { chip: again, logs };
}

/** A card personalised and LOCKed by the issuer (test/helpers/jpki.ts cardChip). */
async function jpkiCard(count: number): Promise<Built> {
  const store = openMemoryStore();
  const card = await cardChip({ store });
  const { chip, logs } = reopen(card.chip, store);
  const tries = watchTries(jpkiRefs(AUTH_PIN, SIGN_PW), [{ ins: 0x24, value: (d) => d }], { chip, keepAliveUntil: keepAlive(count) });
  const publicKeys = { auth: card.keys.auth.publicKey, sign: card.keys.sign.publicKey };
  return { chip, logs, checks: jpkiChecks({ chip, profile: 'card', publicKeys, certs: card.certs, tries }) };
}

/**
 * Personalisation INS that a phone-case mutant with CLA 84 carries through the fuzz's SCP03 session (wrapped by the
 * host, so it passes the C-MAC and reaches the command's own checks). ERASE and DISABLE KEY stay raw (a bad MAC, 6982):
 * one success would end the keys' life for the rest of the run. IMPORT KEY COMPONENT, SET PIN and LOCK answer 6D00 on
 * a phone before the session is looked at, which would only put the MAC chains out of step.
 */
const WRAPPED_INS = new Set([0xe0, 0xe2, 0xe4, 0xe8, 0xec, 0xee]);

/**
 * A phone personalised by the TSM and the app (test/helpers/jpki.ts phoneChip). The setup selects the AP and opens an
 * SCP03 session with the APSD's keys (level 03) through which WRAPPED_INS mutants go; a PIN found blocked or behind a
 * temporary PIN is revived by the harness with the phone's own flow (INITIALISE PIN, REVEAL, RESET RETRY COUNTER).
 * Extra invariants: a temporary PIN is revealed at most once per SET TEMPORARY / INITIALISE PIN, as 8 digits; its own
 * counter goes down by one per wrong RESET RETRY COUNTER and is dead (6984) only at 0; GET SE IDENTIFIER gives the
 * identifier of the install.
 */
async function jpkiPhone(count: number): Promise<Built> {
  const store = openMemoryStore();
  const phone = await phoneChip({ store });
  const { chip: raw, logs } = reopen(phone.chip, store);
  let session: Session | undefined;
  let wrapped = 0;
  let sessions = 0;
  const chip: Chip = {
    ...raw,
    transmit(a: Uint8Array): Uint8Array {
      if (session && a.length >= 4 && a[0] === 0x84 && WRAPPED_INS.has(a[1])) {
        const plain = a.slice();
        plain[0] = 0x80;
        let w: Uint8Array | undefined;
        try {
          w = hostWrap(session, plain);
        } catch {
          w = undefined; // not a command the host can wrap: it goes out as the fuzzer made it
        }
        if (w) {
          wrapped++;
          return raw.transmit(w);
        }
      }
      return raw.transmit(a);
    },
  };
  const setup = async (): Promise<string | undefined> => {
    session = undefined;
    const sel = sw1sw2(raw.transmit(fromHex(JPKI_SELECT)));
    if (sel !== 0x9000) return `SELECT JPKI AP answered ${swHex(sel)}`;
    session = (await openSecureChannel(async (a) => raw.transmit(a), { keys: APSD_KEYS, level: 0x03, cla: 0x80 })).session;
    sessions++;
    return undefined;
  };
  type Revealable = 'yes' | 'no' | 'unknown';
  const revealable: Record<KeyKind, Revealable> = { auth: 'no', sign: 'no' };
  /** Tries left on the pending temporary PIN as the fuzz saw them (undefined: none pending, or not known). */
  const tempLeft: Record<KeyKind, number | undefined> = { auth: undefined, sign: undefined };
  const kindOf = (p2: number): KeyKind | undefined => (p2 === 0x18 || p2 === 0x98 ? 'auth' : p2 === 0x1b || p2 === 0x9b ? 'sign' : undefined);
  let tempSets = 0;
  let reveals = 0;
  let unblockTries = 0;
  let seIds = 0;
  let badTemp: string | undefined;
  const observe: FuzzTarget['observe'] = (cmd, sw, data) => {
    if (cmd.length < 4) return;
    const ins = cmd[1];
    const kind = kindOf(cmd[3]);
    if ((ins === 0xec || ins === 0xee) && sw === 0x9000) {
      tempSets++;
      if (kind) {
        revealable[kind] = 'yes';
        tempLeft[kind] = 3;
      }
    } else if (ins === 0xca && sw === 0x9000) {
      reveals++;
      const digits = new TextDecoder().decode(data);
      if (!/^[0-9]{8}$/.test(digits)) badTemp ??= `REVEAL answered ${hex(data)}, not 8 digits`;
      if (!kind || revealable[kind] === 'no') badTemp ??= `REVEAL ${hex(cmd)} gave a temporary PIN that was not pending or already revealed`;
      if (kind) revealable[kind] = 'no';
    } else if (ins === 0x2c && (sw === 0x9000 || (sw & 0xfff0) === 0x63c0 || sw === 0x6984)) {
      // The temporary PIN's own counter only goes down, one per wrong try, and is dead (6984) only at 0.
      const left = kind ? tempLeft[kind] : undefined;
      if (left !== undefined && (sw & 0xfff0) === 0x63c0 && (sw & 0x0f) !== left - 1) badTemp ??= `RESET RETRY COUNTER ${hex(cmd)} answered ${swHex(sw)} with ${left} tries left`;
      if (left !== undefined && sw === 0x6984 && left !== 0) badTemp ??= `RESET RETRY COUNTER ${hex(cmd)} answered 6984 with ${left} tries left`;
      if (kind) tempLeft[kind] = (sw & 0xfff0) === 0x63c0 ? sw & 0x0f : sw === 0x6984 ? 0 : undefined;
      else tempLeft.auth = tempLeft.sign = undefined;
      if (sw === 0x6984) return;
      unblockTries++;
      // The exhausting try (63C0) and a success end the temporary PIN; on the current EF (P2 80) the kind is unknown.
      if (sw === 0x9000 || sw === 0x63c0) {
        if (kind) revealable[kind] = 'no';
        else revealable.auth = revealable.sign = 'unknown';
      }
    } else if (ins === 0xe0 && sw === 0x9000) {
      seIds++;
      if (hex(data) !== hex(phone.seId)) badTemp ??= `GET SE IDENTIFIER answered ${hex(data)}`;
    }
  };
  const transmit = async (a: Uint8Array) => raw.transmit(a);
  const revive = async (ref: TriesRef): Promise<string | undefined> => {
    const kind: KeyKind = ref.name === 'auth PIN' ? 'auth' : 'sign';
    session = undefined;
    try {
      const perso = await openJpkiPerso(transmit, { keys: APSD_KEYS, level: 0x03 });
      await perso.initialisePin(kind, phone.seId);
      const temp = await revealTemporaryPin(transmit, kind);
      await unblockPin(transmit, kind, temp, new TextDecoder().decode(ref.value));
      revealable[kind] = 'no';
      tempLeft[kind] = undefined;
      return undefined;
    } catch (e) {
      return e instanceof Error ? e.message : String(e);
    }
  };
  const tries = watchTries(
    jpkiRefs(phone.authPin, phone.signPin),
    [
      { ins: 0x24, value: (d) => d },
      { ins: 0x2c, value: (d) => d.subarray(8) },
    ],
    { chip: raw, keepAliveUntil: keepAlive(count) },
  );
  const checks = jpkiChecks({
    chip: raw,
    profile: 'phone',
    publicKeys: phone.publicKeys,
    certs: phone.certs,
    tries,
    revive,
    observe,
    extra: () => `${sessions} sessions, ${wrapped} wrapped commands, ${seIds} SE identifiers, ${tempSets} temporary PINs set, ${reveals} revealed, ${unblockTries} RESET RETRY COUNTER tries`,
  });
  const invariant = checks.invariant;
  const after = checks.after;
  return {
    chip,
    logs,
    setup,
    checks: {
      ...checks,
      after(report) {
        after?.(report);
        // The session path and the temporary-PIN flow were reached, not only their refusals.
        expect(wrapped).toBeGreaterThan(1000);
        expect(tempSets).toBeGreaterThan(0);
        expect(reveals).toBeGreaterThan(0);
        expect(unblockTries).toBeGreaterThan(0);
      },
      invariant: async (c, sent) => {
        if (badTemp) {
          const p = badTemp;
          badTemp = undefined;
          return p;
        }
        return invariant?.(c, sent);
      },
    },
  };
}

/**
 * The phone answers the card interface, the app-side table (6985 among others) and the personalisation table
 * (docs/jpki-applet.md), whose INITIALIZE UPDATE / EXTERNAL AUTHENTICATE also answer 6300 (host cryptogram refused).
 */
const jpkiPhoneSw = (sw: number): boolean => jpkiCardSw(sw) || sw === 0x6985 || sw === 0x6300;

// --- the text AP (applet/textap, its README) ------------------------------------------------------------------------

const TEXT_AP = loadProductApplet('textap');
const TEXT_SELECT = '00A4040C' + lv(TEXT_AP_AID);
const TEXT_PIN = '1234';
/** A 個人番号 with a right check digit (照合番号A), and 照合番号B: born 1980-02-17 (昭和55), expiry 2035, code 2285. */
const MY_NUMBER = '123456789018';
const NUMBER_B = '55021720352285';
const PERSON: Attributes = { name: '番号\u3000花子', address: '東京都千代田区霞が関２－１－２　' + '総務省気付　'.repeat(5), birth: '19800217', sex: '2' };
const TEXT_FIDS = ['0001', '0002', '0011', '0012', '0014', '0015'];

/**
 * Every command of applet/textap/README.md's APDU table, the card commands it does not implement, and its
 * personalisation commands (6D00 after LOCK), valid, before mutation.
 */
const TEXT_CORPUS = [
  ...TEXT_FIDS.map((f) => selectEf(f)),
  selectEf('0002', '00'),
  selectEf('0003'),
  selectEf('0008'),
  selectEf('3F00'),
  '00A40000023F00',
  '00A4020C0100',
  // READ BINARY: current EF at offsets, SFI forms, past the end, references, unknown SFI, bad P1.
  '00B0000000',
  '00B0000005',
  '00B0000100',
  '00B001FF00',
  '00B0020000',
  '00B0001100',
  '00B0810000',
  '00B0820000',
  '00B0820140',
  '00B0910000',
  '00B0920000',
  '00B0830000',
  '00B0E20000',
  // VERIFY: the right PIN and 照合番号 by SFI and on the current EF, retry queries, EF 0012, not a reference, P1≠00.
  verifyHex('91', TEXT_PIN),
  verifyHex('94', MY_NUMBER),
  verifyHex('95', NUMBER_B),
  verifyHex('80', TEXT_PIN),
  '00200091',
  '00200092',
  '00200094',
  '00200095',
  '00200080',
  verifyHex('92', TEXT_PIN),
  verifyHex('81', TEXT_PIN),
  '00200191' + lv(ascii(TEXT_PIN)),
  // CHANGE REFERENCE DATA: the PIN again, 照合番号A/B (6985), EF 0012 (6984), bad format, P1≠01, not a reference.
  '00240191' + lv(ascii(TEXT_PIN)),
  '00240180' + lv(ascii(TEXT_PIN)),
  '00240194' + lv(ascii(MY_NUMBER)),
  '00240195' + lv(ascii(NUMBER_B)),
  '00240192' + lv(ascii(TEXT_PIN)),
  '00240191' + lv(ascii('12A4')),
  '00240091' + lv(ascii(TEXT_PIN)),
  '00240181' + lv(ascii(TEXT_PIN)),
  // Not implemented (6D00): signature, SET SESSION KEY, GET CHALLENGE, VERIFY CERTIFICATE, GET DATA.
  signHex('00', digestInfo256('text')),
  '80AE0000' + lv('00'.repeat(16)),
  '0084000008',
  '80A20000' + lv('7F2181' + '00'.repeat(20)),
  '00CA000000',
  // Personalisation after LOCK (6D00), in the SM class with a made-up MAC and in the plain class.
  '84E88001' + lv(ascii(MY_NUMBER) + '00'.repeat(8)),
  '84E88002' + lv('DF2203414243' + 'DF230144' + 'DF2408' + ascii('19800217') + 'DF250132' + '00'.repeat(8)),
  '84E80002' + lv('DF2203414243' + '00'.repeat(8)),
  '84EA0011' + lv(ascii('1111') + '00'.repeat(8)),
  '84EA0015' + lv(ascii(NUMBER_B) + '00'.repeat(8)),
  '84F40000' + lv('00'.repeat(8)),
  '80F40000',
  '80EA0011' + lv(ascii('1111')),
  '8050000008' + '00'.repeat(8) + '00',
  '8482030010' + '11'.repeat(16),
];

/** The README's status words (63C0–63CA: 10 tries at most), and the card OS's 6881 / 61xx. */
const TEXT_SWS = new Set([0x9000, 0x6700, 0x6981, 0x6982, 0x6984, 0x6985, 0x6986, 0x6a80, 0x6a82, 0x6a84, 0x6a86, 0x6a88, 0x6b00, 0x6d00, 0x6e00, 0x6881]);
const textSw = (sw: number): boolean => TEXT_SWS.has(sw) || (sw >= 0x63c0 && sw <= 0x63ca) || sw >> 8 === 0x61;

/** Reads EF 0001 (17 bytes) and EF 0002 (512 bytes, two READ BINARY of 256): both images, or the first refusal. */
function readTextEfs(chip: Chip): { ef1: Uint8Array; ef2: Uint8Array } | { sw: number } {
  const one = chip.transmit(fromHex('00B0810000'));
  const a = chip.transmit(fromHex('00B0820000'));
  const b = chip.transmit(fromHex('00B0010000'));
  for (const r of [one, a, b]) if (sw1sw2(r) !== 0x9000) return { sw: sw1sw2(r) };
  return { ef1: one.subarray(0, one.length - 2), ef2: concat(a.subarray(0, a.length - 2), b.subarray(0, b.length - 2)) };
}

/**
 * A text AP installed under the ISD, personalised by the issuer (textap-perso: 個人番号, 基本4情報, PIN, 照合番号B) and
 * LOCKed. Invariants: the try counters of the PIN and both 照合番号 (watchTries); EF 0001 and EF 0002 read as after
 * personalisation (the host parsers give back what was written), and every READ BINARY answer is a slice of them; at the
 * end the PIN opens both EFs, or it is blocked (6984) and they stay shut (6982).
 */
async function textAp(count: number): Promise<Built> {
  const { chip, logs } = await chipWith(TEXT_AP, TEXT_AP_AID);
  const perso = await openTextApPerso(async (a) => chip.transmit(a), { keys: DEFAULT_KEYS });
  await perso.writeMyNumber(MY_NUMBER);
  await perso.writeAttributes(PERSON);
  await perso.setPin(TEXT_PIN);
  await perso.setVerificationB(NUMBER_B.slice(0, 6), NUMBER_B.slice(6, 10), NUMBER_B.slice(10));
  await perso.lock();
  chip.transmit(fromHex(TEXT_SELECT));
  chip.transmit(fromHex(verifyHex('91', TEXT_PIN)));
  const efs = readTextEfs(chip);
  if ('sw' in efs) throw new Error(`text AP EFs after personalisation: ${swHex(efs.sw)}`);
  expect(parseMyNumberEf(efs.ef1)).toBe(MY_NUMBER);
  expect(parseAttributesEf(efs.ef2)).toEqual(PERSON);
  const enc = (v: string) => new TextEncoder().encode(v);
  const ref = (name: string, sfi: string, limit: number, length: number, value: string): TriesRef => ({
    name,
    query: '002000' + sfi,
    verify: (v) => '002000' + sfi + lv(hex(v)),
    limit,
    fits: (n) => n === length,
    value: enc(value),
  });
  const pin = ref('PIN', '91', 3, 4, TEXT_PIN);
  const tries = watchTries([pin, ref('照合番号A', '94', 10, 12, MY_NUMBER), ref('照合番号B', '95', 10, 14, NUMBER_B)], [{ ins: 0x24, value: (d) => d }], {
    chip,
    keepAliveUntil: keepAlive(count),
  });
  let reads = 0;
  let shut = 0;
  let badRead: string | undefined;
  const checks: Checks = {
    observe(cmd, sw, data) {
      tries.observe(cmd, sw);
      if (cmd[1] === 0xb0 && sw === 0x9000) {
        reads++;
        if (!sliceOf(data, [efs.ef1, efs.ef2])) badRead ??= `READ BINARY ${hex(cmd)} answered ${hex(data.subarray(0, 16))}…, in neither EF`;
      }
    },
    async invariant() {
      const p = badRead ?? (await tries.check());
      badRead = undefined;
      if (p) return p;
      const now = readTextEfs(chip);
      if ('sw' in now) {
        // Shut only when the check verified neither the PIN nor both 照合番号 (blocked, or past the keep-alive).
        shut++;
        const open = tries.verified('PIN') || (tries.verified('照合番号A') && tries.verified('照合番号B'));
        return now.sw === 0x6982 && !open ? undefined : `READ BINARY answered ${swHex(now.sw)}`;
      }
      if (hex(now.ef1) !== hex(efs.ef1) || hex(now.ef2) !== hex(efs.ef2)) return 'EF 0001 or EF 0002 changed on a LOCKed card';
      return undefined;
    },
    after(report) {
      expect(sw1sw2(chip.transmit(fromHex(TEXT_SELECT)))).toBe(0x9000);
      const q = sw1sw2(chip.transmit(fromHex(pin.query)));
      const v = sw1sw2(chip.transmit(fromHex(pin.verify(pin.value))));
      const end = readTextEfs(chip);
      if (q === 0x63c0) {
        expect(v).toBe(0x6984);
        expect(end).toEqual({ sw: 0x6982 });
      } else {
        expect(v).toBe(0x9000);
        expect(end).toEqual(efs);
      }
      const t = tries.stats;
      const line = (m: Map<string, number>) => [...m].map(([k, n]) => `${k} ${n}`).join(', ') || 'none';
      console.log(
        `${report.name}: ${reads} READ BINARY answers; VERIFY right ${line(t.right)}; wrong ${line(t.wrong)}; changed ${line(t.changed)}; ` +
          `${t.reads} counter reads, last try kept alive ${line(t.keptAlive)}; blocked at ${line(t.blockedAt)}; EFs shut at ${shut} checks`,
      );
      // The fuzz reached the data and the PIN change, not only the refusals.
      expect(reads).toBeGreaterThan(100);
      expect(t.changed.get('PIN') ?? 0).toBeGreaterThan(0);
    },
  };
  return { chip, logs, checks };
}

const CASES: AppletFuzzCase[] = [
  {
    name: 'ARA-M',
    seed: 0x5eed_0005,
    count: 100_000,
    build: async () => ({ ...(await chipWith(ARAM, ARAM_AID, '01')), checks: aramChecks() }),
    setup: ['00A40400' + lv(ARAM_AID) + '00'],
    corpus: ARAM_CORPUS,
    allowedSws: aramSw,
    mustReach: [0x9000, 0x6a80, 0x6a88, 0x6a89, 0x6a84, 0x6a86, 0x6981, 0x6984, 0x6985, 0x6700, 0x6d00, 0x6e00, 0x6881],
  },
  {
    name: 'text AP (LOCKed)',
    seed: 0x5eed_0305,
    count: 100_000,
    build: textAp,
    setup: [TEXT_SELECT],
    invariantEvery: 100,
    corpus: TEXT_CORPUS,
    allowedSws: textSw,
    mustReach: [0x9000, 0x63c1, 0x63c2, 0x63c9, 0x6700, 0x6981, 0x6982, 0x6984, 0x6985, 0x6986, 0x6a80, 0x6a82, 0x6a86, 0x6a88, 0x6b00, 0x6d00, 0x6e00],
  },
  {
    name: 'JPKI AP (card, LOCKed)',
    seed: 0x5eed_0105,
    count: 100_000,
    build: jpkiCard,
    setup: [JPKI_SELECT],
    invariantEvery: 100,
    corpus: [...JPKI_CARD_INTERFACE, ...JPKI_APP_SIDE, ...jpkiPersoCommands(hex(TEST_SE_ID))],
    allowedSws: jpkiCardSw,
    mustReach: [0x9000, 0x63c0, 0x63c1, 0x63c2, 0x63c4, 0x6700, 0x6981, 0x6982, 0x6984, 0x6986, 0x6a80, 0x6a82, 0x6a86, 0x6a88, 0x6b00, 0x6d00, 0x6e00],
  },
  {
    name: 'JPKI AP (phone)',
    seed: 0x5eed_0205,
    count: 100_000,
    build: jpkiPhone,
    setup: [JPKI_SELECT],
    invariantEvery: 100,
    corpus: [...JPKI_CARD_INTERFACE, ...JPKI_APP_SIDE, ...jpkiPersoCommands(hex(TEST_SE_ID))],
    allowedSws: jpkiPhoneSw,
    mustReach: [0x9000, 0x6300, 0x63c0, 0x63c1, 0x63c2, 0x63c4, 0x6700, 0x6981, 0x6982, 0x6984, 0x6985, 0x6986, 0x6a80, 0x6a82, 0x6a86, 0x6a88, 0x6b00, 0x6d00, 0x6e00],
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

  it('the try-counter watch reports a counter refilled behind its back and follows the values the fuzzer sets', async () => {
    const { chip } = await cardChip();
    const w = watchTries(jpkiRefs(AUTH_PIN, SIGN_PW), [{ ins: 0x24, value: (d) => d }], { chip });
    const send = (h: string): number => {
      const sw = sw1sw2(chip.transmit(fromHex(h)));
      w.observe(fromHex(h), sw);
      return sw;
    };
    expect(send(JPKI_SELECT)).toBe(0x9000);
    expect(send(verifyHex('98', '0000'))).toBe(0x63c2);
    chip.transmit(fromHex(verifyHex('98', AUTH_PIN))); // not observed: the counter is back at 3 unseen
    expect(send('00200098')).toBe(0x9000);
    expect(await w.check()).toBe('auth PIN: try counter went up from 2 to 3 after 00200098 (9000)');
    // A correct VERIFY the fuzzer sent may refill; a CHANGE REFERENCE DATA it sent becomes the value the check presents.
    expect(send(verifyHex('9B', 'WRONG1'))).toBe(0x63c4);
    expect(send(verifyHex('9B', SIGN_PW))).toBe(0x9000);
    expect(send('0024019B' + lv(ascii('NEW999')))).toBe(0x9000);
    expect(await w.check()).toBeUndefined();
    expect(hex(w.refs[1].value)).toBe(ascii('NEW999'));
    expect(w.stats.right.get('sign password')).toBe(1);
    expect(w.stats.changed.get('sign password')).toBe(1);
    chip.close();
  });

  for (const c of CASES) {
    it(`${c.name}: ${(COUNT ?? c.count).toLocaleString('en')} mutated APDUs answer only table status words and keep the invariants`, { timeout: 120_000 }, async () => {
      const built = await c.build(COUNT ?? c.count);
      const { chip, logs } = built;
      const checks = built.checks ?? {};
      const report = await fuzzApplet(
        {
          name: c.name,
          chip,
          corpus: c.corpus,
          setup: built.setup ?? c.setup,
          setupEvery: c.setupEvery,
          allowedSws: c.allowedSws,
          observe: checks.observe,
          invariant: checks.invariant,
          invariantEvery: c.invariantEvery ?? 250,
          logs,
        },
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
