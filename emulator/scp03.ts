// SCP03 secure channel (GPC 2.2 Amendment D v1.1.1), card and host side in one place so both ends share one reading:
// KDF and session keys (§4.1.5, §6.2.1), challenges and cryptograms (§6.2.2), C-MAC/R-MAC (§6.2.4–5),
// C-DECRYPTION/R-ENCRYPTION (§6.2.6–7), and the static-DEK key encryption of PUT KEY (§7.2).
// S16 mode (16-byte challenges, cryptograms and MACs) is not in v1.1.1; it follows GlobalPlatformPro's reading (i b1).
import { randomBytes } from 'node:crypto';
import { aesCbcDecrypt, aesCbcEncrypt, aesCmac, aesEcbEncrypt } from './aes.ts';
import { concat, hex, pad80, readUint, secretEqual, uint, unpad80 } from './bytes.ts';
import { IsoError, SW, swHex, swMeaning } from './iso.ts';
import { decodeCla, encodeCommand, encodeResponse, parseCommand } from './apdu.ts';
import type { CommandApdu } from './apdu.ts';

/** Security level bits of EXTERNAL AUTHENTICATE P1 (Amd D Table 7-3). */
export const Level = { NONE: 0x00, CMAC: 0x01, CDEC: 0x02, RMAC: 0x10, RENC: 0x20 } as const;

/**
 * Levels EXTERNAL AUTHENTICATE accepts (Amd D Table 7-3): 00 (authentication only, "no secure messaging expected"),
 * 01, 03, 11, 13 and 33. Anything else (e.g. 10, 31) is 6A86.
 */
const VALID_LEVELS: ReadonlySet<number> = new Set([0x00, 0x01, 0x03, 0x11, 0x13, 0x33]);

export function isValidLevel(level: number): boolean {
  return VALID_LEVELS.has(level);
}

/** Derivation constants (Amd D Table 4-1). */
export const Derivation = {
  CARD_CRYPTOGRAM: 0x00,
  HOST_CRYPTOGRAM: 0x01,
  CARD_CHALLENGE: 0x02,
  S_ENC: 0x04,
  S_MAC: 0x06,
  S_RMAC: 0x07,
} as const;

export const INS_INITIALIZE_UPDATE = 0x50;
export const INS_EXTERNAL_AUTHENTICATE = 0x82;
/** SCP identifier in the INITIALIZE UPDATE key information (Amd D Table 7-2). */
export const SCP03 = 0x03;

export interface KeySet {
  enc: Uint8Array;
  mac: Uint8Array;
  dek: Uint8Array;
}

export interface SessionKeys {
  senc: Uint8Array;
  smac: Uint8Array;
  srmac: Uint8Array;
}

/** Live secure-channel session state, the same shape on card and host. Mutated by wrap/unwrap. */
export interface Session {
  keys: SessionKeys;
  level: number;
  i: number;
  s16: boolean;
  /** MAC chaining value: the full 16-byte CMAC of the last command (Amd D §6.2.4). */
  macChain: Uint8Array;
  /** Encryption counter of the last command: 0 after EXTERNAL AUTHENTICATE, 1 for the first command (§6.2.6). */
  counter: number;
  kvn: number;
}

/** What the card keeps between INITIALIZE UPDATE and EXTERNAL AUTHENTICATE. */
export interface PendingSession {
  keys: SessionKeys;
  /** host challenge || card challenge. */
  context: Uint8Array;
  i: number;
  s16: boolean;
  kvn: number;
}

/** A host-side protocol failure (bad cryptogram, bad R-MAC, error status word). `sw` is set when the card answered one. */
export class Scp03Error extends Error {
  readonly sw: number | undefined;
  constructor(message: string, sw?: number) {
    super(message);
    this.name = 'Scp03Error';
    this.sw = sw;
  }
}

const ZERO16 = new Uint8Array(16);
const h2 = (n: number) => n.toString(16).toUpperCase().padStart(2, '0');

// ---------------------------------------------------------------------------------------------------------------
// Primitives

