// The JPKI applet (applet/jpki), card profile, end to end from source: javac against the API stubs, conversion by the
// project's converter (test/helpers/jpki.ts, once per process), GP LOAD + INSTALL through the ISD under SCP03, then
// personalisation by the issuer through emulator/host/jpki-perso.ts in an applet-level SCP03 session with the ISD's
// keys (IMPORT KEY COMPONENT of a node:crypto RSA-2048 key per kind, WRITE CERTIFICATE of DER blobs, SET PIN, LOCK),
// then the card's APDUs as OpenSC / jpki/myna send them: SELECT AP/EF, READ BINARY with offsets (DER length from the
// header, FF filler, 6B00), VERIFY (63Cx query, 6984 when blocked), COMPUTE DIGITAL SIGNATURE over a DigestInfo
// (verified with node:crypto), access rules (6982) per EF; and the personalisation's own refusals (no session, level,
// LOCK). Without javac the tests are skipped unless JPKI_REQUIRE_JDK=1.
import { describe, expect, it } from 'vitest';
import { createHash, createPublicKey, verify } from 'node:crypto';
import type { KeyObject } from 'node:crypto';
import { fromHex, hex } from '../emulator/bytes.ts';
import type { Chip } from '../emulator/card.ts';
import { openMemoryStore } from '../emulator/store.ts';
import type { ChipStore } from '../emulator/store.ts';
import { JpkiError, installParams, openJpkiPerso } from '../emulator/host/jpki-perso.ts';
import type { CertEf, JpkiPerso } from '../emulator/host/jpki-perso.ts';
import { DEFAULT_KEYS, secure, tx } from './helpers/chip.ts';
import { gpInstall, gpLoad, lv, vmChip } from './helpers/vm-chip.ts';
import { AUTH_PIN, JPKI_SKIP, SIGN_PW, cardChip, jpkiBlock, swOf, testCardKeys, transmitOf } from './helpers/jpki.ts';

if (JPKI_SKIP) console.warn('jpki-card: javac not found on PATH, skipping (set JPKI_REQUIRE_JDK=1 to fail instead)');

const AID = 'D392F000260100000001';
const PKG = 'D392F00026010000';
const CERT_EF_SIZE = 0x800;

const ascii = (s: string): string => hex(new TextEncoder().encode(s));
const h4 = (n: number): string => n.toString(16).padStart(4, '0').toUpperCase();
const h2 = (n: number): string => n.toString(16).padStart(2, '0').toUpperCase();

/** A DER SEQUENCE with a 2-byte long-form length (30 82 LL LL), as certificates are. */
function derSeq(content: Buffer): Buffer {
  return Buffer.concat([Buffer.from([0x30, 0x82, content.length >> 8, content.length & 0xff]), content]);
}
/** A certificate-shaped DER blob of about `size` bytes: SEQUENCE { SPKI, OCTET STRING filler }. READ BINARY semantics
 *  are what these tests need; the bytes are not an X.509 certificate, but the SPKI carries the key's modulus as the
 *  card's WRITE CERTIFICATE check wants. */
function derBlob(pub: KeyObject, size: number, seed: number): Buffer {
  const spki = pub.export({ type: 'spki', format: 'der' });
  const n = size - 4 - spki.length - 4;
  const filler = Buffer.from(Array.from({ length: n }, (_, i) => (i * 31 + seed) & 0xff));
  return derSeq(Buffer.concat([spki, Buffer.from([0x04, 0x82, n >> 8, n & 0xff]), filler]));
}

const keys = testCardKeys();
const certs: Record<string, Buffer> = {
  '0001': derBlob(keys.sign.publicKey, 1543, 1), // sign cert
  '0002': derBlob(keys.sign.publicKey, 1100, 2), // sign CA cert (stand-in)
  '000A': derBlob(keys.auth.publicKey, 1377, 3), // auth cert
  '000B': derBlob(keys.auth.publicKey, 1090, 4), // auth CA cert (stand-in)
};
const certsByEf: Record<CertEf, Uint8Array> = { sign: certs['0001'], signCa: certs['0002'], auth: certs['000A'], authCa: certs['000B'] };

