// Tearing end to end (JCRE 3.0.5 ch. 7): a power cut at every persistent write point of an applet's command, on a
// chip with the VM; after power-up (a new chip on the same medium) every transaction is all-or-nothing and writes
// outside transactions persisted exactly up to the cut. Cuts at the heap's write points (heap.armTear) and at the
// store's (store.armTear: the durable commit the heap makes at the end of the command).
import { describe, expect, it } from 'vitest';
import { fromHex, hex } from '../emulator/bytes.ts';
import { PowerLoss, openMemoryStore } from '../emulator/store.ts';
import type { ChipStore } from '../emulator/store.ts';
import type { Chip } from '../emulator/card.ts';
import type { VmRuntime } from '../emulator/vm/runtime.ts';
import { isArray } from '../emulator/vm/types.ts';
import { ASM_SAMPLES, TEST_APPLETS, sampleBlock, testAppletBlock } from './fixtures/asm/samples.ts';
import { tx } from './helpers/chip.ts';
import { loadAndInstall, lv, vmChip } from './helpers/vm-chip.ts';

const COUNTER = ASM_SAMPLES.counter;
const LEDGER = TEST_APPLETS.ledger;
const selectCmd = (aid: Uint8Array) => '00A40400' + lv(hex(aid));

/** Sends one APDU; the response, or 'cut' when the chip lost power on the way. */
function send(chip: Chip, apdu: string): { data: string; sw: number } | 'cut' {
  try {
    return tx(chip, apdu);
  } catch (e) {
    if (e instanceof PowerLoss) return 'cut';
    throw e;
  }
}

/** A new chip on the medium, its applet selected (power-up reads everything back from the store). */
function reopen(store: ChipStore, aid: Uint8Array): { chip: Chip; vm: VmRuntime } {
  if (!store.powered) store.powerUp(); // a store-level cut leaves the medium unpowered, as after pulling the card
  const { chip, vm } = vmChip({ store });
  expect(tx(chip, selectCmd(aid)).sw).toBe(0x9000);
  return { chip, vm };
}

/** The counter applet's state as the heap holds it: the counter field and its 16-byte log (references come first). */
function counterState(vm: VmRuntime): { counter: number; log: number[] } {
  const heap = vm.vm!.heap;
  const o = heap.peek(heap.roots.get('applet:' + hex(COUNTER.appletAid)));
  if (!o || isArray(o)) throw new Error('no counter instance');
  const log = heap.peek(o.fields[0]);
  if (!log || !isArray(log) || log.length !== 16) throw new Error('cell 0 is not the log');
  return { counter: o.fields[1], log: [...(log.data as Uint8Array)] };
}

/** The log after `n` increments from 0: log[k & 15] = k for k = 1..n. */
function expectedLog(n: number): number[] {
  const log = new Array<number>(16).fill(0);
  for (let k = 1; k <= n; k++) log[k & 15] = k & 0xff;
  return log;
}

