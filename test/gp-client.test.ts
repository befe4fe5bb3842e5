// The GlobalPlatform host client against in-memory chips: every operation through real APDUs and SCP03.
import { describe, it, expect } from 'vitest';
import { openChip } from '../emulator/card.ts';
import type { Chip } from '../emulator/card.ts';
import { DEFAULT_PROFILE } from '../emulator/profile.ts';
import { fromHex, hex } from '../emulator/bytes.ts';
import { kcv } from '../emulator/scp03.ts';
import type { KeySet } from '../emulator/scp03.ts';
import type { ApduTransport, GpClient } from '../emulator/host/gp-client.ts';
import { DEFAULT_TEST_KEY, GpError, connectGp, keySetFrom, maxShortData } from '../emulator/host/gp-client.ts';
import { formatEntries, parsePrivileges, parseStatusLegacy } from '../emulator/host/gp-data.ts';
import { buildCap } from './fixtures/cap-builder.ts';
// *_APP: the VM installs only applets whose install registers an instance.
import { HELLO_APP as HELLO, HELLO_APPLET_AID, HELLO_PACKAGE_AID, MULTI_APP as MULTI, MULTI_APPLET_AIDS, MULTI_PACKAGE_AID } from './fixtures/samples.ts';

const ISD = 'A000000151000000';
const DEFAULT_KEYS = keySetFrom(DEFAULT_TEST_KEY);
const PKG = hex(HELLO_PACKAGE_AID);
const APP = hex(HELLO_APPLET_AID);

/** A Target-shaped adapter over an in-memory chip, counting commands by INS. */
function wire(chip: Chip, edit?: (cmd: Uint8Array, rsp: Uint8Array) => Uint8Array) {
  const sent: Uint8Array[] = [];
  const t: ApduTransport = {
    async transmit(apdu) {
      sent.push(apdu);
      const r = chip.transmit(apdu);
      return edit ? edit(apdu, r) : r;
    },
  };
  return { t, sent, count: (ins: number) => sent.filter((a) => a[1] === ins).length };
}

async function admin(chip: Chip, level = 0x03, sd?: string, keys: KeySet = DEFAULT_KEYS, kvn = 0): Promise<GpClient> {
  const gp = await connectGp(wire(chip).t, sd ? { sd } : {});
  await gp.authenticate({ keys, kvn, level });
  return gp;
}

describe('connect and info', () => {
  it('finds the ISD and reads CPLC, IIN, CIN, card data, key information and the sequence counter without a session', async () => {
    const chip = openChip();
    const gp = await connectGp(wire(chip).t);
    expect(gp.sdAid).toBe(ISD);
    const info = await gp.info();
    const p = DEFAULT_PROFILE;
    expect(info.iin).toBe(hex(p.iin));
    expect(info.cin).toBe(hex(p.cin));
    expect(info.kdd).toBe(hex(p.kdd));
    expect(info.cplc!.find((f) => f.name === 'ICSerialNumber')!.value).toBe('1234ABCD');
    expect(info.cplc!.find((f) => f.name === 'ICFabricationDate')).toMatchObject({ value: '6102', date: 'year ending in 6, day 102' });
    expect(info.cardData).toMatchObject({ gpVersion: '2.3.1', scp: { scp: 3, i: 0x70 } });
    expect(info.keys).toEqual([1, 2, 3].map((id) => ({ id, kvn: 0x30, components: [{ type: 0x88, length: 16 }] })));
    expect(info.sequenceCounter).toBe(0);
    expect(info.resources!.applications).toBe(1);
    expect(info.missing).toEqual([]);
    await gp.authenticate({ keys: DEFAULT_KEYS });
    // Inside the session GET DATA is wrapped; the counter moved on with INITIALIZE UPDATE.
    expect((await gp.info()).sequenceCounter).toBe(1);
    // Ending the session leaves the card answering plain commands again (a MACed session refuses them with 6982).
    await gp.end();
    expect(gp.session).toBeNull();
    expect(hex(chip.transmit(fromHex('80CA004200')))).toBe('4203' + hex(p.iin) + '9000');
  });

  it('selects a named security domain and reports a missing one with its status word', async () => {
    const chip = openChip();
    await expect(connectGp(wire(chip).t, { sd: 'A0000001515350419999' })).rejects.toThrow('SELECT A0000001515350419999 failed: 6A82');
    await expect(connectGp(wire(chip).t, { sd: 'A000' })).rejects.toThrow('5 to 16 allowed');
    expect((await connectGp(wire(chip).t, { sd: ISD })).fci[0]).toBe(0x6f);
  });

  it('fetches long answers with GET RESPONSE on a T=0 chip', async () => {
    const chip = openChip({ protocol: 'T=0' });
    const gp = await connectGp(wire(chip).t);
    // No Le: the card answers 61xx and the client collects the data.
    const r = await gp.transmit({ cla: 0x80, ins: 0xca, p1: 0x9f, p2: 0x7f });
    expect(r.sw).toBe(0x9000);
    expect(hex(r.data)).toBe('9F7F2A' + hex(DEFAULT_PROFILE.cplc));
  });

  it('rejects wrong keys, an unknown key version and an invalid level with precise messages', async () => {
    const chip = openChip();
    const gp = await connectGp(wire(chip).t);
    await expect(gp.authenticate({ keys: keySetFrom(new Uint8Array(16).fill(7)) })).rejects.toThrow('card cryptogram does not verify');
    await expect(gp.authenticate({ keys: DEFAULT_KEYS, kvn: 0x39 })).rejects.toThrow('INITIALIZE UPDATE failed: SW 6A88');
    await expect(gp.authenticate({ keys: DEFAULT_KEYS, level: 0x31 })).rejects.toThrow('security level 31');
    await expect(gp.authenticate({ keys: keySetFrom(new Uint8Array(15)) })).rejects.toThrow('Key-ENC has 15 bytes');
    await expect(gp.putKey({ keys: DEFAULT_KEYS, newKvn: 0x31 })).rejects.toThrow('authenticate first');
  });
});

