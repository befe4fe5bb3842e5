// javacard.security, javacardx.crypto and org.globalplatform natives through the real heap (test/helpers/
// vm-fake-security.ts): keys as hidden persistent arrays, engines, the CryptoException reasons of the javadoc,
// results checked by node:crypto, and the SecureChannel against the host side of emulator/scp03.ts.
import { beforeEach, describe, expect, test } from 'vitest';
import { constants, createHash, createHmac, createPublicKey, generateKeyPairSync, publicEncrypt, verify } from 'node:crypto';
import { fromHex, hex } from '../emulator/bytes.ts';
import { IsoError } from '../emulator/iso.ts';
import { openMemoryStore } from '../emulator/store.ts';
import { DEFAULT_PROFILE } from '../emulator/profile.ts';
import { createChipState, loadModel } from '../emulator/gp/registry.ts';
import type { AppEntry } from '../emulator/gp/registry.ts';
import { freshChannel } from '../emulator/gp/env.ts';
import type { CardEnv } from '../emulator/gp/env.ts';
import { Level, hostAuthenticate, hostInitializeUpdate, hostUnwrap, hostWrap } from '../emulator/scp03.ts';
import type { HostOptions } from '../emulator/scp03.ts';
import { encodeResponse } from '../emulator/apdu.ts';
import { createSecureChannelService } from '../emulator/vm/secure-channel.ts';
import { retailMac } from '../emulator/vm/api/crypto-core.ts';
import { Memory } from '../emulator/vm/types.ts';
import type { HeapArray, Ref } from '../emulator/vm/types.ts';
import { securityHarness } from './helpers/vm-fake-security.ts';
import type { SecurityHarness } from './helpers/vm-fake-security.ts';

const KB = 'javacard.security.KeyBuilder';
const BUILD = 'buildKey(BSZ)Ljavacard/security/Key;';
const SIG = 'javacard.security.Signature';
const SIG_GET = 'getInstance(BZ)Ljavacard/security/Signature;';
const INIT = 'init(Ljavacard/security/Key;B)V';
const INIT_IV = 'init(Ljavacard/security/Key;B[BSS)V';
const SIGN = 'sign([BSS[BS)S';
const VERIFY = 'verify([BSS[BSS)Z';
const CIPHER = 'javacardx.crypto.Cipher';
const CIPHER_GET = 'getInstance(BZ)Ljavacardx/crypto/Cipher;';
const DO_FINAL = 'doFinal([BSS[BS)S';
const UPDATE_C = 'update([BSS[BS)S';
const R = { ILLEGAL_VALUE: 1, UNINITIALIZED_KEY: 2, NO_SUCH_ALGORITHM: 3, INVALID_INIT: 4, ILLEGAL_USE: 5 };
const TYPE = { DES: 3, RSA_PUBLIC: 4, RSA_PRIVATE: 5, RSA_CRT_PRIVATE: 6, EC_FP_PUBLIC: 11, EC_FP_PRIVATE: 12, AES_TRANSIENT_DESELECT: 14, AES: 15, HMAC: 21 };
const b64 = (s: string | undefined) => new Uint8Array(Buffer.from(s ?? '', 'base64url'));

let h: SecurityHarness;
beforeEach(() => {
  h = securityHarness();
});

function key(type: number, size: number): Ref {
  return h.st(KB, BUILD, type, size, 0);
}
function sig(alg: number): Ref {
  return h.st(SIG, SIG_GET, alg, 0);
}
function cipher(alg: number): Ref {
  return h.st(CIPHER, CIPHER_GET, alg, 0);
}
function out(a: HeapArray, n: number): Uint8Array {
  return h.read(a).subarray(0, n);
}
/** sign(all of `data`) into a fresh buffer; returns the signature bytes. */
function signAll(s: Ref, data: Uint8Array): Uint8Array {
  const inA = h.arr(data);
  const o = h.arr(600);
  const n = h.on(s, SIGN, inA.ref, 0, data.length, o.ref, 0);
  return out(o, n);
}
function verifyAll(s: Ref, data: Uint8Array, signature: Uint8Array): boolean {
  const inA = h.arr(data);
  const sA = h.arr(signature);
  return h.on(s, VERIFY, inA.ref, 0, data.length, sA.ref, 0, signature.length) === 1;
}
function setComp(k: Ref, method: string, value: Uint8Array): void {
  const a = h.arr(value);
  h.on(k, method, a.ref, 0, value.length);
}
function getComp(k: Ref, method: string): Uint8Array {
  const o = h.arr(600);
  const n = h.on(k, method, o.ref, 0);
  return out(o, n);
}
function newKeyPair(alg: number, size: number): Ref {
  const o = h.heap.newInstance(h.vm.apiClass('javacard.security.KeyPair'), h.vm.context);
  h.st('javacard.security.KeyPair', '<init>(BS)V', o.ref, alg, size);
  return o.ref;
}
function pairKeys(kp: Ref): { pub: Ref; priv: Ref } {
  return { pub: h.on(kp, 'getPublic()Ljavacard/security/PublicKey;'), priv: h.on(kp, 'getPrivate()Ljavacard/security/PrivateKey;') };
}
function crypt(c: Ref, data: Uint8Array): Uint8Array {
  const inA = h.arr(data);
  const o = h.arr(600);
  const n = h.on(c, DO_FINAL, inA.ref, 0, data.length, o.ref, 0);
  return out(o, n);
}