describe('tearing the counter sample\'s transaction (INS 10) at every write point', () => {
  for (const layer of ['heap', 'store'] as const) {
    it(`${layer}: every cut leaves the old counter and log; the uncut command gives the new ones`, async () => {
      const store = openMemoryStore();
      let { chip, vm } = vmChip({ store });
      await loadAndInstall(chip, hex(COUNTER.packageAid), sampleBlock('counter'), hex(COUNTER.appletAid));
      expect(tx(chip, selectCmd(COUNTER.appletAid)).sw).toBe(0x9000);
      for (let i = 1; i <= 3; i++) expect(tx(chip, '8010000000').data).toBe(`000${i}`);
      let cuts = 0;
      for (let n = 1; ; n++) {
        expect(n).toBeLessThan(50); // the command has a handful of write points, not an endless supply
        if (layer === 'heap') vm.vm!.heap.armTear(n);
        else store.armTear(n);
        const r = send(chip, '8010000000');
        if (r !== 'cut') {
          expect(r).toMatchObject({ data: '0004', sw: 0x9000 });
          vm.vm!.heap.disarmTear(); // fewer write points than n: the tear is still armed
          store.disarmTear();
          break;
        }
        cuts++;
        expect(chip.powered).toBe(false);
        ({ chip, vm } = reopen(store, COUNTER.appletAid));
        expect(tx(chip, '8014000000').data).toBe('0003');
        expect(counterState(vm)).toEqual({ counter: 3, log: expectedLog(3) });
      }
      // heap: counter field, log element, commit mark; store: the puts of the durable commit, then its record.
      expect(cuts).toBeGreaterThanOrEqual(3);
      ({ chip, vm } = reopen(store, COUNTER.appletAid));
      expect(counterState(vm)).toEqual({ counter: 4, log: expectedLog(4) });
      expect(tx(chip, '8010000000').data).toBe('0005');
    });
  }

  it('a cut inside the aborted transaction (INS 12) also leaves the counter as it was', async () => {
    const store = openMemoryStore();
    let { chip, vm } = vmChip({ store });
    await loadAndInstall(chip, hex(COUNTER.packageAid), sampleBlock('counter'), hex(COUNTER.appletAid));
    expect(tx(chip, selectCmd(COUNTER.appletAid)).sw).toBe(0x9000);
    expect(tx(chip, '8010000000').data).toBe('0001');
    vm.vm!.heap.armTear(1);
    expect(send(chip, '8012000000')).toBe('cut');
    ({ chip, vm } = reopen(store, COUNTER.appletAid));
    expect(counterState(vm)).toEqual({ counter: 1, log: expectedLog(1) });
  });
});

// ---------------------------------------------------------------------------------------------------------------
// The ledger test applet: a transaction with a non-atomic fill inside it, and a plain write sequence.

interface Ledger {
  balance: number;
  count: number;
  history: string;
  data: string;
}

function readLedger(chip: Chip): Ledger {
  const r = tx(chip, '8030000000');
  expect(r.sw).toBe(0x9000);
  const b = fromHex(r.data);
  expect(b.length).toBe(220);
  return { balance: (b[0] << 8) | b[1], count: (b[2] << 8) | b[3], history: hex(b.subarray(4, 20)), data: hex(b.subarray(20)) };
}

const PAGE = 64; // the default profile's NVM page: a non-atomic fill writes one page per write point
const fill = (value: number, pages: number, rest: number) => {
  const d = new Uint8Array(200).fill(rest);
  d.fill(value, 0, Math.min(200, pages * PAGE));
  return hex(d);
};

async function ledgerChip(): Promise<{ store: ChipStore; chip: Chip; vm: VmRuntime; start: Ledger }> {
  const store = openMemoryStore();
  const { chip, vm } = vmChip({ store });
  await loadAndInstall(chip, hex(LEDGER.packageAid), testAppletBlock('ledger'), hex(LEDGER.appletAids[0]));
  expect(tx(chip, selectCmd(LEDGER.appletAids[0])).sw).toBe(0x9000);
  const h = hex(Uint8Array.from({ length: 16 }, (_, i) => 0x40 + i));
  expect(tx(chip, '80201100' + lv(h)).sw).toBe(0x9000);
  const start = readLedger(chip);
  expect(start).toEqual({ balance: 0x11, count: 0x11, history: h, data: fill(0x11, 4, 0x11) });
  return { store, chip, vm, start };
}

