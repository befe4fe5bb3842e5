// Host side of the JPKI AP's personalisation (docs/jpki-applet.md): an applet-level SCP03 session to the selected JPKI
// AP (emulator/scp03.ts openSecureChannel; keys of the AP's security domain: the ISD for a card, the JPKI APSD on a
// phone) and the proprietary commands 84 E0–F4, plus the two app-side commands of the temporary-PIN flow (REVEAL
// TEMPORARY PIN, RESET RETRY COUNTER). Every refusal becomes a JpkiError carrying the status word and the command.
import { createHash, timingSafeEqual } from 'node:crypto';
import type { KeyObject } from 'node:crypto';
import { encodeCla, encodeCommand } from '../apdu.ts';
import { concat, fromHex, hex } from '../bytes.ts';
import { swHex, swMeaning } from '../iso.ts';
import { Scp03Error, openSecureChannel } from '../scp03.ts';
import type { KeySet, SecureChannel } from '../scp03.ts';
import { parseTlvs, TlvError } from '../tlv.ts';

export type KeyKind = 'auth' | 'sign';
export type CertEf = 'sign' | 'signCa' | 'auth' | 'authCa';
export type Transmit = (apdu: Uint8Array) => Promise<Uint8Array>;

/** JPKI AP instance AID (公的個人認証AP), its package, and the JPKI APSD of the phone profile (a project choice). */
export const JPKI_AID = 'D392F000260100000001';
export const JPKI_PACKAGE_AID = 'D392F00026010000';
export const JPKI_APSD_AID = 'D392F000260200000001';
/** Security level of a session when none is asked for: C-MAC, C-DEC, R-MAC, R-ENC. */
export const DEFAULT_LEVEL = 0x33;

/** A refusal by the JPKI AP (sw set) or an answer that does not parse (sw undefined). */
export class JpkiError extends Error {
  readonly sw: number | undefined;
  readonly command: string;
  constructor(command: string, message: string, sw?: number) {
    super(`${command}: ${message}`);
    this.name = 'JpkiError';
    this.command = command;
    this.sw = sw;
  }
}

export interface PublicKeyParts {
  modulus: Uint8Array;
  exponent: Uint8Array;
  /** The commitment's R, consumed by this key generation: SHA-256(R) is the S that GENERATE COMMITMENT returned. */
  r: Uint8Array;
}

export interface JpkiPerso {
  seId(): Promise<Uint8Array>;
  /** GENERATE COMMITMENT (phone): S = SHA-256(R) of a new R for that kind. */
  commit(kind: KeyKind): Promise<Uint8Array>;
  /** GENERATE KEY PAIR (phone): RSA-2048 on chip; consumes R. */
  generateKeyPair(kind: KeyKind): Promise<PublicKeyParts>;
  /** IMPORT KEY COMPONENT × 5 (card): P, Q, DP1, DQ1, PQ of an RSA-2048 private key. */
  importKey(kind: KeyKind, key: KeyObject): Promise<void>;
  writeCertificate(ef: CertEf, der: Uint8Array): Promise<void>;
  /** SET PIN (card). */
  setPin(kind: KeyKind, pin: string): Promise<void>;
  /** SET TEMPORARY PIN (phone): the SE draws it; the TSM never sees it. */
  setTemporaryPin(kind: KeyKind): Promise<void>;
  /** INITIALISE PIN (phone): SET TEMPORARY PIN bound to this SE's identifier. */
  initialisePin(kind: KeyKind, seId: Uint8Array): Promise<void>;
  erase(kind: KeyKind | 'all'): Promise<void>;
  disableKey(kind: KeyKind): Promise<void>;
  /** LOCK (card). */
  lock(): Promise<void>;
  /** The session: plain command in, plain response (data ‖ SW) out; for commands the methods above do not cover. */
  send(apdu: Uint8Array): Promise<Uint8Array>;
  /** Security level of the session. */
  readonly level: number;
  /** Class byte of plain proprietary commands on this session's channel (80 | channel bits). */
  readonly cla: number;
}

export interface PersoOptions {
  keys: KeySet;
  kvn?: number;
  /** Security level (Amd D Table 7-3); default 33. */
  level?: number;
  /** Logical channel (already open) to work on; default 0. */
  channel?: number;
  /** Plain data per WRITE CERTIFICATE block; default: the most a short APDU carries at the session's level. */
  blockSize?: number;
}

