// The JPKI applet (applet/jpki), card profile, end to end from source: javac against the API stubs, conversion by the
// project's converter (applet/build.ts buildSample with applet/jpki/jpki.json), GP LOAD + INSTALL through the ISD under
// SCP03, personalisation with the applet's pre-LOCK commands (a node:crypto RSA-2048 key per kind, DER certificate
// blobs), then the card's APDUs as OpenSC / jpki/myna send them: SELECT AP/EF, READ BINARY with offsets (DER length
// from the header, FF filler, 6B00), VERIFY (63Cx query, 6984 when blocked), COMPUTE DIGITAL SIGNATURE over a
// DigestInfo (verified with node:crypto), access rules (6982) per EF.
// Without javac the tests are skipped unless JPKI_REQUIRE_JDK=1.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createHash, createPublicKey, generateKeyPairSync, verify } from 'node:crypto';
import type { KeyObject } from 'node:crypto';
import { hex } from '../emulator/bytes.ts';
import type { Chip } from '../emulator/card.ts';
import { openMemoryStore } from '../emulator/store.ts';
import { ROOT, apiClassesIn, buildSample } from '../applet/build.ts';
import type { Sample } from '../applet/build.ts';
import { tx } from './helpers/chip.ts';
import { lv, loadAndInstall, vmChip } from './helpers/vm-chip.ts';

const HAVE_JDK = spawnSync('javac', ['-version']).status === 0;
const REQUIRE_JDK = process.env.JPKI_REQUIRE_JDK === '1';
const SKIP = !HAVE_JDK && !REQUIRE_JDK;
if (SKIP) console.warn('jpki-card: javac not found on PATH, skipping (set JPKI_REQUIRE_JDK=1 to fail instead)');

const SAMPLE = JSON.parse(readFileSync(join(ROOT, 'applet/jpki/jpki.json'), 'utf8')) as Sample;
const AID = 'D392F000260100000001';
const CERT_EF_SIZE = 0x800;
const AUTH_PIN = '1234';
const SIGN_PW = 'ABC123';

const ascii = (s: string): string => hex(new TextEncoder().encode(s));
const h4 = (n: number): string => n.toString(16).padStart(4, '0').toUpperCase();
const h2 = (n: number): string => n.toString(16).padStart(2, '0').toUpperCase();
const b64u = (s: string): Buffer => Buffer.from(s, 'base64url');
const pad128 = (b: Buffer): string => hex(Buffer.concat([Buffer.alloc(128 - b.length), b]));

/** A DER SEQUENCE with a 2-byte long-form length (30 82 LL LL), as certificates are. */
function derSeq(content: Buffer): Buffer {
  return Buffer.concat([Buffer.from([0x30, 0x82, content.length >> 8, content.length & 0xff]), content]);
}
/** A certificate-shaped DER blob of about `size` bytes: SEQUENCE { SPKI, OCTET STRING filler }. READ BINARY semantics
 *  are what these tests need; the bytes are not an X.509 certificate. */
function derBlob(pub: KeyObject, size: number, seed: number): Buffer {
  const spki = pub.export({ type: 'spki', format: 'der' });
  const n = size - 4 - spki.length - 4;
  const filler = Buffer.from(Array.from({ length: n }, (_, i) => (i * 31 + seed) & 0xff));
  return derSeq(Buffer.concat([spki, Buffer.from([0x04, 0x82, n >> 8, n & 0xff]), filler]));
}

const keys = {
  auth: generateKeyPairSync('rsa', { modulusLength: 2048 }),
  sign: generateKeyPairSync('rsa', { modulusLength: 2048 }),
};
const certs: Record<string, Buffer> = {
  '0001': derBlob(keys.sign.publicKey, 1543, 1), // sign cert
  '0002': derBlob(keys.sign.publicKey, 1100, 2), // sign CA cert (stand-in)
  '000A': derBlob(keys.auth.publicKey, 1377, 3), // auth cert
  '000B': derBlob(keys.auth.publicKey, 1090, 4), // auth CA cert (stand-in)
};

let work = '';
let block: Uint8Array;

beforeAll(() => {
  if (SKIP) return;
  work = mkdtempSync(join(tmpdir(), 'jpki-card-'));
  const api = apiClassesIn(work);
  const b = buildSample(SAMPLE, new Map(), { apiClasses: api, classesRoot: join(work, 'classes'), capRoot: join(work, 'cap'), samplesDir: join(ROOT, 'applet') });
  if (!b.ok) throw new Error(`jpki build failed:\n${b.compile.output}\n${b.messages.join('\n')}`);
  block = b.block!;
}, 120_000);

