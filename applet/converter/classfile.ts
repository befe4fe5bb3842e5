// Reads a JVM class file (JVMS 17 ch. 4) into a typed ClassFile: constant pool with every tag kind, fields with
// ConstantValue, methods with Code (exception table, LineNumberTable, LocalVariableTable), SourceFile and the raw
// InnerClasses. Malformed input throws ClassFileError naming the origin, the byte offset and what is wrong.
// Only what the Java Card converter needs is interpreted; other attributes are kept raw, StackMapTable is skipped
// (the converter recomputes everything it needs from the bytecode).
import { readU16, readU32 } from '../../emulator/bytes.ts';
import { DescriptorError, parseFieldType, parseMethodDescriptor } from './descriptor.ts';

export { parseDescriptor, parseFieldType, parseMethodDescriptor, DescriptorError } from './descriptor.ts';
export type { Descriptor, FieldType, BaseCode } from './descriptor.ts';

export class ClassFileError extends Error {
  readonly origin: string;
  readonly offset: number;
  constructor(origin: string, offset: number, what: string) {
    super(`${origin}: at byte ${offset}: ${what}`);
    this.name = 'ClassFileError';
    this.origin = origin;
    this.offset = offset;
  }
}

/** Constant pool tags, JVMS §4.4 Table 4.4-B. */
export const CP_TAG = {
  Utf8: 1,
  Integer: 3,
  Float: 4,
  Long: 5,
  Double: 6,
  Class: 7,
  String: 8,
  Fieldref: 9,
  Methodref: 10,
  InterfaceMethodref: 11,
  NameAndType: 12,
  MethodHandle: 15,
  MethodType: 16,
  Dynamic: 17,
  InvokeDynamic: 18,
  Module: 19,
  Package: 20,
} as const;

export type CpEntry =
  | { readonly tag: 'Utf8'; readonly value: string }
  | { readonly tag: 'Integer'; readonly value: number }
  | { readonly tag: 'Float'; readonly value: number }
  | { readonly tag: 'Long'; readonly value: bigint }
  | { readonly tag: 'Double'; readonly value: number }
  | { readonly tag: 'Class'; readonly nameIndex: number }
  | { readonly tag: 'String'; readonly stringIndex: number }
  | { readonly tag: 'Fieldref' | 'Methodref' | 'InterfaceMethodref'; readonly classIndex: number; readonly nameAndTypeIndex: number }
  | { readonly tag: 'NameAndType'; readonly nameIndex: number; readonly descriptorIndex: number }
  | { readonly tag: 'MethodHandle'; readonly referenceKind: number; readonly referenceIndex: number }
  | { readonly tag: 'MethodType'; readonly descriptorIndex: number }
  | { readonly tag: 'Dynamic' | 'InvokeDynamic'; readonly bootstrapMethodAttrIndex: number; readonly nameAndTypeIndex: number }
  | { readonly tag: 'Module' | 'Package'; readonly nameIndex: number };

export type CpTag = CpEntry['tag'];

/** Access flags, JVMS §4.1 Table 4.1-B, §4.5 Table 4.5-A, §4.6 Table 4.6-A. */
export const ACC = {
  PUBLIC: 0x0001,
  PRIVATE: 0x0002,
  PROTECTED: 0x0004,
  STATIC: 0x0008,
  FINAL: 0x0010,
  SUPER: 0x0020, // class
  SYNCHRONIZED: 0x0020, // method
  VOLATILE: 0x0040, // field
  BRIDGE: 0x0040, // method
  TRANSIENT: 0x0080, // field
  VARARGS: 0x0080, // method
  NATIVE: 0x0100,
  INTERFACE: 0x0200,
  ABSTRACT: 0x0400,
  STRICT: 0x0800,
  SYNTHETIC: 0x1000,
  ANNOTATION: 0x2000,
  ENUM: 0x4000,
  MODULE: 0x8000,
} as const;

/** An attribute kept as its bytes; `offset` is where its info starts in the class file. */
export interface RawAttribute {
  readonly name: string;
  readonly offset: number;
  readonly info: Uint8Array;
}

