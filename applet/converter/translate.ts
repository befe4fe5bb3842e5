// One method's JVM bytecode (JVMS §6.5) → JCVM bytecode (JCVM 3.0.5 §7.5) as jcasm instructions with labels, for
// emulator/vm/cap/asm.ts to lay out. Values are typed by an abstract interpretation over the method:
//   S  a short holding the exact value of the JVM int (loads of byte/short/boolean locals, fields, array elements,
//      constants in range, results of i2s/i2b);
//   T  a short holding only the low 16 bits of the JVM int (sadd/ssub/smul/… of shorts: javac computes in int, JCVM
//      2.2.3 allows computing in short when the result is narrowed before use);
//   I  a JCVM int (two words, JCVM §3.1);  A  a reference.
// T may only flow into consumers that truncate to 16 bits or less (i2s, i2b, short stores, short arguments and returns,
// array indexes). Where the source needs the whole int, the producing instruction is forced to compute in int (the set
// `forceInt`), an int value needed as a short below the top of the stack is narrowed where it is produced (`narrow`),
// and a local that ever holds an int takes two words (`intLocals`); each such discovery restarts the method.
import type { ClassFile, MethodInfo } from './classfile.ts';
import { lineAt } from './classfile.ts';
import { parseMethodDescriptor } from './descriptor.ts';
import type { FieldType } from './descriptor.ts';
import { ATYPE, decodeCode } from './jvm-opcodes.ts';
import type { Instruction } from './jvm-opcodes.ts';
import { asmInsnSize } from '../../emulator/vm/cap/asm.ts';
import type { AsmCatch, AsmInsn, AsmItem } from '../../emulator/vm/cap/asm.ts';
import { BY_MNEMONIC } from '../../emulator/vm/opcodes.ts';

export class TranslateError extends Error {
  readonly pc: number;
  constructor(pc: number, what: string) {
    super(what);
    this.name = 'TranslateError';
    this.pc = pc;
  }
}

class Restart extends Error {}

type Tag = 'S' | 'T' | 'I' | 'A';
interface Val {
  readonly tag: Tag;
  /** The pcs of the instructions that pushed this value (more than one after a merge). */
  readonly from: readonly number[];
}

export interface TranslatedMethod {
  body: AsmItem[];
  catches: AsmCatch[];
  /** Words (JCVM §6.9: max_stack, max_locals without the arguments). */
  maxStack: number;
  maxLocals: number;
  usesInt: boolean;
}

export interface TranslateHooks {
  /** True when owner.name+descriptor is a private method of this package (called with a static method ref). */
  isOwnPrivate(owner: string, name: string, descriptor: string): boolean;
}

const words = (v: Val): number => (v.tag === 'I' ? 2 : 1);
const wordsOf = (stack: readonly Val[]): number => stack.reduce((n, v) => n + words(v), 0);

/** JCVM value kind of a field or return type: byte, short and boolean are shorts (JCVM §3.1). */
function kindOf(t: FieldType | 'void'): Tag | undefined {
  if (t === 'void') return undefined;
  if (t.kind === 'class' || t.kind === 'array') return 'A';
  if (t.code === 'I') return 'I';
  if (t.code === 'B' || t.code === 'S' || t.code === 'Z') return 'S';
  return undefined;
}

function fieldLetter(desc: string): 'a' | 'b' | 's' | 'i' {
  if (desc.startsWith('L') || desc.startsWith('[')) return 'a';
  return desc === 'I' ? 'i' : desc === 'S' ? 's' : 'b';
}