afterAll(() => {
  if (work) rmSync(work, { recursive: true, force: true });
});

const selectAp = (chip: Chip) => tx(chip, '00A4040C' + lv(AID));
const selectEf = (chip: Chip, fid: string) => tx(chip, '00A4020C02' + fid);
const read = (chip: Chip, offset: number, le: number) => tx(chip, '00B0' + h4(offset) + h2(le & 0xff));
const verifyPin = (chip: Chip, pin?: string) => tx(chip, '00200080' + (pin === undefined ? '' : lv(ascii(pin)))).sw;
const digestInfo = (data: string): string => '3031300D060960864801650304020105000420' + createHash('sha256').update(data).digest('hex').toUpperCase();
const signApdu = (p2 = '80', di = digestInfo('hello')) => '802A00' + p2 + lv(di) + '00';

/** Writes an EF body through the pre-LOCK personalisation command, 200 bytes per APDU. */
function writeEf(chip: Chip, fid: string, body: Buffer): void {
  for (let off = 0; off < body.length; off += 200)
    expect(tx(chip, '80D0' + fid + lv(h4(off) + hex(body.subarray(off, off + 200)))).sw).toBe(0x9000);
}

function personaliseKey(chip: Chip, fidLow: string, priv: KeyObject): void {
  const jwk = priv.export({ format: 'jwk' });
  const parts = [jwk.p!, jwk.q!, jwk.dp!, jwk.dq!, jwk.qi!];
  parts.forEach((p, i) => expect(tx(chip, `80D20${i + 1}${fidLow}` + lv(pad128(b64u(p)))).sw).toBe(0x9000));
}

/** A chip with the JPKI AP installed through the ISD under SCP03 and personalised; LOCKed unless lock is false. */
async function card(opts: { lock?: boolean; store?: ReturnType<typeof openMemoryStore> } = {}): Promise<Chip> {
  const { chip } = vmChip(opts.store ? { store: opts.store } : {});
  await loadAndInstall(chip, SAMPLE.packageAid, block, AID);
  expect(selectAp(chip).sw).toBe(0x9000);
  for (const [fid, der] of Object.entries(certs)) writeEf(chip, fid, der);
  writeEf(chip, '0008', Buffer.from([0x8f, 0x8f, 0x00]));
  personaliseKey(chip, '17', keys.auth.privateKey);
  personaliseKey(chip, '1A', keys.sign.privateKey);
  expect(tx(chip, '80D40018' + lv(ascii(AUTH_PIN))).sw).toBe(0x9000);
  expect(tx(chip, '80D4001B' + lv(ascii(SIGN_PW))).sw).toBe(0x9000);
  if (opts.lock !== false) expect(tx(chip, '80D60000').sw).toBe(0x9000);
  return chip;
}

/** Reads an EF as OpenSC does: 4 header bytes give the DER size, then chunks of at most 255 bytes. */
function readDer(chip: Chip): Buffer {
  const head = read(chip, 0, 4);
  expect(head.sw).toBe(0x9000);
  expect(head.data.slice(0, 4)).toBe('3082');
  const size = parseInt(head.data.slice(4, 8), 16) + 4;
  let out = '';
  for (let off = 0; off < size; off += 0xff) {
    const r = read(chip, off, Math.min(0xff, size - off));
    expect(r.sw).toBe(0x9000);
    out += r.data;
  }
  return Buffer.from(out, 'hex');
}

