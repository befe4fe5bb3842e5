// Reads every component of a framed CAP file (cap-reader.ts) into the typed CapPackage model (JCVM 3.0.5 ch. 6).
// Structural problems inside one component throw CapError naming the component and the offset into its info item;
// cross-component consistency is verify.ts's job.
import { CapError, TAG, componentInfo } from '../../cap-reader.ts';
import type { CapFile } from '../../cap-reader.ts';
import type {
  CapClassDescriptor,
  CapClassEntry,
  CapClassRef,
  CapDescriptorComponent,
  CapExceptionHandler,
  CapFieldDescriptor,
  CapMethodDescriptor,
  CapMethodHeader,
  CapPackage,
  CpEntry,
} from '../types.ts';
import { capFail, infoReader } from './bin.ts';

/** Class component flags (upper nibble of bitfield, JCVM §6.8.1). */
export const CLASS_ACC_INTERFACE = 0x8;
export const CLASS_ACC_SHAREABLE = 0x4;
export const CLASS_ACC_REMOTE = 0x2;
/** Method header flags, JCVM §6.9.2. */
export const METHOD_ACC_EXTENDED = 0x8;
export const METHOD_ACC_ABSTRACT = 0x4;
/** Descriptor access flags, JCVM §6.13. */
export const DESC_ACC_PUBLIC = 0x01;
export const DESC_ACC_PRIVATE = 0x02;
export const DESC_ACC_PROTECTED = 0x04;
export const DESC_ACC_STATIC = 0x08;
export const DESC_ACC_FINAL = 0x10;
export const DESC_ACC_INTERFACE = 0x40; // class descriptors
export const DESC_ACC_ABSTRACT_METHOD = 0x40; // method descriptors
export const DESC_ACC_ABSTRACT_CLASS = 0x80;
export const DESC_ACC_INIT = 0x80;

export function parseCapPackage(cap: CapFile): CapPackage {
  const v22 = cap.formatMinor >= 2;
  const need = (tag: number, name: string): Uint8Array => {
    const info = componentInfo(cap, tag);
    if (!info) throw new CapError(`no ${name} component`, name);
    return info;
  };
  const constantPool = parseConstantPool(need(TAG.ConstantPool, 'ConstantPool'));
  const { classes, signaturePool } = parseClassComponent(need(TAG.Class, 'Class'), v22);
  const methodInfo = need(TAG.Method, 'Method');
  const handlers = parseHandlers(methodInfo);
  const refLocation = decodeRefLocation(cap.referenceLocation.byteIndexOffsets, cap.referenceLocation.byte2IndexOffsets);
  const descInfo = componentInfo(cap, TAG.Descriptor);

  const pkg: CapPackage = {
    formatMajor: cap.formatMajor,
    formatMinor: cap.formatMinor,
    flags: cap.flags,
    package: { aid: cap.package.aid.slice(), major: cap.package.major, minor: cap.package.minor },
    applets: cap.applets.map((a) => ({ aid: a.aid.slice(), installMethodOffset: a.installMethodOffset })),
    imports: cap.imports.map((i) => ({ aid: i.aid.slice(), major: i.major, minor: i.minor })),
    constantPool,
    classes,
    method: { handlers, info: methodInfo.slice() },
    staticField: {
      imageSize: cap.staticField.imageSize,
      referenceCount: cap.staticField.referenceCount,
      arrayInits: cap.staticField.arrayInits.map((a) => ({ type: a.type, values: a.values.slice() })),
      defaultValueCount: cap.staticField.defaultValueCount,
      nonDefaultValues: cap.staticField.nonDefaultValues.slice(),
    },
    refLocation,
  };
  if (cap.package.name !== undefined) pkg.package.name = cap.package.name;
  if (signaturePool && signaturePool.length > 0) pkg.classSignaturePool = signaturePool;
  if (cap.exports) {
    pkg.exports = cap.exports.map((e) => ({
      classOffset: e.classOffset,
      staticFieldOffsets: [...e.staticFieldOffsets],
      staticMethodOffsets: [...e.staticMethodOffsets],
    }));
  }
  if (descInfo) pkg.descriptor = parseDescriptor(descInfo);
  const custom: { tag: number; aid: Uint8Array; data: Uint8Array }[] = [];
  for (const c of cap.directory.customComponents) {
    const raw = cap.components.get(c.tag);
    if (raw) custom.push({ tag: c.tag, aid: c.aid.slice(), data: raw.slice(3) });
  }
  if (custom.length) pkg.customComponents = custom;
  return pkg;
}

