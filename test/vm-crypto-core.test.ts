// crypto-core against published vectors (FIPS 197, SP 800-38A, SP 800-67, RFC 4493, FIPS 180) and against
// node:crypto's own verification for the encodings written here (PKCS#1, PSS, OAEP, ECDSA, ECDH).
import { describe, expect, test } from 'vitest';
import { constants, createECDH, createHash, createCipheriv, generateKeyPairSync, privateDecrypt, publicEncrypt, randomBytes, sign, verify } from 'node:crypto';
import type { JsonWebKey } from 'node:crypto';
import { fromHex, hex } from '../emulator/bytes.ts';
import * as C from '../emulator/vm/api/crypto-core.ts';

const rnd = (n: number) => new Uint8Array(randomBytes(n));
const b64 = (s: string | undefined) => new Uint8Array(Buffer.from(s ?? '', 'base64url'));

function rsaJwk(bits: number): { jwk: JsonWebKey; pub: ReturnType<typeof generateKeyPairSync>['publicKey']; priv: ReturnType<typeof generateKeyPairSync>['privateKey'] } {
  const { publicKey, privateKey } = generateKeyPairSync('rsa', { modulusLength: bits });
  return { jwk: privateKey.export({ format: 'jwk' }), pub: publicKey, priv: privateKey };
}

describe('hashes (FIPS 180-4 "abc")', () => {
  const abc = new TextEncoder().encode('abc');
  test.each([
    ['SHA-1', 'a9993e364706816aba3e25717850c26c9cd0d89d'],
    ['SHA-224', '23097d223405d8228642a477bda255b32aadbce4bda0b3f7e36c9da7'],
    ['SHA-256', 'ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad'],
    ['SHA-384', 'cb00753f45a35e8bb5a03d699ac65007272c32ab0eded1631a8b605a43ff5bed8086072ba1e7cc2358baeca134c825a7'],
    [
      'SHA-512',
      'ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f',
    ],
  ] as const)('%s', (h, want) => {
    expect(hex(C.digest(h, abc)).toLowerCase()).toBe(want);
    // incremental: split input gives the same digest
    expect(hex(C.digest(h, abc.subarray(0, 1), abc.subarray(1)))).toBe(hex(C.digest(h, abc)));
    expect(C.HASHES[h].length).toBe(want.length / 2);
  });
});

