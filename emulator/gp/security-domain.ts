// A security domain's command processing (GPCS 2.3.1 §11): secure channel first, then the command, atomically.
import type { CommandApdu, ResponseApdu } from '../apdu.ts';
import { decodeCla } from '../apdu.ts';
import { fromHex } from '../bytes.ts';
import { IsoError, SW } from '../iso.ts';
import { PowerLoss } from '../store.ts';
import {
  Level,
  cardExternalAuthenticate,
  cardInitializeUpdate,
  cardUnwrap,
  cardWrap,
  iOptions,
} from '../scp03.ts';
import type { CardEnv } from './env.ts';
import { CardLife, Priv } from './constants.ts';
import type { AppEntry } from './registry.ts';
import { saveKeys } from './registry.ts';
import { getData } from './get-data.ts';
import { getStatus } from './get-status.ts';
import { install, load, deleteObject } from './content.ts';
import { findKeySet, putKey, keySetKeys } from './keys.ts';
import { setStatus } from './set-status.ts';
import { storeData } from './store-data.ts';

const INS = {
  GET_DATA: 0xca,
  GET_STATUS: 0xf2,
  INSTALL: 0xe6,
  LOAD: 0xe8,
  DELETE: 0xe4,
  PUT_KEY: 0xd8,
  SET_STATUS: 0xf0,
  STORE_DATA: 0xe2,
  INITIALIZE_UPDATE: 0x50,
  EXTERNAL_AUTHENTICATE: 0x82,
} as const;

/** Commands a CARD_LOCKED card still processes in its ISD (GPCS §5.1.1.4); TERMINATED allows GET DATA only (§5.1.1.5). */
const LOCKED_ALLOWED: number[] = [INS.GET_DATA, INS.GET_STATUS, INS.SET_STATUS, INS.INITIALIZE_UPDATE, INS.EXTERNAL_AUTHENTICATE];

export function processSd(env: CardEnv, sd: AppEntry, cmd: CommandApdu): ResponseApdu {
  const ch = env.channels[env.channel];
  const cla = decodeCla(cmd.cla);
  if (!cla) throw new IsoError(SW.CLA_NOT_SUPPORTED);
  const life = env.model.card.lifeCycle;
  if (life === CardLife.TERMINATED && cmd.ins !== INS.GET_DATA) throw new IsoError(SW.CONDITIONS_NOT_SATISFIED, 'card is TERMINATED');
  if (life === CardLife.CARD_LOCKED && !LOCKED_ALLOWED.includes(cmd.ins))
    throw new IsoError(SW.CONDITIONS_NOT_SATISFIED, 'card is CARD_LOCKED');

  // EXTERNAL AUTHENTICATE must come right after INITIALIZE UPDATE on this channel (GPCS §D.4.2? / Amd D §7.1.2).
  const pending = ch.pendingAuth;
  ch.pendingAuth = null;
  if (cmd.ins === INS.EXTERNAL_AUTHENTICATE) {
    if (!pending) throw new IsoError(SW.CONDITIONS_NOT_SATISFIED, 'EXTERNAL AUTHENTICATE without INITIALIZE UPDATE');
    if (cla.interindustry) throw new IsoError(SW.CLA_NOT_SUPPORTED);
    ch.scp = null;
    ch.scp = cardExternalAuthenticate(pending, cmd);
    env.log(`SCP03 session open on channel ${env.channel}, level ${ch.scp.level.toString(16).padStart(2, '0')}`);
    return { data: new Uint8Array(0), sw: SW.OK };
  }
  if (cmd.ins === INS.INITIALIZE_UPDATE) {
    ch.scp = null; // a new INITIALIZE UPDATE ends any session (Amd D §5.6)
    return initializeUpdate(env, sd, cmd, cla.interindustry);
  }

  // Secure messaging: unwrap, or refuse an unprotected command inside a MACed session (Amd D §5.6, §6.2.4).
  let plain = cmd;
  const session = ch.scp;
  if (session) {
    if (cla.sm !== 'none') {
      try {
        plain = cardUnwrap(session, cmd);
      } catch (e) {
        ch.scp = null;
        throw e;
      }
    } else if (session.level & Level.CMAC) {
      ch.scp = null;
      throw new IsoError(SW.SECURITY_STATUS, 'command without C-MAC in a MACed session; session closed');
    }
  } else if (cla.sm !== 'none') {
    throw new IsoError(SW.SECURITY_STATUS, 'secure messaging without a secure channel session');
  }

  const whole = chain(env, plain);
  const r = whole ? atomically(env, () => dispatch(env, sd, whole)) : { data: new Uint8Array(0), sw: SW.OK };
  if (session && ch.scp === session) return { data: cardWrap(session, r.data, r.sw), sw: r.sw };
  return r;
}

