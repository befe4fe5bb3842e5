// Tearing the JPKI AP (applet/jpki): a power cut at the persistent write points of VERIFY, GENERATE KEY PAIR and the
// last WRITE CERTIFICATE block, at the heap's write points (heap.armTear: every one) and at the chip store's
// (store.armTear: the durable commits). After each cut a new chip is opened on the same medium and the state must be
// all-or-nothing: the PIN try counter is never given back by a cut and the PIN value never half-written; no half key
// (the CRT components all there or none), the commitment still usable when the key is not there, and whatever key is
// there signs correctly or is refused; the certificate EF holds the old content or the whole new certificate with a
// matching availability byte. Without javac the tests are skipped unless JPKI_REQUIRE_JDK=1.
import { describe, expect, it } from 'vitest';
import { createHash, verify } from 'node:crypto';
import { fromHex, hex } from '../emulator/bytes.ts';
import type { Chip } from '../emulator/card.ts';
import { PowerLoss, openMemoryStore } from '../emulator/store.ts';
import type { ChipStore } from '../emulator/store.ts';
import { isArray } from '../emulator/vm/types.ts';
import type { VmRuntime } from '../emulator/vm/runtime.ts';
import { encodeCommand } from '../emulator/apdu.ts';
import { JPKI_AID, commitmentMatches, openJpkiPerso, revealTemporaryPin, unblockPin } from '../emulator/host/jpki-perso.ts';
import type { JpkiPerso } from '../emulator/host/jpki-perso.ts';
import { DEFAULT_KEYS, tx } from './helpers/chip.ts';
import { lv, vmChip } from './helpers/vm-chip.ts';
import { APSD_KEYS, AUTH_PIN, JPKI_SKIP, cardChip, issueCertificate, phoneInstalled, rsaPublicKey, testCardKeys, transmitOf } from './helpers/jpki.ts';

if (JPKI_SKIP) console.warn('jpki-tearing: javac not found on PATH, skipping (set JPKI_REQUIRE_JDK=1 to fail instead)');

type Layer = 'heap' | 'store';
const ascii = (s: string): string => hex(new TextEncoder().encode(s));
const digestInfo = (data: string): string => '3031300D060960864801650304020105000420' + createHash('sha256').update(data).digest('hex').toUpperCase();

/** A new chip on the medium with the JPKI AP selected (power-up reads everything back from the store). */
function reopen(store: ChipStore): { chip: Chip; vm: VmRuntime } {
  if (!store.powered) store.powerUp(); // a store-level cut leaves the medium unpowered, as after pulling the card
  const { chip, vm } = vmChip({ store });
  expect(tx(chip, '00A4040C' + lv(JPKI_AID)).sw).toBe(0x9000);
  return { chip, vm };
}

function arm(layer: Layer, vm: VmRuntime, store: ChipStore, n: number): void {
  if (layer === 'heap') vm.vm!.heap.armTear(n);
  else store.armTear(n);
}

function disarm(vm: VmRuntime, store: ChipStore): void {
  vm.vm!.heap.disarmTear(); // fewer write points than n: the tear is still armed
  store.disarmTear();
}

/** Runs `f`; 'cut' when the chip lost power on the way. */
async function cutOr<T>(f: () => Promise<T> | T): Promise<T | 'cut'> {
  try {
    return await f();
  } catch (e) {
    if (e instanceof PowerLoss) return 'cut';
    throw e;
  }
}

/** The RSA key objects in the chip's heap (only the JPKI AP holds RSA keys here): set components per key. */
function rsaKeys(vm: VmRuntime): { crt: number[]; pub: { mod: Uint8Array; exp: Uint8Array }[] } {
  const heap = vm.vm!.heap;
  const comp = (ref: unknown): Uint8Array | undefined => {
    const a = typeof ref === 'number' ? heap.peek(ref) : undefined;
    if (!a || !isArray(a)) throw new Error('key component is not an array');
    const d = a.data as Uint8Array;
    const len = (d[0] << 8) | d[1];
    return len ? d.slice(2, 2 + len) : undefined;
  };
  const crt: number[] = [];
  const pub: { mod: Uint8Array; exp: Uint8Array }[] = [];
  for (let ref = 1; ref < 0x8000; ref++) {
    const o = heap.peek(ref);
    if (!o || isArray(o) || !o.native) continue;
    const n = o.native;
    if (n.fam === 'RSA_CRT') crt.push(['p', 'q', 'dp', 'dq', 'pq'].filter((c) => comp(n[c + 'Ref'])).length);
    if (n.fam === 'RSA_PUB') {
      const mod = comp(n.modRef);
      const exp = comp(n.expRef);
      if (mod && exp) pub.push({ mod, exp });
    }
  }
  return { crt, pub };
}