const selectAp = (chip: Chip) => tx(chip, '00A4040C' + lv(AID));
const selectEf = (chip: Chip, fid: string) => tx(chip, '00A4020C02' + fid);
const read = (chip: Chip, offset: number, le: number) => tx(chip, '00B0' + h4(offset) + h2(le & 0xff));
const verifyPin = (chip: Chip, pin?: string) => tx(chip, '00200080' + (pin === undefined ? '' : lv(ascii(pin)))).sw;
const digestInfo = (data: string): string => '3031300D060960864801650304020105000420' + createHash('sha256').update(data).digest('hex').toUpperCase();
const signApdu = (p2 = '80', di = digestInfo('hello')) => '802A00' + p2 + lv(di) + '00';

/** A chip with the JPKI AP installed through the ISD under SCP03 and personalised under SCP03; LOCKed unless lock is false. */
async function card(opts: { lock?: boolean; store?: ChipStore } = {}): Promise<Chip> {
  return (await cardChip({ ...opts, keys, certs: certsByEf })).chip;
}

/** Plain command through the session → { data (hex), sw }. */
async function psend(perso: JpkiPerso, apdu: string): Promise<{ data: string; sw: number }> {
  const r = await perso.send(fromHex(apdu));
  return { data: hex(r.subarray(0, r.length - 2)), sw: (r[r.length - 2] << 8) | r[r.length - 1] };
}

/** Reads an EF as OpenSC does: 4 header bytes give the DER size, then chunks of at most 255 bytes. */
function readDer(chip: Chip): Buffer {
  const head = read(chip, 0, 4);
  expect(head.sw).toBe(0x9000);
  expect(head.data.slice(0, 4)).toBe('3082');
  const size = parseInt(head.data.slice(4, 8), 16) + 4;
  let out = '';
  for (let off = 0; off < size; off += 0xff) {
    const r = read(chip, off, Math.min(0xff, size - off));
    expect(r.sw).toBe(0x9000);
    out += r.data;
  }
  return Buffer.from(out, 'hex');
}

