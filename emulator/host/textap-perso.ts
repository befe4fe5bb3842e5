// Host side of the 券面入力補助AP (text AP, applet/textap): the issuer's personalisation in an applet-level SCP03
// session (GPC Amd D through the AP's security domain) and a reader of 個人番号 / 基本4情報 as a terminal reads them
// (SELECT AP, SELECT EF, VERIFY, READ BINARY: shared reference jpki.md §1.6). APDU table: applet/textap/README.md.
import { encodeCla, encodeCommand } from '../apdu.ts';
import { concat, fromHex, hex } from '../bytes.ts';
import { swHex, swMeaning } from '../iso.ts';
import { Level, Scp03Error, openSecureChannel } from '../scp03.ts';
import type { KeySet } from '../scp03.ts';
import { TlvError, encodeLength, readHeader } from '../tlv.ts';
import { maxShortData } from './gp-client.ts';

export const TEXT_AP_AID = 'D3921000310001010408';
/** EF 0002's size on this applet: the whole FF20 object must fit. */
export const ATTRIBUTES_EF_SIZE = 512;

/** JIS X 0303 as the card stores it: 1 male, 2 female, 9 not applicable. */
export type Sex = '1' | '2' | '9';

export interface Attributes {
  /** 氏名; family and given name separated by U+3000 (ideographic space). */
  name: string;
  /** 住所. */
  address: string;
  /** 生年月日, Gregorian YYYYMMDD. */
  birth: string;
  sex: Sex;
}

export type Transmit = (apdu: Uint8Array) => Promise<Uint8Array>;

/** A card refusal (sw set, with the command's name) or malformed data read from the card (sw undefined). */
export class TextApError extends Error {
  readonly sw: number | undefined;
  constructor(message: string, sw?: number) {
    super(message);
    this.name = 'TextApError';
    this.sw = sw;
  }
}

export interface TextApPerso {
  /** EF 0001 and 照合番号A (12 digits, check digit verified here). */
  writeMyNumber(digits12: string): Promise<void>;
  /** EF 0002; the card computes the DF21 offsets. Sent in as many chunks as the session level needs. */
  writeAttributes(a: Attributes): Promise<void>;
  setPin(pin: string): Promise<void>;
  /** 照合番号B = dob6 (era year YYMMDD, see verificationB) + expiry year + 4-digit security code. */
  setVerificationB(dob6: string, expiryYear4: string, code4: string): Promise<void>;
  /** Ends personalisation for good: afterwards every personalisation command answers 6D00. */
  lock(): Promise<void>;
}

const INS = { WRITE: 0xe8, SET_REFERENCE: 0xea, LOCK: 0xf4 } as const;
const EF = { myNumber: 0x01, attributes: 0x02, pin: 0x11, numberA: 0x14, numberB: 0x15 } as const;
const LAST_BLOCK = 0x80;
const enc = new TextEncoder();
const ascii = (s: string): Uint8Array => enc.encode(s);
const h4 = (n: number): string => n.toString(16).toUpperCase().padStart(4, '0');

function statusOf(r: Uint8Array, what: string): { data: Uint8Array; sw: number } {
  if (r.length < 2) throw new TextApError(`${what}: response of ${r.length} bytes has no status word`);
  return { data: r.subarray(0, r.length - 2), sw: (r[r.length - 2] << 8) | r[r.length - 1] };
}

function refused(what: string, sw: number): TextApError {
  const tries = sw >> 4 === 0x63c ? `, ${sw & 0xf} tries left` : '';
  return new TextApError(`${what} refused: SW ${swHex(sw)} (${swMeaning(sw)}${tries})`, sw);
}

async function expectOk(transmit: Transmit, apdu: Uint8Array, what: string): Promise<Uint8Array> {
  const r = statusOf(await transmit(apdu), what);
  if (r.sw !== 0x9000) throw refused(what, r.sw);
  return r.data;
}

