// The card side of org.globalplatform.SecureChannel: an applet's security domain runs SCP03 (GPC 2.2 Amd D) for it.
// The session lives where the card manager keeps its own: in the logical channel's state (CardEnv.channels[n].scp),
// so selecting another application on that channel ends it (card.ts deselect), as GPCS 2.3.1 §10.2.3 requires.
// What this module adds is the API's view (GP API 1.6 org.globalplatform.SecureChannel): a session belongs to the
// applet that opened it, and a session aborted by a failed unwrap keeps its compulsory level until resetSecurity.
import { fromHex } from '../bytes.ts';
import { IsoError, SW } from '../iso.ts';
import { decodeCla, parseCommand } from '../apdu.ts';
import type { CommandApdu } from '../apdu.ts';
import {
  Level,
  cardExternalAuthenticate,
  cardInitializeUpdate,
  cardUnwrap,
  cardWrap,
  decryptKeyData,
  encryptKeyData,
  iOptions,
} from '../scp03.ts';
import type { CardEnv } from '../gp/env.ts';
import { findApp, saveKeys } from '../gp/registry.ts';
import type { AppEntry } from '../gp/registry.ts';
import { findKeySet, keySetKeys } from '../gp/keys.ts';
import { scpI } from '../gp/security-domain.ts';
import type { SecureChannelService } from './types.ts';

/** GP API SecureChannel security level bits (AUTHENTICATED 0x80; C_MAC, C_DECRYPTION, R_MAC, R_ENCRYPTION as in SCP03). */
export const AUTHENTICATED = 0x80;

const INS_INITIALIZE_UPDATE = 0x50;
const INS_EXTERNAL_AUTHENTICATE = 0x82;

/** Per logical channel: which applet owns the session and its compulsory level (kept after an abort). */
interface Owner {
  aid: string;
  /** Compulsory Session Security Level, established at EXTERNAL AUTHENTICATE. */
  sessionLevel: number;
  aborted: boolean;
}

export interface SecureChannels {
  /** The SecureChannel service of the security domain `aid` (an applet AID, hex) is associated with. */
  service(aid: string): SecureChannelService;
  /** Forget the API-side session state of a channel (applet deselected, channel closed); all channels when omitted. */
  reset(channel?: number): void;
}

/**
 * Creates the SecureChannel services of a card. `env` gives the live card state for the current command (model with
 * key sets and sequence counters, store, profile, channels, current channel); the VM runtime obtains it from the card.
 */
