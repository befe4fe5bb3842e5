// The native API as linked packages: classes, method tables and interface tables built from the export tokens
// (api-tokens.ts), with each method bound to its NativeClassImpl by "Java.class.Name" + "name(descriptor)".
// CAP files link against these exactly as against a loaded library package (JCVM 3.0.5 §4.3, §4.5).
import type { LinkedClass, LinkedMethod, LinkedPackage, NativeClassImpl, NativeMethod } from '../types.ts';
import { JCRE_CONTEXT } from '../types.ts';
import { API_PACKAGES } from './api-tokens.ts';
import type { ApiClassSpec, ApiMethodSpec } from './api-tokens.ts';
import type { LinkUnit } from '../linker.ts';

const ACC_INTERFACE = 0x0200;
const ACC_SHAREABLE = 0x0800;
const M_ABSTRACT = 0x400;
/** LinkedMethod.flags of an abstract method (the CAP method header's ACC_ABSTRACT, JCVM §6.9). */
export const METHOD_ABSTRACT = 0x4;

/** The API on this chip: packages by AID, classes by Java name, and where each virtual/interface method sits. */
export interface ApiRegistry {
  readonly units: ReadonlyMap<string, LinkUnit>;
  readonly classes: ReadonlyMap<string, LinkedClass>;
  /** "javacard.framework.Applet.process(Ljavacard/framework/APDU;)V" → the class declaring the token and the token. */
  readonly virtuals: ReadonlyMap<string, { cls: LinkedClass; token: number; iface: boolean }>;
  /** Static methods (and constructors) by full name. */
  readonly statics: ReadonlyMap<string, LinkedMethod>;
  /** API methods that have no native implementation (linking a reference to one is refused). */
  readonly missing: ReadonlySet<string>;
}

/** Words taken by the arguments of a method descriptor (int = 2, everything else 1), JCVM §3.1. */
export function argWords(descriptor: string): number {
  let n = 0;
  let i = 1;
  while (i < descriptor.length && descriptor[i] !== ')') {
    const c = descriptor[i];
    if (c === '[') {
      while (descriptor[i] === '[') i++;
      if (descriptor[i] === 'L') i = descriptor.indexOf(';', i);
      n += 1;
    } else if (c === 'L') {
      i = descriptor.indexOf(';', i);
      n += 1;
    } else n += c === 'I' ? 2 : 1;
    i++;
  }
  return n;
}

export function returnKind(descriptor: string): LinkedMethod['returns'] {
  const r = descriptor.slice(descriptor.indexOf(')') + 1);
  if (r === 'V') return 'V';
  if (r === 'I') return 'I';
  if (r[0] === 'L' || r[0] === '[') return 'R';
  return 'W';
}

interface MutableClass {
  pkg: LinkedPackage;
  key: string;
  name: string;
  native?: NativeClassImpl;
  isInterface: boolean;
  isShareable: boolean;
  superclass: LinkedClass | null;
  interfaces: LinkedClass[];
  instanceCells: number;
  publicVirtuals: (LinkedMethod | undefined)[];
  packageVirtuals: (LinkedMethod | undefined)[];
  interfaceMethods: Map<LinkedClass, (LinkedMethod | undefined)[]>;
  firstCell: number;
  referenceCells: number[];
}

function nativePackage(name: string, aid: string, major: number, minor: number): LinkedPackage & { classesByToken: Map<number, LinkedClass> } {
  return {
    aid,
    major,
    minor,
    name,
    context: JCRE_CONTEXT,
    native: true,
    code: new Uint8Array(0),
    handlers: [],
    statics: new Int32Array(0),
    cp: [],
    classesByOffset: new Map(),
    classesByToken: new Map(),
  };
}

/**
 * Builds the API from the token tables and the native implementations. Hidden implementation classes (a name outside
 * the API) become classes of a hidden package, with their `extends` superclass and `implements` interfaces.
 */