function requireDigits(what: string, value: string, n: number): void {
  if (typeof value !== 'string' || !new RegExp(`^[0-9]{${n}}$`).test(value)) throw new RangeError(`${what} must be ${n} ASCII digits`);
}

/**
 * Check digit of a 個人番号 (番号法施行令 §8 / 総務省令 §5): with P(n) the n-th of the first 11 digits counted from the
 * right and Q(n) = n + 1 for n ≤ 6, n − 5 above, it is 11 − (Σ P(n)·Q(n) mod 11), or 0 when the remainder is 0 or 1.
 */
export function myNumberCheckDigit(first11: string): number {
  requireDigits('the first part of a 個人番号', first11, 11);
  let sum = 0;
  for (let n = 1; n <= 11; n++) sum += Number(first11[11 - n]) * (n <= 6 ? n + 1 : n - 5);
  const r = sum % 11;
  return r <= 1 ? 0 : 11 - r;
}

/** Era starts (Gregorian YYYYMMDD) for the era year of 照合番号B's date of birth. */
const ERAS: ReadonlyArray<readonly [string, number]> = [
  ['20190501', 2019],
  ['19890108', 1989],
  ['19261225', 1926],
  ['19120730', 1912],
  ['18680125', 1868],
];

function checkDate(what: string, yyyymmdd: string): void {
  requireDigits(what, yyyymmdd, 8);
  const y = Number(yyyymmdd.slice(0, 4));
  const m = Number(yyyymmdd.slice(4, 6));
  const d = Number(yyyymmdd.slice(6, 8));
  const days = new Date(Date.UTC(y, m, 0)).getUTCDate();
  if (m < 1 || m > 12 || d < 1 || d > days) throw new RangeError(`${what} ${yyyymmdd} is not a calendar date`);
}

/**
 * 照合番号B from the card face: date of birth as Japanese era year + MMDD, the Gregorian expiry year, the security
 * code (soltia48/myna-card data.rs: born 1980-02-17 (昭和55), expiry 2035, code 2285 → 55021720352285).
 */
export function verificationB(birth: string, expiryYear: string, code: string): string {
  checkDate('date of birth', birth);
  requireDigits('expiry year', expiryYear, 4);
  requireDigits('security code', code, 4);
  const era = ERAS.find(([start]) => birth >= start);
  if (!era) throw new RangeError(`date of birth ${birth} predates the Meiji era`);
  const year = Number(birth.slice(0, 4)) - era[1] + 1;
  if (year > 99) throw new RangeError(`era year ${year} of ${birth} does not fit two digits`);
  return String(year).padStart(2, '0') + birth.slice(4) + expiryYear + code;
}

function utf8(what: string, s: string): Uint8Array {
  if (typeof s !== 'string' || s.length === 0) throw new RangeError(`${what} must be a non-empty string`);
  const b = enc.encode(s);
  // A lone surrogate would be replaced by U+FFFD: the card would hold something else than what was asked.
  if (new TextDecoder().decode(b) !== s) throw new RangeError(`${what} is not well-formed Unicode (lone surrogate)`);
  return b;
}

const field = (tag: number, value: Uint8Array): Uint8Array => concat(Uint8Array.of(tag >> 8, tag & 0xff), encodeLength(value.length), value);

/** The DF22..DF25 stream the card takes (it adds FF20 and DF21 itself); throws when EF 0002 could not hold it. */
export function attributeFields(a: Attributes): Uint8Array {
  checkDate('date of birth', a.birth);
  if (a.sex !== '1' && a.sex !== '2' && a.sex !== '9') throw new RangeError(`sex must be '1', '2' or '9', got ${String(a.sex)}`);
  const stream = concat(
    field(0xdf22, utf8('name', a.name)),
    field(0xdf23, utf8('address', a.address)),
    field(0xdf24, ascii(a.birth)),
    field(0xdf25, ascii(a.sex)),
  );
  const value = 11 + stream.length;
  const total = 2 + encodeLength(value).length + value;
  if (total > ATTRIBUTES_EF_SIZE) throw new RangeError(`the attributes need ${total} bytes; EF 0002 holds ${ATTRIBUTES_EF_SIZE}`);
  return stream;
}

