// javacard.security (Java Card 3.0.5 classic API) on node:crypto: KeyBuilder and the key objects, KeyPair,
// MessageDigest, Signature, RandomData, KeyAgreement.
//
// Key components are persistent data: each lives in a hidden heap byte array (2-byte length, then the value) that the
// key instance's native record references (`<name>Ref`), written through Heap.writeBytes so transactions, tearing and
// the cycle meter see them. A transient key (TYPE_*_TRANSIENT_*) keeps its arrays in transient memory, so a reset or
// deselect clears it and it reads as uninitialized again (KeyBuilder javadoc). Prepared node:crypto key objects are
// cached in HeapInstance.cache together with a snapshot of the component bytes, so a rolled-back transaction or a
// cleared transient key can never be served from a stale cache.
//
// Engine objects (Signature, MessageDigest, KeyAgreement, and Cipher in crypto.ts) keep their algorithm in the native
// record (persistent) and their init state (key, mode, running hash, buffered data) in HeapInstance.cache, which is
// volatile: after a power cycle an engine must be initialized again, as on cards where engine state is transient
// (JCRE 3.0.5 §7.7 excludes engine state from transactions as well).
//
// Deviations (javacard.security, javacardx.crypto):
// - EC: prime-field curves only (F2M types are NO_SUCH_ALGORITHM, setFieldF2M ILLEGAL_VALUE); a key whose domain
//   parameters were not set uses the NIST curve of its size (P-192/224/256/384/521), as cards with preset curves do;
//   points (G, W, public data) must be uncompressed 04‖X‖Y. ECDSA runs in BigInt (node:crypto cannot sign a given
//   hash), so its host timing is not constant-time; named curves use OpenSSL for ECDH and public-key derivation.
// - RSA-PSS uses a salt as long as the hash. RSA key generation draws from OpenSSL's RNG; everything else random
//   (EC keys, ECDSA k, PKCS#1/OAEP padding, RandomData) comes from vm.services.random. RandomData.setSeed is accepted
//   and ignored.
// - Hash states cannot be resumed on node:crypto: getInitializedMessageDigestInstance and InitializedMessageDigest
//   OneShot are NO_SUCH_ALGORITHM, setInitialDigest is ILLEGAL_USE.
// - HMAC keys: buildKey's length is the key capacity in bytes (the LENGTH_HMAC_*_BLOCK_* values).
// - Not offered (NO_SUCH_ALGORITHM): DSA, DH, Korean SEED, ISO 9796, RFC 2409, Rijndael 192/256-bit blocks, AES-CTR,
//   AEADCipher, Checksum, KeyEncryption, buildKeyWithSharedDomain, ALG_EC_PACE_GM, ALG_DH_PLAIN.
// - OneShot objects: a pool of 8 per class; a ninth open() is SystemException.NO_RESOURCE.
import type { HeapArray, HeapInstance, NativeClassImpl, NativeMethod, Ref, Vm } from '../types.ts';
import { Memory, ArrayKind, JCRE_CONTEXT } from '../types.ts';
import type { Hash, Hmac } from 'node:crypto';
import { createHash, createHmac } from 'node:crypto';
import {
  CryptoFailure,
  HASHES,
  aesCmac128,
  cbcMac,
  constantTimeEqual,
  curveFromBytes,
  curveToBytes,
  defaultCurve,
  digestInfo,
  ecGenerate,
  ecdhFullPoint,
  ecdhX,
  ecdsaSignHash,
  ecdsaVerifyHash,
  fromBig,
  pad,
  pkcs1SignatureBlock,
  pkcs1Unpad,
  pssEncode,
  pssVerify,
  retailMac,
  rsaCrtKey,
  rsaGenerate,
  rsaPlainPrivateKey,
  rsaPublicKey,
  stripZeros,
  toBig,
  digest,
} from './crypto-core.ts';
import type { Curve, CurveBytes, HashName, PadMode, RsaKey } from './crypto-core.ts';
import { writeReason } from './exceptions.ts';

// ---------------------------------------------------------------------------------------------------------------
// Shared native helpers (also used by crypto.ts and globalplatform.ts)

export const CRYPTO_EXCEPTION = 'javacard.security.CryptoException';

/** CryptoException reason codes (javacard.security.CryptoException constants). */
export const Reason = { ILLEGAL_VALUE: 1, UNINITIALIZED_KEY: 2, NO_SUCH_ALGORITHM: 3, INVALID_INIT: 4, ILLEGAL_USE: 5 } as const;

export function cryptoThrow(vm: Vm, reason: number): never {
  return vm.throwApi(CRYPTO_EXCEPTION, reason);
}

/** Runs crypto-core code, turning its CryptoFailure into the CryptoException reason it names. */
export function guarded<T>(vm: Vm, f: () => T): T {
  try {
    return f();
  } catch (e) {
    if (e instanceof CryptoFailure) cryptoThrow(vm, Reason[e.reason]);
    throw e;
  }
}

function aioobe(vm: Vm): never {
  return vm.throwApi('java.lang.ArrayIndexOutOfBoundsException');
}

/** A byte array argument with its range checked (NullPointerException / ArrayIndexOutOfBoundsException). */
export function byteRange(vm: Vm, ref: Ref, off: number, len: number): HeapArray {
  const a = vm.heap.array(ref);
  if (off < 0 || len < 0 || off + len > a.length) aioobe(vm);
  return a;
}

/** A copy of bytes from a byte array argument (a copy, since input and output may overlap). */
export function readBytes(vm: Vm, ref: Ref, off: number, len: number): Uint8Array {
  const a = byteRange(vm, ref, off, len);
  return (a.data as Uint8Array).slice(off, off + len);
}

/** Writes a result into an output byte array; non-atomic like the crypto outputs on cards (they are not transactional). */
export function writeOut(vm: Vm, ref: Ref, off: number, bytes: Uint8Array): void {
  const a = byteRange(vm, ref, off, bytes.length);
  if (bytes.length) vm.heap.writeBytes(a, off, bytes, false);
}

export function newEngine(vm: Vm, cls: string, native: Record<string, number | string | boolean | null>): Ref {
  return vm.heap.newInstance(vm.apiClass(cls), vm.context, native).ref;
}

/**
 * The OneShot classes (Java Card 3.0.5): JCRE-owned temporary entry points handed out by open() and given back by
 * close(). A small pool per heap and class; more than 8 open at once is SystemException.NO_RESOURCE.
 */
const oneShotPools = new WeakMap<object, Map<string, { ref: Ref; open: boolean }[]>>();
const ONE_SHOT_LIMIT = 8;

export function oneShotOpen(vm: Vm, cls: string, alg: number): Ref {
  let pools = oneShotPools.get(vm.heap);
  if (!pools) oneShotPools.set(vm.heap, (pools = new Map()));
  // Objects gone with a power cycle (temporary entry points are not persisted) leave the pool.
  const pool = (pools.get(cls) ?? []).filter((p) => vm.heap.peek(p.ref) !== undefined);
  pools.set(cls, pool);
  let slot = pool.find((p) => !p.open);
  if (!slot) {
    if (pool.length >= ONE_SHOT_LIMIT) vm.throwApi('javacard.framework.SystemException', 5 /* NO_RESOURCE */);
    const o = vm.heap.newInstance(vm.apiClass(cls), JCRE_CONTEXT, { alg });
    vm.heap.makeGlobal(o.ref, true);
    slot = { ref: o.ref, open: false };
    pool.push(slot);
  }
  const o = vm.heap.instance(slot.ref);
  vm.heap.setNative(o, 'alg', alg);
  o.cache = undefined;
  slot.open = true;
  return slot.ref;
}

export const oneShotClose: NativeMethod = (vm, a) => {
  const o = vm.heap.instance(a[0]);
  o.cache = undefined;
  const slot = oneShotPools.get(vm.heap)?.get(o.cls.name)?.find((p) => p.ref === a[0]);
  if (slot) slot.open = false;
};

function nativeNum(o: HeapInstance, key: string): number {
  const v = o.native?.[key];
  return typeof v === 'number' ? v : 0;
}

