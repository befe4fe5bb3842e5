// The heap's objects in memory and their record format in the chip store (one key per object, docs/vm-memory.md).
import { ArrayKind, Memory } from './types.ts';
import type { ContextId, HeapArray, HeapInstance, LinkedClass, Ref } from './types.ts';

export type NativeValue = number | string | boolean | null;

/** Book-keeping shared by arrays and instances (never seen by other parts: they see HeapArray / HeapInstance). */
interface ObjState {
  /** Global array / entry point: reachable from every context (JCRE §6.2.1, §6.2.2). */
  shared: boolean;
  /** Changed since the last flush (queued in the dirty list). */
  dirty: boolean;
  /** Has a record in the store (a free must delete it). */
  stored: boolean;
  /** Allocated inside the open transaction: not logged, freed if it aborts (JCRE §7.6.3). */
  txNew: boolean;
  /** Emulated persistent bytes (header + persistent data) and transient bytes (RAM data) it takes. */
  pbytes: number;
  tbytes: number;
}

export interface ArrayObj extends HeapArray, ObjState {
  global: boolean;
  elementClass: LinkedClass | undefined;
  /** Element size in emulated memory: boolean/byte 1, short 2, int 4, reference 2 (JCVM refs are 16-bit). */
  esize: number;
}

export interface InstanceObj extends HeapInstance, ObjState {
  native: Record<string, NativeValue> | undefined;
  entryPoint: 'temporary' | 'permanent' | undefined;
  /** Temporary entry points: updates are RAM-like (not logged, torn nor persisted). */
  volatile: boolean;
}

export type Obj = ArrayObj | InstanceObj;

/** Emulated object header in persistent memory (owner, class/kind, length, flags). */
export const HEADER_BYTES = 8;

export function elementSize(kind: ArrayKind): number {
  return kind === ArrayKind.Int ? 4 : kind === ArrayKind.Short || kind === ArrayKind.Reference ? 2 : 1;
}

export function newData(kind: ArrayKind, length: number): Uint8Array | Int16Array | Int32Array {
  if (kind === ArrayKind.Short) return new Int16Array(length);
  if (kind === ArrayKind.Int || kind === ArrayKind.Reference) return new Int32Array(length);
  return new Uint8Array(length);
}

export function makeArray(
  ref: Ref,
  kind: ArrayKind,
  length: number,
  memory: Memory,
  owner: ContextId,
  elementClass: LinkedClass | undefined,
): ArrayObj {
  const esize = elementSize(kind);
  const transient = memory !== Memory.Persistent;
  // Same property order for every array: one hidden class on the interpreter's hot paths.
  return {
    ref,
    kind,
    length,
    data: newData(kind, length),
    memory,
    owner,
    global: false,
    elementClass,
    shared: false,
    dirty: false,
    stored: false,
    txNew: false,
    pbytes: HEADER_BYTES + (transient ? 0 : length * esize),
    tbytes: transient ? length * esize : 0,
    esize,
  };
}

export function makeInstance(
  ref: Ref,
  cls: LinkedClass,
  owner: ContextId,
  native: Record<string, NativeValue> | undefined,
): InstanceObj {
  return {
    ref,
    cls,
    fields: new Int32Array(cls.instanceCells),
    owner,
    native,
    cache: undefined,
    entryPoint: undefined,
    shared: false,
    dirty: false,
    stored: false,
    txNew: false,
    pbytes: HEADER_BYTES + cls.instanceCells * 2,
    tbytes: 0,
    volatile: false,
  };
}

// Record format (all integers big-endian):
//   u8 format (1) | u8 type (1 array, 2 instance) | u8 memory | u8 flags | u16 owner
//   array:    u8 kind | u32 length | [u16 n | class key UTF-8 if FLAG_ELEMENT_CLASS] | data (persistent arrays only:
//             boolean/byte 1 byte, short 2, int 4, reference 4 per element)
//   instance: u16 n | class key UTF-8 | u16 cells | cells (i32 each) | [u32 n | native record JSON if FLAG_NATIVE]
const FORMAT = 1;
const TYPE_ARRAY = 1;
const TYPE_INSTANCE = 2;
const FLAG_GLOBAL = 1;
const FLAG_ENTRY_TEMPORARY = 2;
const FLAG_ENTRY_PERMANENT = 4;
const FLAG_ELEMENT_CLASS = 8;
const FLAG_NATIVE = 16;