function checkKey(what: string, key: Uint8Array): void {
  if (!(key instanceof Uint8Array) || (key.length !== 16 && key.length !== 24 && key.length !== 32))
    throw new RangeError(`${what} must be an AES key of 16, 24 or 32 bytes, got ${key?.length ?? typeof key}`);
}

function checkKeySet(keys: KeySet): void {
  checkKey('Key-ENC', keys.enc);
  checkKey('Key-MAC', keys.mac);
  checkKey('Key-DEK', keys.dek);
}

/**
 * SCP03 KDF (Amd D §4.1.5): NIST SP 800-108 counter mode with AES-CMAC as PRF. Each block is
 * CMAC(key, 00×11 || constant || 00 || L(2) || i(1) || context), i from 1; the output is cut to `bits`.
 */
export function kdf(key: Uint8Array, constant: number, context: Uint8Array, bits: number): Uint8Array {
  checkKey('KDF key', key);
  if (!Number.isInteger(constant) || constant < 0 || constant > 0xff)
    throw new RangeError(`KDF derivation constant ${constant} is not a byte`);
  if (!Number.isInteger(bits) || bits <= 0 || bits % 8 !== 0 || bits > 255 * 128)
    throw new RangeError(`KDF output length ${bits} bits must be a positive multiple of 8 up to ${255 * 128}`);
  const blocks = Math.ceil(bits / 128);
  const out = new Uint8Array(blocks * 16);
  for (let i = 1; i <= blocks; i++) {
    // label (11 zero bytes + constant), separation indicator 00, L, counter: exactly one block before the context.
    const fixed = new Uint8Array(16);
    fixed[11] = constant;
    fixed[13] = (bits >> 8) & 0xff;
    fixed[14] = bits & 0xff;
    fixed[15] = i;
    out.set(aesCmac(key, fixed, context), (i - 1) * 16);
  }
  return out.slice(0, bits / 8);
}

/** Session keys (Amd D §6.2.1): each as long as its static key; S-RMAC comes from Key-MAC. No session DEK. */
export function deriveSessionKeys(keys: KeySet, context: Uint8Array): SessionKeys {
  checkKeySet(keys);
  return {
    senc: kdf(keys.enc, Derivation.S_ENC, context, keys.enc.length * 8),
    smac: kdf(keys.mac, Derivation.S_MAC, context, keys.mac.length * 8),
    srmac: kdf(keys.mac, Derivation.S_RMAC, context, keys.mac.length * 8),
  };
}

/** Pseudo-random card challenge (Amd D §6.2.2.1): KDF(static Key-ENC, 02, sequence counter(3) || SD AID). */
export function pseudoRandomChallenge(keyEnc: Uint8Array, sequenceCounter: number, sdAid: Uint8Array, s16: boolean): Uint8Array {
  if (!Number.isInteger(sequenceCounter) || sequenceCounter < 0 || sequenceCounter > 0xffffff)
    throw new RangeError(`sequence counter ${sequenceCounter} does not fit 3 bytes`);
  if (sdAid.length < 5 || sdAid.length > 16) throw new RangeError(`security domain AID of ${sdAid.length} bytes; expected 5–16`);
  return kdf(keyEnc, Derivation.CARD_CHALLENGE, concat(uint(sequenceCounter, 3), sdAid), s16 ? 128 : 64);
}

/** Key check value of an AES key (Amd D §7.2.2): the first 3 bytes of AES(key, 16×01). */
export function kcv(key: Uint8Array): Uint8Array {
  checkKey('key', key);
  return aesEcbEncrypt(key, new Uint8Array(16).fill(0x01)).slice(0, 3);
}

/**
 * PUT KEY key encryption (Amd D §7.2): AES-CBC, ICV zero, with the static Key-DEK. A 24-byte key is right-padded
 * with zeros to 32 bytes; the key length byte in front of the ciphertext tells the card how much to keep.
 */
export function encryptKeyData(dek: Uint8Array, key: Uint8Array): Uint8Array {
  checkKey('Key-DEK', dek);
  const padded = new Uint8Array(Math.ceil(key.length / 16) * 16);
  padded.set(key);
  return aesCbcEncrypt(dek, ZERO16, padded);
}

