// SET STATUS (GPCS 2.3.1 §11.10): card life cycle (P1 80), an application or SD (P1 40), an SD with its applications (P1 60).
import type { CommandApdu } from '../apdu.ts';
import { hex } from '../bytes.ts';
import { IsoError, SW } from '../iso.ts';
import type { CardEnv } from './env.ts';
import type { AppEntry } from './registry.ts';
import { findApp, isdAid, saveCard, saveRegistry } from './registry.ts';
import { AppLife, CardLife, Priv, SdLife, cardLifeName } from './constants.ts';

export function setStatus(env: CardEnv, sd: AppEntry, cmd: CommandApdu): Uint8Array {
  if (cmd.p1 === 0x80) return setCardState(env, sd, cmd);
  if (cmd.p1 !== 0x40 && cmd.p1 !== 0x60) throw new IsoError(SW.INCORRECT_P1P2, `SET STATUS P1 ${cmd.p1.toString(16)}`);
  const m = env.model;
  const aid = hex(cmd.data);
  const app = findApp(m, aid);
  if (!app) throw new IsoError(SW.REFERENCED_DATA_NOT_FOUND, `${aid || 'empty AID'} not found`);
  if (aid === isdAid(m)) throw new IsoError(SW.CONDITIONS_NOT_SATISFIED, 'the ISD changes state with P1 80 (card life cycle)');
  const global = sd.aid === isdAid(m) || (sd.privileges & Priv.GLOBAL_LOCK) !== 0;
  if (!global && app.sd !== sd.aid) throw new IsoError(SW.CONDITIONS_NOT_SATISFIED, `${aid} is not associated with ${sd.aid}`);
  if (cmd.p1 === 0x60 && !app.isSd) throw new IsoError(SW.WRONG_DATA, 'P1 60 needs a security domain');
  const targets = cmd.p1 === 0x60 ? [app, ...m.registry.apps.filter((a) => a.sd === app.aid && a !== app)] : [app];
  for (const t of targets) transition(t, cmd.p2, cmd.p1 === 0x60);
  saveRegistry(env.store, m);
  return new Uint8Array(0);
}

/** Application and SD transitions an SD may request (GPCS §5.2, §5.3): lock (P2 b8), unlock, and SD personalisation. */
function transition(app: AppEntry, p2: number, cascade: boolean): void {
  const locked = (app.lifeCycle & AppLife.LOCKED_BIT) !== 0;
  if (p2 & 0x80) {
    if (locked && !cascade) throw new IsoError(SW.CONDITIONS_NOT_SATISFIED, `${app.aid} is already locked`);
    app.lifeCycle |= AppLife.LOCKED_BIT;
    return;
  }
  if (p2 === 0x00) {
    if (!locked && !cascade) throw new IsoError(SW.CONDITIONS_NOT_SATISFIED, `${app.aid} is not locked`);
    app.lifeCycle &= ~AppLife.LOCKED_BIT;
    return;
  }
  if (locked) throw new IsoError(SW.CONDITIONS_NOT_SATISFIED, `${app.aid} is locked`);
  if (app.isSd && p2 === SdLife.PERSONALIZED && app.lifeCycle === SdLife.SELECTABLE) {
    app.lifeCycle = SdLife.PERSONALIZED;
    return;
  }
  if (app.isSd && p2 === SdLife.SELECTABLE && app.lifeCycle === SdLife.INSTALLED) {
    app.lifeCycle = SdLife.SELECTABLE;
    return;
  }
  // Application-specific states belong to the application itself (GPCS §5.3.1? SET STATUS by the application via GPSystem).
  throw new IsoError(SW.WRONG_DATA, `state ${p2.toString(16)} cannot be set on ${app.aid} by a security domain`);
}

/** Card life cycle transitions (GPCS §5.1.1, Figure 5-1). */
function setCardState(env: CardEnv, sd: AppEntry, cmd: CommandApdu): Uint8Array {
  const m = env.model;
  if (cmd.data.length && hex(cmd.data) !== isdAid(m)) throw new IsoError(SW.REFERENCED_DATA_NOT_FOUND, 'P1 80 takes the ISD AID');
  const from = m.card.lifeCycle;
  const to = cmd.p2;
  const valid: number[] = Object.values(CardLife);
  if (!valid.includes(to)) throw new IsoError(SW.WRONG_DATA, `card life cycle ${to.toString(16)} does not exist`);
  const isIsd = sd.aid === isdAid(m);
  const allowed =
    (to === CardLife.INITIALIZED && from === CardLife.OP_READY && isIsd) ||
    (to === CardLife.SECURED && (from === CardLife.OP_READY || from === CardLife.INITIALIZED) && isIsd) ||
    (to === CardLife.CARD_LOCKED && from === CardLife.SECURED && (sd.privileges & Priv.CARD_LOCK) !== 0) ||
    (to === CardLife.SECURED && from === CardLife.CARD_LOCKED && isIsd) ||
    (to === CardLife.TERMINATED && (sd.privileges & Priv.CARD_TERMINATE) !== 0);
  if (!allowed)
    throw new IsoError(SW.CONDITIONS_NOT_SATISFIED, `card life cycle ${cardLifeName(from)} → ${cardLifeName(to)} not allowed`);
  m.card.lifeCycle = to;
  saveCard(env.store, m);
  env.log(`card life cycle ${cardLifeName(from)} → ${cardLifeName(to)}`);
  return new Uint8Array(0);
}
