// The JPKI AP on a phone chip (smartphone profile, docs/jpki-applet.md): the ISD creates the JPKI APSD
// D392F000260200000001, the APSD gets its own SCP03 keys (PUT KEY), loads the JPKI package and installs the AP with
// C9 = 80 01 01 81 10 <SE id>. Personalisation runs through emulator/host/jpki-perso.ts in an applet-level SCP03
// session with the APSD's keys: SE identifier, commitment R/S, RSA-2048 key generation on chip, chunked certificate
// writes, the temporary-PIN flow with the app-side REVEAL / RESET RETRY COUNTER, INITIALISE PIN, ERASE, DISABLE KEY.
// Signatures made by the applet are verified with node:crypto against the public key it returned.
// Without javac the tests are skipped unless JPKI_REQUIRE_JDK=1.
import { describe, expect, it } from 'vitest';
import { createHash, generateKeyPairSync, verify } from 'node:crypto';
import { encodeCommand } from '../emulator/apdu.ts';
import { fromHex, hex } from '../emulator/bytes.ts';
import type { Chip } from '../emulator/card.ts';
import { connectGp } from '../emulator/host/gp-client.ts';
import { JPKI_AID, JPKI_APSD_AID, commitmentMatches, openJpkiPerso, revealTemporaryPin, unblockPin } from '../emulator/host/jpki-perso.ts';
import type { JpkiPerso, KeyKind } from '../emulator/host/jpki-perso.ts';
import { DEFAULT_KEYS, tx } from './helpers/chip.ts';
import { lv } from './helpers/vm-chip.ts';
import {
  APSD_KEYS,
  AUTH_PIN,
  JPKI_SKIP,
  SIGN_PW,
  TEST_SE_ID,
  caCertificate,
  issueCertificate,
  phoneChip,
  phoneInstalled,
  provisionKind,
  rsaPublicKey,
  swOf,
  transmitOf,
} from './helpers/jpki.ts';

if (JPKI_SKIP) console.warn('jpki-phone: javac not found on PATH, skipping (set JPKI_REQUIRE_JDK=1 to fail instead)');

const ascii = (s: string): string => hex(new TextEncoder().encode(s));
const digestInfo = (data: string): string => '3031300D060960864801650304020105000420' + createHash('sha256').update(data).digest('hex').toUpperCase();
/** COMPUTE DIGITAL SIGNATURE with the key named by SFI (97 auth, 9A sign). */
const signWith = (chip: Chip, kind: KeyKind, data = 'hello') => tx(chip, '802A00' + (kind === 'auth' ? '97' : '9A') + lv(digestInfo(data)) + '00');
const verifyPin = (chip: Chip, kind: KeyKind, pin?: string) =>
  tx(chip, '002000' + (kind === 'auth' ? '98' : '9B') + (pin === undefined ? '' : lv(ascii(pin)))).sw;
const selectAp = (chip: Chip) => tx(chip, '00A4040C' + lv(JPKI_AID));
/** READ BINARY of a whole small range by SFI. */
const readSfi = (chip: Chip, sfi: string, off: number, le: number) =>
  tx(chip, '00B0' + sfi + off.toString(16).padStart(2, '0') + le.toString(16).padStart(2, '0'));

/** Plain command through the session → { data (hex), sw }. */
async function psend(perso: JpkiPerso, apdu: Uint8Array | string): Promise<{ data: string; sw: number }> {
  const r = await perso.send(typeof apdu === 'string' ? fromHex(apdu) : apdu);
  return { data: hex(r.subarray(0, r.length - 2)), sw: (r[r.length - 2] << 8) | r[r.length - 1] };
}

/** SET TEMPORARY PIN, then the app reveals it and sets `pin` (the AP stays selected, so the session goes on). */
async function setUserPin(chip: Chip, perso: JpkiPerso, kind: KeyKind, pin: string): Promise<void> {
  await perso.setTemporaryPin(kind);
  const t = transmitOf(chip);
  await unblockPin(t, kind, await revealTemporaryPin(t, kind, { select: false }), pin, { select: false });
}