/** Inverse of encryptKeyData; returns every decrypted byte (padding included); the caller keeps its key length. */
export function decryptKeyData(dek: Uint8Array, data: Uint8Array): Uint8Array {
  checkKey('Key-DEK', dek);
  if (data.length === 0 || data.length % 16 !== 0)
    throw new RangeError(`encrypted key data of ${data.length} bytes is not a whole number of AES blocks`);
  return aesCbcDecrypt(dek, ZERO16, data);
}

/**
 * The "i" parameter (Amd D v1.1.1 Table 5-1): b5 (10) pseudo-random card challenge; b7b6 = 01 R-MAC, 11 R-MAC and
 * R-ENC (so R-ENC needs both 40 and 20); b1 (01) S16 mode as GlobalPlatformPro reads it (later Amd D versions).
 */
export function iOptions(i: number): { pseudoRandom: boolean; rmac: boolean; renc: boolean; s16: boolean } {
  return {
    pseudoRandom: (i & 0x10) !== 0,
    rmac: (i & 0x20) !== 0,
    renc: (i & 0x60) === 0x60,
    s16: (i & 0x01) !== 0,
  };
}

function macLength(s16: boolean): number {
  return s16 ? 16 : 8;
}

/** ICV for C-DECRYPTION / R-ENCRYPTION (§6.2.6–7): AES(S-ENC, counter as a 16-byte block), responses with MSB 80. */
function icv(senc: Uint8Array, counter: number, response: boolean): Uint8Array {
  const block = uint(counter, 16);
  if (response) block[0] = 0x80;
  return aesEcbEncrypt(senc, block);
}

/** Status words whose responses carry data and an R-MAC (§6.2.5): 9000, 62xx, 63xx. */
function protectedSw(sw: number): boolean {
  const sw1 = sw >> 8;
  return sw === 0x9000 || sw1 === 0x62 || sw1 === 0x63;
}

/** The class byte as sent with secure messaging: b3 (04) for channels 0–3, b6 (20) for channels 4–19 (ISO 7816-4 §5.4.1). */
function smCla(cla: number): number {
  return cla & 0x40 ? cla | 0x20 : (cla & ~0x0c) | 0x04;
}

/** The class byte without the SM indication, channel and chaining bits kept. */
function plainCla(cla: number): number {
  return cla & 0x40 ? cla & ~0x20 : cla & ~0x0c;
}

/** True when the class byte carries GP's SM indication in the place its coding puts it. */
function hasGpSm(cla: number): boolean {
  return cla & 0x40 ? (cla & 0x20) !== 0 : (cla & 0x0c) === 0x04;
}

/**
 * The class byte the C-MAC covers: the logical channel number is cleared, so it is the channel-0 form with the SM
 * bit (84 proprietary, 04 interindustry); the chaining bit b5 is kept since it is part of the command as sent.
 */
function macCla(cla: number): number {
  return (cla & 0x80) | (cla & 0x10) | 0x04;
}

/** The Lc field as transmitted: one byte, or 00 hi lo in the extended form. */
function lcField(lc: number, extended: boolean): Uint8Array {
  return extended ? Uint8Array.of(0, lc >> 8, lc & 0xff) : Uint8Array.of(lc);
}

function commandMac(macKey: Uint8Array, chain: Uint8Array, cla: number, ins: number, p1: number, p2: number, lc: Uint8Array, body: Uint8Array): Uint8Array {
  return aesCmac(macKey, chain, Uint8Array.of(macCla(cla), ins, p1, p2), lc, body);
}

function caseOf(dataLength: number, ne: number): 1 | 2 | 3 | 4 {
  if (dataLength) return ne ? 4 : 3;
  return ne ? 2 : 1;
}

// ---------------------------------------------------------------------------------------------------------------
// Card side

