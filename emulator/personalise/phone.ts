// Provisions the smartphone JPKI on a GP-SE chip, playing each party of the real flow in turn (docs/jpki-applet.md):
//  - the SE issuer (ISD): creates the JPKI APSD with Authorized Management and installs the ARA-M with the rule that
//    lets only the approved app reach the JPKI AP;
//  - the SEI-TSM (APSD): replaces the APSD's initial keys, loads the JPKI package and installs the AP (phone profile,
//    SE identifier in the install parameters);
//  - the SP-TSM (APSD session to the AP): per key kind the commitment S = H(R), the key pair generated in the SE (R
//    checked against S), the certificate the test CA issues for that public key, the CA certificates, temporary PINs;
//  - the app (through the Access Control Enforcer, with its signing certificate): reveals each temporary PIN once and
//    unblocks the PIN with it, setting the user's PIN.
import 'reflect-metadata';
import * as x509 from '@peculiar/x509';
import { createHash, randomBytes, webcrypto } from 'node:crypto';
import { fromHex, hex } from '../bytes.ts';
import { Priv } from '../gp/constants.ts';
import { connectGp, DEFAULT_TEST_KEY, keySetFrom } from '../host/gp-client.ts';
import type { ApduTransport, GpClient } from '../host/gp-client.ts';
import {
  JPKI_AID,
  JPKI_APSD_AID,
  JPKI_PACKAGE_AID,
  commitmentMatches,
  installParams,
  openJpkiPerso,
  revealTemporaryPin,
  unblockPin,
} from '../host/jpki-perso.ts';
import type { CertEf, KeyKind } from '../host/jpki-perso.ts';
import type { KeySet } from '../scp03.ts';
import { createAce } from '../device/ace.ts';
import { ARA_M_AID } from '../device/ace.ts';
import { checkPins, ensureLoaded } from './mynumber-card.ts';
import { TEST_CITIZEN, checkCitizen, holderOf } from './citizen.ts';
import type { Citizen } from './citizen.ts';
import { issueCertificate } from './test-ca.ts';
import type { TestCa } from './test-ca.ts';

x509.cryptoProvider.set(webcrypto as unknown as Crypto);

export const ARA_M_PACKAGE_AID = 'A00000015141434C';
/** Key version of the key set the SEI-TSM puts into the JPKI APSD (it replaces the initial set, also 30). */
export const APSD_KVN = 0x30;

export interface PhonePins {
  auth: string;
  sign: string;
}

export const TEST_PHONE_PINS: PhonePins = { auth: '1234', sign: 'ABC123' };

export interface PhoneOptions {
  ca: TestCa;
  citizen?: Citizen;
  pins?: PhonePins;
  /** The ISD's keys (SE issuer); default the GlobalPlatform test key. */
  issuerKeys?: KeySet;
  /** Keys the SEI-TSM puts into the JPKI APSD (APSD_KVN); default fresh random AES-128 keys. */
  apsdKeys?: KeySet;
  /** 16-byte SE identifier; default random. */
  seId?: Uint8Array;
  /** DER signing certificate of the approved JPKI app; default one made by testAppCertificate(). */
  appCertificate?: Uint8Array;
  now?: Date;
}

export interface ProvisionedPhone {
  seId: Uint8Array;
  apsdKeys: KeySet;
  apsdKvn: number;
  appCertificate: Uint8Array;
  citizen: Citizen;
  pins: PhonePins;
  certificates: Record<CertEf, Uint8Array>;
}

/** A self-signed app signing certificate (what Android hashes into the DeviceAppID of an ARA rule). */
export async function testAppCertificate(name = 'jpki-se test JPKI app'): Promise<Uint8Array> {
  const alg = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' };
  const keys = await webcrypto.subtle.generateKey(alg, true, ['sign', 'verify']);
  const now = Date.now();
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: hex(randomBytes(8)).replace(/^[89A-F]/, '1'),
    name: `CN=${name}, O=jpki-se test`,
    notBefore: new Date(now - 86_400_000),
    notAfter: new Date(now + 25 * 365 * 86_400_000),
    keys,
    signingAlgorithm: alg,
  });
  return new Uint8Array(cert.rawData);
}

