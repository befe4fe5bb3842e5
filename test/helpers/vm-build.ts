// Test helper: CapPackage values built directly (no CAP bytes), with a small label assembler for method bodies, and a
// VM over an in-memory store to link and run them.
import { fromHex } from '../../emulator/bytes.ts';
import { openMemoryStore } from '../../emulator/store.ts';
import type { ChipStore } from '../../emulator/store.ts';
import type {
  CapClassEntry,
  CapClassRef,
  CapExceptionHandler,
  CapPackage,
  CapPackageRef,
  CpEntry,
  JcreServices,
  JcreState,
  LinkedClass,
  LinkedMethod,
  NativeClassImpl,
} from '../../emulator/vm/types.ts';
import { NULL } from '../../emulator/vm/types.ts';
import { BY_MNEMONIC } from '../../emulator/vm/opcodes.ts';
import type { LinkUnit } from '../../emulator/vm/linker.ts';
import { linkPackage } from '../../emulator/vm/linker.ts';
import { buildApiRegistry } from '../../emulator/vm/api/registry.ts';
import type { ApiRegistry } from '../../emulator/vm/api/registry.ts';
import { createVm } from '../../emulator/vm/vm.ts';
import type { ChipVm } from '../../emulator/vm/vm.ts';
import { createMeter } from '../../emulator/vm/cycles.ts';
import { DEFAULT_CYCLE_PROFILE } from '../../emulator/vm/profiles/jcop4.ts';
import { defaultNatives, initStaticArrays } from '../../emulator/vm/runtime.ts';

export const LANG: CapPackageRef = { aid: fromHex('A0000000620001'), major: 1, minor: 0 };
export const FRAMEWORK: CapPackageRef = { aid: fromHex('A0000000620101'), major: 1, minor: 6 };

/** A code item: a byte, a label definition ("L:name"), or a branch offset to a label relative to an opcode `back` bytes before. */
export type Item = number | string | { to: string; size: 1 | 2; back: number };

/** Mnemonic → opcode byte. */
export function op(mnemonic: string): number {
  const o = BY_MNEMONIC.get(mnemonic);
  if (!o) throw new Error(`no opcode ${mnemonic}`);
  return o.code;
}

/** "mnemonic" or "mnemonic arg…" with numeric operands laid out by the table; branches take a label. */
export function I(mnemonic: string, ...args: (number | string)[]): Item[] {
  const o = BY_MNEMONIC.get(mnemonic);
  if (!o) throw new Error(`no opcode ${mnemonic}`);
  const out: Item[] = [o.code];
  const n = args.map((a) => (typeof a === 'number' ? a : 0));
  switch (o.operands) {
    case 'none':
      break;
    case 's1': case 'u1': case 'atype': case 'dupx':
      out.push(n[0] & 0xff);
      break;
    case 's2': case 'u2':
      out.push((n[0] >> 8) & 0xff, n[0] & 0xff);
      break;
    case 's4':
      out.push((n[0] >>> 24) & 0xff, (n[0] >> 16) & 0xff, (n[0] >> 8) & 0xff, n[0] & 0xff);
      break;
    case 'b1':
      out.push({ to: String(args[0]), size: 1, back: 1 });
      break;
    case 'b2':
      out.push({ to: String(args[0]), size: 2, back: 1 });
      break;
    case 'inc':
      out.push(n[0] & 0xff, n[1] & 0xff);
      break;
    case 'inc_w':
      out.push(n[0] & 0xff, (n[1] >> 8) & 0xff, n[1] & 0xff);
      break;
    case 'iface':
      out.push(n[0] & 0xff, (n[1] >> 8) & 0xff, n[1] & 0xff, n[2] & 0xff);
      break;
    case 'cast':
      out.push(n[0] & 0xff, (n[1] >> 8) & 0xff, n[1] & 0xff);
      break;
    default:
      throw new Error(`use the switch helpers for ${mnemonic}`);
  }
  return out;
}

const s2 = (v: number): number[] => [(v >> 8) & 0xff, v & 0xff];
const s4 = (v: number): number[] => [(v >>> 24) & 0xff, (v >> 16) & 0xff, (v >> 8) & 0xff, v & 0xff];

