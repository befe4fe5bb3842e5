// The Java Card heap: persistent and transient objects, the firewall check on access, transactions with an undo log
// (JCRE 3.0.5 ch. 7), tearing at persistent write points, object deletion, and durability in the chip store.
// Layout, record format and accounting: docs/vm-memory.md.
import { PowerLoss } from '../store.ts';
import type { ChipStore } from '../store.ts';
import { ArrayKind, JCRE_CONTEXT, Memory, NULL } from './types.ts';
import type {
  ContextId,
  CycleMeter,
  Heap,
  HeapArray,
  HeapInstance,
  HeapObject,
  LinkedClass,
  LinkedPackage,
  Ref,
} from './types.ts';
import {
  HEADER_BYTES,
  decodeCells,
  decodeObject,
  elementSize,
  encodeCells,
  encodeObject,
  makeArray,
  makeInstance,
} from './heap-persist.ts';
import type { ArrayObj, InstanceObj, NativeValue, Obj } from './heap-persist.ts';

export interface HeapSizes {
  persistentBytes: number;
  transientResetBytes: number;
  transientDeselectBytes: number;
  commitCapacity: number;
}

export interface HeapOptions {
  store: ChipStore;
  sizes: HeapSizes;
  meter?: CycleMeter;
  /** Page size for write accounting and the tearing granularity of non-atomic writes (default: the meter's, else 64). */
  nvmPageBytes?: number;
  /** Persistent bytes taken by load files (card manager), not available to the heap. */
  reservedPersistent?: () => number;
  /** LinkedClass.key → class, to rebuild instances at power-up. */
  resolveClass(key: string): LinkedClass | undefined;
  throwApi(className: string, reason?: number): never;
  context(): ContextId;
}

export interface HeapUsage {
  objects: number;
  persistent: number;
  clearOnReset: number;
  clearOnDeselect: number;
}

export type ChipHeap = Heap & {
  /** Emulated bytes in use per memory type and the live object count. */
  usage(): HeapUsage;
  /** Ends a JCRE global array's life as a root (INSTALL's bArray), so that collect() frees it once unreachable. */
  dropGlobal(ref: Ref): void;
};

// Store keys (docs/vm-memory.md).
const OBJECT_PREFIX = 'vm/heap/o/';
const STATICS_PREFIX = 'vm/heap/s/';
const ROOTS_KEY = 'vm/heap/roots';

/** References are 16-bit on a card (JCVM §3.1); the handle table holds at most this many objects. */
const MAX_REF = 0x7fff;
const MAX_ARRAY_LENGTH = 0x7fff;
/** Commit buffer cost of one logged entry besides the old data (address + length). */
const LOG_ENTRY_BYTES = 4;

const NPE = 'java.lang.NullPointerException';
const AIOOBE = 'java.lang.ArrayIndexOutOfBoundsException';
const NASE = 'java.lang.NegativeArraySizeException';
const ASE = 'java.lang.ArrayStoreException';
const SECURITY = 'java.lang.SecurityException';
const SYSTEM = 'javacard.framework.SystemException';
const TRANSACTION = 'javacard.framework.TransactionException';
// Reason codes of javacard.framework.SystemException / TransactionException (JC 3.0.5 API constants).
const SE_ILLEGAL_VALUE = 1;
const SE_NO_TRANSIENT_SPACE = 2;
const SE_NO_RESOURCE = 5;
const TE_IN_PROGRESS = 1;
const TE_NOT_IN_PROGRESS = 2;
const TE_BUFFER_FULL = 3;

// Undo log entry kinds.
const U_ELEMENT = 1;
const U_FIELD = 2;
const U_STATIC = 3;
const U_RANGE = 4;
const U_NATIVE = 5;
const ABSENT = Symbol('absent');

type Cells = Uint8Array | Int16Array | Int32Array;
type UndoOld = number | NativeValue | Cells | typeof ABSENT;

