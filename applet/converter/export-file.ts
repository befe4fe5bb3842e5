// Java Card export files (.exp), JCVM 3.0.5 chapter 5 "The Export File Format": what a converter publishes about a
// package so that later packages can import it by token. Written from and read into the export data shape of
// emulator/vm/cap/api-table.ts (ExportedPackage), so `--exportpath` takes .exp files of earlier conversions.
//
//   ExportFile (§5.4) { u4 magic 0x00FACADE; u1 minor_version; u1 major_version; u2 constant_pool_count;
//     cp_info constant_pool[]; u2 this_package; [2.3: u1 referenced_package_count; u2 referenced_packages[]]
//     u1 export_class_count; class_info classes[] }
//   cp_info (§5.6): Utf8 (1) { u2 length; u1 bytes[] }, Integer (3) { u4 bytes }, Classref (7) { u2 name_index },
//     Package (13) { u1 flags (ACC_LIBRARY 0x01); u2 name_index; u1 minor_version; u1 major_version; u1 aid_length; u1 aid[] }
//   class_info (§5.7) { u1 token; u2 access_flags; u2 name_index (Classref); u2 export_supers_count; u2 supers[];
//     u1 export_interfaces_count; u2 interfaces[]; u2 export_fields_count; field_info fields[];
//     u2 export_methods_count; method_info methods[]; [2.3: u1 CAP22_inheritable_public_method_token_count] }
//   field_info (§5.8) { u1 token; u2 access_flags; u2 name_index; u2 descriptor_index; u2 attributes_count;
//     attribute_info attributes[] } — ConstantValue { u2 name_index; u4 length = 2; u2 constantvalue_index (Integer) }
//   method_info (§5.9) { u1 token; u2 access_flags; u2 name_index; u2 descriptor_index }
// Constant pool indices start at 0 (§5.6: unlike a class file, no entry is reserved). Names are internal forms
// ("javacard/framework/APDU"), descriptors Java descriptors. Versions 2.1 and 2.2 share one layout; the 2.3 additions
// (referenced packages, CAP22 inheritable count) are read as the project's reference digest describes them
// (../shared/reference/javacard.md §2.3) — not yet checked against an Oracle-made 2.3 file, and never written.
//
// What an export file does not carry comes back undefined: declared_in_class (the file lists inherited public
// methods with the declared ones, §5.9) and the ACC_LIBRARY flag (the export data shape has no place for it).
import { concat, hex, readU16, readU32, u16, u32 } from '../../emulator/bytes.ts';
import type { ExportedClass, ExportedField, ExportedMethod, ExportedPackage } from '../../emulator/vm/cap/api-table.ts';

export class ExportFileError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ExportFileError';
  }
}

export const EXPORT_MAGIC = 0x00facade;
const TAG = { Utf8: 1, Integer: 3, Classref: 7, Package: 13 } as const;
/** ACC_LIBRARY in CONSTANT_Package_info.flags (§5.6.1): the package declares no applets. */
export const ACC_LIBRARY = 0x01;

/** Class access flags (§5.7 table 5-2), method and field access flags (§5.8, §5.9). */
const CLASS_FLAGS: [string, number][] = [['public', 0x0001], ['final', 0x0010], ['interface', 0x0200], ['abstract', 0x0400], ['shareable', 0x0800], ['remote', 0x1000]];
const MEMBER_FLAGS: [string, number][] = [['public', 0x0001], ['protected', 0x0004], ['static', 0x0008], ['final', 0x0010], ['abstract', 0x0400]];
/** The order the assembler's export data lists flags in (emulator/vm/cap/asm.ts buildLibrary). */
const CLASS_ORDER = ['public', 'final', 'abstract', 'interface', 'shareable', 'remote'];
const ACC_INTERFACE = 0x0200;
const ACC_STATIC = 0x0008;

