// Runs a worker script in a child process and kills it with SIGKILL at a random moment once it has started working.
import { spawn } from 'node:child_process';

export interface KilledRun {
  /** Everything the worker printed on stdout before it died. */
  out: string;
}

/**
 * Starts `node --import tsx worker ...args`, waits until `started(stdout)` holds, then kills it after 0..maxDelayMs
 * (`delay` picks the value, so a seeded PRNG makes runs repeatable). A worker that exits by itself is a test failure.
 */
export async function runAndKill(worker: string, args: string[], started: (out: string) => boolean, delay: () => number): Promise<KilledRun> {
  const child = spawn(process.execPath, ['--import', 'tsx', worker, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout.on('data', (d) => (out += d));
  child.stderr.on('data', (d) => (err += d));
  const closed = new Promise((res) => child.once('close', res));
  await new Promise<void>((resolve, reject) => {
    const check = setInterval(() => {
      if (started(out)) {
        clearInterval(check);
        setTimeout(() => {
          child.kill('SIGKILL');
          resolve();
        }, delay());
      }
    }, 2);
    child.on('exit', (code) => {
      clearInterval(check);
      if (code !== null) reject(new Error(`${worker} exited by itself (${code}): ${err}`));
    });
  });
  await closed;
  return { out };
}