export interface CardInitInput {
  keys: KeySet;
  kvn: number;
  i: number;
  /** Value to use for this INITIALIZE UPDATE (the card manager already incremented and persisted it). */
  sequenceCounter: number;
  /** AID of the security domain: context of the pseudo-random challenge. */
  sdAid: Uint8Array;
  /** 10 bytes key diversification data. */
  kdd: Uint8Array;
  /** 8 bytes (16 in S16). */
  hostChallenge: Uint8Array;
  /** For i without pseudo-random challenge; default crypto.randomBytes. */
  random?: (n: number) => Uint8Array;
}

/**
 * INITIALIZE UPDATE on the card (Amd D §7.1.1). Returns the response data (no SW):
 * KDD || KVN 03 i || card challenge || card cryptogram [|| sequence counter(3)] (Table 7-2).
 */
export function cardInitializeUpdate(input: CardInitInput): { response: Uint8Array; pending: PendingSession } {
  const { keys, kvn, i, sdAid, kdd, hostChallenge } = input;
  checkKeySet(keys);
  if (kdd.length !== 10) throw new RangeError(`key diversification data of ${kdd.length} bytes; expected 10`);
  if (!Number.isInteger(kvn) || kvn < 0 || kvn > 0xff) throw new RangeError(`KVN ${kvn} is not a byte`);
  const opts = iOptions(i);
  const n = macLength(opts.s16);
  if (hostChallenge.length !== n)
    throw new IsoError(SW.WRONG_LENGTH, `host challenge of ${hostChallenge.length} bytes; i=${h2(i)} expects ${n}`);
  let cardChallenge: Uint8Array;
  if (opts.pseudoRandom) {
    cardChallenge = pseudoRandomChallenge(keys.enc, input.sequenceCounter, sdAid, opts.s16);
  } else {
    cardChallenge = (input.random ?? randomBytes)(n);
    if (cardChallenge.length !== n) throw new RangeError(`random source gave ${cardChallenge.length} bytes for ${n}`);
  }
  const context = concat(hostChallenge, cardChallenge);
  const sk = deriveSessionKeys(keys, context);
  const cryptogram = kdf(sk.smac, Derivation.CARD_CRYPTOGRAM, context, n * 8);
  const response = concat(
    kdd,
    Uint8Array.of(kvn, SCP03, i),
    cardChallenge,
    cryptogram,
    opts.pseudoRandom ? uint(input.sequenceCounter, 3) : new Uint8Array(0),
  );
  return { response, pending: { keys: sk, context, i, s16: opts.s16, kvn } };
}

/**
 * EXTERNAL AUTHENTICATE on the card (Amd D §7.1.2, CLA 84 INS 82 P1=level): level valid and offered by i (6A86),
 * host cryptogram (6300), C-MAC (6982). Returns the open session; its MAC chain starts from this command.
 */
export function cardExternalAuthenticate(pending: PendingSession, cmd: CommandApdu): Session {
  const n = macLength(pending.s16);
  if (!hasGpSm(cmd.cla))
    throw new IsoError(SW.SECURITY_STATUS, `EXTERNAL AUTHENTICATE with CLA ${h2(cmd.cla)} has no C-MAC indication (CLA 84)`);
  if (cmd.data.length !== 2 * n)
    throw new IsoError(SW.WRONG_LENGTH, `EXTERNAL AUTHENTICATE data of ${cmd.data.length} bytes; expected ${2 * n} (host cryptogram + C-MAC)`);
  const level = cmd.p1;
  if (!isValidLevel(level)) throw new IsoError(SW.INCORRECT_P1P2, `security level ${h2(level)} is not one of 00 01 03 11 13 33`);
  if (cmd.p2 !== 0) throw new IsoError(SW.INCORRECT_P1P2, `P2 of EXTERNAL AUTHENTICATE must be 00, got ${h2(cmd.p2)}`);
  const opts = iOptions(pending.i);
  if (level & Level.RMAC && !opts.rmac)
    throw new IsoError(SW.INCORRECT_P1P2, `security level ${h2(level)} asks for R-MAC, which i=${h2(pending.i)} does not offer`);
  if (level & Level.RENC && !opts.renc)
    throw new IsoError(SW.INCORRECT_P1P2, `security level ${h2(level)} asks for R-ENC, which i=${h2(pending.i)} does not offer`);
  const { keys, context } = pending;
  const cryptogram = cmd.data.subarray(0, n);
  const expected = kdf(keys.smac, Derivation.HOST_CRYPTOGRAM, context, n * 8);
  if (!secretEqual(cryptogram, expected)) throw new IsoError(SW.AUTH_FAILED, 'host cryptogram does not verify');
  const full = commandMac(keys.smac, ZERO16, cmd.cla, cmd.ins, cmd.p1, cmd.p2, lcField(cmd.data.length, cmd.extended), cryptogram);
  if (!secretEqual(cmd.data.subarray(n), full.subarray(0, n)))
    throw new IsoError(SW.SECURITY_STATUS, 'C-MAC of EXTERNAL AUTHENTICATE does not verify');
  return { keys, level, i: pending.i, s16: pending.s16, macChain: full, counter: 0, kvn: pending.kvn };
}

