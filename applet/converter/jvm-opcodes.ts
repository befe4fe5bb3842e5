// The JVM instruction set as data (JVMS 17 §6.5 and the opcode list of ch. 7) and a decoder from a Code attribute's
// bytes to Instructions with absolute branch targets. tableswitch/lookupswitch padding (§6.5.tableswitch: 0–3 bytes
// so the operands start at a multiple of 4 from the start of the code) and the wide prefix (§6.5.wide) are handled.
import { readU16, readU32 } from '../../emulator/bytes.ts';

/**
 * Operand layouts:
 * none; s1/s2 signed immediates (bipush, sipush); u1 unsigned byte (newarray atype); local1 (u1 local index, u2 after
 * wide); cp1/cp2 constant pool index; branch2/branch4 signed offset from the instruction's pc; iinc (local, s1 const;
 * u2, s2 after wide); invokeinterface (cp2, count, 0); invokedynamic (cp2, 0, 0); multianewarray (cp2, dims);
 * tableswitch, lookupswitch; wide (prefix).
 */
export type OperandLayout =
  | 'none'
  | 's1'
  | 's2'
  | 'u1'
  | 'local1'
  | 'cp1'
  | 'cp2'
  | 'branch2'
  | 'branch4'
  | 'iinc'
  | 'invokeinterface'
  | 'invokedynamic'
  | 'multianewarray'
  | 'tableswitch'
  | 'lookupswitch'
  | 'wide';

export interface JvmOpcode {
  readonly opcode: number;
  readonly mnemonic: string;
  readonly layout: OperandLayout;
}

