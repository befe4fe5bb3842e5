// An Oracle apdutool script (.scr with its .expected.out) replayed by the runner against the emulator: it passes
// as recorded, and an expected output changed in one byte or one status word fails that script with a diff.
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { runScripts } from '../conformance/runner.ts';
import { loadScripts } from '../conformance/script/parse.ts';
import { openConformanceTarget } from '../conformance/targets.ts';

const FIXTURE = join(import.meta.dirname, 'fixtures', 'apdutool');
const dir = mkdtempSync(join(tmpdir(), 'jpki-apdutool-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

async function runScr(expected: string) {
  const scr = join(dir, 'isd.scr');
  copyFileSync(join(FIXTURE, 'isd.scr'), scr);
  writeFileSync(`${scr}.expected.out`, expected);
  const target = await openConformanceTarget('emulator');
  try {
    return (await runScripts(loadScripts([scr]), target)).cases;
  } finally {
    await target.close();
  }
}

describe('apdutool scripts through the runner', () => {
  const recorded = readFileSync(join(FIXTURE, 'isd.scr.expected.out'), 'utf8');

  it('a .scr replays against a fresh chip and matches its recorded .expected.out', async () => {
    const cases = await runScr(recorded);
    expect(cases.map((c) => [c.id, c.outcome, c.message])).toEqual([['isd', 'pass', undefined]]);
    expect(cases[0].apdus.map((a) => a.response.length)).toEqual([107, 7, 2]);
  });

  it('one data byte or one status word changed in the expected output fails the script with a diff', async () => {
    const data = await runScr(recorded.replace('Le: 05, 42, 03, 42, 01, 8c', 'Le: 05, 42, 03, 42, 01, 8d'));
    expect(data[0].outcome).toBe('fail');
    expect(data[0].diff).toMatch(/^> 80 CA 00 42 00/);
    expect(data[0].diff).toMatch(/\^\^/);
    const sw = await runScr(recorded.replace('SW1: 6a, SW2: 88', 'SW1: 6a, SW2: 82'));
    expect(sw[0].outcome).toBe('fail');
    expect(sw[0].message).toMatch(/6A88/);
  });
});
