// The ARA-M applet (applet/aram, GP SEAC 1.1) from Java source: javac + conversion with applet/build.ts's exported
// functions into a temporary folder, GP LOAD/INSTALL under SCP03, then its APDU table (applet/aram/README.md): rules
// stored through the ISD (INSTALL [for personalization] + STORE DATA) and directly, GET DATA all / next / specific /
// refresh tag, deletion, rule precedence, malformed commands, and persistence over a power cycle.
// Without javac the tests are skipped unless JPKI_REQUIRE_JDK=1.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ROOT, apiClassesIn, buildSample, loadProductApplet } from '../applet/build.ts';
import type { Chip } from '../emulator/card.ts';
import { openMemoryStore } from '../emulator/store.ts';
import { ISD, secure, tx } from './helpers/chip.ts';
import { apdu, gpInstall, gpLoad, lv, vmChip } from './helpers/vm-chip.ts';

const HAVE_JDK = spawnSync('javac', ['-version']).status === 0;
const SKIP = !HAVE_JDK && process.env.JPKI_REQUIRE_JDK !== '1';
if (SKIP) console.warn('aram: javac not found on PATH, skipping (set JPKI_REQUIRE_JDK=1 to fail instead)');

const ARAM_AID = 'A00000015141434C00';
const ARAM = loadProductApplet('aram');

// TLV builders (short-form lengths; BER 81 for 128..255).
const len = (h: string): string => {
  const n = h.length / 2;
  return n < 0x80 ? n.toString(16).padStart(2, '0') : '81' + n.toString(16).padStart(2, '0');
};
const tlv = (tag: string, v = ''): string => (tag + len(v) + v).toUpperCase();
const aidRef = (aid: string) => tlv('4F', aid);
const hashRef = (h: string) => tlv('C1', h);
const refDo = (aid: string, h: string) => tlv('E1', aid + h);
const rule = (aid: string, h: string, ar: string) => tlv('E2', refDo(aid, h) + tlv('E3', ar));
const ALWAYS = tlv('D0', '01');
const NEVER = tlv('D0', '00');
const FILTER = tlv('D0', '80CA0000FFFF0000');

const JPKI = 'D392F000260100000001';
const OTHER = 'D392F000260100000002';
const APP1 = '11'.repeat(20);
const APP2 = '22'.repeat(20);
const APP256 = '33'.repeat(32);

let work = '';
let block: Uint8Array;

beforeAll(() => {
  if (SKIP) return;
  work = mkdtempSync(join(tmpdir(), 'jpki-aram-'));
  const api = apiClassesIn(work);
  const b = buildSample(ARAM, new Map(), {
    apiClasses: api,
    classesRoot: join(work, 'classes'),
    capRoot: join(work, 'cap'),
    samplesDir: join(ROOT, 'applet'),
  });
  if (!b.ok) throw new Error(`aram build failed:\n${b.compile.output}\n${b.messages.join('\n')}`);
  block = b.block!;
}, 120_000);

afterAll(() => {
  if (work) rmSync(work, { recursive: true, force: true });
});

/** Loads and installs the ARA-M; params 01 enables direct STORE DATA. */
async function installAram(chip: Chip, params = ''): Promise<void> {
  const sc = await secure(chip);
  expect((await gpLoad(sc, ARAM.packageAid, block)).sw).toBe(0x9000);
  expect((await gpInstall(sc, ARAM.packageAid, ARAM_AID, ARAM_AID, params)).sw).toBe(0x9000);
}

/** STORE DATA through the ISD: INSTALL [for personalization] then one STORE DATA (P1 90). */
async function personalize(chip: Chip, cmd: string): Promise<number> {
  expect(tx(chip, '00A40400' + lv(ISD) + '00').sw).toBe(0x9000);
  const sc = await secure(chip);
  const i = await sc.send(apdu(0x80, 0xe6, 0x20, 0x00, '0000' + lv(ARAM_AID) + '000000', 256));
  if (i.sw !== 0x9000) return i.sw;
  return (await sc.send(apdu(0x80, 0xe2, 0x90, 0x00, cmd, 256))).sw;
}

const select = (chip: Chip) => tx(chip, '00A40400' + lv(ARAM_AID) + '00');
const store = (chip: Chip, cmd: string) => tx(chip, '80E29000' + lv(cmd)).sw;
const refresh = (chip: Chip) => tx(chip, '80CADF2000');
const specific = (chip: Chip, aid: string, h: string) => tx(chip, '80CAFF50' + lv(refDo(aid, h)) + '00');

