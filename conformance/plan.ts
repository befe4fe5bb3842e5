// The project's own use of the suite: which scripts run against which emulated chip, with which profiles and
// variables. The suite test (test/conformance-suites.test.ts) and the bench (bench/conformance.ts) both follow it, so
// "the whole suite passes against the emulator" means exactly these runs.
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { hex } from '../emulator/bytes.ts';
import { openChip } from '../emulator/card.ts';
import { MYNUMBER_CARD_PROFILE } from '../emulator/profile.ts';
import { issueMyNumberCard } from '../emulator/personalise/mynumber-card.ts';
import { provisionPhone } from '../emulator/personalise/phone.ts';
import { createTestCa } from '../emulator/personalise/test-ca.ts';

export const SUITE_ROOT = dirname(fileURLToPath(import.meta.url));

/** One run of the suite: scripts, the chip state file they run against, --profile and --var. */
export interface PlannedRun {
  name: string;
  state: string;
  paths: string[];
  profiles: string[];
  vars: Map<string, Uint8Array>;
}

const suite = (...parts: string[]) => join(SUITE_ROOT, ...parts);

/** Makes the three chips in `dir` (a fresh GP-SE, a provisioned phone, an issued My Number Card) and the runs over them. */
export async function prepareSuiteRuns(dir: string): Promise<PlannedRun[]> {
  const fresh = join(dir, 'fresh.img');
  const phone = join(dir, 'phone.img');
  const card = join(dir, 'card.img');
  openChip({ state: fresh, fsync: false }).close();
  const ca = await createTestCa();

  const phoneChip = openChip({ state: phone, fsync: false });
  let apsd: Map<string, Uint8Array>;
  try {
    phoneChip.powerUp();
    const p = await provisionPhone({ transmit: async (a) => phoneChip.transmit(a) }, { ca });
    apsd = new Map([
      ['APSD_ENC', p.apsdKeys.enc],
      ['APSD_MAC', p.apsdKeys.mac],
      ['APSD_DEK', p.apsdKeys.dek],
      ['APSD_KVN', Uint8Array.of(p.apsdKvn)],
    ]);
  } finally {
    phoneChip.close();
  }

  const cardChip = openChip({ state: card, profile: MYNUMBER_CARD_PROFILE, fsync: false });
  try {
    cardChip.powerUp();
    await issueMyNumberCard({ transmit: async (a) => cardChip.transmit(a) }, { ca });
  } finally {
    cardChip.close();
  }

  const gp = [suite('gp'), suite('scp03')];
  return [
    { name: 'fresh GP-SE', state: fresh, paths: gp, profiles: ['gp-test-key'], vars: new Map() },
    // The phone's destructive cases put the PINs back (INITIALISE PIN + the app), so they run with the rest.
    { name: 'phone', state: phone, paths: [...gp, suite('aram'), suite('jpki')], profiles: ['phone', 'apsd-keys', 'gp-test-key', 'destructive'], vars: apsd },
    { name: 'My Number Card', state: card, paths: [...gp, suite('jpki')], profiles: ['card', 'gp-test-key'], vars: new Map() },
    // Blocks both PINs for good: last.
    { name: 'My Number Card, destructive', state: card, paths: [suite('jpki', 'destructive.apdu')], profiles: ['card', 'destructive'], vars: new Map() },
  ];
}

/** The --var form of a run's variables (for messages and the CLI line a user can rerun). */
export function varArgs(vars: Map<string, Uint8Array>): string[] {
  return [...vars].flatMap(([k, v]) => ['--var', `${k}=${hex(v)}`]);
}
