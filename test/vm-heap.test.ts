// The Java Card heap: accounting, firewall checks, transactions with rollback, transient memory, durability in the
// chip store, tearing at every persistent write point, object deletion.
import { describe, expect, it } from 'vitest';
import { openMemoryStore, PowerLoss } from '../emulator/store.ts';
import type { ChipStore } from '../emulator/store.ts';
import { createHeap } from '../emulator/vm/heap.ts';
import type { ChipHeap, HeapSizes } from '../emulator/vm/heap.ts';
import { ArrayKind, Memory, NULL } from '../emulator/vm/types.ts';
import type { CycleMeter, CycleProfile, HeapArray, LinkedClass, LinkedPackage, Ref } from '../emulator/vm/types.ts';

/** What throwApi raises in these tests: the Java class and reason. */
class JavaThrow extends Error {
  constructor(
    readonly cls: string,
    readonly reason?: number,
  ) {
    super(`${cls}${reason === undefined ? '' : `(${reason})`}`);
  }
}

function javaError(fn: () => unknown): JavaThrow {
  try {
    fn();
  } catch (e) {
    if (e instanceof JavaThrow) return e;
    throw e;
  }
  throw new Error('expected a Java exception');
}

function fakePackage(aid: string, staticCells: number, context = 1, staticReferenceCells?: number): LinkedPackage {
  return {
    aid,
    major: 1,
    minor: 0,
    name: `pkg${aid}`,
    context,
    native: false,
    code: new Uint8Array(0),
    handlers: [],
    statics: new Int32Array(staticCells),
    staticReferenceCells,
    cp: [],
    classesByOffset: new Map(),
    classesByToken: new Map(),
  };
}

const PKG = fakePackage('A0000000010101', 0);

function fakeClass(key: string, cells: number, referenceCells: number[] = []): LinkedClass {
  return {
    pkg: PKG,
    key,
    name: key,
    isInterface: false,
    isShareable: false,
    superclass: null,
    interfaces: [],
    instanceCells: cells,
    publicVirtuals: [],
    packageVirtuals: [],
    interfaceMethods: new Map(),
    firstCell: 0,
    referenceCells,
  };
}

const Plain = fakeClass('A0000000010101:10', 4);
const Node = fakeClass('A0000000010101:20', 3, [0, 1]);
const CLASSES = new Map([Plain, Node].map((c) => [c.key, c]));

interface Meter extends CycleMeter {
  nvmBytes: number;
  nvmPages: number;
  ramBytes: number;
  cycles: number;
}

function fakeMeter(): Meter {
  const profile = { nvmPageBytes: 64, transactionByteCycles: 3, nvmCopySourceByteCycles: 5 } as CycleProfile;
  const m: Meter = {
    profile,
    nvmBytes: 0,
    nvmPages: 0,
    ramBytes: 0,
    cycles: 0,
    crypto() {},
    charge(c) {
      m.cycles += c;
    },
    nvmWrite(bytes, pages) {
      m.nvmBytes += bytes;
      m.nvmPages += pages;
    },
    ramWrite(bytes) {
      m.ramBytes += bytes;
    },
    native() {},
    report: () => ({ bytecodes: 0, cycles: 0, nativeCalls: 0, persistentBytesWritten: 0, estimatedUs: 0, ioBytes: 0 }),
    reset() {},
  };
  return m;
}

const SIZES: HeapSizes = { persistentBytes: 8192, transientResetBytes: 512, transientDeselectBytes: 256, commitCapacity: 256 };

interface Env {
  store: ChipStore;
  heap: ChipHeap;
  ctx: { current: number };
  meter: Meter;
}

function open(store: ChipStore = openMemoryStore(), over: { sizes?: Partial<HeapSizes>; reserved?: number; classes?: Map<string, LinkedClass> } = {}): Env {
  const ctx = { current: 0 };
  const meter = fakeMeter();
  const classes = over.classes ?? CLASSES;
  const heap = createHeap({
    store,
    sizes: { ...SIZES, ...over.sizes },
    meter,
    nvmPageBytes: 64,
    reservedPersistent: () => over.reserved ?? 0,
    resolveClass: (k) => classes.get(k),
    throwApi: (cls, reason) => {
      throw new JavaThrow(cls, reason);
    },
    context: () => ctx.current,
  });
  return { store, heap, ctx, meter };
}

const bytesOf = (a: HeapArray): number[] => [...a.data];

