// Host-side readers of card-manager responses, for display: GET STATUS (GPCS 2.3.1 §11.4.3), GET DATA objects
// (§11.3.3: key information E0, card recognition data 66, extended resources FF21) and CPLC (Open Platform 2.0.1 §6.12.1).
import { hex, readUint } from '../bytes.ts';
import { parseTlvs, TlvError } from '../tlv.ts';
import type { Tlv } from '../tlv.ts';
import { PRIV_NAMES, Priv, appLifeName, cardLifeName, privilegeNames } from '../gp/constants.ts';

/** Thrown when a card answer does not have the documented shape; names what and where. */
export class GpDataError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'GpDataError';
  }
}

// ---------------------------------------------------------------------------------------------------------------
// GET STATUS

export type EntryKind = 'ISD' | 'APP' | 'SD' | 'PKG';

/** One registry entry as GET STATUS reports it (GPCS Table 11-36 tags, or the legacy Tables 11-37/11-38 layout). */
export interface RegistryEntry {
  kind: EntryKind;
  aid: string;
  lifeCycle: number;
  /** 24-bit privileges (legacy format carries only the first byte). */
  privileges?: number;
  /** Executable load file of an application (tag C4). */
  elf?: string;
  /** Load file version (tag CE). */
  version?: [number, number];
  /** Executable module AIDs of a load file (tag 84, or the legacy module list). */
  modules: string[];
  /** Associated security domain (tag CC). */
  sd?: string;
}

/** GET STATUS P1 values (GPCS Table 11-32). */
export const StatusScope = { ISD: 0x80, APPS: 0x40, LOAD_FILES: 0x20, LOAD_FILES_AND_MODULES: 0x10 } as const;

function kindFor(p1: number, privileges: number | undefined): EntryKind {
  if (p1 === StatusScope.ISD) return 'ISD';
  if (p1 === StatusScope.APPS) return privileges !== undefined && privileges & Priv.SECURITY_DOMAIN ? 'SD' : 'APP';
  return 'PKG';
}

function tlvs(data: Uint8Array, what: string): Tlv[] {
  try {
    return parseTlvs(data);
  } catch (e) {
    if (e instanceof TlvError) throw new GpDataError(`${what}: ${e.message}`);
    throw e;
  }
}

/** Tag-format GET STATUS data (P2 b2 = 1): a sequence of E3 templates. */
export function parseStatusTags(data: Uint8Array, p1: number): RegistryEntry[] {
  const out: RegistryEntry[] = [];
  for (const t of tlvs(data, 'GET STATUS response')) {
    if (t.tag !== 0xe3) throw new GpDataError(`GET STATUS response: tag ${t.tag.toString(16).toUpperCase()} at offset ${t.offset} where E3 was expected`);
    const fields = tlvs(t.value, `GET STATUS entry at offset ${t.offset}`);
    const get = (tag: number) => fields.find((f) => f.tag === tag)?.value;
    const aid = get(0x4f);
    const life = get(0x9f70);
    if (!aid) throw new GpDataError(`GET STATUS entry at offset ${t.offset} has no AID (4F)`);
    if (!life || life.length < 1) throw new GpDataError(`GET STATUS entry ${hex(aid)} has no life cycle (9F70)`);
    const priv = get(0xc5);
    const privileges = priv ? (priv.length === 3 ? readUint(priv) : priv[0] << 16) : undefined;
    const ver = get(0xce);
    const entry: RegistryEntry = {
      kind: kindFor(p1, privileges),
      aid: hex(aid),
      lifeCycle: life[0],
      modules: fields.filter((f) => f.tag === 0x84).map((f) => hex(f.value)),
    };
    if (privileges !== undefined) entry.privileges = privileges;
    const elf = get(0xc4);
    if (elf) entry.elf = hex(elf);
    if (ver && ver.length >= 2) entry.version = [ver[0], ver[1]];
    const sd = get(0xcc);
    if (sd) entry.sd = hex(sd);
    out.push(entry);
  }
  return out;
}

