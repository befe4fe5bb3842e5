import 'reflect-metadata';
// A JPKI-shaped *test* PKI for personalisation and OpenSC tests: a sign CA and an auth CA shaped like the J-LIS roots
// (reference jpki.md §3.1) but named so that they cannot pass for production, and end-entity certificates in the JPKI
// EE shape (§3.2). CA keys live on the host (webcrypto); see docs/test-ca.md for every profile choice.
import { createHash, createPrivateKey, createPublicKey, KeyObject, randomBytes, webcrypto } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as x509 from '@peculiar/x509';
import { concat, equal, hex } from '../bytes.ts';
import { parseTlvs, readHeader, tlv } from '../tlv.ts';

x509.cryptoProvider.set(webcrypto as unknown as Crypto);

export type CertKind = 'sign' | 'auth';
export type CertProfile = 'card' | 'phone';

export interface CaAuthority {
  kind: CertKind;
  /** DER of the self-signed CA certificate. */
  certificate: Uint8Array;
  cert: x509.X509Certificate;
  privateKey: CryptoKey;
}

export interface TestCa {
  sign: CaAuthority;
  auth: CaAuthority;
}

export interface TestCaOptions {
  /** First day of validity (JST); default today. The CA is valid 10 years, to 23:59:59 JST the day before. */
  notBefore?: Date;
}

/** Holder data; the sign certificate carries name, birth, sex and address (the "4 info"), the auth one none of it. */
export interface Holder {
  /** 氏名: family and given name separated by a full-width space. */
  name: string;
  /** Not in the certificates (the card's text AP has it); accepted so that one holder record serves both. */
  nameKana?: string;
  /** YYYYMMDD (Gregorian). */
  birth: string;
  sex: 'male' | 'female' | 'unknown' | '1' | '2' | '3';
  /** 住所: prefecture first, no postcode, at most 200 characters. */
  address: string;
  /** 氏名代替文字の使用位置情報: one digit per character of the name, 1 = substituted; default all 0. */
  nameSubstitution?: string;
  /** 住所代替文字の使用位置情報; default all 0. */
  addressSubstitution?: string;
  /** Issuing municipality in romaji, for the sign subject's L and the CRL partition; default Tokyo-to / Chiyoda-ku. */
  prefecture?: string;
  city?: string;
}

export interface IssueOptions {
  profile: CertProfile;
  /** Positive serial number (bigint, number or hex); default 8 random bytes. */
  serial?: bigint | number | string;
  /** Default: now. */
  notBefore?: Date;
  /** Default: the holder's 5th birthday after notBefore, 23:59:59 JST. */
  notAfter?: Date;
  /** The subject CN (23-character issue ID in JPKI); default random. */
  subjectId?: string;
}

export type RsaPublicKey = { modulus: Uint8Array; exponent: Uint8Array } | KeyObject;

// ---------------------------------------------------------------------------------------------------------------
// Profile constants (docs/test-ca.md)

/** J-LIS test-card policy for sign certs (reference §3.2, [1-src]); the auth one by analogy ([unverified]). */
export const TEST_POLICY = { sign: '1.2.392.200149.8.5.1.0.20', auth: '1.2.392.200149.8.5.1.0.30' } as const;
/** Extra policy marking an SE-loaded (phone) certificate: test-arc analogue of the single guess …1.1.40 ([unverified]). */
export const PHONE_POLICY = '1.2.392.200149.8.5.1.0.40';
/** jpki-personalData arc 1.2.392.200149.8.5.5 (reference §3.2 table). */
export const JPKI_ATTR = {
  name: '1.2.392.200149.8.5.5.1',
  nameSubstitution: '1.2.392.200149.8.5.5.2',
  sex: '1.2.392.200149.8.5.5.3',
  birth: '1.2.392.200149.8.5.5.4',
  address: '1.2.392.200149.8.5.5.5',
  addressSubstitution: '1.2.392.200149.8.5.5.6',
} as const;
export const MAX_CERT_SIZE = 2048;
const ORG = 'JPKI-TEST';
const NOT_JLIS = 'jpki-se emulator test CA, not J-LIS';
const OU_KIND = { sign: 'JPKI for digital signature', auth: 'JPKI for user authentication' } as const;
const SAN_ORG = '公的個人認証サービス（試験用）';
const SAN_OU_KIND = { sign: '公的個人認証サービス署名用', auth: '公的個人認証サービス利用者証明用' } as const;
const SAN_OU_NOT_JLIS = 'jpki-se エミュレータ（地方公共団体情報システム機構ではない）';

