// Cross-component checks a loader makes before linking (JCVM 3.0.5 ch. 6, and the structural part of the off-card
// verifier's duties): every offset, index and token that one component takes from another must land on what it names.
// Not a type-level bytecode verifier: operand stack types are the linker's and interpreter's concern.
import { ACC_INT } from '../../cap-reader.ts';
import { OPCODES, instructionLength } from '../opcodes.ts';
import type { CapClassEntry, CapClassRef, CapMethodHeader, CapPackage, CapStaticRef, CpEntry } from '../types.ts';
import { capFail, hex16 } from './bin.ts';
import { CLASS_ACC_INTERFACE, DESC_ACC_INTERFACE, METHOD_ACC_ABSTRACT, METHOD_ACC_EXTENDED, checkTypeDescriptors, methodsStart, typeDescriptorsBase } from './parse.ts';

const KIND_TEXT: Record<CpEntry['kind'], string> = {
  class: 'a class reference',
  instanceField: 'an instance field reference',
  virtualMethod: 'a virtual method reference',
  superMethod: 'a super method reference',
  staticField: 'a static field reference',
  staticMethod: 'a static method reference',
};

/** A method as laid out in the Method component: header offset, bytecode start and end (exclusive). */
export interface MethodExtent {
  offset: number;
  header: CapMethodHeader;
  codeStart: number;
  end: number;
}

interface Ctx {
  p: CapPackage;
  info: Uint8Array;
  classes: Map<number, CapClassEntry>;
  /** Method header offsets → extent. */
  methods: Map<number, MethodExtent>;
  /** Offsets of every instruction start, per method header offset. */
  starts: Map<number, Set<number>>;
}

export function verifyCapPackage(p: CapPackage): void {
  const info = p.method.info;
  const classes = new Map<number, CapClassEntry>();
  for (const c of p.classes) classes.set(c.offset, c);
  const ctx: Ctx = { p, info, classes, methods: new Map(), starts: new Map() };

  checkImportsAndPool(ctx);
  checkClasses(ctx);
  layoutMethods(ctx);
  checkMethodRefs(ctx);
  checkStaticField(ctx);
  checkBytecode(ctx);
  checkHandlers(ctx);
  checkDescriptor(ctx);
}

// ---------------------------------------------------------------------------------------------------------------

function classRefOk(ctx: Ctx, ref: CapClassRef, component: string, at: number, what: string, want?: 'class' | 'interface'): void {
  if (!ref.internal) {
    if (ref.pkg >= ctx.p.imports.length) {
      capFail(component, at, `${what} names imported package ${ref.pkg}, but the Import component lists ${ctx.p.imports.length}`);
    }
    return;
  }
  const c = ctx.classes.get(ref.classOffset);
  if (!c) capFail(component, at, `${what} names class offset ${ref.classOffset}, where the Class component has no class or interface`);
  if (want && c.kind !== want) capFail(component, at, `${what} names the ${c.kind} at class offset ${ref.classOffset}, expected ${want === 'class' ? 'a class' : 'an interface'}`);
}

function staticRefOk(ctx: Ctx, ref: CapStaticRef, component: string, at: number, what: string): void {
  if (!ref.internal && ref.pkg >= ctx.p.imports.length) {
    capFail(component, at, `${what} names imported package ${ref.pkg}, but the Import component lists ${ctx.p.imports.length}`);
  }
}

function checkImportsAndPool(ctx: Ctx): void {
  const { p } = ctx;
  p.constantPool.forEach((e, i) => {
    const at = 2 + 4 * i;
    const what = `constant_pool[${i}] (${KIND_TEXT[e.kind]})`;
    switch (e.kind) {
      case 'class':
        classRefOk(ctx, e.ref, 'ConstantPool', at + 1, what);
        break;
      case 'instanceField': {
        classRefOk(ctx, e.cls, 'ConstantPool', at + 1, what, 'class');
        if (e.cls.internal) {
          const c = ctx.classes.get(e.cls.classOffset);
          if (c && c.kind === 'class' && e.token >= c.declaredInstanceSize) {
            capFail('ConstantPool', at + 3, `${what} uses field token ${e.token}, but the class at offset ${e.cls.classOffset} declares ${c.declaredInstanceSize} instance field cells`);
          }
        }
        break;
      }
      case 'virtualMethod':
        classRefOk(ctx, e.cls, 'ConstantPool', at + 1, what, 'class');
        if (e.token & 0x80 && !e.cls.internal) capFail('ConstantPool', at + 3, `${what} uses package-visible token 0x${e.token.toString(16)} on a class of another package`);
        break;
      case 'superMethod':
        classRefOk(ctx, e.cls, 'ConstantPool', at + 1, what, 'class');
        break;
      case 'staticField':
        staticRefOk(ctx, e.ref, 'ConstantPool', at + 1, what);
        if (e.ref.internal && e.ref.offset >= p.staticField.imageSize) {
          capFail('ConstantPool', at + 2, `${what} names static field offset ${e.ref.offset}, beyond the ${p.staticField.imageSize}-byte static field image`);
        }
        break;
      case 'staticMethod':
        staticRefOk(ctx, e.ref, 'ConstantPool', at + 1, what);
        break;
    }
  });
}

