// The Java Card sample applets (applet/samples): with a JDK, every sample compiles against the API stubs (one javac run
// per sample, in dependency order), gives Java 8 class files (version 52), and uses nothing Java Card forbids at the
// class-file level: no java/lang/String reference, no String/long/float/double constants, no long/float/double
// descriptors or opcodes. Without javac the compilation tests are skipped unless JPKI_REQUIRE_JDK=1.
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync, mkdirSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { compileApi, compileSample, javaSources, loadSamples, parseJavacOutput, type CompileResult, type Sample } from '../applet/build.ts';

const HAVE_JDK = spawnSync('javac', ['-version'], { encoding: 'utf8' }).status === 0;
const REQUIRE_JDK = process.env.JPKI_REQUIRE_JDK === '1';
if (!HAVE_JDK && !REQUIRE_JDK) {
  console.warn('applet-samples: javac not found on PATH, skipping the sample compilation tests (set JPKI_REQUIRE_JDK=1 to fail instead)');
}

const samples = loadSamples();

describe('applet samples: manifest', () => {
  it('lists the five samples, each with sources, a README and distinct AIDs under its package AID', () => {
    expect(samples.map((s) => s.name).sort()).toEqual(['counter', 'echo', 'pinsign', 'shop', 'wallet']);
    const aids = new Set<string>();
    for (const s of samples) {
      expect(s.packageAid, s.name).toMatch(/^A0000001510B00[0-9A-F]{2}$/);
      expect(existsSync(join('applet/samples', s.name, 'README.md')), `${s.name}/README.md`).toBe(true);
      const readme = readFileSync(join('applet/samples', s.name, 'README.md'), 'utf8');
      expect(readme, s.name).toContain(s.packageAid);
      for (const a of s.applets) {
        expect(a.aid.startsWith(s.packageAid), a.aid).toBe(true);
        expect(readme, s.name).toContain(a.aid);
        expect(a.class.startsWith(`${s.package}.`), a.class).toBe(true);
        aids.add(a.aid);
      }
      aids.add(s.packageAid);
      expect(javaSources(join('applet/samples', s.name, 'src')).length, s.name).toBeGreaterThan(0);
    }
    expect(aids.size).toBe(samples.length * 2);
    // Dependency order: shop after wallet.
    expect(samples.findIndex((s) => s.name === 'shop')).toBeGreaterThan(samples.findIndex((s) => s.name === 'wallet'));
  });

  it('no sample source uses long, float, double, char, String or @Override', () => {
    for (const s of samples)
      for (const f of javaSources(join('applet/samples', s.name, 'src'))) {
        // Comments may say anything; code may not.
        const code = readFileSync(f, 'utf8').replace(/\/\*[\s\S]*?\*\//g, '').replace(/\/\/.*$/gm, '');
        expect(code, f).not.toMatch(/\b(long|float|double|char|String)\b|@Override|"/);
      }
  });
});

/** A class file's version and what its constant pool and descriptors reference. */
interface ClassInfo {
  major: number;
  minor: number;
  /** Constant-pool tags present (1 Utf8, 3 Integer, 4 Float, 5 Long, 6 Double, 7 Class, 8 String, …). */
  tags: Set<number>;
  utf8: string[];
  classes: string[];
  /** Descriptors of the declared fields and methods. */
  descriptors: string[];
}

function readClass(bytes: Buffer): ClassInfo {
  expect(bytes.readUInt32BE(0)).toBe(0xcafebabe);
  const minor = bytes.readUInt16BE(4);
  const major = bytes.readUInt16BE(6);
  const count = bytes.readUInt16BE(8);
  const tags = new Set<number>();
  const utf8 = new Map<number, string>();
  const classRefs: number[] = [];
  let p = 10;
  for (let i = 1; i < count; i++) {
    const tag = bytes[p];
    tags.add(tag);
    switch (tag) {
      case 1: {
        const len = bytes.readUInt16BE(p + 1);
        utf8.set(i, bytes.subarray(p + 3, p + 3 + len).toString('utf8'));
        p += 3 + len;
        break;
      }
      case 7:
        classRefs.push(bytes.readUInt16BE(p + 1));
        p += 3;
        break;
      case 8: case 16: case 19: case 20:
        p += 3;
        break;
      case 15:
        p += 4;
        break;
      case 3: case 4: case 9: case 10: case 11: case 12: case 17: case 18:
        p += 5;
        break;
      case 5: case 6:
        p += 9;
        i++; // 8-byte constants take two slots
        break;
      default:
        throw new Error(`unknown constant-pool tag ${tag} at offset ${p}`);
    }
  }
  p += 6; // access_flags, this_class, super_class
  p += 2 + 2 * bytes.readUInt16BE(p); // interfaces
  const descriptors: string[] = [];
  for (let table = 0; table < 2; table++) {
    const n = bytes.readUInt16BE(p);
    p += 2;
    for (let k = 0; k < n; k++) {
      descriptors.push(utf8.get(bytes.readUInt16BE(p + 4))!);
      const attrs = bytes.readUInt16BE(p + 6);
      p += 8;
      for (let a = 0; a < attrs; a++) p += 6 + bytes.readUInt32BE(p + 2);
    }
  }
  return { major, minor, tags, utf8: [...utf8.values()], classes: classRefs.map((r) => utf8.get(r)!), descriptors };
}

/** JVM opcodes Java Card has no counterpart for: every long/float/double instruction (javap mnemonics). */
function forbiddenOpcode(op: string): boolean {
  if (/^i2[lfd]$/.test(op) || op === 'ldc2_w') return true;
  if (/^dup/.test(op) || op === 'lookupswitch' || op === 'ldc' || op === 'ldc_w') return false;
  return /^[lfd]/.test(op);
}

/** The instructions (offset + mnemonic) javap -c -p shows whose opcode Java Card forbids, per class. */
function forbiddenInstructions(classFiles: string[]): string[] {
  const r = spawnSync('javap', ['-c', '-p', ...classFiles], { encoding: 'utf8' });
  expect(r.status, r.stderr).toBe(0);
  const bad: string[] = [];
  let cls = '';
  let method = '';
  for (const line of r.stdout.split('\n')) {
    const c = /^(?:public |final |abstract )*(?:class|interface) (\S+)/.exec(line);
    if (c) cls = c[1];
    else if (/^ {2}\S.*\);$/.test(line)) method = line.trim();
    const m = /^\s+(\d+): (\w+)/.exec(line);
    if (m && forbiddenOpcode(m[2])) bad.push(`${cls} ${method} @${m[1]}: ${m[2]}`);
  }
  return bad;
}

function classFiles(dir: string): string[] {
  const out: string[] = [];
  const walk = (d: string): void => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      const p = join(d, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.name.endsWith('.class')) out.push(p);
    }
  };
  walk(dir);
  return out.sort();
}

