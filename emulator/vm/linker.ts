// The linker (JCVM 3.0.5 ch. 4 and 6): turns a parsed CAP package into the runtime model the interpreter executes —
// classes with superclass chains, virtual and interface method tables, instance cell layout, the resolved constant
// pool, the initial static field image and, for library packages, the exports later packages link against by token.
import type {
  CapClassEntry,
  CapClassRef,
  CapPackage,
  CapStaticRef,
  ContextId,
  LinkedClass,
  LinkedMethod,
  LinkedPackage,
  ResolvedCp,
} from './types.ts';
import { OPCODES, instructionLength } from './opcodes.ts';
import { hex } from '../bytes.ts';
import type { ApiRegistry } from './api/registry.ts';

/** A package as the card knows it after linking: the package, its applets, and its exports by token. */
export interface LinkUnit {
  readonly pkg: LinkedPackage;
  /** Applet AID (hex) → its static install(byte[],short,byte) method. */
  readonly applets: ReadonlyMap<string, LinkedMethod>;
  /** Export tables (JCVM §6.12, §4.3.7): class token → static methods / static field cells by token. */
  readonly staticMethods: ReadonlyMap<number, readonly (LinkedMethod | undefined)[]>;
  readonly staticFieldCells: ReadonlyMap<number, readonly number[]>;
  /** No applets: code runs in its caller's context (JCRE §6.1.1). */
  readonly library: boolean;
  /** Static field image: array_init arrays go into the first reference cells (2 × index); see initStaticArrays. */
  readonly arrayInits?: readonly { type: number; values: Uint8Array }[];
}

/** A package that cannot be linked; the message names the component, entry and token. */
export class LinkError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'LinkError';
  }
}

export interface LinkOptions {
  /** Firewall context of the new package's objects and statics. */
  context: ContextId;
  /** Packages already on the card (API and loaded), by AID in upper-case hex. */
  resolve(aid: string): LinkUnit | undefined;
  api: ApiRegistry;
}

const ACC_INT = 0x01;
const ACC_EXTENDED = 0x8;
const ACC_ABSTRACT = 0x4;
const CLS_SHAREABLE = 0x4;

/** Method header (JCVM §6.9.1): 2 bytes, or 4 with ACC_EXTENDED. */
export function readMethodHeader(info: Uint8Array, off: number): { flags: number; maxStack: number; nargs: number; maxLocals: number; size: number } {
  if (off < 0 || off + 2 > info.length) throw new LinkError(`Method component: method header at offset ${off} is outside the component (${info.length} bytes)`);
  const flags = info[off] >> 4;
  if (flags & ACC_EXTENDED) {
    if (off + 4 > info.length) throw new LinkError(`Method component: extended method header at offset ${off} is truncated`);
    return { flags, maxStack: info[off + 1], nargs: info[off + 2], maxLocals: info[off + 3], size: 4 };
  }
  return { flags, maxStack: info[off] & 0x0f, nargs: info[off + 1] >> 4, maxLocals: info[off + 1] & 0x0f, size: 2 };
}

/** Primitive type codes of the Descriptor component (JCVM §6.13). */
const TYPE_CODE: Record<number, 'b' | 's' | 'i'> = { 0x8002: 'b', 0x8003: 'b', 0x8004: 's', 0x8005: 'i' };

