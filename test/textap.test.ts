// The 券面入力補助AP (text AP, applet/textap) end to end from source: javac + the project's converter (buildSample with
// applet/textap/textap.json), GP LOAD + INSTALL through the ISD under SCP03, personalisation by the issuer in an
// applet-level SCP03 session (emulator/host/textap-perso.ts: 個人番号, 基本4情報 in chunks, PIN, 照合番号B, LOCK), then
// the APDU table of applet/textap/README.md as a terminal sends it: SELECT AP/EF, READ BINARY (offsets, SFI form,
// FF filler, 6B00), VERIFY with the PIN / 照合番号A / 照合番号B and their access limits, 63Cx counting and 6984
// blocking, the blocked EF 0012, CHANGE REFERENCE DATA, personalisation refusals, power cuts, power cycles.
// Without javac the tests are skipped unless JPKI_REQUIRE_JDK=1.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fromHex, hex } from '../emulator/bytes.ts';
import type { Chip } from '../emulator/card.ts';
import { hostWrap } from '../emulator/scp03.ts';
import { PowerLoss, openMemoryStore } from '../emulator/store.ts';
import type { ChipStore } from '../emulator/store.ts';
import type { VmRuntime } from '../emulator/vm/runtime.ts';
import { ROOT, apiClassesIn, buildSample, loadProductApplet } from '../applet/build.ts';
import {
  TextApError,
  attributeFields,
  myNumberCheckDigit,
  openTextApPerso,
  parseAttributesEf,
  parseMyNumberEf,
  readTextAp,
  verificationB,
} from '../emulator/host/textap-perso.ts';
import type { Attributes, Transmit } from '../emulator/host/textap-perso.ts';
import { DEFAULT_KEYS, secure, tx } from './helpers/chip.ts';
import { loadAndInstall, lv, vmChip } from './helpers/vm-chip.ts';

const HAVE_JDK = spawnSync('javac', ['-version']).status === 0;
const REQUIRE_JDK = process.env.JPKI_REQUIRE_JDK === '1';
const SKIP = !HAVE_JDK && !REQUIRE_JDK;
if (SKIP) console.warn('textap: javac not found on PATH, skipping (set JPKI_REQUIRE_JDK=1 to fail instead)');

const SAMPLE = loadProductApplet('textap');
const AID = 'D3921000310001010408';
const ATTR_SIZE = 512;

/** A 個人番号 whose check digit is right (8, see the check-digit test). */
const MY_NUMBER = '123456789018';
const PIN = '1234';
/** 照合番号B: born 1980-02-17 (昭和55), card expiring 2035, security code 2285. */
const NUMBER_B = '55021720352285';
/** Multi-byte UTF-8 throughout; the address alone is longer than one C-DEC APDU (239 bytes). */
const PERSON: Attributes = {
  name: '番号\u3000花子',
  address: '北海道札幌市中央区北一条西二丁目１番地　札幌市役所本庁舎内　' + '個人番号カード交付窓口気付　'.repeat(6) + '１２３４５６７８９０号室',
  birth: '19800217',
  sex: '2',
};
const OTHER: Attributes = { name: 'ＳＭＩＴＨ\u3000ＪＯＨＮ', address: '沖縄県那覇市泉崎１－２－２', birth: '20190501', sex: '1' };

const enc = new TextEncoder();
const ascii = (s: string): string => hex(enc.encode(s));
const h2 = (n: number): string => n.toString(16).padStart(2, '0').toUpperCase();
const h4 = (n: number): string => n.toString(16).padStart(4, '0').toUpperCase();
const derLen = (n: number): string => (n < 0x80 ? h2(n) : n < 0x100 ? '81' + h2(n) : '82' + h4(n));
const tlvHex = (tag: string, v: string): string => tag + derLen(v.length / 2) + v;

/** EF 0002 as it must read, built here independently of the applet: DF21 offsets from the start of the EF. */
function expectedAttributesEf(a: Attributes): string {
  const fields = [
    tlvHex('DF22', hex(enc.encode(a.name))),
    tlvHex('DF23', hex(enc.encode(a.address))),
    tlvHex('DF24', ascii(a.birth)),
    tlvHex('DF25', ascii(a.sex)),
  ];
  const valueLen = 11 + fields.join('').length / 2;
  const headLen = 2 + derLen(valueLen).length / 2;
  let at = headLen + 11;
  const offsets = fields.map((f) => {
    const o = at;
    at += f.length / 2;
    return h4(o);
  });
  const image = 'FF20' + derLen(valueLen) + 'DF2108' + offsets.join('') + fields.join('');
  return image + 'FF'.repeat(ATTR_SIZE - image.length / 2);
}
const expectedMyNumberEf = (n: string): string => 'FF100C' + ascii(n) + 'FFFF';

let work = '';
let block: Uint8Array;

beforeAll(() => {
  if (SKIP) return;
  work = mkdtempSync(join(tmpdir(), 'textap-'));
  const api = apiClassesIn(work);
  const b = buildSample(SAMPLE, new Map(), { apiClasses: api, classesRoot: join(work, 'classes'), capRoot: join(work, 'cap'), samplesDir: join(ROOT, 'applet') });
  if (!b.ok) throw new Error(`textap build failed:\n${b.compile.output}\n${b.messages.join('\n')}`);
  block = b.block!;
}, 120_000);

afterAll(() => {
  if (work) rmSync(work, { recursive: true, force: true });
});

