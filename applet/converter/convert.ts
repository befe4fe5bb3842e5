// The converter's package step: the class files of one Java package → a CapPackage. Each class and method becomes the
// symbolic package description jcasm assembles (emulator/vm/cap/asm.ts: AsmModule), so token assignment (JCVM 3.0.5
// §4.3.7), the class and method tables, the constant pool, RefLocation, the static field image and the Applet,
// Export and Descriptor components come from one implementation. Method bodies are translated by translate.ts,
// static initialisers by statics.ts; what Java Card cannot express becomes a Diagnostic naming class, method and line.
import { hex } from '../../emulator/bytes.ts';
import { AsmError, assembleModule } from '../../emulator/vm/cap/asm.ts';
import type { AsmClass, AsmField, AsmInit, AsmMethod, AsmModule, AssembledLibrary } from '../../emulator/vm/cap/asm.ts';
import { apiPackages } from '../../emulator/vm/cap/api-table.ts';
import type { CapPackage } from '../../emulator/vm/types.ts';
import { ACC, dotted, lineAt } from './classfile.ts';
import type { ClassFile, MethodInfo } from './classfile.ts';
import { parseMethodDescriptor } from './descriptor.ts';
import type { FieldType } from './descriptor.ts';
import { StaticInitError, staticInitialValues } from './statics.ts';
import { checkJavaCardSubset } from './subset.ts';
import type { Diagnostic } from './subset.ts';
import { TranslateError, translateMethod, widenBranches } from './translate.ts';

export type { Diagnostic } from './subset.ts';

export interface ConvertOptions {
  packageAid: Uint8Array;
  version: [number, number];
  applets: { className: string; aid: Uint8Array }[];
  /** Libraries (export data) this package may import, besides the Java Card API. */
  exportPath?: AssembledLibrary[];
  /** CAP format; 2.1 unless told (2.2 adds the package name and the signature pool length). */
  format?: [number, number];
}

export interface ConvertResult {
  /** Undefined when any diagnostic is an error. */
  pkg?: CapPackage;
  /** The export data of the package when it exports anything (public interfaces that are Shareable). */
  library?: AssembledLibrary;
  diagnostics: Diagnostic[];
}

function flagSet(access: number, allowed: readonly [number, string][]): Set<string> {
  return new Set(allowed.filter(([bit]) => access & bit).map(([, name]) => name));
}
const CLASS_FLAGS: [number, string][] = [[ACC.PUBLIC, 'public'], [ACC.FINAL, 'final'], [ACC.ABSTRACT, 'abstract']];
const MEMBER_FLAGS: [number, string][] = [
  [ACC.PUBLIC, 'public'], [ACC.PROTECTED, 'protected'], [ACC.PRIVATE, 'private'], [ACC.STATIC, 'static'], [ACC.FINAL, 'final'], [ACC.ABSTRACT, 'abstract'],
];

const packageOf = (internal: string) => internal.slice(0, Math.max(0, internal.lastIndexOf('/')));
const simpleName = (internal: string) => internal.slice(internal.lastIndexOf('/') + 1);