describe('allocation and accounting', () => {
  it('counts header + data of persistent objects and RAM of transient arrays', () => {
    const { heap } = open();
    const before = heap.availableMemory(Memory.Persistent);
    expect(before).toBe(8192);
    heap.newArray(ArrayKind.Byte, 10, Memory.Persistent, 1);
    heap.newArray(ArrayKind.Short, 10, Memory.Persistent, 1);
    heap.newArray(ArrayKind.Int, 10, Memory.Persistent, 1);
    heap.newArray(ArrayKind.Reference, 10, Memory.Persistent, 1);
    heap.newInstance(Plain, 1);
    // 8-byte headers; byte 1, short 2, int 4, reference 2 bytes per element; instance cells 2 bytes.
    expect(heap.availableMemory(Memory.Persistent)).toBe(before - (18 + 28 + 48 + 28 + 16));
    const t = heap.newArray(ArrayKind.Short, 20, Memory.ClearOnReset, 1);
    expect(t.memory).toBe(Memory.ClearOnReset);
    expect(heap.availableMemory(Memory.ClearOnReset)).toBe(512 - 40);
    expect(heap.availableMemory(Memory.ClearOnDeselect)).toBe(256);
    expect(heap.availableMemory(Memory.Persistent)).toBe(before - 138 - 8);
    heap.newArray(ArrayKind.Boolean, 6, Memory.ClearOnDeselect, 1);
    expect(heap.availableMemory(Memory.ClearOnDeselect)).toBe(250);
    expect(heap.usage().objects).toBe(7);
  });

  it('refuses what does not fit: NO_RESOURCE, NO_TRANSIENT_SPACE, negative sizes, reserved load files', () => {
    const { heap } = open(undefined, { reserved: 8000 });
    expect(heap.availableMemory(Memory.Persistent)).toBe(192);
    expect(javaError(() => heap.newArray(ArrayKind.Byte, 185, Memory.Persistent, 1))).toMatchObject({
      cls: 'javacard.framework.SystemException',
      reason: 5,
    });
    heap.newArray(ArrayKind.Byte, 184, Memory.Persistent, 1);
    expect(heap.availableMemory(Memory.Persistent)).toBe(0);
    expect(javaError(() => heap.newInstance(Plain, 1)).reason).toBe(5);
    const h2 = open().heap;
    expect(javaError(() => h2.newArray(ArrayKind.Byte, 513, Memory.ClearOnReset, 1))).toMatchObject({
      cls: 'javacard.framework.SystemException',
      reason: 2,
    });
    expect(javaError(() => h2.newArray(ArrayKind.Int, 65, Memory.ClearOnDeselect, 1)).reason).toBe(2);
    expect(javaError(() => h2.newArray(ArrayKind.Byte, -1, Memory.Persistent, 1)).cls).toBe('java.lang.NegativeArraySizeException');
    expect(javaError(() => h2.newArray(ArrayKind.Byte, 1, 7 as Memory, 1))).toMatchObject({ reason: 1 });
    // A refused allocation takes nothing.
    expect(h2.usage()).toEqual({ objects: 0, persistent: 0, clearOnReset: 0, clearOnDeselect: 0 });
  });

  it('charges the meter: NVM bytes and pages for persistent writes, RAM for transient ones', () => {
    const { heap, meter } = open();
    const p = heap.newArray(ArrayKind.Byte, 200, Memory.Persistent, 1);
    const t = heap.newArray(ArrayKind.Short, 4, Memory.ClearOnReset, 1);
    meter.nvmBytes = meter.nvmPages = meter.ramBytes = 0;
    heap.storeArray(p, 3, 1);
    expect([meter.nvmBytes, meter.nvmPages]).toEqual([1, 1]);
    heap.storeArray(t, 1, 5);
    expect(meter.ramBytes).toBe(2);
    meter.nvmBytes = meter.nvmPages = 0;
    heap.fillBytes(p, 10, 150, 1, false); // bytes 10..159: pages 0, 1, 2
    expect([meter.nvmBytes, meter.nvmPages]).toEqual([150, 3]);
    meter.nvmBytes = meter.nvmPages = 0;
    heap.fillBytes(p, 60, 8, 1, true); // one atomic write across a page boundary
    expect([meter.nvmBytes, meter.nvmPages]).toEqual([8, 2]);
    heap.beginTransaction();
    let c0 = meter.cycles;
    heap.storeArray(p, 0, 9);
    expect(meter.cycles - c0).toBe(3 * 1); // transactionByteCycles × backed-up bytes
    heap.commitTransaction();
    // Util.arrayCopy backs the destination up even outside a transaction; an NVM source costs extra per byte.
    const t8 = heap.newArray(ArrayKind.Byte, 8, Memory.ClearOnReset, 1);
    c0 = meter.cycles;
    heap.copyBytes(t8, 0, p, 0, 8, true);
    expect(meter.cycles - c0).toBe(3 * 8);
    c0 = meter.cycles;
    heap.copyBytes(p, 100, p, 0, 8, false);
    expect(meter.cycles - c0).toBe(5 * 8);
    c0 = meter.cycles;
    heap.copyBytes(p, 0, t8, 0, 8, true);
    expect(meter.cycles - c0).toBe(0);
  });
});

