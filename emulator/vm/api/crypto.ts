// javacardx.crypto.Cipher (Java Card 3.0.5 classic API): AES and DES/3DES in ECB/CBC with NOPAD, ISO 9797-1 M1/M2
// and PKCS#5 padding, and RSA with PKCS#1 v1.5, OAEP (SHA-1, empty label) or no padding. The algorithm is persistent
// (native record); the init state (key, mode, IV, buffered partial block) is volatile (HeapInstance.cache), see
// security.ts for why.
import type { HeapInstance, NativeClassImpl, NativeMethod, Ref, Vm } from '../types.ts';
import { blockCrypt, blockSize, oaepDecode, oaepEncode, pad, pkcs1EncryptionBlock, pkcs1SignatureBlock, pkcs1Unpad, unpad } from './crypto-core.ts';
import type { BlockAlg, PadMode } from './crypto-core.ts';
import { Reason, byteRange, cryptoThrow, getComp, guarded, keyLabel, keyOf, newEngine, oneShotClose, oneShotOpen, readBytes, requireInitialized, rsaRaw, writeOut } from './security.ts';
import type { KeyView } from './security.ts';

interface CipherAlg {
  kind: 'BLOCK' | 'RSA';
  block?: BlockAlg;
  mode?: 'ECB' | 'CBC';
  pad?: PadMode;
  rsaPad?: 'NOPAD' | 'PKCS1' | 'OAEP';
  /** getCipherAlgorithm / getPaddingAlgorithm values (Cipher.CIPHER_*, Cipher.PAD_*). */
  cipher: number;
  padding: number;
}

const CIPHER = { AES_CBC: 1, AES_ECB: 2, DES_CBC: 3, DES_ECB: 4, RSA: 7 } as const;
const PAD = { NOPAD: 1, M1: 2, M2: 3, PKCS5: 6, PKCS1: 7, OAEP: 9 } as const;
const PAD_CODE: Record<PadMode, number> = { NOPAD: PAD.NOPAD, M1: PAD.M1, M2: PAD.M2, PKCS5: PAD.PKCS5 };

function blk(block: BlockAlg, mode: 'ECB' | 'CBC', p: PadMode): CipherAlg {
  const cipher = block === 'AES' ? (mode === 'CBC' ? CIPHER.AES_CBC : CIPHER.AES_ECB) : mode === 'CBC' ? CIPHER.DES_CBC : CIPHER.DES_ECB;
  return { kind: 'BLOCK', block, mode, pad: p, cipher, padding: PAD_CODE[p] };
}

/** Cipher.ALG_* the emulator implements; every other value is NO_SUCH_ALGORITHM. */
export const CIPHERS: Record<number, CipherAlg> = {
  1: blk('DES', 'CBC', 'NOPAD'),
  2: blk('DES', 'CBC', 'M1'),
  3: blk('DES', 'CBC', 'M2'),
  4: blk('DES', 'CBC', 'PKCS5'),
  5: blk('DES', 'ECB', 'NOPAD'),
  6: blk('DES', 'ECB', 'M1'),
  7: blk('DES', 'ECB', 'M2'),
  8: blk('DES', 'ECB', 'PKCS5'),
  10: { kind: 'RSA', rsaPad: 'PKCS1', cipher: CIPHER.RSA, padding: PAD.PKCS1 },
  12: { kind: 'RSA', rsaPad: 'NOPAD', cipher: CIPHER.RSA, padding: PAD.NOPAD },
  13: blk('AES', 'CBC', 'NOPAD'),
  14: blk('AES', 'ECB', 'NOPAD'),
  15: { kind: 'RSA', rsaPad: 'OAEP', cipher: CIPHER.RSA, padding: PAD.OAEP },
  22: blk('AES', 'CBC', 'M1'),
  23: blk('AES', 'CBC', 'M2'),
  24: blk('AES', 'CBC', 'PKCS5'),
  25: blk('AES', 'ECB', 'M1'),
  26: blk('AES', 'ECB', 'M2'),
  27: blk('AES', 'ECB', 'PKCS5'),
};

const CIPHER_IMPL = 'jpkise.crypto.CipherImpl';
const MODE_DECRYPT = 1;
const MODE_ENCRYPT = 2;

interface CipherState {
  mode: number;
  keyRef: Ref;
  iv0: Uint8Array | null;
  /** CBC chaining value after the blocks processed so far. */
  iv: Uint8Array | null;
  /** Bytes not yet processed: a partial block (block ciphers) or the whole message (RSA). */
  pending: Uint8Array;
}

function algOf(o: HeapInstance): CipherAlg {
  const v = o.native?.alg;
  return CIPHERS[typeof v === 'number' ? v : 0];
}