describe.skipIf(JPKI_SKIP)('JPKI AP (card profile): built from source, installed under SCP03', () => {
  it('SELECT AP by AID (P2=0C, no FCI) and SELECT EF by FID (P1=02); 6A82 / 6A86 / 6700 otherwise', async () => {
    const chip = await card();
    expect(selectAp(chip)).toMatchObject({ data: '', sw: 0x9000 });
    for (const fid of ['0001', '0002', '0006', '0008', '000A', '000B', '0017', '0018', '001A', '001B'])
      expect(selectEf(chip, fid), fid).toMatchObject({ data: '', sw: 0x9000 });
    expect(selectEf(chip, '0009').sw).toBe(0x6a82);
    expect(selectEf(chip, '3F00').sw).toBe(0x6a82);
    expect(tx(chip, '00A40000').sw).toBe(0x6a86);
    expect(tx(chip, '00A4020C03000A00').sw).toBe(0x6700);
    expect(tx(chip, '00A4040C' + lv('D392F000260100000099')).sw).toBe(0x6a82);
    expect(tx(chip, '00FF0000').sw).toBe(0x6d00);
    expect(tx(chip, signApdu()).sw).toBe(0x6a88); // the current EF (001B) is no key
    expect(selectAp(chip).sw).toBe(0x9000);
    expect(tx(chip, signApdu()).sw).toBe(0x6986); // no current EF after the AP selection
  });

  it('READ BINARY: DER length from the header, offsets, FF filler up to the EF size, 6B00 past the end', async () => {
    const chip = await card();
    selectAp(chip);
    expect(read(chip, 0, 4).sw).toBe(0x6986); // no current EF
    for (const fid of ['0002', '000A', '000B']) {
      expect(selectEf(chip, fid).sw).toBe(0x9000);
      expect(readDer(chip).equals(certs[fid]), fid).toBe(true);
      const len = certs[fid].length;
      // Odd offsets and lengths; Le=00 means 256.
      expect(read(chip, 7, 13).data).toBe(hex(certs[fid].subarray(7, 20)));
      expect(read(chip, 0x100, 0).data).toBe(hex(certs[fid].subarray(0x100, 0x200)));
      // FF filler after the DER object, inside the EF.
      expect(read(chip, len, 16)).toMatchObject({ data: 'FF'.repeat(16), sw: 0x9000 });
      expect(read(chip, len - 2, 4).data).toBe(hex(certs[fid].subarray(len - 2)) + 'FFFF');
      // The last bytes of the EF: fewer bytes than Le; then 6B00 at and past the end.
      expect(read(chip, CERT_EF_SIZE - 3, 0)).toMatchObject({ data: 'FFFFFF', sw: 0x9000 });
      expect(read(chip, CERT_EF_SIZE, 1).sw).toBe(0x6b00);
      expect(read(chip, 0x7fff, 1).sw).toBe(0x6b00);
    }
    // SFI form: P1 = 80|sfi selects EF 00sfi, P2 = offset.
    expect(tx(chip, '00B08A0004')).toMatchObject({ data: hex(certs['000A'].subarray(0, 4)), sw: 0x9000 });
    expect(read(chip, 4, 4).data).toBe(hex(certs['000A'].subarray(4, 8))); // 000A is now current
    expect(tx(chip, '00B0890004').sw).toBe(0x6a82);
    expect(tx(chip, '00B0E00004').sw).toBe(0x6a86);
    // PIN and key EFs are not transparent files.
    selectEf(chip, '0018');
    expect(read(chip, 0, 4).sw).toBe(0x6981);
    selectEf(chip, '001A');
    expect(read(chip, 0, 4).sw).toBe(0x6981);
  });

  it('token info EF 0006 (160 bytes, JPKIAPICCTOKEN2 space-padded) and certificate availability EF 0008', async () => {
    const chip = await card();
    selectAp(chip);
    selectEf(chip, '0006');
    const r = read(chip, 0, 0);
    expect(r.sw).toBe(0x9000);
    expect(r.data.length / 2).toBe(160);
    expect(r.data.slice(0, 64)).toBe(ascii('JPKIAPICCTOKEN2'.padEnd(32, ' ')));
    expect(read(chip, 160, 1).sw).toBe(0x6b00);
    selectEf(chip, '0008');
    expect(read(chip, 0, 0)).toMatchObject({ data: '8F8F00', sw: 0x9000 });
    expect(read(chip, 3, 1).sw).toBe(0x6b00);
  });

  it('access rules: the sign certificate needs the sign password; the auth PIN does not open it; auth cert is free', async () => {
    const chip = await card();
    selectAp(chip);
    selectEf(chip, '0001');
    expect(read(chip, 0, 4).sw).toBe(0x6982);
    selectEf(chip, '0018');
    expect(verifyPin(chip, AUTH_PIN)).toBe(0x9000);
    selectEf(chip, '0001');
    expect(read(chip, 0, 4).sw).toBe(0x6982);
    selectEf(chip, '001B');
    expect(verifyPin(chip, SIGN_PW)).toBe(0x9000);
    selectEf(chip, '0001');
    expect(readDer(chip).equals(certs['0001'])).toBe(true);
    // Reselecting the AP ends the session's verifications.
    selectAp(chip);
    selectEf(chip, '0001');
    expect(read(chip, 0, 4).sw).toBe(0x6982);
    selectEf(chip, '000A');
    expect(read(chip, 0, 4).sw).toBe(0x9000);
  });

  it('VERIFY auth PIN: 63C3 query, wrong → 63C2, right → 9000 (query 9000), 3 wrong → 63C0, then 6984 even when right', async () => {
    const chip = await card();
    selectAp(chip);
    selectEf(chip, '0018');
    expect(verifyPin(chip)).toBe(0x63c3);
    expect(verifyPin(chip, '0000')).toBe(0x63c2);
    expect(verifyPin(chip)).toBe(0x63c2);
    expect(verifyPin(chip, AUTH_PIN)).toBe(0x9000);
    expect(verifyPin(chip)).toBe(0x9000);
    selectAp(chip);
    selectEf(chip, '0018');
    expect(verifyPin(chip)).toBe(0x63c3);
    expect(verifyPin(chip, '12345')).toBe(0x63c2);
    expect(verifyPin(chip, '123')).toBe(0x63c1);
    expect(verifyPin(chip, '4321')).toBe(0x63c0);
    expect(verifyPin(chip, AUTH_PIN)).toBe(0x6984);
    expect(verifyPin(chip)).toBe(0x63c0);
    selectEf(chip, '0017');
    expect(tx(chip, signApdu()).sw).toBe(0x6982);
    // SFI form of P2 (98 = EF 0018) and a non-PIN reference.
    expect(tx(chip, '00200098').sw).toBe(0x63c0);
    expect(tx(chip, '0020009B').sw).toBe(0x63c5);
    expect(tx(chip, '00200081').sw).toBe(0x6a88);
    expect(tx(chip, '00200180').sw).toBe(0x6a86);
  });

  it('VERIFY sign password: 5 tries, 63C4..63C0, 6984 once blocked; the counter is durable across a power cycle', async () => {
    const store = openMemoryStore();
    const chip = await card({ store });
    selectAp(chip);
    selectEf(chip, '001B');
    expect(verifyPin(chip)).toBe(0x63c5);
    expect(verifyPin(chip, 'abc123')).toBe(0x63c4); // lower case is a different password
    chip.powerDown();
    chip.powerUp();
    selectAp(chip);
    selectEf(chip, '001B');
    expect(verifyPin(chip)).toBe(0x63c4);
    for (const sw of [0x63c3, 0x63c2, 0x63c1, 0x63c0]) expect(verifyPin(chip, 'WRONG1')).toBe(sw);
    expect(verifyPin(chip, SIGN_PW)).toBe(0x6984);
    expect(verifyPin(chip)).toBe(0x63c0);
  });

  it('VERIFY of a value longer than the longest PIN (Lc 128, 255, extended 200 and 256): a wrong PIN using one try, never 6F00', async () => {
    // Regression (fuzz-applets): a length of 128 or more reached OwnerPIN.check as a negative byte → 6F00 after the decrement.
    const longest = 'ABCDEFGHIJ123456';
    const chip = (await cardChip({ keys, certs: certsByEf, signPin: longest })).chip;
    selectAp(chip);
    expect(tx(chip, '00200098' + lv('31'.repeat(128))).sw).toBe(0x63c2);
    expect(tx(chip, '0020009B' + lv('41'.repeat(255))).sw).toBe(0x63c4);
    // Extended Lc (up to the 256 bytes the APDU buffer takes): the 16-character password followed by more is not it.
    expect(tx(chip, '0020009B0000C8' + ascii(longest) + '00'.repeat(200 - 16)).sw).toBe(0x63c3);
    expect(tx(chip, '0020009B000100' + ascii(longest) + '00'.repeat(256 - 16)).sw).toBe(0x63c2);
    expect(tx(chip, '0020009B' + lv(ascii(longest + 'X'))).sw).toBe(0x63c1);
    expect(tx(chip, '0020009B').sw).toBe(0x63c1);
    expect(tx(chip, '0020009B' + lv(ascii(longest))).sw).toBe(0x9000);
    expect(tx(chip, '00200098' + lv(ascii(AUTH_PIN))).sw).toBe(0x9000);
  });

  it('COMPUTE DIGITAL SIGNATURE over a DigestInfo with each key after its PIN; verifies with node:crypto', async () => {
    const chip = await card();
    selectAp(chip);
    selectEf(chip, '0017');
    expect(tx(chip, signApdu()).sw).toBe(0x6982);
    selectEf(chip, '0018');
    expect(verifyPin(chip, AUTH_PIN)).toBe(0x9000);
    selectEf(chip, '0017');
    const r = tx(chip, signApdu());
    expect(r.sw).toBe(0x9000);
    expect(r.data.length / 2).toBe(256);
    expect(verify('sha256', Buffer.from('hello'), keys.auth.publicKey, Buffer.from(r.data, 'hex'))).toBe(true);
    // The auth PIN does not open the sign key.
    selectEf(chip, '001A');
    expect(tx(chip, signApdu()).sw).toBe(0x6982);
    selectEf(chip, '001B');
    expect(verifyPin(chip, SIGN_PW)).toBe(0x9000);
    selectEf(chip, '001A');
    const s = tx(chip, signApdu('80', digestInfo('contract')));
    expect(s.sw).toBe(0x9000);
    expect(verify('sha256', Buffer.from('contract'), keys.sign.publicKey, Buffer.from(s.data, 'hex'))).toBe(true);
    // The public key in the sign certificate EF is the one that verifies.
    selectEf(chip, '0001');
    const der = readDer(chip);
    const spkiLen = ((der[6] << 8) | der[7]) + 4;
    const pub = createPublicKey({ key: der.subarray(4, 4 + spkiLen), format: 'der', type: 'spki' });
    expect(verify('sha256', Buffer.from('contract'), pub, Buffer.from(s.data, 'hex'))).toBe(true);
    // P2 = 80|sfi names the key without SELECT (97 auth, 9A sign).
    const t = tx(chip, signApdu('97', digestInfo('x')));
    expect(verify('sha256', Buffer.from('x'), keys.auth.publicKey, Buffer.from(t.data, 'hex'))).toBe(true);
    // Errors: other schemes (P1 ≠ 00) 6A86, no data / > 245 bytes 6700, a non-key EF 6A88, CLA 00 6E00.
    expect(tx(chip, '802A0180' + lv(digestInfo('x')) + '00').sw).toBe(0x6a86);
    expect(tx(chip, '802A009A00').sw).toBe(0x6700);
    expect(tx(chip, '802A009A' + lv('00'.repeat(246)) + '00').sw).toBe(0x6700);
    expect(tx(chip, '802A0081' + lv(digestInfo('x')) + '00').sw).toBe(0x6a88);
    expect(tx(chip, '002A009A' + lv(digestInfo('x')) + '00').sw).toBe(0x6e00);
  });

  it('CHANGE REFERENCE DATA after VERIFY (format checked: 4 digits / 6-16 of [A-Z0-9]); GET CHALLENGE; 80 AE → 6982', async () => {
    const chip = await card();
    selectAp(chip);
    selectEf(chip, '0018');
    expect(tx(chip, '00240180' + lv(ascii('9999'))).sw).toBe(0x6982);
    expect(verifyPin(chip, AUTH_PIN)).toBe(0x9000);
    expect(tx(chip, '00240180' + lv(ascii('99A9'))).sw).toBe(0x6a80);
    expect(tx(chip, '00240180' + lv(ascii('99999'))).sw).toBe(0x6a80);
    expect(tx(chip, '00240180' + lv(ascii('9999'))).sw).toBe(0x9000);
    expect(verifyPin(chip, AUTH_PIN)).toBe(0x63c2);
    expect(verifyPin(chip, '9999')).toBe(0x9000);
    selectEf(chip, '001B');
    expect(verifyPin(chip, SIGN_PW)).toBe(0x9000);
    expect(tx(chip, '00240180' + lv(ascii('abc123'))).sw).toBe(0x6a80);
    expect(tx(chip, '00240180' + lv(ascii('ABC12'))).sw).toBe(0x6a80);
    expect(tx(chip, '00240180' + lv(ascii('A'.repeat(17)))).sw).toBe(0x6a80);
    expect(tx(chip, '00240180' + lv(ascii('NEWPASS2024XYZ99'))).sw).toBe(0x9000);
    expect(verifyPin(chip, 'NEWPASS2024XYZ99')).toBe(0x9000);
    const c1 = tx(chip, '0084000008');
    const c2 = tx(chip, '0084000008');
    expect([c1.sw, c1.data.length, c2.sw]).toEqual([0x9000, 16, 0x9000]);
    expect(c1.data).not.toBe(c2.data);
    expect(tx(chip, '80AE0000').sw).toBe(0x6982);
    expect(tx(chip, '80FC0000').sw).toBe(0x6700); // the iPhone token's last command indicator, refused as by the plastic card
    expect(tx(chip, '00FC0000').sw).toBe(0x6E00);
  });
});