/**
 * Unwraps a command received in the session: verifies the C-MAC (6982), decrypts when the level has C-DEC (6982 on
 * bad length or padding), updates MAC chain and counter. A C-MAC'd command at level 00 is verified too.
 * Returns the plain command: SM indication cleared in CLA (channel and chaining bits kept), plain data, same Ne.
 */
export function cardUnwrap(session: Session, cmd: CommandApdu): CommandApdu {
  // Every command advances the counter, with or without data (§6.2.6), and failures end the session anyway.
  session.counter += 1;
  if (!hasGpSm(cmd.cla))
    throw new IsoError(SW.SECURITY_STATUS, `CLA ${h2(cmd.cla)}: secure messaging indication is not GP's (b3 for channels 0–3, b6 for 4–19)`);
  const n = macLength(session.s16);
  const len = cmd.data.length;
  if (len < n) throw new IsoError(SW.SECURITY_STATUS, `command data of ${len} bytes has no room for the ${n}-byte C-MAC`);
  const body = cmd.data.subarray(0, len - n);
  const full = commandMac(session.keys.smac, session.macChain, cmd.cla, cmd.ins, cmd.p1, cmd.p2, lcField(len, cmd.extended), body);
  if (!secretEqual(cmd.data.subarray(len - n), full.subarray(0, n)))
    throw new IsoError(SW.SECURITY_STATUS, `C-MAC of command ${h2(cmd.ins)} does not verify`);
  session.macChain = full;
  let data: Uint8Array = body;
  if (session.level & Level.CDEC && body.length) {
    if (body.length % 16 !== 0)
      throw new IsoError(SW.SECURITY_STATUS, `encrypted command data of ${body.length} bytes is not a whole number of AES blocks`);
    const plain = unpad80(aesCbcDecrypt(session.keys.senc, icv(session.keys.senc, session.counter, false), body));
    if (!plain) throw new IsoError(SW.SECURITY_STATUS, `decrypted command data of ${body.length} bytes has no 80 00.. padding`);
    data = plain;
  }
  return { cla: plainCla(cmd.cla), ins: cmd.ins, p1: cmd.p1, p2: cmd.p2, data, ne: cmd.ne, extended: cmd.extended, case: caseOf(data.length, cmd.ne) };
}

/**
 * Protects a response (§6.2.5, §6.2.7): R-ENC then R-MAC when the level has them and the SW is 9000/62xx/63xx;
 * other SWs go out as they are. Returns the data to send (no SW).
 */
export function cardWrap(session: Session, data: Uint8Array, sw: number): Uint8Array {
  if (!protectedSw(sw)) return data;
  let out = data;
  const { senc, srmac } = session.keys;
  if (session.level & Level.RENC && data.length) out = aesCbcEncrypt(senc, icv(senc, session.counter, true), pad80(data));
  if (session.level & Level.RMAC) {
    // The R-MAC chains on the C-MAC of the command it answers and does not move the chain (§6.2.5).
    const full = aesCmac(srmac, session.macChain, out, Uint8Array.of(sw >> 8, sw & 0xff));
    out = concat(out, full.subarray(0, macLength(session.s16)));
  }
  return out;
}

