// Cryptographic primitives behind javacard.security and javacardx.crypto, as pure functions over Uint8Array.
// node:crypto does the heavy lifting (RSA private/public operations, AES, 3DES, hashes, HMAC, EC key agreement);
// encodings the API needs but node does not expose (PKCS#1 blocks over a precomputed hash, PSS, OAEP over a raw RSA
// operation, ECDSA over a precomputed hash, arbitrary prime curves) are written here from the standards cited.
import {
  createCipheriv,
  createDecipheriv,
  createECDH,
  createHash,
  createHmac,
  createPrivateKey,
  createPublicKey,
  constants,
  generateKeyPairSync,
  privateDecrypt,
  publicEncrypt,
  timingSafeEqual,
} from 'node:crypto';
import type { KeyObject } from 'node:crypto';
import { aesCmac } from '../../aes.ts';

/** A failed cryptographic precondition; the API layer maps `reason` to a CryptoException reason code. */
export class CryptoFailure extends Error {
  readonly reason: 'ILLEGAL_VALUE' | 'ILLEGAL_USE';
  constructor(reason: 'ILLEGAL_VALUE' | 'ILLEGAL_USE', message: string) {
    super(message);
    this.name = 'CryptoFailure';
    this.reason = reason;
  }
}

export type RandomSource = (n: number) => Uint8Array;

// ---------------------------------------------------------------------------------------------------------------
// Hashes

export type HashName = 'MD5' | 'RIPEMD-160' | 'SHA-1' | 'SHA-224' | 'SHA-256' | 'SHA-384' | 'SHA-512' | 'SHA3-224' | 'SHA3-256' | 'SHA3-384' | 'SHA3-512';

export const HASHES: Record<HashName, { node: string; length: number; block: number }> = {
  MD5: { node: 'md5', length: 16, block: 64 },
  'RIPEMD-160': { node: 'ripemd160', length: 20, block: 64 },
  'SHA-1': { node: 'sha1', length: 20, block: 64 },
  'SHA-224': { node: 'sha224', length: 28, block: 64 },
  'SHA-256': { node: 'sha256', length: 32, block: 64 },
  'SHA-384': { node: 'sha384', length: 48, block: 128 },
  'SHA-512': { node: 'sha512', length: 64, block: 128 },
  'SHA3-224': { node: 'sha3-224', length: 28, block: 144 },
  'SHA3-256': { node: 'sha3-256', length: 32, block: 136 },
  'SHA3-384': { node: 'sha3-384', length: 48, block: 104 },
  'SHA3-512': { node: 'sha3-512', length: 64, block: 72 },
};

function view(b: Buffer): Uint8Array {
  return new Uint8Array(b.buffer, b.byteOffset, b.length);
}

export function digest(h: HashName, ...parts: Uint8Array[]): Uint8Array {
  const ctx = createHash(HASHES[h].node);
  for (const p of parts) ctx.update(p);
  return view(ctx.digest());
}

export function hmac(h: HashName, key: Uint8Array, ...parts: Uint8Array[]): Uint8Array {
  const ctx = createHmac(HASHES[h].node, key);
  for (const p of parts) ctx.update(p);
  return view(ctx.digest());
}

/** DER DigestInfo prefixes (RFC 8017 §9.2 note 1; RIPEMD-160 OID 1.3.36.3.2.1, SHA-3 OIDs 2.16.840.1.101.3.4.2.7–10). */
const DIGEST_INFO: Partial<Record<HashName, string>> = {
  MD5: '3020300c06082a864886f70d020505000410',
  'RIPEMD-160': '3021300906052b2403020105000414',
  'SHA-1': '3021300906052b0e03021a05000414',
  'SHA-224': '302d300d06096086480165030402040500041c',
  'SHA-256': '3031300d060960864801650304020105000420',
  'SHA-384': '3041300d060960864801650304020205000430',
  'SHA-512': '3051300d060960864801650304020305000440',
  'SHA3-224': '302d300d06096086480165030402070500041c',
  'SHA3-256': '3031300d060960864801650304020805000420',
  'SHA3-384': '3041300d060960864801650304020905000430',
  'SHA3-512': '3051300d060960864801650304020a05000440',
};

export function digestInfo(h: HashName, hash: Uint8Array): Uint8Array {
  const prefix = Buffer.from(DIGEST_INFO[h]!, 'hex');
  const out = new Uint8Array(prefix.length + hash.length);
  out.set(prefix);
  out.set(hash, prefix.length);
  return out;
}

/** Constant-time comparison (MACs, decrypted padding checks); different lengths are simply unequal. */
export function constantTimeEqual(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && timingSafeEqual(a, b);
}

// ---------------------------------------------------------------------------------------------------------------
// Big integers (big-endian unsigned byte strings, as the Java Card key interfaces use them)

export function toBig(b: Uint8Array): bigint {
  if (b.length === 0) return 0n;
  return BigInt('0x' + Buffer.from(b.buffer, b.byteOffset, b.length).toString('hex'));
}

/** I2OSP (RFC 8017 §4.1): fixed-length big-endian; throws when the value does not fit. */
export function fromBig(n: bigint, len: number): Uint8Array {
  let s = n.toString(16);
  if (s.length % 2) s = '0' + s;
  const raw = Buffer.from(s, 'hex');
  if (n === 0n) return new Uint8Array(len);
  if (raw.length > len) throw new RangeError(`integer of ${raw.length} bytes does not fit ${len}`);
  const out = new Uint8Array(len);
  out.set(raw, len - raw.length);
  return out;
}

