// SCP03 against the emulated chip (Amd D §5.6, §7.1): sessions per level and per logical channel, the failures that
// must close a session, the pseudo-random challenge's sequence counter, and AES-192/256 key sets added by PUT KEY.
import { describe, it, expect } from 'vitest';
import { newChip, tx, secure, DEFAULT_KEYS, ISD } from './helpers/chip.ts';
import type { Chip } from '../emulator/card.ts';
import { openChip } from '../emulator/card.ts';
import { DEFAULT_PROFILE } from '../emulator/profile.ts';
import { concat, fromHex, hex } from '../emulator/bytes.ts';
import { encodeCommand } from '../emulator/apdu.ts';
import {
  Scp03Error,
  encryptKeyData,
  hostAuthenticate,
  hostInitializeUpdate,
  hostWrap,
  kcv,
  pseudoRandomChallenge,
} from '../emulator/scp03.ts';
import type { HostOptions, KeySet } from '../emulator/scp03.ts';

const LEVELS = [0x01, 0x03, 0x11, 0x13, 0x33];
const ISD_AID = fromHex(ISD);
const swOf = (r: Uint8Array) => hex(r.subarray(r.length - 2));
const h2 = (n: number) => n.toString(16).toUpperCase().padStart(2, '0');

/** Plain class byte of a channel (GPCS §11.1.4): 80–83, then C0–CF for channels 4–19. */
const claOf = (ch: number) => (ch < 4 ? 0x80 | ch : 0xc0 | (ch - 4));
const isoCla = (ch: number) => (ch < 4 ? ch : 0x40 | (ch - 4));
const getStatusIsd = (ch: number) => h2(claOf(ch)) + 'F28002024F0000';

/** Opens logical channel `ch` explicitly (MANAGE CHANNEL P2 = ch) and selects the ISD on it. */
function openChannel(chip: Chip, ch: number): void {
  expect(tx(chip, `007000${h2(ch)}`).sw).toBe(0x9000);
  expect(tx(chip, `${h2(isoCla(ch))}A4040008${ISD}00`).sw).toBe(0x9000);
}

/** INITIALIZE UPDATE by hand; returns what the host needs to build (or spoil) EXTERNAL AUTHENTICATE. */
function initUpdate(chip: Chip, opts: HostOptions) {
  const iu = hostInitializeUpdate(opts);
  const r = chip.transmit(iu.apdu);
  expect(swOf(r)).toBe('9000');
  return hostAuthenticate(opts, iu.hostChallenge, r.subarray(0, r.length - 2));
}

function putKeyData(newKvn: number, keys: KeySet, dek: Uint8Array): string {
  const one = (k: Uint8Array) => {
    const c = encryptKeyData(dek, k);
    return concat(Uint8Array.of(0x88, c.length + 1, k.length), c, Uint8Array.of(3), kcv(k));
  };
  return hex(concat(Uint8Array.of(newKvn), one(keys.enc), one(keys.mac), one(keys.dek)));
}