// ---------------------------------------------------------------------------------------------------------------
// Host side

export interface HostOptions {
  keys: KeySet;
  /** Key version to ask for; 0 (default) = any, the card picks. */
  kvn?: number;
  level: number;
  /** S16 mode; default: inferred from hostChallenge's length, else S8. */
  s16?: boolean;
  hostChallenge?: Uint8Array;
  /** If given, a pseudo-random card challenge is checked against it. */
  sdAid?: Uint8Array;
  /** Class byte of INITIALIZE UPDATE (default 80); its channel bits are kept for EXTERNAL AUTHENTICATE. */
  cla?: number;
}

export interface AuthInfo {
  kdd: Uint8Array;
  kvn: number;
  i: number;
  cardChallenge: Uint8Array;
  sequenceCounter?: number;
}

export function hostInitializeUpdate(opts: HostOptions): { apdu: Uint8Array; hostChallenge: Uint8Array } {
  const s16 = opts.s16 ?? opts.hostChallenge?.length === 16;
  const n = macLength(s16);
  const hostChallenge = opts.hostChallenge ?? new Uint8Array(randomBytes(n));
  if (hostChallenge.length !== n)
    throw new Scp03Error(`host challenge of ${hostChallenge.length} bytes; ${s16 ? 'S16' : 'S8'} mode needs ${n}`);
  const kvn = opts.kvn ?? 0;
  if (!Number.isInteger(kvn) || kvn < 0 || kvn > 0xff) throw new RangeError(`KVN ${kvn} is not a byte`);
  const cla = opts.cla ?? 0x80;
  if (!decodeCla(cla)) throw new RangeError(`class byte ${h2(cla)} is not valid`);
  return { apdu: encodeCommand({ cla, ins: INS_INITIALIZE_UPDATE, p1: kvn, p2: 0, data: hostChallenge, ne: 256 }), hostChallenge };
}

/**
 * Parses the INITIALIZE UPDATE response data, checks the card cryptogram (and a pseudo-random challenge when sdAid
 * is given), and builds EXTERNAL AUTHENTICATE; the returned session's MAC chain already includes it.
 */