/** Minimal big-endian form (no leading zero bytes). */
export function stripZeros(b: Uint8Array): Uint8Array {
  let i = 0;
  while (i < b.length && b[i] === 0) i++;
  return b.subarray(i);
}

function mod(a: bigint, m: bigint): bigint {
  const r = a % m;
  return r < 0n ? r + m : r;
}

export function modPow(base: bigint, exp: bigint, m: bigint): bigint {
  if (m === 1n) return 0n;
  let r = 1n;
  let b = mod(base, m);
  let e = exp;
  while (e > 0n) {
    if (e & 1n) r = (r * b) % m;
    b = (b * b) % m;
    e >>= 1n;
  }
  return r;
}

function egcd(a: bigint, b: bigint): [bigint, bigint, bigint] {
  let [r0, r1] = [a, b];
  let [s0, s1] = [1n, 0n];
  let [t0, t1] = [0n, 1n];
  while (r1 !== 0n) {
    const q = r0 / r1;
    [r0, r1] = [r1, r0 - q * r1];
    [s0, s1] = [s1, s0 - q * s1];
    [t0, t1] = [t1, t0 - q * t1];
  }
  return [r0, s0, t0];
}

/** Modular inverse, or undefined when gcd(a, m) ≠ 1. */
export function modInv(a: bigint, m: bigint): bigint | undefined {
  const [g, x] = egcd(mod(a, m), m);
  return g === 1n ? mod(x, m) : undefined;
}

function gcd(a: bigint, b: bigint): bigint {
  while (b) [a, b] = [b, a % b];
  return a < 0n ? -a : a;
}

function b64u(b: Uint8Array | bigint): string {
  const bytes = typeof b === 'bigint' ? fromBig(b, Math.max(1, Math.ceil(b.toString(16).length / 2))) : stripZeros(b);
  return Buffer.from(bytes.length ? bytes : Uint8Array.of(0)).toString('base64url');
}

// ---------------------------------------------------------------------------------------------------------------
// RSA (RFC 8017). Keys are prepared once (KeyObject or BigInt form) and then used for raw operations on k-byte blocks.

export interface RsaPublicComponents {
  n: Uint8Array;
  e: Uint8Array;
}
export interface RsaCrtComponents {
  p: Uint8Array;
  q: Uint8Array;
  dp: Uint8Array;
  dq: Uint8Array;
  /** q⁻¹ mod p (Java Card's PQ). */
  qinv: Uint8Array;
}
export interface RsaPlainPrivateComponents {
  n: Uint8Array;
  d: Uint8Array;
}

/** A prepared RSA key: modulus length k and the raw operation m ↦ m^x mod n on k-byte blocks. */
export interface RsaKey {
  readonly k: number;
  readonly bits: number;
  raw(m: Uint8Array): Uint8Array;
}

function checkBlock(k: number, n: bigint, m: Uint8Array): void {
  if (m.length !== k) throw new CryptoFailure('ILLEGAL_USE', `RSA input of ${m.length} bytes; the modulus has ${k}`);
  if (toBig(m) >= n) throw new CryptoFailure('ILLEGAL_USE', 'RSA input is not smaller than the modulus');
}

function bitLength(n: bigint): number {
  return n === 0n ? 0 : n.toString(2).length;
}

export function rsaPublicKey(c: RsaPublicComponents): RsaKey {
  const n = toBig(c.n);
  const e = toBig(c.e);
  if (n < 3n || e < 1n) throw new CryptoFailure('ILLEGAL_VALUE', 'RSA public key with zero modulus or exponent');
  const bits = bitLength(n);
  const k = Math.ceil(bits / 8);
  let key: KeyObject | undefined;
  // OpenSSL wants an odd modulus and exponent > 1 for its public path; anything else falls back to BigInt.
  if (n & 1n && e > 1n && e & 1n) {
    try {
      key = createPublicKey({ key: { kty: 'RSA', n: b64u(n), e: b64u(e) }, format: 'jwk' });
    } catch {
      key = undefined;
    }
  }
  return {
    k,
    bits,
    raw(m) {
      checkBlock(k, n, m);
      if (key) return view(publicEncrypt({ key, padding: constants.RSA_NO_PADDING }, m));
      return fromBig(modPow(toBig(m), e, n), k);
    },
  };
}

/** A private key from n and d only (Java Card TYPE_RSA_PRIVATE): square-and-multiply in BigInt. */
export function rsaPlainPrivateKey(c: RsaPlainPrivateComponents): RsaKey {
  const n = toBig(c.n);
  const d = toBig(c.d);
  if (n < 3n || d < 1n) throw new CryptoFailure('ILLEGAL_VALUE', 'RSA private key with zero modulus or exponent');
  const bits = bitLength(n);
  const k = Math.ceil(bits / 8);
  return {
    k,
    bits,
    raw(m) {
      checkBlock(k, n, m);
      return fromBig(modPow(toBig(m), d, n), k);
    },
  };
}

/** x ≡ a (mod m1), x ≡ b (mod m2) for moduli that need not be coprime; undefined when inconsistent. */
function crtCombine(a: bigint, m1: bigint, b: bigint, m2: bigint): { x: bigint; m: bigint } | undefined {
  const g = gcd(m1, m2);
  if ((b - a) % g !== 0n) return undefined;
  const m2g = m2 / g;
  const inv = modInv((m1 / g) % m2g, m2g);
  if (inv === undefined) return undefined;
  const t = mod(((b - a) / g) * inv, m2g);
  const m = m1 * m2g;
  return { x: mod(a + m1 * t, m), m };
}