/** BER-TLV with a definite length (short or 81/82 form). */
function tlv(tag: string, value: Uint8Array): Uint8Array {
  const n = value.length;
  const len = n < 0x80 ? [n] : n < 0x100 ? [0x81, n] : [0x82, n >> 8, n & 0xff];
  return Uint8Array.from([...fromHex(tag), ...len, ...value]);
}

/**
 * The ARA-M rule "this app (SHA-256 of its signing certificate) may send every APDU to `aid`", stored through the ISD
 * (INSTALL [for personalization] + STORE DATA Command-Store-REF-AR-DO, GP SEAC 1.1 / applet/aram/README.md).
 */
export async function storeAccessRule(isd: GpClient, aid: string, appCertificate: Uint8Array): Promise<void> {
  const hash = createHash('sha256').update(appCertificate).digest();
  const ref = tlv('E1', Uint8Array.from([...tlv('4F', fromHex(aid)), ...tlv('C1', hash)]));
  const ar = tlv('E3', Uint8Array.from([...tlv('D0', Uint8Array.of(0x01)), ...tlv('D1', Uint8Array.of(0x01))]));
  const store = tlv('F0', tlv('E2', Uint8Array.from([...ref, ...ar])));
  const aram = fromHex(hex(ARA_M_AID));
  const perso = Uint8Array.from([0x00, 0x00, aram.length, ...aram, 0x00, 0x00, 0x00]);
  await isd.command({ cla: 0x80, ins: 0xe6, p1: 0x20, p2: 0x00, data: perso, ne: 256 }, 'INSTALL [for personalization] of the ARA-M');
  await isd.command({ cla: 0x80, ins: 0xe2, p1: 0x90, p2: 0x00, data: store, ne: 256 }, 'STORE DATA (ARA-M rule)');
}

function randomKeys(): KeySet {
  return { enc: randomBytes(16), mac: randomBytes(16), dek: randomBytes(16) };
}

