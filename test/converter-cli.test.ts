// Export files (applet/converter/export-file.ts, JCVM 3.0.5 ch. 5) and `jpki-se convert` (cli/convert.ts), run
// in-process. The export file tests need nothing; the command tests compile samples with javac against the API stubs
// (build/api-classes, the flags of applet/build.ts) and are skipped without a JDK unless JPKI_REQUIRE_JDK=1.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { run } from '../cli/run.ts';
import type { Io } from '../cli/io.ts';
import { fromHex, hex } from '../emulator/bytes.ts';
import { readCapFile } from '../emulator/cap-reader.ts';
import { apiPackages } from '../emulator/vm/cap/api-table.ts';
import type { ExportedPackage } from '../emulator/vm/cap/api-table.ts';
import { parseCapPackage } from '../emulator/vm/cap/parse.ts';
import { verifyCapPackage } from '../emulator/vm/cap/verify.ts';
import { ExportFileError, readExportFile, writeExportFile } from '../applet/converter/export-file.ts';
import { readClassFile } from '../applet/converter/classfile.ts';
import { convertPackage } from '../applet/converter/convert.ts';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const API_CLASSES = join(ROOT, 'build/api-classes');
const SAMPLES = join(ROOT, 'applet/samples');
const HAVE_JDK = spawnSync('javac', ['-version']).status === 0;
const SKIP = !HAVE_JDK && process.env.JPKI_REQUIRE_JDK !== '1';
if (SKIP) console.warn('converter-cli: javac not found on PATH, skipping the convert command tests (set JPKI_REQUIRE_JDK=1 to fail instead)');

/** What an export file cannot carry (declared_in_class) dropped; flags in one order. */
function normalise(p: ExportedPackage): ExportedPackage {
  return {
    name: p.name, aid: p.aid, major: p.major, minor: p.minor,
    classes: p.classes.map((c) => ({
      name: c.name, token: c.token, flags: [...c.flags].sort(), super: c.super, interfaces: c.interfaces,
      fields: c.fields.map((f) => ({ name: f.name, descriptor: f.descriptor, token: f.token, flags: [...f.flags].sort(), ...(f.constant !== undefined ? { constant: f.constant } : {}), kind: f.kind })),
      methods: c.methods.map((m) => ({ name: m.name, descriptor: m.descriptor, token: m.token, kind: m.kind, flags: [...m.flags].sort() })),
    })),
  };
}

describe('export files', () => {
  it('every Java Card API package survives write → read', () => {
    for (const p of apiPackages()) {
      const bytes = writeExportFile(p, { packages: apiPackages() });
      expect(normalise(readExportFile(bytes, p.name)), p.name).toEqual(normalise(p));
    }
  });

  it('has the JCVM ch. 5 header, constant pool and class layout', () => {
    const fw = apiPackages().find((p) => p.name === 'javacard.framework')!;
    const b = writeExportFile(fw, { packages: apiPackages(), library: true });
    expect(hex(b.subarray(0, 6))).toBe('00FACADE0102'); // magic, minor 1, major 2
    const b22 = writeExportFile(fw, { version: [2, 2] });
    expect(hex(b22.subarray(4, 6))).toBe('0202');
    expect(readExportFile(b22).aid).toBe('A0000000620101');
    // Applet (token 3) lists its superclasses: java.lang.Object only.
    const text = new TextDecoder().decode(b);
    expect(text).toContain('javacard/framework/Applet');
    expect(text).toContain('ConstantValue');
    const iso = readExportFile(b).classes.find((c) => c.name === 'javacard.framework.ISO7816')!;
    expect(iso.fields.find((f) => f.name === 'SW_NO_ERROR')).toMatchObject({ token: 255, constant: -28672, kind: 'compile-time constant' });
  });

  it('rejects what is not an export file, naming the offset', () => {
    expect(() => readExportFile(new Uint8Array([0xca, 0xfe, 0xba, 0xbe, 0, 0]), 'x.exp')).toThrow(/x\.exp: offset 4: not an export file/);
    const good = writeExportFile(apiPackages()[0]);
    expect(() => readExportFile(good.subarray(0, good.length - 3), 'cut.exp')).toThrow(ExportFileError);
    expect(() => readExportFile(new Uint8Array([0, 0xfa, 0xca, 0xde, 1, 3, 0, 0]), 'v.exp')).toThrow(/format 3\.1 is not supported/);
  });
});

async function cli(...argv: string[]): Promise<{ code: number; out: string[]; err: string[] }> {
  const out: string[] = [];
  const err: string[] = [];
  const io: Io = { out: (l) => out.push(...l.split('\n')), err: (l) => err.push(...l.split('\n')), stop: () => new Promise(() => {}), env: {} };
  return { code: await run(argv, io), out, err };
}

