// A cross-process lock on one vpcd slot. Debian's vpcd has two slots (35963, 35964) and keeps its virtual cards in one
// array indexed by slot (ifd-vpcd.c: ctx[Lun & 0xffff]), so a second reader entry would share them; test files that
// run in parallel forks and need a slot take turns through a lock file instead.
import { closeSync, openSync, readFileSync, rmSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Waits until this process holds the slot's lock (a holder that died is cleared); returns the release function. */
export async function acquireVpcdSlot(port: number, timeoutMs = 120_000): Promise<() => void> {
  const file = join(tmpdir(), `jpki-se-vpcd-${port}.lock`);
  const t0 = Date.now();
  for (;;) {
    try {
      const fd = openSync(file, 'wx');
      writeSync(fd, String(process.pid));
      closeSync(fd);
      return () => rmSync(file, { force: true });
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
    }
    let holder = NaN;
    try {
      holder = Number.parseInt(readFileSync(file, 'utf8'), 10);
    } catch {
      continue; // released between our open and read
    }
    if (Number.isInteger(holder) && !alive(holder)) {
      rmSync(file, { force: true });
      continue;
    }
    if (Date.now() - t0 > timeoutMs) throw new Error(`vpcd slot ${port} is still held by process ${holder} after ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 100));
  }
}