describe('AES and DES (FIPS 197, SP 800-38A, SP 800-67)', () => {
  test('FIPS 197 C.1 / C.3', () => {
    const pt = fromHex('00112233445566778899aabbccddeeff');
    expect(hex(C.blockCrypt('AES', 'ECB', true, fromHex('000102030405060708090a0b0c0d0e0f'), null, pt))).toBe('69C4E0D86A7B0430D8CDB78070B4C55A');
    const k256 = fromHex('000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f');
    const ct = C.blockCrypt('AES', 'ECB', true, k256, null, pt);
    expect(hex(ct)).toBe('8EA2B7CA516745BFEAFC49904B496089');
    expect(hex(C.blockCrypt('AES', 'ECB', false, k256, null, ct))).toBe(hex(pt));
  });

  const key = fromHex('2b7e151628aed2a6abf7158809cf4f3c');
  const pt = fromHex('6bc1bee22e409f96e93d7e117393172aae2d8a571e03ac9c9eb76fac45af8e51');
  test('SP 800-38A F.1.1 ECB-AES128 and F.2.1 CBC-AES128', () => {
    expect(hex(C.blockCrypt('AES', 'ECB', true, key, null, pt))).toBe('3AD77BB40D7A3660A89ECAF32466EF97F5D3D58503B9699DE785895A96FDBAAF');
    const iv = fromHex('000102030405060708090a0b0c0d0e0f');
    const ct = C.blockCrypt('AES', 'CBC', true, key, iv, pt);
    expect(hex(ct)).toBe('7649ABAC8119B246CEE98E9B12E9197D5086CB9B507219EE95DB113A917678B2');
    expect(hex(C.blockCrypt('AES', 'CBC', false, key, iv, ct))).toBe(hex(pt));
    // chaining across calls: the second block with the first ciphertext block as IV
    expect(hex(C.blockCrypt('AES', 'CBC', true, key, ct.subarray(0, 16), pt.subarray(16)))).toBe(hex(ct.subarray(16)));
  });

  test('unaligned data is ILLEGAL_USE', () => {
    expect(() => C.blockCrypt('AES', 'ECB', true, key, null, new Uint8Array(15))).toThrow(C.CryptoFailure);
    expect(() => C.blockCrypt('DES', 'CBC', true, new Uint8Array(16), null, new Uint8Array(9))).toThrow(
      expect.objectContaining({ reason: 'ILLEGAL_USE' }),
    );
  });

  test('single DES (FIPS 81 example) and 3DES (SP 800-67 example)', () => {
    // "Now is t" under 0123456789ABCDEF
    expect(hex(C.blockCrypt('DES', 'ECB', true, fromHex('0123456789ABCDEF'), null, fromHex('4E6F772069732074')))).toBe('3FA40E8A984D4815');
    const k3 = fromHex('0123456789ABCDEF23456789ABCDEF01456789ABCDEF0123');
    const p3 = new TextEncoder().encode('The qufck brown fox jump');
    const c3 = C.blockCrypt('DES', 'ECB', true, k3, null, p3);
    expect(hex(c3)).toBe('A826FD8CE53B855FCCE21C8112256FE668D5C05DD9B6B900');
    expect(new TextDecoder().decode(C.blockCrypt('DES', 'ECB', false, k3, null, c3))).toBe('The qufck brown fox jump');
  });

  test('two-key 3DES equals K1 K2 K1 three-key 3DES', () => {
    const k = fromHex('0123456789ABCDEFFEDCBA9876543210');
    const data = rnd(16);
    const k3 = new Uint8Array([...k, ...k.subarray(0, 8)]);
    expect(hex(C.blockCrypt('DES', 'CBC', true, k, null, data))).toBe(hex(C.blockCrypt('DES', 'CBC', true, k3, null, data)));
  });
});

describe('MACs', () => {
  const key = fromHex('2b7e151628aed2a6abf7158809cf4f3c');
  const msg = fromHex(
    '6bc1bee22e409f96e93d7e117393172aae2d8a571e03ac9c9eb76fac45af8e5130c81c46a35ce411e5fbc1191a0a52eff69f2445df4f9b17ad2b417be66c3710',
  );
  test.each([
    [0, 'BB1D6929E95937287FA37D129B756746'],
    [16, '070A16B46B4D4144F79BDD9DD04A287C'],
    [40, 'DFA66747DE9AE63030CA32611497C827'],
    [64, '51F0BEBF7E3B9D92FC49741779363CFE'],
  ])('AES-CMAC RFC 4493 example, %i bytes', (n, want) => {
    expect(hex(C.aesCmac128(key, msg.subarray(0, n)))).toBe(want);
  });

  test('CBC-MAC is the last CBC block', () => {
    const data = rnd(48);
    const ct = C.blockCrypt('AES', 'CBC', true, key, null, data);
    expect(hex(C.cbcMac('AES', key, null, data))).toBe(hex(ct.subarray(32)));
  });

  test('ISO 9797-1 MAC algorithm 3 of one block is two-key 3DES of the block', () => {
    const k = fromHex('0123456789ABCDEFFEDCBA9876543210');
    const block = rnd(8);
    const c = createCipheriv('des-ede-ecb', k, null).setAutoPadding(false);
    const want = new Uint8Array(c.update(block));
    expect(hex(C.retailMac(k, null, block))).toBe(hex(want));
    // more blocks: single DES CBC with K1, then the last block through 3DES
    const two = rnd(16);
    const chain = C.cbcMac('DES', k.subarray(0, 8), null, two.subarray(0, 8));
    const last = two.subarray(8).map((b, i) => b ^ chain[i]);
    const c2 = createCipheriv('des-ede-ecb', k, null).setAutoPadding(false);
    expect(hex(C.retailMac(k, null, two))).toBe(hex(new Uint8Array(c2.update(last))));
  });

  test('HMAC-SHA-256 (RFC 4231 case 2)', () => {
    const mac = C.hmac('SHA-256', new TextEncoder().encode('Jefe'), new TextEncoder().encode('what do ya want for nothing?'));
    expect(hex(mac)).toBe('5BDCC146BF60754E6A042426089575C75A003F089D2739839DEC58B964EC3843');
  });
});