describe('forbidden-opcode check', () => {
  it('flags long/float/double instructions and nothing else', () => {
    for (const op of ['lload', 'ladd', 'lcmp', 'l2i', 'i2l', 'fconst_0', 'fadd', 'd2i', 'dreturn', 'ldc2_w', 'i2d', 'lreturn'])
      expect(forbiddenOpcode(op), op).toBe(true);
    for (const op of ['dup', 'dup_x1', 'dup2', 'lookupswitch', 'ldc', 'ldc_w', 'iload', 'iadd', 'i2s', 'i2b', 'tableswitch', 'areturn'])
      expect(forbiddenOpcode(op), op).toBe(false);
  });
});

describe.skipIf(!HAVE_JDK && !REQUIRE_JDK)('applet samples: javac', () => {
  let tmp = '';
  let api = '';
  let out = '';
  const results = new Map<string, CompileResult>();

  beforeAll(() => {
    if (!HAVE_JDK) return;
    tmp = mkdtempSync(join(tmpdir(), 'jpki-samples-'));
    api = join(tmp, 'api-classes');
    out = join(tmp, 'classes');
    compileApi(api); // the same command as `npm run build:api`
    for (const s of samples) results.set(s.name, compileSample(s, api, out));
  });
  afterAll(() => {
    if (tmp) rmSync(tmp, { recursive: true, force: true });
  });

  it('javac is on PATH', () => {
    expect(HAVE_JDK, 'JPKI_REQUIRE_JDK=1 but javac was not found').toBe(true);
  });

  it.each(samples.map((s) => [s.name, s] as [string, Sample]))('%s compiles, without warnings', (name, s) => {
    const r = results.get(name)!;
    expect(r.ok, r.output).toBe(true);
    expect(r.diagnostics).toEqual([]);
    // Each applet class exists, as does a class for each source file.
    for (const a of s.applets) expect(existsSync(join(out, name, `${a.class.replace(/\./g, '/')}.class`)), a.class).toBe(true);
    const classes = classFiles(join(out, name)).map((f) => relative(join(out, name), f));
    for (const src of r.sources) {
      const rel = relative(join('applet/samples', name, 'src'), relative(process.cwd(), src)).replace(/\.java$/, '.class');
      expect(classes, rel).toContain(rel);
    }
    // Everything is in the sample's own package.
    for (const c of classes) expect(c.startsWith(`${s.package.replace(/\./g, '/')}/`), c).toBe(true);
  });

  it('every class file is version 52.0 and references no String, long, float or double', () => {
    let n = 0;
    for (const s of samples) {
      for (const f of classFiles(join(out, s.name))) {
        const info = readClass(readFileSync(f));
        const where = relative(out, f);
        expect([info.major, info.minor], where).toEqual([52, 0]);
        for (const tag of [4, 5, 6, 8]) expect(info.tags.has(tag), `${where}: constant-pool tag ${tag}`).toBe(false);
        expect(info.classes.filter((c) => !/^\[*(java\/lang\/Object|javacard\/|javacardx\/|com\/jpkise\/samples\/|[BSZI]$|L(javacard|javacardx|com\/jpkise\/samples)\/)/.test(c)), where).toEqual([]);
        expect(info.utf8.filter((u) => u.includes('java/lang/String')), where).toEqual([]);
        // Field and method descriptors: no J (long), F (float), D (double), C (char) types.
        expect(info.descriptors.length, where).toBeGreaterThan(0);
        for (const d of info.descriptors) expect(d.replace(/L[^;]*;/g, ''), `${where}: ${d}`).not.toMatch(/[JFDC]/);
        n++;
      }
      expect(forbiddenInstructions(classFiles(join(out, s.name))), s.name).toEqual([]);
    }
    expect(n).toBe(6);
  });

  it('the checks catch long arithmetic (negative control)', () => {
    const dir = join(tmp, 'control');
    mkdirSync(join(dir, 'src', 'ctl'), { recursive: true });
    const file = join(dir, 'src', 'ctl', 'Wide.java');
    writeFileSync(file, 'package ctl;\npublic class Wide {\n    static long twice(short x) { long y = x; return y + y; }\n}\n');
    const r = spawnSync('javac', ['-source', '8', '-target', '8', '-bootclasspath', api, '-Xlint:-options', '-d', join(dir, 'out'), file], { encoding: 'utf8' });
    expect(r.status, r.stderr).toBe(0);
    const cls = join(dir, 'out', 'ctl', 'Wide.class');
    expect(forbiddenInstructions([cls]).map((b) => b.replace(/^.*: /, ''))).toEqual(['i2l', 'lstore_1', 'lload_1', 'lload_1', 'ladd', 'lreturn']);
    expect(readClass(readFileSync(cls)).descriptors).toContain('(S)J');
  });

  it('the shop sample compiles against the wallet classes and calls WalletInterface', () => {
    const r = spawnSync('javap', ['-c', '-p', '-classpath', join(out, 'shop'), 'com.jpkise.samples.shop.Shop'], { encoding: 'utf8' });
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/invokeinterface .*com\/jpkise\/samples\/wallet\/WalletInterface\.debit:\(S\)S/);
    expect(r.stdout).toMatch(/JCSystem\.getAppletShareableInterfaceObject/);
  });

  it('a javac error is reported with the file and line', () => {
    const dir = join(tmp, 'bad-samples');
    const src = join(dir, 'bad', 'src', 'bad');
    mkdirSync(src, { recursive: true });
    writeFileSync(
      join(src, 'Bad.java'),
      ['package bad;', '', 'public class Bad {', '    short f() {', '        return missing;', '    }', '}', ''].join('\n'),
    );
    const sample: Sample = { name: 'bad', package: 'bad', packageAid: 'A000000151FF', version: '1.0', applets: [], uses: [] };
    const r = compileSample(sample, api, join(tmp, 'bad-classes'), dir);
    expect(r.ok).toBe(false);
    expect(r.diagnostics.length).toBe(1);
    expect(r.diagnostics[0].file.endsWith(join('bad', 'src', 'bad', 'Bad.java'))).toBe(true);
    expect(r.diagnostics[0].line).toBe(5);
    expect(r.diagnostics[0].kind).toBe('error');
    expect(r.diagnostics[0].message).toMatch(/cannot find symbol/);
  });

  it('parses javac diagnostics relative to the repository', () => {
    const d = parseJavacOutput(`${process.cwd()}/applet/samples/echo/src/X.java:12: error: boom\n  more\n1 error\n`);
    expect(d).toEqual([{ file: 'applet/samples/echo/src/X.java', line: 12, kind: 'error', message: 'boom' }]);
  });
});