const OID = {
  rsaEncryption: '1.2.840.113549.1.1.1',
  C: '2.5.4.6',
  O: '2.5.4.10',
  OU: '2.5.4.11',
  L: '2.5.4.7',
  CN: '2.5.4.3',
  ski: '2.5.29.14',
  keyUsage: '2.5.29.15',
  san: '2.5.29.17',
  ian: '2.5.29.18',
  basicConstraints: '2.5.29.19',
  crlDp: '2.5.29.31',
  policies: '2.5.29.32',
  aki: '2.5.29.35',
} as const;

const RSA_ALG = { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' } as const;

// ---------------------------------------------------------------------------------------------------------------
// DER writing

function encodeOid(dotted: string): Uint8Array {
  const p = dotted.split('.').map(Number);
  const out: number[] = [40 * p[0] + p[1]];
  for (const n of p.slice(2)) {
    const b = [n & 0x7f];
    for (let v = Math.floor(n / 128); v > 0; v = Math.floor(v / 128)) b.unshift((v & 0x7f) | 0x80);
    out.push(...b);
  }
  return tlv(0x06, Uint8Array.from(out));
}

const utf8 = (s: string) => tlv(0x0c, new TextEncoder().encode(s));
const printable = (s: string) => tlv(0x13, new TextEncoder().encode(s));
const seq = (...v: Uint8Array[]) => tlv(0x30, ...v);
const octets = (v: Uint8Array) => tlv(0x04, v);

/** Unsigned big-endian integer as a DER INTEGER (leading zeros dropped, one added for a set high bit). */
function derUint(v: Uint8Array): Uint8Array {
  let i = 0;
  while (i < v.length - 1 && v[i] === 0) i++;
  const body = v.subarray(i);
  return tlv(0x02, body[0] & 0x80 ? concat(Uint8Array.of(0), body) : body);
}

type Rdn = [keyof typeof OID, string];

/** A DN, one attribute per RDN; C is a PrintableString, everything else UTF8String (as on the J-LIS roots). */
function dn(rdns: Rdn[]): Uint8Array {
  return seq(...rdns.map(([t, v]) => tlv(0x31, seq(encodeOid(OID[t]), t === 'C' ? printable(v) : utf8(v)))));
}

const dirName = (name: Uint8Array) => tlv(0xa4, name);
/** A copy on a plain ArrayBuffer, the BufferSource webcrypto and @peculiar/x509 are typed for. */
const plain = (v: Uint8Array): Uint8Array<ArrayBuffer> => new Uint8Array(v);

function extension(oid: string, critical: boolean, value: Uint8Array): x509.Extension {
  return new x509.Extension(oid, critical, plain(value));
}

function caDn(kind: CertKind): Rdn[] {
  return [
    ['C', 'JP'],
    ['O', ORG],
    ['OU', OU_KIND[kind]],
    ['OU', NOT_JLIS],
  ];
}

// ---------------------------------------------------------------------------------------------------------------
// Dates (JST = UTC+9; J-LIS validity ends at 23:59:59 JST)

interface Day {
  y: number;
  m: number;
  d: number;
}

function jstDay(t: Date): Day {
  const j = new Date(t.getTime() + 9 * 3600_000);
  return { y: j.getUTCFullYear(), m: j.getUTCMonth() + 1, d: j.getUTCDate() };
}
const startOfJstDay = (x: Day) => new Date(Date.UTC(x.y, x.m - 1, x.d, 0, 0, 0) - 9 * 3600_000);
const endOfJstDay = (x: Day) => new Date(Date.UTC(x.y, x.m - 1, x.d, 23, 59, 59) - 9 * 3600_000);
const dayNumber = (x: Day) => x.y * 10000 + x.m * 100 + x.d;
const isLeap = (y: number) => (y % 4 === 0 && y % 100 !== 0) || y % 400 === 0;

function parseBirth(birth: string): Day {
  const m = /^(\d{4})(\d{2})(\d{2})$/.exec(birth);
  if (!m) throw new RangeError(`birth "${birth}" is not YYYYMMDD`);
  const x = { y: +m[1], m: +m[2], d: +m[3] };
  const t = new Date(Date.UTC(x.y, x.m - 1, x.d));
  if (t.getUTCFullYear() !== x.y || t.getUTCMonth() + 1 !== x.m || t.getUTCDate() !== x.d) throw new RangeError(`birth "${birth}" is not a date`);
  return x;
}

/** The birthday in year y; 29 February falls on 28 February in common years (a project choice). */
const birthdayIn = (b: Day, y: number): Day => (b.m === 2 && b.d === 29 && !isLeap(y) ? { y, m: 2, d: 28 } : { y, m: b.m, d: b.d });

/** JPKI EE validity: to the 5th birthday after issuance (reference §3.2), end of that day JST. */
export function fifthBirthdayAfter(birth: string, issued: Date): Date {
  const b = parseBirth(birth);
  const today = jstDay(issued);
  let first = birthdayIn(b, today.y);
  if (dayNumber(first) <= dayNumber(today)) first = birthdayIn(b, today.y + 1);
  return endOfJstDay(birthdayIn(b, first.y + 4));
}

/** Era digit of `EYYYYMMDD` (1 明治, 2 大正, 3 昭和, 4 平成, 5 令和, 0 unknown) from the first day of each era. */
export function eraDigit(birth: string): string {
  const n = dayNumber(parseBirth(birth));
  if (n >= 20190501) return '5';
  if (n >= 19890108) return '4';
  if (n >= 19261225) return '3';
  if (n >= 19120730) return '2';
  if (n >= 18681023) return '1';
  return '0';
}

function ageOn(b: Day, t: Day): number {
  return t.y - b.y - (t.m * 100 + t.d < b.m * 100 + b.d ? 1 : 0);
}

// ---------------------------------------------------------------------------------------------------------------
// Keys

/** DER SubjectPublicKeyInfo of an RSA key given as modulus/exponent bytes, or exported from a KeyObject. */
export function rsaSpki(key: RsaPublicKey): Uint8Array {
  if (key instanceof KeyObject) {
    const pub = key.type === 'private' ? createPublicKey(key) : key;
    if (pub.asymmetricKeyType !== 'rsa') throw new RangeError(`subject key is ${pub.asymmetricKeyType}, not RSA`);
    const spki = new Uint8Array(pub.export({ type: 'spki', format: 'der' }));
    rsaNumbers(spki); // checks the size
    return spki;
  }
  const { modulus, exponent } = key;
  if (!(modulus instanceof Uint8Array) || !(exponent instanceof Uint8Array)) throw new TypeError('modulus and exponent must be Uint8Array');
  const n = derUint(modulus);
  const e = derUint(exponent);
  const bits = bitLength(modulus);
  if (bits !== 2048) throw new RangeError(`RSA modulus of ${bits} bits; JPKI keys are 2048 bits`);
  const ev = exponent.subarray(exponent.findIndex((b) => b !== 0));
  if (!ev.length || !(ev[ev.length - 1] & 1) || (ev.length === 1 && ev[0] < 3)) throw new RangeError(`RSA exponent ${hex(exponent)} is not an odd number ≥ 3`);
  return seq(seq(encodeOid(OID.rsaEncryption), Uint8Array.of(0x05, 0x00)), tlv(0x03, Uint8Array.of(0), seq(n, e)));
}

function bitLength(v: Uint8Array): number {
  const i = v.findIndex((b) => b !== 0);
  if (i < 0) return 0;
  return (v.length - i - 1) * 8 + (32 - Math.clz32(v[i]));
}

/** Modulus and exponent (unsigned, minimal) of an RSA SubjectPublicKeyInfo. */
export function rsaNumbers(spki: Uint8Array): { modulus: Uint8Array; exponent: Uint8Array } {
  const [alg, bits] = parseTlvs(readValue(spki, 0x30));
  if (!alg || !bits || bits.tag !== 0x03) throw new RangeError('not a SubjectPublicKeyInfo');
  const [n, e] = parseTlvs(readValue(bits.value.subarray(1), 0x30));
  const strip = (v: Uint8Array) => (v.length > 1 && v[0] === 0 ? v.subarray(1) : v);
  const modulus = strip(n.value).slice();
  if (bitLength(modulus) !== 2048) throw new RangeError(`RSA modulus of ${bitLength(modulus)} bits; JPKI keys are 2048 bits`);
  return { modulus, exponent: strip(e.value).slice() };
}

/** The BIT STRING contents of a SubjectPublicKeyInfo, hashed with SHA-1 for the key identifier (RFC 5280 §4.2.1.2 (1)). */
function keyId(spki: Uint8Array): Uint8Array {
  const [, bits] = parseTlvs(readValue(spki, 0x30));
  return new Uint8Array(createHash('sha1').update(bits.value.subarray(1)).digest());
}

// ---------------------------------------------------------------------------------------------------------------
// CA

function serialHex(serial: bigint | number | string | undefined): string {
  if (serial === undefined) {
    const r = randomBytes(8);
    r[0] = (r[0] & 0x7f) | 0x01; // positive, eight bytes
    return hex(r);
  }
  const v = typeof serial === 'string' ? BigInt('0x' + serial.replace(/^0x/i, '')) : BigInt(serial);
  if (v <= 0n) throw new RangeError(`serial ${serial} is not positive`);
  const h = v.toString(16).toUpperCase();
  return h.length % 2 ? '0' + h : h;
}

async function makeCa(kind: CertKind, notBefore: Date): Promise<CaAuthority> {
  const keys = (await webcrypto.subtle.generateKey(
    { ...RSA_ALG, modulusLength: 2048, publicExponent: Uint8Array.of(1, 0, 1) },
    true,
    ['sign', 'verify'],
  )) as CryptoKeyPair;
  const spki = new Uint8Array(await webcrypto.subtle.exportKey('spki', keys.publicKey));
  const first = jstDay(notBefore);
  const last = jstDay(new Date(Date.UTC(first.y + 10, first.m - 1, first.d - 1, 12)));
  const name = dn(caDn(kind));
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: hex(randomBytes(4).map((b, i) => (i === 0 ? (b & 0x7f) | 0x01 : b))),
    subject: new x509.Name(plain(name)),
    issuer: new x509.Name(plain(name)),
    notBefore: startOfJstDay(first),
    notAfter: endOfJstDay(last),
    publicKey: plain(spki),
    signingKey: keys.privateKey,
    signingAlgorithm: RSA_ALG,
    extensions: [
      extension(OID.keyUsage, true, tlv(0x03, Uint8Array.of(0x01, 0x06))), // keyCertSign, cRLSign
      extension(OID.basicConstraints, true, seq(Uint8Array.of(0x01, 0x01, 0xff))),
      extension(OID.ski, false, octets(keyId(spki))),
      extension(OID.san, false, seq(dirName(dn([['C', 'JP'], ['O', SAN_ORG], ['OU', SAN_OU_KIND[kind]], ['OU', SAN_OU_NOT_JLIS]])))),
      extension(OID.crlDp, false, seq(seq(tlv(0xa0, tlv(0xa0, dirName(name)))))),
    ],
  });
  return { kind, certificate: new Uint8Array(cert.rawData), cert, privateKey: keys.privateKey };
}

