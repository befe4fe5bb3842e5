// The Java Card language subset check (JCVM 3.0.5 §2.2 "Java Card Platform Language Subset", §2.2.2 unsupported
// items, §2.2.3 supported items) over parsed class files, before translation. Everything the converter cannot turn
// into a JCVM program is an error naming the class, the method and the source line (LineNumberTable; undefined
// without debug info). It works on references by name: classes of the JDK (java.*, javax.*, jdk.*, sun.*, com.sun.*)
// are allowed only when the Java Card API table exports them, with only the members it exports.
import { apiPackages } from '../../emulator/vm/cap/api-table.ts';
import { ACC, dotted, lineAt } from './classfile.ts';
import type { ClassFile, MethodInfo } from './classfile.ts';
import { descriptorTypes, parseDescriptor, parseFieldType } from './descriptor.ts';
import type { FieldType } from './descriptor.ts';
import { ATYPE, BytecodeError, decodeCode } from './jvm-opcodes.ts';
import type { Instruction } from './jvm-opcodes.ts';

export interface Diagnostic {
  readonly severity: 'error' | 'warning';
  /** Dotted class name. */
  readonly class: string;
  /** "name(descriptor)return", when the problem lies in a method. */
  readonly method?: string;
  /** The field, when the problem lies in a field declaration. */
  readonly field?: string;
  /** Source line from the LineNumberTable; undefined without debug info or outside code. */
  readonly line?: number;
  readonly message: string;
}

/** "error: a.b.C.m(S)V line 12: message" — "line ?" when the class has no line numbers. */
export function formatDiagnostic(d: Diagnostic): string {
  const member = d.method ? `.${d.method}` : d.field ? `.${d.field}` : '';
  const line = d.method ? ` line ${d.line ?? '?'}` : '';
  return `${d.severity}: ${d.class}${member}${line}: ${d.message}`;
}

/** JDK package prefixes: a reference into these must be a class the Java Card API exports. */
const JDK_PREFIXES = ['java/', 'javax/', 'jdk/', 'sun/', 'com/sun/'];

let apiMembers: Map<string, Set<string>> | undefined;
/** Internal class name → "name+descriptor" of its exported methods and fields (inherited ones included). */
function apiClasses(): Map<string, Set<string>> {
  if (!apiMembers) {
    apiMembers = new Map();
    for (const p of apiPackages()) {
      for (const c of p.classes) {
        const members = new Set<string>();
        for (const m of c.methods) members.add(m.name + m.descriptor);
        for (const f of c.fields) members.add(f.name + f.descriptor);
        apiMembers.set(c.name.replace(/\./g, '/'), members);
      }
    }
  }
  return apiMembers;
}

const isJdk = (name: string): boolean => JDK_PREFIXES.some((p) => name.startsWith(p));
const isStringClass = (name: string): boolean => /^java\/lang\/(String|StringBuilder|StringBuffer)$/.test(name);

/** Why a JDK class reference is not allowed, or null when it is fine. */
function classProblem(name: string): string | null {
  if (!isJdk(name) || apiClasses().has(name)) return null;
  if (isStringClass(name)) return `uses ${dotted(name)}: Java Card has no String operations`;
  if (name === 'java/lang/Thread' || name === 'java/lang/Runnable') return `uses ${dotted(name)}: Java Card has no threads`;
  return `references ${dotted(name)}, a JDK class outside the Java Card API`;
}

const BASE_PROBLEM: Partial<Record<string, string>> = {
  J: 'uses type long: Java Card has no long',
  F: 'uses type float: Java Card has no floating point',
  D: 'uses type double: Java Card has no floating point',
  C: 'uses type char: Java Card has no char',
};

/** Problems of one field type: forbidden base types, arrays of more than one dimension, JDK classes. */
function typeProblems(t: FieldType): string[] {
  if (t.kind === 'base') return BASE_PROBLEM[t.code] ? [BASE_PROBLEM[t.code]!] : [];
  if (t.kind === 'class') {
    const p = classProblem(t.name);
    return p ? [p] : [];
  }
  const out = t.dimensions > 1 ? [`uses multi-dimensional array type ${t.text}: Java Card arrays have one dimension`] : [];
  return [...out, ...typeProblems(t.element)];
}