/** Provisions the smartphone JPKI on the GP-SE behind `transport` (fresh chip: ISD with the issuer's keys). */
export async function provisionPhone(transport: ApduTransport, opts: PhoneOptions): Promise<ProvisionedPhone> {
  const citizen = opts.citizen ?? TEST_CITIZEN;
  const pins = opts.pins ?? TEST_PHONE_PINS;
  const issuerKeys = opts.issuerKeys ?? keySetFrom(DEFAULT_TEST_KEY);
  const apsdKeys = opts.apsdKeys ?? randomKeys();
  const seId = opts.seId ?? new Uint8Array(randomBytes(16));
  const appCertificate = opts.appCertificate ?? (await testAppCertificate());
  const now = opts.now ?? new Date();
  // Checked before the first APDU: a bad input leaves the chip as it was.
  checkCitizen(citizen, { textAp: false, now });
  checkPins(pins);
  if (seId.length !== 16) throw new RangeError(`SE identifier of ${seId.length} bytes; 16 expected`);
  for (const [name, key] of Object.entries(apsdKeys))
    if (![16, 24, 32].includes(key.length)) throw new RangeError(`APSD ${name} key of ${key.length} bytes; an AES key has 16, 24 or 32`);

  // SE issuer: the APSD, the ARA-M and its rule.
  const isd = await connectGp(transport);
  await isd.authenticate({ keys: issuerKeys });
  await isd.createDomain({ aid: JPKI_APSD_AID, privileges: Priv.AUTHORIZED_MANAGEMENT, scpI: 0x70 });
  await ensureLoaded(isd, 'aram', ARA_M_PACKAGE_AID);
  await isd.install({ elf: ARA_M_PACKAGE_AID, module: hex(ARA_M_AID), aid: hex(ARA_M_AID) });
  await storeAccessRule(isd, JPKI_AID, appCertificate);
  await isd.end();

  // SEI-TSM: own keys into the APSD (replacing the initial test keys), then the JPKI AP under it.
  const first = await connectGp(transport, { sd: JPKI_APSD_AID });
  await first.authenticate({ keys: keySetFrom(DEFAULT_TEST_KEY) });
  await first.putKey({ keys: apsdKeys, newKvn: APSD_KVN, replaceKvn: 0x30 });
  const apsd = await connectGp(transport, { sd: JPKI_APSD_AID });
  await apsd.authenticate({ keys: apsdKeys, kvn: APSD_KVN });
  await ensureLoaded(apsd, 'jpki', JPKI_PACKAGE_AID);
  await apsd.install({ elf: JPKI_PACKAGE_AID, module: JPKI_AID, aid: JPKI_AID, params: installParams('phone', seId) });
  await apsd.end();

  // SP-TSM: keys generated in the SE, the commitment checked, certificates written, temporary PINs.
  const transmit = (a: Uint8Array) => transport.transmit(a);
  const perso = await openJpkiPerso(transmit, { keys: apsdKeys, kvn: APSD_KVN });
  const readId = await perso.seId();
  if (hex(readId) !== hex(seId)) throw new Error(`the JPKI AP reports SE identifier ${hex(readId)}, installed with ${hex(seId)}`);
  const certificates = {} as Record<CertEf, Uint8Array>;
  const holder = holderOf(citizen);
  for (const kind of ['auth', 'sign'] as const satisfies readonly KeyKind[]) {
    const s = await perso.commit(kind);
    const key = await perso.generateKeyPair(kind);
    if (!commitmentMatches(s, key.r)) throw new Error(`${kind} key: R does not hash to the commitment S the SE gave`);
    certificates[kind] = await issueCertificate(opts.ca, kind, key, holder, { profile: 'phone', notBefore: now });
    await perso.writeCertificate(kind, certificates[kind]);
  }
  certificates.signCa = opts.ca.sign.certificate;
  certificates.authCa = opts.ca.auth.certificate;
  await perso.writeCertificate('signCa', certificates.signCa);
  await perso.writeCertificate('authCa', certificates.authCa);
  await perso.setTemporaryPin('auth');
  await perso.setTemporaryPin('sign');

  // The TSM's session ends (ISD reselected on the basic channel): the AP is not multi-selectable.
  await (await connectGp(transport)).end();
  // The app: through the ACE, which lets it in only by the ARA-M rule stored above.
  const ace = createAce(transmit);
  const channel = await ace.openLogicalChannel(fromHex(JPKI_AID), { certificates: [appCertificate] });
  try {
    const app = (a: Uint8Array) => channel.transmit(a);
    for (const kind of ['auth', 'sign'] as const) {
      const temporary = await revealTemporaryPin(app, kind, { select: false });
      await unblockPin(app, kind, temporary, pins[kind], { select: false });
    }
  } finally {
    await channel.close();
  }
  return { seId, apsdKeys, apsdKvn: APSD_KVN, appCertificate, citizen, pins, certificates };
}

/** Summary lines of a provisioned phone, for the CLI. */
export function describePhone(p: ProvisionedPhone): string[] {
  const h = createHash('sha256').update(p.appCertificate).digest();
  return [
    `SE id:    ${hex(p.seId)}`,
    `APSD:     ${JPKI_APSD_AID}, KVN ${hex(Uint8Array.of(p.apsdKvn))}: ENC ${hex(p.apsdKeys.enc)} MAC ${hex(p.apsdKeys.mac)} DEK ${hex(p.apsdKeys.dek)}`,
    `app:      SHA-256 of its signing certificate ${hex(h)} (the only app the ARA-M rule lets in)`,
    `holder:   ${p.citizen.name} (born ${p.citizen.birth})`,
    `PINs:     auth ${p.pins.auth}, sign ${p.pins.sign}`,
    `certs:    sign ${p.certificates.sign.length} B, auth ${p.certificates.auth.length} B`,
  ];
}