/** A fresh sign CA and auth CA (RSA-2048, sha256WithRSAEncryption, 10 years). */
export async function createTestCa(opts: TestCaOptions = {}): Promise<TestCa> {
  const at = opts.notBefore ?? new Date();
  return { sign: await makeCa('sign', at), auth: await makeCa('auth', at) };
}

// ---------------------------------------------------------------------------------------------------------------
// End-entity certificates

const SEX: Record<Holder['sex'], string> = { male: '1', female: '2', unknown: '3', '1': '1', '2': '2', '3': '3' };

function substitution(map: string | undefined, text: string, what: string): string {
  const n = [...text].length;
  const v = map ?? '0'.repeat(n);
  if (!/^[01]*$/.test(v) || v.length !== n) throw new RangeError(`${what} substitution map "${v}" must be ${n} digits 0/1, one per character`);
  return v;
}

/** otherName [0] { type-id, [0] EXPLICIT UTF8String } (reference §3.2). */
const otherName = (oid: string, value: string) => tlv(0xa0, encodeOid(oid), tlv(0xa0, utf8(value)));

function personalData(h: Holder): Uint8Array {
  if (!h.name) throw new RangeError('holder name is empty');
  const chars = [...h.address].length;
  if (!chars || chars > 200) throw new RangeError(`address of ${chars} characters (must be 1..200)`);
  const sex = SEX[h.sex];
  if (!sex) throw new RangeError(`sex "${h.sex}" is not male, female, unknown (or 1, 2, 3)`);
  // Real-card order: .1, .4, .3, .5, .2, .6 (reference §3.2, HNK).
  return seq(
    otherName(JPKI_ATTR.name, h.name),
    otherName(JPKI_ATTR.birth, eraDigit(h.birth) + h.birth),
    otherName(JPKI_ATTR.sex, sex),
    otherName(JPKI_ATTR.address, h.address),
    otherName(JPKI_ATTR.nameSubstitution, substitution(h.nameSubstitution, h.name, 'name')),
    otherName(JPKI_ATTR.addressSubstitution, substitution(h.addressSubstitution, h.address, 'address')),
  );
}