const utf8 = new TextEncoder();
const fromUtf8 = new TextDecoder('utf-8', { fatal: true });

export class HeapRecordError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'HeapRecordError';
  }
}

export function encodeObject(o: Obj): Uint8Array {
  if ((o as ArrayObj).kind !== undefined) return encodeArray(o as ArrayObj);
  return encodeInstance(o as InstanceObj);
}

function encodeArray(a: ArrayObj): Uint8Array {
  const key = a.elementClass ? utf8.encode(a.elementClass.key) : undefined;
  const persistent = a.memory === Memory.Persistent;
  const wide = a.kind === ArrayKind.Reference ? 4 : a.esize;
  const size = 11 + (key ? 2 + key.length : 0) + (persistent ? a.length * wide : 0);
  const out = new Uint8Array(size);
  const v = new DataView(out.buffer);
  v.setUint8(0, FORMAT);
  v.setUint8(1, TYPE_ARRAY);
  v.setUint8(2, a.memory);
  v.setUint8(3, (a.global ? FLAG_GLOBAL : 0) | (key ? FLAG_ELEMENT_CLASS : 0));
  v.setUint16(4, a.owner);
  v.setUint8(6, a.kind);
  v.setUint32(7, a.length);
  let o = 11;
  if (key) {
    v.setUint16(o, key.length);
    out.set(key, o + 2);
    o += 2 + key.length;
  }
  if (!persistent) return out;
  const d = a.data;
  if (d instanceof Uint8Array) out.set(d, o);
  else if (d instanceof Int16Array) for (let i = 0; i < d.length; i++, o += 2) v.setInt16(o, d[i]);
  else for (let i = 0; i < d.length; i++, o += 4) v.setInt32(o, d[i]);
  return out;
}

function encodeInstance(x: InstanceObj): Uint8Array {
  const key = utf8.encode(x.cls.key);
  const json = x.native ? utf8.encode(JSON.stringify(x.native)) : undefined;
  const size = 6 + 2 + key.length + 2 + x.fields.length * 4 + (json ? 4 + json.length : 0);
  const out = new Uint8Array(size);
  const v = new DataView(out.buffer);
  const ep = x.entryPoint === 'temporary' ? FLAG_ENTRY_TEMPORARY : x.entryPoint === 'permanent' ? FLAG_ENTRY_PERMANENT : 0;
  v.setUint8(0, FORMAT);
  v.setUint8(1, TYPE_INSTANCE);
  v.setUint8(2, Memory.Persistent);
  v.setUint8(3, ep | (json ? FLAG_NATIVE : 0));
  v.setUint16(4, x.owner);
  v.setUint16(6, key.length);
  out.set(key, 8);
  let o = 8 + key.length;
  v.setUint16(o, x.fields.length);
  o += 2;
  for (let i = 0; i < x.fields.length; i++, o += 4) v.setInt32(o, x.fields[i]);
  if (json) {
    v.setUint32(o, json.length);
    out.set(json, o + 4);
  }
  return out;
}

/** A decoded record; `classKey` is resolved by the heap (an instance whose class is gone is kept aside, untouched). */
export type DecodedObject =
  | { type: 'array'; obj: ArrayObj; elementClassKey: string | undefined }
  | { type: 'instance'; classKey: string; owner: ContextId; entryPoint: InstanceObj['entryPoint']; cells: Int32Array; native: Record<string, NativeValue> | undefined };