/** stableswitch / itableswitch with a default label and one label per key low..high. */
export function tableswitch(int: boolean, def: string, low: number, labels: string[]): Item[] {
  const out: Item[] = [op(int ? 'itableswitch' : 'stableswitch'), { to: def, size: 2, back: 1 }];
  const high = low + labels.length - 1;
  out.push(...(int ? [...s4(low), ...s4(high)] : [...s2(low), ...s2(high)]));
  const head = int ? 11 : 7;
  labels.forEach((l, i) => out.push({ to: l, size: 2, back: head + 2 * i }));
  return out;
}

/** slookupswitch / ilookupswitch with (match, label) pairs. */
export function lookupswitch(int: boolean, def: string, pairs: [number, string][]): Item[] {
  const out: Item[] = [op(int ? 'ilookupswitch' : 'slookupswitch'), { to: def, size: 2, back: 1 }, ...s2(pairs.length)];
  let at = 5;
  for (const [m, l] of pairs) {
    out.push(...(int ? s4(m) : s2(m)));
    at += int ? 4 : 2;
    out.push({ to: l, size: 2, back: at });
    at += 2;
  }
  return out;
}

export interface TMethod {
  name: string;
  /** Argument words including `this`. */
  nargs: number;
  maxLocals?: number;
  maxStack?: number;
  abstract?: boolean;
  code: Item[];
  /** Handlers: protected range [from, to), handler label, constant pool index of the caught class (0 = any). */
  handlers?: { from: string; to: string; handler: string; catchType: number }[];
}

export interface TClass {
  /** Class offset in the Class component (any distinct number; the linker uses it as the key). */
  offset: number;
  interface?: boolean;
  flags?: number;
  superclass?: CapClassRef;
  superInterfaces?: CapClassRef[];
  fields?: number;
  firstReferenceToken?: number;
  referenceCount?: number;
  publicBase?: number;
  /** Method names (or null for inherited) for public tokens publicBase… */
  publicMethods?: (string | null)[];
  packageBase?: number;
  packageMethods?: (string | null)[];
  interfaces?: { iface: CapClassRef; indexes: number[] }[];
}

export interface TPackage {
  aid: string;
  name?: string;
  version?: [number, number];
  /** ACC_INT (default on). */
  int?: boolean;
  imports?: CapPackageRef[];
  cp?: CpEntry[];
  classes?: TClass[];
  methods: TMethod[];
  applets?: { aid: string; install: string }[];
  statics?: { imageSize: number; referenceCount?: number; arrayInits?: { type: number; values: number[] }[]; defaultValueCount?: number; nonDefault?: number[] };
  exports?: { classOffset: number; staticFields?: number[]; staticMethods?: string[] }[];
}

export interface Built {
  cap: CapPackage;
  /** Method name → offset in the Method component info. */
  offsets: Map<string, number>;
}

