// Conversion time (issue 4): each Java Card sample is compiled once with javac (applet/build.ts compileSample, into a
// temporary folder), then its class files are converted to a CAP file N times: read the class files (readClassFile),
// convertPackage with the sample's AIDs and export path, and write the Load File Data Block. The median and range of
// the N timed runs are reported, after warm-up runs. bench/run.ts prints these rows; `tsx bench/convert.ts` alone too.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { apiClassesIn, compileSample, convertSample, loadSamples } from '../applet/build.ts';
import { readClassFile } from '../applet/converter/classfile.ts';
import type { AssembledLibrary } from '../emulator/vm/cap/asm.ts';
import { writeLoadFileDataBlock } from '../emulator/vm/cap/write.ts';

export const WARMUP = 5;
export const RUNS = 31;

export interface ConvertBenchResults {
  rows: [string, string, string][];
  /** Why there are no rows (no JDK), when there are none. */
  skipped?: string;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[s.length >> 1];
}

export function benchConvert(runs = RUNS, warmup = WARMUP): ConvertBenchResults {
  if (spawnSync('javac', ['-version']).status !== 0) return { rows: [], skipped: 'javac not found on PATH' };
  const work = mkdtempSync(join(tmpdir(), 'jpki-bench-convert-'));
  try {
    const api = apiClassesIn(work);
    const rows: [string, string, string][] = [];
    const libraries = new Map<string, AssembledLibrary>();
    for (const s of loadSamples()) {
      const c = compileSample(s, api, join(work, 'classes'));
      if (!c.ok) throw new Error(`javac failed for ${s.name}:\n${c.output}`);
      const dir = join(c.outDir, ...s.package.split('.'));
      const files = readdirSync(dir).filter((f) => f.endsWith('.class')).sort().map((f) => ({ f, bytes: new Uint8Array(readFileSync(join(dir, f))) }));
      const once = (): Uint8Array => {
        const classes = files.map(({ f, bytes }) => readClassFile(bytes, f));
        const r = convertSample(s, classes, libraries);
        if (!r.pkg) throw new Error(`conversion of ${s.name} failed: ${JSON.stringify(r.diagnostics)}`);
        if (r.library) libraries.set(s.name, r.library);
        return writeLoadFileDataBlock(r.pkg);
      };
      let size = 0;
      for (let i = 0; i < warmup; i++) size = once().length;
      const times: number[] = [];
      for (let i = 0; i < runs; i++) {
        const t0 = performance.now();
        once();
        times.push(performance.now() - t0);
      }
      const classBytes = files.reduce((n, x) => n + x.bytes.length, 0);
      rows.push([
        `convert ${s.name} (${files.length} class file${files.length > 1 ? 's' : ''}, ${classBytes} B → ${size} B CAP)`,
        `${median(times).toFixed(2)} ms (${Math.min(...times).toFixed(2)}–${Math.max(...times).toFixed(2)})`,
        'reported',
      ]);
    }
    return { rows };
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

export function printConvertBench(r: ConvertBenchResults): void {
  console.log('\n### Toolchain (issue 4)\n');
  if (r.skipped) {
    console.log(`Conversion benchmark skipped: ${r.skipped}.`);
    return;
  }
  console.log(`Median of ${RUNS} runs after ${WARMUP} warm-up runs (min–max in parentheses).\n`);
  console.log('| measurement | result | target |\n|---|---|---|');
  for (const [a, b, c] of r.rows) console.log(`| ${a} | ${b} | ${c} |`);
}

if (process.argv[1] && pathToFileURL(process.argv[1]).href === import.meta.url) printConvertBench(benchConvert());