describe('paddings', () => {
  test('ISO 9797-1 M1 / M2 and PKCS#5', () => {
    expect(hex(C.pad('M1', fromHex('0102'), 8))).toBe('0102000000000000');
    expect(hex(C.pad('M1', fromHex('0102030405060708'), 8))).toBe('0102030405060708');
    expect(hex(C.pad('M1', new Uint8Array(0), 8))).toBe('0000000000000000');
    expect(hex(C.pad('M2', fromHex('0102030405060708'), 8))).toBe('01020304050607088000000000000000');
    expect(hex(C.pad('PKCS5', fromHex('01'), 8))).toBe('0107070707070707');
    expect(hex(C.pad('PKCS5', fromHex('0102030405060708'), 8))).toBe('01020304050607080808080808080808');
    expect(hex(C.unpad('M2', fromHex('0102800000000000'), 8))).toBe('0102');
    expect(hex(C.unpad('PKCS5', fromHex('0102030405060202'), 8))).toBe('010203040506');
    expect(() => C.unpad('M2', fromHex('0102000000000000'), 8)).toThrow(C.CryptoFailure);
    expect(() => C.unpad('PKCS5', fromHex('0102030405060302'), 8)).toThrow(C.CryptoFailure);
    expect(() => C.unpad('PKCS5', fromHex('0102030405060700'), 8)).toThrow(C.CryptoFailure);
    expect(() => C.pad('NOPAD', fromHex('01'), 8)).toThrow(C.CryptoFailure);
  });
});