function keyFits(alg: CipherAlg, k: KeyView): boolean {
  if (alg.kind === 'RSA') return k.fam === 'RSA_PUB' || k.fam === 'RSA_PRIV' || k.fam === 'RSA_CRT';
  return alg.block === 'AES' ? k.fam === 'AES' : k.fam === 'DES';
}

function init(vm: Vm, a: Int32Array, withIv: boolean): void {
  const o = vm.heap.instance(a[0]);
  const alg = algOf(o);
  const mode = a[2];
  if (mode !== MODE_DECRYPT && mode !== MODE_ENCRYPT) cryptoThrow(vm, Reason.ILLEGAL_VALUE);
  const k = keyOf(vm, a[1]);
  if (!keyFits(alg, k)) cryptoThrow(vm, Reason.ILLEGAL_VALUE);
  let iv: Uint8Array | null = null;
  if (alg.kind === 'BLOCK' && alg.mode === 'CBC') iv = new Uint8Array(blockSize(alg.block!));
  if (withIv) {
    const data = readBytes(vm, a[3], a[4], a[5]);
    // Only CBC takes a parameter: the IV, one block long (Cipher.init javadoc).
    if (!iv || data.length !== iv.length) cryptoThrow(vm, Reason.ILLEGAL_VALUE);
    iv = data;
  }
  requireInitialized(vm, k);
  vm.cycles.crypto('CIPHER/init', 0);
  o.cache = { mode, keyRef: a[1], iv0: iv, iv, pending: new Uint8Array(0) } satisfies CipherState;
}

function ready(vm: Vm, ref: Ref): { o: HeapInstance; alg: CipherAlg; st: CipherState; k: KeyView } {
  const o = vm.heap.instance(ref);
  const st = o.cache as CipherState | undefined;
  if (!st) cryptoThrow(vm, Reason.INVALID_INIT);
  const k = keyOf(vm, st.keyRef);
  requireInitialized(vm, k);
  return { o, alg: algOf(o), st, k };
}

function join(a: Uint8Array, b: Uint8Array): Uint8Array {
  if (!a.length) return b;
  const out = new Uint8Array(a.length + b.length);
  out.set(a);
  out.set(b, a.length);
  return out;
}

/** Encrypts/decrypts whole blocks, advancing the CBC chaining value. */
function runBlocks(vm: Vm, alg: CipherAlg, st: CipherState, k: KeyView, data: Uint8Array): Uint8Array {
  if (!data.length) return data;
  const key = getComp(vm, k, 'key')!;
  const encrypt = st.mode === MODE_ENCRYPT;
  vm.cycles.crypto(`${keyLabel(k)}/${alg.mode}`, data.length);
  const out = guarded(vm, () => blockCrypt(alg.block!, alg.mode!, encrypt, key, st.iv, data));
  if (st.iv) {
    const bs = blockSize(alg.block!);
    st.iv = (encrypt ? out : data).slice(data.length - bs);
  }
  return out;
}

function rsaFinal(vm: Vm, st: CipherState, alg: CipherAlg, k: KeyView, data: Uint8Array): Uint8Array {
  const len = Math.ceil(k.size / 8);
  const isPublic = k.fam === 'RSA_PUB';
  // One private ("/sign") or public ("/public") RSA operation whatever the mode (emulator/vm/cycles.ts keys).
  vm.cycles.crypto(`${keyLabel(k)}/${isPublic ? 'public' : 'sign'}`, 0);
  const random = (n: number) => vm.services.random(n);
  if (st.mode === MODE_ENCRYPT) {
    let block: Uint8Array;
    if (alg.rsaPad === 'NOPAD') {
      if (data.length !== len) cryptoThrow(vm, Reason.ILLEGAL_USE);
      block = data;
    } else if (alg.rsaPad === 'PKCS1') {
      // Block type 2 with a public key, type 1 with a private key (PKCS#1 v1.5 §8.1, as the Cipher javadoc describes).
      block = guarded(vm, () => (isPublic ? pkcs1EncryptionBlock(len, data, random) : pkcs1SignatureBlock(len, data)));
    } else {
      block = guarded(vm, () => oaepEncode('SHA-1', len, data, random));
    }
    return rsaRaw(vm, k, block);
  }
  if (data.length !== len) cryptoThrow(vm, Reason.ILLEGAL_USE);
  const em = rsaRaw(vm, k, data);
  if (alg.rsaPad === 'NOPAD') return em;
  const m = alg.rsaPad === 'PKCS1' ? pkcs1Unpad(em, isPublic ? 1 : 2) : oaepDecode('SHA-1', em);
  if (!m) cryptoThrow(vm, Reason.ILLEGAL_USE);
  return m;
}