export function linkPackage(cap: CapPackage, opts: LinkOptions): LinkUnit {
  const aid = hex(cap.package.aid);
  const pkgName = cap.package.name || aid;
  const info = cap.method.info;
  const imports: LinkUnit[] = cap.imports.map((imp, i) => {
    const a = hex(imp.aid);
    const unit = opts.resolve(a);
    if (!unit) throw new LinkError(`Import component: package ${i} (${a} ${imp.major}.${imp.minor}) is not on the card`);
    // Binary compatibility (JCVM §4.5): same major version, minor at least the one the package was converted against.
    if (unit.pkg.major !== imp.major || unit.pkg.minor < imp.minor)
      throw new LinkError(`Import component: package ${a} ${imp.major}.${imp.minor} is incompatible with version ${unit.pkg.major}.${unit.pkg.minor} on the card`);
    return unit;
  });
  const importOf = (pkgIndex: number, where: string): LinkUnit => {
    const u = imports[pkgIndex];
    if (!u) throw new LinkError(`${where}: package token ${pkgIndex} is not in the Import component (${imports.length} imports)`);
    return u;
  };

  const classesByOffset = new Map<number, LinkedClass>();
  const classesByToken = new Map<number, LinkedClass>();
  const cp: ResolvedCp[] = [];
  const pkg: LinkedPackage = {
    aid,
    major: cap.package.major,
    minor: cap.package.minor,
    name: pkgName,
    context: opts.context,
    native: false,
    code: info,
    handlers: cap.method.handlers,
    statics: new Int32Array(cap.staticField.imageSize),
    // References come first in the image, 2 bytes each (JCVM §6.10).
    staticReferenceCells: 2 * cap.staticField.referenceCount,
    cp,
    classesByOffset,
    classesByToken,
  };

  // Descriptor (optional): return kinds of methods and types of fields, when present.
  const methodTypes = new Map<number, LinkedMethod['returns']>();
  const fieldTypes = new Map<string, 'a' | 'b' | 's' | 'i'>();
  const staticTypes = new Map<number, 'a' | 'b' | 's' | 'i'>();
  if (cap.descriptor) {
    const td = cap.descriptor.typeDescriptors;
    for (const c of cap.descriptor.classes) {
      for (const m of c.methods) {
        const r = descriptorReturn(td, m.typeOffset);
        if (r) methodTypes.set(m.methodOffset, r);
      }
      for (const f of c.fields) {
        const t = TYPE_CODE[f.type] ?? (f.type & 0x8000 ? undefined : 'a');
        if (!t) continue;
        if (f.field.static) {
          if (f.field.ref.internal) staticTypes.set(f.field.ref.offset, t);
        } else if (f.field.cls.internal) fieldTypes.set(`${f.field.cls.classOffset}:${f.field.token}`, t);
      }
    }
  }

  // Methods by offset, created once.
  const methods = new Map<number, LinkedMethod>();
  const methodAt = (off: number, where: string): LinkedMethod => {
    const have = methods.get(off);
    if (have) return have;
    let h;
    try {
      h = readMethodHeader(info, off);
    } catch (e) {
      throw new LinkError(`${where}: ${(e as Error).message}`);
    }
    const m: LinkedMethod = {
      pkg,
      offset: off,
      flags: h.flags,
      maxStack: h.maxStack,
      nargs: h.nargs,
      maxLocals: h.maxLocals,
      codeStart: off + h.size,
      returns: methodTypes.get(off) ?? 'V',
      name: `${pkgName}:${off}`,
    };
    methods.set(off, m);
    return m;
  };

  // Classes (JCVM §6.8): superclass first, then tables.
  const entries = new Map<number, CapClassEntry>();
  for (const e of cap.classes) entries.set(e.offset, e);
  const linking = new Set<number>();
  const classRef = (ref: CapClassRef, where: string): LinkedClass => {
    if (ref.internal) return internalClass(ref.classOffset, where);
    const unit = importOf(ref.pkg, where);
    const c = unit.pkg.classesByToken.get(ref.classToken);
    if (!c) throw new LinkError(`${where}: class token ${ref.classToken} does not exist in ${unit.pkg.name} (${unit.pkg.aid})`);
    return c;
  };
  const internalClass = (off: number, where: string): LinkedClass => {
    const done = classesByOffset.get(off);
    if (done) return done;
    const e = entries.get(off);
    if (!e) throw new LinkError(`${where}: no class or interface at Class component offset ${off}`);
    if (linking.has(off)) throw new LinkError(`Class component: class at offset ${off} is its own superclass or superinterface`);
    linking.add(off);
    const c = buildClass(e);
    linking.delete(off);
    classesByOffset.set(off, c);
    return c;
  };
  const buildClass = (e: CapClassEntry): LinkedClass => {
    const where = `Class component, ${e.kind} at offset ${e.offset}`;
    const key = `${aid}:${e.offset}`;
    const name = `${pkgName}.class@${e.offset}`;
    if (e.kind === 'interface') {
      const supers = e.superInterfaces.map((r, i) => classRef(r, `${where}, superinterface ${i}`));
      const all = new Set<LinkedClass>();
      for (const s of supers) {
        if (!s.isInterface) throw new LinkError(`${where}: superinterface ${s.name} is a class`);
        all.add(s);
        for (const t of s.interfaces) all.add(t);
      }
      return {
        pkg,
        key,
        name,
        isInterface: true,
        isShareable: (e.flags & CLS_SHAREABLE) !== 0 || [...all].some((s) => s.isShareable),
        superclass: null,
        interfaces: [...all],
        instanceCells: 0,
        publicVirtuals: [],
        packageVirtuals: [],
        interfaceMethods: new Map(),
        firstCell: 0,
        referenceCells: [],
      };
    }
    if (!e.superclass) throw new LinkError(`${where}: a class without superclass (only java.lang.Object has none)`);
    const sup = classRef(e.superclass, `${where}, superclass`);
    if (sup.isInterface) throw new LinkError(`${where}: superclass ${sup.name} is an interface`);
    const publicVirtuals = [...sup.publicVirtuals];
    const packageVirtuals = sup.pkg === pkg ? [...sup.packageVirtuals] : [];
    e.publicVirtualMethodTable.forEach((off, i) => {
      if (off !== 0xffff) publicVirtuals[e.publicMethodTableBase + i] = methodAt(off, `${where}, public method token ${e.publicMethodTableBase + i}`);
    });
    e.packageVirtualMethodTable.forEach((off, i) => {
      if (off !== 0xffff) packageVirtuals[e.packageMethodTableBase + i] = methodAt(off, `${where}, package method token ${e.packageMethodTableBase + i}`);
    });
    for (let t = 0; t < publicVirtuals.length; t++)
      if (!publicVirtuals[t] && t < e.publicMethodTableBase + e.publicVirtualMethodTable.length)
        throw new LinkError(`${where}: public virtual method token ${t} has no method in the class or its superclasses`);
    const interfaces = new Set<LinkedClass>(sup.interfaces);
    // Interfaces inherited from the superclass dispatch through this class's method table, so that an override here
    // replaces the superclass's method (a class_info need not repeat its superclasses' interfaces, JCVM §6.8.2).
    const interfaceMethods = new Map<LinkedClass, (LinkedMethod | undefined)[]>();
    for (const [iface, methods] of sup.interfaceMethods) {
      interfaceMethods.set(iface, methods.map((m) => {
        const t = m ? sup.publicVirtuals.indexOf(m) : -1;
        return t >= 0 ? publicVirtuals[t] : m;
      }));
    }
    e.interfaces.forEach((impl, i) => {
      const iface = classRef(impl.iface, `${where}, interface ${i}`);
      if (!iface.isInterface) throw new LinkError(`${where}: interface ${i} (${iface.name}) is a class`);
      interfaces.add(iface);
      for (const s of iface.interfaces) interfaces.add(s);
      interfaceMethods.set(
        iface,
        impl.indexes.map((token, j) => {
          const m = publicVirtuals[token];
          if (!m) throw new LinkError(`${where}: method ${j} of interface ${iface.name} maps to public token ${token}, which has no method`);
          return m;
        }),
      );
    });
    const firstCell = sup.instanceCells;
    const refs = [...sup.referenceCells];
    if (e.firstReferenceToken !== 0xff) for (let k = 0; k < e.referenceCount; k++) refs.push(firstCell + e.firstReferenceToken + k);
    return {
      pkg,
      key,
      name,
      isInterface: false,
      isShareable: (e.flags & CLS_SHAREABLE) !== 0 || [...interfaces].some((s) => s.isShareable),
      superclass: sup,
      interfaces: [...interfaces],
      instanceCells: firstCell + e.declaredInstanceSize,
      publicVirtuals,
      packageVirtuals,
      interfaceMethods,
      firstCell,
      referenceCells: refs,
    };
  };
  for (const e of cap.classes) internalClass(e.offset, 'Class component');

  // Exports (JCVM §6.12): class tokens are the indexes of class_exports.
  const staticMethods = new Map<number, (LinkedMethod | undefined)[]>();
  const staticFieldCells = new Map<number, number[]>();
  (cap.exports ?? []).forEach((x, token) => {
    const c = internalClass(x.classOffset, `Export component, class ${token}`);
    classesByToken.set(token, c);
    staticMethods.set(token, x.staticMethodOffsets.map((off, i) => methodAt(off, `Export component, class ${token} static method ${i}`)));
    staticFieldCells.set(token, x.staticFieldOffsets.slice());
  });

  // The constant pool (JCVM §6.7), resolved once.
  const imageSize = cap.staticField.imageSize;
  const staticRef = (ref: CapStaticRef, where: string): { unit: LinkUnit | null; value: number } => {
    if (ref.internal) return { unit: null, value: ref.offset };
    const unit = importOf(ref.pkg, where);
    if (!unit.pkg.classesByToken.has(ref.classToken))
      throw new LinkError(`${where}: class token ${ref.classToken} does not exist in ${unit.pkg.name} (${unit.pkg.aid})`);
    return { unit, value: -1 };
  };
  cap.constantPool.forEach((e, i) => {
    const where = `ConstantPool component, entry ${i}`;
    switch (e.kind) {
      case 'class':
        cp[i] = { kind: 'class', cls: classRef(e.ref, where) };
        break;
      case 'instanceField': {
        const cls = classRef(e.cls, where);
        if (cls.isInterface) throw new LinkError(`${where}: instance field of interface ${cls.name}`);
        const decl = cls.instanceCells - cls.firstCell;
        if (cls.pkg.native || e.token >= decl)
          throw new LinkError(`${where}: instance field token ${e.token} does not exist in ${cls.name} (${decl} cells declared)`);
        const type = e.cls.internal ? (fieldTypes.get(`${e.cls.classOffset}:${e.token}`) ?? '?') : '?';
        cp[i] = { kind: 'instanceField', cls, cell: cls.firstCell + e.token, type };
        break;
      }
      case 'virtualMethod': {
        const cls = classRef(e.cls, where);
        const isPublic = (e.token & 0x80) === 0;
        const token = e.token & 0x7f;
        const m = (isPublic ? cls.publicVirtuals : cls.packageVirtuals)[token];
        if (!m && !cls.isInterface) throw new LinkError(`${where}: ${isPublic ? 'public' : 'package'} virtual method token ${token} does not exist in ${cls.name}`);
        if (m && m.pkg.native && !m.native && !(m.flags & ACC_ABSTRACT))
          throw new LinkError(`${where}: API method ${m.name} has no native implementation on this card`);
        cp[i] = { kind: 'virtualMethod', cls, token, isPublic };
        break;
      }
      case 'superMethod': {
        const cls = classRef(e.cls, where);
        const isPublic = (e.token & 0x80) === 0;
        const token = e.token & 0x7f;
        const sup = cls.superclass;
        const m = sup ? (isPublic ? sup.publicVirtuals : sup.pkg === cls.pkg ? sup.packageVirtuals : [])[token] : undefined;
        if (!m) throw new LinkError(`${where}: super method token ${token} does not exist above ${cls.name}`);
        if (m.pkg.native && !m.native) throw new LinkError(`${where}: API method ${m.name} has no native implementation on this card`);
        cp[i] = { kind: 'superMethod', cls, method: m };
        break;
      }
      case 'staticField': {
        const r = staticRef(e.ref, where);
        if (!r.unit) {
          if (r.value >= imageSize) throw new LinkError(`${where}: static field offset ${r.value} is beyond the static field image (${imageSize} bytes)`);
          cp[i] = { kind: 'staticField', pkg, cell: r.value };
        } else {
          const ref = e.ref as Extract<CapStaticRef, { internal: false }>;
          const cell = r.unit.staticFieldCells.get(ref.classToken)?.[ref.token];
          if (cell === undefined)
            throw new LinkError(`${where}: static field token ${ref.token} of class token ${ref.classToken} does not exist in ${r.unit.pkg.name} (${r.unit.pkg.aid})`);
          cp[i] = { kind: 'staticField', pkg: r.unit.pkg, cell };
        }
        break;
      }
      case 'staticMethod': {
        const r = staticRef(e.ref, where);
        let m: LinkedMethod | undefined;
        if (!r.unit) m = methodAt(r.value, where);
        else {
          const ref = e.ref as Extract<CapStaticRef, { internal: false }>;
          m = r.unit.staticMethods.get(ref.classToken)?.[ref.token];
          if (!m)
            throw new LinkError(`${where}: static method token ${ref.token} of class token ${ref.classToken} does not exist in ${r.unit.pkg.name} (${r.unit.pkg.aid})`);
          if (m.pkg.native && !m.native) throw new LinkError(`${where}: API method ${m.name} has no native implementation on this card`);
        }
        cp[i] = { kind: 'staticMethod', method: m };
        break;
      }
    }
  });

  const applets = new Map<string, LinkedMethod>();
  for (const a of cap.applets) applets.set(hex(a.aid), methodAt(a.installMethodOffset, `Applet component, applet ${hex(a.aid)}`));
  for (const c of cap.descriptor?.classes ?? []) for (const m of c.methods) if (!(m.flags & 0x40)) methodAt(m.methodOffset, 'Descriptor component');

  scanCode(cap, methods, staticTypes, pkgName);
  fillStaticImage(cap, pkg.statics, staticTypes);
  return { pkg, applets, staticMethods, staticFieldCells, library: cap.applets.length === 0, arrayInits: cap.staticField.arrayInits };
}

