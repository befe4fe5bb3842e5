// The personalisation helpers (emulator/personalise) end to end, in-process: issueMyNumberCard makes a My Number Card
// and provisionPhone a phone's GP-SE from a test CA; then each chip is checked from outside as a relying party, a
// terminal or an app would see it: the registry, the closed personalisation, the certificates read back with READ
// BINARY and verified against the CA (@peculiar/x509), signatures verified against the certificates' keys
// (node:crypto), the text AP's data, the APSD's keys, the ACE's decision for the app and for another app. Bad inputs
// must be refused before the first APDU. Without javac the tests are skipped unless JPKI_REQUIRE_JDK=1.
import 'reflect-metadata';
import * as x509 from '@peculiar/x509';
import { beforeAll, describe, expect, it } from 'vitest';
import { X509Certificate as NodeCertificate, createHash, verify, webcrypto } from 'node:crypto';
import { concat, fromHex, hex } from '../emulator/bytes.ts';
import { openChip } from '../emulator/card.ts';
import type { Chip } from '../emulator/card.ts';
import { createAce, SecurityError } from '../emulator/device/ace.ts';
import type { SeChannel } from '../emulator/device/ace.ts';
import { connectGp, DEFAULT_TEST_KEY, keySetFrom } from '../emulator/host/gp-client.ts';
import { JPKI_AID, JPKI_APSD_AID, openJpkiPerso } from '../emulator/host/jpki-perso.ts';
import type { CertEf } from '../emulator/host/jpki-perso.ts';
import { TEXT_AP_AID, readTextAp } from '../emulator/host/textap-perso.ts';
import { Priv } from '../emulator/gp/constants.ts';
import { MYNUMBER_CARD_PROFILE } from '../emulator/profile.ts';
import { TEST_CITIZEN, citizenProblem, withCheckDigit } from '../emulator/personalise/citizen.ts';
import type { Citizen } from '../emulator/personalise/citizen.ts';
import { issueMyNumberCard, pinProblem } from '../emulator/personalise/mynumber-card.ts';
import type { IssuedCard } from '../emulator/personalise/mynumber-card.ts';
import { ARA_M_PACKAGE_AID, provisionPhone, testAppCertificate } from '../emulator/personalise/phone.ts';
import type { ProvisionedPhone } from '../emulator/personalise/phone.ts';
import { createTestCa } from '../emulator/personalise/test-ca.ts';
import type { TestCa } from '../emulator/personalise/test-ca.ts';
import { tx } from './helpers/chip.ts';
import { lv } from './helpers/vm-chip.ts';
import { JPKI_SKIP } from './helpers/jpki.ts';

if (JPKI_SKIP) console.warn('personalise: javac not found on PATH, skipping (set JPKI_REQUIRE_JDK=1 to fail instead)');
x509.cryptoProvider.set(webcrypto as unknown as Crypto);

const ISD = 'A000000151000000';
const ARA_M = 'A00000015141434C00';
const FID: Record<CertEf, string> = { sign: '0001', signCa: '0002', auth: '000A', authCa: '000B' };
/** PIN / key references by SFI: VERIFY 98 / 9B, COMPUTE DIGITAL SIGNATURE 97 / 9A. */
const REF = { auth: { pin: '98', key: '97' }, sign: { pin: '9B', key: '9A' } } as const;

const ascii = (s: string): string => hex(new TextEncoder().encode(s));
const swOf = (r: Uint8Array): number => (r[r.length - 2] << 8) | r[r.length - 1];
const dataOf = (r: Uint8Array): Uint8Array => r.subarray(0, r.length - 2);
/** A moment safely inside every certificate's validity (they start when issued). */
const soon = () => new Date(Date.now() + 60_000);

/** Any way of sending an APDU: a chip's basic channel or an ACE channel. */
type Send = (apdu: string) => Promise<Uint8Array>;
const onChip = (chip: Chip): Send => async (a) => chip.transmit(fromHex(a));
const onChannel = (ch: SeChannel): Send => (a) => ch.transmit(fromHex(a));