describe('access checks', () => {
  it('enforces the firewall: owner context and the JCRE pass, others get SecurityException', () => {
    const { heap, ctx } = open();
    const a = heap.newArray(ArrayKind.Byte, 4, Memory.Persistent, 1);
    const x = heap.newInstance(Plain, 1);
    ctx.current = 1;
    expect(heap.array(a.ref)).toBe(a);
    expect(heap.instance(x.ref)).toBe(x);
    ctx.current = 2;
    expect(javaError(() => heap.get(a.ref)).cls).toBe('java.lang.SecurityException');
    expect(javaError(() => heap.instance(x.ref)).cls).toBe('java.lang.SecurityException');
    ctx.current = 0;
    expect(heap.get(a.ref)).toBe(a);
    // Global arrays and entry points are open to every context.
    heap.makeGlobal(a.ref);
    heap.makeGlobal(x.ref);
    ctx.current = 2;
    expect(heap.array(a.ref).global).toBe(true);
    expect(heap.instance(x.ref).entryPoint).toBe('permanent');
    // JCRE-owned objects are not open to applets.
    ctx.current = 0;
    const j = heap.newArray(ArrayKind.Byte, 1, Memory.Persistent, 0);
    ctx.current = 3;
    expect(javaError(() => heap.get(j.ref)).cls).toBe('java.lang.SecurityException');
    expect(heap.peek(j.ref)).toBe(j);
  });

  it('null and dead refs are NullPointerException; wrong object type is refused', () => {
    const { heap } = open();
    expect(javaError(() => heap.get(NULL)).cls).toBe('java.lang.NullPointerException');
    expect(javaError(() => heap.get(999)).cls).toBe('java.lang.NullPointerException');
    const a = heap.newArray(ArrayKind.Byte, 4, Memory.Persistent, 0);
    const x = heap.newInstance(Plain, 0);
    expect(javaError(() => heap.instance(a.ref)).cls).toBe('java.lang.SecurityException');
    expect(javaError(() => heap.array(x.ref)).cls).toBe('java.lang.SecurityException');
    expect(javaError(() => heap.storeArray(a, 4, 1)).cls).toBe('java.lang.ArrayIndexOutOfBoundsException');
    expect(javaError(() => heap.storeArray(a, -1, 1)).cls).toBe('java.lang.ArrayIndexOutOfBoundsException');
    expect(javaError(() => heap.copyBytes(a, 2, a, 0, 3, true)).cls).toBe('java.lang.ArrayIndexOutOfBoundsException');
    expect(javaError(() => heap.fillBytes(a, 0, -1, 0, false)).cls).toBe('java.lang.ArrayIndexOutOfBoundsException');
    expect(heap.isObjectDeletionSupported()).toBe(true);
  });
});