/** Return kind of a Descriptor type descriptor (JCVM §6.13): nibbles, parameters then the return type; a reference
 *  type (6) or reference array (0xE) is followed by a 4-nibble class reference. */
function descriptorReturn(td: Uint8Array, off: number): LinkedMethod['returns'] | undefined {
  if (off === 0xffff || off >= td.length) return undefined;
  const n = td[off];
  const nib = (k: number) => (td[off + 1 + (k >> 1)] >> (k & 1 ? 0 : 4)) & 0xf;
  let k = 0;
  let last = 0;
  while (k < n) {
    last = nib(k++);
    if (last === 6 || last === 14) k += 4;
  }
  if (last === 1) return 'V';
  if (last === 5) return 'I';
  if (last === 6 || last >= 10) return 'R';
  return last >= 2 && last <= 4 ? 'W' : undefined;
}

/**
 * Walks every known method's bytecode: refuses int instructions in a package without ACC_INT (JCVM §6.4) and learns
 * the types of static fields from the instructions that access them (for the non-default value segment).
 */
function scanCode(cap: CapPackage, methods: Map<number, LinkedMethod>, staticTypes: Map<number, 'a' | 'b' | 's' | 'i'>, pkgName: string): void {
  const info = cap.method.info;
  const starts = [...methods.keys()].sort((a, b) => a - b);
  const hasInt = (cap.flags & ACC_INT) !== 0;
  for (let i = 0; i < starts.length; i++) {
    const m = methods.get(starts[i])!;
    if (m.flags & ACC_ABSTRACT) continue;
    const end = i + 1 < starts.length ? starts[i + 1] : info.length;
    let pc = m.codeStart;
    while (pc < end) {
      const op = OPCODES[info[pc]];
      const len = instructionLength(info, pc);
      if (!op || len < 0) break; // the verifier reports malformed code; the interpreter answers 6F00 if it is reached
      if (op.int && !hasInt)
        throw new LinkError(`Method component, method at offset ${m.offset}: ${op.mnemonic} at offset ${pc} needs the int option (ACC_INT) that package ${pkgName} does not declare`);
      if (op.code >= 0x7b && op.code <= 0x82) {
        const ref = cap.constantPool[(info[pc + 1] << 8) | info[pc + 2]];
        if (ref?.kind === 'staticField' && ref.ref.internal) staticTypes.set(ref.ref.offset, (['a', 'b', 's', 'i'] as const)[(op.code - 0x7b) & 3]);
      }
      pc += len;
    }
  }
}

