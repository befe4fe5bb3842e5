// The conformance suite's run time (issue 6): the project's plan (conformance/plan.ts: a fresh GP-SE, a provisioned
// phone, an issued My Number Card) in-process and through pcscd + vpcd. Per run: cases, APDUs on the wire, wall time,
// and the time per APDU. `npx tsx bench/conformance.ts [--runs N] [--no-vpcd]` prints it alone.
import { mkdtempSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { prepareSuiteRuns } from '../conformance/plan.ts';
import type { PlannedRun } from '../conformance/plan.ts';
import { runScripts } from '../conformance/runner.ts';
import { loadScripts } from '../conformance/script/parse.ts';
import { openConformanceTarget } from '../conformance/targets.ts';

export interface SuiteTiming {
  run: string;
  target: 'emulator' | 'vpcd';
  cases: number;
  passed: number;
  apdus: number;
  /** Wall time of each repetition, ms (open the target, run every case, close). */
  ms: number[];
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

async function timeRun(run: PlannedRun, kind: 'emulator' | 'vpcd'): Promise<{ ms: number; cases: number; passed: number; apdus: number }> {
  const files = loadScripts(run.paths);
  const t0 = performance.now();
  const target = await openConformanceTarget(`${kind}:${run.state}`);
  try {
    const r = await runScripts(files, target, { profiles: run.profiles, vars: run.vars });
    const ran = r.cases.filter((c) => c.outcome !== 'skip');
    return {
      ms: performance.now() - t0,
      cases: ran.length,
      passed: ran.filter((c) => c.outcome === 'pass').length,
      apdus: r.cases.reduce((n, c) => n + c.apdus.length, 0),
    };
  } finally {
    await target.close();
  }
}

/** Times the plan `runs` times in-process and (unless vpcd is false or unavailable) once through vpcd. */
export async function benchConformance(o: { runs?: number; vpcd?: boolean } = {}): Promise<{ rows: SuiteTiming[]; vpcdError?: string; load: number[][] }> {
  const dir = mkdtempSync(join(tmpdir(), 'jpki-bench-conf-'));
  const load = [loadavg()];
  const rows: SuiteTiming[] = [];
  let vpcdError: string | undefined;
  try {
    const kinds: ('emulator' | 'vpcd')[] = o.vpcd === false ? ['emulator'] : ['emulator', 'vpcd'];
    for (const kind of kinds) {
      // Fresh chips for each target kind: the card's destructive run blocks its PINs for good.
      const plan = await prepareSuiteRuns(mkdtempSync(join(dir, `${kind}-`)));
      const reps = kind === 'emulator' ? (o.runs ?? 5) : 1;
      for (const run of plan) {
        const row: SuiteTiming = { run: run.name, target: kind, cases: 0, passed: 0, apdus: 0, ms: [] };
        // The destructive run only once: a second run would meet blocked PINs.
        const n = run.name.includes('destructive') ? 1 : reps;
        try {
          for (let i = 0; i < n; i++) {
            const t = await timeRun(run, kind);
            Object.assign(row, { cases: t.cases, passed: t.passed, apdus: t.apdus });
            row.ms.push(t.ms);
          }
        } catch (e) {
          if (kind !== 'vpcd') throw e;
          vpcdError = e instanceof Error ? e.message.split('\n')[0] : String(e);
          break;
        }
        rows.push(row);
      }
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  load.push(loadavg());
  return { rows, vpcdError, load };
}

export function printConformanceBench(r: Awaited<ReturnType<typeof benchConformance>>): void {
  console.log('\n### Conformance suite (issue 6)\n');
  console.log(`Load average before ${r.load[0].map((x) => x.toFixed(2)).join(' / ')}, after ${r.load[1].map((x) => x.toFixed(2)).join(' / ')}\n`);
  console.log('| run | target | cases run (passed) | APDUs | wall time, median (min–max) | per APDU |\n|---|---|---|---|---|---|');
  for (const t of r.rows) {
    const m = median(t.ms);
    const range = t.ms.length > 1 ? ` (${Math.min(...t.ms).toFixed(0)}–${Math.max(...t.ms).toFixed(0)}, ${t.ms.length} runs)` : ' (1 run)';
    console.log(`| ${t.run} | ${t.target} | ${t.cases} (${t.passed}) | ${t.apdus} | ${m.toFixed(0)} ms${range} | ${(m / t.apdus).toFixed(2)} ms |`);
  }
  for (const kind of ['emulator', 'vpcd'] as const) {
    const rows = r.rows.filter((t) => t.target === kind);
    if (!rows.length) continue;
    const total = rows.reduce((n, t) => n + median(t.ms), 0);
    console.log(`| **whole plan** | ${kind} | ${rows.reduce((n, t) => n + t.cases, 0)} | ${rows.reduce((n, t) => n + t.apdus, 0)} | **${(total / 1000).toFixed(1)} s** | |`);
  }
  if (r.vpcdError) console.log(`\nvpcd not measured: ${r.vpcdError}`);
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const runsAt = process.argv.indexOf('--runs');
  const runs = runsAt > 0 ? Number(process.argv[runsAt + 1]) : undefined;
  printConformanceBench(await benchConformance({ runs, vpcd: !process.argv.includes('--no-vpcd') }));
}
