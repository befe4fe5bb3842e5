// jpki-se conformance run|check|list: the conformance suite's scripts (conformance/README.md) against a target.
// Exit codes: 0 every mandatory case passed, 1 a mandatory case failed or errored (or the target failed to open),
// 2 usage or script errors (then nothing was sent).
import { readdirSync, statSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { runScripts, duplicateIds, selected } from '../conformance/runner.ts';
import { formatCase, formatSummary, junitXml, tap } from '../conformance/report.ts';
import { TargetSpecError, checkTargetSpec, openConformanceTarget } from '../conformance/targets.ts';
import { loadScripts } from '../conformance/script/parse.ts';
import { evalExpr, parseExpr } from '../conformance/script/expr.ts';
import type { Vars } from '../conformance/script/expr.ts';
import { ScriptError } from '../conformance/types.ts';
import type { ScriptFile } from '../conformance/types.ts';
import type { Options, Values } from './args.ts';
import { UsageError, flag, parseInteger, str } from './args.ts';
import type { Io } from './io.ts';

export const CONFORMANCE_RUN_OPTIONS: Options = {
  target: { type: 'string' },
  tag: { type: 'string', multiple: true },
  'exclude-tag': { type: 'string', multiple: true },
  id: { type: 'string', multiple: true },
  profile: { type: 'string', multiple: true },
  var: { type: 'string', multiple: true },
  'stop-on-fail': { type: 'boolean' },
  continue: { type: 'boolean' },
  junit: { type: 'string' },
  tap: { type: 'string' },
  trace: { type: 'boolean' },
  quiet: { type: 'boolean', short: 'q' },
  verbose: { type: 'boolean', short: 'v' },
  'vpcd-port': { type: 'string' },
};

/** Every value of a repeatable string option, in order. */
function strings(v: Values, name: string): string[] {
  const x = v[name];
  if (x === undefined) return [];
  return (Array.isArray(x) ? x : [x]).filter((s): s is string => typeof s === 'string');
}

/** `NAME=EXPR` options, evaluated in order (a later one may use an earlier one); a bad one is a usage error. */
export function parseVars(texts: string[]): Vars {
  const vars: Vars = new Map();
  texts.forEach((t, i) => {
    const m = /^([A-Za-z_][A-Za-z0-9_]*)=(.*)$/s.exec(t);
    if (!m) throw new UsageError(`--var "${t}" is not NAME=EXPR (e.g. --var PIN='"1234"' or --var KEY=404142…)`);
    const pos = { file: `--var #${i + 1}`, line: 1, col: m[1].length + 2 };
    try {
      vars.set(m[1], evalExpr(parseExpr(m[2], pos, false), vars));
    } catch (e) {
      if (e instanceof ScriptError) throw new UsageError(`--var ${m[1]}: ${e.reason} (column ${e.pos.col})`);
      throw e;
    }
  });
  return vars;
}

/** Folders that hold `include` material, not scripts to run (as conformance/script/parse.ts walks them). */
const NOT_TOP_LEVEL = new Set(['include', 'common']);

/** The script files a path names: itself, or the .apdu and .scr files under a directory, in name order. */
function scriptFiles(path: string): string[] {
  let dir: boolean;
  try {
    dir = statSync(path).isDirectory();
  } catch {
    return [path]; // loadScripts words the error
  }
  if (!dir) return [path];
  const out: string[] = [];
  const walk = (d: string) => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      const p = join(d, e.name);
      if (e.isDirectory()) {
        if (!NOT_TOP_LEVEL.has(e.name)) walk(p);
      } else if (e.name.endsWith('.apdu') || e.name.endsWith('.scr')) out.push(p);
    }
  };
  walk(path);
  return out.sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
}

/**
 * Parses each script file on its own, so that one broken file does not hide the errors of the others (a file stops
 * at its first error); then the case ids must be unique across all of them. A file named twice runs once.
 */
function loadAll(paths: string[]): { files: ScriptFile[]; errors: string[] } {
  const files: ScriptFile[] = [];
  const errors: string[] = [];
  const seen = new Set<string>();
  for (const f of paths.flatMap(scriptFiles)) {
    if (seen.has(resolve(f))) continue;
    seen.add(resolve(f));
    try {
      files.push(...loadScripts([f]));
    } catch (e) {
      errors.push(e instanceof Error ? e.message : String(e));
    }
  }
  for (const e of duplicateIds(files)) errors.push(e.message);
  return { files, errors };
}