/**
 * A CRT private key (Java Card TYPE_RSA_CRT_PRIVATE holds only P, Q, DP1, DQ1, PQ). OpenSSL needs n, e and d as well
 * (its fault check re-encrypts with e): n = pq, e is recovered from DP1/DQ1 modulo λ(n) (e·dp ≡ 1 mod p−1, e·dq ≡ 1
 * mod q−1), d = e⁻¹ mod λ(n). Exponents congruent mod λ(n) give the same results, so this is exact. Components that
 * do not form a key fall back to Garner's recombination in BigInt (garbage in, garbage out, as on a card).
 */
export function rsaCrtKey(c: RsaCrtComponents): RsaKey {
  const p = toBig(c.p);
  const q = toBig(c.q);
  const dp = toBig(c.dp);
  const dq = toBig(c.dq);
  const qinv = toBig(c.qinv);
  if (p < 2n || q < 2n) throw new CryptoFailure('ILLEGAL_VALUE', 'RSA CRT key with a zero prime');
  const n = p * q;
  const bits = bitLength(n);
  const k = Math.ceil(bits / 8);
  let key: KeyObject | undefined;
  const ep = modInv(dp, p - 1n);
  const eq = modInv(dq, q - 1n);
  const e = ep !== undefined && eq !== undefined ? crtCombine(ep, p - 1n, eq, q - 1n) : undefined;
  if (e && e.x > 1n) {
    const d = modInv(e.x, e.m);
    if (d !== undefined && mod(qinv * q, p) === 1n) {
      try {
        key = createPrivateKey({
          key: { kty: 'RSA', n: b64u(n), e: b64u(e.x), d: b64u(d), p: b64u(p), q: b64u(q), dp: b64u(dp), dq: b64u(dq), qi: b64u(qinv) },
          format: 'jwk',
        });
      } catch {
        key = undefined;
      }
    }
  }
  return {
    k,
    bits,
    raw(m) {
      checkBlock(k, n, m);
      if (key) {
        try {
          return view(privateDecrypt({ key, padding: constants.RSA_NO_PADDING }, m));
        } catch {
          // fall through to the BigInt path
        }
      }
      // Garner (RFC 8017 §5.1.2 step 2.b)
      const x = toBig(m);
      const m1 = modPow(x, dp, p);
      const m2 = modPow(x, dq, q);
      const h = mod((m1 - m2) * qinv, p);
      return fromBig(mod(m2 + q * h, n), k);
    },
  };
}

export interface RsaGenerated extends RsaCrtComponents {
  n: Uint8Array;
  e: Uint8Array;
  d: Uint8Array;
}

/** RSA key generation by OpenSSL; components are returned at their natural lengths (modulus k bytes, primes k/2). */
export function rsaGenerate(bits: number, e: number): RsaGenerated {
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: bits, publicExponent: e });
  const j = privateKey.export({ format: 'jwk' });
  const b = (s: string | undefined) => new Uint8Array(Buffer.from(s ?? '', 'base64url'));
  const half = Math.ceil(bits / 16);
  const pad = (x: Uint8Array, len: number) => (x.length >= len ? x : fromBig(toBig(x), len));
  return {
    n: pad(b(j.n), Math.ceil(bits / 8)),
    e: b(j.e),
    d: pad(b(j.d), Math.ceil(bits / 8)),
    p: pad(b(j.p), half),
    q: pad(b(j.q), half),
    dp: pad(b(j.dp), half),
    dq: pad(b(j.dq), half),
    qinv: pad(b(j.qi), half),
  };
}

/** EMSA-PKCS1-v1_5 block (RFC 8017 §9.2 steps 3–5): 00 01 FF…FF 00 T, with T the DigestInfo (or raw data). */
export function pkcs1SignatureBlock(k: number, t: Uint8Array): Uint8Array {
  if (t.length + 11 > k) throw new CryptoFailure('ILLEGAL_USE', `${t.length} bytes do not fit a PKCS#1 block of ${k}`);
  const em = new Uint8Array(k).fill(0xff);
  em[0] = 0;
  em[1] = 1;
  em[k - t.length - 1] = 0;
  em.set(t, k - t.length);
  return em;
}

/** EME-PKCS1-v1_5 encryption block (RFC 8017 §7.2.1): 00 02 PS(non-zero random) 00 M. */
export function pkcs1EncryptionBlock(k: number, m: Uint8Array, random: RandomSource): Uint8Array {
  if (m.length + 11 > k) throw new CryptoFailure('ILLEGAL_USE', `message of ${m.length} bytes too long for PKCS#1 with k=${k}`);
  const em = new Uint8Array(k);
  em[1] = 2;
  const ps = k - m.length - 3;
  let filled = 0;
  for (let round = 0; filled < ps; round++) {
    if (round > 64) throw new Error('the random source gives no non-zero padding bytes');
    for (const b of random(ps - filled)) if (b !== 0 && filled < ps) em[2 + filled++] = b;
  }
  em.set(m, k - m.length);
  return em;
}

/** Parses a type-1 or type-2 PKCS#1 block; undefined when malformed. Scans every byte (no early exit on the data). */
export function pkcs1Unpad(em: Uint8Array, type: 1 | 2): Uint8Array | undefined {
  if (em.length < 11 || em[0] !== 0 || em[1] !== type) return undefined;
  let sep = -1;
  let bad = false;
  for (let i = 2; i < em.length; i++) {
    if (sep < 0 && em[i] === 0) sep = i;
    else if (sep < 0 && type === 1 && em[i] !== 0xff) bad = true;
  }
  if (bad || sep < 10) return undefined;
  return em.slice(sep + 1);
}

