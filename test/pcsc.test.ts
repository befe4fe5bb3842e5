// The emulated chip as a card in the REAL pcscd, through vsmartcard's vpcd driver: OpenSC's tools and the `smartcard`
// package talk to it like to any reader. Also: reader choice and openTarget. Needs pcscd + vsmartcard-vpcd + opensc
// (bash .ci/pcscd.sh starts pcscd); skipped when absent unless JPKI_REQUIRE_PCSC=1, which turns the skip into a failure.
import { listening } from './helpers/listening.ts';
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { execFile, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openChip } from '../emulator/card.ts';
import type { Chip } from '../emulator/card.ts';
import { fromHex, hex } from '../emulator/bytes.ts';
import { PowerLoss } from '../emulator/store.ts';
import { connectToVpcd } from '../emulator/transport/vicc.ts';
import type { ViccCard, ViccHandle } from '../emulator/transport/vicc.ts';
import { connectReader, listReaders, loadSmartcard, pickReader, PcscUnavailable } from '../emulator/transport/pcsc.ts';
import { openTarget } from '../emulator/transport/target.ts';
import { secure, ISD } from './helpers/chip.ts';
import { acquireVpcdSlot } from './helpers/vpcd-slot.ts';

const REQUIRE = process.env.JPKI_REQUIRE_PCSC === '1';
// Slot 1 of the Debian vpcd configuration (slot n listens on 35963 + n), so slot 0 stays free for other users.
const PORT = Number(process.env.JPKI_VPCD_TEST_PORT ?? 35964);
const READER = `Virtual PCD 00 ${String(PORT - 35963).padStart(2, '0')}`;

const SELECT_ISD = '00A4040008A000000151000000';
const GET_CPLC = '80CA9F7F00';
const GET_IIN = '80CA004200';
const GET_CIN = '80CA004500';
const SCRIPT = [SELECT_ISD, GET_CPLC, GET_IIN, GET_CIN];

function unavailable(): string | null {
  if (spawnSync('opensc-tool', ['--version']).error) return 'opensc-tool is not installed (apt-get install opensc)';
  if (!listening(PORT)) return `nothing listens on TCP ${PORT}: pcscd with vsmartcard-vpcd is not running (bash .ci/pcscd.sh)`;
  return null;
}

const reason = unavailable();
const scReason = await loadSmartcard().then(
  () => null,
  (e: Error) => e.message,
);
if (reason && !REQUIRE) console.warn(`PC/SC tests skipped: ${reason} (set JPKI_REQUIRE_PCSC=1 to fail instead)`);
if (!reason && scReason && !REQUIRE) console.warn(`smartcard-package tests skipped: ${scReason}`);

/** Runs a command without blocking the event loop: this very process is the card pcscd talks to. */
function run(cmd: string, args: string[]): Promise<string> {
  return new Promise((resolve, reject) =>
    execFile(cmd, args, { timeout: 20_000 }, (err, stdout, stderr) =>
      err ? reject(new Error(`${cmd} ${args.join(' ')}: ${err.message}\n${stdout}${stderr}`)) : resolve(stdout),
    ),
  );
}

/**
 * The bytes of one opensc-tool hex-dump line: n ≤ 16 "XX " columns then n ASCII characters; in a dump of more than one
 * line the last line's columns are padded to 48 characters. The ASCII part may itself look like hex, hence the count.
 */
function dumpLineBytes(line: string): string {
  for (const n of [line.length / 4, line.length - 48]) {
    if (!Number.isInteger(n) || n < 1 || n > 16) continue;
    const cols = line.slice(0, 3 * n);
    const pad = n === line.length / 4 ? '' : line.slice(3 * n, 48);
    if (new RegExp(`^([0-9A-F]{2} ){${n}}$`).test(cols) && /^ *$/.test(pad)) return cols.replace(/ /g, '');
  }
  throw new Error(`unexpected opensc-tool dump line: "${line}"`);
}

/** R-APDUs (data + SW, hex) from opensc-tool -s output: a "Received (SW1=.., SW2=..)" line, then a hex dump. */
function parseOpenscResponses(out: string): string[] {
  const rsps: string[] = [];
  let data: string[] | null = null;
  let sw = '';
  const flush = () => {
    if (data) rsps.push(data.join('') + sw);
    data = null;
  };
  for (const line of out.split('\n')) {
    const m = /^Received \(SW1=0x([0-9a-f]{2}), SW2=0x([0-9a-f]{2})\)/i.exec(line);
    if (m) {
      flush();
      data = [];
      sw = (m[1] + m[2]).toUpperCase();
    } else if (data && /^([0-9A-F]{2} )+/.test(line)) {
      data.push(dumpLineBytes(line));
    } else flush();
  }
  flush();
  return rsps;
}

function until(cond: () => Promise<boolean> | boolean, what: string, ms = 10_000): Promise<void> {
  const t0 = Date.now();
  return new Promise((resolve, reject) => {
    const tick = async () => {
      let ok = false;
      try {
        ok = await cond();
      } catch {
        ok = false;
      }
      if (ok) resolve();
      else if (Date.now() - t0 > ms) reject(new Error(`timed out after ${ms} ms waiting for ${what}`));
      else setTimeout(() => void tick(), 50);
    };
    void tick();
  });
}