/** Legacy GET STATUS data (P2 b2 = 0): LV AID, life cycle, privileges byte; P1 10 adds a count and LV module AIDs. */
export function parseStatusLegacy(data: Uint8Array, p1: number): RegistryEntry[] {
  const out: RegistryEntry[] = [];
  let off = 0;
  const need = (n: number, what: string) => {
    if (off + n > data.length) throw new GpDataError(`legacy GET STATUS response truncated in ${what} at offset ${off}`);
  };
  while (off < data.length) {
    need(1, 'AID length');
    const len = data[off++];
    need(len + 2, 'AID, life cycle and privileges');
    const aid = hex(data.subarray(off, off + len));
    off += len;
    const lifeCycle = data[off++];
    const privByte = data[off++];
    const modules: string[] = [];
    if (p1 === StatusScope.LOAD_FILES_AND_MODULES) {
      need(1, 'module count');
      const n = data[off++];
      for (let i = 0; i < n; i++) {
        need(1, 'module AID length');
        const ml = data[off++];
        need(ml, 'module AID');
        modules.push(hex(data.subarray(off, off + ml)));
        off += ml;
      }
    }
    const isApp = p1 === StatusScope.ISD || p1 === StatusScope.APPS;
    const privileges = isApp ? privByte << 16 : undefined;
    const entry: RegistryEntry = { kind: kindFor(p1, privileges), aid, lifeCycle, modules };
    if (privileges !== undefined) entry.privileges = privileges;
    out.push(entry);
  }
  return out;
}

export function lifeCycleName(e: Pick<RegistryEntry, 'kind' | 'lifeCycle'>): string {
  if (e.kind === 'ISD') return cardLifeName(e.lifeCycle);
  if (e.kind === 'PKG') return e.lifeCycle === 0x01 ? 'LOADED' : `0x${hex(Uint8Array.of(e.lifeCycle))}`;
  return appLifeName(e.lifeCycle, e.kind === 'SD');
}

/** Privilege names as the CLI prints and accepts them: "security-domain", "authorized-management", … */
export function privilegeLabels(p: number): string[] {
  return privilegeNames(p).map((n) => n.toLowerCase().replace(/_/g, '-'));
}

/** Parses privileges given as hex (1 or 3 bytes, e.g. 80 or 804000) or names joined by commas. */
export function parsePrivileges(text: string): number {
  const t = text.trim();
  if (/^[0-9a-f]{2}$/i.test(t)) return parseInt(t, 16) << 16;
  if (/^[0-9a-f]{6}$/i.test(t)) return parseInt(t, 16);
  if (!t) return 0;
  let p = 0;
  for (const raw of t.split(',')) {
    const name = raw.trim().toUpperCase().replace(/-/g, '_');
    const hit = PRIV_NAMES.find(([, n]) => n === name);
    if (!hit) throw new GpDataError(`unknown privilege "${raw.trim()}" (hex like 804000, or names: ${PRIV_NAMES.map(([, n]) => n.toLowerCase().replace(/_/g, '-')).join(', ')})`);
    p |= hit[0];
  }
  return p;
}

/** Display lines for a listing, GPP-like: one header line per entry, details indented. */
export function formatEntries(entries: RegistryEntry[]): string[] {
  const lines: string[] = [];
  for (const e of entries) {
    lines.push(`${e.kind}: ${e.aid} (${lifeCycleName(e)})`);
    if (e.privileges !== undefined) {
      const names = privilegeLabels(e.privileges);
      lines.push(`     Privs:   ${hex(Uint8Array.of(e.privileges >> 16, (e.privileges >> 8) & 0xff, e.privileges & 0xff))}${names.length ? ' ' + names.join(', ') : ''}`);
    }
    if (e.version) lines.push(`     Version: ${e.version[0]}.${e.version[1]}`);
    if (e.elf) lines.push(`     From:    ${e.elf}`);
    if (e.sd && e.sd !== e.aid) lines.push(`     Parent:  ${e.sd}`);
    for (const m of e.modules) lines.push(`     Applet:  ${m}`);
  }
  return lines;
}

