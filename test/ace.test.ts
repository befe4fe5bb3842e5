// The phone's Access Control Enforcer (emulator/device/ace.ts) over a VM chip: the ARA-M applet built from
// applet/aram (as in test/aram.test.ts) holds the rules, stored with STORE DATA; the jcasm echo and counter samples
// are the SE applications apps ask for. Covers open/deny, SHA-256 vs SHA-1, AID shadowing, APDU filters, NEVER, the
// refresh-tag cache, no ARA-M, OMAPI's transmit restrictions, closing, T=0 and malformed rule data.
// Without javac the tests are skipped unless JPKI_REQUIRE_JDK=1.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ROOT, apiClassesIn, buildSample, loadProductApplet } from '../applet/build.ts';
import type { Chip } from '../emulator/card.ts';
import { fromHex, hex } from '../emulator/bytes.ts';
import type { SeChannel } from '../emulator/device/ace.ts';
import { ARA_M_AID, SecurityError, SeError, claForChannel, createAce } from '../emulator/device/ace.ts';
import { AraRulesError } from '../emulator/device/ara-rules.ts';
import { ASM_SAMPLES, sampleBlock } from './fixtures/asm/samples.ts';
import { ISD, secure, tx } from './helpers/chip.ts';
import { gpInstall, gpLoad, loadAndInstall, lv, vmChip } from './helpers/vm-chip.ts';

const HAVE_JDK = spawnSync('javac', ['-version']).status === 0;
const SKIP = !HAVE_JDK && process.env.JPKI_REQUIRE_JDK !== '1';
if (SKIP) console.warn('ace: javac not found on PATH, skipping (set JPKI_REQUIRE_JDK=1 to fail instead)');

const ARAM = loadProductApplet('aram');

const ECHO = hex(ASM_SAMPLES.echo.appletAid);
const COUNTER = hex(ASM_SAMPLES.counter.appletAid);

// TLV builders (BER lengths 81 for 128..255).
const len = (h: string): string => {
  const n = h.length / 2;
  return n < 0x80 ? n.toString(16).padStart(2, '0') : '81' + n.toString(16).padStart(2, '0');
};
const tlv = (tag: string, v = ''): string => (tag + len(v) + v).toUpperCase();
const rule = (aid: string, h: string, ar: string) => tlv('E2', tlv('E1', aid + tlv('C1', h)) + tlv('E3', ar));
const forAid = (aid: string) => tlv('4F', aid);
const ALL_AIDS = tlv('4F');
const ALL_APPS = '';
const ALWAYS = tlv('D0', '01');
const NEVER = tlv('D0', '00');

// Device apps: the ACE hashes whatever DER it is given, so distinct byte strings stand for signing certificates.
const CERT1 = fromHex('3082000A' + 'A1'.repeat(10));
const CERT2 = fromHex('3082000A' + 'B2'.repeat(10));
const sha1 = (c: Uint8Array) => createHash('sha1').update(c).digest('hex').toUpperCase();
const sha256 = (c: Uint8Array) => createHash('sha256').update(c).digest('hex').toUpperCase();
const APP1 = { certificates: [CERT1] };
const APP2 = { certificates: [CERT2] };

let work = '';
let aramBlock: Uint8Array;

beforeAll(() => {
  if (SKIP) return;
  work = mkdtempSync(join(tmpdir(), 'jpki-ace-'));
  const b = buildSample(ARAM, new Map(), {
    apiClasses: apiClassesIn(work),
    classesRoot: join(work, 'classes'),
    capRoot: join(work, 'cap'),
    samplesDir: join(ROOT, 'applet'),
  });
  if (!b.ok) throw new Error(`aram build failed:\n${b.compile.output}\n${b.messages.join('\n')}`);
  aramBlock = b.block!;
}, 120_000);

afterAll(() => {
  if (work) rmSync(work, { recursive: true, force: true });
});

interface Phone {
  chip: Chip;
  /** Every APDU the ACE sent, in hex. */
  sent: string[];
  transmit: (apdu: Uint8Array) => Promise<Uint8Array>;
}

