// The chip store: atomic commits, torn tails, corruption, compaction, locking, tearing and kill -9 durability.
import { describe, it, expect } from 'vitest';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runAndKill } from './helpers/kill.ts';
import { openFileStore, openMemoryStore, PowerLoss, StoreError } from '../emulator/store.ts';
import type { ChipStore } from '../emulator/store.ts';
import { prng } from './helpers/prng.ts';

function tempDir(): { dir: string; done: () => void } {
  const dir = mkdtempSync(join(tmpdir(), 'jpki-store-'));
  return { dir, done: () => rmSync(dir, { recursive: true, force: true }) };
}

const b = (...xs: number[]) => Uint8Array.from(xs);

describe('store semantics', () => {
  it('puts, gets, deletes and lists keys by prefix, in and out of transactions', () => {
    const s = openMemoryStore();
    s.put('a/1', b(1));
    s.put('a/2', b(2));
    s.put('b/1', b(3));
    expect(s.keys('a/')).toEqual(['a/1', 'a/2']);
    s.begin();
    s.delete('a/1');
    s.put('a/3', b(4));
    expect(s.keys('a/')).toEqual(['a/2', 'a/3']); // a transaction sees its own writes
    expect(s.has('a/1')).toBe(false);
    s.abort();
    expect(s.keys('a/')).toEqual(['a/1', 'a/2']);
    s.begin();
    s.putJson('j', { x: [1, 2] });
    s.commit();
    expect(s.getJson('j')).toEqual({ x: [1, 2] });
    expect(s.getJson('missing')).toBeUndefined();
    expect(s.writeCount).toBe(6);
  });

  it('copies values in and refuses misuse of transactions with a precise error', () => {
    const s = openMemoryStore();
    const v = b(1, 2, 3);
    s.put('k', v);
    v[0] = 9;
    expect(s.get('k')).toEqual(b(1, 2, 3));
    expect(() => s.commit()).toThrow(/no transaction is open/);
    expect(() => s.abort()).toThrow(/no transaction is open/);
    s.begin();
    expect(() => s.begin()).toThrow(/already open/);
    s.put('raw', b(0xff));
    s.commit();
    expect(() => s.getJson('raw')).toThrow(/raw is not JSON/);
    expect(() => s.armTear(0)).toThrow(StoreError);
    s.close();
    expect(() => s.get('k')).toThrow(/closed/);
  });
});

describe('state file', () => {
  it('reopens with the last committed state and drops an uncommitted transaction', () => {
    const t = tempDir();
    try {
      const path = join(t.dir, 'chip.img');
      const s = openFileStore(path);
      s.begin();
      s.put('x', b(1));
      s.put('y', b(2));
      s.commit();
      s.begin();
      s.put('x', b(9));
      s.close(); // process gone mid-transaction
      const r = openFileStore(path);
      expect(r.get('x')).toEqual(b(1));
      expect(r.get('y')).toEqual(b(2));
      r.close();
    } finally {
      t.done();
    }
  });

  it('truncates a torn tail at every possible cut point of the last record', () => {
    const t = tempDir();
    try {
      const path = join(t.dir, 'chip.img');
      const s = openFileStore(path, { fsync: false });
      s.put('keep', b(1, 2, 3));
      s.close();
      const base = readFileSync(path);
      const s2 = openFileStore(path, { fsync: false });
      s2.begin();
      s2.put('keep', b(7));
      s2.put('new', new Uint8Array(40).fill(4));
      s2.commit();
      s2.close();
      const full = readFileSync(path);
      for (let cut = base.length; cut < full.length; cut++) {
        writeFileSync(path, full.subarray(0, cut));
        const r = openFileStore(path, { fsync: false });
        expect(r.get('keep'), `cut at ${cut}`).toEqual(b(1, 2, 3));
        expect(r.has('new')).toBe(false);
        r.close();
        expect(statSync(path).size, 'torn tail removed').toBe(base.length);
      }
      writeFileSync(path, full);
      const r = openFileStore(path, { fsync: false });
      expect(r.get('keep')).toEqual(b(7));
      r.close();
    } finally {
      t.done();
    }
  });

  it('stops at a record whose CRC fails and refuses a file that is not a chip state', () => {
    const t = tempDir();
    try {
      const path = join(t.dir, 'chip.img');
      const s = openFileStore(path, { fsync: false });
      s.put('a', b(1));
      s.put('b', b(2));
      s.close();
      const bytes = readFileSync(path);
      bytes[bytes.length - 1] ^= 0xff; // flip a bit in the last record's payload
      writeFileSync(path, bytes);
      const r = openFileStore(path, { fsync: false });
      expect(r.get('a')).toEqual(b(1));
      expect(r.has('b')).toBe(false);
      r.close();
      const other = join(t.dir, 'other.bin');
      writeFileSync(other, 'hello, world');
      expect(() => openFileStore(other)).toThrow(/not a jpki-se chip state/);
      expect(() => openFileStore(join(t.dir, 'none.img'), { create: false })).toThrow(/none\.img does not exist/);
    } finally {
      t.done();
    }
  });

  it('compacts a long log into one snapshot without losing anything', () => {
    const t = tempDir();
    try {
      const path = join(t.dir, 'chip.img');
      const s = openFileStore(path, { fsync: false });
      const r = prng(7);
      const model = new Map<string, number>();
      for (let i = 0; i < 3000; i++) {
        const k = `k/${r.int(20)}`;
        const v = r.int(1000);
        s.put(k, new Uint8Array(200).fill(v & 0xff));
        model.set(k, v & 0xff);
      }
      expect(s.bytesWritten).toBeGreaterThan(600_000);
      s.close();
      expect(statSync(path).size).toBeLessThan(300_000); // compaction happened
      const again = openFileStore(path, { fsync: false });
      for (const [k, v] of model) expect(again.get(k)?.[0], k).toBe(v);
      expect(again.keys('k/').length).toBe(model.size);
      again.close();
    } finally {
      t.done();
    }
  });

  it('locks the file: a second open in this process is refused; a dead owner\'s lock is taken over', () => {
    const t = tempDir();
    try {
      const path = join(t.dir, 'chip.img');
      const s = openFileStore(path);
      expect(existsSync(`${path}.lock`)).toBe(true);
      expect(() => openFileStore(path)).toThrow(/already open in this process/);
      s.close();
      expect(existsSync(`${path}.lock`)).toBe(false);
      writeFileSync(`${path}.lock`, '2147483646'); // no such process
      const again = openFileStore(path);
      again.close();
      writeFileSync(`${path}.lock`, String(process.ppid)); // a live process
      expect(() => openFileStore(path)).toThrow(new RegExp(`in use by process ${process.ppid}`));
      rmSync(`${path}.lock`);
    } finally {
      t.done();
    }
  });
});