function loadOrReport(paths: string[], io: Io): ScriptFile[] | null {
  const { files, errors } = loadAll(paths);
  for (const e of errors) io.err(e);
  return errors.length ? null : files;
}

const caseCount = (files: ScriptFile[]) => files.reduce((n, f) => n + f.cases.length, 0);
const plural = (n: number, w: string) => `${n} ${w}${n === 1 ? '' : 's'}`;

export async function conformanceRun(v: Values, paths: string[], io: Io): Promise<number> {
  const spec = str(v, 'target');
  if (spec === undefined) throw new UsageError('missing --target (emulator, emulator:FILE, vpcd[:FILE], pcsc or pcsc:READER)');
  try {
    checkTargetSpec(spec);
  } catch (e) {
    if (e instanceof TargetSpecError) throw new UsageError(e.message);
    throw e;
  }
  if (flag(v, 'stop-on-fail') && flag(v, 'continue')) throw new UsageError('give either --stop-on-fail or --continue, not both');
  if (flag(v, 'quiet') && flag(v, 'verbose')) throw new UsageError('give either --quiet or --verbose, not both');
  const portText = str(v, 'vpcd-port');
  const vpcdPort = portText === undefined ? undefined : parseInteger('--vpcd-port', portText, 1, 65535);
  if (vpcdPort !== undefined && !spec.startsWith('vpcd')) throw new UsageError('--vpcd-port applies to the vpcd target only');
  const vars = parseVars(strings(v, 'var'));
  const filter = { tags: strings(v, 'tag'), excludeTags: strings(v, 'exclude-tag'), ids: strings(v, 'id') };

  const files = loadOrReport(paths, io);
  if (!files) return 2;
  const total = caseCount(files);
  const chosen = files.reduce((n, f) => n + f.cases.filter((c) => selected(c, filter)).length, 0);
  if (chosen === 0) {
    io.err(`jpki-se conformance run: no case to run: the filters match none of the ${plural(total, 'case')} in ${plural(files.length, 'file')}`);
    return 2;
  }

  const quiet = flag(v, 'quiet');
  const verbose = flag(v, 'verbose');
  const target = await openConformanceTarget(spec, { vpcdPort });
  let result;
  try {
    result = await runScripts(files, target, {
      vars,
      profiles: strings(v, 'profile'),
      filter,
      stopOnFail: flag(v, 'stop-on-fail'),
      trace: flag(v, 'trace') ? (line) => io.out(line) : undefined,
      onCase: (c) => {
        if (quiet && (c.outcome === 'pass' || c.outcome === 'skip')) return;
        for (const line of formatCase(c, { verbose })) io.out(line);
      },
    });
  } finally {
    await target.close();
  }
  const junit = str(v, 'junit');
  if (junit !== undefined) writeFileSync(junit, junitXml(result));
  const tapFile = str(v, 'tap');
  if (tapFile !== undefined) writeFileSync(tapFile, tap(result));
  io.out(formatSummary(result));
  return result.cases.some((c) => c.mandatory && (c.outcome === 'fail' || c.outcome === 'error')) ? 1 : 0;
}

export function conformanceCheck(_v: Values, paths: string[], io: Io): number {
  const { files, errors } = loadAll(paths);
  for (const e of errors) io.err(e);
  if (errors.length) {
    io.err(`${plural(errors.length, 'error')}`);
    return 2;
  }
  io.out(`${plural(files.length, 'file')}, ${plural(caseCount(files), 'case')}`);
  return 0;
}

export function conformanceList(_v: Values, paths: string[], io: Io): number {
  const files = loadOrReport(paths, io);
  if (!files) return 2;
  const rows = files.flatMap((f) =>
    f.cases.map((c) => [
      c.id,
      c.mandatory ? 'mandatory' : 'optional',
      c.tags.join(',') || '-',
      [c.refs.join('; '), ...(c.requires.length ? [`(requires ${c.requires.join(' ')})`] : [])].join(' '),
    ]),
  );
  const width = [0, 1, 2].map((i) => Math.max(0, ...rows.map((r) => r[i].length)));
  for (const r of rows) io.out(r.map((cell, i) => (i < 3 ? cell.padEnd(width[i]) : cell)).join('  ').trimEnd());
  io.out(`${plural(files.length, 'file')}, ${plural(rows.length, 'case')}`);
  return 0;
}