/** A loadable constant (ConstantValue, ldc), resolved. */
export type ConstantValue =
  | { readonly kind: 'int'; readonly value: number }
  | { readonly kind: 'float'; readonly value: number }
  | { readonly kind: 'long'; readonly value: bigint }
  | { readonly kind: 'double'; readonly value: number }
  | { readonly kind: 'string'; readonly value: string }
  | { readonly kind: 'class'; readonly value: string }
  | { readonly kind: 'methodType'; readonly value: string }
  | { readonly kind: 'methodHandle'; readonly value: number }
  | { readonly kind: 'dynamic'; readonly value: number };

export interface FieldInfo {
  readonly accessFlags: number;
  readonly name: string;
  readonly descriptor: string;
  /** ConstantValue attribute (JVMS §4.7.2): the CP index and its value. */
  readonly constantValue?: { readonly index: number; readonly value: ConstantValue };
  readonly attributes: readonly RawAttribute[];
}

export interface ExceptionHandler {
  readonly startPc: number;
  readonly endPc: number;
  readonly handlerPc: number;
  /** Internal class name, or null for a catch-all (finally). */
  readonly catchType: string | null;
}

export interface LineNumber {
  readonly startPc: number;
  readonly line: number;
}

export interface LocalVariable {
  readonly startPc: number;
  readonly length: number;
  readonly name: string;
  readonly descriptor: string;
  readonly index: number;
}

export interface CodeAttribute {
  readonly maxStack: number;
  readonly maxLocals: number;
  readonly code: Uint8Array;
  /** Offset of code[0] in the class file, for error messages. */
  readonly codeOffset: number;
  readonly exceptionTable: readonly ExceptionHandler[];
  /** LineNumberTable entries of all such attributes, sorted by startPc (JVMS §4.7.12); empty without debug info. */
  readonly lineNumbers: readonly LineNumber[];
  /** LocalVariableTable entries (JVMS §4.7.13), or undefined when javac ran without -g. */
  readonly localVariables?: readonly LocalVariable[];
  /** Other Code attributes, raw (StackMapTable is dropped). */
  readonly attributes: readonly RawAttribute[];
}

export interface MethodInfo {
  readonly accessFlags: number;
  readonly name: string;
  readonly descriptor: string;
  readonly code?: CodeAttribute;
  /** Exceptions attribute (JVMS §4.7.5): declared thrown classes. */
  readonly exceptions: readonly string[];
  readonly attributes: readonly RawAttribute[];
}

export interface MemberRef {
  readonly kind: 'Fieldref' | 'Methodref' | 'InterfaceMethodref';
  readonly owner: string;
  readonly name: string;
  readonly descriptor: string;
}

export interface ClassFile {
  readonly origin: string;
  readonly minorVersion: number;
  readonly majorVersion: number;
  /** Index 0 and the slot after each Long/Double are null (JVMS §4.4.5). */
  readonly constantPool: readonly (CpEntry | null)[];
  readonly accessFlags: number;
  /** Internal names ("a/b/C"). */
  readonly thisClass: string;
  readonly superClass: string | null;
  readonly interfaces: readonly string[];
  readonly fields: readonly FieldInfo[];
  readonly methods: readonly MethodInfo[];
  readonly sourceFile?: string;
  /** InnerClasses attribute info, raw (JVMS §4.7.6). */
  readonly innerClasses?: Uint8Array;
  readonly attributes: readonly RawAttribute[];
  utf8(index: number): string;
  /** The internal name of a CONSTANT_Class entry (array classes keep their descriptor form, "[B"). */
  className(index: number): string;
  nameAndType(index: number): { name: string; descriptor: string };
  memberRef(index: number): MemberRef;
  /** A loadable constant (ldc, ldc_w, ldc2_w, ConstantValue). */
  constant(index: number): ConstantValue;
}

/** JVMS §4.1: major versions 45 (JDK 1.0.2) through 61 (Java SE 17). */
export const MIN_MAJOR = 45;
export const MAX_MAJOR = 61;
const MAGIC = 0xcafebabe;