/** A chip with the echo and counter samples and (unless told otherwise) the ARA-M with direct STORE DATA enabled. */
async function phone(opts: { aram?: boolean; protocol?: 'T=0' | 'T=1' } = {}): Promise<Phone> {
  const { chip } = vmChip({ protocol: opts.protocol });
  if (opts.aram !== false) {
    const sc = await secure(chip);
    expect((await gpLoad(sc, ARAM.packageAid, aramBlock)).sw).toBe(0x9000);
    expect((await gpInstall(sc, ARAM.packageAid, hex(ARA_M_AID), hex(ARA_M_AID), '01')).sw).toBe(0x9000);
  }
  await loadAndInstall(chip, hex(ASM_SAMPLES.echo.packageAid), sampleBlock('echo'), ECHO);
  await loadAndInstall(chip, hex(ASM_SAMPLES.counter.packageAid), sampleBlock('counter'), COUNTER);
  const sent: string[] = [];
  return {
    chip,
    sent,
    transmit: async (a) => {
      sent.push(hex(a));
      return chip.transmit(a);
    },
  };
}

/** STORE DATA to the ARA-M on the basic channel, then the ISD again (the ARA-M is not multi-selectable). */
function store(chip: Chip, cmd: string): void {
  expect(tx(chip, '00A40400' + lv(hex(ARA_M_AID)) + '00').sw).toBe(0x9000);
  expect(tx(chip, '80E29000' + lv(cmd)).sw).toBe(0x9000);
  expect(tx(chip, '00A40400' + lv(ISD) + '00').sw).toBe(0x9000);
}
const storeRules = (chip: Chip, ...rules: string[]) => store(chip, tlv('F0', rules.join('')));

/** The rejection of `p` (a SecurityError or SeError), failing the test when it resolves. */
async function refusal(p: Promise<unknown>): Promise<Error> {
  try {
    await p;
  } catch (e) {
    if (e instanceof SecurityError || e instanceof SeError) return e;
    throw e;
  }
  throw new Error('expected a refusal');
}

/** The next channel MANAGE CHANNEL hands out on the basic channel (then closed again): proves what is still open. */
function freeChannel(chip: Chip): number {
  const r = tx(chip, '0070000001');
  expect(r.sw).toBe(0x9000);
  const n = parseInt(r.data, 16);
  expect(tx(chip, hex(Uint8Array.of(claForChannel(0, n), 0x70, 0x80, n))).sw).toBe(0x9000);
  return n;
}

const echo = (ch: SeChannel, data: string) => ch.transmit(fromHex('000100' + '00' + lv(data) + '00'));