function descriptorProblems(desc: string): string[] {
  return descriptorTypes(parseDescriptor(desc)).flatMap(typeProblems);
}

/** A CONSTANT_Class name may be an array descriptor ("[B", "[[I"). */
function classRefProblems(name: string): string[] {
  return name.startsWith('[') ? typeProblems(parseFieldType(name)) : typeProblems({ kind: 'class', name, text: `L${name};` });
}

/** Instruction-level type problems: long/float/double opcodes and char arrays/conversions. */
function opcodeProblem(ins: Instruction): string | null {
  const m = ins.mnemonic;
  if (m === 'ldc2_w') return null; // reported with its constant's kind
  if (/^[lfd](const|load|store|aload|astore|add|sub|mul|div|rem|neg|shl|shr|ushr|and|or|xor|cmp|return)|^[lfd]2|^i2[lfd]$/.test(m)) {
    const kind = { l: 'long', f: 'float', d: 'double' } as const;
    const letters = m.startsWith('i2') ? m[2] : m[0];
    const name = kind[letters as 'l' | 'f' | 'd'];
    const why = name === 'long' ? 'Java Card has no long' : 'Java Card has no floating point';
    return `${name} operation (${m}): ${why}`;
  }
  if (m === 'caload' || m === 'castore' || m === 'i2c') return `char operation (${m}): Java Card has no char`;
  if (m === 'monitorenter' || m === 'monitorexit') return `synchronized block (${m}): Java Card has no threads`;
  if (m === 'multianewarray') return 'multi-dimensional array creation (multianewarray): Java Card arrays have one dimension';
  if (m === 'invokedynamic') return 'invokedynamic (lambda, method reference or string concatenation) is not supported by Java Card';
  if (m === 'jsr' || m === 'jsr_w' || m === 'ret') return `${m} (class files before version 50) is not supported; compile with --release 8`;
  if (m === 'newarray') {
    const t = ATYPE[ins.operands[0]];
    if (t === 'char' || t === 'float' || t === 'double' || t === 'long') return `new ${t}[] : Java Card has no ${t}`;
  }
  return null;
}

const INVOKES = new Set(['invokevirtual', 'invokespecial', 'invokestatic', 'invokeinterface']);
const MEMBER_OPS = new Set([...INVOKES, 'getstatic', 'putstatic', 'getfield', 'putfield']);
const CLASS_OPS = new Set(['new', 'anewarray', 'checkcast', 'instanceof', 'multianewarray']);

/** Problems of one instruction that refers to the constant pool. */
function referenceProblems(cf: ClassFile, ins: Instruction): string[] {
  const m = ins.mnemonic;
  if (m === 'ldc' || m === 'ldc_w' || m === 'ldc2_w') {
    const k = cf.constant(ins.operands[0]);
    switch (k.kind) {
      case 'string':
        return [`String literal "${k.value}" (${m}): Java Card has no String objects`];
      case 'long':
      case 'float':
      case 'double':
        return [`${k.kind} constant (${m}): Java Card has no ${k.kind}`];
      case 'class':
        return [`class literal ${dotted(k.value)}.class (${m}): Java Card has no Class objects`];
      case 'int':
        return [];
      default:
        return [`${k.kind} constant (${m}) is not supported by Java Card`];
    }
  }
  if (MEMBER_OPS.has(m)) {
    const ref = cf.memberRef(ins.operands[0]);
    const out: string[] = [];
    if (ref.owner.startsWith('[')) {
      out.push(...classRefProblems(ref.owner));
      out.push(`${ref.name}() on an array (${dotted(ref.owner)}): Java Card arrays have no methods`);
    } else {
      const p = classProblem(ref.owner);
      if (p) out.push(p);
      else if (isJdk(ref.owner) && !apiClasses().get(ref.owner)!.has(ref.name + ref.descriptor)) {
        out.push(`${dotted(ref.owner)}.${ref.name}${ref.descriptor} is not part of the Java Card API`);
      }
    }
    out.push(...descriptorProblems(ref.descriptor));
    return out;
  }
  if (CLASS_OPS.has(m)) {
    const name = cf.className(ins.operands[0]);
    const out = classRefProblems(name);
    // anewarray of an array class creates a 2-dimensional array.
    if (m === 'anewarray' && name.startsWith('[')) out.push(`array of arrays (anewarray ${name}): Java Card arrays have one dimension`);
    return out;
  }
  return [];
}

