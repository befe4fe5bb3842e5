// jpki-se convert: the class files javac made of one Java package → a verified CAP file (applet/converter/convert.ts)
// and, when the package exports Shareable interfaces, its export file (applet/converter/export-file.ts, JCVM 3.0.5
// ch. 5) for packages converted later with --exportpath.
import { existsSync, mkdirSync, readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fromHex, hex } from '../emulator/bytes.ts';
import { componentName, readCapFile } from '../emulator/cap-reader.ts';
import { apiPackages } from '../emulator/vm/cap/api-table.ts';
import type { ExportedPackage } from '../emulator/vm/cap/api-table.ts';
import { parseCapPackage } from '../emulator/vm/cap/parse.ts';
import { verifyCapPackage } from '../emulator/vm/cap/verify.ts';
import { writeCapJar, writeLoadFileDataBlock } from '../emulator/vm/cap/write.ts';
import { ClassFileError, readClassFile } from '../applet/converter/classfile.ts';
import type { ClassFile } from '../applet/converter/classfile.ts';
import { convertPackage } from '../applet/converter/convert.ts';
import type { Diagnostic } from '../applet/converter/convert.ts';
import { ExportFileError, readExportFile, writeExportFile } from '../applet/converter/export-file.ts';
import type { Values } from './args.ts';
import { PlainError, UsageError, flag, parseAid, str } from './args.ts';
import type { Io } from './io.ts';

const JAVA_NAME = /^[A-Za-z_$][\w$]*(\.[A-Za-z_$][\w$]*)*$/;

/** "MAJ.MIN", each 0..255 (CONSTANT_Package and the Header component carry them as u1, JCVM §6.4). */
function parseVersion(text: string): [number, number] {
  const m = /^(\d{1,3})\.(\d{1,3})$/.exec(text);
  if (!m || Number(m[1]) > 255 || Number(m[2]) > 255) throw new UsageError(`--version "${text}" is not MAJOR.MINOR (each 0 to 255)`);
  return [Number(m[1]), Number(m[2])];
}

function parseApplet(text: string): { className: string; aid: Uint8Array } {
  const eq = text.indexOf('=');
  if (eq <= 0) throw new UsageError(`--applet "${text}" is not CLASS=AID`);
  const className = text.slice(0, eq);
  if (!JAVA_NAME.test(className)) throw new UsageError(`--applet "${text}": "${className}" is not a Java class name`);
  return { className, aid: fromHex(parseAid(`--applet ${className} AID`, text.slice(eq + 1))) };
}

/** The package's class files: DIR/<name as path>/*.class (subpackages are packages of their own). */
function readPackageClasses(classDir: string, pkg: string): { dir: string; classes: ClassFile[] } {
  if (!existsSync(classDir) || !statSync(classDir).isDirectory()) throw new PlainError(`${classDir}: class directory does not exist`);
  const dir = join(classDir, ...pkg.split('.'));
  if (!existsSync(dir) || !statSync(dir).isDirectory()) throw new PlainError(`${dir}: no directory for package ${pkg} in ${classDir}`);
  const files = readdirSync(dir).filter((f) => f.endsWith('.class')).sort();
  if (!files.length) throw new PlainError(`${dir}: no class files for package ${pkg}`);
  const classes = files.map((f) => {
    const path = join(dir, f);
    try {
      return readClassFile(readFileSync(path), path);
    } catch (e) {
      if (e instanceof ClassFileError || (e instanceof Error && e.name === 'DescriptorError')) throw new PlainError(`${path}: ${e.message}`);
      throw e;
    }
  });
  return { dir, classes };
}

function expFiles(path: string): string[] {
  if (!existsSync(path)) throw new PlainError(`${path}: export path does not exist`);
  if (!statSync(path).isDirectory()) return [path];
  return readdirSync(path, { withFileTypes: true })
    .sort((a, b) => a.name.localeCompare(b.name))
    .flatMap((e) => (e.isDirectory() ? expFiles(join(path, e.name)) : e.name.endsWith('.exp') ? [join(path, e.name)] : []));
}

/** Export data of earlier packages: each --exportpath is an .exp file or a folder searched for them. */
function readExportPath(paths: string[], own: string): ExportedPackage[] {
  const libs: ExportedPackage[] = [];
  for (const file of paths.flatMap(expFiles)) {
    let lib: ExportedPackage;
    try {
      lib = readExportFile(readFileSync(file), file);
    } catch (e) {
      if (e instanceof ExportFileError) throw new PlainError(e.message);
      throw e;
    }
    // The package's own earlier export file, or one found twice, is not an import.
    if (lib.name === own || libs.some((l) => l.name === lib.name)) continue;
    if (apiPackages().some((p) => p.name === lib.name)) throw new PlainError(`${file}: package ${lib.name} is part of the Java Card API; its tokens come from the API table`);
    libs.push(lib);
  }
  return libs;
}

