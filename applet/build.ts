// Compiles the Java Card sample applets (applet/samples/<name>/src) with javac against the API stub classes
// (build/api-classes, made by `npm run build:api`), one javac run per sample, into build/classes/<name>/, then converts
// each sample's class files (applet/converter/convert.ts) into build/cap/<name>.cap (the Load File Data Block GP LOAD
// takes) and build/cap/<name>.jar (the JAR form of JCVM §6.1.1).
// The product applets (applet/jpki, applet/aram, applet/textap: the JPKI AP, the ARA-M and the 券面入力補助AP) are built
// the same way after the samples, each described by applet/<name>/<name>.json in the samples.json entry format.
// The samples, their packages and AIDs are listed in applet/samples/samples.json; a sample that uses another one's
// Shareable interface (shop → wallet) compiles with that sample's classes on its class path, so samples build in
// dependency order, and the used sample's export data is on the converter's export path. javac and converter errors
// are reported as `file:line: message`, with paths relative to the repository.
//
//   npx tsx applet/build.ts [--api DIR] [--out DIR] [--cap DIR] [sample ...]     (npm run build:applets)
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, readdirSync, rmSync, mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { fromHex } from '../emulator/bytes.ts';
import type { AssembledLibrary } from '../emulator/vm/cap/asm.ts';
import { writeCapJar, writeLoadFileDataBlock } from '../emulator/vm/cap/write.ts';
import { readClassFile } from './converter/classfile.ts';
import type { ClassFile } from './converter/classfile.ts';
import { convertPackage } from './converter/convert.ts';
import type { ConvertResult, Diagnostic as ConvertDiagnostic } from './converter/convert.ts';

const HERE = dirname(fileURLToPath(import.meta.url));
export const ROOT = resolve(HERE, '..');
export const SAMPLES_DIR = join(HERE, 'samples');
/** Where the product applets' folders are (applet/<name>/<name>.json and applet/<name>/src). */
export const PRODUCT_DIR = HERE;
/** The product applets, in build order. */
export const PRODUCT_APPLETS = ['jpki', 'aram', 'textap'] as const;
export type ProductApplet = (typeof PRODUCT_APPLETS)[number];
export const DEFAULT_API_CLASSES = join(ROOT, 'build', 'api-classes');
export const DEFAULT_OUT = join(ROOT, 'build', 'classes');
export const DEFAULT_CAP_OUT = join(ROOT, 'build', 'cap');

export interface SampleApplet {
  class: string;
  aid: string;
}
export interface Sample {
  name: string;
  package: string;
  packageAid: string;
  version: string;
  applets: SampleApplet[];
  uses: string[];
}

/** The samples of applet/samples/samples.json, in dependency order (a sample after every sample it uses). */
export function loadSamples(): Sample[] {
  const json = JSON.parse(readFileSync(join(SAMPLES_DIR, 'samples.json'), 'utf8')) as { samples: Sample[] };
  const byName = new Map(json.samples.map((s) => [s.name, s]));
  const ordered: Sample[] = [];
  const visiting = new Set<string>();
  const visit = (s: Sample): void => {
    if (ordered.includes(s)) return;
    if (visiting.has(s.name)) throw new Error(`samples.json: dependency cycle through ${s.name}`);
    visiting.add(s.name);
    for (const u of s.uses) {
      const dep = byName.get(u);
      if (!dep) throw new Error(`samples.json: sample ${s.name} uses unknown sample ${u}`);
      visit(dep);
    }
    visiting.delete(s.name);
    ordered.push(s);
  };
  json.samples.forEach(visit);
  return ordered;
}

/** A product applet's description, applet/<name>/<name>.json. */
export function loadProductApplet(name: ProductApplet): Sample {
  const file = join(PRODUCT_DIR, name, `${name}.json`);
  const s = JSON.parse(readFileSync(file, 'utf8')) as Sample;
  if (s.name !== name) throw new Error(`${relative(ROOT, file)}: name is ${s.name}, expected ${name}`);
  return s;
}