function randomId(): string {
  const alphabet = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ';
  return [...randomBytes(23)].map((b) => alphabet[b % 36]).join('');
}

/**
 * An EE certificate in the JPKI shape, signed by `ca[kind]`. Sign: subject C/L/L/CN, SAN with the holder's 4 info,
 * key usage digitalSignature+nonRepudiation; auth: subject C/CN, no personal data, digitalSignature only. Returns DER
 * (at most 2048 bytes, the applet's certificate EF size).
 */
export async function issueCertificate(ca: TestCa, kind: CertKind, subjectPublicKey: RsaPublicKey, holder: Holder, opts: IssueOptions): Promise<Uint8Array> {
  if (kind !== 'sign' && kind !== 'auth') throw new RangeError(`certificate kind "${kind}" is not sign or auth`);
  if (opts.profile !== 'card' && opts.profile !== 'phone') throw new RangeError(`profile "${opts.profile}" is not card or phone`);
  const authority = ca[kind];
  const spki = rsaSpki(subjectPublicKey);
  const notBefore = opts.notBefore ?? new Date(Math.floor(Date.now() / 1000) * 1000);
  const birth = parseBirth(holder.birth);
  if (kind === 'sign' && ageOn(birth, jstDay(notBefore)) < 15) throw new RangeError('sign certificates are not issued to holders under 15 (JPKI rule)');
  const notAfter = opts.notAfter ?? fifthBirthdayAfter(holder.birth, notBefore);
  if (notAfter <= notBefore) throw new RangeError('notAfter is not after notBefore');
  const id = opts.subjectId ?? randomId();
  const prefecture = holder.prefecture ?? 'Tokyo-to';
  const city = holder.city ?? 'Chiyoda-ku';
  const subject: Rdn[] = kind === 'sign' ? [['C', 'JP'], ['L', prefecture], ['L', city], ['CN', id]] : [['C', 'JP'], ['CN', id]];
  const cdp: Rdn[] =
    kind === 'sign'
      ? [['C', 'JP'], ['O', ORG], ['OU', OU_KIND.sign], ['OU', 'CRL Distribution Points'], ['OU', prefecture], ['CN', city]]
      : [['C', 'JP'], ['O', ORG], ['OU', OU_KIND.auth], ['OU', 'CRL Distribution Points']];
  const policies = [TEST_POLICY[kind], ...(opts.profile === 'phone' ? [PHONE_POLICY] : [])];
  const caSpki = new Uint8Array(authority.cert.publicKey.rawData);
  const extensions = [
    extension(OID.keyUsage, true, tlv(0x03, kind === 'sign' ? Uint8Array.of(0x06, 0xc0) : Uint8Array.of(0x07, 0x80))),
    extension(OID.policies, true, seq(...policies.map((p) => seq(encodeOid(p))))),
    ...(kind === 'sign' ? [extension(OID.san, false, personalData(holder))] : []),
    extension(OID.ian, false, seq(dirName(dn([['C', 'JP'], ['O', SAN_ORG]])))),
    extension(OID.crlDp, false, seq(seq(tlv(0xa0, tlv(0xa0, dirName(dn(cdp))))))),
    extension(OID.aki, false, seq(tlv(0x80, keyId(caSpki)))),
  ];
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: serialHex(opts.serial),
    subject: new x509.Name(plain(dn(subject))),
    issuer: authority.cert.subjectName,
    notBefore,
    notAfter,
    publicKey: plain(spki),
    signingKey: authority.privateKey,
    signingAlgorithm: RSA_ALG,
    extensions,
  });
  const der = new Uint8Array(cert.rawData);
  if (der.length > MAX_CERT_SIZE) throw new RangeError(`the ${kind} certificate is ${der.length} bytes; the card's EF holds ${MAX_CERT_SIZE}`);
  return der;
}

