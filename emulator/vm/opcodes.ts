// The JCVM instruction set as data (JCVM 3.0.5 §7.5): one row per opcode with its mnemonic, operand layout and cost
// class. The interpreter's handlers, the assembler and the cycle profiles all read this table; none repeats it.

/**
 * Operand layouts after the opcode byte.
 * s1/s2/s4: signed constants; u1/u2: unsigned indexes (local variable, constant pool); b1/b2: branch offsets relative to
 * the opcode; inc: u1 local + s1 constant; inc_w: u1 local + s2 constant; iface: u1 nargs + u2 cp index + u1 method token;
 * atype: u1 array type (newarray); cast: u1 atype + u2 cp index; dupx: u1 packed m/n; sw_stable / sw_itable / sw_slookup /
 * sw_ilookup: the variable-length switch layouts of §7.5.
 */
export type Operands =
  | 'none' | 's1' | 's2' | 's4' | 'u1' | 'u2' | 'b1' | 'b2' | 'inc' | 'inc_w' | 'iface' | 'atype' | 'cast' | 'dupx'
  | 'sw_stable' | 'sw_itable' | 'sw_slookup' | 'sw_ilookup';

/** What kind of work an instruction does; a cycle profile prices each class (and may override single opcodes). */
export type CostClass =
  | 'const' | 'load' | 'store' | 'array_load' | 'array_store' | 'stack' | 'arith' | 'mul' | 'div' | 'int_arith'
  | 'int_mul' | 'int_div' | 'convert' | 'branch' | 'switch' | 'jsr' | 'return' | 'static_get' | 'static_put'
  | 'field_get' | 'field_put' | 'invoke' | 'new' | 'new_array' | 'array_length' | 'throw' | 'cast' | 'nop';

export interface OpInfo {
  readonly code: number;
  readonly mnemonic: string;
  readonly operands: Operands;
  readonly cost: CostClass;
  /** Needs the integer option (package flag ACC_INT, JCVM §6.4). */
  readonly int: boolean;
}

/** Fixed operand sizes in bytes; switches are variable (-1). */
export const OPERAND_BYTES: Record<Operands, number> = {
  none: 0, s1: 1, s2: 2, s4: 4, u1: 1, u2: 2, b1: 1, b2: 2, inc: 2, inc_w: 3, iface: 4, atype: 1, cast: 3, dupx: 1,
  sw_stable: -1, sw_itable: -1, sw_slookup: -1, sw_ilookup: -1,
};

type Row = [number, string, Operands, CostClass];