/**
 * The initial static image (JCVM §6.10): references (array_init arrays first, set by initStaticArrays), default
 * primitives (zero), then the non-default primitives, decoded by field type. Cells are indexed by byte offset in the
 * image; an int occupies the cells of its first two bytes (high word, low word).
 */
function fillStaticImage(cap: CapPackage, statics: Int32Array, types: Map<number, 'a' | 'b' | 's' | 'i'>): void {
  const sf = cap.staticField;
  const start = sf.referenceCount * 2 + sf.defaultValueCount;
  const v = sf.nonDefaultValues;
  const s16 = (o: number) => ((v[o] << 8) | v[o + 1]) << 16 >> 16;
  let o = 0;
  while (o < v.length) {
    const t = types.get(start + o) ?? (o + 1 < v.length && !types.has(start + o + 1) ? 's' : 'b');
    if (t === 'b') {
      statics[start + o] = (v[o] << 24) >> 24;
      o += 1;
    } else if (t === 'i' && o + 3 < v.length) {
      statics[start + o] = s16(o);
      statics[start + o + 1] = s16(o + 2);
      o += 4;
    } else if (o + 1 < v.length) {
      statics[start + o] = s16(o);
      o += 2;
    } else o += 1;
  }
}

/** Element kind of an array_init entry (JCVM §6.10: 2 boolean, 3 byte, 4 short, 5 int) as ArrayKind. */
export function arrayInitKind(type: number): { kind: 10 | 11 | 12 | 13; size: number } | undefined {
  switch (type) {
    case 2:
      return { kind: 10, size: 1 };
    case 3:
      return { kind: 11, size: 1 };
    case 4:
      return { kind: 12, size: 2 };
    case 5:
      return { kind: 13, size: 4 };
  }
  return undefined;
}