/** [opcode, mnemonic, layout]; iload_<n> style families are expanded below. */
const ROWS: readonly (readonly [number, string, OperandLayout])[] = [
  [0x00, 'nop', 'none'],
  [0x01, 'aconst_null', 'none'],
  [0x02, 'iconst_m1', 'none'],
  [0x03, 'iconst_0', 'none'],
  [0x04, 'iconst_1', 'none'],
  [0x05, 'iconst_2', 'none'],
  [0x06, 'iconst_3', 'none'],
  [0x07, 'iconst_4', 'none'],
  [0x08, 'iconst_5', 'none'],
  [0x09, 'lconst_0', 'none'],
  [0x0a, 'lconst_1', 'none'],
  [0x0b, 'fconst_0', 'none'],
  [0x0c, 'fconst_1', 'none'],
  [0x0d, 'fconst_2', 'none'],
  [0x0e, 'dconst_0', 'none'],
  [0x0f, 'dconst_1', 'none'],
  [0x10, 'bipush', 's1'],
  [0x11, 'sipush', 's2'],
  [0x12, 'ldc', 'cp1'],
  [0x13, 'ldc_w', 'cp2'],
  [0x14, 'ldc2_w', 'cp2'],
  [0x15, 'iload', 'local1'],
  [0x16, 'lload', 'local1'],
  [0x17, 'fload', 'local1'],
  [0x18, 'dload', 'local1'],
  [0x19, 'aload', 'local1'],
  // 0x1a..0x2d: <t>load_<n>, expanded below
  [0x2e, 'iaload', 'none'],
  [0x2f, 'laload', 'none'],
  [0x30, 'faload', 'none'],
  [0x31, 'daload', 'none'],
  [0x32, 'aaload', 'none'],
  [0x33, 'baload', 'none'],
  [0x34, 'caload', 'none'],
  [0x35, 'saload', 'none'],
  [0x36, 'istore', 'local1'],
  [0x37, 'lstore', 'local1'],
  [0x38, 'fstore', 'local1'],
  [0x39, 'dstore', 'local1'],
  [0x3a, 'astore', 'local1'],
  // 0x3b..0x4e: <t>store_<n>, expanded below
  [0x4f, 'iastore', 'none'],
  [0x50, 'lastore', 'none'],
  [0x51, 'fastore', 'none'],
  [0x52, 'dastore', 'none'],
  [0x53, 'aastore', 'none'],
  [0x54, 'bastore', 'none'],
  [0x55, 'castore', 'none'],
  [0x56, 'sastore', 'none'],
  [0x57, 'pop', 'none'],
  [0x58, 'pop2', 'none'],
  [0x59, 'dup', 'none'],
  [0x5a, 'dup_x1', 'none'],
  [0x5b, 'dup_x2', 'none'],
  [0x5c, 'dup2', 'none'],
  [0x5d, 'dup2_x1', 'none'],
  [0x5e, 'dup2_x2', 'none'],
  [0x5f, 'swap', 'none'],
  // 0x60..0x77: <op> for i,l,f,d (add sub mul div rem neg), expanded below
  [0x78, 'ishl', 'none'],
  [0x79, 'lshl', 'none'],
  [0x7a, 'ishr', 'none'],
  [0x7b, 'lshr', 'none'],
  [0x7c, 'iushr', 'none'],
  [0x7d, 'lushr', 'none'],
  [0x7e, 'iand', 'none'],
  [0x7f, 'land', 'none'],
  [0x80, 'ior', 'none'],
  [0x81, 'lor', 'none'],
  [0x82, 'ixor', 'none'],
  [0x83, 'lxor', 'none'],
  [0x84, 'iinc', 'iinc'],
  [0x85, 'i2l', 'none'],
  [0x86, 'i2f', 'none'],
  [0x87, 'i2d', 'none'],
  [0x88, 'l2i', 'none'],
  [0x89, 'l2f', 'none'],
  [0x8a, 'l2d', 'none'],
  [0x8b, 'f2i', 'none'],
  [0x8c, 'f2l', 'none'],
  [0x8d, 'f2d', 'none'],
  [0x8e, 'd2i', 'none'],
  [0x8f, 'd2l', 'none'],
  [0x90, 'd2f', 'none'],
  [0x91, 'i2b', 'none'],
  [0x92, 'i2c', 'none'],
  [0x93, 'i2s', 'none'],
  [0x94, 'lcmp', 'none'],
  [0x95, 'fcmpl', 'none'],
  [0x96, 'fcmpg', 'none'],
  [0x97, 'dcmpl', 'none'],
  [0x98, 'dcmpg', 'none'],
  [0x99, 'ifeq', 'branch2'],
  [0x9a, 'ifne', 'branch2'],
  [0x9b, 'iflt', 'branch2'],
  [0x9c, 'ifge', 'branch2'],
  [0x9d, 'ifgt', 'branch2'],
  [0x9e, 'ifle', 'branch2'],
  [0x9f, 'if_icmpeq', 'branch2'],
  [0xa0, 'if_icmpne', 'branch2'],
  [0xa1, 'if_icmplt', 'branch2'],
  [0xa2, 'if_icmpge', 'branch2'],
  [0xa3, 'if_icmpgt', 'branch2'],
  [0xa4, 'if_icmple', 'branch2'],
  [0xa5, 'if_acmpeq', 'branch2'],
  [0xa6, 'if_acmpne', 'branch2'],
  [0xa7, 'goto', 'branch2'],
  [0xa8, 'jsr', 'branch2'],
  [0xa9, 'ret', 'local1'],
  [0xaa, 'tableswitch', 'tableswitch'],
  [0xab, 'lookupswitch', 'lookupswitch'],
  [0xac, 'ireturn', 'none'],
  [0xad, 'lreturn', 'none'],
  [0xae, 'freturn', 'none'],
  [0xaf, 'dreturn', 'none'],
  [0xb0, 'areturn', 'none'],
  [0xb1, 'return', 'none'],
  [0xb2, 'getstatic', 'cp2'],
  [0xb3, 'putstatic', 'cp2'],
  [0xb4, 'getfield', 'cp2'],
  [0xb5, 'putfield', 'cp2'],
  [0xb6, 'invokevirtual', 'cp2'],
  [0xb7, 'invokespecial', 'cp2'],
  [0xb8, 'invokestatic', 'cp2'],
  [0xb9, 'invokeinterface', 'invokeinterface'],
  [0xba, 'invokedynamic', 'invokedynamic'],
  [0xbb, 'new', 'cp2'],
  [0xbc, 'newarray', 'u1'],
  [0xbd, 'anewarray', 'cp2'],
  [0xbe, 'arraylength', 'none'],
  [0xbf, 'athrow', 'none'],
  [0xc0, 'checkcast', 'cp2'],
  [0xc1, 'instanceof', 'cp2'],
  [0xc2, 'monitorenter', 'none'],
  [0xc3, 'monitorexit', 'none'],
  [0xc4, 'wide', 'wide'],
  [0xc5, 'multianewarray', 'multianewarray'],
  [0xc6, 'ifnull', 'branch2'],
  [0xc7, 'ifnonnull', 'branch2'],
  [0xc8, 'goto_w', 'branch4'],
  [0xc9, 'jsr_w', 'branch4'],
  // 0xca breakpoint, 0xfe impdep1, 0xff impdep2 are reserved and must not appear in a class file (JVMS §6.2).
];