describe('transactions', () => {
  it('raises each TransactionException reason', () => {
    const { heap } = open();
    expect(javaError(() => heap.commitTransaction())).toMatchObject({ cls: 'javacard.framework.TransactionException', reason: 2 });
    expect(javaError(() => heap.abortTransaction()).reason).toBe(2);
    heap.beginTransaction();
    expect(heap.transactionDepth).toBe(1);
    expect(javaError(() => heap.beginTransaction()).reason).toBe(1);
    heap.commitTransaction();
    expect(heap.transactionDepth).toBe(0);
  });

  it('abort rolls back every kind of persistent write', () => {
    const { heap } = open();
    const pkg = fakePackage('A00000000102', 3);
    heap.attachStatics(pkg);
    const bo = heap.newArray(ArrayKind.Boolean, 2, Memory.Persistent, 1);
    const by = heap.newArray(ArrayKind.Byte, 100, Memory.Persistent, 1);
    const sh = heap.newArray(ArrayKind.Short, 2, Memory.Persistent, 1);
    const in_ = heap.newArray(ArrayKind.Int, 2, Memory.Persistent, 1);
    const re = heap.newArray(ArrayKind.Reference, 2, Memory.Persistent, 1);
    const x = heap.newInstance(Plain, 1, { tries: 3, label: 'a' });
    heap.storeArray(by, 0, 0x11);
    heap.storeArray(sh, 0, -2);
    heap.storeArray(in_, 1, 0x12345678);
    heap.storeArray(re, 0, by.ref);
    heap.storeField(x, 2, 77);
    heap.storeStatic(pkg.statics, 1, 5, pkg);
    heap.fillBytes(by, 50, 10, 0x33, false);
    const snap = () => ({
      bo: bytesOf(bo),
      by: bytesOf(by),
      sh: bytesOf(sh),
      in_: bytesOf(in_),
      re: bytesOf(re),
      fields: [...x.fields],
      native: { ...x.native },
      statics: [...pkg.statics],
    });
    const before = snap();
    heap.beginTransaction();
    heap.storeArray(bo, 1, 1);
    heap.storeArray(by, 0, -1);
    heap.storeArray(by, 0, 5); // second write of the same location
    heap.storeArray(sh, 0, 300);
    heap.storeArray(sh, 1, -300);
    heap.storeArray(in_, 1, -7);
    heap.storeArray(re, 0, NULL);
    heap.storeArray(re, 1, x.ref);
    heap.storeField(x, 2, 1);
    heap.storeField(x, 3, -1);
    heap.storeStatic(pkg.statics, 1, 6, pkg);
    heap.storeStatic(pkg.statics, 2, 7, pkg);
    heap.setNative(x, 'tries', 2);
    heap.setNative(x, 'fresh', true);
    heap.copyBytes(sh, 0, sh, 1, 1, true);
    heap.fillBytes(by, 40, 20, 0x44, true);
    heap.writeBytes(by, 90, Uint8Array.of(1, 2, 3), true);
    heap.copyBytes(by, 90, by, 91, 3, true);
    expect(snap()).not.toEqual(before);
    heap.abortTransaction();
    expect(snap()).toEqual(before);
    expect(x.native).not.toHaveProperty('fresh');
    expect(heap.transactionDepth).toBe(0);
    expect(heap.commitCapacity.used).toBe(0);
  });

  it('commit keeps the writes', () => {
    const { heap } = open();
    const a = heap.newArray(ArrayKind.Short, 2, Memory.Persistent, 1);
    heap.beginTransaction();
    heap.storeArray(a, 0, 42);
    const n = heap.newArray(ArrayKind.Byte, 3, Memory.Persistent, 1);
    heap.commitTransaction();
    expect(bytesOf(a)).toEqual([42, 0]);
    expect(heap.get(n.ref)).toBe(n);
  });

  it('objects allocated in an aborted transaction are freed and references to them become null', () => {
    const { heap } = open();
    const holder = heap.newArray(ArrayKind.Reference, 2, Memory.Persistent, 1);
    const tr = heap.newArray(ArrayKind.Reference, 2, Memory.ClearOnDeselect, 1);
    const used = heap.usage();
    heap.roots.set('holder', holder.ref);
    heap.beginTransaction();
    const n = heap.newInstance(Node, 1);
    const b = heap.newArray(ArrayKind.Byte, 40, Memory.Persistent, 1);
    const t = heap.newArray(ArrayKind.Byte, 40, Memory.ClearOnReset, 1);
    heap.storeField(n, 0, b.ref);
    heap.storeArray(holder, 0, n.ref);
    heap.storeArray(tr, 1, t.ref); // transient: not logged, nulled by the abort
    heap.roots.set('temp', n.ref);
    heap.abortTransaction();
    expect(bytesOf(holder)).toEqual([0, 0]);
    expect(bytesOf(tr)).toEqual([0, 0]);
    expect(heap.roots.get('temp')).toBe(NULL);
    for (const r of [n.ref, b.ref, t.ref]) expect(javaError(() => heap.get(r)).cls).toBe('java.lang.NullPointerException');
    expect(heap.usage()).toEqual(used);
    // Dead refs are not reused before the command ends (a stale copy on the VM stack must stay dead).
    const c = heap.newArray(ArrayKind.Byte, 1, Memory.Persistent, 1);
    expect([n.ref, b.ref, t.ref]).not.toContain(c.ref);
    heap.flush();
    const d = heap.newArray(ArrayKind.Byte, 1, Memory.Persistent, 1);
    expect([n.ref, b.ref, t.ref]).toContain(d.ref);
  });

  it('transient writes are never rolled back', () => {
    const { heap } = open();
    const t = heap.newArray(ArrayKind.Byte, 4, Memory.ClearOnReset, 1);
    heap.beginTransaction();
    heap.storeArray(t, 0, 9);
    heap.copyBytes(t, 0, t, 1, 1, true);
    heap.abortTransaction();
    expect(bytesOf(t)).toEqual([9, 9, 0, 0]);
  });

  it('atomic copy is part of the transaction, non-atomic copy and fill are not', () => {
    const { heap } = open();
    const src = heap.newArray(ArrayKind.Byte, 8, Memory.Persistent, 1);
    heap.writeBytes(src, 0, Uint8Array.of(1, 2, 3, 4, 5, 6, 7, 8), false);
    const a = heap.newArray(ArrayKind.Byte, 8, Memory.Persistent, 1);
    const b = heap.newArray(ArrayKind.Byte, 8, Memory.Persistent, 1);
    const c = heap.newArray(ArrayKind.Byte, 8, Memory.Persistent, 1);
    heap.beginTransaction();
    heap.copyBytes(src, 0, a, 0, 8, true);
    heap.copyBytes(src, 0, b, 0, 8, false);
    heap.fillBytes(c, 2, 3, 0x5a, false);
    heap.abortTransaction();
    expect(bytesOf(a)).toEqual([0, 0, 0, 0, 0, 0, 0, 0]);
    expect(bytesOf(b)).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
    expect(bytesOf(c)).toEqual([0, 0, 0x5a, 0x5a, 0x5a, 0, 0, 0]);
  });

  it('overlapping copies behave as through a temporary buffer, atomic or not', () => {
    const { heap } = open();
    const a = heap.newArray(ArrayKind.Byte, 200, Memory.Persistent, 1);
    for (let i = 0; i < 200; i++) heap.storeArray(a, i, i);
    heap.copyBytes(a, 0, a, 10, 150, false);
    expect(bytesOf(a).slice(10, 160)).toEqual([...Array(150).keys()]);
    heap.copyBytes(a, 10, a, 5, 100, true);
    expect(bytesOf(a).slice(5, 105)).toEqual([...Array(100).keys()]);
  });

  it('overflowing the commit buffer raises BUFFER_FULL and aborts the transaction', () => {
    const { heap } = open(undefined, { sizes: { commitCapacity: 40 } });
    const a = heap.newArray(ArrayKind.Byte, 100, Memory.Persistent, 1);
    heap.storeArray(a, 0, 1);
    heap.beginTransaction();
    // Rewriting one location logs it once: 4 + 1 bytes.
    for (let i = 0; i < 50; i++) heap.storeArray(a, 0, i);
    expect(heap.commitCapacity).toEqual({ max: 40, used: 5 });
    heap.storeArray(a, 1, 7); // 10
    expect(javaError(() => heap.copyBytes(a, 50, a, 60, 31, true))).toMatchObject({
      cls: 'javacard.framework.TransactionException',
      reason: 3,
    });
    expect(heap.transactionDepth).toBe(0);
    expect(bytesOf(a).slice(0, 2)).toEqual([1, 0]);
    // 40 bytes exactly fit.
    heap.beginTransaction();
    heap.fillBytes(a, 0, 36, 9, true);
    expect(heap.commitCapacity.used).toBe(40);
    heap.commitTransaction();
    expect(a.data[35]).toBe(9);
  });
});