/** The rest of doFinal for block ciphers: padding on encryption, checked removal on decryption. */
function blockFinal(vm: Vm, alg: CipherAlg, st: CipherState, k: KeyView, data: Uint8Array): Uint8Array {
  const bs = blockSize(alg.block!);
  if (st.mode === MODE_ENCRYPT) return runBlocks(vm, alg, st, k, guarded(vm, () => pad(alg.pad!, data, bs)));
  if (data.length % bs !== 0) cryptoThrow(vm, Reason.ILLEGAL_USE);
  const plain = runBlocks(vm, alg, st, k, data);
  return guarded(vm, () => unpad(alg.pad!, plain, bs));
}

const cipherMethods: Record<string, NativeMethod> = {
  'init(Ljavacard/security/Key;B)V': (vm, a) => init(vm, a, false),
  'init(Ljavacard/security/Key;B[BSS)V': (vm, a) => init(vm, a, true),
  'getAlgorithm()B': (vm, a) => {
    const v = vm.heap.instance(a[0]).native?.alg;
    return typeof v === 'number' ? v : 0;
  },
  'getCipherAlgorithm()B': (vm, a) => algOf(vm.heap.instance(a[0])).cipher,
  'getPaddingAlgorithm()B': (vm, a) => algOf(vm.heap.instance(a[0])).padding,
  /**
   * update: whole blocks go through at once; a trailing partial block waits for more. When decrypting with padding
   * the last whole block also waits, since only doFinal may strip the padding. RSA buffers everything.
   */
  'update([BSS[BS)S': (vm, a) => {
    const input = readBytes(vm, a[1], a[2], a[3]);
    const { alg, st, k } = ready(vm, a[0]);
    byteRange(vm, a[4], a[5], 0);
    const data = join(st.pending, input);
    if (alg.kind === 'RSA') {
      if (data.length > Math.ceil(k.size / 8)) cryptoThrow(vm, Reason.ILLEGAL_USE);
      st.pending = data;
      return 0;
    }
    const bs = blockSize(alg.block!);
    let take = data.length - (data.length % bs);
    const holdBack = st.mode === MODE_DECRYPT && (alg.pad === 'M2' || alg.pad === 'PKCS5');
    if (holdBack && take === data.length && take > 0) take -= bs;
    byteRange(vm, a[4], a[5], take);
    const out = runBlocks(vm, alg, st, k, data.subarray(0, take));
    st.pending = data.slice(take);
    writeOut(vm, a[4], a[5], out);
    return out.length;
  },
  'doFinal([BSS[BS)S': (vm, a) => {
    const input = readBytes(vm, a[1], a[2], a[3]);
    const { alg, st, k } = ready(vm, a[0]);
    byteRange(vm, a[4], a[5], 0);
    const data = join(st.pending, input);
    // doFinal leaves the object as init left it: IV back to its initial value, nothing buffered (Cipher javadoc).
    st.pending = new Uint8Array(0);
    let out: Uint8Array;
    try {
      out = alg.kind === 'RSA' ? rsaFinal(vm, st, alg, k, data) : blockFinal(vm, alg, st, k, data);
    } finally {
      st.iv = st.iv0;
    }
    writeOut(vm, a[4], a[5], out);
    return out.length;
  },
};

function cipherInstance(vm: Vm, alg: number): Ref {
  if (!CIPHERS[alg]) cryptoThrow(vm, Reason.NO_SUCH_ALGORITHM);
  return newEngine(vm, CIPHER_IMPL, { alg });
}

function cipherAlgFor(vm: Vm, cipherAlg: number, paddingAlg: number): number {
  const hit = Object.entries(CIPHERS).find(([, c]) => c.cipher === cipherAlg && c.padding === paddingAlg);
  if (!hit) cryptoThrow(vm, Reason.NO_SUCH_ALGORITHM);
  return Number(hit[0]);
}

const cipher: NativeClassImpl = {
  name: 'javacardx.crypto.Cipher',
  methods: {
    'getInstance(BZ)Ljavacardx/crypto/Cipher;': (vm, a) => cipherInstance(vm, a[0]),
    'getInstance(BBZ)Ljavacardx/crypto/Cipher;': (vm, a) => cipherInstance(vm, cipherAlgFor(vm, a[0], a[1])),
  },
};

const ONE_SHOT = 'javacardx.crypto.Cipher$OneShot';
const cipherOneShot: NativeClassImpl = {
  name: ONE_SHOT,
  methods: {
    ...cipherMethods,
    'open(BB)Ljavacardx/crypto/Cipher$OneShot;': (vm, a) => oneShotOpen(vm, ONE_SHOT, cipherAlgFor(vm, a[0], a[1])),
    'close()V': oneShotClose,
  },
};

/** javacardx.crypto natives: Cipher and its hidden implementation class. KeyEncryption is not offered. */
export const CRYPTO_CLASSES: NativeClassImpl[] = [cipher, { name: CIPHER_IMPL, extends: 'javacardx.crypto.Cipher', methods: cipherMethods }, cipherOneShot];