function javac(out: string, sources: string[], classPath: string[] = []): void {
  const cp = classPath.length ? ['-classpath', classPath.join(':')] : [];
  const r = spawnSync('javac', ['-source', '8', '-target', '8', '-bootclasspath', API_CLASSES, '-Xlint:-options', '-encoding', 'UTF-8', '-g', ...cp, '-d', out, ...sources], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`javac: ${r.stdout}${r.stderr}`);
}

const javaFiles = (dir: string): string[] =>
  readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? javaFiles(join(dir, e.name)) : e.name.endsWith('.java') ? [join(dir, e.name)] : []));

describe.skipIf(SKIP)('jpki-se convert', () => {
  let work = '';
  beforeAll(() => {
    if (!existsSync(join(API_CLASSES, 'javacard/framework/Applet.class'))) {
      const r = spawnSync('npm', ['run', '--silent', 'build:api'], { cwd: ROOT, encoding: 'utf8' });
      if (r.status !== 0) throw new Error(`npm run build:api: ${r.stdout}${r.stderr}`);
    }
    work = mkdtempSync(join(tmpdir(), 'jpki-convert-'));
    for (const s of ['echo', 'wallet']) javac(join(work, s), javaFiles(join(SAMPLES, s, 'src')));
    javac(join(work, 'shop'), javaFiles(join(SAMPLES, 'shop/src')), [join(work, 'wallet')]);
  }, 120_000);
  afterAll(() => {
    if (work) rmSync(work, { recursive: true, force: true });
  });

  it('converts the echo sample into a CAP that parses and verifies', async () => {
    const out = join(work, 'out-echo');
    const r = await cli('convert', '--classdir', join(work, 'echo'), '--package', 'com.jpkise.samples.echo', '--package-aid', 'A0000001510B0001',
      '--version', '1.0', '--applet', 'Echo=A0000001510B000101', '--out', out);
    expect(r.err).toEqual([]);
    expect(r.code).toBe(0);
    expect(r.out[0]).toMatch(/echo\.cap: \d+ bytes \(Load File Data Block, CAP 2\.1\), package A0000001510B0001 v1\.0 \(com\.jpkise\.samples\.echo\)/);
    expect(r.out[1]).toMatch(/1 class, \d+ methods, 1 applet A0000001510B000101/);
    expect(r.out[2]).toMatch(/components \(bytes\): Header \d+, Directory \d+, Applet \d+, Import \d+, ConstantPool \d+, Class \d+, Method \d+/);
    expect(existsSync(join(out, 'echo.exp'))).toBe(false); // exports nothing
    const pkg = parseCapPackage(readCapFile(readFileSync(join(out, 'echo.cap'))));
    verifyCapPackage(pkg);
    expect(hex(pkg.package.aid)).toBe('A0000001510B0001');
    expect(pkg.applets.map((a) => hex(a.aid))).toEqual(['A0000001510B000101']);
    expect((await cli('cap', 'info', join(out, 'echo.cap'))).code).toBe(0);
  });

  it('writes the JAR form and CAP 2.2 when told', async () => {
    const out = join(work, 'out-jar');
    const r = await cli('convert', '--classdir', join(work, 'echo'), '--package', 'com.jpkise.samples.echo', '--package-aid', 'A0000001510B0001',
      '--version', '1.2', '--applet', 'com.jpkise.samples.echo.Echo=A0000001510B000101', '--out', out, '--jar', '--format', '2.2');
    expect(r.code).toBe(0);
    const bytes = readFileSync(join(out, 'echo.cap'));
    expect(hex(bytes.subarray(0, 2))).toBe('504B');
    const pkg = parseCapPackage(readCapFile(bytes));
    expect([pkg.formatMajor, pkg.formatMinor, pkg.package.major, pkg.package.minor]).toEqual([2, 2, 1, 2]);
  });

  it('wallet → shop: the wallet .exp lets the shop import it', async () => {
    const out = join(work, 'out-pair');
    const w = await cli('convert', '--classdir', join(work, 'wallet'), '--package', 'com.jpkise.samples.wallet', '--package-aid', 'A0000001510B0004',
      '--version', '1.0', '--applet', 'Wallet=A0000001510B000401', '--out', out);
    expect(w.code).toBe(0);
    expect(w.out.at(-1)).toMatch(/wallet\.exp: \d+ bytes, export file 2\.1 \(\d+ exported class/);
    const lib = readExportFile(readFileSync(join(out, 'wallet.exp')), 'wallet.exp');
    expect(lib).toMatchObject({ name: 'com.jpkise.samples.wallet', aid: 'A0000001510B0004', major: 1, minor: 0 });
    // The .exp holds exactly the converter's export data (less declared_in_class, which the format lacks).
    const dir = join(work, 'wallet/com/jpkise/samples/wallet');
    const classes = readdirSync(dir).sort().map((f) => readClassFile(readFileSync(join(dir, f)), f));
    const conv = convertPackage(classes, { packageAid: fromHex('A0000001510B0004'), version: [1, 0], applets: [{ className: 'Wallet', aid: fromHex('A0000001510B000401') }] });
    expect(normalise(lib)).toEqual(normalise(conv.library!));
    const iface = lib.classes.find((c) => c.name === 'com.jpkise.samples.wallet.WalletInterface')!;
    expect(iface.flags).toEqual(expect.arrayContaining(['public', 'interface', 'shareable']));
    expect(iface.interfaces).toContain('javacard.framework.Shareable');

    // Without the export file the shop cannot resolve the wallet; with it (file or folder) it converts.
    const shopArgs = ['convert', '--classdir', join(work, 'shop'), '--package', 'com.jpkise.samples.shop', '--package-aid', 'A0000001510B0005',
      '--version', '1.0', '--applet', 'Shop=A0000001510B000501', '--out', out];
    const without = await cli(...shopArgs);
    expect(without.code).toBe(1);
    expect(without.err.join('\n')).toMatch(/wallet/i);
    for (const ep of [join(out, 'wallet.exp'), out]) {
      const s = await cli(...shopArgs, '--exportpath', ep);
      expect(s.err).toEqual([]);
      expect(s.code).toBe(0);
      const shop = parseCapPackage(readCapFile(readFileSync(join(out, 'shop.cap'))));
      verifyCapPackage(shop);
      expect(shop.imports.map((i) => hex(i.aid))).toContain('A0000001510B0004');
    }
  });

  it('bad command lines exit 2 with one line', async () => {
    const base = ['convert', '--classdir', join(work, 'echo'), '--package', 'com.jpkise.samples.echo', '--version', '1.0'];
    const shortAid = await cli(...base, '--package-aid', 'A00000');
    expect(shortAid.code).toBe(2);
    expect(shortAid.err).toEqual([expect.stringMatching(/--package-aid "A00000" has 3 bytes; an AID has 5 to 16/)]);
    const longApplet = await cli(...base, '--package-aid', 'A0000001510B0001', '--applet', `Echo=${'11'.repeat(17)}`);
    expect(longApplet.code).toBe(2);
    expect(longApplet.err[0]).toMatch(/has 17 bytes; an AID has 5 to 16/);
    expect((await cli(...base, '--package-aid', 'A0000001510B0001', '--applet', 'Echo')).err[0]).toMatch(/is not CLASS=AID/);
    expect((await cli(...base, '--package-aid', 'A0000001510B0001', '--format', '3.0')).code).toBe(2);
    expect((await cli('convert', '--package', 'a.b')).err[0]).toMatch(/--classdir DIR is required/);
    const help = await cli('convert', '--help');
    expect(help.code).toBe(0);
    expect(help.out[0]).toMatch(/^Usage: jpki-se convert --classdir DIR/);
  });

  it('a missing class directory or package exits 1 naming it', async () => {
    const args = ['--package', 'com.jpkise.samples.echo', '--package-aid', 'A0000001510B0001', '--version', '1.0'];
    const missing = await cli('convert', '--classdir', join(work, 'nowhere'), ...args);
    expect(missing.code).toBe(1);
    expect(missing.err).toEqual([`${join(work, 'nowhere')}: class directory does not exist`]);
    const wrongPkg = await cli('convert', '--classdir', join(work, 'wallet'), ...args);
    expect(wrongPkg.code).toBe(1);
    expect(wrongPkg.err[0]).toMatch(/no directory for package com\.jpkise\.samples\.echo/);
    const badExp = join(work, 'bad.exp');
    writeFileSync(badExp, 'not an export file');
    const r = await cli('convert', '--classdir', join(work, 'echo'), ...args, '--exportpath', badExp);
    expect(r.code).toBe(1);
    expect(r.err[0]).toMatch(/bad\.exp: offset 4: not an export file/);
  });

  it('a class using long gives file:line: error: Class.method diagnostics and exit 1', async () => {
    const src = join(work, 'src-bad', 'conv', 'bad');
    mkdirSync(src, { recursive: true });
    writeFileSync(join(src, 'Bad.java'), [
      'package conv.bad;',
      'public class Bad {',
      '    public static short f(short a) {',
      '        long x = a;',
      '        x = x * 3L;',
      '        return (short) x;',
      '    }',
      '}',
      '',
    ].join('\n'));
    const classes = join(work, 'bad');
    javac(classes, [join(src, 'Bad.java')]);
    const r = await cli('convert', '--classdir', classes, '--package', 'conv.bad', '--package-aid', 'F000000001', '--version', '1.0', '--out', join(work, 'out-bad'));
    expect(r.code).toBe(1);
    expect(r.out).toEqual([]);
    expect(r.err[0]).toMatch(/^conv\/bad\/Bad\.java:4: error: Bad\.f\(S\)S: .*long/);
    expect(r.err.at(-1)).toMatch(/^conv\.bad: \d+ errors?, no CAP file written$/);
    expect(existsSync(join(work, 'out-bad', 'bad.cap'))).toBe(false);
  });
});