interface Cursor {
  pos: number;
  readonly data: Uint8Array;
  fail(what: string, at?: number): never;
  need(n: number, what: string): void;
  u1(what: string): number;
  u2(what: string): number;
  u4(what: string): number;
  take(n: number, what: string): Uint8Array;
}

function cursor(origin: string, data: Uint8Array, start = 0, end = data.length): Cursor {
  const c: Cursor = {
    pos: start,
    data,
    fail(what: string, at = c.pos): never {
      throw new ClassFileError(origin, at, what);
    },
    need(n: number, what: string): void {
      if (c.pos + n > end) c.fail(`truncated: ${what} needs ${n} byte(s) but ${Math.max(0, end - c.pos)} remain`);
    },
    u1(what: string): number {
      c.need(1, what);
      return data[c.pos++];
    },
    u2(what: string): number {
      c.need(2, what);
      const v = readU16(data, c.pos);
      c.pos += 2;
      return v;
    },
    u4(what: string): number {
      c.need(4, what);
      const v = readU32(data, c.pos);
      c.pos += 4;
      return v;
    },
    take(n: number, what: string): Uint8Array {
      c.need(n, what);
      const out = data.subarray(c.pos, c.pos + n);
      c.pos += n;
      return out;
    },
  };
  return c;
}

/** Modified UTF-8 (JVMS §4.4.7): no NUL bytes, no 4-byte forms; supplementary characters arrive as surrogate pairs. */
function decodeModifiedUtf8(b: Uint8Array, fail: (what: string, at: number) => never, base: number): string {
  const units: number[] = [];
  for (let i = 0; i < b.length; ) {
    const x = b[i];
    if (x >= 0x01 && x <= 0x7f) {
      units.push(x);
      i++;
    } else if ((x & 0xe0) === 0xc0) {
      if (i + 1 >= b.length || (b[i + 1] & 0xc0) !== 0x80) fail('bad modified UTF-8 two-byte sequence', base + i);
      units.push(((x & 0x1f) << 6) | (b[i + 1] & 0x3f));
      i += 2;
    } else if ((x & 0xf0) === 0xe0) {
      if (i + 2 >= b.length || (b[i + 1] & 0xc0) !== 0x80 || (b[i + 2] & 0xc0) !== 0x80) {
        fail('bad modified UTF-8 three-byte sequence', base + i);
      }
      units.push(((x & 0x0f) << 12) | ((b[i + 1] & 0x3f) << 6) | (b[i + 2] & 0x3f));
      i += 3;
    } else {
      fail(`byte 0x${x.toString(16).padStart(2, '0')} cannot occur in modified UTF-8`, base + i);
    }
  }
  let s = '';
  for (let i = 0; i < units.length; i += 4096) s += String.fromCharCode(...units.slice(i, i + 4096));
  return s;
}

