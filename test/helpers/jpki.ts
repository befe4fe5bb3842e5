// Test helpers for the JPKI AP (applet/jpki): the CAP built once per process from source, test certificates issued with
// @peculiar/x509, and chips personalised through emulator/host/jpki-perso.ts under SCP03 — a card (installed under the
// ISD, keys imported, LOCKed) and a phone (installed under the JPKI APSD with its own keys, keys generated on chip,
// PINs set through the temporary-PIN flow). Without javac, JPKI_SKIP is true unless JPKI_REQUIRE_JDK=1.
import 'reflect-metadata';
import * as x509 from '@peculiar/x509';
import { spawnSync } from 'node:child_process';
import { createPublicKey, generateKeyPairSync, randomBytes, webcrypto } from 'node:crypto';
import type { KeyObject } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ROOT, apiClassesIn, buildSample, loadProductApplet } from '../../applet/build.ts';
import type { Chip } from '../../emulator/card.ts';
import type { ChipStore } from '../../emulator/store.ts';
import type { KeySet } from '../../emulator/scp03.ts';
import { Priv } from '../../emulator/gp/constants.ts';
import { connectGp } from '../../emulator/host/gp-client.ts';
import {
  JPKI_AID,
  JPKI_APSD_AID,
  JPKI_PACKAGE_AID,
  commitmentMatches,
  installParams,
  openJpkiPerso,
  revealTemporaryPin,
  unblockPin,
} from '../../emulator/host/jpki-perso.ts';
import { JpkiError } from '../../emulator/host/jpki-perso.ts';
import type { CertEf, JpkiPerso, KeyKind, Transmit } from '../../emulator/host/jpki-perso.ts';
import type { VmRuntime } from '../../emulator/vm/runtime.ts';
import { DEFAULT_KEYS } from './chip.ts';
import { loadAndInstall, vmChip } from './vm-chip.ts';

export const HAVE_JDK = spawnSync('javac', ['-version']).status === 0;
export const REQUIRE_JDK = process.env.JPKI_REQUIRE_JDK === '1';
/** True when the JPKI tests cannot run (no javac, and the JDK is not required). */
export const JPKI_SKIP = !HAVE_JDK && !REQUIRE_JDK;

export const JPKI_SAMPLE = loadProductApplet('jpki');
export const AUTH_PIN = '1234';
export const SIGN_PW = 'ABC123';
/** The JPKI APSD's own SCP03 keys (given with PUT KEY after creation). */
export const APSD_KEYS: KeySet = {
  enc: Uint8Array.from({ length: 16 }, (_, i) => 0xa0 + i),
  mac: Uint8Array.from({ length: 16 }, (_, i) => 0xb0 + i),
  dek: Uint8Array.from({ length: 16 }, (_, i) => 0xc0 + i),
};
export const CERT_EF_FID: Record<CertEf, string> = { sign: '0001', signCa: '0002', auth: '000A', authCa: '000B' };

let built: Uint8Array | undefined;