describe.skipIf(SKIP)('JPKI AP (card profile): built from source, installed under SCP03', () => {
  it('SELECT AP by AID (P2=0C, no FCI) and SELECT EF by FID (P1=02); 6A82 / 6A86 / 6700 otherwise', async () => {
    const chip = await card();
    expect(selectAp(chip)).toMatchObject({ data: '', sw: 0x9000 });
    for (const fid of ['0001', '0002', '0006', '0008', '000A', '000B', '0017', '0018', '001A', '001B'])
      expect(selectEf(chip, fid), fid).toMatchObject({ data: '', sw: 0x9000 });
    expect(selectEf(chip, '0009').sw).toBe(0x6a82);
    expect(selectEf(chip, '3F00').sw).toBe(0x6a82);
    expect(tx(chip, '00A40000').sw).toBe(0x6a86);
    expect(tx(chip, '00A4020C03000A00').sw).toBe(0x6700);
    expect(tx(chip, '00A4040C' + lv('D392F000260100000099')).sw).toBe(0x6a82);
    expect(tx(chip, '00FF0000').sw).toBe(0x6d00);
    expect(tx(chip, signApdu()).sw).toBe(0x6a88); // the current EF (001B) is no key
    expect(selectAp(chip).sw).toBe(0x9000);
    expect(tx(chip, signApdu()).sw).toBe(0x6986); // no current EF after the AP selection
  });

  it('READ BINARY: DER length from the header, offsets, FF filler up to the EF size, 6B00 past the end', async () => {
    const chip = await card();
    selectAp(chip);
    expect(read(chip, 0, 4).sw).toBe(0x6986); // no current EF
    for (const fid of ['0002', '000A', '000B']) {
      expect(selectEf(chip, fid).sw).toBe(0x9000);
      expect(readDer(chip).equals(certs[fid]), fid).toBe(true);
      const len = certs[fid].length;
      // Odd offsets and lengths; Le=00 means 256.
      expect(read(chip, 7, 13).data).toBe(hex(certs[fid].subarray(7, 20)));
      expect(read(chip, 0x100, 0).data).toBe(hex(certs[fid].subarray(0x100, 0x200)));
      // FF filler after the DER object, inside the EF.
      expect(read(chip, len, 16)).toMatchObject({ data: 'FF'.repeat(16), sw: 0x9000 });
      expect(read(chip, len - 2, 4).data).toBe(hex(certs[fid].subarray(len - 2)) + 'FFFF');
      // The last bytes of the EF: fewer bytes than Le; then 6B00 at and past the end.
      expect(read(chip, CERT_EF_SIZE - 3, 0)).toMatchObject({ data: 'FFFFFF', sw: 0x9000 });
      expect(read(chip, CERT_EF_SIZE, 1).sw).toBe(0x6b00);
      expect(read(chip, 0x7fff, 1).sw).toBe(0x6b00);
    }
    // SFI form: P1 = 80|sfi selects EF 00sfi, P2 = offset.
    expect(tx(chip, '00B08A0004')).toMatchObject({ data: hex(certs['000A'].subarray(0, 4)), sw: 0x9000 });
    expect(read(chip, 4, 4).data).toBe(hex(certs['000A'].subarray(4, 8))); // 000A is now current
    expect(tx(chip, '00B0890004').sw).toBe(0x6a82);
    expect(tx(chip, '00B0E00004').sw).toBe(0x6a86);
    // PIN and key EFs are not transparent files.
    selectEf(chip, '0018');
    expect(read(chip, 0, 4).sw).toBe(0x6981);
    selectEf(chip, '001A');
    expect(read(chip, 0, 4).sw).toBe(0x6981);
  });

  it('token info EF 0006 (160 bytes, JPKIAPICCTOKEN2 space-padded) and certificate availability EF 0008', async () => {
    const chip = await card();
    selectAp(chip);
    selectEf(chip, '0006');
    const r = read(chip, 0, 0);
    expect(r.sw).toBe(0x9000);
    expect(r.data.length / 2).toBe(160);
    expect(r.data.slice(0, 64)).toBe(ascii('JPKIAPICCTOKEN2'.padEnd(32, ' ')));
    expect(read(chip, 160, 1).sw).toBe(0x6b00);
    selectEf(chip, '0008');
    expect(read(chip, 0, 0)).toMatchObject({ data: '8F8F00', sw: 0x9000 });
    expect(read(chip, 3, 1).sw).toBe(0x6b00);
  });

  it('access rules: the sign certificate needs the sign password; the auth PIN does not open it; auth cert is free', async () => {
    const chip = await card();
    selectAp(chip);
    selectEf(chip, '0001');
    expect(read(chip, 0, 4).sw).toBe(0x6982);
    selectEf(chip, '0018');
    expect(verifyPin(chip, AUTH_PIN)).toBe(0x9000);
    selectEf(chip, '0001');
    expect(read(chip, 0, 4).sw).toBe(0x6982);
    selectEf(chip, '001B');
    expect(verifyPin(chip, SIGN_PW)).toBe(0x9000);
    selectEf(chip, '0001');
    expect(readDer(chip).equals(certs['0001'])).toBe(true);
    // Reselecting the AP ends the session's verifications.
    selectAp(chip);
    selectEf(chip, '0001');
    expect(read(chip, 0, 4).sw).toBe(0x6982);
    selectEf(chip, '000A');
    expect(read(chip, 0, 4).sw).toBe(0x9000);
  });

  it('VERIFY auth PIN: 63C3 query, wrong → 63C2, right → 9000 (query 9000), 3 wrong → 63C0, then 6984 even when right', async () => {
    const chip = await card();
    selectAp(chip);
    selectEf(chip, '0018');
    expect(verifyPin(chip)).toBe(0x63c3);
    expect(verifyPin(chip, '0000')).toBe(0x63c2);
    expect(verifyPin(chip)).toBe(0x63c2);
    expect(verifyPin(chip, AUTH_PIN)).toBe(0x9000);
    expect(verifyPin(chip)).toBe(0x9000);
    selectAp(chip);
    selectEf(chip, '0018');
    expect(verifyPin(chip)).toBe(0x63c3);
    expect(verifyPin(chip, '12345')).toBe(0x63c2);
    expect(verifyPin(chip, '123')).toBe(0x63c1);
    expect(verifyPin(chip, '4321')).toBe(0x63c0);
    expect(verifyPin(chip, AUTH_PIN)).toBe(0x6984);
    expect(verifyPin(chip)).toBe(0x63c0);
    selectEf(chip, '0017');
    expect(tx(chip, signApdu()).sw).toBe(0x6982);
    // SFI form of P2 (98 = EF 0018) and a non-PIN reference.
    expect(tx(chip, '00200098').sw).toBe(0x63c0);
    expect(tx(chip, '0020009B').sw).toBe(0x63c5);
    expect(tx(chip, '00200081').sw).toBe(0x6a88);
    expect(tx(chip, '00200180').sw).toBe(0x6a86);
  });

  it('VERIFY sign password: 5 tries, 63C4..63C0, 6984 once blocked; the counter is durable across a power cycle', async () => {
    const store = openMemoryStore();
    const chip = await card({ store });
    selectAp(chip);
    selectEf(chip, '001B');
    expect(verifyPin(chip)).toBe(0x63c5);
    expect(verifyPin(chip, 'abc123')).toBe(0x63c4); // lower case is a different password
    chip.powerDown();
    chip.powerUp();
    selectAp(chip);
    selectEf(chip, '001B');
    expect(verifyPin(chip)).toBe(0x63c4);
    for (const sw of [0x63c3, 0x63c2, 0x63c1, 0x63c0]) expect(verifyPin(chip, 'WRONG1')).toBe(sw);
    expect(verifyPin(chip, SIGN_PW)).toBe(0x6984);
    expect(verifyPin(chip)).toBe(0x63c0);
  });

  it('COMPUTE DIGITAL SIGNATURE over a DigestInfo with each key after its PIN; verifies with node:crypto', async () => {
    const chip = await card();
    selectAp(chip);
    selectEf(chip, '0017');
    expect(tx(chip, signApdu()).sw).toBe(0x6982);
    selectEf(chip, '0018');
    expect(verifyPin(chip, AUTH_PIN)).toBe(0x9000);
    selectEf(chip, '0017');
    const r = tx(chip, signApdu());
    expect(r.sw).toBe(0x9000);
    expect(r.data.length / 2).toBe(256);
    expect(verify('sha256', Buffer.from('hello'), keys.auth.publicKey, Buffer.from(r.data, 'hex'))).toBe(true);
    // The auth PIN does not open the sign key.
    selectEf(chip, '001A');
    expect(tx(chip, signApdu()).sw).toBe(0x6982);
    selectEf(chip, '001B');
    expect(verifyPin(chip, SIGN_PW)).toBe(0x9000);
    selectEf(chip, '001A');
    const s = tx(chip, signApdu('80', digestInfo('contract')));
    expect(s.sw).toBe(0x9000);
    expect(verify('sha256', Buffer.from('contract'), keys.sign.publicKey, Buffer.from(s.data, 'hex'))).toBe(true);
    // The public key in the sign certificate EF is the one that verifies.
    selectEf(chip, '0001');
    const der = readDer(chip);
    const spkiLen = ((der[6] << 8) | der[7]) + 4;
    const pub = createPublicKey({ key: der.subarray(4, 4 + spkiLen), format: 'der', type: 'spki' });
    expect(verify('sha256', Buffer.from('contract'), pub, Buffer.from(s.data, 'hex'))).toBe(true);
    // P2 = 80|sfi names the key without SELECT (97 auth, 9A sign).
    const t = tx(chip, signApdu('97', digestInfo('x')));
    expect(verify('sha256', Buffer.from('x'), keys.auth.publicKey, Buffer.from(t.data, 'hex'))).toBe(true);
    // Errors: other schemes (P1 ≠ 00) 6A86, no data / > 245 bytes 6700, a non-key EF 6A88, CLA 00 6E00.
    expect(tx(chip, '802A0180' + lv(digestInfo('x')) + '00').sw).toBe(0x6a86);
    expect(tx(chip, '802A009A00').sw).toBe(0x6700);
    expect(tx(chip, '802A009A' + lv('00'.repeat(246)) + '00').sw).toBe(0x6700);
    expect(tx(chip, '802A0081' + lv(digestInfo('x')) + '00').sw).toBe(0x6a88);
    expect(tx(chip, '002A009A' + lv(digestInfo('x')) + '00').sw).toBe(0x6e00);
  });

  it('CHANGE REFERENCE DATA after VERIFY (format checked: 4 digits / 6-16 of [A-Z0-9]); GET CHALLENGE; 80 AE → 6982', async () => {
    const chip = await card();
    selectAp(chip);
    selectEf(chip, '0018');
    expect(tx(chip, '00240180' + lv(ascii('9999'))).sw).toBe(0x6982);
    expect(verifyPin(chip, AUTH_PIN)).toBe(0x9000);
    expect(tx(chip, '00240180' + lv(ascii('99A9'))).sw).toBe(0x6a80);
    expect(tx(chip, '00240180' + lv(ascii('99999'))).sw).toBe(0x6a80);
    expect(tx(chip, '00240180' + lv(ascii('9999'))).sw).toBe(0x9000);
    expect(verifyPin(chip, AUTH_PIN)).toBe(0x63c2);
    expect(verifyPin(chip, '9999')).toBe(0x9000);
    selectEf(chip, '001B');
    expect(verifyPin(chip, SIGN_PW)).toBe(0x9000);
    expect(tx(chip, '00240180' + lv(ascii('abc123'))).sw).toBe(0x6a80);
    expect(tx(chip, '00240180' + lv(ascii('ABC12'))).sw).toBe(0x6a80);
    expect(tx(chip, '00240180' + lv(ascii('A'.repeat(17)))).sw).toBe(0x6a80);
    expect(tx(chip, '00240180' + lv(ascii('NEWPASS2024XYZ99'))).sw).toBe(0x9000);
    expect(verifyPin(chip, 'NEWPASS2024XYZ99')).toBe(0x9000);
    const c1 = tx(chip, '0084000008');
    const c2 = tx(chip, '0084000008');
    expect([c1.sw, c1.data.length, c2.sw]).toEqual([0x9000, 16, 0x9000]);
    expect(c1.data).not.toBe(c2.data);
    expect(tx(chip, '80AE0000').sw).toBe(0x6982);
  });

  it('SET PROFILE 01 (smartphone): token JPKIAPGPSETOKEN and the auth certificate needs the auth PIN', async () => {
    const chip = await card({ lock: false });
    selectAp(chip);
    expect(tx(chip, '80D80001').sw).toBe(0x9000);
    expect(tx(chip, '80D80002').sw).toBe(0x6a86);
    expect(tx(chip, '80D60000').sw).toBe(0x9000);
    selectAp(chip);
    expect(tx(chip, '00B0860020').data).toBe(ascii('JPKIAPGPSETOKEN'.padEnd(32, ' ')));
    selectEf(chip, '000A');
    expect(read(chip, 0, 4).sw).toBe(0x6982);
    selectEf(chip, '0018');
    expect(verifyPin(chip, AUTH_PIN)).toBe(0x9000);
    selectEf(chip, '000A');
    expect(readDer(chip).equals(certs['000A'])).toBe(true);
  });

  it('personalisation commands answer only before LOCK (then 6D00); a bad PIN format or out-of-range write is refused', async () => {
    const chip = await card({ lock: false });
    selectAp(chip);
    expect(tx(chip, '80D40018' + lv(ascii('12345'))).sw).toBe(0x6a80);
    expect(tx(chip, '80D4001B' + lv(ascii('abcdef'))).sw).toBe(0x6a80);
    expect(tx(chip, '80D00006' + lv(h4(159) + '0000')).sw).toBe(0x6a84);
    expect(tx(chip, '80D00018' + lv('0000' + '00')).sw).toBe(0x6981);
    expect(tx(chip, '80D00009' + lv('0000' + '00')).sw).toBe(0x6a82);
    expect(tx(chip, '80D20617' + lv('00'.repeat(128))).sw).toBe(0x6a86);
    expect(tx(chip, '80D20117' + lv('00'.repeat(127))).sw).toBe(0x6700);
    expect(tx(chip, '80D60000').sw).toBe(0x9000);
    for (const a of ['80D00006' + lv('0000' + '41'), '80D20117' + lv('00'.repeat(128)), '80D40018' + lv(ascii('1111')), '80D60000', '80D80001'])
      expect(tx(chip, a).sw, a).toBe(0x6d00);
    selectEf(chip, '0018');
    expect(verifyPin(chip, AUTH_PIN)).toBe(0x9000);
  });
});