/** JCVM §6.7: u2 count, then 4-byte entries. */
export function parseConstantPool(info: Uint8Array): CpEntry[] {
  const r = infoReader('ConstantPool', info);
  const count = r.u2('count');
  const out: CpEntry[] = [];
  for (let i = 0; i < count; i++) {
    const at = r.pos;
    const tag = r.u1(`constant_pool[${i}].tag`);
    const what = `constant_pool[${i}]`;
    switch (tag) {
      case 1: {
        const ref = r.classRef(`${what} class_ref`);
        const pad = r.u1(`${what} padding`);
        if (pad !== 0) r.fail(`${what} (Classref) padding byte is 0x${pad.toString(16)}, must be 0`, at + 3);
        out.push({ tag: 1, kind: 'class', ref });
        break;
      }
      case 2:
      case 3:
      case 4: {
        const cls = r.classRef(`${what} class`);
        const token = r.u1(`${what} token`);
        if (tag === 4 && !cls.internal) r.fail(`${what} (SuperMethodref) names an external class; it must be the package's own class containing the invokespecial (JCVM §6.7.2)`, at + 1);
        if (tag === 2) out.push({ tag: 2, kind: 'instanceField', cls, token });
        else if (tag === 3) out.push({ tag: 3, kind: 'virtualMethod', cls, token });
        else out.push({ tag: 4, kind: 'superMethod', cls, token });
        break;
      }
      case 5:
      case 6: {
        const ref = r.staticRef(`${what} ${tag === 5 ? 'static_field_ref' : 'static_method_ref'}`);
        if (tag === 5) out.push({ tag: 5, kind: 'staticField', ref });
        else out.push({ tag: 6, kind: 'staticMethod', ref });
        break;
      }
      default:
        r.fail(`${what} has tag ${tag}, expected 1..6 (JCVM §6.7 Table 6-5)`, at);
    }
  }
  if (!r.atEnd()) r.fail(`${info.length - r.pos} byte(s) left over after ${count} constant pool entries`);
  return out;
}

/** JCVM §6.8 (CAP 2.2 adds the signature pool and remote information). */
export function parseClassComponent(info: Uint8Array, v22: boolean): { classes: CapClassEntry[]; signaturePool?: Uint8Array } {
  const r = infoReader('Class', info);
  let signaturePool: Uint8Array | undefined;
  if (v22) {
    const len = r.u2('signature_pool_length');
    signaturePool = r.take(len, 'signature_pool');
    checkTypeDescriptors(signaturePool, 'Class', 2);
  }
  const classes: CapClassEntry[] = [];
  let sawClass = false;
  while (!r.atEnd()) {
    const offset = r.pos;
    const bitfield = r.u1('bitfield');
    const flags = bitfield >> 4;
    const count = bitfield & 0x0f;
    const what = `${flags & CLASS_ACC_INTERFACE ? 'interface_info' : 'class_info'} at offset ${offset}`;
    if (flags & 0x1) r.fail(`${what}: reserved flag bit 0x1 is set (flags 0x${flags.toString(16)})`, offset);
    if (flags & CLASS_ACC_INTERFACE) {
      if (sawClass) r.fail(`${what} follows a class_info; every interface_info comes before the classes (JCVM §6.8)`, offset);
      const superInterfaces: CapClassRef[] = [];
      for (let i = 0; i < count; i++) superInterfaces.push(r.classRef(`${what} superinterfaces[${i}]`));
      const entry: CapClassEntry = { kind: 'interface', offset, flags, superInterfaces };
      if (v22 && flags & CLASS_ACC_REMOTE) {
        const at = r.pos;
        const len = r.u1(`${what} interface_name_length`);
        r.take(len, `${what} interface_name`);
        entry.remoteInfo = info.slice(at, r.pos);
      }
      classes.push(entry);
      continue;
    }
    sawClass = true;
    const superRaw = r.u2(`${what} super_class_ref`);
    const superclass: CapClassRef | null =
      superRaw === 0xffff ? null : superRaw & 0x8000 ? { internal: false, pkg: (superRaw >> 8) & 0x7f, classToken: superRaw & 0xff } : { internal: true, classOffset: superRaw };
    const declaredInstanceSize = r.u1(`${what} declared_instance_size`);
    const firstReferenceToken = r.u1(`${what} first_reference_token`);
    const referenceCount = r.u1(`${what} reference_count`);
    const publicMethodTableBase = r.u1(`${what} public_method_table_base`);
    const publicMethodTableCount = r.u1(`${what} public_method_table_count`);
    const packageMethodTableBase = r.u1(`${what} package_method_table_base`);
    const packageMethodTableCount = r.u1(`${what} package_method_table_count`);
    if (referenceCount > 0 && firstReferenceToken === 0xff) {
      r.fail(`${what}: reference_count ${referenceCount} but first_reference_token is 0xFF (none)`, offset + 4);
    }
    if (publicMethodTableBase + publicMethodTableCount > 128) {
      r.fail(`${what}: public method table ${publicMethodTableBase}+${publicMethodTableCount} exceeds the 128 public virtual method tokens`, offset + 6);
    }
    if (packageMethodTableBase + packageMethodTableCount > 128) {
      r.fail(`${what}: package method table ${packageMethodTableBase}+${packageMethodTableCount} exceeds the 128 package virtual method tokens`, offset + 8);
    }
    const publicVirtualMethodTable: number[] = [];
    for (let i = 0; i < publicMethodTableCount; i++) publicVirtualMethodTable.push(r.u2(`${what} public_virtual_method_table[${i}]`));
    const packageVirtualMethodTable: number[] = [];
    for (let i = 0; i < packageMethodTableCount; i++) packageVirtualMethodTable.push(r.u2(`${what} package_virtual_method_table[${i}]`));
    const interfaces = [];
    for (let i = 0; i < count; i++) {
      const iface = r.classRef(`${what} interfaces[${i}].interface`);
      const n = r.u1(`${what} interfaces[${i}].count`);
      interfaces.push({ iface, indexes: [...r.take(n, `${what} interfaces[${i}].index`)] });
    }
    const entry: CapClassEntry = {
      kind: 'class',
      offset,
      flags,
      superclass,
      declaredInstanceSize,
      firstReferenceToken,
      referenceCount,
      publicMethodTableBase,
      publicMethodTableCount,
      packageMethodTableBase,
      packageMethodTableCount,
      publicVirtualMethodTable,
      packageVirtualMethodTable,
      interfaces,
    };
    if (v22 && flags & CLASS_ACC_REMOTE) {
      // remote_interface_info (§6.8.2): skipped structurally, kept raw.
      const at = r.pos;
      const methods = r.u1(`${what} remote_methods_count`);
      r.take(methods * 5, `${what} remote_methods`);
      const hm = r.u1(`${what} hash_modifier_length`);
      r.take(hm, `${what} hash_modifier`);
      const cn = r.u1(`${what} class_name_length`);
      r.take(cn, `${what} class_name`);
      const ri = r.u1(`${what} remote_interfaces_count`);
      r.take(ri * 2, `${what} remote_interfaces`);
      entry.remoteInfo = info.slice(at, r.pos);
    }
    classes.push(entry);
  }
  return signaturePool ? { classes, signaturePool } : { classes };
}