/** What an in-process chip answers to the script: the PC/SC path must be byte-for-byte the same. */
function reference(): string[] {
  const ref = openChip();
  ref.powerUp();
  const out = SCRIPT.map((a) => hex(ref.transmit(fromHex(a))));
  ref.close();
  return out;
}

/** The chip as the vicc sees it, with a switch to cut its power on one APDU. */
function cuttable(chip: Chip) {
  let cutOn: string | null = null;
  const card: ViccCard = {
    get atr() {
      return chip.atr;
    },
    powerUp: () => chip.powerUp(),
    powerDown: () => chip.powerDown(),
    reset: () => chip.reset(),
    transmit: (apdu) => {
      if (cutOn === hex(apdu)) {
        cutOn = null;
        chip.powerDown();
        throw new PowerLoss('cut by the test');
      }
      return chip.transmit(apdu);
    },
  };
  return { card, cutOn: (apdu: string) => void (cutOn = apdu) };
}

const cardPresent = async () => (await listReaders()).some((r) => r.name === READER && r.cardPresent);

describe('reader choice (pickReader)', () => {
  const readers = [
    { name: 'Virtual PCD 00 00', cardPresent: false, atr: null },
    { name: 'Virtual PCD 00 01', cardPresent: true, atr: fromHex('3B00') },
    { name: 'ACME USB Reader 0', cardPresent: true, atr: fromHex('3B01') },
  ];

  it('takes an exact name, else a case-insensitive substring preferring a reader with a card, else the first with a card', () => {
    expect(pickReader(readers, 'Virtual PCD 00 00').name).toBe('Virtual PCD 00 00');
    expect(pickReader(readers, 'virtual pcd').name).toBe('Virtual PCD 00 01');
    expect(pickReader(readers, 'acme').name).toBe('ACME USB Reader 0');
    expect(pickReader(readers).name).toBe('Virtual PCD 00 01');
    expect(pickReader(readers.slice(0, 1)).name).toBe('Virtual PCD 00 00');
  });

  it('names the readers that exist when nothing matches, and says when there is none', () => {
    expect(() => pickReader(readers, 'Gemalto')).toThrow(/no PC\/SC reader matches "Gemalto"; readers: "Virtual PCD 00 00" \(empty\), "Virtual PCD 00 01"/);
    expect(() => pickReader([], 'x')).toThrow(PcscUnavailable);
    expect(() => pickReader(readers, '  ')).toThrow(/empty PC\/SC reader name/);
  });
});