function buildTable(): (JvmOpcode | undefined)[] {
  const table: (JvmOpcode | undefined)[] = new Array(256);
  for (const [opcode, mnemonic, layout] of ROWS) table[opcode] = { opcode, mnemonic, layout };
  const types = ['i', 'l', 'f', 'd', 'a'];
  types.forEach((t, ti) => {
    for (let n = 0; n < 4; n++) {
      const load = 0x1a + ti * 4 + n;
      const store = 0x3b + ti * 4 + n;
      table[load] = { opcode: load, mnemonic: `${t}load_${n}`, layout: 'none' };
      table[store] = { opcode: store, mnemonic: `${t}store_${n}`, layout: 'none' };
    }
  });
  ['add', 'sub', 'mul', 'div', 'rem', 'neg'].forEach((op, oi) => {
    ['i', 'l', 'f', 'd'].forEach((t, ti) => {
      const opcode = 0x60 + oi * 4 + ti;
      table[opcode] = { opcode, mnemonic: `${t}${op}`, layout: 'none' };
    });
  });
  return table;
}

/** Indexed by opcode; undefined for the unassigned and reserved opcodes. */
export const JVM_OPCODES: readonly (JvmOpcode | undefined)[] = buildTable();

/** Mnemonic → opcode, for tests and the translator. */
export const JVM_OPCODE_BY_NAME: ReadonlyMap<string, number> = new Map(
  JVM_OPCODES.filter((o): o is JvmOpcode => o !== undefined).map((o) => [o.mnemonic, o.opcode]),
);

/** newarray atype codes, JVMS §6.5.newarray Table 6.5.newarray-A. */
export const ATYPE: Readonly<Record<number, string>> = {
  4: 'boolean',
  5: 'char',
  6: 'float',
  7: 'double',
  8: 'byte',
  9: 'short',
  10: 'int',
  11: 'long',
};

/** Instructions wide may modify (JVMS §6.5.wide): the local-variable loads/stores, ret, and iinc. */
const WIDENABLE = new Set([0x15, 0x16, 0x17, 0x18, 0x19, 0x36, 0x37, 0x38, 0x39, 0x3a, 0xa9, 0x84]);

export interface SwitchTable {
  readonly defaultTarget: number;
  /** tableswitch: match values low..high in order; lookupswitch: sorted match values (JVMS requires ascending). */
  readonly cases: readonly { readonly match: number; readonly target: number }[];
  /** tableswitch only. */
  readonly low?: number;
  readonly high?: number;
}

export interface Instruction {
  readonly pc: number;
  readonly opcode: number;
  /** The modified instruction's mnemonic for wide forms ("iload" with wide: true). */
  readonly mnemonic: string;
  /** Bytes including the wide prefix and switch padding. */
  readonly length: number;
  readonly wide: boolean;
  /**
   * Decoded operands in layout order: the value (s1, s2, u1), local index, CP index, relative branch offset, iinc
   * [local, const], invokeinterface [cp, count], multianewarray [cp, dims]; switches leave this empty (see `switch`).
   */
  readonly operands: readonly number[];
  /** Absolute branch targets: the one target of a branch; a switch's default first, then each case's. */
  readonly targets: readonly number[];
  readonly switch?: SwitchTable;
}

export class BytecodeError extends Error {
  readonly pc: number;
  constructor(pc: number, what: string, where?: string) {
    super(`${where ? `${where}: ` : ''}pc ${pc}: ${what}`);
    this.name = 'BytecodeError';
    this.pc = pc;
  }
}

const s8 = (v: number): number => (v << 24) >> 24;
const s16 = (v: number): number => (v << 16) >> 16;

/**
 * Decodes a method's code into instructions. Checks what JVMS §4.9.1 requires of the code array's structure: known
 * opcodes, operands within the code, branch targets on instruction starts, valid wide forms. `where` (e.g.
 * "a/b/C.m()V") prefixes errors.
 */
