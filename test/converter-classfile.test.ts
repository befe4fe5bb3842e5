// Converter front end: class file reader, JVM bytecode decoder and Java Card subset check, on class files javac
// compiles at test time from test/fixtures/converter-java (one javac run, --release 8 -g). Skipped when javac is
// missing unless JPKI_REQUIRE_JDK=1, which turns the skip into a failure.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ClassFileError, lineAt, parseDescriptor, readClassFile } from '../applet/converter/classfile.ts';
import type { ClassFile, MethodInfo } from '../applet/converter/classfile.ts';
import { BytecodeError, JVM_OPCODES, decodeCode } from '../applet/converter/jvm-opcodes.ts';
import { checkJavaCardSubset, formatDiagnostic } from '../applet/converter/subset.ts';
import type { Diagnostic } from '../applet/converter/subset.ts';

const SRC = fileURLToPath(new URL('./fixtures/converter-java/t/', import.meta.url));
const JAVAC = process.env.JAVAC ?? '/usr/bin/javac';
const REQUIRE = process.env.JPKI_REQUIRE_JDK === '1';
const reason = existsSync(JAVAC) ? null : `javac not found at ${JAVAC} (install a JDK or set JAVAC)`;
if (reason && !REQUIRE) console.warn(`converter class-file tests skipped: ${reason} (set JPKI_REQUIRE_JDK=1 to fail instead)`);

/** Line of the `// L:<tag>` marker in a fixture source. */
function line(file: string, tag: string): number {
  const lines = readFileSync(join(SRC, file), 'utf8').split('\n');
  const i = lines.findIndex((l) => l.includes(`// L:${tag}`));
  if (i < 0) throw new Error(`no marker L:${tag} in ${file}`);
  return i + 1;
}

/** Offset of the first occurrence of `needle` in `hay`. */
function indexOf(hay: Uint8Array, needle: number[]): number {
  outer: for (let i = 0; i + needle.length <= hay.length; i++) {
    for (let k = 0; k < needle.length; k++) if (hay[i + k] !== needle[k]) continue outer;
    return i;
  }
  return -1;
}

if (reason && REQUIRE) {
  describe('converter class-file tests', () => {
    it('are required here (JPKI_REQUIRE_JDK=1)', () => {
      throw new Error(reason);
    });
  });
}

