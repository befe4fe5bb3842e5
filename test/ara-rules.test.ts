// ARA-M rule data without a chip (emulator/device/ara-rules.ts): parsing Response-ALL-REF-AR-DO with precise errors,
// and the ACE's choice of rule (GP SEAC 1.1 precedence, shadowing, SHA-256 before SHA-1, merging, Annex G NFC).
import { describe, expect, it } from 'vitest';
import { fromHex, hex } from '../emulator/bytes.ts';
import type { AccessRule, AppIdentity } from '../emulator/device/ara-rules.ts';
import { AraRulesError, allRulesSize, apduAllowed, evaluateRules, mergeAccess, parseAllRules, ruleAccess } from '../emulator/device/ara-rules.ts';

const len = (h: string): string => {
  const n = h.length / 2;
  if (n < 0x80) return n.toString(16).padStart(2, '0');
  if (n < 0x100) return '81' + n.toString(16).padStart(2, '0');
  return '82' + n.toString(16).padStart(4, '0');
};
const tlv = (tag: string, v = ''): string => (tag + len(v) + v).toUpperCase();
const aidRef = (aid: string) => tlv('4F', aid);
const hashRef = (h: string) => tlv('C1', h);
const refDo = (aid: string, h: string, extra = '') => tlv('E1', aid + h + extra);
const rule = (aid: string, h: string, ar: string) => tlv('E2', refDo(aid, h) + tlv('E3', ar));
const all = (...rules: string[]) => fromHex(tlv('FF40', rules.join('')));
const ALWAYS = tlv('D0', '01');
const NEVER = tlv('D0', '00');
const FILTER1 = tlv('D0', '80CA0000FFFF0000');
const FILTER2 = tlv('D0', '00B00000FFFF0000');

const A = 'D392F000260100000001';
const B = 'D392F000260100000002';
const H1 = '11'.repeat(20);
const H2 = '22'.repeat(20);
const H256 = '33'.repeat(32);

const app = (sha1: string[] = [], sha256: string[] = []): AppIdentity => ({ sha1: sha1.map((h) => fromHex(h)), sha256: sha256.map((h) => fromHex(h)) });

/** The AraRulesError parseAllRules throws for `data`. */
function failure(data: Uint8Array): AraRulesError {
  try {
    parseAllRules(data);
  } catch (e) {
    if (e instanceof AraRulesError) return e;
    throw e;
  }
  throw new Error(`no error for ${hex(data)}`);
}