/** The .java files under dir, sorted. */
export function javaSources(dir: string): string[] {
  const out: string[] = [];
  const walk = (d: string): void => {
    for (const e of readdirSync(d, { withFileTypes: true }).sort((a, b) => a.name.localeCompare(b.name))) {
      const p = join(d, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.name.endsWith('.java')) out.push(p);
    }
  };
  walk(dir);
  return out;
}

/** Compiles the API stubs (applet/api/src) into dir with the command of `npm run build:api`; throws with javac's output. */
export function compileApi(dir: string): string {
  const r = spawnSync('javac', ['-source', '8', '-target', '8', '-bootclasspath', '', '-Xlint:-options', '-encoding', 'UTF-8', '-d', dir,
    ...javaSources(join(ROOT, 'applet', 'api', 'src'))], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`javac of the API stubs failed:\n${r.stdout}${r.stderr}`);
  return dir;
}

/** The API stub classes: the repository's build when present, else compiled into work (never written into build/). */
export function apiClassesIn(work: string): string {
  if (existsSync(join(DEFAULT_API_CLASSES, 'javacard', 'framework', 'Applet.class'))) return DEFAULT_API_CLASSES;
  return compileApi(join(work, 'api-classes'));
}

/** The javac options of applet/api/README.md: Java 8 class files, the API stubs as the only platform classes. */
export function javacOptions(apiClasses: string, classPath: string[]): string[] {
  const opts = ['-source', '8', '-target', '8', '-bootclasspath', apiClasses, '-Xlint:-options', '-encoding', 'UTF-8', '-g'];
  if (classPath.length) opts.push('-classpath', classPath.join(process.platform === 'win32' ? ';' : ':'));
  return opts;
}

export interface Diagnostic {
  file: string;
  line: number;
  kind: 'error' | 'warning';
  message: string;
}

export interface CompileResult {
  sample: string;
  ok: boolean;
  outDir: string;
  sources: string[];
  diagnostics: Diagnostic[];
  /** javac's full output (stdout and stderr). */
  output: string;
}

/** Picks the `file:line: error: message` lines out of javac's output, with file relative to the repository. */
export function parseJavacOutput(output: string): Diagnostic[] {
  const diags: Diagnostic[] = [];
  for (const line of output.split(/\r?\n/)) {
    const m = /^(.+\.java):(\d+): (error|warning): (.*)$/.exec(line);
    if (m) diags.push({ file: relative(ROOT, resolve(m[1])), line: Number(m[2]), kind: m[3] as 'error' | 'warning', message: m[4] });
  }
  return diags;
}

/**
 * Compiles one sample (the sources under samplesDir/<name>/src) into outRoot/<name>/ (emptied first); the samples it
 * uses must already be compiled in outRoot.
 */
export function compileSample(
  sample: Sample,
  apiClasses = DEFAULT_API_CLASSES,
  outRoot = DEFAULT_OUT,
  samplesDir = SAMPLES_DIR,
): CompileResult {
  const outDir = join(outRoot, sample.name);
  const sources = javaSources(join(samplesDir, sample.name, 'src'));
  rmSync(outDir, { recursive: true, force: true });
  mkdirSync(outDir, { recursive: true });
  const args = [...javacOptions(apiClasses, sample.uses.map((u) => join(outRoot, u))), '-d', outDir, ...sources];
  const r = spawnSync('javac', args, { encoding: 'utf8', cwd: ROOT });
  if (r.error) {
    return { sample: sample.name, ok: false, outDir, sources, diagnostics: [], output: `cannot run javac: ${r.error.message}` };
  }
  const output = `${r.stdout ?? ''}${r.stderr ?? ''}`;
  return { sample: sample.name, ok: r.status === 0, outDir, sources, diagnostics: parseJavacOutput(output), output };
}

/** The class files of the sample's package in its javac output directory, sorted by file name. */
export function sampleClasses(sample: Sample, classesRoot = DEFAULT_OUT): ClassFile[] {
  const dir = join(classesRoot, sample.name, ...sample.package.split('.'));
  const files = existsSync(dir) ? readdirSync(dir).filter((f) => f.endsWith('.class')).sort() : [];
  return files.map((f) => readClassFile(readFileSync(join(dir, f)), relative(ROOT, join(dir, f))));
}