/** MGF1 (RFC 8017 §B.2.1). */
export function mgf1(h: HashName, seed: Uint8Array, len: number): Uint8Array {
  const out = new Uint8Array(len);
  const hl = HASHES[h].length;
  const c = new Uint8Array(4);
  for (let i = 0, off = 0; off < len; i++, off += hl) {
    c[0] = i >>> 24;
    c[1] = (i >>> 16) & 0xff;
    c[2] = (i >>> 8) & 0xff;
    c[3] = i & 0xff;
    const block = digest(h, seed, c);
    out.set(block.subarray(0, Math.min(hl, len - off)), off);
  }
  return out;
}

/** EMSA-PSS-ENCODE (RFC 8017 §9.1.1) over a message digest `mHash`, emBits = modBits − 1. */
export function pssEncode(h: HashName, mHash: Uint8Array, modBits: number, salt: Uint8Array): Uint8Array {
  const emBits = modBits - 1;
  const emLen = Math.ceil(emBits / 8);
  const hl = HASHES[h].length;
  if (emLen < hl + salt.length + 2) throw new CryptoFailure('ILLEGAL_USE', 'PSS encoding does not fit the modulus');
  const mPrime = new Uint8Array(8 + hl + salt.length);
  mPrime.set(mHash, 8);
  mPrime.set(salt, 8 + hl);
  const H = digest(h, mPrime);
  const db = new Uint8Array(emLen - hl - 1);
  db[db.length - salt.length - 1] = 1;
  db.set(salt, db.length - salt.length);
  const mask = mgf1(h, H, db.length);
  for (let i = 0; i < db.length; i++) db[i] ^= mask[i];
  db[0] &= 0xff >> (8 * emLen - emBits);
  const em = new Uint8Array(emLen);
  em.set(db);
  em.set(H, db.length);
  em[emLen - 1] = 0xbc;
  return em;
}

/** EMSA-PSS-VERIFY (RFC 8017 §9.1.2) with salt length `sLen`. `em` is the k-byte RSA output. */
export function pssVerify(h: HashName, mHash: Uint8Array, block: Uint8Array, modBits: number, sLen: number): boolean {
  const emBits = modBits - 1;
  const emLen = Math.ceil(emBits / 8);
  const em = block.subarray(block.length - emLen);
  if (block.length > emLen && block[0] !== 0) return false;
  const hl = HASHES[h].length;
  if (emLen < hl + sLen + 2 || em[emLen - 1] !== 0xbc) return false;
  const dbLen = emLen - hl - 1;
  const masked = em.subarray(0, dbLen);
  const H = em.subarray(dbLen, dbLen + hl);
  const topMask = 0xff >> (8 * emLen - emBits);
  if ((masked[0] & ~topMask) !== 0) return false;
  const mask = mgf1(h, H, dbLen);
  const db = new Uint8Array(dbLen);
  for (let i = 0; i < dbLen; i++) db[i] = masked[i] ^ mask[i];
  db[0] &= topMask;
  for (let i = 0; i < dbLen - sLen - 1; i++) if (db[i] !== 0) return false;
  if (db[dbLen - sLen - 1] !== 1) return false;
  const salt = db.subarray(dbLen - sLen);
  const mPrime = new Uint8Array(8 + hl + sLen);
  mPrime.set(mHash, 8);
  mPrime.set(salt, 8 + hl);
  return constantTimeEqual(digest(h, mPrime), H);
}

/** EME-OAEP encoding (RFC 8017 §7.1.1) with an empty label. */
export function oaepEncode(h: HashName, k: number, m: Uint8Array, random: RandomSource): Uint8Array {
  const hl = HASHES[h].length;
  if (m.length > k - 2 * hl - 2) throw new CryptoFailure('ILLEGAL_USE', `message of ${m.length} bytes too long for OAEP with k=${k}`);
  const db = new Uint8Array(k - hl - 1);
  db.set(digest(h), 0);
  db[db.length - m.length - 1] = 1;
  db.set(m, db.length - m.length);
  const seed = random(hl);
  const dbMask = mgf1(h, seed, db.length);
  for (let i = 0; i < db.length; i++) db[i] ^= dbMask[i];
  const seedMask = mgf1(h, db, hl);
  const em = new Uint8Array(k);
  for (let i = 0; i < hl; i++) em[1 + i] = seed[i] ^ seedMask[i];
  em.set(db, 1 + hl);
  return em;
}

/** EME-OAEP decoding; undefined on any format error (one answer for all, RFC 8017 §7.1.2 note). */
export function oaepDecode(h: HashName, em: Uint8Array): Uint8Array | undefined {
  const hl = HASHES[h].length;
  const k = em.length;
  if (k < 2 * hl + 2) return undefined;
  const maskedSeed = em.subarray(1, 1 + hl);
  const maskedDb = em.subarray(1 + hl);
  const seedMask = mgf1(h, maskedDb, hl);
  const seed = new Uint8Array(hl);
  for (let i = 0; i < hl; i++) seed[i] = maskedSeed[i] ^ seedMask[i];
  const dbMask = mgf1(h, seed, maskedDb.length);
  const db = new Uint8Array(maskedDb.length);
  for (let i = 0; i < db.length; i++) db[i] = maskedDb[i] ^ dbMask[i];
  let bad = em[0] !== 0 || !constantTimeEqual(db.subarray(0, hl), digest(h));
  let one = -1;
  for (let i = hl; i < db.length; i++) {
    if (one < 0 && db[i] === 1) one = i;
    else if (one < 0 && db[i] !== 0) bad = true;
  }
  if (bad || one < 0) return undefined;
  return db.slice(one + 1);
}

// ---------------------------------------------------------------------------------------------------------------
// Elliptic curves over prime fields (SEC 1). Named curves node knows are fast; any other Fp curve works in BigInt.