describe('openTarget', () => {
  it('opens a fresh in-memory emulator', async () => {
    const t = await openTarget('emulator');
    expect(t.name).toBe('emulator');
    const chip = openChip();
    expect(hex(t.atr)).toBe(hex(chip.atr));
    expect(hex(await t.transmit(fromHex(GET_CPLC)))).toBe(`9F7F2A${hex(chip.profile.cplc)}9000`);
    expect(hex(await t.reset())).toBe(hex(chip.atr));
    await t.close();
    await expect(t.transmit(fromHex(GET_IIN))).rejects.toThrow(/closed/);
    await t.close(); // twice is fine
  });

  it('opens a chip from its state file with emulator:<file> and state:<file>, never creating one', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'jpki-target-'));
    try {
      const state = join(dir, 'chip.img');
      const aid = 'A000000151535041AB';
      const chip = openChip({ state });
      const sc = await secure(chip);
      const body = '07A0000001515350' + '08A000000151535041' + '09' + aid + '03800000' + '02C900' + '00';
      expect((await sc.send(`80E60C00${(body.length / 2).toString(16).padStart(2, '0')}${body}00`)).sw).toBe(0x9000);
      chip.close();
      for (const spec of [`emulator:${state}`, `state:${state}`]) {
        const t = await openTarget(spec);
        expect(t.name).toBe(spec);
        expect(hex(await t.transmit(fromHex(`00A4040009${aid}`))).slice(-4)).toBe('9000'); // the SD installed above
        await t.close(); // releases the lock for the next open
      }
      const fresh = await openTarget('emulator');
      expect(hex(await fresh.transmit(fromHex(`00A4040009${aid}`)))).toBe('6A82');
      await fresh.close();
      await expect(openTarget(`state:${join(dir, 'missing.img')}`)).rejects.toThrow(/does not exist/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('rejects unknown and incomplete specs, naming the accepted forms', async () => {
    await expect(openTarget('nfc:foo')).rejects.toThrow(
      'unknown target "nfc:foo"; accepted: emulator, emulator:<state file>, state:<state file>, pcsc, pcsc:<reader name or part of it>',
    );
    await expect(openTarget('')).rejects.toThrow(/unknown target ""/);
    await expect(openTarget('state')).rejects.toThrow(/needs a state file/);
    await expect(openTarget('emulator:')).rejects.toThrow(/needs a state file/);
    await expect(openTarget('pcsc:')).rejects.toThrow(/needs a reader name/);
  });
});

if (reason && REQUIRE) {
  describe('PC/SC through pcscd + vpcd', () => {
    it('is required here (JPKI_REQUIRE_PCSC=1)', () => {
      throw new Error(`PC/SC is required but unavailable: ${reason}`);
    });
  });
} else {
  describe.skipIf(reason !== null)('PC/SC through pcscd + vpcd', () => {
    const chip = openChip();
    const wired = cuttable(chip);
    let vicc: ViccHandle;
    const want = reference();

    let release: (() => void) | undefined;

    beforeAll(async () => {
      release = await acquireVpcdSlot(PORT, 600_000); // test/conformance-vpcd.test.ts runs the suites on this slot for minutes
      // One vicc per vpcd slot: a card already there means another process serves this port.
      const list = await run('opensc-tool', ['-l']);
      const row = list.split('\n').find((l) => l.endsWith(READER));
      if (!row) throw new Error(`pcscd has no reader "${READER}" (opensc-tool -l):\n${list}`);
      if (/^\d+\s+Yes/.test(row)) throw new Error(`"${READER}" already holds a card: another vicc uses port ${PORT}`);
      vicc = connectToVpcd(wired.card, { port: PORT, reconnect: true });
      await vicc.ready;
      await until(async () => (await run('opensc-tool', ['-r', READER, '-a']).catch(() => '')).trim() !== '', `pcscd to see the card in "${READER}"`);
    }, 660_000);

    afterAll(async () => {
      await vicc?.close();
      release?.();
    });

    it('opensc-tool reads the chip ATR', async () => {
      const out = await run('opensc-tool', ['-r', READER, '-a']);
      expect(out.trim().replace(/:/g, '').toUpperCase()).toBe(hex(chip.atr));
    });

    it('opensc-tool gets the same answers as the in-process chip: SELECT ISD, GET DATA CPLC/IIN/CIN', async () => {
      // -c default: skip OpenSC's card-driver probing, send just these APDUs.
      const args = ['-r', READER, '-c', 'default', ...SCRIPT.flatMap((a) => ['-s', a])];
      const got = parseOpenscResponses(await run('opensc-tool', args));
      expect(got).toEqual(want);
      expect(got[0]).toMatch(new RegExp(`^6F..8408${ISD}.*9000$`));
      expect(got[1]).toBe(`9F7F2A${hex(chip.profile.cplc)}9000`);
    });

    describe.skipIf(scReason !== null && !REQUIRE)('through the smartcard package', () => {
      it('lists the reader with the card and its ATR', async () => {
        if (scReason) throw new Error(`the smartcard package is required here: ${scReason}`);
        const r = (await listReaders()).find((x) => x.name === READER);
        expect(r?.cardPresent).toBe(true);
        expect(hex(r!.atr!)).toBe(hex(chip.atr));
      });

      it('connects by name, transmits, resets, and openTarget("pcsc:…") does the same', async () => {
        const c = await connectReader({ reader: READER });
        try {
          expect(c.reader).toBe(READER);
          expect(c.protocol).toBe('T=1');
          expect(hex(c.atr)).toBe(hex(chip.atr));
          const got = [];
          for (const a of SCRIPT) got.push(hex(await c.transmit(fromHex(a))));
          expect(got).toEqual(want);
          // Queued, not interleaved: concurrent calls come back in order with their own answers.
          const both = await Promise.all([c.transmit(fromHex(GET_IIN)), c.transmit(fromHex(GET_CIN))]);
          expect(both.map((b) => hex(b))).toEqual([want[2], want[3]]);
          expect(hex(await c.reset())).toBe(hex(chip.atr));
          await expect(c.transmit(fromHex('00'))).rejects.toThrow(/at least 4 bytes/);
        } finally {
          await c.close();
        }
        await expect(c.transmit(fromHex(GET_IIN))).rejects.toThrow(/closed/);
        const t = await openTarget(`pcsc:${READER.slice(-5)}`); // a substring: "00 01"
        try {
          expect(t.name).toBe(`pcsc:${READER}`);
          expect(hex(await t.transmit(fromHex(GET_CPLC)))).toBe(want[1]);
        } finally {
          await t.close();
        }
      });

      it('a power cut: the APDU fails, pcscd sees the card removed and inserted again, and it answers again', async () => {
        const c = await connectReader({ reader: READER });
        wired.cutOn(GET_CIN);
        try {
          await expect(c.transmit(fromHex(GET_CIN))).rejects.toThrow(/answered 0 bytes/);
        } finally {
          await c.close();
        }
        await until(async () => !(await cardPresent()), 'pcscd to see the card leave');
        await until(cardPresent, 'pcscd to see the card come back');
        const again = await connectReader({ reader: READER });
        try {
          expect(hex(await again.transmit(fromHex(GET_CIN)))).toBe(want[3]);
        } finally {
          await again.close();
        }
      });

      it('when the vicc goes away the reader is empty and connecting says so', async () => {
        await vicc.close();
        await until(async () => !(await cardPresent()), 'pcscd to see the card leave');
        await expect(connectReader({ reader: READER })).rejects.toThrow(`no card in PC/SC reader "${READER}"`);
      });
    });
  });
}
