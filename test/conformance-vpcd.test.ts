// The conformance plan (conformance/plan.ts) through real pcscd + vsmartcard-vpcd: each chip served as a vicc on vpcd
// slot 1 (35964, locked: test/pcsc.test.ts uses it briefly; slot 0 belongs to the OpenSC and sample tests) and reached back through PC/SC (`--target vpcd:FILE`), as a vendor's reader would be. Same checks as the
// in-process run (test/conformance-suites.test.ts). About 3,700 APDUs: ≈10 s with delayed ACKs off on loopback
// (.ci/quickack.sh, as CI does), ≈4 minutes without (≈44 ms per APDU, BENCHMARKS.md); skipped without pcscd unless
// JPKI_REQUIRE_PCSC=1.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { prepareSuiteRuns } from '../conformance/plan.ts';
import type { PlannedRun } from '../conformance/plan.ts';
import { HAVE_XMLLINT, runPlanned } from './helpers/conformance-plan.ts';
import { JPKI_SKIP } from './helpers/jpki.ts';
import { listening } from './helpers/listening.ts';
import { acquireVpcdSlot } from './helpers/vpcd-slot.ts';

const REQUIRE = process.env.JPKI_REQUIRE_PCSC === '1';
const PORT = 35964;
const reason = JPKI_SKIP ? 'javac not found (the applets are built from source)' : !listening(PORT) ? `nothing listens on TCP ${PORT}: pcscd with vsmartcard-vpcd is not running (bash .ci/pcscd.sh)` : null;
if (reason && !REQUIRE) console.warn(`conformance-vpcd: skipped: ${reason} (JPKI_REQUIRE_PCSC=1 fails instead)`);

describe.skipIf(reason !== null && !REQUIRE)('conformance suites through pcscd + vpcd', () => {
  let dir: string;
  let runs: PlannedRun[];
  let release: (() => void) | undefined;
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'jpki-conf-vpcd-'));
    runs = await prepareSuiteRuns(dir);
    release = await acquireVpcdSlot(PORT, 600_000);
  }, 660_000);
  afterAll(() => {
    release?.();
    rmSync(dir, { recursive: true, force: true });
  });

  it('the whole plan passes through PC/SC as in-process', { timeout: 900_000 }, async () => {
    let apdus = 0;
    for (const run of runs) apdus += (await runPlanned(run, 'vpcd', HAVE_XMLLINT || REQUIRE, PORT)).apdus;
    expect(apdus).toBeGreaterThan(1000);
  });
});
