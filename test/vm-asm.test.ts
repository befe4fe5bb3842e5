import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { hex } from '../emulator/bytes.ts';
import { ACC_APPLET, ACC_EXPORT, ACC_INT, parseLoadFileDataBlock } from '../emulator/cap-reader.ts';
import { OPCODES, instructionLength } from '../emulator/vm/opcodes.ts';
import { apiTablePath } from '../emulator/vm/cap/api-table.ts';
import type { ExportedPackage } from '../emulator/vm/cap/api-table.ts';
import { AsmError, argWords, assemble } from '../emulator/vm/cap/asm.ts';
import { parseCapPackage } from '../emulator/vm/cap/parse.ts';
import { verifyCapPackage } from '../emulator/vm/cap/verify.ts';
import { writeLoadFileDataBlock } from '../emulator/vm/cap/write.ts';
import type { CapClassInfo, CapPackage, CpEntry } from '../emulator/vm/types.ts';
import { ASM_SAMPLES, assembleSample, sampleSource } from './fixtures/asm/samples.ts';
import type { SampleName } from './fixtures/asm/samples.ts';

const API = (JSON.parse(readFileSync(apiTablePath(), 'utf8')) as { packages: ExportedPackage[] }).packages;
const SAMPLES = Object.keys(ASM_SAMPLES) as SampleName[];

function apiClass(dotted: string) {
  for (const p of API) for (const c of p.classes) if (c.name === dotted) return { pkg: p, cls: c };
  throw new Error(`no API class ${dotted}`);
}

/** Walks every method of a package (Descriptor extents) and returns each constant-pool operand's offset and width. */
function cpOperands(p: CapPackage): { one: number[]; two: number[] } {
  const one: number[] = [];
  const two: number[] = [];
  const info = p.method.info;
  for (const c of p.descriptor!.classes) {
    if (c.flags & 0x40) continue;
    for (const m of c.methods) {
      if (m.flags & 0x40) continue;
      let pc = m.methodOffset + (info[m.methodOffset] & 0x80 ? 4 : 2);
      const end = pc + m.bytecodeCount;
      while (pc < end) {
        const op = OPCODES[info[pc]]!.mnemonic;
        if (/^(get|put)field_[absi](_this)?$/.test(op)) one.push(pc + 1);
        else if (/^(get|put)(static_|field_[absi]_w)|^invoke(virtual|special|static)$|^new$|^anewarray$/.test(op)) two.push(pc + 1);
        else if (op === 'invokeinterface') two.push(pc + 2);
        else if ((op === 'checkcast' || op === 'instanceof') && (info[pc + 1] === 0 || info[pc + 1] === 14)) two.push(pc + 2);
        pc += instructionLength(info, pc);
      }
    }
  }
  return { one, two };
}

