// The Java Card samples (applet/samples) end to end from source: javac against the API stubs, conversion to CAP files by
// applet/build.ts (buildSamples, into a temporary folder), GP INSTALL [for load] + LOAD + INSTALL [for install] under
// SCP03 with instance AID = applet AID, then each sample's APDU table from its README — in-process, and the echo sample
// through a vpcd-side client in listen mode. The real-pcscd path is not repeated here: the Debian vpcd configuration
// exposes two slots (TCP 35963 and 35964), which test/vm-samples.test.ts and test/pcsc.test.ts already use.
// Without javac the tests are skipped unless JPKI_REQUIRE_JDK=1.
import { vpcdPeer } from './helpers/vpcd-peer.ts';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { connect } from 'node:net';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createPublicKey, verify } from 'node:crypto';
import { unzipSync } from 'fflate';
import { fromHex, hex } from '../emulator/bytes.ts';
import { openChip } from '../emulator/card.ts';
import type { Chip } from '../emulator/card.ts';
import { openMemoryStore } from '../emulator/store.ts';
import { Ctrl, listenForVpcd } from '../emulator/transport/vicc.ts';
import { readCapFile } from '../emulator/cap-reader.ts';
import { parseCapPackage } from '../emulator/vm/cap/parse.ts';
import { ROOT, apiClassesIn, buildSample, buildSamples, loadSamples } from '../applet/build.ts';
import type { Sample, SampleBuild } from '../applet/build.ts';
import { ISD, secure, tx } from './helpers/chip.ts';
import { gpInstall, gpLoad, loadAndInstall, lv, vmChip } from './helpers/vm-chip.ts';

const HAVE_JDK = spawnSync('javac', ['-version']).status === 0;
const REQUIRE_JDK = process.env.JPKI_REQUIRE_JDK === '1';
const SKIP = !HAVE_JDK && !REQUIRE_JDK;
if (SKIP) console.warn('applet-samples-e2e: javac not found on PATH, skipping (set JPKI_REQUIRE_JDK=1 to fail instead)');

const samples = loadSamples();
const byName = (n: string): Sample => samples.find((s) => s.name === n)!;
const appletAid = (n: string): string => byName(n).applets[0].aid;
const select = (aid: string) => '00A40400' + lv(aid);
const ascii = (s: string) => hex(new TextEncoder().encode(s));
const short = (v: number) => (v & 0xffff).toString(16).padStart(4, '0').toUpperCase();

let work = '';
let builds: SampleBuild[] = [];
const block = (n: string): Uint8Array => builds.find((b) => b.sample === n)!.block!;

beforeAll(() => {
  if (SKIP) return;
  work = mkdtempSync(join(tmpdir(), 'jpki-samples-e2e-'));
  const api = apiClassesIn(work);
  builds = buildSamples(samples, { apiClasses: api, classesRoot: join(work, 'classes'), capRoot: join(work, 'cap') });
}, 180_000);

afterAll(() => {
  if (work) rmSync(work, { recursive: true, force: true });
});

async function install(chip: Chip, ...names: string[]): Promise<void> {
  for (const n of names) await loadAndInstall(chip, byName(n).packageAid, block(n), appletAid(n));
}

