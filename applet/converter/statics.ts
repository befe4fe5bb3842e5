// A class's <clinit> → initial values of its static fields. A Java Card package has no class initialisers to run: the
// Static Field component carries the image (JCVM 3.0.5 §6.10), so only what the image can say is accepted —
// primitive constants stored into primitive statics (non-default values) and arrays of boolean/byte/short/int built
// from constants (array_init entries, §6.10 array_init_info): `static final byte[] X = {1, 2, 3};`.
import type { ClassFile } from './classfile.ts';
import { ATYPE, decodeCode } from './jvm-opcodes.ts';
import type { AsmInit } from '../../emulator/vm/cap/asm.ts';

export class StaticInitError extends Error {
  readonly pc: number;
  constructor(pc: number, what: string) {
    super(what);
    this.name = 'StaticInitError';
    this.pc = pc;
  }
}

type Value = { num: number } | { array: number[]; type: string };

/** Field name → initial value, from the class's <clinit> (an empty map when there is none). Throws StaticInitError. */
export function staticInitialValues(cf: ClassFile): Map<string, AsmInit> {
  const out = new Map<string, AsmInit>();
  const clinit = cf.methods.find((m) => m.name === '<clinit>');
  if (!clinit?.code) return out;
  const stack: Value[] = [];
  const num = (pc: number): number => {
    const v = stack.pop();
    if (!v || !('num' in v)) throw new StaticInitError(pc, 'static initialiser too complex for the static field image');
    return v.num;
  };
  for (const ins of decodeCode(clinit.code.code, `${cf.thisClass}.<clinit>`)) {
    const pc = ins.pc;
    const mn = ins.mnemonic;
    if (/^iconst_/.test(mn)) stack.push({ num: mn === 'iconst_m1' ? -1 : Number(mn.slice(7)) });
    else if (mn === 'bipush' || mn === 'sipush') stack.push({ num: ins.operands[0] });
    else if (mn === 'ldc' || mn === 'ldc_w') {
      const k = cf.constant(ins.operands[0]);
      if (k.kind !== 'int') throw new StaticInitError(pc, `a ${k.kind} constant cannot initialise a Java Card static field`);
      stack.push({ num: k.value });
    } else if (mn === 'newarray') {
      const type = ATYPE[ins.operands[0]];
      if (!['boolean', 'byte', 'short', 'int'].includes(type)) throw new StaticInitError(pc, `${type} arrays are not Java Card types`);
      stack.push({ array: new Array<number>(num(pc)).fill(0), type });
    } else if (mn === 'dup') {
      const v = stack[stack.length - 1];
      if (!v) throw new StaticInitError(pc, 'static initialiser too complex for the static field image');
      stack.push(v);
    } else if (/^[bsi]astore$/.test(mn)) {
      const value = num(pc);
      const index = num(pc);
      const arr = stack.pop();
      if (!arr || !('array' in arr) || index < 0 || index >= arr.array.length) throw new StaticInitError(pc, 'static initialiser too complex for the static field image');
      arr.array[index] = value;
    } else if (mn === 'putstatic') {
      const ref = cf.memberRef(ins.operands[0]);
      if (ref.owner !== cf.thisClass) throw new StaticInitError(pc, `static initialiser stores into ${ref.owner}.${ref.name}; only this class's fields can be initialised`);
      const v = stack.pop();
      if (!v) throw new StaticInitError(pc, 'static initialiser too complex for the static field image');
      if ('num' in v) out.set(ref.name, { kind: 'value', text: String(v.num) });
      else out.set(ref.name, { kind: 'array', items: v.array.map(String) });
    } else if (mn === 'return') {
      break;
    } else {
      throw new StaticInitError(pc, `${mn} in a static initialiser: Java Card has no class initialisation; only constant values and constant arrays are allowed`);
    }
  }
  return out;
}