const ROWS: Row[] = [
  [0x00, 'nop', 'none', 'nop'],
  [0x01, 'aconst_null', 'none', 'const'],
  [0x02, 'sconst_m1', 'none', 'const'], [0x03, 'sconst_0', 'none', 'const'], [0x04, 'sconst_1', 'none', 'const'],
  [0x05, 'sconst_2', 'none', 'const'], [0x06, 'sconst_3', 'none', 'const'], [0x07, 'sconst_4', 'none', 'const'],
  [0x08, 'sconst_5', 'none', 'const'],
  [0x09, 'iconst_m1', 'none', 'const'], [0x0a, 'iconst_0', 'none', 'const'], [0x0b, 'iconst_1', 'none', 'const'],
  [0x0c, 'iconst_2', 'none', 'const'], [0x0d, 'iconst_3', 'none', 'const'], [0x0e, 'iconst_4', 'none', 'const'],
  [0x0f, 'iconst_5', 'none', 'const'],
  [0x10, 'bspush', 's1', 'const'], [0x11, 'sspush', 's2', 'const'], [0x12, 'bipush', 's1', 'const'],
  [0x13, 'sipush', 's2', 'const'], [0x14, 'iipush', 's4', 'const'],
  [0x15, 'aload', 'u1', 'load'], [0x16, 'sload', 'u1', 'load'], [0x17, 'iload', 'u1', 'load'],
  [0x18, 'aload_0', 'none', 'load'], [0x19, 'aload_1', 'none', 'load'], [0x1a, 'aload_2', 'none', 'load'],
  [0x1b, 'aload_3', 'none', 'load'],
  [0x1c, 'sload_0', 'none', 'load'], [0x1d, 'sload_1', 'none', 'load'], [0x1e, 'sload_2', 'none', 'load'],
  [0x1f, 'sload_3', 'none', 'load'],
  [0x20, 'iload_0', 'none', 'load'], [0x21, 'iload_1', 'none', 'load'], [0x22, 'iload_2', 'none', 'load'],
  [0x23, 'iload_3', 'none', 'load'],
  [0x24, 'aaload', 'none', 'array_load'], [0x25, 'baload', 'none', 'array_load'], [0x26, 'saload', 'none', 'array_load'],
  [0x27, 'iaload', 'none', 'array_load'],
  [0x28, 'astore', 'u1', 'store'], [0x29, 'sstore', 'u1', 'store'], [0x2a, 'istore', 'u1', 'store'],
  [0x2b, 'astore_0', 'none', 'store'], [0x2c, 'astore_1', 'none', 'store'], [0x2d, 'astore_2', 'none', 'store'],
  [0x2e, 'astore_3', 'none', 'store'],
  [0x2f, 'sstore_0', 'none', 'store'], [0x30, 'sstore_1', 'none', 'store'], [0x31, 'sstore_2', 'none', 'store'],
  [0x32, 'sstore_3', 'none', 'store'],
  [0x33, 'istore_0', 'none', 'store'], [0x34, 'istore_1', 'none', 'store'], [0x35, 'istore_2', 'none', 'store'],
  [0x36, 'istore_3', 'none', 'store'],
  [0x37, 'aastore', 'none', 'array_store'], [0x38, 'bastore', 'none', 'array_store'],
  [0x39, 'sastore', 'none', 'array_store'], [0x3a, 'iastore', 'none', 'array_store'],
  [0x3b, 'pop', 'none', 'stack'], [0x3c, 'pop2', 'none', 'stack'], [0x3d, 'dup', 'none', 'stack'],
  [0x3e, 'dup2', 'none', 'stack'], [0x3f, 'dup_x', 'dupx', 'stack'], [0x40, 'swap_x', 'dupx', 'stack'],
  [0x41, 'sadd', 'none', 'arith'], [0x42, 'iadd', 'none', 'int_arith'], [0x43, 'ssub', 'none', 'arith'],
  [0x44, 'isub', 'none', 'int_arith'], [0x45, 'smul', 'none', 'mul'], [0x46, 'imul', 'none', 'int_mul'],
  [0x47, 'sdiv', 'none', 'div'], [0x48, 'idiv', 'none', 'int_div'], [0x49, 'srem', 'none', 'div'],
  [0x4a, 'irem', 'none', 'int_div'], [0x4b, 'sneg', 'none', 'arith'], [0x4c, 'ineg', 'none', 'int_arith'],
  [0x4d, 'sshl', 'none', 'arith'], [0x4e, 'ishl', 'none', 'int_arith'], [0x4f, 'sshr', 'none', 'arith'],
  [0x50, 'ishr', 'none', 'int_arith'], [0x51, 'sushr', 'none', 'arith'], [0x52, 'iushr', 'none', 'int_arith'],
  [0x53, 'sand', 'none', 'arith'], [0x54, 'iand', 'none', 'int_arith'], [0x55, 'sor', 'none', 'arith'],
  [0x56, 'ior', 'none', 'int_arith'], [0x57, 'sxor', 'none', 'arith'], [0x58, 'ixor', 'none', 'int_arith'],
  [0x59, 'sinc', 'inc', 'arith'], [0x5a, 'iinc', 'inc', 'int_arith'],
  [0x5b, 's2b', 'none', 'convert'], [0x5c, 's2i', 'none', 'convert'], [0x5d, 'i2b', 'none', 'convert'],
  [0x5e, 'i2s', 'none', 'convert'], [0x5f, 'icmp', 'none', 'int_arith'],
  [0x60, 'ifeq', 'b1', 'branch'], [0x61, 'ifne', 'b1', 'branch'], [0x62, 'iflt', 'b1', 'branch'],
  [0x63, 'ifge', 'b1', 'branch'], [0x64, 'ifgt', 'b1', 'branch'], [0x65, 'ifle', 'b1', 'branch'],
  [0x66, 'ifnull', 'b1', 'branch'], [0x67, 'ifnonnull', 'b1', 'branch'], [0x68, 'if_acmpeq', 'b1', 'branch'],
  [0x69, 'if_acmpne', 'b1', 'branch'], [0x6a, 'if_scmpeq', 'b1', 'branch'], [0x6b, 'if_scmpne', 'b1', 'branch'],
  [0x6c, 'if_scmplt', 'b1', 'branch'], [0x6d, 'if_scmpge', 'b1', 'branch'], [0x6e, 'if_scmpgt', 'b1', 'branch'],
  [0x6f, 'if_scmple', 'b1', 'branch'], [0x70, 'goto', 'b1', 'branch'],
  [0x71, 'jsr', 'b2', 'jsr'], [0x72, 'ret', 'u1', 'jsr'],
  [0x73, 'stableswitch', 'sw_stable', 'switch'], [0x74, 'itableswitch', 'sw_itable', 'switch'],
  [0x75, 'slookupswitch', 'sw_slookup', 'switch'], [0x76, 'ilookupswitch', 'sw_ilookup', 'switch'],
  [0x77, 'areturn', 'none', 'return'], [0x78, 'sreturn', 'none', 'return'], [0x79, 'ireturn', 'none', 'return'],
  [0x7a, 'return', 'none', 'return'],
  [0x7b, 'getstatic_a', 'u2', 'static_get'], [0x7c, 'getstatic_b', 'u2', 'static_get'],
  [0x7d, 'getstatic_s', 'u2', 'static_get'], [0x7e, 'getstatic_i', 'u2', 'static_get'],
  [0x7f, 'putstatic_a', 'u2', 'static_put'], [0x80, 'putstatic_b', 'u2', 'static_put'],
  [0x81, 'putstatic_s', 'u2', 'static_put'], [0x82, 'putstatic_i', 'u2', 'static_put'],
  [0x83, 'getfield_a', 'u1', 'field_get'], [0x84, 'getfield_b', 'u1', 'field_get'],
  [0x85, 'getfield_s', 'u1', 'field_get'], [0x86, 'getfield_i', 'u1', 'field_get'],
  [0x87, 'putfield_a', 'u1', 'field_put'], [0x88, 'putfield_b', 'u1', 'field_put'],
  [0x89, 'putfield_s', 'u1', 'field_put'], [0x8a, 'putfield_i', 'u1', 'field_put'],
  [0x8b, 'invokevirtual', 'u2', 'invoke'], [0x8c, 'invokespecial', 'u2', 'invoke'],
  [0x8d, 'invokestatic', 'u2', 'invoke'], [0x8e, 'invokeinterface', 'iface', 'invoke'],
  [0x8f, 'new', 'u2', 'new'], [0x90, 'newarray', 'atype', 'new_array'], [0x91, 'anewarray', 'u2', 'new_array'],
  [0x92, 'arraylength', 'none', 'array_length'], [0x93, 'athrow', 'none', 'throw'],
  [0x94, 'checkcast', 'cast', 'cast'], [0x95, 'instanceof', 'cast', 'cast'],
  [0x96, 'sinc_w', 'inc_w', 'arith'], [0x97, 'iinc_w', 'inc_w', 'int_arith'],
  [0x98, 'ifeq_w', 'b2', 'branch'], [0x99, 'ifne_w', 'b2', 'branch'], [0x9a, 'iflt_w', 'b2', 'branch'],
  [0x9b, 'ifge_w', 'b2', 'branch'], [0x9c, 'ifgt_w', 'b2', 'branch'], [0x9d, 'ifle_w', 'b2', 'branch'],
  [0x9e, 'ifnull_w', 'b2', 'branch'], [0x9f, 'ifnonnull_w', 'b2', 'branch'], [0xa0, 'if_acmpeq_w', 'b2', 'branch'],
  [0xa1, 'if_acmpne_w', 'b2', 'branch'], [0xa2, 'if_scmpeq_w', 'b2', 'branch'], [0xa3, 'if_scmpne_w', 'b2', 'branch'],
  [0xa4, 'if_scmplt_w', 'b2', 'branch'], [0xa5, 'if_scmpge_w', 'b2', 'branch'], [0xa6, 'if_scmpgt_w', 'b2', 'branch'],
  [0xa7, 'if_scmple_w', 'b2', 'branch'], [0xa8, 'goto_w', 'b2', 'branch'],
  [0xa9, 'getfield_a_w', 'u2', 'field_get'], [0xaa, 'getfield_b_w', 'u2', 'field_get'],
  [0xab, 'getfield_s_w', 'u2', 'field_get'], [0xac, 'getfield_i_w', 'u2', 'field_get'],
  [0xad, 'getfield_a_this', 'u1', 'field_get'], [0xae, 'getfield_b_this', 'u1', 'field_get'],
  [0xaf, 'getfield_s_this', 'u1', 'field_get'], [0xb0, 'getfield_i_this', 'u1', 'field_get'],
  [0xb1, 'putfield_a_w', 'u2', 'field_put'], [0xb2, 'putfield_b_w', 'u2', 'field_put'],
  [0xb3, 'putfield_s_w', 'u2', 'field_put'], [0xb4, 'putfield_i_w', 'u2', 'field_put'],
  [0xb5, 'putfield_a_this', 'u1', 'field_put'], [0xb6, 'putfield_b_this', 'u1', 'field_put'],
  [0xb7, 'putfield_s_this', 'u1', 'field_put'], [0xb8, 'putfield_i_this', 'u1', 'field_put'],
];