export interface WriteExportOptions {
  /** Export file format; 2.1 unless told (2.2 has the same layout). */
  version?: [2, 1] | [2, 2];
  /** Sets ACC_LIBRARY on the package (§5.6.1): true when the package has no applets. */
  library?: boolean;
  /**
   * Export data of other packages (the API, earlier libraries), to list every superclass in `supers` (§5.7: all
   * superclasses, java.lang.Object last); a super found nowhere ends the list.
   */
  packages?: readonly ExportedPackage[];
}

const internal = (dotted: string) => dotted.replace(/\./g, '/');
const dottedName = (name: string) => name.replace(/\//g, '.');

function flagBits(flags: readonly string[], table: [string, number][], what: string): number {
  let bits = 0;
  for (const f of flags) {
    const e = table.find(([n]) => n === f);
    if (!e) throw new ExportFileError(`${what}: flag "${f}" has no export file access flag`);
    bits |= e[1];
  }
  return bits;
}

function flagNames(bits: number, table: [string, number][], order: readonly string[]): string[] {
  return order.filter((n) => bits & (table.find(([t]) => t === n)?.[1] ?? 0));
}

function utf8(text: string): Uint8Array {
  return new TextEncoder().encode(text);
}

export function writeExportFile(lib: ExportedPackage, opts: WriteExportOptions = {}): Uint8Array {
  const [major, minor] = opts.version ?? [2, 1];
  const pool: Uint8Array[] = [];
  const index = new Map<string, number>();
  const add = (key: string, entry: () => Uint8Array): number => {
    let i = index.get(key);
    if (i === undefined) {
      i = pool.length;
      if (i > 0xffff) throw new ExportFileError(`${lib.name}: more than 65536 constant pool entries`);
      pool.push(entry());
      index.set(key, i);
    }
    return i;
  };
  const addUtf8 = (s: string) =>
    add(`u:${s}`, () => {
      const b = utf8(s);
      if (b.length > 0xffff) throw new ExportFileError(`${lib.name}: name too long for the constant pool`);
      return concat(new Uint8Array([TAG.Utf8]), u16(b.length), b);
    });
  const addClass = (dotted: string) => {
    const name = addUtf8(internal(dotted));
    return add(`c:${dotted}`, () => concat(new Uint8Array([TAG.Classref]), u16(name)));
  };
  const addInt = (v: number) => add(`i:${v | 0}`, () => concat(new Uint8Array([TAG.Integer]), u32(v >>> 0)));

  const aid = Uint8Array.from(lib.aid.match(/../g) ?? [], (h) => parseInt(h, 16));
  if (aid.length < 5 || aid.length > 16) throw new ExportFileError(`${lib.name}: package AID ${lib.aid} must be 5 to 16 bytes`);
  const pkgName = addUtf8(internal(lib.name));
  const thisPackage = add('p', () =>
    concat(new Uint8Array([TAG.Package, opts.library ? ACC_LIBRARY : 0]), u16(pkgName), new Uint8Array([lib.minor, lib.major, aid.length]), aid),
  );
  if (lib.classes.length > 0xff) throw new ExportFileError(`${lib.name}: more than 255 exported classes`);

  const known = new Map<string, ExportedClass>();
  for (const p of opts.packages ?? []) for (const c of p.classes) known.set(c.name, c);
  for (const c of lib.classes) known.set(c.name, c);
  const supersOf = (c: ExportedClass): string[] => {
    const out: string[] = [];
    for (let s = c.super; s && !out.includes(s); s = known.get(s)?.super ?? null) out.push(s);
    return out;
  };

  const classes = lib.classes.map((c) => {
    const where = `${lib.name}: class ${c.name}`;
    const supers = supersOf(c);
    const fields = c.fields.map((f) => {
      const isConstant = f.constant !== undefined;
      const attrs = isConstant ? concat(u16(1), u16(addUtf8('ConstantValue')), u32(2), u16(addInt(f.constant!))) : u16(0);
      return concat(new Uint8Array([isConstant ? 0xff : f.token]), u16(flagBits(f.flags, MEMBER_FLAGS, `${where} field ${f.name}`)), u16(addUtf8(f.name)), u16(addUtf8(f.descriptor)), attrs);
    });
    const methods = c.methods.map((m) =>
      concat(new Uint8Array([m.token]), u16(flagBits(m.flags, MEMBER_FLAGS, `${where} method ${m.name}`)), u16(addUtf8(m.name)), u16(addUtf8(m.descriptor))),
    );
    if (c.interfaces.length > 0xff) throw new ExportFileError(`${where}: more than 255 interfaces`);
    return concat(
      new Uint8Array([c.token]),
      u16(flagBits(c.flags, CLASS_FLAGS, where)),
      u16(addClass(c.name)),
      u16(supers.length),
      ...supers.map((s) => u16(addClass(s))),
      new Uint8Array([c.interfaces.length]),
      ...c.interfaces.map((i) => u16(addClass(i))),
      u16(fields.length),
      ...fields,
      u16(methods.length),
      ...methods,
    );
  });
  return concat(u32(EXPORT_MAGIC), new Uint8Array([minor, major]), u16(pool.length), ...pool, u16(thisPackage), new Uint8Array([lib.classes.length]), ...classes);
}

type CpEntry =
  | { tag: 'utf8'; text: string }
  | { tag: 'int'; value: number }
  | { tag: 'class'; name: number }
  | { tag: 'package'; flags: number; name: number; minor: number; major: number; aid: Uint8Array };

/** Reads an export file of format 2.1, 2.2 or 2.3; `origin` names it in errors. */
export function readExportFile(bytes: Uint8Array, origin = '<export file>'): ExportedPackage {
  let off = 0;
  const fail = (what: string): never => {
    throw new ExportFileError(`${origin}: offset ${off}: ${what}`);
  };
  const need = (n: number, what: string) => {
    if (off + n > bytes.length) fail(`truncated in ${what}`);
  };
  const u1 = (what: string) => (need(1, what), bytes[off++]);
  const u2 = (what: string) => (need(2, what), (off += 2), readU16(bytes, off - 2));
  const u4 = (what: string) => (need(4, what), (off += 4), readU32(bytes, off - 4));

  if (u4('magic') !== EXPORT_MAGIC) fail('not an export file (magic is not 0x00FACADE)');
  const minor = u1('minor_version');
  const major = u1('major_version');
  if (major !== 2 || minor < 1 || minor > 3) fail(`export file format ${major}.${minor} is not supported (2.1, 2.2, 2.3)`);
  const pool: CpEntry[] = [];
  const count = u2('constant_pool_count');
  for (let i = 0; i < count; i++) {
    const tag = u1('constant_pool tag');
    if (tag === TAG.Utf8) {
      const n = u2('CONSTANT_Utf8 length');
      need(n, 'CONSTANT_Utf8 bytes');
      pool.push({ tag: 'utf8', text: new TextDecoder('utf-8', { fatal: false }).decode(bytes.subarray(off, off + n)) });
      off += n;
    } else if (tag === TAG.Integer) {
      pool.push({ tag: 'int', value: u4('CONSTANT_Integer') | 0 });
    } else if (tag === TAG.Classref) {
      pool.push({ tag: 'class', name: u2('CONSTANT_Classref') });
    } else if (tag === TAG.Package) {
      const flags = u1('CONSTANT_Package flags');
      const name = u2('CONSTANT_Package name_index');
      const pMinor = u1('CONSTANT_Package minor_version');
      const pMajor = u1('CONSTANT_Package major_version');
      const n = u1('CONSTANT_Package aid_length');
      need(n, 'CONSTANT_Package aid');
      pool.push({ tag: 'package', flags, name, minor: pMinor, major: pMajor, aid: bytes.slice(off, off + n) });
      off += n;
    } else {
      fail(`constant pool entry ${i} has the unknown tag ${tag}`);
    }
  }
  const entry = (i: number, what: string): CpEntry => pool[i] ?? fail(`${what}: constant pool index ${i} is out of range (${count} entries)`);
  const text = (i: number, what: string): string => {
    const e = entry(i, what);
    return e.tag === 'utf8' ? e.text : fail(`${what}: constant pool entry ${i} is not CONSTANT_Utf8`);
  };
  const classAt = (i: number, what: string): string => {
    const e = entry(i, what);
    return e.tag === 'class' ? dottedName(text(e.name, what)) : fail(`${what}: constant pool entry ${i} is not CONSTANT_Classref`);
  };
  const pe = entry(u2('this_package'), 'this_package');
  if (pe.tag !== 'package') return fail('this_package is not a CONSTANT_Package');
  const pkg = { name: dottedName(text(pe.name, 'package name')), aid: hex(pe.aid), major: pe.major, minor: pe.minor };
  if (minor >= 3) {
    const n = u1('referenced_package_count');
    for (let i = 0; i < n; i++) u2('referenced_packages');
  }
  const classes: ExportedClass[] = [];
  const classCount = u1('export_class_count');
  for (let ci = 0; ci < classCount; ci++) {
    const token = u1('class token');
    const access = u2('class access_flags');
    const name = classAt(u2('class name_index'), `class ${ci}`);
    const supers: string[] = [];
    for (let n = u2(`${name} export_supers_count`); n > 0; n--) supers.push(classAt(u2(`${name} supers`), `${name} supers`));
    const interfaces: string[] = [];
    for (let n = u1(`${name} export_interfaces_count`); n > 0; n--) interfaces.push(classAt(u2(`${name} interfaces`), `${name} interfaces`));
    const fields: ExportedField[] = [];
    for (let n = u2(`${name} export_fields_count`); n > 0; n--) {
      const fToken = u1('field token');
      const fAccess = u2('field access_flags');
      const fName = text(u2('field name_index'), `${name} field`);
      const descriptor = text(u2('field descriptor_index'), `${name}.${fName}`);
      let constant: number | undefined;
      for (let a = u2(`${name}.${fName} attributes_count`); a > 0; a--) {
        const aName = text(u2('attribute_name_index'), `${name}.${fName} attribute`);
        const len = u4('attribute_length');
        need(len, `${name}.${fName} ${aName}`);
        if (aName === 'ConstantValue') {
          if (len !== 2) fail(`${name}.${fName}: ConstantValue attribute length ${len} is not 2`);
          const k = entry(readU16(bytes, off), `${name}.${fName} ConstantValue`);
          constant = k.tag === 'int' ? k.value : fail(`${name}.${fName}: ConstantValue is not a CONSTANT_Integer`);
        }
        off += len; // other attributes are skipped (§5.8: a reader ignores attributes it does not know)
      }
      const flags = flagNames(fAccess, MEMBER_FLAGS, ['public', 'protected', 'static', 'final']);
      fields.push(
        constant !== undefined
          ? { name: fName, descriptor, token: fToken, flags, constant, kind: 'compile-time constant' }
          : { name: fName, descriptor, token: fToken, flags, kind: fAccess & ACC_STATIC ? 'static' : 'instance' },
      );
    }
    const methods: ExportedMethod[] = [];
    for (let n = u2(`${name} export_methods_count`); n > 0; n--) {
      const mToken = u1('method token');
      const mAccess = u2('method access_flags');
      const mName = text(u2('method name_index'), `${name} method`);
      const descriptor = text(u2('method descriptor_index'), `${name}.${mName}`);
      const kind = access & ACC_INTERFACE ? 'interface' : mAccess & ACC_STATIC || mName === '<init>' ? 'static' : 'virtual';
      methods.push({ name: mName, descriptor, token: mToken, kind, flags: flagNames(mAccess, MEMBER_FLAGS, ['public', 'protected', 'static', 'final', 'abstract']) });
    }
    if (minor >= 3) u1(`${name} CAP22_inheritable_public_method_token_count`);
    classes.push({ name, token, flags: flagNames(access, CLASS_FLAGS, CLASS_ORDER), super: supers[0] ?? null, interfaces, fields, methods });
  }
  if (off !== bytes.length) fail(`${bytes.length - off} bytes after the last class`);
  return { ...pkg, classes };
}