/** type_descriptor sequence (§6.8.1 signature_pool, §6.13.4 type_desc): u1 nibble_count + ceil(n/2) bytes each. */
export function checkTypeDescriptors(data: Uint8Array, component: string, base: number): number[] {
  const starts: number[] = [];
  let p = 0;
  while (p < data.length) {
    starts.push(p);
    const n = data[p];
    if (n === 0) capFail(component, base + p, 'type descriptor with nibble_count 0');
    const len = 1 + ((n + 1) >> 1);
    if (p + len > data.length) capFail(component, base + p, `type descriptor of ${n} nibbles runs past the end of the type descriptors`);
    p += len;
  }
  return starts;
}

/** JCVM §6.9: u1 handler_count, then 8-byte exception_handler_info entries. */
export function parseHandlers(info: Uint8Array): CapExceptionHandler[] {
  const r = infoReader('Method', info);
  const count = r.u1('handler_count');
  const out: CapExceptionHandler[] = [];
  for (let i = 0; i < count; i++) {
    const startOffset = r.u2(`exception_handlers[${i}].start_offset`);
    const bits = r.u2(`exception_handlers[${i}].active_length`);
    const handlerOffset = r.u2(`exception_handlers[${i}].handler_offset`);
    const catchTypeIndex = r.u2(`exception_handlers[${i}].catch_type_index`);
    out.push({ startOffset, activeLength: bits & 0x7fff, stop: (bits & 0x8000) !== 0, handlerOffset, catchTypeIndex });
  }
  return out;
}

/** Offset of the first method_info: after handler_count and the handlers. */
export function methodsStart(info: Uint8Array): number {
  return info.length ? 1 + info[0] * 8 : 0;
}

/** method_header_info / extended_method_header_info at `offset` (§6.9.2). */
export function readMethodHeader(info: Uint8Array, offset: number): CapMethodHeader {
  if (offset < methodsStart(info) || offset + 2 > info.length) {
    capFail('Method', offset, `no method header fits at offset ${offset} (methods occupy ${methodsStart(info)}..${info.length - 1})`);
  }
  const flags = info[offset] >> 4;
  if (flags & METHOD_ACC_EXTENDED) {
    if (offset + 4 > info.length) capFail('Method', offset, 'extended method header runs past the end of the Method component');
    if (info[offset] & 0x0f) capFail('Method', offset, `extended method header padding is 0x${(info[offset] & 15).toString(16)}, must be 0`);
    return { flags, maxStack: info[offset + 1], nargs: info[offset + 2], maxLocals: info[offset + 3], headerSize: 4 };
  }
  return { flags, maxStack: info[offset] & 0x0f, nargs: info[offset + 1] >> 4, maxLocals: info[offset + 1] & 0x0f, headerSize: 2 };
}