const wire = (chip: Chip): Transmit => async (a) => chip.transmit(a);
const selectAp = (chip: Chip) => tx(chip, '00A4040C' + lv(AID));
const selectEf = (chip: Chip, fid: string) => tx(chip, '00A4020C02' + fid);
const read = (chip: Chip, offset: number, le: number) => tx(chip, '00B0' + h4(offset) + h2(le & 0xff));
const verify = (chip: Chip, value?: string, p2 = '80') => tx(chip, '002000' + p2 + (value === undefined ? '' : lv(ascii(value)))).sw;
/** Reads a whole EF of `size` bytes in chunks of 256 (Le = 00). */
function readAll(chip: Chip, size: number): string {
  let out = '';
  for (let off = 0; off < size; off += 256) {
    const r = read(chip, off, 0);
    expect(r.sw).toBe(0x9000);
    out += r.data;
  }
  return out;
}

/** Installs the AP through the ISD and personalises it with the host module; LOCKed unless lock is false. */
async function card(opts: { store?: ChipStore; lock?: boolean; perso?: boolean } = {}): Promise<{ chip: Chip; vm: VmRuntime }> {
  const { chip, vm } = vmChip(opts.store ? { store: opts.store } : {});
  await loadAndInstall(chip, SAMPLE.packageAid, block, AID);
  if (opts.perso === false) return { chip, vm };
  const perso = await openTextApPerso(wire(chip), { keys: DEFAULT_KEYS });
  await perso.writeMyNumber(MY_NUMBER);
  await perso.writeAttributes(PERSON);
  await perso.setPin(PIN);
  await perso.setVerificationB(NUMBER_B.slice(0, 6), NUMBER_B.slice(6, 10), NUMBER_B.slice(10));
  if (opts.lock !== false) await perso.lock();
  return { chip, vm };
}

describe('text AP host helpers (no card)', () => {
  it('check digit of the 個人番号, 照合番号B from the card face (era year), the DF22..DF25 stream', () => {
    expect(myNumberCheckDigit('12345678901')).toBe(8);
    expect(myNumberCheckDigit('00000000000')).toBe(0);
    expect(verificationB('19800217', '2035', '2285')).toBe('55021720352285');
    expect(verificationB('20190501', '2030', '0001')).toBe('01050120300001'); // 令和元年
    expect(verificationB('20190430', '2030', '0001')).toBe('31043020300001'); // 平成31年
    expect(verificationB('19890107', '2030', '0001')).toBe('64010720300001'); // 昭和64年
    expect(() => verificationB('19800230', '2035', '2285')).toThrow(/calendar date/);
    expect(() => verificationB('19800217', '2035', '228')).toThrow(/security code/);
    const s = attributeFields(OTHER);
    expect(hex(s)).toBe(tlvHex('DF22', hex(enc.encode(OTHER.name))) + tlvHex('DF23', hex(enc.encode(OTHER.address))) + 'DF2408' + ascii('20190501') + 'DF2501' + ascii('1'));
    expect(() => attributeFields({ ...OTHER, sex: '3' as '1' })).toThrow(/sex/);
    expect(() => attributeFields({ ...OTHER, name: '' })).toThrow(/name/);
    expect(() => attributeFields({ ...OTHER, name: 'a\uD800b' })).toThrow(/surrogate/);
    expect(() => attributeFields({ ...OTHER, address: '住'.repeat(170) })).toThrow(/EF 0002 holds 512/);
  });

  it('EF parsers accept the layouts and name what is wrong in malformed ones', () => {
    expect(parseMyNumberEf(fromHex(expectedMyNumberEf(MY_NUMBER)).subarray(0, 15))).toBe(MY_NUMBER);
    expect(() => parseMyNumberEf(fromHex('FF110C' + ascii(MY_NUMBER)))).toThrow(/expected tag FF10, got FF11/);
    expect(() => parseMyNumberEf(fromHex('FF100C' + ascii('12345678901A')))).toThrow(/12 ASCII digits/);
    expect(() => parseMyNumberEf(fromHex('FF100C' + ascii('1234')))).toThrow(TextApError);
    const good = fromHex(expectedAttributesEf(PERSON));
    expect(parseAttributesEf(good)).toEqual(PERSON);
    const bad = (mutate: (b: Uint8Array) => void): Uint8Array => {
      const b = good.slice();
      mutate(b);
      return b;
    };
    // FF20 82 LLLL (0..4), DF21 08 (5..7), offsets (8..15), DF22 at 16.
    expect(hex(good.subarray(0, 3))).toBe('FF2082');
    expect(() => parseAttributesEf(bad((b) => (b[1] = 0x21)))).toThrow(/expected tag FF20, got FF21/);
    expect(() => parseAttributesEf(bad((b) => (b[6] = 0x29)))).toThrow(/first object must be DF21 .* got tag DF29/);
    expect(() => parseAttributesEf(bad((b) => (b[7] = 0x06)))).toThrow(/first object must be DF21 .* of 6 bytes/);
    expect(() => parseAttributesEf(bad((b) => (b[11] = 0x99)))).toThrow(/DF21 gives offset 0x0099 for DF23 \(住所\), which starts at 0x0022/);
    expect(() => parseAttributesEf(bad((b) => (b[17] = 0x23)))).toThrow(/expected DF22 \(氏名\) at offset 0x0010, found tag DF23/);
    expect(() => parseAttributesEf(bad((b) => (b[19] = 0xff)))).toThrow(/DF22 \(氏名\) is not valid UTF-8/);
    const sexAt = good.indexOf(0x25, 15) + 2;
    expect(() => parseAttributesEf(bad((b) => (b[sexAt] = 0x33)))).toThrow(/DF25 \(性別\) must be '1', '2' or '9', got 33/);
    expect(() => parseAttributesEf(bad((b) => (b[sexAt - 5] = 0x41)))).toThrow(/DF24 \(生年月日\) must be a YYYYMMDD date/);
    // The outer length one byte longer: FF filler inside FF20.
    expect(() => parseAttributesEf(bad((b) => (b[4] += 1)))).toThrow(/1 unexpected bytes after DF25/);
    // The outer length cut short: DF25 overruns it.
    expect(() => parseAttributesEf(bad((b) => (b[4] -= 1)))).toThrow(/DF25 \(性別\): value of 1 bytes overruns/);
  });
});