describe('RSA', () => {
  const msg = new TextEncoder().encode('JPKI signature input');

  test('CRT key from JWK components signs PKCS#1 v1.5 that node verifies', () => {
    const { jwk, pub } = rsaJwk(2048);
    const key = C.rsaCrtKey({ p: b64(jwk.p), q: b64(jwk.q), dp: b64(jwk.dp), dq: b64(jwk.dq), qinv: b64(jwk.qi) });
    expect(key.k).toBe(256);
    const h = C.digest('SHA-256', msg);
    const sig = key.raw(C.pkcs1SignatureBlock(key.k, C.digestInfo('SHA-256', h)));
    expect(verify('sha256', msg, pub, sig)).toBe(true);
    expect(verify('sha256', new TextEncoder().encode('other'), pub, sig)).toBe(false);
    // and the public key recovers the block
    const pk = C.rsaPublicKey({ n: b64(jwk.n), e: b64(jwk.e) });
    expect(hex(C.pkcs1Unpad(pk.raw(sig), 1)!)).toBe(hex(C.digestInfo('SHA-256', h)));
  });

  test('non-CRT private key (n, d) gives the same signature as the CRT key', () => {
    const { jwk, pub } = rsaJwk(1024);
    const plain = C.rsaPlainPrivateKey({ n: b64(jwk.n), d: b64(jwk.d) });
    const crt = C.rsaCrtKey({ p: b64(jwk.p), q: b64(jwk.q), dp: b64(jwk.dp), dq: b64(jwk.dq), qinv: b64(jwk.qi) });
    const block = C.pkcs1SignatureBlock(128, C.digestInfo('SHA-1', C.digest('SHA-1', msg)));
    const s1 = plain.raw(block);
    expect(hex(s1)).toBe(hex(crt.raw(block)));
    expect(verify('sha1', msg, pub, s1)).toBe(true);
  });

  test('CRT components that are not a key still give a result (Garner fallback), no host error', () => {
    const { jwk } = rsaJwk(1024);
    const bad = C.rsaCrtKey({ p: b64(jwk.p), q: b64(jwk.q), dp: b64(jwk.dp), dq: b64(jwk.dq), qinv: fromHex('03') });
    const out = bad.raw(C.pkcs1SignatureBlock(128, fromHex('00112233')));
    expect(out.length).toBe(128);
  });

  test('PSS (salt = hash length) verifies in node; node PSS verifies here', () => {
    const { jwk, pub, priv } = rsaJwk(2048);
    const key = C.rsaCrtKey({ p: b64(jwk.p), q: b64(jwk.q), dp: b64(jwk.dp), dq: b64(jwk.dq), qinv: b64(jwk.qi) });
    const h = C.digest('SHA-256', msg);
    const em = C.pssEncode('SHA-256', h, key.bits, rnd(32));
    const sig = key.raw(em.length === key.k ? em : C.fromBig(C.toBig(em), key.k));
    expect(verify('sha256', msg, { key: pub, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: 32 }, sig)).toBe(true);
    const theirs = new Uint8Array(sign('sha256', msg, { key: priv, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: 32 }));
    const pk = C.rsaPublicKey({ n: b64(jwk.n), e: b64(jwk.e) });
    expect(C.pssVerify('SHA-256', h, pk.raw(theirs), pk.bits, 32)).toBe(true);
    expect(C.pssVerify('SHA-256', C.digest('SHA-256', fromHex('00')), pk.raw(theirs), pk.bits, 32)).toBe(false);
  });

  test('OAEP (SHA-1) both ways with node', () => {
    const { jwk, pub, priv } = rsaJwk(1024);
    const pk = C.rsaPublicKey({ n: b64(jwk.n), e: b64(jwk.e) });
    const sk = C.rsaCrtKey({ p: b64(jwk.p), q: b64(jwk.q), dp: b64(jwk.dp), dq: b64(jwk.dq), qinv: b64(jwk.qi) });
    const m = fromHex('48656C6C6F');
    const ct = pk.raw(C.oaepEncode('SHA-1', 128, m, rnd));
    expect(hex(new Uint8Array(privateDecrypt({ key: priv, padding: constants.RSA_PKCS1_OAEP_PADDING }, ct)))).toBe(hex(m));
    const ct2 = new Uint8Array(publicEncrypt({ key: pub, padding: constants.RSA_PKCS1_OAEP_PADDING }, m));
    expect(hex(C.oaepDecode('SHA-1', sk.raw(ct2))!)).toBe(hex(m));
    const tampered = sk.raw(ct2);
    tampered[5] ^= 1;
    expect(C.oaepDecode('SHA-1', tampered)).toBeUndefined();
  });

  test('PKCS#1 type 2 encryption decrypts in node (via raw), and input ≥ modulus is ILLEGAL_USE', () => {
    const { jwk } = rsaJwk(1024);
    const pk = C.rsaPublicKey({ n: b64(jwk.n), e: b64(jwk.e) });
    const sk = C.rsaCrtKey({ p: b64(jwk.p), q: b64(jwk.q), dp: b64(jwk.dp), dq: b64(jwk.dq), qinv: b64(jwk.qi) });
    const ct = pk.raw(C.pkcs1EncryptionBlock(128, fromHex('CAFE'), rnd));
    expect(hex(C.pkcs1Unpad(sk.raw(ct), 2)!)).toBe('CAFE');
    expect(() => sk.raw(new Uint8Array(128).fill(0xff))).toThrow(C.CryptoFailure);
    expect(() => sk.raw(new Uint8Array(127))).toThrow(C.CryptoFailure);
  });

  test('key generation gives consistent components', () => {
    const g = C.rsaGenerate(1024, 65537);
    expect(g.n.length).toBe(128);
    expect(g.p.length).toBe(64);
    expect(C.toBig(g.p) * C.toBig(g.q)).toBe(C.toBig(g.n));
    const block = C.pkcs1SignatureBlock(128, fromHex('0102'));
    const sig = C.rsaCrtKey({ p: g.p, q: g.q, dp: g.dp, dq: g.dq, qinv: g.qinv }).raw(block);
    expect(hex(C.rsaPublicKey({ n: g.n, e: g.e }).raw(sig))).toBe(hex(block));
  });
});