// ---------------------------------------------------------------------------------------------------------------
// Reading certificates back (@peculiar/x509 refuses to parse the JPKI otherNames, so extensions are read here)

function readValue(buf: Uint8Array, tag: number): Uint8Array {
  const h = readHeader(buf, 0);
  if (h.tag !== tag) throw new RangeError(`tag ${h.tag.toString(16)} where ${tag.toString(16)} was expected`);
  return buf.subarray(h.start, h.end);
}

export function decodeOid(body: Uint8Array): string {
  const out: number[] = [];
  let v = 0;
  for (const b of body) {
    v = v * 128 + (b & 0x7f);
    if (b & 0x80) continue;
    if (!out.length) out.push(v < 80 ? Math.floor(v / 40) : 2, v < 80 ? v % 40 : v - 80);
    else out.push(v);
    v = 0;
  }
  return out.join('.');
}

export interface RawExtension {
  oid: string;
  critical: boolean;
  /** The extnValue contents (the extension's own DER). */
  value: Uint8Array;
}

/** The extensions of a DER certificate, in order. */
export function certificateExtensions(der: Uint8Array): RawExtension[] {
  const [tbs] = parseTlvs(readValue(der, 0x30));
  const box = parseTlvs(tbs.value).find((t) => t.tag === 0xa3);
  if (!box) return [];
  return parseTlvs(readValue(box.value, 0x30)).map((e) => {
    const parts = parseTlvs(e.value);
    const critical = parts.length === 3 && parts[1].tag === 0x01 && parts[1].value[0] !== 0;
    return { oid: decodeOid(parts[0].value), critical, value: parts[parts.length - 1].value.slice() };
  });
}