export function createSecureChannelService(env: () => CardEnv): SecureChannels {
  const owners = new Map<number, Owner>();

  function context(aid: string): { e: CardEnv; app: AppEntry; sd: AppEntry } {
    const e = env();
    const app = findApp(e.model, aid);
    if (!app) throw new IsoError(SW.CONDITIONS_NOT_SATISFIED, `no application ${aid}`);
    const sd = findApp(e.model, app.sd);
    if (!sd) throw new IsoError(SW.CONDITIONS_NOT_SATISFIED, `application ${aid} has no security domain`);
    return { e, app, sd };
  }

  /** The open session of this channel if `aid` owns it; a session of another applet is refused (GP API 1.6). */
  function session(e: CardEnv, aid: string) {
    const ch = e.channels[e.channel];
    const owner = owners.get(e.channel);
    if (ch.scp && owner && owner.aid !== aid) throw new IsoError(SW.CONDITIONS_NOT_SATISFIED, 'secure channel session belongs to another application');
    if (!ch.scp && owner && !owner.aborted) owners.delete(e.channel); // ended by the card (deselect, new INITIALIZE UPDATE)
    return ch.scp;
  }

  function abortedLevel(e: CardEnv, aid: string): boolean {
    const owner = owners.get(e.channel);
    return !!owner && owner.aid === aid && owner.aborted && owner.sessionLevel !== 0;
  }

  function initializeUpdate(e: CardEnv, sd: AppEntry, cmd: CommandApdu): Uint8Array {
    if (cmd.p2 !== 0) throw new IsoError(SW.INCORRECT_P1P2, 'P2 of INITIALIZE UPDATE must be 00');
    const i = scpI(e, sd);
    const challengeLen = iOptions(i).s16 ? 16 : 8;
    if (cmd.data.length !== challengeLen) throw new IsoError(SW.WRONG_LENGTH, `host challenge must be ${challengeLen} bytes`);
    const set = findKeySet(e.model, sd.aid, cmd.p1);
    if (!set) throw new IsoError(SW.REFERENCED_DATA_NOT_FOUND, `no key set with KVN ${cmd.p1.toString(16)}`);
    if (iOptions(i).pseudoRandom) {
      if (set.seq >= 0xffffff) throw new IsoError(SW.CONDITIONS_NOT_SATISFIED, 'sequence counter exhausted');
      set.seq += 1;
      // Joins the command's store unit when one is open (the VM's), else commits on its own.
      saveKeys(e.store, e.model, sd.aid);
    }
    const { response, pending } = cardInitializeUpdate({
      keys: keySetKeys(set),
      kvn: set.kvn,
      i,
      sequenceCounter: set.seq,
      sdAid: fromHex(sd.aid),
      kdd: e.profile.kdd,
      hostChallenge: cmd.data,
    });
    const ch = e.channels[e.channel];
    ch.scp = null; // a new INITIALIZE UPDATE ends any session (Amd D §5.6)
    ch.pendingAuth = pending;
    owners.delete(e.channel);
    return response;
  }

  function dek(e: CardEnv, sd: AppEntry, kvn: number): Uint8Array {
    const set = findKeySet(e.model, sd.aid, kvn);
    if (!set) throw new IsoError(SW.CONDITIONS_NOT_SATISFIED, 'the session key set is gone');
    return keySetKeys(set).dek;
  }

  function service(aid: string): SecureChannelService {
    return {
      processSecurity(command) {
        const { e, sd } = context(aid);
        const cmd = parseCommand(command);
        const cla = decodeCla(cmd.cla);
        if (!cla || cla.interindustry) throw new IsoError(SW.CLA_NOT_SUPPORTED, 'security commands use the proprietary class');
        const ch = e.channels[e.channel];
        const pending = ch.pendingAuth;
        if (cmd.ins === INS_INITIALIZE_UPDATE) return { data: initializeUpdate(e, sd, cmd), sw: SW.OK };
        if (cmd.ins === INS_EXTERNAL_AUTHENTICATE) {
          ch.pendingAuth = null;
          if (!pending) throw new IsoError(SW.CONDITIONS_NOT_SATISFIED, 'EXTERNAL AUTHENTICATE without INITIALIZE UPDATE');
          ch.scp = cardExternalAuthenticate(pending, cmd);
          owners.set(e.channel, { aid, sessionLevel: ch.scp.level | AUTHENTICATED, aborted: false });
          e.log(`SCP03 session for ${aid} open on channel ${e.channel}, level ${ch.scp.level.toString(16).padStart(2, '0')}`);
          return { data: new Uint8Array(0), sw: SW.OK };
        }
        throw new IsoError(SW.INS_NOT_SUPPORTED, `INS ${cmd.ins.toString(16)} is not a security command`);
      },

      unwrap(command) {
        const { e } = context(aid);
        if (abortedLevel(e, aid)) throw new IsoError(SW.CONDITIONS_NOT_SATISFIED, 'secure channel session was aborted; resetSecurity first');
        const s = session(e, aid);
        const cmd = parseCommand(command);
        const cla = decodeCla(cmd.cla);
        // No SM indication, or a session that only authenticated: the command stays as it is (GP API 1.6 unwrap).
        if (!cla || cla.sm === 'none' || !s || !(s.level & (Level.CMAC | Level.CDEC))) return command;
        try {
          const plain = cardUnwrap(s, cmd);
          return encodeUnwrapped(plain);
        } catch (err) {
          const ch = e.channels[e.channel];
          ch.scp = null;
          const owner = owners.get(e.channel);
          if (owner) owner.aborted = true;
          throw err;
        }
      },

      wrap(response, sw) {
        const { e } = context(aid);
        if (abortedLevel(e, aid)) throw new IsoError(SW.CONDITIONS_NOT_SATISFIED, 'secure channel session was aborted; resetSecurity first');
        const s = session(e, aid);
        if (!s) return response;
        return cardWrap(s, response, sw);
      },

      decryptData(data) {
        const { e, sd } = context(aid);
        const s = session(e, aid);
        if (!s) throw new IsoError(SW.CONDITIONS_NOT_SATISFIED, 'no secure channel session');
        if (data.length === 0 || data.length % 16 !== 0) throw new IsoError(SW.WRONG_LENGTH, 'encrypted data is not whole AES blocks');
        // SCP03 sensitive data: AES-CBC with the static Key-DEK and a zero ICV, no padding defined (Amd D §7.2).
        return decryptKeyData(dek(e, sd, s.kvn), data);
      },

      encryptData(data) {
        const { e, sd } = context(aid);
        const s = session(e, aid);
        if (!s) throw new IsoError(SW.CONDITIONS_NOT_SATISFIED, 'no secure channel session');
        if (data.length === 0 || data.length % 16 !== 0) throw new IsoError(SW.WRONG_LENGTH, 'data to encrypt is not whole AES blocks');
        return encryptKeyData(dek(e, sd, s.kvn), data);
      },

      securityLevel() {
        const e = env();
        const s = session(e, aid);
        return s ? (s.level | AUTHENTICATED) & 0xff : 0;
      },

      resetSecurity() {
        const e = env();
        const ch = e.channels[e.channel];
        const owner = owners.get(e.channel);
        if (!owner || owner.aid === aid) {
          ch.scp = null;
          ch.pendingAuth = null;
          owners.delete(e.channel);
        }
      },
    };
  }

  return {
    service,
    reset(channel) {
      if (channel === undefined) owners.clear();
      else owners.delete(channel);
    },
  };
}

/** The unwrapped command as the applet reads it: header, Lc (00 for case 1/2, GP API 1.6), data; extended Lc when needed. */
function encodeUnwrapped(c: CommandApdu): Uint8Array {
  const n = c.data.length;
  const ext = c.extended || n > 255;
  const head = ext ? [c.cla, c.ins, c.p1, c.p2, 0, n >> 8, n & 0xff] : [c.cla, c.ins, c.p1, c.p2, n];
  const out = new Uint8Array(head.length + n);
  out.set(head);
  out.set(c.data, head.length);
  return out;
}
