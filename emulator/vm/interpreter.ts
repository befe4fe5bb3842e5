// The bytecode interpreter (JCVM 3.0.5 ch. 7): one dispatch loop over the Method component bytes with every frame's
// locals and operand stack in one Int32Array of 16-bit words (ints are two words, high first, JCVM §3.1).
//
// Style: opcodes.ts is the instruction table (names, operand layouts, cost classes); the semantics live in the single
// `switch` of execute() below, one case per opcode. A switch is the dispatch that reaches the speed target (≥ 50 M
// simple bytecodes/s): a table of handler closures costs a call and a state round-trip per instruction. Everything
// that is not executed per instruction (invocation, exception unwinding, casts, the trace) is in plain functions.
import type { ContextId, Heap, HeapInstance, HeapObject, LinkedClass, LinkedMethod, ResolvedCp, Vm } from './types.ts';
import { ArrayKind, JCRE_CONTEXT, VmThrow, isArray } from './types.ts';
import type { VmCycleMeter } from './cycles.ts';
import { OPCODES, OPERAND_BYTES } from './opcodes.ts';
import { VmFault } from './exceptions.ts';

export interface InterpreterOptions {
  heap: Heap;
  meter: VmCycleMeter;
  /** Cycles per opcode (cycles.ts opcodeCostTable). */
  costs: Float64Array;
  /** What natives receive. */
  vm(): Vm;
  throwApi(className: string, reason?: number): never;
  /** java.lang.Object (arrays dispatch its virtual methods; every class and array is assignable to it). */
  objectClass(): LinkedClass;
  /** Words of the Java stack shared by all frames (locals + operands), and the deepest call nesting. */
  stackWords?: number;
  maxFrames?: number;
  /** Bytecodes one command may execute before the JCRE gives up on it (a runaway loop answers 6F00). */
  maxBytecodes?: number;
}

export interface Interpreter {
  /** Runs a method with these argument words in context `ctx`; returns the result (int combined, void 0). */
  run(method: LinkedMethod, args: ArrayLike<number>, ctx: ContextId): number;
  /** Context of the running code (JCRE §6.1.2). */
  readonly context: ContextId;
  /** Context of the nearest caller frame in another context (JCSystem.getPreviousContextAID), or undefined. */
  previousContext(): ContextId | undefined;
  /** Bytecode trace: "pc mnemonic operands | stack top" per instruction when set. */
  trace: ((line: string) => void) | undefined;
  /** Starts a new command's runaway budget. */
  resetBudget(): void;
  readonly depth: number;
}

const NPE = 'java.lang.NullPointerException';
const AIOOBE = 'java.lang.ArrayIndexOutOfBoundsException';
const NASE = 'java.lang.NegativeArraySizeException';
const CCE = 'java.lang.ClassCastException';
const ARITH = 'java.lang.ArithmeticException';
const SECURITY = 'java.lang.SecurityException';
const ASE = 'java.lang.ArrayStoreException';
const ACC_ABSTRACT = 0x4;

type FieldCp = Extract<ResolvedCp, { kind: 'instanceField' }>;
type StaticCp = Extract<ResolvedCp, { kind: 'staticField' }>;
type VirtualCp = Extract<ResolvedCp, { kind: 'virtualMethod' }>;
type ClassCp = Extract<ResolvedCp, { kind: 'class' }>;

/** Is class `c` the class `t`, a subclass of it, or (for an interface `t`) an implementation of it? (JCVM §7.5.10) */
export function isSubtype(c: LinkedClass, t: LinkedClass): boolean {
  if (c === t) return true;
  if (t.isInterface) return c.interfaces.includes(t);
  if (t.superclass === null && !t.isInterface && t.pkg.native) return true; // java.lang.Object
  for (let s = c.superclass; s; s = s.superclass) if (s === t) return true;
  return false;
}

/** checkcast/instanceof of an object against atype + class (JCVM §7.5.10 rules for classes, interfaces and arrays). */
export function castable(o: HeapObject, atype: number, target: LinkedClass | undefined, objectClass: LinkedClass): boolean {
  if (!isArray(o)) return atype === 0 && target !== undefined && isSubtype(o.cls, target);
  if (atype === 0) return target === objectClass; // arrays are Objects and implement no interface
  if (atype !== ArrayKind.Reference) return o.kind === atype;
  if (o.kind !== ArrayKind.Reference || target === undefined) return false;
  return isSubtype(o.elementClass ?? objectClass, target);
}

