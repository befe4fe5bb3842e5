// The GlobalPlatform card manager through its APDUs (GPCS 2.3.1 §11), over SCP03.
import { describe, it, expect } from 'vitest';
import { newChip, tx, secure, DEFAULT_KEYS, ISD } from './helpers/chip.ts';
import { openChip } from '../emulator/card.ts';
import { DEFAULT_PROFILE } from '../emulator/profile.ts';
import { concat, fromHex, hex } from '../emulator/bytes.ts';
import { encodeCommand } from '../emulator/apdu.ts';
import { parseTlvs, tlv, encodeLength } from '../emulator/tlv.ts';
import { encryptKeyData, kcv } from '../emulator/scp03.ts';
import type { KeySet } from '../emulator/scp03.ts';
// HELLO_APP: the VM installs only applets whose install registers an instance.
import { HELLO_APP as HELLO, HELLO_PACKAGE_AID, HELLO_APPLET_AID, LIBRARY, LIBRARY_PACKAGE_AID } from './fixtures/samples.ts';
import { buildCap } from './fixtures/cap-builder.ts';

type Sc = Awaited<ReturnType<typeof secure>>;
const lv = (h: string) => (h.length / 2).toString(16).padStart(2, '0').toUpperCase() + h;
const apdu = (cla: number, ins: number, p1: number, p2: number, data: string, ne = 0) =>
  hex(encodeCommand({ cla, ins, p1, p2, data: fromHex(data), ne }));

async function load(sc: Sc, elfAid: string, block: Uint8Array, sdAid = '') {
  const r = await sc.send(apdu(0x80, 0xe6, 0x02, 0x00, lv(elfAid) + lv(sdAid) + '00' + '00' + '00', 256));
  if (r.sw !== 0x9000) return r;
  const file = concat(Uint8Array.of(0xc4), encodeLength(block.length), block);
  let last = r;
  for (let i = 0, n = 0; i < file.length; i += 200, n++) {
    const chunk = file.subarray(i, i + 200);
    last = await sc.send(apdu(0x80, 0xe8, i + 200 >= file.length ? 0x80 : 0x00, n, hex(chunk), 256));
    if (last.sw !== 0x9000) return last;
  }
  return last;
}

async function install(sc: Sc, elf: string, mod: string, app: string, privs = '00', params = 'C900', p1 = 0x0c) {
  return sc.send(apdu(0x80, 0xe6, p1, 0x00, lv(elf) + lv(mod) + lv(app) + lv(privs) + lv(params) + '00', 256));
}

function statusEntries(data: string) {
  return parseTlvs(fromHex(data)).map((e) => {
    const f = parseTlvs(e.value);
    const get = (t: number) => f.find((x) => x.tag === t)?.value;
    return {
      aid: hex(get(0x4f)!),
      life: get(0x9f70)?.[0],
      privs: get(0xc5) ? hex(get(0xc5)!) : undefined,
      elf: get(0xc4) ? hex(get(0xc4)!) : undefined,
      sd: get(0xcc) ? hex(get(0xcc)!) : undefined,
      modules: f.filter((x) => x.tag === 0x84).map((x) => hex(x.value)),
    };
  });
}

async function status(sc: Sc, p1: number) {
  let r = await sc.send(apdu(0x80, 0xf2, p1, 0x02, '4F00', 256));
  let data = r.data;
  while (r.sw === 0x6310) {
    r = await sc.send(apdu(0x80, 0xf2, p1, 0x03, '4F00', 256));
    data += r.data;
  }
  return { sw: r.sw, entries: r.sw === 0x9000 ? statusEntries(data) : [] };
}

function putKeyData(newKvn: number, keys: KeySet, dek: Uint8Array, badKcv = false): string {
  const one = (k: Uint8Array) => {
    const c = encryptKeyData(dek, k);
    const check = badKcv ? fromHex('000000') : kcv(k);
    return concat(Uint8Array.of(0x88, c.length + 1, k.length), c, Uint8Array.of(3), check);
  };
  return hex(concat(Uint8Array.of(newKvn), one(keys.enc), one(keys.mac), one(keys.dek)));
}