/** Checks one method's flags, descriptor and code. */
function checkMethod(cf: ClassFile, mi: MethodInfo, report: (d: Omit<Diagnostic, 'class'>) => void): void {
  const method = mi.name + mi.descriptor;
  const firstLine = mi.code?.lineNumbers[0]?.line;
  const at = (line: number | undefined, message: string, severity: Diagnostic['severity'] = 'error'): void =>
    report({ severity, method, line, message });
  if (mi.accessFlags & ACC.NATIVE) at(undefined, 'native method: Java Card applets cannot declare native methods');
  if (mi.accessFlags & ACC.SYNCHRONIZED) at(firstLine, 'synchronized method: Java Card has no threads');
  if (mi.name === 'finalize' && mi.descriptor === '()V') at(firstLine, 'finalize(): Java Card has no finalization');
  for (const p of descriptorProblems(mi.descriptor)) at(firstLine, `signature ${p}`);
  for (const ex of mi.exceptions) {
    const p = classProblem(ex);
    if (p) at(firstLine, `throws clause ${p}`);
  }
  const code = mi.code;
  if (!code) return;
  let instructions: Instruction[];
  try {
    instructions = decodeCode(code.code, `${dotted(cf.thisClass)}.${method}`);
  } catch (e) {
    if (e instanceof BytecodeError) {
      at(lineAt(code, e.pc), `malformed bytecode: ${e.message}`);
      return;
    }
    throw e;
  }
  for (const h of code.exceptionTable) {
    const p = h.catchType ? classProblem(h.catchType) : null;
    if (p) at(lineAt(code, h.handlerPc), `catch clause ${p}`);
  }
  const clinit = mi.name === '<clinit>';
  for (const ins of instructions) {
    const line = lineAt(code, ins.pc);
    const op = opcodeProblem(ins);
    if (op) at(line, op);
    for (const p of referenceProblems(cf, ins)) at(line, p);
    if (clinit && INVOKES.has(ins.mnemonic)) {
      const ref = cf.memberRef(ins.operands[0]);
      at(
        line,
        `static initialiser calls ${dotted(ref.owner)}.${ref.name}${ref.descriptor}: the converter can only build a static image ` +
          'from constants and array initialisers; move this into install() or the constructor',
        'warning',
      );
    }
  }
}

function checkClass(cf: ClassFile, out: Diagnostic[]): void {
  const cls = dotted(cf.thisClass);
  const seen = new Set<string>();
  const report = (d: Omit<Diagnostic, 'class'>): void => {
    const key = `${d.severity}|${d.method ?? ''}|${d.field ?? ''}|${d.line ?? ''}|${d.message}`;
    if (seen.has(key)) return;
    seen.add(key);
    out.push({ class: cls, ...d });
  };
  if ((cf.accessFlags & ACC.ENUM) !== 0 || cf.superClass === 'java/lang/Enum') {
    report({ severity: 'error', message: 'enum class: Java Card has no enums (use byte or short constants)' });
  }
  if (cf.superClass) {
    const p = classProblem(cf.superClass);
    if (p) report({ severity: 'error', message: `superclass ${p}` });
  }
  for (const i of cf.interfaces) {
    const p = classProblem(i);
    if (p) report({ severity: 'error', message: `implemented interface ${p}` });
  }
  for (const f of cf.fields) {
    for (const p of typeProblems(parseFieldType(f.descriptor))) report({ severity: 'error', field: f.name, message: `field ${f.name} ${p}` });
    if (f.accessFlags & ACC.VOLATILE) report({ severity: 'error', field: f.name, message: `field ${f.name} is volatile: Java Card has no threads` });
  }
  for (const m of cf.methods) checkMethod(cf, m, report);
}

/**
 * Checks one package's classes against the Java Card subset. Errors block conversion; warnings flag constructs the
 * converter may not handle yet. Diagnostics come in class order, then field/method order, then pc order.
 */
export function checkJavaCardSubset(classes: readonly ClassFile[]): Diagnostic[] {
  const out: Diagnostic[] = [];
  for (const cf of classes) checkClass(cf, out);
  return out;
}