// ---------------------------------------------------------------------------------------------------------------
// Keys

/** KeyBuilder TYPE_* constants (javacard.security.KeyBuilder). */
export const KeyType = {
  DES_TRANSIENT_RESET: 1,
  DES_TRANSIENT_DESELECT: 2,
  DES: 3,
  RSA_PUBLIC: 4,
  RSA_PRIVATE: 5,
  RSA_CRT_PRIVATE: 6,
  EC_FP_PUBLIC: 11,
  EC_FP_PRIVATE: 12,
  AES_TRANSIENT_RESET: 13,
  AES_TRANSIENT_DESELECT: 14,
  AES: 15,
  HMAC_TRANSIENT_RESET: 19,
  HMAC_TRANSIENT_DESELECT: 20,
  HMAC: 21,
  RSA_PRIVATE_TRANSIENT_RESET: 22,
  RSA_PRIVATE_TRANSIENT_DESELECT: 23,
  RSA_CRT_PRIVATE_TRANSIENT_RESET: 24,
  RSA_CRT_PRIVATE_TRANSIENT_DESELECT: 25,
  EC_FP_PRIVATE_TRANSIENT_RESET: 30,
  EC_FP_PRIVATE_TRANSIENT_DESELECT: 31,
} as const;

export type KeyFamily = 'RSA_PUB' | 'RSA_PRIV' | 'RSA_CRT' | 'EC_PUB' | 'EC_PRIV' | 'AES' | 'DES' | 'HMAC';

const TYPES: Record<number, { fam: KeyFamily; memory: Memory }> = {
  1: { fam: 'DES', memory: Memory.ClearOnReset },
  2: { fam: 'DES', memory: Memory.ClearOnDeselect },
  3: { fam: 'DES', memory: Memory.Persistent },
  4: { fam: 'RSA_PUB', memory: Memory.Persistent },
  5: { fam: 'RSA_PRIV', memory: Memory.Persistent },
  6: { fam: 'RSA_CRT', memory: Memory.Persistent },
  11: { fam: 'EC_PUB', memory: Memory.Persistent },
  12: { fam: 'EC_PRIV', memory: Memory.Persistent },
  13: { fam: 'AES', memory: Memory.ClearOnReset },
  14: { fam: 'AES', memory: Memory.ClearOnDeselect },
  15: { fam: 'AES', memory: Memory.Persistent },
  19: { fam: 'HMAC', memory: Memory.ClearOnReset },
  20: { fam: 'HMAC', memory: Memory.ClearOnDeselect },
  21: { fam: 'HMAC', memory: Memory.Persistent },
  22: { fam: 'RSA_PRIV', memory: Memory.ClearOnReset },
  23: { fam: 'RSA_PRIV', memory: Memory.ClearOnDeselect },
  24: { fam: 'RSA_CRT', memory: Memory.ClearOnReset },
  25: { fam: 'RSA_CRT', memory: Memory.ClearOnDeselect },
  30: { fam: 'EC_PRIV', memory: Memory.ClearOnReset },
  31: { fam: 'EC_PRIV', memory: Memory.ClearOnDeselect },
};

/** buildKey(BBSZ): KeyBuilder.ALG_TYPE_* × JCSystem.MEMORY_TYPE_* → the TYPE_* constant it stands for (0 = none). */
const ALG_TYPES: Record<number, [number, number, number]> = {
  1: [3, 1, 2], // DES
  2: [15, 13, 14], // AES
  7: [11, 0, 0], // EC_FP_PUBLIC
  8: [12, 30, 31], // EC_FP_PRIVATE
  9: [21, 19, 20], // HMAC
  11: [4, 0, 0], // RSA_PUBLIC
  12: [5, 22, 23], // RSA_PRIVATE
  13: [6, 24, 25], // RSA_CRT_PRIVATE
};

export const KEY_CLASSES: Record<KeyFamily, { name: string; implements: string[] }> = {
  RSA_PUB: { name: 'jpkise.security.RSAPublicKeyImpl', implements: ['javacard.security.RSAPublicKey'] },
  RSA_PRIV: { name: 'jpkise.security.RSAPrivateKeyImpl', implements: ['javacard.security.RSAPrivateKey'] },
  RSA_CRT: { name: 'jpkise.security.RSAPrivateCrtKeyImpl', implements: ['javacard.security.RSAPrivateCrtKey'] },
  EC_PUB: { name: 'jpkise.security.ECPublicKeyImpl', implements: ['javacard.security.ECPublicKey'] },
  EC_PRIV: { name: 'jpkise.security.ECPrivateKeyImpl', implements: ['javacard.security.ECPrivateKey'] },
  AES: { name: 'jpkise.security.AESKeyImpl', implements: ['javacard.security.AESKey'] },
  DES: { name: 'jpkise.security.DESKeyImpl', implements: ['javacard.security.DESKey'] },
  HMAC: { name: 'jpkise.security.HMACKeyImpl', implements: ['javacard.security.HMACKey'] },
};

const DOMAIN = ['field', 'a', 'b', 'g', 'r', 'k'] as const;
type DomainPart = (typeof DOMAIN)[number];

/** Components of each family and their capacity in bytes for a key of `size` bits. */
function components(fam: KeyFamily, size: number): Record<string, number> {
  const bytes = Math.ceil(size / 8);
  const half = Math.ceil(size / 16);
  const point = 1 + 2 * bytes;
  const domain = { field: bytes, a: bytes, b: bytes, g: point, r: bytes + 1, k: 2 };
  switch (fam) {
    case 'RSA_PUB':
    case 'RSA_PRIV':
      return { mod: bytes, exp: bytes };
    case 'RSA_CRT':
      return { p: half, q: half, dp: half, dq: half, pq: half };
    case 'EC_PUB':
      return { ...domain, w: point };
    case 'EC_PRIV':
      return { ...domain, s: bytes + 1 };
    case 'AES':
    case 'DES':
      return { key: bytes };
    case 'HMAC':
      return { key: size };
  }
}

const REQUIRED: Record<KeyFamily, string[]> = {
  RSA_PUB: ['mod', 'exp'],
  RSA_PRIV: ['mod', 'exp'],
  RSA_CRT: ['p', 'q', 'dp', 'dq', 'pq'],
  EC_PUB: ['w'],
  EC_PRIV: ['s'],
  AES: ['key'],
  DES: ['key'],
  HMAC: ['key'],
};

function sizeAllowed(fam: KeyFamily, size: number): boolean {
  switch (fam) {
    case 'RSA_PUB':
    case 'RSA_PRIV':
    case 'RSA_CRT':
      return size >= 512 && size <= 4096 && size % 32 === 0;
    case 'EC_PUB':
    case 'EC_PRIV':
      return defaultCurve(size) !== undefined;
    case 'AES':
      return size === 128 || size === 192 || size === 256;
    case 'DES':
      return size === 64 || size === 128 || size === 192;
    case 'HMAC':
      return size >= 1 && size <= 128;
  }
}

/** Creates a key object (no components set): the hidden class instance plus one hidden array per component. */
export function buildKey(vm: Vm, type: number, size: number): Ref {
  const t = TYPES[type];
  if (!t || !sizeAllowed(t.fam, size)) cryptoThrow(vm, Reason.NO_SUCH_ALGORITHM);
  const native: Record<string, number | string | boolean | null> = { fam: t.fam, type, size };
  for (const [name, cap] of Object.entries(components(t.fam, size)))
    native[name + 'Ref'] = vm.heap.newArray(ArrayKind.Byte, cap + 2, t.memory, vm.context).ref;
  return vm.heap.newInstance(vm.apiClass(KEY_CLASSES[t.fam].name), vm.context, native).ref;
}

export interface KeyView {
  o: HeapInstance;
  fam: KeyFamily;
  type: number;
  size: number;
}

/** The key object behind a Key reference, or ILLEGAL_VALUE when it is not one of ours. */
export function keyOf(vm: Vm, ref: Ref): KeyView {
  const o = vm.heap.instance(ref);
  const fam = o.native?.fam;
  if (typeof fam !== 'string' || !(fam in KEY_CLASSES)) cryptoThrow(vm, Reason.ILLEGAL_VALUE);
  return { o, fam: fam as KeyFamily, type: nativeNum(o, 'type'), size: nativeNum(o, 'size') };
}