/**
 * Selects the text AP and opens an applet-level SCP03 session with the keys of its security domain (ISD or APSD).
 * Default level 03 (C-MAC + C-DECRYPTION), which every data-carrying personalisation command needs.
 */
export async function openTextApPerso(
  transmit: Transmit,
  opts: { keys: KeySet; kvn?: number; level?: number; channel?: number },
): Promise<TextApPerso> {
  const channel = opts.channel ?? 0;
  const level = opts.level ?? Level.CMAC | Level.CDEC;
  await expectOk(transmit, selectAp(channel), 'SELECT text AP');
  const cla = encodeCla(channel, { proprietary: true });
  const session = await openSecureChannel(transmit, { keys: opts.keys, kvn: opts.kvn ?? 0, level, cla }).catch((e: unknown) => {
    if (e instanceof Scp03Error) throw new TextApError(`SCP03 session with the text AP: ${e.message}`, e.sw);
    throw e;
  });
  // With an R-MAC the 9000 carries data: ask for it (Le) so that T=0 readers fetch it too.
  const ne = level & (Level.RMAC | Level.RENC) ? 256 : 0;
  const send = (what: string, ins: number, p1: number, p2: number, data: Uint8Array): Promise<Uint8Array> =>
    expectOk(session.transmit, encodeCommand({ cla, ins, p1, p2, data, ne }), what);
  const chunk = maxShortData(level, session.session.s16);

  return {
    async writeMyNumber(digits12) {
      requireDigits('個人番号', digits12, 12);
      const check = myNumberCheckDigit(digits12.slice(0, 11));
      if (Number(digits12[11]) !== check) throw new RangeError(`個人番号 ${digits12.slice(0, 11)}… has check digit ${digits12[11]}, expected ${check}`);
      await send('WRITE MY NUMBER', INS.WRITE, LAST_BLOCK, EF.myNumber, ascii(digits12));
    },
    async writeAttributes(a) {
      const stream = attributeFields(a);
      const blocks = Math.ceil(stream.length / chunk);
      for (let i = 0; i < blocks; i++) {
        const last = i === blocks - 1 ? LAST_BLOCK : 0;
        await send(`WRITE ATTRIBUTES block ${i}`, INS.WRITE, last | i, EF.attributes, stream.subarray(i * chunk, (i + 1) * chunk));
      }
    },
    async setPin(pin) {
      requireDigits('PIN', pin, 4);
      await send('SET PIN', INS.SET_REFERENCE, 0, EF.pin, ascii(pin));
    },
    async setVerificationB(dob6, expiryYear4, code4) {
      requireDigits('date of birth (era YYMMDD)', dob6, 6);
      requireDigits('expiry year', expiryYear4, 4);
      requireDigits('security code', code4, 4);
      await send('SET 照合番号B', INS.SET_REFERENCE, 0, EF.numberB, ascii(dob6 + expiryYear4 + code4));
    },
    async lock() {
      await send('LOCK', INS.LOCK, 0, 0, new Uint8Array(0));
    },
  };
}

// ---------------------------------------------------------------------------------------------------------------
// Reading, as a terminal does

export type TextApCredential = { pin: string } | { numberA: string } | { numberB: string };

export interface TextApData {
  myNumber?: string;
  name?: string;
  address?: string;
  birth?: string;
  sex?: Sex;
}

function selectAp(channel: number): Uint8Array {
  return encodeCommand({ cla: encodeCla(channel), ins: 0xa4, p1: 0x04, p2: 0x0c, data: fromHex(TEXT_AP_AID) });
}