export function decodeObject(ref: Ref, b: Uint8Array): DecodedObject {
  const fail = (what: string): never => {
    throw new HeapRecordError(`heap object ${ref}: ${what}`);
  };
  if (b.length < 6) fail('record shorter than its header');
  const v = new DataView(b.buffer, b.byteOffset, b.byteLength);
  if (b[0] !== FORMAT) fail(`unknown record format ${b[0]}`);
  const type = b[1];
  const memory = b[2];
  const flags = b[3];
  const owner = v.getUint16(4);
  if (memory !== Memory.Persistent && memory !== Memory.ClearOnReset && memory !== Memory.ClearOnDeselect) fail(`bad memory type ${memory}`);
  const str = (at: number): [string, number] => {
    if (at + 2 > b.length) fail('class key truncated');
    const n = v.getUint16(at);
    if (at + 2 + n > b.length) fail('class key truncated');
    return [fromUtf8.decode(b.subarray(at + 2, at + 2 + n)), at + 2 + n];
  };
  if (type === TYPE_ARRAY) {
    if (b.length < 11) fail('array header truncated');
    const kind = b[6] as ArrayKind;
    if (kind < ArrayKind.Boolean || kind > ArrayKind.Reference) fail(`bad array kind ${kind}`);
    const length = v.getUint32(7);
    let o = 11;
    let elementClassKey: string | undefined;
    if (flags & FLAG_ELEMENT_CLASS) [elementClassKey, o] = str(o);
    const a = makeArray(ref, kind, length, memory as Memory, owner, undefined);
    a.global = (flags & FLAG_GLOBAL) !== 0;
    a.shared = a.global;
    a.stored = true;
    if (memory === Memory.Persistent) {
      const wide = kind === ArrayKind.Reference ? 4 : a.esize;
      if (o + length * wide !== b.length) fail(`array data is ${b.length - o} bytes, expected ${length * wide}`);
      const d = a.data;
      if (d instanceof Uint8Array) d.set(b.subarray(o, o + length));
      else if (d instanceof Int16Array) for (let i = 0; i < length; i++, o += 2) d[i] = v.getInt16(o);
      else for (let i = 0; i < length; i++, o += 4) d[i] = v.getInt32(o);
    } else if (o !== b.length) fail('transient array record carries data');
    return { type: 'array', obj: a, elementClassKey };
  }
  if (type !== TYPE_INSTANCE) fail(`unknown object type ${type}`);
  let [classKey, o] = str(6);
  if (o + 2 > b.length) fail('cell count truncated');
  const n = v.getUint16(o);
  o += 2;
  if (o + n * 4 > b.length) fail('cells truncated');
  const cells = new Int32Array(n);
  for (let i = 0; i < n; i++, o += 4) cells[i] = v.getInt32(o);
  let native: Record<string, NativeValue> | undefined;
  if (flags & FLAG_NATIVE) {
    if (o + 4 > b.length) fail('native record truncated');
    const len = v.getUint32(o);
    if (o + 4 + len !== b.length) fail('native record length mismatch');
    const parsed: unknown = JSON.parse(fromUtf8.decode(b.subarray(o + 4, o + 4 + len)));
    if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) fail('native record is not an object');
    native = parsed as Record<string, NativeValue>;
    o += 4 + len;
  }
  if (o !== b.length) fail(`${b.length - o} trailing bytes`);
  const entryPoint = flags & FLAG_ENTRY_TEMPORARY ? 'temporary' : flags & FLAG_ENTRY_PERMANENT ? 'permanent' : undefined;
  return { type: 'instance', classKey, owner, entryPoint, cells, native };
}

/** Static cells of a package: i32 big-endian each. */
export function encodeCells(cells: Int32Array): Uint8Array {
  const out = new Uint8Array(cells.length * 4);
  const v = new DataView(out.buffer);
  for (let i = 0; i < cells.length; i++) v.setInt32(i * 4, cells[i]);
  return out;
}

export function decodeCells(b: Uint8Array): Int32Array | undefined {
  if (b.length % 4 !== 0) return undefined;
  const v = new DataView(b.buffer, b.byteOffset, b.byteLength);
  const cells = new Int32Array(b.length / 4);
  for (let i = 0; i < cells.length; i++) cells[i] = v.getInt32(i * 4);
  return cells;
}