describe.skipIf(SKIP)('samples: Java source → CAP (applet/build.ts)', () => {
  it('every sample compiles and converts with no diagnostics, in dependency order', () => {
    expect(builds.map((b) => [b.sample, b.ok, b.messages])).toEqual(samples.map((s) => [s.name, true, []]));
  });

  it('writes <name>.cap (the Load File Data Block) and <name>.jar, both readable back with the right AIDs', () => {
    for (const b of builds) {
      const s = byName(b.sample);
      expect(new Uint8Array(readFileSync(b.capPath!))).toEqual(b.block);
      for (const bytes of [b.block!, new Uint8Array(readFileSync(b.jarPath!))]) {
        const pkg = parseCapPackage(readCapFile(bytes));
        expect(hex(pkg.package.aid), b.sample).toBe(s.packageAid);
        expect(pkg.applets.map((a) => hex(a.aid))).toEqual(s.applets.map((a) => a.aid));
      }
      const jar = unzipSync(new Uint8Array(readFileSync(b.jarPath!)));
      expect(Object.keys(jar)).toContain(`${s.package.replace(/\./g, '/')}/javacard/Header.cap`);
    }
    // wallet exports WalletInterface; shop imports the wallet package by its AID.
    const wallet = parseCapPackage(readCapFile(block('wallet')));
    const shop = parseCapPackage(readCapFile(block('shop')));
    expect(wallet.flags & 0x02).toBe(0x02);
    expect(shop.imports.map((i) => hex(i.aid))).toContain(byName('wallet').packageAid);
  });

  it('reports a converter error as file:line: message and writes no CAP', () => {
    const dir = join(work, 'bad-samples');
    const src = join(dir, 'bad/src/com/jpkise/samples/bad');
    mkdirSync(src, { recursive: true });
    writeFileSync(join(src, 'Bad.java'), 'package com.jpkise.samples.bad;\npublic class Bad {\n  static short f(short a) {\n    long x = a;\n    return (short) x;\n  }\n}\n');
    const bad: Sample = { name: 'bad', package: 'com.jpkise.samples.bad', packageAid: 'A0000001510BFF', version: '1.0', applets: [], uses: [] };
    const cap = join(work, 'bad-cap');
    const r = buildSample(bad, new Map(), { apiClasses: apiDir(), classesRoot: join(work, 'bad-classes'), capRoot: cap, samplesDir: dir });
    expect(r.compile.ok).toBe(true);
    expect(r.ok).toBe(false);
    expect(r.messages.join('\n')).toMatch(/com\/jpkise\/samples\/bad\/Bad\.java:4: error: .*long.* in f\(S\)S/);
    expect(existsSync(join(cap, 'bad.cap'))).toBe(false);
  });
});

function apiDir(): string {
  const own = join(work, 'api-classes');
  return existsSync(own) ? own : join(ROOT, 'build/api-classes');
}