/** The external CP entry a source reference should produce, resolved from the JSON table by name. */
function expectedEntry(p: CapPackage, imports: string[], mnemonic: string, operand: string): CpEntry | undefined {
  const paren = operand.indexOf('(');
  const classPart = paren > 0 ? operand.slice(0, operand.lastIndexOf('.', paren)) : operand;
  const dotted = classPart.replace(/\//g, '.');
  const full = dotted.includes('.') ? dotted : imports.map((i) => `${i.replace(/\//g, '.')}.${dotted}`).find((n) => API.some((q) => q.classes.some((c) => c.name === n)));
  if (!full) return undefined; // a class of the package itself
  const { pkg, cls } = apiClass(full);
  const pkgIndex = p.imports.findIndex((i) => hex(i.aid) === pkg.aid);
  expect(pkgIndex, `${pkg.name} imported`).toBeGreaterThanOrEqual(0);
  const ref = { internal: false as const, pkg: pkgIndex, classToken: cls.token };
  if (paren < 0) return { tag: 1, kind: 'class', ref };
  const sig = operand.slice(operand.lastIndexOf('.', paren) + 1);
  const name = sig.slice(0, sig.indexOf('('));
  const descriptor = sig.slice(sig.indexOf('('));
  const kind = mnemonic === 'invokevirtual' ? 'virtual' : mnemonic === 'invokeinterface' ? 'interface' : 'static';
  const m = cls.methods.find((x) => x.name === name && x.descriptor === descriptor && x.kind === kind);
  expect(m, `${full}.${sig} in the API table`).toBeDefined();
  if (kind === 'virtual') return { tag: 3, kind: 'virtualMethod', cls: ref, token: m!.token };
  if (kind === 'interface') return { tag: 1, kind: 'class', ref };
  return { tag: 6, kind: 'staticMethod', ref: { ...ref, token: m!.token } };
}

describe('assembled samples', () => {
  it('assemble, verify, carry the right header flags, AIDs and imports (AID and version from the API table)', () => {
    for (const name of SAMPLES) {
      const p = assembleSample(name);
      expect(() => verifyCapPackage(p), name).not.toThrow();
      expect(p.flags, name).toBe(ACC_APPLET);
      expect(hex(p.package.aid)).toBe(hex(ASM_SAMPLES[name].packageAid));
      expect(p.applets.map((a) => hex(a.aid))).toEqual([hex(ASM_SAMPLES[name].appletAid)]);
      for (const imp of p.imports) {
        const api = API.find((q) => q.aid === hex(imp.aid));
        expect(api, `${name} import ${hex(imp.aid)}`).toBeDefined();
        expect([imp.major, imp.minor]).toEqual([api!.major, api!.minor]);
      }
      // The block the GP LOAD carries parses back through the card manager's reader.
      expect(parseCapPackage(parseLoadFileDataBlock(writeLoadFileDataBlock(p)))).toEqual(p);
    }
  });

  it('uses the JSON table token for every API class and method the sources name', () => {
    let checked = 0;
    for (const name of SAMPLES) {
      const p = assembleSample(name);
      const text = sampleSource(name).text;
      const imports = [...text.matchAll(/^\.import\s+(\S+)/gm)].map((m) => m[1]);
      for (const m of text.matchAll(/^\s*(invokevirtual|invokestatic|invokespecial|invokeinterface|new|checkcast)\s+(\S+)/gm)) {
        const want = expectedEntry(p, imports, m[1], m[2]);
        if (!want) continue;
        expect(p.constantPool, `${name}: ${m[1]} ${m[2]}`).toContainEqual(want);
        checked++;
      }
    }
    expect(checked).toBeGreaterThan(40);
  });

  it('builds the method tables: process() overrides Applet.process (token from the table) and nothing else', () => {
    const processToken = apiClass('javacard.framework.Applet').cls.methods.find((m) => m.name === 'process')!.token;
    for (const name of SAMPLES) {
      const p = assembleSample(name);
      const c = p.classes[0] as CapClassInfo;
      const process = p.descriptor!.classes[0].methods.find((m) => m.typeOffset !== 0 && m.token === processToken && m.flags === 0x01)!;
      expect(c.publicMethodTableBase, name).toBe(processToken);
      expect(c.publicVirtualMethodTable, name).toEqual([process.methodOffset]);
      expect(c.packageVirtualMethodTable).toEqual([]);
      expect(c.superclass).toEqual({ internal: false, pkg: p.imports.findIndex((i) => hex(i.aid) === 'A0000000620101'), classToken: 3 });
    }
  });

  it('lists in RefLocation exactly the constant-pool operands of the bytecode', () => {
    for (const name of SAMPLES) {
      const p = assembleSample(name);
      const ops = cpOperands(p);
      expect(p.refLocation.byteIndex, name).toEqual(ops.one);
      expect(p.refLocation.byte2Index, name).toEqual(ops.two);
      expect(ops.one.length + ops.two.length).toBeGreaterThan(5);
    }
  });

  it('lays out instance and static fields (pin: two initialised static arrays, counter: ref field first)', () => {
    const pin = assembleSample('pin');
    expect(pin.staticField.imageSize).toBe(4);
    expect(pin.staticField.referenceCount).toBe(2);
    expect(pin.staticField.arrayInits.map((a) => [a.type, Buffer.from(a.values).toString()])).toEqual([[3, '1234'], [3, 'the secret']]);
    const counter = assembleSample('counter').classes[0] as CapClassInfo;
    // log (reference) gets token 0, counter (short) token 1.
    expect([counter.declaredInstanceSize, counter.firstReferenceToken, counter.referenceCount]).toEqual([2, 0, 1]);
  });

  it('computes nargs from descriptors, int arguments taking two words', () => {
    expect(argWords('([BSB)V')).toBe(3);
    expect(argWords('(I[ILjava/lang/Object;S)I')).toBe(5);
    expect(argWords('()V')).toBe(0);
  });
});

describe('token assignment (JCVM §4.3.7)', () => {
  const src = `
.package com.example.tok A00000015101 1.2
.int
.import javacard/framework
.class public abstract Base extends Applet
  .field protected data [B
  .field count S
  .field total I
  .field ref Ljava/lang/Object;
  .field public static SHARED S = 7
  .field public static final LIMIT S = 12
  .field static table [S = { 1, -2, 0x7FFF }
  .method protected <init>()V
    aload_0
    invokespecial Applet.<init>()V
    return
  .end method
  .method public helper(S)S
    sload_1
    sreturn
  .end method
  .method hidden()V
    return
  .end method
  .method public abstract todo()V
  .method public static util(I)I
    iload_0
    iconst_1
    iadd
    ireturn
  .end method
.end class
.class public Leaf extends Base
  .field extra B
  .method public <init>()V
    aload_0
    invokespecial Base.<init>()V
    return
  .end method
  .method public helper(S)S
    aload_0
    sload_1
    invokespecial Base.helper(S)S
    sreturn
  .end method
  .method public todo()V
    aload_0
    invokevirtual Leaf.hidden()V
    return
  .end method
  .method public process(Ljavacard/framework/APDU;)V
    getstatic_s Base.SHARED
    sspush Base.LIMIT
    sadd
    pop
    return
  .end method
  .method public static install([BSB)V
    new Leaf
    dup
    invokespecial Leaf.<init>()V
    invokevirtual Leaf.register()V
    return
  .end method
.end class
.applet A0000001510101 Leaf
`;

  it('numbers virtual methods after the superclass, reuses tokens on override, keeps package methods apart', () => {
    const { pkg: p } = assemble(src, { file: 'tok.jca' });
    expect(() => verifyCapPackage(p)).not.toThrow();
    expect(p.flags).toBe(ACC_APPLET | ACC_INT);
    const d = p.descriptor!;
    const [base, leaf] = d.classes;
    const tok = (c: typeof base, flagsAndOrder: number) => c.methods[flagsAndOrder].token;
    // Applet's public virtual tokens are 0..7, so Base.helper = 8, Base.todo = 9; hidden is package-visible: 0x80.
    expect(tok(base, 1)).toBe(8);
    expect(tok(base, 2)).toBe(0x80);
    expect(tok(base, 3)).toBe(9);
    expect(tok(base, 0)).toBe(0); // protected constructor: static method token 0
    expect(tok(base, 4)).toBe(1); // util: static method token 1
    expect(leaf.methods.map((m) => m.token)).toEqual([0, 8, 9, 7, 1]);
    const baseInfo = p.classes[0] as CapClassInfo;
    const leafInfo = p.classes[1] as CapClassInfo;
    expect([baseInfo.publicMethodTableBase, baseInfo.publicMethodTableCount]).toEqual([8, 2]);
    expect([baseInfo.packageMethodTableBase, baseInfo.packageMethodTableCount]).toEqual([0, 1]);
    expect([leafInfo.publicMethodTableBase, leafInfo.publicMethodTableCount]).toEqual([7, 3]);
    expect(leafInfo.packageMethodTableCount).toBe(0);
    // The abstract method has a header only; its table entry points at it.
    const todo = base.methods[3];
    expect(todo.bytecodeCount).toBe(0);
    expect(p.method.info[todo.methodOffset] >> 4).toBe(0x4);
    expect(baseInfo.publicVirtualMethodTable[1]).toBe(todo.methodOffset);
    // Instance fields: references first (data, ref), then primitives (count, total as two cells).
    expect(base.fields.filter((f) => !f.field.static).map((f) => f.token)).toEqual([0, 2, 3, 1]);
    expect([baseInfo.declaredInstanceSize, baseInfo.firstReferenceToken, baseInfo.referenceCount]).toEqual([5, 0, 2]);
    expect([leafInfo.declaredInstanceSize, leafInfo.referenceCount, leafInfo.firstReferenceToken]).toEqual([1, 0, 0xff]);
    // super.helper() is a super method reference from Leaf with the virtual token.
    expect(p.constantPool).toContainEqual({ tag: 4, kind: 'superMethod', cls: { internal: true, classOffset: leafInfo.offset }, token: 8 });
    // Base.LIMIT is inlined (sspush 12), SHARED is in the image with its value 7; table is an initialised array.
    expect(p.staticField.nonDefaultValues).toEqual(Uint8Array.from([0, 7]));
    expect(p.staticField.arrayInits).toEqual([{ type: 4, values: Uint8Array.from([0, 1, 0xff, 0xfe, 0x7f, 0xff]) }]);
    expect(p.staticField.imageSize).toBe(4);
  });
});

describe('libraries and Shareable interfaces', () => {
  it('exports a Shareable interface and lets a client package call it through invokeinterface', () => {
    const lib = assemble(
      `
.package com.example.wallet A00000015102 1.1
.import javacard/framework
.interface public Purse extends Shareable
  .method public balance()S
  .method public debit(S)V
.end interface
.class public Util2
  .field public static VERSION S = 3
  .method public static twice(S)S
    sload_0
    sconst_2
    smul
    sreturn
  .end method
.end class
`,
      { file: 'wallet.jca' },
    );
    expect(lib.library).toBeDefined();
    const p = lib.pkg;
    expect(p.flags & ACC_EXPORT).toBe(ACC_EXPORT);
    expect(() => verifyCapPackage(p)).not.toThrow();
    expect(p.classes[0]).toMatchObject({ kind: 'interface', flags: 0x8 | 0x4 });
    expect(p.exports).toHaveLength(2);
    const purse = lib.library!.classes.find((c) => c.name === 'com.example.wallet.Purse')!;
    expect(purse.methods.map((m) => [m.name, m.token])).toEqual([['balance', 0], ['debit', 1]]);

    const client = assemble(
      `
.package com.example.shop A00000015103 1.0
.import javacard/framework
.import com/example/wallet
.class public Shop
  .method public static pay(Ljavacard/framework/AID;)S
    .stack 4
    aload_0
    sconst_0
    invokestatic JCSystem.getAppletShareableInterfaceObject(Ljavacard/framework/AID;B)Ljavacard/framework/Shareable;
    checkcast Purse
    dup
    sconst_5
    invokeinterface Purse.debit(S)V
    invokeinterface Purse.balance()S
    getstatic_s Util2.VERSION
    invokestatic Util2.twice(S)S
    sadd
    sreturn
  .end method
.end class
`,
      { file: 'shop.jca', libraries: [lib.library!] },
    );
    const c = client.pkg;
    expect(() => verifyCapPackage(c)).not.toThrow();
    const w = c.imports.findIndex((i) => hex(i.aid) === 'A00000015102');
    expect(c.imports[w]).toMatchObject({ major: 1, minor: 1 });
    expect(c.constantPool).toContainEqual({ tag: 1, kind: 'class', ref: { internal: false, pkg: w, classToken: purse.token } });
    expect(c.constantPool).toContainEqual({ tag: 5, kind: 'staticField', ref: { internal: false, pkg: w, classToken: 1, token: 0 } });
    expect(c.constantPool).toContainEqual({ tag: 6, kind: 'staticMethod', ref: { internal: false, pkg: w, classToken: 1, token: 0 } });
    const debit = c.method.info.indexOf(0x8e);
    expect([...c.method.info.subarray(debit, debit + 5)].slice(-1)).toEqual([1]); // token of debit
    expect(c.method.info[debit + 1]).toBe(2); // nargs: this + short
    expect(c.flags & ACC_EXPORT).toBe(0);
  });
});

describe('bytecode forms', () => {
  it('assembles switches, wide branches, int arithmetic and exception handlers with stop bits', () => {
    const { pkg: p } = assemble(
      `
.package t.forms A00000015104 1.0
.int
.class public F
  .method public static f(S)I
    .stack 4
    .locals 2
  outer:
    sload_0
    stableswitch 1 def one two three
  one:
    iipush 100000
    goto_w done
  two:
    sload_0
    s2i
    ilookupswitch def -5:one 70000:three
  three:
    iconst_2
    istore_1
  inner:
    iload_1
    iconst_3
    imul
    ireturn
  innerEnd:
  def:
    iconst_0
  done:
    ireturn
  handler:
    pop
    iconst_m1
    ireturn
  handler2:
    pop
    iconst_1
    ireturn
    .catch java/lang/ArithmeticException from inner to innerEnd using handler
    .catch any from outer to innerEnd using handler2
  .end method
.end class
`,
      { file: 'forms.jca' },
    );
    expect(() => verifyCapPackage(p)).not.toThrow();
    expect(p.method.handlers).toHaveLength(2);
    const [h0, h1] = p.method.handlers;
    expect(h0.stop).toBe(false); // the 'any' range encloses it
    expect(h1.stop).toBe(true);
    expect(h1.catchTypeIndex).toBe(0);
    expect(p.constantPool[h0.catchTypeIndex]).toMatchObject({ kind: 'class', ref: { internal: false, classToken: apiClass('java.lang.ArithmeticException').cls.token } });
    expect(p.flags & ACC_INT).toBe(ACC_INT);
    expect(p.descriptor!.classes[0].methods[0]).toMatchObject({ exceptionHandlerCount: 2, exceptionHandlerIndex: 0 });
  });
});

describe('assembler errors name file:line', () => {
  const base = (body: string) => `.package t.err A00000015105 1.0\n.class public E\n  .method public static f()V\n${body}\n  .end method\n.end class\n`;
  const cases: [string, string, RegExp][] = [
    ['unknown instruction', '    frob\n    return', /e\.jca:4: unknown instruction frob/],
    ['unknown label', '    goto nowhere\n    return', /e\.jca:4: unknown label nowhere/],
    ['unknown class', '    new Nope\n    return', /e\.jca:4: unknown class Nope/],
    ['unknown API method', '    invokestatic javacard/framework/Util.nope()V\n    return', /e\.jca:4: javacard\.framework\.Util has no static method nope\(\)V/],
    ['int without .int', '    iconst_0\n    pop\n    return', /e\.jca:4: iconst_0 is an int instruction: add \.int/],
    ['byte operand out of range', '    bspush 300\n    pop\n    return', /e\.jca:4: byte operand 300 \(= 300\) is outside -128\.\.255/],
    ['wrong operand count', '    sload\n    return', /e\.jca:4: sload takes 1 operand, got 0/],
    ['instruction outside a method', '', /./],
  ];
  for (const [what, body, re] of cases.slice(0, -1)) {
    it(what, () => {
      expect(() => assemble(base(body), { file: 'e.jca' })).toThrow(AsmError);
      expect(() => assemble(base(body), { file: 'e.jca' })).toThrow(re);
    });
  }

  it('field type mismatches, constants used as fields, branches out of range', () => {
    const src = (insn: string) => `.package t.err A00000015105 1.0\n.class public E\n  .field x S\n  .field static final K S = 3\n  .method public g()V\n${insn}\n    return\n  .end method\n.end class\n`;
    expect(() => assemble(src('    getfield_a_this x\n    pop'), { file: 'e.jca' })).toThrow(/e\.jca:6: getfield_a_this on x, a field of type S \(use the _s form\)/);
    expect(() => assemble(src('    getstatic_s K\n    pop'), { file: 'e.jca' })).toThrow(/e\.jca:6: E\.K is a compile-time constant: push its value instead/);
    const far = `    goto end\n${'    nop\n'.repeat(200)}  end:`;
    expect(() => assemble(src(far), { file: 'e.jca' })).toThrow(/e\.jca:6: goto to end is \d+ bytes away; use the _w form/);
    expect(() => assemble('.class public X\n.end class\n', { file: 'e.jca' })).toThrow(/e\.jca:1: \.package must come first/);
  });
});