/** Reads a whole certificate EF (2048 bytes) by SFI then offsets; the current EF must allow it. */
function readEf(chip: Chip, fid: string): Uint8Array {
  expect(tx(chip, '00A4020C02' + fid).sw).toBe(0x9000);
  let out = '';
  for (let off = 0; off < 0x800; off += 0x100) {
    const r = tx(chip, '00B0' + off.toString(16).padStart(4, '0') + '00');
    expect(r.sw).toBe(0x9000);
    out += r.data;
  }
  return fromHex(out);
}

/** The EF image a certificate gives: the DER, then FF up to 2048 bytes. */
function image(der: Uint8Array): string {
  const b = new Uint8Array(0x800).fill(0xff);
  b.set(der);
  return hex(b);
}

describe.skipIf(JPKI_SKIP)('JPKI AP (phone profile) under the JPKI APSD', () => {
  it('is installed under the APSD; personalisation takes the APSD keys, not the ISD keys; SE id, token name, no card-only commands', async () => {
    const { chip, seId } = await phoneInstalled();
    const t = transmitOf(chip);
    const isd = await connectGp({ transmit: t });
    await isd.authenticate({ keys: DEFAULT_KEYS });
    const list = await isd.list();
    expect(list.apps.find((a) => a.aid === JPKI_APSD_AID)).toMatchObject({ kind: 'SD', sd: 'A000000151000000' });
    expect(list.apps.find((a) => a.aid === JPKI_AID)).toMatchObject({ sd: JPKI_APSD_AID });
    expect(list.loadFiles.find((e) => e.aid === 'D392F00026010000')).toMatchObject({ sd: JPKI_APSD_AID });
    // The ISD's keys are not the APSD's: the card cryptogram of the AP's session does not verify.
    await expect(openJpkiPerso(t, { keys: DEFAULT_KEYS })).rejects.toThrow(/card cryptogram does not verify/);
    // What the AP answers a host without the keys (docs/jpki-applet.md, found by the fuzz): 6300, then 6985 (nothing pending).
    expect(tx(chip, '8482030010' + '11'.repeat(16)).sw).toBe(0x6300);
    expect(tx(chip, '8482030010' + '11'.repeat(16)).sw).toBe(0x6985);
    const perso = await openJpkiPerso(t, { keys: APSD_KEYS });
    expect(hex(await perso.seId())).toBe(hex(seId));
    expect((await psend(perso, '84E0000000')).data).toBe(hex(TEST_SE_ID));
    // Card-profile personalisation commands are unknown on the phone.
    for (const a of ['80E60117' + lv('00'.repeat(128)), '80EA0018' + lv(ascii('1234')), '80F40000']) expect((await psend(perso, a)).sw, a).toBe(0x6d00);
    // Token name and the empty availability EF, as the app sees them.
    expect(readSfi(chip, '86', 0, 0x20).data).toBe(ascii('JPKIAPGPSETOKEN'.padEnd(32, ' ')));
    expect(readSfi(chip, '88', 0, 0).data).toBe('000000');
    // Nothing personalised yet: no key (6985), no PIN (blocked: 6984, query 63C0), no temporary PIN to reveal (6985).
    expect(signWith(chip, 'auth').sw).toBe(0x6985);
    expect(verifyPin(chip, 'auth', AUTH_PIN)).toBe(0x6984);
    expect(verifyPin(chip, 'auth')).toBe(0x63c0);
    expect(tx(chip, '80CA011800').sw).toBe(0x6985);
    expect(tx(chip, '002C0098' + lv(ascii('12345678' + '1234'))).sw).toBe(0x6985);
  });

  it('commitment and key generation: R hashes to S, a new commit replaces R, 6985 without one or with a key; signatures verify', async () => {
    const { chip } = await phoneInstalled();
    const perso = await openJpkiPerso(transmitOf(chip), { keys: APSD_KEYS });
    expect(await swOf(perso.generateKeyPair('auth'))).toBe(0x6985); // no commitment
    const s1 = await perso.commit('auth');
    const s2 = await perso.commit('auth');
    expect(s1.length).toBe(32);
    expect(hex(s1)).not.toBe(hex(s2));
    const kp = await perso.generateKeyPair('auth');
    expect(commitmentMatches(s2, kp.r)).toBe(true);
    expect(commitmentMatches(s1, kp.r)).toBe(false); // the second commit replaced R
    expect(hex(createHash('sha256').update(kp.r).digest())).toBe(hex(s2));
    expect(kp.modulus.length).toBe(256);
    expect(kp.modulus[0] & 0x80).toBe(0x80);
    expect(hex(kp.exponent)).toBe('010001');
    // R was consumed; and one key pair per kind: a new commitment does not allow a second key.
    expect(await swOf(perso.generateKeyPair('auth'))).toBe(0x6985);
    await perso.commit('auth');
    expect(await swOf(perso.generateKeyPair('auth'))).toBe(0x6985);
    // The answer's layout, raw: 7F49 82 0109 { 81 82 0100 <n>, 82 03 010001 } 9F36 20 <R>.
    const s = await perso.commit('sign');
    const raw = await psend(perso, encodeCommand({ cla: 0x80, ins: 0xe4, p1: 0, p2: 0x1a, ne: 65536 }));
    expect(raw.sw).toBe(0x9000);
    expect(raw.data.length / 2).toBe(305);
    expect(raw.data.slice(0, 18)).toBe('7F498201098182010' + '0');
    expect(raw.data.slice(18 + 512, 18 + 512 + 16)).toBe('82030100019F3620');
    const r = fromHex(raw.data.slice(18 + 512 + 16));
    expect(commitmentMatches(s, r)).toBe(true);
    const signModulus = fromHex(raw.data.slice(18, 18 + 512));
    expect(hex(signModulus)).not.toBe(hex(kp.modulus));
    // Certificates for the generated keys, PINs through the temporary-PIN flow; the applet's signatures verify.
    const authKey = rsaPublicKey(kp.modulus, kp.exponent);
    const signKey = rsaPublicKey(signModulus, fromHex('010001'));
    await perso.writeCertificate('auth', await issueCertificate('auth', authKey));
    await perso.writeCertificate('sign', await issueCertificate('sign', signKey));
    await setUserPin(chip, perso, 'auth', AUTH_PIN);
    await setUserPin(chip, perso, 'sign', SIGN_PW);
    expect(verifyPin(chip, 'auth', AUTH_PIN)).toBe(0x9000);
    const a = signWith(chip, 'auth', 'login nonce');
    expect(a.sw).toBe(0x9000);
    expect(verify('sha256', Buffer.from('login nonce'), authKey, fromHex(a.data))).toBe(true);
    expect(signWith(chip, 'sign').sw).toBe(0x6982);
    expect(verifyPin(chip, 'sign', SIGN_PW)).toBe(0x9000);
    const b = signWith(chip, 'sign', 'contract');
    expect(verify('sha256', Buffer.from('contract'), signKey, fromHex(b.data))).toBe(true);
    expect(verify('sha256', Buffer.from('contract'), authKey, fromHex(b.data))).toBe(false);
  });

  it('WRITE CERTIFICATE: chunked; out-of-order 6A86, bad DER 6A80, foreign modulus 6A80, no key 6985, over 2048 6A80; availability EF', async () => {
    const { chip } = await phoneInstalled();
    const t = transmitOf(chip);
    let perso = await openJpkiPerso(t, { keys: APSD_KEYS, blockSize: 100 });
    const { publicKey, cert } = await provisionKind(perso, 'auth'); // 100-byte blocks
    expect(cert.length).toBeGreaterThan(300);
    expect(readSfi(chip, '88', 0, 0).data).toBe('008F00');
    // No sign key yet.
    const other = generateKeyPairSync('rsa', { modulusLength: 2048 }).publicKey;
    expect(await swOf(perso.writeCertificate('sign', await issueCertificate('sign', other)))).toBe(0x6985);
    // A certificate of another key.
    const foreign = await issueCertificate('auth', other);
    expect(await swOf(perso.writeCertificate('auth', foreign))).toBe(0x6a80);
    // Out of order: block 2 after block 0; the staging restarts, so block 1 is out of order too.
    const chunk = (p1: number, p2: number, data: Uint8Array) => psend(perso, encodeCommand({ cla: 0x80, ins: 0xe8, p1, p2, data }));
    expect((await chunk(0x00, 0x0a, cert.subarray(0, 100))).sw).toBe(0x9000);
    expect((await chunk(0x02, 0x0a, cert.subarray(200, 300))).sw).toBe(0x6a86);
    expect((await chunk(0x01, 0x0a, cert.subarray(100, 200))).sw).toBe(0x6a86);
    // A block of another EF in the middle of a staging.
    expect((await chunk(0x00, 0x0a, cert.subarray(0, 100))).sw).toBe(0x9000);
    expect((await chunk(0x01, 0x0b, cert.subarray(100, 200))).sw).toBe(0x6a86);
    expect((await chunk(0x80, 0x03, cert.subarray(0, 100))).sw).toBe(0x6a86); // not a certificate EF
    // Bad DER: not 30 82, or a length that does not match the bytes written.
    expect((await chunk(0x80, 0x0b, fromHex('3081030102030405'))).sw).toBe(0x6a80);
    const ca = await caCertificate('auth');
    expect(await swOf(perso.writeCertificate('authCa', ca.subarray(0, ca.length - 1)))).toBe(0x6a80);
    const longer = new Uint8Array(ca.length + 1);
    longer.set(ca);
    expect(await swOf(perso.writeCertificate('authCa', longer))).toBe(0x6a80);
    // More than 2048 bytes staged.
    for (let b = 0; b < 8; b++) expect((await chunk(b, 0x0b, new Uint8Array(230).fill(0x30))).sw).toBe(0x9000);
    expect((await chunk(0x88, 0x0b, new Uint8Array(209).fill(0x30))).sw).toBe(0x6a80); // 1840 + 209 = 2049
    // A block larger than the APDU buffer (extended Lc): 6700 before the C-MAC is checked, so the session is out of step.
    expect((await chunk(0x80, 0x0a, cert)).sw).toBe(0x6700); // more than the APDU buffer holds (extended Lc)
    expect(await swOf(perso.seId())).toBe(0x6982);
    perso = await openJpkiPerso(t, { keys: APSD_KEYS, blockSize: 100 });
    // A CA certificate (no key check) and the failed writes left 000A as it was.
    await perso.writeCertificate('authCa', ca);
    expect(readSfi(chip, '8B', 0, 4).data).toBe(hex(ca.subarray(0, 4)));
    expect(hex(readEf(chip, '000B'))).toBe(image(ca));
    await setUserPin(chip, perso, 'auth', AUTH_PIN);
    // 000A needs the auth PIN on the phone profile.
    expect(tx(chip, '00A4020C02000A').sw).toBe(0x9000);
    expect(tx(chip, '00B0000004').sw).toBe(0x6982);
    expect(verifyPin(chip, 'auth', AUTH_PIN)).toBe(0x9000);
    expect(hex(readEf(chip, '000A'))).toBe(image(cert));
    // The sign side: key, certificate, availability byte 0; the CA EF is free.
    await provisionKind(perso, 'sign');
    await perso.writeCertificate('signCa', await caCertificate('sign'));
    expect(readSfi(chip, '88', 0, 0).data).toBe('8F8F00');
    expect(readSfi(chip, '82', 0, 4).data).toBe(hex((await caCertificate('sign')).subarray(0, 4)));
    // A certificate can be replaced (same key, new certificate).
    const again = await issueCertificate('auth', publicKey, 'beef0001');
    await perso.writeCertificate('auth', again);
    expect(hex(readEf(chip, '000A'))).toBe(image(again));
  });

  it('temporary PIN: set → VERIFY 6984 / sign 6982; reveal once; wrong temporary PIN 63C2..63C0 then dead 6984; INITIALISE PIN; format before tries', async () => {
    const { chip, seId } = await phoneInstalled();
    const t = transmitOf(chip);
    const perso = await openJpkiPerso(t, { keys: APSD_KEYS });
    const { publicKey } = await provisionKind(perso, 'auth');
    await perso.setTemporaryPin('auth');
    expect(verifyPin(chip, 'auth', AUTH_PIN)).toBe(0x6984);
    expect(verifyPin(chip, 'auth')).toBe(0x63c0);
    expect(signWith(chip, 'auth').sw).toBe(0x6982);
    expect(tx(chip, '00240198' + lv(ascii('1111'))).sw).toBe(0x6984); // CHANGE REFERENCE DATA: no usable PIN
    // REVEAL: 8 ASCII digits, once; the other kind has none pending.
    const temp = await revealTemporaryPin(t, 'auth', { select: false });
    expect(temp).toMatch(/^[0-9]{8}$/);
    expect(tx(chip, '80CA011800').sw).toBe(0x6985);
    expect(tx(chip, '80CA011B00').sw).toBe(0x6985);
    expect(tx(chip, '80CA021800').sw).toBe(0x6a86);
    expect(tx(chip, '80CA011700').sw).toBe(0x6a86);
    // RESET RETRY COUNTER with a wrong temporary PIN: 63C2, 63C1, 63C0; then 6984 even with the right one.
    const wrong = temp === '00000000' ? '11111111' : '00000000';
    for (const sw of [0x63c2, 0x63c1, 0x63c0]) expect(await swOf(unblockPin(t, 'auth', wrong, '4321', { select: false }))).toBe(sw);
    expect(await swOf(unblockPin(t, 'auth', temp, '4321', { select: false }))).toBe(0x6984);
    expect(verifyPin(chip, 'auth', '4321')).toBe(0x6984);
    // Only INITIALISE PIN revives the flow, bound to this SE's identifier.
    const otherSe = seId.slice();
    otherSe[15] ^= 1;
    expect(await swOf(perso.initialisePin('auth', otherSe))).toBe(0x6a80);
    expect(await swOf(perso.initialisePin('auth', seId.subarray(0, 15)))).toBe(0x6a80);
    await perso.initialisePin('auth', seId);
    const temp2 = await revealTemporaryPin(t, 'auth', { select: false });
    expect(await swOf(revealTemporaryPin(t, 'auth', { select: false }))).toBe(0x6985);
    // A new PIN of the wrong format is refused before the temporary PIN is tried: no try used (next wrong → 63C2).
    expect(await swOf(unblockPin(t, 'auth', temp2, '12345', { select: false }))).toBe(0x6a80);
    expect(await swOf(unblockPin(t, 'auth', temp2, '12a4', { select: false }))).toBe(0x6a80);
    expect(tx(chip, '002C0098' + lv(ascii(temp2))).sw).toBe(0x6a80); // no new PIN at all
    expect(tx(chip, '002C0198' + lv(ascii(temp2 + '1234'))).sw).toBe(0x6a86);
    expect(tx(chip, '002C0097' + lv(ascii(temp2 + '1234'))).sw).toBe(0x6a88);
    const wrong2 = temp2 === '00000000' ? '11111111' : '00000000';
    expect(await swOf(unblockPin(t, 'auth', wrong2, AUTH_PIN, { select: false }))).toBe(0x63c2);
    // The current-EF form: SELECT EF 0018, then P2 = 80.
    expect(tx(chip, '00A4020C020018').sw).toBe(0x9000);
    expect(tx(chip, '002C0080' + lv(ascii(temp2 + AUTH_PIN))).sw).toBe(0x9000);
    expect(verifyPin(chip, 'auth')).toBe(0x63c3); // full counter
    expect(verifyPin(chip, 'auth', AUTH_PIN)).toBe(0x9000);
    const s = signWith(chip, 'auth', 'after unblock');
    expect(verify('sha256', Buffer.from('after unblock'), publicKey, fromHex(s.data))).toBe(true);
    // The temporary PIN is cleared: nothing to reveal or reset.
    expect(tx(chip, '80CA011800').sw).toBe(0x6985);
    expect(await swOf(unblockPin(t, 'auth', temp2, '5555', { select: false }))).toBe(0x6985);
    // The sign password through the same flow: its format is 6-16 of [A-Z0-9].
    await perso.setTemporaryPin('sign');
    const ts = await revealTemporaryPin(t, 'sign', { select: false });
    expect(await swOf(unblockPin(t, 'sign', ts, 'abc123', { select: false }))).toBe(0x6a80);
    await unblockPin(t, 'sign', ts, 'NEWPASS1', { select: false });
    expect(verifyPin(chip, 'sign')).toBe(0x63c5);
    expect(verifyPin(chip, 'sign', 'NEWPASS1')).toBe(0x9000);
    // A temporary PIN set again blocks the user PIN until the app unblocks it (forgotten PIN, remote reset).
    await perso.setTemporaryPin('auth');
    expect(verifyPin(chip, 'auth', AUTH_PIN)).toBe(0x6984);
  });

  it('ERASE (one kind, then all) and DISABLE KEY; keys can be generated again; the state survives a power cycle', async () => {
    const phone = await phoneChip();
    const { chip, seId } = phone;
    const t = transmitOf(chip);
    let perso = await openJpkiPerso(t, { keys: APSD_KEYS });
    expect(readSfi(chip, '88', 0, 0).data).toBe('8F8F00');
    // DISABLE KEY: the sign key refuses to sign even after the password; the auth key is untouched.
    await perso.disableKey('sign');
    expect(verifyPin(chip, 'sign', SIGN_PW)).toBe(0x9000);
    expect(signWith(chip, 'sign').sw).toBe(0x6984);
    expect(verifyPin(chip, 'auth', AUTH_PIN)).toBe(0x9000);
    expect(signWith(chip, 'auth').sw).toBe(0x9000);
    expect((await psend(perso, '80F20018')).sw).toBe(0x6a86);
    // ERASE 1A: sign key gone (6985), its certificate FF, availability byte 0 = 00, its password unset.
    await perso.erase('sign');
    expect(signWith(chip, 'sign').sw).toBe(0x6985);
    expect(verifyPin(chip, 'sign', SIGN_PW)).toBe(0x6984);
    expect(readSfi(chip, '88', 0, 0).data).toBe('008F00');
    expect(readSfi(chip, '82', 0, 4).data).toBe(hex(phone.certs.signCa.subarray(0, 4))); // CA EF stays
    expect(signWith(chip, 'auth').sw).toBe(0x9000); // still verified, still signs
    // A new sign key is possible after ERASE, and so is DISABLE's undoing.
    const newSign = await provisionKind(perso, 'sign');
    await setUserPin(chip, perso, 'sign', 'SECOND2');
    expect(verifyPin(chip, 'sign', 'SECOND2')).toBe(0x9000);
    const s = signWith(chip, 'sign', 'again');
    expect(verify('sha256', Buffer.from('again'), newSign.publicKey, fromHex(s.data))).toBe(true);
    expect(verify('sha256', Buffer.from('again'), phone.publicKeys.sign, fromHex(s.data))).toBe(false);
    expect(readSfi(chip, '88', 0, 0).data).toBe('8F8F00');
    // ERASE 00: everything, CA certificates included, in one transaction; durable across a power cycle.
    await perso.erase('all');
    chip.powerDown();
    chip.powerUp();
    selectAp(chip);
    for (const k of ['auth', 'sign'] as const) {
      expect(signWith(chip, k).sw, k).toBe(0x6985);
      expect(verifyPin(chip, k, k === 'auth' ? AUTH_PIN : 'SECOND2'), k).toBe(0x6984);
    }
    expect(readSfi(chip, '88', 0, 0).data).toBe('000000');
    for (const sfi of ['82', '8B']) expect(readSfi(chip, sfi, 0, 0).data, sfi).toBe('FF'.repeat(256));
    expect(hex(readEf(chip, '0002'))).toBe('FF'.repeat(0x800));
    // Personalisation stays possible on the phone: new keys, a new PIN, and the erased auth certificate reads FF.
    perso = await openJpkiPerso(t, { keys: APSD_KEYS });
    expect(hex(await perso.seId())).toBe(hex(seId));
    await provisionKind(perso, 'auth');
    await perso.erase('auth');
    expect(readSfi(chip, '88', 0, 0).data).toBe('000000');
    await setUserPin(chip, perso, 'auth', '9876');
    expect(verifyPin(chip, 'auth', '9876')).toBe(0x9000);
    expect(hex(readEf(chip, '000A'))).toBe('FF'.repeat(0x800));
    expect(signWith(chip, 'auth').sw).toBe(0x6985);
    const auth3 = await provisionKind(perso, 'auth');
    expect(verifyPin(chip, 'auth', '9876')).toBe(0x9000);
    const a = signWith(chip, 'auth', 'third');
    expect(verify('sha256', Buffer.from('third'), auth3.publicKey, fromHex(a.data))).toBe(true);
    expect((await psend(perso, '80F00100')).sw).toBe(0x6a86);
    expect((await psend(perso, '80F00018')).sw).toBe(0x6a86);
  });
});