function compArray(vm: Vm, k: KeyView, name: string): HeapArray {
  return vm.heap.array(nativeNum(k.o, name + 'Ref'));
}

/** A component's value, or undefined when not set. */
export function getComp(vm: Vm, k: KeyView, name: string): Uint8Array | undefined {
  const a = compArray(vm, k, name);
  const d = a.data as Uint8Array;
  const len = (d[0] << 8) | d[1];
  return len ? d.slice(2, 2 + len) : undefined;
}

/** Stores a component (atomically: length and value in one write). Leading zero bytes beyond the capacity are dropped. */
export function setComp(vm: Vm, k: KeyView, name: string, value: Uint8Array, exact = false, charge = false): void {
  const a = compArray(vm, k, name);
  const cap = a.length - 2;
  let v = value;
  if (!exact && v.length > cap) {
    const s = stripZeros(v);
    v = s.length <= cap ? v.subarray(v.length - cap) : s;
  }
  if (v.length > cap || v.length === 0) cryptoThrow(vm, Reason.ILLEGAL_VALUE);
  const rec = new Uint8Array(2 + v.length);
  rec[0] = v.length >> 8;
  rec[1] = v.length & 0xff;
  rec.set(v, 2);
  if (charge) vm.cycles.crypto('KEY/set', v.length);
  vm.heap.writeBytes(a, 0, rec, true);
  k.o.cache = undefined;
}

export function isInitialized(vm: Vm, k: KeyView): boolean {
  for (const c of REQUIRED[k.fam]) if (!getComp(vm, k, c)) return false;
  return true;
}

export function requireInitialized(vm: Vm, k: KeyView): void {
  if (!isInitialized(vm, k)) cryptoThrow(vm, Reason.UNINITIALIZED_KEY);
}

