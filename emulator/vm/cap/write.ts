// Writes a CapPackage back to CAP bytes (JCVM 3.0.5 ch. 6): the Load File Data Block in GP install order and the
// JAR form. Sizes and the Directory are computed; offsets recorded in the model must agree with the layout written.
import { strToU8, zipSync } from 'fflate';
import { CapError, COMPONENT_FILES, LOAD_ORDER, TAG } from '../../cap-reader.ts';
import { concat } from '../../bytes.ts';
import type { CapDescriptorComponent, CapPackage } from '../types.ts';
import { byteBuilder } from './bin.ts';
import { CLASS_ACC_INTERFACE, DESC_ACC_STATIC } from './parse.ts';

function frame(tag: number, info: Uint8Array, name: string): Uint8Array {
  if (info.length === 0 || info.length > 0xffff) throw new CapError(`info of ${info.length} bytes cannot be written (1..65535)`, name);
  const out = new Uint8Array(3 + info.length);
  out[0] = tag;
  out[1] = info.length >> 8;
  out[2] = info.length & 0xff;
  out.set(info, 3);
  return out;
}

function aid(b: ReturnType<typeof byteBuilder>, a: Uint8Array): void {
  b.u1(a.length);
  b.bytes(a);
}

export function encodeHeader(p: CapPackage): Uint8Array {
  const b = byteBuilder();
  b.u2(0xdeca);
  b.u2(0xffed);
  b.u1(p.formatMinor);
  b.u1(p.formatMajor);
  b.u1(p.flags);
  b.u1(p.package.minor);
  b.u1(p.package.major);
  aid(b, p.package.aid);
  if (p.formatMinor >= 2) {
    const name = strToU8(p.package.name ?? '');
    b.u1(name.length);
    b.bytes(name);
  }
  return b.done();
}

export function encodeApplets(p: CapPackage): Uint8Array {
  const b = byteBuilder();
  b.u1(p.applets.length);
  for (const a of p.applets) {
    aid(b, a.aid);
    b.u2(a.installMethodOffset);
  }
  return b.done();
}

export function encodeImports(p: CapPackage): Uint8Array {
  const b = byteBuilder();
  b.u1(p.imports.length);
  for (const i of p.imports) {
    b.u1(i.minor);
    b.u1(i.major);
    aid(b, i.aid);
  }
  return b.done();
}

export function encodeConstantPool(p: CapPackage): Uint8Array {
  const b = byteBuilder();
  b.u2(p.constantPool.length);
  for (const e of p.constantPool) {
    b.u1(e.tag);
    switch (e.kind) {
      case 'class':
        b.classRef(e.ref);
        b.u1(0);
        break;
      case 'instanceField':
      case 'virtualMethod':
      case 'superMethod':
        b.classRef(e.cls);
        b.u1(e.token);
        break;
      default:
        b.staticRef(e.ref);
    }
  }
  return b.done();
}

export function encodeClass(p: CapPackage): Uint8Array {
  const b = byteBuilder();
  if (p.formatMinor >= 2) {
    const pool = p.classSignaturePool ?? new Uint8Array(0);
    b.u2(pool.length);
    b.bytes(pool);
  }
  for (const [i, c] of p.classes.entries()) {
    if (b.length !== c.offset) {
      throw new CapError(`classes[${i}] records offset ${c.offset} but is written at offset ${b.length}`, 'Class', b.length);
    }
    if (c.kind === 'interface') {
      b.u1(((c.flags | CLASS_ACC_INTERFACE) << 4) | c.superInterfaces.length);
      for (const s of c.superInterfaces) b.classRef(s);
    } else {
      b.u1((c.flags << 4) | c.interfaces.length);
      if (c.superclass) b.classRef(c.superclass);
      else b.u2(0xffff);
      b.u1(c.declaredInstanceSize);
      b.u1(c.firstReferenceToken);
      b.u1(c.referenceCount);
      b.u1(c.publicMethodTableBase);
      b.u1(c.publicVirtualMethodTable.length);
      b.u1(c.packageMethodTableBase);
      b.u1(c.packageVirtualMethodTable.length);
      for (const m of c.publicVirtualMethodTable) b.u2(m);
      for (const m of c.packageVirtualMethodTable) b.u2(m);
      for (const itf of c.interfaces) {
        b.classRef(itf.iface);
        b.u1(itf.indexes.length);
        for (const x of itf.indexes) b.u1(x);
      }
    }
    if (c.remoteInfo) b.bytes(c.remoteInfo);
  }
  return b.done();
}

