// jcasm: a small Java Card assembler (docs/jcasm.md). Source text → a complete CapPackage (Header, Directory, Applet,
// Import, ConstantPool, Class, Method, StaticField, RefLocation, Export, Descriptor), with tokens assigned by the
// JCVM 3.0.5 §4.3.7 rules and API references resolved against the Java Card 3.0.5 export tokens. It exists so that
// tests and sample applets can be written before a real converter; it does no type-level verification.
import { fromHex, hex } from '../../bytes.ts';
import { ACC_APPLET, ACC_EXPORT, ACC_INT } from '../../cap-reader.ts';
import { BY_MNEMONIC, OPERAND_BYTES } from '../opcodes.ts';
import type { CapClassEntry, CapClassRef, CapClassDescriptor, CapExceptionHandler, CapPackage, CpEntry } from '../types.ts';
import { apiPackages } from './api-table.ts';
import type { ExportedClass, ExportedField, ExportedMethod, ExportedPackage } from './api-table.ts';
import { AsmError, parseSource, splitMethodSig } from './asm-syntax.ts';
import type { AsmClass, AsmField, AsmInsn, AsmMethod, AsmModule } from './asm-syntax.ts';
export type { AsmCatch, AsmClass, AsmInit, AsmField, AsmInsn, AsmItem, AsmMethod, AsmModule } from './asm-syntax.ts';
import { byteBuilder } from './bin.ts';
import { encodeHandlers } from './write.ts';

export { AsmError } from './asm-syntax.ts';

/** What a later package needs to import an assembled library: the same shape as the API token table's packages. */
export type AssembledLibrary = ExportedPackage;

export interface AssembleOptions {
  /** Name used in error messages ("file:line: …"). */
  file?: string;
  /** Libraries assembled earlier that this package may import. */
  libraries?: AssembledLibrary[];
}

// ---------------------------------------------------------------------------------------------------------------
// Model of the package being assembled.

interface OwnMethod {
  src: AsmMethod;
  cls: OwnClass;
  key: string; // name + descriptor
  isStatic: boolean;
  isInit: boolean;
  isPrivate: boolean;
  isAbstract: boolean;
  isVirtual: boolean;
  /** Virtual token (public, or 0x80|n package), static method token, interface token; 0xFF when none. */
  token: number;
  nargs: number;
  offset: number;
  bytecodeCount: number;
  handlerIndex: number;
  handlerCount: number;
}

interface OwnField {
  src: AsmField;
  cls: OwnClass;
  isStatic: boolean;
  /** static final primitive with a value: inlined, never in the image (JCVM §6.10). */
  constant: boolean;
  token: number; // instance: cell index; static: static field token or 0xFF
  offset: number; // static image offset
  cells: number;
}

interface OwnClass {
  src: AsmClass;
  full: string; // slash form
  token: number;
  offset: number;
  superT?: ClassT;
  directIfaces: ClassT[];
  /** All interfaces this class/interface implements or extends, transitively (class_info/interface_info lists). */
  allIfaces: ClassT[];
  publicVirtuals: Map<string, number>;
  publicCount: number;
  packageVirtuals: Map<string, number>;
  packageCount: number;
  /** Interfaces: method tokens by key, superinterfaces' first. */
  ifaceTokens: Map<string, number>;
  methods: Map<string, OwnMethod>;
  methodList: OwnMethod[];
  fields: Map<string, OwnField>;
  instanceCells: number;
  firstRef: number;
  refCount: number;
  laidOut: 'no' | 'busy' | 'done';
}

type ClassT = { own: OwnClass } | { ext: ExportedClass; pkg: ExportedPackage };