/** `file:line: error: Class.member: message`, the file being the source javac named in SourceFile. */
export function formatConvertDiagnostic(d: Diagnostic, classes: readonly ClassFile[], pkgDir: string): string {
  const cf = classes.find((c) => c.thisClass.replace(/\//g, '.') === d.class);
  const pkgPath = cf ? cf.thisClass.slice(0, cf.thisClass.lastIndexOf('/') + 1) : '';
  const file = cf ? (cf.sourceFile ? pkgPath + cf.sourceFile : cf.origin) : pkgDir;
  const simple = d.class.slice(d.class.lastIndexOf('.') + 1);
  const where = cf ? `${simple}${d.method ? `.${d.method}` : d.field ? `.${d.field}` : ''}` : d.class;
  return `${file}${d.line !== undefined ? `:${d.line}` : ''}: ${d.severity}: ${where}: ${d.message}`;
}

export function convertCommand(v: Values, io: Io): number {
  const classDir = str(v, 'classdir');
  const pkgName = str(v, 'package');
  const aidText = str(v, 'package-aid');
  const versionText = str(v, 'version');
  if (!classDir) throw new UsageError('--classdir DIR is required');
  if (!pkgName) throw new UsageError('--package NAME is required');
  if (!aidText) throw new UsageError('--package-aid AID is required');
  if (!versionText) throw new UsageError('--version MAJOR.MINOR is required');
  if (!JAVA_NAME.test(pkgName)) throw new UsageError(`--package "${pkgName}" is not a dotted Java package name`);
  const packageAid = fromHex(parseAid('--package-aid', aidText));
  const version = parseVersion(versionText);
  const applets = ((v.applet ?? []) as string[]).map(parseApplet);
  const formatText = str(v, 'format') ?? '2.1';
  if (formatText !== '2.1' && formatText !== '2.2') throw new UsageError(`--format "${formatText}" is not 2.1 or 2.2`);
  const format: [2, 1] | [2, 2] = formatText === '2.1' ? [2, 1] : [2, 2];
  const outDir = str(v, 'out') ?? '.';
  const jar = flag(v, 'jar');

  const exportPath = readExportPath((v.exportpath ?? []) as string[], pkgName);
  const { dir, classes } = readPackageClasses(classDir, pkgName);
  const started = performance.now();
  const r = convertPackage(classes, { packageAid, version, applets, exportPath, format });
  const ms = performance.now() - started;
  const pkgDir = relative(process.cwd(), dir) || dir;
  for (const d of r.diagnostics) io.err(formatConvertDiagnostic(d, classes, pkgDir));
  const errors = r.diagnostics.filter((d) => d.severity === 'error').length;
  if (!r.pkg || errors) {
    io.err(`${pkgName}: ${errors} error${errors === 1 ? '' : 's'}, no CAP file written`);
    return 1;
  }
  const pkg = r.pkg;
  const bytes = jar ? writeCapJar(pkg, pkgName) : writeLoadFileDataBlock(pkg);
  let cap;
  // What was written must read back as it will at "cap info" and LOAD: a failure here is a converter defect.
  try {
    cap = readCapFile(bytes);
    verifyCapPackage(parseCapPackage(cap));
  } catch (e) {
    throw new Error(`${pkgName}: the CAP written does not read back (a converter defect): ${(e as Error).message}`);
  }
  const last = pkgName.slice(pkgName.lastIndexOf('.') + 1);
  const capPath = join(outDir, `${last}.cap`);
  const expPath = join(outDir, `${last}.exp`);
  const exp = r.library ? writeExportFile(r.library, { version: format, library: applets.length === 0, packages: [...apiPackages(), ...exportPath] }) : undefined;
  try {
    mkdirSync(outDir, { recursive: true });
    writeFileSync(capPath, bytes);
    if (exp) writeFileSync(expPath, exp);
  } catch (e) {
    throw new Error(`cannot write to ${outDir}: ${(e as Error).message}`);
  }
  const nClasses = pkg.classes.filter((c) => c.kind === 'class').length;
  const nIfaces = pkg.classes.length - nClasses;
  const nMethods = pkg.descriptor ? pkg.descriptor.classes.reduce((n, c) => n + c.methods.length, 0) : classes.reduce((n, c) => n + c.methods.filter((m) => m.name !== '<clinit>').length, 0);
  const plural = (n: number, w: string, ws = `${w}s`) => `${n} ${n === 1 ? w : ws}`;
  io.out(`${capPath}: ${bytes.length} bytes (${jar ? 'JAR' : 'Load File Data Block'}, CAP ${formatText}), package ${hex(pkg.package.aid)} v${version[0]}.${version[1]} (${pkgName})`);
  io.out(
    `  ${plural(nClasses, 'class', 'classes')}${nIfaces ? `, ${plural(nIfaces, 'interface')}` : ''}, ${plural(nMethods, 'method')}, ` +
      `${pkg.applets.length ? `${plural(pkg.applets.length, 'applet')} ${pkg.applets.map((a) => hex(a.aid)).join(' ')}` : 'no applets'}, converted in ${ms.toFixed(0)} ms`,
  );
  const tags = [...cap.components.keys()].sort((a, b) => a - b);
  io.out(`  components (bytes): ${tags.map((t) => `${componentName(t)} ${cap.components.get(t)!.length}`).join(', ')}`);
  if (exp && r.library) io.out(`${expPath}: ${exp.length} bytes, export file ${formatText} (${plural(r.library.classes.length, 'exported class', 'exported classes')})`);
  return 0;
}