export interface Curve {
  /** OpenSSL name when this is a named curve node supports, for fast ECDH and key generation. */
  readonly name?: string;
  readonly p: bigint;
  readonly a: bigint;
  readonly b: bigint;
  readonly gx: bigint;
  readonly gy: bigint;
  readonly n: bigint;
  readonly h: bigint;
  /** Field element length in bytes. */
  readonly size: number;
}

export interface CurveBytes {
  field: Uint8Array;
  a: Uint8Array;
  b: Uint8Array;
  /** Uncompressed base point 04 || x || y. */
  g: Uint8Array;
  r: Uint8Array;
  k: number;
}

/** Default domain parameters by key size: the NIST prime curves (FIPS 186-4 D.1.2). */
const NAMED_BY_SIZE: Record<number, string> = { 192: 'prime192v1', 224: 'secp224r1', 256: 'prime256v1', 384: 'secp384r1', 521: 'secp521r1' };
const curveCache = new Map<string, Curve>();

/** Minimal DER reader for the explicit ECParameters OpenSSL emits (RFC 3279 §2.3.5 / SEC 1 C.2). */
function derChildren(b: Uint8Array, off: number, end: number): { tag: number; start: number; end: number }[] {
  const out: { tag: number; start: number; end: number }[] = [];
  while (off < end) {
    const tag = b[off++];
    let len = b[off++];
    if (len & 0x80) {
      const n = len & 0x7f;
      len = 0;
      for (let i = 0; i < n; i++) len = len * 256 + b[off++];
    }
    out.push({ tag, start: off, end: off + len });
    off += len;
  }
  return out;
}

/**
 * The domain parameters of a named curve, read from a key OpenSSL generates with explicit parameters (so the
 * constants come from OpenSSL, not from a table typed in here). Cached per curve.
 */
export function namedCurve(name: string): Curve {
  const hit = curveCache.get(name);
  if (hit) return hit;
  const { publicKey } = generateKeyPairSync('ec', { namedCurve: name, paramEncoding: 'explicit' });
  const der = new Uint8Array(publicKey.export({ format: 'der', type: 'spki' }));
  const spki = derChildren(der, 0, der.length)[0];
  const algId = derChildren(der, spki.start, spki.end)[0];
  const params = derChildren(der, algId.start, algId.end)[1];
  const [, fieldId, curveSeq, base, order, cofactor] = derChildren(der, params.start, params.end);
  const prime = derChildren(der, fieldId.start, fieldId.end)[1];
  const [aEl, bEl] = derChildren(der, curveSeq.start, curveSeq.end);
  const big = (el: { start: number; end: number }) => toBig(der.subarray(el.start, el.end));
  const p = big(prime);
  const size = Math.ceil(bitLength(p) / 8);
  const g = der.subarray(base.start, base.end);
  const c: Curve = {
    name,
    p,
    a: big(aEl),
    b: big(bEl),
    gx: toBig(g.subarray(1, 1 + size)),
    gy: toBig(g.subarray(1 + size)),
    n: big(order),
    h: cofactor ? big(cofactor) : 1n,
    size,
  };
  curveCache.set(name, c);
  return c;
}

export function defaultCurve(bits: number): Curve | undefined {
  const name = NAMED_BY_SIZE[bits];
  return name ? namedCurve(name) : undefined;
}

export function curveToBytes(c: Curve): CurveBytes {
  const g = new Uint8Array(1 + 2 * c.size);
  g[0] = 4;
  g.set(fromBig(c.gx, c.size), 1);
  g.set(fromBig(c.gy, c.size), 1 + c.size);
  return {
    field: fromBig(c.p, c.size),
    a: fromBig(c.a, c.size),
    b: fromBig(c.b, c.size),
    g,
    r: fromBig(c.n, Math.ceil(bitLength(c.n) / 8)),
    k: Number(c.h),
  };
}

/** A curve from Java Card domain parameters; it keeps the OpenSSL name when the parameters equal a named curve's. */
export function curveFromBytes(d: CurveBytes): Curve {
  const p = toBig(d.field);
  const size = Math.ceil(bitLength(p) / 8);
  const g = decodePoint({ size } as Curve, d.g);
  if (!g) throw new CryptoFailure('ILLEGAL_VALUE', 'EC base point G is not an uncompressed point of the field size');
  const c: Curve = { p, a: toBig(d.a), b: toBig(d.b), gx: g.x, gy: g.y, n: toBig(d.r), h: BigInt(d.k), size };
  if (c.p < 3n || c.n < 2n) throw new CryptoFailure('ILLEGAL_VALUE', 'EC domain parameters with zero field or order');
  for (const name of Object.values(NAMED_BY_SIZE)) {
    const nc = namedCurve(name);
    if (nc.p === c.p && nc.a === mod(c.a, c.p) && nc.b === mod(c.b, c.p) && nc.gx === c.gx && nc.gy === c.gy && nc.n === c.n)
      return nc;
  }
  return c;
}

interface Affine {
  x: bigint;
  y: bigint;
}

/** Decodes an uncompressed point 04 || X || Y (SEC 1 §2.3.4); undefined when malformed. */
export function decodePoint(c: Curve, w: Uint8Array): Affine | undefined {
  if (w.length !== 1 + 2 * c.size || w[0] !== 4) return undefined;
  return { x: toBig(w.subarray(1, 1 + c.size)), y: toBig(w.subarray(1 + c.size)) };
}

export function encodePoint(c: Curve, pt: Affine): Uint8Array {
  const out = new Uint8Array(1 + 2 * c.size);
  out[0] = 4;
  out.set(fromBig(pt.x, c.size), 1);
  out.set(fromBig(pt.y, c.size), 1 + c.size);
  return out;
}

