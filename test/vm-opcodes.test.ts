// Every JCVM instruction 0x00–0xB8 (JCVM 3.0.5 §7.5) run through the interpreter, with the edge cases of short and int
// arithmetic, branches, switches, arrays, fields, statics, invocation, casts and exceptions.
import { describe, expect, it } from 'vitest';
import type { CpEntry } from '../emulator/vm/types.ts';
import { VmThrow, isArray } from '../emulator/vm/types.ts';
import { OPCODES } from '../emulator/vm/opcodes.ts';
import { VmFault } from '../emulator/vm/exceptions.ts';
import type { Item, TClass, TMethod } from './helpers/vm-build.ts';
import { I as asmI, buildPackage, lookupswitch as asmLookup, tableswitch as asmTable, testVm } from './helpers/vm-build.ts';

// Opcodes that appear in the programs of this file (checked at the end: every opcode 0x00–0xB8 is exercised).
const covered = new Set<number>();
const I = (m: string, ...a: (number | string)[]): Item[] => {
  const out = asmI(m, ...a);
  covered.add(out[0] as number);
  return out;
};
const tableswitch = (int: boolean, def: string, low: number, labels: string[]): Item[] => {
  const out = asmTable(int, def, low, labels);
  covered.add(out[0] as number);
  return out;
};
const lookupswitch = (int: boolean, def: string, pairs: [number, string][]): Item[] => {
  const out = asmLookup(int, def, pairs);
  covered.add(out[0] as number);
  return out;
};

const lang = (classToken: number) => ({ internal: false as const, pkg: 0, classToken });
const A = { internal: true as const, classOffset: 0 };
const B = { internal: true as const, classOffset: 40 };
const IFACE = { internal: true as const, classOffset: 20 };
// The constant pool every test program shares.
const CP: CpEntry[] = [
  { tag: 1, kind: 'class', ref: A }, // 0
  { tag: 2, kind: 'instanceField', cls: A, token: 0 }, // 1: reference
  { tag: 2, kind: 'instanceField', cls: A, token: 1 }, // 2: short/byte
  { tag: 2, kind: 'instanceField', cls: A, token: 2 }, // 3: int (cells 2, 3)
  { tag: 5, kind: 'staticField', ref: { internal: true, offset: 0 } }, // 4: reference
  { tag: 5, kind: 'staticField', ref: { internal: true, offset: 2 } }, // 5: short
  { tag: 5, kind: 'staticField', ref: { internal: true, offset: 4 } }, // 6: int
  { tag: 5, kind: 'staticField', ref: { internal: true, offset: 8 } }, // 7: byte
  { tag: 3, kind: 'virtualMethod', cls: A, token: 1 }, // 8: A.vget()S
  { tag: 1, kind: 'class', ref: lang(9) }, // 9: ArithmeticException
  { tag: 1, kind: 'class', ref: lang(2) }, // 10: Exception
  { tag: 1, kind: 'class', ref: lang(7) }, // 11: NullPointerException
  { tag: 4, kind: 'superMethod', cls: B, token: 1 }, // 12: super.vget() from B
  { tag: 1, kind: 'class', ref: IFACE }, // 13: interface I
  { tag: 1, kind: 'class', ref: B }, // 14: class B extends A implements I
  { tag: 1, kind: 'class', ref: lang(0) }, // 15: Object
  { tag: 3, kind: 'virtualMethod', cls: A, token: 0 }, // 16: Object.equals via A
  { tag: 1, kind: 'class', ref: lang(10) }, // 17: SecurityException
];
const CLASSES: TClass[] = [
  // A: fields ref (token 0), short (1), int (2-3); vget() at public token 1 returns 7.
  { offset: 0, superclass: lang(0), fields: 4, firstReferenceToken: 0, referenceCount: 1, publicBase: 1, publicMethods: ['A.vget'] },
  { offset: 20, interface: true },
  // B extends A, overrides vget (returns 8), implements I with I's method 0 = vget.
  { offset: 40, superclass: A, fields: 1, publicBase: 1, publicMethods: ['B.vget'], interfaces: [{ iface: IFACE, indexes: [1] }] },
];
const HELPERS: TMethod[] = [
  { name: 'A.vget', nargs: 1, code: [...I('bspush', 7), ...I('sreturn')] },
  { name: 'B.vget', nargs: 1, code: [...I('bspush', 8), ...I('sreturn')] },
];
const STATICS = { imageSize: 9, referenceCount: 1, defaultValueCount: 7 };

interface Prog {
  code: Item[];
  nargs?: number;
  locals?: number;
  args?: number[];
  handlers?: TMethod['handlers'];
  more?: TMethod[];
  int?: boolean;
}

function setup(p: Prog) {
  const t = testVm();
  const built = buildPackage({
    aid: 'F0000000010001',
    int: p.int,
    cp: CP,
    classes: CLASSES,
    statics: STATICS,
    methods: [{ name: 'main', nargs: p.nargs ?? 0, maxLocals: p.locals ?? 4, maxStack: 12, code: p.code, handlers: p.handlers }, ...HELPERS, ...(p.more ?? [])],
  });
  const unit = t.link(built);
  return { t, built, unit, run: (args = p.args ?? []) => t.run(unit, built, 'main', args) };
}

