// The conformance suites (conformance/gp, scp03, aram, jpki) against the emulator in-process, as conformance/plan.ts
// lays them out: a fresh GP-SE, a provisioned phone, an issued My Number Card. Also: the suites can fail — a chip
// double that answers one command of one case wrongly makes exactly that case fail, with a diff pointing at the byte.
// The same plan through pcscd + vpcd: test/conformance-vpcd.test.ts.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hex } from '../emulator/bytes.ts';
import { prepareSuiteRuns, SUITE_ROOT } from '../conformance/plan.ts';
import type { PlannedRun } from '../conformance/plan.ts';
import { formatConsole } from '../conformance/report.ts';
import { runScripts } from '../conformance/runner.ts';
import { loadScripts } from '../conformance/script/parse.ts';
import { openConformanceTarget } from '../conformance/targets.ts';
import { HAVE_XMLLINT, KNOWN_OPTIONAL_FAILURES, runPlanned } from './helpers/conformance-plan.ts';
import { JPKI_SKIP } from './helpers/jpki.ts';

const REQUIRE_XMLLINT = process.env.JPKI_REQUIRE_PCSC === '1';
if (!HAVE_XMLLINT && !REQUIRE_XMLLINT) console.warn('conformance-suites: xmllint not found, JUnit not validated (apt-get install libxml2-utils)');
if (JPKI_SKIP) console.warn('conformance-suites: javac not found on PATH, skipping (set JPKI_REQUIRE_JDK=1 to fail instead)');

describe.skipIf(JPKI_SKIP)('conformance suites against the emulator in-process', () => {
  let dir: string;
  let runs: PlannedRun[];
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'jpki-conf-'));
    runs = await prepareSuiteRuns(dir);
  }, 60_000);
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('every script parses: unique case ids, each case with a ref, every suite present', () => {
    const files = loadScripts(['gp', 'scp03', 'aram', 'jpki'].map((s) => join(SUITE_ROOT, s)));
    const cases = files.flatMap((f) => f.cases);
    expect(new Set(cases.map((c) => c.id)).size).toBe(cases.length);
    for (const c of cases) expect(c.refs.length, c.id).toBeGreaterThan(0);
    const prefixes = new Set(cases.map((c) => c.id.split('-')[0]));
    expect([...prefixes].sort()).toEqual(['ARAM', 'GP', 'JPKI', 'SCP03']);
    expect(cases.length).toBeGreaterThan(200);
  });

  it('the whole plan passes: every mandatory case on every chip, optional failures only the documented ones; JUnit validates', { timeout: 120_000 }, async () => {
    const seen = new Set<string>();
    for (const run of runs) {
      const o = await runPlanned(run, 'emulator', HAVE_XMLLINT || REQUIRE_XMLLINT);
      for (const c of o.result.cases) if (c.outcome !== 'skip') seen.add(c.id);
    }
    // Every case of every suite ran on some chip (none is dead weight behind a profile nobody gives).
    const all = loadScripts(['gp', 'scp03', 'aram', 'jpki'].map((s) => join(SUITE_ROOT, s))).flatMap((f) => f.cases.map((c) => c.id));
    expect(all.filter((id) => !seen.has(id))).toEqual([]);
    expect(KNOWN_OPTIONAL_FAILURES.every((id) => seen.has(id))).toBe(true);
  });

  it('a chip that answers one command wrongly fails exactly the case that sent it, with a diff at the byte', { timeout: 60_000 }, async () => {
    const fresh = runs[0];
    const files = loadScripts([join(SUITE_ROOT, 'gp')]);
    // A clean run shows which commands only one mandatory case sends; the double corrupts the answer to one of them.
    let target = await openConformanceTarget(`emulator:${fresh.state}`);
    const clean = await runScripts(files, target, { profiles: fresh.profiles });
    await target.close();
    const senders = new Map<string, Set<string>>();
    for (const c of clean.cases) for (const a of c.apdus) senders.set(hex(a.command), (senders.get(hex(a.command)) ?? new Set()).add(c.id));
    const victim = clean.cases
      .filter((c) => c.mandatory && c.outcome === 'pass')
      .flatMap((c) => c.apdus.map((a) => ({ id: c.id, a })))
      .find(({ a }) => senders.get(hex(a.command))?.size === 1 && a.response.length > 8 && a.command[1] === 0xca);
    expect(victim, 'a GET DATA sent by one case only').toBeDefined();
    const { id, a } = victim!;
    const wanted = hex(a.command);

    target = await openConformanceTarget(`emulator:${fresh.state}`);
    const real = target.transmit.bind(target);
    target.transmit = async (apdu) => {
      const r = await real(apdu);
      if (hex(apdu) !== wanted) return r;
      const bad = r.slice();
      bad[0] ^= 0x01; // the first data byte (the tag): the SW stays 9000
      return bad;
    };
    const broken = await runScripts(files, target, { profiles: fresh.profiles });
    await target.close();
    const failed = broken.cases.filter((c) => c.outcome !== 'pass' && c.outcome !== 'skip' && !KNOWN_OPTIONAL_FAILURES.includes(c.id));
    expect(failed.map((c) => c.id)).toEqual([id]);
    const f = failed[0];
    expect(f.outcome).toBe('fail');
    const diff = f.diff!.split('\n');
    expect(diff[0].replace(/\s/g, '')).toBe('>' + wanted);
    // ^^ under the first received byte, the one the double changed.
    const received = diff.findIndex((l) => l.startsWith('< received:'));
    const col = diff[received].search(/[0-9A-F]{2}(?: |$)/);
    expect(diff[received + 1].indexOf('^^')).toBe(col);
    expect(diff[received].slice(col, col + 2)).toBe(hex(Uint8Array.of(a.response[0] ^ 0x01)));
    // The console report names the case and carries the diff.
    const lines = formatConsole(broken).join('\n');
    expect(lines).toContain(`FAIL ${id}`);
  });
});