/** A fresh powered chip and a transport counting the APDUs sent to it. */
function freshChip(profile?: string): { chip: Chip; transport: { transmit(a: Uint8Array): Promise<Uint8Array> }; sent: () => number } {
  const chip = openChip(profile ? { profile } : {});
  chip.powerUp();
  let n = 0;
  return {
    chip,
    transport: {
      transmit: async (a) => {
        n++;
        return chip.transmit(a);
      },
    },
    sent: () => n,
  };
}

/** SELECT EF then the whole 2048-byte EF with READ BINARY; undefined (with the SW) when the read is refused. */
async function readEf(send: Send, fid: string): Promise<{ sw: number; data?: Uint8Array }> {
  expect(swOf(await send('00A4020C02' + fid))).toBe(0x9000);
  const parts: Uint8Array[] = [];
  for (let off = 0; off < 0x800; off += 0x100) {
    const r = await send('00B0' + off.toString(16).padStart(4, '0') + '00');
    if (swOf(r) !== 0x9000) return { sw: swOf(r) };
    parts.push(dataOf(r));
  }
  return { sw: 0x9000, data: concat(...parts) };
}

/** The EF holds exactly `der`, FF after it. */
function expectCertificateIn(ef: Uint8Array | undefined, der: Uint8Array): void {
  expect(ef).toBeDefined();
  expect(hex(ef!.subarray(0, der.length))).toBe(hex(der));
  expect(ef!.subarray(der.length).every((b) => b === 0xff)).toBe(true);
}

/** VERIFY then COMPUTE DIGITAL SIGNATURE over SHA-256("message …"); the signature must verify with the certificate's key. */
async function signAndCheck(send: Send, kind: 'auth' | 'sign', pin: string, certificate: Uint8Array): Promise<void> {
  const message = `message for the ${kind} key`;
  const digestInfo = '3031300D060960864801650304020105000420' + createHash('sha256').update(message).digest('hex');
  expect(swOf(await send(`002000${REF[kind].pin}` + lv(ascii(pin))))).toBe(0x9000);
  const r = await send(`802A00${REF[kind].key}` + lv(digestInfo) + '00');
  expect(swOf(r)).toBe(0x9000);
  const signature = dataOf(r);
  expect(signature.length).toBe(256);
  const key = new NodeCertificate(certificate).publicKey;
  expect(verify('sha256', Buffer.from(message), key, signature)).toBe(true);
  expect(verify('sha256', Buffer.from(message + '!'), key, signature)).toBe(false);
}

/** The end-entity certificate is signed by the CA of its kind, and not by the other one. */
async function expectChainsTo(der: Uint8Array, ca: TestCa, kind: 'auth' | 'sign'): Promise<void> {
  const cert = new x509.X509Certificate(new Uint8Array(der));
  const other = kind === 'auth' ? 'sign' : 'auth';
  expect(await cert.verify({ publicKey: ca[kind].cert.publicKey, date: soon() })).toBe(true);
  expect(await cert.verify({ publicKey: ca[other].cert.publicKey, date: soon() })).toBe(false);
  expect(cert.issuer).toBe(ca[kind].cert.subject);
}

let ca: TestCa;
beforeAll(async () => {
  if (!JPKI_SKIP) ca = await createTestCa();
});