export function decodeCode(code: Uint8Array, where?: string): Instruction[] {
  const out: Instruction[] = [];
  const fail = (pc: number, what: string): never => {
    throw new BytecodeError(pc, what, where);
  };
  let pc = 0;
  while (pc < code.length) {
    const start = pc;
    const opcode = code[pc];
    const op = JVM_OPCODES[opcode];
    if (!op) fail(start, `undefined or reserved opcode 0x${opcode.toString(16).padStart(2, '0')}`);
    const need = (n: number, at: number): void => {
      if (at + n > code.length) fail(start, `${op!.mnemonic} operands run past the end of the code (length ${code.length})`);
    };
    let length: number;
    let mnemonic = op!.mnemonic;
    let wide = false;
    let operands: number[] = [];
    let targets: number[] = [];
    let sw: SwitchTable | undefined;
    switch (op!.layout) {
      case 'none':
        length = 1;
        break;
      case 's1':
        need(1, pc + 1);
        operands = [s8(code[pc + 1])];
        length = 2;
        break;
      case 'u1':
      case 'local1':
      case 'cp1':
        need(1, pc + 1);
        operands = [code[pc + 1]];
        length = 2;
        break;
      case 's2':
        need(2, pc + 1);
        operands = [s16(readU16(code, pc + 1))];
        length = 3;
        break;
      case 'cp2':
        need(2, pc + 1);
        operands = [readU16(code, pc + 1)];
        length = 3;
        break;
      case 'branch2':
        need(2, pc + 1);
        operands = [s16(readU16(code, pc + 1))];
        targets = [start + operands[0]];
        length = 3;
        break;
      case 'branch4':
        need(4, pc + 1);
        operands = [readU32(code, pc + 1) | 0];
        targets = [start + operands[0]];
        length = 5;
        break;
      case 'iinc':
        need(2, pc + 1);
        operands = [code[pc + 1], s8(code[pc + 2])];
        length = 3;
        break;
      case 'invokeinterface':
        need(4, pc + 1);
        // JVMS §6.5.invokeinterface: count is unsigned and nonzero; the fourth byte is 0.
        if (code[pc + 3] === 0 || code[pc + 4] !== 0) fail(start, 'invokeinterface count must be nonzero and its fourth operand byte 0');
        operands = [readU16(code, pc + 1), code[pc + 3]];
        length = 5;
        break;
      case 'invokedynamic':
        need(4, pc + 1);
        if (code[pc + 3] !== 0 || code[pc + 4] !== 0) fail(start, 'invokedynamic operand bytes 3 and 4 must be 0');
        operands = [readU16(code, pc + 1)];
        length = 5;
        break;
      case 'multianewarray':
        need(3, pc + 1);
        if (code[pc + 3] === 0) fail(start, 'multianewarray dimensions must be at least 1');
        operands = [readU16(code, pc + 1), code[pc + 3]];
        length = 4;
        break;
      case 'tableswitch': {
        const base = (start + 4) & ~3; // 0-3 padding bytes after the opcode
        need(12, base);
        const def = readU32(code, base) | 0;
        const low = readU32(code, base + 4) | 0;
        const high = readU32(code, base + 8) | 0;
        if (low > high) fail(start, `tableswitch low ${low} > high ${high}`);
        const n = high - low + 1;
        need(4 * n, base + 12);
        const cases: { match: number; target: number }[] = [];
        for (let i = 0; i < n; i++) cases.push({ match: low + i, target: start + (readU32(code, base + 12 + 4 * i) | 0) });
        sw = { defaultTarget: start + def, cases, low, high };
        targets = [sw.defaultTarget, ...cases.map((k) => k.target)];
        length = base + 12 + 4 * n - start;
        break;
      }
      case 'lookupswitch': {
        const base = (start + 4) & ~3;
        need(8, base);
        const def = readU32(code, base) | 0;
        const npairs = readU32(code, base + 4) | 0;
        if (npairs < 0) fail(start, `lookupswitch npairs ${npairs} is negative`);
        need(8 * npairs, base + 8);
        const cases: { match: number; target: number }[] = [];
        for (let i = 0; i < npairs; i++) {
          const match = readU32(code, base + 8 + 8 * i) | 0;
          if (i > 0 && match <= cases[i - 1].match) fail(start, 'lookupswitch match values are not in ascending order');
          cases.push({ match, target: start + (readU32(code, base + 12 + 8 * i) | 0) });
        }
        sw = { defaultTarget: start + def, cases };
        targets = [sw.defaultTarget, ...cases.map((k) => k.target)];
        length = base + 8 + 8 * npairs - start;
        break;
      }
      case 'wide': {
        need(1, pc + 1);
        const inner = code[pc + 1];
        if (!WIDENABLE.has(inner)) fail(start, `wide cannot modify opcode 0x${inner.toString(16).padStart(2, '0')}`);
        const innerOp = JVM_OPCODES[inner]!;
        mnemonic = innerOp.mnemonic;
        wide = true;
        if (inner === 0x84) {
          need(4, pc + 2);
          operands = [readU16(code, pc + 2), s16(readU16(code, pc + 4))];
          length = 6;
        } else {
          need(2, pc + 2);
          operands = [readU16(code, pc + 2)];
          length = 4;
        }
        out.push({ pc: start, opcode: inner, mnemonic, length, wide, operands, targets });
        pc += length;
        continue;
      }
    }
    out.push({ pc: start, opcode, mnemonic, length, wide, operands, targets, ...(sw ? { switch: sw } : {}) });
    pc += length;
  }
  // JVMS §4.9.1: every branch target is the start of an instruction within this method.
  const starts = new Set(out.map((i) => i.pc));
  for (const ins of out) {
    for (const t of ins.targets) {
      if (!starts.has(t)) fail(ins.pc, `${ins.mnemonic} target ${t} is not the start of an instruction`);
    }
  }
  return out;
}