/** Runs a program and returns its result. */
function run(p: Prog | Item[]): number {
  const prog = Array.isArray(p) ? { code: p } : p;
  return setup(prog).run();
}

/** Runs a program that must end with an uncaught Java exception; returns the exception's class name. */
function thrown(p: Prog | Item[]): string {
  const prog = Array.isArray(p) ? { code: p } : p;
  const s = setup(prog);
  try {
    s.run();
  } catch (e) {
    if (!(e instanceof VmThrow)) throw e;
    const o = s.t.vm.heap.peek(e.ref);
    return o && !isArray(o) ? o.cls.name : 'array';
  }
  throw new Error('no exception');
}

const sret = (...code: Item[][]): Item[] => [...code.flat(), ...I('sreturn')];
const iret = (...code: Item[][]): Item[] => [...code.flat(), ...I('ireturn')];

describe('constants and locals (JCVM §7.5 *const, *push, *load, *store)', () => {
  it('pushes short and int constants', () => {
    expect(run(sret(I('aconst_null')))).toBe(0);
    const sconst = ['sconst_m1', 'sconst_0', 'sconst_1', 'sconst_2', 'sconst_3', 'sconst_4', 'sconst_5'];
    sconst.forEach((m, i) => expect(run(sret(I(m)))).toBe(i - 1));
    const iconst = ['iconst_m1', 'iconst_0', 'iconst_1', 'iconst_2', 'iconst_3', 'iconst_4', 'iconst_5'];
    iconst.forEach((m, i) => expect(run(iret(I(m)))).toBe(i - 1));
    expect(run(sret(I('bspush', -128)))).toBe(-128);
    expect(run(sret(I('sspush', -32768)))).toBe(-32768);
    expect(run(iret(I('bipush', -2)))).toBe(-2);
    expect(run(iret(I('sipush', 0x7fff)))).toBe(0x7fff);
    expect(run(iret(I('sipush', -1)))).toBe(-1);
    expect(run(iret(I('iipush', 0x12345678)))).toBe(0x12345678);
    expect(run(iret(I('iipush', -0x7fffffff - 1)))).toBe(-0x80000000);
  });

  it('loads and stores locals of every width, explicit and _n forms', () => {
    expect(run({ nargs: 2, args: [5, 9], code: sret(I('sload', 1)) })).toBe(9);
    expect(run({ nargs: 1, args: [4], code: sret(I('aload', 0)) })).toBe(4);
    expect(run({ nargs: 2, args: [0x1234, 0x5678], code: iret(I('iload', 0)) })).toBe(0x12345678);
    expect(run(sret(I('sspush', 300), I('sstore', 5), I('sload', 5)))).toBe(300);
    expect(run(sret(I('sconst_3'), I('astore', 6), I('aload', 6)))).toBe(3);
    expect(run(iret(I('iipush', -5), I('istore', 4), I('iload', 4)))).toBe(-5);
    for (let n = 0; n < 4; n++) {
      expect(run(sret(I('bspush', n + 10), I(`sstore_${n}`), I(`sload_${n}`)))).toBe(n + 10);
      expect(run(sret(I('bspush', n + 20), I(`astore_${n}`), I(`aload_${n}`)))).toBe(n + 20);
      expect(run({ locals: 6, code: iret(I('iipush', 0x10000 * (n + 1) + n), I(`istore_${n}`), I(`iload_${n}`)) })).toBe(0x10000 * (n + 1) + n);
    }
  });
});