describe('KeyBuilder and key objects', () => {
  test('each key type is a hidden class implementing its API interface', () => {
    const cases: [number, number, string][] = [
      [TYPE.RSA_PUBLIC, 2048, 'javacard.security.RSAPublicKey'],
      [TYPE.RSA_PRIVATE, 1024, 'javacard.security.RSAPrivateKey'],
      [TYPE.RSA_CRT_PRIVATE, 2048, 'javacard.security.RSAPrivateCrtKey'],
      [TYPE.EC_FP_PUBLIC, 256, 'javacard.security.ECPublicKey'],
      [TYPE.EC_FP_PRIVATE, 256, 'javacard.security.ECPrivateKey'],
      [TYPE.AES, 256, 'javacard.security.AESKey'],
      [TYPE.DES, 128, 'javacard.security.DESKey'],
      [TYPE.HMAC, 64, 'javacard.security.HMACKey'],
    ];
    for (const [type, size, iface] of cases) {
      const k = key(type, size);
      const cls = h.heap.instance(k).cls;
      expect(cls.interfaces.map((c) => c.name)).toContain(iface);
      expect(cls.interfaces.map((c) => c.name)).toContain('javacard.security.Key');
      expect(h.on(k, 'getType()B')).toBe(type);
      expect(h.on(k, 'getSize()S')).toBe(size);
      expect(h.on(k, 'isInitialized()Z')).toBe(0);
    }
  });

  test('unsupported types, sizes and key encryption are NO_SUCH_ALGORITHM', () => {
    expect(h.fails(() => key(8 /* DSA private */, 1024))).toBe(R.NO_SUCH_ALGORITHM);
    expect(h.fails(() => key(TYPE.AES, 100))).toBe(R.NO_SUCH_ALGORITHM);
    expect(h.fails(() => key(TYPE.RSA_PUBLIC, 8192))).toBe(R.NO_SUCH_ALGORITHM);
    expect(h.fails(() => key(TYPE.EC_FP_PRIVATE, 233))).toBe(R.NO_SUCH_ALGORITHM);
    expect(h.fails(() => h.st(KB, BUILD, TYPE.AES, 128, 1))).toBe(R.NO_SUCH_ALGORITHM);
    // buildKey(BBSZ): ALG_TYPE_AES with MEMORY_TYPE_TRANSIENT_DESELECT is TYPE_AES_TRANSIENT_DESELECT
    const k = h.st(KB, 'buildKey(BBSZ)Ljavacard/security/Key;', 2, 2, 128, 0);
    expect(h.on(k, 'getType()B')).toBe(TYPE.AES_TRANSIENT_DESELECT);
    expect(h.fails(() => h.st(KB, 'buildKey(BBSZ)Ljavacard/security/Key;', 11, 1, 1024, 0))).toBe(R.NO_SUCH_ALGORITHM);
  });

  test('AES key: set, get, clear; getKey of a cleared key is UNINITIALIZED_KEY', () => {
    const k = key(TYPE.AES, 128);
    const v = h.arr('000102030405060708090a0b0c0d0e0f');
    h.on(k, 'setKey([BS)V', v.ref, 0);
    expect(h.on(k, 'isInitialized()Z')).toBe(1);
    expect(hex(getComp(k, 'getKey([BS)B'))).toBe('000102030405060708090A0B0C0D0E0F');
    h.on(k, 'clearKey()V');
    expect(h.on(k, 'isInitialized()Z')).toBe(0);
    expect(h.fails(() => getComp(k, 'getKey([BS)B'))).toBe(R.UNINITIALIZED_KEY);
    // too few bytes after the offset: the array bounds, not the key, fail
    expect(h.fails(() => h.on(k, 'setKey([BS)V', v.ref, 4))).toBe('java.lang.ArrayIndexOutOfBoundsException');
  });

  test('a CLEAR_ON_DESELECT key is uninitialized after deselect; a persistent one is not', () => {
    const t = h.st(KB, BUILD, TYPE.AES_TRANSIENT_DESELECT, 128, 0);
    const p = key(TYPE.AES, 128);
    const v = h.arr(16);
    h.on(t, 'setKey([BS)V', v.ref, 0);
    h.on(p, 'setKey([BS)V', v.ref, 0);
    h.heap.clearTransient(Memory.ClearOnDeselect, h.vm.context);
    expect(h.on(t, 'isInitialized()Z')).toBe(0);
    expect(h.on(p, 'isInitialized()Z')).toBe(1);
  });

  test('key writes are transactional, and the prepared key follows a rollback', () => {
    const k = key(TYPE.AES, 128);
    const k1 = h.arr('2b7e151628aed2a6abf7158809cf4f3c');
    const k2 = h.arr('000102030405060708090a0b0c0d0e0f');
    h.on(k, 'setKey([BS)V', k1.ref, 0);
    const c = cipher(14 /* AES ECB NOPAD */);
    h.on(c, INIT, k, 2);
    const pt = fromHex('6bc1bee22e409f96e93d7e117393172a');
    expect(hex(crypt(c, pt))).toBe('3AD77BB40D7A3660A89ECAF32466EF97');
    h.heap.beginTransaction();
    h.on(k, 'setKey([BS)V', k2.ref, 0);
    expect(hex(crypt(c, pt))).not.toBe('3AD77BB40D7A3660A89ECAF32466EF97');
    h.heap.abortTransaction();
    expect(hex(getComp(k, 'getKey([BS)B'))).toBe('2B7E151628AED2A6ABF7158809CF4F3C');
    expect(hex(crypt(c, pt))).toBe('3AD77BB40D7A3660A89ECAF32466EF97');
  });

  test('RSA components: lengths beyond the key size are ILLEGAL_VALUE, leading zeros are tolerated', () => {
    const k = key(TYPE.RSA_PUBLIC, 512);
    expect(h.fails(() => setComp(k, 'setModulus([BSS)V', new Uint8Array(65).fill(1)))).toBe(R.ILLEGAL_VALUE);
    const m = new Uint8Array(65).fill(0xab);
    m[0] = 0;
    setComp(k, 'setModulus([BSS)V', m);
    expect(getComp(k, 'getModulus([BS)S').length).toBe(64);
    expect(h.fails(() => getComp(k, 'getExponent([BS)S'))).toBe(R.UNINITIALIZED_KEY);
  });

  test('EC keys carry the P-256 domain by default; setW wants an uncompressed point', () => {
    const k = key(TYPE.EC_FP_PUBLIC, 256);
    expect(hex(getComp(k, 'getField([BS)S'))).toBe('FFFFFFFF00000001000000000000000000000000FFFFFFFFFFFFFFFFFFFFFFFF');
    expect(getComp(k, 'getG([BS)S')[0]).toBe(4);
    expect(h.on(k, 'getK()S')).toBe(1);
    expect(h.fails(() => setComp(k, 'setW([BSS)V', new Uint8Array(33).fill(2)))).toBe(R.ILLEGAL_VALUE);
  });
});