describe('sessions at every level, on the basic channel and on logical channels', () => {
  for (const ch of [0, 1, 5, 19]) {
    it.each(LEVELS)(`channel ${ch}: level %s — GET STATUS and GET DATA run wrapped, responses verified`, async (level) => {
      const chip = newChip();
      if (ch) openChannel(chip, ch);
      const sc = await secure(chip, level, DEFAULT_KEYS, 0, ch);
      expect(sc.session.level).toBe(level);
      const st = await sc.send(getStatusIsd(ch));
      expect(st.sw).toBe(0x9000);
      expect(st.data.startsWith('E3')).toBe(true);
      expect(st.data).toContain('4F08' + ISD);
      const seq = await sc.send(h2(claOf(ch)) + 'CA00C100');
      expect(seq).toMatchObject({ sw: 0x9000, data: 'C103000001' });
      // The session belongs to its channel: the basic channel (or another one) is not authenticated by it.
      if (ch) expect(tx(chip, '80F28002024F0000').sw).toBe(0x6982);
    });
  }

  it('the INITIALIZE UPDATE response is KDD || 30 03 70 || challenge || cryptogram || counter (Table 7-2)', () => {
    const chip = newChip();
    const r = tx(chip, '8050000008' + '1122334455667788' + '00');
    expect(r.sw).toBe(0x9000);
    expect(r.data.length).toBe(32 * 2);
    expect(r.data.slice(0, 20)).toBe(hex(DEFAULT_PROFILE.kdd));
    expect(r.data.slice(20, 26)).toBe('300370');
    expect(r.data.slice(26, 42)).toBe(hex(pseudoRandomChallenge(DEFAULT_KEYS.enc, 1, ISD_AID, false)));
    expect(r.data.slice(58)).toBe('000001');
  });

  it('sessions on two channels are independent and interleave', async () => {
    const chip = newChip();
    openChannel(chip, 2);
    const a = await secure(chip, 0x33, DEFAULT_KEYS, 0, 0);
    const b = await secure(chip, 0x13, DEFAULT_KEYS, 0, 2);
    for (let n = 0; n < 3; n++) {
      expect((await a.send('80F28002024F0000')).sw).toBe(0x9000);
      expect((await b.send('82F28002024F0000')).sw).toBe(0x9000);
    }
    // A command wrapped for channel 2 arriving on channel 0 breaks channel 0's chain, not channel 2's session.
    const stray = hostWrap(b.session, fromHex('82CA00C100'));
    stray[0] = 0x84;
    expect(swOf(chip.transmit(stray))).toBe('6982');
    expect((await a.send('80F28002024F0000')).sw).toBe(0x6982);
  });

  it('a session ends on a new INITIALIZE UPDATE, on reselect, on channel close and on reset (Amd D §5.6)', async () => {
    const chip = newChip();
    const s1 = await secure(chip, 0x03);
    expect(tx(chip, '8050000008' + '0102030405060708' + '00').sw).toBe(0x9000);
    expect((await s1.send('80F28002024F0000')).sw).toBe(0x6982);

    const s2 = await secure(chip, 0x03);
    expect(tx(chip, `00A4040008${ISD}00`).sw).toBe(0x9000);
    expect((await s2.send('80F28002024F0000')).sw).toBe(0x6982);

    openChannel(chip, 3);
    const s3 = await secure(chip, 0x03, DEFAULT_KEYS, 0, 3);
    expect(tx(chip, '00708003').sw).toBe(0x9000);
    openChannel(chip, 3);
    expect((await s3.send('83F28002024F0000')).sw).toBe(0x6982);

    const s4 = await secure(chip, 0x03);
    chip.reset();
    expect((await s4.send('80F28002024F0000')).sw).toBe(0x6982);
  });
});