describe('GET DATA (GPCS §11.3)', () => {
  it('answers IIN, CIN, card data, key information, KDD, sequence counter and CPLC', () => {
    const chip = newChip();
    const p = DEFAULT_PROFILE;
    expect(tx(chip, '80CA004200').data).toBe('42' + lv(hex(p.iin)));
    expect(tx(chip, '80CA004500').data).toBe('45' + lv(hex(p.cin)));
    expect(tx(chip, '80CA00CF00').data).toBe('CF0A' + hex(p.kdd));
    expect(tx(chip, '80CA00C100').data).toBe('C103000000');
    const cplc = tx(chip, '80CA9F7F00');
    expect(cplc.data).toBe('9F7F2A' + hex(p.cplc));
    expect(tx(chip, '80CA00E000').data).toBe('E012' + 'C00401308810' + 'C00402308810' + 'C00403308810');
    const cd = parseTlvs(fromHex(tx(chip, '80CA006600').data))[0];
    expect(cd.tag).toBe(0x66);
    const rec = parseTlvs(parseTlvs(cd.value)[0].value);
    // SCP03 with i=70 announced in tag 64 (GPCS Table H-1).
    expect(hex(rec.find((t) => t.tag === 0x64)!.value)).toBe('06092A864886FC6B040370');
    expect(tx(chip, '80CA00FE00').sw).toBe(0x6a88);
  });
});

describe('SCP03 sessions at the ISD (Amd D)', () => {
  it.each([0x01, 0x03, 0x11, 0x13, 0x33])('opens a session at level %s and runs GET STATUS in it', async (level) => {
    const chip = newChip();
    const sc = await secure(chip, level);
    const r = await status(sc, 0x80);
    expect(r.sw).toBe(0x9000);
    expect(r.entries[0]).toMatchObject({ aid: ISD, life: 0x0f, privs: '9EDC00' });
    // The pseudo-random challenge's sequence counter moved on and is durable.
    expect(tx(chip, '80CA00C100').sw).toBe(0x6982); // unprotected command inside a MACed session: refused…
    expect((await sc.send('80CA00C100')).sw).toBe(0x6982); // …and the session is closed
    expect(tx(chip, '80CA00C100').data).toBe('C103000001');
  });

  it('refuses a wrong host cryptogram with 6300 and EXTERNAL AUTHENTICATE out of order with 6985', async () => {
    const chip = newChip();
    expect(tx(chip, '8482030010' + '00'.repeat(16)).sw).toBe(0x6985);
    expect(tx(chip, '8050000008' + '1122334455667788' + '00').sw).toBe(0x9000);
    expect(tx(chip, '8482030010' + '00'.repeat(16)).sw).toBe(0x6300);
    // The failed attempt consumed the pending authentication.
    expect(tx(chip, '8482030010' + '00'.repeat(16)).sw).toBe(0x6985);
    // A command between INITIALIZE UPDATE and EXTERNAL AUTHENTICATE breaks the sequence too.
    tx(chip, '8050000008' + '1122334455667788' + '00');
    tx(chip, '80CA004200');
    expect(tx(chip, '8482030010' + '00'.repeat(16)).sw).toBe(0x6985);
  });

  it('refuses an unknown key version with 6A88 and a bad challenge length with 6700', () => {
    const chip = newChip();
    expect(tx(chip, '8050390008' + '1122334455667788' + '00').sw).toBe(0x6a88);
    expect(tx(chip, '8050000004' + '11223344' + '00').sw).toBe(0x6700);
    expect(tx(chip, '8050000108' + '1122334455667788' + '00').sw).toBe(0x6a86);
  });

  it('closes the session on a bad C-MAC and on a replayed command', async () => {
    const chip = newChip();
    const sc = await secure(chip, 0x01);
    // A replay: capture one wrapped command and send it twice.
    const { hostWrap } = await import('../emulator/scp03.ts');
    const wrapped = hostWrap(sc.session, fromHex('80F28002024F0000'));
    expect(hex(chip.transmit(wrapped)).slice(-4)).toBe('9000');
    expect(hex(chip.transmit(wrapped)).slice(-4)).toBe('6982');
    // The session is gone: even a correctly wrapped command fails now.
    expect((await sc.send('80F28002024F0000')).sw).toBe(0x6982);

    const sc2 = await secure(chip, 0x01);
    const w2 = hostWrap(sc2.session, fromHex('80F28002024F0000'));
    w2[w2.length - 2] ^= 1; // corrupt the C-MAC
    expect(hex(chip.transmit(w2)).slice(-4)).toBe('6982');
    expect((await sc2.send('80F28002024F0000')).sw).toBe(0x6982);
  });

  it('requires an authenticated session, at the profile minimum level, for content management', async () => {
    expect(tx(newChip(), '80F28002024F0000').sw).toBe(0x6982);
    const strict = openChip({ profile: { ...DEFAULT_PROFILE, minContentLevel: 0x03 } });
    const weak = await secure(strict, 0x01);
    expect((await weak.send('80F28002024F0000')).sw).toBe(0x6982);
    const strong = await secure(strict, 0x03);
    expect((await strong.send('80F28002024F0000')).sw).toBe(0x9000);
  });

  it('keeps sessions per logical channel and ends them on reselect', async () => {
    const chip = newChip();
    tx(chip, '0070000001');
    const sc1 = await secure(chip, 0x03, DEFAULT_KEYS, 0, 1);
    expect((await sc1.send('81F28002024F0000')).sw).toBe(0x9000);
    expect(tx(chip, '80F28002024F0000').sw).toBe(0x6982); // channel 0 has no session
    tx(chip, '01A4040008A000000151000000');
    expect((await sc1.send('81F28002024F0000')).sw).toBe(0x6982);
  });
});