/** Reads the constant pool (JVMS §4.4); returns entries and the file offset of each entry's tag byte. */
function readConstantPool(c: Cursor): { pool: (CpEntry | null)[]; offsets: number[] } {
  const count = c.u2('constant_pool_count');
  if (count === 0) c.fail('constant_pool_count is 0 (must be at least 1)', c.pos - 2);
  const pool: (CpEntry | null)[] = [null];
  const offsets: number[] = [0];
  const view = new DataView(c.data.buffer, c.data.byteOffset, c.data.byteLength);
  for (let i = 1; i < count; i++) {
    const at = c.pos;
    offsets[i] = at;
    const tag = c.u1(`constant pool entry #${i} tag`);
    const what = `constant pool entry #${i}`;
    let e: CpEntry;
    switch (tag) {
      case CP_TAG.Utf8: {
        const len = c.u2(what);
        const start = c.pos;
        e = { tag: 'Utf8', value: decodeModifiedUtf8(c.take(len, what), c.fail, start) };
        break;
      }
      case CP_TAG.Integer:
        e = { tag: 'Integer', value: c.u4(what) | 0 };
        break;
      case CP_TAG.Float:
        c.need(4, what);
        e = { tag: 'Float', value: view.getFloat32(c.pos) };
        c.pos += 4;
        break;
      case CP_TAG.Long:
      case CP_TAG.Double:
        // JVMS §4.4.5: 8-byte constants take two entries; the second is unusable.
        c.need(8, what);
        e = tag === CP_TAG.Long ? { tag: 'Long', value: view.getBigInt64(c.pos) } : { tag: 'Double', value: view.getFloat64(c.pos) };
        c.pos += 8;
        if (i + 1 >= count) c.fail(`${what}: 8-byte constant in the last slot of the pool`, at);
        pool[i] = e;
        i++;
        pool[i] = null;
        offsets[i] = at;
        continue;
      case CP_TAG.Class:
        e = { tag: 'Class', nameIndex: c.u2(what) };
        break;
      case CP_TAG.String:
        e = { tag: 'String', stringIndex: c.u2(what) };
        break;
      case CP_TAG.Fieldref:
      case CP_TAG.Methodref:
      case CP_TAG.InterfaceMethodref: {
        const kind = tag === CP_TAG.Fieldref ? 'Fieldref' : tag === CP_TAG.Methodref ? 'Methodref' : 'InterfaceMethodref';
        e = { tag: kind, classIndex: c.u2(what), nameAndTypeIndex: c.u2(what) };
        break;
      }
      case CP_TAG.NameAndType:
        e = { tag: 'NameAndType', nameIndex: c.u2(what), descriptorIndex: c.u2(what) };
        break;
      case CP_TAG.MethodHandle:
        e = { tag: 'MethodHandle', referenceKind: c.u1(what), referenceIndex: c.u2(what) };
        break;
      case CP_TAG.MethodType:
        e = { tag: 'MethodType', descriptorIndex: c.u2(what) };
        break;
      case CP_TAG.Dynamic:
      case CP_TAG.InvokeDynamic:
        e = {
          tag: tag === CP_TAG.Dynamic ? 'Dynamic' : 'InvokeDynamic',
          bootstrapMethodAttrIndex: c.u2(what),
          nameAndTypeIndex: c.u2(what),
        };
        break;
      case CP_TAG.Module:
      case CP_TAG.Package:
        e = { tag: tag === CP_TAG.Module ? 'Module' : 'Package', nameIndex: c.u2(what) };
        break;
      default:
        c.fail(`${what}: unknown constant pool tag ${tag}`, at);
    }
    pool[i] = e;
  }
  return { pool, offsets };
}

/** JVMS §4.4: every index inside an entry must name an entry of the right kind. */
function checkPoolReferences(pool: readonly (CpEntry | null)[], offsets: readonly number[], fail: (what: string, at: number) => never): void {
  for (let i = 1; i < pool.length; i++) {
    const e = pool[i];
    if (!e) continue;
    const expect = (index: number, tags: readonly CpTag[], field: string): void => {
      const t = pool[index];
      if (index <= 0 || index >= pool.length || !t || !tags.includes(t.tag)) {
        const found = index <= 0 || index >= pool.length ? 'out of range' : t ? t.tag : 'an unusable slot';
        fail(`constant pool entry #${i} (${e.tag}): ${field} #${index} must be ${tags.join('/')}, found ${found}`, offsets[i]);
      }
    };
    switch (e.tag) {
      case 'Class':
      case 'Module':
      case 'Package':
        expect(e.nameIndex, ['Utf8'], 'name_index');
        break;
      case 'String':
        expect(e.stringIndex, ['Utf8'], 'string_index');
        break;
      case 'Fieldref':
      case 'Methodref':
      case 'InterfaceMethodref':
        expect(e.classIndex, ['Class'], 'class_index');
        expect(e.nameAndTypeIndex, ['NameAndType'], 'name_and_type_index');
        break;
      case 'NameAndType':
        expect(e.nameIndex, ['Utf8'], 'name_index');
        expect(e.descriptorIndex, ['Utf8'], 'descriptor_index');
        break;
      case 'MethodHandle':
        if (e.referenceKind < 1 || e.referenceKind > 9) fail(`constant pool entry #${i}: reference_kind ${e.referenceKind} not in 1..9`, offsets[i]);
        expect(e.referenceIndex, e.referenceKind <= 4 ? ['Fieldref'] : ['Methodref', 'InterfaceMethodref'], 'reference_index');
        break;
      case 'MethodType':
        expect(e.descriptorIndex, ['Utf8'], 'descriptor_index');
        break;
      case 'Dynamic':
      case 'InvokeDynamic':
        expect(e.nameAndTypeIndex, ['NameAndType'], 'name_and_type_index');
        break;
      default:
        break;
    }
  }
}

