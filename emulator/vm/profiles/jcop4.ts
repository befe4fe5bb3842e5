// Cycle profile of an NXP JCOP4 J3R180 (SmartMX3 P71), calibrated to JCAlgTest 1.8.0 measurements of that card
// (crocs-muni/jcalgtest_results, NXP_JCOP4_J3R180_SECID_P71 …DATAFIXED_1634708420109, 2021-10). Data, not code: every
// number below is derived in `derivation` (and docs/cycle-model.md) from a published figure, or marked as an assumption.
import type { CycleProfile } from '../types.ts';

/**
 * Units used in the derivation: the clock is a nominal 32 MHz, so 1 ms = 32 000 cycles. u = 247 cycles is one "simple"
 * bytecode (const/load/store/stack/arith); other classes are priced as multiples of u (ratios are assumptions).
 * "call site" = the JCAlgTest loop body's own bytecodes around the measured API call, priced with this table.
 */
export const DEFAULT_CYCLE_PROFILE: CycleProfile = {
  name: 'jcop4-j3r180',
  clockHz: 32_000_000,
  opcodeCycles: {
    const: 247, load: 247, store: 247, stack: 247, arith: 247, convert: 247, branch: 247, nop: 247, array_length: 247,
    array_load: 370, array_store: 370, field_get: 370, field_put: 370, static_get: 370, static_put: 370,
    mul: 370, div: 740, int_arith: 370, int_mul: 740, int_div: 1480,
    switch: 493, jsr: 370, return: 493, invoke: 247, cast: 740,
    new: 2466, new_array: 2466, throw: 2466,
  },
  opcodeOverrides: {
    invokeinterface: 493, // +1 u over the invoke class: interface method table search (JCVM §7.5.52)
  },
  invokeCycles: 493,
  nativeCallCycles: 1299,
  nvmWriteByteCycles: 192,
  nvmPageCycles: 8880,
  nvmPageBytes: 64,
  transactionByteCycles: 6,
  ramWriteByteCycles: 2,
  nvmCopySourceByteCycles: 314,
  crypto: {
    // Digests: "/update" = MessageDigest.update (no finalisation), "/digest" = doFinal (padding block + output).
    'SHA-1/update': { fixed: 0, perByte: 497 },
    'SHA-1/digest': { fixed: 38_523, perByte: 497 },
    'SHA-256/update': { fixed: 0, perByte: 765 },
    'SHA-256/digest': { fixed: 52_475, perByte: 765 },
    'SHA-224/update': { fixed: 0, perByte: 765 },
    'SHA-224/digest': { fixed: 52_475, perByte: 765 },
    'SHA-384/update': { fixed: 0, perByte: 725 },
    'SHA-384/digest': { fixed: 92_155, perByte: 725 },
    'SHA-512/update': { fixed: 0, perByte: 723 },
    'SHA-512/digest': { fixed: 92_987, perByte: 723 },
    // Symmetric ciphers (one update/doFinal call on n bytes); the fixed/per-byte split is an assumption (25 % fixed).
    'AES-128/CBC': { fixed: 13_599, perByte: 159 },
    'AES-128/ECB': { fixed: 13_599, perByte: 159 },
    'AES-192/CBC': { fixed: 13_599, perByte: 191 },
    'AES-192/ECB': { fixed: 13_599, perByte: 191 },
    'AES-256/CBC': { fixed: 13_599, perByte: 223 },
    'AES-256/ECB': { fixed: 13_599, perByte: 223 },
    'AES-128/CMAC': { fixed: 16_143, perByte: 159 },
    'AES-256/CMAC': { fixed: 17_167, perByte: 223 },
    'DES3/CBC': { fixed: 13_999, perByte: 164 },
    'DES3/ECB': { fixed: 13_999, perByte: 164 },
    'RNG/generate': { fixed: 0, perByte: 131 },
    // Asymmetric primitives: one private/public operation; the message digest is charged separately by the engine.
    'RSA-2048-CRT/sign': { fixed: 1_770_880, perByte: 0 },
    'RSA-2048/sign': { fixed: 4_799_360, perByte: 0 },
    'RSA-2048/public': { fixed: 181_513, perByte: 0 },
    'RSA-2048-CRT/keygen': { fixed: 167_186_510, perByte: 0 },
    'RSA-2048/keygen': { fixed: 157_469_710, perByte: 0 },
    'EC-256/sign': { fixed: 851_840, perByte: 0 },
    'EC-256/verify': { fixed: 795_913, perByte: 0 },
    'EC-256/keygen': { fixed: 853_710, perByte: 0 },
    'EC-256/ecdh': { fixed: 635_662, perByte: 0 },
    // Key objects and engine set-up.
    'KEY/set': { fixed: 178_040, perByte: 230 },
    'CIPHER/init': { fixed: 188_152, perByte: 0 },
    'SIGNATURE/init': { fixed: 188_152, perByte: 0 },
    // Any other key (an algorithm this table does not price): priced like AES-128/CBC.
    fallback: { fixed: 13_599, perByte: 159 },
  },
  ioBytesPerSecond: 10_473,
  ioApduOverheadUs: 955,
  derivation: {
    source:
      'JCAlgTest 1.8.0 on NXP JCOP4 J3R180 SECID P71 (crocs-muni/jcalgtest_results, performance/fixed, 2021-10-20), ' +
      '"avg op" in ms/op, already minus the empty-APDU baseline, so no I/O is in them. Loop bodies from crocs-muni/JCAlgTest ' +
      'AlgPerformanceTest.java.',
    clockHz:
      '[assumption] nominal 32 MHz internal clock (NXP does not publish the P71 CPU clock). Times do not depend on it: ' +
      'every cycle count is a measured time × 32 000 cycles/ms, so another clock rescales cycles and leaves estimates unchanged.',
    opcodeCycles:
      'SWAlgs_xor = 1.45 ms/op for 16 × [getfield_a_this sconst dup2 baload getfield_a_this bspush baload sxor bastore] + ' +
      'loop [sinc sload sload if_scmplt] = 148 bytecodes (9.8 µs each on average). Class weights [assumption]: ' +
      'const/load/store/stack/arith/convert/branch/nop/arraylength 1 u; array_load/array_store/field/static/smul/int_arith/jsr 1.5 u ' +
      '(bounds, firewall or two-word work); sdiv/imul/checkcast 3 u; idiv 6 u; switch/return 2 u; invoke 1 u + invokeCycles 2 u; ' +
      'new/newarray/athrow 10 u. The xor op is then 188 u + 16 RAM byte writes (2 cycles each) = 46 400 cycles ' +
      '⇒ u = (46 400 − 32) / 188 = 246.6 ≈ 247 cycles (7.7 µs); 1.5 u = 370, 2 u = 493, 3 u = 740, 6 u = 1480, 10 u = 2466.',
    opcodeOverrides: '[assumption] invokeinterface 2 u (+1 u over invoke) for the interface method table search.',
    invokeCycles:
      '[assumption] frame set-up 2 u = 493 cycles, added to the four invoke opcodes in opcodeCostTable(); a call of a ' +
      'bytecode method from a native (JCRE → Applet.process) charges it once too.',
    nativeCallCycles:
      'Util.arrayCopy RAM→RAM 256 B = 0.18 ms = 5 760 cycles. Call site [getfield_a_this sconst_0 getfield_a_this sload ' +
      'sload invokestatic pop] + loop [sinc sload getfield_a_this getfield_s if_scmplt] = 3 949 cycles; 256 RAM bytes ' +
      '× 2 = 512 ⇒ native call = 5 760 − 3 949 − 512 = 1 299 cycles (41 µs).',
    ramWriteByteCycles:
      '[assumption] 2 cycles per byte (word-wise SRAM copy); not separable from the native-call cost with 256-B data only.',
    nvmWriteByteCycles:
      'Slope of RSAPrivateCrtKey.setP over its component length: 6.17 ms (56 B, RSA-896) → 6.41 ms (96 B, RSA-1536) ' +
      '= 0.24 ms / 40 B = 6.0 µs/B = 192 cycles per byte written [assumption: key-component writes cost what array writes do].',
    nvmPageCycles:
      'Util.arrayCopyNonAtomic RAM→EEPROM 256 B = 2.81 ms = 89 920 cycles; minus call site 3 949, native call 1 299, ' +
      '256 × 192 = 49 152 ⇒ 35 520 over ceil(256/64) = 4 pages = 8 880 cycles per page touched.',
    nvmPageBytes:
      '[assumption] 64-byte NVM write page (typical smart-card EEPROM/flash page; the P71 page size is not published).',
    transactionByteCycles:
      'Util.arrayCopy (atomic) RAM→EEPROM 2.86 ms vs arrayCopyNonAtomic 2.81 ms: 0.05 ms = 1 600 cycles / 256 B ' +
      '= 6 cycles per byte logged (JCOP4 backs up cheaply; within the measurement noise, so weak).',
    nvmCopySourceByteCycles:
      'arrayCopyNonAtomic EEPROM→EEPROM 5.32 ms vs RAM→EEPROM 2.81 ms for the same 256 B: the persistent source costs ' +
      '2.51 ms = 80 320 cycles / 256 = 314 cycles per byte extra (cause unknown; both copies stay within one array).',
    'SHA-*':
      'update(256 B) and doFinal(256 B) give the split. SHA-256: update 6.25 ms = 200 000 cycles − call site ' +
      '[getfield_a_this ×2 sconst_0 sload invokevirtual + loop] 2 962 − native 1 299 = 195 739 / 256 = 765 per byte; ' +
      'doFinal 7.92 ms = 253 440 − call site [getfield_a_this ×3 sconst_0 ×2 sload invokevirtual pop + loop] 3 826 − ' +
      '1 299 − 256 × 765 ⇒ fixed 52 475 (padding block and output). Same arithmetic: SHA-1 4.11/5.34 ms ⇒ 497/B + 38 523; ' +
      'SHA-384 5.93/8.84 ⇒ 725/B + 92 155; SHA-512 5.92/8.85 ⇒ 723/B + 92 987. SHA-224 (7.93 ms) = SHA-256 entry.',
    'AES-128/CBC':
      'Cipher.doFinal ALG_AES_BLOCK_128_CBC_NOPAD 256 B = 1.86 ms = 59 520 − call site 3 826 − native 1 299 = 54 395; ' +
      '[assumption: no length sweep stored] 25 % fixed = 13 599, 75 % per byte = 40 796 / 256 = 159. ECB = CBC ' +
      '[assumption]. AES-192/256: per byte × 12/10 and × 14/10 rounds [assumption]. CMAC: CBC + one block for the ' +
      'subkeys (16 × per byte) [assumption].',
    'DES3/CBC': 'ALG_DES_CBC_NOPAD 2-key 256 B = 1.91 ms, split as AES: 13 999 + 164/B.',
    'RNG/generate':
      'RandomData.generateData ALG_SECURE_RANDOM 256 B = 1.18 ms = 37 760 − call site 2 962 − 1 299 = 33 499 / 256 ' +
      '= 131 per byte [assumption: all per byte].',
    'RSA-2048-CRT/sign':
      'Signature ALG_RSA_SHA_PKCS1 sign 256 B (CRT key) = 60.68 ms = 1 941 760 − call site 3 826 − native 1 299 − ' +
      'SHA-1/digest(256) 165 755 = 1 770 880 (one private-key operation). Check: Cipher ALG_RSA_PKCS1 CRT decrypt = 53.51 ms.',
    'RSA-2048/sign': 'non-CRT ALG_RSA_SHA_PKCS1 sign = 155.32 ms − same call site, native and SHA-1 = 4 799 360.',
    'RSA-2048/public':
      'ALG_RSA_SHA_PKCS1 verify = 11.02 ms = 352 640 − call site [+ sload signLen] 4 073 − 1 299 − 165 755 = 181 513.',
    'RSA-2048-CRT/keygen':
      'KeyPair ALG_RSA_CRT 2048 genKeyPair = 5 224.7 ms (10 runs, 0.6–17.3 s) = 167 190 400 − call site ' +
      '[getfield_a_this invokevirtual + loop] 2 591 − 1 299 = 167 186 510; includes storing the key.',
    'RSA-2048/keygen': 'ALG_RSA 2048 genKeyPair = 4 921.05 ms ⇒ 157 469 710 (same arithmetic).',
    'RSA size scaling':
      'Keys absent from the table are scaled from the 2048-bit entry: private ops (sign) ∝ bits³ (CRT exponentiation, ' +
      '[assumption]); public ops ∝ bits² (fixed e = 65537); CRT keygen ∝ bits^2.75 and non-CRT keygen ∝ bits^3.25 ' +
      '(least-squares fits of this card\'s 1024/2048/3072/4096-bit keygen times: 763.8/5 224.7/13 003/37 687 ms CRT, ' +
      '561/4 921/16 905/55 901 ms non-CRT).',
    'EC-256/sign':
      'ALG_ECDSA_SHA P-256 sign 256 B = 31.96 ms = 1 022 720 − 3 826 − 1 299 − SHA-1 165 755 = 851 840.',
    'EC-256/verify': 'ALG_ECDSA_SHA P-256 verify = 30.22 ms = 967 040 − 4 073 − 1 299 − 165 755 = 795 913.',
    'EC-256/keygen': 'ALG_EC_FP 256 genKeyPair = 26.8 ms = 857 600 − 2 591 − 1 299 = 853 710.',
    'EC-256/ecdh':
      'ALG_EC_SVDP_DH P-256 generateSecret = 20.04 ms = 641 280 − call site [getfield_a_this ×3 sconst_0 ×2 sload ' +
      'invokevirtual pop + field-bound loop] 4 319 − 1 299 = 635 662.',
    'EC size scaling':
      'Other EC sizes scale ∝ bits (measured on this card: P-384 sign 45.33, ECDH 30.58, keygen 38.75 ms vs P-256 ' +
      '31.96/20.04/26.8 ⇒ exponent ≈ 1.0 once SHA-1 is taken out).',
    'KEY/set':
      'RSAPrivateCrtKey.setP: 6.18 ms at 64 B (RSA-1024), 6.41 ms at 96 B (RSA-1536) ⇒ 0.23 ms / 32 B = 230 per byte; ' +
      'fixed = 197 760 − call site [getfield_a_this ×2 sconst_0 sload invokeinterface + loop] 3 701 − 1 299 − 64 × 230 ' +
      '= 178 040 (includes storing the component).',
    'CIPHER/init':
      'Cipher.init AES-128 = 6.09 ms = 194 880 − call site [getfield_a_this sload sconst_2 srem ifne getfield_a_this goto ' +
      'getfield_a_this getfield_b invokevirtual + field-bound loop] 5 429 − 1 299 = 188 152; SIGNATURE/init taken equal ' +
      '(DES MAC8 Signature.init measured 6.10 ms; ECDSA init 8.12 ms).',
    ioBytesPerSecond:
      'T=1 at the J3R180\'s own TA1 = 18 (Fi 372, Di 12) on a 3.5712 MHz reader clock: 9 600 × 12 = 115 200 bit/s; ' +
      'a character is 11 etu (start, 8 data, parity, 1 guard etu: CGT for T=1) ⇒ 115 200 / 11 = 10 473 bytes/s.',
    ioApduOverheadUs:
      'Per APDU: T=1 prologue + epilogue (NAD PCB LEN + LRC) for the command and the response block = 8 bytes = ' +
      '764 µs, plus one block guard time (22 etu = 191 µs) ⇒ 955 µs. Not modelled: the host/reader stack (JCAlgTest\'s ' +
      'empty-APDU baseline on a USB CCID reader was 34–41 ms), WTX, chaining of > 254-byte blocks (IFSC).',
  },
};