/** ISO command chaining (ISO 7816-4 §5.3.3, CLA b5): pieces are gathered until the last one, then processed whole. */
function chain(env: CardEnv, cmd: CommandApdu): CommandApdu | undefined {
  const ch = env.channels[env.channel];
  const more = (cmd.cla & 0x10) !== 0; // b5 in both the first and the further interindustry coding
  const c = ch.chain;
  if (c && (c.ins !== cmd.ins || c.p1 !== cmd.p1 || c.p2 !== cmd.p2)) {
    ch.chain = null;
    throw new IsoError(SW.LAST_COMMAND_EXPECTED, 'command chain interrupted by another command');
  }
  const parts = c ? [...c.parts, cmd.data] : [cmd.data];
  if (more) {
    ch.chain = { ins: cmd.ins, p1: cmd.p1, p2: cmd.p2, parts };
    return undefined;
  }
  ch.chain = null;
  if (!c) return cmd;
  const data = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let off = 0;
  for (const p of parts) {
    data.set(p, off);
    off += p.length;
  }
  return { ...cmd, data };
}

/** Runs a card-manager command as one atomic unit: all its persistent writes or none (GPCS §5? atomicity of content management). */
function atomically(env: CardEnv, body: () => ResponseApdu): ResponseApdu {
  env.store.begin();
  try {
    const r = body();
    env.store.commit();
    return r;
  } catch (e) {
    if (e instanceof PowerLoss) throw e;
    env.store.abort();
    env.reload();
    if (e instanceof IsoError) env.log(e.message);
    throw e;
  }
}

function dispatch(env: CardEnv, sd: AppEntry, cmd: CommandApdu): ResponseApdu {
  const cla = decodeCla(cmd.cla)!;
  const ok = (data: Uint8Array = new Uint8Array(0)): ResponseApdu => ({ data, sw: SW.OK });
  if (cmd.ins === INS.GET_DATA) return ok(getData(env, sd, cmd));
  // A security domain has no files: SELECT other than by AID is refused (GPCS §11.9.2.1: P1 must be 04).
  if (cmd.ins === 0xa4) throw new IsoError(cmd.p1 === 0x04 ? SW.FILE_NOT_FOUND : SW.INCORRECT_P1P2);
  if (cmd.ins !== INS.GET_STATUS) env.channels[env.channel].sd.status = null;
  if (cla.interindustry) throw new IsoError(SW.CLA_NOT_SUPPORTED, 'GlobalPlatform commands use the proprietary class');
  switch (cmd.ins) {
    case INS.GET_STATUS:
      requireAuth(env);
      return getStatus(env, sd, cmd);
    case INS.INSTALL:
      requireAuth(env);
      return ok(install(env, sd, cmd));
    case INS.LOAD:
      requireAuth(env);
      return ok(load(env, sd, cmd));
    case INS.DELETE:
      requireAuth(env);
      return ok(deleteObject(env, sd, cmd));
    case INS.PUT_KEY:
      requireAuth(env);
      return ok(putKey(env, sd, cmd));
    case INS.SET_STATUS:
      requireAuth(env);
      return ok(setStatus(env, sd, cmd));
    case INS.STORE_DATA:
      requireAuth(env);
      return ok(storeData(env, sd, cmd));
    default:
      throw new IsoError(SW.INS_NOT_SUPPORTED);
  }
}

/** Content management needs an authenticated session at the profile's minimum level (GPCS Table 11-2). */
export function requireAuth(env: CardEnv): void {
  const s = env.channels[env.channel].scp;
  if (!s) throw new IsoError(SW.SECURITY_STATUS, 'no secure channel session');
  const min = env.profile.minContentLevel;
  if ((s.level & min) !== min)
    throw new IsoError(SW.SECURITY_STATUS, `security level ${s.level.toString(16)} below required ${min.toString(16)}`);
}

function initializeUpdate(env: CardEnv, sd: AppEntry, cmd: CommandApdu, interindustry: boolean): ResponseApdu {
  if (interindustry) throw new IsoError(SW.CLA_NOT_SUPPORTED);
  if (cmd.p2 !== 0) throw new IsoError(SW.INCORRECT_P1P2, 'P2 of INITIALIZE UPDATE must be 00');
  const i = scpI(env, sd);
  const opts = iOptions(i);
  const challengeLen = opts.s16 ? 16 : 8;
  if (cmd.data.length !== challengeLen) throw new IsoError(SW.WRONG_LENGTH, `host challenge must be ${challengeLen} bytes`);
  const set = findKeySet(env.model, sd.aid, cmd.p1);
  if (!set) throw new IsoError(SW.REFERENCED_DATA_NOT_FOUND, `no key set with KVN ${cmd.p1.toString(16)}`);
  if (opts.pseudoRandom) {
    if (set.seq >= 0xffffff) throw new IsoError(SW.CONDITIONS_NOT_SATISFIED, 'sequence counter exhausted');
    set.seq += 1;
    env.store.begin();
    saveKeys(env.store, env.model, sd.aid);
    env.store.commit();
  }
  const { response, pending } = cardInitializeUpdate({
    keys: keySetKeys(set),
    kvn: set.kvn,
    i,
    sequenceCounter: set.seq,
    sdAid: fromHex(sd.aid),
    kdd: env.profile.kdd,
    hostChallenge: cmd.data,
  });
  env.channels[env.channel].pendingAuth = pending;
  return { data: response, sw: SW.OK };
}

/** The SCP03 "i" parameter of a security domain: the profile's for the ISD; APSDs may set their own at install. */
export function scpI(env: CardEnv, sd: AppEntry): number {
  return sd.scpI ?? env.profile.scpI;
}

export { Priv };