describe('short arithmetic wraps at 16 bits (JCVM §7.5 sadd … sxor)', () => {
  const bin = (m: string, a: number, b: number) => run(sret(I('sspush', a), I('sspush', b), I(m)));
  it('adds, subtracts, multiplies with wrap', () => {
    expect(bin('sadd', 0x7fff, 1)).toBe(-32768);
    expect(bin('ssub', -32768, 1)).toBe(32767);
    expect(bin('smul', 300, 300)).toBe((90000 << 16) >> 16);
    expect(bin('smul', -1, -32768)).toBe(-32768);
  });
  it('divides and takes remainders with Java semantics; by zero → ArithmeticException', () => {
    expect(bin('sdiv', -7, 2)).toBe(-3);
    expect(bin('sdiv', -32768, -1)).toBe(-32768);
    expect(bin('srem', -7, 2)).toBe(-1);
    expect(bin('srem', 7, -2)).toBe(1);
    expect(thrown(sret(I('sconst_1'), I('sconst_0'), I('sdiv')))).toBe('java.lang.ArithmeticException');
    expect(thrown(sret(I('sconst_1'), I('sconst_0'), I('srem')))).toBe('java.lang.ArithmeticException');
  });
  it('negates, shifts (low 5 bits of the count) and does bitwise logic', () => {
    expect(run(sret(I('sspush', -32768), I('sneg')))).toBe(-32768);
    expect(run(sret(I('sconst_5'), I('sneg')))).toBe(-5);
    expect(bin('sshl', 1, 15)).toBe(-32768);
    expect(bin('sshl', 1, 33)).toBe(2); // 33 & 0x1f = 1
    expect(bin('sshr', -32768, 15)).toBe(-1);
    expect(bin('sushr', -32768, 15)).toBe(((0xffff8000 >>> 15) << 16) >> 16); // sign-extended, then logical
    expect(bin('sushr', 0x4000, 14)).toBe(1);
    expect(bin('sand', 0x0ff0, 0x00ff)).toBe(0x00f0);
    expect(bin('sor', 0x0f00, 0x00f0)).toBe(0x0ff0);
    expect(bin('sxor', -1, 0x00ff)).toBe(-256);
  });
  it('increments locals (sinc, sinc_w) with wrap', () => {
    expect(run(sret(I('sspush', 0x7fff), I('sstore_1'), I('sinc', 1, 1), I('sload_1')))).toBe(-32768);
    expect(run(sret(I('sconst_0'), I('sstore_1'), I('sinc', 1, -3), I('sload_1')))).toBe(-3);
    expect(run(sret(I('sconst_0'), I('sstore_1'), I('sinc_w', 1, 1000), I('sload_1')))).toBe(1000);
    expect(run(sret(I('sspush', 32000), I('sstore_1'), I('sinc_w', 1, 1000), I('sload_1')))).toBe(((33000 << 16) >> 16));
  });
});

describe('int arithmetic as two words, high first (JCVM §3.1, §7.5 iadd … icmp)', () => {
  const bin = (m: string, a: number, b: number) => run(iret(I('iipush', a), I('iipush', b), I(m)));
  it('adds, subtracts and multiplies with 32-bit wrap', () => {
    expect(bin('iadd', 0x7fffffff, 1)).toBe(-0x80000000);
    expect(bin('iadd', 0x0000ffff, 1)).toBe(0x10000);
    expect(bin('isub', -0x80000000, 1)).toBe(0x7fffffff);
    expect(bin('imul', 0x10000, 0x10000)).toBe(0);
    expect(bin('imul', 123456, -789)).toBe(Math.imul(123456, -789));
  });
  it('divides, takes remainders; by zero → ArithmeticException', () => {
    expect(bin('idiv', -0x80000000, -1)).toBe(-0x80000000);
    expect(bin('idiv', -100001, 10)).toBe(-10000);
    expect(bin('irem', -100001, 10)).toBe(-1);
    expect(thrown(iret(I('iconst_1'), I('iconst_0'), I('idiv')))).toBe('java.lang.ArithmeticException');
    expect(thrown(iret(I('iconst_1'), I('iconst_0'), I('irem')))).toBe('java.lang.ArithmeticException');
  });
  it('negates, shifts and does logic', () => {
    expect(run(iret(I('iipush', 0x10000), I('ineg')))).toBe(-0x10000);
    expect(bin('ishl', 1, 31)).toBe(-0x80000000);
    expect(bin('ishl', 1, 32)).toBe(1);
    expect(bin('ishr', -0x80000000, 31)).toBe(-1);
    expect(bin('iushr', -0x80000000, 31)).toBe(1);
    expect(bin('iand', 0x0f0f0f0f, 0x00ff00ff)).toBe(0x000f000f);
    expect(bin('ior', 0x0f000000, 0x000000f0)).toBe(0x0f0000f0);
    expect(bin('ixor', -1, 0x0000ffff)).toBe(-0x10000);
  });
  it('compares (icmp) and increments (iinc, iinc_w)', () => {
    expect(run(sret(I('iipush', 0x10000), I('iipush', 0xffff), I('icmp')))).toBe(1);
    expect(run(sret(I('iipush', -1), I('iipush', 0), I('icmp')))).toBe(-1);
    expect(run(sret(I('iipush', 77), I('iipush', 77), I('icmp')))).toBe(0);
    expect(run(iret(I('iipush', 0xffff), I('istore_0'), I('iinc', 0, 1), I('iload_0')))).toBe(0x10000);
    expect(run(iret(I('iipush', 0), I('istore_0'), I('iinc_w', 0, -30000), I('iload_0')))).toBe(-30000);
  });
  it('converts between short, byte and int (s2b, s2i, i2b, i2s)', () => {
    expect(run(sret(I('sspush', 0x1ff), I('s2b')))).toBe(-1);
    expect(run(iret(I('sspush', -2), I('s2i')))).toBe(-2);
    expect(run(iret(I('sspush', 0x7fff), I('s2i')))).toBe(0x7fff);
    expect(run(sret(I('iipush', 0x12345680), I('i2b')))).toBe(-128);
    expect(run(sret(I('iipush', 0x1234fffe), I('i2s')))).toBe(-2);
  });
  it('refuses int instructions in a package without ACC_INT at link time', () => {
    expect(() => run({ int: false, code: iret(I('iconst_1')) })).toThrow(/iconst_1 .* needs the int option \(ACC_INT\)/);
  });
});