describe('transient memory', () => {
  it('CLEAR_ON_DESELECT clears per owner context, CLEAR_ON_RESET on reset and at power-up', () => {
    const { heap, store } = open();
    const d1 = heap.newArray(ArrayKind.Short, 2, Memory.ClearOnDeselect, 1);
    const d2 = heap.newArray(ArrayKind.Short, 2, Memory.ClearOnDeselect, 2);
    const r1 = heap.newArray(ArrayKind.Byte, 2, Memory.ClearOnReset, 1);
    const p = heap.newArray(ArrayKind.Byte, 2, Memory.Persistent, 1);
    for (const a of [d1, d2, r1, p]) heap.storeArray(a, 0, 7);
    heap.clearTransient(Memory.ClearOnDeselect, 1);
    expect([d1.data[0], d2.data[0], r1.data[0], p.data[0]]).toEqual([0, 7, 7, 7]);
    heap.clearTransient(Memory.ClearOnReset);
    expect([d2.data[0], r1.data[0], p.data[0]]).toEqual([7, 0, 7]);
    heap.storeArray(r1, 1, 3);
    heap.flush();
    const again = open(store).heap;
    const r1b = again.array(r1.ref);
    expect(r1b.memory).toBe(Memory.ClearOnReset);
    expect(bytesOf(r1b)).toEqual([0, 0]);
    expect(bytesOf(again.array(d2.ref))).toEqual([0, 0]);
    expect(bytesOf(again.array(p.ref))).toEqual([7, 0]);
    expect(again.availableMemory(Memory.ClearOnDeselect)).toBe(256 - 8);
  });
});