/**
 * RefLocation lists (§6.11): each entry is the distance from the previous location (the first from the start of the
 * Method component's info); a distance of 255 or more is written as runs of 255 followed by the remainder.
 */
export function decodeRefLocation(byteList: Uint8Array, byte2List: Uint8Array): { byteIndex: number[]; byte2Index: number[] } {
  const decode = (list: Uint8Array, base: number, name: string): number[] => {
    const out: number[] = [];
    let acc = 0;
    for (let i = 0; i < list.length; i++) {
      acc += list[i];
      if (list[i] === 255) continue;
      if (out.length && acc === out[out.length - 1]) {
        capFail('ReferenceLocation', base + i, `${name}[${i}] is a zero distance: offset ${acc} is listed twice`);
      }
      out.push(acc);
    }
    if (list.length && list[list.length - 1] === 255) {
      capFail('ReferenceLocation', base + list.length - 1, `${name} ends inside a run of 255 distances (the remainder entry is missing)`);
    }
    return out;
  };
  return {
    byteIndex: decode(byteList, 2, 'offsets_to_byte_indices'),
    byte2Index: decode(byte2List, 4 + byteList.length, 'offsets_to_byte2_indices'),
  };
}

/** JCVM §6.13. */
export function parseDescriptor(info: Uint8Array): CapDescriptorComponent {
  const r = infoReader('Descriptor', info);
  const classCount = r.u1('class_count');
  const classes: CapClassDescriptor[] = [];
  for (let c = 0; c < classCount; c++) {
    const what = `classes[${c}]`;
    const token = r.u1(`${what}.token`);
    const flags = r.u1(`${what}.access_flags`);
    const thisClass = r.classRef(`${what}.this_class_ref`);
    const ifCount = r.u1(`${what}.interface_count`);
    const fieldCount = r.u2(`${what}.field_count`);
    const methodCount = r.u2(`${what}.method_count`);
    const interfaces: CapClassRef[] = [];
    for (let i = 0; i < ifCount; i++) interfaces.push(r.classRef(`${what}.interfaces[${i}]`));
    const fields: CapFieldDescriptor[] = [];
    for (let i = 0; i < fieldCount; i++) {
      const fw = `${what}.fields[${i}]`;
      const ftoken = r.u1(`${fw}.token`);
      const fflags = r.u1(`${fw}.access_flags`);
      let field: CapFieldDescriptor['field'];
      if (fflags & DESC_ACC_STATIC) field = { static: true, ref: r.staticRef(`${fw}.field_ref`) };
      else {
        const cls = r.classRef(`${fw}.field_ref.class`);
        field = { static: false, cls, token: r.u1(`${fw}.field_ref.token`) };
      }
      fields.push({ token: ftoken, flags: fflags, field, type: r.u2(`${fw}.type`) });
    }
    const methods: CapMethodDescriptor[] = [];
    for (let i = 0; i < methodCount; i++) {
      const mw = `${what}.methods[${i}]`;
      methods.push({
        token: r.u1(`${mw}.token`),
        flags: r.u1(`${mw}.access_flags`),
        methodOffset: r.u2(`${mw}.method_offset`),
        typeOffset: r.u2(`${mw}.type_offset`),
        bytecodeCount: r.u2(`${mw}.bytecode_count`),
        exceptionHandlerCount: r.u2(`${mw}.exception_handler_count`),
        exceptionHandlerIndex: r.u2(`${mw}.exception_handler_index`),
      });
    }
    classes.push({ token, flags, thisClass, interfaces, fields, methods });
  }
  const cpCount = r.u2('types.constant_pool_count');
  const constantPoolTypes: number[] = [];
  for (let i = 0; i < cpCount; i++) constantPoolTypes.push(r.u2(`types.constant_pool_types[${i}]`));
  const typeDescriptors = info.slice(r.pos);
  checkTypeDescriptors(typeDescriptors, 'Descriptor', r.pos);
  return { classes, constantPoolTypes, typeDescriptors };
}

/** Offset (from the start of type_descriptor_info) of the first type descriptor: after the u2 count and the CP types. */
export function typeDescriptorsBase(d: CapDescriptorComponent): number {
  return 2 + 2 * d.constantPoolTypes.length;
}