describe.skipIf(JPKI_SKIP)('issueMyNumberCard', () => {
  const citizen: Citizen = {
    name: '山田\u3000太郎',
    address: '北海道札幌市中央区北一条西二丁目',
    birth: '19900401',
    sex: '1',
    myNumber: withCheckDigit('98765432109'),
  };
  const pins = { auth: '5678', sign: 'PASS99', text: '2468' };
  let chip: Chip;
  let card: IssuedCard;
  beforeAll(async () => {
    if (JPKI_SKIP) return;
    const fresh = freshChip('mynumber-card');
    chip = fresh.chip;
    card = await issueMyNumberCard(fresh.transport, { ca, citizen, pins, securityCode: '1357', expiryYear: '2036' });
  });

  it('installs the JPKI AP (card profile) and the text AP under the ISD, on the My Number Card ATR', () => {
    expect(hex(chip.atr)).toBe(hex(MYNUMBER_CARD_PROFILE.atr));
    const apps = chip.model().registry.apps;
    expect(apps.find((a) => a.aid === JPKI_AID)).toMatchObject({ sd: ISD, params: '800100' });
    expect(apps.find((a) => a.aid === TEXT_AP_AID)).toMatchObject({ sd: ISD });
    expect(apps.map((a) => a.aid).sort()).toEqual([ISD, JPKI_AID, TEXT_AP_AID].sort());
  });

  it('locks both applets: their personalisation commands, INITIALIZE UPDATE included, answer 6D00', async () => {
    for (const aid of [JPKI_AID, TEXT_AP_AID]) {
      expect(tx(chip, '00A4040C' + lv(aid)).sw).toBe(0x9000);
      expect(tx(chip, '8050000008' + '0102030405060708' + '00').sw, `${aid} INITIALIZE UPDATE`).toBe(0x6d00);
      expect(tx(chip, '84F40000').sw, `${aid} LOCK`).toBe(0x6d00);
    }
    expect(tx(chip, '00A4040C' + lv(JPKI_AID)).sw).toBe(0x9000);
    expect(tx(chip, '84E0000000').sw).toBe(0x6d00); // GET SE IDENTIFIER
    await expect(openJpkiPerso(onChipTransmit(chip), { keys: keySetFrom(DEFAULT_TEST_KEY) })).rejects.toMatchObject({ sw: 0x6d00 });
  });

  it('holds the certificates it returned (READ BINARY), each end-entity one chaining to its test CA', async () => {
    const send = onChip(chip);
    expect(swOf(await send('00A4040C' + lv(JPKI_AID)))).toBe(0x9000);
    expect(hex(card.certificates.signCa)).toBe(hex(ca.sign.certificate));
    expect(hex(card.certificates.authCa)).toBe(hex(ca.auth.certificate));
    for (const ef of ['auth', 'signCa', 'authCa'] as const) expectCertificateIn((await readEf(send, FID[ef])).data, card.certificates[ef]);
    // The sign certificate carries the holder's data: readable only after the sign password.
    expect((await readEf(send, FID.sign)).sw).toBe(0x6982);
    expect(swOf(await send('0020009B' + lv(ascii(pins.sign))))).toBe(0x9000);
    expectCertificateIn((await readEf(send, FID.sign)).data, card.certificates.sign);
    await expectChainsTo(card.certificates.auth, ca, 'auth');
    await expectChainsTo(card.certificates.sign, ca, 'sign');
  });

  it('signs with the imported keys after the PINs it was given; signatures verify against the certificates', async () => {
    const send = onChip(chip);
    expect(swOf(await send('00A4040C' + lv(JPKI_AID)))).toBe(0x9000);
    await signAndCheck(send, 'auth', pins.auth, card.certificates.auth);
    await signAndCheck(send, 'sign', pins.sign, card.certificates.sign);
    expect(card.pins).toEqual(pins);
  });

  it('gives the citizen back from the text AP for its PIN, 照合番号A and 照合番号B', async () => {
    const t = onChipTransmit(chip);
    const full = { myNumber: citizen.myNumber, name: citizen.name, address: citizen.address, birth: citizen.birth, sex: citizen.sex };
    expect(await readTextAp(t, { pin: pins.text })).toEqual(full);
    expect(await readTextAp(t, { numberA: citizen.myNumber })).toEqual({ myNumber: citizen.myNumber });
    // Born 1990-04-01 = 平成2 → 020401, expiry 2036, security code 1357.
    expect(card.verificationB).toBe('02040120361357');
    const { myNumber, ...attributes } = full;
    expect(myNumber).toBe(citizen.myNumber);
    expect(await readTextAp(t, { numberB: card.verificationB })).toEqual(attributes);
  });

  it('defaults to TEST_CITIZEN, PINs 1234 / ABC123 and the text AP PIN = the auth PIN', async () => {
    const fresh = freshChip();
    const issued = await issueMyNumberCard(fresh.transport, { ca });
    expect(issued.citizen).toEqual(TEST_CITIZEN);
    expect(issued.pins).toEqual({ auth: '1234', sign: 'ABC123', text: '1234' });
    expect(await readTextAp(onChipTransmit(fresh.chip), { pin: '1234' })).toMatchObject({ myNumber: TEST_CITIZEN.myNumber, name: TEST_CITIZEN.name });
    const send = onChip(fresh.chip);
    expect(swOf(await send('00A4040C' + lv(JPKI_AID)))).toBe(0x9000);
    await signAndCheck(send, 'auth', '1234', issued.certificates.auth);
  });

  it('refuses a bad PIN or citizen before sending anything to the chip', async () => {
    const cases: [string, Parameters<typeof issueMyNumberCard>[1], RegExp][] = [
      ['auth PIN', { ca, pins: { auth: '12345', sign: 'ABC123' } }, /auth PIN "12345" is not 4 digits/],
      ['sign password', { ca, pins: { auth: '1234', sign: 'abc123' } }, /sign PIN "abc123" is not 6 to 16 characters/],
      ['text PIN', { ca, pins: { auth: '1234', sign: 'ABC123', text: '12' } }, /text PIN "12" is not 4 digits/],
      ['check digit', { ca, citizen: { ...TEST_CITIZEN, myNumber: '123456789012' } }, /myNumber "123456789012" ends in 2, but its check digit is 8/],
      ['age', { ca, citizen: { ...TEST_CITIZEN, birth: '20200101' }, now: new Date('2026-01-01') }, /birth "20200101" makes the holder 6 on 20260101/],
      ['expiry year', { ca, expiryYear: '36' }, /expiry year must be 4 ASCII digits/],
    ];
    for (const [what, opts, message] of cases) {
      const fresh = freshChip();
      await expect(issueMyNumberCard(fresh.transport, opts), what).rejects.toThrow(message);
      expect(fresh.sent(), what).toBe(0);
    }
  });
});