export interface JpkiAttributes {
  name: string;
  nameSubstitution: string;
  /** EYYYYMMDD as stored. */
  birth: string;
  sex: string;
  address: string;
  addressSubstitution: string;
}

/** The 4 info of a JPKI sign certificate (SAN otherNames); undefined when the certificate has none (auth). */
export function readJpkiAttributes(der: Uint8Array): JpkiAttributes | undefined {
  const san = certificateExtensions(der).find((e) => e.oid === OID.san);
  if (!san) return undefined;
  const found = new Map<string, string>();
  for (const gn of parseTlvs(readValue(san.value, 0x30))) {
    if (gn.tag !== 0xa0) continue;
    const [type, wrapped] = parseTlvs(gn.value);
    const inner = parseTlvs(wrapped.value)[0];
    found.set(decodeOid(type.value), new TextDecoder().decode(inner.value));
  }
  const get = (oid: string) => found.get(oid);
  const name = get(JPKI_ATTR.name);
  if (name === undefined) return undefined;
  return {
    name,
    nameSubstitution: get(JPKI_ATTR.nameSubstitution) ?? '',
    birth: get(JPKI_ATTR.birth) ?? '',
    sex: get(JPKI_ATTR.sex) ?? '',
    address: get(JPKI_ATTR.address) ?? '',
    addressSubstitution: get(JPKI_ATTR.addressSubstitution) ?? '',
  };
}