/** Assembles the methods (2-byte headers) and builds the CapPackage. */
export function buildPackage(p: TPackage): Built {
  const handlerCount = p.methods.reduce((n, m) => n + (m.handlers?.length ?? 0), 0);
  const headerBytes = 1 + 8 * handlerCount;
  const bytes: number[] = [];
  const offsets = new Map<string, number>();
  const labels = new Map<string, number>();
  const fixups: { at: number; opAt: number; to: string; size: 1 | 2; method: string }[] = [];
  for (const m of p.methods) {
    const off = headerBytes + bytes.length;
    offsets.set(m.name, off);
    const flags = m.abstract ? 0x4 : 0;
    const maxStack = m.maxStack ?? 8;
    const maxLocals = m.maxLocals ?? 0;
    if (maxStack > 15 || m.nargs > 15 || maxLocals > 15) {
      bytes.push(((flags | 0x8) << 4) & 0xff, maxStack, m.nargs, maxLocals);
    } else bytes.push((flags << 4) | maxStack, (m.nargs << 4) | maxLocals);
    for (const item of m.code) {
      if (typeof item === 'number') bytes.push(item & 0xff);
      else if (typeof item === 'string') {
        if (!item.startsWith('L:')) throw new Error(`bad item ${item}`);
        labels.set(`${m.name}/${item.slice(2)}`, headerBytes + bytes.length);
      } else {
        const at = headerBytes + bytes.length;
        fixups.push({ at, opAt: at - item.back, to: item.to, size: item.size, method: m.name });
        for (let i = 0; i < item.size; i++) bytes.push(0);
      }
    }
  }
  const info = new Uint8Array(headerBytes + bytes.length);
  info.set(bytes, headerBytes);
  const label = (method: string, l: string): number => {
    const v = labels.get(`${method}/${l}`);
    if (v === undefined) throw new Error(`no label ${l} in ${method}`);
    return v;
  };
  for (const f of fixups) {
    const rel = label(f.method, f.to) - f.opAt;
    if (f.size === 1) {
      if (rel < -128 || rel > 127) throw new Error(`branch to ${f.to} out of range`);
      info[f.at] = rel & 0xff;
    } else {
      info[f.at] = (rel >> 8) & 0xff;
      info[f.at + 1] = rel & 0xff;
    }
  }
  const handlers: CapExceptionHandler[] = [];
  for (const m of p.methods)
    for (const h of m.handlers ?? []) {
      const start = label(m.name, h.from);
      handlers.push({ startOffset: start, activeLength: label(m.name, h.to) - start, stop: false, handlerOffset: label(m.name, h.handler), catchTypeIndex: h.catchType });
    }
  info[0] = handlers.length;
  handlers.forEach((h, i) => {
    const o = 1 + 8 * i;
    info.set([h.startOffset >> 8, h.startOffset & 0xff, (h.activeLength >> 8) & 0xff, h.activeLength & 0xff, h.handlerOffset >> 8, h.handlerOffset & 0xff, h.catchTypeIndex >> 8, h.catchTypeIndex & 0xff], o);
  });
  const mo = (name: string | null): number => (name === null ? 0xffff : (offsets.get(name) ?? fail(`no method ${name}`)));
  const classes: CapClassEntry[] = (p.classes ?? []).map((c) =>
    c.interface
      ? { kind: 'interface', offset: c.offset, flags: 0x8 | (c.flags ?? 0), superInterfaces: c.superInterfaces ?? [] }
      : {
          kind: 'class',
          offset: c.offset,
          flags: c.flags ?? 0,
          superclass: c.superclass ?? { internal: false, pkg: 0, classToken: 0 },
          declaredInstanceSize: c.fields ?? 0,
          firstReferenceToken: c.firstReferenceToken ?? 0xff,
          referenceCount: c.referenceCount ?? 0,
          publicMethodTableBase: c.publicBase ?? 0,
          publicMethodTableCount: c.publicMethods?.length ?? 0,
          packageMethodTableBase: c.packageBase ?? 0,
          packageMethodTableCount: c.packageMethods?.length ?? 0,
          publicVirtualMethodTable: (c.publicMethods ?? []).map(mo),
          packageVirtualMethodTable: (c.packageMethods ?? []).map(mo),
          interfaces: c.interfaces ?? [],
        },
  );
  const st = p.statics ?? { imageSize: 0 };
  const cap: CapPackage = {
    formatMajor: 2,
    formatMinor: 1,
    flags: (p.int === false ? 0 : 0x01) | (p.applets?.length ? 0x04 : 0) | (p.exports ? 0x02 : 0),
    package: { aid: fromHex(p.aid), major: p.version?.[0] ?? 1, minor: p.version?.[1] ?? 0, name: p.name },
    applets: (p.applets ?? []).map((a) => ({ aid: fromHex(a.aid), installMethodOffset: mo(a.install) })),
    imports: p.imports ?? [LANG, FRAMEWORK],
    // Every method also gets a static method reference after the test's own entries, so tests can reach it by name.
    constantPool: [...(p.cp ?? []), ...p.methods.filter((m) => !m.abstract).map((m): CpEntry => ({ tag: 6, kind: 'staticMethod', ref: { internal: true, offset: mo(m.name) } }))],
    classes,
    method: { handlers, info },
    staticField: {
      imageSize: st.imageSize,
      referenceCount: st.referenceCount ?? 0,
      arrayInits: (st.arrayInits ?? []).map((a) => ({ type: a.type, values: Uint8Array.from(a.values) })),
      defaultValueCount: st.defaultValueCount ?? 0,
      nonDefaultValues: Uint8Array.from(st.nonDefault ?? []),
    },
    refLocation: { byteIndex: [], byte2Index: [] },
    ...(p.exports
      ? { exports: p.exports.map((e) => ({ classOffset: e.classOffset, staticFieldOffsets: e.staticFields ?? [], staticMethodOffsets: (e.staticMethods ?? []).map(mo) })) }
      : {}),
  };
  return { cap, offsets };
}

