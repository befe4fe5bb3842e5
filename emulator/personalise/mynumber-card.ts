// Issues a My Number Card on a chip, as the card issuer does at the personalisation centre: through the ISD under SCP03
// it loads and installs the JPKI AP (card profile) and the 券面入力補助AP, imports the two RSA-2048 keys, writes the
// certificates the test CA issues for them and the CA certificates, sets the PINs, writes the text AP's data, and
// locks both applets. The private keys are made on the host here (the issuer's key generation) and dropped after
// the import: nothing returned holds them. Protocol: docs/jpki-applet.md, applet/textap/README.md.
import { generateKeyPairSync } from 'node:crypto';
import { connectGp } from '../host/gp-client.ts';
import type { ApduTransport, GpClient } from '../host/gp-client.ts';
import { JPKI_AID, JPKI_PACKAGE_AID, installParams, openJpkiPerso } from '../host/jpki-perso.ts';
import type { CertEf } from '../host/jpki-perso.ts';
import { TEXT_AP_AID, openTextApPerso, verificationB } from '../host/textap-perso.ts';
import type { KeySet } from '../scp03.ts';
import { DEFAULT_TEST_KEY, keySetFrom } from '../host/gp-client.ts';
import { appletBlock } from './caps.ts';
import { TEST_CITIZEN, attributesOf, checkCitizen, holderOf } from './citizen.ts';
import type { Citizen } from './citizen.ts';
import { issueCertificate } from './test-ca.ts';
import type { TestCa } from './test-ca.ts';

export const TEXT_AP_PACKAGE_AID = 'D39210003100010104';

export interface CardPins {
  /** 利用者証明用暗証番号: 4 digits. */
  auth: string;
  /** 署名用パスワード: 6–16 of [A-Z0-9]. */
  sign: string;
  /** 券面入力補助用暗証番号: 4 digits; default the auth PIN (the card's 統合 PIN choice). */
  text?: string;
}

export const TEST_CARD_PINS: CardPins = { auth: '1234', sign: 'ABC123' };

export interface CardOptions {
  ca: TestCa;
  citizen?: Citizen;
  pins?: CardPins;
  /** The ISD's SCP03 keys; default the GlobalPlatform test key. */
  issuerKeys?: KeySet;
  kvn?: number;
  /** 照合番号B's card-face parts besides the date of birth; default expiry year = issue year + 10, code 0000. */
  expiryYear?: string;
  securityCode?: string;
  /** LOCK both applets at the end (default true: a card as it leaves the issuer). */
  lock?: boolean;
  now?: Date;
}

export interface IssuedCard {
  citizen: Citizen;
  pins: Required<CardPins>;
  certificates: Record<CertEf, Uint8Array>;
  /** 照合番号B (DOB in era years ‖ expiry year ‖ security code). */
  verificationB: string;
}

export type PinName = 'auth' | 'sign' | 'text';

/** What is wrong with a PIN of that kind (read after the value), or undefined when the applets take it. */
export function pinProblem(kind: PinName, pin: string): string | undefined {
  if (typeof pin !== 'string') return 'is not a string';
  // docs/jpki-applet.md (SET PIN, RESET RETRY COUNTER) and applet/textap/README.md: the formats the applets check.
  if (kind === 'sign') return /^[A-Z0-9]{6,16}$/.test(pin) ? undefined : 'is not 6 to 16 characters of A-Z and 0-9';
  return /^[0-9]{4}$/.test(pin) ? undefined : 'is not 4 digits';
}

/** Throws a RangeError naming the first PIN the applets would refuse. */
export function checkPins(pins: Partial<Record<PinName, string>>): void {
  for (const kind of ['auth', 'sign', 'text'] as const) {
    const pin = pins[kind];
    const problem = pin === undefined ? undefined : pinProblem(kind, pin);
    if (problem) throw new RangeError(`${kind} PIN "${pin}" ${problem}`);
  }
}

