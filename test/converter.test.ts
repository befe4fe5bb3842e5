// The class-file → CAP converter (applet/converter/convert.ts). Behavioural: a corpus of small Java methods
// (test/fixtures/converter) is compiled against the Java Card API stubs, converted, loaded through GP LOAD/INSTALL
// under SCP03 and driven by APDUs; each result must equal the same Java run on the JDK. Structural: the converted
// package verifies, its imports carry the API table's tokens, and unsupported constructs give located diagnostics.
import { beforeAll, describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { fromHex, hex } from '../emulator/bytes.ts';
import { readClassFile } from '../applet/converter/classfile.ts';
import type { ClassFile } from '../applet/converter/classfile.ts';
import { convertPackage } from '../applet/converter/convert.ts';
import type { ConvertResult } from '../applet/converter/convert.ts';
import { formatDiagnostic } from '../applet/converter/subset.ts';
import { apiPackages } from '../emulator/vm/cap/api-table.ts';
import { verifyCapPackage } from '../emulator/vm/cap/verify.ts';
import { writeLoadFileDataBlock } from '../emulator/vm/cap/write.ts';
import { tx } from './helpers/chip.ts';
import { apdu, loadAndInstall, lv, vmChip } from './helpers/vm-chip.ts';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const FIXTURES = join(ROOT, 'test/fixtures/converter');
const API_CLASSES = join(ROOT, 'build/api-classes');
const HAVE_JDK = spawnSync('javac', ['-version']).status === 0 && spawnSync('java', ['-version']).status === 0;
const REQUIRE_JDK = process.env.JPKI_REQUIRE_JDK === '1';
const SKIP = !HAVE_JDK && !REQUIRE_JDK;
if (SKIP) console.warn('converter: javac/java not found on PATH, skipping (set JPKI_REQUIRE_JDK=1 to fail instead)');

const PKG_AID = fromHex('F0000000CC01');
const APPLET_AID = fromHex('F0000000CC0101');
/** Corpus.run op codes 0..34 (see Corpus.java). */
const OPS = 35;
const INPUTS: [number, number][] = [
  [0, 0], [1, 2], [32767, 1], [-32768, -1], [300, 300], [-5, 3], [200, -7], [12345, -321], [3, 0], [5, 2], [7, 7],
  [-1000, 4], [30000, 30000], [2, -2], [-300, 255], [1, -32768], [4, 9], [6, 1],
];

function run(cmd: string, args: string[], input?: string): string {
  const r = spawnSync(cmd, args, { encoding: 'utf8', input });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')}: ${r.stdout}${r.stderr}`);
  return r.stdout;
}

function javacCard(srcDir: string, files: string[], out: string): void {
  run('javac', ['-source', '8', '-target', '8', '-bootclasspath', API_CLASSES, '-Xlint:-options', '-g', '-encoding', 'UTF-8', '-d', out, ...files.map((f) => join(srcDir, f))]);
}

function classesIn(dir: string): ClassFile[] {
  return readdirSync(dir).filter((f) => f.endsWith('.class')).sort().map((f) => readClassFile(readFileSync(join(dir, f)), f));
}

function mustConvert(r: ConvertResult): NonNullable<ConvertResult['pkg']> {
  if (!r.pkg) throw new Error(r.diagnostics.map(formatDiagnostic).join('\n'));
  return r.pkg;
}

let work = '';
beforeAll(() => {
  if (SKIP) return;
  if (!existsSync(join(API_CLASSES, 'javacard/framework/Applet.class'))) run('npm', ['run', '--silent', 'build:api']);
  work = mkdtempSync(join(tmpdir(), 'jpki-conv-'));
}, 120_000);

describe.skipIf(SKIP)('converter: Java corpus on the VM equals the JDK', () => {
  let corpus: ClassFile[] = [];
  let result: ConvertResult;
  let expected: string[] = [];

  beforeAll(() => {
    const jc = join(work, 'jc');
    javacCard(FIXTURES, ['conv/calc/Corpus.java', 'conv/calc/CalcApplet.java'], jc);
    corpus = classesIn(join(jc, 'conv/calc'));
    result = convertPackage(corpus, { packageAid: PKG_AID, version: [1, 0], applets: [{ className: 'conv.calc.CalcApplet', aid: APPLET_AID }] });
    const jdk = join(work, 'jdk');
    run('javac', ['--release', '8', '-encoding', 'UTF-8', '-d', jdk, join(FIXTURES, 'conv/calc/Corpus.java'), join(FIXTURES, 'Main.java')]);
    const lines = [];
    for (let op = 0; op < OPS; op++) for (const [a, b] of INPUTS) lines.push(`${op} ${a} ${b}`);
    expected = run('java', ['-cp', jdk, 'Main'], lines.join('\n') + '\n').trim().split('\n');
  }, 120_000);

  it('converts with no diagnostics; the package verifies and needs the int option', () => {
    expect(result.diagnostics.map(formatDiagnostic)).toEqual([]);
    const pkg = mustConvert(result);
    expect(() => verifyCapPackage(pkg)).not.toThrow();
    expect(pkg.flags & 0x01).toBe(0x01); // ACC_INT: the corpus has genuine int arithmetic
    expect(pkg.flags & 0x04).toBe(0x04); // ACC_APPLET
  });

  it('imports the API packages by their real AIDs and versions, with tokens equal to the table', () => {
    const pkg = mustConvert(result);
    const api = apiPackages();
    const byAid = new Map(api.map((p) => [p.aid.toUpperCase(), p]));
    for (const imp of pkg.imports) {
      const p = byAid.get(hex(imp.aid));
      expect(p, hex(imp.aid)).toBeDefined();
      expect([imp.major, imp.minor]).toEqual([p!.major, p!.minor]);
    }
    // Every external class reference names a class token that exists in the imported package.
    for (const e of pkg.constantPool) {
      const ref = e.kind === 'class' ? e.ref : e.kind === 'staticField' || e.kind === 'staticMethod' ? e.ref : 'cls' in e ? e.cls : undefined;
      if (!ref || ref.internal) continue;
      const p = byAid.get(hex(pkg.imports[ref.pkg].aid))!;
      expect(p.classes.some((c) => c.token === ref.classToken), `${p.name} class token ${ref.classToken}`).toBe(true);
    }
    // Applet.register() and the Util/APDU methods the applet calls: tokens straight from the table.
    const fw = api.find((p) => p.name === 'javacard.framework')!;
    const fwIndex = pkg.imports.findIndex((i) => hex(i.aid) === fw.aid.toUpperCase());
    const util = fw.classes.find((c) => c.name === 'javacard.framework.Util')!;
    const getShort = util.methods.find((m) => m.name === 'getShort')!;
    expect(pkg.constantPool).toContainEqual({ tag: 6, kind: 'staticMethod', ref: { internal: false, pkg: fwIndex, classToken: util.token, token: getShort.token } });
    const apduCls = fw.classes.find((c) => c.name === 'javacard.framework.APDU')!;
    const getBuffer = apduCls.methods.find((m) => m.name === 'getBuffer')!;
    expect(pkg.constantPool).toContainEqual({ tag: 3, kind: 'virtualMethod', cls: { internal: false, pkg: fwIndex, classToken: apduCls.token }, token: getBuffer.token });
  });

  it('puts static initialisers into the static field image (array_init and non-default values)', () => {
    const sf = mustConvert(result).staticField;
    expect(sf.arrayInits).toContainEqual({ type: 3, values: Uint8Array.from([1, 2, 3, 0xfc, 0x7f, 0x80]) });
    expect(sf.arrayInits).toContainEqual({ type: 2, values: Uint8Array.from([1, 0, 1]) });
    expect(sf.arrayInits.find((a) => a.type === 4)?.values).toEqual(fromHex('00000001000400090010001927108AD0'));
    // base = 7 (short), small = -3 (byte), big = 100000 (int): the non-default values, in image order.
    expect(hex(sf.nonDefaultValues)).toContain('0007');
    expect(hex(sf.nonDefaultValues)).toContain('FD');
    expect(hex(sf.nonDefaultValues)).toContain('000186A0');
  });

  it('gives the same Method component from class files without debug information (javac -g:none, -target 7)', () => {
    const out = join(work, 'nodebug');
    run('javac', ['-source', '7', '-target', '7', '-bootclasspath', API_CLASSES, '-Xlint:-options', '-g:none', '-encoding', 'UTF-8', '-d', out,
      join(FIXTURES, 'conv/calc/Corpus.java'), join(FIXTURES, 'conv/calc/CalcApplet.java')]);
    const r = convertPackage(classesIn(join(out, 'conv/calc')), { packageAid: PKG_AID, version: [1, 0], applets: [{ className: 'CalcApplet', aid: APPLET_AID }] });
    expect(hex(mustConvert(r).method.info)).toBe(hex(mustConvert(result).method.info));
  });

  it(`gives the JDK's results for ${OPS} methods × ${INPUTS.length} inputs, loaded under SCP03`, async () => {
    const pkg = mustConvert(result);
    const { chip } = vmChip();
    await loadAndInstall(chip, hex(PKG_AID), writeLoadFileDataBlock(pkg), hex(APPLET_AID));
    expect(tx(chip, '00A40400' + lv(hex(APPLET_AID))).sw).toBe(0x9000);
    const s16 = (v: number) => (v & 0xffff).toString(16).padStart(4, '0');
    const mismatches: string[] = [];
    let i = 0;
    for (let op = 0; op < OPS; op++) {
      for (const [a, b] of INPUTS) {
        const r = tx(chip, apdu(0x80, op, 0, 0, s16(a) + s16(b), 2));
        const got = r.sw === 0x9000 ? String((parseInt(r.data, 16) << 16) >> 16) : `SW ${r.sw.toString(16)}`;
        if (got !== expected[i]) mismatches.push(`op ${op} (${a}, ${b}): VM ${got}, JDK ${expected[i]}`);
        i++;
      }
    }
    expect(mismatches).toEqual([]);
  }, 60_000);
});

describe.skipIf(SKIP)('converter: diagnostics', () => {
  function convertSource(name: string, text: string): ConvertResult {
    const dir = join(work, `bad-${name}`);
    mkdirSync(join(dir, 'src/conv/bad'), { recursive: true });
    writeFileSync(join(dir, 'src/conv/bad', `${name}.java`), text);
    javacCard(join(dir, 'src'), [`conv/bad/${name}.java`], join(dir, 'out'));
    return convertPackage(classesIn(join(dir, 'out/conv/bad')), { packageAid: fromHex('F0000000CC02'), version: [1, 0], applets: [] });
  }

  it('names class, method and line for a construct Java Card forbids', () => {
    const r = convertSource('Bad', 'package conv.bad;\npublic class Bad {\n  static short f(short a) {\n    long x = a;\n    return (short) x;\n  }\n}\n');
    expect(r.pkg).toBeUndefined();
    const text = r.diagnostics.map(formatDiagnostic).join('\n');
    expect(text).toMatch(/conv\.bad\.Bad\.f\(S\)S line 4/);
  });

  it('rejects a static initialiser the static field image cannot hold', () => {
    const r = convertSource('Init', 'package conv.bad;\npublic class Init {\n  static short[] t = new short[Init.size()];\n  static short size() { return 3; }\n}\n');
    expect(r.pkg).toBeUndefined();
    expect(r.diagnostics.map(formatDiagnostic).join('\n')).toMatch(/conv\.bad\.Init\.<clinit>\(\)V line 3: invokestatic in a static initialiser/);
  });

  it('reports an applet class that is not in the package', () => {
    const r = convertPackage(corpusOnce(), { packageAid: PKG_AID, version: [1, 0], applets: [{ className: 'conv.calc.Nope', aid: APPLET_AID }] });
    expect(r.pkg).toBeUndefined();
    expect(r.diagnostics.map(formatDiagnostic).join('\n')).toMatch(/applet class conv\.calc\.Nope is not among the converted classes/);
  });

  it('reports a wrong AID length', () => {
    const r = convertPackage(corpusOnce(), { packageAid: fromHex('F000'), version: [1, 0], applets: [] });
    expect(r.diagnostics.map(formatDiagnostic).join('\n')).toMatch(/package AID F000 must be 5 to 16 bytes/);
  });

  it('keeps short code short: no ACC_INT and no int instruction when the source never needs int', () => {
    const r = convertSource('Shorty', `package conv.bad;
public class Shorty {
  static final byte[] HEX = {'0', '1', '2', '3'};
  short total;
  short sum(byte[] buf, short off, short len) {
    short s = 0;
    for (short i = off; i < (short) (off + len); i++) s += (short) (buf[i] & 0xFF);
    total = (short) (total + s);
    return s;
  }
  static void put(byte[] buf, short off, short v) {
    buf[off] = (byte) (v >> 8);
    buf[(short) (off + 1)] = (byte) v;
  }
  static short pick(short ins, short p1) {
    switch (ins) {
      case 0x10: return (short) (p1 * 3);
      case 0x20: return p1 > 5 ? p1 : (short) -p1;
      case 0x7F: return (short) (HEX[p1 & 3] - '0');
      default: return 0;
    }
  }
}
`);
    expect(r.diagnostics.map(formatDiagnostic)).toEqual([]);
    const pkg = mustConvert(r);
    expect(pkg.flags & 0x01).toBe(0);
    expect(() => verifyCapPackage(pkg)).not.toThrow();
  });

  it('exports a Shareable interface, and a second package imports it through exportPath', () => {
    const dir = join(work, 'shared');
    mkdirSync(join(dir, 'src/conv/srv'), { recursive: true });
    mkdirSync(join(dir, 'src/conv/cli'), { recursive: true });
    writeFileSync(join(dir, 'src/conv/srv/Svc.java'), 'package conv.srv;\nimport javacard.framework.Shareable;\npublic interface Svc extends Shareable {\n  short ping(short x);\n}\n');
    writeFileSync(join(dir, 'src/conv/cli/Use.java'), 'package conv.cli;\nimport conv.srv.Svc;\npublic class Use {\n  static short call(Svc s) { return (short) (s.ping((short) 3) + 1); }\n}\n');
    javacCard(join(dir, 'src'), ['conv/srv/Svc.java'], join(dir, 'out'));
    const srv = convertPackage(classesIn(join(dir, 'out/conv/srv')), { packageAid: fromHex('F0000000CC03'), version: [1, 2], applets: [] });
    expect(srv.diagnostics).toEqual([]);
    expect(mustConvert(srv).flags & 0x02).toBe(0x02); // ACC_EXPORT
    expect(srv.library?.classes.map((c) => c.name)).toEqual(['conv.srv.Svc']);
    expect(srv.library?.classes[0].methods).toContainEqual(expect.objectContaining({ name: 'ping', descriptor: '(S)S', kind: 'interface', token: 0 }));
    run('javac', ['-source', '8', '-target', '8', '-bootclasspath', API_CLASSES, '-Xlint:-options', '-g', '-cp', join(dir, 'out'), '-d', join(dir, 'out2'), join(dir, 'src/conv/cli/Use.java')]);
    const cli = convertPackage(classesIn(join(dir, 'out2/conv/cli')), { packageAid: fromHex('F0000000CC04'), version: [1, 0], applets: [], exportPath: [srv.library!] });
    expect(cli.diagnostics.map(formatDiagnostic)).toEqual([]);
    expect(mustConvert(cli).imports.map((i) => hex(i.aid))).toContain('F0000000CC03');
    const noPath = convertPackage(classesIn(join(dir, 'out2/conv/cli')), { packageAid: fromHex('F0000000CC04'), version: [1, 0], applets: [] });
    expect(noPath.pkg).toBeUndefined();
    expect(noPath.diagnostics.map(formatDiagnostic).join('\n')).toMatch(/line 4: .*conv\.srv/);
  });

  it('uses the _w field forms when the constant pool passes 256 entries', () => {
    const n = 140;
    const fields = Array.from({ length: n }, (_, i) => `  short f${i};\n  static short m${i}() { return ${i}; }\n`).join('');
    const sum = Array.from({ length: n }, (_, i) => `f${i} = m${i}();`).join(' ');
    const r = convertSource('Big', `package conv.bad;\npublic class Big {\n${fields}  void fill() { ${sum} }\n}\n`);
    expect(r.diagnostics.map(formatDiagnostic)).toEqual([]);
    const pkg = mustConvert(r);
    expect(pkg.constantPool.length).toBeGreaterThan(256);
    expect(() => verifyCapPackage(pkg)).not.toThrow();
    // putfield_s_w (0xB3) with a two-byte index: every RefLocation entry in fill() is in byte2Index.
    expect(pkg.refLocation.byteIndex).toEqual([]);
  });

  function corpusOnce(): ClassFile[] {
    const out = join(work, 'corpus-once');
    if (!existsSync(out)) javacCard(FIXTURES, ['conv/calc/Corpus.java', 'conv/calc/CalcApplet.java'], out);
    return classesIn(join(out, 'conv/calc'));
  }
});