function fail(what: string): never {
  throw new Error(what);
}

/** A VM over an in-memory store: link packages into it and run their methods. */
export interface TestVm {
  vm: ChipVm;
  api: ApiRegistry;
  store: ChipStore;
  units: Map<string, LinkUnit>;
  link(built: Built | CapPackage, context?: number): LinkUnit;
  method(unit: LinkUnit, built: Built, name: string): LinkedMethod;
  run(unit: LinkUnit, built: Built, name: string, args?: number[], context?: number): number;
  registered: { ref: number; aid: Uint8Array | null }[];
}

export function testVm(opts: { natives?: NativeClassImpl[]; stackWords?: number; maxFrames?: number; maxBytecodes?: number } = {}): TestVm {
  const store = openMemoryStore();
  const api = buildApiRegistry(opts.natives ?? defaultNatives());
  const units = new Map<string, LinkUnit>();
  const classes = new Map<string, LinkedClass>();
  for (const c of api.classes.values()) classes.set(c.key, c);
  const registered: { ref: number; aid: Uint8Array | null }[] = [];
  const services: JcreServices = {
    registerApplet: (ref, aid) => void registered.push({ ref, aid }),
    aidObject: () => NULL,
    shareable: () => NULL,
    isAppletActive: () => false,
    appletInfo: () => undefined,
    setAppletLifeCycle: () => false,
    cardLifeCycle: () => 0x0f,
    setCardLifeCycle: () => false,
    secureChannel: () => {
      throw new Error('no secure channel in tests');
    },
    random: (n) => new Uint8Array(n),
  };
  const jcre: JcreState = {
    apduBuffer: NULL, apduObject: NULL, command: new Uint8Array(0), state: 0, lc: 0, received: 0, le: 0, outgoingLength: 0,
    sent: 0, response: [], selecting: false, channel: 0, selectedApplet: '', extended: false, activeApplets: new Set(),
  };
  const vm = createVm({
    store,
    sizes: { persistentBytes: 100_000, transientResetBytes: 4096, transientDeselectBytes: 4096, commitCapacity: 1024 },
    meter: createMeter(DEFAULT_CYCLE_PROFILE),
    api,
    resolveClass: (k) => classes.get(k),
    services,
    jcre,
    appletOfContext: () => null,
    stackWords: opts.stackWords,
    maxFrames: opts.maxFrames,
    maxBytecodes: opts.maxBytecodes,
  });
  const t: TestVm = {
    vm,
    api,
    store,
    units,
    registered,
    link(built, context = 1) {
      const cap = 'cap' in built ? built.cap : built;
      const unit = linkPackage(cap, { context, api, resolve: (aid) => api.units.get(aid) ?? units.get(aid) });
      units.set(unit.pkg.aid, unit);
      for (const c of unit.pkg.classesByOffset.values()) classes.set(c.key, c);
      vm.heap.attachStatics(unit.pkg);
      initStaticArrays(vm, unit);
      return unit;
    },
    method(unit, built, name) {
      const off = built.offsets.get(name);
      if (off === undefined) throw new Error(`no method ${name}`);
      for (const e of unit.pkg.cp) if (e.kind === 'staticMethod' && e.method.pkg === unit.pkg && e.method.offset === off) return e.method;
      for (const m of unit.applets.values()) if (m.offset === off) return m;
      for (const c of unit.pkg.classesByOffset.values()) for (const m of [...c.publicVirtuals, ...c.packageVirtuals]) if (m?.offset === off) return m;
      for (const list of unit.staticMethods.values()) for (const m of list) if (m?.offset === off) return m;
      throw new Error(`method ${name} is not reachable from the constant pool, applets, classes or exports`);
    },
    run(unit, built, name, args = [], context = 1) {
      return vm.invokeIn(context, t.method(unit, built, name), args);
    },
  };
  return t;
}
