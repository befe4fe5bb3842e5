// Fuzz: 100 000 random and mutated APDUs to the ISD (seeded). Every answer is a well-formed status word, nothing
// throws, and the state file still loads and works afterwards.
import { describe, it, expect } from 'vitest';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openChip } from '../emulator/card.ts';
import { fromHex } from '../emulator/bytes.ts';
import { isValidSw } from '../emulator/iso.ts';
import { hostWrap } from '../emulator/scp03.ts';
import { prng } from './helpers/prng.ts';
import { secure, tx, ISD } from './helpers/chip.ts';

const CORPUS = [
  '00A4040008A00000015100000000',
  '00A4040000',
  '00A4040204A000000100',
  '80CA004200',
  '80CA9F7F00',
  '80CA00E000',
  '80CA006600',
  '0070000001',
  '00708001',
  '00C0000000',
  '8050000008112233445566778800',
  '848203001000000000000000000000000000000000',
  '80F28002024F0000',
  '80F24002024F0000',
  '80E602001507F00000000101000000000000',
  '80E8800004C4020101',
  '80E40080094F07F0000000010101',
  '80D8308100',
  '80F0800F00',
  '80E2900003420101',
  '90E2900002A1A1',
  '00B0000000000100',
  '80E20000000003112233',
];

describe('ISD fuzz', () => {
  it('survives 100 000 seeded random and mutated APDUs', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'jpki-fuzz-'));
    const state = join(dir, 'chip.img');
    try {
      const chip = openChip({ state, fsync: false });
      const r = prng(0x5eed);
      let sessions = 0;
      let wrappedSent = 0;
      let session: Awaited<ReturnType<typeof secure>> | undefined;
      const counts = new Map<number, number>();
      for (let i = 0; i < 100_000; i++) {
        let apdu: Uint8Array;
        const mode = r.next();
        if (mode < 0.25) {
          apdu = r.bytes(r.int(r.next() < 0.9 ? 40 : 400));
        } else if (mode < 0.95 || !session) {
          apdu = fromHex(r.pick(CORPUS));
          const edits = 1 + r.int(3);
          for (let e = 0; e < edits; e++) {
            const kind = r.int(4);
            if (kind === 0 && apdu.length) apdu[r.int(apdu.length)] = r.int(256);
            else if (kind === 1) apdu = apdu.subarray(0, r.int(apdu.length + 1));
            else if (kind === 2) apdu = Uint8Array.from([...apdu, ...r.bytes(1 + r.int(8))]);
            else if (apdu.length > 4) apdu[4] = r.int(256); // lie about Lc
          }
        } else {
          // A live session: wrap a corpus command, then damage the wrapped form half the time.
          const plain = fromHex(r.pick(CORPUS.filter((c) => c.startsWith('80'))));
          try {
            apdu = hostWrap(session.session, plain);
          } catch {
            continue;
          }
          if (r.next() < 0.5) apdu[r.int(apdu.length)] ^= 1 + r.int(255);
          wrappedSent++;
        }
        if (i % 5000 === 0) {
          chip.powerUp();
          session = await secure(chip, r.pick([0x01, 0x03, 0x13, 0x33]));
          sessions++;
        }
        const resp = chip.transmit(apdu);
        expect(resp.length).toBeGreaterThanOrEqual(2);
        const sw = (resp[resp.length - 2] << 8) | resp[resp.length - 1];
        if (!isValidSw(sw)) throw new Error(`invalid SW ${sw.toString(16)} for ${Buffer.from(apdu).toString('hex')}`);
        counts.set(sw, (counts.get(sw) ?? 0) + 1);
      }
      chip.close();
      // The fuzz reached the interesting paths, not only the length checks.
      for (const sw of [0x9000, 0x6700, 0x6e00, 0x6d00, 0x6982, 0x6a86, 0x6881]) expect(counts.get(sw) ?? 0, sw.toString(16)).toBeGreaterThan(0);
      expect(sessions).toBe(20);
      expect(wrappedSent).toBeGreaterThan(1000);

      const again = openChip({ state, create: false });
      expect(tx(again, '00A4040008' + ISD).sw).toBe(0x9000);
      const sc = await secure(again);
      expect((await sc.send('80F28002024F0000')).sw).toBe(0x9000);
      again.close();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