/** Reads the BER object at the start of the current EF: its header first, then the rest in chunks of 256. */
async function readObject(transmit: Transmit, cla: number, fid: number): Promise<Uint8Array> {
  const what = `EF ${h4(fid)}`;
  await expectOk(transmit, encodeCommand({ cla, ins: 0xa4, p1: 0x02, p2: 0x0c, data: Uint8Array.of(fid >> 8, fid & 0xff) }), `SELECT ${what}`);
  const readAt = (offset: number, ne: number) =>
    expectOk(transmit, encodeCommand({ cla, ins: 0xb0, p1: offset >> 8, p2: offset & 0xff, ne }), `READ BINARY ${what} at ${offset}`);
  let out = await readAt(0, 5);
  let end: number;
  try {
    end = headerEnd(out);
  } catch (e) {
    throw new TextApError(`${what}: ${e instanceof Error ? e.message : String(e)} (${hex(out)})`);
  }
  while (out.length < end) {
    const got = await readAt(out.length, Math.min(256, end - out.length));
    if (got.length === 0) throw new TextApError(`${what}: the object claims ${end} bytes but the EF ends at ${out.length}`);
    out = concat(out, got);
  }
  return out.subarray(0, end);
}

/** Where the object that starts buf ends, from its tag and length alone. */
function headerEnd(buf: Uint8Array): number {
  let off = 1;
  if ((buf[0] & 0x1f) === 0x1f) while (off < buf.length && buf[off++] & 0x80);
  if (off >= buf.length) throw new Error('truncated object header');
  const first = buf[off++];
  if (first < 0x80) return off + first;
  const k = first & 0x7f;
  if (k === 0 || k > 2 || off + k > buf.length) throw new Error(`unsupported length encoding ${first.toString(16)}`);
  let len = 0;
  for (let i = 0; i < k; i++) len = len * 256 + buf[off++];
  return off + len;
}

function header(buf: Uint8Array, off: number, what: string): { tag: number; start: number; end: number } {
  try {
    return readHeader(buf, off);
  } catch (e) {
    if (e instanceof TlvError) throw new TextApError(`${what}: ${e.message}`);
    throw e;
  }
}

/** EF 0001: FF10 0C <12 ASCII digits>. */
export function parseMyNumberEf(ef: Uint8Array): string {
  const h = header(ef, 0, 'EF 0001');
  if (h.tag !== 0xff10) throw new TextApError(`EF 0001: expected tag FF10, got ${h.tag.toString(16).toUpperCase()}`);
  const v = ef.subarray(h.start, h.end);
  const s = String.fromCharCode(...v);
  if (v.length !== 12 || !/^[0-9]{12}$/.test(s)) throw new TextApError(`EF 0001: the 個人番号 must be 12 ASCII digits, got ${hex(v)}`);
  return s;
}

const FIELDS = [
  { tag: 0xdf22, label: 'DF22 (氏名)' },
  { tag: 0xdf23, label: 'DF23 (住所)' },
  { tag: 0xdf24, label: 'DF24 (生年月日)' },
  { tag: 0xdf25, label: 'DF25 (性別)' },
] as const;

/**
 * EF 0002: FF20 { DF21 08 <offsets>, DF22, DF23, DF24, DF25 } in that order, each DF21 offset equal to its field's tag
 * position from the start of the EF, text in well-formed UTF-8, a calendar date, a sex code.
 */