describe('list', () => {
  it.each([0x01, 0x03, 0x11, 0x13, 0x33])('lists ISD, applications and load files at level %s', async (level) => {
    const chip = openChip();
    const gp = await admin(chip, level);
    const l = await gp.list();
    expect(l.isd).toEqual([expect.objectContaining({ kind: 'ISD', aid: ISD, lifeCycle: 0x0f, privileges: 0x9edc00 })]);
    expect(l.apps).toEqual([]);
    // Nine load files (the chip image's API packages and the SD package) need 6310 continuation.
    expect(l.loadFiles.length).toBe(9);
    expect(l.loadFiles.find((e) => e.aid === 'A0000001515350')).toMatchObject({ kind: 'PKG', modules: ['A000000151535041'], version: [1, 0] });
    expect(formatEntries(l.isd)[0]).toBe(`ISD: ${ISD} (SECURED)`);
  });

  it('falls back to the legacy GET STATUS format when the card refuses the tag format', async () => {
    const chip = openChip();
    // The card processes every command (MAC chains stay in step); answers to tag-format GET STATUS become 6A86.
    const w = wire(chip, (cmd, rsp) => (cmd[1] === 0xf2 && cmd[3] & 0x02 ? fromHex('6A86') : rsp));
    const gp = await connectGp(w.t);
    await gp.authenticate({ keys: DEFAULT_KEYS, level: 0x03 });
    const l = await gp.list();
    expect(l.isd).toEqual([{ kind: 'ISD', aid: ISD, lifeCycle: 0x0f, privileges: 0x9e0000, modules: [] }]);
    expect(l.loadFiles.find((e) => e.aid === 'A0000001515350')!.modules).toEqual(['A000000151535041']);
    // Once known, the legacy format is used straight away.
    const before = w.count(0xf2);
    await gp.status(0x80);
    expect(w.count(0xf2) - before).toBe(1);
  });

  it('parses legacy entries and names truncation', () => {
    expect(parseStatusLegacy(fromHex('05F000000001' + '07' + '00'), 0x40)).toEqual([
      { kind: 'APP', aid: 'F000000001', lifeCycle: 7, privileges: 0, modules: [] },
    ]);
    expect(() => parseStatusLegacy(fromHex('05F0000000'), 0x40)).toThrow('truncated in AID, life cycle and privileges at offset 1');
  });
});

