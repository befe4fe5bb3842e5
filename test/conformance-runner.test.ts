// The conformance runner against an in-process emulated chip and against test doubles (a T=0 card, a broken card),
// and its reports: console lines, the diff, JUnit XML (validated with xmllint against conformance/junit.xsd), TAP 14.
import 'reflect-metadata';
import * as x509 from '@peculiar/x509';
import { describe, it, expect, afterAll } from 'vitest';
import { spawnSync } from 'node:child_process';
import { KeyObject, constants, createHash, privateEncrypt } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { concat, fromHex, hex } from '../emulator/bytes.ts';
import type { Target } from '../emulator/transport/target.ts';
import { claForChannel, globMatch, runScripts } from '../conformance/runner.ts';
import type { ConformanceRun, RunOptions } from '../conformance/runner.ts';
import { formatConsole, formatDiff, junitXml, tap, xmlEscape } from '../conformance/report.ts';
import { openConformanceTarget } from '../conformance/targets.ts';
import { parseScript } from '../conformance/script/parse.ts';
import { parsePattern } from '../conformance/script/pattern.ts';
import type { RunResult, ScriptFile } from '../conformance/types.ts';
import { ASM_SAMPLES, sampleJar } from './fixtures/asm/samples.ts';

const root = join(import.meta.dirname, '..');
const dir = mkdtempSync(join(tmpdir(), 'jpki-conf-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

let n = 0;
/** Parses a script written to the temp dir (so that `load` paths are relative to it). */
function script(text: string): ScriptFile {
  const path = join(dir, `s${n++}.apdu`);
  writeFileSync(path, text);
  return parseScript(text, path);
}

const KEY = '404142434445464748494A4B4C4D4E4F';
const PROLOGUE = `suite GP basics
ref GPCS 2.3.1 §11
tags gp
default ISD = A000000151000000
> 00 A4 04 00 [\${ISD}] 00
< 6F (FCI: *) 9000
`;

async function run(files: ScriptFile[], opts: RunOptions = {}, wrap?: (t: Target) => Target): Promise<ConformanceRun> {
  const t = await openConformanceTarget('emulator');
  try {
    return await runScripts(files, wrap ? wrap(t) : t, opts);
  } finally {
    await t.close();
  }
}

const outcomes = (r: RunResult) => r.cases.map((c) => `${c.id} ${c.outcome}`);

/** A target that passes everything to `inner` but lets `answer` rewrite responses. */
function tamper(inner: Target, answer: (cmd: Uint8Array, rsp: Uint8Array) => Uint8Array): Target {
  return {
    name: `tampered ${inner.name}`,
    get atr() {
      return inner.atr;
    },
    transmit: async (a) => answer(a, await inner.transmit(a)),
    reset: () => inner.reset(),
    close: () => inner.close(),
  };
}

describe('runner against the emulator', () => {
  it('SELECT with a capture, GET DATA, echo of the captured bytes; --var wins over default', async () => {
    const f = script(`${PROLOGUE}
case GP-01 GET DATA CPLC
> 80 CA 9F 7F 00
< 9F 7F 2A (CPLC: XX{42}) 9000 | 6A88
assert len(\${CPLC}) == 2A
echo FCI \${FCI}
`);
    const r = await run([f]);
    expect(outcomes(r)).toEqual(['GP-01 pass']);
    const c = r.cases[0];
    expect(c.apdus.map((a) => hex(a.command))).toEqual(['00A4040008A00000015100000000', '80CA9F7F00']);
    expect(hex(c.apdus[1].response).slice(0, 6)).toBe('9F7F2A');
    expect(c.apdus.every((a) => a.ms >= 0)).toBe(true);
    expect(c.echoes).toHaveLength(1);
    expect(c.echoes[0].text).toMatch(/^FCI 678408A000000151000000A5/);
    expect(c.echoes[0].after).toBe(2);

    // An ISD AID from --var replaces the default: SELECT of an absent AID fails the prologue.
    const other = await run([f], { vars: new Map([['ISD', fromHex('A0000001510000FF')]]) });
    expect(other.cases[0]).toMatchObject({ outcome: 'fail', message: expect.stringMatching(/6A82/), at: { line: 5, col: 1 } });
  });

  it('SCP03 at levels 01, 03 and 33: GET STATUS inside the session; wrapped CLA 84; responses unwrapped', async () => {
    const cases = ['01', '03', '33']
      .map(
        (level) => `
case SCP-${level} session at level ${level}
scp03 open key=${KEY} level=${level}
> 80 F2 80 02 [4F 00] 00
< E3 XX (ENTRY: *) 9000
assert slice(\${ENTRY}, 0, 4) == 4F 08 A0 00
`,
      )
      .join('');
    const r = await run([script(PROLOGUE + cases)]);
    expect(outcomes(r)).toEqual(['SCP-01 pass', 'SCP-03 pass', 'SCP-33 pass']);
    for (const c of r.cases) {
      const [, iu, ea, status] = c.apdus;
      expect(hex(iu.command).slice(0, 4)).toBe('8050');
      expect(hex(ea.command).slice(0, 4)).toBe('8482');
      expect(status.command[0]).toBe(0x84);
      expect(hex(status.response).slice(0, 2)).toBe('E3'); // what the pattern saw: plain
    }
    // Level 03 encrypts the data: the wire command does not carry 4F00 in clear after Lc.
    expect(hex(r.cases[1].apdus[3].command).slice(10, 14)).not.toBe('4F00');
  });

  it('corrupt-mac gets 6982; a replay of a wrapped command is refused; scp03 open on channel 1 wraps with CLA 85', async () => {
    const f = script(`${PROLOGUE}
case SCP-MAC corrupted C-MAC
scp03 open key=${KEY}
scp03 corrupt-mac
> 80 F2 80 02 [4F 00] 00
< 6982

case SCP-REPLAY replayed command
scp03 open key=${KEY} level=03
> 80 F2 80 02 [4F 00] 00
< E3 * 9000
replay
< 6982

case SCP-CH1 session on channel 1
> 00 70 00 00 01
< 01 9000
channel 1
> 00 A4 04 00 [\${ISD}] 00
< 6F * 9000
scp03 open key=${KEY}
> 80 F2 80 02 [4F 00] 00
< E3 * 9000
channel 0
> 00 70 80 01
`);
    const r = await run([f]);
    expect(outcomes(r)).toEqual(['SCP-MAC pass', 'SCP-REPLAY pass', 'SCP-CH1 pass']);
    const replay = r.cases[1].apdus;
    expect(hex(replay[4].command)).toBe(hex(replay[3].command)); // the same bytes, MAC and all
    expect(hex(replay[4].response)).toBe('6982');
    const ch = r.cases[2].apdus;
    expect(ch.map((a) => a.channel)).toEqual([0, 0, 1, 1, 1, 1, 0]);
    expect(ch.map((a) => a.command[0])).toEqual([0x00, 0x00, 0x01, 0x81, 0x85, 0x85, 0x00]);
    // The corrupted command went out with its last MAC byte changed: the card refused it, the step expected that.
    expect(hex(r.cases[0].apdus[3].response)).toBe('6982');
  });

  it('scp03 open kvn=${VAR}: the key version from a variable (the ISD key set 30 opens, 7E is unknown, two bytes are an error)', async () => {
    const f = script(`${PROLOGUE}
case KVN-1 key set 30 from a variable
scp03 open key=\${KEY} kvn=\${KVN}
> 80 F2 80 02 [4F00] 00
< E3 * 9000
`);
    const ok = await run([f], { vars: new Map([['KEY', fromHex(KEY)], ['KVN', fromHex('30')]]) });
    expect(outcomes(ok)).toEqual(['KVN-1 pass']);
    expect(hex(ok.cases[0].apdus[1].command)).toBe('8050300008' + hex(ok.cases[0].apdus[1].command.subarray(5, 13)) + '00');
    const unknown = await run([f], { vars: new Map([['KEY', fromHex(KEY)], ['KVN', fromHex('7E')]]) });
    expect(unknown.cases[0].outcome).toBe('fail');
    expect(unknown.cases[0].message).toMatch(/6A88/);
    const two = await run([f], { vars: new Map([['KEY', fromHex(KEY)], ['KVN', fromHex('3030')]]) });
    expect(two.cases[0]).toMatchObject({ outcome: 'error', message: expect.stringMatching(/kvn= is 2 bytes \(3030\); a key version number is one byte/) });
  });

  it('a wrong SCP03 key fails the step with what went wrong; an R-MAC that does not verify fails the step', async () => {
    const f = script(`${PROLOGUE}
case SCP-KEY wrong key
scp03 open key=00112233445566778899AABBCCDDEEFF

case SCP-RMAC R-MAC
scp03 open key=${KEY} level=11
> 80 F2 80 02 [4F 00] 00
< E3 * 9000

case SCP-I the card's i parameter
scp03 open key=${KEY} i=10
`);
    // The card's R-MAC over the GET STATUS response is damaged on the way.
    const r = await run([f], {}, (t) => tamper(t, (cmd, rsp) => (cmd[0] === 0x84 && cmd[1] === 0xf2 ? concat(rsp.subarray(0, rsp.length - 3), Uint8Array.of(rsp[rsp.length - 3] ^ 1), rsp.subarray(rsp.length - 2)) : rsp)));
    expect(outcomes(r)).toEqual(['SCP-KEY fail', 'SCP-RMAC fail', 'SCP-I fail']);
    expect(r.cases[2].message).toBe('scp03 open: the card announced i=70, the script expects i=10');
    expect(r.cases[0].message).toMatch(/card cryptogram does not verify/);
    expect(r.cases[1].message).toMatch(/R-MAC of the response \(SW 9000\) does not verify/);
    expect(r.cases[1].at?.line).toBe(13);
  });

  it('channel N sets the CLA bits (ISO 7816-4 §5.4.1), keeping b8, chaining and SM', () => {
    expect(claForChannel(0x00, 0)).toBe(0x00);
    expect(claForChannel(0x01, 0)).toBe(0x01); // channel 0: as written
    expect(claForChannel(0x00, 3)).toBe(0x03);
    expect(claForChannel(0x80, 1)).toBe(0x81);
    expect(claForChannel(0x84, 2)).toBe(0x86);
    expect(claForChannel(0x10, 2)).toBe(0x12);
    expect(claForChannel(0x00, 4)).toBe(0x40);
    expect(claForChannel(0x80, 19)).toBe(0xcf);
    expect(claForChannel(0x84, 5)).toBe(0xe1); // SM 04 becomes b6
    expect(claForChannel(0x90, 7)).toBe(0xd3);
    expect(claForChannel(0xe1, 2)).toBe(0x86); // further coding back to the first: b6 becomes 04
    expect(claForChannel(0xff, 1)).toBe(0xff); // RFU: as written
  });

  it('power down / up, ATR patterns; a command while powered down is an error, the next case still runs', async () => {
    const f = script(`${PROLOGUE}
case PWR-01 cold reset
power down
power up
atr 3B *
> 80 CA 9F 7F 00
< 9F 7F * 9000

case PWR-02 ATR mismatch
atr 3C *

case PWR-03 no power
power down
> 80 CA 9F 7F 00

case PWR-04 after the unpowered case
> 80 CA 9F 7F 00
< 9F 7F * 9000
`);
    const r = await run([f]);
    expect(outcomes(r)).toEqual(['PWR-01 pass', 'PWR-02 fail', 'PWR-03 error', 'PWR-04 pass']);
    expect(r.cases[1].diff).toContain('atr expected: 3C *');
    expect(r.cases[1].diff?.split('\n')[2]).toBe(' '.repeat(14) + '^^');
    expect(r.cases[2].message).toMatch(/powered down/);
    expect(r.cases[2].at?.line).toBe(20);
  });

  it('LOAD of a CAP in blocks through SCP03, INSTALL, then the applet answers', async () => {
    writeFileSync(join(dir, 'echo.cap'), sampleJar('echo'));
    const pkg = hex(ASM_SAMPLES.echo.packageAid);
    const app = hex(ASM_SAMPLES.echo.appletAid);
    const f = script(`${PROLOGUE}
case LOAD-01 load and install the echo sample
var PKG = ${pkg}
var APP = ${app}
scp03 open key=${KEY} level=03
> 80 E6 02 00 [len(\${PKG}) \${PKG} 00 00 00 00] 00
< 00 9000 | 9000
load echo.cap block=100
> 80 E6 0C 00 [len(\${PKG}) \${PKG} len(\${APP}) \${APP} len(\${APP}) \${APP} 01 00 02 C9 00 00] 00
< * 9000
scp03 close
> 00 A4 04 00 [\${APP}] 00
> 80 01 00 00 [CA FE] 00
< CA FE 9000

case LOAD-02 a missing CAP file is an error
load nowhere.cap
`);
    const r = await run([f]);
    expect(outcomes(r)).toEqual(['LOAD-01 pass', 'LOAD-02 error']);
    const loads = r.cases[0].apdus.filter((a) => a.command[1] === 0xe8);
    expect(loads.length).toBeGreaterThan(2);
    expect(loads.map((a) => a.command[3])).toEqual(loads.map((_, i) => i)); // P2: block number
    expect(loads.map((a) => a.command[2])).toEqual(loads.map((_, i) => (i === loads.length - 1 ? 0x80 : 0x00)));
    expect(loads.every((a) => a.command[0] === 0x84 && hex(a.response).endsWith('9000'))).toBe(true);
    expect(hex(loads[0].command).slice(10, 14)).not.toBe('C482'); // C-DEC: the C4 header is not in clear
    expect(r.cases[1].message).toMatch(/nowhere\.cap/);
  });

  it('verify-signature: PKCS#1 v1.5 under the certificate key (FF filler ignored); a wrong one fails naming the subject', async () => {
    const alg = { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256', publicExponent: new Uint8Array([1, 0, 1]), modulusLength: 2048 };
    const keys = await crypto.subtle.generateKey(alg, true, ['sign', 'verify']);
    const cert = await x509.X509CertificateGenerator.createSelfSigned({
      serialNumber: '01',
      name: 'CN=conformance signer, O=jpki-se',
      notBefore: new Date('2024-01-01'),
      notAfter: new Date('2034-01-01'),
      signingAlgorithm: alg,
      keys,
    });
    const digestInfo = concat(fromHex('3031300D060960864801650304020105000420'), new Uint8Array(createHash('sha256').update('hello').digest()));
    const sig = new Uint8Array(privateEncrypt({ key: KeyObject.from(keys.privateKey), padding: constants.RSA_PKCS1_PADDING }, digestInfo));
    const vars = new Map([
      ['CERT', concat(new Uint8Array(cert.rawData), new Uint8Array(64).fill(0xff))],
      ['DI', digestInfo],
      ['SIG', sig],
    ]);
    const f = script(`suite signatures
ref JPKI

case SIG-01 good
verify-signature cert=der(\${CERT}) data=\${DI} sig=\${SIG}

case SIG-02 good, filler left on
verify-signature cert=\${CERT} data=\${DI} sig=\${SIG}

case SIG-03 other data
verify-signature cert=\${CERT} data=slice(\${DI}, 1) sig=\${SIG}
`);
    const r = await run([f], { vars });
    expect(outcomes(r)).toEqual(['SIG-01 pass', 'SIG-02 pass', 'SIG-03 fail']);
    expect(r.cases[2].message).toBe("signature does not verify under the certificate's key (subject CN=conformance signer, O=jpki-se)");
  });

  it('a broken card (one wrong byte in CPLC) makes exactly that case fail, with the diff pointing at the byte', async () => {
    const f = script(`${PROLOGUE}
case BRK-01 IIN
> 80 CA 00 42 00
< 42 * 9000

case BRK-02 CPLC
> 80 CA 9F 7F 00
< 9F 7F 2A 47 90 * 9000 | 6A88

case BRK-03 CIN
> 80 CA 00 45 00
< 45 * 9000
`);
    const r = await run([f], {}, (t) => tamper(t, (cmd, rsp) => (hex(cmd) === '80CA9F7F00' ? concat(rsp.subarray(0, 4), Uint8Array.of(0x00), rsp.subarray(5)) : rsp)));
    expect(outcomes(r)).toEqual(['BRK-01 pass', 'BRK-02 fail', 'BRK-03 pass']);
    const c = r.cases[1];
    expect(c.message).toBe('data byte 4 is 00, expected 90');
    expect(c.at).toMatchObject({ line: 13, col: 1 });
    const lines = c.diff!.split('\n');
    expect(lines[0]).toBe('> 80 CA 9F 7F 00');
    expect(lines[1]).toBe('< expected: 9F 7F 2A 47 90 * 9000 | 6A88');
    expect(lines[2]).toMatch(/^< received: 9F 7F 2A 47 00 D3 /);
    expect(lines[3]).toBe(' '.repeat(12 + 4 * 3) + '^^');
    expect(lines).toContain('        SW: 9000 (OK)');
    expect(lines[lines.length - 1]).toBe('  data byte 4 is 00, expected 90');
  });

  it('stop-on-fail: after the first failed mandatory case the rest are skipped; an optional failure does not stop', async () => {
    const f = script(`${PROLOGUE}
case STOP-01 optional failure
optional
> 80 CA 9F 7F 00
< 00 9000

case STOP-02 mandatory failure
> 80 CA 9F 7F 00
< 01 9000

case STOP-03 would pass
> 80 CA 9F 7F 00
< * 9000
`);
    const stop = await run([f], { stopOnFail: true });
    expect(outcomes(stop)).toEqual(['STOP-01 fail', 'STOP-02 fail', 'STOP-03 skip']);
    expect(stop.cases[2].message).toBe('not run: stopped after STOP-02 failed');
    const all = await run([f]);
    expect(outcomes(all)).toEqual(['STOP-01 fail', 'STOP-02 fail', 'STOP-03 pass']);
  });

  it('requires and profiles; tag, exclude-tag and id filters', async () => {
    const f = script(`${PROLOGUE}
case FLT-card-01 card only
tags card
> 80 CA 9F 7F 00
< * 9000

case FLT-phone-01 phone only
tags phone
requires phone
> 80 CA 9F 7F 00
< * 9000

case FLT-both both
tags card phone slow
> 80 CA 9F 7F 00
< * 9000
`);
    expect(outcomes(await run([f]))).toEqual(['FLT-card-01 pass', 'FLT-phone-01 skip', 'FLT-both pass']);
    const skipped = (await run([f])).cases[1];
    expect(skipped).toMatchObject({ message: 'requires phone', apdus: [] });
    expect(outcomes(await run([f], { profiles: ['phone'] }))).toEqual(['FLT-card-01 pass', 'FLT-phone-01 pass', 'FLT-both pass']);
    expect(outcomes(await run([f], { filter: { tags: ['phone'] } }))).toEqual(['FLT-phone-01 skip', 'FLT-both pass']);
    expect(outcomes(await run([f], { filter: { excludeTags: ['slow'] } }))).toEqual(['FLT-card-01 pass', 'FLT-phone-01 skip']);
    expect(outcomes(await run([f], { filter: { ids: ['FLT-*-01'] } }))).toEqual(['FLT-card-01 pass', 'FLT-phone-01 skip']);
    expect(outcomes(await run([f], { filter: { ids: ['FLT-bot?'] }, profiles: ['phone'] }))).toEqual(['FLT-both pass']);
    expect(globMatch('GP-*', 'GP-01')).toBe(true);
    expect(globMatch('GP-?', 'GP-01')).toBe(false);
    expect(globMatch('a.b', 'aXb')).toBe(false); // . is literal
  });

  it('errors (an undefined variable, a transport failure) do not stop the run; a closed target errors every case', async () => {
    const f = script(`${PROLOGUE}
case ERR-01 undefined variable
> 80 CA \${NOPE} 00

case ERR-02 the reader fails
> 80 CA 00 42 00

case ERR-03 fine again
> 80 CA 00 45 00
< 45 * 9000
`);
    const r = await run([f], {}, (t) => ({
      ...tamper(t, (_c, rsp) => rsp),
      transmit: async (a: Uint8Array) => {
        if (hex(a) === '80CA004200') throw new Error('reader unplugged');
        return t.transmit(a);
      },
    }));
    expect(outcomes(r)).toEqual(['ERR-01 error', 'ERR-02 error', 'ERR-03 pass']);
    expect(r.cases[0].message).toMatch(/NOPE/);
    expect(r.cases[0].at).toMatchObject({ line: 9 });
    expect(r.cases[1]).toMatchObject({ message: 'reader unplugged', at: { line: 12 } });

    const t = await openConformanceTarget('emulator');
    await t.close();
    const closed = await runScripts([f], t, {});
    expect(outcomes(closed)).toEqual(['ERR-01 error', 'ERR-02 error', 'ERR-03 error']);
    expect(closed.cases[2].message).toMatch(/closed/);
  });
});

describe('T=0 follow-ups with a test double', () => {
  const DATA = Uint8Array.from({ length: 40 }, (_, i) => i + 1);

  /** A card that answers GET DATA with 61XX and serves it through GET RESPONSE, and READ BINARY with 6C08 first. */
  function t0Card(): Target & { sent: string[] } {
    const sent: string[] = [];
    let pending: Uint8Array | null = null;
    return {
      name: 't0 double',
      atr: fromHex('3B00'),
      sent,
      transmit: async (a) => {
        sent.push(hex(a));
        if (a[1] === 0xc0) {
          if (!pending) return fromHex('6985');
          const out = pending.subarray(0, a[4] || 256);
          pending = pending.subarray(out.length);
          return concat(out, pending.length ? Uint8Array.of(0x61, Math.min(pending.length, 0x18)) : fromHex('9000'));
        }
        pending = null;
        if (a[1] === 0xca) {
          pending = DATA;
          return fromHex('6110');
        }
        if (a[1] === 0xb0) return a[4] === 8 ? fromHex('01020304050607089000') : fromHex('6C08');
        return fromHex('9000');
      },
      reset: async () => fromHex('3B00'),
      close: async () => {},
    };
  }

  it('61XX: GET RESPONSE until complete (on the same channel), data joined; 6CXX: resent with Le = XX', async () => {
    const f = script(`suite t0
ref ISO 7816-4 §5.3.4

case T0-01 GET RESPONSE
> 80 CA 00 FE 00
< (ALL: XX{40}) 9000
assert \${ALL} == ${hex(DATA)}

case T0-02 on channel 2
channel 2
> 80 CA 00 FE 00
< XX{40} 9000

case T0-03 wrong Le
> 00 B0 00 00 00
< 01 02 03 04 05 06 07 08 9000
`);
    const card = t0Card();
    const r = await runScripts([f], card, {});
    expect(outcomes(r)).toEqual(['T0-01 pass', 'T0-02 pass', 'T0-03 pass']);
    expect(card.sent).toEqual(['80CA00FE00', '00C0000010', '00C0000018', '82CA00FE00', '02C0000010', '02C0000018', '00B0000000', '00B0000008']);
    // One record per command: the first wire bytes, the joined response.
    expect(r.cases[0].apdus).toHaveLength(1);
    expect(hex(r.cases[0].apdus[0].response)).toBe(hex(DATA) + '9000');
  });

  it('option no-get-response: the pattern sees 61XX', async () => {
    const f = script(`suite raw t0
ref ISO 7816-4 §5.3.4
option no-get-response

case T0-RAW raw
> 80 CA 00 FE 00
< 6110
`);
    const card = t0Card();
    const r = await runScripts([f], card, {});
    expect(outcomes(r)).toEqual(['T0-RAW pass']);
    expect(card.sent).toEqual(['80CA00FE00']);
  });
});

// ---------------------------------------------------------------------------------------------------------------
// Reports

const REQUIRE = process.env.JPKI_REQUIRE_PCSC === '1';
const HAVE_XMLLINT = !spawnSync('xmllint', ['--version']).error;

/** A run with every outcome, awkward characters included. */
async function mixedRun(): Promise<ConformanceRun> {
  const f = script(`suite Mixed <&"> suite
ref GPCS 2.3.1 §11
> 00 A4 04 00 [A000000151000000] 00
< 6F * 9000

case MIX-01 pass with an echo
> 80 CA 9F 7F 00
< 9F 7F * 9000
echo CPLC read <ok> & "done"

case MIX-02 mandatory failure: <&"> in the title \\# hash
> 80 CA 9F 7F 00
< 9F 7F 2B * 9000

case MIX-03 optional failure
optional
> 80 CA 9F 7F 00
< 00 9000

case MIX-04 error
> 80 CA \${UNSET} 00

case MIX-05 skipped
requires phone
`);
  return run([f]);
}

describe('reports', () => {
  it('console: one line per case, failures with their diff indented, the summary', async () => {
    const r = await mixedRun();
    const lines = formatConsole(r);
    expect(lines[0]).toMatch(/^PASS MIX-01 — pass with an echo \(\d+(\.\d)? ms\)$/);
    expect(lines[1]).toBe('    # CPLC read <ok> & "done"');
    expect(lines[2]).toMatch(/^FAIL MIX-02 — mandatory failure: <&"> in the title \\# hash \(/);
    expect(lines[3]).toMatch(/^ {4}.*s\d+\.apdu:12:1: data byte 2 is 2A, expected 2B$/);
    expect(lines[4]).toBe('    > 80 CA 9F 7F 00');
    expect(lines.some((l) => /^FAIL MIX-03 — optional failure \(.*\) \[optional\]$/.test(l))).toBe(true);
    expect(lines.some((l) => /^ERROR MIX-04 — error \(/.test(l))).toBe(true);
    expect(lines).toContain('SKIP MIX-05 — skipped: requires phone');
    expect(lines[lines.length - 1]).toMatch(/^5 cases: 1 passed, 2 failed \(1 mandatory\), 1 error, 1 skipped in \d+\.\d\d s; slowest APDU [0-9A-F]+ \(.* ms, MIX-0\d\)$/);
    const verbose = formatConsole(r, { verbose: true });
    expect(verbose).toContain('    > 80CA9F7F00');
  });

  it('diff: long data wraps at 32 bytes, ^^ on the line that holds the byte; a SW mismatch is marked under the SW', () => {
    const pos = { file: 'x.apdu', line: 1, col: 1 };
    const p = parsePattern('XX{40} 01 9000', pos, true);
    const data = concat(new Uint8Array(40).fill(0xaa), Uint8Array.of(0x02), fromHex('9000'));
    const lines = formatDiff(fromHex('80CA9F7F00'), [p], data, 40, 'data byte 40 is 02, expected 01').split('\n');
    expect(lines[2]).toBe('< received: ' + Array(32).fill('AA').join(' '));
    expect(lines[3]).toBe(' '.repeat(12) + Array(8).fill('AA').join(' ') + ' 02');
    expect(lines[4]).toBe(' '.repeat(12 + 8 * 3) + '^^');
    const sw = formatDiff(fromHex('80CA9F7F00'), [parsePattern('9000', pos, true)], fromHex('6A86'), -1, 'status word 6A86, expected 9000').split('\n');
    expect(sw).toEqual([
      '> 80 CA 9F 7F 00',
      '< expected: 9000',
      '< received: (no data)',
      '        SW: 6A86 (incorrect parameters P1-P2)',
      '            ^^^^',
      '  status word 6A86, expected 9000',
    ]);
  });

  it('TAP 14: version, plan, numbered points, SKIP and TODO directives, YAML diagnostics indented by 2', async () => {
    const r = await mixedRun();
    const lines = tap(r).trimEnd().split('\n');
    expect(lines[0]).toBe('TAP version 14');
    expect(lines[1]).toBe('1..5');
    const points: { ok: boolean; n: number; desc: string }[] = [];
    let inYaml = false;
    for (const l of lines.slice(2)) {
      if (inYaml) {
        if (l === '  ...') inYaml = false;
        else expect(l === '' || l.startsWith('  ')).toBe(true);
        continue;
      }
      if (l === '  ---') {
        expect(points[points.length - 1].ok).toBe(false); // diagnostics follow a test point directly
        inYaml = true;
        continue;
      }
      const m = /^(not )?ok (\d+) - (.*)$/.exec(l);
      expect(m, l).not.toBeNull();
      points.push({ ok: !m![1], n: Number(m![2]), desc: m![3] });
    }
    expect(inYaml).toBe(false);
    expect(points.map((p) => p.n)).toEqual([1, 2, 3, 4, 5]);
    expect(points.map((p) => p.ok)).toEqual([true, false, false, false, true]);
    expect(points[1].desc).toBe('MIX-02 - mandatory failure: <&"> in the title \\\\\\# hash');
    expect(points[2].desc).toBe('MIX-03 - optional failure # TODO optional');
    expect(points[3].desc).not.toMatch(/# (TODO|SKIP)/);
    expect(points[4].desc).toBe('MIX-05 - skipped # SKIP requires phone');
    const text = tap(r);
    expect(text).toContain('  message: "data byte 2 is 2A, expected 2B"\n');
    expect(text).toMatch(/ {2}at: ".*s\d+\.apdu:12:1"\n {2}ref: "GPCS 2\.3\.1 §11"\n {2}diff: \|\n {4}> 80 CA 9F 7F 00\n {4}< expected: 9F 7F 2B \* 9000\n/);
  });

  it.runIf(HAVE_XMLLINT || REQUIRE)('JUnit XML validates against conformance/junit.xsd (xmllint), counts and escaping', async () => {
    const r = await mixedRun();
    const xml = junitXml(r);
    const file = join(dir, 'report.xml');
    writeFileSync(file, xml);
    const v = spawnSync('xmllint', ['--noout', '--schema', join(root, 'conformance', 'junit.xsd'), file], { encoding: 'utf8' });
    expect(v.error).toBeUndefined();
    expect(v.stderr).toContain('validates');
    expect(v.status).toBe(0);
    expect(xml).toContain('<testsuite name="Mixed &lt;&amp;&quot;&gt; suite" id="0" tests="5" failures="2" errors="1" skipped="1"');
    expect(xml).toContain('<testcase name="MIX-02: mandatory failure: &lt;&amp;&quot;&gt; in the title \\# hash" classname="Mixed &lt;&amp;&quot;&gt; suite"');
    expect(xml).toContain('<failure message="data byte 2 is 2A, expected 2B" type="mismatch">');
    expect(xml).toContain('type="optional-mismatch"');
    expect(xml).toContain('<skipped message="requires phone"/>');
    expect(xml).toContain('# CPLC read &lt;ok&gt; &amp; &quot;done&quot;');
    expect(xml).toMatch(/&gt; 80CA9F7F00\n&lt; 9F7F2A[0-9A-F]+ 9000 \(\d/);

    // A stray control character (from a title, a message or an echo) would make the XML unreadable: it is written visibly.
    const bad: RunResult = { ...r, cases: [{ ...r.cases[1], title: 'bell\u0007 and \u001b[31mred', message: 'nul\u0000 lone \ud800' }] };
    const badXml = junitXml(bad);
    expect(badXml).toContain('bell\\x07 and \\x1B[31mred');
    expect(badXml).toContain('nul\\x00 lone \\uD800');
    writeFileSync(file, badXml);
    expect(spawnSync('xmllint', ['--noout', '--schema', join(root, 'conformance', 'junit.xsd'), file]).status).toBe(0);
  });

  it('xmlEscape: markup characters, attribute whitespace, forbidden characters', () => {
    expect(xmlEscape(`a<b>&"c'`)).toBe('a&lt;b&gt;&amp;&quot;c\'');
    expect(xmlEscape(`'\n\t`, true)).toBe('&apos;&#10;&#9;');
    expect(xmlEscape('\n\t')).toBe('\n\t');
    expect(xmlEscape('\u0001\u000b\ufffe😀é')).toBe('\\x01\\x0B\\uFFFE😀é');
  });
});