describe.skipIf(SKIP)('券面入力補助AP: built from source, installed and personalised under SCP03', () => {
  it('SELECT AP (no FCI) and SELECT EF; 6A82 for the secure-messaging EFs and unknown FIDs; 6A86 / 6700 / 6D00 / 6E00', async () => {
    const { chip } = await card();
    expect(selectAp(chip)).toMatchObject({ data: '', sw: 0x9000 });
    for (const fid of ['0001', '0002', '0011', '0012', '0014', '0015']) expect(selectEf(chip, fid), fid).toMatchObject({ data: '', sw: 0x9000 });
    for (const fid of ['0003', '0004', '0005', '0006', '0007', '0008', '0013', '0100', '3F00']) expect(selectEf(chip, fid).sw, fid).toBe(0x6a82);
    expect(tx(chip, '00A4020002' + '0002').sw).toBe(0x9000); // P2 00 too
    expect(tx(chip, '00A40000').sw).toBe(0x6a86);
    expect(tx(chip, '00A4020402' + '0001').sw).toBe(0x6a86);
    expect(tx(chip, '00A4020C030001FF').sw).toBe(0x6700);
    expect(tx(chip, '00A4040C' + lv('D3921000310001010499')).sw).toBe(0x6a82);
    // Not implemented: the AP's signature and secure messaging, GET CHALLENGE.
    for (const a of ['802A0000' + lv('00'.repeat(51)) + '00', '80AE0000' + lv('00'.repeat(16)), '0084000008', '00CA010000', '00FF0000'])
      expect(tx(chip, a).sw, a).toBe(0x6d00);
    // Card commands are CLA 00 (channel bits aside): 80, 84 and ISO SM classes are refused.
    for (const a of ['80A4020C020001', '84B0000001', '0CB0000001', '80200080'])
      expect(tx(chip, a).sw, a).toBe(0x6e00);
  });

  it('EF 0001 after the PIN: FF10 0C <12 digits> FF FF, offsets, SFI form, 6B00 past the end; 6982 / 6986 / 6981 / 6A82 / 6A86', async () => {
    const { chip } = await card();
    selectAp(chip);
    expect(read(chip, 0, 17).sw).toBe(0x6986); // no current EF
    selectEf(chip, '0001');
    expect(read(chip, 0, 17).sw).toBe(0x6982);
    expect(tx(chip, '00B0810000').sw).toBe(0x6982);
    selectEf(chip, '0011');
    expect(read(chip, 0, 4).sw).toBe(0x6981); // a reference is no transparent EF
    expect(verify(chip, PIN)).toBe(0x9000);
    selectEf(chip, '0001');
    expect(read(chip, 0, 0)).toMatchObject({ data: expectedMyNumberEf(MY_NUMBER), sw: 0x9000 }); // 17 bytes for Le 256
    expect(read(chip, 3, 12)).toMatchObject({ data: ascii(MY_NUMBER), sw: 0x9000 });
    expect(read(chip, 15, 5)).toMatchObject({ data: 'FFFF', sw: 0x9000 });
    expect(read(chip, 17, 1).sw).toBe(0x6b00);
    expect(read(chip, 0x7fff, 1).sw).toBe(0x6b00);
    // SFI form: P1 = 80|sfi, P2 = offset; the EF becomes current.
    selectEf(chip, '0011');
    expect(tx(chip, '00B0810003')).toMatchObject({ data: 'FF100C', sw: 0x9000 });
    expect(read(chip, 14, 1).data).toBe(ascii('8'));
    expect(tx(chip, '00B0811100').sw).toBe(0x6b00);
    expect(tx(chip, '00B0830001').sw).toBe(0x6a82);
    expect(tx(chip, '00B0A10001').sw).toBe(0x6a86);
    expect(tx(chip, '00B0910001').sw).toBe(0x6981); // SFI 11 = the PIN
  });

  it('EF 0002 after the PIN: FF20 {DF21 offsets from the EF start, DF22..DF25} in multi-byte UTF-8, FF filler to 512', async () => {
    const { chip } = await card();
    selectAp(chip);
    selectEf(chip, '0002');
    expect(read(chip, 0, 4).sw).toBe(0x6982);
    expect(verify(chip, PIN, '91')).toBe(0x9000); // P2 = 80|sfi names EF 0011
    const ef = readAll(chip, ATTR_SIZE);
    expect(ef).toBe(expectedAttributesEf(PERSON));
    expect(enc.encode(PERSON.address).length).toBeGreaterThan(239); // needed two WRITE ATTRIBUTES blocks
    expect(read(chip, ATTR_SIZE - 2, 0)).toMatchObject({ data: 'FFFF', sw: 0x9000 });
    expect(read(chip, ATTR_SIZE, 1).sw).toBe(0x6b00);
    // The table points at each field's tag.
    const b = fromHex(ef);
    for (let i = 0; i < 4; i++) {
      const off = (b[8 + 2 * i] << 8) | b[9 + 2 * i];
      expect(hex(b.subarray(off, off + 2)), `field ${i}`).toBe('DF' + h2(0x22 + i));
    }
    expect(tx(chip, '00B0820004').data).toBe(ef.slice(0, 8));
  });

  it('照合番号A opens EF 0001 only, 照合番号B opens EF 0002 only; reselecting the AP ends every verification', async () => {
    const { chip } = await card();
    selectAp(chip);
    selectEf(chip, '0014');
    expect(verify(chip)).toBe(0x63ca);
    expect(verify(chip, MY_NUMBER)).toBe(0x9000);
    expect(verify(chip)).toBe(0x9000);
    selectEf(chip, '0001');
    expect(read(chip, 0, 0).data).toBe(expectedMyNumberEf(MY_NUMBER));
    selectEf(chip, '0002');
    expect(read(chip, 0, 4).sw).toBe(0x6982);
    selectAp(chip);
    expect(tx(chip, '00B0810000').sw).toBe(0x6982);
    selectEf(chip, '0015');
    expect(verify(chip)).toBe(0x63ca);
    expect(verify(chip, NUMBER_B)).toBe(0x9000);
    expect(tx(chip, '00B0820000').data).toBe(expectedAttributesEf(PERSON).slice(0, 512));
    expect(tx(chip, '00B0810000').sw).toBe(0x6982);
    // Selecting another EF keeps the verification.
    selectEf(chip, '0011');
    selectEf(chip, '0002');
    expect(read(chip, 0, 2).data).toBe('FF20');
  });

  it('PIN: 63C3 query, wrong → 63C2 …, the third → 63C0, then 6984 even when right; 照合番号A and B still open their EF', async () => {
    const { chip } = await card();
    selectAp(chip);
    selectEf(chip, '0011');
    expect(verify(chip)).toBe(0x63c3);
    expect(verify(chip, '0000')).toBe(0x63c2);
    expect(verify(chip)).toBe(0x63c2);
    expect(verify(chip, PIN)).toBe(0x9000); // a right PIN restores the counter
    expect(verify(chip)).toBe(0x9000);
    selectAp(chip);
    selectEf(chip, '0011');
    expect(verify(chip)).toBe(0x63c3);
    expect(verify(chip, '12345')).toBe(0x63c2); // wrong length still costs a try
    expect(verify(chip, '1'.repeat(40))).toBe(0x63c1); // longer than every stored value
    expect(verify(chip, '4321')).toBe(0x63c0);
    expect(verify(chip, PIN)).toBe(0x6984);
    expect(verify(chip)).toBe(0x63c0);
    expect(tx(chip, '00200091').sw).toBe(0x63c0);
    selectEf(chip, '0001');
    expect(read(chip, 0, 1).sw).toBe(0x6982);
    expect(verify(chip, MY_NUMBER, '94')).toBe(0x9000);
    expect(read(chip, 0, 0).data).toBe(expectedMyNumberEf(MY_NUMBER));
    expect(verify(chip, NUMBER_B, '95')).toBe(0x9000);
    expect(tx(chip, '00B0820002').data).toBe('FF20');
  });

  for (const [fid, sfi, right, wrong] of [
    ['0014', '94', MY_NUMBER, '123456789017'],
    ['0015', '95', NUMBER_B, '55021720352286'],
  ] as const) {
    it(`照合番号${fid === '0014' ? 'A' : 'B'} (EF ${fid}): 10 tries, 63C9 … 63C0, then 6984 even when right; the PIN is untouched`, async () => {
      const { chip } = await card();
      selectAp(chip);
      selectEf(chip, fid);
      expect(verify(chip)).toBe(0x63ca);
      expect(verify(chip, wrong)).toBe(0x63c9);
      expect(verify(chip, right)).toBe(0x9000);
      expect(verify(chip)).toBe(0x9000);
      selectAp(chip);
      expect(verify(chip, undefined, sfi)).toBe(0x63ca);
      for (let left = 9; left >= 0; left--) expect(verify(chip, wrong, sfi)).toBe(0x63c0 | left);
      expect(verify(chip, right, sfi)).toBe(0x6984);
      expect(verify(chip, undefined, sfi)).toBe(0x63c0);
      expect(verify(chip, undefined, '91')).toBe(0x63c3);
      expect(verify(chip, PIN, '91')).toBe(0x9000);
      expect(tx(chip, '00B0' + (fid === '0014' ? '81' : '82') + '0002').data).toBe(fid === '0014' ? 'FF10' : 'FF20');
    });
  }

  it('EF 0012 is blocked as issued: query 63C0, VERIFY 6984, CHANGE REFERENCE DATA 6984; VERIFY errors 6A88 / 6986 / 6A86', async () => {
    const { chip } = await card();
    selectAp(chip);
    expect(verify(chip, PIN)).toBe(0x6986); // no current EF
    selectEf(chip, '0012');
    expect(verify(chip)).toBe(0x63c0);
    expect(verify(chip, '0000')).toBe(0x6984);
    expect(verify(chip, '0000', '92')).toBe(0x6984);
    expect(tx(chip, '00240180' + lv(ascii('0000'))).sw).toBe(0x6984);
    expect(verify(chip)).toBe(0x63c0); // nothing changed
    selectEf(chip, '0001');
    expect(verify(chip, PIN)).toBe(0x6a88); // not a reference
    expect(verify(chip, PIN, '93')).toBe(0x6a88); // no EF 0013
    expect(tx(chip, '00200180' + lv(ascii(PIN))).sw).toBe(0x6a86);
    expect(tx(chip, '00200001' + lv(ascii(PIN))).sw).toBe(0x6a86); // P2 not 80|sfi
  });

  it('CHANGE REFERENCE DATA of the PIN after VERIFY (4 digits); 照合番号A/B cannot be changed (6985)', async () => {
    const { chip } = await card();
    selectAp(chip);
    selectEf(chip, '0011');
    expect(tx(chip, '00240180' + lv(ascii('9876'))).sw).toBe(0x6982);
    expect(verify(chip, PIN)).toBe(0x9000);
    expect(tx(chip, '00240080' + lv(ascii('9876'))).sw).toBe(0x6a86);
    expect(tx(chip, '00240180' + lv(ascii('98A6'))).sw).toBe(0x6a80);
    expect(tx(chip, '00240180' + lv(ascii('98765'))).sw).toBe(0x6a80);
    expect(tx(chip, '00240181' + lv(ascii('9876'))).sw).toBe(0x6a88); // EF 0001 is no reference
    expect(tx(chip, '00240180' + lv(ascii('9876'))).sw).toBe(0x9000);
    // The change ends the verification; the old PIN is wrong now, the new one right.
    expect(verify(chip)).toBe(0x63c3);
    expect(tx(chip, '00B0810000').sw).toBe(0x6982);
    selectEf(chip, '0011');
    expect(verify(chip, PIN)).toBe(0x63c2);
    expect(verify(chip, '9876')).toBe(0x9000);
    expect(verify(chip)).toBe(0x9000);
    for (const sfi of ['94', '95']) {
      expect(tx(chip, '002401' + sfi + lv(ascii('1'.repeat(12)))).sw, sfi).toBe(0x6985);
    }
    const r = await readTextAp(wire(chip), { pin: '9876' });
    expect(r.myNumber).toBe(MY_NUMBER);
    // A blocked PIN cannot be changed even after a verification by 照合番号A.
    selectAp(chip);
    selectEf(chip, '0011');
    for (const sw of [0x63c2, 0x63c1, 0x63c0]) expect(verify(chip, '0000')).toBe(sw);
    expect(verify(chip, MY_NUMBER, '94')).toBe(0x9000);
    expect(tx(chip, '00240191' + lv(ascii('1111'))).sw).toBe(0x6984);
  });

  it('readTextAp: the PIN gives everything, 照合番号A the 個人番号, 照合番号B the 4 attributes; refusals carry the SW', async () => {
    const { chip } = await card();
    const t = wire(chip);
    expect(await readTextAp(t, { pin: PIN })).toEqual({ myNumber: MY_NUMBER, ...PERSON });
    expect(await readTextAp(t, { numberA: MY_NUMBER })).toEqual({ myNumber: MY_NUMBER });
    expect(await readTextAp(t, { numberB: NUMBER_B })).toEqual(PERSON);
    const err = await readTextAp(t, { pin: '9999' }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TextApError);
    expect((err as TextApError).sw).toBe(0x63c2);
    expect((err as TextApError).message).toMatch(/VERIFY EF 0011 refused: SW 63C2.*2 tries left/);
    await expect(readTextAp(t, { pin: '123' })).rejects.toThrow(/PIN must be 4 ASCII digits/);
    selectAp(chip);
    selectEf(chip, '0011');
    expect(verify(chip)).toBe(0x63c2); // the malformed PIN never reached the card
    // On logical channel 1 (the AP is not multi-selectable: channel 0 moves to the ISD first).
    expect(tx(chip, '00A4040008A000000151000000').sw).toBe(0x9000);
    expect(tx(chip, '0070000001')).toMatchObject({ data: '01', sw: 0x9000 });
    expect(await readTextAp(t, { numberB: NUMBER_B }, { channel: 1 })).toEqual(PERSON);
  });

  it('a card not yet personalised: references unusable (6984), EFs all FF behind their access rule; perso on channel 1', async () => {
    const { chip } = await card({ perso: false });
    selectAp(chip);
    for (const sfi of ['91', '94', '95']) expect(verify(chip, undefined, sfi), sfi).toBe(0x6984);
    expect(verify(chip, '1234', '91')).toBe(0x6984);
    expect(tx(chip, '00B0810000').sw).toBe(0x6982);
    // Personalised on logical channel 1 (channel 0 moves to the ISD: the AP is not multi-selectable).
    expect(tx(chip, '00A4040008A000000151000000').sw).toBe(0x9000);
    expect(tx(chip, '0070000001')).toMatchObject({ data: '01', sw: 0x9000 });
    const perso = await openTextApPerso(wire(chip), { keys: DEFAULT_KEYS, channel: 1 });
    await perso.setPin(PIN);
    expect(tx(chip, '01200091' + lv(ascii(PIN))).sw).toBe(0x9000);
    expect(tx(chip, '01B0810000')).toMatchObject({ data: 'FF'.repeat(17), sw: 0x9000 });
    expect(tx(chip, '01200094').sw).toBe(0x6984);
  });

  it('personalisation needs the SCP03 session with C-MAC (and C-DECRYPTION for data): 6982 otherwise; CLA 00 → 6E00', async () => {
    const { chip } = await card({ perso: false });
    selectAp(chip);
    // No session: plain class, or the SM class with a made-up MAC.
    for (const a of ['80EA0011' + lv(ascii(PIN)), '84EA0011' + lv(ascii(PIN) + '00'.repeat(8)), '80E88001' + lv(ascii(MY_NUMBER)), '80F40000', '84F40000' + lv('00'.repeat(8))])
      expect(tx(chip, a).sw, a).toBe(0x6982);
    expect(tx(chip, '00EA0011' + lv(ascii(PIN))).sw).toBe(0x6e00);
    // Authenticated only (level 00): commands go out plain → 6982.
    let sc = await secure(chip, 0x00);
    expect((await sc.send('80F40000')).sw).toBe(0x6982);
    // C-MAC only: data-carrying commands need C-DECRYPTION.
    sc = await secure(chip, 0x01);
    expect((await sc.send('80EA0011' + lv(ascii(PIN)))).sw).toBe(0x6982);
    expect((await sc.send('80E88001' + lv(ascii(MY_NUMBER)))).sw).toBe(0x6982);
    expect((await sc.send('80E88002' + lv('DF2201') )).sw).toBe(0x6982);
    // The session survives a refusal after a good MAC; a plain command in the session is still refused.
    expect(tx(chip, '80EA0011' + lv(ascii(PIN))).sw).toBe(0x6982);
    // A bad C-MAC is refused and ends the session.
    sc = await secure(chip, 0x03);
    const good = hostWrap(sc.session, fromHex('80EA0011' + lv(ascii(PIN))));
    const bad = good.slice();
    bad[bad.length - 1] ^= 1;
    expect(hex(chip.transmit(bad))).toBe('6982');
    // The aborted session refuses even the right command until a new INITIALIZE UPDATE (GP API 1.6 unwrap).
    expect(hex(chip.transmit(good))).toBe('6985');
    selectEf(chip, '0011');
    expect(verify(chip)).toBe(0x6984); // nothing was set
    sc = await secure(chip, 0x03);
    expect((await sc.send('80EA0011' + lv(ascii(PIN)))).sw).toBe(0x9000);
    expect(verify(chip)).toBe(0x63c3);
    // Wrong static keys: no session at all.
    const wrongKeys = { enc: new Uint8Array(16).fill(1), mac: new Uint8Array(16).fill(1), dek: new Uint8Array(16).fill(1) };
    await expect(openTextApPerso(wire(chip), { keys: wrongKeys })).rejects.toThrow(/SCP03 session with the text AP: card cryptogram does not verify/);
    // A C-MAC-only session can LOCK (no data).
    selectAp(chip);
    sc = await secure(chip, 0x01);
    expect((await sc.send('80F40001')).sw).toBe(0x6a86);
    expect((await sc.send('80F40000')).sw).toBe(0x9000);
    expect((await sc.send('80EA0011' + lv(ascii(PIN)))).sw).toBe(0x6d00);
  });

  it('personalisation formats: 6700 / 6A80 / 6A86 for bad my number, PIN, 照合番号B, references; EFs unchanged', async () => {
    const { chip } = await card({ lock: false });
    selectAp(chip);
    const sc = await secure(chip, 0x03);
    const cases: Array<[string, number]> = [
      ['80E88001' + lv(ascii('12345678901')), 0x6700],
      ['80E88001' + lv(ascii('1234567890123')), 0x6700],
      ['80E88001' + lv(ascii('12345678901X')), 0x6a80],
      ['80E80001' + lv(ascii(MY_NUMBER)), 0x6a86], // P1 must be 80 (one last block)
      ['80E88003' + lv(ascii(MY_NUMBER)), 0x6a86],
      ['80EA0011' + lv(ascii('12345')), 0x6a80],
      ['80EA0011' + lv(ascii('12a4')), 0x6a80],
      ['80EA0015' + lv(ascii('5502172035228')), 0x6a80],
      ['80EA0015' + lv(ascii('5502172035228X')), 0x6a80],
      ['80EA0014' + lv(ascii(MY_NUMBER)), 0x6a86], // 照合番号A comes only with WRITE MY NUMBER
      ['80EA0012' + lv(ascii('1234')), 0x6a86],
      ['80EA0111' + lv(ascii('1234')), 0x6a86],
    ];
    for (const [a, sw] of cases) expect((await sc.send(a)).sw, a).toBe(sw);
    const t = wire(chip);
    expect(await readTextAp(t, { pin: PIN })).toEqual({ myNumber: MY_NUMBER, ...PERSON });
    expect(await readTextAp(t, { numberB: NUMBER_B })).toEqual(PERSON);
  });

  it('WRITE ATTRIBUTES: chunks in order only, malformed streams 6A80, too big 6A84; every refusal leaves EF 0002 as it was', async () => {
    const { chip } = await card({ lock: false });
    selectAp(chip);
    const sc = await secure(chip, 0x03);
    const write = async (p1: number, data: string) => (await sc.send('80E8' + h2(p1) + '02' + lv(data))).sw;
    const stream = hex(attributeFields(OTHER));
    // Out of order: block 1 without block 0, block 2 after block 0.
    expect(await write(0x81, stream)).toBe(0x6a86);
    expect(await write(0x00, stream.slice(0, 20))).toBe(0x9000);
    expect(await write(0x82, stream.slice(20))).toBe(0x6a86);
    // Malformed streams, one block each.
    const name = tlvHex('DF22', ascii('A'));
    const addr = tlvHex('DF23', ascii('B'));
    const birth = tlvHex('DF24', ascii('20000101'));
    const sex = tlvHex('DF25', ascii('1'));
    const malformed = [
      addr + name + birth + sex, // order
      name + addr + birth, // DF25 missing
      name + addr + birth + sex + '00', // trailing byte
      name + tlvHex('DF23', '') + birth + sex, // empty address
      name + addr + tlvHex('DF24', ascii('2000010')) + sex, // 7 digits
      name + addr + tlvHex('DF24', ascii('2000O101')) + sex, // a letter
      name + addr + birth + tlvHex('DF25', ascii('3')), // sex code
      name + addr + birth + tlvHex('DF25', ascii('12')),
      'DF228101' + ascii('A') + addr + birth + sex, // non-minimal length
      'DF22820005' + ascii('AAAAA') + addr + birth + sex,
      name + 'DF2305' + ascii('B') + birth + sex, // wrong length: DF24 is swallowed
      name + addr + birth + 'DF25',
    ];
    for (const m of malformed) expect(await write(0x80, m), m).toBe(0x6a80);
    // Too big for EF 0002: 3 blocks of 200 bytes of name.
    const big = 'DF22' + '820230' + '41'.repeat(195);
    expect(big.length / 2).toBe(200);
    expect(await write(0x00, big)).toBe(0x9000);
    expect(await write(0x01, '41'.repeat(200))).toBe(0x9000);
    expect(await write(0x82, '41'.repeat(200))).toBe(0x6a84);
    expect(await readTextAp(wire(chip), { numberB: NUMBER_B })).toEqual(PERSON);
    // A chunked write cut off by a reselection leaves nothing staged: the next block is out of order.
    selectAp(chip);
    const sc2 = await secure(chip, 0x03);
    expect((await sc2.send('80E80002' + lv(stream.slice(0, 40)))).sw).toBe(0x9000);
    selectAp(chip);
    const sc3 = await secure(chip, 0x03);
    expect((await sc3.send('80E88102' + lv(stream.slice(40)))).sw).toBe(0x6a86);
    expect(await readTextAp(wire(chip), { pin: PIN })).toEqual({ myNumber: MY_NUMBER, ...PERSON });
    // A new write replaces the attributes (one block here: the stream is short) and the DF21 offsets follow.
    const perso = await openTextApPerso(wire(chip), { keys: DEFAULT_KEYS });
    await perso.writeAttributes(OTHER);
    selectAp(chip);
    expect(verify(chip, PIN, '91')).toBe(0x9000);
    expect(tx(chip, '00B0820000').data).toBe(expectedAttributesEf(OTHER).slice(0, 512));
    expect(readAll(chip, ATTR_SIZE)).toBe(expectedAttributesEf(OTHER));
  });

  it('an R-MAC / R-ENC session (level 33) personalises too: the 9000s carry R-MACs the host verifies; chunks', async () => {
    const { chip } = await card({ perso: false });
    const sent: Uint8Array[] = [];
    const t: Transmit = async (a) => {
      sent.push(a);
      return chip.transmit(a);
    };
    const perso = await openTextApPerso(t, { keys: DEFAULT_KEYS, level: 0x33 });
    await perso.writeMyNumber(MY_NUMBER);
    await perso.writeAttributes(PERSON);
    await perso.setPin(PIN);
    await perso.setVerificationB(NUMBER_B.slice(0, 6), NUMBER_B.slice(6, 10), NUMBER_B.slice(10));
    await perso.lock();
    const blocks = sent.filter((a) => a[1] === 0xe8 && a[3] === 0x02).map((a) => a[2]);
    expect(blocks).toEqual([0x00, 0x81]); // 416 bytes in blocks of at most 239
    expect(sent.every((a) => a[1] < 0xe8 || a[0] === 0x84)).toBe(true);
    expect(await readTextAp(wire(chip), { pin: PIN })).toEqual({ myNumber: MY_NUMBER, ...PERSON });
    await expect(perso.setPin('1111')).rejects.toMatchObject({ sw: 0x6d00 });
  });

  it('host-side checks: a wrong check digit or a malformed PIN / 照合番号B never reaches the card', async () => {
    const { chip } = await card({ lock: false });
    const perso = await openTextApPerso(wire(chip), { keys: DEFAULT_KEYS });
    await expect(perso.writeMyNumber('123456789012')).rejects.toThrow(/check digit 2, expected 8/);
    await expect(perso.writeMyNumber('12345678901')).rejects.toThrow(/12 ASCII digits/);
    await expect(perso.setPin('12345')).rejects.toThrow(/PIN must be 4 ASCII digits/);
    await expect(perso.setVerificationB('550217', '35', '2285')).rejects.toThrow(/expiry year/);
    await expect(perso.writeAttributes({ ...PERSON, birth: '19800231' })).rejects.toThrow(/calendar date/);
    await perso.writeMyNumber('000000000000');
    expect(await readTextAp(wire(chip), { numberA: '000000000000' })).toEqual({ myNumber: '000000000000' });
  });

  it('LOCK: afterwards every personalisation INS, INITIALIZE UPDATE and EXTERNAL AUTHENTICATE answer 6D00', async () => {
    const { chip } = await card({ lock: false });
    const perso = await openTextApPerso(wire(chip), { keys: DEFAULT_KEYS });
    await perso.lock();
    for (const f of [() => perso.setPin('1111'), () => perso.writeMyNumber(MY_NUMBER), () => perso.writeAttributes(OTHER), () => perso.lock()])
      await expect(f()).rejects.toMatchObject({ sw: 0x6d00 });
    await expect(openTextApPerso(wire(chip), { keys: DEFAULT_KEYS })).rejects.toMatchObject({ sw: 0x6d00 });
    selectAp(chip);
    for (const a of ['8050000008' + '00'.repeat(8) + '00', '8482000010' + '00'.repeat(16), '80EA0011' + lv(ascii('1111')), '84E88001' + lv('00'.repeat(20)), '80F40000'])
      expect(tx(chip, a).sw, a).toBe(0x6d00);
    expect(await readTextAp(wire(chip), { pin: PIN })).toEqual({ myNumber: MY_NUMBER, ...PERSON });
  });

  it('persistence: data, references and try counters survive a power cycle and a new chip on the same store', async () => {
    const store = openMemoryStore();
    const { chip } = await card({ store });
    selectAp(chip);
    expect(verify(chip, '0000', '91')).toBe(0x63c2);
    expect(verify(chip, '000000000000', '94')).toBe(0x63c9);
    expect(verify(chip, NUMBER_B, '95')).toBe(0x9000);
    chip.powerDown();
    chip.powerUp();
    selectAp(chip);
    expect(tx(chip, '00B0820000').sw).toBe(0x6982); // the verification did not survive
    expect(verify(chip, undefined, '91')).toBe(0x63c2);
    expect(verify(chip, undefined, '94')).toBe(0x63c9);
    expect(verify(chip, undefined, '95')).toBe(0x63ca);
    expect(verify(chip, '1111', '91')).toBe(0x63c1);
    chip.powerDown();
    if (!store.powered) store.powerUp();
    const again = vmChip({ store }).chip;
    expect(selectAp(again).sw).toBe(0x9000);
    expect(verify(again, undefined, '91')).toBe(0x63c1);
    expect(await readTextAp(wire(again), { pin: PIN })).toEqual({ myNumber: MY_NUMBER, ...PERSON });
    expect(tx(again, '80F40000').sw).toBe(0x6d00); // still LOCKed
  });

  for (const layer of ['heap', 'store'] as const) {
    it(`power cut (${layer}) at every write point of WRITE MY NUMBER and of the last WRITE ATTRIBUTES block: all or nothing`, async () => {
      const store = openMemoryStore();
      let { chip, vm } = await card({ store, lock: false });
      const NEW_NUMBER = '000000000000';
      const reopen = (): void => {
        if (!store.powered) store.powerUp();
        ({ chip, vm } = vmChip({ store }));
      };
      /** Arms the cut when the command `target` (INS, P1 mask, P2) goes out, after the session is open. */
      const cutting = (n: number, target: (a: Uint8Array) => boolean): Transmit => async (a) => {
        if (target(a)) {
          if (layer === 'heap') vm.vm!.heap.armTear(n);
          else store.armTear(n);
        }
        return chip.transmit(a);
      };
      const disarm = (): void => {
        vm.vm!.heap.disarmTear();
        store.disarmTear();
      };
      const runs: Array<{ name: string; target: (a: Uint8Array) => boolean; op: (t: Transmit) => Promise<void>; check: () => Promise<'old' | 'new'> }> = [
        {
          name: 'WRITE MY NUMBER',
          target: (a) => a[1] === 0xe8 && a[3] === 0x01,
          op: async (t) => (await openTextApPerso(t, { keys: DEFAULT_KEYS })).writeMyNumber(NEW_NUMBER),
          async check() {
            const n = (await readTextAp(wire(chip), { pin: PIN })).myNumber ?? '';
            // 照合番号A moves with EF 0001.
            expect(await readTextAp(wire(chip), { numberA: n })).toEqual({ myNumber: n });
            if (n === NEW_NUMBER) return 'new';
            expect(n).toBe(MY_NUMBER);
            return 'old';
          },
        },
        {
          name: 'WRITE ATTRIBUTES',
          target: (a) => a[1] === 0xe8 && a[3] === 0x02 && (a[2] & 0x80) !== 0,
          op: async (t) => (await openTextApPerso(t, { keys: DEFAULT_KEYS })).writeAttributes(OTHER),
          async check() {
            selectAp(chip);
            selectEf(chip, '0002');
            expect(verify(chip, PIN, '91')).toBe(0x9000);
            const ef = readAll(chip, ATTR_SIZE);
            if (ef === expectedAttributesEf(OTHER)) return 'new';
            expect(ef).toBe(expectedAttributesEf(PERSON));
            return 'old';
          },
        },
      ];
      for (const run of runs) {
        let cuts = 0;
        for (let n = 1; ; n++) {
          expect(n, run.name).toBeLessThan(40);
          let cut = false;
          try {
            await run.op(cutting(n, run.target));
          } catch (e) {
            if (!(e instanceof PowerLoss)) throw e;
            cut = true;
          }
          disarm();
          if (!cut) break;
          cuts++;
          reopen();
          expect(await run.check(), `${run.name}, cut at ${n}`).toBe('old');
        }
        expect(cuts, run.name).toBeGreaterThanOrEqual(1);
        reopen();
        expect(await run.check(), run.name).toBe('new');
      }
    });
  }
});