describe('RSA: KeyPair, Signature, Cipher', () => {
  test('generated CRT key pair signs SHA-256 PKCS#1 that node verifies with the exported public key', () => {
    const kp = newKeyPair(2 /* ALG_RSA_CRT */, 2048);
    h.on(kp, 'genKeyPair()V');
    const { pub, priv } = pairKeys(kp);
    expect(h.heap.instance(priv).cls.interfaces.map((c) => c.name)).toContain('javacard.security.RSAPrivateCrtKey');
    const n = getComp(pub, 'getModulus([BS)S');
    const e = getComp(pub, 'getExponent([BS)S');
    expect(n.length).toBe(256);
    expect(hex(e)).toBe('010001');
    const s = sig(40 /* ALG_RSA_SHA_256_PKCS1 */);
    h.on(s, INIT, priv, 1);
    expect(h.on(s, 'getLength()S')).toBe(256);
    const msg = new TextEncoder().encode('JPKI');
    const signature = signAll(s, msg);
    const nodePub = createPublicKey({ key: { kty: 'RSA', n: Buffer.from(n).toString('base64url'), e: Buffer.from(e).toString('base64url') }, format: 'jwk' });
    expect(verify('sha256', msg, nodePub, signature)).toBe(true);
    const v = sig(40);
    h.on(v, INIT, pub, 2);
    expect(verifyAll(v, msg, signature)).toBe(true);
    expect(verifyAll(v, fromHex('00'), signature)).toBe(false);
    expect(h.charges.map(([op]) => op)).toEqual(expect.arrayContaining(['RSA-2048-CRT/keygen', 'RSA-2048-CRT/sign', 'SHA-256/update', 'SHA-256/digest', 'RSA-2048/public', 'SIGNATURE/init']));
  });

  test('a CRT key loaded from node components; update + sign equals one-shot; signPreComputedHash equals sign', () => {
    const { publicKey, privateKey } = generateKeyPairSync('rsa', { modulusLength: 1024 });
    const j = privateKey.export({ format: 'jwk' });
    const k = key(TYPE.RSA_CRT_PRIVATE, 1024);
    setComp(k, 'setP([BSS)V', b64(j.p));
    setComp(k, 'setQ([BSS)V', b64(j.q));
    setComp(k, 'setDP1([BSS)V', b64(j.dp));
    setComp(k, 'setDQ1([BSS)V', b64(j.dq));
    expect(h.on(k, 'isInitialized()Z')).toBe(0);
    setComp(k, 'setPQ([BSS)V', b64(j.qi));
    expect(h.on(k, 'isInitialized()Z')).toBe(1);
    const s = sig(10 /* ALG_RSA_SHA_PKCS1 */);
    h.on(s, INIT, k, 1);
    const msg = new TextEncoder().encode('hello, card');
    const a = h.arr(msg);
    h.on(s, 'update([BSS)V', a.ref, 0, 5);
    const o = h.arr(128);
    const n = h.on(s, SIGN, a.ref, 5, msg.length - 5, o.ref, 0);
    const whole = out(o, n);
    expect(verify('sha1', msg, publicKey, whole)).toBe(true);
    expect(hex(signAll(s, msg))).toBe(hex(whole)); // sign reset the engine: same result again
    const hash = h.arr(new Uint8Array(createHash('sha1').update(msg).digest()));
    const n2 = h.on(s, 'signPreComputedHash([BSS[BS)S', hash.ref, 0, 20, o.ref, 0);
    expect(hex(out(o, n2))).toBe(hex(whole));
    expect(h.fails(() => h.on(s, 'signPreComputedHash([BSS[BS)S', hash.ref, 0, 19, o.ref, 0))).toBe(R.ILLEGAL_VALUE);
  });

  test('PSS signatures verify in node (salt length = hash length)', () => {
    const kp = newKeyPair(2, 1024);
    h.on(kp, 'genKeyPair()V');
    const { pub, priv } = pairKeys(kp);
    const s = sig(44 /* ALG_RSA_SHA_256_PKCS1_PSS */);
    h.on(s, INIT, priv, 1);
    const msg = fromHex('0102030405');
    const signature = signAll(s, msg);
    const nodePub = createPublicKey({
      key: { kty: 'RSA', n: Buffer.from(getComp(pub, 'getModulus([BS)S')).toString('base64url'), e: 'AQAB' },
      format: 'jwk',
    });
    expect(verify('sha256', msg, { key: nodePub, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: 32 }, signature)).toBe(true);
    const v = sig(44);
    h.on(v, INIT, pub, 2);
    expect(verifyAll(v, msg, signature)).toBe(true);
  });

  test('non-CRT private key (ALG_RSA pair) signs what the public key verifies', () => {
    const kp = newKeyPair(1 /* ALG_RSA */, 512);
    h.on(kp, 'genKeyPair()V');
    const { pub, priv } = pairKeys(kp);
    expect(h.on(priv, 'getType()B')).toBe(TYPE.RSA_PRIVATE);
    const s = sig(40);
    h.on(s, INIT, priv, 1);
    const signature = signAll(s, fromHex('AA'));
    const v = sig(40);
    h.on(v, INIT, pub, 2);
    expect(verifyAll(v, fromHex('AA'), signature)).toBe(true);
  });

  test('Cipher RSA: PKCS#1 round trip, NOPAD and OAEP against node encryption', () => {
    const { publicKey, privateKey } = generateKeyPairSync('rsa', { modulusLength: 1024 });
    const j = privateKey.export({ format: 'jwk' });
    const pub = key(TYPE.RSA_PUBLIC, 1024);
    setComp(pub, 'setModulus([BSS)V', b64(j.n));
    setComp(pub, 'setExponent([BSS)V', b64(j.e));
    const priv = key(TYPE.RSA_CRT_PRIVATE, 1024);
    for (const [m, v] of [['setP([BSS)V', j.p], ['setQ([BSS)V', j.q], ['setDP1([BSS)V', j.dp], ['setDQ1([BSS)V', j.dq], ['setPQ([BSS)V', j.qi]] as const)
      setComp(priv, m, b64(v));

    const enc = cipher(10 /* ALG_RSA_PKCS1 */);
    h.on(enc, INIT, pub, 2);
    const ct = crypt(enc, fromHex('C0FFEE'));
    expect(ct.length).toBe(128);
    const dec = cipher(10);
    h.on(dec, INIT, priv, 1);
    expect(hex(crypt(dec, ct))).toBe('C0FFEE');
    const bad = ct.slice();
    bad[10] ^= 0x55;
    expect(h.fails(() => crypt(dec, bad))).toBe(R.ILLEGAL_USE);

    const raw = new Uint8Array(128).fill(0x11);
    const nodeRaw = new Uint8Array(publicEncrypt({ key: publicKey, padding: constants.RSA_NO_PADDING }, raw));
    const nopad = cipher(12 /* ALG_RSA_NOPAD */);
    h.on(nopad, INIT, priv, 1);
    expect(hex(crypt(nopad, nodeRaw))).toBe(hex(raw));
    expect(h.fails(() => crypt(nopad, new Uint8Array(127)))).toBe(R.ILLEGAL_USE);
    expect(h.fails(() => crypt(nopad, new Uint8Array(128).fill(0xff)))).toBe(R.ILLEGAL_USE);

    const oaep = cipher(15 /* ALG_RSA_PKCS1_OAEP */);
    h.on(oaep, INIT, priv, 1);
    const nodeOaep = new Uint8Array(publicEncrypt({ key: publicKey, padding: constants.RSA_PKCS1_OAEP_PADDING }, fromHex('1234')));
    expect(hex(crypt(oaep, nodeOaep))).toBe('1234');
    expect(h.fails(() => h.on(nopad, INIT_IV, priv, 1, h.arr(16).ref, 0, 16))).toBe(R.ILLEGAL_VALUE);
  });
});