export function parseAttributesEf(ef: Uint8Array): Attributes {
  const outer = header(ef, 0, 'EF 0002');
  if (outer.tag !== 0xff20) throw new TextApError(`EF 0002: expected tag FF20, got ${outer.tag.toString(16).toUpperCase()}`);
  const value = ef.subarray(0, outer.end);
  const table = header(value, outer.start, 'EF 0002 DF21');
  if (table.tag !== 0xdf21 || table.end - table.start !== 8)
    throw new TextApError(`EF 0002: the first object must be DF21 with 8 bytes of offsets, got tag ${table.tag.toString(16).toUpperCase()} of ${table.end - table.start} bytes`);
  let off = table.end;
  const values: Uint8Array[] = [];
  FIELDS.forEach((f, i) => {
    if (off >= value.length) throw new TextApError(`EF 0002: ${f.label} is missing`);
    const h = header(value, off, `EF 0002 ${f.label}`);
    if (h.tag !== f.tag) throw new TextApError(`EF 0002: expected ${f.label} at offset 0x${h4(off)}, found tag ${h.tag.toString(16).toUpperCase()}`);
    const claimed = (value[table.start + 2 * i] << 8) | value[table.start + 2 * i + 1];
    if (claimed !== off) throw new TextApError(`EF 0002: DF21 gives offset 0x${h4(claimed)} for ${f.label}, which starts at 0x${h4(off)}`);
    values.push(value.subarray(h.start, h.end));
    off = h.end;
  });
  if (off !== value.length) throw new TextApError(`EF 0002: ${value.length - off} unexpected bytes after DF25 inside FF20`);
  const text = (v: Uint8Array, label: string): string => {
    try {
      const s = new TextDecoder('utf-8', { fatal: true }).decode(v);
      if (s.length === 0) throw new TextApError(`EF 0002: ${label} is empty`);
      return s;
    } catch (e) {
      if (e instanceof TextApError) throw e;
      throw new TextApError(`EF 0002: ${label} is not valid UTF-8 (${hex(v)})`);
    }
  };
  const birth = String.fromCharCode(...values[2]);
  try {
    checkDate('date', birth);
  } catch {
    throw new TextApError(`EF 0002: ${FIELDS[2].label} must be a YYYYMMDD date, got ${hex(values[2])}`);
  }
  const sex = String.fromCharCode(...values[3]);
  if (sex !== '1' && sex !== '2' && sex !== '9') throw new TextApError(`EF 0002: ${FIELDS[3].label} must be '1', '2' or '9', got ${hex(values[3])}`);
  return { name: text(values[0], FIELDS[0].label), address: text(values[1], FIELDS[1].label), birth, sex };
}

/**
 * SELECT the text AP, VERIFY one credential, and read what it opens: the PIN both EFs, 照合番号A EF 0001, 照合番号B
 * EF 0002. A refusal (wrong value: 63Cx; blocked: 6984) throws a TextApError carrying the SW.
 */
export async function readTextAp(transmit: Transmit, cred: TextApCredential, opts: { channel?: number } = {}): Promise<TextApData> {
  const cla = encodeCla(opts.channel ?? 0);
  let ref: number;
  let value: string;
  if ('pin' in cred) [ref, value] = [EF.pin, cred.pin];
  else if ('numberA' in cred) [ref, value] = [EF.numberA, cred.numberA];
  else [ref, value] = [EF.numberB, cred.numberB];
  // A malformed value would still cost a try on the card: refuse it here.
  requireDigits(ref === EF.pin ? 'PIN' : ref === EF.numberA ? '照合番号A' : '照合番号B', value, ref === EF.pin ? 4 : ref === EF.numberA ? 12 : 14);
  await expectOk(transmit, selectAp(opts.channel ?? 0), 'SELECT text AP');
  await expectOk(transmit, encodeCommand({ cla, ins: 0xa4, p1: 0x02, p2: 0x0c, data: Uint8Array.of(0, ref) }), `SELECT EF ${h4(ref)}`);
  await expectOk(transmit, encodeCommand({ cla, ins: 0x20, p1: 0x00, p2: 0x80, data: ascii(value) }), `VERIFY EF ${h4(ref)}`);
  const out: TextApData = {};
  if (ref !== EF.numberB) out.myNumber = parseMyNumberEf(await readObject(transmit, cla, EF.myNumber));
  if (ref !== EF.numberA) Object.assign(out, parseAttributesEf(await readObject(transmit, cla, EF.attributes)));
  return out;
}