/** Parses a class file. `origin` (a path or class name) prefixes every error message. */
export function readClassFile(bytes: Uint8Array, origin = '<class file>'): ClassFile {
  const c: Cursor = cursor(origin, bytes);
  const magic = c.u4('magic');
  if (magic !== MAGIC) c.fail(`bad magic 0x${magic.toString(16).padStart(8, '0')} (expected 0xcafebabe)`, 0);
  const minorVersion = c.u2('minor_version');
  const majorVersion = c.u2('major_version');
  if (majorVersion < MIN_MAJOR || majorVersion > MAX_MAJOR) {
    c.fail(`unsupported class file version ${majorVersion}.${minorVersion} (accepted: ${MIN_MAJOR}..${MAX_MAJOR})`, 6);
  }
  const { pool, offsets } = readConstantPool(c);
  checkPoolReferences(pool, offsets, c.fail);

  // Typed look-ups; `at` is the offset of the u2 that held the index, for the error.
  const entry = <T extends CpTag>(index: number, tag: T, at: number, what: string): Extract<CpEntry, { tag: T }> => {
    const e = index > 0 && index < pool.length ? pool[index] : null;
    if (!e || e.tag !== tag) {
      const found = index <= 0 || index >= pool.length ? 'out of range' : e ? e.tag : 'an unusable slot';
      c.fail(`${what}: constant pool index #${index} must be ${tag}, found ${found}`, at);
    }
    return e as Extract<CpEntry, { tag: T }>;
  };
  const utf8At = (index: number, at: number, what: string): string => entry(index, 'Utf8', at, what).value;
  const classAt = (index: number, at: number, what: string): string => utf8At(entry(index, 'Class', at, what).nameIndex, at, what);
  const constantAt = (index: number, at: number, what: string): ConstantValue => {
    const e = index > 0 && index < pool.length ? pool[index] : null;
    if (!e) c.fail(`${what}: constant pool index #${index} is not a loadable constant`, at);
    switch (e.tag) {
      case 'Integer':
        return { kind: 'int', value: e.value };
      case 'Float':
        return { kind: 'float', value: e.value };
      case 'Long':
        return { kind: 'long', value: e.value };
      case 'Double':
        return { kind: 'double', value: e.value };
      case 'String':
        return { kind: 'string', value: utf8At(e.stringIndex, at, what) };
      case 'Class':
        return { kind: 'class', value: utf8At(e.nameIndex, at, what) };
      case 'MethodType':
        return { kind: 'methodType', value: utf8At(e.descriptorIndex, at, what) };
      case 'MethodHandle':
        return { kind: 'methodHandle', value: index };
      case 'Dynamic':
        return { kind: 'dynamic', value: index };
      default:
        return c.fail(`${what}: constant pool entry #${index} (${e.tag}) is not a loadable constant`, at);
    }
  };
  const descriptorCheck = (desc: string, method: boolean, at: number, what: string): void => {
    try {
      if (method) parseMethodDescriptor(desc);
      else parseFieldType(desc);
    } catch (err) {
      if (err instanceof DescriptorError) c.fail(`${what}: ${err.message}`, at);
      throw err;
    }
  };

  // JVMS §4.4.2: member references carry field descriptors (Fieldref) or method descriptors (the others).
  for (let i = 1; i < pool.length; i++) {
    const e = pool[i];
    if (e && (e.tag === 'Fieldref' || e.tag === 'Methodref' || e.tag === 'InterfaceMethodref')) {
      const nt = entry(e.nameAndTypeIndex, 'NameAndType', offsets[i], `constant pool entry #${i}`);
      descriptorCheck(utf8At(nt.descriptorIndex, offsets[i], ''), e.tag !== 'Fieldref', offsets[i], `constant pool entry #${i} (${e.tag})`);
    }
  }

  const accessFlags = c.u2('access_flags');
  let at = c.pos;
  const thisClass = classAt(c.u2('this_class'), at, 'this_class');
  at = c.pos;
  const superIndex = c.u2('super_class');
  // JVMS §4.1: super_class 0 only for java/lang/Object (and module-info).
  const superClass = superIndex === 0 ? null : classAt(superIndex, at, 'super_class');
  const interfaces: string[] = [];
  const interfaceCount = c.u2('interfaces_count');
  for (let i = 0; i < interfaceCount; i++) {
    at = c.pos;
    interfaces.push(classAt(c.u2(`interfaces[${i}]`), at, `interfaces[${i}]`));
  }

  /** attribute_info (JVMS §4.7): u2 name index, u4 length, info; the info must lie within `end`. */
  const readAttributes = (r: Cursor, where: string, end: number): RawAttribute[] => {
    const out: RawAttribute[] = [];
    const count = r.u2(`${where} attributes_count`);
    for (let i = 0; i < count; i++) {
      const start = r.pos;
      const name = utf8At(r.u2(`${where} attribute name`), start, `${where} attribute_name_index`);
      const len = r.u4(`${where} attribute ${name} length`);
      if (r.pos + len > end) r.fail(`truncated: ${where} attribute ${name} claims ${len} bytes but ${Math.max(0, end - r.pos)} remain`, start + 2);
      out.push({ name, offset: r.pos, info: bytes.subarray(r.pos, r.pos + len) });
      r.pos += len;
    }
    return out;
  };
  const single = (attrs: readonly RawAttribute[], name: string, where: string): RawAttribute | undefined => {
    const found = attrs.filter((a) => a.name === name);
    if (found.length > 1) c.fail(`${where} has ${found.length} ${name} attributes (at most one allowed)`, found[1].offset - 6);
    return found[0];
  };
  /** A cursor over one attribute's info that must consume it exactly. */
  const within = (a: RawAttribute): Cursor => cursor(origin, bytes, a.offset, a.offset + a.info.length);
  const exact = (r: Cursor, a: RawAttribute, where: string): void => {
    const end = a.offset + a.info.length;
    if (r.pos !== end) r.fail(`${where} ${a.name} attribute length ${a.info.length} does not match its contents (${r.pos - a.offset} bytes)`, a.offset - 4);
  };

  const fields: FieldInfo[] = [];
  const fieldCount = c.u2('fields_count');
  for (let i = 0; i < fieldCount; i++) {
    const fa = c.u2(`field[${i}] access_flags`);
    at = c.pos;
    const name = utf8At(c.u2(`field[${i}] name_index`), at, `field[${i}] name_index`);
    at = c.pos;
    const descriptor = utf8At(c.u2(`field ${name} descriptor_index`), at, `field ${name} descriptor_index`);
    descriptorCheck(descriptor, false, at, `field ${name}`);
    const attributes = readAttributes(c, `field ${name}`, bytes.length);
    const cv = single(attributes, 'ConstantValue', `field ${name}`);
    let constantValue: FieldInfo['constantValue'];
    if (cv) {
      // JVMS §4.7.2: attribute_length is 2; the entry's kind must match the field type.
      const r = within(cv);
      const index = r.u2(`field ${name} ConstantValue`);
      exact(r, cv, `field ${name}`);
      constantValue = { index, value: constantAt(index, cv.offset, `field ${name} ConstantValue`) };
    }
    fields.push({ accessFlags: fa, name, descriptor, constantValue, attributes: attributes.filter((a) => a !== cv) });
  }

  const readCode = (a: RawAttribute, where: string): CodeAttribute => {
    // JVMS §4.7.3.
    const r = within(a);
    const maxStack = r.u2(`${where} max_stack`);
    const maxLocals = r.u2(`${where} max_locals`);
    const codeLengthAt = r.pos;
    const codeLength = r.u4(`${where} code_length`);
    if (codeLength === 0 || codeLength >= 65536) r.fail(`${where}: code_length ${codeLength} must be 1..65535`, codeLengthAt);
    if (r.pos + codeLength > a.offset + a.info.length) {
      r.fail(`${where}: code_length ${codeLength} runs past the end of the Code attribute (${a.offset + a.info.length - r.pos} bytes left)`, codeLengthAt);
    }
    const codeOffset = r.pos;
    const code = r.take(codeLength, `${where} code`);
    const exceptionTable: ExceptionHandler[] = [];
    const n = r.u2(`${where} exception_table_length`);
    for (let i = 0; i < n; i++) {
      const eAt = r.pos;
      const startPc = r.u2('start_pc');
      const endPc = r.u2('end_pc');
      const handlerPc = r.u2('handler_pc');
      const ctAt = r.pos;
      const ct = r.u2('catch_type');
      if (startPc >= endPc || endPc > codeLength || handlerPc >= codeLength) {
        r.fail(`${where}: exception_table[${i}] [${startPc}, ${endPc}) -> ${handlerPc} outside code of length ${codeLength}`, eAt);
      }
      exceptionTable.push({ startPc, endPc, handlerPc, catchType: ct === 0 ? null : classAt(ct, ctAt, `${where} exception_table[${i}] catch_type`) });
    }
    const attrs = readAttributes(r, where, a.offset + a.info.length);
    exact(r, a, where);

    const lineNumbers: LineNumber[] = [];
    let localVariables: LocalVariable[] | undefined;
    const rest: RawAttribute[] = [];
    for (const sub of attrs) {
      if (sub.name === 'LineNumberTable') {
        // JVMS §4.7.12: may occur several times; entries need not be in pc order.
        const s = within(sub);
        const len = s.u2(`${where} line_number_table_length`);
        for (let i = 0; i < len; i++) {
          const eAt = s.pos;
          const startPc = s.u2('start_pc');
          const line = s.u2('line_number');
          if (startPc >= codeLength) s.fail(`${where}: LineNumberTable start_pc ${startPc} outside code of length ${codeLength}`, eAt);
          lineNumbers.push({ startPc, line });
        }
        exact(s, sub, where);
      } else if (sub.name === 'LocalVariableTable') {
        // JVMS §4.7.13.
        const s = within(sub);
        const len = s.u2(`${where} local_variable_table_length`);
        localVariables ??= [];
        for (let i = 0; i < len; i++) {
          const startPc = s.u2('start_pc');
          const length = s.u2('length');
          let p = s.pos;
          const name = utf8At(s.u2('name_index'), p, `${where} LocalVariableTable name_index`);
          p = s.pos;
          const descriptor = utf8At(s.u2('descriptor_index'), p, `${where} LocalVariableTable descriptor_index`);
          const index = s.u2('index');
          localVariables.push({ startPc, length, name, descriptor, index });
        }
        exact(s, sub, where);
      } else if (sub.name !== 'StackMapTable') {
        rest.push(sub);
      }
    }
    lineNumbers.sort((x, y) => x.startPc - y.startPc);
    return { maxStack, maxLocals, code, codeOffset, exceptionTable, lineNumbers, localVariables, attributes: rest };
  };

  const methods: MethodInfo[] = [];
  const methodCount = c.u2('methods_count');
  for (let i = 0; i < methodCount; i++) {
    const ma = c.u2(`method[${i}] access_flags`);
    at = c.pos;
    const name = utf8At(c.u2(`method[${i}] name_index`), at, `method[${i}] name_index`);
    at = c.pos;
    const descriptor = utf8At(c.u2(`method ${name} descriptor_index`), at, `method ${name} descriptor_index`);
    const where = `method ${name}${descriptor}`;
    descriptorCheck(descriptor, true, at, where);
    const attributes = readAttributes(c, where, bytes.length);
    const codeAttr = single(attributes, 'Code', where);
    const code = codeAttr ? readCode(codeAttr, where) : undefined;
    // JVMS §4.7.3: abstract and native methods have no Code; every other method has exactly one.
    const bodyless = (ma & (ACC.ABSTRACT | ACC.NATIVE)) !== 0;
    if (bodyless && code) c.fail(`${where} is abstract or native but has a Code attribute`, codeAttr!.offset - 6);
    if (!bodyless && !code) c.fail(`${where} has no Code attribute`, at);
    const exAttr = single(attributes, 'Exceptions', where);
    const exceptions: string[] = [];
    if (exAttr) {
      const r = within(exAttr);
      const n = r.u2(`${where} number_of_exceptions`);
      for (let k = 0; k < n; k++) {
        const p = r.pos;
        exceptions.push(classAt(r.u2('exception_index'), p, `${where} Exceptions`));
      }
      exact(r, exAttr, where);
    }
    methods.push({ accessFlags: ma, name, descriptor, code, exceptions, attributes: attributes.filter((a) => a !== codeAttr && a !== exAttr) });
  }

  const attributes = readAttributes(c, 'class', bytes.length);
  const sf = single(attributes, 'SourceFile', 'class');
  let sourceFile: string | undefined;
  if (sf) {
    // JVMS §4.7.10.
    const r = within(sf);
    const p = r.pos;
    sourceFile = utf8At(r.u2('sourcefile_index'), p, 'SourceFile');
    exact(r, sf, 'class');
  }
  const inner = single(attributes, 'InnerClasses', 'class');
  // JVMS §4.8: a class file must not have extra bytes at the end.
  if (c.pos !== bytes.length) c.fail(`${bytes.length - c.pos} extra byte(s) after the last class attribute`);

  return {
    origin,
    minorVersion,
    majorVersion,
    constantPool: pool,
    accessFlags,
    thisClass,
    superClass,
    interfaces,
    fields,
    methods,
    sourceFile,
    innerClasses: inner?.info,
    attributes: attributes.filter((a) => a !== sf && a !== inner),
    utf8: (index) => utf8At(index, 0, 'utf8()'),
    className: (index) => classAt(index, 0, 'className()'),
    nameAndType(index) {
      const nt = entry(index, 'NameAndType', 0, 'nameAndType()');
      return { name: utf8At(nt.nameIndex, 0, 'nameAndType()'), descriptor: utf8At(nt.descriptorIndex, 0, 'nameAndType()') };
    },
    memberRef(index) {
      const e = index > 0 && index < pool.length ? pool[index] : null;
      if (!e || (e.tag !== 'Fieldref' && e.tag !== 'Methodref' && e.tag !== 'InterfaceMethodref')) {
        return c.fail(`memberRef(): constant pool index #${index} is not a field or method reference`, 0);
      }
      const nt = entry(e.nameAndTypeIndex, 'NameAndType', 0, 'memberRef()');
      return {
        kind: e.tag,
        owner: classAt(e.classIndex, 0, 'memberRef()'),
        name: utf8At(nt.nameIndex, 0, 'memberRef()'),
        descriptor: utf8At(nt.descriptorIndex, 0, 'memberRef()'),
      };
    },
    constant: (index) => constantAt(index, 0, 'constant()'),
  };
}

/** The source line of `pc` from the LineNumberTable (the last entry starting at or before pc), if any. */
export function lineAt(code: CodeAttribute, pc: number): number | undefined {
  let line: number | undefined;
  for (const e of code.lineNumbers) {
    if (e.startPc > pc) break;
    line = e.line;
  }
  return line;
}

/** "a/b/C" → "a.b.C". */
export function dotted(internalName: string): string {
  return internalName.replace(/\//g, '.');
}
