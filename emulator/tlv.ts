// BER-TLV (ISO/IEC 8825-1 as profiled by ISO 7816-4 §5.2 and GPCS Annex F): tags of 1–3 bytes, lengths up to 4 bytes.
import { concat } from './bytes.ts';

export interface Tlv {
  tag: number;
  value: Uint8Array;
  /** Offset of the tag in the parsed buffer, for error messages. */
  offset: number;
}

export class TlvError extends Error {
  constructor(message: string, readonly offset: number) {
    super(`${message} at offset ${offset}`);
    this.name = 'TlvError';
  }
}

export function encodeLength(n: number): Uint8Array {
  if (n < 0x80) return Uint8Array.of(n);
  if (n < 0x100) return Uint8Array.of(0x81, n);
  if (n < 0x10000) return Uint8Array.of(0x82, n >> 8, n & 0xff);
  if (n < 0x1000000) return Uint8Array.of(0x83, n >> 16, (n >> 8) & 0xff, n & 0xff);
  return Uint8Array.of(0x84, (n >>> 24) & 0xff, (n >> 16) & 0xff, (n >> 8) & 0xff, n & 0xff);
}

export function encodeTag(tag: number): Uint8Array {
  if (tag > 0xffff) return Uint8Array.of(tag >> 16, (tag >> 8) & 0xff, tag & 0xff);
  if (tag > 0xff) return Uint8Array.of(tag >> 8, tag & 0xff);
  return Uint8Array.of(tag);
}

export function tlv(tag: number, ...value: Uint8Array[]): Uint8Array {
  const v = concat(...value);
  return concat(encodeTag(tag), encodeLength(v.length), v);
}

/** Reads one tag and length at `off`; returns the value bounds. */
export function readHeader(buf: Uint8Array, off: number): { tag: number; start: number; end: number } {
  const at = off;
  if (off >= buf.length) throw new TlvError('missing tag', at);
  let tag = buf[off++];
  if ((tag & 0x1f) === 0x1f) {
    do {
      if (off >= buf.length) throw new TlvError('truncated tag', at);
      tag = (tag << 8) | buf[off++];
    } while (buf[off - 1] & 0x80 && tag <= 0xffffff);
    if (buf[off - 1] & 0x80) throw new TlvError('tag longer than 3 bytes', at);
  }
  if (off >= buf.length) throw new TlvError('missing length', at);
  let len = buf[off++];
  if (len & 0x80) {
    const k = len & 0x7f;
    if (k === 0 || k > 4) throw new TlvError(`unsupported length encoding 0x${len.toString(16)}`, at);
    if (off + k > buf.length) throw new TlvError('truncated length', at);
    len = 0;
    for (let i = 0; i < k; i++) len = len * 256 + buf[off++];
  }
  if (off + len > buf.length) throw new TlvError(`value of ${len} bytes overruns the ${buf.length - off} left`, at);
  return { tag, start: off, end: off + len };
}

/** Parses a flat sequence of TLVs covering the whole buffer. */
export function parseTlvs(buf: Uint8Array): Tlv[] {
  const out: Tlv[] = [];
  let off = 0;
  while (off < buf.length) {
    const h = readHeader(buf, off);
    out.push({ tag: h.tag, value: buf.subarray(h.start, h.end), offset: off });
    off = h.end;
  }
  return out;
}

export function findTlv(list: Tlv[], tag: number): Uint8Array | undefined {
  return list.find((t) => t.tag === tag)?.value;
}
