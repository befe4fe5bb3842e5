// jpki-se chip new --personalise card|phone, in-process through the command tree: the state file, the test CA directory
// and the phone file it writes (with their modes), what "chip info" shows of the applets, the chip reopened from its
// file doing what a terminal or an app does (text AP read, signatures verified against the certificates on the chip,
// the ACE with the app certificate kept in the phone file, the APSD with the keys kept there), and the command line's
// refusals, each one precise and leaving no file behind. Without javac the tests are skipped unless JPKI_REQUIRE_JDK=1.
import 'reflect-metadata';
import * as x509 from '@peculiar/x509';
import { afterAll, describe, expect, it } from 'vitest';
import { X509Certificate as NodeCertificate, createHash, verify, webcrypto } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readPhoneFile } from '../emulator/personalise/phone-file.ts';
import { concat, fromHex, hex } from '../emulator/bytes.ts';
import { createAce, SecurityError } from '../emulator/device/ace.ts';
import { connectGp, DEFAULT_TEST_KEY, keySetFrom } from '../emulator/host/gp-client.ts';
import { JPKI_AID, JPKI_APSD_AID } from '../emulator/host/jpki-perso.ts';
import { readTextAp } from '../emulator/host/textap-perso.ts';
import { MYNUMBER_CARD_PROFILE, DEFAULT_PROFILE } from '../emulator/profile.ts';
import { testAppCertificate } from '../emulator/personalise/phone.ts';
import { loadTestCa } from '../emulator/personalise/test-ca.ts';
import { withCheckDigit } from '../emulator/personalise/citizen.ts';
import { openTarget } from '../emulator/transport/target.ts';
import type { Target } from '../emulator/transport/target.ts';
import { lv } from './helpers/vm-chip.ts';
import { JPKI_SKIP } from './helpers/jpki.ts';
import { cli } from './helpers/cli.ts';

if (JPKI_SKIP) console.warn('cli-personalise: javac not found on PATH, skipping (set JPKI_REQUIRE_JDK=1 to fail instead)');
x509.cryptoProvider.set(webcrypto as unknown as Crypto);

