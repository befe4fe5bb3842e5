// OpenSC's own tools against the emulated My Number Card and the emulated phone, through the REAL pcscd and vsmartcard's
// vpcd: the chips are issued with the personalisation helpers (emulator/personalise: test CA, JPKI AP + text AP on the
// card, APSD + ARA-M + JPKI AP on the phone), then inserted into a vpcd slot. OpenSC's jpki driver (card-jpki.c,
// pkcs15-jpki.c) finds them by ATR or by SELECT of the JPKI AP; pkcs15-tool lists and reads the certificates,
// pkcs11-tool signs with each key after its PIN, and the signatures verify against the certificates (node:crypto).
// Needs pcscd + vsmartcard-vpcd + opensc (bash .ci/pcscd.sh) and a JDK for the applets; skipped when absent unless
// JPKI_REQUIRE_PCSC=1 / JPKI_REQUIRE_JDK=1 (CI sets both), which turn the skip into a failure.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFile, spawnSync } from 'node:child_process';
import { X509Certificate, verify } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openChip } from '../emulator/card.ts';
import type { Chip } from '../emulator/card.ts';
import { connectToVpcd } from '../emulator/transport/vicc.ts';
import type { ViccHandle } from '../emulator/transport/vicc.ts';
import { createTestCa } from '../emulator/personalise/test-ca.ts';
import type { TestCa } from '../emulator/personalise/test-ca.ts';
import { issueMyNumberCard } from '../emulator/personalise/mynumber-card.ts';
import { provisionPhone } from '../emulator/personalise/phone.ts';
import type { CertEf } from '../emulator/host/jpki-perso.ts';
import { listening } from './helpers/listening.ts';
import { acquireVpcdSlot } from './helpers/vpcd-slot.ts';

const REQUIRE = process.env.JPKI_REQUIRE_PCSC === '1' || process.env.JPKI_REQUIRE_JDK === '1';
// Slot 0 of the Debian vpcd configuration, shared with test/vm-samples.test.ts through a lock (helpers/vpcd-slot.ts).
const PORT = Number(process.env.JPKI_VPCD_OPENSC_PORT ?? 35963);
const READER = `Virtual PCD 00 ${String(PORT - 35963).padStart(2, '0')}`;
const MODULE = ['/usr/lib/x86_64-linux-gnu/opensc-pkcs11.so', '/usr/lib/aarch64-linux-gnu/opensc-pkcs11.so', '/usr/lib/opensc-pkcs11.so', '/usr/lib64/opensc-pkcs11.so'].find(existsSync);

function unavailable(): string | null {
  for (const tool of ['pkcs15-tool', 'pkcs11-tool', 'opensc-tool'])
    if (spawnSync(tool, ['--help']).error) return `${tool} is not installed (apt-get install opensc)`;
  if (!MODULE) return 'opensc-pkcs11.so was not found';
  if (spawnSync('javac', ['-version']).error) return 'javac is not installed (the applets are built from source)';
  if (!listening(PORT)) return `nothing listens on TCP ${PORT}: pcscd with vsmartcard-vpcd is not running (bash .ci/pcscd.sh)`;
  return null;
}
const reason = unavailable();
if (reason && !REQUIRE) console.warn(`opensc-jpki: skipped: ${reason} (JPKI_REQUIRE_PCSC=1 fails instead)`);

interface Run {
  code: number;
  out: string;
}

/** Runs a tool without blocking the event loop (this process is the card pcscd talks to); never rejects. */
function run(cmd: string, args: string[]): Promise<Run> {
  return new Promise((resolve) =>
    execFile(cmd, args, { timeout: 30_000 }, (err, stdout, stderr) => {
      const code = err ? (typeof err.code === 'number' ? err.code : 1) : 0;
      resolve({ code, out: `${stdout}${stderr}` });
    }),
  );
}

async function ok(cmd: string, args: string[]): Promise<string> {
  const r = await run(cmd, args);
  if (r.code !== 0) throw new Error(`${cmd} ${args.join(' ')} exited ${r.code}:\n${r.out}`);
  return r.out;
}