// ---------------------------------------------------------------------------------------------------------------
// GET DATA objects

/** Strips the outer TLV a GET DATA answer repeats (e.g. "42 03 …" for tag 42); returns the value. */
export function unwrapDataObject(tag: number, data: Uint8Array): Uint8Array {
  const list = tlvs(data, `GET DATA ${tag.toString(16).toUpperCase()}`);
  const hit = list.find((t) => t.tag === tag);
  if (!hit) throw new GpDataError(`GET DATA ${tag.toString(16).toUpperCase()} answered without tag ${tag.toString(16).toUpperCase()}`);
  return hit.value;
}

/** CPLC fields and their byte lengths (Open Platform 2.0.1 §6.12.1; GlobalPlatformPro's CPLC.Field order). */
const CPLC_FIELDS: [string, number][] = [
  ['ICFabricator', 2],
  ['ICType', 2],
  ['OperatingSystemID', 2],
  ['OperatingSystemReleaseDate', 2],
  ['OperatingSystemReleaseLevel', 2],
  ['ICFabricationDate', 2],
  ['ICSerialNumber', 4],
  ['ICBatchIdentifier', 2],
  ['ICModuleFabricator', 2],
  ['ICModulePackagingDate', 2],
  ['ICCManufacturer', 2],
  ['ICEmbeddingDate', 2],
  ['ICPrePersonalizer', 2],
  ['ICPrePersonalizationEquipmentDate', 2],
  ['ICPrePersonalizationEquipmentID', 4],
  ['ICPersonalizer', 2],
  ['ICPersonalizationDate', 2],
  ['ICPersonalizationEquipmentID', 4],
];

export interface CplcField {
  name: string;
  value: string;
  /** For dates: "YDDD" read as last digit of the year and day of year, or "invalid" for 0000/FFFF. */
  date?: string;
}

/** CPLC: 42 bytes, with or without its 9F7F 2A header. */
export function parseCplc(data: Uint8Array): CplcField[] {
  let body = data;
  if (data.length === 45 && data[0] === 0x9f && data[1] === 0x7f) body = data.subarray(3);
  if (body.length !== 42) throw new GpDataError(`CPLC of ${body.length} bytes; 42 expected`);
  const out: CplcField[] = [];
  let off = 0;
  for (const [name, len] of CPLC_FIELDS) {
    const v = body.subarray(off, off + len);
    off += len;
    const field: CplcField = { name, value: hex(v) };
    if (name.endsWith('Date')) field.date = cplcDate(hex(v));
    out.push(field);
  }
  return out;
}

function cplcDate(v: string): string {
  if (v === '0000' || v === 'FFFF' || !/^\d{4}$/.test(v)) return 'invalid';
  const day = parseInt(v.slice(1), 10);
  if (day < 1 || day > 366) return 'invalid';
  return `year ending in ${v[0]}, day ${day}`;
}

export interface KeyInfo {
  id: number;
  kvn: number;
  /** (type, length) pairs; one pair for plain keys. */
  components: { type: number; length: number }[];
}

/** Key Information Template (GPCS §11.3.3.1, Table 11-24): E0 { C0 { id, kvn, type, length [, type, length …] } }. */
export function parseKeyInformation(data: Uint8Array): KeyInfo[] {
  const body = data.length && data[0] === 0xe0 ? unwrapDataObject(0xe0, data) : data;
  const out: KeyInfo[] = [];
  for (const t of tlvs(body, 'key information')) {
    if (t.tag !== 0xc0) continue;
    const v = t.value;
    if (v.length < 4 || v.length % 2 !== 0) throw new GpDataError(`key information entry of ${v.length} bytes at offset ${t.offset}`);
    const components: KeyInfo['components'] = [];
    for (let i = 2; i + 1 < v.length; i += 2) components.push({ type: v[i], length: v[i + 1] });
    out.push({ id: v[0], kvn: v[1], components });
  }
  return out;
}