const dir = mkdtempSync(join(tmpdir(), 'jpki-cli-perso-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const ascii = (s: string): string => hex(new TextEncoder().encode(s));
const swOf = (r: Uint8Array): number => (r[r.length - 2] << 8) | r[r.length - 1];
const dataOf = (r: Uint8Array): Uint8Array => r.subarray(0, r.length - 2);
const mode = (path: string): number => statSync(path).mode & 0o777;
type Send = (apdu: string) => Promise<Uint8Array>;

/** The DER certificate at the start of an EF (30 82 LL LL), read in 256-byte steps. */
async function readCertificate(send: Send, fid: string): Promise<Uint8Array> {
  expect(swOf(await send('00A4020C02' + fid))).toBe(0x9000);
  const head = await send('00B0000004');
  expect(swOf(head)).toBe(0x9000);
  const size = 4 + ((head[2] << 8) | head[3]);
  const parts: Uint8Array[] = [];
  for (let off = 0; off < size; off += 256) {
    const r = await send('00B0' + off.toString(16).padStart(4, '0') + (Math.min(256, size - off) & 0xff).toString(16).padStart(2, '0'));
    expect(swOf(r)).toBe(0x9000);
    parts.push(dataOf(r));
  }
  return concat(...parts).subarray(0, size);
}

/** VERIFY the auth PIN, sign with the auth key (97), check the signature with the auth certificate on the chip. */
async function signWithAuthKey(send: Send, pin: string): Promise<Uint8Array> {
  expect(swOf(await send('00200098' + lv(ascii(pin))))).toBe(0x9000);
  const certificate = await readCertificate(send, '000A');
  const message = 'log in to a test service';
  const digestInfo = '3031300D060960864801650304020105000420' + createHash('sha256').update(message).digest('hex');
  const r = await send('802A0097' + lv(digestInfo) + '00');
  expect(swOf(r)).toBe(0x9000);
  const key = new NodeCertificate(Buffer.from(certificate)).publicKey;
  expect(verify('sha256', Buffer.from(message), key, dataOf(r))).toBe(true);
  expect(verify('sha256', Buffer.from('something else'), key, dataOf(r))).toBe(false);
  return certificate;
}

/** The chip in `state` reopened as the CLI's other commands open it; closed after `body`. */
async function reopened<T>(state: string, body: (t: Target) => Promise<T>): Promise<T> {
  const target = await openTarget(`state:${state}`);
  try {
    return await body(target);
  } finally {
    await target.close();
  }
}

const registryRow = (out: string[], aid: string) => out.find((l) => l.trim().split(/\s+/)[1] === aid);

describe.skipIf(JPKI_SKIP)('chip new --personalise card', () => {
  const state = join(dir, 'card.img');
  const myNumber = withCheckDigit('11122233344');

  it('issues a My Number Card into FILE from a new test CA in FILE.ca, and says what it made', async () => {
    const r = await cli(
      'chip', 'new', '--state', state, '--personalise', 'card', '--name', '山田 太郎', '--birth', '19900401', '--sex', '1',
      '--address', '大阪府大阪市北区中之島一丁目三番二十号', '--my-number', myNumber, '--auth-pin', '5678', '--sign-password', 'PASS99',
    );
    expect(r.err).toEqual([]);
    expect(r.code).toBe(0);
    expect(r.out.slice(0, 3)).toEqual([`created ${state}`, '  profile:  mynumber-card', `  ATR:      ${hex(MYNUMBER_CARD_PROFILE.atr)}`]);
    expect(r.out).toContain(`  test CA:  ${state}.ca (created; its private keys are mode 0600)`);
    expect(r.out).toContain('personalised as a My Number Card: JPKI AP D392F000260100000001 and text AP D3921000310001010408 under the ISD, both locked');
    expect(r.out).toContain(`  holder:   山田\u3000太郎 (born 19900401), my number ${myNumber}`);
    expect(r.out.find((l) => l.startsWith('  PINs:'))).toMatch(/^ {2}PINs: {5}auth 5678, sign PASS99, text AP 5678; 照合番号B 020401\d{4}0000$/);
    // The CA: a directory only its owner reads, private keys 0600; no phone file, no temporary file left.
    expect(mode(`${state}.ca`)).toBe(0o700);
    expect(mode(join(`${state}.ca`, 'sign-ca.key.pem'))).toBe(0o600);
    expect(mode(join(`${state}.ca`, 'auth-ca.key.pem'))).toBe(0o600);
    expect(existsSync(`${state}.phone.json`)).toBe(false);
    expect(readdirSync(dir).filter((f) => f.startsWith('card.img')).sort()).toEqual(['card.img', 'card.img.ca']);
  });

  it('chip info shows the JPKI AP and the text AP under the ISD', async () => {
    const r = await cli('chip', 'info', '--state', state);
    expect(r.code).toBe(0);
    expect(r.out).toContain('profile:  mynumber-card');
    expect(registryRow(r.out, JPKI_AID)).toMatch(/^ {2}APP +D392F000260100000001 +SELECTABLE +000000 +A000000151000000 +JPKI AP, from D392F00026010000, params 800100$/);
    expect(registryRow(r.out, 'D3921000310001010408')).toMatch(/A000000151000000 +text AP \(券面入力補助AP\), from D39210003100010104$/);
  });

  it('reopened from FILE: the text AP gives the holder, the auth key signs, its certificate chains to FILE.ca', async () => {
    const ca = await loadTestCa(`${state}.ca`);
    const cert = await reopened(state, async (t) => {
      expect(await readTextAp((a) => t.transmit(a), { pin: '5678' })).toEqual({
        myNumber,
        name: '山田\u3000太郎',
        address: '大阪府大阪市北区中之島一丁目三番二十号',
        birth: '19900401',
        sex: '1',
      });
      const send: Send = (a) => t.transmit(fromHex(a));
      expect(swOf(await send('00A4040C' + lv(JPKI_AID)))).toBe(0x9000);
      return signWithAuthKey(send, '5678');
    });
    expect(await new x509.X509Certificate(new Uint8Array(cert)).verify({ publicKey: ca.auth.cert.publicKey, date: new Date(Date.now() + 60_000) })).toBe(true);
  });
});

describe.skipIf(JPKI_SKIP)('chip new --personalise phone', () => {
  const state = join(dir, 'phone.img');
  const caDir = join(dir, 'shared.ca');
  const seId = '0123456789ABCDEF0123456789ABCDEF';
  let appCert: Uint8Array;

  it('provisions a phone with a given SE id and app certificate (PEM), keeping its keys in FILE.phone.json (0600)', async () => {
    appCert = await testAppCertificate('cli test app');
    const pem = join(dir, 'app.pem');
    writeFileSync(pem, x509.PemConverter.encode(new Uint8Array(appCert), 'CERTIFICATE'));
    const r = await cli('chip', 'new', '--state', state, '--personalise', 'phone', '--ca', caDir, '--se-id', seId, '--app-cert', pem, '--auth-pin', '2580');
    expect(r.err).toEqual([]);
    expect(r.code).toBe(0);
    expect(r.out[1]).toBe(`  profile:  ${DEFAULT_PROFILE.name}`);
    expect(r.out).toContain(`  test CA:  ${caDir} (created; its private keys are mode 0600)`);
    expect(r.out).toContain(`  SE id:    ${seId}`);
    expect(r.out).toContain(`  app:      SHA-256 of its signing certificate ${hex(createHash('sha256').update(appCert).digest())} (the only app the ARA-M rule lets in)`);
    expect(r.out).toContain('  PINs:     auth 2580, sign ABC123');
    const phoneFile = `${state}.phone.json`;
    expect(r.out.at(-1)).toBe(`  saved:    ${phoneFile} (mode 0600): SE id, APSD keys, app certificate, for the TSM and ACE tools`);
    expect(mode(phoneFile)).toBe(0o600);
    const kept = readPhoneFile(phoneFile);
    expect(hex(kept.seId)).toBe(seId);
    expect(hex(kept.appCertificate)).toBe(hex(appCert));
    expect(kept).toMatchObject({ apsdAid: JPKI_APSD_AID, apsdKvn: 0x30, jpkiAid: JPKI_AID });
    // The keys printed are the keys kept.
    expect(r.out.find((l) => l.startsWith('  APSD:'))).toBe(
      `  APSD:     ${JPKI_APSD_AID}, KVN 30: ENC ${hex(kept.apsdKeys.enc)} MAC ${hex(kept.apsdKeys.mac)} DEK ${hex(kept.apsdKeys.dek)}`,
    );
    expect(kept.certificateSizes.auth).toBeGreaterThan(1000);
  });

  it('chip info shows the JPKI APSD and the ARA-M under the ISD, the JPKI AP under the APSD', async () => {
    const r = await cli('chip', 'info', '--state', state);
    expect(r.code).toBe(0);
    expect(registryRow(r.out, JPKI_APSD_AID)).toMatch(/^ {2}SD +D392F000260200000001 +SELECTABLE +804000 +A000000151000000 +JPKI APSD, /);
    expect(registryRow(r.out, 'A00000015141434C00')).toMatch(/^ {2}APP +A00000015141434C00 +SELECTABLE +000000 +A000000151000000 +ARA-M, /);
    expect(registryRow(r.out, JPKI_AID)).toMatch(new RegExp(`D392F000260200000001 +JPKI AP, from D392F00026010000, params 8001018110${seId}$`));
    // Keys by KCV only: the APSD's own set, not the test key's KCV, and never a key value.
    const kept = readPhoneFile(`${state}.phone.json`);
    expect(r.out.join('\n')).not.toContain(hex(kept.apsdKeys.enc));
    expect(r.out.find((l) => l.startsWith(`  ${JPKI_APSD_AID}  30`))).not.toContain('504A77');
  });

  it('reopened from FILE: the app of the phone file signs through the ACE, another app is refused, the APSD opens with the kept keys', async () => {
    const kept = readPhoneFile(`${state}.phone.json`);
    const ca = await loadTestCa(caDir);
    const cert = await reopened(state, async (t) => {
      const ace = createAce((a) => t.transmit(a));
      await expect(ace.openLogicalChannel(fromHex(JPKI_AID), { certificates: [await testAppCertificate('not the app')] })).rejects.toBeInstanceOf(SecurityError);
      const ch = await ace.openLogicalChannel(fromHex(JPKI_AID), { certificates: [kept.appCertificate] });
      let c: Uint8Array;
      try {
        const send: Send = (a) => ch.transmit(fromHex(a));
        // On the phone the auth certificate is behind the auth PIN.
        expect(swOf(await send('00A4020C02000A'))).toBe(0x9000);
        expect(swOf(await send('00B0000004'))).toBe(0x6982);
        c = await signWithAuthKey(send, '2580');
      } finally {
        await ch.close();
      }
      const transport = { transmit: (a: Uint8Array) => t.transmit(a) };
      await expect((await connectGp(transport, { sd: JPKI_APSD_AID })).authenticate({ keys: keySetFrom(DEFAULT_TEST_KEY) })).rejects.toThrow(/cryptogram/);
      const apsd = await connectGp(transport, { sd: kept.apsdAid });
      await apsd.authenticate({ keys: kept.apsdKeys, kvn: kept.apsdKvn });
      expect((await apsd.list()).apps.map((a) => a.aid)).toContain(JPKI_AID);
      await apsd.end();
      return c;
    });
    expect(await new x509.X509Certificate(new Uint8Array(cert)).verify({ publicKey: ca.auth.cert.publicKey, date: new Date(Date.now() + 60_000) })).toBe(true);
  });

  it('reuses the CA in --ca DIR, and with --force replaces the chip (a card drops the phone file, a phone renews it)', async () => {
    const caCert = readFileSync(join(caDir, 'auth-ca.pem'), 'utf8');
    const refused = await cli('chip', 'new', '--state', state, '--personalise', 'card', '--ca', caDir);
    expect(refused).toMatchObject({ code: 1, err: [`jpki-se chip new: ${state} already exists (use --force to replace it)`] });
    expect(existsSync(`${state}.phone.json`)).toBe(true);

    const der = join(dir, 'app.der');
    writeFileSync(der, appCert);
    const before = readPhoneFile(`${state}.phone.json`);
    const phone = await cli('chip', 'new', '--state', state, '--personalise', 'phone', '--ca', caDir, '--app-cert', der, '--force');
    expect(phone.code).toBe(0);
    expect(phone.out).toContain(`  test CA:  ${caDir} (the one already there)`);
    const after = readPhoneFile(`${state}.phone.json`);
    expect(hex(after.appCertificate)).toBe(hex(appCert));
    expect(hex(after.seId)).not.toBe(hex(before.seId)); // a new random SE id, new keys
    expect(hex(after.apsdKeys.enc)).not.toBe(hex(before.apsdKeys.enc));
    expect(mode(`${state}.phone.json`)).toBe(0o600);

    const card = await cli('chip', 'new', '--state', state, '--personalise', 'card', '--ca', caDir, '--force');
    expect(card.code).toBe(0);
    expect(card.out.at(-1)).toBe(`removed ${state}.phone.json (the keys of the chip replaced)`);
    expect(existsSync(`${state}.phone.json`)).toBe(false);
    expect(readFileSync(join(caDir, 'auth-ca.pem'), 'utf8')).toBe(caCert);
    expect((await cli('chip', 'info', '--state', state)).out).toContain('profile:  mynumber-card');
    expect(readdirSync(dir).filter((f) => f.startsWith('phone.img')).sort()).toEqual(['phone.img']);
  });

  it('a phone file goes with the chip it belongs to: plain chip new --force drops it, and it is never overwritten without --force', async () => {
    const phoneFile = `${state}.phone.json`;
    writeFileSync(phoneFile, '{"format":"jpki-se-phone/1"}\n');
    const plain = await cli('chip', 'new', '--state', state, '--force');
    expect(plain.code).toBe(0);
    expect(plain.out.at(-1)).toBe(`removed ${phoneFile} (the keys of the chip replaced)`);
    expect(existsSync(phoneFile)).toBe(false);
    // A phone file without its chip (FILE deleted by hand) still holds keys: only --force replaces it.
    rmSync(state);
    writeFileSync(phoneFile, 'keep me');
    const refused = await cli('chip', 'new', '--state', state, '--personalise', 'phone', '--ca', caDir);
    expect(refused).toMatchObject({ code: 1, err: [`jpki-se chip new: ${phoneFile} already exists (use --force to replace it)`] });
    expect(readFileSync(phoneFile, 'utf8')).toBe('keep me');
    expect(existsSync(state)).toBe(false);
    rmSync(phoneFile);
  });
});

describe('chip new --personalise: refusals', () => {
  const state = join(dir, 'refused.img');
  const usage = (message: string) => [`jpki-se chip new: ${message} (see "jpki-se chip new --help")`];

  it('names the option and the problem, exit 2, writing nothing', async () => {
    const cases: [string[], string][] = [
      [['--personalise', 'tablet'], '--personalise "tablet" is not card or phone'],
      [['--auth-pin', '1234'], '--auth-pin needs --personalise card|phone'],
      [['--personalise', 'card', '--auth-pin', '12a4'], '--auth-pin "12a4" is not 4 digits'],
      [['--personalise', 'phone', '--auth-pin', '12345'], '--auth-pin "12345" is not 4 digits'],
      [['--personalise', 'card', '--sign-password', 'abc123'], '--sign-password "abc123" is not 6 to 16 characters of A-Z and 0-9'],
      [['--personalise', 'card', '--my-number', '123456789012'], '--my-number "123456789012" ends in 2, but its check digit is 8'],
      [['--personalise', 'card', '--my-number', '12345678901X'], '--my-number "12345678901X" is not 12 digits'],
      [['--personalise', 'card', '--birth', '19990231'], '--birth "19990231" is not a calendar date YYYYMMDD'],
      [['--personalise', 'card', '--birth', '1999-01-01'], '--birth "1999-01-01" is not a calendar date YYYYMMDD'],
      [['--personalise', 'card', '--sex', 'F'], '--sex "F" is not 1 (male), 2 (female) or 9 (not applicable)'],
      [['--personalise', 'card', '--name', ' '], '--name "" is empty'],
      [['--personalise', 'card', '--address', 'あ'.repeat(190)], `--address "${'あ'.repeat(20)}…" (190 characters) does not fit the text AP (the attributes need 624 bytes; EF 0002 holds 512)`],
      [['--personalise', 'phone', '--address', 'あ'.repeat(201)], `--address "${'あ'.repeat(20)}…" (201 characters) has 201 characters; the sign certificate holds at most 200`],
      [['--personalise', 'phone', '--se-id', '0011'], '--se-id has 2 bytes; an SE identifier has 16'],
      [['--personalise', 'phone', '--se-id', '00112233445566778899AABBCCDDEEGG'], '--se-id "00112233445566778899AABBCCDDEEGG": "G" at position 31 is not a hex digit'],
      [['--personalise', 'card', '--se-id', '00112233445566778899AABBCCDDEEFF'], '--se-id applies to --personalise phone only'],
      [['--personalise', 'card', '--app-cert', 'app.der'], '--app-cert applies to --personalise phone only'],
      [['--personalise', 'phone', '--my-number', withCheckDigit('12345678901')], '--my-number applies to --personalise card only (the phone has no text AP)'],
      [['--personalise', 'card', '--profile', 'nope'], 'unknown chip profile "nope" (known: jcop4-like, mynumber-card)'],
      [['--personalise'], 'option --personalise needs a value'],
    ];
    for (const [args, message] of cases) {
      const r = await cli('chip', 'new', '--state', state, ...args);
      expect({ args, code: r.code, err: r.err, out: r.out }).toEqual({ args, code: 2, err: usage(message), out: [] });
    }
    // The birth check is by the calendar in Japan today: a holder under 15 is refused.
    const young = await cli('chip', 'new', '--state', state, '--personalise', 'card', '--birth', `${new Date().getFullYear() - 10}0101`);
    expect(young.code).toBe(2);
    expect(young.err[0]).toMatch(/--birth "\d{8}" makes the holder (9|10) on \d{8}; JPKI sign certificates need 15 or older/);
    expect(existsSync(state)).toBe(false);
    expect(existsSync(`${state}.ca`)).toBe(false);
  });

  it.skipIf(JPKI_SKIP)('names an unreadable app certificate or an unusable CA directory, exit 1, writing no chip', async () => {
    const notCert = join(dir, 'not-a-cert.der');
    writeFileSync(notCert, 'hello');
    const missing = await cli('chip', 'new', '--state', state, '--personalise', 'phone', '--app-cert', join(dir, 'none.der'));
    expect(missing).toMatchObject({ code: 1, err: [`jpki-se chip new: --app-cert ${join(dir, 'none.der')} does not exist`] });
    const bad = await cli('chip', 'new', '--state', state, '--personalise', 'phone', '--app-cert', notCert);
    expect(bad.code).toBe(1);
    expect(bad.err[0]).toMatch(new RegExp(`^jpki-se chip new: --app-cert ${notCert} is not an X.509 certificate in DER or PEM \\(`));
    const busy = join(dir, 'busy');
    mkdirSync(busy);
    writeFileSync(join(busy, 'notes.txt'), 'mine');
    const notCa = await cli('chip', 'new', '--state', state, '--personalise', 'card', '--ca', busy);
    expect(notCa).toMatchObject({ code: 1, err: [`jpki-se chip new: --ca ${busy} holds no test CA (no test-ca.json) and is not empty; name a new directory`] });
    expect(readdirSync(busy)).toEqual(['notes.txt']);
    const file = await cli('chip', 'new', '--state', state, '--personalise', 'card', '--ca', notCert);
    expect(file).toMatchObject({ code: 1, err: [`jpki-se chip new: --ca ${notCert} is not a directory`] });
    expect(existsSync(state)).toBe(false);
    expect(existsSync(`${state}.ca`)).toBe(false);
  });

  it('documents the options in chip new --help', async () => {
    const r = await cli('chip', 'new', '--help');
    expect(r.code).toBe(0);
    const text = r.out.join('\n');
    for (const option of ['--personalise KIND', '--ca DIR', '--auth-pin PIN', '--sign-password PW', '--name NAME', '--birth YYYYMMDD', '--address TEXT', '--sex 1|2|9', '--my-number DIGITS', '--se-id HEX', '--app-cert FILE'])
      expect(text).toContain(`\n  ${option} `);
  });
});