/** Translates one method with code. Throws TranslateError (with the JVM pc) for what Java Card cannot express. */
export function translateMethod(cf: ClassFile, m: MethodInfo, hooks: TranslateHooks): TranslatedMethod {
  const code = m.code;
  if (!code) throw new TranslateError(0, 'method has no code');
  const insns = decodeCode(code.code, `${cf.thisClass}.${m.name}${m.descriptor}`);
  const desc = parseMethodDescriptor(m.descriptor);
  const isStatic = (m.accessFlags & 0x0008) !== 0;
  const state = { forceInt: new Set<number>(), narrow: new Set<number>(), intLocals: new Set<number>() };
  // Arguments: an int parameter is an int local from the start (JCVM §6.9.2: nargs counts int as two words).
  let slot = isStatic ? 0 : 1;
  for (const p of desc.params) {
    if (p.kind === 'base' && p.code === 'I') state.intLocals.add(slot);
    if (p.kind === 'base' && (p.code === 'J' || p.code === 'D')) slot++;
    slot++;
  }
  for (let round = 0; round < 10000; round++) {
    try {
      return translateOnce(cf, m, insns, hooks, state);
    } catch (e) {
      if (!(e instanceof Restart)) throw e;
    }
  }
  throw new TranslateError(0, 'type inference did not settle');
}

interface Emitted {
  items: AsmInsn[];
  out: Val[] | null; // null: no fall-through
  peak: number;
}