describe('load, install, delete', () => {
  it('loads a CAP (JAR) in blocks, installs its applet and deletes with related objects', async () => {
    const chip = openChip();
    const w = wire(chip);
    const gp = await connectGp(w.t);
    await gp.authenticate({ keys: DEFAULT_KEYS, level: 0x03 });
    const seen: number[] = [];
    const r = await gp.load(HELLO.jar, { blockSize: 64, onBlock: (n) => seen.push(n) });
    expect(r).toMatchObject({ elf: PKG, modules: [APP], version: [1, 0] });
    expect(r.blocks).toBe(Math.ceil((r.bytes + 3) / 64));
    expect(r.blocks).toBeGreaterThan(1);
    expect(w.count(0xe8)).toBe(r.blocks);
    expect(seen).toEqual(Array.from({ length: r.blocks }, (_, i) => i + 1));
    await gp.install({ elf: PKG, module: APP, params: fromHex('0102') });
    const apps = (await gp.list()).apps;
    expect(apps).toEqual([expect.objectContaining({ kind: 'APP', aid: APP, lifeCycle: 0x07, elf: PKG, sd: ISD, privileges: 0 })]);
    expect(chip.model().registry.apps[1].params).toBe('0102');
    const err = await gp.deleteObject(PKG).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(GpError);
    expect((err as GpError).sw).toBe(0x6985);
    expect((err as GpError).message).toBe(`DELETE ${PKG} failed: 6985 conditions of use not satisfied`);
    await gp.deleteObject(PKG, true);
    const after = await gp.list();
    expect(after.apps).toEqual([]);
    expect(after.loadFiles.map((e) => e.aid)).not.toContain(PKG);
  });

  it('loads a raw component file with the default block size, installs in two steps and a second instance', async () => {
    const chip = openChip();
    const w = wire(chip);
    const gp = await connectGp(w.t);
    await gp.authenticate({ keys: DEFAULT_KEYS, level: 0x33 });
    const r = await gp.load(MULTI.block, { hash: 'sha256' });
    expect(r.modules).toEqual(MULTI_APPLET_AIDS.map(hex));
    expect(w.count(0xe8)).toBe(Math.ceil((r.bytes + 3) / maxShortData(0x33, false)));
    const [a1, a2] = MULTI_APPLET_AIDS.map(hex);
    await gp.install({ elf: hex(MULTI_PACKAGE_AID), module: a1, selectable: false });
    expect((await gp.status(0x40))[0].lifeCycle).toBe(0x03);
    await gp.makeSelectable(a1);
    await gp.install({ elf: hex(MULTI_PACKAGE_AID), module: a2, aid: a2 + '01', privileges: parsePrivileges('card-reset') });
    const apps = await gp.status(0x40);
    expect(apps.map((a) => [a.aid, a.lifeCycle])).toEqual([
      [a1, 0x07],
      [a2 + '01', 0x07],
    ]);
    expect(apps[1].privileges).toBe(0x040000);
    await expect(gp.install({ elf: hex(MULTI_PACKAGE_AID), module: a1 })).rejects.toThrow(`INSTALL [for install and make selectable] ${a1} failed: 6985`);
  });

  it('refuses a load file that needs more than 256 blocks before sending anything', async () => {
    const chip = openChip();
    const w = wire(chip);
    const gp = await connectGp(w.t);
    await gp.authenticate({ keys: DEFAULT_KEYS });
    const big = buildCap({ packageAid: fromHex('F00000000110'), applets: Array.from({ length: 12 }, (_, i) => ({ aid: fromHex('F0000000011001' + hex(Uint8Array.of(i))) })), register: true });
    await expect(gp.load(big.block, { blockSize: 1 })).rejects.toThrow(/needs \d+ blocks of 1 bytes; LOAD allows 256/);
    expect(w.count(0xe6)).toBe(0);
    await expect(gp.load(fromHex('0700'))).rejects.toThrow('CAP');
  });
});

const k = (b: number, n = 16) => new Uint8Array(n).fill(b);