export function createInterpreter(opts: InterpreterOptions): Interpreter {
  const heap = opts.heap;
  const meter = opts.meter;
  const costs = opts.costs;
  const stackWords = opts.stackWords ?? 1024;
  const maxFrames = opts.maxFrames ?? 96;
  const maxBytecodes = opts.maxBytecodes ?? 200_000_000;
  const stack = new Int32Array(stackWords + 8);
  // Frame d: its method and locals base; while it calls frame d+1: the return pc, the invoke's pc, its operand top.
  const fMethod: (LinkedMethod | undefined)[] = new Array(maxFrames + 2).fill(undefined);
  const fLp = new Int32Array(maxFrames + 2);
  const fPc = new Int32Array(maxFrames + 2);
  const fAt = new Int32Array(maxFrames + 2);
  const fSp = new Int32Array(maxFrames + 2);
  const fCtx = new Int32Array(maxFrames + 2);
  const st = { sp: 0, depth: 0, ctx: JCRE_CONTEXT as ContextId, executed: 0, trace: undefined as ((line: string) => void) | undefined };
  const throwApi: (className: string, reason?: number) => never = opts.throwApi;
  const swapTmp = new Int32Array(8);

  function overflow(m: LinkedMethod): never {
    throw new VmFault(`stack overflow calling ${m.name} (${maxFrames} frames, ${stackWords} words)`);
  }

  /** Handler pc for an exception thrown at `at` in `m`, or -1 (JCVM §7.5.? athrow: first matching entry wins). */
  function findHandler(m: LinkedMethod, at: number, exRef: number): number {
    const hs = m.pkg.handlers;
    if (hs.length === 0) return -1;
    const ex = heap.peek(exRef);
    for (let i = 0; i < hs.length; i++) {
      const h = hs[i];
      if (at < h.startOffset || at >= h.startOffset + h.activeLength) continue;
      if (h.catchTypeIndex === 0) return h.handlerOffset;
      const c = m.pkg.cp[h.catchTypeIndex] as ClassCp | undefined;
      if (c?.kind === 'class' && ex !== undefined && !isArray(ex) && isSubtype(ex.cls, c.cls)) return h.handlerOffset;
    }
    return -1;
  }

  /** The method a virtual call on `cls` reaches (package tokens dispatch within the declaring package, JCVM §4.3.7.6). */
  function virtualTarget(cls: LinkedClass, e: VirtualCp): LinkedMethod | undefined {
    if (e.isPublic) return cls.publicVirtuals[e.token];
    let c: LinkedClass | null = cls;
    while (c && c.pkg !== e.cls.pkg) c = c.superclass;
    return (c ?? e.cls).packageVirtuals[e.token];
  }

  /** Firewall for field and array element access (JCRE §6.2.? : fields of entry points stay protected). */
  function ownedInstance(ref: number, ctx: ContextId): HeapInstance {
    const o = heap.instance(ref);
    if (o.owner !== ctx && ctx !== JCRE_CONTEXT) throwApi(SECURITY);
    return o;
  }

  function fmtTrace(m: LinkedMethod, at: number, sp: number, lp: number): string {
    const code = m.pkg.code;
    const op = OPCODES[code[at]];
    const n = op ? OPERAND_BYTES[op.operands] : 0;
    const operands: string[] = [];
    for (let i = 1; i <= (n > 0 ? n : 0); i++) operands.push(code[at + i].toString(16).padStart(2, '0'));
    const base = lp + m.nargs + m.maxLocals;
    const top = sp > base ? Array.from(stack.subarray(Math.max(base, sp - 4), sp)).join(' ') : '';
    return `${m.name}+${at - m.codeStart} ${op ? op.mnemonic : `?${code[at]}`}${operands.length ? ' ' + operands.join(' ') : ''} | ${top}`;
  }

  /**
   * Executes from the frame at depth `barrier` (already set up) until it returns; returns its result. Frames below
   * the barrier belong to callers (natives that re-entered the VM) and are never touched.
   */
  function execute(barrier: number): number {
    let d = barrier;
    let method = fMethod[d] as LinkedMethod;
    let code = method.pkg.code;
    let cp = method.pkg.cp;
    let lp = fLp[d];
    let pc = method.codeStart;
    let sp = lp + method.nargs + method.maxLocals;
    let ctx = fCtx[d];
    st.ctx = ctx;
    let at = pc;
    let n = 0;
    let cyc = 0;
    let budget = maxBytecodes - st.executed;
    const trace = st.trace;
    const vm = opts.vm();

    for (;;) {
      try {
        for (;;) {
          at = pc;
          const op = code[pc];
          cyc += costs[op];
          n++;
          if (trace !== undefined) trace(fmtTrace(method, pc, sp, lp));
          switch (op) {
            case 0x00: // nop
              pc += 1;
              break;
            case 0x01: // aconst_null
              stack[sp++] = 0;
              pc += 1;
              break;
            case 0x02: case 0x03: case 0x04: case 0x05: case 0x06: case 0x07: case 0x08: // sconst_m1..5
              stack[sp++] = op - 3;
              pc += 1;
              break;
            case 0x09: case 0x0a: case 0x0b: case 0x0c: case 0x0d: case 0x0e: case 0x0f: { // iconst_m1..5
              const v = op - 0x0a;
              stack[sp++] = v >> 16;
              stack[sp++] = v;
              pc += 1;
              break;
            }
            case 0x10: // bspush
              stack[sp++] = (code[pc + 1] << 24) >> 24;
              pc += 2;
              break;
            case 0x11: // sspush
              stack[sp++] = ((code[pc + 1] << 24) >> 16) | code[pc + 2];
              pc += 3;
              break;
            case 0x12: { // bipush
              const v = (code[pc + 1] << 24) >> 24;
              stack[sp++] = v >> 16;
              stack[sp++] = v;
              pc += 2;
              break;
            }
            case 0x13: { // sipush
              const v = ((code[pc + 1] << 24) >> 16) | code[pc + 2];
              stack[sp++] = v >> 16;
              stack[sp++] = v;
              pc += 3;
              break;
            }
            case 0x14: // iipush: high word, low word
              stack[sp++] = ((code[pc + 1] << 24) >> 16) | code[pc + 2];
              stack[sp++] = ((code[pc + 3] << 24) >> 16) | code[pc + 4];
              pc += 5;
              break;
            case 0x15: case 0x16: // aload, sload
              stack[sp++] = stack[lp + code[pc + 1]];
              pc += 2;
              break;
            case 0x17: { // iload
              const i = lp + code[pc + 1];
              stack[sp++] = stack[i];
              stack[sp++] = stack[i + 1];
              pc += 2;
              break;
            }
            case 0x18: case 0x19: case 0x1a: case 0x1b: // aload_n
              stack[sp++] = stack[lp + op - 0x18];
              pc += 1;
              break;
            case 0x1c: case 0x1d: case 0x1e: case 0x1f: // sload_n
              stack[sp++] = stack[lp + op - 0x1c];
              pc += 1;
              break;
            case 0x20: case 0x21: case 0x22: case 0x23: { // iload_n
              const i = lp + op - 0x20;
              stack[sp++] = stack[i];
              stack[sp++] = stack[i + 1];
              pc += 1;
              break;
            }
            case 0x24: { // aaload
              const i = stack[--sp];
              const a = heap.array(stack[--sp]);
              if (a.kind !== ArrayKind.Reference) throw new VmFault(`aaload on a ${a.kind} array`);
              if (i < 0 || i >= a.length) throwApi(AIOOBE);
              stack[sp++] = a.data[i];
              pc += 1;
              break;
            }
            case 0x25: { // baload
              const i = stack[--sp];
              const a = heap.array(stack[--sp]);
              if (a.kind !== ArrayKind.Byte && a.kind !== ArrayKind.Boolean) throw new VmFault(`baload on a ${a.kind} array`);
              if (i < 0 || i >= a.length) throwApi(AIOOBE);
              stack[sp++] = (a.data[i] << 24) >> 24;
              pc += 1;
              break;
            }
            case 0x26: { // saload
              const i = stack[--sp];
              const a = heap.array(stack[--sp]);
              if (a.kind !== ArrayKind.Short) throw new VmFault(`saload on a ${a.kind} array`);
              if (i < 0 || i >= a.length) throwApi(AIOOBE);
              stack[sp++] = a.data[i];
              pc += 1;
              break;
            }
            case 0x27: { // iaload
              const i = stack[--sp];
              const a = heap.array(stack[--sp]);
              if (a.kind !== ArrayKind.Int) throw new VmFault(`iaload on a ${a.kind} array`);
              if (i < 0 || i >= a.length) throwApi(AIOOBE);
              const v = a.data[i];
              stack[sp++] = v >> 16;
              stack[sp++] = (v << 16) >> 16;
              pc += 1;
              break;
            }
            case 0x28: case 0x29: // astore, sstore
              stack[lp + code[pc + 1]] = stack[--sp];
              pc += 2;
              break;
            case 0x2a: { // istore
              const i = lp + code[pc + 1];
              stack[i + 1] = stack[--sp];
              stack[i] = stack[--sp];
              pc += 2;
              break;
            }
            case 0x2b: case 0x2c: case 0x2d: case 0x2e: // astore_n
              stack[lp + op - 0x2b] = stack[--sp];
              pc += 1;
              break;
            case 0x2f: case 0x30: case 0x31: case 0x32: // sstore_n
              stack[lp + op - 0x2f] = stack[--sp];
              pc += 1;
              break;
            case 0x33: case 0x34: case 0x35: case 0x36: { // istore_n
              const i = lp + op - 0x33;
              stack[i + 1] = stack[--sp];
              stack[i] = stack[--sp];
              pc += 1;
              break;
            }
            case 0x37: { // aastore
              const v = stack[--sp];
              const i = stack[--sp];
              const a = heap.array(stack[--sp]);
              if (a.kind !== ArrayKind.Reference) throw new VmFault(`aastore on a ${a.kind} array`);
              if (i < 0 || i >= a.length) throwApi(AIOOBE);
              if (v !== 0 && a.elementClass !== undefined) {
                const o = heap.peek(v);
                if (o === undefined || !castable(o, 0, a.elementClass, opts.objectClass())) throwApi(ASE);
              }
              heap.storeArray(a, i, v);
              pc += 1;
              break;
            }
            case 0x38: { // bastore
              const v = stack[--sp];
              const i = stack[--sp];
              const a = heap.array(stack[--sp]);
              if (a.kind !== ArrayKind.Byte && a.kind !== ArrayKind.Boolean) throw new VmFault(`bastore on a ${a.kind} array`);
              if (i < 0 || i >= a.length) throwApi(AIOOBE);
              heap.storeArray(a, i, v & 0xff);
              pc += 1;
              break;
            }
            case 0x39: { // sastore
              const v = stack[--sp];
              const i = stack[--sp];
              const a = heap.array(stack[--sp]);
              if (a.kind !== ArrayKind.Short) throw new VmFault(`sastore on a ${a.kind} array`);
              if (i < 0 || i >= a.length) throwApi(AIOOBE);
              heap.storeArray(a, i, v);
              pc += 1;
              break;
            }
            case 0x3a: { // iastore
              const lo = stack[--sp];
              const hi = stack[--sp];
              const i = stack[--sp];
              const a = heap.array(stack[--sp]);
              if (a.kind !== ArrayKind.Int) throw new VmFault(`iastore on a ${a.kind} array`);
              if (i < 0 || i >= a.length) throwApi(AIOOBE);
              heap.storeArray(a, i, (hi << 16) | (lo & 0xffff));
              pc += 1;
              break;
            }
            case 0x3b: // pop
              sp -= 1;
              pc += 1;
              break;
            case 0x3c: // pop2
              sp -= 2;
              pc += 1;
              break;
            case 0x3d: // dup
              stack[sp] = stack[sp - 1];
              sp += 1;
              pc += 1;
              break;
            case 0x3e: // dup2
              stack[sp] = stack[sp - 2];
              stack[sp + 1] = stack[sp - 1];
              sp += 2;
              pc += 1;
              break;
            case 0x3f: { // dup_x mn: copy the top m words, insert them n words down (n = 0: on top), JCVM §7.5.?
              const m = code[pc + 1] >> 4;
              const k = code[pc + 1] & 0x0f;
              if (m < 1 || m > 4 || (k !== 0 && (k < m || k > m + 4))) throw new VmFault(`dup_x 0x${code[pc + 1].toString(16)}`);
              if (k === 0) {
                for (let i = 0; i < m; i++) stack[sp + i] = stack[sp - m + i];
              } else {
                for (let i = sp - 1; i >= sp - k; i--) stack[i + m] = stack[i];
                for (let i = 0; i < m; i++) stack[sp - k + i] = stack[sp + i];
              }
              sp += m;
              pc += 2;
              break;
            }
            case 0x40: { // swap_x mn: swap the top m words with the n words below them
              const m = code[pc + 1] >> 4;
              const k = code[pc + 1] & 0x0f;
              if (m < 1 || m > 2 || k < 1 || k > 2) throw new VmFault(`swap_x 0x${code[pc + 1].toString(16)}`);
              // Words in stack order: [B: k words] [A: m words] → [A] [B].
              const base = sp - m - k;
              for (let i = 0; i < m + k; i++) swapTmp[i] = stack[base + i];
              for (let i = 0; i < m; i++) stack[base + i] = swapTmp[k + i];
              for (let i = 0; i < k; i++) stack[base + m + i] = swapTmp[i];
              pc += 2;
              break;
            }
            case 0x41: // sadd
              sp--;
              stack[sp - 1] = ((stack[sp - 1] + stack[sp]) << 16) >> 16;
              pc += 1;
              break;
            case 0x43: // ssub
              sp--;
              stack[sp - 1] = ((stack[sp - 1] - stack[sp]) << 16) >> 16;
              pc += 1;
              break;
            case 0x45: // smul
              sp--;
              stack[sp - 1] = (Math.imul(stack[sp - 1], stack[sp]) << 16) >> 16;
              pc += 1;
              break;
            case 0x47: { // sdiv
              const b = stack[--sp];
              if (b === 0) throwApi(ARITH);
              stack[sp - 1] = (((stack[sp - 1] / b) | 0) << 16) >> 16;
              pc += 1;
              break;
            }
            case 0x49: { // srem
              const b = stack[--sp];
              if (b === 0) throwApi(ARITH);
              stack[sp - 1] = (stack[sp - 1] % b) | 0;
              pc += 1;
              break;
            }
            case 0x4b: // sneg
              stack[sp - 1] = (-stack[sp - 1] << 16) >> 16;
              pc += 1;
              break;
            case 0x4d: // sshl
              sp--;
              stack[sp - 1] = ((stack[sp - 1] << (stack[sp] & 0x1f)) << 16) >> 16;
              pc += 1;
              break;
            case 0x4f: // sshr
              sp--;
              stack[sp - 1] = ((stack[sp - 1] >> (stack[sp] & 0x1f)) << 16) >> 16;
              pc += 1;
              break;
            case 0x51: // sushr: the short is sign-extended to 32 bits, shifted logically, truncated (JCVM §7.5.?)
              sp--;
              stack[sp - 1] = ((stack[sp - 1] >>> (stack[sp] & 0x1f)) << 16) >> 16;
              pc += 1;
              break;
            case 0x53: // sand
              sp--;
              stack[sp - 1] &= stack[sp];
              pc += 1;
              break;
            case 0x55: // sor
              sp--;
              stack[sp - 1] |= stack[sp];
              pc += 1;
              break;
            case 0x57: // sxor
              sp--;
              stack[sp - 1] ^= stack[sp];
              pc += 1;
              break;
            case 0x42: case 0x44: case 0x46: case 0x48: case 0x4a: case 0x4e: case 0x50: case 0x52: case 0x54: case 0x56:
            case 0x58: { // int binary operations: value1 (2 words), value2 (2 words)
              const b = (stack[sp - 2] << 16) | (stack[sp - 1] & 0xffff);
              const a = (stack[sp - 4] << 16) | (stack[sp - 3] & 0xffff);
              let r = 0;
              switch (op) {
                case 0x42: r = (a + b) | 0; break;
                case 0x44: r = (a - b) | 0; break;
                case 0x46: r = Math.imul(a, b); break;
                case 0x48: if (b === 0) throwApi(ARITH); r = (a / b) | 0; break;
                case 0x4a: if (b === 0) throwApi(ARITH); r = (a % b) | 0; break;
                case 0x4e: r = a << (b & 0x1f); break;
                case 0x50: r = a >> (b & 0x1f); break;
                case 0x52: r = (a >>> (b & 0x1f)) | 0; break;
                case 0x54: r = a & b; break;
                case 0x56: r = a | b; break;
                default: r = a ^ b; break;
              }
              sp -= 2;
              stack[sp - 2] = r >> 16;
              stack[sp - 1] = (r << 16) >> 16;
              pc += 1;
              break;
            }
            case 0x4c: { // ineg
              const r = -((stack[sp - 2] << 16) | (stack[sp - 1] & 0xffff)) | 0;
              stack[sp - 2] = r >> 16;
              stack[sp - 1] = (r << 16) >> 16;
              pc += 1;
              break;
            }
            case 0x59: { // sinc
              const i = lp + code[pc + 1];
              stack[i] = ((stack[i] + ((code[pc + 2] << 24) >> 24)) << 16) >> 16;
              pc += 3;
              break;
            }
            case 0x5a: { // iinc
              const i = lp + code[pc + 1];
              const r = (((stack[i] << 16) | (stack[i + 1] & 0xffff)) + ((code[pc + 2] << 24) >> 24)) | 0;
              stack[i] = r >> 16;
              stack[i + 1] = (r << 16) >> 16;
              pc += 3;
              break;
            }
            case 0x5b: // s2b
              stack[sp - 1] = (stack[sp - 1] << 24) >> 24;
              pc += 1;
              break;
            case 0x5c: // s2i
              stack[sp] = stack[sp - 1];
              stack[sp - 1] = stack[sp] >> 16;
              sp++;
              pc += 1;
              break;
            case 0x5d: // i2b
              sp--;
              stack[sp - 1] = (stack[sp] << 24) >> 24;
              pc += 1;
              break;
            case 0x5e: // i2s
              sp--;
              stack[sp - 1] = stack[sp];
              pc += 1;
              break;
            case 0x5f: { // icmp
              const b = (stack[sp - 2] << 16) | (stack[sp - 1] & 0xffff);
              const a = (stack[sp - 4] << 16) | (stack[sp - 3] & 0xffff);
              sp -= 3;
              stack[sp - 1] = a > b ? 1 : a < b ? -1 : 0;
              pc += 1;
              break;
            }
            case 0x60: case 0x61: case 0x62: case 0x63: case 0x64: case 0x65: // if<cond> (b1)
            case 0x98: case 0x99: case 0x9a: case 0x9b: case 0x9c: case 0x9d: { // if<cond>_w (b2)
              const v = stack[--sp];
              const c = op < 0x98 ? op - 0x60 : op - 0x98;
              const taken = c === 0 ? v === 0 : c === 1 ? v !== 0 : c === 2 ? v < 0 : c === 3 ? v >= 0 : c === 4 ? v > 0 : v <= 0;
              if (taken) {
                const off = op < 0x98 ? (code[pc + 1] << 24) >> 24 : ((code[pc + 1] << 24) >> 16) | code[pc + 2];
                if (off <= 0 && n > budget) throw new VmFault('bytecode budget of the command exhausted');
                pc += off;
              } else pc += op < 0x98 ? 2 : 3;
              break;
            }
            case 0x66: case 0x67: case 0x9e: case 0x9f: { // ifnull, ifnonnull (_w)
              const v = stack[--sp];
              const wide = op >= 0x9e;
              if ((v === 0) === ((op & 1) === 0)) {
                const off = wide ? ((code[pc + 1] << 24) >> 16) | code[pc + 2] : (code[pc + 1] << 24) >> 24;
                if (off <= 0 && n > budget) throw new VmFault('bytecode budget of the command exhausted');
                pc += off;
              } else pc += wide ? 3 : 2;
              break;
            }
            case 0x68: case 0x69: case 0xa0: case 0xa1: { // if_acmpeq, if_acmpne (_w)
              const b = stack[--sp];
              const a = stack[--sp];
              const wide = op >= 0xa0;
              if ((a === b) === ((op & 1) === 0)) {
                const off = wide ? ((code[pc + 1] << 24) >> 16) | code[pc + 2] : (code[pc + 1] << 24) >> 24;
                if (off <= 0 && n > budget) throw new VmFault('bytecode budget of the command exhausted');
                pc += off;
              } else pc += wide ? 3 : 2;
              break;
            }
            case 0x6a: case 0x6b: case 0x6c: case 0x6d: case 0x6e: case 0x6f: // if_scmp<cond>
            case 0xa2: case 0xa3: case 0xa4: case 0xa5: case 0xa6: case 0xa7: { // if_scmp<cond>_w
              const b = stack[--sp];
              const a = stack[--sp];
              const wide = op >= 0xa2;
              const c = wide ? op - 0xa2 : op - 0x6a;
              const taken = c === 0 ? a === b : c === 1 ? a !== b : c === 2 ? a < b : c === 3 ? a >= b : c === 4 ? a > b : a <= b;
              if (taken) {
                const off = wide ? ((code[pc + 1] << 24) >> 16) | code[pc + 2] : (code[pc + 1] << 24) >> 24;
                if (off <= 0 && n > budget) throw new VmFault('bytecode budget of the command exhausted');
                pc += off;
              } else pc += wide ? 3 : 2;
              break;
            }
            case 0x70: { // goto
              const off = (code[pc + 1] << 24) >> 24;
              if (off <= 0 && n > budget) throw new VmFault('bytecode budget of the command exhausted');
              pc += off;
              break;
            }
            case 0xa8: { // goto_w
              const off = ((code[pc + 1] << 24) >> 16) | code[pc + 2];
              if (off <= 0 && n > budget) throw new VmFault('bytecode budget of the command exhausted');
              pc += off;
              break;
            }
            case 0x71: // jsr: push the return address (a returnAddress word)
              stack[sp++] = pc + 3;
              if (n > budget) throw new VmFault('bytecode budget of the command exhausted');
              pc += ((code[pc + 1] << 24) >> 16) | code[pc + 2];
              break;
            case 0x72: { // ret
              const target = stack[lp + code[pc + 1]];
              if (target < method.codeStart || target >= code.length) throw new VmFault(`ret to ${target}: not a return address`);
              pc = target;
              break;
            }
            case 0x73: { // stableswitch: default s2, low s2, high s2, offsets s2 × (high - low + 1)
              const key = stack[--sp];
              const low = ((code[pc + 3] << 24) >> 16) | code[pc + 4];
              const high = ((code[pc + 5] << 24) >> 16) | code[pc + 6];
              const o = key >= low && key <= high ? pc + 7 + 2 * (key - low) : pc + 1;
              const off = ((code[o] << 24) >> 16) | code[o + 1];
              if (off <= 0 && n > budget) throw new VmFault('bytecode budget of the command exhausted');
              pc += off;
              break;
            }
            case 0x74: { // itableswitch: default s2, low s4, high s4, offsets s2
              sp -= 2;
              const key = (stack[sp] << 16) | (stack[sp + 1] & 0xffff);
              const low = (code[pc + 3] << 24) | (code[pc + 4] << 16) | (code[pc + 5] << 8) | code[pc + 6];
              const high = (code[pc + 7] << 24) | (code[pc + 8] << 16) | (code[pc + 9] << 8) | code[pc + 10];
              const o = key >= low && key <= high ? pc + 11 + 2 * (key - low) : pc + 1;
              const off = ((code[o] << 24) >> 16) | code[o + 1];
              if (off <= 0 && n > budget) throw new VmFault('bytecode budget of the command exhausted');
              pc += off;
              break;
            }
            case 0x75: { // slookupswitch: default s2, npairs u2, (match s2, offset s2) sorted by match
              const key = stack[--sp];
              const npairs = (code[pc + 3] << 8) | code[pc + 4];
              let o = pc + 1;
              for (let i = 0, p = pc + 5; i < npairs; i++, p += 4) {
                const match = ((code[p] << 24) >> 16) | code[p + 1];
                if (match === key) {
                  o = p + 2;
                  break;
                }
              }
              const off = ((code[o] << 24) >> 16) | code[o + 1];
              if (off <= 0 && n > budget) throw new VmFault('bytecode budget of the command exhausted');
              pc += off;
              break;
            }
            case 0x76: { // ilookupswitch: default s2, npairs u2, (match s4, offset s2)
              sp -= 2;
              const key = (stack[sp] << 16) | (stack[sp + 1] & 0xffff);
              const npairs = (code[pc + 3] << 8) | code[pc + 4];
              let o = pc + 1;
              for (let i = 0, p = pc + 5; i < npairs; i++, p += 6) {
                const match = (code[p] << 24) | (code[p + 1] << 16) | (code[p + 2] << 8) | code[p + 3];
                if (match === key) {
                  o = p + 4;
                  break;
                }
              }
              const off = ((code[o] << 24) >> 16) | code[o + 1];
              if (off <= 0 && n > budget) throw new VmFault('bytecode budget of the command exhausted');
              pc += off;
              break;
            }
            case 0x77: case 0x78: case 0x79: case 0x7a: { // areturn, sreturn, ireturn, return
              let hi = 0;
              let lo = 0;
              if (op === 0x79) {
                hi = stack[sp - 2];
                lo = stack[sp - 1];
              } else if (op !== 0x7a) lo = stack[sp - 1];
              if (d === barrier) {
                meter.bytecodes += n; meter.addOpcodeCycles(cyc); st.executed += n; budget -= n; n = 0; cyc = 0;
                st.depth = barrier - 1;
                st.sp = fLp[barrier];
                fMethod[barrier] = undefined;
                st.ctx = barrier > 0 ? fCtx[barrier - 1] : JCRE_CONTEXT;
                return op === 0x79 ? (hi << 16) | (lo & 0xffff) : lo;
              }
              fMethod[d] = undefined;
              d--;
              method = fMethod[d] as LinkedMethod;
              code = method.pkg.code;
              cp = method.pkg.cp;
              lp = fLp[d];
              pc = fPc[d];
              sp = fSp[d];
              ctx = fCtx[d];
              st.ctx = ctx;
              if (op === 0x79) stack[sp++] = hi;
              if (op !== 0x7a) stack[sp++] = lo;
              break;
            }
            case 0x7b: case 0x7c: case 0x7d: { // getstatic_a, _b, _s
              const e = cp[(code[pc + 1] << 8) | code[pc + 2]] as StaticCp;
              stack[sp++] = e.pkg.statics[e.cell];
              pc += 3;
              break;
            }
            case 0x7e: { // getstatic_i
              const e = cp[(code[pc + 1] << 8) | code[pc + 2]] as StaticCp;
              stack[sp++] = e.pkg.statics[e.cell];
              stack[sp++] = e.pkg.statics[e.cell + 1];
              pc += 3;
              break;
            }
            case 0x7f: case 0x80: case 0x81: { // putstatic_a, _b, _s
              const e = cp[(code[pc + 1] << 8) | code[pc + 2]] as StaticCp;
              const v = stack[--sp];
              heap.storeStatic(e.pkg.statics, e.cell, op === 0x80 ? (v << 24) >> 24 : v, e.pkg);
              pc += 3;
              break;
            }
            case 0x82: { // putstatic_i
              const e = cp[(code[pc + 1] << 8) | code[pc + 2]] as StaticCp;
              const lo = stack[--sp];
              const hi = stack[--sp];
              heap.storeStatic(e.pkg.statics, e.cell, hi, e.pkg);
              heap.storeStatic(e.pkg.statics, e.cell + 1, lo, e.pkg);
              pc += 3;
              break;
            }
            case 0x83: case 0x84: case 0x85: // getfield_a, _b, _s
            case 0xa9: case 0xaa: case 0xab: { // getfield_a_w, _b_w, _s_w
              const wide = op >= 0xa9;
              const e = cp[wide ? (code[pc + 1] << 8) | code[pc + 2] : code[pc + 1]] as FieldCp;
              const o = ownedInstance(stack[sp - 1], ctx);
              stack[sp - 1] = o.fields[e.cell];
              pc += wide ? 3 : 2;
              break;
            }
            case 0x86: case 0xac: { // getfield_i, getfield_i_w
              const wide = op === 0xac;
              const e = cp[wide ? (code[pc + 1] << 8) | code[pc + 2] : code[pc + 1]] as FieldCp;
              const o = ownedInstance(stack[sp - 1], ctx);
              stack[sp - 1] = o.fields[e.cell];
              stack[sp++] = o.fields[e.cell + 1];
              pc += wide ? 3 : 2;
              break;
            }
            case 0xad: case 0xae: case 0xaf: { // getfield_a_this, _b_this, _s_this
              const e = cp[code[pc + 1]] as FieldCp;
              const o = ownedInstance(stack[lp], ctx);
              stack[sp++] = o.fields[e.cell];
              pc += 2;
              break;
            }
            case 0xb0: { // getfield_i_this
              const e = cp[code[pc + 1]] as FieldCp;
              const o = ownedInstance(stack[lp], ctx);
              stack[sp++] = o.fields[e.cell];
              stack[sp++] = o.fields[e.cell + 1];
              pc += 2;
              break;
            }
            case 0x87: case 0x88: case 0x89: // putfield_a, _b, _s
            case 0xb1: case 0xb2: case 0xb3: { // putfield_a_w, _b_w, _s_w
              const wide = op >= 0xb1;
              const e = cp[wide ? (code[pc + 1] << 8) | code[pc + 2] : code[pc + 1]] as FieldCp;
              const v = stack[--sp];
              const o = ownedInstance(stack[--sp], ctx);
              heap.storeField(o, e.cell, op === 0x88 || op === 0xb2 ? (v << 24) >> 24 : v);
              pc += wide ? 3 : 2;
              break;
            }
            case 0x8a: case 0xb4: { // putfield_i, putfield_i_w
              const wide = op === 0xb4;
              const e = cp[wide ? (code[pc + 1] << 8) | code[pc + 2] : code[pc + 1]] as FieldCp;
              const lo = stack[--sp];
              const hi = stack[--sp];
              const o = ownedInstance(stack[--sp], ctx);
              heap.storeField(o, e.cell, hi);
              heap.storeField(o, e.cell + 1, lo);
              pc += wide ? 3 : 2;
              break;
            }
            case 0xb5: case 0xb6: case 0xb7: { // putfield_a_this, _b_this, _s_this
              const e = cp[code[pc + 1]] as FieldCp;
              const v = stack[--sp];
              const o = ownedInstance(stack[lp], ctx);
              heap.storeField(o, e.cell, op === 0xb6 ? (v << 24) >> 24 : v);
              pc += 2;
              break;
            }
            case 0xb8: { // putfield_i_this
              const e = cp[code[pc + 1]] as FieldCp;
              const lo = stack[--sp];
              const hi = stack[--sp];
              const o = ownedInstance(stack[lp], ctx);
              heap.storeField(o, e.cell, hi);
              heap.storeField(o, e.cell + 1, lo);
              pc += 2;
              break;
            }
            case 0x8b: case 0x8c: case 0x8d: case 0x8e: { // invokevirtual, invokespecial, invokestatic, invokeinterface
              let m: LinkedMethod | undefined;
              let nargs: number;
              let calleeCtx = ctx;
              let len = 3;
              if (op === 0x8d || op === 0x8c) {
                const e = cp[(code[pc + 1] << 8) | code[pc + 2]];
                if (e === undefined || (e.kind !== 'staticMethod' && e.kind !== 'superMethod')) throw new VmFault(`${OPCODES[op]!.mnemonic} of constant pool entry ${e?.kind}`);
                m = e.method;
                nargs = m.nargs;
                if (op === 0x8c && stack[sp - nargs] === 0) throwApi(NPE);
              } else if (op === 0x8b) {
                const e = cp[(code[pc + 1] << 8) | code[pc + 2]] as VirtualCp;
                if (e === undefined || e.kind !== 'virtualMethod') throw new VmFault(`invokevirtual of constant pool entry ${(e as ResolvedCp | undefined)?.kind}`);
                const decl = (e.isPublic ? e.cls.publicVirtuals : e.cls.packageVirtuals)[e.token];
                if (decl === undefined) throw new VmFault(`invokevirtual: no method for token ${e.token} in ${e.cls.name}`);
                nargs = decl.nargs;
                const ref = stack[sp - nargs];
                if (ref === 0) throwApi(NPE);
                const o = heap.get(ref); // firewall: own context, JCRE, entry points and global arrays (JCRE §6.2)
                m = virtualTarget(isArray(o) ? opts.objectClass() : o.cls, e);
              } else {
                nargs = code[pc + 1];
                const e = cp[(code[pc + 2] << 8) | code[pc + 3]] as ClassCp;
                if (e === undefined || e.kind !== 'class') throw new VmFault(`invokeinterface of constant pool entry ${(e as ResolvedCp | undefined)?.kind}`);
                const token = code[pc + 4];
                len = 5;
                const ref = stack[sp - nargs];
                if (ref === 0) throwApi(NPE);
                const o = heap.peek(ref);
                if (o === undefined) throwApi(NPE);
                if (isArray(o)) throwApi(o.global ? SECURITY : CCE);
                if (o.owner !== ctx && ctx !== JCRE_CONTEXT && o.entryPoint === undefined) {
                  // Shareable interface objects of another context: the call runs in the server's context (JCRE §6.2.4).
                  if (!e.cls.isShareable) throwApi(SECURITY);
                  calleeCtx = o.owner;
                }
                m = o.cls.interfaceMethods.get(e.cls)?.[token];
                if (m === undefined) throwApi(CCE);
              }
              if (m === undefined) throw new VmFault(`${OPCODES[op]!.mnemonic} reached no method`);
              if (m.native !== undefined) {
                meter.bytecodes += n; meter.addOpcodeCycles(cyc); st.executed += n; budget -= n; n = 0; cyc = 0;
                meter.native();
                st.sp = sp;
                st.depth = d;
                st.ctx = ctx;
                fPc[d] = pc + len;
                fAt[d] = at;
                fSp[d] = sp;
                const r = m.native(vm, stack.subarray(sp - nargs, sp));
                st.ctx = ctx;
                sp -= nargs;
                switch (m.returns) {
                  case 'V':
                    break;
                  case 'I':
                    stack[sp++] = (r as number) >> 16;
                    stack[sp++] = ((r as number) << 16) >> 16;
                    break;
                  case 'W':
                    stack[sp++] = ((r as number) << 16) >> 16;
                    break;
                  default:
                    stack[sp++] = r as number;
                }
                pc += len;
                budget = maxBytecodes - st.executed;
                break;
              }
              if (m.flags & ACC_ABSTRACT) throw new VmFault(`${m.name} is abstract`);
              if (n > budget) throw new VmFault('bytecode budget of the command exhausted');
              const nlp = sp - nargs;
              const base = nlp + m.nargs + m.maxLocals;
              if (d + 1 >= maxFrames || base + m.maxStack > stackWords) overflow(m);
              fPc[d] = pc + len;
              fAt[d] = at;
              fSp[d] = nlp;
              d++;
              fMethod[d] = m;
              fLp[d] = nlp;
              fCtx[d] = calleeCtx;
              method = m;
              code = m.pkg.code;
              cp = m.pkg.cp;
              lp = nlp;
              sp = base;
              pc = m.codeStart;
              ctx = calleeCtx;
              st.ctx = ctx;
              break;
            }
            case 0x8f: { // new
              const e = cp[(code[pc + 1] << 8) | code[pc + 2]] as ClassCp;
              if (e === undefined || e.kind !== 'class' || e.cls.isInterface) throw new VmFault('new of a constant pool entry that is not a class');
              stack[sp++] = heap.newInstance(e.cls, ctx).ref;
              pc += 3;
              break;
            }
            case 0x90: { // newarray
              const t = code[pc + 1];
              if (t < ArrayKind.Boolean || t > ArrayKind.Int) throw new VmFault(`newarray type ${t}`);
              const len = stack[sp - 1];
              if (len < 0) throwApi(NASE);
              stack[sp - 1] = heap.newArray(t as ArrayKind, len, 0, ctx).ref;
              pc += 2;
              break;
            }
            case 0x91: { // anewarray
              const e = cp[(code[pc + 1] << 8) | code[pc + 2]] as ClassCp;
              if (e === undefined || e.kind !== 'class') throw new VmFault('anewarray of a constant pool entry that is not a class');
              const len = stack[sp - 1];
              if (len < 0) throwApi(NASE);
              stack[sp - 1] = heap.newArray(ArrayKind.Reference, len, 0, ctx, e.cls).ref;
              pc += 3;
              break;
            }
            case 0x92: // arraylength
              stack[sp - 1] = heap.array(stack[sp - 1]).length;
              pc += 1;
              break;
            case 0x93: { // athrow
              const ref = stack[sp - 1];
              if (ref === 0) throwApi(NPE);
              throw new VmThrow(ref, 'athrow');
            }
            case 0x94: case 0x95: { // checkcast, instanceof
              const t = code[pc + 1];
              const idx = (code[pc + 2] << 8) | code[pc + 3];
              const ref = stack[sp - 1];
              let ok = false;
              if (ref !== 0) {
                let target: LinkedClass | undefined;
                if (t === 0 || t === ArrayKind.Reference) {
                  const e = cp[idx] as ClassCp;
                  if (e === undefined || e.kind !== 'class') throw new VmFault(`${OPCODES[op]!.mnemonic} of a constant pool entry that is not a class`);
                  target = e.cls;
                } else if (t < ArrayKind.Boolean || t > ArrayKind.Int) throw new VmFault(`${OPCODES[op]!.mnemonic} type ${t}`);
                const o = heap.peek(ref);
                if (o === undefined) throwApi(NPE);
                const shared = isArray(o) ? o.global : o.entryPoint !== undefined || o.cls.isShareable;
                if (o.owner !== ctx && ctx !== JCRE_CONTEXT && !shared) throwApi(SECURITY);
                ok = castable(o, t, target, opts.objectClass());
              }
              if (op === 0x94) {
                if (ref !== 0 && !ok) throwApi(CCE);
              } else stack[sp - 1] = ok ? 1 : 0;
              pc += 4;
              break;
            }
            case 0x96: { // sinc_w
              const i = lp + code[pc + 1];
              stack[i] = ((stack[i] + (((code[pc + 2] << 24) >> 16) | code[pc + 3])) << 16) >> 16;
              pc += 4;
              break;
            }
            case 0x97: { // iinc_w
              const i = lp + code[pc + 1];
              const r = (((stack[i] << 16) | (stack[i + 1] & 0xffff)) + (((code[pc + 2] << 24) >> 16) | code[pc + 3])) | 0;
              stack[i] = r >> 16;
              stack[i + 1] = (r << 16) >> 16;
              pc += 4;
              break;
            }
            default:
              throw new VmFault(`undefined opcode 0x${(op ?? -1).toString(16)} at offset ${pc} in ${method.name}`);
          }
        }
      } catch (e) {
        if (!(e instanceof VmThrow)) {
          meter.bytecodes += n; meter.addOpcodeCycles(cyc); st.executed += n; budget -= n; n = 0; cyc = 0;
          for (let i = d; i >= barrier; i--) fMethod[i] = undefined;
          st.depth = barrier - 1;
          st.sp = fLp[barrier];
          st.ctx = barrier > 0 ? fCtx[barrier - 1] : JCRE_CONTEXT;
          throw e;
        }
        // Exception tables searched frame by frame, from the throwing instruction outwards (JCVM §7.5.? athrow).
        let handler = findHandler(method, at, e.ref);
        while (handler < 0) {
          if (d === barrier) {
            meter.bytecodes += n; meter.addOpcodeCycles(cyc); st.executed += n; budget -= n; n = 0; cyc = 0;
            fMethod[d] = undefined;
            st.depth = barrier - 1;
            st.sp = fLp[barrier];
            st.ctx = barrier > 0 ? fCtx[barrier - 1] : JCRE_CONTEXT;
            throw e;
          }
          fMethod[d] = undefined;
          d--;
          method = fMethod[d] as LinkedMethod;
          at = fAt[d];
          handler = findHandler(method, at, e.ref);
        }
        code = method.pkg.code;
        cp = method.pkg.cp;
        lp = fLp[d];
        ctx = fCtx[d];
        st.ctx = ctx;
        sp = lp + method.nargs + method.maxLocals;
        stack[sp++] = e.ref;
        pc = handler;
      }
    }
  }

  function run(method: LinkedMethod, args: ArrayLike<number>, ctx: ContextId): number {
    const base = st.sp;
    const d = st.depth + 1;
    if (d >= maxFrames || base + args.length + method.maxLocals + method.maxStack > stackWords) overflow(method);
    for (let i = 0; i < args.length; i++) stack[base + i] = args[i];
    const savedCtx = st.ctx;
    if (d === 1) st.executed = 0; // an outermost call (the JCRE's) starts a new runaway budget
    if (method.native !== undefined) {
      st.sp = base + args.length;
      st.ctx = ctx;
      try {
        meter.native();
        const r = method.native(opts.vm(), stack.subarray(base, base + args.length));
        return typeof r === 'number' ? r : 0;
      } finally {
        st.sp = base;
        st.ctx = savedCtx;
      }
    }
    if (method.flags & ACC_ABSTRACT) throw new VmFault(`${method.name} is abstract`);
    if (args.length !== method.nargs) throw new VmFault(`${method.name} takes ${method.nargs} argument words, got ${args.length}`);
    fMethod[d] = method;
    fLp[d] = base;
    fCtx[d] = ctx;
    st.depth = d;
    try {
      return execute(d);
    } finally {
      st.depth = d - 1;
      st.sp = base;
      st.ctx = savedCtx;
    }
  }

  return {
    run,
    get context() {
      return st.ctx;
    },
    previousContext() {
      for (let i = st.depth; i >= 1; i--) if (fCtx[i] !== st.ctx && fMethod[i] !== undefined) return fCtx[i];
      return undefined;
    },
    get trace() {
      return st.trace;
    },
    set trace(t) {
      st.trace = t;
    },
    resetBudget() {
      st.executed = 0;
    },
    get depth() {
      return st.depth;
    },
  };
}