describe('GET STATUS (GPCS §11.4)', () => {
  it('lists the ISD, load files with modules, and continues with 6310', async () => {
    const chip = newChip();
    const sc = await secure(chip);
    const first = await sc.send(apdu(0x80, 0xf2, 0x10, 0x02, '4F00', 256));
    expect(first.sw).toBe(0x6310); // 8 load files do not fit one response
    const elfs = await status(sc, 0x10);
    expect(elfs.entries.map((e) => e.aid)).toEqual(
      expect.arrayContaining(['A0000000620001', 'A0000000620101', 'A0000000620102', 'A0000000620201', 'A0000001515350']),
    );
    expect(elfs.entries.find((e) => e.aid === 'A0000001515350')!.modules).toEqual(['A000000151535041']);
    expect((await status(sc, 0x40)).sw).toBe(0x6a88); // no applications yet
    expect((await sc.send(apdu(0x80, 0xf2, 0x20, 0x03, '4F00', 256))).sw).toBe(0x6985); // next without first
    expect((await sc.send(apdu(0x80, 0xf2, 0x20, 0x06, '4F00', 256))).sw).toBe(0x6a86);
    expect((await sc.send(apdu(0x80, 0xf2, 0x08, 0x02, '4F00', 256))).sw).toBe(0x6a86);
    expect((await sc.send(apdu(0x80, 0xf2, 0x20, 0x02, '5C00', 256))).sw).toBe(0x6a80);
    // Search by AID prefix and the legacy format (P2 00).
    const some = await sc.send(apdu(0x80, 0xf2, 0x20, 0x02, '4F06A00000006201', 256));
    expect(statusEntries(some.data).map((e) => e.aid).sort()).toEqual(['A0000000620101', 'A0000000620102']);
    const legacy = await sc.send(apdu(0x80, 0xf2, 0x80, 0x00, '4F00', 256));
    expect(legacy.data).toBe('08' + ISD + '0F9E');
  });
});

