// Durable chip state: restarts, power cuts at every persistent write (tearing), and kill -9 of a process mid-command.
import { describe, it, expect } from 'vitest';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openChip } from '../emulator/card.ts';
import { PowerLoss } from '../emulator/store.ts';
import { DEFAULT_PROFILE } from '../emulator/profile.ts';
import { secure, tx, ISD } from './helpers/chip.ts';
import { prng } from './helpers/prng.ts';
import { runAndKill } from './helpers/kill.ts';

function tempState(): { state: string; done: () => void } {
  const dir = mkdtempSync(join(tmpdir(), 'jpki-state-'));
  return { state: join(dir, 'chip.img'), done: () => rmSync(dir, { recursive: true, force: true }) };
}

const INSTALL_SD = (aid: string) => {
  const body = '07A0000001515350' + '08A000000151535041' + (aid.length / 2).toString(16).padStart(2, '0') + aid + '03800000' + '02C900' + '00';
  return '80E60C00' + (body.length / 2).toString(16).padStart(2, '0') + body + '00';
};

function registryAids(chip: ReturnType<typeof openChip>): string[] {
  return chip.model().registry.apps.map((a) => a.aid);
}

describe('chip state survives restarts', () => {
  it('keeps registry, keys, life cycle and sequence counter across processes', async () => {
    const t = tempState();
    try {
      const chip = openChip({ state: t.state });
      const sc = await secure(chip);
      expect((await sc.send(INSTALL_SD('A000000151535041AA'))).sw).toBe(0x9000);
      chip.close();
      const again = openChip({ state: t.state, create: false });
      expect(registryAids(again)).toEqual([ISD, 'A000000151535041AA']);
      expect(tx(again, '80CA00C100').data).toBe('C103000001');
      expect(tx(again, '00A4040009A000000151535041AA').sw).toBe(0x9000);
      again.close();
      expect(() => openChip({ state: join(t.state + '-missing'), create: false })).toThrow(/does not exist/);
      // The profile is part of the chip: reopening without one uses it, asking for another is refused.
      const other = { ...DEFAULT_PROFILE, name: 'other-chip' };
      expect(() => openChip({ state: t.state, profile: other })).toThrow('the chip was made with profile "jcop4-like", not "other-chip"');
      const third = openChip({ state: t.state });
      expect(third.profile.name).toBe('jcop4-like');
      third.close();
    } finally {
      t.done();
    }
  });
});

describe('tearing: a power cut at any persistent write of a command is all-or-nothing', () => {
  it('INSTALL of a security domain, cut at write 1, 2, … and after', async () => {
    const t = tempState();
    try {
      let landed = 0;
      let cut = 0;
      for (let n = 1; n <= 8; n++) {
        const chip = openChip({ state: t.state });
        const before = registryAids(chip);
        const aid = `A000000151535041${(0x10 + n).toString(16).toUpperCase()}`;
        const sc = await secure(chip);
        chip.store.armTear(n);
        let tore = false;
        try {
          await sc.send(INSTALL_SD(aid));
        } catch (e) {
          expect(e).toBeInstanceOf(PowerLoss);
          tore = true;
        }
        chip.store.disarmTear();
        // Next power-up, in this process and in a fresh one.
        chip.powerUp();
        const after = registryAids(chip);
        chip.close();
        const fresh = openChip({ state: t.state, create: false });
        expect(registryAids(fresh)).toEqual(after);
        const hasKeys = fresh.model().keys.has(aid);
        fresh.close();
        if (tore) {
          cut++;
          expect(after).toEqual(before);
          expect(hasKeys).toBe(false);
        } else {
          landed++;
          expect(after).toEqual([...before, aid]);
          expect(hasKeys).toBe(true);
        }
      }
      // The unit has a few writes: the first cuts tear it, the later arms come too late and it lands.
      expect(cut).toBeGreaterThanOrEqual(2);
      expect(landed).toBeGreaterThanOrEqual(1);
    } finally {
      t.done();
    }
  });
});

describe('kill -9 mid-command leaves the last committed state', () => {
  it('survives 30 kills of a process installing and deleting security domains', async () => {
    const t = tempState();
    const r = prng(42);
    const worker = join(import.meta.dirname, 'fixtures', 'chip-worker.ts');
    let start = 0;
    let kills = 0;
    try {
      for (let round = 0; round < 30; round++) {
        // Wait until it has done some work, then kill it at a random moment.
        const { out } = await runAndKill(worker, [t.state, String(start)], (o) => o.split('\n').length > 2, () => r.int(60));
        kills++;
        const reported = out.split('\n').filter((l) => l.endsWith(' 9000')).map((l) => l.split(' '));
        const lines = out.split('\n').filter((l) => l.length > 0).map((l) => l.split(' '));
        // The command in flight when the kill came may or may not have landed: it is the step after the last line.
        const last = lines[lines.length - 1];
        const lastIndex = Number.parseInt(last[1].slice(-2), 16);
        const inFlight =
          last[0] === 'install'
            ? { op: 'delete', aid: last[1].slice(0, -2) + ((lastIndex - 3) & 0xff).toString(16).padStart(2, '0').toUpperCase() }
            : { op: 'install', aid: last[1].slice(0, -2) + ((lastIndex + 4) & 0xff).toString(16).padStart(2, '0').toUpperCase() };
        const chip = openChip({ state: t.state, create: false });
        const aids = registryAids(chip);
        const alive = new Set<string>();
        for (const [op, aid] of reported) {
          if (op === 'install') alive.add(aid);
          else alive.delete(aid);
        }
        // Every step the worker saw succeed is in the state; nothing else is, except the command in flight.
        for (const aid of alive)
          if (!(inFlight.op === 'delete' && inFlight.aid === aid)) expect(aids, `install ${aid} acknowledged`).toContain(aid);
        for (const aid of aids.slice(1))
          if (!(inFlight.op === 'install' && inFlight.aid === aid)) expect(alive, `${aid} present but never acknowledged`).toContain(aid);
        for (const a of aids) expect(chip.model().keys.has(a), `keys of ${a}`).toBe(true);
        // Clean slate for the next round: remove what is there, through the card manager.
        const sc = await secure(chip);
        for (const a of aids.slice(1)) expect((await sc.send('80E40080' + (2 + a.length / 2).toString(16).padStart(2, '0') + '4F' + (a.length / 2).toString(16).padStart(2, '0') + a + '00')).sw).toBe(0x9000);
        chip.close();
        start += 50;
      }
      expect(kills).toBe(30);
    } finally {
      t.done();
    }
  }, 120_000);
});