describe('parseAllRules', () => {
  it('reads an empty answer, the kaoh example and the bertrandmartel test rule', () => {
    expect(parseAllRules(fromHex('FF4000'))).toEqual([]);
    const kaoh = 'E22FE11E4F06FFFFFFFFFFFFC114BDF6A7' + '00'.repeat(16) + 'AEE30DD00101DB080000000000000001';
    const bm = 'E22FE1284F10D2760001180002FF49502589C0019B01C1140102030405060608090A0B0C0D0E0F1011121314E303D00101';
    const [k, b] = parseAllRules(fromHex(tlv('FF40', kaoh + bm)));
    expect(k.aid).toEqual({ kind: 'aid', aid: fromHex('FFFFFFFFFFFF') });
    expect(k.app).toEqual({ kind: 'hash', hash: fromHex('BDF6A7' + '00'.repeat(16) + 'AE') });
    expect(k.apdu).toEqual({ kind: 'always' });
    expect(k.perm).toEqual(fromHex('0000000000000001'));
    expect(k.nfc).toBeUndefined();
    expect(k.offset).toBe(3);
    expect(b.aid).toEqual({ kind: 'aid', aid: fromHex('D2760001180002FF49502589C0019B01') });
    expect(b.offset).toBe(3 + 0x31);
  });

  it('reads all-AID, default-applet, all-app, SHA-256, filters, NFC, package names and long lengths', () => {
    const rules = [
      rule(aidRef(''), hashRef(''), NEVER + tlv('D1', '01')),
      rule(tlv('C0'), hashRef(H256), tlv('D0', '80CA0000FFFF0000' + '00B00000FFFF0000')),
      tlv('E2', refDo(aidRef(A), hashRef(H1), tlv('CA', hex(new TextEncoder().encode('jp.example.app')))) + tlv('E3', ALWAYS)),
      ...Array.from({ length: 8 }, (_, i) => rule(aidRef(B.slice(0, -2) + i.toString(16).padStart(2, '0')), hashRef(H2), tlv('D1', '00'))),
    ];
    const data = all(...rules);
    expect(hex(data.subarray(0, 2))).toBe('FF40');
    expect(data[2]).toBe(0x82); // more than 255 bytes of rules
    expect(allRulesSize(data.subarray(0, 5))).toBe(data.length);
    const parsed = parseAllRules(data);
    expect(parsed).toHaveLength(11);
    expect(parsed[0]).toMatchObject({ aid: { kind: 'all' }, app: { kind: 'all' }, apdu: { kind: 'never' }, nfc: true });
    expect(parsed[1].aid).toEqual({ kind: 'default' });
    expect(parsed[1].app).toEqual({ kind: 'hash', hash: fromHex(H256) });
    expect(parsed[1].apdu).toEqual({
      kind: 'filter',
      filters: [
        { header: fromHex('80CA0000'), mask: fromHex('FFFF0000') },
        { header: fromHex('00B00000'), mask: fromHex('FFFF0000') },
      ],
    });
    expect(parsed[2].packageName).toBe('jp.example.app');
    expect(parsed[10].nfc).toBe(false);
    expect(parsed[10].apdu).toBeUndefined();
    expect(parsed[10].aid).toEqual({ kind: 'aid', aid: fromHex(B.slice(0, -2) + '07') });
  });

  it('skips unknown data objects inside an AR-DO', () => {
    const [r] = parseAllRules(all(rule(aidRef(A), hashRef(H1), tlv('D5', '0102') + ALWAYS)));
    expect(r.apdu).toEqual({ kind: 'always' });
  });

  it('names what is malformed, its offset and its path', () => {
    const good = rule(aidRef(A), hashRef(H1), ALWAYS); // E2 at 3, E1 at 5, 4F at 7, C1 at 7+12=19, E3 at 41, D0 at 43
    const cases: [string, Uint8Array, string, number, string][] = [
      ['outer tag', fromHex('FF4100'), 'expected Response-ALL-REF-AR-DO (FF40), found FF41', 0, 'FF40'],
      ['no data', new Uint8Array(0), 'found nothing', 0, 'FF40'],
      ['trailing', fromHex(tlv('FF40', good) + '9000'), '2 trailing byte(s) after Response-ALL-REF-AR-DO', 3 + good.length / 2, 'FF40'],
      ['truncated', fromHex(tlv('FF40', good).slice(0, -2)), 'Response-ALL-REF-AR-DO (FF40) value of 43 bytes overruns its container (42 left)', 0, 'FF40'],
      ['not E2', all(good, refDo(aidRef(A), hashRef(H1))), 'REF-DO (E1) where a REF-AR-DO (E2) is expected', 3 + good.length / 2, 'FF40 > E2#2'],
      ['short AID', all(rule(aidRef('A00000'), hashRef(H1), ALWAYS)), 'AID-REF-DO (4F) of 3 bytes (must be 0 or 5..16)', 7, 'FF40 > E2#1 > E1 > 4F'],
      ['hash', all(rule(aidRef(A), hashRef('44'.repeat(16)), ALWAYS)), 'DeviceAppID-REF-DO (C1) of 16 bytes (must be 0, 20 or 32)', 19, 'FF40 > E2#1 > E1 > C1'],
      ['C0 data', all(rule(tlv('C0', '01'), hashRef(H1), ALWAYS)), 'default-application AID-REF-DO (C0) of 1 bytes (must be empty)', 7, 'FF40 > E2#1 > E1 > C0'],
      ['no hash', all(tlv('E2', refDo(aidRef(A), '') + tlv('E3', ALWAYS))), 'REF-DO without a DeviceAppID-REF-DO (C1)', 5, 'FF40 > E2#1 > E1'],
      ['no AR-DO', all(tlv('E2', refDo(aidRef(A), hashRef(H1)))), 'REF-AR-DO without an AR-DO (E3)', 3, 'FF40 > E2#1'],
      ['order', all(tlv('E2', tlv('E3', ALWAYS) + refDo(aidRef(A), hashRef(H1)))), 'AR-DO (E3) where the REF-DO (E1) is expected', 5, 'FF40 > E2#1'],
      ['extra', all(tlv('E2', refDo(aidRef(A), hashRef(H1)) + tlv('E3', ALWAYS) + tlv('E3', ALWAYS))), 'AR-DO (E3) after the AR-DO', 46, 'FF40 > E2#1'],
      ['D0 size', all(rule(aidRef(A), hashRef(H1), tlv('D0', '80CA0000FF'))), 'APDU-AR-DO (D0) of 5 bytes (must be 00, 01 or N×8 bytes of header and mask)', 43, 'FF40 > E2#1 > E3 > D0'],
      ['D0 value', all(rule(aidRef(A), hashRef(H1), tlv('D0', '02'))), 'APDU-AR-DO (D0) of 1 bytes', 43, 'FF40 > E2#1 > E3 > D0'],
      ['D1 value', all(rule(aidRef(A), hashRef(H1), ALWAYS + tlv('D1', '02'))), 'NFC-AR-DO (D1) value 02 (must be 00 or 01)', 46, 'FF40 > E2#1 > E3 > D1'],
      ['DB size', all(rule(aidRef(A), hashRef(H1), ALWAYS + tlv('DB', '00'.repeat(7)))), 'PERM-AR-DO (DB) of 7 bytes (must be 8)', 46, 'FF40 > E2#1 > E3 > DB'],
      ['twice', all(rule(aidRef(A), hashRef(H1), ALWAYS + NEVER)), 'APDU-AR-DO (D0) given twice in one AR-DO', 46, 'FF40 > E2#1 > E3 > D0'],
      ['length byte', fromHex('FF408400000000'), 'Response-ALL-REF-AR-DO (FF40) has an unsupported length byte 84', 0, 'FF40'],
      ['inner overrun', fromHex('FF4006E204E1054F00'), 'REF-DO (E1) value of 5 bytes overruns its container (2 left)', 5, 'FF40 > E2#1'],
    ];
    for (const [name, data, what, offset, path] of cases) {
      const e = failure(data);
      expect(e.message, name).toContain(what);
      expect(e.offset, name).toBe(offset);
      expect(e.path, name).toBe(path);
      expect(e.message, name).toContain(`at offset ${offset} (${path})`);
    }
  });
});