describe('CryptoException reasons where the javadoc puts them', () => {
  test('Signature', () => {
    expect(h.fails(() => sig(14 /* ALG_DSA_SHA */))).toBe(R.NO_SUCH_ALGORITHM);
    expect(h.fails(() => sig(35 /* AES_MAC_192: 192-bit block */))).toBe(R.NO_SUCH_ALGORITHM);
    const kp = newKeyPair(2, 512);
    const { pub, priv } = pairKeys(kp);
    const s = sig(40);
    expect(h.fails(() => h.on(s, INIT, priv, 1))).toBe(R.UNINITIALIZED_KEY);
    h.on(kp, 'genKeyPair()V');
    expect(h.fails(() => h.on(s, INIT, priv, 3))).toBe(R.ILLEGAL_VALUE); // undefined mode
    expect(h.fails(() => h.on(s, INIT, pub, 1))).toBe(R.ILLEGAL_VALUE); // public key for signing
    expect(h.fails(() => h.on(s, INIT, key(TYPE.AES, 128), 1))).toBe(R.ILLEGAL_VALUE);
    expect(h.fails(() => signAll(s, fromHex('00')))).toBe(R.INVALID_INIT); // never initialized
    expect(h.fails(() => h.on(s, 'getLength()S'))).toBe(R.INVALID_INIT);
    h.on(s, INIT, pub, 2);
    expect(h.fails(() => signAll(s, fromHex('00')))).toBe(R.INVALID_INIT); // verify mode
    expect(h.fails(() => h.on(s, INIT_IV, pub, 2, h.arr(8).ref, 0, 8))).toBe(R.ILLEGAL_VALUE); // RSA takes no IV
    h.on(s, INIT, priv, 1);
    h.on(priv, 'clearKey()V');
    expect(h.fails(() => signAll(s, fromHex('00')))).toBe(R.UNINITIALIZED_KEY);
    // a signature of a MAC algorithm over a precomputed hash is ILLEGAL_USE
    const ak = key(TYPE.AES, 128);
    h.on(ak, 'setKey([BS)V', h.arr(16).ref, 0);
    const cmac = sig(49);
    h.on(cmac, INIT, ak, 1);
    expect(h.fails(() => h.on(cmac, 'signPreComputedHash([BSS[BS)S', h.arr(32).ref, 0, 32, h.arr(64).ref, 0))).toBe(R.ILLEGAL_USE);
  });

  test('engine init state is volatile: lost state reads as not initialized', () => {
    const ak = key(TYPE.AES, 128);
    h.on(ak, 'setKey([BS)V', h.arr(16).ref, 0);
    const s = sig(49);
    h.on(s, INIT, ak, 1);
    expect(signAll(s, fromHex('00')).length).toBe(16);
    h.heap.instance(s).cache = undefined; // what a power cycle leaves
    expect(h.fails(() => signAll(s, fromHex('00')))).toBe(R.INVALID_INIT);
  });

  test('Cipher', () => {
    expect(h.fails(() => cipher(9 /* ISO14888 */))).toBe(R.NO_SUCH_ALGORITHM);
    expect(h.fails(() => cipher(18 /* AES 192-bit block */))).toBe(R.NO_SUCH_ALGORITHM);
    const c = cipher(13);
    const ak = key(TYPE.AES, 128);
    expect(h.fails(() => h.on(c, INIT, ak, 2))).toBe(R.UNINITIALIZED_KEY);
    h.on(ak, 'setKey([BS)V', h.arr(16).ref, 0);
    expect(h.fails(() => crypt(c, new Uint8Array(16)))).toBe(R.INVALID_INIT);
    expect(h.fails(() => h.on(c, INIT, ak, 0))).toBe(R.ILLEGAL_VALUE);
    expect(h.fails(() => h.on(c, INIT, key(TYPE.DES, 128), 2))).toBe(R.ILLEGAL_VALUE);
    expect(h.fails(() => h.on(c, INIT_IV, ak, 2, h.arr(8).ref, 0, 8))).toBe(R.ILLEGAL_VALUE); // IV must be 16
    h.on(c, INIT, ak, 2);
    expect(h.fails(() => crypt(c, new Uint8Array(15)))).toBe(R.ILLEGAL_USE); // NOPAD, not block aligned
    const o = h.arr(8);
    expect(h.fails(() => h.on(c, DO_FINAL, h.arr(16).ref, 0, 16, o.ref, 0))).toBe('java.lang.ArrayIndexOutOfBoundsException');
  });

  test('MessageDigest, RandomData, KeyAgreement, KeyPair algorithms', () => {
    expect(h.fails(() => h.st('javacard.security.MessageDigest', 'getInstance(BZ)Ljavacard/security/MessageDigest;', 12, 0))).toBe(R.NO_SUCH_ALGORITHM);
    expect(h.fails(() => h.st('javacard.security.MessageDigest', 'getInitializedMessageDigestInstance(BZ)Ljavacard/security/InitializedMessageDigest;', 4, 0))).toBe(
      R.NO_SUCH_ALGORITHM,
    );
    expect(h.fails(() => h.st('javacard.security.RandomData', 'getInstance(B)Ljavacard/security/RandomData;', 7))).toBe(R.NO_SUCH_ALGORITHM);
    expect(h.fails(() => h.st('javacard.security.KeyAgreement', 'getInstance(BZ)Ljavacard/security/KeyAgreement;', 7, 0))).toBe(R.NO_SUCH_ALGORITHM);
    expect(h.fails(() => h.st('javacard.security.Checksum', 'getInstance(BZ)Ljavacard/security/Checksum;', 1, 0))).toBe(R.NO_SUCH_ALGORITHM);
    expect(h.fails(() => newKeyPair(3 /* ALG_DSA */, 1024))).toBe(R.NO_SUCH_ALGORITHM);
    const o = h.heap.newInstance(h.vm.apiClass('javacard.security.KeyPair'), h.vm.context);
    expect(h.fails(() => h.st('javacard.security.KeyPair', '<init>(Ljavacard/security/PublicKey;Ljavacard/security/PrivateKey;)V', o.ref, key(4, 1024), key(6, 2048)))).toBe(
      R.ILLEGAL_VALUE,
    );
  });

  test('CryptoException.throwIt keeps its reason', () => {
    expect(h.fails(() => h.st('javacard.security.CryptoException', 'throwIt(S)V', 5))).toBe(5);
  });
});