/** GET DATA [all] then GET DATA [next] until the announced length is read. */
function getAll(chip: Chip): { rules: string; parts: number } {
  let r = tx(chip, '80CAFF4000');
  expect(r.sw).toBe(0x9000);
  let data = r.data;
  expect(data.slice(0, 4)).toBe('FF40');
  let hl = 3;
  let total = parseInt(data.slice(4, 6), 16);
  if (total === 0x81) [hl, total] = [4, parseInt(data.slice(6, 8), 16)];
  else if (total === 0x82) [hl, total] = [5, parseInt(data.slice(6, 10), 16)];
  let parts = 1;
  while (data.length / 2 < hl + total) {
    r = tx(chip, '80CAFF6000');
    expect(r.sw).toBe(0x9000);
    expect(r.data.length).toBeGreaterThan(0);
    data += r.data;
    parts++;
  }
  expect(data.length / 2).toBe(hl + total);
  return { rules: data.slice(hl * 2), parts };
}

describe.skipIf(SKIP)('ARA-M applet (GP SEAC 1.1)', () => {
  it('stores rules through the ISD (INSTALL [for personalization] + STORE DATA) and answers GET DATA [all]', async () => {
    const { chip } = vmChip();
    await installAram(chip);
    const r1 = rule(aidRef(JPKI), hashRef(APP1), ALWAYS);
    expect(select(chip).sw).toBe(0x9000);
    expect(tx(chip, '80CAFF4000')).toMatchObject({ data: 'FF4000', sw: 0x9000 });
    expect(await personalize(chip, tlv('F0', r1))).toBe(0x9000);
    expect(select(chip).sw).toBe(0x9000);
    expect(getAll(chip)).toEqual({ rules: r1, parts: 1 });
    // Direct STORE DATA is refused unless enabled at install.
    expect(store(chip, tlv('F0', rule(aidRef(OTHER), hashRef(APP1), ALWAYS)))).toBe(0x6982);
    // The kaoh example rule (AID FFFFFFFFFFFF, SHA-1, APDU always + PERM-AR-DO) through the ISD.
    const kaoh = 'E22FE11E4F06FFFFFFFFFFFFC114BDF6A7' + '00'.repeat(16) + 'AEE30DD00101DB080000000000000001';
    expect(await personalize(chip, 'F031' + kaoh)).toBe(0x9000);
    expect(select(chip).sw).toBe(0x9000);
    expect(getAll(chip).rules).toBe(r1 + kaoh);
  });

  it('GET DATA [specific]: the SEAC §3.2.1 search order with AID and app shadowing, SHA-256, C0', async () => {
    const { chip } = vmChip();
    await installAram(chip, '01');
    expect(select(chip).sw).toBe(0x9000);
    const third = 'D392F000260100000003';
    const fourth = 'D392F000260100000004';
    const rules = [
      rule(aidRef(JPKI), hashRef(APP1), FILTER), // specific AID, specific app
      rule(aidRef(JPKI), hashRef(''), ALWAYS), // specific AID, any app: shadowed by the rule above for other apps
      rule(aidRef(''), hashRef(APP2), ALWAYS + tlv('D1', '00')), // any AID, specific app
      rule(aidRef(''), hashRef(''), NEVER + tlv('D1', '01')), // any AID, any app
      rule(aidRef(OTHER), hashRef(APP256), ALWAYS), // SHA-256 app hash
      rule(tlv('C0'), hashRef(APP1), ALWAYS + tlv('D1', '01')), // the default applet
      rule(aidRef(third), hashRef(''), FILTER + tlv('D1', '00')), // an AID with only an any-app rule
    ];
    expect(store(chip, tlv('F0', rules.slice(0, 3).join('')))).toBe(0x9000);
    expect(store(chip, tlv('F0', rules.slice(3).join('')))).toBe(0x9000);
    expect(getAll(chip).rules).toBe(rules.join(''));
    const ar = (a: string) => tlv('FF50', tlv('E3', a));
    const never = ar(NEVER + tlv('D1', '00'));
    expect(never).toBe('FF5008E306D00100D10100');
    // 1. the exact rule; 2. another specific app named for the AID: NEVER, even though (JPKI, any app) exists.
    expect(specific(chip, aidRef(JPKI), hashRef(APP1))).toMatchObject({ data: ar(FILTER), sw: 0x9000 });
    expect(specific(chip, aidRef(JPKI), hashRef(APP2))).toMatchObject({ data: never, sw: 0x9000 });
    expect(specific(chip, aidRef(OTHER), hashRef(APP256))).toMatchObject({ data: ar(ALWAYS), sw: 0x9000 });
    expect(specific(chip, aidRef(OTHER), hashRef(APP2))).toMatchObject({ data: never, sw: 0x9000 });
    // 3. the AID's any-app rule when it names no specific app; the all-AID rules are not consulted.
    expect(specific(chip, aidRef(third), hashRef(APP2))).toMatchObject({ data: ar(FILTER + tlv('D1', '00')), sw: 0x9000 });
    // 4. an AID with no rules of its own: the all-AID rule for the app; 5. another app named there: NEVER.
    expect(specific(chip, aidRef(fourth), hashRef(APP2))).toMatchObject({ data: ar(ALWAYS + tlv('D1', '00')), sw: 0x9000 });
    expect(specific(chip, aidRef(fourth), hashRef(APP1))).toMatchObject({ data: never, sw: 0x9000 });
    // The implicitly selected applet (C0) is a specific AID.
    expect(specific(chip, tlv('C0'), hashRef(APP1))).toMatchObject({ data: ar(ALWAYS + tlv('D1', '01')), sw: 0x9000 });
    expect(specific(chip, tlv('C0'), hashRef(APP2))).toMatchObject({ data: never, sw: 0x9000 });
    // 6. without the all-AID rule for APP2, the all-AID any-app rule applies; without it, no rule.
    expect(store(chip, tlv('F1', refDo(aidRef(''), hashRef(APP2))))).toBe(0x9000);
    expect(specific(chip, aidRef(fourth), hashRef(APP1))).toMatchObject({ data: ar(NEVER + tlv('D1', '01')), sw: 0x9000 });
    expect(store(chip, tlv('F1', refDo(aidRef(''), hashRef(''))))).toBe(0x9000);
    expect(specific(chip, aidRef(fourth), hashRef(APP1))).toMatchObject({ data: 'FF5000', sw: 0x9000 }); // empty Response-AR-DO
    // The all-AID query itself.
    expect(store(chip, tlv('F0', rule(aidRef(''), hashRef(APP1), ALWAYS)))).toBe(0x9000);
    expect(specific(chip, aidRef(''), hashRef(APP1))).toMatchObject({ data: ar(ALWAYS), sw: 0x9000 });
    expect(specific(chip, aidRef(''), hashRef(APP2))).toMatchObject({ data: never, sw: 0x9000 });
    // Malformed queries.
    expect(tx(chip, '80CAFF50' + lv(refDo(aidRef(JPKI), hashRef('11'.repeat(19)))) + '00').sw).toBe(0x6a80);
    expect(tx(chip, '80CAFF50' + lv(aidRef(JPKI)) + '00').sw).toBe(0x6a80);
    expect(tx(chip, '80CAFF5000').sw).toBe(0x6700);
  });

  it('deletes by REF-DO, REF-AR-DO, AID-REF-DO and all; the refresh tag changes on every update', async () => {
    const { chip } = vmChip();
    await installAram(chip, '01');
    expect(select(chip).sw).toBe(0x9000);
    const tags = new Set<string>();
    const tag = () => {
      const r = refresh(chip);
      expect(r.sw).toBe(0x9000);
      expect(r.data).toMatch(/^DF2008[0-9A-F]{16}$/);
      return r.data;
    };
    tags.add(tag());
    expect(tag()).toBe([...tags][0]); // reading does not change it
    const a = rule(aidRef(JPKI), hashRef(APP1), ALWAYS);
    const b = rule(aidRef(JPKI), hashRef(APP2), ALWAYS);
    const c = rule(aidRef(OTHER), hashRef(APP1), NEVER);
    const d = rule(aidRef(OTHER), hashRef(APP2), NEVER);
    expect(store(chip, tlv('F0', a + b + c + d))).toBe(0x9000);
    tags.add(tag());
    expect(store(chip, tlv('F1', refDo(aidRef(JPKI), hashRef(APP2))))).toBe(0x9000);
    tags.add(tag());
    expect(getAll(chip).rules).toBe(a + c + d);
    expect(store(chip, tlv('F1', d))).toBe(0x9000); // by REF-AR-DO
    tags.add(tag());
    expect(getAll(chip).rules).toBe(a + c);
    expect(store(chip, tlv('F1', aidRef(JPKI)))).toBe(0x9000);
    tags.add(tag());
    expect(getAll(chip).rules).toBe(c);
    const before = tag();
    expect(store(chip, tlv('F1', aidRef(JPKI)))).toBe(0x6a88); // nothing left to delete: unchanged
    expect(tag()).toBe(before);
    expect(store(chip, 'F200')).toBe(0x9000);
    tags.add(tag());
    expect(store(chip, 'F100')).toBe(0x9000);
    tags.add(tag());
    expect(tx(chip, '80CAFF4000').data).toBe('FF4000');
    expect(tags.size).toBe(7);
  });

  it('answers long rule lists in parts with GET DATA [next]', async () => {
    const { chip } = vmChip();
    await installAram(chip, '01');
    expect(select(chip).sw).toBe(0x9000);
    const rules = Array.from({ length: 20 }, (_, i) => rule(aidRef(JPKI.slice(0, -2) + i.toString(16).padStart(2, '0')), hashRef(APP256), FILTER));
    for (let i = 0; i < rules.length; i += 4) expect(store(chip, tlv('F0', rules.slice(i, i + 4).join('')))).toBe(0x9000);
    const all = getAll(chip);
    expect(all.rules).toBe(rules.join(''));
    expect(all.parts).toBeGreaterThan(4);
    expect(tx(chip, '80CAFF6000').sw).toBe(0x6985); // nothing pending any more
    // An update in the middle: 6984 (the rules must be read again), then nothing is pending.
    expect(tx(chip, '80CAFF4000').sw).toBe(0x9000);
    expect(store(chip, 'F200')).toBe(0x9000);
    expect(tx(chip, '80CAFF6000').sw).toBe(0x6984);
    expect(tx(chip, '80CAFF6000').sw).toBe(0x6985);
    // A failed update changes nothing: the pending answer goes on.
    expect(tx(chip, '80CAFF4000').sw).toBe(0x9000);
    expect(store(chip, tlv('F0', rules[0]))).toBe(0x6a89);
    expect(tx(chip, '80CAFF6000').sw).toBe(0x9000);
    // Reading with a small Le (the seek-for-android ACE asks F0 bytes at a time).
    const first = tx(chip, '80CAFF40F0');
    expect(first.sw).toBe(0x9000);
    expect(first.data.length / 2).toBe(0xf0);
    expect(first.data.slice(0, 10)).toBe('FF40820' + (rules.join('').length / 2).toString(16).toUpperCase().padStart(3, '0'));
  });

  it('GET DATA [next] on another channel sees an update made through the ISD (6984)', async () => {
    const { chip } = vmChip();
    await installAram(chip);
    const rules = Array.from({ length: 12 }, (_, i) => rule(aidRef(JPKI.slice(0, -2) + i.toString(16).padStart(2, '0')), hashRef(APP256), FILTER));
    for (let i = 0; i < rules.length; i += 3) expect(await personalize(chip, tlv('F0', rules.slice(i, i + 3).join('')))).toBe(0x9000);
    expect(tx(chip, '0070000001')).toMatchObject({ data: '01', sw: 0x9000 });
    expect(tx(chip, '01A40400' + lv(ARAM_AID) + '00').sw).toBe(0x9000);
    expect(tx(chip, '81CAFF4000').sw).toBe(0x9000);
    expect(tx(chip, '81CAFF6000').sw).toBe(0x9000);
    // The ISD on channel 0 forwards a STORE DATA while the ARA-M answer is still pending on channel 1.
    expect(await personalize(chip, 'F200')).toBe(0x9000);
    expect(tx(chip, '81CAFF6000').sw).toBe(0x6984);
    expect(tx(chip, '81CAFF6000').sw).toBe(0x6985);
  });

  it('refuses malformed and conflicting commands with the table status words, changing nothing', async () => {
    const { chip } = vmChip();
    await installAram(chip, '01');
    expect(select(chip).sw).toBe(0x9000);
    const good = rule(aidRef(JPKI), hashRef(APP1), ALWAYS);
    expect(store(chip, tlv('F0', good))).toBe(0x9000);
    const t = refresh(chip).data;
    const bad = [
      tlv('F0', ''), // empty store
      tlv('F0', good).slice(0, -2), // truncated
      tlv('F0', good) + '00', // trailing byte
      tlv('F0', rule(aidRef('A000'), hashRef(APP2), ALWAYS)), // AID too short
      tlv('F0', rule(aidRef(JPKI), hashRef('44'.repeat(16)), ALWAYS)), // hash neither 20 nor 32
      tlv('F0', tlv('E2', refDo(aidRef(JPKI), hashRef(APP2)))), // no AR-DO
      tlv('F0', rule(aidRef(JPKI), hashRef(APP2), tlv('D0', '02'))), // bad APDU-AR-DO
      tlv('F0', rule(aidRef(JPKI), hashRef(APP2), tlv('D0', '80CA0000FF'))), // filter not N×8
      tlv('F0', rule(aidRef(JPKI), hashRef(APP2), tlv('D5', '01'))), // unknown AR tag
      tlv('F0', rule(aidRef(JPKI), hashRef(APP2), tlv('D1', '00') + ALWAYS)), // NFC-AR-DO before APDU-AR-DO
      tlv('F0', rule(aidRef(JPKI), hashRef(APP2), ALWAYS + NEVER)), // APDU-AR-DO twice
      tlv('F0', tlv('E2', tlv('E3', ALWAYS) + refDo(aidRef(JPKI), hashRef(APP2)))), // wrong order
      tlv('F9', ''), // unknown command
      tlv('E2', ''), // a REF-AR-DO is no command
      tlv('F1', tlv('C1', APP1)), // delete by hash only
      'F08102' + tlv('E2', ''), // non-minimal length
    ];
    for (const cmd of bad) expect(store(chip, cmd), cmd).toBe(0x6a80);
    // SEAC 1.1 DOs for ARA-C and block transfer that this ARA-M does not support: 6981.
    for (const cmd of [tlv('F3', aidRef(JPKI)), 'F400', 'F500', 'F600', tlv('F7', aidRef(JPKI)), 'F800', tlv('E7', '000010')])
      expect(store(chip, cmd), cmd).toBe(0x6981);
    expect(store(chip, tlv('F0', good))).toBe(0x6a89); // already stored
    const twice = rule(aidRef(OTHER), hashRef(APP1), ALWAYS);
    expect(store(chip, tlv('F0', twice + twice))).toBe(0x6a89);
    expect(await personalize(chip, tlv('F0', 'E200'))).toBe(0x6a80);
    expect(select(chip).sw).toBe(0x9000);
    expect(tx(chip, '80E2000000').sw).toBe(0x6a86); // not the last block
    expect(tx(chip, '80E2B000' + lv(tlv('F0', twice))).sw).toBe(0x6a86); // encrypted
    expect(tx(chip, '00CAFF4000').sw).toBe(0x6e00);
    expect(tx(chip, '80CAFF4100').sw).toBe(0x6a86);
    expect(tx(chip, '80CA00FF00').sw).toBe(0x6a86);
    expect(tx(chip, '80DA000000').sw).toBe(0x6d00);
    expect(tx(chip, '80CAFF6000').sw).toBe(0x6985);
    expect(getAll(chip).rules).toBe(good);
    expect(refresh(chip).data).toBe(t);
    // The store is full at 2048 bytes: 6A84 and nothing written.
    let sw = 0x9000;
    let i = 0;
    for (; sw === 0x9000 && i < 200; i++) {
      const big = rule(aidRef('D392F0002601' + i.toString(16).padStart(4, '0')), hashRef(APP256), FILTER.repeat(1));
      sw = store(chip, tlv('F0', big + rule(aidRef('D392F0002602' + i.toString(16).padStart(4, '0')), hashRef(APP256), FILTER)));
    }
    expect(sw).toBe(0x6a84);
    expect(getAll(chip).rules.length / 2).toBeLessThanOrEqual(2048);
  });

  it('keeps the rules and the refresh tag over a power cycle and a reopened medium', async () => {
    const store0 = openMemoryStore();
    const { chip } = vmChip({ store: store0 });
    await installAram(chip);
    const r1 = rule(aidRef(JPKI), hashRef(APP1), ALWAYS);
    const r2 = rule(aidRef(''), hashRef(''), NEVER);
    expect(await personalize(chip, tlv('F0', r1 + r2))).toBe(0x9000);
    expect(select(chip).sw).toBe(0x9000);
    const t = refresh(chip).data;
    chip.powerDown();
    chip.powerUp();
    expect(select(chip).sw).toBe(0x9000);
    expect(getAll(chip).rules).toBe(r1 + r2);
    expect(refresh(chip).data).toBe(t);
    const again = vmChip({ store: store0 }).chip;
    expect(select(again).sw).toBe(0x9000);
    expect(specific(again, aidRef(JPKI), hashRef(APP1)).data).toBe(tlv('FF50', tlv('E3', ALWAYS)));
  });
});
