// The jpki-se command run in-process (cli/run.ts) with its output collected line by line.
import { run } from '../../cli/run.ts';
import type { Io } from '../../cli/io.ts';

export interface CliResult {
  code: number;
  out: string[];
  err: string[];
}

export async function cli(...argv: string[]): Promise<CliResult> {
  const out: string[] = [];
  const err: string[] = [];
  const io: Io = { out: (l) => out.push(...l.split('\n')), err: (l) => err.push(...l.split('\n')), stop: () => new Promise(() => {}), env: {} };
  const code = await run(argv, io);
  return { code, out, err };
}