export function convertPackage(classes: ClassFile[], opts: ConvertOptions): ConvertResult {
  const diagnostics: Diagnostic[] = [];
  const error = (cls: string, message: string, extra: Partial<Diagnostic> = {}) => diagnostics.push({ severity: 'error', class: dotted(cls), message, ...extra });
  if (!classes.length) return { diagnostics: [{ severity: 'error', class: '?', message: 'no class files to convert' }] };
  const pkgName = packageOf(classes[0].thisClass);
  for (const c of classes) {
    if (packageOf(c.thisClass) !== pkgName) error(c.thisClass, `is not in package ${dotted(pkgName)}; a CAP file holds one package`);
  }
  if (!pkgName) error(classes[0].thisClass, 'classes in the unnamed package cannot be converted (Java Card packages are named)');
  if (opts.packageAid.length < 5 || opts.packageAid.length > 16) error(pkgName, `package AID ${hex(opts.packageAid)} must be 5 to 16 bytes`);
  for (const a of opts.applets) {
    if (a.aid.length < 5 || a.aid.length > 16) error(pkgName, `applet AID ${hex(a.aid)} must be 5 to 16 bytes`);
  }
  diagnostics.push(...checkJavaCardSubset(classes));
  if (diagnostics.some((d) => d.severity === 'error')) return { diagnostics };

  const own = new Set(classes.map((c) => c.thisClass));
  const byName = new Map(classes.map((c) => [c.thisClass, c]));
  const isOwnPrivate = (owner: string, name: string, descriptor: string): boolean => {
    const m = byName.get(owner)?.methods.find((x) => x.name === name && x.descriptor === descriptor);
    return m !== undefined && (m.accessFlags & ACC.PRIVATE) !== 0;
  };
  let usesInt = false;
  const asmClasses: AsmClass[] = [];
  for (const cf of classes) {
    const isInterface = (cf.accessFlags & ACC.INTERFACE) !== 0;
    let inits = new Map<string, AsmInit>();
    try {
      inits = staticInitialValues(cf);
    } catch (e) {
      if (!(e instanceof StaticInitError)) throw e;
      const clinit = cf.methods.find((m) => m.name === '<clinit>');
      error(cf.thisClass, e.message, { method: '<clinit>()V', line: clinit?.code ? lineAt(clinit.code, e.pc) : undefined });
    }
    const fields: AsmField[] = [];
    for (const f of cf.fields) {
      const flags = flagSet(f.accessFlags, MEMBER_FLAGS);
      const isConstant = f.constantValue !== undefined && flags.has('static') && flags.has('final');
      if (isConstant) {
        // Compile-time constants are inlined by javac; kept (except int ones) for the Export data, never in the image.
        const k = f.constantValue!.value;
        if (k.kind !== 'int' || f.descriptor === 'I' || isInterface) continue;
        fields.push({ line: 0, name: f.name, descriptor: f.descriptor, flags, init: { kind: 'value', text: String(k.value) } });
        continue;
      }
      if (isInterface) {
        error(cf.thisClass, 'an interface field that is not a compile-time constant cannot be converted', { field: f.name });
        continue;
      }
      if (f.descriptor === 'I' || f.descriptor === '[I') usesInt = true;
      const init = inits.get(f.name);
      fields.push(init ? { line: 0, name: f.name, descriptor: f.descriptor, flags, init } : { line: 0, name: f.name, descriptor: f.descriptor, flags });
    }
    const methods: AsmMethod[] = [];
    for (const m of cf.methods) {
      if (m.name === '<clinit>') continue;
      const am = convertMethod(cf, m, isOwnPrivate, (message, pc) => error(cf.thisClass, message, { method: `${m.name}${m.descriptor}`, line: m.code && pc !== undefined ? lineAt(m.code, pc) : undefined }));
      if (!am) continue;
      if (am.usesInt) usesInt = true;
      methods.push(am.method);
    }
    const cls: AsmClass = {
      line: 0,
      name: simpleName(cf.thisClass),
      isInterface,
      flags: flagSet(cf.accessFlags, CLASS_FLAGS),
      interfaces: [...cf.interfaces],
      fields,
      methods,
    };
    if (!isInterface) cls.superName = cf.superClass ?? 'java/lang/Object';
    if (cls.superName && own.has(cls.superName)) cls.superName = simpleName(cls.superName);
    cls.interfaces = cls.interfaces.map((i) => (own.has(i) ? simpleName(i) : i));
    asmClasses.push(cls);
  }
  addMirandaMethods(classes, asmClasses, opts.exportPath ?? []);
  const applets: AsmModule['applets'] = [];
  for (const a of opts.applets) {
    const internal = a.className.replace(/\./g, '/');
    const found = classes.find((c) => c.thisClass === internal || simpleName(c.thisClass) === internal);
    if (!found) error(pkgName, `applet class ${a.className} is not among the converted classes`);
    else applets.push({ aid: hex(a.aid), cls: simpleName(found.thisClass), line: 0 });
  }
  if (diagnostics.some((d) => d.severity === 'error')) return { diagnostics };

  const mod: AsmModule = {
    line: 0,
    name: pkgName,
    aid: hex(opts.packageAid),
    major: opts.version[0],
    minor: opts.version[1],
    format: opts.format ?? [2, 1],
    int: usesInt,
    library: false,
    imports: [],
    consts: new Map(),
    applets,
    classes: asmClasses,
  };
  try {
    let assembled;
    try {
      assembled = assembleModule(mod, { file: dotted(pkgName), libraries: opts.exportPath ?? [] });
    } catch (e) {
      // getfield/putfield carry a one-byte constant pool index (JCVM §7.5.getfield_<t>): past 255 entries, the _w forms.
      if (!(e instanceof AsmError) || !/constant pool index below 256/.test(e.message)) throw e;
      for (const c of mod.classes) {
        for (const m of c.methods) {
          for (const it of m.body) if ('mnemonic' in it && /^(get|put)field_[absi]$/.test(it.mnemonic)) it.mnemonic += '_w';
          widenBranches(m.body);
        }
      }
      assembled = assembleModule(mod, { file: dotted(pkgName), libraries: opts.exportPath ?? [] });
    }
    const { pkg, library } = assembled;
    return library ? { pkg, library, diagnostics } : { pkg, diagnostics };
  } catch (e) {
    if (!(e instanceof AsmError)) throw e;
    // The assembler's line numbers are source lines here (each instruction carries its LineNumberTable line).
    error(pkgName, e.message.replace(/^[^:]*:(\d+): /, (_, l: string) => (l === '0' ? '' : `line ${l}: `)));
    return { diagnostics };
  }
}