describe.skipIf(JPKI_SKIP)('JPKI AP tearing', () => {
  for (const layer of ['heap', 'store'] as const) {
    it(`${layer}: VERIFY with a wrong and with the right PIN — a cut never gives a try back nor changes the PIN`, async () => {
      const store = openMemoryStore();
      await cardChip({ store });
      let { chip, vm } = reopen(store);
      const verifyAuth = (pin: string) => tx(chip, '00200098' + lv(ascii(pin))).sw;
      /** Tries left, asked after a reselection (which ends every verification, so the query answers 63Cx). */
      const tries = () => {
        expect(tx(chip, '00A4040C' + lv(JPKI_AID)).sw).toBe(0x9000);
        return tx(chip, '00200098').sw & 0x0f;
      };
      for (const pin of ['0000', AUTH_PIN]) {
        const right = pin === AUTH_PIN;
        const seen: number[] = [];
        let cuts = 0;
        for (let n = 1; ; n++) {
          expect(n).toBeLessThan(40);
          expect(tries()).toBe(3);
          arm(layer, vm, store, n);
          const r = await cutOr(() => verifyAuth(pin));
          if (r !== 'cut') {
            expect(r).toBe(right ? 0x9000 : 0x63c2);
            disarm(vm, store);
            // The completed command's counter is durable: a power cycle shows it.
            ({ chip, vm } = reopen(store));
            expect(tries()).toBe(right ? 3 : 2);
            if (!right) expect(verifyAuth(AUTH_PIN)).toBe(0x9000); // back to 3 for the next round
            break;
          }
          cuts++;
          ({ chip, vm } = reopen(store));
          const left = tries();
          seen.push(left);
          // The counter is the old one (cut before the decrement was durable) or one less: never more, never other.
          expect([3, 2], `cut ${n}`).toContain(left);
          // The PIN value is intact: the right PIN still verifies (and gives the tries back for the next cut).
          expect(verifyAuth(AUTH_PIN), `cut ${n}`).toBe(0x9000);
        }
        expect(cuts).toBeGreaterThanOrEqual(1);
        // A wrong PIN writes only the decrement, made durable before the comparison: every cut comes before it, so
        // no comparison ever ran without its try being spent. The right PIN: cuts before the durable decrement (3),
        // then between it and the restore (2: the try stays spent, the counter is never restored by a cut).
        if (right) expect(seen.join('')).toMatch(/^3+2+$/);
        else expect(seen.every((t) => t === 3)).toBe(true);
      }
      // After all the cuts: 3 tries, and the PIN verifies.
      expect(tries()).toBe(3);
      expect(verifyAuth(AUTH_PIN)).toBe(0x9000);
    });
  }

  it('GENERATE KEY PAIR: no key and the commitment still usable, or the whole key; never a half key', async () => {
    const store = openMemoryStore();
    const phone = await phoneInstalled({ store });
    let chip = phone.chip;
    let vm = phone.vm;
    const open = (c: Chip) => openJpkiPerso(transmitOf(c), { keys: APSD_KEYS });
    let perso: JpkiPerso = await open(chip);
    let s = await perso.commit('auth');
    const keygen = (p: JpkiPerso) => p.send(encodeCommand({ cla: 0x80, ins: 0xe4, p1: 0, p2: 0x17, ne: 65536 }));
    /** After an uncut keygen or a cut: sign with the key there, verify with its public key; then ERASE and commit anew. */
    const useAndReset = async (pub: { mod: Uint8Array; exp: Uint8Array }) => {
      await perso.setTemporaryPin('auth');
      const t = transmitOf(chip);
      await unblockPin(t, 'auth', await revealTemporaryPin(t, 'auth', { select: false }), AUTH_PIN, { select: false });
      expect(tx(chip, '00200098' + lv(ascii(AUTH_PIN))).sw).toBe(0x9000);
      const sig = tx(chip, '802A0097' + lv(digestInfo('torn')) + '00');
      expect(sig.sw).toBe(0x9000);
      expect(verify('sha256', Buffer.from('torn'), rsaPublicKey(pub.mod, pub.exp), fromHex(sig.data))).toBe(true);
      await perso.erase('auth');
      expect(rsaKeys(vm).crt).toEqual([0, 0]);
      s = await perso.commit('auth');
    };
    // Every write point of both layers: genKeyPair's seven component writes, the flags and the commit mark (heap);
    // the puts and the record of the command's durable commit (store).
    for (const layer of ['heap', 'store'] as const) {
      let cuts = 0;
      for (let n = 1; ; n++) {
        expect(n).toBeLessThan(60);
        arm(layer, vm, store, n);
        const r = await cutOr(() => keygen(perso));
        if (r !== 'cut') {
          disarm(vm, store);
          const data = r.subarray(0, r.length - 2);
          expect(hex(r.subarray(r.length - 2))).toBe('9000');
          expect(commitmentMatches(s, data.subarray(data.length - 32))).toBe(true);
          await useAndReset({ mod: data.subarray(9, 265), exp: data.subarray(267, 270) });
          break;
        }
        cuts++;
        ({ chip, vm } = reopen(store));
        const keys = rsaKeys(vm);
        // No half key: each CRT key has all five components or none.
        for (const c of keys.crt) expect([0, 5], `${layer} cut ${n}`).toContain(c);
        perso = await open(chip);
        if (keys.crt.every((c) => c === 0)) {
          expect(keys.pub, `${layer} cut ${n}`).toEqual([]);
          expect(tx(chip, '802A0097' + lv(digestInfo('x')) + '00').sw).toBe(0x6985);
          // The commitment survived the cut: the key generation now completes and returns the R behind S.
          const kp = await perso.generateKeyPair('auth');
          expect(commitmentMatches(s, kp.r), `${layer} cut ${n}`).toBe(true);
          await useAndReset({ mod: kp.modulus, exp: kp.exponent });
        } else {
          // The whole key landed but the answer was lost: it signs, verified with the public key it holds; one key
          // per kind, so a second generation is refused.
          expect(keys.pub.length).toBe(1);
          expect(tx(chip, '802A0097' + lv(digestInfo('x')) + '00').sw).toBe(0x6982);
          await expect(perso.generateKeyPair('auth')).rejects.toThrow(/6985/);
          await useAndReset(keys.pub[0]);
        }
      }
      // heap: at least the seven component writes and the commit mark were cut.
      expect(cuts, layer).toBeGreaterThanOrEqual(layer === 'heap' ? 8 : 2);
    }
  });

  for (const layer of ['heap', 'store'] as const) {
    it(`${layer}: the last WRITE CERTIFICATE block — the EF holds the old content or the whole new certificate, availability byte to match`, async () => {
      const store = openMemoryStore();
      const keys = testCardKeys();
      const first = await cardChip({ store, lock: false });
      // Start: auth key present, EF 000A erased (reads FF), availability byte 1 = 00.
      await first.perso.erase('auth');
      await first.perso.importKey('auth', keys.auth.privateKey);
      const oldCert = await issueCertificate('auth', keys.auth.publicKey, 'aa000001');
      const newCert = await issueCertificate('auth', keys.auth.publicKey, 'bb000002');
      const blank = 'FF'.repeat(0x800);
      const image = (der: Uint8Array) => hex(der) + 'FF'.repeat(0x800 - der.length);
      let { chip, vm } = reopen(store);
      const readAll = (c: Chip) => {
        let out = '';
        for (let off = 0; off < 0x800; off += 0x100) {
          const r = tx(c, '00B0' + (off === 0 ? '8A00' : off.toString(16).padStart(4, '0')) + '00');
          expect(r.sw).toBe(0x9000);
          out += r.data;
        }
        return { ef: out, avail: tx(c, '00B0880000').data };
      };
      const BLOCK = 200;
      /** Sends all but the last block of `der` (unarmed); returns the last block's plain command. */
      const stageAllButLast = async (p: JpkiPerso, der: Uint8Array) => {
        const blocks = Math.ceil(der.length / BLOCK);
        for (let b = 0; b < blocks - 1; b++) {
          const r = await p.send(encodeCommand({ cla: 0x80, ins: 0xe8, p1: b, p2: 0x0a, data: der.subarray(b * BLOCK, (b + 1) * BLOCK) }));
          expect(r[r.length - 2]).toBe(0x90);
        }
        return encodeCommand({ cla: 0x80, ins: 0xe8, p1: 0x80 | (blocks - 1), p2: 0x0a, data: der.subarray((blocks - 1) * BLOCK) });
      };
      for (const [from, to] of [
        [undefined, oldCert],
        [oldCert, newCert],
      ] as const) {
        // Availability: byte 0 (sign certificate) stays 8F; byte 1 (auth) goes with EF 000A.
        const before = { ef: from ? image(from) : blank, avail: from ? '8F8F00' : '8F0000' };
        const after = { ef: image(to), avail: '8F8F00' };
        expect(readAll(chip)).toEqual(before);
        let cuts = 0;
        for (let n = 1; ; n++) {
          expect(n).toBeLessThan(200);
          const perso = await openJpkiPerso(transmitOf(chip), { keys: DEFAULT_KEYS });
          const last = await stageAllButLast(perso, to);
          arm(layer, vm, store, n);
          const r = await cutOr(() => perso.send(last));
          if (r !== 'cut') {
            expect(hex(r.subarray(r.length - 2))).toBe('9000');
            disarm(vm, store);
            break;
          }
          cuts++;
          ({ chip, vm } = reopen(store));
          const now = readAll(chip);
          // All or nothing, and the availability byte goes with the EF.
          expect([before, after], `${layer} cut ${n}`).toContainEqual(now);
          if (now.ef === after.ef) break; // it landed; the remaining cuts come after the durable commit
        }
        expect(cuts).toBeGreaterThanOrEqual(layer === 'heap' ? 10 : 3); // heap: staging pages, FF fill pages, the transaction
        ({ chip, vm } = reopen(store));
        expect(readAll(chip)).toEqual(after);
      }
    });
  }
});