// ---------------------------------------------------------------------------------------------------------------
// Keeping a CA in a directory

const FORMAT = 'jpki-se-test-ca/1';
const FILES = {
  sign: { cert: 'sign-ca.pem', key: 'sign-ca.key.pem' },
  auth: { cert: 'auth-ca.pem', key: 'auth-ca.key.pem' },
} as const;

interface CaIndex {
  format: string;
  warning: string;
  sign: { cert: string; key: string; subject: string; serial: string; notAfter: string };
  auth: { cert: string; key: string; subject: string; serial: string; notAfter: string };
}

/** Writes test-ca.json, the two CA certificates (PEM) and their PKCS#8 keys (PEM, mode 0600) into `dir`. */
export function saveTestCa(ca: TestCa, dir: string): void {
  mkdirSync(dir, { recursive: true });
  const entry = (a: CaAuthority) => {
    writeFileSync(join(dir, FILES[a.kind].cert), x509.PemConverter.encode(plain(a.certificate), 'CERTIFICATE'));
    const pem = KeyObject.from(a.privateKey).export({ type: 'pkcs8', format: 'pem' });
    writeFileSync(join(dir, FILES[a.kind].key), pem, { mode: 0o600 });
    return { ...FILES[a.kind], subject: a.cert.subject, serial: a.cert.serialNumber, notAfter: a.cert.notAfter.toISOString() };
  };
  const index: CaIndex = {
    format: FORMAT,
    warning: 'TEST CA of the jpki-se emulator: not J-LIS, not for production',
    sign: entry(ca.sign),
    auth: entry(ca.auth),
  };
  writeFileSync(join(dir, 'test-ca.json'), JSON.stringify(index, null, 2) + '\n');
}

/** Reads what saveTestCa wrote; checks the format and that each key belongs to its certificate. */
export async function loadTestCa(dir: string): Promise<TestCa> {
  const path = join(dir, 'test-ca.json');
  const index = JSON.parse(readFileSync(path, 'utf8')) as CaIndex;
  if (index.format !== FORMAT) throw new Error(`${path}: format "${index.format}" is not ${FORMAT}`);
  const load = async (kind: CertKind): Promise<CaAuthority> => {
    const files = index[kind];
    if (!files || typeof files.cert !== 'string' || typeof files.key !== 'string') throw new Error(`${path}: no ${kind} entry`);
    const cert = new x509.X509Certificate(readFileSync(join(dir, files.cert), 'utf8'));
    const keyPem = readFileSync(join(dir, files.key), 'utf8');
    const spki = new Uint8Array(createPublicKey(createPrivateKey(keyPem)).export({ type: 'spki', format: 'der' }));
    if (!equal(spki, new Uint8Array(cert.publicKey.rawData))) throw new Error(`${files.key} does not belong to ${files.cert}`);
    const pkcs8 = createPrivateKey(keyPem).export({ type: 'pkcs8', format: 'der' });
    const privateKey = await webcrypto.subtle.importKey('pkcs8', pkcs8, RSA_ALG, true, ['sign']);
    const certificate = new Uint8Array(cert.rawData);
    const ou = cert.subjectName.getField('OU');
    if (!ou.includes(OU_KIND[kind])) throw new Error(`${files.cert} is not a ${kind} CA (OU ${ou.join(', ')})`);
    return { kind, certificate, cert, privateKey };
  };
  return { sign: await load('sign'), auth: await load('auth') };
}
