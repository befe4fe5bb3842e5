// The phone file `<state>.phone.json` that `chip new --personalise phone` writes next to the chip: what later tools
// (a TSM, ACE experiments) need to reach the provisioned phone again — the SE identifier, the JPKI APSD's SCP03 keys
// and the approved app's signing certificate. It holds secrets, so it is written with mode 0600.
import { createHash } from 'node:crypto';
import { readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { fromHex, hex } from '../bytes.ts';
import type { CertEf } from '../host/jpki-perso.ts';
import { JPKI_AID, JPKI_APSD_AID } from '../host/jpki-perso.ts';
import { ARA_M_AID } from '../device/ace.ts';
import type { ProvisionedPhone } from './phone.ts';
import type { KeySet } from '../scp03.ts';

export const PHONE_FILE_FORMAT = 'jpki-se-phone/1';

/** The file as JSON: bytes as hex, the certificate as base64 DER. */
interface PhoneJson {
  format: string;
  warning: string;
  seId: string;
  apsd: { aid: string; kvn: string; enc: string; mac: string; dek: string };
  jpkiAp: string;
  araM: string;
  app: { certificate: string; sha256: string };
  certificates: Record<CertEf, number>;
}

/** What a tool reads back. */
export interface PhoneFile {
  seId: Uint8Array;
  apsdAid: string;
  apsdKvn: number;
  apsdKeys: KeySet;
  jpkiAid: string;
  appCertificate: Uint8Array;
  /** Sizes in bytes of the certificates written to the JPKI AP. */
  certificateSizes: Record<CertEf, number>;
}

/** Writes the phone file (via a temporary file, so an existing one ends up with mode 0600 too). */
export function writePhoneFile(path: string, p: ProvisionedPhone): void {
  const body: PhoneJson = {
    format: PHONE_FILE_FORMAT,
    warning: 'secret SCP03 keys of a TEST phone chip made by the jpki-se emulator; keep this file private',
    seId: hex(p.seId),
    apsd: { aid: JPKI_APSD_AID, kvn: hex(Uint8Array.of(p.apsdKvn)), enc: hex(p.apsdKeys.enc), mac: hex(p.apsdKeys.mac), dek: hex(p.apsdKeys.dek) },
    jpkiAp: JPKI_AID,
    araM: hex(ARA_M_AID),
    app: { certificate: Buffer.from(p.appCertificate).toString('base64'), sha256: hex(createHash('sha256').update(p.appCertificate).digest()) },
    certificates: { sign: p.certificates.sign.length, signCa: p.certificates.signCa.length, auth: p.certificates.auth.length, authCa: p.certificates.authCa.length },
  };
  const tmp = `${path}.${process.pid}.tmp`;
  try {
    writeFileSync(tmp, JSON.stringify(body, null, 2) + '\n', { mode: 0o600 });
    renameSync(tmp, path);
  } finally {
    rmSync(tmp, { force: true });
  }
}

function hexField(path: string, name: string, value: unknown, bytes: number[]): Uint8Array {
  if (typeof value !== 'string' || !/^([0-9A-Fa-f]{2})+$/.test(value)) throw new Error(`${path}: ${name} is not hex`);
  const b = fromHex(value);
  if (!bytes.includes(b.length)) throw new Error(`${path}: ${name} has ${b.length} bytes; ${bytes.join(' or ')} expected`);
  return b;
}

/** Reads and checks a phone file (format, hex sizes, the certificate against its recorded SHA-256). */
export function readPhoneFile(path: string): PhoneFile {
  const j = JSON.parse(readFileSync(path, 'utf8')) as Partial<PhoneJson>;
  if (j.format !== PHONE_FILE_FORMAT) throw new Error(`${path}: format "${String(j.format)}" is not ${PHONE_FILE_FORMAT}`);
  if (!j.apsd || !j.app || !j.certificates) throw new Error(`${path}: apsd, app or certificates missing`);
  const aes = [16, 24, 32];
  const appCertificate = new Uint8Array(Buffer.from(String(j.app.certificate), 'base64'));
  if (hex(createHash('sha256').update(appCertificate).digest()) !== String(j.app.sha256).toUpperCase())
    throw new Error(`${path}: the app certificate does not hash to app.sha256`);
  return {
    seId: hexField(path, 'seId', j.seId, [16]),
    apsdAid: hex(hexField(path, 'apsd.aid', j.apsd.aid, [5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16])),
    apsdKvn: hexField(path, 'apsd.kvn', j.apsd.kvn, [1])[0],
    apsdKeys: {
      enc: hexField(path, 'apsd.enc', j.apsd.enc, aes),
      mac: hexField(path, 'apsd.mac', j.apsd.mac, aes),
      dek: hexField(path, 'apsd.dek', j.apsd.dek, aes),
    },
    jpkiAid: hex(hexField(path, 'jpkiAp', j.jpkiAp, [5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16])),
    appCertificate,
    certificateSizes: j.certificates,
  };
}
