// A Vm for testing native API classes alone: the real heap (createHeap over an in-memory store), the API registry
// built from the given NativeClassImpls, a settable context, stub JCRE services and a counting cycle meter.
import { openMemoryStore } from '../../emulator/store.ts';
import type { ChipStore } from '../../emulator/store.ts';
import { createHeap } from '../../emulator/vm/heap.ts';
import type { ChipHeap } from '../../emulator/vm/heap.ts';
import { buildApiRegistry } from '../../emulator/vm/api/registry.ts';
import type { ApiRegistry } from '../../emulator/vm/api/registry.ts';
import { readReason, throwJcre } from '../../emulator/vm/api/exceptions.ts';
import { createAidObject } from '../../emulator/vm/api/aid.ts';
import { freshJcreState } from '../../emulator/vm/api/apdu.ts';
import { hex } from '../../emulator/bytes.ts';
import { ArrayKind, Memory, VmThrow, isArray } from '../../emulator/vm/types.ts';
import type {
  ContextId,
  CycleMeter,
  HeapArray,
  JcreServices,
  JcreState,
  LinkedClass,
  NativeClassImpl,
  NativeMethod,
  Ref,
  Vm,
} from '../../emulator/vm/types.ts';

export interface NativeHarness {
  vm: Vm & { context: ContextId; currentApplet: string | null; previousApplet: string | null };
  heap: ChipHeap;
  store: ChipStore;
  registry: ApiRegistry;
  /** Extra classes (test subclasses) the heap can resolve at power-up. */
  classes: Map<string, LinkedClass>;
  /** Calls Class.name(desc) with the argument words; the implementation is looked up the superclass chain. */
  call(className: string, sig: string, args?: number[]): number | void;
  /** The Java exception a call throws: class name and reason (undefined when nothing is thrown). */
  thrown(fn: () => unknown): { cls: string; reason: number; ref: Ref } | undefined;
  bytes(values: ArrayLike<number>, memory?: Memory, owner?: ContextId): HeapArray;
  read(a: HeapArray | Ref): Uint8Array;
  registered: { applet: Ref; aid: Uint8Array | null }[];
  /** AIDs of installed applets (for aidObject / lookupAID / isAppletActive). */
  installed: Set<string>;
  active: Set<string>;
}

function countingMeter(): CycleMeter {
  let natives = 0;
  return {
    profile: {} as CycleMeter['profile'],
    crypto: () => undefined,
    charge: () => undefined,
    nvmWrite: () => undefined,
    ramWrite: () => undefined,
    native: () => void natives++,
    report: () => ({ bytecodes: 0, cycles: 0, nativeCalls: natives, persistentBytesWritten: 0, estimatedUs: 0, ioBytes: 0 }),
    reset: () => void (natives = 0),
  };
}

export function jcreState(): JcreState {
  return { ...freshJcreState(), command: new Uint8Array(4) };
}

export function nativeHarness(impls: readonly NativeClassImpl[], opts: { store?: ChipStore; commitCapacity?: number } = {}): NativeHarness {
  const registry = buildApiRegistry(impls);
  const store = opts.store ?? openMemoryStore();
  const classes = new Map<string, LinkedClass>();
  const registered: NativeHarness['registered'] = [];
  const installed = new Set<string>();
  const active = new Set<string>();
  const aidObjects = new Map<string, Ref>();
  let vm!: NativeHarness['vm'];

  const heap = createHeap({
    store,
    sizes: { persistentBytes: 64 * 1024, transientResetBytes: 4096, transientDeselectBytes: 4096, commitCapacity: opts.commitCapacity ?? 1024 },
    resolveClass: (key) => registry.classes.get(key) ?? classes.get(key),
    throwApi: (name, reason) => throwJcre(vm, name, reason),
    context: () => vm.context,
  });

  const services: JcreServices = {
    registerApplet: (applet, aid) => void registered.push({ applet, aid }),
    aidObject: (aid) => {
      const key = hex(aid);
      if (!installed.has(key)) return 0;
      let ref = aidObjects.get(key);
      if (ref === undefined) {
        ref = createAidObject(vm, aid);
        aidObjects.set(key, ref);
      }
      return ref;
    },
    shareable: () => 0,
    isAppletActive: (aid) => active.has(hex(aid)),
    appletInfo: () => undefined,
    setAppletLifeCycle: () => false,
    cardLifeCycle: () => 7,
    setCardLifeCycle: () => false,
    secureChannel: () => {
      throw new Error('no secure channel in the native harness');
    },
    random: (n) => new Uint8Array(n),
  };

  const findNative = (cls: LinkedClass | undefined, sig: string): NativeMethod | undefined => {
    for (let c = cls; c; c = c.superclass ?? undefined) {
      const m = c.native?.methods[sig];
      if (m) return m;
    }
    return undefined;
  };

  vm = {
    heap,
    cycles: countingMeter(),
    context: 0,
    currentApplet: null,
    previousApplet: null,
    apiClass(name) {
      const c = registry.classes.get(name) ?? classes.get(name);
      if (!c) throw new Error(`no API class ${name}`);
      return c;
    },
    throwApi: (name, reason) => throwJcre(vm, name, reason),
    invoke(method, args) {
      if (!method.native) throw new Error(`harness cannot run bytecode (${method.name})`);
      return method.native(vm, Int32Array.from(args)) ?? 0;
    },
    invokeVirtual(ref, apiMethod, args) {
      const v = registry.virtuals.get(apiMethod);
      if (!v) throw new Error(`no virtual ${apiMethod}`);
      const o = heap.peek(ref);
      if (!o || isArray(o)) throw new Error(`invokeVirtual on ${ref}`);
      const m = o.cls.publicVirtuals[v.token];
      if (!m?.native) throw new Error(`no implementation of ${apiMethod} in ${o.cls.name}`);
      return m.native(vm, Int32Array.from(args)) ?? 0;
    },
    jcre: jcreState(),
    services,
  };

  return {
    vm,
    heap,
    store,
    registry,
    classes,
    registered,
    installed,
    active,
    call(className, sig, args = []) {
      const m = findNative(vm.apiClass(className), sig);
      if (!m) throw new Error(`no native ${className}.${sig}`);
      return m(vm, Int32Array.from(args));
    },
    thrown(fn) {
      try {
        fn();
      } catch (e) {
        if (!(e instanceof VmThrow)) throw e;
        const o = heap.peek(e.ref);
        if (!o || isArray(o)) throw new Error(`VmThrow with a bad ref ${e.ref}`);
        return { cls: o.cls.name, reason: readReason(o), ref: e.ref };
      }
      return undefined;
    },
    bytes(values, memory = Memory.Persistent, owner = vm.context) {
      const a = heap.newArray(ArrayKind.Byte, values.length, memory, owner);
      heap.writeBytes(a, 0, Uint8Array.from(Array.from(values, (v) => v & 0xff)), false);
      return a;
    },
    read(a) {
      const arr = typeof a === 'number' ? (heap.peek(a) as HeapArray) : a;
      return Uint8Array.from(arr.data as Uint8Array);
    },
  };
}