describe('durability', () => {
  it('flush makes objects durable in one store commit; a new heap on the store sees the same objects', () => {
    const { heap, store } = open();
    const pkg = fakePackage('A00000000103', 4);
    pkg.statics[3] = 99; // initial image from the CAP
    heap.attachStatics(pkg);
    const bo = heap.newArray(ArrayKind.Boolean, 3, Memory.Persistent, 1);
    const by = heap.newArray(ArrayKind.Byte, 5, Memory.Persistent, 2);
    const sh = heap.newArray(ArrayKind.Short, 3, Memory.Persistent, 1);
    const it_ = heap.newArray(ArrayKind.Int, 2, Memory.Persistent, 1);
    const re = heap.newArray(ArrayKind.Reference, 2, Memory.Persistent, 1, Node);
    const x = heap.newInstance(Node, 1, { kind: 'AES', size: 128, ok: true, none: null });
    const apdu = heap.newArray(ArrayKind.Byte, 4, Memory.ClearOnDeselect, 0);
    heap.makeGlobal(apdu.ref);
    heap.makeGlobal(x.ref);
    heap.storeArray(bo, 2, 1);
    heap.writeBytes(by, 0, Uint8Array.of(0x80, 1, 2, 0xff, 4), true);
    heap.storeArray(sh, 1, -12345);
    heap.storeArray(it_, 0, -0x7fffffff);
    heap.storeArray(re, 1, x.ref);
    heap.storeField(x, 0, re.ref);
    heap.storeField(x, 2, -1);
    heap.setNative(x, 'size', 256);
    heap.storeStatic(pkg.statics, 0, re.ref, pkg);
    heap.roots.set('applet/A00000000103', x.ref);
    const writesBefore = store.bytesWritten;
    heap.flush();
    expect(store.bytesWritten).toBeGreaterThan(writesBefore);
    expect(store.keys('vm/heap/o/')).toHaveLength(7);

    const pkg2 = fakePackage('A00000000103', 4);
    const { heap: h2 } = open(store);
    h2.attachStatics(pkg2);
    expect([...pkg2.statics]).toEqual([re.ref, 0, 0, 99]);
    expect(bytesOf(h2.array(bo.ref))).toEqual([0, 0, 1]);
    expect(h2.array(by.ref).owner).toBe(2);
    expect(bytesOf(h2.array(by.ref))).toEqual([0x80, 1, 2, 0xff, 4]);
    expect(bytesOf(h2.array(sh.ref))).toEqual([0, -12345, 0]);
    expect(bytesOf(h2.array(it_.ref))).toEqual([-0x7fffffff, 0]);
    const re2 = h2.array(re.ref);
    expect(bytesOf(re2)).toEqual([0, x.ref]);
    expect(re2.elementClass).toBe(Node);
    const x2 = h2.instance(x.ref);
    expect(x2.cls).toBe(Node);
    expect([...x2.fields]).toEqual([re.ref, 0, -1]);
    expect(x2.native).toEqual({ kind: 'AES', size: 256, ok: true, none: null });
    expect(x2.entryPoint).toBe('permanent');
    expect(h2.array(apdu.ref).global).toBe(true);
    expect(h2.roots.get('applet/A00000000103')).toBe(x.ref);
    expect(h2.usage()).toEqual(heap.usage());
    // A second flush without changes writes nothing.
    const w = store.bytesWritten;
    heap.flush();
    expect(store.bytesWritten).toBe(w);
  });

  it('flush with a transaction still open aborts it first: nothing uncommitted becomes durable', () => {
    const { heap, store } = open();
    const a = heap.newArray(ArrayKind.Byte, 2, Memory.Persistent, 1);
    heap.flush();
    heap.beginTransaction();
    heap.storeArray(a, 0, 5);
    const n = heap.newArray(ArrayKind.Byte, 2, Memory.Persistent, 1);
    heap.flush();
    expect(heap.transactionDepth).toBe(0);
    expect(a.data[0]).toBe(0);
    const h2 = open(store).heap;
    expect(h2.array(a.ref).data[0]).toBe(0);
    expect(h2.peek(n.ref)).toBeUndefined();
  });

  it('persistNow makes writes durable mid-command; inside a transaction only what is outside it', () => {
    const { heap, store } = open();
    const pin = heap.newArray(ArrayKind.Byte, 4, Memory.Persistent, 1);
    const x = heap.newInstance(Plain, 1, { k: 1 });
    const pkg = fakePackage('A00000000108', 2);
    heap.attachStatics(pkg);
    heap.flush();
    heap.writeBytes(pin, 0, Uint8Array.of(3), false);
    heap.persistNow?.();
    expect(open(store).heap.array(pin.ref).data[0]).toBe(3);
    heap.beginTransaction();
    heap.storeArray(pin, 1, 7);
    heap.copyBytes(pin, 0, pin, 2, 1, true);
    heap.storeField(x, 0, 5);
    heap.setNative(x, 'k', 2);
    heap.setNative(x, 'new', 'v');
    heap.storeStatic(pkg.statics, 1, 9, pkg);
    const n = heap.newArray(ArrayKind.Byte, 1, Memory.Persistent, 1);
    heap.writeBytes(pin, 0, Uint8Array.of(2), false); // try counter: not part of the transaction
    heap.persistNow?.();
    const durable = () => {
      const h = open(store).heap;
      const p2 = fakePackage('A00000000108', 2);
      h.attachStatics(p2);
      const x2 = h.instance(x.ref);
      return { pin: bytesOf(h.array(pin.ref)), f: x2.fields[0], native: x2.native, s: p2.statics[1], n: h.peek(n.ref) !== undefined };
    };
    expect(durable()).toEqual({ pin: [2, 0, 0, 0], f: 0, native: { k: 1 }, s: 0, n: false });
    // The live image still has the transaction's values, and the commit makes them durable.
    expect(bytesOf(pin)).toEqual([2, 7, 3, 0]);
    expect(x.native).toEqual({ k: 2, new: 'v' });
    heap.commitTransaction();
    heap.flush();
    expect(durable()).toEqual({ pin: [2, 7, 3, 0], f: 5, native: { k: 2, new: 'v' }, s: 9, n: true });
  });

  it('joins an outer store transaction (card manager INSTALL) instead of committing on its own', () => {
    const { heap, store } = open();
    store.begin();
    heap.newArray(ArrayKind.Byte, 3, Memory.Persistent, 1);
    heap.flush();
    store.abort();
    expect(store.keys('vm/heap/o/')).toEqual([]);
    heap.powerUp();
    expect(heap.usage().objects).toBe(0);
  });

  it('a statics image of a different length (package changed) is replaced by the initial one', () => {
    const { heap, store } = open();
    const p1 = fakePackage('A00000000104', 2);
    heap.attachStatics(p1);
    heap.storeStatic(p1.statics, 1, 3, p1);
    heap.flush();
    const p2 = fakePackage('A00000000104', 3);
    p2.statics[2] = 8;
    open(store).heap.attachStatics(p2);
    expect([...p2.statics]).toEqual([0, 0, 8]);
  });

  it('keeps records whose class no longer resolves, untouched and counted', () => {
    const { heap, store } = open();
    const x = heap.newInstance(Plain, 1);
    heap.storeField(x, 0, 5);
    heap.flush();
    const h2 = open(store, { classes: new Map() }).heap;
    expect(h2.peek(x.ref)).toBeUndefined();
    expect(h2.usage().persistent).toBeGreaterThan(0);
    const y = h2.newArray(ArrayKind.Byte, 1, Memory.Persistent, 1);
    expect(y.ref).not.toBe(x.ref);
    h2.requestObjectDeletion();
    h2.flush();
    expect(open(store).heap.instance(x.ref).fields[0]).toBe(5);
  });
});