describe('stack manipulation (pop, pop2, dup, dup2, dup_x, swap_x)', () => {
  it('pops and duplicates', () => {
    expect(run(sret(I('sconst_1'), I('sconst_2'), I('pop')))).toBe(1);
    expect(run(sret(I('sconst_1'), I('sconst_2'), I('sconst_3'), I('pop2')))).toBe(1);
    expect(run(sret(I('sconst_3'), I('dup'), I('sadd')))).toBe(6);
    expect(run(sret(I('sconst_1'), I('sconst_2'), I('dup2'), I('sadd'), I('sadd'), I('sadd')))).toBe(6);
  });
  it('dup_x m/n: copies the top m words n words down (0x1n forms and m = 2)', () => {
    // 1 2 3 → dup_x 0x13 → 3 1 2 3: check by folding 3*1000 + 1*100 + 2*10 + 3 via a known order.
    const fold = [...I('sstore_0'), ...I('sstore_1'), ...I('sstore_2'), ...I('sstore_3')];
    const read = [...I('sload_3'), ...I('sspush', 1000), ...I('smul'), ...I('sload_2'), ...I('bspush', 100), ...I('smul'), ...I('sadd'), ...I('sload_1'), ...I('bspush', 10), ...I('smul'), ...I('sadd'), ...I('sload_0'), ...I('sadd')];
    expect(run(sret(I('sconst_1'), I('sconst_2'), I('sconst_3'), I('dup_x', 0x13), fold, read))).toBe(3123);
    expect(run(sret(I('sconst_1'), I('sconst_2'), I('sconst_3'), I('dup_x', 0x10), fold, read))).toBe(1233);
    // m = 2: 1 2 3 → dup_x 0x23 → 2 3 1 2 3; keep the top four.
    expect(run(sret(I('sconst_1'), I('sconst_2'), I('sconst_3'), I('dup_x', 0x23), fold, read))).toBe(3123);
  });
  it('swap_x m/n swaps the top m words with the n below', () => {
    const read2 = [...I('sstore_0'), ...I('bspush', 10), ...I('smul'), ...I('sload_0'), ...I('sadd')];
    expect(run(sret(I('sconst_1'), I('sconst_2'), I('swap_x', 0x11), read2))).toBe(21);
    // 1 | 2 3 → swap_x 0x21 → 2 3 1
    const fold3 = [...I('sstore_0'), ...I('sstore_1'), ...I('sstore_2'), ...I('sload_2'), ...I('bspush', 100), ...I('smul'), ...I('sload_1'), ...I('bspush', 10), ...I('smul'), ...I('sadd'), ...I('sload_0'), ...I('sadd')];
    expect(run(sret(I('sconst_1'), I('sconst_2'), I('sconst_3'), I('swap_x', 0x21), fold3))).toBe(231);
    expect(run(sret(I('sconst_1'), I('sconst_2'), I('sconst_3'), I('swap_x', 0x12), fold3))).toBe(312);
  });
  it('answers a malformed dup_x operand with a fault, not a host crash', () => {
    expect(() => run(sret(I('sconst_1'), I('dup_x', 0x50)))).toThrow(VmFault);
  });
});

describe('branches (JCVM §7.5 if*, goto, jsr/ret) in short and wide forms', () => {
  const cond = (m: string, v: number[], wide = false) =>
    run(sret(v.flatMap((x) => I('sspush', x)), I(wide ? `${m}_w` : m, 'yes'), I('sconst_0'), I('sreturn'), ['L:yes'], I('sconst_1')));
  it('compares with zero', () => {
    for (const wide of [false, true]) {
      expect(cond('ifeq', [0], wide)).toBe(1);
      expect(cond('ifeq', [1], wide)).toBe(0);
      expect(cond('ifne', [-1], wide)).toBe(1);
      expect(cond('iflt', [-1], wide)).toBe(1);
      expect(cond('iflt', [0], wide)).toBe(0);
      expect(cond('ifge', [0], wide)).toBe(1);
      expect(cond('ifgt', [0], wide)).toBe(0);
      expect(cond('ifgt', [1], wide)).toBe(1);
      expect(cond('ifle', [0], wide)).toBe(1);
      expect(cond('ifnull', [0], wide)).toBe(1);
      expect(cond('ifnonnull', [0], wide)).toBe(0);
      expect(cond('if_acmpeq', [5, 5], wide)).toBe(1);
      expect(cond('if_acmpne', [5, 5], wide)).toBe(0);
      expect(cond('if_scmpeq', [-3, -3], wide)).toBe(1);
      expect(cond('if_scmpne', [-3, 3], wide)).toBe(1);
      expect(cond('if_scmplt', [-32768, 32767], wide)).toBe(1);
      expect(cond('if_scmpge', [3, 3], wide)).toBe(1);
      expect(cond('if_scmpgt', [3, 3], wide)).toBe(0);
      expect(cond('if_scmple', [3, 3], wide)).toBe(1);
    }
  });
  it('jumps backwards with goto and goto_w (a counting loop)', () => {
    const loop = (g: string) =>
      run(sret(I('sconst_0'), I('sstore_1'), ['L:top'], I('sinc', 1, 1), I('sload_1'), I('bspush', 10), I('if_scmpge', 'out'), I(g, 'top'), ['L:out'], I('sload_1')));
    expect(loop('goto')).toBe(10);
    expect(loop('goto_w')).toBe(10);
  });
  it('runs a subroutine with jsr and returns with ret', () => {
    expect(
      run(sret(I('sconst_0'), I('sstore_1'), I('jsr', 'sub'), I('jsr', 'sub'), I('sload_1'), I('sreturn'), ['L:sub'], I('astore_2'), I('sinc', 1, 5), I('ret', 2))),
    ).toBe(10);
  });
  it('stops a runaway loop with a fault once the command budget is spent', () => {
    const t = testVm({ maxBytecodes: 10_000 });
    const b = buildPackage({ aid: 'F0000000010002', methods: [{ name: 'spin', nargs: 0, code: [...['L:x'], ...I('goto', 'x')] }] });
    const u = t.link(b);
    expect(() => t.run(u, b, 'spin')).toThrow(/budget/);
  });
});