/** Key types (GPCS Table 11-16), named for display. */
export function keyTypeName(type: number, length: number): string {
  if (type === 0x88) return `AES-${length * 8}`;
  if (type === 0x80) return `DES (${length} bytes)`;
  if (type >= 0xa0 && type <= 0xa7) return `RSA component ${type.toString(16).toUpperCase()} (${length} bytes)`;
  if (type >= 0xb0 && type <= 0xb9) return `ECC component ${type.toString(16).toUpperCase()} (${length} bytes)`;
  return `type ${type.toString(16).toUpperCase().padStart(2, '0')} (${length} bytes)`;
}

/** OBJECT IDENTIFIER content octets (X.690 §8.19) to dotted form. */
export function decodeOid(b: Uint8Array): string {
  if (!b.length) throw new GpDataError('empty OBJECT IDENTIFIER');
  const arcs: number[] = [];
  let n = 0;
  for (let i = 0; i < b.length; i++) {
    n = n * 128 + (b[i] & 0x7f);
    if (!(b[i] & 0x80)) {
      arcs.push(n);
      n = 0;
    } else if (i === b.length - 1) throw new GpDataError(`OBJECT IDENTIFIER ${hex(b)} ends inside an arc`);
  }
  const first = arcs[0] < 80 ? Math.floor(arcs[0] / 40) : 2;
  return [first, arcs[0] - first * 40, ...arcs.slice(1)].join('.');
}

const GP_ARC = '1.2.840.114283';

export interface CardRecognition {
  /** Card management type and version, e.g. "2.3.1" (tag 60, {globalPlatform 2 v}). */
  gpVersion?: string;
  /** Secure channel protocol and its i, e.g. { scp: 3, i: 0x70 } (tag 64, {globalPlatform 4 scp i}). */
  scp?: { scp: number; i: number };
  /** Every OID found, by tag, for display. */
  oids: { tag: number; oid: string }[];
}

/** Card Recognition Data (GPCS Table H-1): 66 { 73 { 06, 60 {06}, 63 {06}, 64 {06}, … } }. */
export function parseCardRecognition(data: Uint8Array): CardRecognition {
  let body = data;
  if (body[0] === 0x66) body = unwrapDataObject(0x66, body);
  if (body[0] === 0x73) body = unwrapDataObject(0x73, body);
  const out: CardRecognition = { oids: [] };
  for (const t of tlvs(body, 'card recognition data')) {
    let oidBytes: Uint8Array | undefined;
    if (t.tag === 0x06) oidBytes = t.value;
    else {
      const inner = tlvs(t.value, `card recognition data tag ${t.tag.toString(16)}`).find((x) => x.tag === 0x06);
      oidBytes = inner?.value;
    }
    if (!oidBytes) continue;
    const oid = decodeOid(oidBytes);
    out.oids.push({ tag: t.tag, oid });
    if (!oid.startsWith(GP_ARC + '.')) continue;
    const arcs = oid.slice(GP_ARC.length + 1).split('.').map(Number);
    if (t.tag === 0x60 && arcs[0] === 2) out.gpVersion = arcs.slice(1).join('.');
    if (t.tag === 0x64 && arcs[0] === 4 && arcs.length >= 3) out.scp = { scp: arcs[1], i: arcs[2] };
  }
  return out;
}

export interface ExtendedResources {
  applications?: number;
  freeNonVolatile?: number;
  freeVolatile?: number;
}

/** Extended card resources (GET DATA FF21, GPCS 2.3.1 Annex H): 81 installed applications, 82 free NVM, 83 free RAM. */
export function parseExtendedResources(data: Uint8Array): ExtendedResources {
  const body = data[0] === 0xff ? unwrapDataObject(0xff21, data) : data;
  const out: ExtendedResources = {};
  for (const t of tlvs(body, 'extended card resources')) {
    if (t.tag === 0x81) out.applications = readUint(t.value);
    else if (t.tag === 0x82) out.freeNonVolatile = readUint(t.value);
    else if (t.tag === 0x83) out.freeVolatile = readUint(t.value);
  }
  return out;
}