describe('EC: ECDSA and ECDH', () => {
  function ecPair(): { pub: Ref; priv: Ref } {
    const kp = newKeyPair(5 /* ALG_EC_FP */, 256);
    h.on(kp, 'genKeyPair()V');
    return pairKeys(kp);
  }

  test('ECDSA SHA-256 signatures (DER) verify in node; getLength is the DER maximum', () => {
    const { pub, priv } = ecPair();
    const w = getComp(pub, 'getW([BS)S');
    expect(w.length).toBe(65);
    expect(getComp(priv, 'getS([BS)S').length).toBe(32);
    const s = sig(33);
    h.on(s, INIT, priv, 1);
    expect(h.on(s, 'getLength()S')).toBe(72);
    const msg = new TextEncoder().encode('authenticator data');
    const signature = signAll(s, msg);
    expect(signature[0]).toBe(0x30);
    const nodePub = createPublicKey({
      key: { kty: 'EC', crv: 'P-256', x: Buffer.from(w.subarray(1, 33)).toString('base64url'), y: Buffer.from(w.subarray(33)).toString('base64url') },
      format: 'jwk',
    });
    expect(verify('sha256', msg, { key: nodePub, dsaEncoding: 'der' }, signature)).toBe(true);
    const v = sig(33);
    h.on(v, INIT, pub, 2);
    expect(verifyAll(v, msg, signature)).toBe(true);
    expect(verifyAll(v, fromHex('01'), signature)).toBe(false);
    expect(h.charges.map(([op]) => op)).toEqual(expect.arrayContaining(['EC-256/keygen', 'EC-256/sign', 'EC-256/verify']));
  });

  test('ECDH: both sides agree; SVDP_DH is SHA-1 of x; a bad point is ILLEGAL_VALUE', () => {
    const a = ecPair();
    const b = ecPair();
    const ka = h.st('javacard.security.KeyAgreement', 'getInstance(BZ)Ljavacard/security/KeyAgreement;', 3 /* PLAIN */, 0);
    const kb = h.st('javacard.security.KeyAgreement', 'getInstance(BZ)Ljavacard/security/KeyAgreement;', 3, 0);
    const o = h.arr(64);
    expect(h.fails(() => h.on(ka, 'generateSecret([BSS[BS)S', h.arr(65).ref, 0, 65, o.ref, 0))).toBe(R.INVALID_INIT);
    h.on(ka, 'init(Ljavacard/security/PrivateKey;)V', a.priv);
    h.on(kb, 'init(Ljavacard/security/PrivateKey;)V', b.priv);
    const wa = h.arr(getComp(a.pub, 'getW([BS)S'));
    const wb = h.arr(getComp(b.pub, 'getW([BS)S'));
    const n1 = h.on(ka, 'generateSecret([BSS[BS)S', wb.ref, 0, 65, o.ref, 0);
    const x1 = out(o, n1);
    const n2 = h.on(kb, 'generateSecret([BSS[BS)S', wa.ref, 0, 65, o.ref, 0);
    expect(n1).toBe(32);
    expect(hex(out(o, n2))).toBe(hex(x1));
    const kdf = h.st('javacard.security.KeyAgreement', 'getInstance(BZ)Ljavacard/security/KeyAgreement;', 1 /* SVDP_DH */, 0);
    h.on(kdf, 'init(Ljavacard/security/PrivateKey;)V', a.priv);
    const n3 = h.on(kdf, 'generateSecret([BSS[BS)S', wb.ref, 0, 65, o.ref, 0);
    expect(hex(out(o, n3))).toBe(hex(new Uint8Array(createHash('sha1').update(x1).digest())));
    const bad = getComp(b.pub, 'getW([BS)S');
    bad[40] ^= 1;
    expect(h.fails(() => h.on(ka, 'generateSecret([BSS[BS)S', h.arr(bad).ref, 0, 65, o.ref, 0))).toBe(R.ILLEGAL_VALUE);
    expect(h.fails(() => h.on(ka, 'init(Ljavacard/security/PrivateKey;)V', a.pub))).toBe(R.ILLEGAL_VALUE);
  });
});

