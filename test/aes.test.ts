import { describe, it, expect } from 'vitest';
import { createCipheriv, createDecipheriv } from 'node:crypto';
import { aesCbcDecrypt, aesCbcEncrypt, aesCmac, aesEcbDecrypt, aesEcbEncrypt } from '../emulator/aes.ts';
import { fromHex, hex } from '../emulator/bytes.ts';
import { prng } from './helpers/prng.ts';

// NIST SP 800-38A F.1/F.2 and SP 800-38B D.1–D.3 (= RFC 4493 for AES-128): the same four plaintext blocks.
const PT = fromHex(
  '6bc1bee22e409f96e93d7e117393172a ae2d8a571e03ac9c9eb76fac45af8e51 30c81c46a35ce411e5fbc1191a0a52ef f69f2445df4f9b17ad2b417be66c3710',
);
const K128 = fromHex('2b7e151628aed2a6abf7158809cf4f3c');
const K192 = fromHex('8e73b0f7da0e6452c810f32b809079e562f8ead2522c6b7b');
const K256 = fromHex('603deb1015ca71be2b73aef0857d77811f352c073b6108d72d9810a30914dff4');
const IV = fromHex('000102030405060708090a0b0c0d0e0f');

/** Independent references: a fresh node:crypto context per call, CMAC block by block. */
function refCbc(key: Uint8Array, iv: Uint8Array, data: Uint8Array, decrypt = false): Uint8Array {
  const alg = `aes-${key.length * 8}-cbc`;
  const c = decrypt ? createDecipheriv(alg, key, iv) : createCipheriv(alg, key, iv);
  c.setAutoPadding(false);
  return new Uint8Array(Buffer.concat([c.update(data), c.final()]));
}

function refCmac(key: Uint8Array, msg: Uint8Array): Uint8Array {
  const enc = (b: Uint8Array) => refCbc(key, new Uint8Array(16), b);
  const dbl = (b: Uint8Array) => {
    const o = new Uint8Array(16);
    for (let i = 0; i < 16; i++) o[i] = ((b[i] << 1) | (i < 15 ? b[i + 1] >> 7 : 0)) & 0xff;
    if (b[0] & 0x80) o[15] ^= 0x87;
    return o;
  };
  const k1 = dbl(enc(new Uint8Array(16)));
  const k2 = dbl(k1);
  const nBlocks = Math.max(1, Math.ceil(msg.length / 16));
  const complete = msg.length > 0 && msg.length % 16 === 0;
  let x: Uint8Array = new Uint8Array(16);
  for (let b = 0; b < nBlocks; b++) {
    const block = new Uint8Array(16);
    const part = msg.subarray(b * 16, b * 16 + 16);
    block.set(part);
    if (b === nBlocks - 1) {
      if (!complete) block[part.length] = 0x80;
      const sub = complete ? k1 : k2;
      for (let i = 0; i < 16; i++) block[i] ^= sub[i];
    }
    for (let i = 0; i < 16; i++) block[i] ^= x[i];
    x = enc(block);
  }
  return x;
}