export function onCurve(c: Curve, pt: Affine): boolean {
  const { p } = c;
  if (pt.x < 0n || pt.x >= p || pt.y < 0n || pt.y >= p) return false;
  return mod(pt.y * pt.y - (pt.x * pt.x * pt.x + c.a * pt.x + c.b), p) === 0n;
}

// Jacobian coordinates (X, Y, Z) ↦ (X/Z², Y/Z³); Z = 0 is the point at infinity.
type Jac = [bigint, bigint, bigint];

function jDouble(c: Curve, [X, Y, Z]: Jac): Jac {
  const { p } = c;
  if (Z === 0n || Y === 0n) return [1n, 1n, 0n];
  const YY = (Y * Y) % p;
  const S = (4n * X * YY) % p;
  const ZZ = (Z * Z) % p;
  const M = mod(3n * X * X + c.a * ZZ * ZZ, p);
  const X3 = mod(M * M - 2n * S, p);
  const Y3 = mod(M * (S - X3) - 8n * YY * YY, p);
  const Z3 = (2n * Y * Z) % p;
  return [X3, Y3, Z3];
}

function jAdd(c: Curve, P: Jac, Q: Jac): Jac {
  const { p } = c;
  if (P[2] === 0n) return Q;
  if (Q[2] === 0n) return P;
  const Z1Z1 = (P[2] * P[2]) % p;
  const Z2Z2 = (Q[2] * Q[2]) % p;
  const U1 = (P[0] * Z2Z2) % p;
  const U2 = (Q[0] * Z1Z1) % p;
  const S1 = (P[1] * Q[2] * Z2Z2) % p;
  const S2 = (Q[1] * P[2] * Z1Z1) % p;
  const H = mod(U2 - U1, p);
  const R = mod(S2 - S1, p);
  if (H === 0n) return R === 0n ? jDouble(c, P) : [1n, 1n, 0n];
  const HH = (H * H) % p;
  const HHH = (H * HH) % p;
  const V = (U1 * HH) % p;
  const X3 = mod(R * R - HHH - 2n * V, p);
  const Y3 = mod(R * (V - X3) - S1 * HHH, p);
  const Z3 = (P[2] * Q[2] * H) % p;
  return [X3, Y3, Z3];
}

function toAffine(c: Curve, [X, Y, Z]: Jac): Affine | undefined {
  if (Z === 0n) return undefined;
  const zi = modInv(Z, c.p)!;
  const zi2 = (zi * zi) % c.p;
  return { x: (X * zi2) % c.p, y: (Y * zi2 * zi) % c.p };
}

function jMul(c: Curve, k: bigint, pt: Affine): Jac {
  let R: Jac = [1n, 1n, 0n];
  const P: Jac = [pt.x, pt.y, 1n];
  for (let i = bitLength(k) - 1; i >= 0; i--) {
    R = jDouble(c, R);
    if ((k >> BigInt(i)) & 1n) R = jAdd(c, R, P);
  }
  return R;
}

export function scalarMult(c: Curve, k: bigint, pt: Affine): Affine | undefined {
  return toAffine(c, jMul(c, k, pt));
}

/** W = s·G as 04 || x || y. */
export function ecPublicFromPrivate(c: Curve, s: Uint8Array): Uint8Array {
  const d = toBig(s);
  if (d <= 0n || d >= c.n) throw new CryptoFailure('ILLEGAL_VALUE', 'EC private value outside [1, n−1]');
  if (c.name) {
    const ecdh = createECDH(c.name);
    ecdh.setPrivateKey(fromBig(d, Math.ceil(bitLength(c.n) / 8)));
    return view(ecdh.getPublicKey(null, 'uncompressed'));
  }
  const w = scalarMult(c, d, { x: c.gx, y: c.gy });
  if (!w) throw new CryptoFailure('ILLEGAL_VALUE', 'EC private value gives the point at infinity');
  return encodePoint(c, w);
}

/** A uniformly random scalar in [1, n−1] by rejection sampling (FIPS 186-4 B.4.2). */
function randomScalar(c: Curve, random: RandomSource): bigint {
  const len = Math.ceil(bitLength(c.n) / 8);
  const excess = BigInt(len * 8 - bitLength(c.n));
  // Each draw succeeds with probability > 1/2; a source that fails 256 times in a row is broken, not unlucky.
  for (let i = 0; i < 256; i++) {
    const k = toBig(random(len)) >> excess;
    if (k >= 1n && k < c.n) return k;
  }
  throw new Error('the random source gives no usable EC scalar');
}

export function ecGenerate(c: Curve, random: RandomSource): { s: Uint8Array; w: Uint8Array } {
  const d = randomScalar(c, random);
  const s = fromBig(d, Math.ceil(bitLength(c.n) / 8));
  return { s, w: ecPublicFromPrivate(c, s) };
}

/** bits2int (SEC 1 §4.1.3 step 5): the leftmost bitlen(n) bits of the hash. */
function hashToInt(c: Curve, hash: Uint8Array): bigint {
  const e = toBig(hash);
  const excess = hash.length * 8 - bitLength(c.n);
  return excess > 0 ? e >> BigInt(excess) : e;
}

function derInt(n: bigint): Uint8Array {
  let b = stripZeros(fromBig(n, Math.max(1, Math.ceil(bitLength(n) / 8))));
  if (b.length === 0) b = Uint8Array.of(0);
  if (b[0] & 0x80) {
    const x = new Uint8Array(b.length + 1);
    x.set(b, 1);
    b = x;
  }
  return derTlv(0x02, b);
}