describe('evaluateRules', () => {
  const rules = (...r: string[]): AccessRule[] => parseAllRules(all(...r));

  it('specific AID+app > the AID shadows the all-AID rules > all AIDs+app > other apps named = NEVER', () => {
    const set = rules(rule(aidRef(A), hashRef(H1), ALWAYS), rule(aidRef(''), hashRef(H2), FILTER1), rule(aidRef(''), hashRef(''), ALWAYS));
    expect(evaluateRules(set, fromHex(A), app([H1]))).toMatchObject({ reason: 'aid-app', hash: 'sha1', apdu: { kind: 'always' } });
    // A has a rule, for another app only: the all-AID rules (even the one naming H2) do not apply.
    expect(evaluateRules(set, fromHex(A), app([H2]))).toMatchObject({ reason: 'aid-other-app', apdu: { kind: 'never' }, nfc: false, rules: [] });
    expect(evaluateRules(set, fromHex(B), app([H2]))).toMatchObject({ reason: 'all-aids-app', apdu: { kind: 'filter' } });
    // The all-AID rules name H2, so the all-apps rule no longer covers others (AOSP conflict case C).
    expect(evaluateRules(set, fromHex(B), app([H1]))).toMatchObject({ reason: 'all-aids-other-app', apdu: { kind: 'never' } });
    const generic = rules(rule(aidRef(''), hashRef(''), ALWAYS));
    expect(evaluateRules(generic, fromHex(B), app([H1]))).toMatchObject({ reason: 'all-aids-all-apps', apdu: { kind: 'always' } });
  });

  it("an AID's all-apps rule beats every all-AID rule; a specific-app rule for the AID makes it NEVER for others", () => {
    const set = rules(rule(aidRef(A), hashRef(''), FILTER1), rule(aidRef(''), hashRef(H1), ALWAYS));
    expect(evaluateRules(set, fromHex(A), app([H1]))).toMatchObject({ reason: 'aid-all-apps', apdu: { kind: 'filter' } });
    expect(evaluateRules(set, fromHex(B), app([H1]))).toMatchObject({ reason: 'all-aids-app', apdu: { kind: 'always' } });
    const shadowed = rules(rule(aidRef(A), hashRef(''), ALWAYS), rule(aidRef(A), hashRef(H2), ALWAYS));
    expect(evaluateRules(shadowed, fromHex(A), app([H1])).reason).toBe('aid-other-app');
    expect(evaluateRules(shadowed, fromHex(A), app([H2])).reason).toBe('aid-app');
  });

  it('no rule at all is NEVER', () => {
    expect(evaluateRules([], fromHex(A), app([H1]))).toMatchObject({ reason: 'no-rule', apdu: { kind: 'never' }, nfc: false });
    const other = rules(rule(aidRef(B), hashRef(''), ALWAYS));
    expect(evaluateRules(other, fromHex(A), app([H1])).reason).toBe('no-rule');
  });

  it('tries SHA-256 rules before SHA-1 rules', () => {
    const c = app([H1], [H256]);
    const both = rules(rule(aidRef(A), hashRef(H1), NEVER), rule(aidRef(A), hashRef(H256), ALWAYS));
    expect(evaluateRules(both, fromHex(A), c)).toMatchObject({ reason: 'aid-app', hash: 'sha256', apdu: { kind: 'always' } });
    const reversed = rules(rule(aidRef(A), hashRef(H1), ALWAYS), rule(aidRef(A), hashRef(H256), NEVER));
    expect(evaluateRules(reversed, fromHex(A), c)).toMatchObject({ hash: 'sha256', apdu: { kind: 'never' } });
    const sha1Only = rules(rule(aidRef(A), hashRef(H1), FILTER1));
    expect(evaluateRules(sha1Only, fromHex(A), c)).toMatchObject({ reason: 'aid-app', hash: 'sha1', apdu: { kind: 'filter' } });
    // A 32-byte rule never matches a SHA-1 and the reverse.
    expect(evaluateRules(rules(rule(aidRef(A), hashRef(H256), ALWAYS)), fromHex(A), app([], [H1 + '00'.repeat(12)])).reason).toBe('aid-other-app');
  });

  it('merges the rules of several certificates (and repeated REF-DOs) to the stricter', () => {
    const two = app([H1, H2]);
    const filters = evaluateRules(rules(rule(aidRef(A), hashRef(H1), FILTER1), rule(aidRef(A), hashRef(H2), FILTER2)), fromHex(A), two);
    expect(filters.rules).toHaveLength(2);
    expect(filters.apdu).toEqual({
      kind: 'filter',
      filters: [
        { header: fromHex('80CA0000'), mask: fromHex('FFFF0000') },
        { header: fromHex('00B00000'), mask: fromHex('FFFF0000') },
      ],
    });
    expect(evaluateRules(rules(rule(aidRef(A), hashRef(H1), ALWAYS), rule(aidRef(A), hashRef(H2), FILTER2)), fromHex(A), two).apdu.kind).toBe('filter');
    expect(evaluateRules(rules(rule(aidRef(A), hashRef(H1), ALWAYS), rule(aidRef(A), hashRef(H2), NEVER)), fromHex(A), two).apdu.kind).toBe('never');
    const repeated = rules(rule(aidRef(''), hashRef(''), ALWAYS + tlv('D1', '01')), rule(aidRef(''), hashRef(''), ALWAYS + tlv('D1', '00')));
    expect(evaluateRules(repeated, fromHex(A), two)).toMatchObject({ reason: 'all-aids-all-apps', apdu: { kind: 'always' }, nfc: false });
    expect(mergeAccess([])).toEqual({ apdu: { kind: 'never' }, nfc: false });
  });

  it('derives the NFC rule from the APDU rule when D1 is absent (Annex G); no D0 means no APDU access', () => {
    const one = (ar: string) => ruleAccess(rules(rule(aidRef(A), hashRef(H1), ar))[0]);
    expect(one(ALWAYS)).toEqual({ apdu: { kind: 'always' }, nfc: true });
    expect(one(FILTER1).nfc).toBe(true);
    expect(one(NEVER)).toEqual({ apdu: { kind: 'never' }, nfc: false });
    expect(one(ALWAYS + tlv('D1', '00')).nfc).toBe(false);
    expect(one(tlv('D1', '01'))).toEqual({ apdu: { kind: 'never' }, nfc: true });
    expect(one('')).toEqual({ apdu: { kind: 'never' }, nfc: false });
  });

  it('matches C0 rules to the default applet only, and leaves package-name rules to carrier privileges', () => {
    const set = rules(rule(tlv('C0'), hashRef(H1), ALWAYS));
    expect(evaluateRules(set, 'default', app([H1])).reason).toBe('aid-app');
    expect(evaluateRules(set, fromHex(A), app([H1])).reason).toBe('no-rule');
    const pkg = rules(tlv('E2', refDo(aidRef(A), hashRef(H1), tlv('CA', '6A702E78')) + tlv('E3', ALWAYS)));
    expect(evaluateRules(pkg, fromHex(A), app([H1])).reason).toBe('no-rule');
  });
});

describe('apduAllowed', () => {
  it('applies header/mask filters to the 4-byte header; ALWAYS and NEVER need no look', () => {
    const [r] = parseAllRules(all(rule(aidRef(A), hashRef(H1), tlv('D0', '80CA0000FFFF0000' + '00B08000FFFFF000'))));
    const f = r.apdu!;
    expect(apduAllowed(f, fromHex('80CA9F7F00'))).toBe(true);
    expect(apduAllowed(f, fromHex('80CB9F7F00'))).toBe(false);
    expect(apduAllowed(f, fromHex('00CA9F7F00'))).toBe(false);
    expect(apduAllowed(f, fromHex('00B0850000'))).toBe(true); // P1 high nibble 8 (SFI form)
    expect(apduAllowed(f, fromHex('00B0050000'))).toBe(false);
    expect(apduAllowed(f, fromHex('80CA'))).toBe(false);
    expect(apduAllowed({ kind: 'always' }, fromHex('00A4040000'))).toBe(true);
    expect(apduAllowed({ kind: 'never' }, fromHex('80CA9F7F00'))).toBe(false);
  });
});