function checkClasses(ctx: Ctx): void {
  for (const c of ctx.p.classes) {
    const at = c.offset;
    if (c.kind === 'interface') {
      c.superInterfaces.forEach((s, i) => classRefOk(ctx, s, 'Class', at + 1 + 2 * i, `interface at offset ${at}: superinterfaces[${i}]`, 'interface'));
      continue;
    }
    const what = `class at offset ${at}`;
    if (c.superclass) {
      classRefOk(ctx, c.superclass, 'Class', at + 1, `${what}: super_class_ref`, 'class');
      // An internal superclass chain must end outside the package or at the root, never loop (JCVM §6.8.2).
      const seen = new Set<number>([c.offset]);
      let s: CapClassRef | null = c.superclass;
      while (s && s.internal) {
        if (seen.has(s.classOffset)) capFail('Class', at + 1, `${what}: the superclass chain loops through class offset ${s.classOffset}`);
        seen.add(s.classOffset);
        const next = ctx.classes.get(s.classOffset);
        s = next && next.kind === 'class' ? next.superclass : null;
      }
    }
    if (c.referenceCount > 0 && c.firstReferenceToken + c.referenceCount > c.declaredInstanceSize) {
      capFail('Class', at + 4, `${what}: reference fields ${c.firstReferenceToken}..${c.firstReferenceToken + c.referenceCount - 1} exceed declared_instance_size ${c.declaredInstanceSize}`);
    }
    c.interfaces.forEach((itf, i) => classRefOk(ctx, itf.iface, 'Class', at, `${what}: interfaces[${i}]`, 'interface'));
  }
}