export function buildApiRegistry(impls: readonly NativeClassImpl[]): ApiRegistry {
  const implByName = new Map<string, NativeClassImpl>();
  for (const impl of impls) implByName.set(impl.name, impl);
  const specs = new Map<string, ApiClassSpec>();
  for (const p of API_PACKAGES) for (const c of p.classes) specs.set(c.name, c);
  const classes = new Map<string, MutableClass>();
  const units = new Map<string, LinkUnit>();
  const virtuals = new Map<string, { cls: LinkedClass; token: number; iface: boolean }>();
  const statics = new Map<string, LinkedMethod>();
  const missing = new Set<string>();

  /** The implementation of name(desc) for class `cls`: its own native class first, then up the superclass chain. */
  const findImpl = (cls: MutableClass | LinkedClass | null, sig: string): NativeMethod | undefined => {
    for (let c = cls; c; c = c.superclass) {
      const m = c.native?.methods[sig];
      if (m) return m;
    }
    return undefined;
  };

  const method = (pkg: LinkedPackage, owner: string, m: ApiMethodSpec, impl: NativeMethod | undefined): LinkedMethod => {
    const [name, desc, , kind, flags] = m;
    const hasThis = kind !== 's' || name === '<init>';
    const full = `${owner}.${name}${desc}`;
    let native = impl;
    // Object.<init> and the empty constructors of API classes do nothing observable: a no-op when not implemented.
    if (!native && name === '<init>' && desc === '()V') native = () => undefined;
    if (!native && !(flags & M_ABSTRACT)) missing.add(full);
    return {
      pkg,
      offset: -1,
      flags: !native && flags & M_ABSTRACT ? METHOD_ABSTRACT : 0,
      maxStack: 0,
      nargs: argWords(desc) + (hasThis ? 1 : 0),
      maxLocals: 0,
      codeStart: 0,
      native,
      returns: returnKind(desc),
      name: full,
    };
  };

  // Classes in dependency order: a class after its superclass and interfaces.
  const building = new Set<string>();
  const build = (name: string, pkg: LinkedPackage & { classesByToken: Map<number, LinkedClass> }): MutableClass => {
    const done = classes.get(name);
    if (done) return done;
    if (building.has(name)) throw new Error(`API class cycle at ${name}`);
    building.add(name);
    const spec = specs.get(name);
    const impl = implByName.get(name);
    const superName = spec ? spec.super : (impl?.extends ?? 'java.lang.Object');
    const ifaceNames = spec ? spec.interfaces : (impl?.implements ?? []);
    const superclass = superName ? build(superName, pkgOf(superName)) : null;
    const direct = ifaceNames.map((n) => build(n, pkgOf(n)));
    const all = new Set<MutableClass>();
    for (const i of direct) {
      all.add(i);
      for (const s of i.interfaces) all.add(s as MutableClass);
    }
    if (superclass) for (const s of superclass.interfaces) all.add(s as MutableClass);
    const isInterface = spec ? (spec.flags & ACC_INTERFACE) !== 0 : false;
    const c: MutableClass = {
      pkg,
      key: name,
      name,
      native: impl,
      isInterface,
      isShareable: (spec ? (spec.flags & ACC_SHAREABLE) !== 0 : false) || [...all].some((i) => i.name === 'javacard.framework.Shareable'),
      superclass: superclass as LinkedClass | null,
      interfaces: [...all] as LinkedClass[],
      instanceCells: 0,
      publicVirtuals: superclass ? [...superclass.publicVirtuals] : [],
      packageVirtuals: [],
      interfaceMethods: new Map(),
      firstCell: 0,
      referenceCells: [],
    };
    classes.set(name, c);
    if (spec) {
      pkg.classesByToken.set(spec.token, c as LinkedClass);
      for (const m of spec.methods) {
        const [mname, desc, token, kind] = m;
        const sig = `${mname}${desc}`;
        if (kind === 'v') {
          // Inherited and not reimplemented by this class's natives: the superclass's method itself.
          const inherited = superclass?.publicVirtuals[token];
          if (!inherited || impl?.methods[sig] || !inherited.name.endsWith(`.${sig}`)) c.publicVirtuals[token] = method(pkg, name, m, findImpl(c, sig));
          virtuals.set(`${name}.${sig}`, { cls: c as LinkedClass, token, iface: false });
        } else if (kind === 'i') {
          virtuals.set(`${name}.${sig}`, { cls: c as LinkedClass, token, iface: true });
        } else {
          statics.set(`${name}.${sig}`, method(pkg, name, m, impl?.methods[sig]));
        }
      }
    } else if (impl) {
      // A hidden class overrides the virtual methods of its API superclass by name.
      for (let t = 0; t < c.publicVirtuals.length; t++) {
        const inherited = c.publicVirtuals[t];
        if (!inherited) continue;
        const sig = inherited.name.slice(inherited.name.lastIndexOf('.', inherited.name.indexOf('(')) + 1);
        const own = impl.methods[sig];
        if (own) c.publicVirtuals[t] = { ...inherited, native: own, flags: 0, name: `${name}.${sig}` };
      }
    }
    // Interface tables of a class: every interface method bound by name to this class's implementation.
    if (!isInterface) {
      for (const iface of c.interfaces) {
        const ispec = specs.get(iface.name);
        if (!ispec) continue;
        const table: (LinkedMethod | undefined)[] = [];
        for (const m of ispec.methods) {
          if (m[3] !== 'i') continue;
          const sig = `${m[0]}${m[1]}`;
          table[m[2]] = method(pkg, name, m, findImpl(c, sig));
        }
        c.interfaceMethods.set(iface, table);
      }
    }
    building.delete(name);
    return c;
  };

  const hidden = nativePackage('(hidden native classes)', '', 1, 0);
  const pkgByName = new Map<string, LinkedPackage & { classesByToken: Map<number, LinkedClass> }>();
  for (const p of API_PACKAGES) pkgByName.set(p.name, nativePackage(p.name, p.aid, p.major, p.minor));
  function pkgOf(className: string): LinkedPackage & { classesByToken: Map<number, LinkedClass> } {
    if (!specs.has(className)) {
      if (!implByName.has(className)) throw new Error(`native class ${className} extends or implements unknown ${className}`);
      return hidden;
    }
    return pkgByName.get(className.slice(0, className.lastIndexOf('.')))!;
  }

  for (const p of API_PACKAGES) for (const c of p.classes) build(c.name, pkgByName.get(p.name)!);
  for (const impl of impls) if (!specs.has(impl.name)) build(impl.name, hidden);

  for (const p of API_PACKAGES) {
    const pkg = pkgByName.get(p.name)!;
    const staticMethods = new Map<number, LinkedMethod[]>();
    for (const c of p.classes) {
      const list: LinkedMethod[] = [];
      for (const m of c.methods) if (m[3] === 's') list[m[2]] = statics.get(`${c.name}.${m[0]}${m[1]}`)!;
      staticMethods.set(c.token, list);
    }
    units.set(p.aid, { pkg, applets: new Map(), staticMethods, staticFieldCells: new Map(), library: true });
  }
  return { units, classes: classes as Map<string, LinkedClass>, virtuals, statics, missing };
}