/** The chip's basic channel as an async transmit (what the host modules take). */
function onChipTransmit(chip: Chip): (a: Uint8Array) => Promise<Uint8Array> {
  return async (a) => chip.transmit(a);
}

describe.skipIf(JPKI_SKIP)('provisionPhone', () => {
  const seId = fromHex('00112233445566778899AABBCCDDEEFF');
  const pins = { auth: '9876', sign: 'SECRET42' };
  let chip: Chip;
  let phone: ProvisionedPhone;
  beforeAll(async () => {
    if (JPKI_SKIP) return;
    const fresh = freshChip();
    chip = fresh.chip;
    phone = await provisionPhone(fresh.transport, { ca, seId, pins });
  });

  it('creates the JPKI APSD (Authorized Management) with the JPKI AP under it, and the ARA-M under the ISD', () => {
    const apps = chip.model().registry.apps;
    const apsd = apps.find((a) => a.aid === JPKI_APSD_AID);
    expect(apsd).toMatchObject({ sd: ISD, isSd: true, scpI: 0x70 });
    expect(apsd!.privileges & Priv.AUTHORIZED_MANAGEMENT).toBe(Priv.AUTHORIZED_MANAGEMENT);
    expect(apps.find((a) => a.aid === JPKI_AID)).toMatchObject({ sd: JPKI_APSD_AID, params: '8001018110' + hex(seId) });
    expect(apps.find((a) => a.aid === ARA_M)).toMatchObject({ sd: ISD, elf: ARA_M_PACKAGE_AID });
    expect(chip.model().registry.elfs.find((e) => e.aid === 'D392F00026010000')).toMatchObject({ sd: JPKI_APSD_AID });
  });

  it('replaces the APSD keys: the GP test key no longer opens it, the returned keys do, and reach the AP', async () => {
    const transport = { transmit: onChipTransmit(chip) };
    await expect((await connectGp(transport, { sd: JPKI_APSD_AID })).authenticate({ keys: keySetFrom(DEFAULT_TEST_KEY) })).rejects.toThrow(/cryptogram/);
    expect(phone.apsdKvn).toBe(0x30);
    const apsd = await connectGp(transport, { sd: JPKI_APSD_AID });
    await apsd.authenticate({ keys: phone.apsdKeys, kvn: phone.apsdKvn });
    await apsd.end();
    // The AP's own sessions run with the APSD's keys, and it reports the SE identifier it was installed with.
    await expect(openJpkiPerso(transport.transmit, { keys: keySetFrom(DEFAULT_TEST_KEY) })).rejects.toThrow();
    const perso = await openJpkiPerso(transport.transmit, { keys: phone.apsdKeys, kvn: phone.apsdKvn });
    expect(hex(await perso.seId())).toBe(hex(seId));
    expect(hex(phone.seId)).toBe(hex(seId));
    await (await connectGp(transport)).end();
  });

  it('lets the app in through the ACE by its certificate and refuses another app with SecurityError', async () => {
    const ace = createAce(onChipTransmit(chip));
    const other = await testAppCertificate('another app');
    await expect(ace.openLogicalChannel(fromHex(JPKI_AID), { certificates: [other] })).rejects.toBeInstanceOf(SecurityError);
    const ch = await ace.openLogicalChannel(fromHex(JPKI_AID), { certificates: [phone.appCertificate] });
    try {
      expect(ch.access).toMatchObject({ apdu: { kind: 'always' }, reason: 'aid-app', hash: 'sha256' });
      // The temporary PINs were revealed and used up by the app during provisioning.
      expect(swOf(await ch.transmit(fromHex('80CA011800')))).toBe(0x6985);
      expect(swOf(await ch.transmit(fromHex('80CA011B00')))).toBe(0x6985);
    } finally {
      await ch.close();
    }
    expect(ace.stats()).toMatchObject({ opened: 1, denied: 1 });
  });

  it('keeps the auth certificate (000A) behind the auth PIN; after VERIFY it and the others read back and chain to the CA', async () => {
    const ch = await createAce(onChipTransmit(chip)).openLogicalChannel(fromHex(JPKI_AID), { certificates: [phone.appCertificate] });
    try {
      const send = onChannel(ch);
      expect((await readEf(send, FID.auth)).sw).toBe(0x6982);
      expect((await readEf(send, FID.sign)).sw).toBe(0x6982);
      expectCertificateIn((await readEf(send, FID.signCa)).data, ca.sign.certificate);
      expectCertificateIn((await readEf(send, FID.authCa)).data, ca.auth.certificate);
      expect(swOf(await send('00200098' + lv(ascii(pins.auth))))).toBe(0x9000);
      expectCertificateIn((await readEf(send, FID.auth)).data, phone.certificates.auth);
      expect(swOf(await send('0020009B' + lv(ascii(pins.sign))))).toBe(0x9000);
      expectCertificateIn((await readEf(send, FID.sign)).data, phone.certificates.sign);
    } finally {
      await ch.close();
    }
    await expectChainsTo(phone.certificates.auth, ca, 'auth');
    await expectChainsTo(phone.certificates.sign, ca, 'sign');
  });

  it('signs through the ACE channel with the user PINs the app set; signatures verify against the certificates', async () => {
    const ch = await createAce(onChipTransmit(chip)).openLogicalChannel(fromHex(JPKI_AID), { certificates: [phone.appCertificate] });
    try {
      const send = onChannel(ch);
      // The default PIN is not the user's: the app set its own.
      expect(swOf(await send('00200098' + lv(ascii('1234'))))).toBe(0x63c2);
      await signAndCheck(send, 'auth', pins.auth, phone.certificates.auth);
      await signAndCheck(send, 'sign', pins.sign, phone.certificates.sign);
    } finally {
      await ch.close();
    }
  });

  it('defaults: random SE id and APSD keys, a fresh app certificate, TEST_CITIZEN, PINs 1234 / ABC123', async () => {
    const fresh = freshChip();
    const p = await provisionPhone(fresh.transport, { ca });
    expect(p.seId.length).toBe(16);
    expect(hex(p.seId)).not.toBe(hex(seId));
    for (const k of [p.apsdKeys.enc, p.apsdKeys.mac, p.apsdKeys.dek]) {
      expect(k.length).toBe(16);
      expect(hex(k)).not.toBe(hex(DEFAULT_TEST_KEY));
    }
    expect(hex(p.apsdKeys.enc)).not.toBe(hex(phone.apsdKeys.enc));
    expect(hex(p.appCertificate)).not.toBe(hex(phone.appCertificate));
    expect(p.citizen).toEqual(TEST_CITIZEN);
    expect(p.pins).toEqual({ auth: '1234', sign: 'ABC123' });
    const ch = await createAce(onChipTransmit(fresh.chip)).openLogicalChannel(fromHex(JPKI_AID), { certificates: [p.appCertificate] });
    try {
      await signAndCheck(onChannel(ch), 'auth', '1234', p.certificates.auth);
    } finally {
      await ch.close();
    }
  });

  it('refuses a bad SE id, PIN or citizen before sending anything to the chip', async () => {
    const cases: [string, Parameters<typeof provisionPhone>[1], RegExp][] = [
      ['SE id', { ca, seId: new Uint8Array(15) }, /SE identifier of 15 bytes; 16 expected/],
      ['auth PIN', { ca, pins: { auth: 'abcd', sign: 'ABC123' } }, /auth PIN "abcd" is not 4 digits/],
      ['sign password', { ca, pins: { auth: '1234', sign: 'ABC12' } }, /sign PIN "ABC12" is not 6 to 16/],
      ['APSD key', { ca, apsdKeys: { enc: new Uint8Array(16), mac: new Uint8Array(8), dek: new Uint8Array(16) } }, /APSD mac key of 8 bytes/],
      ['sex', { ca, citizen: { ...TEST_CITIZEN, sex: '3' as Citizen['sex'] } }, /sex "3" is not 1 \(male\), 2 \(female\) or 9/],
    ];
    for (const [what, opts, message] of cases) {
      const fresh = freshChip();
      await expect(provisionPhone(fresh.transport, opts), what).rejects.toThrow(message);
      expect(fresh.sent(), what).toBe(0);
    }
  });
});