async function until(cond: () => Promise<boolean>, what: string, ms = 15_000): Promise<void> {
  const t0 = Date.now();
  for (;;) {
    if (await cond().catch(() => false)) return;
    if (Date.now() - t0 > ms) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

const cardPresent = async (): Promise<boolean> => {
  const row = (await run('opensc-tool', ['-l'])).out.split('\n').find((l) => l.endsWith(READER));
  return row !== undefined && /^\d+\s+Yes/.test(row);
};

/** The DER inside pkcs15-tool's PEM output. */
function pemDer(pem: string): Uint8Array {
  const m = /-----BEGIN CERTIFICATE-----([\s\S]*?)-----END CERTIFICATE-----/.exec(pem);
  if (!m) throw new Error(`no PEM certificate in:\n${pem}`);
  return new Uint8Array(Buffer.from(m[1].replace(/\s+/g, ''), 'base64'));
}

/** pkcs11-tool slot ids of our reader, by token label (one token per PIN in OpenSC's PKCS#15 emulation). */
async function slots(): Promise<{ auth: string; sign: string }> {
  const out = await ok('pkcs11-tool', ['--module', MODULE!, '-L']);
  const found: Record<string, string> = {};
  let current: string | undefined;
  for (const line of out.split('\n')) {
    const s = /^Slot \d+ \((0x[0-9a-f]+)\): (.*)$/.exec(line);
    if (s) current = s[2].trim() === READER ? s[1] : undefined;
    const t = /token label\s*:\s*(.*)$/.exec(line);
    if (t && current) found[t[1].trim()] = current;
  }
  const auth = found['JPKI (User Authentication PIN)'];
  const sign = found['JPKI (Digital Signature PIN)'];
  if (!auth || !sign) throw new Error(`no JPKI tokens in "${READER}" (pkcs11-tool -L):\n${out}`);
  return { auth, sign };
}

describe.runIf(!reason || REQUIRE)('OpenSC with the emulated JPKI through pcscd + vpcd', () => {
  let ca: TestCa;
  let work = '';
  let release: (() => void) | undefined;
  const data = new TextEncoder().encode('jpki-se: OpenSC signs this through pcscd\n');

  beforeAll(async () => {
    if (reason) throw new Error(`OpenSC through pcscd is required but unavailable: ${reason}`);
    ca = await createTestCa();
    work = mkdtempSync(join(tmpdir(), 'jpki-opensc-'));
    writeFileSync(join(work, 'data'), data);
    release = await acquireVpcdSlot(PORT, 600_000); // the conformance run through vpcd holds it for minutes
    if (await cardPresent()) throw new Error(`"${READER}" already holds a card: another vicc uses port ${PORT}`);
  }, 660_000);

  afterAll(() => {
    release?.();
    if (work) rmSync(work, { recursive: true, force: true });
  });

  /** Inserts a chip into the slot for the duration of a describe block. */
  function inserted(make: () => Promise<Chip>): void {
    let vicc: ViccHandle | undefined;
    beforeAll(async () => {
      const chip = await make();
      chip.powerDown();
      vicc = connectToVpcd(chip, { port: PORT, reconnect: false });
      await vicc.ready;
      await until(cardPresent, `pcscd to see the card in "${READER}"`);
    }, 120_000);
    afterAll(async () => {
      await vicc?.close();
      await until(async () => !(await cardPresent()), `"${READER}" to be empty`).catch(() => undefined);
    });
  }

  /** pkcs11-tool signs `data` with key id 01/02 after the PIN (RSA-2048 PKCS#1 v1.5 over SHA-256): the signature. */
  async function pkcs11Sign(slot: string, id: '01' | '02', pin: string): Promise<Buffer> {
    const sig = join(work, `sig-${id}`);
    rmSync(sig, { force: true });
    await ok('pkcs11-tool', ['--module', MODULE!, '--slot', slot, '--login', '--pin', pin, '--sign', '--id', id, '-m', 'SHA256-RSA-PKCS', '-i', join(work, 'data'), '-o', sig]);
    const signature = readFileSync(sig);
    expect(signature.length).toBe(256);
    return signature;
  }
  const verifies = (signature: Buffer, cert: Uint8Array): boolean => verify('sha256', data, new X509Certificate(cert).publicKey, signature);

  const readCert = (id: string, pin?: { auth: string; pin: string }): Promise<Run> =>
    run('pkcs15-tool', ['--reader', READER, ...(pin ? ['--verify-pin', '--auth-id', pin.auth, '--pin', pin.pin] : []), '--read-certificate', id]);

  describe('My Number Card (mynumber-card profile: the card ATR)', () => {
    let certs: Record<CertEf, Uint8Array>;
    inserted(async () => {
      const chip = openChip({ profile: 'mynumber-card' });
      certs = (await issueMyNumberCard({ transmit: async (a) => chip.transmit(a) }, { ca })).certificates;
      return chip;
    });

    it('pkcs15-tool lists the four certificates and both PINs with their try counters', async () => {
      const certsOut = await ok('pkcs15-tool', ['--reader', READER, '--list-certificates']);
      for (const label of ['User Authentication Certificate', 'Digital Signature Certificate', 'User Authentication Certificate CA', 'Digital Signature Certificate CA'])
        expect(certsOut).toContain(`[${label}]`);
      expect(certsOut).toMatch(/\[Digital Signature Certificate\]\s+Object Flags\s+: \[0x01\], private/);
      const pins = await ok('pkcs15-tool', ['--reader', READER, '--list-pins']);
      expect(pins).toMatch(/\[User Authentication PIN\][\s\S]*?Tries left\s+: 3/);
      expect(pins).toMatch(/\[Digital Signature PIN\][\s\S]*?Tries left\s+: 5/);
    });

    it('pkcs15-tool reads the free certificates, and the sign certificate only after the sign password', async () => {
      expect(pemDer((await readCert('01')).out)).toEqual(certs.auth);
      expect(pemDer((await readCert('03')).out)).toEqual(certs.authCa);
      expect(pemDer((await readCert('04')).out)).toEqual(certs.signCa);
      const locked = await readCert('02');
      expect(locked.out).not.toContain('BEGIN CERTIFICATE');
      expect(pemDer((await readCert('02', { auth: '02', pin: 'ABC123' })).out)).toEqual(certs.sign);
    });

    it('pkcs11-tool signs with the auth key after the PIN and with the sign key after the password; signatures verify', async () => {
      const s = await slots();
      const byAuth = await pkcs11Sign(s.auth, '01', '1234');
      expect(verifies(byAuth, certs.auth)).toBe(true);
      // …and not under the sign certificate: each token signs with its own key.
      expect(verifies(byAuth, certs.sign)).toBe(false);
      expect(verifies(await pkcs11Sign(s.sign, '02', 'ABC123'), certs.sign)).toBe(true);
    });

    it('a wrong PIN through pkcs11-tool costs a try (pkcs15-tool shows it) and the right one restores the counter', async () => {
      const s = await slots();
      const bad = await run('pkcs11-tool', ['--module', MODULE!, '--slot', s.auth, '--login', '--pin', '9999', '--sign', '--id', '01', '-m', 'SHA256-RSA-PKCS', '-i', join(work, 'data'), '-o', join(work, 'bad')]);
      expect(bad.code).not.toBe(0);
      expect(bad.out).toMatch(/CKR_PIN_INCORRECT/);
      expect(await ok('pkcs15-tool', ['--reader', READER, '--list-pins'])).toMatch(/\[User Authentication PIN\][\s\S]*?Tries left\s+: 2/);
      expect(verifies(await pkcs11Sign(s.auth, '01', '1234'), certs.auth)).toBe(true);
      expect(await ok('pkcs15-tool', ['--reader', READER, '--list-pins'])).toMatch(/\[User Authentication PIN\][\s\S]*?Tries left\s+: 3/);
    });
  });

  describe('phone (GP-SE: JPKI AP under its APSD, JPKIAPGPSETOKEN)', () => {
    let certs: Record<CertEf, Uint8Array>;
    inserted(async () => {
      const chip = openChip();
      certs = (await provisionPhone({ transmit: async (a) => chip.transmit(a) }, { ca })).certificates;
      return chip;
    });

    it('pkcs15-tool finds the JPKI AP by SELECT (no card ATR) and lists the certificates', async () => {
      const out = await ok('pkcs15-tool', ['--reader', READER, '--list-certificates']);
      expect(out.match(/X\.509 Certificate \[/g)?.length).toBe(4);
      const token = await ok('opensc-tool', ['-r', READER, '-c', 'default', '-s', '00A4040C0AD392F000260100000001', '-s', '00A4020C020006', '-s', '00B0000020']);
      expect(token).toContain('4A 50 4B 49 41 50 47 50 53 45 54 4F 4B 45 4E'); // "JPKIAPGPSETOKEN"
    });

    it('the auth certificate needs the auth PIN on the phone; with it pkcs15-tool reads it', async () => {
      const locked = await readCert('01');
      expect(locked.out).not.toContain('BEGIN CERTIFICATE');
      expect(pemDer((await readCert('01', { auth: '01', pin: '1234' })).out)).toEqual(certs.auth);
      expect(pemDer((await readCert('04')).out)).toEqual(certs.signCa);
    });

    it('pkcs11-tool signs with both keys generated in the SE; signatures verify against the issued certificates', async () => {
      const s = await slots();
      expect(verifies(await pkcs11Sign(s.auth, '01', '1234'), certs.auth)).toBe(true);
      expect(verifies(await pkcs11Sign(s.sign, '02', 'ABC123'), certs.sign)).toBe(true);
    });
  });
});