describe('symmetric: Cipher and MAC signatures', () => {
  function aes(hexKey: string): Ref {
    const k = key(TYPE.AES, hexKey.length * 4);
    h.on(k, 'setKey([BS)V', h.arr(hexKey).ref, 0);
    return k;
  }

  test('AES-CBC (SP 800-38A F.2.1) with IV, across update calls, and doFinal resets the IV', () => {
    const k = aes('2b7e151628aed2a6abf7158809cf4f3c');
    const c = cipher(13);
    const iv = h.arr('000102030405060708090a0b0c0d0e0f');
    h.on(c, INIT_IV, k, 2, iv.ref, 0, 16);
    const pt = fromHex('6bc1bee22e409f96e93d7e117393172aae2d8a571e03ac9c9eb76fac45af8e51');
    const inA = h.arr(pt);
    const o = h.arr(64);
    const n1 = h.on(c, UPDATE_C, inA.ref, 0, 10, o.ref, 0);
    expect(n1).toBe(0); // a partial block waits
    const n2 = h.on(c, UPDATE_C, inA.ref, 10, 10, o.ref, 0);
    expect(n2).toBe(16);
    const n3 = h.on(c, DO_FINAL, inA.ref, 20, 12, o.ref, 16);
    expect(n3).toBe(16);
    expect(hex(out(o, 32))).toBe('7649ABAC8119B246CEE98E9B12E9197D5086CB9B507219EE95DB113A917678B2');
    expect(hex(crypt(c, pt))).toBe('7649ABAC8119B246CEE98E9B12E9197D5086CB9B507219EE95DB113A917678B2');
    const d = cipher(13);
    h.on(d, INIT_IV, k, 1, iv.ref, 0, 16);
    expect(hex(crypt(d, fromHex('7649ABAC8119B246CEE98E9B12E9197D')))).toBe('6BC1BEE22E409F96E93D7E117393172A');
  });

  test('AES-CBC PKCS#5 and DES-CBC ISO 9797 M2 round trips; bad padding is ILLEGAL_USE', () => {
    const k = aes('000102030405060708090a0b0c0d0e0f');
    const e = cipher(24);
    h.on(e, INIT, k, 2);
    const ct = crypt(e, fromHex('010203'));
    expect(ct.length).toBe(16);
    const d = cipher(24);
    h.on(d, INIT, k, 1);
    expect(hex(crypt(d, ct))).toBe('010203');
    const raw = cipher(13);
    h.on(raw, INIT, k, 2);
    expect(h.fails(() => crypt(d, crypt(raw, new Uint8Array(16))))).toBe(R.ILLEGAL_USE);
    expect(h.fails(() => crypt(d, new Uint8Array(15)))).toBe(R.ILLEGAL_USE);

    const dk = key(TYPE.DES, 128);
    h.on(dk, 'setKey([BS)V', h.arr('0123456789ABCDEFFEDCBA9876543210').ref, 0);
    const de = cipher(3);
    h.on(de, INIT, dk, 2);
    const dct = crypt(de, fromHex('0102030405060708'));
    expect(dct.length).toBe(16);
    const dd = cipher(3);
    h.on(dd, INIT, dk, 1);
    expect(hex(crypt(dd, dct))).toBe('0102030405060708');
  });

  test('AES-CMAC (RFC 4493 example 2) sign and constant-time verify', () => {
    const k = aes('2b7e151628aed2a6abf7158809cf4f3c');
    const s = sig(49);
    h.on(s, INIT, k, 1);
    expect(h.on(s, 'getLength()S')).toBe(16);
    const msg = fromHex('6bc1bee22e409f96e93d7e117393172a');
    expect(hex(signAll(s, msg))).toBe('070A16B46B4D4144F79BDD9DD04A287C');
    const v = sig(49);
    h.on(v, INIT, k, 2);
    expect(verifyAll(v, msg, fromHex('070A16B46B4D4144F79BDD9DD04A287C'))).toBe(true);
    expect(verifyAll(v, msg, fromHex('070A16B46B4D4144F79BDD9DD04A287D'))).toBe(false);
    expect(verifyAll(v, msg, fromHex('070A16B46B4D4144'))).toBe(false);
  });

  test('AES MAC NOPAD, DES retail MAC (ISO 9797-1 alg 3 M2), HMAC-SHA-256 (RFC 4231)', () => {
    const k = aes('2b7e151628aed2a6abf7158809cf4f3c');
    const s = sig(18);
    h.on(s, INIT, k, 1);
    expect(h.fails(() => signAll(s, new Uint8Array(17)))).toBe(R.ILLEGAL_USE);
    expect(hex(signAll(s, fromHex('6bc1bee22e409f96e93d7e117393172a')))).toBe('3AD77BB40D7A3660A89ECAF32466EF97');

    const dk = key(TYPE.DES, 128);
    const dkey = fromHex('0123456789ABCDEFFEDCBA9876543210');
    h.on(dk, 'setKey([BS)V', h.arr(dkey).ref, 0);
    const r = sig(20 /* DES_MAC8_ISO9797_1_M2_ALG3 */);
    h.on(r, INIT, dk, 1);
    const msg = fromHex('00112233445566778899');
    const want = retailMac(dkey, null, fromHex('00112233445566778899800000000000'));
    expect(hex(signAll(r, msg))).toBe(hex(want));
    const single = key(TYPE.DES, 64);
    expect(h.fails(() => h.on(r, INIT, single, 1))).toBe(R.ILLEGAL_VALUE); // alg 3 needs a two-key key

    const hk = key(TYPE.HMAC, 64);
    setComp(hk, 'setKey([BSS)V', new TextEncoder().encode('Jefe'));
    const hm = sig(25);
    h.on(hm, INIT, hk, 1);
    const data = new TextEncoder().encode('what do ya want for nothing?');
    expect(hex(signAll(hm, data))).toBe(hex(new Uint8Array(createHmac('sha256', 'Jefe').update(data).digest())));
  });
});