const slash = (s: string) => s.replace(/\./g, '/');
const dotted = (s: string) => s.replace(/\//g, '.');
const PRIM_CODE: Record<string, number> = { Z: 0x8002, B: 0x8003, S: 0x8004, I: 0x8005 };
const ATYPE: Record<string, number> = { boolean: 10, byte: 11, short: 12, int: 13, Z: 10, B: 11, S: 12, I: 13 };

/** Argument words of a method descriptor (int = 2), JCVM §6.9.2 nargs without `this`. */
export function argWords(descriptor: string): number {
  const args = descriptor.slice(1, descriptor.indexOf(')'));
  let n = 0;
  for (let i = 0; i < args.length; i++) {
    const c = args[i];
    if (c === '[') continue;
    n += c === 'I' && args[i - 1] !== '[' ? 2 : 1;
    if (c === 'L') i = args.indexOf(';', i);
  }
  return n;
}

/** Splits a descriptor's types: "(BS[BLx/Y;)V" → ["B","S","[B","Lx/Y;","V"] (the return type last). */
function descriptorTypes(descriptor: string): string[] {
  const out: string[] = [];
  const re = /\[?(?:L[^;]+;|[ZBSIV])/g;
  const body = descriptor.startsWith('(') ? descriptor.slice(1).replace(')', '') : descriptor;
  for (const m of body.matchAll(re)) out.push(m[0]);
  return out;
}

export function assemble(source: string, opts: AssembleOptions = {}): { pkg: CapPackage; library?: AssembledLibrary } {
  const file = opts.file ?? '<jcasm>';
  const mod = parseSource(source, file);
  return new Assembler(mod, file, opts.libraries ?? []).run();
}

/**
 * Lays out an already-built package description (the tree parseSource makes from text): the class-file converter
 * (applet/converter/convert.ts) builds this tree from javac output and shares the token and layout machinery here.
 */
export function assembleModule(mod: AsmModule, opts: AssembleOptions = {}): { pkg: CapPackage; library?: AssembledLibrary } {
  return new Assembler(mod, opts.file ?? '<converter>', opts.libraries ?? []).run();
}

/** Encoded size in bytes of one instruction as emitInsn writes it (switches: by their operand count). */
export function asmInsnSize(insn: AsmInsn): number {
  const op = BY_MNEMONIC.get(insn.mnemonic);
  if (!op) throw new AsmError('<jcasm>', insn.line, `unknown instruction ${insn.mnemonic}`);
  const fixed = OPERAND_BYTES[op.operands];
  if (fixed >= 0) return 1 + fixed;
  const n = insn.args.length - (op.operands === 'sw_stable' || op.operands === 'sw_itable' ? 2 : 1);
  if (n < 0) throw new AsmError('<jcasm>', insn.line, `${insn.mnemonic} needs its default label${op.operands.endsWith('table') ? ' and low value' : ''}`);
  switch (op.operands) {
    case 'sw_stable': return 7 + 2 * n;
    case 'sw_itable': return 11 + 2 * n;
    case 'sw_slookup': return 5 + 4 * n;
    default: return 5 + 6 * n;
  }
}

/** Holds the state of one assembly (the name tables fill in as passes run). */
class Assembler {
  private readonly mod: AsmModule;
  private readonly file: string;
  private readonly packages = new Map<string, ExportedPackage>();
  private readonly extClasses = new Map<string, { ext: ExportedClass; pkg: ExportedPackage }>();
  private readonly own = new Map<string, OwnClass>();
  private readonly ordered: OwnClass[] = [];
  private readonly imports: ExportedPackage[] = [];
  private readonly cp: { key: string; entry: () => CpEntry; type?: string }[] = [];
  private readonly cpIndex = new Map<string, number>();
  private readonly byteIndex: number[] = [];
  private readonly byte2Index: number[] = [];
  private readonly handlers: (CapExceptionHandler & { end: number })[] = [];
  private readonly constBusy = new Set<string>();

  constructor(mod: AsmModule, file: string, libraries: AssembledLibrary[]) {
    this.mod = mod;
    this.file = file;
    for (const p of [...apiPackages(), ...libraries]) {
      this.packages.set(slash(p.name), p);
      for (const c of p.classes) this.extClasses.set(slash(c.name), { ext: c, pkg: p });
    }
  }

  private fail(line: number, what: string): never {
    throw new AsmError(this.file, line, what);
  }

  run(): { pkg: CapPackage; library?: AssembledLibrary } {
    const mod = this.mod;
    if (this.packages.has(mod.name)) this.fail(mod.line, `package ${dotted(mod.name)} is already defined (API or library)`);
    for (const imp of mod.imports) if (!this.packages.has(imp.name)) this.fail(imp.line, `.import ${dotted(imp.name)}: no such API or library package`);
    this.declareClasses();
    for (const c of this.own.values()) this.layoutClass(c);
    this.orderClasses();
    this.assignClassOffsets();
    const staticField = this.layoutStatics();
    const info = this.layoutMethods();
    const constantPool = this.cp.map((e) => e.entry());
    const classes = this.buildClasses();
    const applets = this.buildApplets();
    const exportsWanted = mod.library || this.ordered.some((c) => c.src.isInterface && c.token !== 0xff && this.isShareable({ own: c }));
    const descriptor = this.buildDescriptor(constantPool);
    const flags = (mod.int ? ACC_INT : 0) | (applets.length ? ACC_APPLET : 0) | (exportsWanted ? ACC_EXPORT : 0);
    const pkg: CapPackage = {
      formatMajor: mod.format[0],
      formatMinor: mod.format[1],
      flags,
      package: { aid: fromHex(mod.aid), major: mod.major, minor: mod.minor },
      applets,
      imports: this.imports.map((p) => ({ aid: fromHex(p.aid), major: p.major, minor: p.minor })),
      constantPool,
      classes,
      method: { handlers: this.handlers.map(({ end: _end, ...h }) => h), info },
      staticField,
      refLocation: { byteIndex: [...this.byteIndex].sort((a, b) => a - b), byte2Index: [...this.byte2Index].sort((a, b) => a - b) },
      descriptor,
    };
    if (mod.format[1] >= 2) pkg.package.name = dotted(mod.name);
    if (exportsWanted) {
      pkg.exports = this.buildExports();
      return { pkg, library: this.buildLibrary() };
    }
    return { pkg };
  }

  // ---------------------------------------------------------------------------------------------------------
  // Names

  private declareClasses(): void {
    let token = 0;
    for (const src of this.mod.classes) {
      if (this.own.has(src.name)) this.fail(src.line, `class ${src.name} is defined twice`);
      const c: OwnClass = {
        src, full: `${this.mod.name}/${src.name}`, token: src.flags.has('public') ? token++ : 0xff, offset: -1,
        directIfaces: [], allIfaces: [], publicVirtuals: new Map(), publicCount: 0, packageVirtuals: new Map(), packageCount: 0,
        ifaceTokens: new Map(), methods: new Map(), methodList: [], fields: new Map(), instanceCells: 0, firstRef: 0xff, refCount: 0,
        laidOut: 'no',
      };
      this.own.set(src.name, c);
    }
    for (const c of this.own.values()) {
      const src = c.src;
      if (!src.isInterface) {
        const sup = this.resolveClass(src.superName ?? 'java/lang/Object', src.line);
        if (this.isInterfaceT(sup)) this.fail(src.line, `${src.name} extends ${this.nameOf(sup)}, which is an interface`);
        if ('ext' in sup && sup.ext.flags.includes('final')) this.fail(src.line, `${src.name} extends the final class ${sup.ext.name}`);
        c.superT = sup;
      }
      for (const i of src.interfaces) {
        const t = this.resolveClass(i, src.line);
        if (!this.isInterfaceT(t)) this.fail(src.line, `${src.name} ${src.isInterface ? 'extends' : 'implements'} ${this.nameOf(t)}, which is not an interface`);
        c.directIfaces.push(t);
      }
      for (const m of src.methods) {
        const key = m.name + m.descriptor;
        if (c.methods.has(key)) this.fail(m.line, `method ${key} is defined twice in ${src.name}`);
        const isStatic = m.flags.has('static');
        const isInit = m.name === '<init>';
        if (isInit && isStatic) this.fail(m.line, 'a constructor cannot be static');
        if (isInit && !m.descriptor.endsWith(')V')) this.fail(m.line, 'a constructor returns V');
        if (m.flags.has('abstract') && !src.isInterface && !src.flags.has('abstract')) this.fail(m.line, `abstract method ${key} in the non-abstract class ${src.name}`);
        if (src.isInterface && (isStatic || isInit)) this.fail(m.line, 'interfaces declare only abstract instance methods');
        const om: OwnMethod = {
          src: m, cls: c, key, isStatic, isInit, isPrivate: m.flags.has('private'), isAbstract: m.flags.has('abstract'),
          isVirtual: !isStatic && !isInit && !m.flags.has('private'), token: 0xff,
          nargs: argWords(m.descriptor) + (isStatic ? 0 : 1), offset: 0, bytecodeCount: 0, handlerIndex: 0, handlerCount: 0,
        };
        if (om.isAbstract && (m.body.length || m.catches.length)) this.fail(m.line, `abstract method ${key} has a body`);
        if (!om.isAbstract && !m.body.some((b) => 'mnemonic' in b)) this.fail(m.line, `method ${key} has no instructions`);
        c.methods.set(key, om);
        c.methodList.push(om);
      }
      for (const f of src.fields) {
        if (c.fields.has(f.name)) this.fail(f.line, `field ${f.name} is defined twice in ${src.name}`);
        if (src.isInterface) this.fail(f.line, 'interfaces cannot declare fields here (use .const)');
        const isStatic = f.flags.has('static');
        const prim = /^[ZBSI]$/.test(f.descriptor);
        const constant = isStatic && f.flags.has('final') && prim && f.init !== undefined;
        if (f.descriptor.includes('I') && /^\[?I$/.test(f.descriptor) && !this.mod.int) this.fail(f.line, `int field ${f.name} needs .int (ACC_INT)`);
        if (f.init && !isStatic) this.fail(f.line, `instance field ${f.name} cannot have an initial value; set it in the constructor`);
        if (f.init && f.init.kind !== 'value' && !/^\[[ZBSI]$/.test(f.descriptor)) this.fail(f.line, `${f.name}: array initialisers need a boolean, byte, short or int array type`);
        if (f.init && f.init.kind === 'value' && !prim) this.fail(f.line, `${f.name}: a reference field's only initial value is an array initialiser`);
        c.fields.set(f.name, { src: f, cls: c, isStatic, constant, token: 0xff, offset: -1, cells: f.descriptor === 'I' ? 2 : 1 });
      }
    }
  }

  /** A class named in source: own simple name, own or API/library full name, or simple name from an .import package. */
  private resolveClass(nameIn: string, line: number): ClassT {
    let name = slash(nameIn);
    if (name.startsWith('L') && name.endsWith(';')) name = name.slice(1, -1);
    if (!name.includes('/')) {
      const own = this.own.get(name);
      if (own) return { own };
      const hits = [...this.mod.imports.map((i) => i.name), 'java/lang']
        .map((p) => this.extClasses.get(`${p}/${name}`))
        .filter((x): x is { ext: ExportedClass; pkg: ExportedPackage } => x !== undefined);
      const unique = [...new Set(hits)];
      if (unique.length === 1) return unique[0];
      if (unique.length > 1) this.fail(line, `class ${name} is ambiguous: ${unique.map((h) => h.ext.name).join(', ')}`);
      this.fail(line, `unknown class ${name} (not in this package${this.mod.imports.length ? ' nor in the .import packages' : '; add .import <package> or use the full name'})`);
    }
    const cut = name.lastIndexOf('/');
    if (name.slice(0, cut) === this.mod.name) {
      const own = this.own.get(name.slice(cut + 1));
      if (own) return { own };
      this.fail(line, `unknown class ${name.slice(cut + 1)} in this package`);
    }
    const ext = this.extClasses.get(name);
    if (ext) return ext;
    const pkgKnown = this.packages.has(name.slice(0, cut));
    this.fail(line, pkgKnown ? `package ${dotted(name.slice(0, cut))} has no class ${name.slice(cut + 1)}` : `unknown class ${dotted(name)} (no such API or library package ${dotted(name.slice(0, cut))})`);
  }

  private isInterfaceT(t: ClassT): boolean {
    return 'own' in t ? t.own.src.isInterface : t.ext.flags.includes('interface');
  }

  private nameOf(t: ClassT): string {
    return 'own' in t ? t.own.full : slash(t.ext.name);
  }

  private isShareable(t: ClassT): boolean {
    if ('ext' in t) return t.ext.flags.includes('shareable') || t.ext.name === 'javacard.framework.Shareable';
    return t.own.allIfaces.some((i) => this.isShareable(i)) || t.own.directIfaces.some((i) => this.isShareable(i));
  }

  private importIndex(p: ExportedPackage): number {
    let i = this.imports.indexOf(p);
    if (i < 0) {
      i = this.imports.length;
      if (i >= 128) throw new AsmError(this.file, this.mod.line, 'more than 128 imported packages');
      this.imports.push(p);
    }
    return i;
  }

  private classRef(t: ClassT): CapClassRef {
    if ('own' in t) return { internal: true, classOffset: t.own.offset };
    return { internal: false, pkg: this.importIndex(t.pkg), classToken: t.ext.token };
  }

  /** The superclass of an external class, resolved. */
  private extSuper(t: { ext: ExportedClass }): ClassT | undefined {
    return t.ext.super ? this.extClasses.get(slash(t.ext.super)) : undefined;
  }

  // ---------------------------------------------------------------------------------------------------------
  // Tokens (JCVM 3.0.5 §4.3.7) and instance layout

  private layoutClass(c: OwnClass): void {
    if (c.laidOut === 'done') return;
    if (c.laidOut === 'busy') this.fail(c.src.line, `${c.src.name} inherits from itself`);
    c.laidOut = 'busy';
    for (const i of c.directIfaces) if ('own' in i) this.layoutClass(i.own);
    // All superinterfaces, transitively, without repeats.
    const seen = new Set<string>();
    const addIface = (t: ClassT) => {
      const n = this.nameOf(t);
      if (seen.has(n)) return;
      seen.add(n);
      c.allIfaces.push(t);
      const supers = 'own' in t ? t.own.allIfaces : t.ext.interfaces.map((s) => this.extClasses.get(slash(s))).filter((x): x is { ext: ExportedClass; pkg: ExportedPackage } => !!x);
      for (const s of supers) addIface(s);
    };
    if (c.src.isInterface) {
      for (const i of c.directIfaces) addIface(i);
      // §4.3.7.7 as the API export files number them: the superinterfaces' methods first, then this interface's own.
      let next = 0;
      for (const i of c.allIfaces) {
        for (const key of this.ifaceMethodTokens(i).keys()) if (!c.ifaceTokens.has(key)) c.ifaceTokens.set(key, next++);
      }
      for (const m of c.methodList) {
        if (c.ifaceTokens.has(m.key)) m.token = c.ifaceTokens.get(m.key) as number;
        else {
          m.token = next++;
          c.ifaceTokens.set(m.key, m.token);
        }
      }
      c.laidOut = 'done';
      return;
    }
    for (const i of c.directIfaces) addIface(i);
    const sup = c.superT as ClassT;
    if ('own' in sup) {
      this.layoutClass(sup.own);
      c.publicVirtuals = new Map(sup.own.publicVirtuals);
      c.publicCount = sup.own.publicCount;
      c.packageVirtuals = new Map(sup.own.packageVirtuals);
      c.packageCount = sup.own.packageCount;
    } else {
      for (const m of sup.ext.methods) {
        if (m.kind !== 'virtual') continue;
        c.publicVirtuals.set(m.name + m.descriptor, m.token);
        c.publicCount = Math.max(c.publicCount, m.token + 1);
      }
    }
    // §4.3.7.6: an override reuses the superclass token; new public/protected methods continue after the superclass's;
    // package-visible methods are numbered apart with the high bit set.
    for (const m of c.methodList) {
      if (!m.isVirtual) continue;
      const isPublic = m.src.flags.has('public') || m.src.flags.has('protected');
      if (isPublic) {
        const t = c.publicVirtuals.get(m.key);
        if (t !== undefined) m.token = t;
        else {
          m.token = c.publicCount++;
          c.publicVirtuals.set(m.key, m.token);
        }
      } else {
        if (c.publicVirtuals.has(m.key)) this.fail(m.src.line, `${m.key} narrows the visibility of an inherited public method`);
        const t = c.packageVirtuals.get(m.key);
        if (t !== undefined) m.token = t;
        else {
          m.token = 0x80 | c.packageCount++;
          c.packageVirtuals.set(m.key, m.token);
        }
      }
      if (c.publicCount > 128 || c.packageCount > 128) this.fail(m.src.line, 'more than 128 virtual methods');
    }
    // §4.3.7.4: public/protected static methods and constructors, in declaration order.
    let st = 0;
    for (const m of c.methodList) {
      if (!m.isVirtual && !m.isPrivate && (m.src.flags.has('public') || m.src.flags.has('protected'))) m.token = st++;
    }
    // §4.3.7.5: instance fields: references first, then primitives; an int takes two tokens (cells).
    const inst = [...c.fields.values()].filter((f) => !f.isStatic);
    const visible = (f: OwnField) => f.src.flags.has('public') || f.src.flags.has('protected');
    const isRef = (f: OwnField) => /^[L[]/.test(f.src.descriptor);
    const order = [
      ...inst.filter((f) => isRef(f) && visible(f)), ...inst.filter((f) => isRef(f) && !visible(f)),
      ...inst.filter((f) => !isRef(f) && visible(f)), ...inst.filter((f) => !isRef(f) && !visible(f)),
    ];
    let cell = 0;
    for (const f of order) {
      f.token = cell;
      cell += f.cells;
    }
    if (cell > 255) this.fail(c.src.line, `${c.src.name} has ${cell} instance field cells; at most 255`);
    c.instanceCells = cell;
    c.refCount = inst.filter(isRef).length;
    c.firstRef = c.refCount ? 0 : 0xff;
    let sf = 0;
    for (const f of c.fields.values()) if (f.isStatic && !f.constant && visible(f)) f.token = sf++;
    c.laidOut = 'done';
  }

  /** Interface method tokens of an interface (own or external), by name+descriptor. */
  private ifaceMethodTokens(t: ClassT): Map<string, number> {
    if ('own' in t) {
      this.layoutClass(t.own);
      return t.own.ifaceTokens;
    }
    const out = new Map<string, number>();
    for (const m of t.ext.methods) if (m.kind === 'interface') out.set(m.name + m.descriptor, m.token);
    return out;
  }

  /** Class component order: interfaces, then classes, each after its own-package supertypes. */
  private orderClasses(): void {
    const done = new Set<OwnClass>();
    const visit = (c: OwnClass) => {
      if (done.has(c)) return;
      done.add(c);
      const deps = [...c.directIfaces, ...(c.superT ? [c.superT] : [])];
      for (const d of deps) if ('own' in d) visit(d.own);
      this.ordered.push(c);
    };
    for (const c of this.own.values()) if (c.src.isInterface) visit(c);
    for (const c of this.own.values()) visit(c);
  }

  private publicTable(c: OwnClass): { base: number; count: number } {
    const mine = c.methodList.filter((m) => m.isVirtual && !(m.token & 0x80)).map((m) => m.token);
    const base = mine.length ? Math.min(...mine) : c.publicCount;
    return { base, count: c.publicCount - base };
  }

  private packageTable(c: OwnClass): { base: number; count: number } {
    const mine = c.methodList.filter((m) => m.isVirtual && m.token & 0x80).map((m) => m.token & 0x7f);
    const base = mine.length ? Math.min(...mine) : c.packageCount;
    return { base, count: c.packageCount - base };
  }

  private assignClassOffsets(): void {
    let off = this.mod.format[1] >= 2 ? 2 : 0; // CAP 2.2: u2 signature_pool_length (empty pool)
    for (const c of this.ordered) {
      c.offset = off;
      if (c.src.isInterface) {
        if (c.allIfaces.length > 15) this.fail(c.src.line, `${c.src.name} has ${c.allIfaces.length} superinterfaces; at most 15`);
        off += 1 + 2 * c.allIfaces.length;
      } else {
        if (c.allIfaces.length > 15) this.fail(c.src.line, `${c.src.name} implements ${c.allIfaces.length} interfaces; at most 15`);
        const pub = this.publicTable(c);
        const pkg = this.packageTable(c);
        off += 10 + 2 * (pub.count + pkg.count);
        for (const i of c.allIfaces) off += 3 + this.ifaceMethodTokens(i).size;
      }
      if (off > 0x7fff) this.fail(c.src.line, 'the Class component exceeds 32767 bytes');
    }
  }

  // ---------------------------------------------------------------------------------------------------------
  // Values and the static field image (JCVM §6.10)

  /** A compile-time value: literal, .const, or a constant field of this package, the API or a library. */
  private value(text: string, line: number): number {
    if (/^-?\d+$/.test(text)) return Number(text);
    if (/^-?0x[0-9a-f]+$/i.test(text)) return text.startsWith('-') ? -parseInt(text.slice(3), 16) : parseInt(text.slice(2), 16);
    if (text === 'true') return 1;
    if (text === 'false') return 0;
    const ch = /^'(\\.|[^'\\])'$/.exec(text);
    if (ch) return ch[1].replace(/^\\/, '').charCodeAt(0);
    const k = this.mod.consts.get(text);
    if (k) {
      if (this.constBusy.has(text)) this.fail(line, `constant ${text} refers to itself`);
      this.constBusy.add(text);
      const v = this.value(k.text, k.line);
      this.constBusy.delete(text);
      return v;
    }
    const cut = text.lastIndexOf('.');
    if (cut > 0) {
      const t = this.resolveClass(text.slice(0, cut), line);
      const name = text.slice(cut + 1);
      if ('own' in t) {
        const f = t.own.fields.get(name);
        if (!f || !f.constant || !f.src.init || f.src.init.kind !== 'value') this.fail(line, `${t.own.src.name}.${name} is not a compile-time constant (static final primitive with a value)`);
        const key = `${t.own.src.name}.${name}`;
        if (this.constBusy.has(key)) this.fail(line, `constant ${key} refers to itself`);
        this.constBusy.add(key);
        const v = this.value(f.src.init.text, f.src.line);
        this.constBusy.delete(key);
        return v;
      }
      const f = this.extField(t, name);
      if (!f || f.constant === undefined) this.fail(line, `${t.ext.name}.${name} is not a compile-time constant of the API`);
      return f.constant;
    }
    this.fail(line, `"${text}" is not a number, a .const name or Class.CONSTANT`);
  }

  private extField(t: { ext: ExportedClass }, name: string): ExportedField | undefined {
    for (let cur: ClassT | undefined = t as ClassT; cur && 'ext' in cur; cur = this.extSuper(cur)) {
      const f = cur.ext.fields.find((x) => x.name === name);
      if (f) return f;
    }
    return undefined;
  }

  private ranged(text: string, line: number, min: number, max: number, what: string): number {
    const v = this.value(text, line);
    if (!Number.isInteger(v) || v < min || v > max) this.fail(line, `${what} ${text} (= ${v}) is outside ${min}..${max}`);
    return v;
  }

  private layoutStatics(): CapPackage['staticField'] {
    const statics = this.ordered.flatMap((c) => [...c.fields.values()].filter((f) => f.isStatic && !f.constant));
    const isRef = (f: OwnField) => /^[L[]/.test(f.src.descriptor);
    const withArray = statics.filter((f) => isRef(f) && f.src.init);
    const otherRefs = statics.filter((f) => isRef(f) && !f.src.init);
    const prim = statics.filter((f) => !isRef(f));
    const initValue = (f: OwnField) => (f.src.init && f.src.init.kind === 'value' ? this.value(f.src.init.text, f.src.line) : 0);
    const defaults = prim.filter((f) => initValue(f) === 0);
    const nonDefault = prim.filter((f) => initValue(f) !== 0);
    const size = (d: string) => (d === 'I' ? 4 : d === 'S' ? 2 : 1);
    let off = 0;
    for (const f of [...withArray, ...otherRefs]) {
      f.offset = off;
      off += 2;
    }
    let defaultBytes = 0;
    for (const f of defaults) {
      f.offset = off;
      off += size(f.src.descriptor);
      defaultBytes += size(f.src.descriptor);
    }
    const values = byteBuilder();
    for (const f of nonDefault) {
      f.offset = off;
      const n = size(f.src.descriptor);
      off += n;
      const v = this.ranged(f.src.init && f.src.init.kind === 'value' ? f.src.init.text : '0', f.src.line, n === 4 ? -0x80000000 : n === 2 ? -0x8000 : -0x80, n === 4 ? 0xffffffff : n === 2 ? 0xffff : 0xff, `${f.src.name} value`);
      for (let i = n - 1; i >= 0; i--) values.u1(Math.floor(v / 2 ** (8 * i)) & 0xff);
    }
    if (off > 0xffff) this.fail(this.mod.line, 'static field image exceeds 65535 bytes');
    const arrayInits = withArray.map((f) => {
      const init = f.src.init as Exclude<AsmField['init'], undefined>;
      const elem = f.src.descriptor[1];
      const type = { Z: 2, B: 3, S: 4, I: 5 }[elem] as number;
      const n = elem === 'I' ? 4 : elem === 'S' ? 2 : 1;
      const b = byteBuilder();
      if (init.kind === 'string') {
        if (n !== 1) this.fail(f.src.line, `${f.src.name}: a string initialises only byte or boolean arrays`);
        for (const x of init.bytes) b.u1(x);
      } else if (init.kind === 'array') {
        for (const item of init.items) {
          const v = this.ranged(item, f.src.line, n === 4 ? -0x80000000 : n === 2 ? -0x8000 : -0x80, n === 4 ? 0xffffffff : n === 2 ? 0xffff : 0xff, `${f.src.name} element`);
          for (let i = n - 1; i >= 0; i--) b.u1(Math.floor(v / 2 ** (8 * i)) & 0xff);
        }
      }
      return { type, values: b.done() };
    });
    return { imageSize: off, referenceCount: withArray.length + otherRefs.length, arrayInits, defaultValueCount: defaultBytes, nonDefaultValues: values.done() };
  }

  // ---------------------------------------------------------------------------------------------------------
  // Constant pool

  private intern(key: string, entry: () => CpEntry, type?: string): number {
    let i = this.cpIndex.get(key);
    if (i === undefined) {
      i = this.cp.length;
      if (i > 0xffff) throw new AsmError(this.file, this.mod.line, 'constant pool exceeds 65535 entries');
      this.cp.push(type === undefined ? { key, entry } : { key, entry, type });
      this.cpIndex.set(key, i);
    }
    return i;
  }

  private cpClass(t: ClassT): number {
    return this.intern(`class ${this.nameOf(t)}`, () => ({ tag: 1, kind: 'class', ref: this.classRef(t) }));
  }

  /** Finds a field by name in a class or its superclasses: own fields, or a library's exported fields. */
  private findField(t: ClassT, name: string, line: number): { own: OwnField } | { ext: ExportedField; cls: { ext: ExportedClass; pkg: ExportedPackage } } {
    let cur: ClassT | undefined = t;
    while (cur) {
      if ('own' in cur) {
        const f = cur.own.fields.get(name);
        if (f) return { own: f };
        cur = cur.own.superT;
      } else {
        const f = cur.ext.fields.find((x) => x.name === name);
        if (f) return { ext: f, cls: cur };
        cur = this.extSuper(cur);
      }
    }
    this.fail(line, `${this.nameOf(t)} has no field ${name}`);
  }

  private fieldOperand(mnemonic: string, arg: string, line: number, cls: OwnClass): number {
    const cut = arg.lastIndexOf('.');
    const t: ClassT = cut > 0 ? this.resolveClass(arg.slice(0, cut), line) : { own: cls };
    const name = cut > 0 ? arg.slice(cut + 1) : arg;
    const found = this.findField(t, name, line);
    const isStaticOp = mnemonic.includes('static');
    const desc = 'own' in found ? found.own.src.descriptor : found.ext.descriptor;
    const letter = /_([absi])(_w|_this)?$/.exec(mnemonic)?.[1];
    const want = desc.startsWith('L') || desc.startsWith('[') ? 'a' : desc === 'I' ? 'i' : desc === 'S' ? 's' : 'b';
    if (letter && letter !== want) this.fail(line, `${mnemonic} on ${name}, a field of type ${desc} (use the _${want} form)`);
    if ('own' in found) {
      const f = found.own;
      if (f.constant) this.fail(line, `${f.cls.src.name}.${name} is a compile-time constant: push its value instead`);
      if (f.isStatic !== isStaticOp) this.fail(line, `${mnemonic} on the ${f.isStatic ? 'static' : 'instance'} field ${name}`);
      if (f.isStatic) return this.intern(`sfield ${f.cls.full}.${name}`, () => ({ tag: 5, kind: 'staticField', ref: { internal: true, offset: f.offset } }), desc);
      return this.intern(`ifield ${f.cls.full}.${name}`, () => ({ tag: 2, kind: 'instanceField', cls: this.classRef({ own: f.cls }), token: f.token }), desc);
    }
    const f = found.ext;
    if (f.constant !== undefined) this.fail(line, `${found.cls.ext.name}.${name} is a compile-time constant: push its value instead`);
    const isStatic = f.flags.includes('static');
    if (isStatic !== isStaticOp) this.fail(line, `${mnemonic} on the ${isStatic ? 'static' : 'instance'} field ${name}`);
    const c = found.cls;
    if (isStatic) {
      return this.intern(`sfield ${c.ext.name}.${name}`, () => ({ tag: 5, kind: 'staticField', ref: { internal: false, pkg: this.importIndex(c.pkg), classToken: c.ext.token, token: f.token } }), desc);
    }
    return this.intern(`ifield ${c.ext.name}.${name}`, () => ({ tag: 2, kind: 'instanceField', cls: this.classRef(c), token: f.token }), desc);
  }

  /** An own method by key in a class or its own-package superclasses. */
  private findOwnMethod(c: OwnClass | undefined, key: string): OwnMethod | undefined {
    for (let cur = c; cur; cur = cur.superT && 'own' in cur.superT ? cur.superT.own : undefined) {
      const m = cur.methods.get(key);
      if (m) return m;
    }
    return undefined;
  }

  private findExtMethod(t: { ext: ExportedClass; pkg: ExportedPackage }, name: string, desc: string, kinds: string[]): { m: ExportedMethod; cls: { ext: ExportedClass; pkg: ExportedPackage } } | undefined {
    let cur: ClassT | undefined = t;
    while (cur && 'ext' in cur) {
      const m = cur.ext.methods.find((x) => x.name === name && x.descriptor === desc && kinds.includes(x.kind));
      if (m) return { m, cls: cur };
      if (!kinds.includes('static')) return undefined; // virtual/interface lists already include inherited methods
      cur = this.extSuper(cur);
    }
    return undefined;
  }

  private methodOperand(mnemonic: string, arg: string, line: number, cls: OwnClass): { index: number; nargs: number; token?: number } {
    const paren = arg.indexOf('(');
    const dot = paren > 0 ? arg.lastIndexOf('.', paren) : -1;
    const fail: (w: string) => never = (w) => this.fail(line, w);
    if (paren < 0) fail(`${mnemonic} needs Class.name(arguments)return, got "${arg}"`);
    const t: ClassT = dot > 0 ? this.resolveClass(arg.slice(0, dot), line) : { own: cls };
    const { name, descriptor } = splitMethodSig(arg.slice(dot + 1), fail);
    const key = name + descriptor;
    const words = argWords(descriptor);
    const label = `${this.nameOf(t)}.${key}`;

    if (mnemonic === 'invokeinterface') {
      if (!this.isInterfaceT(t)) fail(`invokeinterface on ${this.nameOf(t)}, which is not an interface`);
      const token = this.ifaceMethodTokens(t).get(key);
      if (token === undefined) fail(`interface ${this.nameOf(t)} has no method ${key}`);
      return { index: this.cpClass(t), nargs: words + 1, token };
    }
    if (mnemonic === 'invokestatic' || (mnemonic === 'invokespecial' && (name === '<init>' || ('own' in t && t.own.methods.get(key)?.isPrivate)))) {
      // Static methods, constructors and private methods: a static method reference (JCVM §7.5.19, §7.5.20).
      if ('own' in t) {
        const m = t.own.methods.get(key);
        if (!m) fail(`${t.own.src.name} has no method ${key}`);
        if (mnemonic === 'invokestatic' && !m.isStatic) fail(`invokestatic on the instance method ${key}`);
        if (mnemonic === 'invokespecial' && m.isStatic) fail(`invokespecial on the static method ${key}`);
        return { index: this.intern(`smethod ${label}`, () => ({ tag: 6, kind: 'staticMethod', ref: { internal: true, offset: m.offset } }), descriptor), nargs: m.nargs };
      }
      const found = this.findExtMethod(t, name, descriptor, ['static']);
      if (!found) fail(`${t.ext.name} has no ${name === '<init>' ? 'constructor' : 'static method'} ${key}`);
      const isInstance = name === '<init>';
      if (mnemonic === 'invokestatic' && isInstance) fail('invokestatic cannot call a constructor; use invokespecial');
      const c = found.cls;
      return {
        index: this.intern(`smethod ${c.ext.name}.${key}`, () => ({ tag: 6, kind: 'staticMethod', ref: { internal: false, pkg: this.importIndex(c.pkg), classToken: c.ext.token, token: found.m.token } }), descriptor),
        nargs: words + (isInstance ? 1 : 0),
      };
    }
    // Virtual: invokevirtual, or invokespecial of a superclass method (super.m(): a super method reference, §6.7.2).
    let token: number | undefined;
    if ('own' in t) {
      token = t.own.publicVirtuals.get(key) ?? t.own.packageVirtuals.get(key);
      if (token === undefined) {
        const m = this.findOwnMethod(t.own, key);
        if (m && m.isPrivate) fail(`${key} is private: call it with invokespecial`);
        if (m && m.isStatic) fail(`${key} is static: call it with invokestatic`);
        fail(`${t.own.src.name} has no virtual method ${key}`);
      }
    } else {
      const found = this.findExtMethod(t, name, descriptor, ['virtual']);
      if (!found) fail(`${t.ext.name} has no virtual method ${key}`);
      token = found.m.token;
    }
    const tok = token;
    if (mnemonic === 'invokespecial') {
      if (!cls.superT) fail('invokespecial of a super method outside a class');
      return { index: this.intern(`super ${cls.full}.${key}`, () => ({ tag: 4, kind: 'superMethod', cls: { internal: true, classOffset: cls.offset }, token: tok }), descriptor), nargs: words + 1 };
    }
    return { index: this.intern(`vmethod ${label}`, () => ({ tag: 3, kind: 'virtualMethod', cls: this.classRef(t), token: tok }), descriptor), nargs: words + 1 };
  }

  // ---------------------------------------------------------------------------------------------------------
  // Methods (JCVM §6.9) and bytecode

  private layoutMethods(): Uint8Array {
    const bodies = this.ordered.flatMap((c) => (c.src.isInterface ? [] : c.methodList));
    const handlerTotal = bodies.reduce((n, m) => n + m.src.catches.length, 0);
    if (handlerTotal > 255) this.fail(this.mod.line, `${handlerTotal} exception handlers; the Method component holds at most 255`);
    const code = byteBuilder();
    code.bytes(new Uint8Array(1 + 8 * handlerTotal)); // filled at the end
    for (const m of bodies) this.emitMethod(m, code);
    const info = code.done();
    // §6.9.1 stop bit: set when no later handler's range encloses this one, so the search may end here.
    this.handlers.forEach((h, i) => {
      h.stop = !this.handlers.slice(i + 1).some((o) => o.startOffset <= h.startOffset && o.end >= h.end);
    });
    info.set(encodeHandlers(this.handlers));
    if (info.length > 0xffff) this.fail(this.mod.line, `the Method component is ${info.length} bytes; at most 65535`);
    return info;
  }

  private insnSize(insn: AsmInsn): number {
    if (!BY_MNEMONIC.has(insn.mnemonic)) this.fail(insn.line, `unknown instruction ${insn.mnemonic}`);
    try {
      return asmInsnSize(insn);
    } catch (e) {
      if (e instanceof AsmError) this.fail(insn.line, e.message.replace(/^<jcasm>:\d+: /, ''));
      throw e;
    }
  }

  private emitMethod(m: OwnMethod, code: ReturnType<typeof byteBuilder>): void {
    const src = m.src;
    m.offset = code.length;
    if (m.isAbstract) {
      code.u1(0x40); // ACC_ABSTRACT, max_stack 0
      code.u1(m.nargs << 4);
      return;
    }
    // Pass 1: label offsets (relative to the code start) and the locals the code touches.
    const labels = new Map<string, number>();
    let rel = 0;
    let maxLocal = m.nargs - 1;
    for (const item of src.body) {
      if ('label' in item) {
        if (labels.has(item.label)) this.fail(item.line, `label ${item.label} is defined twice in ${m.key}`);
        labels.set(item.label, rel);
        continue;
      }
      rel += this.insnSize(item);
      const local = /^([asi])(load|store)_(\d)$/.exec(item.mnemonic);
      const wide = item.mnemonic[0] === 'i' ? 1 : 0;
      if (local) maxLocal = Math.max(maxLocal, Number(local[3]) + wide);
      else if (/^([asi](load|store)|[si]inc(_w)?|ret)$/.test(item.mnemonic) && /^\d+$/.test(item.args[0] ?? '')) {
        maxLocal = Math.max(maxLocal, Number(item.args[0]) + (/^i/.test(item.mnemonic) ? 1 : 0));
      }
    }
    const maxLocals = src.locals ?? Math.max(0, maxLocal + 1 - m.nargs);
    const maxStack = src.stack ?? 8;
    if (m.nargs > 255) this.fail(src.line, `${m.key} takes ${m.nargs} argument words; at most 255`);
    const extended = maxStack > 15 || m.nargs > 15 || maxLocals > 15;
    if (extended) {
      code.u1(0x80);
      code.u1(maxStack);
      code.u1(m.nargs);
      code.u1(maxLocals);
    } else {
      code.u1(maxStack);
      code.u1((m.nargs << 4) | maxLocals);
    }
    const start = code.length;
    const label = (name: string, line: number): number => {
      const v = labels.get(name);
      if (v === undefined) this.fail(line, `unknown label ${name} in ${m.key}`);
      return v;
    };
    // Pass 2: bytes.
    for (const item of src.body) {
      if ('label' in item) continue;
      const at = code.length;
      this.emitInsn(item, m, code, (name) => label(name, item.line) + start - at);
      const want = this.insnSize(item);
      if (code.length - at !== want) this.fail(item.line, `internal: ${item.mnemonic} emitted ${code.length - at} bytes, expected ${want}`);
    }
    m.bytecodeCount = code.length - start;
    m.handlerIndex = this.handlers.length;
    m.handlerCount = src.catches.length;
    for (const c of src.catches) {
      const from = label(c.from, c.line) + start;
      const to = label(c.to, c.line) + start;
      const handler = label(c.handler, c.line) + start;
      if (to <= from) this.fail(c.line, `.catch range ${c.from}..${c.to} is empty or reversed`);
      let catchTypeIndex = 0;
      if (c.catchClass !== null) {
        const t = this.resolveClass(c.catchClass, c.line);
        if (this.cp.length === 0) this.cpClass({ own: m.cls }); // index 0 means "any": keep real catch types above it
        catchTypeIndex = this.cpClass(t);
      }
      this.handlers.push({ startOffset: from, activeLength: to - from, stop: false, handlerOffset: handler, catchTypeIndex, end: to });
    }
  }

  private emitInsn(insn: AsmInsn, m: OwnMethod, code: ReturnType<typeof byteBuilder>, branch: (label: string) => number): void {
    const op = BY_MNEMONIC.get(insn.mnemonic);
    if (!op) this.fail(insn.line, `unknown instruction ${insn.mnemonic}`);
    if (op.int && !this.mod.int) this.fail(insn.line, `${op.mnemonic} is an int instruction: add .int to the package`);
    const a = insn.args;
    const line = insn.line;
    const argc = (n: number) => {
      if (a.length !== n) this.fail(line, `${op.mnemonic} takes ${n} operand${n === 1 ? '' : 's'}, got ${a.length}`);
    };
    const rel = (target: string, wide: boolean) => {
      const d = branch(target);
      const lim = wide ? 0x7fff : 0x7f;
      if (d < -lim - 1 || d > lim) this.fail(line, `${op.mnemonic} to ${target} is ${d} bytes away; use the _w form`);
      return d;
    };
    const cpAt = (index: number, width: 1 | 2) => {
      if (width === 1) {
        if (index > 0xff) this.fail(line, `${op.mnemonic} needs a constant pool index below 256 (entry ${index}); use the _w form`);
        this.byteIndex.push(code.length);
        code.u1(index);
      } else {
        this.byte2Index.push(code.length);
        code.u2(index);
      }
    };
    code.u1(op.code);
    switch (op.operands) {
      case 'none':
        argc(0);
        return;
      case 's1':
        argc(1);
        code.u1(this.ranged(a[0], line, -128, 255, 'byte operand'));
        return;
      case 's2':
        argc(1);
        code.u2(this.ranged(a[0], line, -32768, 65535, 'short operand'));
        return;
      case 's4': {
        argc(1);
        const v = this.ranged(a[0], line, -0x80000000, 0xffffffff, 'int operand');
        code.u2(Math.floor(v / 65536) & 0xffff);
        code.u2(v & 0xffff);
        return;
      }
      case 'u1':
        argc(1);
        if (/^(get|put)field_/.test(op.mnemonic)) {
          if (op.mnemonic.endsWith('_this') && m.isStatic) this.fail(line, `${op.mnemonic} in the static method ${m.key} (no this)`);
          cpAt(this.fieldOperand(op.mnemonic, a[0], line, m.cls), 1);
        } else code.u1(this.ranged(a[0], line, 0, 255, 'local variable'));
        return;
      case 'u2':
        argc(1);
        if (/^(get|put)(static|field)_/.test(op.mnemonic)) cpAt(this.fieldOperand(op.mnemonic, a[0], line, m.cls), 2);
        else if (op.mnemonic.startsWith('invoke')) cpAt(this.methodOperand(op.mnemonic, a[0], line, m.cls).index, 2);
        else {
          const t = this.resolveClass(a[0], line);
          if (op.mnemonic === 'new' && this.isInterfaceT(t)) this.fail(line, `new ${this.nameOf(t)}: an interface cannot be instantiated`);
          cpAt(this.cpClass(t), 2);
        }
        return;
      case 'b1':
        argc(1);
        code.u1(rel(a[0], false));
        return;
      case 'b2':
        argc(1);
        code.u2(rel(a[0], true));
        return;
      case 'inc':
      case 'inc_w':
        argc(2);
        code.u1(this.ranged(a[0], line, 0, 255, 'local variable'));
        if (op.operands === 'inc') code.u1(this.ranged(a[1], line, -128, 127, 'increment'));
        else code.u2(this.ranged(a[1], line, -32768, 32767, 'increment'));
        return;
      case 'iface': {
        argc(1);
        const r = this.methodOperand('invokeinterface', a[0], line, m.cls);
        code.u1(r.nargs);
        cpAt(r.index, 2);
        code.u1(r.token as number);
        return;
      }
      case 'atype': {
        argc(1);
        const t = ATYPE[a[0]] ?? this.ranged(a[0], line, 10, 13, 'array type');
        if (t === 13 && !this.mod.int) this.fail(line, 'newarray int needs .int');
        code.u1(t);
        return;
      }
      case 'cast': {
        argc(1);
        const prim = /^\[([ZBSI])$/.exec(a[0]);
        if (prim) {
          code.u1(ATYPE[prim[1]]);
          code.u2(0);
        } else if (a[0].startsWith('[')) {
          code.u1(14);
          cpAt(this.cpClass(this.resolveClass(a[0].slice(1), line)), 2);
        } else {
          code.u1(0);
          cpAt(this.cpClass(this.resolveClass(a[0], line)), 2);
        }
        return;
      }
      case 'dupx': {
        if (a.length === 2) {
          const mm = this.ranged(a[0], line, 1, 4, 'dup_x/swap_x m');
          const nn = this.ranged(a[1], line, 0, 15, 'dup_x/swap_x n');
          code.u1((mm << 4) | nn);
        } else {
          argc(1);
          code.u1(this.ranged(a[0], line, 0, 255, 'packed m/n'));
        }
        return;
      }
      case 'sw_stable':
      case 'sw_itable': {
        // stableswitch <low> <default> <L_low> <L_low+1> …
        if (a.length < 3) this.fail(line, `${op.mnemonic} <low> <default label> <label for low> …`);
        const isInt = op.operands === 'sw_itable';
        const low = this.ranged(a[0], line, isInt ? -0x80000000 : -32768, isInt ? 0x7fffffff : 32767, 'low');
        const targets = a.slice(2);
        const high = low + targets.length - 1;
        code.u2(rel(a[1], true));
        if (isInt) {
          code.u2((low >>> 16) & 0xffff);
          code.u2(low & 0xffff);
          code.u2((high >>> 16) & 0xffff);
          code.u2(high & 0xffff);
        } else {
          if (high > 32767) this.fail(line, 'stableswitch high value passes 32767');
          code.u2(low & 0xffff);
          code.u2(high & 0xffff);
        }
        for (const t of targets) code.u2(rel(t, true));
        return;
      }
      case 'sw_slookup':
      case 'sw_ilookup': {
        // slookupswitch <default> <match>:<label> …   (matches in ascending order, §7.5.)
        if (a.length < 1) this.fail(line, `${op.mnemonic} <default label> <match>:<label> …`);
        const isInt = op.operands === 'sw_ilookup';
        const pairs = a.slice(1).map((p) => {
          const i = p.lastIndexOf(':');
          if (i <= 0) this.fail(line, `"${p}" is not <match>:<label>`);
          return { match: this.ranged(p.slice(0, i), line, isInt ? -0x80000000 : -32768, isInt ? 0x7fffffff : 32767, 'match'), label: p.slice(i + 1) };
        });
        for (let i = 1; i < pairs.length; i++) if (pairs[i].match <= pairs[i - 1].match) this.fail(line, `${op.mnemonic} matches must be strictly ascending (${pairs[i].match} after ${pairs[i - 1].match})`);
        code.u2(rel(a[0], true));
        code.u2(pairs.length);
        for (const p of pairs) {
          if (isInt) {
            code.u2((p.match >>> 16) & 0xffff);
            code.u2(p.match & 0xffff);
          } else code.u2(p.match & 0xffff);
          code.u2(rel(p.label, true));
        }
        return;
      }
    }
  }

  // ---------------------------------------------------------------------------------------------------------
  // Class, Applet, Export and Descriptor components

  private buildClasses(): CapClassEntry[] {
    return this.ordered.map((c): CapClassEntry => {
      const shareable = this.isShareable({ own: c }) ? 0x4 : 0;
      if (c.src.isInterface) {
        return { kind: 'interface', offset: c.offset, flags: 0x8 | shareable, superInterfaces: c.allIfaces.map((i) => this.classRef(i)) };
      }
      const pub = this.publicTable(c);
      const pkg = this.packageTable(c);
      const own = (token: number) => c.methodList.find((m) => m.isVirtual && m.token === token);
      const publicVirtualMethodTable = Array.from({ length: pub.count }, (_, i) => own(pub.base + i)?.offset ?? 0xffff);
      const packageVirtualMethodTable = Array.from({ length: pkg.count }, (_, i) => own(0x80 | (pkg.base + i))?.offset ?? 0xffff);
      const interfaces = c.allIfaces.map((i) => {
        const tokens = this.ifaceMethodTokens(i);
        const indexes = new Array<number>(tokens.size).fill(0);
        for (const [key, tok] of tokens) {
          const v = c.publicVirtuals.get(key);
          if (v === undefined) this.fail(c.src.line, `${c.src.name} implements ${this.nameOf(i)} but has no public method ${key}`);
          indexes[tok] = v;
        }
        return { iface: this.classRef(i), indexes };
      });
      return {
        kind: 'class',
        offset: c.offset,
        flags: shareable,
        superclass: this.classRef(c.superT as ClassT),
        declaredInstanceSize: c.instanceCells,
        firstReferenceToken: c.firstRef,
        referenceCount: c.refCount,
        publicMethodTableBase: pub.base,
        publicMethodTableCount: pub.count,
        packageMethodTableBase: pkg.base,
        packageMethodTableCount: pkg.count,
        publicVirtualMethodTable,
        packageVirtualMethodTable,
        interfaces,
      };
    });
  }

  private buildApplets(): CapPackage['applets'] {
    const pkgAid = fromHex(this.mod.aid);
    return this.mod.applets.map((a) => {
      const c = this.own.get(a.cls);
      if (!c || c.src.isInterface) this.fail(a.line, `.applet names ${a.cls}, which is not a class of this package`);
      if (c.src.flags.has('abstract')) this.fail(a.line, `applet class ${a.cls} is abstract`);
      const aid = fromHex(a.aid);
      if (hex(aid.subarray(0, 5)) !== hex(pkgAid.subarray(0, 5))) this.fail(a.line, `applet AID ${a.aid} does not share the package RID ${hex(pkgAid.subarray(0, 5))}`);
      const install = c.methods.get('install([BSB)V');
      if (!install || !install.isStatic) this.fail(a.line, `applet class ${a.cls} has no static install([BSB)V`);
      let s: ClassT | undefined = c.superT;
      let isApplet = false;
      while (s) {
        if ('ext' in s && s.ext.name === 'javacard.framework.Applet') isApplet = true;
        s = 'own' in s ? s.own.superT : this.extSuper(s);
      }
      if (!isApplet) this.fail(a.line, `applet class ${a.cls} does not extend javacard.framework.Applet`);
      return { aid, installMethodOffset: install.offset };
    });
  }

  private buildExports(): NonNullable<CapPackage['exports']> {
    const pub = this.ordered.filter((c) => c.token !== 0xff).sort((x, y) => x.token - y.token);
    return pub.map((c) => ({
      classOffset: c.offset,
      staticFieldOffsets: [...c.fields.values()].filter((f) => f.isStatic && f.token !== 0xff).sort((x, y) => x.token - y.token).map((f) => f.offset),
      staticMethodOffsets: c.methodList.filter((m) => !m.isVirtual && !m.isPrivate && m.token !== 0xff && !c.src.isInterface).sort((x, y) => x.token - y.token).map((m) => m.offset),
    }));
  }

  private typeNibbles(desc: string, line: number): number[] {
    const out: number[] = [];
    const ref = (name: string) => {
      const r = this.classRef(this.resolveClass(name, line));
      const v = r.internal ? r.classOffset : ((0x80 | r.pkg) << 8) | r.classToken;
      out.push((v >> 12) & 15, (v >> 8) & 15, (v >> 4) & 15, v & 15);
    };
    for (const t of descriptorTypes(desc)) {
      const arr = t.startsWith('[');
      const base = arr ? t.slice(1) : t;
      if (base.startsWith('L')) {
        out.push(arr ? 0xe : 0x6);
        ref(base.slice(1, -1));
      } else out.push((arr ? { Z: 0xa, B: 0xb, S: 0xc, I: 0xd } : { V: 1, Z: 2, B: 3, S: 4, I: 5 })[base as 'Z'] as number);
    }
    return out;
  }

  private buildDescriptor(constantPool: CpEntry[]): CapPackage['descriptor'] {
    const types = byteBuilder();
    const typeAt = new Map<string, number>();
    const base = 2 + 2 * constantPool.length;
    const typeOffset = (desc: string, line: number): number => {
      const nib = this.typeNibbles(desc, line);
      const key = nib.join(',');
      let off = typeAt.get(key);
      if (off === undefined) {
        off = base + types.length;
        typeAt.set(key, off);
        types.u1(nib.length);
        for (let i = 0; i < nib.length; i += 2) types.u1((nib[i] << 4) | (nib[i + 1] ?? 0));
      }
      return off;
    };
    const classes: CapClassDescriptor[] = this.ordered.map((c) => {
      const f = c.src.flags;
      const flags = (f.has('public') ? 0x01 : 0) | (f.has('final') ? 0x10 : 0) | (c.src.isInterface ? 0x40 : 0) | (f.has('abstract') ? 0x80 : 0);
      const access = (s: Set<string>) => (s.has('public') ? 0x01 : 0) | (s.has('private') ? 0x02 : 0) | (s.has('protected') ? 0x04 : 0) | (s.has('static') ? 0x08 : 0) | (s.has('final') ? 0x10 : 0);
      return {
        token: c.token,
        flags,
        thisClass: { internal: true, classOffset: c.offset },
        interfaces: c.src.isInterface ? [] : c.allIfaces.map((i) => this.classRef(i)),
        fields: [...c.fields.values()].filter((x) => !x.constant).map((x) => ({
          token: x.isStatic ? x.token : x.token,
          flags: access(x.src.flags),
          field: x.isStatic ? { static: true as const, ref: { internal: true as const, offset: x.offset } } : { static: false as const, cls: { internal: true as const, classOffset: c.offset }, token: x.token },
          type: PRIM_CODE[x.src.descriptor] ?? typeOffset(x.src.descriptor, x.src.line),
        })),
        methods: c.methodList.map((m) => ({
          token: m.token,
          flags: access(m.src.flags) | (m.isAbstract ? 0x40 : 0) | (m.isInit ? 0x80 : 0),
          methodOffset: c.src.isInterface ? 0 : m.offset,
          typeOffset: typeOffset(m.src.descriptor, m.src.line),
          bytecodeCount: m.bytecodeCount,
          exceptionHandlerCount: m.handlerCount,
          exceptionHandlerIndex: m.handlerCount ? m.handlerIndex : 0,
        })),
      };
    });
    const constantPoolTypes = this.cp.map((e) => (e.type === undefined ? 0xffff : typeOffset(e.type, this.mod.line)));
    return { classes, constantPoolTypes, typeDescriptors: types.done() };
  }

  private buildLibrary(): AssembledLibrary {
    const visible = (s: Set<string>) => s.has('public') || s.has('protected');
    const flagList = (s: Set<string>, extra: string[] = []) => [...['public', 'protected', 'static', 'final', 'abstract'].filter((x) => s.has(x)), ...extra];
    const classes: ExportedClass[] = this.ordered.filter((c) => c.token !== 0xff).map((c) => {
      const name = dotted(c.full);
      const methods: ExportedMethod[] = [];
      if (c.src.isInterface) {
        for (const i of c.allIfaces) for (const [key, tok] of this.ifaceMethodTokens(i)) {
          const p = key.indexOf('(');
          if (!methods.some((x) => x.name + x.descriptor === key)) methods.push({ name: key.slice(0, p), descriptor: key.slice(p), token: c.ifaceTokens.get(key) ?? tok, kind: 'interface', flags: ['public', 'abstract'], declared_in_class: false });
        }
        for (const m of c.methodList) methods.push({ name: m.src.name, descriptor: m.src.descriptor, token: m.token, kind: 'interface', flags: flagList(m.src.flags), declared_in_class: true });
      } else {
        for (const m of c.methodList) if (!m.isVirtual && !m.isPrivate && visible(m.src.flags)) methods.push({ name: m.src.name, descriptor: m.src.descriptor, token: m.token, kind: 'static', flags: flagList(m.src.flags), declared_in_class: true });
        for (const [key, tok] of c.publicVirtuals) {
          const p = key.indexOf('(');
          const mine = c.methods.get(key);
          methods.push({ name: key.slice(0, p), descriptor: key.slice(p), token: tok, kind: 'virtual', flags: mine ? flagList(mine.src.flags) : ['public'], declared_in_class: mine !== undefined });
        }
      }
      const fields: ExportedField[] = [...c.fields.values()].filter((f) => visible(f.src.flags)).map((f) => {
        if (f.constant) return { name: f.src.name, descriptor: f.src.descriptor, token: 255, flags: flagList(f.src.flags), constant: this.value((f.src.init as { text: string }).text, f.src.line), kind: 'compile-time constant' };
        return { name: f.src.name, descriptor: f.src.descriptor, token: f.token, flags: flagList(f.src.flags), kind: f.isStatic ? 'static' : 'instance' };
      });
      const supers = c.superT ? dotted(this.nameOf(c.superT)) : 'java.lang.Object';
      return {
        name,
        token: c.token,
        flags: flagList(c.src.flags, [...(c.src.isInterface ? ['interface'] : []), ...(this.isShareable({ own: c }) ? ['shareable'] : [])]),
        super: supers,
        interfaces: c.allIfaces.map((i) => dotted(this.nameOf(i))),
        fields,
        methods,
      };
    });
    return { name: dotted(this.mod.name), aid: this.mod.aid, major: this.mod.major, minor: this.mod.minor, classes };
  }
}
