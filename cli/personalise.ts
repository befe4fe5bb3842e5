// jpki-se chip new --personalise card|phone: a chip issued as a My Number Card (issueMyNumberCard) or provisioned as a
// phone's GP-SE (provisionPhone) from a test CA, in one command. Everything the command line can get wrong is checked
// before anything is written; the chip is made in a temporary file and renamed over FILE only once it is complete.
import 'reflect-metadata';
import * as x509 from '@peculiar/x509';
import { closeSync, existsSync, fsyncSync, mkdirSync, openSync, readFileSync, readdirSync, renameSync, rmSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { openChip } from '../emulator/card.ts';
import type { Chip } from '../emulator/card.ts';
import { ARA_M_AID } from '../emulator/device/ace.ts';
import { hex } from '../emulator/bytes.ts';
import { JPKI_AID, JPKI_APSD_AID } from '../emulator/host/jpki-perso.ts';
import { TEXT_AP_AID } from '../emulator/host/textap-perso.ts';
import { DEFAULT_PROFILE, MYNUMBER_CARD_PROFILE } from '../emulator/profile.ts';
import type { ChipProfile } from '../emulator/profile.ts';
import { appletBlock } from '../emulator/personalise/caps.ts';
import { TEST_CITIZEN, citizenProblem } from '../emulator/personalise/citizen.ts';
import type { Citizen, CitizenField } from '../emulator/personalise/citizen.ts';
import { TEST_CARD_PINS, describeCard, issueMyNumberCard, pinProblem } from '../emulator/personalise/mynumber-card.ts';
import { TEST_PHONE_PINS, describePhone, provisionPhone } from '../emulator/personalise/phone.ts';
import { createTestCa, loadTestCa, saveTestCa } from '../emulator/personalise/test-ca.ts';
import type { TestCa } from '../emulator/personalise/test-ca.ts';
import type { Sex } from '../emulator/host/textap-perso.ts';
import type { Values } from './args.ts';
import { UsageError, flag, parseHex, str } from './args.ts';
import { checkReplace, dropPhoneFile, newChipLines, phoneFileOf, profileOption, requireState } from './chip.ts';
import type { Io } from './io.ts';
import { writePhoneFile } from '../emulator/personalise/phone-file.ts';

type Kind = 'card' | 'phone';

/** Options of `chip new` that exist without --personalise. */
const PLAIN = ['state', 'profile', 'force', 'help', 'personalise'];
const CARD_ONLY = ['my-number'];
const PHONE_ONLY = ['se-id', 'app-cert'];
const OPTION_OF: Record<CitizenField, string> = { name: '--name', address: '--address', birth: '--birth', sex: '--sex', myNumber: '--my-number' };
/** The product applets each kind loads (their CAPs must exist or be buildable before anything is written). */
const APPLETS = { card: ['jpki', 'textap'], phone: ['jpki', 'aram'] } as const;

interface Plan {
  state: string;
  kind: Kind;
  profile: ChipProfile;
  force: boolean;
  caDir: string;
  citizen: Citizen;
  pins: { auth: string; sign: string };
  seId: Uint8Array | undefined;
  appCert: string | undefined;
}

/** A value for an error line: in quotes, a long one cut short with its length. */
function quoted(value: string): string {
  const chars = [...value];
  return chars.length <= 40 ? `"${value}"` : `"${chars.slice(0, 20).join('')}…" (${chars.length} characters)`;
}

/** The command line checked and turned into what to do; every problem is a UsageError naming its option. */
function planFrom(v: Values): Plan {
  const state = requireState(v);
  const given = Object.keys(v).filter((k) => v[k] !== undefined && !PLAIN.includes(k));
  const kindText = str(v, 'personalise');
  if (kindText === undefined) throw new UsageError(`--${given[0]} needs --personalise card|phone`);
  if (kindText !== 'card' && kindText !== 'phone') throw new UsageError(`--personalise "${kindText}" is not card or phone`);
  const kind: Kind = kindText;
  for (const k of given) {
    if (kind === 'card' && PHONE_ONLY.includes(k)) throw new UsageError(`--${k} applies to --personalise phone only`);
    if (kind === 'phone' && CARD_ONLY.includes(k)) throw new UsageError(`--${k} applies to --personalise card only (the phone has no text AP)`);
  }
  const defaults = kind === 'card' ? TEST_CARD_PINS : TEST_PHONE_PINS;
  const pins = { auth: str(v, 'auth-pin') ?? defaults.auth, sign: str(v, 'sign-password') ?? defaults.sign };
  for (const [kindOfPin, option] of [['auth', '--auth-pin'], ['sign', '--sign-password']] as const) {
    const problem = pinProblem(kindOfPin, pins[kindOfPin]);
    if (problem) throw new UsageError(`${option} "${pins[kindOfPin]}" ${problem}`);
  }
  const citizen: Citizen = { ...TEST_CITIZEN };
  const name = str(v, 'name');
  // The card separates family and given name with U+3000, which few keyboards type; an ASCII space stands for it.
  if (name !== undefined) Object.assign(citizen, { name: name.trim().replace(/ +/g, '\u3000'), nameKana: undefined });
  const address = str(v, 'address');
  if (address !== undefined) citizen.address = address;
  const birth = str(v, 'birth');
  if (birth !== undefined) citizen.birth = birth;
  const sex = str(v, 'sex');
  if (sex !== undefined) citizen.sex = sex as Sex; // checked just below with the rest
  const myNumber = str(v, 'my-number');
  if (myNumber !== undefined) citizen.myNumber = myNumber;
  const problem = citizenProblem(citizen, { textAp: kind === 'card' });
  if (problem) throw new UsageError(`${OPTION_OF[problem.field]} ${quoted(String(citizen[problem.field]))} ${problem.message}`);
  const seIdText = str(v, 'se-id');
  const seId = seIdText === undefined ? undefined : parseHex('--se-id', seIdText);
  if (seId && seId.length !== 16) throw new UsageError(`--se-id has ${seId.length} bytes; an SE identifier has 16`);
  const caDir = str(v, 'ca') ?? `${state}.ca`;
  if (!caDir) throw new UsageError('--ca needs a directory name');
  const appCert = str(v, 'app-cert');
  if (appCert === '') throw new UsageError('--app-cert needs a file name');
  const profile = profileOption(v) ?? (kind === 'card' ? MYNUMBER_CARD_PROFILE : DEFAULT_PROFILE);
  return { state, kind, profile, force: flag(v, 'force'), caDir, citizen, pins, seId, appCert };
}

/** The app's signing certificate from a DER or PEM file, as DER. */
function readAppCertificate(path: string): Uint8Array {
  let bytes: Buffer;
  try {
    bytes = readFileSync(path);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new Error(code === 'ENOENT' ? `--app-cert ${path} does not exist` : `cannot read --app-cert ${path}: ${(e as Error).message}`);
  }
  const text = bytes.toString('latin1');
  try {
    const cert = text.includes('-----BEGIN CERTIFICATE-----') ? new x509.X509Certificate(text) : new x509.X509Certificate(new Uint8Array(bytes));
    return new Uint8Array(cert.rawData);
  } catch (e) {
    throw new Error(`--app-cert ${path} is not an X.509 certificate in DER or PEM (${(e as Error).message})`);
  }
}

/** The test CA in `dir`: loaded when it holds one, else created there (directory mode 0700, keys 0600). */
async function openCa(dir: string): Promise<{ ca: TestCa; created: boolean }> {
  if (existsSync(dir) && !statSync(dir).isDirectory()) throw new Error(`--ca ${dir} is not a directory`);
  if (existsSync(join(dir, 'test-ca.json'))) {
    try {
      return { ca: await loadTestCa(dir), created: false };
    } catch (e) {
      throw new Error(`--ca ${dir}: ${(e as Error).message}`);
    }
  }
  // Never write CA files among someone else's: only a new or empty directory becomes a CA.
  if (existsSync(dir) && readdirSync(dir).length) throw new Error(`--ca ${dir} holds no test CA (no test-ca.json) and is not empty; name a new directory`);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const ca = await createTestCa();
  saveTestCa(ca, dir);
  return { ca, created: true };
}

function fsyncPath(path: string): void {
  const fd = openSync(path, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

export async function chipNewPersonalised(v: Values, io: Io): Promise<number> {
  const plan = planFrom(v);
  const { state, kind } = plan;
  checkReplace(state, plan.force);
  const phoneFile = phoneFileOf(state);
  if (kind === 'phone' && existsSync(phoneFile) && !plan.force) throw new Error(`${phoneFile} already exists (use --force to replace it)`);
  const appCertificate = plan.appCert === undefined ? undefined : readAppCertificate(plan.appCert);
  for (const name of APPLETS[kind]) appletBlock(name); // a missing CAP without a JDK fails here, before a file is written
  const { ca, created } = await openCa(plan.caDir);

  // Built aside and renamed into place: FILE is the old chip or the whole new one, never half a personalisation.
  const tmp = `${state}.${process.pid}.new`;
  let chip: Chip | undefined = openChip({ state: tmp, profile: plan.profile, fsync: false });
  const lines: string[] = [];
  let replaced: string | undefined;
  try {
    chip.powerUp();
    const live = chip;
    const transport = { transmit: async (a: Uint8Array) => live.transmit(a) };
    let personalised: string[];
    if (kind === 'card') {
      const card = await issueMyNumberCard(transport, { ca, citizen: plan.citizen, pins: plan.pins });
      personalised = [`personalised as a My Number Card: JPKI AP ${JPKI_AID} and text AP ${TEXT_AP_AID} under the ISD, both locked`, ...describeCard(card).map((l) => `  ${l}`)];
    } else {
      const phone = await provisionPhone(transport, { ca, citizen: plan.citizen, pins: plan.pins, seId: plan.seId, appCertificate });
      personalised = [
        `personalised as a phone: JPKI APSD ${JPKI_APSD_AID} with the JPKI AP ${JPKI_AID}, ARA-M ${hex(ARA_M_AID)} with the app's rule`,
        ...describePhone(phone).map((l) => `  ${l}`),
      ];
      writePhoneFile(phoneFile, phone);
      personalised.push(`  saved:    ${phoneFile} (mode 0600): SE id, APSD keys, app certificate, for the TSM and ACE tools`);
    }
    lines.push(`created ${state}`, ...newChipLines(chip));
    lines.push(`  test CA:  ${plan.caDir} (${created ? 'created; its private keys are mode 0600' : 'the one already there'})`);
    lines.push(...personalised);
    chip.close();
    chip = undefined;
    fsyncPath(tmp);
    if (existsSync(state)) {
      replaced = state;
      rmSync(`${state}.lock`, { force: true }); // checkReplace found no live owner
    }
    renameSync(tmp, state);
    fsyncPath(dirname(state));
  } finally {
    chip?.close();
    rmSync(tmp, { force: true });
  }
  const dropped = replaced && kind === 'card' ? dropPhoneFile(state) : undefined;
  for (const line of lines) io.out(line);
  if (dropped) io.out(`removed ${dropped} (the keys of the chip replaced)`);
  return 0;
}