describe('tearing', () => {
  /** The persistent state a tear test compares: contents of every root object and the statics. */
  function snapshot(heap: ChipHeap, pkg: LinkedPackage): unknown {
    const arr = (name: string) => bytesOf(heap.array(heap.roots.get(name)));
    const x = heap.instance(heap.roots.get('X'));
    const r0 = heap.array(heap.roots.get('R')).data[0];
    return {
      A: arr('A'),
      S: arr('S'),
      I: arr('I'),
      R0: r0 === NULL ? null : bytesOf(heap.array(r0)),
      X: [...x.fields],
      native: { ...x.native },
      statics: [...pkg.statics],
      objects: heap.usage().objects,
      persistent: heap.usage().persistent,
    };
  }

  function setup(): { env: Env; pkg: LinkedPackage } {
    const env = open();
    const { heap } = env;
    const pkg = fakePackage('A00000000105', 3);
    heap.attachStatics(pkg);
    const make = (name: string, kind: ArrayKind, n: number) => {
      const a = heap.newArray(kind, n, Memory.Persistent, 1);
      heap.roots.set(name, a.ref);
      return a;
    };
    make('A', ArrayKind.Byte, 200);
    const b = make('B', ArrayKind.Byte, 200);
    heap.writeBytes(b, 0, Uint8Array.from({ length: 200 }, (_, i) => (i * 7 + 1) & 0xff), false);
    make('S', ArrayKind.Short, 4);
    make('I', ArrayKind.Int, 2);
    make('R', ArrayKind.Reference, 2);
    const x = heap.newInstance(Plain, 1, { n: 1 });
    heap.roots.set('X', x.ref);
    heap.flush();
    heap.powerUp(); // the script runs on the image read back from the store
    heap.attachStatics(pkg);
    return { env, pkg };
  }

  /**
   * The scripted command. `model` replays the non-atomic copy as one copy per page and calls `boundary` after every
   * unit that must be all-or-nothing: the durable state after a cut at write n is the last boundary before n.
   */
  function script(heap: ChipHeap, pkg: LinkedPackage, model: boolean, boundary: () => void): void {
    const r = (n: string): Ref => heap.roots.get(n);
    const A = heap.array(r('A'));
    const B = heap.array(r('B'));
    const S = heap.array(r('S'));
    const I = heap.array(r('I'));
    const R = heap.array(r('R'));
    const X = heap.instance(r('X'));
    heap.storeArray(S, 0, 111);
    boundary();
    heap.storeField(X, 1, 7);
    boundary();
    heap.beginTransaction();
    heap.storeArray(A, 0, 5);
    heap.storeArray(I, 1, 123456);
    heap.storeStatic(pkg.statics, 0, 42, pkg);
    heap.setNative(X, 'n', 3);
    const N = heap.newArray(ArrayKind.Byte, 4, Memory.Persistent, 1);
    heap.storeArray(N, 2, 9);
    heap.storeArray(R, 0, N.ref);
    heap.copyBytes(B, 0, A, 1, 20, true);
    heap.commitTransaction();
    boundary();
    if (model) {
      for (const [from, to] of [[10, 64], [64, 128], [128, 160]]) {
        heap.copyBytes(B, from - 10, A, from, to - from, false);
        boundary();
      }
    } else heap.copyBytes(B, 0, A, 10, 150, false);
    heap.copyBytes(B, 50, A, 100, 50, true);
    boundary();
    heap.beginTransaction();
    heap.storeField(X, 2, 9);
    heap.fillBytes(A, 0, 5, 0x77, true);
    heap.storeStatic(pkg.statics, 1, -5, pkg);
    heap.setNative(X, 'm', 'x');
    heap.commitTransaction();
    boundary();
    heap.beginTransaction();
    heap.storeArray(S, 1, 99);
    heap.abortTransaction();
    heap.storeArray(S, 2, 3);
    boundary();
  }

  it('a cut at every persistent write leaves each transaction all-or-nothing and keeps earlier writes', () => {
    // The model run: states at each boundary, keyed by the write count there.
    const m = setup();
    const states: { at: number; state: unknown }[] = [{ at: m.env.heap.writeCount, state: snapshot(m.env.heap, m.pkg) }];
    script(m.env.heap, m.pkg, true, () => states.push({ at: m.env.heap.writeCount, state: snapshot(m.env.heap, m.pkg) }));
    const total = m.env.heap.writeCount - states[0].at;
    // The real run (one non-atomic copy) makes the same writes and ends in the same state.
    const full = setup();
    script(full.env.heap, full.pkg, false, () => {});
    expect(full.env.heap.writeCount - states[0].at).toBe(total);
    expect(snapshot(full.env.heap, full.pkg)).toEqual(states[states.length - 1].state);
    expect(total).toBe(22);

    const seen = new Set<string>();
    for (let n = 1; n <= total; n++) {
      const { env, pkg } = setup();
      env.heap.armTear(n);
      const cut = n + env.heap.writeCount;
      expect(() => script(env.heap, pkg, false, () => {})).toThrow(PowerLoss);
      const expected = [...states].reverse().find((s) => s.at < cut)?.state;
      // A fresh heap on the store (host restart) and the same heap powered up again agree.
      const pkg2 = fakePackage(pkg.aid, 3);
      const fresh = open(env.store).heap;
      fresh.attachStatics(pkg2);
      expect(snapshot(fresh, pkg2), `cut at write ${n}`).toEqual(expected);
      env.heap.powerUp();
      expect(snapshot(env.heap, pkg), `power-up after cut at write ${n}`).toEqual(expected);
      seen.add(JSON.stringify(expected));
    }
    // Every boundary but the last was the outcome of some cut.
    expect(seen.size).toBe(states.length - 1);
  });

  it('counts writes from power-up and disarms after a cut', () => {
    const { heap } = open();
    const a = heap.newArray(ArrayKind.Byte, 2, Memory.Persistent, 1);
    expect(heap.writeCount).toBe(1);
    heap.armTear(2);
    heap.storeArray(a, 0, 1);
    expect(() => heap.storeArray(a, 1, 1)).toThrow(PowerLoss);
    heap.powerUp();
    expect(heap.writeCount).toBe(0);
    const b = heap.array(a.ref);
    expect(bytesOf(b)).toEqual([1, 0]);
    heap.storeArray(b, 1, 1); // disarmed: no second cut
    heap.armTear(1);
    heap.disarmTear();
    heap.storeArray(b, 1, 2);
    expect(() => heap.armTear(0)).toThrow(RangeError);
  });
});