describe.skipIf(SKIP)('ACE over a chip with the ARA-M', () => {
  it('lets the app a rule names open a channel, select and transmit; the ACE sets the channel bits', async () => {
    const p = await phone();
    storeRules(p.chip, rule(forAid(ECHO), sha1(CERT1), ALWAYS));
    const ace = createAce(p.transmit);
    const ch = await ace.openLogicalChannel(fromHex(ECHO), APP1);
    expect(ch.number).toBe(1);
    expect(hex(ch.selectResponse)).toBe('9000');
    expect(ch.access).toMatchObject({ reason: 'aid-app', hash: 'sha1', apdu: { kind: 'always' } });
    expect(hex(await echo(ch, 'AABBCC'))).toBe('AABBCC9000');
    expect(hex(await ch.transmit(fromHex('0002000000')))).toBe('000102030405060708090A0B0C0D0E0F109000');
    expect(p.sent.slice(-2)).toEqual(['0101000003AABBCC00', '0102000000']);
    const ch2 = await ace.openLogicalChannel(fromHex(ECHO), APP1).catch((e: Error) => e);
    // echo is not multi-selectable: the SE refuses the second SELECT and the ACE closes what it opened.
    expect(ch2).toBeInstanceOf(SeError);
    expect((ch2 as SeError).sw).toBe(0x6985);
    expect(freeChannel(p.chip)).toBe(2);
    expect(ace.stats()).toMatchObject({ opened: 1, denied: 0, ruleReads: 1, cacheHits: 1 });
    await ch.close();
  });

  it('refuses an app no rule names with a SecurityError, leaving no channel open', async () => {
    const p = await phone();
    storeRules(p.chip, rule(forAid(ECHO), sha1(CERT1), ALWAYS));
    const ace = createAce(p.transmit);
    const e = await refusal(ace.openLogicalChannel(fromHex(ECHO), APP2));
    expect(e).toBeInstanceOf(SecurityError);
    expect(e.message).toBe(`access to ${ECHO} denied: the rules for this AID name other applications only`);
    expect((e as SecurityError).decision?.reason).toBe('aid-other-app');
    // Only the ARA-M channel was opened, and closed again: no MANAGE CHANNEL for the target, no SELECT of echo.
    expect(p.sent.filter((a) => a === '0070000001')).toHaveLength(1);
    expect(p.sent.some((a) => a.includes(ECHO))).toBe(false);
    expect(p.sent.at(-1)).toBe('01708001');
    expect(freeChannel(p.chip)).toBe(1);
    expect(ace.stats()).toMatchObject({ opened: 0, denied: 1 });
  });

  it('prefers the SHA-256 rule to the SHA-1 rule of the same certificate, and accepts SHA-1 alone', async () => {
    const p = await phone();
    storeRules(
      p.chip,
      rule(forAid(ECHO), sha1(CERT1), NEVER),
      rule(forAid(ECHO), sha256(CERT1), ALWAYS),
      rule(forAid(COUNTER), sha1(CERT1), ALWAYS),
      rule(forAid(COUNTER), sha256(CERT2), NEVER),
      rule(forAid(COUNTER), sha1(CERT2), ALWAYS),
    );
    const ace = createAce(p.transmit);
    const a = await ace.openLogicalChannel(fromHex(ECHO), APP1);
    expect(a.access).toMatchObject({ reason: 'aid-app', hash: 'sha256' });
    await a.close();
    const b = await ace.openLogicalChannel(fromHex(COUNTER), APP1);
    expect(b.access).toMatchObject({ reason: 'aid-app', hash: 'sha1' });
    await b.close();
    const e = await refusal(ace.openLogicalChannel(fromHex(COUNTER), APP2));
    expect((e as SecurityError).decision).toMatchObject({ reason: 'aid-app', hash: 'sha256', apdu: { kind: 'never' } });
  });

  it("an AID's own rules shadow the all-AID rules; the all-AID rules serve AIDs without rules", async () => {
    const p = await phone();
    storeRules(p.chip, rule(forAid(ECHO), sha1(CERT1), ALWAYS), rule(ALL_AIDS, ALL_APPS, ALWAYS));
    const ace = createAce(p.transmit);
    expect((await refusal(ace.openLogicalChannel(fromHex(ECHO), APP2))).message).toContain('name other applications only');
    const c = await ace.openLogicalChannel(fromHex(COUNTER), APP2);
    expect(c.access.reason).toBe('all-aids-all-apps');
    expect(hex(await c.transmit(fromHex('0014000002')))).toBe('00009000'); // counter read
    await c.close();
    const e = await ace.openLogicalChannel(fromHex(ECHO), APP1);
    expect(e.access.reason).toBe('aid-app');
    await e.close();
  });

  it('applies APDU filters: matching commands reach the SE, others are refused before it', async () => {
    const p = await phone();
    storeRules(p.chip, rule(forAid(ECHO), sha1(CERT1), tlv('D0', '00020000FFFF0000' + '80CA9F7FFFFFFFFF')));
    const ace = createAce(p.transmit);
    const ch = await ace.openLogicalChannel(fromHex(ECHO), APP1);
    expect(ch.access.apdu.kind).toBe('filter');
    expect(hex(await ch.transmit(fromHex('0002AB0000'))).slice(-4)).toBe('9000');
    expect(hex(await ch.transmit(fromHex('80CA9F7F00')))).toBe('6D00'); // passes the filter; echo knows no CA
    const before = p.sent.length;
    const e = await refusal(echo(ch, '01'));
    expect(e).toBeInstanceOf(SecurityError);
    expect(e.message).toBe('command 00010000 is not allowed by the access rule (APDU filter 00020000/FFFF0000 80CA9F7F/FFFFFFFF)');
    expect(p.sent.length).toBe(before);
    // The channel stays usable after a refused command.
    expect(hex(await ch.transmit(fromHex('0002000000'))).slice(-4)).toBe('9000');
    await ch.close();
  });

  it('refuses a NEVER rule for the named app even though an all-AID rule would allow it', async () => {
    const p = await phone();
    storeRules(p.chip, rule(forAid(ECHO), sha1(CERT1), NEVER + tlv('D1', '01')), rule(ALL_AIDS, ALL_APPS, ALWAYS + tlv('D1', '00')));
    const ace = createAce(p.transmit);
    const e = await refusal(ace.openLogicalChannel(fromHex(ECHO), APP1));
    expect(e.message).toBe(`access to ${ECHO} denied: the aid-app rule grants no APDU access`);
    expect(await ace.nfcEventAllowed(fromHex(ECHO), APP1)).toBe(true);
    expect(await ace.nfcEventAllowed(fromHex(COUNTER), APP1)).toBe(false);
    const c = await ace.openLogicalChannel(fromHex(COUNTER), APP1);
    expect(c.access).toMatchObject({ reason: 'all-aids-all-apps', nfc: false });
    await c.close();
    expect(freeChannel(p.chip)).toBe(1);
  });

  it('reads the rules only when the refresh tag changed', async () => {
    const p = await phone();
    storeRules(p.chip, rule(forAid(ECHO), sha1(CERT1), ALWAYS));
    const ace = createAce(p.transmit);
    const getAll = () => p.sent.filter((a) => a.slice(2) === 'CAFF4000').length;
    await (await ace.openLogicalChannel(fromHex(ECHO), APP1)).close();
    expect(ace.stats()).toMatchObject({ refreshTagReads: 1, ruleReads: 1, cacheHits: 0 });
    expect(getAll()).toBe(1);
    await (await ace.openLogicalChannel(fromHex(ECHO), APP1)).close();
    await refusal(ace.openLogicalChannel(fromHex(ECHO), APP2));
    expect(ace.stats()).toMatchObject({ refreshTagReads: 3, ruleReads: 1, cacheHits: 2 });
    expect(getAll()).toBe(1);
    // A new rule changes the refresh tag: the next open reads again and sees it.
    storeRules(p.chip, rule(forAid(ECHO), sha1(CERT2), ALWAYS));
    const c = await ace.openLogicalChannel(fromHex(ECHO), APP2);
    expect(ace.stats()).toMatchObject({ refreshTagReads: 4, ruleReads: 2, cacheHits: 2 });
    expect(getAll()).toBe(2);
    await c.close();
    // Deleting every rule: read again, and now nobody gets in.
    store(p.chip, 'F100');
    expect((await refusal(ace.openLogicalChannel(fromHex(ECHO), APP1))).message).toContain('no access rule applies');
    expect(ace.stats().ruleReads).toBe(3);
    // reset() forgets the cache even with an unchanged tag.
    ace.reset();
    await refusal(ace.openLogicalChannel(fromHex(ECHO), APP1));
    expect(ace.stats()).toMatchObject({ ruleReads: 4, cacheHits: 2 });
  });

  it('fetches long rule lists with GET DATA [next]', async () => {
    const p = await phone();
    const filler = Array.from({ length: 12 }, (_, i) => rule(forAid('D392F0002601' + i.toString(16).padStart(4, '0')), sha256(CERT2), ALWAYS));
    for (let i = 0; i < filler.length; i += 4) storeRules(p.chip, ...filler.slice(i, i + 4));
    storeRules(p.chip, rule(forAid(ECHO), sha256(CERT1), ALWAYS));
    const ace = createAce(p.transmit);
    const ch = await ace.openLogicalChannel(fromHex(ECHO), APP1);
    expect(ace.stats().nextReads).toBeGreaterThan(0);
    expect(ch.access.reason).toBe('aid-app');
    await ch.close();
  });

  it('denies everything when the SE has no ARA-M', async () => {
    const p = await phone({ aram: false });
    const ace = createAce(p.transmit);
    const e = await refusal(ace.openLogicalChannel(fromHex(ECHO), APP1));
    expect(e).toBeInstanceOf(SecurityError);
    expect(e.message).toBe(`access to ${ECHO} denied: the SE has no ARA-M (A00000015141434C00), so no application gets access`);
    expect((e as SecurityError).decision?.reason).toBe('no-ara-m');
    expect(await ace.nfcEventAllowed(fromHex(ECHO), APP1)).toBe(false);
    expect(ace.stats()).toMatchObject({ araMissing: 2, denied: 1, refreshTagReads: 0 });
    expect(freeChannel(p.chip)).toBe(1);
  });

  it('refuses MANAGE CHANNEL and SELECT by DF name through transmit, not other SELECTs or proprietary INS 70', async () => {
    const p = await phone();
    storeRules(p.chip, rule(forAid(ECHO), sha1(CERT1), ALWAYS));
    const ace = createAce(p.transmit);
    const ch = await ace.openLogicalChannel(fromHex(ECHO), APP1);
    const before = p.sent.length;
    for (const [cmd, what] of [
      ['0070000001', 'MANAGE CHANNEL'],
      ['0070800100', 'MANAGE CHANNEL'],
      ['00A40400' + lv(COUNTER) + '00', 'SELECT by DF name'],
      ['01A4040C' + lv(COUNTER), 'SELECT by DF name'],
    ]) {
      const e = await refusal(ch.transmit(fromHex(cmd)));
      expect(e).toBeInstanceOf(SecurityError);
      expect(e.message).toBe(`${what} is not allowed through transmit`);
    }
    expect(p.sent.length).toBe(before);
    // SELECT by file identifier and a proprietary INS 70 go to the applet, which knows neither.
    expect(hex(await ch.transmit(fromHex('00A40000023F00')))).toBe('6D00');
    expect(hex(await ch.transmit(fromHex('8070000000')))).toBe('6D00');
    expect(p.sent.slice(-2)).toEqual(['01A40000023F00', '8170000000']);
    const bad = await refusal(ch.transmit(fromHex('0001')));
    expect(bad).toBeInstanceOf(SeError);
    expect((bad as SeError).kind).toBe('illegal-argument');
    await ch.close();
  });

  it('closes the channel on close(); the channel then refuses to transmit', async () => {
    const p = await phone();
    storeRules(p.chip, rule(ALL_AIDS, ALL_APPS, ALWAYS));
    const ace = createAce(p.transmit);
    const a = await ace.openLogicalChannel(fromHex(ECHO), APP1);
    const b = await ace.openLogicalChannel(fromHex(COUNTER), APP1);
    expect([a.number, b.number]).toEqual([1, 2]);
    expect(freeChannel(p.chip)).toBe(3);
    await a.close();
    expect(a.closed).toBe(true);
    expect(p.sent.at(-1)).toBe('01708001');
    expect(freeChannel(p.chip)).toBe(1);
    expect(tx(p.chip, '0102000000').sw).toBe(0x6881); // channel 1 no longer exists on the SE
    const e = await refusal(a.transmit(fromHex('0002000000')));
    expect((e as SeError).kind).toBe('illegal-state');
    await a.close(); // idempotent: nothing sent
    expect(p.sent.at(-1)).toBe('01708001');
    expect(hex(await b.transmit(fromHex('0014000002')))).toBe('00009000');
    await b.close();
    expect(freeChannel(p.chip)).toBe(1);
  });

  it('opens the default applet for an empty AID under a C0 rule, without SELECT', async () => {
    const p = await phone();
    storeRules(p.chip, rule(tlv('C0'), sha1(CERT1), ALWAYS));
    const ace = createAce(p.transmit);
    const ch = await ace.openLogicalChannel(new Uint8Array(0), APP1);
    expect(ch.selectResponse.length).toBe(0);
    expect(ch.access.reason).toBe('aid-app');
    expect((await refusal(ace.openLogicalChannel(fromHex(ECHO), APP1))).message).toContain('no access rule applies');
    // The ISD is the default applet here: GET DATA CPLC (9F7F) answers on the channel.
    const r = await ch.transmit(fromHex('80CA9F7F00'));
    expect(hex(r.subarray(0, 3))).toBe('9F7F2A');
    expect(hex(r.subarray(-2))).toBe('9000');
    await ch.close();
    const e = await refusal(ace.openLogicalChannel(fromHex('A000'), APP1));
    expect((e as SeError).kind).toBe('illegal-argument');
  });

  it('works over T=0: 61xx answers are collected with GET RESPONSE on the right channel', async () => {
    const p = await phone({ protocol: 'T=0' });
    storeRules(p.chip, rule(forAid(ECHO), sha256(CERT1), ALWAYS));
    const ace = createAce(p.transmit);
    const ch = await ace.openLogicalChannel(fromHex(ECHO), APP1);
    expect(ch.access.hash).toBe('sha256');
    // A command without Le: the T=0 chip answers 6111, the ACE fetches the 17 bytes with GET RESPONSE on channel 1.
    expect(hex(await ch.transmit(fromHex('00020000')))).toBe('000102030405060708090A0B0C0D0E0F109000');
    expect(p.sent.slice(-2)).toEqual(['01020000', '01C0000011']);
    await ch.close();
  });

  it('reports malformed rule data precisely and opens nothing', async () => {
    const p = await phone();
    storeRules(p.chip, rule(forAid(ECHO), sha1(CERT1), ALWAYS));
    // A faulty ARA-M: the D0 of its GET DATA [all] answer claims two bytes (FF40 2A E2 28 E1 … E3 03 D0 02 01, D0 at 42).
    const corrupt = async (a: Uint8Array) => {
      const r = await p.transmit(a);
      if (a[1] !== 0xca || a[2] !== 0xff || a[3] !== 0x40) return r;
      const out = r.slice();
      const e3 = hex(out).indexOf('E303D00101');
      expect(e3 % 2).toBe(0);
      out[e3 / 2 + 3] = 0x02;
      return out;
    };
    const ace = createAce(corrupt);
    const e = await refusal(ace.openLogicalChannel(fromHex(ECHO), APP1));
    expect(e).toBeInstanceOf(SecurityError);
    const cause = (e as SecurityError).cause;
    expect(cause).toBeInstanceOf(AraRulesError);
    expect((cause as AraRulesError).offset).toBe(42);
    expect(e.message).toBe(
      'access rules could not be read: malformed ARA-M rules: APDU-AR-DO (D0) value of 2 bytes overruns its container (1 left) at offset 42 (FF40 > E2#1 > E3)',
    );
    expect(freeChannel(p.chip)).toBe(1);
    // The bad read is not cached: a healthy transport afterwards reads and opens.
    const ok = createAce(p.transmit);
    await (await ok.openLogicalChannel(fromHex(ECHO), APP1)).close();
    expect(ace.stats()).toMatchObject({ denied: 1, ruleReads: 1 });
    await refusal(ace.openLogicalChannel(fromHex(ECHO), APP1));
    expect(ace.stats()).toMatchObject({ denied: 2, ruleReads: 2, cacheHits: 0 });
  });
});

describe('claForChannel', () => {
  it('sets the channel in the first or further interindustry coding, keeping class, SM and chaining', () => {
    expect(claForChannel(0x00, 1)).toBe(0x01);
    expect(claForChannel(0x80, 3)).toBe(0x83);
    expect(claForChannel(0x84, 2)).toBe(0x86);
    expect(claForChannel(0x10, 1)).toBe(0x11);
    expect(claForChannel(0x03, 1)).toBe(0x01); // the app's own channel bits are replaced
    expect(claForChannel(0x00, 4)).toBe(0x40);
    expect(claForChannel(0x80, 19)).toBe(0xcf);
    expect(claForChannel(0x84, 5)).toBe(0xe1);
    expect(claForChannel(0x0c, 5)).toBe(0x61);
    expect(claForChannel(0x60, 1)).toBe(0x09); // further-coding SM flag → "header not processed" in the first coding
    expect(() => claForChannel(0x20, 1)).toThrow(SeError);
  });
});