// Integer instructions by name: i-prefixed arithmetic/loads/stores, s2i, the int field/static forms (JCVM §7.5, ACC_INT).
const isIntOp = (m: string) =>
  /^i(const|push|ipush|load|store|aload|astore|add|sub|mul|div|rem|neg|shl|shr|ushr|and|or|xor|inc|cmp|2b|2s|return|tableswitch|lookupswitch)/.test(m) ||
  m === 's2i' || m === 'bipush' || m === 'sipush' || /_i(_w|_this)?$/.test(m);

/** Indexed by opcode; undefined for the unassigned codes B9..FF (impdep1 FE / impdep2 FF are reserved, not executable). */
export const OPCODES: readonly (OpInfo | undefined)[] = (() => {
  const t: (OpInfo | undefined)[] = new Array(256).fill(undefined);
  for (const [code, mnemonic, operands, cost] of ROWS) t[code] = { code, mnemonic, operands, cost, int: isIntOp(mnemonic) };
  return t;
})();

export const BY_MNEMONIC: ReadonlyMap<string, OpInfo> = new Map(ROWS.map(([c]) => [OPCODES[c]!.mnemonic, OPCODES[c]!]));

/** Array type codes of newarray and checkcast/instanceof (JCVM §7.5.59, §7.5.10). */
export const ATYPE = { REFERENCE: 14, BOOLEAN: 10, BYTE: 11, SHORT: 12, INT: 13 } as const;

