// Compiles the Java Card sample applets (applet/samples/<name>/src) with javac against the API stub classes
// (build/api-classes, made by `npm run build:api`), one javac run per sample, into build/classes/<name>/.
// The samples, their packages and AIDs are listed in applet/samples/samples.json; a sample that uses another one's
// Shareable interface (shop → wallet) compiles with that sample's classes on its class path, so samples build in
// dependency order. javac errors are reported as `file:line: message`, with paths relative to the repository.
//
//   npx tsx applet/build.ts [--api DIR] [--out DIR] [sample ...]     (npm run build:applets)
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, readdirSync, rmSync, mkdirSync } from 'node:fs';
import { dirname, join, resolve, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const HERE = dirname(fileURLToPath(import.meta.url));
export const ROOT = resolve(HERE, '..');
export const SAMPLES_DIR = join(HERE, 'samples');
export const DEFAULT_API_CLASSES = join(ROOT, 'build', 'api-classes');
export const DEFAULT_OUT = join(ROOT, 'build', 'classes');

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

function main(argv: string[]): number {
  let api = DEFAULT_API_CLASSES;
  let out = DEFAULT_OUT;
  const only: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--api') api = resolve(argv[++i] ?? '');
    else if (a === '--out') out = resolve(argv[++i] ?? '');
    else if (a.startsWith('-')) {
      console.error(`build: unknown option ${a} (usage: tsx applet/build.ts [--api DIR] [--out DIR] [sample ...])`);
      return 2;
    } else only.push(a);
  }
  if (!existsSync(join(api, 'javacard', 'framework', 'Applet.class'))) {
    console.error(`build: no API stub classes in ${api}: run \`npm run build:api\` first`);
    return 1;
  }
  let samples: Sample[];
  try {
    samples = loadSamples();
  } catch (e) {
    console.error(`build: ${(e as Error).message}`);
    return 1;
  }
  for (const name of only)
    if (!samples.some((s) => s.name === name)) {
      console.error(`build: no sample named ${name} (samples: ${samples.map((s) => s.name).join(', ')})`);
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

  let failed = 0;
  for (const s of samples.filter((x) => wanted.has(x.name))) {
    const started = performance.now();
    const r = compileSample(s, api, out);
    if (r.ok) {
      const ms = (performance.now() - started).toFixed(0);
      console.log(`build: ${s.name}: ${r.sources.length} source(s) → ${relative(ROOT, r.outDir)} (${ms} ms)`);
      for (const d of r.diagnostics) console.warn(`  ${d.file}:${d.line}: ${d.kind}: ${d.message}`);
      continue;
    }
    failed++;
    console.error(`build: ${s.name}: javac failed`);
    for (const d of r.diagnostics) console.error(`  ${d.file}:${d.line}: ${d.kind}: ${d.message}`);
    console.error(r.output.replace(/^/gm, '  | ').trimEnd());
    // Samples using a failed one cannot compile; stop here rather than report follow-on errors.
    break;
  }
  return failed ? 1 : 0;
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) process.exit(main(process.argv.slice(2)));