/** The handler table (§6.9.1) as bytes: handler_count and the 8-byte entries. */
export function encodeHandlers(p: Pick<CapPackage, 'method'>['method']['handlers']): Uint8Array {
  const b = byteBuilder();
  b.u1(p.length);
  for (const h of p) {
    b.u2(h.startOffset);
    b.u2((h.stop ? 0x8000 : 0) | h.activeLength);
    b.u2(h.handlerOffset);
    b.u2(h.catchTypeIndex);
  }
  return b.done();
}

export function encodeMethod(p: CapPackage): Uint8Array {
  // The info already holds the handler table; the parsed handlers must agree with it.
  const table = encodeHandlers(p.method.handlers);
  const info = p.method.info;
  for (let i = 0; i < table.length; i++) {
    if (info[i] !== table[i]) {
      throw new CapError(`the handler table in method.info disagrees with method.handlers at byte ${i}`, 'Method', i);
    }
  }
  return info;
}

export function encodeStaticField(p: CapPackage): Uint8Array {
  const s = p.staticField;
  const b = byteBuilder();
  b.u2(s.imageSize);
  b.u2(s.referenceCount);
  b.u2(s.arrayInits.length);
  for (const a of s.arrayInits) {
    b.u1(a.type);
    b.u2(a.values.length);
    b.bytes(a.values);
  }
  b.u2(s.defaultValueCount);
  b.u2(s.nonDefaultValues.length);
  b.bytes(s.nonDefaultValues);
  return b.done();
}

/** Distances between ascending offsets, 255-runs for long gaps (§6.11). */
export function encodeRefList(offsets: readonly number[]): Uint8Array {
  const sorted = [...offsets].sort((a, b) => a - b);
  const out: number[] = [];
  let prev = 0;
  for (const o of sorted) {
    let d = o - prev;
    while (d >= 255) {
      out.push(255);
      d -= 255;
    }
    out.push(d);
    prev = o;
  }
  return Uint8Array.from(out);
}

export function encodeRefLocation(p: CapPackage): Uint8Array {
  const one = encodeRefList(p.refLocation.byteIndex);
  const two = encodeRefList(p.refLocation.byte2Index);
  const b = byteBuilder();
  b.u2(one.length);
  b.bytes(one);
  b.u2(two.length);
  b.bytes(two);
  return b.done();
}

export function encodeExport(p: CapPackage): Uint8Array {
  const b = byteBuilder();
  const list = p.exports ?? [];
  b.u1(list.length);
  for (const e of list) {
    b.u2(e.classOffset);
    b.u1(e.staticFieldOffsets.length);
    b.u1(e.staticMethodOffsets.length);
    for (const o of e.staticFieldOffsets) b.u2(o);
    for (const o of e.staticMethodOffsets) b.u2(o);
  }
  return b.done();
}

export function encodeDescriptor(d: CapDescriptorComponent): Uint8Array {
  const b = byteBuilder();
  b.u1(d.classes.length);
  for (const c of d.classes) {
    b.u1(c.token);
    b.u1(c.flags);
    b.classRef(c.thisClass);
    b.u1(c.interfaces.length);
    b.u2(c.fields.length);
    b.u2(c.methods.length);
    for (const i of c.interfaces) b.classRef(i);
    for (const f of c.fields) {
      b.u1(f.token);
      b.u1(f.field.static ? f.flags | DESC_ACC_STATIC : f.flags & ~DESC_ACC_STATIC);
      if (f.field.static) b.staticRef(f.field.ref);
      else {
        b.classRef(f.field.cls);
        b.u1(f.field.token);
      }
      b.u2(f.type);
    }
    for (const m of c.methods) {
      b.u1(m.token);
      b.u1(m.flags);
      b.u2(m.methodOffset);
      b.u2(m.typeOffset);
      b.u2(m.bytecodeCount);
      b.u2(m.exceptionHandlerCount);
      b.u2(m.exceptionHandlerIndex);
    }
  }
  b.u2(d.constantPoolTypes.length);
  for (const t of d.constantPoolTypes) b.u2(t);
  b.bytes(d.typeDescriptors);
  return b.done();
}

