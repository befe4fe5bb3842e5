// AES building blocks for SCP03 (Amd D §4.1): CBC and ECB without padding, and AES-CMAC (NIST SP 800-38B).
// Cipher contexts are kept per key object, so the per-APDU cost is a single OpenSSL update call.
import { createCipheriv, createDecipheriv } from 'node:crypto';
import type { Cipher, Decipher } from 'node:crypto';

export const AES_BLOCK = 16;
const ZERO_BLOCK = new Uint8Array(AES_BLOCK);

/** Key state reused across calls: ECB both ways, and one CBC encryptor whose running chaining value we track. */
interface Engine {
  /** Copy of the key the contexts were built from: a caller that rewrites its key buffer gets a fresh engine. */
  key: Uint8Array;
  ecbEnc: Cipher;
  ecbDec: Decipher;
  cbcEnc: Cipher;
  /** The CBC encryptor's current chaining value (its last output block). */
  cbcLast: Uint8Array;
  /** CMAC subkeys K1, K2 (SP 800-38B §6.1), computed on first use. */
  k1?: Uint8Array;
  k2?: Uint8Array;
}

const engines = new WeakMap<Uint8Array, Engine>();

function bits(key: Uint8Array): 128 | 192 | 256 {
  switch (key.length) {
    case 16:
      return 128;
    case 24:
      return 192;
    case 32:
      return 256;
    default:
      throw new RangeError(`AES key of ${key.length} bytes; expected 16, 24 or 32`);
  }
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

function engine(key: Uint8Array): Engine {
  const cached = engines.get(key);
  if (cached && sameBytes(cached.key, key)) return cached;
  const n = bits(key);
  const ecbEnc = createCipheriv(`aes-${n}-ecb`, key, null).setAutoPadding(false);
  const ecbDec = createDecipheriv(`aes-${n}-ecb`, key, null).setAutoPadding(false);
  const cbcEnc = createCipheriv(`aes-${n}-cbc`, key, ZERO_BLOCK).setAutoPadding(false);
  const e: Engine = { key: Uint8Array.from(key), ecbEnc, ecbDec, cbcEnc, cbcLast: new Uint8Array(AES_BLOCK) };
  engines.set(key, e);
  return e;
}

function checkBlocks(what: string, data: Uint8Array): void {
  if (data.length % AES_BLOCK !== 0)
    throw new RangeError(`${what}: ${data.length} bytes is not a whole number of 16-byte AES blocks`);
}

function checkIv(iv: Uint8Array): void {
  if (iv.length !== AES_BLOCK) throw new RangeError(`AES-CBC IV of ${iv.length} bytes; expected 16`);
}

function view(b: Buffer): Uint8Array {
  return new Uint8Array(b.buffer, b.byteOffset, b.length);
}

export function aesEcbEncrypt(key: Uint8Array, data: Uint8Array): Uint8Array {
  checkBlocks('AES-ECB encrypt', data);
  return view(engine(key).ecbEnc.update(data));
}

export function aesEcbDecrypt(key: Uint8Array, data: Uint8Array): Uint8Array {
  checkBlocks('AES-ECB decrypt', data);
  return view(engine(key).ecbDec.update(data));
}

/** AES-CBC encryption without padding; `data` is left untouched. */
export function aesCbcEncrypt(key: Uint8Array, iv: Uint8Array, data: Uint8Array): Uint8Array {
  checkIv(iv);
  checkBlocks('AES-CBC encrypt', data);
  if (data.length === 0) return new Uint8Array(0);
  return cbcRun(engine(key), iv, Uint8Array.from(data));
}

/**
 * Runs the persistent CBC encryptor with IV `iv` over `buf` (modified). The context chains from its previous output
 * block, so the first block is pre-whitened with (previous ⊕ iv): the cipher then sees block ⊕ iv, as a fresh CBC would.
 */
function cbcRun(e: Engine, iv: Uint8Array, buf: Uint8Array): Uint8Array {
  const last = e.cbcLast;
  for (let i = 0; i < AES_BLOCK; i++) buf[i] ^= last[i] ^ iv[i];
  const out = view(e.cbcEnc.update(buf));
  if (out.length !== buf.length) throw new Error(`AES-CBC returned ${out.length} bytes for ${buf.length}`);
  e.cbcLast = out.slice(out.length - AES_BLOCK);
  return out;
}

export function aesCbcDecrypt(key: Uint8Array, iv: Uint8Array, data: Uint8Array): Uint8Array {
  checkIv(iv);
  checkBlocks('AES-CBC decrypt', data);
  if (data.length === 0) return new Uint8Array(0);
  // CBC decryption is ECB decryption of every block, then XOR with the previous ciphertext block (or the IV).
  const out = view(engine(key).ecbDec.update(data));
  for (let i = 0; i < AES_BLOCK; i++) out[i] ^= iv[i];
  for (let i = AES_BLOCK; i < out.length; i++) out[i] ^= data[i - AES_BLOCK];
  return out;
}

/** Doubling in GF(2^128) (SP 800-38B §6.1): shift left one bit, reduce with 0x87 when the top bit fell out. */
function dbl(b: Uint8Array): Uint8Array {
  const out = new Uint8Array(AES_BLOCK);
  for (let i = 0; i < AES_BLOCK; i++) out[i] = ((b[i] << 1) | (i + 1 < AES_BLOCK ? b[i + 1] >> 7 : 0)) & 0xff;
  if (b[0] & 0x80) out[AES_BLOCK - 1] ^= 0x87;
  return out;
}

/** AES-CMAC (NIST SP 800-38B) of the concatenation of `parts`; the full 16-byte tag. */
export function aesCmac(key: Uint8Array, ...parts: Uint8Array[]): Uint8Array {
  const e = engine(key);
  if (!e.k1 || !e.k2) {
    const l = view(e.ecbEnc.update(ZERO_BLOCK));
    e.k1 = dbl(l);
    e.k2 = dbl(e.k1);
  }
  let n = 0;
  for (const p of parts) n += p.length;
  const complete = n > 0 && n % AES_BLOCK === 0;
  const size = complete ? n : (Math.floor(n / AES_BLOCK) + 1) * AES_BLOCK;
  const buf = new Uint8Array(size);
  let o = 0;
  for (const p of parts) {
    buf.set(p, o);
    o += p.length;
  }
  // Last block: XOR K1 when complete, else pad 80 00.. and XOR K2 (§6.2 steps 3–4).
  if (!complete) buf[n] = 0x80;
  const sub = complete ? e.k1 : e.k2;
  const base = size - AES_BLOCK;
  for (let i = 0; i < AES_BLOCK; i++) buf[base + i] ^= sub[i];
  const out = cbcRun(e, ZERO_BLOCK, buf);
  return out.slice(base);
}