/** The current bytes of every component array: the identity of the key material for cache validation. */
function snapshot(vm: Vm, k: KeyView): Uint8Array {
  const parts: Uint8Array[] = [];
  for (const name of Object.keys(components(k.fam, k.size))) parts.push(compArray(vm, k, name).data as Uint8Array);
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

interface KeyCache {
  snap: Uint8Array;
  value: unknown;
}

/** A prepared form of the key (node KeyObject wrapper, curve), rebuilt whenever the stored components changed. */
function prepared<T>(vm: Vm, k: KeyView, build: () => T): T {
  const snap = snapshot(vm, k);
  const c = k.o.cache as KeyCache | undefined;
  if (c && constantTimeEqual(c.snap, snap)) return c.value as T;
  const value = guarded(vm, build);
  k.o.cache = { snap, value } satisfies KeyCache;
  return value;
}

/** Label used in cycle keys (emulator/vm/cycles.ts, profiles/jcop4.ts): "RSA-2048-CRT", "EC-256", "AES-128", "DES3", "HMAC-64". */
export function keyLabel(k: KeyView): string {
  switch (k.fam) {
    case 'RSA_PUB':
    case 'RSA_PRIV':
      return `RSA-${k.size}`;
    case 'RSA_CRT':
      return `RSA-${k.size}-CRT`;
    case 'EC_PUB':
    case 'EC_PRIV':
      return `EC-${k.size}`;
    case 'DES':
      return k.size === 64 ? 'DES' : 'DES3';
    default:
      return `${k.fam}-${k.size}`;
  }
}

/** The RSA operation of an initialized RSA key (public, private or CRT). */
export function rsaOf(vm: Vm, k: KeyView): RsaKey {
  requireInitialized(vm, k);
  return prepared(vm, k, () => {
    if (k.fam === 'RSA_PUB') return rsaPublicKey({ n: getComp(vm, k, 'mod')!, e: getComp(vm, k, 'exp')! });
    if (k.fam === 'RSA_PRIV') return rsaPlainPrivateKey({ n: getComp(vm, k, 'mod')!, d: getComp(vm, k, 'exp')! });
    return rsaCrtKey({
      p: getComp(vm, k, 'p')!,
      q: getComp(vm, k, 'q')!,
      dp: getComp(vm, k, 'dp')!,
      dq: getComp(vm, k, 'dq')!,
      qinv: getComp(vm, k, 'pq')!,
    });
  });
}

/** The RSA raw operation with the result as `size/8` bytes (the API's block length); throws CryptoFailure. */
function rsaRawCore(vm: Vm, k: KeyView, block: Uint8Array): Uint8Array {
  const key = rsaOf(vm, k);
  const len = Math.ceil(k.size / 8);
  let input = block;
  if (input.length !== key.k) {
    // a modulus shorter than the key size: the extra leading bytes must be zero
    const s = stripZeros(input);
    if (s.length > key.k) throw new CryptoFailure('ILLEGAL_USE', 'RSA input longer than the modulus');
    input = fromBig(toBig(s), key.k);
  }
  const out = key.raw(input);
  return out.length === len ? out : fromBig(toBig(out), len);
}

export function rsaRaw(vm: Vm, k: KeyView, block: Uint8Array): Uint8Array {
  return guarded(vm, () => rsaRawCore(vm, k, block));
}

/** Domain parameters of an EC key: each stored one, or the default curve's for the key size (see deviations). */
function domainBytes(vm: Vm, k: KeyView): CurveBytes {
  const def = curveToBytes(defaultCurve(k.size)!);
  const get = (n: DomainPart) => getComp(vm, k, n);
  const kk = get('k');
  return {
    field: get('field') ?? def.field,
    a: get('a') ?? def.a,
    b: get('b') ?? def.b,
    g: get('g') ?? def.g,
    r: get('r') ?? def.r,
    k: kk ? Number(toBig(kk)) : def.k,
  };
}

export function curveOf(vm: Vm, k: KeyView): Curve {
  return prepared(vm, k, () => curveFromBytes(domainBytes(vm, k)));
}

// Key interface methods. Getters return the number of bytes written; unset components are UNINITIALIZED_KEY.

function getter(name: string): NativeMethod {
  return (vm, a) => {
    const k = keyOf(vm, a[0]);
    const v = getComp(vm, k, name);
    if (!v) cryptoThrow(vm, Reason.UNINITIALIZED_KEY);
    writeOut(vm, a[1], a[2], v);
    return v.length;
  };
}

function setter(name: string): NativeMethod {
  return (vm, a) => {
    const k = keyOf(vm, a[0]);
    setComp(vm, k, name, readBytes(vm, a[1], a[2], a[3]), false, true);
  };
}

function domainGetter(name: DomainPart): NativeMethod {
  return (vm, a) => {
    const k = keyOf(vm, a[0]);
    const d = domainBytes(vm, k);
    const v = d[name] as Uint8Array;
    writeOut(vm, a[1], a[2], v);
    return v.length;
  };
}

/** Points are stored as given; only the uncompressed form of the key's field size is accepted (see deviations). */
function pointSetter(name: 'g' | 'w'): NativeMethod {
  return (vm, a) => {
    const k = keyOf(vm, a[0]);
    const v = readBytes(vm, a[1], a[2], a[3]);
    if (v.length !== 1 + 2 * Math.ceil(k.size / 8) || v[0] !== 4) cryptoThrow(vm, Reason.ILLEGAL_VALUE);
    setComp(vm, k, name, v, true, true);
  };
}

const keyCommon: Record<string, NativeMethod> = {
  'clearKey()V': (vm, a) => {
    const k = keyOf(vm, a[0]);
    for (const name of Object.keys(components(k.fam, k.size))) {
      const arr = compArray(vm, k, name);
      vm.heap.fillBytes(arr, 0, arr.length, 0, true);
    }
    k.o.cache = undefined;
  },
  'getSize()S': (vm, a) => keyOf(vm, a[0]).size,
  'getType()B': (vm, a) => keyOf(vm, a[0]).type,
  'isInitialized()Z': (vm, a) => (isInitialized(vm, keyOf(vm, a[0])) ? 1 : 0),
};

const rsaPlainMethods: Record<string, NativeMethod> = {
  ...keyCommon,
  'getExponent([BS)S': getter('exp'),
  'getModulus([BS)S': getter('mod'),
  'setExponent([BSS)V': setter('exp'),
  'setModulus([BSS)V': setter('mod'),
};

const ecDomainMethods: Record<string, NativeMethod> = {
  'setFieldFP([BSS)V': setter('field'),
  'setFieldF2M(S)V': (vm) => cryptoThrow(vm, Reason.ILLEGAL_VALUE),
  'setFieldF2M(SSS)V': (vm) => cryptoThrow(vm, Reason.ILLEGAL_VALUE),
  'setA([BSS)V': setter('a'),
  'setB([BSS)V': setter('b'),
  'setG([BSS)V': pointSetter('g'),
  'setR([BSS)V': setter('r'),
  'setK(S)V': (vm, a) => {
    const k = keyOf(vm, a[0]);
    setComp(vm, k, 'k', Uint8Array.of((a[1] >> 8) & 0xff, a[1] & 0xff), true, true);
  },
  'getField([BS)S': domainGetter('field'),
  'getA([BS)S': domainGetter('a'),
  'getB([BS)S': domainGetter('b'),
  'getG([BS)S': domainGetter('g'),
  'getR([BS)S': domainGetter('r'),
  'getK()S': (vm, a) => domainBytes(vm, keyOf(vm, a[0])).k,
  'copyDomainParametersFrom(Ljavacard/security/ECKey;)V': (vm, a) => {
    const k = keyOf(vm, a[0]);
    const src = keyOf(vm, a[1]);
    if ((src.fam !== 'EC_PUB' && src.fam !== 'EC_PRIV') || src.size !== k.size) cryptoThrow(vm, Reason.ILLEGAL_VALUE);
    const d = domainBytes(vm, src);
    setComp(vm, k, 'field', d.field, true);
    setComp(vm, k, 'a', d.a, true);
    setComp(vm, k, 'b', d.b, true);
    setComp(vm, k, 'g', d.g, true);
    setComp(vm, k, 'r', d.r, true);
    setComp(vm, k, 'k', Uint8Array.of((d.k >> 8) & 0xff, d.k & 0xff), true);
  },
};

/** Secret keys: setKey reads size/8 bytes (AES, DES); getKey writes them and returns the byte count. */
function secretKeyMethods(): Record<string, NativeMethod> {
  return {
    ...keyCommon,
    'setKey([BS)V': (vm, a) => {
      const k = keyOf(vm, a[0]);
      setComp(vm, k, 'key', readBytes(vm, a[1], a[2], Math.ceil(k.size / 8)), true, true);
    },
    'getKey([BS)B': getter('key'),
  };
}

const KEY_IMPLS: NativeClassImpl[] = [
  { name: KEY_CLASSES.RSA_PUB.name, extends: 'java.lang.Object', implements: KEY_CLASSES.RSA_PUB.implements, methods: rsaPlainMethods },
  { name: KEY_CLASSES.RSA_PRIV.name, extends: 'java.lang.Object', implements: KEY_CLASSES.RSA_PRIV.implements, methods: rsaPlainMethods },
  {
    name: KEY_CLASSES.RSA_CRT.name,
    extends: 'java.lang.Object',
    implements: KEY_CLASSES.RSA_CRT.implements,
    methods: {
      ...keyCommon,
      'getDP1([BS)S': getter('dp'),
      'getDQ1([BS)S': getter('dq'),
      'getP([BS)S': getter('p'),
      'getPQ([BS)S': getter('pq'),
      'getQ([BS)S': getter('q'),
      'setDP1([BSS)V': setter('dp'),
      'setDQ1([BSS)V': setter('dq'),
      'setP([BSS)V': setter('p'),
      'setPQ([BSS)V': setter('pq'),
      'setQ([BSS)V': setter('q'),
    },
  },
  {
    name: KEY_CLASSES.EC_PUB.name,
    extends: 'java.lang.Object',
    implements: KEY_CLASSES.EC_PUB.implements,
    methods: { ...keyCommon, ...ecDomainMethods, 'setW([BSS)V': pointSetter('w'), 'getW([BS)S': getter('w') },
  },
  {
    name: KEY_CLASSES.EC_PRIV.name,
    extends: 'java.lang.Object',
    implements: KEY_CLASSES.EC_PRIV.implements,
    methods: { ...keyCommon, ...ecDomainMethods, 'setS([BSS)V': setter('s'), 'getS([BS)S': getter('s') },
  },
  { name: KEY_CLASSES.AES.name, extends: 'java.lang.Object', implements: KEY_CLASSES.AES.implements, methods: secretKeyMethods() },
  { name: KEY_CLASSES.DES.name, extends: 'java.lang.Object', implements: KEY_CLASSES.DES.implements, methods: secretKeyMethods() },
  {
    name: KEY_CLASSES.HMAC.name,
    extends: 'java.lang.Object',
    implements: KEY_CLASSES.HMAC.implements,
    methods: {
      ...keyCommon,
      'setKey([BSS)V': (vm, a) => {
        const k = keyOf(vm, a[0]);
        setComp(vm, k, 'key', readBytes(vm, a[1], a[2], a[3]), true, true);
      },
      'getKey([BS)B': getter('key'),
    },
  },
];

const keyBuilder: NativeClassImpl = {
  name: 'javacard.security.KeyBuilder',
  methods: {
    // keyEncryption (KeyEncryption interface) is not offered: NO_SUCH_ALGORITHM, as cards without it answer.
    'buildKey(BSZ)Ljavacard/security/Key;': (vm, a) => {
      if (a[2]) cryptoThrow(vm, Reason.NO_SUCH_ALGORITHM);
      return buildKey(vm, a[0], a[1]);
    },
    'buildKey(BBSZ)Ljavacard/security/Key;': (vm, a) => {
      const row = ALG_TYPES[a[0]];
      const memType = a[1];
      const type = row && memType >= 0 && memType <= 2 ? row[memType] : 0;
      if (!type || a[3]) cryptoThrow(vm, Reason.NO_SUCH_ALGORITHM);
      return buildKey(vm, type, a[2]);
    },
    'buildKeyWithSharedDomain(BBLjavacard/security/Key;Z)Ljavacard/security/Key;': (vm) => cryptoThrow(vm, Reason.NO_SUCH_ALGORITHM),
  },
};

// ---------------------------------------------------------------------------------------------------------------
// KeyPair

const KeyPairAlg = { RSA: 1, RSA_CRT: 2, EC_FP: 5 } as const;

function keyPairTypes(alg: number): [number, number] | undefined {
  if (alg === KeyPairAlg.RSA) return [KeyType.RSA_PUBLIC, KeyType.RSA_PRIVATE];
  if (alg === KeyPairAlg.RSA_CRT) return [KeyType.RSA_PUBLIC, KeyType.RSA_CRT_PRIVATE];
  if (alg === KeyPairAlg.EC_FP) return [KeyType.EC_FP_PUBLIC, KeyType.EC_FP_PRIVATE];
  return undefined;
}

function genKeyPair(vm: Vm, pair: HeapInstance): void {
  const pub = keyOf(vm, nativeNum(pair, 'pubRef'));
  const priv = keyOf(vm, nativeNum(pair, 'privRef'));
  if (pub.fam === 'RSA_PUB') {
    // A pre-initialized public exponent is kept (KeyPair.genKeyPair javadoc); 65537 otherwise.
    const preset = getComp(vm, pub, 'exp');
    let e = 65537;
    if (preset) {
      const v = toBig(preset);
      if (v < 3n || v % 2n === 0n || v > BigInt(Number.MAX_SAFE_INTEGER)) cryptoThrow(vm, Reason.ILLEGAL_VALUE);
      e = Number(v);
    }
    vm.cycles.crypto(`${keyLabel(priv)}/keygen`, 0);
    const g = rsaGenerate(pub.size, e);
    setComp(vm, pub, 'mod', g.n);
    setComp(vm, pub, 'exp', stripZeros(g.e));
    if (priv.fam === 'RSA_PRIV') {
      setComp(vm, priv, 'mod', g.n);
      setComp(vm, priv, 'exp', g.d);
    } else {
      setComp(vm, priv, 'p', g.p);
      setComp(vm, priv, 'q', g.q);
      setComp(vm, priv, 'dp', g.dp);
      setComp(vm, priv, 'dq', g.dq);
      setComp(vm, priv, 'pq', g.qinv);
    }
    return;
  }
  // EC: domain parameters set in the public key are used (and copied to the private key); defaults otherwise.
  const curve = curveOf(vm, pub);
  vm.cycles.crypto(`${keyLabel(priv)}/keygen`, 0);
  const g = guarded(vm, () => ecGenerate(curve, (n) => vm.services.random(n)));
  for (const part of DOMAIN) {
    const v = getComp(vm, pub, part);
    if (v) setComp(vm, priv, part, v, true);
  }
  setComp(vm, priv, 's', g.s, true);
  setComp(vm, pub, 'w', g.w, true);
}

const keyPair: NativeClassImpl = {
  name: 'javacard.security.KeyPair',
  methods: {
    '<init>(BS)V': (vm, a) => {
      const types = keyPairTypes(a[1]);
      if (!types) cryptoThrow(vm, Reason.NO_SUCH_ALGORITHM);
      const pub = buildKey(vm, types[0], a[2]);
      const priv = buildKey(vm, types[1], a[2]);
      const o = vm.heap.instance(a[0]);
      vm.heap.setNative(o, 'pubRef', pub);
      vm.heap.setNative(o, 'privRef', priv);
    },
    '<init>(Ljavacard/security/PublicKey;Ljavacard/security/PrivateKey;)V': (vm, a) => {
      const pub = keyOf(vm, a[1]);
      const priv = keyOf(vm, a[2]);
      const ok =
        pub.size === priv.size &&
        ((pub.fam === 'RSA_PUB' && (priv.fam === 'RSA_PRIV' || priv.fam === 'RSA_CRT')) || (pub.fam === 'EC_PUB' && priv.fam === 'EC_PRIV'));
      if (!ok) cryptoThrow(vm, Reason.ILLEGAL_VALUE);
      const o = vm.heap.instance(a[0]);
      vm.heap.setNative(o, 'pubRef', a[1]);
      vm.heap.setNative(o, 'privRef', a[2]);
    },
    'genKeyPair()V': (vm, a) => genKeyPair(vm, vm.heap.instance(a[0])),
    'getPrivate()Ljavacard/security/PrivateKey;': (vm, a) => nativeNum(vm.heap.instance(a[0]), 'privRef'),
    'getPublic()Ljavacard/security/PublicKey;': (vm, a) => nativeNum(vm.heap.instance(a[0]), 'pubRef'),
  },
};

// ---------------------------------------------------------------------------------------------------------------
// MessageDigest

/** MessageDigest.ALG_* → hash. */
export const DIGESTS: Record<number, HashName> = {
  1: 'SHA-1',
  2: 'MD5',
  3: 'RIPEMD-160',
  4: 'SHA-256',
  5: 'SHA-384',
  6: 'SHA-512',
  7: 'SHA-224',
  8: 'SHA3-224',
  9: 'SHA3-256',
  10: 'SHA3-384',
  11: 'SHA3-512',
};

const MD_IMPL = 'jpkise.security.MessageDigestImpl';

function mdState(vm: Vm, ref: Ref): { o: HeapInstance; h: HashName; hash: Hash } {
  const o = vm.heap.instance(ref);
  const h = DIGESTS[nativeNum(o, 'alg')];
  let hash = o.cache as Hash | undefined;
  if (!hash) {
    hash = createHash(HASHES[h].node);
    o.cache = hash;
  }
  return { o, h, hash };
}

const mdMethods: Record<string, NativeMethod> = {
  'update([BSS)V': (vm, a) => {
    const data = readBytes(vm, a[1], a[2], a[3]);
    const s = mdState(vm, a[0]);
    vm.cycles.crypto(`${s.h}/update`, data.length);
    s.hash.update(data);
  },
  'doFinal([BSS[BS)S': (vm, a) => {
    const data = readBytes(vm, a[1], a[2], a[3]);
    const s = mdState(vm, a[0]);
    byteRange(vm, a[4], a[5], HASHES[s.h].length);
    vm.cycles.crypto(`${s.h}/digest`, data.length);
    s.hash.update(data);
    const out = new Uint8Array(s.hash.digest());
    s.o.cache = undefined; // doFinal resets the digest (MessageDigest javadoc)
    writeOut(vm, a[4], a[5], out);
    return out.length;
  },
  'reset()V': (vm, a) => {
    vm.heap.instance(a[0]).cache = undefined;
  },
  'getAlgorithm()B': (vm, a) => nativeNum(vm.heap.instance(a[0]), 'alg'),
  'getLength()B': (vm, a) => HASHES[DIGESTS[nativeNum(vm.heap.instance(a[0]), 'alg')]].length,
  // Resuming from an intermediate hash state is not possible on node:crypto (see deviations).
  'setInitialDigest([BSS[BSS)V': (vm) => cryptoThrow(vm, Reason.ILLEGAL_USE),
};

const messageDigest: NativeClassImpl = {
  name: 'javacard.security.MessageDigest',
  methods: {
    'getInstance(BZ)Ljavacard/security/MessageDigest;': (vm, a) => {
      if (!DIGESTS[a[0]]) cryptoThrow(vm, Reason.NO_SUCH_ALGORITHM);
      return newEngine(vm, MD_IMPL, { alg: a[0] });
    },
    'getInitializedMessageDigestInstance(BZ)Ljavacard/security/InitializedMessageDigest;': (vm) => cryptoThrow(vm, Reason.NO_SUCH_ALGORITHM),
  },
};

// ---------------------------------------------------------------------------------------------------------------
// RandomData

const RANDOM_IMPL = 'jpkise.security.RandomDataImpl';

const randomMethods: Record<string, NativeMethod> = {
  'generateData([BSS)V': (vm, a) => {
    byteRange(vm, a[1], a[2], a[3]);
    vm.cycles.crypto('RNG/generate', a[3]);
    writeOut(vm, a[1], a[2], vm.services.random(a[3]));
  },
  'nextBytes([BSS)S': (vm, a) => {
    byteRange(vm, a[1], a[2], a[3]);
    vm.cycles.crypto('RNG/generate', a[3]);
    writeOut(vm, a[1], a[2], vm.services.random(a[3]));
    return a[2] + a[3];
  },
  // The chip's RNG is seeded by the host (node:crypto); a seed supplements it and is not needed (see deviations).
  'setSeed([BSS)V': (vm, a) => {
    byteRange(vm, a[1], a[2], a[3]);
  },
  'getAlgorithm()B': (vm, a) => nativeNum(vm.heap.instance(a[0]), 'alg'),
};

const randomData: NativeClassImpl = {
  name: 'javacard.security.RandomData',
  methods: {
    'getInstance(B)Ljavacard/security/RandomData;': (vm, a) => {
      if (a[0] < 1 || a[0] > 6) cryptoThrow(vm, Reason.NO_SUCH_ALGORITHM);
      return newEngine(vm, RANDOM_IMPL, { alg: a[0] });
    },
  },
};

// ---------------------------------------------------------------------------------------------------------------
// Signature

type SigKind = 'RSA_PKCS1' | 'RSA_PSS' | 'ECDSA' | 'DES_MAC' | 'DES_MAC3' | 'AES_MAC' | 'AES_CMAC' | 'HMAC';

interface SigAlg {
  kind: SigKind;
  hash?: HashName;
  pad?: PadMode;
  /** MAC output length (MAC4 / MAC8). */
  macLen?: number;
  /** getMessageDigestAlgorithm / getCipherAlgorithm / getPaddingAlgorithm values. */
  md: number;
  cipher: number;
  padding: number;
}

const SIG_CIPHER = { DES_MAC4: 1, DES_MAC8: 2, RSA: 3, ECDSA: 5, AES_MAC128: 6, HMAC: 7, AES_CMAC128: 10 } as const;
const PAD = { NULL: 0, NOPAD: 1, M1: 2, M2: 3, M1_ALG3: 4, M2_ALG3: 5, PKCS5: 6, PKCS1: 7, PSS: 8 } as const;
const MD_OF: Partial<Record<HashName, number>> = { 'SHA-1': 1, MD5: 2, 'RIPEMD-160': 3, 'SHA-256': 4, 'SHA-384': 5, 'SHA-512': 6, 'SHA-224': 7 };

function desMac(len: 4 | 8, pad: PadMode, padding: number, alg3 = false): SigAlg {
  return { kind: alg3 ? 'DES_MAC3' : 'DES_MAC', pad, macLen: len, md: 0, cipher: len === 4 ? SIG_CIPHER.DES_MAC4 : SIG_CIPHER.DES_MAC8, padding };
}
function rsaSig(kind: 'RSA_PKCS1' | 'RSA_PSS', hash: HashName): SigAlg {
  return { kind, hash, md: MD_OF[hash]!, cipher: SIG_CIPHER.RSA, padding: kind === 'RSA_PKCS1' ? PAD.PKCS1 : PAD.PSS };
}
function ecdsa(hash: HashName): SigAlg {
  return { kind: 'ECDSA', hash, md: MD_OF[hash]!, cipher: SIG_CIPHER.ECDSA, padding: PAD.NULL };
}
function hmacSig(hash: HashName): SigAlg {
  return { kind: 'HMAC', hash, md: MD_OF[hash]!, cipher: SIG_CIPHER.HMAC, padding: PAD.NULL };
}

/** Signature.ALG_* the emulator implements; every other value is NO_SUCH_ALGORITHM. */
export const SIGNATURES: Record<number, SigAlg> = {
  1: desMac(4, 'NOPAD', PAD.NOPAD),
  2: desMac(8, 'NOPAD', PAD.NOPAD),
  3: desMac(4, 'M1', PAD.M1),
  4: desMac(8, 'M1', PAD.M1),
  5: desMac(4, 'M2', PAD.M2),
  6: desMac(8, 'M2', PAD.M2),
  7: desMac(4, 'PKCS5', PAD.PKCS5),
  8: desMac(8, 'PKCS5', PAD.PKCS5),
  10: rsaSig('RSA_PKCS1', 'SHA-1'),
  11: rsaSig('RSA_PKCS1', 'MD5'),
  13: rsaSig('RSA_PKCS1', 'RIPEMD-160'),
  17: ecdsa('SHA-1'),
  18: { kind: 'AES_MAC', pad: 'NOPAD', macLen: 16, md: 0, cipher: SIG_CIPHER.AES_MAC128, padding: PAD.NOPAD },
  19: desMac(4, 'M2', PAD.M2_ALG3, true),
  20: desMac(8, 'M2', PAD.M2_ALG3, true),
  21: rsaSig('RSA_PSS', 'SHA-1'),
  22: rsaSig('RSA_PSS', 'MD5'),
  23: rsaSig('RSA_PSS', 'RIPEMD-160'),
  24: hmacSig('SHA-1'),
  25: hmacSig('SHA-256'),
  26: hmacSig('SHA-384'),
  27: hmacSig('SHA-512'),
  28: hmacSig('MD5'),
  29: hmacSig('RIPEMD-160'),
  33: ecdsa('SHA-256'),
  34: ecdsa('SHA-384'),
  37: ecdsa('SHA-224'),
  38: ecdsa('SHA-512'),
  39: rsaSig('RSA_PKCS1', 'SHA-224'),
  40: rsaSig('RSA_PKCS1', 'SHA-256'),
  41: rsaSig('RSA_PKCS1', 'SHA-384'),
  42: rsaSig('RSA_PKCS1', 'SHA-512'),
  43: rsaSig('RSA_PSS', 'SHA-224'),
  44: rsaSig('RSA_PSS', 'SHA-256'),
  45: rsaSig('RSA_PSS', 'SHA-384'),
  46: rsaSig('RSA_PSS', 'SHA-512'),
  47: desMac(4, 'M1', PAD.M1_ALG3, true),
  48: desMac(8, 'M1', PAD.M1_ALG3, true),
  49: { kind: 'AES_CMAC', macLen: 16, md: 0, cipher: SIG_CIPHER.AES_CMAC128, padding: PAD.NULL },
};

const SIG_IMPL = 'jpkise.security.SignatureImpl';
const MODE_SIGN = 1;
const MODE_VERIFY = 2;

interface SigState {
  mode: number;
  keyRef: Ref;
  /** Initial chaining value of the MAC algorithms (zero, or from init with bArray). */
  iv: Uint8Array | null;
  hash?: Hash;
  hmac?: Hmac;
  parts: Uint8Array[];
}

function sigAlgOf(vm: Vm, o: HeapInstance): SigAlg {
  return SIGNATURES[nativeNum(o, 'alg')];
}

function keyFits(alg: SigAlg, k: KeyView, mode: number): boolean {
  switch (alg.kind) {
    case 'RSA_PKCS1':
    case 'RSA_PSS':
      return mode === MODE_SIGN ? k.fam === 'RSA_PRIV' || k.fam === 'RSA_CRT' : k.fam === 'RSA_PUB';
    case 'ECDSA':
      return mode === MODE_SIGN ? k.fam === 'EC_PRIV' : k.fam === 'EC_PUB';
    case 'DES_MAC':
      return k.fam === 'DES';
    case 'DES_MAC3':
      return k.fam === 'DES' && k.size === 128;
    case 'AES_MAC':
    case 'AES_CMAC':
      return k.fam === 'AES';
    case 'HMAC':
      return k.fam === 'HMAC';
  }
}

function sigInit(vm: Vm, a: Int32Array, withIv: boolean): void {
  const o = vm.heap.instance(a[0]);
  const alg = sigAlgOf(vm, o);
  const mode = a[2];
  if (mode !== MODE_SIGN && mode !== MODE_VERIFY) cryptoThrow(vm, Reason.ILLEGAL_VALUE);
  const k = keyOf(vm, a[1]);
  if (!keyFits(alg, k, mode)) cryptoThrow(vm, Reason.ILLEGAL_VALUE);
  let iv: Uint8Array | null = null;
  if (withIv) {
    const data = readBytes(vm, a[3], a[4], a[5]);
    const bs = alg.kind === 'AES_MAC' ? 16 : alg.kind === 'DES_MAC' || alg.kind === 'DES_MAC3' ? 8 : 0;
    if (!bs || data.length !== bs) cryptoThrow(vm, Reason.ILLEGAL_VALUE);
    iv = data;
  }
  requireInitialized(vm, k);
  vm.cycles.crypto('SIGNATURE/init', 0);
  const st: SigState = { mode, keyRef: a[1], iv, parts: [] };
  o.cache = st;
  resetAccumulators(vm, alg, st, k);
}

function resetAccumulators(vm: Vm, alg: SigAlg, st: SigState, k: KeyView): void {
  st.parts = [];
  st.hash = undefined;
  st.hmac = undefined;
  if (alg.kind === 'HMAC') st.hmac = createHmac(HASHES[alg.hash!].node, getComp(vm, k, 'key') ?? new Uint8Array(0));
  else if (alg.hash) st.hash = createHash(HASHES[alg.hash].node);
}

/** The engine's state for an operation: INVALID_INIT when not initialized (or for the other mode), key still set. */
function sigReady(vm: Vm, ref: Ref, mode: number | 0): { o: HeapInstance; alg: SigAlg; st: SigState; k: KeyView } {
  const o = vm.heap.instance(ref);
  const st = o.cache as SigState | undefined;
  if (!st || (mode && st.mode !== mode)) cryptoThrow(vm, Reason.INVALID_INIT);
  const k = keyOf(vm, st.keyRef);
  requireInitialized(vm, k);
  return { o, alg: sigAlgOf(vm, o), st, k };
}

function feed(vm: Vm, alg: SigAlg, st: SigState, k: KeyView, data: Uint8Array): void {
  if (!data.length) return;
  if (st.hmac) {
    vm.cycles.crypto(`HMAC-${alg.hash}/mac`, data.length);
    st.hmac.update(data);
  } else if (st.hash) {
    vm.cycles.crypto(`${alg.hash}/update`, data.length);
    st.hash.update(data);
  } else {
    st.parts.push(data);
  }
  void k;
}

/** The digest of the data fed so far: the finalisation ("/digest", padding block and output) is charged here. */
function finishHash(vm: Vm, alg: SigAlg, hash: Hash): Uint8Array {
  vm.cycles.crypto(`${alg.hash}/digest`, 0);
  return new Uint8Array(hash.digest());
}

function collected(st: SigState): Uint8Array {
  const n = st.parts.reduce((s, p) => s + p.length, 0);
  const out = new Uint8Array(n);
  let o = 0;
  for (const p of st.parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

/** The MAC of everything fed so far (MAC algorithms). */
function macValue(vm: Vm, alg: SigAlg, st: SigState, k: KeyView): Uint8Array {
  if (alg.kind === 'HMAC') return new Uint8Array(st.hmac!.digest());
  const key = getComp(vm, k, 'key')!;
  const data = collected(st);
  return guarded(vm, () => {
    switch (alg.kind) {
      case 'AES_CMAC':
        vm.cycles.crypto(`${keyLabel(k)}/CMAC`, data.length);
        return aesCmac128(key, data);
      case 'AES_MAC':
        vm.cycles.crypto(`${keyLabel(k)}/CBC`, data.length);
        return cbcMac('AES', key, st.iv, pad(alg.pad!, data, 16));
      case 'DES_MAC':
        vm.cycles.crypto(`${keyLabel(k)}/CBC`, data.length);
        return cbcMac('DES', key, st.iv, pad(alg.pad!, data, 8)).subarray(0, alg.macLen);
      case 'DES_MAC3':
        vm.cycles.crypto('DES3/CBC', data.length);
        return retailMac(key, st.iv, pad(alg.pad!, data, 8)).subarray(0, alg.macLen);
      default:
        throw new Error(`not a MAC: ${alg.kind}`);
    }
  });
}

/** Maximum DER length of an ECDSA signature for an order of `n` bytes. */
function ecdsaMaxLength(orderBytes: number): number {
  const int = 2 + orderBytes + 1;
  const body = 2 * int;
  return body + (body < 0x80 ? 2 : body < 0x100 ? 3 : 4);
}

function sigLength(vm: Vm, alg: SigAlg, k: KeyView): number {
  switch (alg.kind) {
    case 'RSA_PKCS1':
    case 'RSA_PSS':
      return Math.ceil(k.size / 8);
    case 'ECDSA':
      return ecdsaMaxLength(Math.ceil(curveOf(vm, k).n.toString(16).length / 2));
    case 'HMAC':
      return HASHES[alg.hash!].length;
    default:
      return alg.macLen!;
  }
}

/** Signs a finished digest (RSA and ECDSA). */
function signDigest(vm: Vm, alg: SigAlg, k: KeyView, h: Uint8Array): Uint8Array {
  if (alg.kind === 'ECDSA') {
    vm.cycles.crypto(`${keyLabel(k)}/sign`, 0);
    const curve = curveOf(vm, k);
    const s = getComp(vm, k, 's')!;
    return guarded(vm, () => ecdsaSignHash(curve, s, h, (n) => vm.services.random(n)));
  }
  const rsa = rsaOf(vm, k);
  vm.cycles.crypto(`${keyLabel(k)}/sign`, 0);
  const block =
    alg.kind === 'RSA_PKCS1'
      ? guarded(vm, () => pkcs1SignatureBlock(rsa.k, digestInfo(alg.hash!, h)))
      : guarded(vm, () => {
          // PSS with a salt as long as the hash (the usual choice; see deviations), emBits = modBits − 1.
          const em = pssEncode(alg.hash!, h, rsa.bits, vmRandom(vm, HASHES[alg.hash!].length));
          return em.length === rsa.k ? em : fromBig(toBig(em), rsa.k);
        });
  return rsaRaw(vm, k, block);
}

function vmRandom(vm: Vm, n: number): Uint8Array {
  return vm.services.random(n);
}

function verifyDigest(vm: Vm, alg: SigAlg, k: KeyView, h: Uint8Array, sig: Uint8Array): boolean {
  if (alg.kind === 'ECDSA') {
    vm.cycles.crypto(`${keyLabel(k)}/verify`, 0);
    const curve = curveOf(vm, k);
    return guarded(vm, () => ecdsaVerifyHash(curve, getComp(vm, k, 'w')!, h, sig));
  }
  const rsa = rsaOf(vm, k);
  if (sig.length !== Math.ceil(k.size / 8)) return false;
  vm.cycles.crypto(`${keyLabel(k)}/public`, 0);
  let block: Uint8Array;
  try {
    block = rsaRawCore(vm, k, sig);
  } catch (e) {
    if (e instanceof CryptoFailure) return false; // a value ≥ the modulus is not a signature
    throw e;
  }
  const em = block.length === rsa.k ? block : block.subarray(block.length - rsa.k);
  if (alg.kind === 'RSA_PKCS1') {
    const t = pkcs1Unpad(em, 1);
    return t !== undefined && constantTimeEqual(t, digestInfo(alg.hash!, h));
  }
  return pssVerify(alg.hash!, h, em, rsa.bits, HASHES[alg.hash!].length);
}

const sigMethods: Record<string, NativeMethod> = {
  'init(Ljavacard/security/Key;B)V': (vm, a) => sigInit(vm, a, false),
  'init(Ljavacard/security/Key;B[BSS)V': (vm, a) => sigInit(vm, a, true),
  'getAlgorithm()B': (vm, a) => nativeNum(vm.heap.instance(a[0]), 'alg'),
  'getLength()S': (vm, a) => {
    const { alg, k } = sigReady(vm, a[0], 0);
    return sigLength(vm, alg, k);
  },
  'update([BSS)V': (vm, a) => {
    const data = readBytes(vm, a[1], a[2], a[3]);
    const { alg, st, k } = sigReady(vm, a[0], 0);
    feed(vm, alg, st, k, data);
  },
  'sign([BSS[BS)S': (vm, a) => {
    const data = readBytes(vm, a[1], a[2], a[3]);
    const { alg, st, k } = sigReady(vm, a[0], MODE_SIGN);
    byteRange(vm, a[4], a[5], 0);
    feed(vm, alg, st, k, data);
    let out: Uint8Array;
    try {
      if (st.hash) out = signDigest(vm, alg, k, finishHash(vm, alg, st.hash));
      else out = macValue(vm, alg, st, k);
    } finally {
      resetAccumulators(vm, alg, st, k); // sign resets the object to its initialized state (Signature javadoc)
    }
    writeOut(vm, a[4], a[5], out);
    return out.length;
  },
  'verify([BSS[BSS)Z': (vm, a) => {
    const data = readBytes(vm, a[1], a[2], a[3]);
    const sig = readBytes(vm, a[4], a[5], a[6]);
    const { alg, st, k } = sigReady(vm, a[0], MODE_VERIFY);
    feed(vm, alg, st, k, data);
    try {
      if (st.hash) return verifyDigest(vm, alg, k, finishHash(vm, alg, st.hash), sig) ? 1 : 0;
      return constantTimeEqual(macValue(vm, alg, st, k), sig) ? 1 : 0;
    } finally {
      resetAccumulators(vm, alg, st, k);
    }
  },
  'signPreComputedHash([BSS[BS)S': (vm, a) => {
    const h = readBytes(vm, a[1], a[2], a[3]);
    const { alg, st, k } = sigReady(vm, a[0], MODE_SIGN);
    if (!st.hash) cryptoThrow(vm, Reason.ILLEGAL_USE);
    if (h.length !== HASHES[alg.hash!].length) cryptoThrow(vm, Reason.ILLEGAL_VALUE);
    byteRange(vm, a[4], a[5], 0);
    const out = signDigest(vm, alg, k, h);
    resetAccumulators(vm, alg, st, k);
    writeOut(vm, a[4], a[5], out);
    return out.length;
  },
  'verifyPreComputedHash([BSS[BSS)Z': (vm, a) => {
    const h = readBytes(vm, a[1], a[2], a[3]);
    const sig = readBytes(vm, a[4], a[5], a[6]);
    const { alg, st, k } = sigReady(vm, a[0], MODE_VERIFY);
    if (!st.hash) cryptoThrow(vm, Reason.ILLEGAL_USE);
    if (h.length !== HASHES[alg.hash!].length) cryptoThrow(vm, Reason.ILLEGAL_VALUE);
    const ok = verifyDigest(vm, alg, k, h, sig);
    resetAccumulators(vm, alg, st, k);
    return ok ? 1 : 0;
  },
  // Continuing from an intermediate hash state is not possible on node:crypto (see deviations).
  'setInitialDigest([BSS[BSS)V': (vm) => cryptoThrow(vm, Reason.ILLEGAL_USE),
  'getMessageDigestAlgorithm()B': (vm, a) => sigAlgOf(vm, vm.heap.instance(a[0])).md,
  'getCipherAlgorithm()B': (vm, a) => sigAlgOf(vm, vm.heap.instance(a[0])).cipher,
  'getPaddingAlgorithm()B': (vm, a) => sigAlgOf(vm, vm.heap.instance(a[0])).padding,
};

const signature: NativeClassImpl = {
  name: 'javacard.security.Signature',
  methods: {
    'getInstance(BZ)Ljavacard/security/Signature;': (vm, a) => {
      if (!SIGNATURES[a[0]]) cryptoThrow(vm, Reason.NO_SUCH_ALGORITHM);
      return newEngine(vm, SIG_IMPL, { alg: a[0] });
    },
    'getInstance(BBBZ)Ljavacard/security/Signature;': (vm, a) => {
      const alg = sigAlgFor(a[0], a[1], a[2]);
      if (alg === undefined) cryptoThrow(vm, Reason.NO_SUCH_ALGORITHM);
      return newEngine(vm, SIG_IMPL, { alg });
    },
  },
};

// ---------------------------------------------------------------------------------------------------------------
// KeyAgreement (ECDH)

const KA_IMPL = 'jpkise.security.KeyAgreementImpl';
/** ALG_EC_SVDP_DH(_KDF) 1, DHC(_KDF) 2: SHA-1 of x; DH_PLAIN 3, DHC_PLAIN 4: x; DH_PLAIN_XY 6: the point. */
const KA_ALGS = new Set([1, 2, 3, 4, 6]);

const kaMethods: Record<string, NativeMethod> = {
  'init(Ljavacard/security/PrivateKey;)V': (vm, a) => {
    const o = vm.heap.instance(a[0]);
    const k = keyOf(vm, a[1]);
    if (k.fam !== 'EC_PRIV') cryptoThrow(vm, Reason.ILLEGAL_VALUE);
    requireInitialized(vm, k);
    o.cache = { keyRef: a[1] };
  },
  'getAlgorithm()B': (vm, a) => nativeNum(vm.heap.instance(a[0]), 'alg'),
  'generateSecret([BSS[BS)S': (vm, a) => {
    const o = vm.heap.instance(a[0]);
    const w = readBytes(vm, a[1], a[2], a[3]);
    const st = o.cache as { keyRef: Ref } | undefined;
    if (!st) cryptoThrow(vm, Reason.INVALID_INIT);
    const k = keyOf(vm, st.keyRef);
    requireInitialized(vm, k);
    const curve = curveOf(vm, k);
    const s = getComp(vm, k, 's')!;
    const alg = nativeNum(o, 'alg');
    vm.cycles.crypto(`${keyLabel(k)}/ecdh`, 0);
    let out: Uint8Array;
    if (alg === 6) out = guarded(vm, () => ecdhFullPoint(curve, s, w));
    else {
      const x = guarded(vm, () => ecdhX(curve, s, w));
      out = alg <= 2 ? digest('SHA-1', x) : x;
    }
    writeOut(vm, a[4], a[5], out);
    return out.length;
  },
};

const keyAgreement: NativeClassImpl = {
  name: 'javacard.security.KeyAgreement',
  methods: {
    'getInstance(BZ)Ljavacard/security/KeyAgreement;': (vm, a) => {
      if (!KA_ALGS.has(a[0])) cryptoThrow(vm, Reason.NO_SUCH_ALGORITHM);
      return newEngine(vm, KA_IMPL, { alg: a[0] });
    },
  },
};

const checksum: NativeClassImpl = {
  name: 'javacard.security.Checksum',
  methods: {
    'getInstance(BZ)Ljavacard/security/Checksum;': (vm) => cryptoThrow(vm, Reason.NO_SUCH_ALGORITHM),
  },
};

/** CryptoException: the reason lives where the CardRuntimeException family keeps it (api/exceptions.ts). */
const cryptoException: NativeClassImpl = {
  name: CRYPTO_EXCEPTION,
  methods: {
    '<init>(S)V': (vm, a) => writeReason(vm, vm.heap.instance(a[0]), a[1]),
    'throwIt(S)V': (vm, a) => cryptoThrow(vm, a[0]),
  },
};

function sigAlgFor(md: number, cipher: number, padding: number): number | undefined {
  const hit = Object.entries(SIGNATURES).find(([, s]) => s.md === md && s.cipher === cipher && s.padding === padding);
  return hit ? Number(hit[0]) : undefined;
}

const ONE_SHOTS: NativeClassImpl[] = [
  {
    name: 'javacard.security.Signature$OneShot',
    methods: {
      ...sigMethods,
      'open(BBB)Ljavacard/security/Signature$OneShot;': (vm, a) => {
        const alg = sigAlgFor(a[0], a[1], a[2]);
        if (alg === undefined) cryptoThrow(vm, Reason.NO_SUCH_ALGORITHM);
        return oneShotOpen(vm, 'javacard.security.Signature$OneShot', alg);
      },
      'close()V': oneShotClose,
    },
  },
  {
    name: 'javacard.security.MessageDigest$OneShot',
    methods: {
      ...mdMethods,
      'open(B)Ljavacard/security/MessageDigest$OneShot;': (vm, a) => {
        if (!DIGESTS[a[0]]) cryptoThrow(vm, Reason.NO_SUCH_ALGORITHM);
        return oneShotOpen(vm, 'javacard.security.MessageDigest$OneShot', a[0]);
      },
      'close()V': oneShotClose,
    },
  },
  {
    name: 'javacard.security.InitializedMessageDigest$OneShot',
    methods: {
      ...mdMethods,
      'open(B)Ljavacard/security/InitializedMessageDigest$OneShot;': (vm) => cryptoThrow(vm, Reason.NO_SUCH_ALGORITHM),
      'close()V': oneShotClose,
    },
  },
  {
    name: 'javacard.security.RandomData$OneShot',
    methods: {
      ...randomMethods,
      'open(B)Ljavacard/security/RandomData$OneShot;': (vm, a) => {
        if (a[0] < 1 || a[0] > 6) cryptoThrow(vm, Reason.NO_SUCH_ALGORITHM);
        return oneShotOpen(vm, 'javacard.security.RandomData$OneShot', a[0]);
      },
      'close()V': oneShotClose,
    },
  },
];

/** Every native class of javacard.security (API classes with static methods, and the hidden implementations). */
export const SECURITY_CLASSES: NativeClassImpl[] = [
  keyBuilder,
  ...KEY_IMPLS,
  keyPair,
  messageDigest,
  { name: MD_IMPL, extends: 'javacard.security.InitializedMessageDigest', methods: mdMethods },
  randomData,
  { name: RANDOM_IMPL, extends: 'javacard.security.RandomData', methods: randomMethods },
  signature,
  { name: SIG_IMPL, extends: 'javacard.security.Signature', methods: sigMethods },
  keyAgreement,
  { name: KA_IMPL, extends: 'javacard.security.KeyAgreement', methods: kaMethods },
  checksum,
  cryptoException,
  ...ONE_SHOTS,
];