describe('AES-ECB and AES-CBC (NIST SP 800-38A)', () => {
  it('encrypts and decrypts the F.1.1 ECB-AES128 vector', () => {
    const ct = aesEcbEncrypt(K128, PT);
    expect(hex(ct)).toBe(
      '3AD77BB40D7A3660A89ECAF32466EF97F5D3D58503B9699DE785895A96FDBAAF43B1CD7F598ECE23881B00E3ED0306887B0C785E27E8AD3F8223207104725DD4',
    );
    expect(hex(aesEcbDecrypt(K128, ct))).toBe(hex(PT));
  });

  it('encrypts and decrypts the F.2.1/F.2.3/F.2.5 CBC vectors for 128, 192 and 256-bit keys', () => {
    const cases: [Uint8Array, string][] = [
      [K128, '7649ABAC8119B246CEE98E9B12E9197D5086CB9B507219EE95DB113A917678B273BED6B8E3C1743B7116E69E222295163FF1CAA1681FAC09120ECA307586E1A7'],
      [K192, '4F021DB243BC633D7178183A9FA071E8B4D9ADA9AD7DEDF4E5E738763F69145A571B242012FB7AE07FA9BAAC3DF102E008B0E27988598881D920A9E64F5615CD'],
      [K256, 'F58C4C04D6E5F1BA779EABFB5F7BFBD69CFC4E967EDB808D679F777BC6702C7D39F23369A9D9BACFA530E26304231461B2EB05E2C39BE9FCDA6C19078C6A9D1B'],
    ];
    for (const [key, ct] of cases) {
      expect(hex(aesCbcEncrypt(key, IV, PT))).toBe(ct);
      expect(hex(aesCbcDecrypt(key, IV, fromHex(ct)))).toBe(hex(PT));
    }
  });

  it('gives the same result as a fresh context across interleaved calls with different IVs and keys', () => {
    const r = prng(7);
    const keys = [16, 24, 32, 16].map((n) => Uint8Array.from({ length: n }, () => r.int(256)));
    for (let round = 0; round < 300; round++) {
      const key = keys[r.int(keys.length)];
      const iv = Uint8Array.from({ length: 16 }, () => r.int(256));
      const data = Uint8Array.from({ length: 16 * (1 + r.int(6)) }, () => r.int(256));
      const enc = aesCbcEncrypt(key, iv, data);
      expect(hex(enc)).toBe(hex(refCbc(key, iv, data)));
      expect(hex(aesCbcDecrypt(key, iv, enc))).toBe(hex(data));
      const m = data.subarray(0, r.int(data.length + 1));
      expect(hex(aesCmac(key, m))).toBe(hex(refCmac(key, m)));
    }
  });

  it('leaves its input untouched and handles empty input', () => {
    const data = PT.slice();
    aesCbcEncrypt(K128, IV, data);
    aesCbcDecrypt(K128, IV, data);
    expect(hex(data)).toBe(hex(PT));
    expect(aesCbcEncrypt(K128, IV, new Uint8Array(0)).length).toBe(0);
    expect(aesCbcDecrypt(K128, IV, new Uint8Array(0)).length).toBe(0);
  });

  it('follows a key buffer rewritten in place (no stale cached context)', () => {
    const key = K128.slice();
    const first = hex(aesEcbEncrypt(key, PT.subarray(0, 16)));
    key.set(K256.subarray(0, 16));
    expect(hex(aesEcbEncrypt(key, PT.subarray(0, 16)))).not.toBe(first);
    expect(hex(aesEcbEncrypt(key, PT.subarray(0, 16)))).toBe(hex(refCbc(K256.subarray(0, 16), new Uint8Array(16), PT.subarray(0, 16))));
  });

  it('names what is wrong with bad keys, IVs and lengths', () => {
    expect(() => aesEcbEncrypt(new Uint8Array(17), PT)).toThrow(/AES key of 17 bytes; expected 16, 24 or 32/);
    expect(() => aesCbcEncrypt(K128, IV, PT.subarray(0, 15))).toThrow(/AES-CBC encrypt: 15 bytes is not a whole number/);
    expect(() => aesCbcDecrypt(K128, IV, PT.subarray(0, 33))).toThrow(/AES-CBC decrypt: 33 bytes/);
    expect(() => aesEcbDecrypt(K128, PT.subarray(0, 1))).toThrow(/AES-ECB decrypt: 1 bytes/);
    expect(() => aesCbcEncrypt(K128, IV.subarray(0, 8), PT)).toThrow(/IV of 8 bytes/);
    expect(() => aesCmac(new Uint8Array(0), PT)).toThrow(RangeError);
  });
});

describe('AES-CMAC (NIST SP 800-38B Appendix D, RFC 4493)', () => {
  const vectors: [string, Uint8Array, string[]][] = [
    ['AES-128', K128, ['BB1D6929E95937287FA37D129B756746', '070A16B46B4D4144F79BDD9DD04A287C', 'DFA66747DE9AE63030CA32611497C827', '51F0BEBF7E3B9D92FC49741779363CFE']],
    ['AES-192', K192, ['D17DDF46ADAACDE531CAC483DE7A9367', '9E99A7BF31E710900662F65E617C5184', '8A1DE5BE2EB31AAD089A82E6EE908B0E', 'A1D5DF0EED790F794D77589659F39A11']],
    ['AES-256', K256, ['028962F61B7BF89EFC6B551F4667D983', '28A7023F452E8F82BD4BF28D8C37C35C', 'AAF3D8F1DE5640C232F5B169B9C911E6', 'E1992190549F6ED5696A2C056C315410']],
  ];
  for (const [name, key, tags] of vectors) {
    it(`${name}: messages of 0, 16, 40 and 64 bytes`, () => {
      [0, 16, 40, 64].forEach((len, i) => expect(hex(aesCmac(key, PT.subarray(0, len)))).toBe(tags[i]));
    });
  }

  it('MACs the concatenation of its parts', () => {
    expect(hex(aesCmac(K128, PT.subarray(0, 3), PT.subarray(3, 21), new Uint8Array(0), PT.subarray(21, 40)))).toBe(
      'DFA66747DE9AE63030CA32611497C827',
    );
  });

  it('matches a block-by-block reference for every length 0–80 and all key sizes', () => {
    const r = prng(11);
    for (const n of [16, 24, 32]) {
      const key = Uint8Array.from({ length: n }, () => r.int(256));
      const msg = Uint8Array.from({ length: 80 }, () => r.int(256));
      for (let len = 0; len <= 80; len++) expect(hex(aesCmac(key, msg.subarray(0, len)))).toBe(hex(refCmac(key, msg.subarray(0, len))));
    }
  });
});