describe('switches (stableswitch, itableswitch, slookupswitch, ilookupswitch)', () => {
  const cases = (sw: Item[], key: Item[]) =>
    run(sret(key, sw, ['L:d'], I('bspush', -1), I('sreturn'), ['L:a'], I('bspush', 10), I('sreturn'), ['L:b'], I('bspush', 20), I('sreturn'), ['L:c'], I('bspush', 30)));
  it('tables: low, high, below, above, negative bounds', () => {
    const t = tableswitch(false, 'd', -1, ['a', 'b', 'c']);
    expect(cases(t, I('sconst_m1'))).toBe(10);
    expect(cases(t, I('sconst_1'))).toBe(30);
    expect(cases(t, I('sconst_2'))).toBe(-1);
    expect(cases(t, I('sspush', -32768))).toBe(-1);
    const it32 = tableswitch(true, 'd', 0x10000, ['a', 'b']);
    expect(cases(it32, I('iipush', 0x10001))).toBe(20);
    expect(cases(it32, I('iipush', 1))).toBe(-1);
    expect(cases(it32, I('iipush', 0x10002))).toBe(-1);
  });
  it('lookups: matches and the default', () => {
    const l = lookupswitch(false, 'd', [[-5, 'a'], [7, 'b'], [300, 'c']]);
    expect(cases(l, I('bspush', -5))).toBe(10);
    expect(cases(l, I('sspush', 300))).toBe(30);
    expect(cases(l, I('sconst_0'))).toBe(-1);
    const il = lookupswitch(true, 'd', [[-0x10000, 'a'], [0x7fffffff, 'c']]);
    expect(cases(il, I('iipush', 0x7fffffff))).toBe(30);
    expect(cases(il, I('iipush', -0x10000))).toBe(10);
    expect(cases(il, I('iipush', 0))).toBe(-1);
    expect(cases(lookupswitch(false, 'd', []), I('sconst_0'))).toBe(-1);
  });
});

describe('arrays (newarray, anewarray, *aload, *astore, arraylength)', () => {
  it('creates arrays of every primitive type and reads back stored values with truncation', () => {
    expect(run(sret(I('sconst_3'), I('newarray', 11), I('dup'), I('sconst_0'), I('sspush', 0x1ff), I('bastore'), I('sconst_0'), I('baload')))).toBe(-1);
    expect(run(sret(I('sconst_2'), I('newarray', 10), I('dup'), I('sconst_1'), I('sconst_1'), I('bastore'), I('sconst_1'), I('baload')))).toBe(1);
    expect(run(sret(I('sconst_2'), I('newarray', 12), I('dup'), I('sconst_1'), I('sspush', -2), I('sastore'), I('sconst_1'), I('saload')))).toBe(-2);
    expect(run(iret(I('sconst_2'), I('newarray', 13), I('dup'), I('sconst_1'), I('iipush', 0x89abcdef | 0), I('iastore'), I('sconst_1'), I('iaload')))).toBe(0x89abcdef | 0);
    expect(run(sret(I('sconst_4'), I('newarray', 11), I('arraylength')))).toBe(4);
  });
  it('reference arrays store and load references; ArrayStoreException for a wrong element type', () => {
    expect(run(sret(I('sconst_2'), I('anewarray', 15), I('astore_1'), I('aload_1'), I('sconst_0'), I('aload_1'), I('aastore'), I('aload_1'), I('sconst_0'), I('aaload'), I('aload_1'), I('if_acmpeq', 'y'), I('sconst_0'), I('sreturn'), ['L:y'], I('sconst_1')))).toBe(1);
    // An array of B cannot hold an A.
    expect(thrown(sret(I('sconst_1'), I('anewarray', 14), I('sconst_0'), I('new', 0), I('aastore'), I('sconst_0')))).toBe('java.lang.ArrayStoreException');
  });
  it('bounds, negative sizes and null arrays raise the Java exceptions', () => {
    expect(thrown(sret(I('sconst_2'), I('newarray', 11), I('sconst_2'), I('baload')))).toBe('java.lang.ArrayIndexOutOfBoundsException');
    expect(thrown(sret(I('sconst_2'), I('newarray', 11), I('sconst_m1'), I('baload')))).toBe('java.lang.ArrayIndexOutOfBoundsException');
    expect(thrown(sret(I('sconst_2'), I('newarray', 12), I('sconst_2'), I('sconst_0'), I('sastore'), I('sconst_0')))).toBe('java.lang.ArrayIndexOutOfBoundsException');
    expect(thrown(sret(I('sconst_m1'), I('newarray', 11), I('pop'), I('sconst_0')))).toBe('java.lang.NegativeArraySizeException');
    expect(thrown(sret(I('sconst_m1'), I('anewarray', 0), I('pop'), I('sconst_0')))).toBe('java.lang.NegativeArraySizeException');
    expect(thrown(sret(I('aconst_null'), I('sconst_0'), I('baload')))).toBe('java.lang.NullPointerException');
    expect(thrown(sret(I('aconst_null'), I('arraylength')))).toBe('java.lang.NullPointerException');
  });
});