describe.skipIf(JPKI_SKIP)('JPKI AP (card profile): personalisation under the applet-level SCP03 session', () => {
  it('needs the session: no session / CLA 80 / level 00 → 6982, CLA 00 → 6E00; C-DEC commands below C-DEC → 6982 and the session ends', async () => {
    const chip = await card({ lock: false });
    const t = transmitOf(chip);
    expect(selectAp(chip).sw).toBe(0x9000);
    expect(tx(chip, '84E0000000').sw).toBe(0x6982); // SM class, no session
    expect(tx(chip, '80E0000000').sw).toBe(0x6982); // plain proprietary class
    expect(tx(chip, '00E0000000').sw).toBe(0x6e00);
    expect(tx(chip, '84EA0018' + lv(ascii('1111'))).sw).toBe(0x6982);
    // Level 00: authenticated, but commands go out plain (CLA 80) → 6982.
    const plain = await openJpkiPerso(t, { keys: DEFAULT_KEYS, level: 0x00 });
    expect(await swOf(plain.seId())).toBe(0x6982);
    // Level 01 (C-MAC): GET SE IDENTIFIER works; SET PIN and IMPORT KEY COMPONENT need C-DEC.
    const mac = await openJpkiPerso(t, { keys: DEFAULT_KEYS, level: 0x01 });
    expect((await mac.seId()).length).toBe(16);
    expect(await swOf(mac.setPin('auth', '1111'))).toBe(0x6982);
    expect(await swOf(mac.seId())).toBe(0x6982); // the refusal ended the session
    const mac2 = await openJpkiPerso(t, { keys: DEFAULT_KEYS, level: 0x01 });
    expect(await swOf(mac2.importKey('auth', keys.auth.privateKey))).toBe(0x6982);
    // A command whose C-MAC does not verify: 6982, and the session is gone.
    let corrupt = false;
    const flaky = async (a: Uint8Array) => {
      const c = a.slice();
      if (corrupt) c[c.length - 2] ^= 0x01; // the last MAC byte (Le follows)
      corrupt = false;
      return chip.transmit(c);
    };
    const full = await openJpkiPerso(flaky, { keys: DEFAULT_KEYS, level: 0x33 });
    expect((await full.seId()).length).toBe(16);
    corrupt = true;
    expect(await swOf(full.seId())).toBe(0x6982);
    expect(await swOf(full.seId())).toBe(0x6982);
    // Wrong keys: the card cryptogram does not verify on the host.
    await expect(openJpkiPerso(t, { keys: { enc: keys_(1), mac: keys_(2), dek: keys_(3) } })).rejects.toThrow(JpkiError);
    // Without a session the card interface still answers as before.
    selectAp(chip);
    selectEf(chip, '0018');
    expect(verifyPin(chip, AUTH_PIN)).toBe(0x9000);
  });

  it('issuer commands: SE identifier from C9, IMPORT KEY COMPONENT / SET PIN / WRITE CERTIFICATE refusals, phone-only INS 6D00', async () => {
    const { chip } = vmChip();
    const seId = fromHex('0102030405060708090A0B0C0D0E0F10');
    const sc = await secure(chip);
    expect((await gpLoad(sc, PKG, jpkiBlock())).sw).toBe(0x9000);
    expect((await gpInstall(sc, PKG, AID, AID, hex(installParams('card', seId)))).sw).toBe(0x9000);
    const t = transmitOf(chip);
    const perso = await openJpkiPerso(t, { keys: DEFAULT_KEYS });
    expect(hex(await perso.seId())).toBe(hex(seId));
    expect((await psend(perso, '84E0000100')).sw).toBe(0x6a86);
    // IMPORT KEY COMPONENT: 128 bytes, component 01-05, key 17/1A.
    expect((await psend(perso, '80E60117' + lv('00'.repeat(127)))).sw).toBe(0x6700);
    expect((await psend(perso, '80E60617' + lv('00'.repeat(128)))).sw).toBe(0x6a86);
    expect((await psend(perso, '80E60118' + lv('00'.repeat(128)))).sw).toBe(0x6a86);
    // No key yet: a certificate for 01/0A is refused (6985); a CA certificate is fine.
    expect(await swOf(perso.writeCertificate('auth', certs['000A']))).toBe(0x6985);
    await perso.writeCertificate('authCa', certs['000B']);
    await perso.importKey('auth', keys.auth.privateKey);
    expect(await swOf(perso.importKey('auth', keys.auth.privateKey))).toBe(0x6985); // one key per kind: ERASE first
    // The certificate must contain the modulus of the key of its kind.
    expect(await swOf(perso.writeCertificate('auth', certs['0001']))).toBe(0x6a80);
    await perso.writeCertificate('auth', certs['000A']);
    // SET PIN: format and reference.
    expect(await swOf(perso.setPin('auth', '12345'))).toBe(0x6a80);
    expect(await swOf(perso.setPin('sign', 'abcdef'))).toBe(0x6a80);
    expect((await psend(perso, '80EA0017' + lv(ascii('1234')))).sw).toBe(0x6a86);
    await perso.setPin('auth', AUTH_PIN);
    // Commands of the phone profile are unknown here, and so are the app-side temporary-PIN commands.
    for (const a of ['80E2001700', '80E4001700', '80EC0018', '80EE0018' + lv(hex(seId))]) expect((await psend(perso, a)).sw, a).toBe(0x6d00);
    expect(tx(chip, '80CA011800').sw).toBe(0x6d00);
    expect(tx(chip, '002C0098' + lv(ascii('12345678' + '1234'))).sw).toBe(0x6d00);
    // The auth key signs after the auth PIN (the session is still open; the card interface goes plain).
    selectAp(chip);
    expect(tx(chip, '00200098' + lv(ascii(AUTH_PIN))).sw).toBe(0x9000);
    const s = tx(chip, signApdu('97', digestInfo('card')));
    expect(verify('sha256', Buffer.from('card'), keys.auth.publicKey, Buffer.from(s.data, 'hex'))).toBe(true);
    expect(tx(chip, '00B0880000').data).toBe('008F00');
    // DISABLE KEY: the key stays but refuses to sign (6984); ERASE clears it, its certificate and its PIN.
    const p3 = await openJpkiPerso(t, { keys: DEFAULT_KEYS });
    await p3.disableKey('auth');
    expect(await swOf(p3.disableKey('sign'))).toBe(0x6985); // no sign key
    selectAp(chip);
    expect(tx(chip, '00200098' + lv(ascii(AUTH_PIN))).sw).toBe(0x9000);
    expect(tx(chip, signApdu('97')).sw).toBe(0x6984);
    const p4 = await openJpkiPerso(t, { keys: DEFAULT_KEYS });
    await p4.erase('auth');
    selectAp(chip);
    expect(tx(chip, signApdu('97')).sw).toBe(0x6985);
    expect(tx(chip, '00200098' + lv(ascii(AUTH_PIN))).sw).toBe(0x6984); // PIN unset
    expect(tx(chip, '00B0880000').data).toBe('000000');
    expect(tx(chip, '00B08A0000').data).toBe('FF'.repeat(256)); // 000A is free on the card profile
    expect(tx(chip, '00B08B0004').data).toBe(hex(certs['000B'].subarray(0, 4))); // the CA EF stays
    // After ERASE a new key can be imported, here through a session on logical channel 1.
    expect(tx(chip, '00A40400' + lv('A000000151000000')).sw).toBe(0x9000); // the AP is not multi-selectable: leave channel 0
    expect(tx(chip, '0070000001')).toMatchObject({ data: '01', sw: 0x9000 });
    const p5 = await openJpkiPerso(t, { keys: DEFAULT_KEYS, channel: 1 });
    expect(p5.cla).toBe(0x81);
    expect(hex(await p5.seId())).toBe(hex(seId));
    await p5.importKey('auth', keys.auth.privateKey);
    expect(tx(chip, '01200098' + lv(ascii(AUTH_PIN))).sw).toBe(0x6984); // the PIN is still unset
  });

  it('LOCK: every personalisation command (INITIALIZE UPDATE too) answers 6D00; the card interface stays', async () => {
    const { chip, perso } = await cardChip({ keys, certs: certsByEf, lock: false });
    await perso.lock();
    for (const a of ['80E0000000', '80E60117' + lv('00'.repeat(128)), '80E80101' + lv('3082'), '80EA0018' + lv(ascii('1111')), '80F00000', '80F20017', '80F40000'])
      expect((await psend(perso, a)).sw, a).toBe(0x6d00);
    await expect(openJpkiPerso(transmitOf(chip), { keys: DEFAULT_KEYS })).rejects.toThrow(/6D00/);
    selectAp(chip);
    expect(tx(chip, '8050000008' + '00'.repeat(8)).sw).toBe(0x6d00);
    expect(tx(chip, '8482000010' + '00'.repeat(16)).sw).toBe(0x6d00);
    selectEf(chip, '0018');
    expect(verifyPin(chip, AUTH_PIN)).toBe(0x9000);
    expect(tx(chip, '00B0860020').data).toBe(ascii('JPKIAPICCTOKEN2'.padEnd(32, ' ')));
  });

  it('install parameters: a malformed C9 value or an unknown profile leaves no instance', async () => {
    const { chip } = vmChip();
    const sc = await secure(chip);
    expect((await gpLoad(sc, PKG, jpkiBlock())).sw).toBe(0x9000);
    for (const params of ['800102', '8002', '8110' + '00'.repeat(15), '800101810F' + '00'.repeat(15)])
      expect((await gpInstall(sc, PKG, AID, AID, params)).sw, params).not.toBe(0x9000);
    expect((await gpInstall(sc, PKG, AID, AID, '800100')).sw).toBe(0x9000);
    expect(selectAp(chip).sw).toBe(0x9000);
  });
});

/** A 16-byte AES key filled with `n`. */
function keys_(n: number): Uint8Array {
  return new Uint8Array(16).fill(n);
}