/** Total length (opcode included) of the instruction at pc, or -1 when it is unassigned or runs past the end. */
export function instructionLength(code: Uint8Array, pc: number): number {
  const op = OPCODES[code[pc]];
  if (!op) return -1;
  const fixed = OPERAND_BYTES[op.operands];
  let len: number;
  if (fixed >= 0) len = 1 + fixed;
  else {
    const s16 = (o: number) => ((code[o] << 8) | code[o + 1]) << 16 >> 16;
    const s32 = (o: number) => (code[o] << 24) | (code[o + 1] << 16) | (code[o + 2] << 8) | code[o + 3];
    if (pc + 7 > code.length) return -1;
    switch (op.operands) {
      case 'sw_stable': len = 7 + 2 * (s16(pc + 5) - s16(pc + 3) + 1); break; // default, low, high, offsets
      case 'sw_itable': {
        if (pc + 11 > code.length) return -1;
        const n = s32(pc + 7) - s32(pc + 3) + 1;
        len = n > 0 && n < 0x8000 ? 11 + 2 * n : -1;
        break;
      }
      case 'sw_slookup': len = 5 + 4 * (((code[pc + 3] << 8) | code[pc + 4])); break; // default, npairs, (s2, s2)*
      default: len = 5 + 6 * (((code[pc + 3] << 8) | code[pc + 4])); break; // ilookup: (s4 match, s2 offset)*
    }
    if (len < 0) return -1;
  }
  return pc + len <= code.length ? len : -1;
}