export interface AppOptions {
  channel?: number;
  /** Select the JPKI AP first (default true); false to talk to whatever is selected on the channel. */
  select?: boolean;
}

const INS = {
  SELECT: 0xa4,
  GET_RESPONSE: 0xc0,
  GET_SE_ID: 0xe0,
  COMMIT: 0xe2,
  GENERATE_KEY_PAIR: 0xe4,
  IMPORT_KEY: 0xe6,
  WRITE_CERTIFICATE: 0xe8,
  SET_PIN: 0xea,
  SET_TEMPORARY_PIN: 0xec,
  INITIALISE_PIN: 0xee,
  ERASE: 0xf0,
  DISABLE_KEY: 0xf2,
  LOCK: 0xf4,
  REVEAL_TEMPORARY_PIN: 0xca,
  RESET_RETRY_COUNTER: 0x2c,
} as const;

/** Key EF (P2 of key commands) and PIN EF (P2 of PIN commands) per kind. */
const KEY_REF: Record<KeyKind, number> = { auth: 0x17, sign: 0x1a };
const PIN_REF: Record<KeyKind, number> = { auth: 0x18, sign: 0x1b };
const CERT_REF: Record<CertEf, number> = { sign: 0x01, signCa: 0x02, auth: 0x0a, authCa: 0x0b };
const KEY_PART = 128;
const TEMP_PIN_LENGTH = 8;
const CERT_EF_SIZE = 0x800;
const MAC_LENGTH = 8;

/** The C9 install parameters of the JPKI AP: 80 01 <00 card | 01 phone> [81 10 <SE identifier>]. */
export function installParams(profile: 'card' | 'phone', seId?: Uint8Array): Uint8Array {
  const head = Uint8Array.of(0x80, 0x01, profile === 'phone' ? 0x01 : 0x00);
  if (!seId) return head;
  if (seId.length !== 16) throw new RangeError(`SE identifier of ${seId.length} bytes; 16 expected`);
  return concat(head, Uint8Array.of(0x81, 0x10), seId);
}

/** Is `r` the preimage of the commitment `s` (S = SHA-256(R))? Compared in constant time. */
export function commitmentMatches(s: Uint8Array, r: Uint8Array): boolean {
  const h = createHash('sha256').update(r).digest();
  return s.length === h.length && timingSafeEqual(h, s);
}

function split(r: Uint8Array, command: string): { data: Uint8Array; sw: number } {
  if (r.length < 2) throw new JpkiError(command, `answer of ${r.length} byte(s) has no status word`);
  return { data: r.subarray(0, r.length - 2), sw: (r[r.length - 2] << 8) | r[r.length - 1] };
}

/** The answer's data when the SW is 9000; a JpkiError naming the command otherwise. */
function expectOk(r: Uint8Array, command: string): Uint8Array {
  const { data, sw } = split(r, command);
  if (sw !== 0x9000) throw new JpkiError(command, `${swHex(sw)} ${swMeaning(sw)}`, sw);
  return data.slice();
}

/** One exchange plus the T=0-style follow-up (61xx → GET RESPONSE, ISO 7816-4 §5.3.4) on the same channel. */
function withGetResponse(transmit: Transmit, channel: number): Transmit {
  return async (apdu) => {
    let r = await transmit(apdu);
    const parts: Uint8Array[] = [];
    for (let guard = 0; r.length >= 2 && r[r.length - 2] === 0x61; guard++) {
      if (guard > 256) throw new JpkiError('GET RESPONSE', 'card keeps answering 61xx');
      parts.push(r.subarray(0, r.length - 2));
      r = await transmit(encodeCommand({ cla: encodeCla(channel), ins: INS.GET_RESPONSE, p1: 0, p2: 0, ne: r[r.length - 1] || 256 }));
    }
    return parts.length ? concat(...parts, r) : r;
  };
}

function checkChannel(channel: number): number {
  if (!Number.isInteger(channel) || channel < 0 || channel > 19) throw new RangeError(`logical channel ${channel} out of range 0–19`);
  return channel;
}

async function selectAp(transmit: Transmit, channel: number): Promise<void> {
  const r = await transmit(encodeCommand({ cla: encodeCla(channel), ins: INS.SELECT, p1: 0x04, p2: 0x0c, data: fromHex(JPKI_AID) }));
  expectOk(r, 'SELECT JPKI AP');
}