describe('tearing hook', () => {
  function run(s: ChipStore): void {
    s.begin();
    s.put('a', b(2));
    s.put('b', b(2));
    s.delete('c');
    s.commit();
  }
  function seed(s: ChipStore): void {
    s.begin();
    s.put('a', b(1));
    s.put('b', b(1));
    s.put('c', b(1));
    s.commit();
  }

  for (const kind of ['memory', 'file'] as const) {
    it(`cuts power at write n (${kind}): the transaction is all-or-nothing after power-up`, () => {
      const t = tempDir();
      try {
        const outcomes: string[] = [];
        for (let n = 1; n <= 5; n++) {
          const path = join(t.dir, `chip-${n}.img`);
          const s = kind === 'memory' ? openMemoryStore() : openFileStore(path, { fsync: false });
          seed(s);
          s.armTear(n);
          let cut = false;
          try {
            run(s);
          } catch (e) {
            expect(e).toBeInstanceOf(PowerLoss);
            cut = true;
          }
          if (cut) {
            expect(s.powered).toBe(false);
            expect(() => s.get('a')).toThrow(PowerLoss);
            s.powerUp();
          }
          const state = [s.get('a')?.[0], s.get('b')?.[0], s.get('c')?.[0]].join(',');
          expect(['1,1,1', '2,2,']).toContain(state);
          outcomes.push(`${n}:${cut ? 'cut' : 'ran'}:${state}`);
          s.close();
          if (kind === 'file') {
            const r = openFileStore(path, { fsync: false });
            expect([r.get('a')?.[0], r.get('b')?.[0], r.get('c')?.[0]].join(','), 'same state from disk').toBe(state);
            r.close();
          }
        }
        // Writes 1–3 are the ops, 4 is the commit record (half written), 5 never comes.
        expect(outcomes).toEqual(['1:cut:1,1,1', '2:cut:1,1,1', '3:cut:1,1,1', '4:cut:1,1,1', '5:ran:2,2,']);
      } finally {
        t.done();
      }
    });
  }

  it('a cut inside the commit record leaves half a record on disk, which the next power-up drops', () => {
    const t = tempDir();
    try {
      const path = join(t.dir, 'chip.img');
      const s = openFileStore(path, { fsync: false });
      seed(s);
      const before = statSync(path).size;
      s.armTear(4);
      expect(() => run(s)).toThrow(PowerLoss);
      expect(statSync(path).size).toBeGreaterThan(before);
      s.powerUp();
      expect(statSync(path).size).toBe(before);
      expect(s.get('c')).toEqual(b(1));
      s.close();
    } finally {
      t.done();
    }
  });
});

describe('kill -9 during commits', () => {
  it('after 50 kills the file always holds a whole, acknowledged-or-later commit', async () => {
    const t = tempDir();
    const path = join(t.dir, 'chip.img');
    const worker = join(import.meta.dirname, 'fixtures', 'store-writer.ts');
    const r = prng(99);
    let next = 1;
    try {
      for (let round = 0; round < 50; round++) {
        const { out } = await runAndKill(worker, [path, String(next)], (o) => o.length > 0, () => r.int(40));
        const acked = out.split('\n').filter((l) => /^\d+$/.test(l)).map(Number);
        const lastAck = acked[acked.length - 1];
        const s = openFileStore(path);
        const n = s.getJson<{ n: number }>('meta')?.n;
        // The last acknowledged commit, or the one in flight after it; never older, never half.
        expect([lastAck, lastAck + 1]).toContain(n);
        for (let k = 0; k < 3; k++) expect(new DataView(s.get(`slot/${k}`)!.buffer).getUint32(0), `slot ${k}`).toBe(n);
        const slot3 = s.get('slot/3');
        if (n! % 7 === 0) expect(slot3).toBeUndefined();
        else expect(new DataView(slot3!.buffer).getUint32(0)).toBe(n);
        s.close();
        next = n! + 1;
      }
    } finally {
      t.done();
    }
  }, 120_000);
});
