// jpki-se conformance run|check|list in-process through cli/run.ts: exit codes 0/1/2, the report files, check and
// list output, file:line:col errors, and one run through the real pcscd with the vpcd target (slot 35963, locked).
import { describe, it, expect, afterAll, beforeAll } from 'vitest';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadSmartcard } from '../emulator/transport/pcsc.ts';
import { listening } from './helpers/listening.ts';
import { acquireVpcdSlot } from './helpers/vpcd-slot.ts';
import { cli } from './helpers/cli.ts';

const dir = mkdtempSync(join(tmpdir(), 'jpki-cli-conf-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function write(name: string, text: string): string {
  const p = join(dir, name);
  mkdirSync(join(p, '..'), { recursive: true });
  writeFileSync(p, text);
  return p;
}

const GOOD = write(
  'suite/good.apdu',
  `suite Good
ref GPCS 2.3.1 §11
tags gp
default ISD = A000000151000000
> 00 A4 04 00 [\${ISD}] 00
< 6F * 9000

case CLI-01 CPLC
> 80 CA 9F 7F 00
< 9F 7F 2A XX{42} 9000

case CLI-02 SCP03 and GET STATUS
tags scp03
scp03 open key=\${KEY} level=03
> 80 F2 80 02 [4F 00] 00
< E3 * 9000

case CLI-03 optional and failing
optional
ref GPCS 2.3.1 §H.6
> 80 CA 9F 7F 00
< 6A88

case CLI-04 phone only
requires phone
> 80 CA 9F 7F 00
< * 9000
`,
);

const BAD_CASE = write(
  'bad-case.apdu',
  `suite Bad
ref GPCS 2.3.1 §11

case CLI-BAD-01 fails
> 80 CA 9F 7F 00
< 9F 7F 2B * 9000

case CLI-BAD-02 passes
> 80 CA 9F 7F 00
< 9F 7F * 9000
`,
);

const KEY = ['--var', 'KEY=404142434445464748494A4B4C4D4E4F'];

describe('conformance run', () => {
  it('exit 0 when every mandatory case passes (an optional failure and a skip allowed); JUnit and TAP written', async () => {
    const junit = join(dir, 'r.xml');
    const tapFile = join(dir, 'r.tap');
    const r = await cli('conformance', 'run', join(dir, 'suite'), '--target', 'emulator', ...KEY, '--junit', junit, '--tap', tapFile);
    expect(r.err).toEqual([]);
    expect(r.code).toBe(0);
    expect(r.out[0]).toMatch(/^PASS CLI-01 — CPLC \(/);
    expect(r.out[1]).toMatch(/^PASS CLI-02 — SCP03 and GET STATUS \(/);
    expect(r.out[2]).toMatch(/^FAIL CLI-03 — optional and failing \(.*\) \[optional\]$/);
    expect(r.out).toContain('SKIP CLI-04 — phone only: requires phone');
    expect(r.out[r.out.length - 1]).toMatch(/^4 cases: 2 passed, 1 failed \(0 mandatory\), 0 errors, 1 skipped in /);
    const xml = readFileSync(junit, 'utf8');
    expect(xml).toContain('<testsuite name="Good"');
    expect(xml).toContain('tests="4" failures="1" errors="0" skipped="1"');
    const t = readFileSync(tapFile, 'utf8').split('\n');
    expect(t.slice(0, 2)).toEqual(['TAP version 14', '1..4']);
    expect(t).toContain('not ok 3 - CLI-03 - optional and failing # TODO optional');
    expect(t).toContain('ok 4 - CLI-04 - phone only # SKIP requires phone');
  });

  it('exit 1 when a mandatory case fails; --quiet prints failures and the summary only; filters and profiles', async () => {
    const r = await cli('conformance', 'run', BAD_CASE, '--target', 'emulator', '--quiet');
    expect(r.code).toBe(1);
    expect(r.out[0]).toMatch(/^FAIL CLI-BAD-01 — fails \(/);
    expect(r.out[1]).toBe(`    ${BAD_CASE}:5:1: data byte 2 is 2A, expected 2B`);
    expect(r.out.filter((l) => /^(PASS|FAIL|SKIP|ERROR) /.test(l)).map((l) => l.split(' ')[1])).toEqual(['CLI-BAD-01']); // no PASS line
    expect(r.out[r.out.length - 1]).toMatch(/^2 cases: 1 passed, 1 failed \(1 mandatory\)/);

    const stop = await cli('conformance', 'run', BAD_CASE, '--target', 'emulator', '--stop-on-fail');
    expect(stop.code).toBe(1);
    expect(stop.out).toContain('SKIP CLI-BAD-02 — passes: not run: stopped after CLI-BAD-01 failed');

    const only = await cli('conformance', 'run', BAD_CASE, GOOD, '--target', 'emulator', '--id', 'CLI-BAD-0?', '--exclude-tag', 'x');
    expect(only.out.filter((l) => /^(PASS|FAIL|SKIP|ERROR) /.test(l)).map((l) => l.split(' ')[1])).toEqual(['CLI-BAD-01', 'CLI-BAD-02']);

    const phone = await cli('conformance', 'run', GOOD, '--target', 'emulator', ...KEY, '--tag', 'scp03', '--tag', 'nothing', '--profile', 'phone');
    expect(phone.code).toBe(0);
    expect(phone.out.filter((l) => /^(PASS|FAIL|SKIP) /.test(l))).toHaveLength(1);
    const withPhone = await cli('conformance', 'run', GOOD, '--target', 'emulator', ...KEY, '--profile', 'phone', '--id', 'CLI-04');
    expect(withPhone.out[0]).toMatch(/^PASS CLI-04 /);
  });

  it('exit 1 on an errored mandatory case (missing variable); --trace prints the wire', async () => {
    const r = await cli('conformance', 'run', GOOD, '--target', 'emulator', '--id', 'CLI-02', '--trace');
    expect(r.code).toBe(1);
    expect(r.out).toContain('case CLI-02 — SCP03 and GET STATUS');
    expect(r.out).toContain('  > 00A4040008A00000015100000000');
    expect(r.out.some((l) => /^ERROR CLI-02 /.test(l))).toBe(true);
    expect(r.out.some((l) => /good\.apdu:14:\d+: .*KEY/.test(l))).toBe(true);
  });

  it('emulator:FILE runs on a state file and changes it; a missing file is exit 1 with the fix', async () => {
    const state = join(dir, 'chip.img');
    expect((await cli('chip', 'new', '--state', state)).code).toBe(0);
    const before = readFileSync(state);
    const r = await cli('conformance', 'run', GOOD, '--target', `emulator:${state}`, ...KEY, '--id', 'CLI-02');
    expect(r.code).toBe(0);
    expect(readFileSync(state).equals(before)).toBe(false); // the SCP03 sequence counter moved
    const missing = await cli('conformance', 'run', GOOD, '--target', `emulator:${join(dir, 'none.img')}`);
    expect(missing.code).toBe(1);
    expect(missing.err[0]).toMatch(/none\.img does not exist \(create it with "jpki-se chip new/);
  });

  it('exit 2 on usage and script errors, before anything is sent', async () => {
    const bad = write('broken/x.apdu', 'suite X\nref R\n\ncase X-01 t\n> 80 CA 9F 7F 00\n< 9F 7F ZZ 9000\n');
    const r = await cli('conformance', 'run', bad, '--target', 'emulator');
    expect(r.code).toBe(2);
    expect(r.err[0]).toMatch(new RegExp(`^${bad.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}:6:\\d+: `));
    expect(r.out).toEqual([]);

    const usage = async (...args: string[]) => {
      const u = await cli('conformance', 'run', ...args);
      expect(u.code).toBe(2);
      return u.err.join('\n');
    };
    expect(await usage(GOOD)).toMatch(/missing --target/);
    expect(await usage(GOOD, '--target', 'floppy')).toMatch(/unknown target "floppy"/);
    expect(await usage(GOOD, '--target', 'emulator', '--stop-on-fail', '--continue')).toMatch(/not both/);
    expect(await usage(GOOD, '--target', 'emulator', '--var', 'PIN')).toMatch(/--var "PIN" is not NAME=EXPR/);
    expect(await usage(GOOD, '--target', 'emulator', '--var', 'PIN="12')).toMatch(/--var PIN: /);
    expect(await usage(GOOD, '--target', 'emulator', '--vpcd-port', '1234')).toMatch(/vpcd target only/);
    expect(await usage(GOOD, '--target', 'emulator', '--id', 'NOPE-*')).toMatch(/no case to run: the filters match none of the 4 cases in 1 file/);
    expect(await usage('--target', 'emulator')).toMatch(/missing script file or directory/);
    expect(await usage(join(dir, 'nowhere'), '--target', 'emulator')).toMatch(/nowhere: no such file or directory/);
  });
});

describe('conformance check and list', () => {
  it('check: "N files, M cases"; every broken file reported as file:line:col, exit 2', async () => {
    const ok = await cli('conformance', 'check', join(dir, 'suite'), BAD_CASE);
    expect(ok).toMatchObject({ code: 0, out: ['2 files, 6 cases'], err: [] });

    const one = write('many/a.apdu', 'suite A\nref R\ncase A-01 t\n> 80 CA\n< 9000 extra\n');
    const two = write('many/b.apdu', 'suite B\nref R\ncase B-01 t\nbogus statement\n');
    write('many/c.apdu', 'suite C\nref R\ncase C-01 first\n> 00 00 00 00\n');
    write('many/d.apdu', 'suite D\nref R\n\ncase C-01 duplicate id\n> 00 00 00 00\n');
    const r = await cli('conformance', 'check', join(dir, 'many'));
    expect(r.code).toBe(2);
    expect(r.err[0]).toMatch(new RegExp(`^${one.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}:5:\\d+: `));
    expect(r.err[1]).toBe(`${two}:4:1: unknown statement bogus (known: > < suite case ref tags mandatory optional requires option var default assert include power reset atr channel scp03 replay raw load verify-signature echo)`);
    expect(r.err[2]).toMatch(/d\.apdu:4:1: case id C-01 is already used at .*c\.apdu:3:1$/);
    expect(r.err[3]).toBe('3 errors');
  });

  it('list: id, mandatory/optional, tags, ref (and requires)', async () => {
    const r = await cli('conformance', 'list', GOOD);
    expect(r.code).toBe(0);
    expect(r.out).toEqual([
      'CLI-01  mandatory  gp        GPCS 2.3.1 §11',
      'CLI-02  mandatory  gp,scp03  GPCS 2.3.1 §11',
      'CLI-03  optional   gp        GPCS 2.3.1 §H.6',
      'CLI-04  mandatory  gp        GPCS 2.3.1 §11 (requires phone)',
      '1 file, 4 cases',
    ]);
  });

  it('help for each command', async () => {
    for (const sub of ['run', 'check', 'list']) {
      const r = await cli('conformance', sub, '--help');
      expect(r.code).toBe(0);
      expect(r.out[0]).toMatch(new RegExp(`^Usage: jpki-se conformance ${sub} `));
    }
    expect((await cli('conformance', '--help')).out[0]).toBe('Usage: jpki-se conformance run|check|list [options]');
  });
});

// ---------------------------------------------------------------------------------------------------------------
// The vpcd target: the chip in-process as a vicc, reached back through the real pcscd. Slot 35963, shared by lock.

const REQUIRE = process.env.JPKI_REQUIRE_PCSC === '1';
const PORT = 35963;
const scReason = await loadSmartcard().then(
  () => null,
  (e: Error) => e.message,
);
const vpcdReason = !listening(PORT) ? `nothing listens on TCP ${PORT}: pcscd with vsmartcard-vpcd is not running (bash .ci/pcscd.sh)` : scReason;
if (vpcdReason && !REQUIRE) console.warn(`conformance --target vpcd test skipped: ${vpcdReason} (JPKI_REQUIRE_PCSC=1 fails instead)`);

describe.runIf(!vpcdReason || REQUIRE)('conformance run --target vpcd', () => {
  let release: (() => void) | undefined;
  // The slot may be busy with a long run of another test file: the wait for the lock is bounded inside the hook's time,
  // so that a lock taken late is never left to an abandoned test.
  beforeAll(async () => {
    if (vpcdReason) throw new Error(`PC/SC is required but unavailable: ${vpcdReason}`);
    release = await acquireVpcdSlot(PORT, 600_000);
  }, 620_000);
  afterAll(() => release?.());

  it('runs the scripts through pcscd + vpcd (SCP03, channels, power cycle), saving the state file', async () => {
    const state = join(dir, 'vpcd.img');
    expect((await cli('chip', 'new', '--state', state)).code).toBe(0);
    const before = readFileSync(state);
    const extra = write(
      'vpcd/power.apdu',
      `suite vpcd extras
ref ISO 7816-4 §5.4.1

case VPCD-01 channel 1 and a power cycle
> 00 70 00 00 01
< 01 9000
channel 1
> 00 A4 04 00 [A000000151000000] 00
< 6F * 9000
power down
power up
atr 3B *
> 80 CA 9F 7F 00
< 9F 7F * 9000
`,
    );
    const junit = join(dir, 'vpcd.xml');
    const r = await cli('conformance', 'run', GOOD, extra, '--target', `vpcd:${state}`, '--vpcd-port', String(PORT), ...KEY, '--junit', junit);
    expect(r.err).toEqual([]);
    expect(r.out.filter((l) => /^(PASS|FAIL|SKIP|ERROR) /.test(l)).map((l) => l.split(' ').slice(0, 2).join(' '))).toEqual([
      'PASS CLI-01',
      'PASS CLI-02',
      'FAIL CLI-03',
      'SKIP CLI-04',
      'PASS VPCD-01',
    ]);
    expect(r.code).toBe(0);
    expect(readFileSync(junit, 'utf8')).toContain('Virtual PCD 00 00');
    expect(readFileSync(state).equals(before)).toBe(false); // the SCP03 session changed the chip, saved on close
  }, 60_000);
});