describe('MessageDigest, RandomData, OneShot', () => {
  test('SHA-256 incremental update/doFinal, reset after doFinal', () => {
    const md = h.st('javacard.security.MessageDigest', 'getInstance(BZ)Ljavacard/security/MessageDigest;', 4, 0);
    expect(h.on(md, 'getLength()B')).toBe(32);
    expect(h.on(md, 'getAlgorithm()B')).toBe(4);
    const a = h.arr(new TextEncoder().encode('abc'));
    const o = h.arr(40);
    h.on(md, 'update([BSS)V', a.ref, 0, 1);
    const n = h.on(md, 'doFinal([BSS[BS)S', a.ref, 1, 2, o.ref, 8);
    expect(n).toBe(32);
    expect(hex(h.read(o).subarray(8, 40)).toLowerCase()).toBe('ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad');
    h.on(md, 'doFinal([BSS[BS)S', a.ref, 0, 3, o.ref, 0);
    expect(hex(h.read(o).subarray(0, 32)).toLowerCase()).toBe('ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad');
    const bytes = (op: string) => h.charges.filter(([o]) => o === op).reduce((s, [, b]) => s + b, 0);
    expect(bytes('SHA-256/update') + bytes('SHA-256/digest')).toBe(6);
    expect(h.charges.filter(([o]) => o === 'SHA-256/digest').length).toBe(2); // one finalisation per doFinal
  });

  test('RandomData fills the range; nextBytes returns the end offset; bounds are checked', () => {
    const r = h.st('javacard.security.RandomData', 'getInstance(B)Ljavacard/security/RandomData;', 2);
    const o = h.arr(40);
    h.on(r, 'generateData([BSS)V', o.ref, 4, 32);
    const v = h.read(o);
    expect(v.subarray(0, 4).every((b) => b === 0)).toBe(true);
    expect(v.subarray(36).every((b) => b === 0)).toBe(true);
    expect(v.subarray(4, 36).some((b) => b !== 0)).toBe(true);
    expect(h.on(r, 'nextBytes([BSS)S', o.ref, 0, 8)).toBe(8);
    expect(h.fails(() => h.on(r, 'generateData([BSS)V', o.ref, 30, 11))).toBe('java.lang.ArrayIndexOutOfBoundsException');
  });

  test('Signature.OneShot opens by (digest, cipher, padding), signs, and its object is reused after close', () => {
    const ak = key(TYPE.AES, 128);
    h.on(ak, 'setKey([BS)V', h.arr('2b7e151628aed2a6abf7158809cf4f3c').ref, 0);
    const OS = 'javacard.security.Signature$OneShot';
    const s = h.st(OS, 'open(BBB)Ljavacard/security/Signature$OneShot;', 0, 10 /* SIG_CIPHER_AES_CMAC128 */, 0);
    expect(h.on(s, 'getAlgorithm()B')).toBe(49);
    h.on(s, INIT, ak, 1);
    expect(hex(signAll(s, fromHex('6bc1bee22e409f96e93d7e117393172a')))).toBe('070A16B46B4D4144F79BDD9DD04A287C');
    h.on(s, 'close()V');
    const again = h.st(OS, 'open(BBB)Ljavacard/security/Signature$OneShot;', 4, 3, 7 /* SHA-256 RSA PKCS1 */);
    expect(again).toBe(s);
    expect(h.on(again, 'getAlgorithm()B')).toBe(40);
    expect(h.fails(() => signAll(again, fromHex('00')))).toBe(R.INVALID_INIT);
  });
});

// ---------------------------------------------------------------------------------------------------------------
// org.globalplatform

const APP = 'A0000001020304';

function cardEnv(): { env: CardEnv; app: AppEntry } {
  const store = openMemoryStore();
  createChipState(store, DEFAULT_PROFILE);
  const model = loadModel(store);
  const isd = model.registry.apps[0].aid;
  const app: AppEntry = { aid: APP, lifeCycle: 0x07, privileges: 0, sd: isd, elf: 'A00000010203', module: APP, isSd: false, params: '' };
  model.registry.apps.push(app);
  const env: CardEnv = {
    store,
    profile: DEFAULT_PROFILE,
    model,
    channels: [freshChannel(true), freshChannel(false)],
    channel: 0,
    runtimeFor: () => undefined,
    reload: () => undefined,
    log: () => undefined,
  };
  return { env, app };
}

function hostOpts(level: number): HostOptions {
  return { keys: { enc: DEFAULT_PROFILE.initialKey, mac: DEFAULT_PROFILE.initialKey, dek: DEFAULT_PROFILE.initialKey }, level };
}

describe('SecureChannel service (card side of SCP03 for an applet)', () => {
  test('INITIALIZE UPDATE / EXTERNAL AUTHENTICATE, unwrap C-MAC + C-DEC, wrap R-MAC + R-ENC; the host side agrees', () => {
    const { env } = cardEnv();
    const scs = createSecureChannelService(() => env);
    const svc = scs.service(APP);
    expect(svc.securityLevel()).toBe(0);
    const opts = hostOpts(0x33);
    const iu = hostInitializeUpdate(opts);
    const r1 = svc.processSecurity(iu.apdu.subarray(0, iu.apdu.length - 1)); // without Le, as in the APDU buffer
    expect(r1.sw).toBe(0x9000);
    const auth = hostAuthenticate(opts, iu.hostChallenge, r1.data);
    expect(svc.processSecurity(auth.externalAuthenticate).sw).toBe(0x9000);
    expect(svc.securityLevel()).toBe(0x80 | 0x33);
    expect(env.model.keys.get(env.model.registry.apps[0].aid)![0].seq).toBe(1); // pseudo-random challenge counter moved

    const wrapped = hostWrap(auth.session, fromHex('80CA00FF03010203'));
    const plain = svc.unwrap(wrapped.subarray(0, wrapped.length)); // case 3: no Le
    expect(hex(plain)).toBe('80CA00FF03010203');
    const protectedResp = svc.wrap(fromHex('CAFE'), 0x9000);
    expect(hex(hostUnwrap(auth.session, encodeResponse(protectedResp, 0x9000)))).toBe('CAFE9000');

    // a plain command is left alone; a tampered one is 6982 and aborts: 6985 until resetSecurity
    expect(hex(svc.unwrap(fromHex('00A4040000')))).toBe('00A4040000');
    const next = hostWrap(auth.session, fromHex('80CA00FF00'));
    next[6] ^= 1;
    expect(() => svc.unwrap(next)).toThrow(expect.objectContaining({ sw: 0x6982 }));
    expect(svc.securityLevel()).toBe(0);
    expect(() => svc.unwrap(fromHex('84CA00FF00'))).toThrow(expect.objectContaining({ sw: 0x6985 }));
    svc.resetSecurity();
    expect(hex(svc.unwrap(fromHex('00A4040000')))).toBe('00A4040000');
  });

  test('another application cannot use the session; decryptData/encryptData use the static DEK', () => {
    const { env } = cardEnv();
    const scs = createSecureChannelService(() => env);
    const svc = scs.service(APP);
    const opts = hostOpts(Level.CMAC);
    const iu = hostInitializeUpdate(opts);
    const auth = hostAuthenticate(opts, iu.hostChallenge, svc.processSecurity(iu.apdu).data);
    svc.processSecurity(auth.externalAuthenticate);
    const isd = env.model.registry.apps[0].aid;
    expect(() => scs.service(isd).securityLevel()).toThrow(IsoError);
    const data = new Uint8Array(32).fill(7);
    const enc = svc.encryptData(data);
    expect(hex(enc)).not.toBe(hex(data));
    expect(hex(svc.decryptData(enc))).toBe(hex(data));
    expect(() => svc.decryptData(new Uint8Array(15))).toThrow(expect.objectContaining({ sw: 0x6700 }));
    expect(() => svc.processSecurity(fromHex('80CA00FF00'))).toThrow(expect.objectContaining({ sw: 0x6d00 }));
    expect(() => svc.processSecurity(fromHex('0050000008' + '00'.repeat(8)))).toThrow(expect.objectContaining({ sw: 0x6e00 }));
  });
});