/** Finds every method's extent: from the Descriptor when present, otherwise between the known method starts. */
function layoutMethods(ctx: Ctx): void {
  const { p, info } = ctx;
  const first = methodsStart(info);
  if (first > info.length) capFail('Method', 0, `handler_count ${info[0]} needs ${first - 1} bytes of handlers but the component has ${info.length - 1}`);
  if (first === info.length) return; // no methods at all (a package of interfaces only)
  const header = (off: number, what: string): CapMethodHeader => {
    if (off < first || off + 2 > info.length) capFail('Method', off, `${what} is offset ${off}, outside the methods (${first}..${info.length - 1})`);
    const flags = info[off] >> 4;
    if (flags & ~(METHOD_ACC_EXTENDED | METHOD_ACC_ABSTRACT)) capFail('Method', off, `${what}: method header at offset ${off} has reserved flag bits set (0x${flags.toString(16)})`);
    if (flags & METHOD_ACC_EXTENDED) {
      if (off + 4 > info.length) capFail('Method', off, `${what}: extended method header at offset ${off} runs past the end`);
      if (info[off] & 0x0f) capFail('Method', off, `${what}: extended method header at offset ${off} has non-zero padding`);
      return { flags, maxStack: info[off + 1], nargs: info[off + 2], maxLocals: info[off + 3], headerSize: 4 };
    }
    return { flags, maxStack: info[off] & 15, nargs: info[off + 1] >> 4, maxLocals: info[off + 1] & 15, headerSize: 2 };
  };
  const add = (off: number, end: number, h: CapMethodHeader, what: string) => {
    const codeStart = off + h.headerSize;
    if (end < codeStart || end > info.length) capFail('Method', off, `${what}: the method at offset ${off} would end at ${end}, outside ${codeStart}..${info.length}`);
    if (h.flags & METHOD_ACC_ABSTRACT && end !== codeStart) capFail('Method', off, `${what}: abstract method at offset ${off} has ${end - codeStart} bytecode bytes; it must have none (JCVM §6.9.2)`);
    ctx.methods.set(off, { offset: off, header: h, codeStart, end });
  };

  if (describes(p)) {
    const list: { off: number; count: number; what: string }[] = [];
    let pos = 1;
    for (const [ci, c] of p.descriptor.classes.entries()) {
      const isInterface = (c.flags & DESC_ACC_INTERFACE) !== 0;
      let mpos = pos + 9 + 2 * c.interfaces.length + 7 * c.fields.length;
      for (const [mi, m] of c.methods.entries()) {
        const what = `Descriptor classes[${ci}].methods[${mi}]`;
        if (isInterface) {
          if (m.methodOffset !== 0) capFail('Descriptor', mpos + 2, `${what} is an interface method but method_offset is ${m.methodOffset}, must be 0`);
        } else list.push({ off: m.methodOffset, count: m.bytecodeCount, what });
        mpos += 12;
      }
      pos = mpos;
    }
    list.sort((a, b) => a.off - b.off);
    let expect = first;
    for (const m of list) {
      if (ctx.methods.has(m.off)) capFail('Method', m.off, `${m.what}: two method descriptors give offset ${m.off}`);
      if (m.off !== expect) {
        capFail('Method', Math.min(m.off, expect), m.off > expect
          ? `bytes ${expect}..${m.off - 1} belong to no method in the Descriptor component`
          : `${m.what}: method at offset ${m.off} overlaps the previous method, which ends at ${expect}`);
      }
      const h = header(m.off, m.what);
      add(m.off, m.off + h.headerSize + m.count, h, m.what);
      expect = m.off + h.headerSize + m.count;
    }
    if (expect !== info.length) capFail('Method', expect, `bytes ${expect}..${info.length - 1} belong to no method in the Descriptor component`);
    return;
  }
  // No Descriptor: the method starts are the offsets other components name; each method runs to the next start.
  const known = new Set<number>([first]);
  for (const off of namedMethodOffsets(p)) known.add(off.offset);
  const sorted = [...known].sort((a, b) => a - b);
  for (let i = 0; i < sorted.length; i++) {
    const off = sorted[i];
    const h = header(off, `method at offset ${off}`);
    const end = i + 1 < sorted.length ? sorted[i + 1] : info.length;
    if (off + h.headerSize > end) capFail('Method', off, `the method header at offset ${off} overlaps the method at offset ${end}`);
    add(off, h.flags & METHOD_ACC_ABSTRACT ? off + h.headerSize : end, h, `method at offset ${off}`);
    if (h.flags & METHOD_ACC_ABSTRACT && off + h.headerSize !== end) {
      capFail('Method', off + h.headerSize, `abstract method at offset ${off} is followed by ${end - off - h.headerSize} byte(s) that belong to no known method`);
    }
  }
}

/** Every method offset another component names, with where it is named (component, offset, what). */
function namedMethodOffsets(p: CapPackage): { offset: number; component: string; at: number; what: string }[] {
  const out: { offset: number; component: string; at: number; what: string }[] = [];
  let pos = 1;
  p.applets.forEach((a, i) => {
    pos += 1 + a.aid.length;
    out.push({ offset: a.installMethodOffset, component: 'Applet', at: pos, what: `applets[${i}].install_method_offset` });
    pos += 2;
  });
  for (const c of p.classes) {
    if (c.kind !== 'class') continue;
    const tables = c.offset + 10;
    c.publicVirtualMethodTable.forEach((m, i) => {
      if (m !== 0xffff) out.push({ offset: m, component: 'Class', at: tables + 2 * i, what: `class at offset ${c.offset}: public_virtual_method_table[${i}] (token ${c.publicMethodTableBase + i})` });
    });
    c.packageVirtualMethodTable.forEach((m, i) => {
      if (m !== 0xffff) out.push({ offset: m, component: 'Class', at: tables + 2 * (c.publicVirtualMethodTable.length + i), what: `class at offset ${c.offset}: package_virtual_method_table[${i}]` });
    });
  }
  let epos = 1;
  (p.exports ?? []).forEach((e, i) => {
    epos += 4 + 2 * e.staticFieldOffsets.length;
    e.staticMethodOffsets.forEach((m, j) => out.push({ offset: m, component: 'Export', at: epos + 2 * j, what: `class_exports[${i}].static_method_offsets[${j}]` }));
    epos += 2 * e.staticMethodOffsets.length;
  });
  p.constantPool.forEach((e, i) => {
    if (e.kind === 'staticMethod' && e.ref.internal) out.push({ offset: e.ref.offset, component: 'ConstantPool', at: 2 + 4 * i + 2, what: `constant_pool[${i}] (static method reference)` });
  });
  return out;
}

