// GET DATA (GPCS 2.3.1 §11.3): card and security-domain data objects.
import type { CommandApdu } from '../apdu.ts';
import { concat, fromHex, uint } from '../bytes.ts';
import { IsoError, SW } from '../iso.ts';
import { tlv } from '../tlv.ts';
import type { CardEnv } from './env.ts';
import type { AppEntry } from './registry.ts';
import { isdAid, usedPersistent } from './registry.ts';
import { findKeySet } from './keys.ts';
import { scpI } from './security-domain.ts';

// OID arc of GlobalPlatform, {iso(1) member-body(2) us(840) globalPlatform(114283)} (GPCS Annex H).
const GP_OID = fromHex('2A864886FC6B');
const oid = (...arc: number[]) => tlv(0x06, GP_OID, Uint8Array.from(arc));

/** Card Recognition Data (GPCS Table H-1), the value inside tag 73. */
export function cardRecognitionData(i: number): Uint8Array {
  return tlv(
    0x73,
    oid(0x01), // {globalPlatform 1}: card recognition data
    tlv(0x60, oid(0x02, 0x02, 0x03, 0x01)), // card management type and version: GP 2.3.1
    tlv(0x63, oid(0x03)), // card identification scheme
    tlv(0x64, oid(0x04, 0x03, i)), // SCP03 with its "i"
    tlv(0x65, oid(0x05, 0x01)), // card configuration details (contact only in this emulation)
    tlv(0x66, fromHex('060A2B060104012A026E0103')), // card/chip details: Java Card OID (1.3.6.1.4.1.42.2.110.1.3)
  );
}

export function getData(env: CardEnv, sd: AppEntry, cmd: CommandApdu): Uint8Array {
  const tag = (cmd.p1 << 8) | cmd.p2;
  const m = env.model;
  const isIsd = sd.aid === isdAid(m);
  switch (tag) {
    case 0x0042:
      return tlv(0x42, fromHex(m.card.iin));
    case 0x0045:
      return tlv(0x45, fromHex(m.card.cin));
    case 0x0066:
      return tlv(0x66, cardRecognitionData(scpI(env, sd)));
    case 0x00e0:
      return keyInformation(env, sd);
    case 0x00cf:
      return tlv(0xcf, env.profile.kdd);
    case 0x00c1: {
      const set = findKeySet(m, sd.aid, 0);
      if (!set) throw new IsoError(SW.REFERENCED_DATA_NOT_FOUND, 'no key set');
      return tlv(0xc1, uint(set.seq, 3));
    }
    case 0x9f7f:
      if (!isIsd) break;
      return tlv(0x9f7f, env.profile.cplc);
    case 0x5f50:
      if (!m.card.sdUrl) break;
      return tlv(0x5f50, new TextEncoder().encode(m.card.sdUrl));
    case 0xff21: {
      // Extended card resources (GPCS §H.? tag FF21): applications count, free persistent and transient memory.
      const apps = m.registry.apps.length;
      const free = Math.max(0, env.profile.persistentBytes - usedPersistent(m));
      return tlv(0xff21, tlv(0x81, uint(apps, 2)), tlv(0x82, uint(free, 4)), tlv(0x83, uint(env.profile.transientResetBytes, 4)));
    }
    case 0x0067:
      // Card capability information (GPCS §H.4): SCP03 with its i and the AES key lengths (b1 128, b2 192, b3 256).
      return tlv(0x67, tlv(0xa0, tlv(0x80, Uint8Array.of(0x03)), tlv(0x81, Uint8Array.of(scpI(env, sd))), tlv(0x82, Uint8Array.of(0x07))));
  }
  throw new IsoError(SW.REFERENCED_DATA_NOT_FOUND, `no data object ${tag.toString(16).padStart(4, '0')}`);
}

/** Key Information Template (GPCS §11.3.3.1, Table 11-24): one C0 per key: id, KVN, type, length. */
function keyInformation(env: CardEnv, sd: AppEntry): Uint8Array {
  const sets = env.model.keys.get(sd.aid) ?? [];
  const entries: Uint8Array[] = [];
  for (const set of sets)
    for (const k of set.keys) entries.push(tlv(0xc0, Uint8Array.of(k.id, set.kvn, k.type, k.value.length / 2)));
  return tlv(0xe0, concat(...entries));
}