describe.skipIf(SKIP)('samples: installed through the ISD under SCP03, answering their READMEs', () => {
  it('echo: echoes the data, 00..10 for INS 02, 6D00 for other INS', async () => {
    const { chip } = vmChip();
    await install(chip, 'echo');
    expect(tx(chip, select(appletAid('echo'))).sw).toBe(0x9000);
    const data = hex(Uint8Array.from({ length: 200 }, (_, i) => (i * 7) & 0xff));
    expect(tx(chip, '00010000' + lv(data) + '00')).toMatchObject({ data, sw: 0x9000 });
    expect(tx(chip, '0001000000')).toMatchObject({ data: '', sw: 0x9000 });
    expect(tx(chip, '0002000000')).toMatchObject({ data: '000102030405060708090A0B0C0D0E0F10', sw: 0x9000 });
    expect(tx(chip, '00FF000000').sw).toBe(0x6d00);
  });

  it('counter: commit increments, abort leaves the value, the value survives a power cycle and a reopened medium', async () => {
    const store = openMemoryStore();
    const { chip } = vmChip({ store });
    await install(chip, 'counter');
    const aid = appletAid('counter');
    expect(tx(chip, select(aid)).sw).toBe(0x9000);
    expect(tx(chip, '0014000000')).toMatchObject({ data: '0000', sw: 0x9000 });
    for (let i = 1; i <= 18; i++) expect(tx(chip, '0010000000').data).toBe(short(i));
    expect(tx(chip, '0012000000')).toMatchObject({ data: '0012', sw: 0x9000 }); // aborted: still 18
    expect(tx(chip, '0014000000').data).toBe('0012');
    expect(tx(chip, '00FF000000').sw).toBe(0x6d00);
    chip.powerDown();
    chip.powerUp();
    expect(tx(chip, select(aid)).sw).toBe(0x9000);
    expect(tx(chip, '0014000000').data).toBe('0012');
    expect(tx(chip, '0010000000').data).toBe('0013');
    const again = openChip({ store });
    expect(tx(again, select(aid)).sw).toBe(0x9000);
    expect(tx(again, '0014000000').data).toBe('0013');
  });

  it('pinsign: 6982 before VERIFY, 63C2/63C1 then success, signatures verify against the modulus, 63C0 then 6983', async () => {
    const { chip } = vmChip();
    await install(chip, 'pinsign');
    const aid = appletAid('pinsign');
    const verifyPin = (p: string) => tx(chip, '00200000' + lv(ascii(p))).sw;
    expect(tx(chip, select(aid)).sw).toBe(0x9000);
    expect(tx(chip, '0024000000').data).toBe('03');
    expect(tx(chip, '00320000' + lv(ascii('hello')) + '00').sw).toBe(0x6982);
    const lo = tx(chip, '0030000000');
    const hi = tx(chip, '0030010000');
    expect([lo.sw, hi.sw, lo.data.length, hi.data.length]).toEqual([0x9000, 0x9000, 256, 256]);
    expect(tx(chip, '0030020000').sw).toBe(0x6b00);
    const n = fromHex(lo.data + hi.data);
    expect(n[0] & 0x80).toBe(0x80);
    const key = createPublicKey({ key: { kty: 'RSA', n: Buffer.from(n).toString('base64url'), e: 'AQAB' }, format: 'jwk' });

    expect(verifyPin('0000')).toBe(0x63c2);
    expect(verifyPin('12345')).toBe(0x63c1);
    expect(tx(chip, '0024000000').data).toBe('01');
    expect(verifyPin('1234')).toBe(0x9000);
    expect(tx(chip, '0024000000').data).toBe('03');
    for (const msg of ['hello', 'x'.repeat(200)]) {
      const r = tx(chip, '00320000' + lv(ascii(msg)) + '00');
      expect(r.sw).toBe(0x9000);
      expect(r.data.length).toBe(512);
      expect(verify('sha256', Buffer.from(msg), key, fromHex(r.data))).toBe(true);
      expect(verify('sha256', Buffer.from(msg + '!'), key, fromHex(r.data))).toBe(false);
    }
    // Deselect resets the validation (README), so a new SELECT needs VERIFY again.
    expect(tx(chip, select(aid)).sw).toBe(0x9000);
    expect(tx(chip, '00320000' + lv(ascii('hello')) + '00').sw).toBe(0x6982);
    expect(verifyPin('1111')).toBe(0x63c2);
    expect(verifyPin('2222')).toBe(0x63c1);
    expect(verifyPin('3333')).toBe(0x63c0);
    expect(verifyPin('1234')).toBe(0x6983); // blocked, even with the right PIN
    expect(tx(chip, '00320000' + lv(ascii('hello')) + '00').sw).toBe(0x6982);
    expect(tx(chip, '00FF000000').sw).toBe(0x6d00);
  }, 60_000);

  it('wallet + shop: the shop buys through the Shareable interface; balance, credit and refusals', async () => {
    const { chip } = vmChip();
    await install(chip, 'wallet', 'shop');
    const wallet = appletAid('wallet');
    const shop = appletAid('shop');
    expect(tx(chip, select(wallet)).sw).toBe(0x9000);
    expect(tx(chip, '0050000000')).toMatchObject({ data: '0064', sw: 0x9000 });
    expect(tx(chip, '0052000002001400')).toMatchObject({ data: '0078', sw: 0x9000 }); // +20 → 120
    expect(tx(chip, '005200000100').sw).toBe(0x6700);
    expect(tx(chip, '00520000020000').sw).toBe(0x6a80);
    expect(tx(chip, '00520000027FFF').sw).toBe(0x6a84);
    expect(tx(chip, '00FF000000').sw).toBe(0x6d00);

    expect(tx(chip, select(shop)).sw).toBe(0x9000);
    expect(tx(chip, '0062000000')).toMatchObject({ data: '0078', sw: 0x9000 });
    expect(tx(chip, '0060000002001E00')).toMatchObject({ data: '005A', sw: 0x9000 }); // −30 → 90
    expect(tx(chip, '0060000002005A00')).toMatchObject({ data: '0000', sw: 0x9000 }); // −90 → 0
    expect(tx(chip, '00600000020001').sw).toBe(0x6985); // balance too low
    expect(tx(chip, '00600000020000').sw).toBe(0x6a80); // price ≤ 0
    expect(tx(chip, '0060000002FFFF').sw).toBe(0x6a80);
    expect(tx(chip, '006000000100').sw).toBe(0x6700);
    expect(tx(chip, '00FF000000').sw).toBe(0x6d00);
    expect(tx(chip, select(wallet)).sw).toBe(0x9000);
    expect(tx(chip, '0050000000').data).toBe('0000');
  }, 60_000);

  it('shop: 6A88 without a wallet instance, 6982 when installed under another AID', async () => {
    const { chip } = vmChip();
    const sc = await secure(chip);
    const w = byName('wallet');
    const s = byName('shop');
    expect((await gpLoad(sc, w.packageAid, block('wallet'))).sw).toBe(0x9000); // package only, no wallet instance
    expect((await gpLoad(sc, s.packageAid, block('shop'))).sw).toBe(0x9000);
    expect((await gpInstall(sc, s.packageAid, appletAid('shop'), appletAid('shop'))).sw).toBe(0x9000);
    const other = 'A0000001510B000502';
    expect((await gpInstall(sc, s.packageAid, appletAid('shop'), other)).sw).toBe(0x9000);
    expect(tx(chip, select(appletAid('shop'))).sw).toBe(0x9000);
    expect(tx(chip, '0062000000').sw).toBe(0x6a88);
    expect(tx(chip, '0060000002000100').sw).toBe(0x6a88);

    expect(tx(chip, select(ISD)).sw).toBe(0x9000);
    const sc2 = await secure(chip);
    expect((await gpInstall(sc2, w.packageAid, appletAid('wallet'), appletAid('wallet'))).sw).toBe(0x9000);
    expect(tx(chip, select(appletAid('shop'))).sw).toBe(0x9000);
    expect(tx(chip, '0062000000')).toMatchObject({ data: '0064', sw: 0x9000 });
    expect(tx(chip, select(other)).sw).toBe(0x9000);
    expect(tx(chip, '0062000000').sw).toBe(0x6982); // the wallet shares only with A0000001510B000501
    expect(tx(chip, '0060000002000100').sw).toBe(0x6982);
  }, 60_000);
});

describe.skipIf(SKIP)('samples: the converted echo applet through vpcd (listen mode)', () => {
  it('a vpcd-side client dials the listening vicc: power on, ATR, SELECT, echo, 00..10, 6D00', async () => {
    const { chip } = vmChip();
    await install(chip, 'echo');
    chip.powerDown();
    const h = listenForVpcd(chip, { port: 0 });
    await h.ready;
    const s = connect({ host: '127.0.0.1', port: h.port });
    try {
      await new Promise<void>((res, rej) => s.once('connect', () => res()).once('error', rej));
      const p = vpcdPeer(s);
      p.send(Uint8Array.of(Ctrl.POWER_ON));
      expect(await p.ask(Uint8Array.of(Ctrl.GET_ATR))).toBe(hex(chip.atr));
      expect(await p.ask(select(appletAid('echo')))).toBe('9000');
      expect(await p.ask('00010000051122334455' + '00')).toBe('11223344559000');
      expect(await p.ask('0002000000')).toBe('000102030405060708090A0B0C0D0E0F109000');
      expect(await p.ask('00FF000000')).toBe('6D00');
    } finally {
      s.destroy();
      await h.close();
    }
  });
});