describe('LOAD, INSTALL and DELETE (GPCS §11.5, §11.6, §11.2)', () => {
  it('loads a CAP, installs and lists its applet, and deletes with related objects', async () => {
    const chip = newChip();
    const sc = await secure(chip);
    const pkg = hex(HELLO_PACKAGE_AID);
    const app = hex(HELLO_APPLET_AID);
    expect((await load(sc, pkg, HELLO.block)).sw).toBe(0x9000);
    const elfs = await status(sc, 0x10);
    expect(elfs.entries.find((e) => e.aid === pkg)).toMatchObject({ life: 0x01, modules: [app], sd: ISD });
    expect((await install(sc, pkg, app, app)).sw).toBe(0x9000);
    const apps = await status(sc, 0x40);
    expect(apps.entries).toEqual([expect.objectContaining({ aid: app, life: 0x07, elf: pkg, sd: ISD, privs: '000000' })]);
    // The VM selects the instance (Applet.select() is true); the SELECT then reaches process(), which this placeholder
    // applet leaves abstract: 6F00.
    expect(tx(chip, '00A4040007' + app).sw).toBe(0x6f00);
    tx(chip, '00A4040000');
    const sc2 = await secure(chip);
    expect((await sc2.send(apdu(0x80, 0xe4, 0, 0x00, '4F' + lv(pkg), 256))).sw).toBe(0x6985); // has an instance
    expect((await sc2.send(apdu(0x80, 0xe4, 0, 0x80, '4F' + lv(pkg), 256))).sw).toBe(0x9000);
    expect((await status(sc2, 0x40)).sw).toBe(0x6a88);
    expect((await sc2.send(apdu(0x80, 0xe4, 0, 0x00, '4F' + lv(pkg), 256))).sw).toBe(0x6a88);
    expect((await sc2.send(apdu(0x80, 0xe4, 0, 0x00, '4F' + lv('A0000000620101'), 256))).sw).toBe(0x6985); // chip image
    expect((await sc2.send(apdu(0x80, 0xe4, 0, 0x00, '4F' + lv(ISD), 256))).sw).toBe(0x6985);
  });

  it('installs in two steps (install, then make selectable) and refuses duplicates', async () => {
    const chip = newChip();
    const sc = await secure(chip);
    const pkg = hex(HELLO_PACKAGE_AID);
    const app = hex(HELLO_APPLET_AID);
    await load(sc, pkg, HELLO.block);
    expect((await load(sc, pkg, HELLO.block)).sw).toBe(0x6985); // already loaded
    expect((await install(sc, pkg, app, app, '00', 'C900', 0x04)).sw).toBe(0x9000);
    expect((await status(sc, 0x40)).entries[0].life).toBe(0x03);
    expect((await install(sc, pkg, app, app, '00', 'C900', 0x04)).sw).toBe(0x6985);
    expect((await install(sc, pkg, app + '99', app, '00', 'C900', 0x04)).sw).toBe(0x6a88); // no such module
    expect((await install(sc, pkg + '99', app, app + '01', '00', 'C900', 0x04)).sw).toBe(0x6a88); // no such ELF
    expect((await install(sc, pkg, app, app + '02', '8000', 'C900', 0x04)).sw).toBe(0x6a80); // SD privilege for an applet
    expect((await install(sc, pkg, app, app + '03', '0000', 'C900', 0x04)).sw).toBe(0x6a80); // 2-byte privileges
    const sel = await sc.send(apdu(0x80, 0xe6, 0x08, 0x00, '0000' + lv(app) + '00' + '00' + '00', 256));
    expect(sel.sw).toBe(0x9000);
    expect((await status(sc, 0x40)).entries[0].life).toBe(0x07);
  });

  it('refuses malformed INSTALL and LOAD with precise status words and loses nothing', async () => {
    const chip = newChip();
    const sc = await secure(chip);
    const pkg = hex(HELLO_PACKAGE_AID);
    expect((await sc.send(apdu(0x80, 0xe6, 0x02, 0, '07' + pkg, 256))).sw).toBe(0x6a80); // truncated fields
    expect((await sc.send(apdu(0x80, 0xe6, 0x02, 0, lv(pkg) + '00000000' + 'FF', 256))).sw).toBe(0x6a80); // trailing byte
    expect((await sc.send(apdu(0x80, 0xe6, 0x0e, 0, lv(pkg) + '00000000', 256))).sw).toBe(0x6a86);
    expect((await sc.send(apdu(0x80, 0xe8, 0x80, 0, 'C400', 256))).sw).toBe(0x6985); // LOAD without INSTALL
    // Broken CAP: 6A80 and no registry change.
    const broken = HELLO.block.slice();
    broken[0] = 0x07;
    expect((await load(sc, pkg, broken)).sw).toBe(0x6a80);
    // Wrong block number.
    await sc.send(apdu(0x80, 0xe6, 0x02, 0, lv(pkg) + '00000000', 256));
    expect((await sc.send(apdu(0x80, 0xe8, 0x00, 0x01, 'C4', 256))).sw).toBe(0x6a86);
    // Package AID that differs from INSTALL [for load].
    expect((await load(sc, pkg + '77', HELLO.block)).sw).toBe(0x6a80);
    // Import of a package the card lacks, and of an incompatible version.
    const needsLib = buildCap({ packageAid: fromHex('F00000000199'), imports: [{ aid: LIBRARY_PACKAGE_AID, major: 2, minor: 0 }] });
    expect((await load(sc, 'F00000000199', needsLib.block)).sw).toBe(0x6a80);
    const tooNew = buildCap({ packageAid: fromHex('F00000000198'), imports: [{ aid: fromHex('A0000000620101'), major: 1, minor: 9 }] });
    expect((await load(sc, 'F00000000198', tooNew.block)).sw).toBe(0x6a80);
    expect((await status(sc, 0x20)).entries.map((e) => e.aid)).not.toContain(pkg);
    // With the library loaded first, the dependent package loads; then the library cannot be deleted.
    expect((await load(sc, hex(LIBRARY_PACKAGE_AID), LIBRARY.block)).sw).toBe(0x9000);
    expect((await load(sc, 'F00000000199', needsLib.block)).sw).toBe(0x9000);
    expect((await sc.send(apdu(0x80, 0xe4, 0, 0x00, '4F' + lv(hex(LIBRARY_PACKAGE_AID)), 256))).sw).toBe(0x6985);
  });

  it('checks a load file data block hash given in INSTALL [for load]', async () => {
    const chip = newChip();
    const sc = await secure(chip);
    const { createHash } = await import('node:crypto');
    const pkg = hex(HELLO_PACKAGE_AID);
    const good = createHash('sha256').update(HELLO.block).digest('hex').toUpperCase();
    const send = async (h: string) => {
      await sc.send(apdu(0x80, 0xe6, 0x02, 0, lv(pkg) + '00' + lv(h) + '0000', 256));
      const file = concat(Uint8Array.of(0xc4), encodeLength(HELLO.block.length), HELLO.block);
      let r;
      for (let i = 0, n = 0; i < file.length; i += 200, n++)
        r = await sc.send(apdu(0x80, 0xe8, i + 200 >= file.length ? 0x80 : 0, n, hex(file.subarray(i, i + 200)), 256));
      return r!;
    };
    expect((await send('00'.repeat(32))).sw).toBe(0x6a80);
    expect((await send(good)).sw).toBe(0x9000);
  });
});