describe('tearing the ledger test applet', () => {
  it('a transaction: fields all-or-nothing at every cut; the non-atomic fill inside it persists page by page', async () => {
    let { store, chip, vm, start } = await ledgerChip();
    const history = (v: number) => start.history.slice(0, 4) + v.toString(16).padStart(2, '0').toUpperCase() + start.history.slice(6);
    const after: Ledger = { balance: 0x16, count: 0x12, history: history(0x05), data: fill(0x12, 4, 0x11) };
    const seen: Ledger[] = [];
    for (let n = 1; ; n++) {
      expect(n).toBeLessThan(50);
      vm.vm!.heap.armTear(n);
      const r = send(chip, '8010050000');
      if (r !== 'cut') {
        expect(r.sw).toBe(0x9000);
        break;
      }
      ({ chip, vm } = reopen(store, LEDGER.appletAids[0]));
      seen.push(readLedger(chip));
    }
    // Writes 1-3: balance, count, history[2] (logged); 4-7: the fill's four pages (not logged); 8: the commit mark.
    expect(seen).toEqual([
      { ...start },
      { ...start },
      { ...start },
      { ...start },
      { ...start, data: fill(0x12, 1, 0x11) },
      { ...start, data: fill(0x12, 2, 0x11) },
      { ...start, data: fill(0x12, 3, 0x11) },
      { ...start, data: fill(0x12, 4, 0x11) },
    ]);
    ({ chip } = reopen(store, LEDGER.appletAids[0]));
    expect(readLedger(chip)).toEqual(after);
  });

  it('writes outside a transaction persist exactly up to the cut, each write point all-or-nothing', async () => {
    let { store, chip, vm, start } = await ledgerChip();
    const h2 = hex(Uint8Array.from({ length: 16 }, (_, i) => 0x80 + i));
    // The command's writes in order (INS 20, P1 = 22): balance, history (one atomic arrayCopy), 4 fill pages, count.
    const steps: ((l: Ledger) => Ledger)[] = [
      (l) => ({ ...l, balance: 0x22 }),
      (l) => ({ ...l, history: h2 }),
      (l) => ({ ...l, data: fill(0x22, 1, 0x11) }),
      (l) => ({ ...l, data: fill(0x22, 2, 0x11) }),
      (l) => ({ ...l, data: fill(0x22, 3, 0x11) }),
      (l) => ({ ...l, data: fill(0x22, 4, 0x11) }),
      (l) => ({ ...l, count: 0x22 }),
    ];
    const applied = (k: number) => steps.slice(0, k).reduce((l, f) => f(l), start);
    let n = 1;
    for (; ; n++) {
      expect(n).toBeLessThan(50);
      vm.vm!.heap.armTear(n);
      const r = send(chip, '80202200' + lv(h2));
      if (r !== 'cut') {
        expect(r.sw).toBe(0x9000);
        break;
      }
      ({ chip, vm } = reopen(store, LEDGER.appletAids[0]));
      // Cut at write n: writes 1 … n-1 are there, write n and later are not.
      expect(readLedger(chip)).toEqual(applied(n - 1));
    }
    expect(n - 1).toBe(steps.length);
    ({ chip } = reopen(store, LEDGER.appletAids[0]));
    expect(readLedger(chip)).toEqual(applied(steps.length));
  });

  it('store-level cuts during the command\'s durable commit: all of the command or none of it', async () => {
    let { store, chip, start } = await ledgerChip();
    const h2 = hex(Uint8Array.from({ length: 16 }, (_, i) => 0x90 + i));
    const done: Ledger = { balance: 0x33, count: 0x33, history: h2, data: fill(0x33, 4, 0x33) };
    let cuts = 0;
    for (let n = 1; ; n++) {
      expect(n).toBeLessThan(50);
      store.armTear(n);
      const r = send(chip, '80203300' + lv(h2));
      if (r !== 'cut') {
        store.disarmTear();
        break;
      }
      cuts++;
      ({ chip } = reopen(store, LEDGER.appletAids[0]));
      expect(readLedger(chip)).toEqual(start);
    }
    expect(cuts).toBeGreaterThanOrEqual(2);
    ({ chip } = reopen(store, LEDGER.appletAids[0]));
    expect(readLedger(chip)).toEqual(done);
  });
});