/**
 * An abstract class need not declare the methods of its interfaces, but its method table must give each a virtual
 * token (JCVM §4.3.7.6, the interface tables of §6.8.2 index it): such methods are added as abstract public methods.
 */
function addMirandaMethods(classes: ClassFile[], asmClasses: AsmClass[], libraries: AssembledLibrary[]): void {
  const byName = new Map(classes.map((c) => [c.thisClass, c]));
  const ext = new Map<string, { methods: { name: string; descriptor: string; kind: string }[]; interfaces: string[] }>();
  for (const p of [...apiPackages(), ...libraries]) for (const c of p.classes) ext.set(c.name.replace(/\./g, '/'), c);
  const ifaceMethods = (name: string, out: Set<string>) => {
    const own = byName.get(name);
    if (own) {
      for (const m of own.methods) if (m.name !== '<clinit>') out.add(m.name + m.descriptor);
      for (const s of own.interfaces) ifaceMethods(s, out);
      return;
    }
    for (const m of ext.get(name)?.methods ?? []) if (m.kind === 'interface') out.add(m.name + m.descriptor);
  };
  classes.forEach((cf, i) => {
    if (!(cf.accessFlags & ACC.ABSTRACT) || cf.accessFlags & ACC.INTERFACE) return;
    const wanted = new Set<string>();
    for (let c: ClassFile | undefined = cf; c; c = c.superClass ? byName.get(c.superClass) : undefined) for (const s of c.interfaces) ifaceMethods(s, wanted);
    for (let c: ClassFile | undefined = cf; c; c = c.superClass ? byName.get(c.superClass) : undefined) for (const m of c.methods) wanted.delete(m.name + m.descriptor);
    for (const key of wanted) {
      const p = key.indexOf('(');
      asmClasses[i].methods.push({ line: 0, name: key.slice(0, p), descriptor: key.slice(p), flags: new Set(['public', 'abstract']), body: [], catches: [] });
    }
  });
}

function convertMethod(
  cf: ClassFile,
  m: MethodInfo,
  isOwnPrivate: (owner: string, name: string, descriptor: string) => boolean,
  fail: (message: string, pc?: number) => void,
): { method: AsmMethod; usesInt: boolean } | undefined {
  const flags = flagSet(m.accessFlags, MEMBER_FLAGS);
  const base = { line: m.code ? lineAt(m.code, 0) ?? 0 : 0, name: m.name, descriptor: m.descriptor, flags };
  if (m.accessFlags & ACC.NATIVE) return void fail('native methods are not supported by Java Card');
  if (m.accessFlags & ACC.SYNCHRONIZED && !(cf.accessFlags & ACC.INTERFACE)) return void fail('synchronized methods are not supported by Java Card');
  const md = parseMethodDescriptor(m.descriptor);
  const isInt = (t: FieldType | 'void') => t !== 'void' && t.kind === 'base' && t.code === 'I';
  const intSignature = md.params.some(isInt) || isInt(md.returns);
  if (!m.code) return { method: { ...base, body: [], catches: [] }, usesInt: intSignature };
  try {
    const t = translateMethod(cf, m, { isOwnPrivate });
    return { method: { ...base, stack: t.maxStack, locals: t.maxLocals, body: t.body, catches: t.catches }, usesInt: t.usesInt || intSignature };
  } catch (e) {
    if (e instanceof TranslateError) return void fail(e.message, e.pc);
    if (e instanceof Error && e.name === 'BytecodeError') return void fail(e.message);
    throw e;
  }
}