/** The JPKI AP's Load File Data Block, compiled and converted once per process (javac + applet/converter). */
export function jpkiBlock(): Uint8Array {
  if (built) return built;
  const work = mkdtempSync(join(tmpdir(), 'jpki-build-'));
  try {
    const api = apiClassesIn(work);
    const b = buildSample(JPKI_SAMPLE, new Map(), {
      apiClasses: api,
      classesRoot: join(work, 'classes'),
      capRoot: join(work, 'cap'),
      samplesDir: join(ROOT, 'applet'),
    });
    if (!b.ok || !b.block) throw new Error(`jpki build failed:\n${b.compile.output}\n${b.messages.join('\n')}`);
    built = b.block;
    return built;
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

/** The chip as an async transport (what jpki-perso and gp-client take). */
/** The status word a jpki-perso call fails with (9000 when it succeeds). */
export async function swOf(p: Promise<unknown>): Promise<number | undefined> {
  try {
    await p;
  } catch (e) {
    if (e instanceof JpkiError) return e.sw;
    throw e;
  }
  return 0x9000;
}

export const transmitOf = (chip: Chip): Transmit => async (apdu) => chip.transmit(apdu);

// ---------------------------------------------------------------------------------------------------------------
// Certificates

x509.cryptoProvider.set(webcrypto as unknown as Crypto);
const RSA_SHA256 = { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' } as const;

interface TestCa {
  name: string;
  key: CryptoKey;
  der: Uint8Array;
}
const cas = new Map<KeyKind, Promise<TestCa>>();

/** A JPKI-TEST-style CA per kind (RSA-2048, self-issued), made once per process. */
function testCa(kind: KeyKind): Promise<TestCa> {
  let ca = cas.get(kind);
  if (!ca) {
    ca = (async () => {
      const pair = generateKeyPairSync('rsa', { modulusLength: 2048 });
      const key = await webcrypto.subtle.importKey('pkcs8', pair.privateKey.export({ type: 'pkcs8', format: 'der' }), RSA_SHA256, false, ['sign']);
      const name = `C=JP, O=JPKI-TEST, OU=JPKI for ${kind === 'auth' ? 'user authentication' : 'digital signature'}`;
      const cert = await x509.X509CertificateGenerator.create({
        serialNumber: '01',
        subject: name,
        issuer: name,
        notBefore: new Date('2024-01-01T00:00:00Z'),
        notAfter: new Date('2034-01-01T00:00:00Z'),
        publicKey: pair.publicKey.export({ type: 'spki', format: 'der' }),
        signingKey: key,
        signingAlgorithm: RSA_SHA256,
        extensions: [new x509.BasicConstraintsExtension(true, undefined, true), new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true)],
      });
      return { name, key, der: new Uint8Array(cert.rawData) };
    })();
    cas.set(kind, ca);
  }
  return ca;
}

/** An RSA public key from its modulus and exponent (as GENERATE KEY PAIR returns them). */
export function rsaPublicKey(modulus: Uint8Array, exponent: Uint8Array): KeyObject {
  const b64u = (b: Uint8Array) => Buffer.from(b).toString('base64url');
  return createPublicKey({ key: { kty: 'RSA', n: b64u(modulus), e: b64u(exponent) }, format: 'jwk' });
}

/** The CA certificate of a kind (DER). */
export async function caCertificate(kind: KeyKind): Promise<Uint8Array> {
  return (await testCa(kind)).der;
}

/** An end-entity X.509 certificate for `publicKey`, issued by the test CA of its kind (DER, 30 82 LL LL). */
export async function issueCertificate(kind: KeyKind, publicKey: KeyObject, serial = randomBytes(4).toString('hex')): Promise<Uint8Array> {
  const ca = await testCa(kind);
  const usage = kind === 'auth' ? x509.KeyUsageFlags.digitalSignature : x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.nonRepudiation;
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: '01' + serial,
    subject: `C=JP, CN=JPKI-TEST ${kind} ${serial}`,
    issuer: ca.name,
    notBefore: new Date('2025-01-01T00:00:00Z'),
    notAfter: new Date('2030-01-01T00:00:00Z'),
    publicKey: publicKey.export({ type: 'spki', format: 'der' }),
    signingKey: ca.key,
    signingAlgorithm: RSA_SHA256,
    extensions: [new x509.KeyUsagesExtension(usage, true)],
  });
  return new Uint8Array(cert.rawData);
}

// ---------------------------------------------------------------------------------------------------------------
// Card profile

export interface CardKeys {
  auth: { privateKey: KeyObject; publicKey: KeyObject };
  sign: { privateKey: KeyObject; publicKey: KeyObject };
}
let cardKeys: CardKeys | undefined;

/** RSA-2048 key pairs for the card profile's IMPORT KEY COMPONENT, made once per process. */
export function testCardKeys(): CardKeys {
  cardKeys ??= {
    auth: generateKeyPairSync('rsa', { modulusLength: 2048 }),
    sign: generateKeyPairSync('rsa', { modulusLength: 2048 }),
  };
  return cardKeys;
}

export interface CardChipOptions {
  store?: ChipStore;
  /** LOCK at the end (default true). */
  lock?: boolean;
  keys?: CardKeys;
  /** Certificates per EF; default: X.509 certificates of `keys` and the test CAs. */
  certs?: Partial<Record<CertEf, Uint8Array>>;
  authPin?: string;
  signPin?: string;
}

export interface CardChip {
  chip: Chip;
  vm: VmRuntime;
  keys: CardKeys;
  certs: Record<CertEf, Uint8Array>;
  /** The personalisation session, open unless the card was LOCKed (then its commands answer 6D00). */
  perso: JpkiPerso;
}

/** Default certificates of a card: end-entity certificates of the keys, and the CA certificates. */
export async function cardCertificates(keys: CardKeys): Promise<Record<CertEf, Uint8Array>> {
  return {
    sign: await issueCertificate('sign', keys.sign.publicKey, 'c0000001'),
    signCa: await caCertificate('sign'),
    auth: await issueCertificate('auth', keys.auth.publicKey, 'c0000002'),
    authCa: await caCertificate('auth'),
  };
}

/**
 * A card: the JPKI package loaded and the AP installed through the ISD (no install parameters: card profile), then
 * personalised by the issuer under SCP03 with the ISD's keys: keys imported, four certificates, both PINs, LOCK.
 */
export async function cardChip(opts: CardChipOptions = {}): Promise<CardChip> {
  const { chip, vm } = vmChip(opts.store ? { store: opts.store } : {});
  await loadAndInstall(chip, JPKI_PACKAGE_AID, jpkiBlock(), JPKI_AID);
  const keys = opts.keys ?? testCardKeys();
  const certs = { ...(await cardCertificates(keys)), ...opts.certs };
  const perso = await openJpkiPerso(transmitOf(chip), { keys: DEFAULT_KEYS });
  await perso.importKey('auth', keys.auth.privateKey);
  await perso.importKey('sign', keys.sign.privateKey);
  for (const ef of ['sign', 'signCa', 'auth', 'authCa'] as const) await perso.writeCertificate(ef, certs[ef]);
  await perso.setPin('auth', opts.authPin ?? AUTH_PIN);
  await perso.setPin('sign', opts.signPin ?? SIGN_PW);
  if (opts.lock !== false) await perso.lock();
  return { chip, vm, keys, certs, perso };
}