function translateOnce(
  cf: ClassFile,
  m: MethodInfo,
  insns: Instruction[],
  hooks: TranslateHooks,
  st: { forceInt: Set<number>; narrow: Set<number>; intLocals: Set<number> },
): TranslatedMethod {
  const code = m.code!;
  const line = (pc: number) => lineAt(code, pc) ?? 0;
  const fail = (pc: number, what: string): never => {
    throw new TranslateError(pc, what);
  };
  const force = (v: Val, set: Set<number>): never => {
    let changed = false;
    for (const p of v.from) {
      if (p < 0) continue;
      if (!set.has(p)) {
        set.add(p);
        changed = true;
      }
    }
    if (!changed) throw new TranslateError(v.from[0] ?? 0, 'cannot give this value the representation it needs (int and short at once)');
    throw new Restart();
  };
  const forceLocal = (idx: number): never => {
    st.intLocals.add(idx);
    throw new Restart();
  };

  // JCVM local offsets: a JVM local that ever holds an int takes two words.
  const localAt: number[] = [];
  let cells = 0;
  for (let i = 0; i < code.maxLocals; i++) {
    localAt.push(cells);
    cells += st.intLocals.has(i) ? 2 : 1;
  }
  const desc = parseMethodDescriptor(m.descriptor);
  const isStatic = (m.accessFlags & 0x0008) !== 0;
  let nargs = isStatic ? 0 : 1;
  for (const p of desc.params) nargs += kindOf(p) === 'I' ? 2 : 1;

  const byPc = new Map<number, number>();
  insns.forEach((ins, i) => byPc.set(ins.pc, i));
  const inState = new Map<number, Val[]>();
  const work: number[] = [];
  const join = (pc: number, stack: Val[], at: number) => {
    const old = inState.get(pc);
    if (!old) {
      inState.set(pc, stack);
      work.push(pc);
      return;
    }
    if (old.length !== stack.length) fail(at, 'operand stack height differs where paths meet');
    let changed = false;
    const merged = old.map((a, i) => {
      const b = stack[i];
      if ((a.tag === 'A') !== (b.tag === 'A')) fail(at, 'a reference and a number meet on the stack');
      if (a.tag === 'I' && b.tag !== 'I') force(b, st.forceInt);
      if (b.tag === 'I' && a.tag !== 'I') force(a, st.forceInt);
      const tag: Tag = a.tag === b.tag ? a.tag : 'T';
      const from = [...new Set([...a.from, ...b.from])];
      if (tag !== a.tag || from.length !== a.from.length) changed = true;
      return { tag, from };
    });
    if (changed) {
      inState.set(pc, merged);
      work.push(pc);
    }
  };

  const constPcs = new Set<number>();
  const handlersAt = (pc: number) => code.exceptionTable.filter((h) => pc >= h.startPc && pc < h.endPc);
  join(0, [], 0);
  const emitted = new Map<number, Emitted>();
  while (work.length) {
    const pc = work.pop()!;
    const ins = insns[byPc.get(pc)!];
    const stack = inState.get(pc)!;
    const e = step(ins, [...stack]);
    emitted.set(pc, e);
    for (const h of handlersAt(pc)) join(h.handlerPc, [{ tag: 'A', from: [-1] }], pc);
    if (e.out) {
      const next = insns[byPc.get(pc)! + 1];
      if (next) join(next.pc, e.out, pc);
      else fail(pc, 'code falls off its end');
    }
    for (const t of ins.targets) join(t, stack.slice(0, stack.length - popsOf(ins)), pc);
  }

  // Emission in pc order with labels on every branch target and handler boundary.
  const labelPcs = new Set<number>();
  for (const ins of insns) for (const t of ins.targets) labelPcs.add(t);
  for (const h of code.exceptionTable) {
    labelPcs.add(h.startPc);
    labelPcs.add(h.endPc);
    labelPcs.add(h.handlerPc);
  }
  const body: AsmItem[] = [];
  let maxStack = 0;
  let usesInt = false;
  for (const ins of insns) {
    if (labelPcs.has(ins.pc)) body.push({ label: `L${ins.pc}`, line: line(ins.pc) });
    const e = emitted.get(ins.pc);
    if (!e) continue; // unreachable
    for (const it of e.items) {
      body.push(it);
      if (BY_MNEMONIC.get(it.mnemonic)?.int) usesInt = true;
    }
    maxStack = Math.max(maxStack, e.peak);
  }
  if (labelPcs.has(code.code.length)) body.push({ label: `L${code.code.length}`, line: 0 });
  for (const i of st.intLocals) if (i < code.maxLocals) usesInt = true;
  widenBranches(body);
  const catches: AsmCatch[] = code.exceptionTable.map((h) => ({
    line: line(h.handlerPc),
    catchClass: h.catchType ?? null,
    from: `L${h.startPc}`,
    to: `L${h.endPc}`,
    handler: `L${h.handlerPc}`,
  }));
  return { body, catches, maxStack, maxLocals: Math.max(0, cells - nargs), usesInt };

  // -----------------------------------------------------------------------------------------------------------

  function popsOf(ins: Instruction): number {
    if (ins.switch) return 1;
    if (/^if_[ia]cmp/.test(ins.mnemonic)) return 2;
    if (/^if/.test(ins.mnemonic)) return 1;
    return 0;
  }

  /** The instruction's JCVM form for its input stack: emitted items, output stack, and peak words. */
  function step(ins: Instruction, stack: Val[]): Emitted {
    const pc = ins.pc;
    const items: AsmInsn[] = [];
    const L = line(pc);
    const emit = (mnemonic: string, ...args: (string | number)[]) => items.push({ line: L, mnemonic, args: args.map(String) });
    const before = wordsOf(stack);
    let extra = 0;
    const pop = (): Val => {
      const v = stack.pop();
      if (!v) return fail(pc, 'operand stack underflow');
      return v;
    };
    const peek = (depth: number): Val => stack[stack.length - 1 - depth];
    /** The value on top as a JCVM int (s2i in place; a truncated short is recomputed as int at its source). */
    const topInt = () => {
      const v = peek(0);
      if (v.tag === 'I') return;
      // A constant is pushed as an int where it is made (iconst/bipush/sipush) rather than widened here.
      if (v.tag === 'T' || v.from.every((p) => constPcs.has(p))) force(v, st.forceInt);
      emit('s2i');
      extra = Math.max(extra, 1);
      stack[stack.length - 1] = { tag: 'I', from: v.from };
    };
    /** The value on top as a short (truncation allowed). */
    const topShort = () => {
      const v = peek(0);
      if (v.tag === 'I') {
        emit('i2s');
        stack[stack.length - 1] = { tag: 'T', from: v.from };
      }
    };
    const belowInt = (depth: number) => {
      const v = peek(depth);
      if (v.tag !== 'I') force(v, st.forceInt);
    };
    const belowShort = (depth: number) => {
      const v = peek(depth);
      if (v.tag === 'I') force(v, st.narrow);
    };
    const exact = (v: Val) => {
      if (v.tag === 'T') force(v, st.forceInt);
    };
    /** Pushes a value this instruction produces, widening or narrowing it as the forced sets require. */
    const push = (tag: Tag) => {
      let t = tag;
      if (t !== 'A' && t !== 'I' && st.forceInt.has(pc)) {
        emit('s2i');
        t = 'I';
      } else if (t === 'I' && st.narrow.has(pc)) {
        emit('i2s');
        t = 'S';
      }
      stack.push({ tag: t, from: [pc] });
    };
    const done = (fallsThrough = true): Emitted => ({
      items,
      out: fallsThrough ? stack : null,
      peak: Math.max(before, wordsOf(stack)) + (items.length > 1 ? Math.max(extra, 2) : 0),
    });
    const local = (idx: number) => {
      if (idx >= code.maxLocals) fail(pc, `local ${idx} beyond max_locals`);
      return localAt[idx];
    };
    const localOp = (prefix: string, op: string, idx: number) => {
      const at = local(idx);
      if (at <= 3) emit(`${prefix}${op}_${at}`);
      else emit(`${prefix}${op}`, at);
    };
    const pushConst = (v: number) => {
      constPcs.add(pc);
      const asInt = st.forceInt.has(pc) || v < -32768 || v > 32767;
      if (asInt) {
        if (v >= -1 && v <= 5) emit(v === -1 ? 'iconst_m1' : `iconst_${v}`);
        else if (v >= -128 && v <= 127) emit('bipush', v);
        else if (v >= -32768 && v <= 32767) emit('sipush', v);
        else emit('iipush', v);
        stack.push({ tag: 'I', from: [pc] });
      } else {
        if (v >= -1 && v <= 5) emit(v === -1 ? 'sconst_m1' : `sconst_${v}`);
        else if (v >= -128 && v <= 127) emit('bspush', v);
        else emit('sspush', v);
        stack.push({ tag: 'S', from: [pc] });
      }
      return done();
    };
    const mn = ins.mnemonic;
    const loadStore = /^([ilfdab])(load|store)(?:_(\d))?$/.exec(mn);
    if (loadStore) {
      const [, t, op, n] = loadStore;
      const idx = n !== undefined ? Number(n) : ins.operands[0];
      if (t === 'l' || t === 'f' || t === 'd') fail(pc, `${mn}: long, float and double are not Java Card types`);
      if (t === 'b') fail(pc, mn);
      if (t === 'a') {
        if (op === 'load') {
          localOp('a', 'load', idx);
          stack.push({ tag: 'A', from: [pc] });
        } else {
          if (pop().tag !== 'A') fail(pc, 'astore of a number');
          localOp('a', 'store', idx);
        }
        return done();
      }
      const isInt = st.intLocals.has(idx);
      if (op === 'load') {
        localOp(isInt ? 'i' : 's', 'load', idx);
        push(isInt ? 'I' : 'S');
        return done();
      }
      const v = peek(0);
      if (isInt) topInt();
      else if (v.tag === 'I') forceLocal(idx);
      else if (v.tag === 'T') {
        // A short local would hold only the low bits of a genuine int: keep the int.
        st.intLocals.add(idx);
        force(v, st.forceInt);
      }
      pop();
      localOp(isInt ? 'i' : 's', 'store', idx);
      return done();
    }
    const arith = /^i(add|sub|mul|div|rem|neg|shl|shr|ushr|and|or|xor)$/.exec(mn);
    if (arith) {
      const op = arith[1];
      const unary = op === 'neg';
      const operands = unary ? [peek(0)] : [peek(1), peek(0)];
      const intMode = st.forceInt.has(pc) || op === 'ushr' || operands.some((v) => v.tag === 'I');
      if (intMode) {
        if (!unary) belowInt(1);
        topInt();
        pop();
        if (!unary) pop();
        emit(`i${op}`);
        stack.push({ tag: 'I', from: [pc] });
        if (st.narrow.has(pc)) {
          emit('i2s');
          stack[stack.length - 1] = { tag: 'S', from: [pc] };
        }
        return done();
      }
      // Short forms. Division, remainder and arithmetic right shift need the exact dividend/divisor/value.
      if (op === 'div' || op === 'rem') operands.forEach(exact);
      if (op === 'shr') exact(operands[0]);
      pop();
      if (!unary) pop();
      emit(`s${op}`);
      let tag: Tag = 'T';
      if (op === 'rem' || op === 'shr') tag = 'S';
      if ((op === 'and' || op === 'or' || op === 'xor') && operands.every((v) => v.tag === 'S')) tag = 'S';
      stack.push({ tag, from: [pc] });
      return done();
    }
    const cond = /^if(_icmp|_acmp)?(eq|ne|lt|ge|gt|le|null|nonnull)$/.exec(mn);
    if (cond) {
      const [, cmp, c] = cond;
      const target = `L${ins.targets[0]}`;
      if (cmp === '_acmp' || c === 'null' || c === 'nonnull') {
        pop();
        if (cmp) pop();
        emit(mn, target);
        return done();
      }
      if (cmp === '_icmp') {
        const a = peek(1);
        const b = peek(0);
        if (a.tag === 'S' && b.tag === 'S') {
          pop();
          pop();
          emit(`if_scmp${c}`, target);
          return done();
        }
        belowInt(1);
        topInt();
        pop();
        pop();
        emit('icmp');
        emit(`if${c}`, target); // icmp gives -1/0/1 (JCVM §7.5.icmp): test it against 0 as the JVM tests a - b
        return done();
      }
      const v = peek(0);
      if (v.tag === 'S') {
        pop();
        emit(mn, target);
        return done();
      }
      exact(v);
      pop();
      emit('iconst_0');
      emit('icmp');
      emit(`if${c}`, target);
      extra = 2;
      return done();
    }
    switch (mn) {
      case 'nop':
        return done();
      case 'aconst_null':
        emit('aconst_null');
        stack.push({ tag: 'A', from: [pc] });
        return done();
      case 'iconst_m1': case 'iconst_0': case 'iconst_1': case 'iconst_2': case 'iconst_3': case 'iconst_4': case 'iconst_5':
        return pushConst(mn === 'iconst_m1' ? -1 : Number(mn.slice(7)));
      case 'bipush':
      case 'sipush':
        return pushConst(ins.operands[0]);
      case 'ldc':
      case 'ldc_w': {
        const k = cf.constant(ins.operands[0]);
        if (k.kind !== 'int') return fail(pc, `${mn} of a ${k.kind} constant: Java Card has no ${k.kind === 'string' ? 'String' : k.kind} values`);
        return pushConst(k.value);
      }
      case 'i2s':
      case 'i2b': {
        const v = pop();
        if (v.tag === 'I') emit(mn);
        else if (mn === 'i2b') emit('s2b');
        stack.push({ tag: 'S', from: [pc] });
        if (st.forceInt.has(pc)) {
          emit('s2i');
          stack[stack.length - 1] = { tag: 'I', from: [pc] };
        }
        return done();
      }
      case 'iinc': {
        const [idx, k] = ins.operands;
        if (!st.intLocals.has(idx)) forceLocal(idx);
        emit(k >= -128 && k <= 127 ? 'iinc' : 'iinc_w', local(idx), k);
        return done();
      }
      case 'baload':
      case 'saload':
      case 'iaload':
      case 'aaload': {
        topShort();
        pop();
        pop();
        emit(mn);
        push(mn === 'iaload' ? 'I' : mn === 'aaload' ? 'A' : 'S');
        return done();
      }
      case 'bastore':
      case 'sastore':
      case 'iastore':
      case 'aastore': {
        if (mn === 'iastore') topInt();
        else if (mn !== 'aastore') topShort();
        belowShort(1);
        pop();
        pop();
        pop();
        emit(mn);
        return done();
      }
      case 'arraylength':
        pop();
        emit('arraylength');
        push('S');
        return done();
      case 'newarray': {
        topShort();
        pop();
        const t = ATYPE[ins.operands[0]];
        if (!['boolean', 'byte', 'short', 'int'].includes(t)) fail(pc, `newarray ${t}: not a Java Card array type`);
        emit('newarray', t);
        stack.push({ tag: 'A', from: [pc] });
        return done();
      }
      case 'anewarray': {
        topShort();
        pop();
        const cls = cf.className(ins.operands[0]);
        if (cls.startsWith('[')) fail(pc, 'multi-dimensional arrays are not supported by Java Card');
        emit('anewarray', cls);
        stack.push({ tag: 'A', from: [pc] });
        return done();
      }
      case 'multianewarray':
        return fail(pc, 'multi-dimensional arrays are not supported by Java Card');
      case 'new':
        emit('new', cf.className(ins.operands[0]));
        stack.push({ tag: 'A', from: [pc] });
        return done();
      case 'checkcast':
        emit('checkcast', cf.className(ins.operands[0]));
        return done();
      case 'instanceof':
        pop();
        emit('instanceof', cf.className(ins.operands[0]));
        push('S');
        return done();
      case 'athrow':
        pop();
        emit('athrow');
        return done(false);
      case 'pop':
        emit(words(pop()) === 2 ? 'pop2' : 'pop');
        return done();
      case 'pop2': {
        const w = words(pop()) + words(pop());
        emit('pop2');
        if (w >= 3) emit(w === 3 ? 'pop' : 'pop2');
        return done();
      }
      case 'dup': {
        const v = peek(0);
        emit(words(v) === 2 ? 'dup2' : 'dup');
        stack.push(v);
        return done();
      }
      case 'dup_x1': {
        const v1 = pop();
        const v2 = pop();
        emit('dup_x', words(v1), words(v1) + words(v2));
        stack.push(v1, v2, v1);
        return done();
      }
      case 'dup_x2': {
        const v1 = pop();
        const v2 = pop();
        const v3 = pop();
        emit('dup_x', words(v1), words(v1) + words(v2) + words(v3));
        stack.push(v1, v3, v2, v1);
        return done();
      }
      case 'dup2': {
        const v1 = pop();
        const v2 = pop();
        const w = words(v1) + words(v2);
        if (w === 2) emit('dup2');
        else emit('dup_x', w, 0);
        stack.push(v2, v1, v2, v1);
        return done();
      }
      case 'dup2_x1': {
        const v1 = pop();
        const v2 = pop();
        const v3 = pop();
        const w = words(v1) + words(v2);
        emit('dup_x', w, w + words(v3));
        stack.push(v2, v1, v3, v2, v1);
        return done();
      }
      case 'dup2_x2': {
        const v1 = pop();
        const v2 = pop();
        const v3 = pop();
        const v4 = pop();
        const w = words(v1) + words(v2);
        emit('dup_x', w, w + words(v3) + words(v4));
        stack.push(v2, v1, v4, v3, v2, v1);
        return done();
      }
      case 'swap': {
        const v1 = pop();
        const v2 = pop();
        emit('swap_x', words(v1), words(v2));
        stack.push(v1, v2);
        return done();
      }
      case 'goto':
      case 'goto_w':
        emit('goto', `L${ins.targets[0]}`);
        return done(false);
      case 'tableswitch':
      case 'lookupswitch': {
        const sw = ins.switch!;
        const key = peek(0);
        exact(key);
        pop();
        const isInt = key.tag === 'I';
        const dflt = `L${sw.defaultTarget}`;
        if (mn === 'tableswitch') {
          const low = sw.low ?? 0;
          const high = sw.high ?? 0;
          if (!isInt && (low < -32768 || high > 32767)) force(key, st.forceInt);
          emit(isInt ? 'itableswitch' : 'stableswitch', low, dflt, ...sw.cases.map((c) => `L${c.target}`));
        } else {
          // A short key never equals a match outside the short range: those cases are dropped.
          const cases = isInt ? sw.cases : sw.cases.filter((c) => c.match >= -32768 && c.match <= 32767);
          emit(isInt ? 'ilookupswitch' : 'slookupswitch', dflt, ...cases.map((c) => `${c.match}:L${c.target}`));
        }
        return done(false);
      }
      case 'ireturn': {
        const r = parseMethodDescriptor(m.descriptor).returns;
        if (kindOf(r) === 'I') {
          topInt();
          emit('ireturn');
        } else {
          topShort();
          emit('sreturn');
        }
        pop();
        return done(false);
      }
      case 'areturn':
        pop();
        emit('areturn');
        return done(false);
      case 'return':
        emit('return');
        return done(false);
      case 'getstatic':
      case 'putstatic':
      case 'getfield':
      case 'putfield': {
        const ref = cf.memberRef(ins.operands[0]);
        const letter = fieldLetter(ref.descriptor);
        if (/^[JFDC]$/.test(ref.descriptor)) fail(pc, `field ${ref.name} has type ${ref.descriptor}, not a Java Card type`);
        const target = `${ref.owner}.${ref.name}`;
        const isPut = mn.startsWith('put');
        const isStaticOp = mn.endsWith('static');
        if (isPut) {
          if (letter === 'i') topInt();
          else if (letter !== 'a') topShort();
          pop();
          if (!isStaticOp) pop();
        } else if (!isStaticOp) pop();
        emit(`${mn}_${letter}`, target);
        if (!isPut) push(letter === 'a' ? 'A' : letter === 'i' ? 'I' : 'S');
        return done();
      }
      case 'invokevirtual':
      case 'invokespecial':
      case 'invokestatic':
      case 'invokeinterface': {
        const ref = cf.memberRef(ins.operands[0]);
        const md = parseMethodDescriptor(ref.descriptor);
        // Arguments from the top down: the top one converts in place, deeper ones at their source.
        for (let i = md.params.length - 1, depth = 0; i >= 0; i--, depth++) {
          const want = kindOf(md.params[i]);
          if (!want) fail(pc, `${ref.name}${ref.descriptor}: parameter type not supported by Java Card`);
          if (want === 'I') depth === 0 ? topInt() : belowInt(depth);
          else if (want === 'S') depth === 0 ? topShort() : belowShort(depth);
        }
        for (let i = 0; i < md.params.length; i++) pop();
        if (mn !== 'invokestatic') pop();
        const sig = `${ref.owner}.${ref.name}${ref.descriptor}`;
        if (mn === 'invokevirtual' && hooks.isOwnPrivate(ref.owner, ref.name, ref.descriptor)) emit('invokespecial', sig);
        else emit(mn, sig);
        const r = kindOf(md.returns);
        if (md.returns !== 'void' && !r) fail(pc, `${ref.name}${ref.descriptor}: return type not supported by Java Card`);
        if (r) push(r);
        return done();
      }
      default:
        return fail(pc, `${mn} is not supported by Java Card`);
    }
  }
}

/** Lays the method out and turns branches whose targets are out of byte range into their _w forms (JCVM §7.5). */
export function widenBranches(body: AsmItem[]): void {
  for (let pass = 0; pass < 64; pass++) {
    const labels = new Map<string, number>();
    const at: number[] = [];
    let off = 0;
    for (const it of body) {
      at.push(off);
      if ('label' in it) labels.set(it.label, off);
      else off += asmInsnSize(it);
    }
    let changed = false;
    body.forEach((it, i) => {
      if ('label' in it) return;
      const op = BY_MNEMONIC.get(it.mnemonic);
      if (op?.operands !== 'b1') return;
      const d = (labels.get(it.args[0]) ?? 0) - at[i];
      if (d < -128 || d > 127) {
        body[i] = { ...it, mnemonic: `${it.mnemonic}_w` };
        changed = true;
      }
    });
    if (!changed) return;
  }
}