export function createHeap(opts: HeapOptions): ChipHeap {
  const { store, sizes, throwApi, context, resolveClass } = opts;
  // The VM's meter (emulator/vm/cycles.ts) has dedicated charges for logging and NVM-sourced copies; a bare
  // CycleMeter gets the same prices through charge().
  const meter = opts.meter as (CycleMeter & { transactionLog?(bytes: number): void; nvmCopySource?(bytes: number): void }) | undefined;
  const pageBytes = opts.nvmPageBytes ?? meter?.profile.nvmPageBytes ?? 64;
  const txByteCycles = meter?.profile.transactionByteCycles ?? 0;
  const srcByteCycles = meter?.profile.nvmCopySourceByteCycles ?? 0;
  const reserved = opts.reservedPersistent ?? (() => 0);
  if (!Number.isInteger(pageBytes) || pageBytes < 1) throw new RangeError(`nvmPageBytes must be a positive integer, got ${pageBytes}`);

  // --- object table and accounting ---------------------------------------------------------------------------
  let objects: (Obj | undefined)[] = [undefined];
  /** Refs free for reuse, highest first (pop gives the lowest). */
  let freeRefs: number[] = [];
  /** Refs freed in this command: reusable only after the next flush, so a stale ref on the VM stack stays dead. */
  let pendingFree: number[] = [];
  /** Records whose class no longer resolves: kept untouched in the store and counted, never reused. */
  let zombies = new Map<Ref, number>();
  let transients = new Set<ArrayObj>();
  let usedPersistent = 0;
  let usedReset = 0;
  let usedDeselect = 0;
  let liveCount = 0;

  // --- durability --------------------------------------------------------------------------------------------
  let dirty: Obj[] = [];
  let deletedRefs = new Set<Ref>();
  const attached = new Map<string, LinkedPackage>();
  let dirtyPkgs = new Set<LinkedPackage>();
  let lastDirtyPkg: LinkedPackage | undefined;
  let deadStatics = new Set<string>();
  let rootMap = new Map<string, Ref>();
  let rootsDirty = false;
  let deletionRequested = false;

  // --- transaction (undo log in parallel arrays) ----------------------------------------------------------------
  let txOpen = false;
  let commitUsed = 0;
  const uKind: number[] = [];
  const uTarget: (Obj | Int32Array)[] = [];
  const uAux: (LinkedPackage | string | null)[] = [];
  const uIndex: number[] = [];
  const uOld: UndoOld[] = [];
  /** Locations already logged in this transaction: only the first old value matters. */
  const logged = new Set<number>();
  const staticIds = new WeakMap<Int32Array, number>();
  let nextStaticId = 1;
  let txAllocated: Obj[] = [];

  // --- tearing -----------------------------------------------------------------------------------------------
  let writeCount = 0;
  /** Absolute writeCount at which power is cut; 0 = disarmed. */
  let tearAt = 0;

  // ---------------------------------------------------------------------------------------------------------
  // Access
  // ---------------------------------------------------------------------------------------------------------

  function get(ref: Ref): HeapObject {
    const o = ref > 0 && ref < objects.length ? objects[ref] : undefined;
    if (o === undefined) return throwApi(NPE);
    if (!o.shared) {
      // Firewall (JCRE §6.1.4): own context, or the JCRE context which may access everything.
      const c = context();
      if (c !== o.owner && c !== JCRE_CONTEXT) return throwApi(SECURITY);
    }
    return o;
  }

  function array(ref: Ref): HeapArray {
    const o = get(ref);
    if ((o as ArrayObj).kind === undefined) return throwApi(SECURITY);
    return o as HeapArray;
  }

  function instance(ref: Ref): HeapInstance {
    const o = get(ref);
    if ((o as ArrayObj).kind !== undefined) return throwApi(SECURITY);
    return o as HeapInstance;
  }

  function peek(ref: Ref): HeapObject | undefined {
    return ref > 0 && ref < objects.length ? objects[ref] : undefined;
  }

  // ---------------------------------------------------------------------------------------------------------
  // Allocation
  // ---------------------------------------------------------------------------------------------------------

  function availablePersistent(): number {
    return sizes.persistentBytes - reserved() - usedPersistent;
  }

  function takeRef(): Ref {
    if (freeRefs.length > 0) return freeRefs.pop() as Ref;
    if (objects.length > MAX_REF) return throwApi(SYSTEM, SE_NO_RESOURCE);
    objects.push(undefined);
    return objects.length - 1;
  }

  function register(o: Obj): void {
    objects[o.ref] = o;
    liveCount++;
    usedPersistent += o.pbytes;
    if (o.tbytes > 0) {
      const a = o as ArrayObj;
      if (a.memory === Memory.ClearOnReset) usedReset += o.tbytes;
      else usedDeselect += o.tbytes;
    }
    if ((o as ArrayObj).kind !== undefined && (o as ArrayObj).memory !== Memory.Persistent) transients.add(o as ArrayObj);
  }

  /** An allocation writes the object header (and zeroed data) to persistent memory: one write point. */
  function allocated(o: Obj): void {
    if (++writeCount === tearAt) {
      // The header was never written: the ref goes back unused.
      freeRefs.push(o.ref);
      cut();
    }
    register(o);
    markDirty(o);
    if (txOpen) {
      o.txNew = true;
      txAllocated.push(o);
    }
    if (meter !== undefined) {
      meter.nvmWrite(o.pbytes, pagesOf(0, o.pbytes));
      if (o.tbytes > 0) meter.ramWrite(o.tbytes);
    }
  }

  function newArray(kind: ArrayKind, length: number, memory: Memory, owner: ContextId, elementClass?: LinkedClass): HeapArray {
    if (length < 0) return throwApi(NASE);
    if (kind < ArrayKind.Boolean || kind > ArrayKind.Reference || !Number.isInteger(length)) return throwApi(SYSTEM, SE_ILLEGAL_VALUE);
    if (memory !== Memory.Persistent && memory !== Memory.ClearOnReset && memory !== Memory.ClearOnDeselect)
      return throwApi(SYSTEM, SE_ILLEGAL_VALUE);
    // Array lengths are shorts (JCVM §2.2.3.1); the cap also keeps undo-log location ids unique.
    if (length > MAX_ARRAY_LENGTH) return throwApi(SYSTEM, SE_NO_RESOURCE);
    const es = elementSize(kind);
    const pbytes = memory === Memory.Persistent ? HEADER_BYTES + length * es : HEADER_BYTES;
    const tbytes = memory === Memory.Persistent ? 0 : length * es;
    if (pbytes > availablePersistent()) return throwApi(SYSTEM, SE_NO_RESOURCE);
    if (memory === Memory.ClearOnReset && tbytes > sizes.transientResetBytes - usedReset) return throwApi(SYSTEM, SE_NO_TRANSIENT_SPACE);
    if (memory === Memory.ClearOnDeselect && tbytes > sizes.transientDeselectBytes - usedDeselect)
      return throwApi(SYSTEM, SE_NO_TRANSIENT_SPACE);
    const a = makeArray(takeRef(), kind, length, memory, owner, elementClass);
    allocated(a);
    return a;
  }

  function newInstance(cls: LinkedClass, owner: ContextId, native?: Record<string, NativeValue>): HeapInstance {
    if (HEADER_BYTES + cls.instanceCells * 2 > availablePersistent()) return throwApi(SYSTEM, SE_NO_RESOURCE);
    const o = makeInstance(takeRef(), cls, owner, native ? { ...native } : undefined);
    allocated(o);
    return o;
  }

  function makeGlobal(ref: Ref, temporary = false): void {
    const o = peek(ref) as Obj | undefined;
    if (o === undefined) return throwApi(NPE);
    if ((o as ArrayObj).kind !== undefined) (o as ArrayObj).global = true;
    else {
      const x = o as InstanceObj;
      x.entryPoint = temporary ? 'temporary' : 'permanent';
      x.volatile = temporary;
    }
    o.shared = true;
    markDirty(o);
  }

  function dropGlobal(ref: Ref): void {
    const o = objects[ref];
    if (o === undefined || (o as ArrayObj).kind === undefined) return;
    (o as ArrayObj).global = false;
    o.shared = false;
    markDirty(o);
  }

  /** Gives an object's memory back; its store record goes at the next flush. */
  function release(o: Obj): void {
    objects[o.ref] = undefined;
    liveCount--;
    usedPersistent -= o.pbytes;
    if (o.tbytes > 0) {
      if ((o as ArrayObj).memory === Memory.ClearOnReset) usedReset -= o.tbytes;
      else usedDeselect -= o.tbytes;
      transients.delete(o as ArrayObj);
    }
    if (o.stored) deletedRefs.add(o.ref);
    pendingFree.push(o.ref);
  }

  // ---------------------------------------------------------------------------------------------------------
  // Writes
  // ---------------------------------------------------------------------------------------------------------

  function markDirty(o: Obj): void {
    if (!o.dirty) {
      o.dirty = true;
      dirty.push(o);
    }
  }

  function pagesOf(byteOffset: number, bytes: number): number {
    if (bytes <= 0) return 0;
    return Math.floor((byteOffset + bytes - 1) / pageBytes) - Math.floor(byteOffset / pageBytes) + 1;
  }

  function storeArray(a: HeapArray, index: number, value: number): void {
    const o = a as ArrayObj;
    if (index < 0 || index >= o.length) return throwApi(AIOOBE);
    if (o.memory !== Memory.Persistent) {
      // Transient: RAM, never logged nor torn (JCRE §7.7).
      o.data[index] = value;
      if (meter !== undefined) meter.ramWrite(o.esize);
      return;
    }
    if (txOpen && !o.txNew) logCell(U_ELEMENT, o, index, o.data[index], o.esize);
    if (++writeCount === tearAt) cut();
    o.data[index] = value;
    if (!o.dirty) markDirty(o);
    if (meter !== undefined) meter.nvmWrite(o.esize, pagesOf(index * o.esize, o.esize));
  }

  function storeField(x: HeapInstance, cell: number, value: number): void {
    const o = x as InstanceObj;
    const f = o.fields;
    if (cell < 0 || cell >= f.length) return throwApi(SECURITY);
    if (o.volatile) {
      f[cell] = value;
      return;
    }
    if (txOpen && !o.txNew) logCell(U_FIELD, o, cell, f[cell], 2);
    if (++writeCount === tearAt) cut();
    f[cell] = value;
    if (!o.dirty) markDirty(o);
    if (meter !== undefined) meter.nvmWrite(2, 1);
  }

  function storeStatic(statics: Int32Array, cell: number, value: number, owner: LinkedPackage): void {
    if (cell < 0 || cell >= statics.length) return throwApi(SECURITY);
    if (txOpen) logStatic(statics, owner, cell);
    if (++writeCount === tearAt) cut();
    statics[cell] = value;
    if (owner !== lastDirtyPkg) {
      dirtyPkgs.add(owner);
      lastDirtyPkg = owner;
    }
    if (meter !== undefined) meter.nvmWrite(2, 1);
  }

  function setNative(x: HeapInstance, key: string, value: NativeValue): void {
    const o = x as InstanceObj;
    if (o.native === undefined) o.native = {};
    const rec = o.native;
    if (o.volatile) {
      rec[key] = value;
      return;
    }
    if (txOpen && !o.txNew) logNative(o, key, Object.prototype.hasOwnProperty.call(rec, key) ? rec[key] : ABSENT);
    if (++writeCount === tearAt) cut();
    rec[key] = value;
    markDirty(o);
    if (meter !== undefined) meter.nvmWrite(nativeBytes(value), 1);
  }

  function nativeBytes(v: NativeValue | typeof ABSENT): number {
    return typeof v === 'string' ? v.length : 2;
  }

  function checkRange(a: ArrayObj, off: number, length: number): void {
    if (length < 0 || off < 0 || off + length > a.length) throwApi(AIOOBE);
    if (a.kind === ArrayKind.Reference) throwApi(ASE);
  }

  function copyBytes(src: HeapArray, srcOff: number, dst: HeapArray, dstOff: number, length: number, atomic: boolean): void {
    const s = src as ArrayObj;
    const d = dst as ArrayObj;
    checkRange(s, srcOff, length);
    checkRange(d, dstOff, length);
    if (s.esize !== d.esize) return throwApi(ASE);
    let source: Cells = s.data;
    // A segmented (non-atomic) copy within one array must read the source as it was (Util.arrayCopy semantics).
    if (s === d && !atomic && d.memory === Memory.Persistent) {
      source = s.data.slice(srcOff, srcOff + length);
      srcOff = 0;
    }
    if (s.memory === Memory.Persistent && d.memory === Memory.Persistent && length > 0 && meter !== undefined) {
      if (meter.nvmCopySource !== undefined) meter.nvmCopySource(length * s.esize);
      else meter.charge(srcByteCycles * length * s.esize);
    }
    writeRange(d, dstOff, length, atomic, source, srcOff, 0);
  }

  function fillBytes(dst: HeapArray, off: number, length: number, value: number, atomic: boolean): void {
    const d = dst as ArrayObj;
    checkRange(d, off, length);
    writeRange(d, off, length, atomic, null, 0, value);
  }

  function writeBytes(dst: HeapArray, off: number, bytes: Uint8Array, atomic: boolean): void {
    const d = dst as ArrayObj;
    checkRange(d, off, bytes.length);
    if (d.esize !== 1) return throwApi(ASE);
    writeRange(d, off, bytes.length, atomic, bytes, 0, 0);
  }

  /** Copies source[srcOff…] (or fills with `value` when source is null) into d[off, off+length). */
  function put(d: ArrayObj, from: number, to: number, off: number, source: Cells | null, srcOff: number, value: number): void {
    if (source === null) d.data.fill(value, from, to);
    else d.data.set(source.subarray(srcOff + (from - off), srcOff + (to - off)), from);
  }

  function writeRange(d: ArrayObj, off: number, length: number, atomic: boolean, source: Cells | null, srcOff: number, value: number): void {
    if (length === 0) return;
    const es = d.esize;
    if (d.memory !== Memory.Persistent) {
      put(d, off, off + length, off, source, srcOff, value);
      if (meter !== undefined) meter.ramWrite(length * es);
      return;
    }
    if (atomic) {
      // Util.arrayCopy: one write point, all or nothing; inside a transaction it is logged (JCAPI Util.arrayCopy).
      if (txOpen && !d.txNew) logRange(d, off, length);
      chargeLog(length * es);
      if (++writeCount === tearAt) cut();
      put(d, off, off + length, off, source, srcOff, value);
      markDirty(d);
      if (meter !== undefined) meter.nvmWrite(length * es, pagesOf(off * es, length * es));
      return;
    }
    // Non-atomic (arrayCopyNonAtomic / arrayFillNonAtomic): page by page, never logged (JCRE §7.7); a cut keeps the
    // pages written before it.
    const end = off + length;
    let pos = off;
    while (pos < end) {
      const pageEnd = Math.ceil((Math.floor((pos * es) / pageBytes) + 1) * pageBytes / es);
      const to = pageEnd < end ? pageEnd : end;
      if (++writeCount === tearAt) cut();
      put(d, pos, to, off, source, srcOff, value);
      markDirty(d);
      if (meter !== undefined) meter.nvmWrite((to - pos) * es, 1);
      pos = to;
    }
  }

  // ---------------------------------------------------------------------------------------------------------
  // Transactions (JCRE §7)
  // ---------------------------------------------------------------------------------------------------------

  function reserve(cost: number): void {
    if (commitUsed + cost > sizes.commitCapacity) {
      // The commit buffer is full: the transaction is aborted and the write does not happen.
      rollback(true);
      throwApi(TRANSACTION, TE_BUFFER_FULL);
    }
    commitUsed += cost;
  }

  /** Backing up `bytes` persistent bytes (undo log, or the atomic Util.arrayCopy's backup). */
  function chargeLog(bytes: number): void {
    if (meter === undefined) return;
    if (meter.transactionLog !== undefined) meter.transactionLog(bytes);
    else meter.charge(txByteCycles * bytes);
  }

  function push(kind: number, target: Obj | Int32Array, aux: LinkedPackage | string | null, index: number, old: UndoOld): void {
    uKind.push(kind);
    uTarget.push(target);
    uAux.push(aux);
    uIndex.push(index);
    uOld.push(old);
  }

  function logCell(kind: number, o: Obj, index: number, old: number, bytes: number): void {
    const id = o.ref * 0x100000 + index;
    if (logged.has(id)) return;
    reserve(LOG_ENTRY_BYTES + bytes);
    chargeLog(bytes);
    logged.add(id);
    push(kind, o, null, index, old);
  }

  function logStatic(statics: Int32Array, pkg: LinkedPackage, cell: number): void {
    let sid = staticIds.get(statics);
    if (sid === undefined) {
      sid = nextStaticId++;
      staticIds.set(statics, sid);
    }
    const id = -(sid * 0x100000 + cell) - 1;
    if (logged.has(id)) return;
    reserve(LOG_ENTRY_BYTES + 2);
    chargeLog(2);
    logged.add(id);
    push(U_STATIC, statics, pkg, cell, statics[cell]);
  }

  function logRange(d: ArrayObj, off: number, length: number): void {
    reserve(LOG_ENTRY_BYTES + length * d.esize);
    push(U_RANGE, d, null, off, d.data.slice(off, off + length));
  }

  function logNative(o: InstanceObj, key: string, old: NativeValue | typeof ABSENT): void {
    reserve(LOG_ENTRY_BYTES + nativeBytes(old));
    chargeLog(nativeBytes(old));
    push(U_NATIVE, o, key, 0, old);
  }

  function clearLog(): void {
    uKind.length = 0;
    uTarget.length = 0;
    uAux.length = 0;
    uIndex.length = 0;
    uOld.length = 0;
    logged.clear();
    commitUsed = 0;
  }

  /** Restores every logged value (newest first) and frees the objects allocated in the transaction (JCRE §7.6). */
  function rollback(nullDangling: boolean): void {
    for (let i = uKind.length - 1; i >= 0; i--) {
      const kind = uKind[i];
      const index = uIndex[i];
      const old = uOld[i];
      if (kind === U_STATIC) {
        (uTarget[i] as Int32Array)[index] = old as number;
        dirtyPkgs.add(uAux[i] as LinkedPackage);
        if (meter !== undefined) meter.nvmWrite(2, 1);
        continue;
      }
      const o = uTarget[i] as Obj;
      if (kind === U_ELEMENT) (o as ArrayObj).data[index] = old as number;
      else if (kind === U_FIELD) (o as InstanceObj).fields[index] = old as number;
      else if (kind === U_RANGE) (o as ArrayObj).data.set(old as Cells, index);
      else {
        const rec = (o as InstanceObj).native as Record<string, NativeValue>;
        if (old === ABSENT) delete rec[uAux[i] as string];
        else rec[uAux[i] as string] = old as NativeValue;
      }
      markDirty(o);
      if (meter !== undefined) meter.nvmWrite(kind === U_RANGE ? (old as Cells).byteLength : 2, 1);
    }
    clearLog();
    const dead = txAllocated;
    txAllocated = [];
    txOpen = false;
    if (dead.length === 0) return;
    for (const o of dead) release(o);
    if (nullDangling) nullRefsTo(new Set(dead.map((o) => o.ref)));
  }

  /**
   * References to objects of an aborted transaction become null (JCRE §7.6.3). Persistent locations were logged and
   * are already restored; only transient reference arrays and JCRE roots can still hold them.
   */
  function nullRefsTo(dead: Set<Ref>): void {
    for (const a of transients) {
      if (a.kind !== ArrayKind.Reference) continue;
      const d = a.data;
      for (let i = 0; i < d.length; i++) if (dead.has(d[i])) d[i] = NULL;
    }
    for (const [name, ref] of rootMap)
      if (dead.has(ref)) {
        rootMap.delete(name);
        rootsDirty = true;
      }
  }

  function beginTransaction(): void {
    if (txOpen) return throwApi(TRANSACTION, TE_IN_PROGRESS);
    clearLog();
    txOpen = true;
  }

  function commitTransaction(): void {
    if (!txOpen) return throwApi(TRANSACTION, TE_NOT_IN_PROGRESS);
    // Writing the commit mark is the transaction's last persistent write: cut before it, everything rolls back.
    if (++writeCount === tearAt) cut();
    for (const o of txAllocated) o.txNew = false;
    txAllocated = [];
    clearLog();
    txOpen = false;
  }

  function abortTransaction(): void {
    if (!txOpen) return throwApi(TRANSACTION, TE_NOT_IN_PROGRESS);
    rollback(true);
  }

  // ---------------------------------------------------------------------------------------------------------
  // Tearing, durability, power-up
  // ---------------------------------------------------------------------------------------------------------

  /** Power is cut at this write: the open transaction rolls back, what survives is made durable, the chip dies. */
  function cut(): never {
    const at = writeCount;
    tearAt = 0;
    if (txOpen) rollback(false);
    persist();
    throw new PowerLoss(`power cut at heap persistent write ${at}`);
  }

  function objectKey(ref: Ref): string {
    return OBJECT_PREFIX + ref;
  }

  /**
   * Writes every dirty object, freed record, static image and the roots in one store commit. `midCommand`: objects of
   * the open transaction stay dirty and unwritten, and freed refs are not yet reusable.
   */
  function persist(midCommand = false): void {
    if (dirty.length === 0 && deletedRefs.size === 0 && dirtyPkgs.size === 0 && deadStatics.size === 0 && !rootsDirty) {
      if (!midCommand) releasePending();
      return;
    }
    const keep: Obj[] = [];
    // Inside an outer store transaction (card manager INSTALL / DELETE) the heap's writes join it.
    const own = !store.inTransaction;
    if (own) store.begin();
    try {
      for (const o of dirty) {
        if (o.txNew) {
          keep.push(o);
          continue;
        }
        o.dirty = false;
        if (objects[o.ref] !== o) continue;
        store.put(objectKey(o.ref), encodeObject(o));
        o.stored = true;
      }
      for (const ref of deletedRefs) store.delete(objectKey(ref));
      for (const pkg of dirtyPkgs) if (!deadStatics.has(pkg.aid)) store.put(STATICS_PREFIX + pkg.aid, encodeCells(pkg.statics));
      for (const aid of deadStatics) store.delete(STATICS_PREFIX + aid);
      if (rootsDirty) store.putJson(ROOTS_KEY, { v: 1, roots: Object.fromEntries(rootMap) });
      if (own) store.commit();
    } catch (e) {
      if (own && store.inTransaction) store.abort();
      throw e;
    }
    dirty = keep;
    deletedRefs = new Set();
    dirtyPkgs = new Set();
    lastDirtyPkg = undefined;
    deadStatics = new Set();
    rootsDirty = false;
    if (!midCommand) releasePending();
  }

  /**
   * Makes the writes so far durable now (OwnerPIN decrements its try counter durably before comparing). Inside a
   * transaction only what is outside it: the logged locations are written with their old values.
   */
  function persistNow(): void {
    if (!txOpen) {
      persist(true);
      return;
    }
    for (let i = uKind.length - 1; i >= 0; i--) swapEntry(i);
    try {
      persist(true);
    } finally {
      for (let i = 0; i < uKind.length; i++) swapEntry(i);
      // The logged locations carry the transaction's values again: not durable yet.
      for (let i = 0; i < uKind.length; i++) {
        if (uKind[i] === U_STATIC) dirtyPkgs.add(uAux[i] as LinkedPackage);
        else markDirty(uTarget[i] as Obj);
      }
      lastDirtyPkg = undefined;
    }
  }

  /** Exchanges a logged location's current value with the value in the log (twice = no change). */
  function swapEntry(i: number): void {
    const kind = uKind[i];
    const index = uIndex[i];
    const old = uOld[i];
    if (kind === U_STATIC) {
      const cells = uTarget[i] as Int32Array;
      uOld[i] = cells[index];
      cells[index] = old as number;
    } else if (kind === U_ELEMENT) {
      const d = (uTarget[i] as ArrayObj).data;
      uOld[i] = d[index];
      d[index] = old as number;
    } else if (kind === U_FIELD) {
      const f = (uTarget[i] as InstanceObj).fields;
      uOld[i] = f[index];
      f[index] = old as number;
    } else if (kind === U_RANGE) {
      const d = (uTarget[i] as ArrayObj).data;
      uOld[i] = d.slice(index, index + (old as Cells).length);
      d.set(old as Cells, index);
    } else {
      const rec = (uTarget[i] as InstanceObj).native as Record<string, NativeValue>;
      const key = uAux[i] as string;
      uOld[i] = Object.prototype.hasOwnProperty.call(rec, key) ? rec[key] : ABSENT;
      if (old === ABSENT) delete rec[key];
      else rec[key] = old as NativeValue;
    }
  }

  function releasePending(): void {
    if (pendingFree.length === 0) return;
    freeRefs.push(...pendingFree);
    pendingFree = [];
    freeRefs.sort((a, b) => b - a);
  }

  function flush(): void {
    // A transaction cannot outlive its command: the JCRE aborts it when process() returns (JCRE §7.6.3 / §3.3).
    if (txOpen) rollback(true);
    if (deletionRequested) {
      deletionRequested = false;
      collect();
    }
    persist();
  }

  function powerUp(): void {
    objects = [undefined];
    freeRefs = [];
    pendingFree = [];
    zombies = new Map();
    transients = new Set();
    usedPersistent = 0;
    usedReset = 0;
    usedDeselect = 0;
    liveCount = 0;
    dirty = [];
    deletedRefs = new Set();
    dirtyPkgs = new Set();
    lastDirtyPkg = undefined;
    deadStatics = new Set();
    rootsDirty = false;
    deletionRequested = false;
    txOpen = false;
    clearLog();
    txAllocated = [];
    writeCount = 0;
    tearAt = 0;

    const saved = store.getJson<{ v: number; roots: Record<string, number> }>(ROOTS_KEY);
    rootMap = new Map(saved ? Object.entries(saved.roots) : []);
    const loaded: Obj[] = [];
    let maxRef = 0;
    for (const key of store.keys(OBJECT_PREFIX)) {
      const ref = Number(key.slice(OBJECT_PREFIX.length));
      const bytes = store.get(key);
      if (!Number.isInteger(ref) || ref < 1 || ref > MAX_REF || bytes === undefined) continue;
      maxRef = Math.max(maxRef, ref);
      const rec = decodeObject(ref, bytes);
      if (rec.type === 'array') {
        const a = rec.obj;
        if (rec.elementClassKey !== undefined) a.elementClass = resolveClass(rec.elementClassKey);
        loaded.push(a);
        continue;
      }
      const cls = resolveClass(rec.classKey);
      if (cls === undefined) {
        zombies.set(ref, bytes.length);
        continue;
      }
      const x = makeInstance(ref, cls, rec.owner, rec.native);
      x.fields.set(rec.cells.length <= x.fields.length ? rec.cells : rec.cells.subarray(0, x.fields.length));
      x.entryPoint = rec.entryPoint;
      x.volatile = rec.entryPoint === 'temporary';
      x.shared = rec.entryPoint !== undefined;
      x.stored = true;
      loaded.push(x);
    }
    objects = new Array<Obj | undefined>(maxRef + 1).fill(undefined);
    for (const o of loaded) register(o);
    for (const [, bytes] of zombies) usedPersistent += bytes;
    for (let r = maxRef; r >= 1; r--) if (objects[r] === undefined && !zombies.has(r)) freeRefs.push(r);
    for (const pkg of attached.values()) restoreStatics(pkg);
  }

  function restoreStatics(pkg: LinkedPackage): void {
    const b = store.get(STATICS_PREFIX + pkg.aid);
    const cells = b === undefined ? undefined : decodeCells(b);
    if (cells !== undefined && cells.length === pkg.statics.length) pkg.statics.set(cells);
    else store.put(STATICS_PREFIX + pkg.aid, encodeCells(pkg.statics));
  }

  function attachStatics(pkg: LinkedPackage): void {
    attached.set(pkg.aid, pkg);
    deadStatics.delete(pkg.aid);
    restoreStatics(pkg);
  }

  function detachStatics(aid: string): void {
    const pkg = attached.get(aid);
    attached.delete(aid);
    if (pkg) dirtyPkgs.delete(pkg);
    lastDirtyPkg = undefined;
    deadStatics.add(aid);
  }

  // ---------------------------------------------------------------------------------------------------------
  // Object deletion (JCSystem.requestObjectDeletion): mark from the roots, free the rest.
  // ---------------------------------------------------------------------------------------------------------

  function collect(): number {
    if (txOpen) {
      // Objects of an open transaction may still be referenced only from the VM stack: wait for the flush.
      deletionRequested = true;
      return 0;
    }
    const marked = new Uint8Array(objects.length);
    const stack: number[] = [];
    const reach = (v: number): void => {
      if (v > 0 && v < objects.length && marked[v] === 0 && objects[v] !== undefined) {
        marked[v] = 1;
        stack.push(v);
      }
    };
    for (const ref of rootMap.values()) reach(ref);
    for (const pkg of attached.values()) {
      // Reference statics come first (JCVM §6.10); without the count every cell is a candidate (conservative).
      const n = Math.min(pkg.staticReferenceCells ?? pkg.statics.length, pkg.statics.length);
      for (let i = 0; i < n; i++) reach(pkg.statics[i]);
    }
    for (let r = 1; r < objects.length; r++) if (objects[r]?.shared) reach(r);
    while (stack.length > 0) {
      const o = objects[stack.pop() as number] as Obj;
      if ((o as ArrayObj).kind !== undefined) {
        const a = o as ArrayObj;
        if (a.kind === ArrayKind.Reference) for (let i = 0; i < a.data.length; i++) reach(a.data[i]);
        continue;
      }
      const x = o as InstanceObj;
      for (const cell of x.cls.referenceCells) reach(x.fields[cell]);
      // Native records may hold refs of hidden arrays: any integer naming a live object keeps it (conservative).
      if (x.native !== undefined) for (const v of Object.values(x.native)) if (typeof v === 'number' && Number.isInteger(v)) reach(v);
    }
    let freed = 0;
    for (let r = 1; r < objects.length; r++) {
      const o = objects[r];
      if (o !== undefined && marked[r] === 0) {
        release(o);
        freed++;
      }
    }
    return freed;
  }

  // ---------------------------------------------------------------------------------------------------------
  // Transient memory and accounting
  // ---------------------------------------------------------------------------------------------------------

  function clearTransient(memory: Memory, owner?: ContextId): void {
    for (const a of transients)
      if (a.memory === memory && (owner === undefined || a.owner === owner)) a.data.fill(0);
  }

  function availableMemory(memory: Memory): number {
    if (memory === Memory.ClearOnReset) return sizes.transientResetBytes - usedReset;
    if (memory === Memory.ClearOnDeselect) return sizes.transientDeselectBytes - usedDeselect;
    return Math.max(0, availablePersistent());
  }

  const roots = {
    get(name: string): Ref {
      return rootMap.get(name) ?? NULL;
    },
    set(name: string, ref: Ref): void {
      if (ref === NULL) {
        if (rootMap.delete(name)) rootsDirty = true;
      } else if (rootMap.get(name) !== ref) {
        rootMap.set(name, ref);
        rootsDirty = true;
      }
    },
    names(): string[] {
      return [...rootMap.keys()].sort();
    },
  };

  powerUp();

  return {
    get,
    array,
    instance,
    peek,
    newArray,
    newInstance,
    makeGlobal,
    storeArray,
    storeField,
    storeStatic,
    setNative,
    copyBytes,
    fillBytes,
    writeBytes,
    beginTransaction,
    commitTransaction,
    abortTransaction,
    get transactionDepth() {
      return txOpen ? 1 : 0;
    },
    get commitCapacity() {
      return { max: sizes.commitCapacity, used: commitUsed };
    },
    availableMemory,
    requestObjectDeletion() {
      deletionRequested = true;
    },
    isObjectDeletionSupported: () => true,
    clearTransient,
    flush,
    persistNow,
    roots,
    attachStatics,
    detachStatics,
    powerUp,
    collect,
    armTear(n: number) {
      if (!Number.isInteger(n) || n < 1) throw new RangeError(`armTear: n must be a positive integer, got ${n}`);
      tearAt = writeCount + n;
    },
    disarmTear() {
      tearAt = 0;
    },
    get writeCount() {
      return writeCount;
    },
    dropGlobal,
    usage: () => ({ objects: liveCount, persistent: usedPersistent, clearOnReset: usedReset, clearOnDeselect: usedDeselect }),
  };
}
