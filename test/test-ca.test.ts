// The JPKI test CA (emulator/personalise/test-ca.ts): CA and EE certificate shapes (docs/test-ca.md), chain
// verification with @peculiar/x509 and (when on PATH) openssl, the 2048-byte limit, validity rules, a public key given
// as modulus/exponent, and keeping a CA in a directory.
import 'reflect-metadata';
import { beforeAll, describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { createHash, createPublicKey, generateKeyPairSync } from 'node:crypto';
import type { KeyObject } from 'node:crypto';
import { copyFileSync, existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as x509 from '@peculiar/x509';
import { hex } from '../emulator/bytes.ts';
import { parseTlvs, readHeader } from '../emulator/tlv.ts';
import type { Holder, TestCa } from '../emulator/personalise/test-ca.ts';
import {
  JPKI_ATTR,
  PHONE_POLICY,
  TEST_POLICY,
  certificateExtensions,
  createTestCa,
  decodeOid,
  eraDigit,
  fifthBirthdayAfter,
  issueCertificate,
  loadTestCa,
  readJpkiAttributes,
  rsaNumbers,
  saveTestCa,
} from '../emulator/personalise/test-ca.ts';

const HAVE_OPENSSL = spawnSync('openssl', ['version']).status === 0;

const HOLDER: Holder = { name: '公的　太郎', birth: '19900102', sex: 'male', address: '東京都千代田区千代田１－１', prefecture: 'Saitama-ken', city: 'Kawagoe-shi' };
const ISSUED = new Date('2026-04-01T10:00:00+09:00');
/** A moment inside the EE validity (x509 verify wants notBefore < date). */
const AT = new Date(ISSUED.getTime() + 60_000);

let ca: TestCa;
let subject: KeyObject;
let signDer: Uint8Array;
let authDer: Uint8Array;

beforeAll(async () => {
  ca = await createTestCa({ notBefore: new Date('2026-04-01T08:00:00+09:00') });
  subject = generateKeyPairSync('rsa', { modulusLength: 2048 }).publicKey;
  signDer = await issueCertificate(ca, 'sign', subject, HOLDER, { profile: 'card', serial: 0x1234, notBefore: ISSUED, subjectId: '997794E9AGCIEG13221003A' });
  authDer = await issueCertificate(ca, 'auth', subject, HOLDER, { profile: 'phone', notBefore: ISSUED });
}, 60_000);

/** Each RDN of a DER Name as [attribute OID, string tag, text]. */
function rdns(name: Uint8Array): [string, number, string][] {
  const h = readHeader(name, 0);
  return parseTlvs(name.subarray(h.start, h.end)).map((set) => {
    const [atv] = parseTlvs(set.value);
    const [oid, value] = parseTlvs(atv.value);
    return [decodeOid(oid.value), value.tag, new TextDecoder().decode(value.value)];
  });
}
const nameBytes = (n: x509.Name) => new Uint8Array(n.toArrayBuffer());
const ext = (der: Uint8Array, oid: string) => certificateExtensions(der).find((e) => e.oid === oid)!;
const UTF8 = 0x0c;
const PRINTABLE = 0x13;

describe('createTestCa', () => {
  it('makes self-signed RSA-2048 sha256WithRSAEncryption CAs with J-LIS-shaped but unmistakable test names', async () => {
    for (const kind of ['sign', 'auth'] as const) {
      const c = ca[kind].cert;
      expect(await c.verify({ publicKey: c.publicKey, date: new Date('2027-01-01') })).toBe(true);
      expect(c.subject).toBe(c.issuer);
      expect(c.signatureAlgorithm).toMatchObject({ name: 'RSASSA-PKCS1-v1_5', hash: { name: 'SHA-256' } });
      const { modulus, exponent } = rsaNumbers(new Uint8Array(c.publicKey.rawData));
      expect(modulus.length).toBe(256);
      expect(hex(exponent)).toBe('010001');
      const ou = kind === 'sign' ? 'JPKI for digital signature' : 'JPKI for user authentication';
      expect(rdns(nameBytes(c.subjectName))).toEqual([
        ['2.5.4.6', PRINTABLE, 'JP'],
        ['2.5.4.10', UTF8, 'JPKI-TEST'],
        ['2.5.4.11', UTF8, ou],
        ['2.5.4.11', UTF8, 'jpki-se emulator test CA, not J-LIS'],
      ]);
      // 10 years from 00:00 JST of the first day to 23:59:59 JST of the day before.
      expect(c.notBefore.toISOString()).toBe('2026-03-31T15:00:00.000Z');
      expect(c.notAfter.toISOString()).toBe('2036-03-31T14:59:59.000Z');
    }
    expect(new Uint8Array(ca.sign.cert.publicKey.rawData)).not.toEqual(new Uint8Array(ca.auth.cert.publicKey.rawData));
  });

  it('carries the root extensions of reference §3.1: KU and BC critical, SKI, SAN DirName, CDP = own DN', () => {
    const der = ca.sign.certificate;
    const list = certificateExtensions(der);
    expect(list.map((e) => [e.oid, e.critical])).toEqual([
      ['2.5.29.15', true],
      ['2.5.29.19', true],
      ['2.5.29.14', false],
      ['2.5.29.17', false],
      ['2.5.29.31', false],
    ]);
    expect(hex(list[0].value)).toBe('03020106'); // keyCertSign + cRLSign
    expect(hex(list[1].value)).toBe('30030101FF'); // CA:TRUE, no path length
    const spki = new Uint8Array(ca.sign.cert.publicKey.rawData);
    const bits = parseTlvs(spki.subarray(readHeader(spki, 0).start))[1].value.subarray(1);
    expect(hex(list[2].value)).toBe('0414' + createHash('sha1').update(bits).digest('hex').toUpperCase());
    const san = new TextDecoder().decode(list[3].value);
    expect(san).toContain('公的個人認証サービス（試験用）');
    expect(san).toContain('公的個人認証サービス署名用');
    expect(san).toContain('地方公共団体情報システム機構ではない');
    // CDP: SEQ { SEQ { [0] { [0] { [4] <the CA's own Name> } } } }
    expect(hex(list[4].value)).toContain(hex(nameBytes(ca.sign.cert.subjectName)));
  });
});

describe('issueCertificate', () => {
  it('issues a sign certificate that verifies against the sign CA only, in the JPKI EE shape', async () => {
    const ee = new x509.X509Certificate(new Uint8Array(signDer));
    expect(await ee.verify({ publicKey: ca.sign.cert.publicKey, date: AT })).toBe(true);
    expect(await ee.verify({ publicKey: ca.auth.cert.publicKey, date: AT })).toBe(false);
    expect(nameBytes(ee.issuerName)).toEqual(nameBytes(ca.sign.cert.subjectName));
    expect(ee.serialNumber).toBe('1234');
    expect(ee.signatureAlgorithm).toMatchObject({ name: 'RSASSA-PKCS1-v1_5', hash: { name: 'SHA-256' } });
    expect(rdns(nameBytes(ee.subjectName))).toEqual([
      ['2.5.4.6', PRINTABLE, 'JP'],
      ['2.5.4.7', UTF8, 'Saitama-ken'],
      ['2.5.4.7', UTF8, 'Kawagoe-shi'],
      ['2.5.4.3', UTF8, '997794E9AGCIEG13221003A'],
    ]);
    expect(ee.notBefore.toISOString()).toBe('2026-04-01T01:00:00.000Z');
    expect(ee.notAfter.toISOString()).toBe('2031-01-02T14:59:59.000Z'); // 5th birthday after issuance, 23:59:59 JST
    expect(new Uint8Array(ee.publicKey.rawData)).toEqual(new Uint8Array(subject.export({ type: 'spki', format: 'der' })));
    expect(signDer.length).toBeLessThanOrEqual(2048);

    const list = certificateExtensions(signDer);
    expect(list.map((e) => [e.oid, e.critical])).toEqual([
      ['2.5.29.15', true],
      ['2.5.29.32', true],
      ['2.5.29.17', false],
      ['2.5.29.18', false],
      ['2.5.29.31', false],
      ['2.5.29.35', false],
    ]);
    expect(hex(list[0].value)).toBe('030206C0'); // digitalSignature + nonRepudiation
    expect(hex(list[1].value)).toBe('300F300D060B2A83088C9B550805010014'); // one policy, 1.2.392.200149.8.5.1.0.20
    const aki = ext(signDer, '2.5.29.35').value;
    expect(hex(aki)).toBe('30168014' + hex(ext(ca.sign.certificate, '2.5.29.14').value).slice(4));
    const cdp = new TextDecoder().decode(ext(signDer, '2.5.29.31').value);
    for (const part of ['JPKI-TEST', 'JPKI for digital signature', 'CRL Distribution Points', 'Saitama-ken', 'Kawagoe-shi']) expect(cdp).toContain(part);
    expect(new TextDecoder().decode(ext(signDer, '2.5.29.18').value)).toContain('公的個人認証サービス（試験用）');
  });

  it('writes the 4 info as [0] EXPLICIT UTF8String otherNames in the real-card order', () => {
    expect(readJpkiAttributes(signDer)).toEqual({
      name: '公的　太郎',
      nameSubstitution: '00000',
      birth: '419900102',
      sex: '1',
      address: '東京都千代田区千代田１－１',
      addressSubstitution: '0'.repeat(13),
    });
    const san = ext(signDer, '2.5.29.17').value;
    const names = parseTlvs(san.subarray(readHeader(san, 0).start));
    expect(names.map((n) => n.tag)).toEqual([0xa0, 0xa0, 0xa0, 0xa0, 0xa0, 0xa0]);
    const oids = names.map((n) => decodeOid(parseTlvs(n.value)[0].value));
    expect(oids).toEqual([JPKI_ATTR.name, JPKI_ATTR.birth, JPKI_ATTR.sex, JPKI_ATTR.address, JPKI_ATTR.nameSubstitution, JPKI_ATTR.addressSubstitution]);
    const value = parseTlvs(names[0].value)[1];
    expect(value.tag).toBe(0xa0);
    expect(parseTlvs(value.value)[0].tag).toBe(UTF8);
  });

  it('issues an auth certificate without personal data; the phone profile adds the SE-loaded policy', async () => {
    const ee = new x509.X509Certificate(new Uint8Array(authDer));
    expect(await ee.verify({ publicKey: ca.auth.cert.publicKey, date: AT })).toBe(true);
    expect(await ee.verify({ publicKey: ca.sign.cert.publicKey, date: AT })).toBe(false);
    const subj = rdns(nameBytes(ee.subjectName));
    expect(subj.map(([o]) => o)).toEqual(['2.5.4.6', '2.5.4.3']);
    expect(subj[1][2]).toMatch(/^[0-9A-Z]{23}$/);
    expect(/^[0-7][0-9A-F]{15}$/i.test(ee.serialNumber)).toBe(true); // 8 random bytes, positive
    expect(readJpkiAttributes(authDer)).toBeUndefined();
    const list = certificateExtensions(authDer);
    expect(list.map((e) => [e.oid, e.critical])).toEqual([
      ['2.5.29.15', true],
      ['2.5.29.32', true],
      ['2.5.29.18', false],
      ['2.5.29.31', false],
      ['2.5.29.35', false],
    ]);
    expect(hex(list[0].value)).toBe('03020780'); // digitalSignature
    expect(hex(list[1].value)).toBe('301E300D060B2A83088C9B55080501001E300D060B2A83088C9B550805010028');
    expect([TEST_POLICY.auth, PHONE_POLICY]).toEqual(['1.2.392.200149.8.5.1.0.30', '1.2.392.200149.8.5.1.0.40']);
    const cdp = new TextDecoder().decode(list[3].value);
    expect(cdp).toContain('JPKI for user authentication');
    expect(cdp).not.toContain('Saitama-ken');
    // The card profile has no phone policy.
    const card = await issueCertificate(ca, 'auth', subject, HOLDER, { profile: 'card', notBefore: ISSUED });
    expect(hex(ext(card, '2.5.29.32').value)).toBe('300F300D060B2A83088C9B55080501001E');
  });

  it('puts a public key given as modulus/exponent into the certificate exactly', async () => {
    const jwk = subject.export({ format: 'jwk' });
    const modulus = new Uint8Array(Buffer.from(jwk.n!, 'base64url'));
    const exponent = new Uint8Array(Buffer.from(jwk.e!, 'base64url'));
    expect(modulus.length).toBe(256);
    // A leading zero byte (as a card may send) changes nothing.
    const padded = new Uint8Array(257);
    padded.set(modulus, 1);
    for (const m of [modulus, padded]) {
      const der = await issueCertificate(ca, 'auth', { modulus: m, exponent }, HOLDER, { profile: 'card', notBefore: ISSUED });
      const spki = new Uint8Array(new x509.X509Certificate(new Uint8Array(der)).publicKey.rawData);
      expect(rsaNumbers(spki)).toEqual({ modulus, exponent });
      expect(spki).toEqual(new Uint8Array(subject.export({ type: 'spki', format: 'der' })));
      expect(createPublicKey({ key: Buffer.from(spki), format: 'der', type: 'spki' }).export({ format: 'jwk' })).toEqual(jwk);
    }
    const small = generateKeyPairSync('rsa', { modulusLength: 1024 }).publicKey;
    await expect(issueCertificate(ca, 'auth', small, HOLDER, { profile: 'card' })).rejects.toThrow('RSA modulus of 1024 bits; JPKI keys are 2048 bits');
    await expect(issueCertificate(ca, 'auth', { modulus, exponent: Uint8Array.of(1, 0, 0) }, HOLDER, { profile: 'card' })).rejects.toThrow('is not an odd number');
    const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey;
    await expect(issueCertificate(ca, 'auth', ec, HOLDER, { profile: 'card' })).rejects.toThrow('subject key is ec, not RSA');
  });

  it('keeps certificates within the 2048-byte EF and refuses what does not fit', async () => {
    const long: Holder = { ...HOLDER, name: '公的'.repeat(10), address: '東京都' + '千'.repeat(137) };
    const fits = await issueCertificate(ca, 'sign', subject, long, { profile: 'phone', notBefore: ISSUED });
    expect(fits.length).toBeGreaterThan(1800);
    expect(fits.length).toBeLessThanOrEqual(2048);
    const huge: Holder = { ...HOLDER, name: '公的'.repeat(10), address: '東'.repeat(200) };
    await expect(issueCertificate(ca, 'sign', subject, huge, { profile: 'phone', notBefore: ISSUED })).rejects.toThrow(
      /^the sign certificate is 2\d{3} bytes; the card's EF holds 2048$/,
    );
  });

  it('checks the holder data and the JPKI age rule', async () => {
    const bad: [Partial<Holder>, string][] = [
      [{ address: '東'.repeat(201) }, 'address of 201 characters (must be 1..200)'],
      [{ birth: '19900230' }, 'birth "19900230" is not a date'],
      [{ birth: '1990-01-02' }, 'birth "1990-01-02" is not YYYYMMDD'],
      [{ nameSubstitution: '0001' }, 'name substitution map "0001" must be 5 digits 0/1, one per character'],
      [{ addressSubstitution: '2'.repeat(13) }, 'address substitution map'],
      [{ birth: '20150101' }, 'sign certificates are not issued to holders under 15 (JPKI rule)'],
    ];
    for (const [change, message] of bad)
      await expect(issueCertificate(ca, 'sign', subject, { ...HOLDER, ...change }, { profile: 'card', notBefore: ISSUED }), message).rejects.toThrow(message);
    // The child still gets an auth certificate; a substituted character is marked 1.
    const child = await issueCertificate(ca, 'auth', subject, { ...HOLDER, birth: '20150101' }, { profile: 'card', notBefore: ISSUED });
    expect(new x509.X509Certificate(new Uint8Array(child)).notAfter.toISOString()).toBe('2031-01-01T14:59:59.000Z');
    const marked = await issueCertificate(ca, 'sign', subject, { ...HOLDER, sex: '2', nameSubstitution: '01000' }, { profile: 'card', notBefore: ISSUED });
    expect(readJpkiAttributes(marked)).toMatchObject({ nameSubstitution: '01000', sex: '2' });
  });
});

describe('validity and era rules', () => {
  it('ends on the 5th birthday after issuance at 23:59:59 JST', () => {
    // reference §3.2: a test auth cert from 2025-10-27 to 2030-02-17.
    expect(fifthBirthdayAfter('19800217', new Date('2025-10-27T12:00:00+09:00')).toISOString()).toBe('2030-02-17T14:59:59.000Z');
    // Issued on the birthday: that day does not count.
    expect(fifthBirthdayAfter('19800217', new Date('2025-02-17T09:00:00+09:00')).toISOString()).toBe('2030-02-17T14:59:59.000Z');
    expect(fifthBirthdayAfter('19800217', new Date('2025-02-16T23:00:00+09:00')).toISOString()).toBe('2029-02-17T14:59:59.000Z');
    // JST decides the day: 2025-02-16T16:00Z is already the 17th in Japan.
    expect(fifthBirthdayAfter('19800217', new Date('2025-02-16T16:00:00Z')).toISOString()).toBe('2030-02-17T14:59:59.000Z');
    expect(fifthBirthdayAfter('19960229', new Date('2026-04-01T12:00:00+09:00')).toISOString()).toBe('2031-02-28T14:59:59.000Z');
    expect(fifthBirthdayAfter('19960229', new Date('2023-04-01T12:00:00+09:00')).toISOString()).toBe('2028-02-29T14:59:59.000Z');
  });

  it('gives the era digit of EYYYYMMDD from the first day of each era', () => {
    const cases: [string, string][] = [
      ['18000101', '0'],
      ['18681023', '1'],
      ['19120729', '1'],
      ['19120730', '2'],
      ['19261224', '2'],
      ['19261225', '3'],
      ['19890107', '3'],
      ['19890108', '4'],
      ['19900102', '4'],
      ['20190430', '4'],
      ['20190501', '5'],
    ];
    for (const [birth, era] of cases) expect(eraDigit(birth), birth).toBe(era);
  });
});

describe('saveTestCa / loadTestCa', () => {
  it('round-trips a CA through a directory and issues with the restored one', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'jpki-test-ca-'));
    try {
      saveTestCa(ca, dir);
      for (const f of ['test-ca.json', 'sign-ca.pem', 'sign-ca.key.pem', 'auth-ca.pem', 'auth-ca.key.pem']) expect(existsSync(join(dir, f)), f).toBe(true);
      expect(statSync(join(dir, 'sign-ca.key.pem')).mode & 0o077).toBe(0);
      const index = JSON.parse(readFileSync(join(dir, 'test-ca.json'), 'utf8'));
      expect(index.format).toBe('jpki-se-test-ca/1');
      expect(index.warning).toContain('not J-LIS');
      expect(readFileSync(join(dir, 'sign-ca.pem'), 'utf8')).toMatch(/^-----BEGIN CERTIFICATE-----/);
      const back = await loadTestCa(dir);
      expect(back.sign.certificate).toEqual(ca.sign.certificate);
      expect(back.auth.certificate).toEqual(ca.auth.certificate);
      const der = await issueCertificate(back, 'sign', subject, HOLDER, { profile: 'card', notBefore: ISSUED });
      expect(await new x509.X509Certificate(new Uint8Array(der)).verify({ publicKey: ca.sign.cert.publicKey, date: AT })).toBe(true);
      // A key that is not the certificate's is refused.
      copyFileSync(join(dir, 'auth-ca.key.pem'), join(dir, 'sign-ca.key.pem'));
      await expect(loadTestCa(dir)).rejects.toThrow('sign-ca.key.pem does not belong to sign-ca.pem');
      writeFileSync(join(dir, 'test-ca.json'), JSON.stringify({ ...index, format: 'other/9' }));
      await expect(loadTestCa(dir)).rejects.toThrow('format "other/9" is not jpki-se-test-ca/1');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe.skipIf(!HAVE_OPENSSL)('openssl', () => {
  it('parses every certificate and verifies each EE against its CA', () => {
    const dir = mkdtempSync(join(tmpdir(), 'jpki-test-ca-ossl-'));
    try {
      const files: Record<string, Uint8Array> = { signca: ca.sign.certificate, authca: ca.auth.certificate, sign: signDer, auth: authDer };
      for (const [n, der] of Object.entries(files)) {
        writeFileSync(join(dir, `${n}.der`), der);
        const text = spawnSync('openssl', ['x509', '-inform', 'DER', '-in', join(dir, `${n}.der`), '-noout', '-text'], { encoding: 'utf8' });
        expect(text.status, `${n}: ${text.stderr}`).toBe(0);
        expect(text.stdout).toContain('sha256WithRSAEncryption');
        const pem = spawnSync('openssl', ['x509', '-inform', 'DER', '-in', join(dir, `${n}.der`), '-out', join(dir, `${n}.pem`)]);
        expect(pem.status).toBe(0);
      }
      const sign = spawnSync('openssl', ['x509', '-inform', 'DER', '-in', join(dir, 'sign.der'), '-noout', '-text'], { encoding: 'utf8' }).stdout;
      expect(sign).toContain('othername: 1.2.392.200149.8.5.5.1::公的　太郎');
      expect(sign).toContain('Policy: 1.2.392.200149.8.5.1.0.20');
      for (const [ee, issuer] of [
        ['sign', 'signca'],
        ['auth', 'authca'],
      ]) {
        const v = spawnSync('openssl', ['verify', '-attime', String(AT.getTime() / 1000), '-CAfile', join(dir, `${issuer}.pem`), join(dir, `${ee}.pem`)], { encoding: 'utf8' });
        expect(v.status, v.stdout + v.stderr).toBe(0);
      }
      const wrong = spawnSync('openssl', ['verify', '-attime', String(AT.getTime() / 1000), '-CAfile', join(dir, 'authca.pem'), join(dir, 'sign.pem')], { encoding: 'utf8' });
      expect(wrong.status).not.toBe(0);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