describe('elliptic curves', () => {
  const p256 = C.namedCurve('prime256v1');

  test('P-256 domain parameters read from OpenSSL (FIPS 186-4 D.1.2.3)', () => {
    expect(p256.p.toString(16)).toBe('ffffffff00000001000000000000000000000000ffffffffffffffffffffffff');
    expect(p256.n.toString(16)).toBe('ffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551');
    expect(p256.b.toString(16)).toBe('5ac635d8aa3a93e7b3ebbd55769886bc651d06b0cc53b0f63bce3c3e27d2604b');
    expect(p256.a).toBe(p256.p - 3n);
    expect(C.onCurve(p256, { x: p256.gx, y: p256.gy })).toBe(true);
    expect(C.defaultCurve(256)).toBe(p256);
    expect(C.curveFromBytes(C.curveToBytes(p256))).toBe(p256);
  });

  test('ECDSA over a hash verifies in node; node ECDSA verifies here', () => {
    const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
    const jwk = privateKey.export({ format: 'jwk' });
    const s = b64(jwk.d);
    const w = new Uint8Array([4, ...b64(jwk.x), ...b64(jwk.y)]);
    expect(hex(C.ecPublicFromPrivate(p256, s))).toBe(hex(w));
    const msg = new TextEncoder().encode('FIDO assertion');
    const sig = C.ecdsaSignHash(p256, s, C.digest('SHA-256', msg), rnd);
    expect(sig[0]).toBe(0x30);
    expect(verify('sha256', msg, { key: publicKey, dsaEncoding: 'der' }, sig)).toBe(true);
    const theirs = new Uint8Array(sign('sha256', msg, { key: privateKey, dsaEncoding: 'der' }));
    expect(C.ecdsaVerifyHash(p256, w, C.digest('SHA-256', msg), theirs)).toBe(true);
    expect(C.ecdsaVerifyHash(p256, w, C.digest('SHA-256', fromHex('00')), theirs)).toBe(false);
    const bad = theirs.slice();
    bad[bad.length - 1] ^= 1;
    expect(C.ecdsaVerifyHash(p256, w, C.digest('SHA-256', msg), bad)).toBe(false);
    expect(C.ecdsaVerifyHash(p256, w, C.digest('SHA-256', msg), fromHex('3000'))).toBe(false);
  });

  test('SHA-512 with P-256 truncates the hash (SEC 1 §4.1.3)', () => {
    const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
    const s = b64(privateKey.export({ format: 'jwk' }).d);
    const msg = fromHex('0102030405');
    const sig = C.ecdsaSignHash(p256, s, C.digest('SHA-512', msg), rnd);
    expect(verify('sha512', msg, { key: publicKey, dsaEncoding: 'der' }, sig)).toBe(true);
  });

  test('ECDH agrees with node, for the named curve and for the same curve in BigInt', () => {
    const a = createECDH('prime256v1');
    a.generateKeys();
    const b = createECDH('prime256v1');
    b.generateKeys();
    const want = hex(new Uint8Array(a.computeSecret(b.getPublicKey())));
    const sa = new Uint8Array(a.getPrivateKey());
    const wb = new Uint8Array(b.getPublicKey());
    expect(hex(C.ecdhX(p256, sa, wb))).toBe(want);
    const generic: C.Curve = { ...p256, name: undefined };
    expect(hex(C.ecdhX(generic, sa, wb))).toBe(want);
    expect(hex(C.ecPublicFromPrivate(generic, sa))).toBe(hex(new Uint8Array(a.getPublicKey())));
    const full = C.ecdhFullPoint(p256, sa, wb);
    expect(hex(full.subarray(1, 33))).toBe(want);
    const off = wb.slice();
    off[64] ^= 1;
    expect(() => C.ecdhX(p256, sa, off)).toThrow(C.CryptoFailure);
  });

  test('key generation from the given random source', () => {
    const g = C.ecGenerate(p256, rnd);
    expect(g.s.length).toBe(32);
    expect(hex(C.ecPublicFromPrivate(p256, g.s))).toBe(hex(g.w));
    expect(() => C.ecGenerate(p256, (n) => new Uint8Array(n))).toThrow(/random source/);
  });

  test('P-384 works through the same code', () => {
    const p384 = C.defaultCurve(384)!;
    const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'secp384r1' });
    const s = b64(privateKey.export({ format: 'jwk' }).d);
    const msg = fromHex('AA');
    const sig = C.ecdsaSignHash(p384, s, createHash('sha384').update(msg).digest(), rnd);
    expect(verify('sha384', msg, { key: publicKey, dsaEncoding: 'der' }, sig)).toBe(true);
  });
});
