// Byte cursor and byte builder for CAP component bodies. Offsets in errors are offsets into the component's info
// item (the spec's own offsets: a method offset is an offset into the Method component's info, JCVM 3.0.5 §6.9).
import { CapError } from '../../cap-reader.ts';
import type { CapClassRef, CapStaticRef } from '../types.ts';

export interface InfoReader {
  pos: number;
  readonly data: Uint8Array;
  readonly component: string;
  u1(what: string): number;
  u2(what: string): number;
  take(n: number, what: string): Uint8Array;
  /** class_ref (§6.7.1): u2 offset with b15 clear, or u1 package token | 0x80 and u1 class token. */
  classRef(what: string): CapClassRef;
  /** static_field_ref / static_method_ref (§6.7.5, §6.7.6): internal padding + u2 offset, or external three tokens. */
  staticRef(what: string): CapStaticRef;
  atEnd(): boolean;
  fail(what: string, at?: number): never;
}

export function capFail(component: string, offset: number, what: string): never {
  throw new CapError(what, component, offset);
}

export function infoReader(component: string, data: Uint8Array): InfoReader {
  const r: InfoReader = {
    pos: 0,
    data,
    component,
    fail(what: string, at = r.pos): never {
      return capFail(component, at, what);
    },
    take(n: number, what: string): Uint8Array {
      if (r.pos + n > data.length) r.fail(`${what} needs ${n} byte(s) but only ${data.length - r.pos} remain in the component`);
      const out = data.slice(r.pos, r.pos + n);
      r.pos += n;
      return out;
    },
    u1(what: string): number {
      if (r.pos + 1 > data.length) r.fail(`${what} needs 1 byte but the component ends here`);
      return data[r.pos++];
    },
    u2(what: string): number {
      if (r.pos + 2 > data.length) r.fail(`${what} needs 2 bytes but only ${data.length - r.pos} remain in the component`);
      const v = (data[r.pos] << 8) | data[r.pos + 1];
      r.pos += 2;
      return v;
    },
    classRef(what: string): CapClassRef {
      const v = r.u2(what);
      if (v & 0x8000) return { internal: false, pkg: (v >> 8) & 0x7f, classToken: v & 0xff };
      return { internal: true, classOffset: v };
    },
    staticRef(what: string): CapStaticRef {
      const at = r.pos;
      const b0 = r.u1(what);
      if (b0 & 0x80) {
        const classToken = r.u1(`${what} class token`);
        const token = r.u1(`${what} token`);
        return { internal: false, pkg: b0 & 0x7f, classToken, token };
      }
      if (b0 !== 0) r.fail(`${what}: internal reference padding byte is 0x${b0.toString(16)}, must be 0`, at);
      return { internal: true, offset: r.u2(`${what} offset`) };
    },
    atEnd(): boolean {
      return r.pos >= data.length;
    },
  };
  return r;
}

/** Append-only byte builder for writing component bodies. */
export interface ByteBuilder {
  u1(v: number): void;
  u2(v: number): void;
  bytes(b: Uint8Array): void;
  classRef(c: CapClassRef): void;
  staticRef(s: CapStaticRef): void;
  readonly length: number;
  done(): Uint8Array;
}

export function byteBuilder(): ByteBuilder {
  let buf = new Uint8Array(256);
  let n = 0;
  const room = (k: number) => {
    if (n + k <= buf.length) return;
    const next = new Uint8Array(Math.max(buf.length * 2, n + k));
    next.set(buf.subarray(0, n));
    buf = next;
  };
  const b: ByteBuilder = {
    u1(v: number) {
      room(1);
      buf[n++] = v & 0xff;
    },
    u2(v: number) {
      room(2);
      buf[n++] = (v >> 8) & 0xff;
      buf[n++] = v & 0xff;
    },
    bytes(x: Uint8Array) {
      room(x.length);
      buf.set(x, n);
      n += x.length;
    },
    classRef(c: CapClassRef) {
      if (c.internal) b.u2(c.classOffset & 0x7fff);
      else {
        b.u1(0x80 | c.pkg);
        b.u1(c.classToken);
      }
    },
    staticRef(s: CapStaticRef) {
      if (s.internal) {
        b.u1(0);
        b.u2(s.offset);
      } else {
        b.u1(0x80 | s.pkg);
        b.u1(s.classToken);
        b.u1(s.token);
      }
    },
    get length() {
      return n;
    },
    done() {
      return buf.slice(0, n);
    },
  };
  return b;
}

export function hex16(n: number): string {
  return `0x${n.toString(16).toUpperCase()}`;
}