/** "1.0" → [1, 0]. */
export function parseVersion(v: string): [number, number] {
  const m = /^(\d{1,3})\.(\d{1,3})$/.exec(v);
  if (!m || Number(m[1]) > 255 || Number(m[2]) > 255) throw new Error(`version ${v} is not major.minor (0..255 each)`);
  return [Number(m[1]), Number(m[2])];
}

/**
 * Converts a sample's class files with its package and applet AIDs from samples.json; `libraries` holds the export
 * data of already converted samples (by name), and the ones the sample uses go on the export path in its `uses` order.
 */
export function convertSample(sample: Sample, classes: ClassFile[], libraries: ReadonlyMap<string, AssembledLibrary>): ConvertResult {
  const exportPath: AssembledLibrary[] = [];
  for (const u of sample.uses) {
    const lib = libraries.get(u);
    if (!lib) return { diagnostics: [{ severity: 'error', class: sample.package, message: `sample ${u} (used by ${sample.name}) exports nothing or was not converted first` }] };
    exportPath.push(lib);
  }
  return convertPackage(classes, {
    packageAid: fromHex(sample.packageAid),
    version: parseVersion(sample.version),
    applets: sample.applets.map((a) => ({ className: a.class, aid: fromHex(a.aid) })),
    exportPath,
  });
}

/**
 * A converter diagnostic as `file:line: severity: message`: the file is the class's SourceFile under the sample's
 * source folder (relative to the repository), the line its source line (none when unknown).
 */