function checkMethodRefs(ctx: Ctx): void {
  for (const n of namedMethodOffsets(ctx.p)) {
    const m = ctx.methods.get(n.offset);
    if (!m) {
      capFail(n.component, n.at, `${n.what} is method offset ${n.offset}, which is not the start of a method in the Method component`);
    }
    if (n.component === 'Applet' && m.header.nargs !== 3) {
      capFail('Applet', n.at, `${n.what}: the method at ${n.offset} takes ${m.header.nargs} argument words; install(byte[],short,byte) takes 3`);
    }
    if ((n.component === 'Applet' || n.component === 'ConstantPool' || n.component === 'Export') && m.header.flags & METHOD_ACC_ABSTRACT) {
      capFail(n.component, n.at, `${n.what} names the abstract method at offset ${n.offset}, which has no code`);
    }
  }
  let epos = 1;
  for (const [i, e] of (ctx.p.exports ?? []).entries()) {
    if (!ctx.classes.has(e.classOffset)) capFail('Export', epos, `class_exports[${i}].class_offset ${e.classOffset} is not a class or interface in the Class component`);
    e.staticFieldOffsets.forEach((f, j) => {
      if (f >= ctx.p.staticField.imageSize) capFail('Export', epos + 4 + 2 * j, `class_exports[${i}].static_field_offsets[${j}] ${f} is beyond the ${ctx.p.staticField.imageSize}-byte static field image`);
    });
    epos += 4 + 2 * (e.staticFieldOffsets.length + e.staticMethodOffsets.length);
  }
}

