// Security-domain key sets and PUT KEY (GPCS 2.3.1 §11.8; AES key data per Amd D §7.2).
import type { CommandApdu } from '../apdu.ts';
import { concat, fromHex, hex, secretEqual } from '../bytes.ts';
import { IsoError, SW } from '../iso.ts';
import { decryptKeyData, kcv } from '../scp03.ts';
import type { KeySet } from '../scp03.ts';
import type { CardEnv } from './env.ts';
import type { AppEntry, KeyEntry, KeySetRecord, Model } from './registry.ts';
import { saveKeys } from './registry.ts';

const AES = 0x88;

/** KVN 0 means "the first key set available" (GPCS §11.? INITIALIZE UPDATE P1). */
export function findKeySet(m: Model, sd: string, kvn: number): KeySetRecord | undefined {
  const sets = m.keys.get(sd) ?? [];
  return kvn === 0 ? sets[0] : sets.find((s) => s.kvn === kvn);
}

export function keySetKeys(set: KeySetRecord): KeySet {
  const get = (id: number) => {
    const k = set.keys.find((x) => x.id === id);
    if (!k) throw new IsoError(SW.REFERENCED_DATA_NOT_FOUND, `key set ${set.kvn.toString(16)} has no key ${id}`);
    return fromHex(k.value);
  };
  return { enc: get(1), mac: get(2), dek: get(3) };
}

/** PUT KEY: add a key set (P1 = 00) or replace keys of the key set P1; returns new KVN || KCVs (Table 11-73). */
export function putKey(env: CardEnv, sd: AppEntry, cmd: CommandApdu): Uint8Array {
  const session = env.channels[env.channel].scp!;
  const current = findKeySet(env.model, sd.aid, session.kvn);
  if (!current) throw new IsoError(SW.REFERENCED_DATA_NOT_FOUND, 'session key set is gone');
  const dek = keySetKeys(current).dek;
  const replaceKvn = cmd.p1 & 0x7f;
  const multiple = (cmd.p2 & 0x80) !== 0;
  const firstId = cmd.p2 & 0x7f;
  if (firstId === 0) throw new IsoError(SW.INCORRECT_P1P2, 'key identifier 0');
  const d = cmd.data;
  if (d.length < 1) throw new IsoError(SW.WRONG_DATA, 'PUT KEY data is empty');
  const newKvn = d[0];
  if (newKvn === 0 || newKvn > 0x7f) throw new IsoError(SW.WRONG_DATA, `invalid new key version ${newKvn}`);

  const keys: KeyEntry[] = [];
  const kcvs: Uint8Array[] = [];
  let off = 1;
  while (off < d.length) {
    const at = off;
    const need = (n: number) => {
      if (off + n > d.length) throw new IsoError(SW.WRONG_DATA, `key data truncated at offset ${at}`);
    };
    need(2);
    const type = d[off++];
    const len = d[off++];
    if (type !== AES) throw new IsoError(SW.WRONG_DATA, `key type ${type.toString(16)} at offset ${at}: only AES (88) key sets`);
    need(len);
    const keyLen = d[off];
    const ciphered = d.subarray(off + 1, off + len);
    off += len;
    if (![16, 24, 32].includes(keyLen)) throw new IsoError(SW.WRONG_DATA, `AES key length ${keyLen} at offset ${at}`);
    if (ciphered.length < keyLen || ciphered.length % 16 !== 0)
      throw new IsoError(SW.WRONG_DATA, `ciphered key of ${ciphered.length} bytes for a ${keyLen}-byte key at offset ${at}`);
    const key = decryptKeyData(dek, ciphered).subarray(0, keyLen);
    need(1);
    const kcvLen = d[off++];
    need(kcvLen);
    const given = d.subarray(off, off + kcvLen);
    off += kcvLen;
    const check = kcv(key);
    if (kcvLen !== 0 && (kcvLen !== 3 || !secretEqual(given, check)))
      throw new IsoError(SW.SECURITY_STATUS, `key check value mismatch for key ${firstId + keys.length}`);
    keys.push({ id: firstId + keys.length, type, value: hex(key) });
    kcvs.push(check);
  }
  if (!keys.length) throw new IsoError(SW.WRONG_DATA, 'PUT KEY without key data');
  if (!multiple && keys.length > 1) throw new IsoError(SW.WRONG_DATA, 'several keys but P2 b8 (multiple keys) not set');

  const sets = env.model.keys.get(sd.aid) ?? [];
  if (replaceKvn === 0) {
    if (sets.some((s) => s.kvn === newKvn)) throw new IsoError(SW.WRONG_DATA, `key set ${newKvn.toString(16)} already exists`);
    if (firstId !== 1 || keys.length !== 3) throw new IsoError(SW.WRONG_DATA, 'a new SCP03 key set needs keys 1, 2 and 3');
    sets.push({ kvn: newKvn, keys, seq: 0 });
  } else {
    const target = sets.find((s) => s.kvn === replaceKvn);
    if (!target) throw new IsoError(SW.REFERENCED_DATA_NOT_FOUND, `no key set ${replaceKvn.toString(16)} to replace`);
    if (newKvn !== replaceKvn && sets.some((s) => s.kvn === newKvn))
      throw new IsoError(SW.WRONG_DATA, `key set ${newKvn.toString(16)} already exists`);
    for (const k of keys) {
      const i = target.keys.findIndex((x) => x.id === k.id);
      if (i < 0) throw new IsoError(SW.REFERENCED_DATA_NOT_FOUND, `key set has no key ${k.id}`);
      target.keys[i] = k;
    }
    target.kvn = newKvn;
    target.seq = 0; // a replaced key set restarts its sequence counter (Amd D §6.2.2.1)
  }
  env.model.keys.set(sd.aid, sets);
  saveKeys(env.store, env.model, sd.aid);
  return concat(Uint8Array.of(newKvn), ...kcvs);
}

/** DELETE of keys by identifier (D0) and/or version (D2) (GPCS §11.2.2.3, Table 11-23). */
export function deleteKeys(env: CardEnv, sd: AppEntry, keyId: number | undefined, kvn: number | undefined): void {
  const sets = env.model.keys.get(sd.aid) ?? [];
  let hit = false;
  const kept: KeySetRecord[] = [];
  for (const s of sets) {
    if (kvn !== undefined && s.kvn !== kvn) {
      kept.push(s);
      continue;
    }
    if (keyId === undefined) {
      hit = true;
      continue;
    }
    const before = s.keys.length;
    s.keys = s.keys.filter((k) => k.id !== keyId);
    if (s.keys.length !== before) hit = true;
    if (s.keys.length) kept.push(s);
  }
  if (!hit) throw new IsoError(SW.REFERENCED_DATA_NOT_FOUND, 'no such key');
  const session = env.channels[env.channel].scp;
  if (session && !kept.some((s) => s.kvn === session.kvn))
    throw new IsoError(SW.CONDITIONS_NOT_SATISFIED, 'cannot delete the key set of the current session');
  env.model.keys.set(sd.aid, kept);
  saveKeys(env.store, env.model, sd.aid);
}