describe('objects, fields and statics', () => {
  it('new + getfield/putfield of every type, normal, wide and _this forms', () => {
    const obj = [...I('new', 0), ...I('astore_1')];
    expect(run(sret(obj, I('aload_1'), I('sspush', 1234), I('putfield_s', 2), I('aload_1'), I('getfield_s', 2)))).toBe(1234);
    expect(run(sret(obj, I('aload_1'), I('sspush', 0x180), I('putfield_b', 2), I('aload_1'), I('getfield_b', 2)))).toBe(-128);
    expect(run(sret(obj, I('aload_1'), I('aload_1'), I('putfield_a', 1), I('aload_1'), I('getfield_a', 1), I('aload_1'), I('if_acmpeq', 'y'), I('sconst_0'), I('sreturn'), ['L:y'], I('sconst_1')))).toBe(1);
    expect(run(iret(obj, I('aload_1'), I('iipush', -70000), I('putfield_i', 3), I('aload_1'), I('getfield_i', 3)))).toBe(-70000);
    expect(run(sret(obj, I('aload_1'), I('sspush', 77), I('putfield_s_w', 2), I('aload_1'), I('getfield_s_w', 2)))).toBe(77);
    expect(run(sret(obj, I('aload_1'), I('sspush', 0x17f), I('putfield_b_w', 2), I('aload_1'), I('getfield_b_w', 2)))).toBe(127);
    expect(run(sret(obj, I('aload_1'), I('aload_1'), I('putfield_a_w', 1), I('aload_1'), I('getfield_a_w', 1), I('aload_1'), I('if_acmpeq', 'y'), I('sconst_0'), I('sreturn'), ['L:y'], I('sconst_1')))).toBe(1);
    expect(run(iret(obj, I('aload_1'), I('iipush', 0x10001), I('putfield_i_w', 3), I('aload_1'), I('getfield_i_w', 3)))).toBe(0x10001);
  });
  it('the _this forms read and write fields of local 0', () => {
    const p = (code: Item[]) => {
      const ret = code[code.length - 1] === 0x79 ? 'ireturn' : 'sreturn';
      return run({ code: [...I('new', 0), ...I('invokestatic', 18 + 3), ...I(ret)], more: [{ name: 'onThis', nargs: 1, code }] });
    };
    // Constant pool entry 18 + k is the static reference to the k-th method (main, A.vget, B.vget, onThis).
    expect(p(sret(I('sspush', 999), I('putfield_s_this', 2), I('getfield_s_this', 2))) ).toBe(999);
    expect(p(sret(I('sspush', 0x1fe), I('putfield_b_this', 2), I('getfield_b_this', 2)))).toBe(-2);
    expect(p(sret(I('aload_0'), I('putfield_a_this', 1), I('getfield_a_this', 1), I('aload_0'), I('if_acmpeq', 'y'), I('sconst_0'), I('sreturn'), ['L:y'], I('sconst_1')))).toBe(1);
    expect(p(iret(I('iipush', -2), I('putfield_i_this', 3), I('getfield_i_this', 3)))).toBe(-2);
  });
  it('getfield/putfield on null → NullPointerException', () => {
    expect(thrown(sret(I('aconst_null'), I('getfield_s', 2)))).toBe('java.lang.NullPointerException');
    expect(thrown(sret(I('aconst_null'), I('sconst_1'), I('putfield_s', 2), I('sconst_0')))).toBe('java.lang.NullPointerException');
  });
  it('getstatic/putstatic of every type', () => {
    expect(run(sret(I('sspush', -9), I('putstatic_s', 5), I('getstatic_s', 5)))).toBe(-9);
    expect(run(sret(I('sspush', 0x181), I('putstatic_b', 7), I('getstatic_b', 7)))).toBe(-127);
    expect(run(iret(I('iipush', 0x7fff8000), I('putstatic_i', 6), I('getstatic_i', 6)))).toBe(0x7fff8000);
    expect(run(sret(I('new', 0), I('putstatic_a', 4), I('getstatic_a', 4), I('ifnonnull', 'y'), I('sconst_0'), I('sreturn'), ['L:y'], I('sconst_1')))).toBe(1);
  });
});