// ---------------------------------------------------------------------------------------------------------------
// Phone profile

export interface PhoneInstallOptions {
  store?: ChipStore;
  /** SE identifier given at install (81 10 …); default: 16 fixed test bytes. */
  seId?: Uint8Array;
}

export interface PhoneChip {
  chip: Chip;
  vm: VmRuntime;
  seId: Uint8Array;
}

export const TEST_SE_ID = Uint8Array.from({ length: 16 }, (_, i) => 0x50 + i);

/**
 * A phone chip with the JPKI AP installed under the JPKI APSD: the ISD creates the APSD (Security Domain + Authorized
 * Management), the APSD gets its own keys (PUT KEY replacing the initial set), loads the package and installs the AP
 * with C9 = 80 01 01 81 10 <SE id>. Not personalised.
 */
export async function phoneInstalled(opts: PhoneInstallOptions = {}): Promise<PhoneChip> {
  const { chip, vm } = vmChip(opts.store ? { store: opts.store } : {});
  const seId = opts.seId ?? TEST_SE_ID;
  const transport = { transmit: transmitOf(chip) };
  const isd = await connectGp(transport);
  await isd.authenticate({ keys: DEFAULT_KEYS });
  await isd.createDomain({ aid: JPKI_APSD_AID, privileges: Priv.AUTHORIZED_MANAGEMENT, scpI: 0x70 });
  const first = await connectGp(transport, { sd: JPKI_APSD_AID });
  await first.authenticate({ keys: DEFAULT_KEYS });
  await first.putKey({ keys: APSD_KEYS, newKvn: 0x30, replaceKvn: 0x30 });
  const apsd = await connectGp(transport, { sd: JPKI_APSD_AID });
  await apsd.authenticate({ keys: APSD_KEYS, kvn: 0x30 });
  await apsd.load(jpkiBlock());
  await apsd.install({ elf: JPKI_PACKAGE_AID, module: JPKI_AID, aid: JPKI_AID, params: installParams('phone', seId) });
  return { chip, vm, seId };
}

export interface PersonalisedPhone extends PhoneChip {
  /** The public keys the chip generated, as node:crypto keys and raw parts. */
  publicKeys: Record<KeyKind, KeyObject>;
  certs: Record<CertEf, Uint8Array>;
  authPin: string;
  signPin: string;
}

/** The SP-TSM's part for one kind: commitment, key generation (R checked against S), certificate. */
export async function provisionKind(perso: JpkiPerso, kind: KeyKind): Promise<{ publicKey: KeyObject; cert: Uint8Array }> {
  const s = await perso.commit(kind);
  const { modulus, exponent, r } = await perso.generateKeyPair(kind);
  if (!commitmentMatches(s, r)) throw new Error(`${kind}: R does not hash to the commitment S`);
  const publicKey = rsaPublicKey(modulus, exponent);
  const cert = await issueCertificate(kind, publicKey);
  await perso.writeCertificate(kind, cert);
  return { publicKey, cert };
}

/**
 * A phone chip personalised as the SEI/SP-TSM and the app would: APSD session, keys generated on chip for both kinds,
 * end-entity and CA certificates written, temporary PINs set; then the app reveals them and sets the user PINs.
 */
export async function phoneChip(opts: PhoneInstallOptions & { authPin?: string; signPin?: string } = {}): Promise<PersonalisedPhone> {
  const phone = await phoneInstalled(opts);
  const transmit = transmitOf(phone.chip);
  const perso = await openJpkiPerso(transmit, { keys: APSD_KEYS });
  const auth = await provisionKind(perso, 'auth');
  const sign = await provisionKind(perso, 'sign');
  const certs: Record<CertEf, Uint8Array> = { sign: sign.cert, signCa: await caCertificate('sign'), auth: auth.cert, authCa: await caCertificate('auth') };
  await perso.writeCertificate('signCa', certs.signCa);
  await perso.writeCertificate('authCa', certs.authCa);
  await perso.setTemporaryPin('auth');
  await perso.setTemporaryPin('sign');
  const authPin = opts.authPin ?? AUTH_PIN;
  const signPin = opts.signPin ?? SIGN_PW;
  await unblockPin(transmit, 'auth', await revealTemporaryPin(transmit, 'auth'), authPin);
  await unblockPin(transmit, 'sign', await revealTemporaryPin(transmit, 'sign'), signPin);
  return { ...phone, publicKeys: { auth: auth.publicKey, sign: sign.publicKey }, certs, authPin, signPin };
}