describe('GPSystem and the SecureChannel natives', () => {
  function gpHarness(privileges = 0) {
    const { env, app } = cardEnv();
    app.privileges = privileges;
    const scs = createSecureChannelService(() => env);
    let cardState = 0x0f;
    h.vm.currentApplet = APP;
    h.vm.services.secureChannel = (aid) => scs.service(aid);
    h.vm.services.appletInfo = (aid) => {
      const a = env.model.registry.apps.find((x) => x.aid === aid);
      return a ? { privileges: a.privileges, lifeCycle: a.lifeCycle, securityDomain: a.sd } : undefined;
    };
    h.vm.services.setAppletLifeCycle = (aid, s) => {
      const a = env.model.registry.apps.find((x) => x.aid === aid)!;
      a.lifeCycle = s;
      return true;
    };
    h.vm.services.cardLifeCycle = () => cardState;
    h.vm.services.setCardLifeCycle = (s) => {
      cardState = s;
      return true;
    };
    const buffer = h.heap.newArray(11 /* byte */, 300, Memory.ClearOnReset, 0);
    h.heap.makeGlobal(buffer.ref);
    h.vm.jcre.apduBuffer = buffer.ref;
    return { env, app, buffer, card: () => cardState };
  }
  const GP = 'org.globalplatform.GPSystem';

  test('card and content state, lockCard / terminateCard need their privileges', () => {
    const g = gpHarness(0);
    expect(h.st(GP, 'getCardState()B')).toBe(0x0f);
    expect(h.st(GP, 'getCardContentState()B')).toBe(0x07);
    expect(h.st(GP, 'lockCard()Z')).toBe(0);
    expect(h.st(GP, 'terminateCard()Z')).toBe(0);
    g.app.privileges = 0x100000 | 0x080000; // CARD_LOCK, CARD_TERMINATE
    expect(h.st(GP, 'lockCard()Z')).toBe(1);
    expect(g.card()).toBe(0x7f);
    expect(h.st(GP, 'lockCard()Z')).toBe(0); // not SECURED any more
    expect(h.st(GP, 'terminateCard()Z')).toBe(1);
    expect(h.st(GP, 'getCardState()B')).toBe(-1);
  });

  test('setCardContentState accepts application-specific states only', () => {
    gpHarness();
    expect(h.st(GP, 'setCardContentState(B)Z', 0x0f)).toBe(1);
    expect(h.st(GP, 'getCardContentState()B')).toBe(0x0f);
    expect(h.st(GP, 'setCardContentState(B)Z', 0x03)).toBe(0); // INSTALLED is not application specific
    expect(h.st(GP, 'setCardContentState(B)Z', -0x7d /* 0x83: LOCKED */)).toBe(0);
    expect(h.st(GP, 'getCVM(B)Lorg/globalplatform/CVM;', 17)).toBe(0);
  });

  test('processSecurity reads the command, answers at OFFSET_CDATA; unwrap/wrap through the APDU buffer', () => {
    const g = gpHarness();
    const sc = h.st(GP, 'getSecureChannel()Lorg/globalplatform/SecureChannel;');
    expect(h.st(GP, 'getSecureChannel()Lorg/globalplatform/SecureChannel;')).toBe(sc);
    expect(h.heap.instance(sc).cls.interfaces.map((c) => c.name)).toContain('org.globalplatform.SecureChannel');
    const opts = hostOpts(0x13);
    const iu = hostInitializeUpdate(opts);
    Object.assign(h.vm.jcre, { command: iu.apdu, state: 0, lc: 8, received: 0, extended: false });
    h.heap.writeBytes(g.buffer, 0, iu.apdu.subarray(0, 5), false);
    const n = h.on(sc, 'processSecurity(Ljavacard/framework/APDU;)S', h.vm.jcre.apduObject);
    expect(n).toBe(32); // KDD 10 + KVN, SCP, i + challenge 8 + cryptogram 8 + sequence counter 3
    expect(h.vm.jcre.received).toBe(8);
    expect(hex(h.read(g.buffer).subarray(5, 15))).toBe(hex(DEFAULT_PROFILE.kdd)); // the response starts at OFFSET_CDATA
    const auth = hostAuthenticate(opts, iu.hostChallenge, h.read(g.buffer).subarray(5, 5 + n));
    Object.assign(h.vm.jcre, { command: auth.externalAuthenticate, state: 2, lc: 16, received: 16 });
    expect(h.on(sc, 'processSecurity(Ljavacard/framework/APDU;)S', 0)).toBe(0);
    expect(h.on(sc, 'getSecurityLevel()B')).toBe((0x93 << 24) >> 24);

    const wrapped = hostWrap(auth.session, fromHex('80E2000004DEADBEEF'));
    h.heap.writeBytes(g.buffer, 0, wrapped, false);
    const len = h.on(sc, 'unwrap([BSS)S', g.buffer.ref, 0, wrapped.length);
    expect(len).toBe(9);
    expect(hex(h.read(g.buffer).subarray(0, 9))).toBe('80E2000004DEADBEEF');

    h.heap.writeBytes(g.buffer, 5, fromHex('01029000'), false);
    const wl = h.on(sc, 'wrap([BSS)S', g.buffer.ref, 5, 4);
    expect(wl).toBe(2 + 8); // data + R-MAC, SW removed
    const resp = encodeResponse(h.read(g.buffer).subarray(5, 5 + wl), 0x9000);
    expect(hex(hostUnwrap(auth.session, resp))).toBe('01029000');

    const bad = hostWrap(auth.session, fromHex('80E2000001AA'));
    bad[5] ^= 0xff;
    h.heap.writeBytes(g.buffer, 0, bad, false);
    const t = h.thrown(() => h.on(sc, 'unwrap([BSS)S', g.buffer.ref, 0, bad.length));
    expect(t?.cls).toBe('javacard.framework.ISOException');
    expect(t!.reason & 0xffff).toBe(0x6982);
    h.on(sc, 'resetSecurity()V');
    expect(h.on(sc, 'getSecurityLevel()B')).toBe(0);
  });
});