/** Loads a product applet's package unless the card has it. */
export async function ensureLoaded(gp: GpClient, name: 'jpki' | 'aram' | 'textap', elf: string): Promise<void> {
  const { loadFiles } = await gp.list();
  if (!loadFiles.some((e) => e.aid === elf)) await gp.load(appletBlock(name));
}

/** Issues a My Number Card on the chip behind `transport` (its ISD must still have the issuer's keys). */
export async function issueMyNumberCard(transport: ApduTransport, opts: CardOptions): Promise<IssuedCard> {
  const citizen = opts.citizen ?? TEST_CITIZEN;
  const pins = { ...(opts.pins ?? TEST_CARD_PINS) };
  const text = pins.text ?? pins.auth;
  const keys = opts.issuerKeys ?? keySetFrom(DEFAULT_TEST_KEY);
  const now = opts.now ?? new Date();
  // Everything the card or the CA could refuse is checked before the first APDU: a bad input leaves the chip untouched.
  checkCitizen(citizen, { textAp: true, now });
  checkPins({ ...pins, text });
  const vb = verificationB(citizen.birth, opts.expiryYear ?? String(now.getUTCFullYear() + 10), opts.securityCode ?? '0000');

  const isd = await connectGp(transport);
  await isd.authenticate({ keys, kvn: opts.kvn });
  await ensureLoaded(isd, 'jpki', JPKI_PACKAGE_AID);
  await ensureLoaded(isd, 'textap', TEXT_AP_PACKAGE_AID);
  await isd.install({ elf: JPKI_PACKAGE_AID, module: JPKI_AID, aid: JPKI_AID, params: installParams('card') });
  await isd.install({ elf: TEXT_AP_PACKAGE_AID, module: TEXT_AP_AID, aid: TEXT_AP_AID });
  await isd.end();

  const transmit = (a: Uint8Array) => transport.transmit(a);
  const jpki = await openJpkiPerso(transmit, { keys, kvn: opts.kvn });
  const certificates = {} as Record<CertEf, Uint8Array>;
  const holder = holderOf(citizen);
  for (const kind of ['auth', 'sign'] as const) {
    const pair = generateKeyPairSync('rsa', { modulusLength: 2048 });
    await jpki.importKey(kind, pair.privateKey);
    certificates[kind] = await issueCertificate(opts.ca, kind, pair.publicKey, holder, { profile: 'card', notBefore: now });
    await jpki.writeCertificate(kind, certificates[kind]);
  }
  certificates.signCa = opts.ca.sign.certificate;
  certificates.authCa = opts.ca.auth.certificate;
  await jpki.writeCertificate('signCa', certificates.signCa);
  await jpki.writeCertificate('authCa', certificates.authCa);
  await jpki.setPin('auth', pins.auth);
  await jpki.setPin('sign', pins.sign);
  if (opts.lock !== false) await jpki.lock();

  const tap = await openTextApPerso(transmit, { keys, kvn: opts.kvn });
  await tap.writeMyNumber(citizen.myNumber);
  await tap.writeAttributes(attributesOf(citizen));
  await tap.setPin(text);
  await tap.setVerificationB(vb.slice(0, 6), vb.slice(6, 10), vb.slice(10));
  if (opts.lock !== false) await tap.lock();

  // Leave the ISD selected with no session, as a card fresh from the issuer (and PC/SC, which keeps power) expects.
  await (await connectGp(transport)).end();
  return { citizen, pins: { ...pins, text }, certificates, verificationB: vb };
}

/** Summary lines of an issued card, for the CLI. */
export function describeCard(c: IssuedCard): string[] {
  return [
    `holder:   ${c.citizen.name} (born ${c.citizen.birth}), my number ${c.citizen.myNumber}`,
    `PINs:     auth ${c.pins.auth}, sign ${c.pins.sign}, text AP ${c.pins.text}; 照合番号B ${c.verificationB}`,
    `certs:    sign ${c.certificates.sign.length} B, auth ${c.certificates.auth.length} B, CA ${c.certificates.signCa.length} B + ${c.certificates.authCa.length} B`,
  ];
}