export function formatConvertDiagnostic(d: ConvertDiagnostic, classes: readonly ClassFile[], srcRoot: string): string {
  const cls = classes.find((c) => c.thisClass.replace(/\//g, '.') === d.class);
  const pkgPath = d.class.includes('.') ? d.class.slice(0, d.class.lastIndexOf('.')).split('.') : [];
  const file = cls?.sourceFile ? relative(ROOT, join(srcRoot, ...pkgPath, cls.sourceFile)) : `${d.class.replace(/\./g, '/')}.class`;
  const where = d.method ? ` in ${d.method}` : d.field ? ` in field ${d.field}` : '';
  return `${file}${d.line !== undefined ? `:${d.line}` : ''}: ${d.severity}: ${d.message}${where}`;
}

export interface SampleBuild {
  sample: string;
  compile: CompileResult;
  /** Present when javac succeeded. */
  convert?: ConvertResult;
  /** The converter's diagnostics as `file:line: severity: message`. */
  messages: string[];
  /** The Load File Data Block (what build/cap/<name>.cap holds), when the conversion succeeded. */
  block?: Uint8Array;
  capPath?: string;
  jarPath?: string;
  ok: boolean;
}

export interface BuildOptions {
  apiClasses?: string;
  classesRoot?: string;
  capRoot?: string;
  samplesDir?: string;
}

/**
 * javac + conversion of one sample; writes capRoot/<name>.cap and capRoot/<name>.jar and records its export data in
 * `libraries` for the samples that use it.
 */
export function buildSample(sample: Sample, libraries: Map<string, AssembledLibrary>, opts: BuildOptions = {}): SampleBuild {
  const classesRoot = opts.classesRoot ?? DEFAULT_OUT;
  const capRoot = opts.capRoot ?? DEFAULT_CAP_OUT;
  const samplesDir = opts.samplesDir ?? SAMPLES_DIR;
  const compile = compileSample(sample, opts.apiClasses ?? DEFAULT_API_CLASSES, classesRoot, samplesDir);
  if (!compile.ok) return { sample: sample.name, compile, messages: [], ok: false };
  let classes: ClassFile[];
  try {
    classes = sampleClasses(sample, classesRoot);
  } catch (e) {
    return { sample: sample.name, compile, messages: [`${(e as Error).message}`], ok: false };
  }
  const convert = convertSample(sample, classes, libraries);
  const messages = convert.diagnostics.map((d) => formatConvertDiagnostic(d, classes, join(samplesDir, sample.name, 'src')));
  if (!convert.pkg) return { sample: sample.name, compile, convert, messages, ok: false };
  if (convert.library) libraries.set(sample.name, convert.library);
  const block = writeLoadFileDataBlock(convert.pkg);
  mkdirSync(capRoot, { recursive: true });
  const capPath = join(capRoot, `${sample.name}.cap`);
  const jarPath = join(capRoot, `${sample.name}.jar`);
  writeFileSync(capPath, block);
  writeFileSync(jarPath, writeCapJar(convert.pkg, sample.package));
  return { sample: sample.name, compile, convert, messages, block, capPath, jarPath, ok: true };
}

/** Builds the given samples (default: all) in dependency order; stops at the first failure. */
export function buildSamples(samples: Sample[] = loadSamples(), opts: BuildOptions = {}): SampleBuild[] {
  const libraries = new Map<string, AssembledLibrary>();
  const out: SampleBuild[] = [];
  for (const s of samples) {
    const r = buildSample(s, libraries, opts);
    out.push(r);
    if (!r.ok) break;
  }
  return out;
}

function main(argv: string[]): number {
  let api = DEFAULT_API_CLASSES;
  let out = DEFAULT_OUT;
  let cap = DEFAULT_CAP_OUT;
  const only: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--api') api = resolve(argv[++i] ?? '');
    else if (a === '--out') out = resolve(argv[++i] ?? '');
    else if (a === '--cap') cap = resolve(argv[++i] ?? '');
    else if (a.startsWith('-')) {
      console.error(`build: unknown option ${a} (usage: tsx applet/build.ts [--api DIR] [--out DIR] [--cap DIR] [sample ...])`);
      return 2;
    } else only.push(a);
  }
  if (!existsSync(join(api, 'javacard', 'framework', 'Applet.class'))) {
    console.error(`build: no API stub classes in ${api}: run \`npm run build:api\` first`);
    return 1;
  }
  let samples: Sample[];
  const dirOf = new Map<string, string>();
  try {
    samples = loadSamples();
    samples.forEach((s) => dirOf.set(s.name, SAMPLES_DIR));
    for (const name of PRODUCT_APPLETS) {
      samples.push(loadProductApplet(name));
      dirOf.set(name, PRODUCT_DIR);
    }
  } catch (e) {
    console.error(`build: ${(e as Error).message}`);
    return 1;
  }
  for (const name of only)
    if (!samples.some((s) => s.name === name)) {
      console.error(`build: no sample or applet named ${name} (known: ${samples.map((s) => s.name).join(', ')})`);
      return 2;
    }
  // A selected sample needs the samples it uses compiled too.
  const wanted = new Set<string>();
  const want = (name: string): void => {
    if (wanted.has(name)) return;
    wanted.add(name);
    samples.find((s) => s.name === name)!.uses.forEach(want);
  };
  (only.length ? only : samples.map((s) => s.name)).forEach(want);

  const libraries = new Map<string, AssembledLibrary>();
  let failed = 0;
  for (const s of samples.filter((x) => wanted.has(x.name))) {
    const started = performance.now();
    const r = buildSample(s, libraries, { apiClasses: api, classesRoot: out, capRoot: cap, samplesDir: dirOf.get(s.name) });
    const c = r.compile;
    if (!c.ok) {
      failed++;
      console.error(`build: ${s.name}: javac failed`);
      for (const d of c.diagnostics) console.error(`  ${d.file}:${d.line}: ${d.kind}: ${d.message}`);
      console.error(c.output.replace(/^/gm, '  | ').trimEnd());
      // Samples using a failed one cannot compile; stop here rather than report follow-on errors.
      break;
    }
    for (const d of c.diagnostics) console.warn(`  ${d.file}:${d.line}: ${d.kind}: ${d.message}`);
    if (!r.ok) {
      failed++;
      console.error(`build: ${s.name}: conversion failed`);
      for (const m of r.messages) console.error(`  ${m}`);
      break;
    }
    const ms = (performance.now() - started).toFixed(0);
    console.log(
      `build: ${s.name}: ${c.sources.length} source(s) → ${relative(ROOT, c.outDir)} → ${relative(ROOT, r.capPath!)} ` +
        `(${r.block!.length} bytes) + ${relative(ROOT, r.jarPath!)} (${ms} ms)`,
    );
    for (const m of r.messages) console.warn(`  ${m}`);
  }
  return failed ? 1 : 0;
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) process.exit(main(process.argv.slice(2)));