/** Left-pads a big-endian value to `n` bytes (JWK values carry no leading zeros). */
function padTo(b: Uint8Array, n: number, what: string): Uint8Array {
  if (b.length > n) throw new RangeError(`${what} has ${b.length} bytes; at most ${n}`);
  const out = new Uint8Array(n);
  out.set(b, n - b.length);
  return out;
}

/** Parses 7F49 { 81 modulus, 82 exponent } 9F36 <R>. */
function parseKeyPair(data: Uint8Array): PublicKeyParts {
  const what = 'GENERATE KEY PAIR';
  try {
    const top = parseTlvs(data);
    const pk = top.find((t) => t.tag === 0x7f49);
    const r = top.find((t) => t.tag === 0x9f36);
    if (!pk || !r) throw new JpkiError(what, `answer ${hex(data.subarray(0, 8))}… lacks 7F49 or 9F36`);
    const inner = parseTlvs(pk.value);
    const modulus = inner.find((t) => t.tag === 0x81)?.value;
    const exponent = inner.find((t) => t.tag === 0x82)?.value;
    if (!modulus || !exponent) throw new JpkiError(what, '7F49 lacks the modulus (81) or the exponent (82)');
    if (modulus.length !== 256) throw new JpkiError(what, `modulus of ${modulus.length} bytes; RSA-2048 has 256`);
    if (r.value.length !== 32) throw new JpkiError(what, `R of ${r.value.length} bytes; 32 expected`);
    return { modulus: modulus.slice(), exponent: exponent.slice(), r: r.value.slice() };
  } catch (e) {
    if (e instanceof TlvError) throw new JpkiError(what, `answer is not BER-TLV: ${e.message}`);
    throw e;
  }
}

/**
 * Selects the JPKI AP on the channel and opens an applet-level SCP03 session with it (INITIALIZE UPDATE / EXTERNAL
 * AUTHENTICATE reach the AP, which runs them through its security domain).
 */