describe('keys', () => {
  it('adds an AES-256 key set, authenticates with it, replaces it with AES-192 and deletes it', async () => {
    const chip = openChip();
    const gp = await admin(chip);
    const big: KeySet = { enc: k(1, 32), mac: k(2, 32), dek: k(3, 32) };
    const r = await gp.putKey({ keys: big, newKvn: 0x31 });
    expect(r.kvn).toBe(0x31);
    expect(r.kcvs.map(hex)).toEqual([big.enc, big.mac, big.dek].map((x) => hex(kcv(x))));
    const withBig = await admin(chip, 0x33, undefined, big, 0x31);
    expect(withBig.session).toMatchObject({ kvn: 0x31, level: 0x33 });
    const mid: KeySet = { enc: k(4, 24), mac: k(5, 24), dek: k(6, 24) };
    await withBig.putKey({ keys: mid, newKvn: 0x32, replaceKvn: 0x31 });
    await expect(admin(chip, 0x03, undefined, big, 0x31)).rejects.toThrow('6A88');
    const withMid = await admin(chip, 0x03, undefined, mid, 0x32);
    expect((await withMid.info()).keys!.filter((x) => x.kvn === 0x32).map((x) => x.components[0].length)).toEqual([24, 24, 24]);
    await withMid.deleteKeys({ kvn: 0x30 });
    expect((await withMid.info()).keys!.map((x) => x.kvn)).toEqual([0x32, 0x32, 0x32]);
    await expect(gp.putKey({ keys: { ...mid, mac: k(1, 20) }, newKvn: 0x33 })).rejects.toThrow('new Key-MAC has 20 bytes');
  });

  it("checks the card's key check values", async () => {
    const chip = openChip();
    // At level 03 responses carry no R-MAC, so a tampered KCV reaches the client's own check.
    const w = wire(chip, (cmd, rsp) => {
      if (cmd[1] !== 0xd8) return rsp;
      const t = rsp.slice();
      t[3] ^= 0xff;
      return t;
    });
    const gp = await connectGp(w.t);
    await gp.authenticate({ keys: DEFAULT_KEYS, level: 0x03 });
    await expect(gp.putKey({ keys: keySetFrom(k(9)), newKvn: 0x31 })).rejects.toThrow(/card's KCV .* for key 1 differs/);
  });
});

describe('application provider security domains', () => {
  it('creates an APSD, gives it its own key set, loads and installs under it, and deletes it with its content', async () => {
    const chip = openChip();
    const apsd = 'A000000151535041AB';
    const isd = await admin(chip);
    await isd.createDomain({ aid: apsd, privileges: parsePrivileges('authorized-management'), scpI: 0x70 });
    const sds = await isd.status(0x40);
    expect(sds).toEqual([expect.objectContaining({ kind: 'SD', aid: apsd, lifeCycle: 0x07, privileges: 0x804000, sd: ISD })]);

    const own: KeySet = { enc: k(0xa1), mac: k(0xa2), dek: k(0xa3) };
    const first = await admin(chip, 0x03, apsd);
    expect(first.sdAid).toBe(apsd);
    await first.putKey({ keys: own, newKvn: 0x30, replaceKvn: 0x30 });
    await expect(admin(chip, 0x03, apsd)).rejects.toThrow('card cryptogram does not verify');
    const sd = await admin(chip, 0x13, apsd, own, 0x30);
    await sd.load(HELLO.jar);
    await sd.install({ elf: PKG, module: APP });
    expect((await sd.status(0x40)).map((e) => e.aid)).toEqual([apsd, APP]);

    const isd2 = await admin(chip);
    const all = await isd2.list();
    expect(all.apps.find((e) => e.aid === APP)!.sd).toBe(apsd);
    expect(all.loadFiles.find((e) => e.aid === PKG)!.sd).toBe(apsd);
    await expect(isd2.deleteObject(apsd)).rejects.toThrow('6985');
    await isd2.deleteObject(apsd, true);
    const left = await isd2.list();
    expect(left.apps).toEqual([]);
    expect(left.loadFiles.map((e) => e.aid)).not.toContain(PKG);
  });
});

describe('set status', () => {
  it('locks and unlocks an application, and locks the card', async () => {
    const chip = openChip();
    const gp = await admin(chip);
    await gp.load(HELLO.block);
    await gp.install({ elf: PKG, module: APP });
    await gp.setStatus('app', 0x80, APP);
    const locked = (await gp.status(0x40))[0];
    expect(locked.lifeCycle).toBe(0x87);
    expect(formatEntries([locked])[0]).toBe(`APP: ${APP} (LOCKED(SELECTABLE))`);
    await expect(gp.setStatus('app', 0x80, APP)).rejects.toThrow(`SET STATUS ${APP} 80 failed: 6985`);
    await gp.setStatus('app', 0x00, APP);
    expect((await gp.status(0x40))[0].lifeCycle).toBe(0x07);
    await expect(gp.setStatus('domain', 0x80, APP)).rejects.toThrow('6A80');
    await gp.setStatus('card', 0x7f);
    // A locked card still lets the ISD be selected (6283) and listed.
    const again = await admin(chip);
    expect((await again.status(0x80))[0]).toMatchObject({ lifeCycle: 0x7f });
    expect(formatEntries(await again.status(0x80))[0]).toBe(`ISD: ${ISD} (CARD_LOCKED)`);
  });
});