export function hostAuthenticate(
  opts: HostOptions,
  hostChallenge: Uint8Array,
  responseData: Uint8Array,
): { session: Session; externalAuthenticate: Uint8Array; info: AuthInfo } {
  checkKeySet(opts.keys);
  if (hostChallenge.length !== 8 && hostChallenge.length !== 16)
    throw new Scp03Error(`host challenge of ${hostChallenge.length} bytes; expected 8 or 16`);
  const s16 = hostChallenge.length === 16;
  const n = macLength(s16);
  const base = 13 + 2 * n;
  const len = responseData.length;
  if (len !== base && len !== base + 3)
    throw new Scp03Error(`INITIALIZE UPDATE response of ${len} bytes; SCP03 ${s16 ? 'S16' : 'S8'} gives ${base} or ${base + 3}`);
  const kdd = responseData.slice(0, 10);
  const kvn = responseData[10];
  const scp = responseData[11];
  const i = responseData[12];
  if (scp !== SCP03) throw new Scp03Error(`card answered with SCP ${h2(scp)}, not SCP03`);
  if (opts.kvn && kvn !== opts.kvn) throw new Scp03Error(`card used key version ${h2(kvn)}, host asked for ${h2(opts.kvn)}`);
  const io = iOptions(i);
  if (io.s16 !== s16)
    throw new Scp03Error(`card's i=${h2(i)} is ${io.s16 ? 'S16' : 'S8'} mode but the host challenge has ${hostChallenge.length} bytes`);
  const hasSeq = len === base + 3;
  if (hasSeq !== io.pseudoRandom)
    throw new Scp03Error(`INITIALIZE UPDATE response ${hasSeq ? 'has' : 'lacks'} a sequence counter but i=${h2(i)} says otherwise`);
  const cardChallenge = responseData.slice(13, 13 + n);
  const cardCryptogram = responseData.subarray(13 + n, 13 + 2 * n);
  const sequenceCounter = hasSeq ? readUint(responseData.subarray(base, base + 3)) : undefined;

  const context = concat(hostChallenge, cardChallenge);
  const keys = deriveSessionKeys(opts.keys, context);
  if (!secretEqual(cardCryptogram, kdf(keys.smac, Derivation.CARD_CRYPTOGRAM, context, n * 8)))
    throw new Scp03Error(`card cryptogram does not verify: wrong static keys for key version ${h2(kvn)}?`);
  if (opts.sdAid && sequenceCounter !== undefined) {
    const expected = pseudoRandomChallenge(opts.keys.enc, sequenceCounter, opts.sdAid, s16);
    if (!secretEqual(cardChallenge, expected))
      throw new Scp03Error(`pseudo-random card challenge ${hex(cardChallenge)} does not match sequence counter ${sequenceCounter} and AID ${hex(opts.sdAid)}`);
  }
  const level = opts.level;
  if (!isValidLevel(level)) throw new Scp03Error(`security level ${h2(level)} is not one of 00 01 03 11 13 33`);
  if (level & Level.RMAC && !io.rmac) throw new Scp03Error(`security level ${h2(level)} needs R-MAC, which the card's i=${h2(i)} does not offer`);
  if (level & Level.RENC && !io.renc) throw new Scp03Error(`security level ${h2(level)} needs R-ENC, which the card's i=${h2(i)} does not offer`);

  const hostCryptogram = kdf(keys.smac, Derivation.HOST_CRYPTOGRAM, context, n * 8);
  const cla = smCla(opts.cla ?? 0x80);
  const full = commandMac(keys.smac, ZERO16, cla, INS_EXTERNAL_AUTHENTICATE, level, 0, lcField(2 * n, false), hostCryptogram);
  const externalAuthenticate = encodeCommand({
    cla,
    ins: INS_EXTERNAL_AUTHENTICATE,
    p1: level,
    p2: 0,
    data: concat(hostCryptogram, full.subarray(0, n)),
  });
  const info: AuthInfo = { kdd, kvn, i, cardChallenge };
  if (sequenceCounter !== undefined) info.sequenceCounter = sequenceCounter;
  return { session: { keys, level, i, s16, macChain: full, counter: 0, kvn }, externalAuthenticate, info };
}

/**
 * Plain C-APDU bytes → protected C-APDU bytes (§6.2.4, §6.2.6). At level 00 commands go out plain. The SM indication
 * goes where the class coding puts it; Le is kept (not MACed); extended lengths are used once Lc' exceeds 255.
 */
export function hostWrap(session: Session, apdu: Uint8Array): Uint8Array {
  if (!(session.level & Level.CMAC)) return apdu.slice();
  let cmd: CommandApdu;
  try {
    cmd = parseCommand(apdu);
  } catch (e) {
    throw new Scp03Error(`cannot wrap ${hex(apdu)}: ${(e as Error).message}`);
  }
  if (!decodeCla(cmd.cla)) throw new Scp03Error(`cannot wrap: class byte ${h2(cmd.cla)} is not valid`);
  const counter = session.counter + 1;
  const { senc, smac } = session.keys;
  const n = macLength(session.s16);
  let body = cmd.data;
  if (session.level & Level.CDEC && body.length) body = aesCbcEncrypt(senc, icv(senc, counter, false), pad80(body));
  const lc = body.length + n;
  if (lc > 65535) throw new Scp03Error(`cannot wrap: ${cmd.data.length} data bytes grow to Lc ${lc}, over 65535`);
  const extended = cmd.extended || lc > 255 || cmd.ne > 256;
  const cla = smCla(cmd.cla);
  const full = commandMac(smac, session.macChain, cla, cmd.ins, cmd.p1, cmd.p2, lcField(lc, extended), body);
  session.counter = counter;
  session.macChain = full;
  return encodeCommand({ cla, ins: cmd.ins, p1: cmd.p1, p2: cmd.p2, data: concat(body, full.subarray(0, n)), ne: cmd.ne, extended });
}

