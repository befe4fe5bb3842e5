// Smoke test of bench/jpki.ts with tiny counts: the rows and cycle tables it produces have the expected structure
// (names, five APDUs of the login sequence, the charges that should dominate). Speed is never asserted here; the
// numbers live in BENCHMARKS.md. Without javac (and no fresh build/cap) it is skipped unless JPKI_REQUIRE_JDK=1.
import { describe, expect, it } from 'vitest';
import { benchJpki } from '../bench/jpki.ts';
import type { ApduCost } from '../bench/jpki.ts';
import { JPKI_SKIP } from './helpers/jpki.ts';

if (JPKI_SKIP) console.warn('bench-jpki: javac not found on PATH, skipping (set JPKI_REQUIRE_JDK=1 to fail instead)');

const sumOf = (cs: readonly ApduCost[], f: (c: ApduCost) => number) => cs.reduce((n, c) => n + f(c), 0);

describe.skipIf(JPKI_SKIP)('bench/jpki.ts', () => {
  it('measures a card and a phone and reports the login sequence and the personalisation path through the cycle model', async () => {
    const r = await benchJpki({ runs: 2, signs: 3, logins: 2, warmup: 1, issues: 1 });

    for (const t of [r.card, r.phone]) {
      expect(t.signPerSecond.values).toHaveLength(2);
      expect(t.loginPerSecond.values).toHaveLength(2);
      expect(t.signPerSecond.min).toBeLessThanOrEqual(t.signPerSecond.median);
      expect(t.signPerSecond.median).toBeLessThanOrEqual(t.signPerSecond.max);
      const labels = t.sequence.apdus.map((c) => c.label);
      expect(labels).toEqual(['SELECT AP', 'SELECT EF 0018 (auth PIN)', 'VERIFY auth PIN', 'SELECT EF 0017 (auth key)', 'COMPUTE DIGITAL SIGNATURE (auth)']);
      // SELECT AP after a reset runs the applet's select() and process(); the others only process().
      expect(t.sequence.apdus[0].phases).toEqual(['select', 'process']);
      expect(t.sequence.apdus.slice(1).map((c) => c.phases)).toEqual([['process'], ['process'], ['process'], ['process']]);
      const sign = t.sequence.apdus[4];
      expect(sign.charges.get('RSA-2048-CRT/sign')).toBeGreaterThan(0);
      expect(sign.report.ioBytes).toBe(5 + 51 + 1 + 256 + 2); // header, Lc, DigestInfo, Le; signature and SW
      // VERIFY decrements the try counter durably: it writes NVM; the SELECTs do not.
      expect(t.sequence.apdus[2].report.persistentBytesWritten).toBeGreaterThan(0);
      expect(t.sequence.apdus[1].report.persistentBytesWritten).toBe(0);
      expect(t.sequence.total.report.cycles).toBe(sumOf(t.sequence.apdus, (c) => c.report.cycles));
      expect(t.sequence.total.report.estimatedUs).toBeCloseTo(sumOf(t.sequence.apdus, (c) => c.report.estimatedUs), 6);
      // The breakdown accounts for every cycle of the APDU.
      for (const c of t.sequence.apdus) expect([...c.charges.values()].reduce((a, b) => a + b, 0)).toBe(c.report.cycles);
      // The RSA private operation is the largest single charge of the sequence.
      const top = [...t.sequence.total.charges.entries()].sort((a, b) => b[1] - a[1])[0][0];
      expect(top).toBe('RSA-2048-CRT/sign');
    }

    const keygens = r.phonePerso.filter((c) => c.label.startsWith('GENERATE KEY PAIR'));
    expect(keygens.map((c) => c.label)).toEqual(['GENERATE KEY PAIR (auth)', 'GENERATE KEY PAIR (sign)']);
    for (const k of keygens) expect(k.charges.get('RSA-2048-CRT/keygen')).toBeGreaterThan(0);
    const lastBlocks = r.phonePerso.filter((c) => /^WRITE CERTIFICATE .+ \(last\)$/.test(c.label)).map((c) => c.label.split(' block')[0]);
    expect(lastBlocks.sort()).toEqual(['WRITE CERTIFICATE auth', 'WRITE CERTIFICATE auth CA', 'WRITE CERTIFICATE sign', 'WRITE CERTIFICATE sign CA']);
    expect(r.cardPerso.filter((c) => c.label.startsWith('IMPORT KEY COMPONENT'))).toHaveLength(10);
    expect(r.cardPerso.some((c) => c.label.startsWith('GENERATE KEY PAIR'))).toBe(false);

    for (const s of [r.cardIssueMs, r.phoneProvisionMs, r.hostKeygenPairMs]) expect(s.values).toHaveLength(1);
    const names = r.rows.map((row) => row[0]);
    expect(names).toContain('JPKI card: COMPUTE DIGITAL SIGNATURE (auth, RSA-2048 CRT), in-process');
    expect(names).toContain('JPKI phone: OpenSC login+sign (5 APDUs), in-process');
    expect(names).toContain('JPKI phone: GENERATE KEY PAIR, estimated on J3R180');
    expect(names).toContain('issue a My Number Card (issueMyNumberCard, host wall time)');
    expect(names).toContain('provision a phone (provisionPhone, host wall time)');
    expect(r.tables).toContain('| **total** |');
    expect(r.tables).toContain('GENERATE KEY PAIR (auth)');
  });
});