describe('object deletion', () => {
  it('frees persistent objects unreachable from roots, statics and global objects at the next flush', () => {
    const { heap, store } = open();
    const pkg = fakePackage('A00000000106', 2, 1, 1);
    heap.attachStatics(pkg);
    const root = heap.newInstance(Node, 1);
    heap.roots.set('applet', root.ref);
    const viaField = heap.newArray(ArrayKind.Reference, 1, Memory.Persistent, 1);
    const viaArray = heap.newArray(ArrayKind.Byte, 10, Memory.Persistent, 1);
    const viaStatic = heap.newArray(ArrayKind.Short, 1, Memory.Persistent, 1);
    const hidden = heap.newArray(ArrayKind.Byte, 16, Memory.Persistent, 0);
    const key = heap.newInstance(Plain, 1, { valueRef: hidden.ref });
    const global = heap.newArray(ArrayKind.Byte, 4, Memory.ClearOnDeselect, 0);
    heap.makeGlobal(global.ref);
    const garbage = heap.newArray(ArrayKind.Byte, 100, Memory.Persistent, 1);
    const garbageT = heap.newArray(ArrayKind.Byte, 50, Memory.ClearOnReset, 1);
    const cycleA = heap.newInstance(Node, 1);
    const cycleB = heap.newInstance(Node, 1);
    heap.storeField(cycleA, 0, cycleB.ref);
    heap.storeField(cycleB, 0, cycleA.ref);
    const notARef = heap.newArray(ArrayKind.Byte, 1, Memory.Persistent, 1);
    heap.storeField(root, 0, viaField.ref);
    heap.storeField(root, 1, key.ref);
    heap.storeField(root, 2, notARef.ref); // cell 2 is not a reference cell of Node
    heap.storeArray(viaField, 0, viaArray.ref);
    heap.storeStatic(pkg.statics, 0, viaStatic.ref, pkg);
    heap.storeStatic(pkg.statics, 1, garbage.ref, pkg); // cell 1 is a short static, not a reference
    heap.flush();
    const before = heap.usage();
    heap.requestObjectDeletion();
    expect(heap.usage()).toEqual(before);
    heap.flush();
    const dead = [garbage, garbageT, cycleA, cycleB, notARef].map((o) => o.ref);
    for (const r of dead) expect(heap.peek(r)).toBeUndefined();
    for (const o of [root, viaField, viaArray, viaStatic, key, hidden, global]) expect(heap.peek(o.ref)).toBe(o);
    expect(heap.usage().persistent).toBe(before.persistent - (108 + 8 + 14 + 14 + 9));
    expect(heap.usage().clearOnReset).toBe(0);
    for (const r of dead) expect(store.has(`vm/heap/o/${r}`)).toBe(false);
    const h2 = open(store).heap;
    h2.attachStatics(fakePackage('A00000000106', 2, 1, 1));
    expect(h2.usage()).toEqual(heap.usage());
    // Dropping the root frees the applet's graph (applet deletion).
    heap.roots.set('applet', NULL);
    heap.detachStatics(pkg.aid);
    expect(heap.collect()).toBe(6);
    expect(heap.usage().objects).toBe(1);
    heap.flush();
    expect(store.keys('vm/heap/s/')).toEqual([]);
  });

  it('without a reference count every static cell keeps what it names (conservative)', () => {
    const { heap } = open();
    const pkg = fakePackage('A00000000107', 2);
    heap.attachStatics(pkg);
    const a = heap.newArray(ArrayKind.Byte, 1, Memory.Persistent, 1);
    heap.storeStatic(pkg.statics, 1, a.ref, pkg);
    expect(heap.collect()).toBe(0);
  });
});

describe('temporary entry points', () => {
  it('updates to JCRE-owned temporary objects do not take part in transactions nor persist', () => {
    const { heap, store } = open();
    const ex = heap.newInstance(Plain, 0, { reason: 0 });
    heap.makeGlobal(ex.ref, true);
    heap.flush();
    const w = heap.writeCount;
    heap.beginTransaction();
    heap.setNative(ex, 'reason', 0x6a82);
    heap.storeField(ex, 0, 4);
    heap.abortTransaction();
    expect(heap.writeCount).toBe(w);
    expect(ex.native?.reason).toBe(0x6a82);
    expect(ex.fields[0]).toBe(4);
    heap.flush();
    const x2 = open(store).heap.instance(ex.ref);
    expect(x2.native?.reason).toBe(0);
    expect(x2.entryPoint).toBe('temporary');
  });
});