describe.skipIf(reason !== null)('converter front end', () => {
  let dir = '';
  const raw = new Map<string, Uint8Array>();
  const cls = new Map<string, ClassFile>();
  const method = (c: string, name: string): MethodInfo => {
    const m = cls.get(c)!.methods.find((x) => x.name === name);
    if (!m) throw new Error(`no method ${name} in ${c}`);
    return m;
  };

  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'jpki-conv-'));
    const sources = readdirSync(SRC).filter((f) => f.endsWith('.java')).map((f) => join(SRC, f));
    execFileSync(JAVAC, ['--release', '8', '-g', '-nowarn', '-Xlint:none', '-d', dir, ...sources], { stdio: 'pipe' });
    for (const f of readdirSync(join(dir, 't'))) {
      const bytes = new Uint8Array(readFileSync(join(dir, 't', f)));
      raw.set(f.replace('.class', ''), bytes);
      cls.set(f.replace('.class', ''), readClassFile(bytes, f));
    }
  });
  afterAll(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  describe('readClassFile', () => {
    it('reads header, names, fields and source file', () => {
      const a = cls.get('Arith')!;
      expect(a.majorVersion).toBe(52);
      expect(a.thisClass).toBe('t/Arith');
      expect(a.superClass).toBe('java/lang/Object');
      expect(a.interfaces).toEqual([]);
      expect(a.sourceFile).toBe('Arith.java');
      expect(a.fields.map((f) => [f.name, f.descriptor])).toEqual([
        ['TABLE', '[B'],
        ['counter', 'S'],
      ]);
      expect(a.methods.map((m) => m.name)).toEqual(['<init>', 'add', 'dense', 'sparse', 'sum', 'safeGet', 'fail', 'wideLocals', '<clinit>']);
    });

    it('resolves constant pool entries through the helpers', () => {
      const a = cls.get('Arith')!;
      const refs = a.constantPool.flatMap((e, i) => (e && (e.tag === 'Fieldref' || e.tag === 'Methodref') ? [a.memberRef(i)] : []));
      expect(refs).toContainEqual({ kind: 'Methodref', owner: 'java/lang/Object', name: '<init>', descriptor: '()V' });
      expect(refs).toContainEqual({ kind: 'Fieldref', owner: 't/Arith', name: 'counter', descriptor: 'S' });
      expect(refs).toContainEqual({ kind: 'Methodref', owner: 'java/lang/ArithmeticException', name: '<init>', descriptor: '()V' });
      const classes = a.constantPool.flatMap((e, i) => (e?.tag === 'Class' ? [a.className(i)] : []));
      expect(classes).toEqual(expect.arrayContaining(['t/Arith', 'java/lang/Object', 'java/lang/ArrayIndexOutOfBoundsException']));
      const nt = a.constantPool.findIndex((e) => e?.tag === 'NameAndType');
      expect(a.nameAndType(nt).name).toMatch(/\S/);
    });

    it('gives long and double constants two slots (JVMS §4.4.5)', () => {
      const f = cls.get('Forbidden')!;
      const i = f.constantPool.findIndex((e) => e?.tag === 'Long');
      expect(f.constantPool[i]).toEqual({ tag: 'Long', value: 123456789012n });
      expect(f.constantPool[i + 1]).toBeNull();
      expect(f.constant(i)).toEqual({ kind: 'long', value: 123456789012n });
      // Entries after the double slot still resolve: every member reference does.
      for (let k = i + 2; k < f.constantPool.length; k++) {
        const e = f.constantPool[k];
        if (e?.tag === 'Methodref') expect(f.memberRef(k).owner).toMatch(/\//);
      }
      expect(f.constantPool.some((e) => e?.tag === 'Float' && e.value === 1.5)).toBe(true);
      expect(f.constantPool.some((e) => e?.tag === 'InvokeDynamic')).toBe(true);
      expect(f.constantPool.some((e) => e?.tag === 'MethodHandle')).toBe(true);
    });

    it('reads Code: max stack/locals, line numbers, local variables, exception table', () => {
      const add = method('Arith', 'add').code!;
      expect([add.maxStack, add.maxLocals]).toEqual([2, 2]);
      expect(lineAt(add, 0)).toBe(line('Arith.java', 'add'));
      expect(add.localVariables?.map((v) => [v.name, v.descriptor, v.index])).toEqual([
        ['a', 'S', 0],
        ['b', 'S', 1],
      ]);
      const sg = method('Arith', 'safeGet').code!;
      expect(sg.exceptionTable).toHaveLength(1);
      const h = sg.exceptionTable[0];
      expect(h.catchType).toBe('java/lang/ArrayIndexOutOfBoundsException');
      expect(lineAt(sg, h.startPc)).toBe(line('Arith.java', 'try'));
      expect(lineAt(sg, h.handlerPc)).toBe(line('Arith.java', 'catch')); // astore of the caught exception
      expect(lineAt(sg, h.handlerPc + 1)).toBe(line('Arith.java', 'handler'));
      expect(sg.attributes.map((x) => x.name)).not.toContain('StackMapTable');
    });

    it('keeps the ConstantValue of a static final constant', () => {
      const f = cls.get('Init')!;
      expect(f.fields.find((x) => x.name === 'OK')!.constantValue).toBeUndefined(); // array: built in <clinit>
      const o = method('Init', 'make');
      expect(o.code!.maxStack).toBe(2);
    });

    it('parses method and field descriptors', () => {
      expect(parseDescriptor('([BSS)S')).toEqual({
        kind: 'method',
        params: [
          { kind: 'array', element: { kind: 'base', code: 'B', text: 'B' }, dimensions: 1, text: '[B' },
          { kind: 'base', code: 'S', text: 'S' },
          { kind: 'base', code: 'S', text: 'S' },
        ],
        returns: { kind: 'base', code: 'S', text: 'S' },
      });
      expect(parseDescriptor('(Ljavacard/framework/APDU;)V')).toEqual({
        kind: 'method',
        params: [{ kind: 'class', name: 'javacard/framework/APDU', text: 'Ljavacard/framework/APDU;' }],
        returns: 'void',
      });
      expect(parseDescriptor('[[I')).toMatchObject({ kind: 'field', type: { kind: 'array', dimensions: 2 } });
      for (const bad of ['(S', 'X', 'Ljava/lang/Object', '()VV', '(V)V', 'L;']) expect(() => parseDescriptor(bad)).toThrow(/bad descriptor/);
    });
  });

  describe('decodeCode', () => {
    it('decodes short arithmetic', () => {
      const ins = decodeCode(method('Arith', 'add').code!.code);
      expect(ins.map((i) => i.mnemonic)).toEqual(['iload_0', 'iload_1', 'iadd', 'i2s', 'ireturn']);
      expect(ins.map((i) => i.pc)).toEqual([0, 1, 2, 3, 4]);
    });

    it('decodes tableswitch with padding and resolves case targets', () => {
      const ins = decodeCode(method('Arith', 'dense').code!.code);
      const ts = ins.find((i) => i.mnemonic === 'tableswitch')!;
      expect(ts.pc).toBe(1);
      expect(ts.switch).toMatchObject({ low: 1, high: 4 });
      expect(ts.length).toBe(3 + 12 + 4 * 4); // 2 padding bytes after the opcode at pc 1
      const at = (pc: number) => ins.find((i) => i.pc === pc)!;
      expect(ts.switch!.cases.map((c) => at(c.target).operands[0])).toEqual([10, 20, 30, 40]);
      expect(at(ts.switch!.defaultTarget).mnemonic).toBe('iconst_m1');
      expect(ts.targets).toEqual([ts.switch!.defaultTarget, ...ts.switch!.cases.map((c) => c.target)]);
    });

    it('decodes lookupswitch', () => {
      const ins = decodeCode(method('Arith', 'sparse').code!.code);
      const ls = ins.find((i) => i.mnemonic === 'lookupswitch')!;
      expect(ls.switch!.cases.map((c) => c.match)).toEqual([-100, 7, 1000]);
      const at = (pc: number) => ins.find((i) => i.pc === pc)!.mnemonic;
      expect(ls.switch!.cases.map((c) => at(c.target))).toEqual(['iconst_1', 'iconst_2', 'iconst_3']);
      expect(at(ls.switch!.defaultTarget)).toBe('iconst_0');
    });

    it('gives absolute branch targets, backward loops included', () => {
      const code = method('Arith', 'sum').code!;
      const ins = decodeCode(code.code);
      const back = ins.find((i) => i.mnemonic === 'goto')!;
      expect(back.operands[0]).toBeLessThan(0);
      expect(back.targets[0]).toBe(back.pc + back.operands[0]);
      expect(ins.some((i) => i.pc === back.targets[0])).toBe(true);
      const exit = ins.find((i) => i.mnemonic === 'if_icmpge')!;
      expect(ins.find((i) => i.pc === exit.targets[0])!.mnemonic).toBe('iload_3');
      expect(lineAt(code, ins.find((i) => i.mnemonic === 'baload')!.pc)).toBe(line('Arith.java', 'sumloop'));
    });

    it('decodes wide iinc and the array initialiser of <clinit>', () => {
      const w = decodeCode(method('Arith', 'wideLocals').code!.code).find((i) => i.wide)!;
      expect(w).toMatchObject({ mnemonic: 'iinc', opcode: 0x84, length: 6, operands: [11, 1000] });
      const init = decodeCode(method('Arith', '<clinit>').code!.code);
      expect(init.slice(0, 2).map((i) => [i.mnemonic, ...i.operands])).toEqual([
        ['iconst_4'],
        ['newarray', 8],
      ]);
      expect(init.filter((i) => i.mnemonic === 'bastore')).toHaveLength(4);
      expect(cls.get('Arith')!.memberRef(init.find((i) => i.mnemonic === 'putstatic')!.operands[0]).name).toBe('TABLE');
    });

    it('has all 202 defined opcodes and none of the reserved ones', () => {
      expect(JVM_OPCODES.filter(Boolean)).toHaveLength(202);
      expect(JVM_OPCODES[0xca]).toBeUndefined();
      expect(JVM_OPCODES[0xfe]).toBeUndefined();
    });

    it('rejects bad code with the pc', () => {
      const err = (code: number[]) => {
        try {
          decodeCode(Uint8Array.from(code), 't/X.m()V');
        } catch (e) {
          expect(e).toBeInstanceOf(BytecodeError);
          return e as BytecodeError;
        }
        throw new Error('no error');
      };
      expect(err([0x00, 0xcb])).toMatchObject({ pc: 1, message: expect.stringMatching(/t\/X\.m\(\)V: pc 1: undefined or reserved opcode 0xcb/) });
      expect(err([0x00, 0xa7, 0x00, 0x02, 0x00]).message).toMatch(/pc 1: goto target 3 is not the start of an instruction/);
      expect(err([0x00, 0x00, 0x11, 0x01])).toMatchObject({ pc: 2, message: expect.stringMatching(/sipush operands run past the end/) });
      expect(err([0x00, 0xc4, 0x60])).toMatchObject({ pc: 1, message: expect.stringMatching(/wide cannot modify/) });
      // tableswitch at pc 0: 3 padding bytes, then default/low/high with low > high.
      expect(err([0xaa, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 1]).message).toMatch(/low 2 > high 1/);
    });
  });

  describe('malformed class files', () => {
    const fails = (bytes: Uint8Array): ClassFileError => {
      try {
        readClassFile(bytes, 'Broken.class');
      } catch (e) {
        expect(e).toBeInstanceOf(ClassFileError);
        return e as ClassFileError;
      }
      throw new Error('no error');
    };

    it('truncated', () => {
      const e = fails(raw.get('Arith')!.subarray(0, 100));
      expect(e.message).toMatch(/^Broken\.class: at byte \d+: truncated/);
      expect(e.offset).toBeLessThanOrEqual(100);
    });

    it('bad magic', () => {
      const b = raw.get('Arith')!.slice();
      b[0] = 0xca;
      b[3] = 0x00;
      expect(fails(b)).toMatchObject({ offset: 0, message: expect.stringMatching(/bad magic 0xcafeba00/) });
    });

    it('unsupported version', () => {
      const b = raw.get('Arith')!.slice();
      b[7] = 62;
      expect(fails(b)).toMatchObject({ offset: 6, message: expect.stringMatching(/version 62\.0/) });
      b[7] = 45;
      expect(readClassFile(b).majorVersion).toBe(45);
    });

    it('bad constant pool index', () => {
      const b = raw.get('Arith')!.slice();
      // Constant pool entry #1 of javac output is the Methodref java/lang/Object.<init> (tag 10 at offset 10).
      expect(b[10]).toBe(10);
      b[11] = 0x7f;
      b[12] = 0xff;
      expect(fails(b)).toMatchObject({ offset: 10, message: expect.stringMatching(/entry #1 \(Methodref\): class_index #32767 must be Class, found out of range/) });
    });

    it('code length past the end of the Code attribute', () => {
      const b = raw.get('Arith')!.slice();
      const code = indexOf(b, [0, 0, 0, 5, 0x1a, 0x1b, 0x60, 0x93, 0xac]); // code_length 5 + add's body
      expect(code).toBeGreaterThan(0);
      b[code + 2] = 0x10;
      const e = fails(b);
      expect(e.offset).toBe(code);
      expect(e.message).toMatch(/method add\(SS\)S: code_length 4101 runs past the end of the Code attribute/);
    });

    it('extra bytes after the class', () => {
      const a = raw.get('Arith')!;
      const b = new Uint8Array(a.length + 1);
      b.set(a);
      expect(fails(b)).toMatchObject({ offset: a.length, message: expect.stringMatching(/1 extra byte/) });
    });
  });

  describe('checkJavaCardSubset', () => {
    let diags: Diagnostic[] = [];
    beforeAll(() => {
      diags = checkJavaCardSubset([...cls.values()]);
    });
    const find = (cl: string, m: string, tag: string, message: RegExp): Diagnostic => {
      const l = line(`${cl}.java`, tag);
      const d = diags.find((x) => x.class === `t.${cl}` && x.method === m && x.line === l && message.test(x.message));
      if (!d) throw new Error(`no diagnostic ${message} at t.${cl}.${m} line ${l}; got:\n${diags.map(formatDiagnostic).join('\n')}`);
      expect(d.severity).toBe('error');
      return d;
    };

    it('accepts plain Java Card code (short arithmetic, switches, arrays, exceptions, java.io.IOException, Object.equals)', () => {
      expect(diags.filter((d) => d.class === 't.Arith' || d.class === 't.Clean')).toEqual([]);
      expect(diags.filter((d) => d.class === 't.Forbidden' && d.method === 'io()V')).toEqual([]);
    });

    it('long arithmetic and constants', () => {
      find('Forbidden', 'useLong(S)S', 'long', /long constant \(ldc2_w\)/);
      find('Forbidden', 'useLong(S)S', 'long', /long operation \(ladd\)/);
      find('Forbidden', 'useLong(S)S', 'long', /long operation \(i2l\)/);
    });

    it('float', () => {
      find('Forbidden', 'useFloat(S)S', 'float', /float constant \(ldc\)/);
      find('Forbidden', 'useFloat(S)S', 'float', /float operation \(fmul\)/);
    });

    it('long/double/char/multi-dimensional/JDK field types', () => {
      const fieldDiag = (f: string, re: RegExp) =>
        expect(diags.find((d) => d.class === 't.Forbidden' && d.field === f && re.test(d.message))).toBeDefined();
      fieldDiag('lf', /type long/);
      fieldDiag('df', /type double/);
      fieldDiag('cf', /type char/);
      fieldDiag('grid', /multi-dimensional array type \[\[B/);
      fieldDiag('vec', /java\.util\.Vector/);
    });

    it('String literals and String methods', () => {
      find('Forbidden', 'useString(S)S', 'string', /String literal "hello"/);
      const l = line('Forbidden.java', 'string') + 1;
      expect(diags.some((d) => d.method === 'useString(S)S' && d.line === l && /java\.lang\.String: Java Card has no String/.test(d.message))).toBe(true);
    });

    it('string concatenation (StringBuilder)', () => {
      find('Forbidden', 'concat(S)Ljava/lang/String;', 'concat', /java\.lang\.StringBuilder/);
    });

    it('synchronized blocks and methods', () => {
      find('Forbidden', 'syncBlock()V', 'monitor', /monitorenter/);
      find('Forbidden', 'syncMethod()V', 'syncmethod', /synchronized method/);
    });

    it('multi-dimensional arrays', () => {
      find('Forbidden', 'multi()V', 'multi', /multianewarray/);
    });

    it('char arrays', () => {
      find('Forbidden', 'chars()V', 'chararray', /new char\[\]/);
    });

    it('JDK classes outside the API, threads, and API classes used beyond the API', () => {
      find('Forbidden', 'jdk()V', 'jdk', /java\.util\.Vector, a JDK class outside the Java Card API/);
      find('Forbidden', 'thread()V', 'thread', /java\.lang\.Thread: Java Card has no threads/);
      find('Forbidden', 'hash(Ljava/lang/Object;)S', 'hash', /java\.lang\.Object\.hashCode\(\)I is not part of the Java Card API/);
    });

    it('native methods (no code, so line ?)', () => {
      const d = diags.find((x) => x.method === 'nat()V')!;
      expect(d).toMatchObject({ severity: 'error', class: 't.Forbidden', line: undefined });
      expect(formatDiagnostic(d)).toBe('error: t.Forbidden.nat()V line ?: native method: Java Card applets cannot declare native methods');
    });

    it('finalize', () => {
      find('Forbidden', 'finalize()V', 'finalize', /finalize\(\)/);
    });

    it('lambdas (invokedynamic)', () => {
      find('Forbidden', 'lambda()V', 'lambda', /invokedynamic/);
    });

    it('enum classes', () => {
      const d = diags.filter((x) => x.class === 't.Color' && x.method === undefined);
      expect(d.map((x) => x.message)).toEqual(expect.arrayContaining([expect.stringMatching(/enum class/), expect.stringMatching(/java\.lang\.Enum/)]));
    });

    it('static initialisers that call methods are a warning; array initialisers are not', () => {
      const d = diags.filter((x) => x.class === 't.Init');
      expect(d).toHaveLength(1);
      expect(d[0]).toMatchObject({ severity: 'warning', method: '<clinit>()V', line: line('Init.java', 'clinit') });
      expect(d[0].message).toMatch(/calls t\.Init\.make\(\)Ljava\/lang\/Object;/);
    });

    it('reports "line ?" without debug info', () => {
      // Rename the LineNumberTable attribute (same length) so the reader no longer sees line numbers.
      const b = raw.get('Forbidden')!.slice();
      const name = [...'LineNumberTable'].map((ch) => ch.charCodeAt(0));
      const at = indexOf(b, name);
      b[at + name.length - 1] = 'X'.charCodeAt(0);
      const cf = readClassFile(b, 'Forbidden.class');
      expect(cf.methods.every((m) => !m.code || m.code.lineNumbers.length === 0)).toBe(true);
      const d = checkJavaCardSubset([cf]).find((x) => x.method === 'useLong(S)S')!;
      expect(d.line).toBeUndefined();
      expect(formatDiagnostic(d)).toMatch(/^error: t\.Forbidden\.useLong\(S\)S line \?: /);
    });
  });
});