/** Protected R-APDU (data + SW) → plain (data + SW). Throws Scp03Error on a bad R-MAC or bad R-ENC padding. */
export function hostUnwrap(session: Session, response: Uint8Array): Uint8Array {
  if (response.length < 2) throw new Scp03Error(`response of ${response.length} bytes has no status word`);
  const sw = (response[response.length - 2] << 8) | response[response.length - 1];
  if (!protectedSw(sw) || !(session.level & (Level.RMAC | Level.RENC))) return response.slice();
  const data = response.subarray(0, response.length - 2);
  const { senc, srmac } = session.keys;
  let body = data;
  if (session.level & Level.RMAC) {
    const n = macLength(session.s16);
    if (data.length < n) throw new Scp03Error(`response of ${data.length} data bytes (SW ${swHex(sw)}) has no room for the ${n}-byte R-MAC`);
    body = data.subarray(0, data.length - n);
    const full = aesCmac(srmac, session.macChain, body, response.subarray(response.length - 2));
    if (!secretEqual(data.subarray(data.length - n), full.subarray(0, n)))
      throw new Scp03Error(`R-MAC of the response (SW ${swHex(sw)}) does not verify`);
  }
  if (session.level & Level.RENC && body.length) {
    if (body.length % 16 !== 0) throw new Scp03Error(`encrypted response data of ${body.length} bytes is not whole AES blocks`);
    const plain = unpad80(aesCbcDecrypt(senc, icv(senc, session.counter, true), body));
    if (!plain) throw new Scp03Error(`decrypted response data of ${body.length} bytes has no 80 00.. padding`);
    body = plain;
  }
  return encodeResponse(body, sw);
}

export interface SecureChannel {
  session: Session;
  /** Plain command in, plain response (data + SW) out; wraps and unwraps. */
  transmit: (apdu: Uint8Array) => Promise<Uint8Array>;
  info: AuthInfo;
}

function statusOf(r: Uint8Array, what: string): { data: Uint8Array; sw: number } {
  if (r.length < 2) throw new Scp03Error(`${what}: response of ${r.length} bytes has no status word`);
  return { data: r.subarray(0, r.length - 2), sw: (r[r.length - 2] << 8) | r[r.length - 1] };
}

/**
 * Opens a session over any async transport: INITIALIZE UPDATE + EXTERNAL AUTHENTICATE with SW checks. When the
 * mode is not fixed by the caller and the card answers 6700 to an 8-byte challenge, it retries in S16 (as GPP does).
 */
export async function openSecureChannel(
  transmit: (apdu: Uint8Array) => Promise<Uint8Array>,
  opts: HostOptions & { cla?: number },
): Promise<SecureChannel> {
  let iu = hostInitializeUpdate(opts);
  let r = statusOf(await transmit(iu.apdu), 'INITIALIZE UPDATE');
  if (r.sw === SW.WRONG_LENGTH && opts.s16 === undefined && opts.hostChallenge === undefined) {
    iu = hostInitializeUpdate({ ...opts, s16: true });
    r = statusOf(await transmit(iu.apdu), 'INITIALIZE UPDATE');
  }
  if (r.sw !== SW.OK) throw new Scp03Error(`INITIALIZE UPDATE failed: SW ${swHex(r.sw)} (${swMeaning(r.sw)})`, r.sw);
  const auth = hostAuthenticate(opts, iu.hostChallenge, r.data);
  const ea = statusOf(await transmit(auth.externalAuthenticate), 'EXTERNAL AUTHENTICATE');
  if (ea.sw !== SW.OK) throw new Scp03Error(`EXTERNAL AUTHENTICATE failed: SW ${swHex(ea.sw)} (${swMeaning(ea.sw)})`, ea.sw);
  const session = auth.session;
  return {
    session,
    info: auth.info,
    transmit: async (apdu) => hostUnwrap(session, await transmit(hostWrap(session, apdu))),
  };
}