/** Every component's info by tag (Directory excluded), Descriptor when the model has one. */
export function encodeComponents(p: CapPackage): Map<number, Uint8Array> {
  const m = new Map<number, Uint8Array>();
  m.set(TAG.Header, encodeHeader(p));
  if (p.applets.length) m.set(TAG.Applet, encodeApplets(p));
  m.set(TAG.Import, encodeImports(p));
  m.set(TAG.ConstantPool, encodeConstantPool(p));
  m.set(TAG.Class, encodeClass(p));
  m.set(TAG.Method, encodeMethod(p));
  m.set(TAG.StaticField, encodeStaticField(p));
  m.set(TAG.ReferenceLocation, encodeRefLocation(p));
  if (p.exports) m.set(TAG.Export, encodeExport(p));
  if (p.descriptor) m.set(TAG.Descriptor, encodeDescriptor(p.descriptor));
  m.set(TAG.Directory, encodeDirectory(p, m));
  return m;
}

/**
 * JCVM §6.4. The Descriptor is required in the Directory even when it is not downloaded, so its size is always listed;
 * a model without one lists the size of the smallest Descriptor (no classes, no types) it would have.
 */
function encodeDirectory(p: CapPackage, m: Map<number, Uint8Array>): Uint8Array {
  const v22 = p.formatMinor >= 2;
  const custom = p.customComponents ?? [];
  const customBytes = custom.reduce((n, c) => n + 4 + c.aid.length, 0);
  const dirSize = (v22 ? 12 : 11) * 2 + 6 + 3 + customBytes;
  const b = byteBuilder();
  for (let tag = 1; tag <= (v22 ? 12 : 11); tag++) {
    if (tag === TAG.Directory) b.u2(dirSize);
    else if (tag === TAG.Descriptor && !m.has(tag)) b.u2(1 + 2 + 2 * p.constantPool.length);
    else b.u2(m.get(tag)?.length ?? 0);
  }
  const s = p.staticField;
  b.u2(s.imageSize);
  b.u2(s.arrayInits.length);
  b.u2(s.arrayInits.reduce((n, a) => n + a.values.length, 0));
  b.u1(p.imports.length);
  b.u1(p.applets.length);
  b.u1(custom.length);
  for (const c of custom) {
    b.u1(c.tag);
    b.u2(c.data.length);
    aid(b, c.aid);
  }
  return b.done();
}

const NAMES: Record<number, string> = {
  1: 'Header', 2: 'Directory', 3: 'Applet', 4: 'Import', 5: 'ConstantPool', 6: 'Class', 7: 'Method', 8: 'StaticField',
  9: 'ReferenceLocation', 10: 'Export', 11: 'Descriptor',
};

/** Components in GP install order (LOAD_ORDER), then custom components; Descriptor unless `descriptor: false`. */
export function writeLoadFileDataBlock(p: CapPackage, opts: { descriptor?: boolean } = {}): Uint8Array {
  const m = encodeComponents(p);
  const parts: Uint8Array[] = [];
  for (const tag of LOAD_ORDER) {
    if (tag === TAG.Descriptor && opts.descriptor === false) continue;
    const info = m.get(tag);
    if (info) parts.push(frame(tag, info, NAMES[tag]));
  }
  for (const c of p.customComponents ?? []) parts.push(frame(c.tag, c.data, `custom(tag ${c.tag})`));
  return concat(...parts);
}

/** "0xa0:0x00:..." as the converter writes AIDs in the manifest. */
function manifestAid(a: Uint8Array): string {
  return [...a].map((x) => `0x${x.toString(16).padStart(2, '0')}`).join(':');
}

/** The JAR form: META-INF/MANIFEST.MF and `<pkg path>/javacard/<Component>.cap` (JCVM §6.1.1). */
export function writeCapJar(p: CapPackage, pkgName: string): Uint8Array {
  const m = encodeComponents(p);
  const path = pkgName.replace(/\./g, '/');
  const manifest = [
    'Manifest-Version: 1.0',
    `Java-Card-CAP-File-Version: ${p.formatMajor}.${p.formatMinor}`,
    `Java-Card-Package-Version: ${p.package.major}.${p.package.minor}`,
    `Java-Card-Package-AID: ${manifestAid(p.package.aid)}`,
    `Java-Card-Package-Name: ${pkgName}`,
    ...p.applets.map((a, i) => `Java-Card-Applet-${i + 1}-AID: ${manifestAid(a.aid)}`),
    '',
    '',
  ].join('\r\n');
  const files: Record<string, Uint8Array> = { 'META-INF/MANIFEST.MF': strToU8(manifest) };
  for (const [tag, info] of m) files[`${path}/javacard/${COMPONENT_FILES[tag]}`] = frame(tag, info, NAMES[tag]);
  for (const c of p.customComponents ?? []) files[`${path}/javacard/Custom${c.tag}.cap`] = frame(c.tag, c.data, `custom(tag ${c.tag})`);
  return zipSync(files);
}