describe('invocation (invokevirtual, invokespecial, invokestatic, invokeinterface)', () => {
  it('dispatches virtually to the override, statically, specially to the superclass, and through interfaces', () => {
    expect(run(sret(I('new', 0), I('invokevirtual', 8)))).toBe(7);
    expect(run(sret(I('new', 14), I('invokevirtual', 8)))).toBe(8);
    // invokespecial of a superMethodref from B's code reaches A.vget.
    expect(run({ code: sret(I('new', 14), I('invokestatic', 18 + 3)), more: [{ name: 'superCall', nargs: 1, code: sret(I('aload_0'), I('invokespecial', 12)) }] })).toBe(7);
    expect(run(sret(I('new', 14), I('invokeinterface', 1, 13, 0)))).toBe(8);
    // Object.equals (native) on an instance of A.
    expect(run(sret(I('new', 0), I('dup'), I('invokevirtual', 16)))).toBe(1);
    expect(run({ code: sret(I('sconst_2'), I('sconst_3'), I('invokestatic', 18 + 3)), more: [{ name: 'add', nargs: 2, code: sret(I('sload_0'), I('sload_1'), I('sadd')) }] })).toBe(5);
    expect(run({ code: iret(I('iipush', 40000), I('invokestatic', 18 + 3)), more: [{ name: 'twice', nargs: 2, code: iret(I('iload_0'), I('iload_0'), I('iadd')) }] })).toBe(80000);
    expect(run({ code: sret(I('invokestatic', 18 + 3), I('sconst_1')), more: [{ name: 'v', nargs: 0, code: I('return') }] })).toBe(1);
    expect(run({ code: sret(I('invokestatic', 18 + 3), I('ifnonnull', 'y'), I('sconst_0'), I('sreturn'), ['L:y'], I('sconst_1')), more: [{ name: 'mk', nargs: 0, code: [...I('new', 0), ...I('areturn')] }] })).toBe(1);
  });
  it('null receivers and objects not implementing the interface raise NullPointer / ClassCast', () => {
    expect(thrown(sret(I('aconst_null'), I('invokevirtual', 8)))).toBe('java.lang.NullPointerException');
    expect(thrown(sret(I('aconst_null'), I('invokeinterface', 1, 13, 0)))).toBe('java.lang.NullPointerException');
    expect(thrown(sret(I('new', 0), I('invokeinterface', 1, 13, 0)))).toBe('java.lang.ClassCastException');
  });
  it('deep recursion ends in a stack overflow fault (6F00), not a host crash', () => {
    const t = testVm({ maxFrames: 32 });
    const b = buildPackage({ aid: 'F0000000010003', methods: [{ name: 'rec', nargs: 0, code: [...I('invokestatic', 0), ...I('return')] }] });
    const u = t.link(b);
    expect(() => t.run(u, b, 'rec')).toThrow(/stack overflow/);
    // The VM is usable afterwards.
    expect(t.vm.interp.depth).toBe(0);
  });
});

describe('casts (checkcast, instanceof: classes, interfaces, arrays, JCVM §7.5.10)', () => {
  const inst = (obj: Item[], atype: number, idx: number) => run(sret(obj, I('instanceof', atype, idx)));
  it('classes and interfaces', () => {
    expect(inst(I('new', 14), 0, 0)).toBe(1); // B instanceof A
    expect(inst(I('new', 0), 0, 14)).toBe(0); // A instanceof B
    expect(inst(I('new', 14), 0, 13)).toBe(1); // B instanceof I
    expect(inst(I('new', 0), 0, 13)).toBe(0);
    expect(inst(I('new', 0), 0, 15)).toBe(1); // anything instanceof Object
    expect(inst(I('aconst_null'), 0, 0)).toBe(0);
  });
  it('arrays: primitive kinds, reference arrays by element type, Object', () => {
    const bytes = [...I('sconst_1'), ...I('newarray', 11)];
    expect(inst(bytes, 11, 0)).toBe(1);
    expect(inst(bytes, 12, 0)).toBe(0);
    expect(inst(bytes, 0, 15)).toBe(1);
    expect(inst(bytes, 0, 13)).toBe(0); // arrays implement no interface
    const ofB = [...I('sconst_1'), ...I('anewarray', 14)];
    expect(inst(ofB, 14, 0)).toBe(1); // B[] instanceof A[]
    expect(inst(ofB, 14, 13)).toBe(1); // B[] instanceof I[]
    const ofA = [...I('sconst_1'), ...I('anewarray', 0)];
    expect(inst(ofA, 14, 14)).toBe(0); // A[] instanceof B[]
    expect(inst(ofA, 11, 0)).toBe(0);
  });
  it('checkcast passes null and subtypes, throws ClassCastException otherwise', () => {
    expect(run(sret(I('aconst_null'), I('checkcast', 0, 14), I('pop'), I('sconst_1')))).toBe(1);
    expect(run(sret(I('new', 14), I('checkcast', 0, 0), I('pop'), I('sconst_1')))).toBe(1);
    expect(thrown(sret(I('new', 0), I('checkcast', 0, 14), I('pop'), I('sconst_1')))).toBe('java.lang.ClassCastException');
    expect(thrown(sret(I('sconst_1'), I('newarray', 12), I('checkcast', 11, 0), I('pop'), I('sconst_1')))).toBe('java.lang.ClassCastException');
  });
});

