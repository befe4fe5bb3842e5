// STORE DATA (GPCS 2.3.1 §11.11): to the security domain itself, or forwarded after INSTALL [for personalization].
import type { CommandApdu } from '../apdu.ts';
import { hex } from '../bytes.ts';
import { IsoError, SW } from '../iso.ts';
import { parseTlvs, TlvError } from '../tlv.ts';
import { decryptKeyData } from '../scp03.ts';
import type { CardEnv } from './env.ts';
import type { AppEntry } from './registry.ts';
import { findApp, isdAid, saveCard } from './registry.ts';
import { findKeySet, keySetKeys } from './keys.ts';

export function storeData(env: CardEnv, sd: AppEntry, cmd: CommandApdu): Uint8Array {
  const st = env.channels[env.channel].sd;
  const last = (cmd.p1 & 0x80) !== 0;
  const enc = (cmd.p1 >> 5) & 0x03;
  const format = (cmd.p1 >> 3) & 0x03;
  const expected = st.store?.next ?? 0;
  if (cmd.p2 !== expected) {
    st.store = null;
    throw new IsoError(SW.INCORRECT_P1P2, `STORE DATA block ${cmd.p2} where ${expected} was expected`);
  }
  st.store = last ? null : { next: expected + 1 };
  let data = cmd.data;
  if (enc === 0x03) {
    // Encrypted with the DEK of the session's key set (GPCS §11.11.2.2, AES per Amd D).
    const set = findKeySet(env.model, sd.aid, env.channels[env.channel].scp!.kvn);
    if (!set || data.length % 16) throw new IsoError(SW.WRONG_DATA, 'encrypted STORE DATA must be whole AES blocks');
    data = decryptKeyData(keySetKeys(set).dek, data);
  } else if (enc === 0x02) {
    throw new IsoError(SW.INCORRECT_P1P2, 'STORE DATA encryption indicator 10 is RFU');
  }
  const target = st.personalizing;
  if (target) {
    const app = findApp(env.model, target);
    if (!app) throw new IsoError(SW.REFERENCED_DATA_NOT_FOUND, `application ${target} is gone`);
    if (last) st.personalizing = null;
    const rt = env.runtimeFor(app.elf);
    if (!rt?.processData) throw new IsoError(SW.CONDITIONS_NOT_SATISFIED, `application ${target} cannot receive STORE DATA`);
    try {
      return rt.processData(target, data, Uint8Array.of(cmd.cla, cmd.ins, cmd.p1, cmd.p2));
    } catch (e) {
      // The applet's writes before its exception persist (JCRE: no transaction) and the SD wrote nothing here, so the
      // command's unit is committed before the failure aborts it (security-domain.ts atomically).
      if (e instanceof IsoError && env.store.inTransaction) {
        env.store.commit();
        env.store.begin();
      }
      throw e;
    }
  }
  if (format !== 0x02) throw new IsoError(SW.WRONG_DATA, 'a security domain takes STORE DATA as BER-TLV (P1 b5b4 = 10)');
  storeSdData(env, sd, data);
  return new Uint8Array(0);
}

/** Data objects a security domain keeps (GPCS §11.11.3? / Table 11-82): IIN 42, CIN 45, SD URL 5F50 (ISD only). */
function storeSdData(env: CardEnv, sd: AppEntry, data: Uint8Array): void {
  let list;
  try {
    list = parseTlvs(data);
  } catch (e) {
    throw new IsoError(SW.WRONG_DATA, e instanceof TlvError ? `STORE DATA: ${e.message}` : 'STORE DATA');
  }
  const m = env.model;
  if (sd.aid !== isdAid(m)) throw new IsoError(SW.REFERENCED_DATA_NOT_FOUND, 'this security domain keeps no STORE DATA objects');
  for (const t of list) {
    if (t.tag === 0x42) m.card.iin = hex(t.value);
    else if (t.tag === 0x45) m.card.cin = hex(t.value);
    else if (t.tag === 0x5f50) m.card.sdUrl = new TextDecoder().decode(t.value);
    else throw new IsoError(SW.REFERENCED_DATA_NOT_FOUND, `data object ${t.tag.toString(16)} is not supported`);
  }
  saveCard(env.store, m);
}