describe('PUT KEY (GPCS §11.8, Amd D §7.2)', () => {
  const k = (b: number) => Uint8Array.from({ length: 16 }, (_, i) => b + i);
  const NEW: KeySet = { enc: k(0x10), mac: k(0x20), dek: k(0x30) };

  it('adds a key set, authenticates with it, replaces it, and rejects a bad KCV', async () => {
    const chip = newChip();
    const sc = await secure(chip);
    const add = await sc.send(apdu(0x80, 0xd8, 0x00, 0x81, putKeyData(0x31, NEW, DEFAULT_KEYS.dek), 256));
    expect(add.sw).toBe(0x9000);
    expect(add.data).toBe('31' + hex(kcv(NEW.enc)) + hex(kcv(NEW.mac)) + hex(kcv(NEW.dek)));
    expect((await sc.send('80CA00E000')).data).toContain('C00401318810');
    const withNew = await secure(chip, 0x03, NEW, 0x31);
    expect((await withNew.send('80F28002024F0000')).sw).toBe(0x9000);
    // Replace key set 31 by 32 with AES-256 keys.
    const big: KeySet = { enc: new Uint8Array(32).fill(1), mac: new Uint8Array(32).fill(2), dek: new Uint8Array(32).fill(3) };
    expect((await withNew.send(apdu(0x80, 0xd8, 0x31, 0x81, putKeyData(0x32, big, NEW.dek), 256))).sw).toBe(0x9000);
    await expect(secure(chip, 0x03, NEW, 0x31)).rejects.toThrow();
    const withBig = await secure(chip, 0x33, big, 0x32);
    expect((await withBig.send('80F28002024F0000')).sw).toBe(0x9000);
    expect((await withBig.send(apdu(0x80, 0xd8, 0x00, 0x81, putKeyData(0x33, NEW, big.dek, true), 256))).sw).toBe(0x6982);
    expect((await withBig.send(apdu(0x80, 0xd8, 0x00, 0x81, putKeyData(0x30, NEW, big.dek), 256))).sw).toBe(0x6a80); // exists
    expect((await withBig.send(apdu(0x80, 0xd8, 0x3a, 0x81, putKeyData(0x3a, NEW, big.dek), 256))).sw).toBe(0x6a88); // nothing to replace
    expect((await withBig.send(apdu(0x80, 0xd8, 0x00, 0x81, '31' + '80111000', 256))).sw).toBe(0x6a80); // DES / truncated
  });

  it('deletes a key set by version', async () => {
    const chip = newChip();
    const sc = await secure(chip);
    await sc.send(apdu(0x80, 0xd8, 0x00, 0x81, putKeyData(0x31, NEW, DEFAULT_KEYS.dek), 256));
    expect((await sc.send(apdu(0x80, 0xe4, 0, 0, 'D20131', 256))).sw).toBe(0x9000);
    expect((await sc.send('80CA00E000')).data).not.toContain('C00401318810');
    expect((await sc.send(apdu(0x80, 0xe4, 0, 0, 'D20130', 256))).sw).toBe(0x6985); // the session's own key set
  });
});