export async function openJpkiPerso(transmit: Transmit, opts: PersoOptions): Promise<JpkiPerso> {
  const channel = checkChannel(opts.channel ?? 0);
  const raw = withGetResponse(transmit, channel);
  const level = opts.level ?? DEFAULT_LEVEL;
  await selectAp(raw, channel);
  const cla = encodeCla(channel, { proprietary: true });
  let sc: SecureChannel;
  try {
    sc = await openSecureChannel(raw, { keys: opts.keys, kvn: opts.kvn, level, cla });
  } catch (e) {
    if (e instanceof Scp03Error) throw new JpkiError('OPEN SECURE CHANNEL', e.message, e.sw);
    throw e;
  }
  const send = (apdu: Uint8Array) => sc.transmit(apdu);
  const run = async (command: string, ins: number, p1: number, p2: number, data?: Uint8Array, ne = 0): Promise<Uint8Array> =>
    expectOk(await send(encodeCommand({ cla, ins, p1, p2, data, ne })), command);
  // C-DEC pads to whole AES blocks (at least one padding byte); the C-MAC takes 8 more bytes of the short Lc.
  const room = 255 - MAC_LENGTH;
  const maxBlock = level & 0x02 ? Math.floor(room / 16) * 16 - 1 : room;
  const blockSize = opts.blockSize ?? maxBlock;
  if (!Number.isInteger(blockSize) || blockSize < 1 || blockSize > maxBlock)
    throw new RangeError(`block size ${blockSize}: 1 to ${maxBlock} at level ${level.toString(16)}`);

  return {
    level,
    cla,
    send,
    async seId() {
      const id = await run('GET SE IDENTIFIER', INS.GET_SE_ID, 0, 0, undefined, 256);
      if (id.length !== 16) throw new JpkiError('GET SE IDENTIFIER', `answer of ${id.length} bytes; 16 expected`);
      return id;
    },
    async commit(kind) {
      const s = await run('GENERATE COMMITMENT', INS.COMMIT, 0, KEY_REF[kind], undefined, 256);
      if (s.length !== 32) throw new JpkiError('GENERATE COMMITMENT', `answer of ${s.length} bytes; 32 expected`);
      return s;
    },
    async generateKeyPair(kind) {
      // 305 bytes of answer (more with R-ENC/R-MAC): extended Le.
      return parseKeyPair(await run('GENERATE KEY PAIR', INS.GENERATE_KEY_PAIR, 0, KEY_REF[kind], undefined, 65536));
    },
    async importKey(kind, key) {
      if (key.type !== 'private' || key.asymmetricKeyType !== 'rsa') throw new RangeError('importKey takes an RSA private key');
      const jwk = key.export({ format: 'jwk' });
      const parts = [jwk.p, jwk.q, jwk.dp, jwk.dq, jwk.qi];
      const n = jwk.n ? Buffer.from(jwk.n, 'base64url') : undefined;
      if (!n || n.length !== 256 || parts.some((p) => p === undefined)) throw new RangeError('importKey takes an RSA-2048 key with CRT components');
      for (let i = 0; i < parts.length; i++) {
        const value = padTo(Buffer.from(parts[i] as string, 'base64url'), KEY_PART, `component ${i + 1}`);
        await run('IMPORT KEY COMPONENT', INS.IMPORT_KEY, i + 1, KEY_REF[kind], value);
      }
    },
    async writeCertificate(ef, der) {
      if (der.length === 0 || der.length > CERT_EF_SIZE) throw new RangeError(`certificate of ${der.length} bytes; 1 to ${CERT_EF_SIZE}`);
      const blocks = Math.ceil(der.length / blockSize);
      if (blocks > 0x80) throw new RangeError(`certificate needs ${blocks} blocks; at most 128`);
      for (let b = 0; b < blocks; b++) {
        const last = b === blocks - 1 ? 0x80 : 0;
        await run('WRITE CERTIFICATE', INS.WRITE_CERTIFICATE, last | b, CERT_REF[ef], der.subarray(b * blockSize, (b + 1) * blockSize));
      }
    },
    async setPin(kind, pin) {
      await run('SET PIN', INS.SET_PIN, 0, PIN_REF[kind], new TextEncoder().encode(pin));
    },
    async setTemporaryPin(kind) {
      await run('SET TEMPORARY PIN', INS.SET_TEMPORARY_PIN, 0, PIN_REF[kind]);
    },
    async initialisePin(kind, seId) {
      await run('INITIALISE PIN', INS.INITIALISE_PIN, 0, PIN_REF[kind], seId);
    },
    async erase(kind) {
      await run('ERASE', INS.ERASE, 0, kind === 'all' ? 0 : KEY_REF[kind]);
    },
    async disableKey(kind) {
      await run('DISABLE KEY', INS.DISABLE_KEY, 0, KEY_REF[kind]);
    },
    async lock() {
      await run('LOCK', INS.LOCK, 0, 0);
    },
  };
}

/** REVEAL TEMPORARY PIN (app side, plain): the 8 digits the SE drew; the SE gives them once. */
export async function revealTemporaryPin(transmit: Transmit, kind: KeyKind, opts: AppOptions = {}): Promise<string> {
  const channel = checkChannel(opts.channel ?? 0);
  const raw = withGetResponse(transmit, channel);
  if (opts.select !== false) await selectAp(raw, channel);
  const cla = encodeCla(channel, { proprietary: true });
  const r = await raw(encodeCommand({ cla, ins: INS.REVEAL_TEMPORARY_PIN, p1: 0x01, p2: PIN_REF[kind], ne: 256 }));
  const digits = new TextDecoder().decode(expectOk(r, 'REVEAL TEMPORARY PIN'));
  if (!/^[0-9]{8}$/.test(digits)) throw new JpkiError('REVEAL TEMPORARY PIN', `answer is not ${TEMP_PIN_LENGTH} digits`);
  return digits;
}

/** RESET RETRY COUNTER (app side, plain): temporary PIN ‖ new PIN to the PIN named by SFI (98 / 9B). */
export async function unblockPin(transmit: Transmit, kind: KeyKind, temporary: string, newPin: string, opts: AppOptions = {}): Promise<void> {
  const channel = checkChannel(opts.channel ?? 0);
  const raw = withGetResponse(transmit, channel);
  if (opts.select !== false) await selectAp(raw, channel);
  const data = new TextEncoder().encode(temporary + newPin);
  const r = await raw(encodeCommand({ cla: encodeCla(channel), ins: INS.RESET_RETRY_COUNTER, p1: 0x00, p2: 0x80 | PIN_REF[kind], data }));
  expectOk(r, 'RESET RETRY COUNTER');
}