describe('authentication failures', () => {
  it('wrong host cryptogram → 6300, and no session is open afterwards', () => {
    const chip = newChip();
    const auth = initUpdate(chip, { keys: DEFAULT_KEYS, level: 0x03 });
    const spoilt = auth.externalAuthenticate.slice();
    spoilt[5] ^= 0x01;
    expect(swOf(chip.transmit(spoilt))).toBe('6300');
    // The pending authentication is consumed: the genuine EXTERNAL AUTHENTICATE now comes too late.
    expect(swOf(chip.transmit(auth.externalAuthenticate))).toBe('6985');
    expect(swOf(chip.transmit(hostWrap(auth.session, fromHex('80F28002024F0000'))))).toBe('6982');
    expect(tx(chip, '80F28002024F0000').sw).toBe(0x6982);
  });

  it('the host reports the card’s 6300 as Scp03Error with sw 6300', async () => {
    const chip = newChip();
    const spoil = async (a: Uint8Array) => {
      const b = a.slice();
      if (b[1] === 0x82) b[6] ^= 0x40;
      return chip.transmit(b);
    };
    const err = await (async () => {
      const { openSecureChannel } = await import('../emulator/scp03.ts');
      return openSecureChannel(spoil, { keys: DEFAULT_KEYS, level: 0x01 }).catch((e: unknown) => e);
    })();
    expect(err).toBeInstanceOf(Scp03Error);
    expect((err as Scp03Error).sw).toBe(0x6300);
  });

  it('EXTERNAL AUTHENTICATE without INITIALIZE UPDATE → 6985', () => {
    const chip = newChip();
    expect(tx(chip, '8482000010' + '00'.repeat(16)).sw).toBe(0x6985);
    expect(tx(chip, '8482330010' + '00'.repeat(16)).sw).toBe(0x6985);
  });

  it('EXTERNAL AUTHENTICATE with a wrong P1: invalid level 6A86, level changed after MACing 6982, R-MAC not offered 6A86', () => {
    const chip = newChip();
    for (const p1 of [0x02, 0x10, 0x31, 0x07]) {
      const auth = initUpdate(chip, { keys: DEFAULT_KEYS, level: 0x03 });
      const bad = auth.externalAuthenticate.slice();
      bad[2] = p1;
      expect(swOf(chip.transmit(bad)), `P1 ${h2(p1)}`).toBe('6A86');
    }
    const auth = initUpdate(chip, { keys: DEFAULT_KEYS, level: 0x03 });
    const p1 = auth.externalAuthenticate.slice();
    p1[2] = 0x13; // valid level, but the C-MAC was computed over P1 = 03
    expect(swOf(chip.transmit(p1))).toBe('6982');
    expect(tx(chip, '80F28002024F0000').sw).toBe(0x6982);

    // A security domain whose i offers no R-MAC refuses levels 11/13/33 even with a correct C-MAC.
    const noRmac = openChip({ profile: { ...DEFAULT_PROFILE, scpI: 0x10 } });
    const a10 = initUpdate(noRmac, { keys: DEFAULT_KEYS, level: 0x03 });
    expect(a10.info.i).toBe(0x10);
    expect(() => initUpdate(noRmac, { keys: DEFAULT_KEYS, level: 0x11 })).toThrow(/needs R-MAC, which the card's i=10 does not offer/);
  });

  it('INITIALIZE UPDATE for a key version the card does not hold → 6A88; KVN 00 and 30 both select the ISD key set', async () => {
    const chip = newChip();
    expect(tx(chip, '8050310008' + '1122334455667788' + '00').sw).toBe(0x6a88);
    expect(tx(chip, '80507F0008' + '1122334455667788' + '00').sw).toBe(0x6a88);
    await expect(secure(chip, 0x03, DEFAULT_KEYS, 0x31)).rejects.toMatchObject({ name: 'Scp03Error', sw: 0x6a88 });
    expect((await secure(chip, 0x03, DEFAULT_KEYS, 0x30)).info.kvn).toBe(0x30);
    expect((await secure(chip, 0x03, DEFAULT_KEYS, 0x00)).info.kvn).toBe(0x30);
  });

  it('wrong static keys: the host refuses the card cryptogram and never sends EXTERNAL AUTHENTICATE', async () => {
    const chip = newChip();
    const sent: string[] = [];
    const t = async (a: Uint8Array) => {
      sent.push(hex(a.subarray(0, 2)));
      return chip.transmit(a);
    };
    const { openSecureChannel } = await import('../emulator/scp03.ts');
    const wrong = { enc: new Uint8Array(16), mac: new Uint8Array(16), dek: new Uint8Array(16) };
    await expect(openSecureChannel(t, { keys: wrong, level: 0x01 })).rejects.toThrow(/card cryptogram does not verify/);
    expect(sent).toEqual(['8050']);
  });
});

describe('secure messaging failures close the session', () => {
  it.each([0x01, 0x03, 0x33])('level %s: bad C-MAC → 6982; then wrapped and plain commands fail too', async (level) => {
    const chip = newChip();
    const sc = await secure(chip, level);
    expect((await sc.send('80F28002024F0000')).sw).toBe(0x9000);
    // What a card that kept the session would accept next: old chain, counter one further (the card counted the bad one).
    const probe = { ...sc.session, macChain: sc.session.macChain.slice(), counter: sc.session.counter + 1 };
    const w = hostWrap(sc.session, fromHex('80F28002024F0000'));
    w[w.length - 3] ^= 0x01; // last MAC byte sits before Le
    expect(swOf(chip.transmit(w))).toBe('6982');
    expect(swOf(chip.transmit(hostWrap(probe, fromHex('80F28002024F0000'))))).toBe('6982');
    expect((await sc.send('80F28002024F0000')).sw).toBe(0x6982);
    expect(tx(chip, '80F28002024F0000').sw).toBe(0x6982);
    // GET DATA needs no authentication, so it works again without a session.
    expect(tx(chip, '80CA00C100').sw).toBe(0x9000);
  });

  it.each([0x01, 0x03])('level %s: a replayed command → 6982 and the session is gone', async (level) => {
    const chip = newChip();
    const sc = await secure(chip, level);
    const w = hostWrap(sc.session, fromHex('80F28002024F0000'));
    expect(swOf(chip.transmit(w))).toBe('9000');
    expect(swOf(chip.transmit(w))).toBe('6982');
    expect((await sc.send('80F28002024F0000')).sw).toBe(0x6982);
  });

  it('a command replayed from an earlier session is refused in a new one', async () => {
    const chip = newChip();
    const old = await secure(chip, 0x01);
    const w = hostWrap(old.session, fromHex('80F28002024F0000'));
    expect(swOf(chip.transmit(w))).toBe('9000');
    await secure(chip, 0x01);
    expect(swOf(chip.transmit(w))).toBe('6982');
  });

  it('an unprotected command in a MACed session → 6982 and closes it; a level-00 session takes plain commands', async () => {
    const chip = newChip();
    const sc = await secure(chip, 0x01);
    expect(tx(chip, '80CA00C100').sw).toBe(0x6982);
    expect((await sc.send('80CA00C100')).sw).toBe(0x6982);
    const none = await secure(chip, 0x00);
    expect(none.session.level).toBe(0);
    expect(tx(chip, '80CA00C100').sw).toBe(0x9000);
  });

  it('a C-MACed command with no session → 6982', () => {
    const chip = newChip();
    const auth = initUpdate(chip, { keys: DEFAULT_KEYS, level: 0x01 });
    // Never send EXTERNAL AUTHENTICATE; a wrapped command meets no session.
    expect(swOf(chip.transmit(hostWrap(auth.session, fromHex('80CA00C100'))))).toBe('6982');
  });
});

describe('commands below the level they need (GPCS Table 11-2, profile minimum)', () => {
  it('a level-00 (authentication only) session may not run GET STATUS, PUT KEY or DELETE', async () => {
    const chip = newChip();
    const sc = await secure(chip, 0x00);
    expect((await sc.send('80F28002024F0000')).sw).toBe(0x6982);
    const put = encodeCommand({ cla: 0x80, ins: 0xd8, p1: 0, p2: 0x81, data: fromHex(putKeyData(0x31, DEFAULT_KEYS, DEFAULT_KEYS.dek)), ne: 256 });
    expect((await sc.send(hex(put))).sw).toBe(0x6982);
    expect((await sc.send('80E40000094F07A0000001515350')).sw).toBe(0x6982);
    expect((await sc.send('80CA00C100')).sw).toBe(0x9000);
  });

  it.each([
    [0x01, 0x6982],
    [0x11, 0x6982],
    [0x03, 0x9000],
    [0x13, 0x9000],
    [0x33, 0x9000],
  ])('with a minimum of C-DEC + C-MAC (03), level %s → GET STATUS %s', async (level, sw) => {
    const chip = openChip({ profile: { ...DEFAULT_PROFILE, minContentLevel: 0x03 } });
    const sc = await secure(chip, level);
    expect((await sc.send('80F28002024F0000')).sw).toBe(sw);
  });
});

describe('sequence counter of the pseudo-random challenge (Amd D §6.2.2.1)', () => {
  it('GET DATA C1 counts every INITIALIZE UPDATE, and each challenge is KDF(Key-ENC, counter || ISD AID)', async () => {
    const chip = newChip();
    expect(tx(chip, '80CA00C100').data).toBe('C103000000');
    for (let n = 1; n <= 3; n++) {
      const r = tx(chip, '8050000008' + '0011223344556677' + '00');
      expect(r.data.slice(58)).toBe(n.toString(16).padStart(6, '0'));
      expect(r.data.slice(26, 42)).toBe(hex(pseudoRandomChallenge(DEFAULT_KEYS.enc, n, ISD_AID, false)));
      expect(tx(chip, '80CA00C100').data).toBe('C103' + n.toString(16).padStart(6, '0'));
    }
    // A full session counts too, and the host checks the challenge against the counter (sdAid given).
    const t = async (a: Uint8Array) => chip.transmit(a);
    const { openSecureChannel } = await import('../emulator/scp03.ts');
    const sc = await openSecureChannel(t, { keys: DEFAULT_KEYS, level: 0x03, sdAid: ISD_AID });
    expect(sc.info.sequenceCounter).toBe(4);
    expect(hex(await sc.transmit(fromHex('80CA00C100')))).toBe('C1030000049000');
    // The same host challenge gives a different card challenge each time: the counter moved.
    const a = tx(chip, '8050000008' + '0011223344556677' + '00').data.slice(26, 42);
    const b = tx(chip, '8050000008' + '0011223344556677' + '00').data.slice(26, 42);
    expect(a).not.toBe(b);
  });

  it('an exhausted counter makes INITIALIZE UPDATE fail with 6985', () => {
    const chip = newChip();
    // 16 million INITIALIZE UPDATEs are out of reach, so the live model's counter is set near the end (test backdoor).
    expect(tx(chip, '80CA00C100').data).toBe('C103000000'); // powers up: the model is loaded now
    const set = chip.model().keys.get(ISD)![0];
    set.seq = 0xfffffe;
    const r = tx(chip, '8050000008' + '0011223344556677' + '00');
    expect(r.sw).toBe(0x9000);
    expect(r.data.slice(58)).toBe('FFFFFF');
    expect(tx(chip, '8050000008' + '0011223344556677' + '00').sw).toBe(0x6985);
    expect(tx(chip, '80CA00C100').data).toBe('C103FFFFFF');
  });

  it('the counter survives a power cycle', async () => {
    const chip = newChip();
    await secure(chip, 0x01);
    await secure(chip, 0x01);
    chip.powerDown();
    chip.powerUp();
    expect(tx(chip, '80CA00C100').data).toBe('C103000002');
  });
});

describe('AES-192 and AES-256 key sets via PUT KEY (GPCS §11.8, Amd D §7.2)', () => {
  const bytes = (n: number, b: number) => Uint8Array.from({ length: n }, (_, i) => (b + i * 7) & 0xff);
  const sets: [string, number, KeySet][] = [
    ['AES-192', 0x31, { enc: bytes(24, 0x11), mac: bytes(24, 0x22), dek: bytes(24, 0x33) }],
    ['AES-256', 0x32, { enc: bytes(32, 0x44), mac: bytes(32, 0x55), dek: bytes(32, 0x66) }],
  ];

  it.each(sets)('%s: add key set %s, then open sessions with it at every level', async (_name, kvn, keys) => {
    const chip = newChip();
    const sc = await secure(chip, 0x03);
    const put = await sc.send(hex(encodeCommand({ cla: 0x80, ins: 0xd8, p1: 0, p2: 0x81, data: fromHex(putKeyData(kvn, keys, DEFAULT_KEYS.dek)), ne: 256 })));
    expect(put.sw).toBe(0x9000);
    expect(put.data).toBe(h2(kvn) + hex(kcv(keys.enc)) + hex(kcv(keys.mac)) + hex(kcv(keys.dek)));
    const len = h2(keys.enc.length);
    expect((await sc.send('80CA00E000')).data).toContain(`C00401${h2(kvn)}88${len}C00402${h2(kvn)}88${len}C00403${h2(kvn)}88${len}`);
    for (const [n, level] of LEVELS.entries()) {
      const s = await secure(chip, level, keys, kvn);
      expect(s.info.kvn).toBe(kvn);
      // A new key set starts its own counter at 0 (reset on creation), so its first session shows 1.
      expect(s.info.sequenceCounter).toBe(n + 1);
      expect(s.session.keys.smac.length).toBe(keys.mac.length);
      expect((await s.send('80F28002024F0000')).sw).toBe(0x9000);
    }
    // The old key set still works and its keys cannot open the new set.
    await expect(secure(chip, 0x01, DEFAULT_KEYS, kvn)).rejects.toThrow(/card cryptogram does not verify/);
    expect((await secure(chip, 0x01, DEFAULT_KEYS, 0x30)).info.kvn).toBe(0x30);
  });

  it('a session on the AES-256 set wraps PUT KEY with its own 32-byte DEK to replace the set', async () => {
    const chip = newChip();
    const [, , k192] = sets[0];
    const [, , k256] = sets[1];
    const sc = await secure(chip, 0x03);
    await sc.send(hex(encodeCommand({ cla: 0x80, ins: 0xd8, p1: 0, p2: 0x81, data: fromHex(putKeyData(0x32, k256, DEFAULT_KEYS.dek)), ne: 256 })));
    const big = await secure(chip, 0x33, k256, 0x32);
    // Replace set 32 by set 33 holding the AES-192 keys, key data ciphered under the session set's DEK.
    const r = await big.send(hex(encodeCommand({ cla: 0x80, ins: 0xd8, p1: 0x32, p2: 0x81, data: fromHex(putKeyData(0x33, k192, k256.dek)), ne: 256 })));
    expect(r.sw).toBe(0x9000);
    await expect(secure(chip, 0x01, k256, 0x32)).rejects.toMatchObject({ sw: 0x6a88 });
    const s = await secure(chip, 0x13, k192, 0x33);
    expect(s.info.sequenceCounter).toBe(1); // replaced: counter reset
    expect((await s.send('80F28002024F0000')).sw).toBe(0x9000);
  });
});

describe('S16 mode on the card (GPP reading of i b1)', () => {
  it('a card with i=71 answers 6700 to an 8-byte challenge and the host retries in S16', async () => {
    const chip = openChip({ profile: { ...DEFAULT_PROFILE, scpI: 0x71 } });
    expect(tx(chip, '8050000008' + '1122334455667788' + '00').sw).toBe(0x6700);
    const r = tx(chip, '8050000010' + '11'.repeat(16) + '00');
    expect(r.sw).toBe(0x9000);
    expect(r.data.length).toBe(48 * 2);
    for (const level of [0x01, 0x33]) {
      const sc = await secure(chip, level);
      expect(sc.session.s16).toBe(true);
      expect((await sc.send('80F28002024F0000')).sw).toBe(0x9000);
    }
  });
});