describe('life cycles and SET STATUS (GPCS §5, §11.10)', () => {
  it('walks the card through its life cycle with what each state allows', async () => {
    const chip = newChip({ profile: { ...DEFAULT_PROFILE, initialLifeCycle: 0x01 } });
    let sc = await secure(chip);
    const pkg = hex(HELLO_PACKAGE_AID);
    const app = hex(HELLO_APPLET_AID);
    await load(sc, pkg, HELLO.block);
    await install(sc, pkg, app, app);
    expect((await sc.send(apdu(0x80, 0xf0, 0x80, 0x0f, ''))).sw).toBe(0x9000); // OP_READY → SECURED
    expect((await sc.send(apdu(0x80, 0xf0, 0x80, 0x07, ''))).sw).toBe(0x6985); // no way back
    expect((await sc.send(apdu(0x80, 0xf0, 0x80, 0x55, ''))).sw).toBe(0x6a80);
    expect((await sc.send(apdu(0x80, 0xf0, 0x80, 0x7f, ''))).sw).toBe(0x9000); // CARD_LOCKED
    expect((await sc.send(apdu(0x80, 0xe6, 0x02, 0, lv('F000000002') + '00000000', 256))).sw).toBe(0x6985);
    expect(tx(chip, '00A4040007' + app).sw).toBe(0x6a81);
    expect(tx(chip, '00A4040008' + ISD).sw).toBe(0x6283);
    sc = await secure(chip);
    expect((await sc.send(apdu(0x80, 0xf0, 0x80, 0x0f, ''))).sw).toBe(0x9000); // unlock
    tx(chip, '00A4040008' + ISD);
    sc = await secure(chip);
    expect((await sc.send(apdu(0x80, 0xf0, 0x80, 0xff, ''))).sw).toBe(0x9000); // TERMINATED
    expect(tx(chip, '80CA004200').sw).toBe(0x6982); // unprotected inside the MACed session: refused, session closed
    expect(tx(chip, '80CA004200').sw).toBe(0x9000); // GET DATA still answers on a terminated card
    expect(tx(chip, '8050000008' + '1122334455667788' + '00').sw).toBe(0x6985);
  });

  it('locks and unlocks an application', async () => {
    const chip = newChip();
    const sc = await secure(chip);
    const pkg = hex(HELLO_PACKAGE_AID);
    const app = hex(HELLO_APPLET_AID);
    await load(sc, pkg, HELLO.block);
    await install(sc, pkg, app, app);
    expect((await sc.send(apdu(0x80, 0xf0, 0x40, 0x80, app))).sw).toBe(0x9000);
    expect((await status(sc, 0x40)).entries[0].life).toBe(0x87);
    expect((await sc.send(apdu(0x80, 0xf0, 0x40, 0x80, app))).sw).toBe(0x6985);
    expect(tx(chip, '0070000001').sw).toBe(0x9000);
    expect(tx(chip, '01A4040007' + app).sw).toBe(0x6a82);
    expect((await sc.send(apdu(0x80, 0xf0, 0x40, 0x00, app))).sw).toBe(0x9000);
    expect((await status(sc, 0x40)).entries[0].life).toBe(0x07);
    expect((await sc.send(apdu(0x80, 0xf0, 0x40, 0x00, ISD))).sw).toBe(0x6985);
    expect((await sc.send(apdu(0x80, 0xf0, 0x40, 0x00, 'F0F0F0F0F0'))).sw).toBe(0x6a88);
  });
});