function derTlv(tag: number, v: Uint8Array): Uint8Array {
  const len = v.length < 0x80 ? Uint8Array.of(v.length) : v.length < 0x100 ? Uint8Array.of(0x81, v.length) : Uint8Array.of(0x82, v.length >> 8, v.length & 0xff);
  const out = new Uint8Array(1 + len.length + v.length);
  out[0] = tag;
  out.set(len, 1);
  out.set(v, 1 + len.length);
  return out;
}

/** ECDSA signature (SEC 1 §4.1.3) over a precomputed hash, DER SEQUENCE { r INTEGER, s INTEGER } as Java Card returns. */
export function ecdsaSignHash(c: Curve, s: Uint8Array, hash: Uint8Array, random: RandomSource): Uint8Array {
  const d = toBig(s);
  if (d <= 0n || d >= c.n) throw new CryptoFailure('ILLEGAL_VALUE', 'EC private value outside [1, n−1]');
  const e = hashToInt(c, hash);
  for (;;) {
    const k = randomScalar(c, random);
    const R = scalarMult(c, k, { x: c.gx, y: c.gy });
    if (!R) continue;
    const r = R.x % c.n;
    if (r === 0n) continue;
    const sig = mod(modInv(k, c.n)! * (e + r * d), c.n);
    if (sig === 0n) continue;
    const body = new Uint8Array([...derInt(r), ...derInt(sig)]);
    return derTlv(0x30, body);
  }
}

/** Parses a DER ECDSA signature strictly enough for verification; undefined when malformed. */
export function parseEcdsaDer(sig: Uint8Array): { r: bigint; s: bigint } | undefined {
  try {
    const [seq] = derChildren(sig, 0, sig.length);
    if (!seq || seq.tag !== 0x30 || seq.end !== sig.length) return undefined;
    const parts = derChildren(sig, seq.start, seq.end);
    if (parts.length !== 2 || parts[0].tag !== 2 || parts[1].tag !== 2 || parts[1].end !== seq.end) return undefined;
    return { r: toBig(sig.subarray(parts[0].start, parts[0].end)), s: toBig(sig.subarray(parts[1].start, parts[1].end)) };
  } catch {
    return undefined;
  }
}

/** ECDSA verification (SEC 1 §4.1.4) over a precomputed hash. */
export function ecdsaVerifyHash(c: Curve, w: Uint8Array, hash: Uint8Array, sig: Uint8Array): boolean {
  const Q = decodePoint(c, w);
  const rs = parseEcdsaDer(sig);
  if (!Q || !rs || !onCurve(c, Q)) return false;
  const { r, s } = rs;
  if (r < 1n || r >= c.n || s < 1n || s >= c.n) return false;
  const e = hashToInt(c, hash);
  const si = modInv(s, c.n);
  if (si === undefined) return false;
  const u1 = mod(e * si, c.n);
  const u2 = mod(r * si, c.n);
  const X = toAffine(c, jAdd(c, jMul(c, u1, { x: c.gx, y: c.gy }), jMul(c, u2, Q)));
  return X !== undefined && X.x % c.n === r;
}

/** ECDH (SEC 1 §3.3.1 ECSVDP-DH): the x-coordinate of s·W; W must be a valid point and the result not infinity. */
export function ecdhX(c: Curve, s: Uint8Array, w: Uint8Array): Uint8Array {
  const Q = decodePoint(c, w);
  if (!Q || !onCurve(c, Q)) throw new CryptoFailure('ILLEGAL_VALUE', 'public point is not on the curve');
  const d = toBig(s);
  if (d <= 0n || d >= c.n) throw new CryptoFailure('ILLEGAL_VALUE', 'EC private value outside [1, n−1]');
  if (c.name) {
    const ecdh = createECDH(c.name);
    ecdh.setPrivateKey(fromBig(d, Math.ceil(bitLength(c.n) / 8)));
    try {
      return view(ecdh.computeSecret(w));
    } catch {
      throw new CryptoFailure('ILLEGAL_VALUE', 'public point rejected by ECDH');
    }
  }
  return ecdhFullPoint(c, s, w).slice(1, 1 + c.size);
}

/** The full shared point (Java Card ALG_EC_SVDP_DH_PLAIN_XY): always computed in BigInt since node returns x only. */
export function ecdhFullPoint(c: Curve, s: Uint8Array, w: Uint8Array): Uint8Array {
  const Q = decodePoint(c, w);
  if (!Q || !onCurve(c, Q)) throw new CryptoFailure('ILLEGAL_VALUE', 'public point is not on the curve');
  const d = toBig(s);
  if (d <= 0n || d >= c.n) throw new CryptoFailure('ILLEGAL_VALUE', 'EC private value outside [1, n−1]');
  const P = scalarMult(c, d * c.h, Q);
  if (!P) throw new CryptoFailure('ILLEGAL_VALUE', 'shared point is the point at infinity');
  return encodePoint(c, P);
}

// ---------------------------------------------------------------------------------------------------------------
// Block ciphers: AES (FIPS 197) and DES/3DES (SP 800-67) in ECB and CBC (SP 800-38A), no padding.

export type BlockAlg = 'AES' | 'DES';

export function blockSize(alg: BlockAlg): number {
  return alg === 'AES' ? 16 : 8;
}

/** Single DES and two-key 3DES run as three-key 3DES (K1‖K1‖K1, K1‖K2‖K1): identical results, one OpenSSL cipher. */
function des3Key(key: Uint8Array): Uint8Array {
  if (key.length === 24) return key;
  const out = new Uint8Array(24);
  if (key.length === 8) {
    out.set(key, 0);
    out.set(key, 8);
    out.set(key, 16);
  } else if (key.length === 16) {
    out.set(key, 0);
    out.set(key.subarray(0, 8), 16);
  } else throw new CryptoFailure('ILLEGAL_VALUE', `DES key of ${key.length} bytes`);
  return out;
}

