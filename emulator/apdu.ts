// Command and response APDUs (ISO/IEC 7816-4 §5.1 cases 1–4, short and extended; §5.4.1 class byte).
import { IsoError, SW } from './iso.ts';

/** Secure-messaging indication of the class byte (ISO 7816-4 Table 2/3). */
export type SmIndication = 'none' | 'proprietary' | 'header-not-processed' | 'header-authenticated';

export interface ClassByte {
  /** b8 = 0: interindustry class; GP commands use the proprietary class (b8 = 1). */
  interindustry: boolean;
  channel: number;
  sm: SmIndication;
  chaining: boolean;
  /** Further interindustry coding (0x40–0x7F / 0xC0–0xFF): channels 4–19. */
  further: boolean;
}

export interface CommandApdu {
  cla: number;
  ins: number;
  p1: number;
  p2: number;
  data: Uint8Array;
  /** Ne, the maximum number of response bytes expected: 0 when Le is absent, 256/65536 for Le = 00/0000. */
  ne: number;
  extended: boolean;
  /** ISO case 1–4. */
  case: 1 | 2 | 3 | 4;
}

export interface ResponseApdu {
  data: Uint8Array;
  sw: number;
}

/** Decodes the class byte; undefined for classes that are RFU or otherwise not supported (6E00). */
export function decodeCla(cla: number): ClassByte | undefined {
  if (cla === 0xff) return undefined; // reserved for PPS
  const b8 = (cla & 0x80) !== 0;
  if ((cla & 0x40) === 0) {
    // First interindustry coding; 0x20–0x3F and 0xA0–0xBF are RFU.
    if (cla & 0x20) return undefined;
    const smBits = (cla >> 2) & 3;
    const sm: SmIndication = (['none', 'proprietary', 'header-not-processed', 'header-authenticated'] as const)[smBits];
    return { interindustry: !b8, channel: cla & 3, sm, chaining: (cla & 0x10) !== 0, further: false };
  }
  return {
    interindustry: !b8,
    channel: 4 + (cla & 0x0f),
    sm: cla & 0x20 ? 'header-not-processed' : 'none',
    chaining: (cla & 0x10) !== 0,
    further: true,
  };
}

/** Class byte for a channel, keeping the given class's proprietary bit, SM flag and chaining. */
export function encodeCla(channel: number, opts: { proprietary?: boolean; sm?: boolean; chaining?: boolean } = {}): number {
  const prop = opts.proprietary ? 0x80 : 0;
  const chain = opts.chaining ? 0x10 : 0;
  if (channel < 4) return prop | chain | (opts.sm ? 0x04 : 0) | channel;
  if (channel > 19) throw new RangeError(`logical channel ${channel} out of range 0–19`);
  return prop | 0x40 | (opts.sm ? 0x20 : 0) | chain | (channel - 4);
}

/** Parses a command APDU; a length structure that fits no ISO case is 6700. */
export function parseCommand(apdu: Uint8Array): CommandApdu {
  const n = apdu.length;
  if (n < 4) throw new IsoError(SW.WRONG_LENGTH, `command of ${n} bytes is shorter than a header`);
  const head = { cla: apdu[0], ins: apdu[1], p1: apdu[2], p2: apdu[3] };
  const empty = new Uint8Array(0);
  if (n === 4) return { ...head, data: empty, ne: 0, extended: false, case: 1 };
  const b5 = apdu[4];
  if (n === 5) return { ...head, data: empty, ne: b5 === 0 ? 256 : b5, extended: false, case: 2 };
  if (b5 !== 0) {
    const lc = b5;
    if (n === 5 + lc) return { ...head, data: apdu.slice(5, 5 + lc), ne: 0, extended: false, case: 3 };
    if (n === 6 + lc) {
      const le = apdu[5 + lc];
      return { ...head, data: apdu.slice(5, 5 + lc), ne: le === 0 ? 256 : le, extended: false, case: 4 };
    }
    throw new IsoError(SW.WRONG_LENGTH, `Lc ${lc} does not match ${n - 5} bytes after the header`);
  }
  // Extended length: 00 then two bytes.
  if (n < 7) throw new IsoError(SW.WRONG_LENGTH, 'truncated extended length field');
  const v = (apdu[5] << 8) | apdu[6];
  if (n === 7) return { ...head, data: empty, ne: v === 0 ? 65536 : v, extended: true, case: 2 };
  if (v === 0) throw new IsoError(SW.WRONG_LENGTH, 'extended Lc of zero');
  if (n === 7 + v) return { ...head, data: apdu.slice(7, 7 + v), ne: 0, extended: true, case: 3 };
  if (n === 9 + v) {
    const le = (apdu[7 + v] << 8) | apdu[8 + v];
    return { ...head, data: apdu.slice(7, 7 + v), ne: le === 0 ? 65536 : le, extended: true, case: 4 };
  }
  throw new IsoError(SW.WRONG_LENGTH, `extended Lc ${v} does not match ${n - 7} bytes after the header`);
}

export interface CommandFields {
  cla: number;
  ins: number;
  p1: number;
  p2: number;
  data?: Uint8Array;
  /** 0 or absent: no Le. */
  ne?: number;
  /** Force extended length fields even when short ones would do. */
  extended?: boolean;
}

/** Encodes a command APDU, choosing short length fields when they suffice. */
export function encodeCommand(c: CommandFields): Uint8Array {
  const data = c.data ?? new Uint8Array(0);
  const ne = c.ne ?? 0;
  if (data.length > 65535) throw new RangeError(`command data of ${data.length} bytes exceeds 65535`);
  if (ne > 65536) throw new RangeError(`Ne ${ne} exceeds 65536`);
  const ext = c.extended || data.length > 255 || ne > 256;
  const out: number[] = [c.cla, c.ins, c.p1, c.p2];
  if (!ext) {
    if (data.length) out.push(data.length, ...data);
    if (ne) out.push(ne === 256 ? 0 : ne);
  } else {
    if (data.length) out.push(0, data.length >> 8, data.length & 0xff, ...data);
    if (ne) {
      const le = ne === 65536 ? 0 : ne;
      if (!data.length) out.push(0);
      out.push(le >> 8, le & 0xff);
    }
  }
  return Uint8Array.from(out);
}

export function encodeResponse(data: Uint8Array, sw: number): Uint8Array {
  const out = new Uint8Array(data.length + 2);
  out.set(data);
  out[data.length] = sw >> 8;
  out[data.length + 1] = sw & 0xff;
  return out;
}

export function parseResponse(r: Uint8Array): ResponseApdu {
  if (r.length < 2) throw new RangeError(`response of ${r.length} bytes has no status word`);
  return { data: r.slice(0, r.length - 2), sw: (r[r.length - 2] << 8) | r[r.length - 1] };
}