function checkStaticField(ctx: Ctx): void {
  const s = ctx.p.staticField;
  if (s.arrayInits.length > s.referenceCount) {
    capFail('StaticField', 4, `array_init_count ${s.arrayInits.length} exceeds reference_count ${s.referenceCount}: each initialised array is a reference field`);
  }
  let pos = 6;
  const elem: Record<number, number> = { 2: 1, 3: 1, 4: 2, 5: 4 };
  for (const [i, a] of s.arrayInits.entries()) {
    const size = elem[a.type];
    if (!size) capFail('StaticField', pos, `array_init[${i}].type ${a.type} is not boolean (2), byte (3), short (4) or int (5)`);
    if (a.type === 5 && !(ctx.p.flags & ACC_INT)) capFail('StaticField', pos, `array_init[${i}] is an int array but the package does not set ACC_INT`);
    if (a.values.length % size) capFail('StaticField', pos + 1, `array_init[${i}] has ${a.values.length} bytes, not a whole number of ${size}-byte elements`);
    pos += 3 + a.values.length;
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Bytecode walk (JCVM §7.5): lengths, opcodes, operands, branch targets, locals, constant pool kinds, RefLocation.

type Want = CpEntry['kind'] | 'invokespecial' | 'cast';

/** CP-index operands by mnemonic: where the index sits after the opcode, its width, and the entry kind required. */
function cpOperand(mnemonic: string): { at: number; width: 1 | 2; want: Want } | undefined {
  if (/^(get|put)static_/.test(mnemonic)) return { at: 1, width: 2, want: 'staticField' };
  if (/^(get|put)field_[absi]_w$/.test(mnemonic)) return { at: 1, width: 2, want: 'instanceField' };
  if (/^(get|put)field_[absi](_this)?$/.test(mnemonic)) return { at: 1, width: 1, want: 'instanceField' };
  switch (mnemonic) {
    case 'invokevirtual': return { at: 1, width: 2, want: 'virtualMethod' };
    case 'invokespecial': return { at: 1, width: 2, want: 'invokespecial' };
    case 'invokestatic': return { at: 1, width: 2, want: 'staticMethod' };
    case 'invokeinterface': return { at: 2, width: 2, want: 'class' };
    case 'new':
    case 'anewarray': return { at: 1, width: 2, want: 'class' };
    case 'checkcast':
    case 'instanceof': return { at: 2, width: 2, want: 'cast' };
  }
  return undefined;
}

/** Local variable slots an instruction touches (first index, word count), or undefined. */
function localUse(code: Uint8Array, pc: number, mnemonic: string): [number, number] | undefined {
  const m = /^([asi])(load|store)(_(\d))?$/.exec(mnemonic);
  if (m) return [m[4] !== undefined ? Number(m[4]) : code[pc + 1], m[1] === 'i' ? 2 : 1];
  if (mnemonic === 'sinc' || mnemonic === 'sinc_w' || mnemonic === 'ret') return [code[pc + 1], 1];
  if (mnemonic === 'iinc' || mnemonic === 'iinc_w') return [code[pc + 1], 2];
  return undefined;
}

function s16(b: Uint8Array, o: number): number {
  return (((b[o] << 8) | b[o + 1]) << 16) >> 16;
}

/** Branch targets of the instruction at pc (absolute offsets). */
function branchTargets(code: Uint8Array, pc: number, operands: string): number[] {
  switch (operands) {
    case 'b1': return [pc + ((code[pc + 1] << 24) >> 24)];
    case 'b2': return [pc + s16(code, pc + 1)];
    case 'sw_stable': {
      const n = s16(code, pc + 5) - s16(code, pc + 3) + 1;
      const out = [pc + s16(code, pc + 1)];
      for (let i = 0; i < n; i++) out.push(pc + s16(code, pc + 7 + 2 * i));
      return out;
    }
    case 'sw_itable': {
      const lo = (code[pc + 3] << 24) | (code[pc + 4] << 16) | (code[pc + 5] << 8) | code[pc + 6];
      const hi = (code[pc + 7] << 24) | (code[pc + 8] << 16) | (code[pc + 9] << 8) | code[pc + 10];
      const out = [pc + s16(code, pc + 1)];
      for (let i = 0; i < hi - lo + 1; i++) out.push(pc + s16(code, pc + 11 + 2 * i));
      return out;
    }
    case 'sw_slookup': {
      const n = (code[pc + 3] << 8) | code[pc + 4];
      const out = [pc + s16(code, pc + 1)];
      for (let i = 0; i < n; i++) out.push(pc + s16(code, pc + 5 + 4 * i + 2));
      return out;
    }
    case 'sw_ilookup': {
      const n = (code[pc + 3] << 8) | code[pc + 4];
      const out = [pc + s16(code, pc + 1)];
      for (let i = 0; i < n; i++) out.push(pc + s16(code, pc + 5 + 6 * i + 4));
      return out;
    }
  }
  return [];
}

function checkBytecode(ctx: Ctx): void {
  const { p, info } = ctx;
  const byte1 = new Set(p.refLocation.byteIndex);
  const byte2 = new Set(p.refLocation.byte2Index);
  const seen1 = new Set<number>();
  const seen2 = new Set<number>();
  const hasInt = (p.flags & ACC_INT) !== 0;
  const cpDesc = (i: number) => `constant pool entry ${i}`;

  for (const m of ctx.methods.values()) {
    const starts = new Set<number>();
    const branches: { pc: number; target: number; mnemonic: string }[] = [];
    const locals = m.header.nargs + m.header.maxLocals;
    let pc = m.codeStart;
    while (pc < m.end) {
      const op = OPCODES[info[pc]];
      if (!op) capFail('Method', pc, `opcode 0x${info[pc].toString(16).padStart(2, '0')} is not a Java Card instruction (method at ${m.offset})`);
      const len = instructionLength(info, pc);
      if (len < 0 || pc + len > m.end) {
        capFail('Method', pc, `${op.mnemonic} runs past the end of the method at ${m.offset} (which ends at ${m.end}${m.end < info.length ? ', where the next method starts' : ''})`);
      }
      starts.add(pc);
      if (op.int && !hasInt) capFail('Method', pc, `${op.mnemonic} is an int instruction but the package does not set ACC_INT (JCVM §6.3)`);
      const use = localUse(info, pc, op.mnemonic);
      if (use && use[0] + use[1] > locals) {
        capFail('Method', pc, `${op.mnemonic} uses local ${use[0]}${use[1] === 2 ? ` and ${use[0] + 1}` : ''} but the method at ${m.offset} has ${locals} local words (nargs ${m.header.nargs} + max_locals ${m.header.maxLocals})`);
      }
      if (op.mnemonic === 'newarray' && (info[pc + 1] < 10 || info[pc + 1] > 13)) {
        capFail('Method', pc + 1, `newarray type ${info[pc + 1]} is not boolean (10), byte (11), short (12) or int (13)`);
      }
      if (op.mnemonic === 'newarray' && info[pc + 1] === 13 && !hasInt) capFail('Method', pc + 1, 'newarray of int but the package does not set ACC_INT');
      for (const target of branchTargets(info, pc, op.operands)) branches.push({ pc, target, mnemonic: op.mnemonic });

      const cp = cpOperand(op.mnemonic);
      if (cp) {
        const at = pc + cp.at;
        const index = cp.width === 1 ? info[at] : (info[at] << 8) | info[at + 1];
        let want = cp.want;
        let check = true;
        if (want === 'cast') {
          const atype = info[pc + 1];
          if (atype >= 10 && atype <= 13) check = false; // primitive array: the index is unused (§7.5.10)
          else if (atype !== 0 && atype !== 14) capFail('Method', pc + 1, `${op.mnemonic} type ${atype} is not 0 (class), 10..13 (primitive array) or 14 (reference array)`);
          want = 'class';
        }
        if (check) {
          const e = p.constantPool[index];
          if (!e) capFail('Method', at, `${op.mnemonic} uses ${cpDesc(index)}, but the constant pool has ${p.constantPool.length} entries`);
          const okKind = want === 'invokespecial' ? e.kind === 'staticMethod' || e.kind === 'superMethod' : e.kind === want;
          if (!okKind) {
            const expected = want === 'invokespecial' ? 'a static or super method reference' : KIND_TEXT[want as CpEntry['kind']];
            capFail('Method', pc, `${op.mnemonic} uses ${cpDesc(index)}, which is ${KIND_TEXT[e.kind]} (expected ${expected})`);
          }
          checkOperandTarget(ctx, pc, op.mnemonic, e, index);
          const list = cp.width === 1 ? byte1 : byte2;
          if (!list.has(at)) {
            capFail('Method', at, `${op.mnemonic} at ${pc} has a constant pool index at offset ${at} that the ReferenceLocation component does not list (offsets_to_byte${cp.width === 1 ? '' : '2'}_indices)`);
          }
          (cp.width === 1 ? seen1 : seen2).add(at);
        }
      }
      if (op.mnemonic === 'invokeinterface' && info[pc + 1] === 0) capFail('Method', pc + 1, 'invokeinterface nargs is 0; it counts the object reference');
      pc += len;
    }
    for (const b of branches) {
      if (b.target < m.codeStart || b.target >= m.end || !starts.has(b.target)) {
        capFail('Method', b.pc, `${b.mnemonic} at ${b.pc} jumps to ${b.target}, which is not an instruction start in the method at ${m.offset} (${m.codeStart}..${m.end - 1})`);
      }
    }
    ctx.starts.set(m.offset, starts);
  }
  for (const o of p.refLocation.byteIndex) if (!seen1.has(o)) capFail('ReferenceLocation', 2, `offsets_to_byte_indices lists Method offset ${o}, which is not a 1-byte constant pool index operand`);
  for (const o of p.refLocation.byte2Index) if (!seen2.has(o)) capFail('ReferenceLocation', 2, `offsets_to_byte2_indices lists Method offset ${o}, which is not a 2-byte constant pool index operand`);
}

/** Operand-specific checks once the entry kind is right: field widths, static field areas, interfaces, this-class. */
function checkOperandTarget(ctx: Ctx, pc: number, mnemonic: string, e: CpEntry, index: number): void {
  const { p } = ctx;
  const typeChar = /_([absi])(_w|_this)?$/.exec(mnemonic)?.[1];
  if (e.kind === 'staticField' && e.ref.internal && typeChar) {
    const refBytes = p.staticField.referenceCount * 2;
    const size = typeChar === 'a' || typeChar === 's' ? 2 : typeChar === 'b' ? 1 : 4;
    if ((typeChar === 'a') !== e.ref.offset < refBytes) {
      capFail('Method', pc, `${mnemonic} uses constant pool entry ${index}, static field offset ${e.ref.offset}, which is ${e.ref.offset < refBytes ? 'a reference' : 'a primitive'} field`);
    }
    if (e.ref.offset + size > p.staticField.imageSize) {
      capFail('Method', pc, `${mnemonic} uses static field offset ${e.ref.offset}: ${size} bytes from there pass the end of the ${p.staticField.imageSize}-byte image`);
    }
  }
  if (e.kind === 'instanceField' && e.cls.internal && typeChar) {
    const c = ctx.classes.get(e.cls.classOffset);
    if (c && c.kind === 'class') {
      const isRef = c.referenceCount > 0 && e.token >= c.firstReferenceToken && e.token < c.firstReferenceToken + c.referenceCount;
      if ((typeChar === 'a') !== isRef) {
        capFail('Method', pc, `${mnemonic} uses constant pool entry ${index}, field token ${e.token} of the class at ${e.cls.classOffset}, which is ${isRef ? 'a reference' : 'a primitive'} field`);
      }
      if (typeChar === 'i' && e.token + 2 > c.declaredInstanceSize) {
        capFail('Method', pc, `${mnemonic} uses field token ${e.token}, but an int needs two cells and the class declares ${c.declaredInstanceSize}`);
      }
    }
  }
  if ((mnemonic === 'new' || mnemonic === 'invokeinterface') && e.kind === 'class' && e.ref.internal) {
    const c = ctx.classes.get(e.ref.classOffset);
    const want = mnemonic === 'new' ? 'class' : 'interface';
    if (c && c.kind !== want) capFail('Method', pc, `${mnemonic} uses constant pool entry ${index}, which names the ${c.kind} at class offset ${e.ref.classOffset}`);
  }
  if (e.kind === 'staticMethod' && e.ref.internal) {
    const m = ctx.methods.get(e.ref.offset);
    if (m && m.header.flags & METHOD_ACC_ABSTRACT) capFail('Method', pc, `${mnemonic} calls the abstract method at ${e.ref.offset}`);
  }
}

function checkHandlers(ctx: Ctx): void {
  const { p } = ctx;
  const ranges = [...ctx.methods.values()];
  const owner = (off: number) => ranges.find((m) => off >= m.codeStart && off < m.end);
  p.method.handlers.forEach((h, i) => {
    const at = 1 + 8 * i;
    const what = `exception_handlers[${i}]`;
    const m = owner(h.startOffset);
    const starts = m && ctx.starts.get(m.offset);
    if (!m || !starts || !starts.has(h.startOffset)) capFail('Method', at, `${what}.start_offset ${h.startOffset} is not an instruction start in any method`);
    const end = h.startOffset + h.activeLength;
    if (h.activeLength === 0 || end > m.end || (end < m.end && !starts.has(end))) {
      capFail('Method', at + 2, `${what} protects ${h.startOffset}..${end - 1}, which does not end on an instruction boundary inside the method at ${m.offset} (${m.codeStart}..${m.end - 1})`);
    }
    if (h.handlerOffset < m.codeStart || h.handlerOffset >= m.end || !starts.has(h.handlerOffset)) {
      capFail('Method', at + 4, `${what}.handler_offset ${h.handlerOffset} is not an instruction start in the method at ${m.offset}, which holds its protected range`);
    }
    if (h.catchTypeIndex !== 0) {
      const e = p.constantPool[h.catchTypeIndex];
      if (!e) capFail('Method', at + 6, `${what}.catch_type_index ${h.catchTypeIndex} is beyond the ${p.constantPool.length}-entry constant pool`);
      if (e.kind !== 'class') capFail('Method', at + 6, `${what}.catch_type_index ${h.catchTypeIndex} is ${KIND_TEXT[e.kind]}, expected a class reference`);
    }
  });
}

/**
 * A Descriptor that describes no classes at all while the package has some is a stripped placeholder (test builders and
 * some tools emit one); it is treated as absent rather than as a package with undescribed classes.
 */
function describes(p: CapPackage): p is CapPackage & { descriptor: NonNullable<CapPackage['descriptor']> } {
  return p.descriptor !== undefined && (p.descriptor.classes.length > 0 || p.classes.length === 0);
}

function checkDescriptor(ctx: Ctx): void {
  const d = ctx.p.descriptor;
  if (!d || !describes(ctx.p)) return;
  // The type table follows the class descriptors; its count must match the pool before any offset into it means anything.
  const typesAt = d.classes.reduce((n, c) => n + 9 + 2 * c.interfaces.length + 7 * c.fields.length + 12 * c.methods.length, 1);
  if (d.constantPoolTypes.length !== ctx.p.constantPool.length) {
    capFail('Descriptor', typesAt, `type_descriptor_info.constant_pool_count is ${d.constantPoolTypes.length} but the constant pool has ${ctx.p.constantPool.length} entries`);
  }
  const base = typeDescriptorsBase(d);
  const typeStarts = new Set(checkTypeDescriptors(d.typeDescriptors, 'Descriptor', 0).map((s) => s + base));
  const typeOk = (t: number) => typeStarts.has(t);
  let pos = 1;
  const described = new Set<number>();
  for (const [ci, c] of d.classes.entries()) {
    const what = `classes[${ci}]`;
    if (!c.thisClass.internal) capFail('Descriptor', pos + 2, `${what}.this_class_ref names an external class; the Descriptor describes this package's classes`);
    const entry = ctx.classes.get(c.thisClass.classOffset);
    if (!entry) capFail('Descriptor', pos + 2, `${what}.this_class_ref is class offset ${c.thisClass.classOffset}, where the Class component has no class or interface`);
    if ((entry.kind === 'interface') !== ((c.flags & DESC_ACC_INTERFACE) !== 0)) {
      capFail('Descriptor', pos + 1, `${what}: ACC_INTERFACE is ${c.flags & DESC_ACC_INTERFACE ? 'set' : 'clear'} but class offset ${c.thisClass.classOffset} holds ${entry.kind === 'interface' ? 'an interface' : 'a class'}`);
    }
    if (entry.kind === 'interface' && (entry.flags & CLASS_ACC_INTERFACE) === 0) capFail('Class', entry.offset, 'interface without ACC_INTERFACE');
    if (described.has(c.thisClass.classOffset)) capFail('Descriptor', pos + 2, `${what} describes class offset ${c.thisClass.classOffset} a second time`);
    described.add(c.thisClass.classOffset);
    c.interfaces.forEach((itf, i) => classRefOk(ctx, itf, 'Descriptor', pos + 9 + 2 * i, `${what}.interfaces[${i}]`, 'interface'));
    let fpos = pos + 9 + 2 * c.interfaces.length;
    for (const [fi, f] of c.fields.entries()) {
      const fw = `${what}.fields[${fi}]`;
      if (f.field.static) {
        if (f.field.ref.internal && f.field.ref.offset >= ctx.p.staticField.imageSize) {
          capFail('Descriptor', fpos + 2, `${fw} is static field offset ${f.field.ref.offset}, beyond the ${ctx.p.staticField.imageSize}-byte static field image`);
        }
      } else classRefOk(ctx, f.field.cls, 'Descriptor', fpos + 2, `${fw}.class`, 'class');
      if (!(f.type >= 0x8002 && f.type <= 0x8005) && !typeOk(f.type)) {
        capFail('Descriptor', fpos + 5, `${fw}.type ${hex16(f.type)} is neither a primitive type (0x8002..0x8005) nor the offset of a type descriptor`);
      }
      fpos += 7;
    }
    for (const [mi, m] of c.methods.entries()) {
      const mw = `${what}.methods[${mi}]`;
      if (!typeOk(m.typeOffset)) capFail('Descriptor', fpos + 4, `${mw}.type_offset ${m.typeOffset} is not the offset of a type descriptor`);
      if (m.exceptionHandlerCount > 0) {
        const last = m.exceptionHandlerIndex + m.exceptionHandlerCount;
        if (last > ctx.p.method.handlers.length) {
          capFail('Descriptor', fpos + 10, `${mw} lists handlers ${m.exceptionHandlerIndex}..${last - 1} but the Method component has ${ctx.p.method.handlers.length}`);
        }
        const ext = ctx.methods.get(m.methodOffset);
        for (let h = m.exceptionHandlerIndex; ext && h < last; h++) {
          const s = ctx.p.method.handlers[h].startOffset;
          if (s < ext.codeStart || s >= ext.end) capFail('Descriptor', fpos + 10, `${mw}: exception handler ${h} protects offset ${s}, outside this method (${ext.codeStart}..${ext.end - 1})`);
        }
      }
      fpos += 12;
    }
    pos = fpos;
  }
  for (const c of ctx.p.classes) {
    if (!described.has(c.offset)) capFail('Descriptor', pos, `the ${c.kind} at class offset ${c.offset} has no class descriptor`);
  }
  d.constantPoolTypes.forEach((t, i) => {
    if (t !== 0xffff && !typeOk(t)) capFail('Descriptor', pos + 2 + 2 * i, `constant_pool_types[${i}] ${hex16(t)} is not the offset of a type descriptor`);
  });
}