function cipherName(alg: BlockAlg, mode: 'ECB' | 'CBC', key: Uint8Array): string {
  if (alg === 'DES') return mode === 'ECB' ? 'des-ede3-ecb' : 'des-ede3-cbc';
  if (key.length !== 16 && key.length !== 24 && key.length !== 32) throw new CryptoFailure('ILLEGAL_VALUE', `AES key of ${key.length} bytes`);
  return `aes-${key.length * 8}-${mode.toLowerCase()}`;
}

/** ECB/CBC over whole blocks; CBC starts from `iv`. The caller carries the chaining value between calls. */
export function blockCrypt(alg: BlockAlg, mode: 'ECB' | 'CBC', encrypt: boolean, key: Uint8Array, iv: Uint8Array | null, data: Uint8Array): Uint8Array {
  const bs = blockSize(alg);
  if (data.length % bs !== 0) throw new CryptoFailure('ILLEGAL_USE', `${data.length} bytes is not a whole number of ${bs}-byte blocks`);
  if (data.length === 0) return new Uint8Array(0);
  const k = alg === 'DES' ? des3Key(key) : key;
  const name = cipherName(alg, mode, key);
  const ivv = mode === 'CBC' ? (iv ?? new Uint8Array(bs)) : null;
  const ctx = encrypt ? createCipheriv(name, k, ivv) : createDecipheriv(name, k, ivv);
  ctx.setAutoPadding(false);
  const a = ctx.update(data);
  const b = ctx.final();
  return b.length ? new Uint8Array(Buffer.concat([a, b])) : view(a);
}

/** CBC-MAC (ISO/IEC 9797-1 MAC algorithm 1): the last CBC block of already padded data. */
export function cbcMac(alg: BlockAlg, key: Uint8Array, iv: Uint8Array | null, padded: Uint8Array): Uint8Array {
  const bs = blockSize(alg);
  const ct = blockCrypt(alg, 'CBC', true, key, iv, padded);
  return ct.slice(ct.length - bs);
}

/**
 * ISO/IEC 9797-1 MAC algorithm 3 ("retail MAC"): single-DES CBC with K1 over the padded data, then the last block is
 * decrypted with K2 and encrypted with K1 (a two-key 3DES of the final block). Needs a 16-byte key.
 */
export function retailMac(key: Uint8Array, iv: Uint8Array | null, padded: Uint8Array): Uint8Array {
  if (key.length !== 16) throw new CryptoFailure('ILLEGAL_VALUE', `ISO 9797-1 algorithm 3 needs a 16-byte key, got ${key.length}`);
  const k1 = key.subarray(0, 8);
  const chain = cbcMac('DES', k1, iv, padded);
  const k2 = key.subarray(8, 16);
  const mid = blockCrypt('DES', 'ECB', false, k2, null, chain);
  return blockCrypt('DES', 'ECB', true, k1, null, mid);
}

export function aesCmac128(key: Uint8Array, data: Uint8Array): Uint8Array {
  if (key.length !== 16 && key.length !== 24 && key.length !== 32) throw new CryptoFailure('ILLEGAL_VALUE', `AES key of ${key.length} bytes`);
  return aesCmac(key, data);
}

// Paddings (ISO/IEC 9797-1 §6.1 methods 1 and 2; PKCS#5 v2.0 §6.1.1 step 4).

export type PadMode = 'NOPAD' | 'M1' | 'M2' | 'PKCS5';

export function pad(mode: PadMode, data: Uint8Array, bs: number): Uint8Array {
  switch (mode) {
    case 'NOPAD':
      if (data.length % bs !== 0) throw new CryptoFailure('ILLEGAL_USE', `${data.length} bytes is not block aligned and the algorithm does not pad`);
      return data;
    case 'M1': {
      // as few zero bytes as needed to reach a positive multiple of the block size
      const len = data.length === 0 ? bs : Math.ceil(data.length / bs) * bs;
      const out = new Uint8Array(len);
      out.set(data);
      return out;
    }
    case 'M2': {
      const out = new Uint8Array((Math.floor(data.length / bs) + 1) * bs);
      out.set(data);
      out[data.length] = 0x80;
      return out;
    }
    case 'PKCS5': {
      const n = bs - (data.length % bs);
      const out = new Uint8Array(data.length + n).fill(n);
      out.set(data);
      return out;
    }
  }
}

/** Removes padding after decryption; M1 cannot be removed unambiguously and stays. Throws ILLEGAL_USE when malformed. */
export function unpad(mode: PadMode, data: Uint8Array, bs: number): Uint8Array {
  switch (mode) {
    case 'NOPAD':
    case 'M1':
      return data;
    case 'M2': {
      let i = data.length - 1;
      while (i >= 0 && data[i] === 0 && data.length - i <= bs) i--;
      if (i < 0 || data[i] !== 0x80 || data.length - i > bs) throw new CryptoFailure('ILLEGAL_USE', 'ISO 9797-1 method 2 padding is malformed');
      return data.subarray(0, i);
    }
    case 'PKCS5': {
      const n = data.length ? data[data.length - 1] : 0;
      let bad = n < 1 || n > bs || n > data.length;
      for (let i = 1; i <= bs && i <= data.length; i++) if (i <= n && data[data.length - i] !== n) bad = true;
      if (bad) throw new CryptoFailure('ILLEGAL_USE', 'PKCS#5 padding is malformed');
      return data.subarray(0, data.length - n);
    }
  }
}