describe('exceptions (athrow and exception tables, JCVM §7.5 athrow)', () => {
  it('catches by type, falls through non-matching handlers, and catch-any (type 0)', () => {
    // try { 1 / 0 } catch (ArithmeticException) { return 5 }
    const prog = (catchType: number) => ({
      code: sret(['L:a'], I('sconst_1'), I('sconst_0'), I('sdiv'), ['L:b'], I('sreturn'), ['L:h'], I('pop'), I('sconst_5')),
      handlers: [{ from: 'a', to: 'b', handler: 'h', catchType }],
    });
    expect(run(prog(9))).toBe(5);
    expect(run(prog(10))).toBe(5); // Exception catches ArithmeticException (a subclass)
    expect(run(prog(0))).toBe(5);
    expect(thrown(prog(11))).toBe('java.lang.ArithmeticException'); // a NullPointerException handler does not match
  });
  it('only the protected range is covered', () => {
    expect(
      thrown({
        code: sret(['L:a'], I('nop'), ['L:b'], I('sconst_1'), I('sconst_0'), I('sdiv'), I('sreturn'), ['L:h'], I('pop'), I('sconst_5')),
        handlers: [{ from: 'a', to: 'b', handler: 'h', catchType: 0 }],
      }),
    ).toBe('java.lang.ArithmeticException');
  });
  it('selects the innermost handler first, unwinds frames, and supports rethrow', () => {
    const nested = run({
      code: sret(['L:o1'], ['L:i1'], I('invokestatic', 18 + 3), ['L:i2'], ['L:o2'], I('sreturn'), ['L:inner'], I('pop'), I('sconst_2'), I('sreturn'), ['L:outer'], I('pop'), I('sconst_3')),
      handlers: [
        { from: 'i1', to: 'i2', handler: 'inner', catchType: 9 },
        { from: 'o1', to: 'o2', handler: 'outer', catchType: 0 },
      ],
      more: [{ name: 'boom', nargs: 0, code: sret(I('sconst_1'), I('sconst_0'), I('sdiv')) }],
    });
    expect(nested).toBe(2);
    const rethrown = run({
      code: sret(['L:o1'], I('invokestatic', 18 + 3), ['L:o2'], I('sreturn'), ['L:outer'], I('pop'), I('bspush', 42)),
      handlers: [{ from: 'o1', to: 'o2', handler: 'outer', catchType: 9 }],
      more: [
        {
          name: 'mid',
          nargs: 0,
          code: sret(['L:a'], I('sconst_1'), I('sconst_0'), I('sdiv'), ['L:b'], I('sreturn'), ['L:h'], I('athrow')),
          handlers: [{ from: 'a', to: 'b', handler: 'h', catchType: 0 }],
        },
      ],
    });
    expect(rethrown).toBe(42);
  });
  it('athrow of null throws NullPointerException; an uncaught exception leaves the VM usable', () => {
    const s = setup({ code: sret(I('aconst_null'), I('athrow')) });
    expect(() => s.run()).toThrow(VmThrow);
    expect(s.t.vm.interp.depth).toBe(0);
    expect(thrown(sret(I('aconst_null'), I('athrow')))).toBe('java.lang.NullPointerException');
  });
  it('an undefined opcode is a fault (6F00), never a host TypeError', () => {
    expect(() => run([0xb9])).toThrow(VmFault);
    expect(() => run([0xff])).toThrow(VmFault);
  });
});

describe('nop and coverage', () => {
  it('nop does nothing', () => {
    expect(run(sret(I('nop'), I('sconst_4'), I('nop')))).toBe(4);
  });
});

describe('coverage', () => {
  it('every opcode 0x00–0xB8 appeared in a program above', () => {
    const missing: string[] = [];
    for (let c = 0; c <= 0xb8; c++) if (!covered.has(c)) missing.push(OPCODES[c]!.mnemonic);
    expect(missing).toEqual([]);
  });
});