describe('input checks', () => {
  it('pinProblem: 4 digits for auth and text, 6-16 of A-Z 0-9 for sign', () => {
    expect(pinProblem('auth', '0000')).toBeUndefined();
    expect(pinProblem('text', '123')).toBe('is not 4 digits');
    expect(pinProblem('auth', '１２３４')).toBe('is not 4 digits');
    expect(pinProblem('sign', 'A1B2C3D4E5F6G7H8')).toBeUndefined();
    expect(pinProblem('sign', 'A1B2C3D4E5F6G7H8I')).toMatch(/^is not 6 to 16/);
    expect(pinProblem('sign', 'ABC-12')).toMatch(/^is not 6 to 16/);
  });

  it('citizenProblem names the field; my number and the text AP size only count for the card', () => {
    const now = new Date('2026-06-01T00:00:00Z');
    const check = (c: Partial<Citizen>, textAp = true) => citizenProblem({ ...TEST_CITIZEN, ...c }, { textAp, now });
    expect(check({})).toBeUndefined();
    expect(check({ birth: '19000229' })).toEqual({ field: 'birth', message: 'is not a calendar date YYYYMMDD' });
    expect(check({ birth: '20000229' })).toBeUndefined();
    expect(check({ birth: '18600101' })?.field).toBe('birth');
    // 15 on the birthday itself (JST), 14 the day before.
    expect(check({ birth: '20110601' })).toBeUndefined();
    expect(check({ birth: '20110602' })?.message).toBe('makes the holder 14 on 20260601; JPKI sign certificates need 15 or older');
    expect(check({ address: '' })).toEqual({ field: 'address', message: 'is empty' });
    expect(check({ name: 'a\uD800' })?.field).toBe('name');
    expect(check({ address: 'あ'.repeat(201) }, false)?.message).toBe('has 201 characters; the sign certificate holds at most 200');
    expect(check({ address: 'あ'.repeat(190) }, false)).toBeUndefined();
    expect(check({ address: 'あ'.repeat(190) })?.message).toMatch(/^does not fit the text AP/);
    expect(check({ myNumber: '12345678901' })?.message).toBe('is not 12 digits');
    expect(check({ myNumber: '12345678901' }, false)).toBeUndefined();
  });
});