describe('STORE DATA (GPCS §11.11)', () => {
  it('sets IIN and CIN of the ISD, checks block numbers', async () => {
    const chip = newChip();
    const sc = await secure(chip);
    expect((await sc.send(apdu(0x80, 0xe2, 0x90, 0x00, hex(tlv(0x42, fromHex('112233'))) + hex(tlv(0x45, fromHex('0102')))))).sw).toBe(0x9000);
    expect((await sc.send('80CA004200')).data).toBe('4203112233');
    expect((await sc.send('80CA004500')).data).toBe('45020102');
    const sc2 = await secure(chip);
    expect((await sc2.send(apdu(0x80, 0xe2, 0x10, 0x00, '4201AA'))).sw).toBe(0x9000);
    expect((await sc2.send(apdu(0x80, 0xe2, 0x90, 0x05, '4201BB'))).sw).toBe(0x6a86);
    expect((await sc2.send(apdu(0x80, 0xe2, 0x90, 0x00, '9F010101'))).sw).toBe(0x6a88);
    expect((await sc2.send(apdu(0x80, 0xe2, 0x80, 0x00, '4201AA'))).sw).toBe(0x6a80); // format not BER-TLV
  });
});

describe('Application Provider Security Domains', () => {
  it('creates an APSD with its own keys, which loads and installs under itself with Authorized Management', async () => {
    const chip = newChip();
    const isd = await secure(chip);
    const apsd = 'A000000151535041AB';
    // SD + Authorized Management; SCP03 i=10 in the SD parameters (tag 81).
    const r = await install(isd, 'A0000001515350', 'A000000151535041', apsd, '804000', 'C904' + '81020310');
    expect(r.sw).toBe(0x9000);
    const sds = await status(isd, 0x40);
    expect(sds.entries[0]).toMatchObject({ aid: apsd, life: 0x07, privs: '804000', sd: ISD });
    // Select the APSD and open SCP03 with its own (initial) keys; announce i=10.
    const sel = tx(chip, '00A4040009' + apsd);
    expect(sel.sw).toBe(0x9000);
    expect(sel.data).toContain('2A864886FC6B040310');
    const sc = await secure(chip, 0x03);
    const k = (b: number) => new Uint8Array(16).fill(b);
    const own: KeySet = { enc: k(0xa1), mac: k(0xa2), dek: k(0xa3) };
    expect((await sc.send(apdu(0x80, 0xd8, 0x30, 0x81, putKeyData(0x30, own, DEFAULT_KEYS.dek), 256))).sw).toBe(0x9000);
    const sc2 = await secure(chip, 0x03, own, 0x30);
    expect((await load(sc2, hex(HELLO_PACKAGE_AID), HELLO.block)).sw).toBe(0x9000);
    expect((await install(sc2, hex(HELLO_PACKAGE_AID), hex(HELLO_APPLET_AID), hex(HELLO_APPLET_AID))).sw).toBe(0x9000);
    // The APSD sees only its own objects; the ISD sees all and the association.
    const own40 = await status(sc2, 0x40);
    expect(own40.entries.map((e) => e.aid)).toEqual([apsd, hex(HELLO_APPLET_AID)]);
    expect((await status(sc2, 0x80)).sw).toBe(0x6a88); // no Global Registry: the ISD is not its business
    expect((await sc2.send(apdu(0x80, 0xd8, 0x00, 0x81, putKeyData(0x31, own, own.dek), 256))).sw).toBe(0x9000);
    // The ISD deletes the APSD with everything associated with it.
    tx(chip, '00A4040000');
    const isd2 = await secure(chip);
    const all = await status(isd2, 0x40);
    expect(all.entries.find((e) => e.aid === hex(HELLO_APPLET_AID))!.sd).toBe(apsd);
    expect((await isd2.send(apdu(0x80, 0xe4, 0, 0x00, '4F' + lv(apsd), 256))).sw).toBe(0x6985);
    expect((await isd2.send(apdu(0x80, 0xe4, 0, 0x80, '4F' + lv(apsd), 256))).sw).toBe(0x9000);
    expect((await status(isd2, 0x40)).sw).toBe(0x6a88);
    expect((await status(isd2, 0x20)).entries.map((e) => e.aid)).not.toContain(hex(HELLO_PACKAGE_AID));
    expect(tx(chip, '80CA00E000').sw).toBe(0x6982); // session open on ISD: unprotected GET DATA refused
  });

  it('extradites an application to an APSD and refuses cycles', async () => {
    const chip = newChip();
    const sc = await secure(chip);
    const a = 'A000000151535041A1';
    const b = 'A000000151535041B2';
    await install(sc, 'A0000001515350', 'A000000151535041', a, '800000', 'C900');
    await install(sc, 'A0000001515350', 'A000000151535041', b, '800000', 'C900');
    const ext = (sd: string, what: string) => sc.send(apdu(0x80, 0xe6, 0x10, 0, lv(sd) + '00' + lv(what) + '00' + '00' + '00', 256));
    expect((await ext(a, b)).sw).toBe(0x9000);
    expect((await ext(b, a)).sw).toBe(0x6985); // a → b → a
    expect((await ext(ISD, ISD)).sw).toBe(0x6985);
    expect((await ext('A0A0A0A0A0', b)).sw).toBe(0x6a88);
    const entries = (await status(sc, 0x40)).entries;
    expect(entries.find((e) => e.aid === b)!.sd).toBe(a);
  });

  it('refuses content management to an SD without Authorized Management', async () => {
    const chip = newChip();
    const isd = await secure(chip);
    const apsd = 'A000000151535041CC';
    await install(isd, 'A0000001515350', 'A000000151535041', apsd, '800000', 'C900');
    tx(chip, '00A4040009' + apsd);
    const sc = await secure(chip);
    expect((await load(sc, hex(HELLO_PACKAGE_AID), HELLO.block)).sw).toBe(0x6985);
  });
});

