// GET STATUS (GPCS 2.3.1 §11.4): registry entries as E3 templates (tag format, P2 b2 = 1) or the legacy format.
import type { CommandApdu, ResponseApdu } from '../apdu.ts';
import { concat, fromHex, hex } from '../bytes.ts';
import { IsoError, SW } from '../iso.ts';
import { parseTlvs, TlvError, tlv } from '../tlv.ts';
import type { CardEnv } from './env.ts';
import type { AppEntry, ElfEntry } from './registry.ts';
import { isdAid } from './registry.ts';
import { Priv, encodePrivileges } from './constants.ts';

/** Response data budget per GET STATUS answer; the rest follows with 6310 (keeps room for R-MAC/R-ENC). */
const CHUNK = 220;

export function getStatus(env: CardEnv, sd: AppEntry, cmd: CommandApdu): ResponseApdu {
  const st = env.channels[env.channel].sd;
  const next = (cmd.p2 & 0x01) !== 0;
  if (cmd.p2 & 0xfc) throw new IsoError(SW.INCORRECT_P1P2, `GET STATUS P2 ${cmd.p2.toString(16)}`);
  if (![0x80, 0x40, 0x20, 0x10].includes(cmd.p1)) throw new IsoError(SW.INCORRECT_P1P2, `GET STATUS P1 ${cmd.p1.toString(16)}`);
  const format = cmd.p2 & 0x02;
  if (next) {
    if (!st.status || st.status.p1 !== cmd.p1 || st.status.format !== format)
      throw new IsoError(SW.CONDITIONS_NOT_SATISFIED, 'GET STATUS [next] without a previous GET STATUS');
    return sendChunk(env);
  }
  const { prefix, tags } = parseCriteria(cmd.data);
  const m = env.model;
  const isd = isdAid(m);
  const seesAll = sd.aid === isd || (sd.privileges & Priv.GLOBAL_REGISTRY) !== 0;
  const visible = (assoc: string, aid: string) => seesAll || assoc === sd.aid || aid === sd.aid;
  const match = (aid: string) => aid.startsWith(prefix);
  const entries: Uint8Array[] = [];
  if (cmd.p1 === 0x80) {
    // An SD without Global Registry sees only what is associated with it, and the ISD is not (GPCS 2.3.1 §11.4.2.1).
    const a = m.registry.apps[0];
    if (seesAll && match(a.aid)) entries.push(appEntry(a, m.card.lifeCycle, format, tags, false));
  } else if (cmd.p1 === 0x40) {
    for (const a of m.registry.apps.slice(1))
      if (match(a.aid) && visible(a.sd, a.aid)) entries.push(appEntry(a, a.lifeCycle, format, tags, true));
  } else {
    for (const e of m.registry.elfs)
      if (match(e.aid) && visible(e.sd, e.aid)) entries.push(elfEntry(e, format, tags, cmd.p1 === 0x10));
  }
  if (!entries.length) throw new IsoError(SW.REFERENCED_DATA_NOT_FOUND, 'no registry entry matches');
  st.status = { p1: cmd.p1, format, entries };
  return sendChunk(env);
}

function sendChunk(env: CardEnv): ResponseApdu {
  const st = env.channels[env.channel].sd;
  const s = st.status!;
  const out: Uint8Array[] = [];
  let n = 0;
  while (s.entries.length && (out.length === 0 || n + s.entries[0].length <= CHUNK)) {
    const e = s.entries.shift()!;
    out.push(e);
    n += e.length;
  }
  const more = s.entries.length > 0;
  if (!more) st.status = null;
  return { data: concat(...out), sw: more ? SW.MORE_STATUS : SW.OK };
}

/** Search criteria (Table 11-34): 4F with an AID or AID prefix (empty = all), optional 5C tag list. */
function parseCriteria(data: Uint8Array): { prefix: string; tags: number[] | null } {
  let list;
  try {
    list = parseTlvs(data);
  } catch (e) {
    throw new IsoError(SW.WRONG_DATA, e instanceof TlvError ? `search criteria: ${e.message}` : 'search criteria');
  }
  let prefix: string | undefined;
  let tags: number[] | null = null;
  for (const t of list) {
    if (t.tag === 0x4f) prefix = hex(t.value);
    else if (t.tag === 0x5c) tags = tagList(t.value);
    else throw new IsoError(SW.WRONG_DATA, `unsupported search criterion tag ${t.tag.toString(16)}`);
  }
  if (prefix === undefined) throw new IsoError(SW.WRONG_DATA, 'search criteria need tag 4F');
  return { prefix, tags };
}

function tagList(v: Uint8Array): number[] {
  const out: number[] = [];
  for (let i = 0; i < v.length; ) {
    let t = v[i++];
    if ((t & 0x1f) === 0x1f && i < v.length) t = (t << 8) | v[i++];
    out.push(t);
  }
  return out;
}

function pick(tags: number[] | null, items: [number, Uint8Array][]): Uint8Array {
  return tlv(0xe3, ...items.filter(([t]) => !tags || tags.includes(t)).map(([t, v]) => tlv(t, v)));
}

function appEntry(a: AppEntry, life: number, format: number, tags: number[] | null, withElf: boolean): Uint8Array {
  const aid = fromHex(a.aid);
  if (!format) return concat(Uint8Array.of(aid.length), aid, Uint8Array.of(life, a.privileges >> 16));
  const items: [number, Uint8Array][] = [
    [0x4f, aid],
    [0x9f70, Uint8Array.of(life)],
    [0xc5, encodePrivileges(a.privileges)],
  ];
  if (withElf) items.push([0xc4, fromHex(a.elf)]);
  items.push([0xcc, fromHex(a.sd)]);
  return pick(tags, items);
}

function elfEntry(e: ElfEntry, format: number, tags: number[] | null, modules: boolean): Uint8Array {
  const aid = fromHex(e.aid);
  if (!format) {
    const legacy = [Uint8Array.of(aid.length), aid, Uint8Array.of(e.lifeCycle, 0)];
    if (modules) {
      legacy.push(Uint8Array.of(e.modules.length));
      for (const mod of e.modules) legacy.push(Uint8Array.of(mod.length / 2), fromHex(mod));
    }
    return concat(...legacy);
  }
  const items: [number, Uint8Array][] = [
    [0x4f, aid],
    [0x9f70, Uint8Array.of(e.lifeCycle)],
    [0xce, Uint8Array.of(e.version[0], e.version[1])],
  ];
  if (modules) for (const mod of e.modules) items.push([0x84, fromHex(mod)]);
  items.push([0xcc, fromHex(e.sd)]);
  return pick(tags, items);
}