describe('command chaining and "more" commands', () => {
  it('accepts a STORE DATA split by ISO chaining (CLA b5)', async () => {
    const chip = newChip();
    const sc = await secure(chip);
    expect((await sc.send(apdu(0x90, 0xe2, 0x90, 0x00, '4203'))).sw).toBe(0x9000);
    expect((await sc.send(apdu(0x80, 0xe2, 0x90, 0x00, 'A1B2C3'))).sw).toBe(0x9000);
    expect(tx(chip, '00A4040000').sw).toBe(0x9000);
    expect(tx(chip, '80CA004200').data).toBe('4203A1B2C3');
    const sc2 = await secure(chip);
    expect((await sc2.send(apdu(0x90, 0xe2, 0x90, 0x00, '4203'))).sw).toBe(0x9000);
    expect((await sc2.send(apdu(0x80, 0xca, 0x00, 0x42, '', 256))).sw).toBe(0x6883); // chain broken
  });

  it('gathers INSTALL data sent in pieces with P1 b8', async () => {
    const chip = newChip();
    const sc = await secure(chip);
    const data = lv('A0000001515350') + lv('A000000151535041') + lv('A000000151535041DD') + lv('800000') + lv('C900') + '00';
    expect((await sc.send(apdu(0x80, 0xe6, 0x8c, 0x00, data.slice(0, 20)))).sw).toBe(0x9000);
    expect((await sc.send(apdu(0x80, 0xe6, 0x0c, 0x00, data.slice(20), 256))).sw).toBe(0x9000);
    expect((await status(sc, 0x40)).entries[0].aid).toBe('A000000151535041DD');
  });
});
