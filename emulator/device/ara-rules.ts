// Access rules as an Access Control Enforcer sees them (GP SEAC 1.1, GPD_SPE_013): parsing the ARA-M's
// Response-ALL-REF-AR-DO and choosing the rule for an SE application and a device application. Pure functions.
import { equal, hex } from '../bytes.ts';

/** AID-REF-DO: `4F` with an AID, `4F 00` all SE applications, `C0 00` the implicitly selected (default) one. */
export type AidRef = { kind: 'aid'; aid: Uint8Array } | { kind: 'all' } | { kind: 'default' };
/** DeviceAppID-REF-DO `C1`: a 20-byte (SHA-1, or a HAL UUID) or 32-byte (SHA-256) hash, or empty = all apps. */
export type AppRef = { kind: 'hash'; hash: Uint8Array } | { kind: 'all' };

/** One APDU filter of an APDU-AR-DO (SEAC): a command passes when (its 4-byte header AND mask) = header. */
export interface ApduFilter {
  header: Uint8Array;
  mask: Uint8Array;
}
export type ApduRule = { kind: 'never' } | { kind: 'always' } | { kind: 'filter'; filters: ApduFilter[] };

/** One REF-AR-DO (`E2`) as stored on the ARA-M. */
export interface AccessRule {
  aid: AidRef;
  app: AppRef;
  /** PKG-REF-DO `CA` (Android extension); such rules grant carrier privileges only, never channel access. */
  packageName?: string;
  /** APDU-AR-DO `D0`; absent = no APDU access (AOSP maps an AR-DO without it to DENIED). */
  apdu?: ApduRule;
  /** NFC-AR-DO `D1`; absent = derived from the APDU rule (SEAC Annex G). */
  nfc?: boolean;
  /** PERM-AR-DO `DB` (8 bytes, Android carrier privileges); carried, not interpreted. */
  perm?: Uint8Array;
  /** Offset of the `E2` tag in the parsed buffer. */
  offset: number;
}

/** Malformed rule data: what is wrong, where (byte offset in the buffer given to the parser), and the TLV path. */
export class AraRulesError extends Error {
  readonly offset: number;
  readonly path: string;
  constructor(what: string, offset: number, path: string) {
    super(`malformed ARA-M rules: ${what} at offset ${offset} (${path})`);
    this.name = 'AraRulesError';
    this.offset = offset;
    this.path = path;
  }
}

export const TAG = {
  ALL_RULES: 0xff40,
  REF_AR_DO: 0xe2,
  REF_DO: 0xe1,
  AID_REF: 0x4f,
  DEFAULT_AID_REF: 0xc0,
  APP_REF: 0xc1,
  PKG_REF: 0xca,
  AR_DO: 0xe3,
  APDU_AR: 0xd0,
  NFC_AR: 0xd1,
  PERM_AR: 0xdb,
} as const;

const NAMES: Record<number, string> = {
  [TAG.ALL_RULES]: 'Response-ALL-REF-AR-DO',
  [TAG.REF_AR_DO]: 'REF-AR-DO',
  [TAG.REF_DO]: 'REF-DO',
  [TAG.AID_REF]: 'AID-REF-DO',
  [TAG.DEFAULT_AID_REF]: 'default-application AID-REF-DO',
  [TAG.APP_REF]: 'DeviceAppID-REF-DO',
  [TAG.PKG_REF]: 'PKG-REF-DO',
  [TAG.AR_DO]: 'AR-DO',
  [TAG.APDU_AR]: 'APDU-AR-DO',
  [TAG.NFC_AR]: 'NFC-AR-DO',
  [TAG.PERM_AR]: 'PERM-AR-DO',
};

const tagHex = (tag: number): string => tag.toString(16).toUpperCase().padStart(tag > 0xff ? 4 : 2, '0');
const tagName = (tag: number): string => (NAMES[tag] ? `${NAMES[tag]} (${tagHex(tag)})` : `tag ${tagHex(tag)}`);

/** A TLV located in the buffer: `at` = tag offset, value in [start, end). */
interface Node {
  tag: number;
  at: number;
  start: number;
  end: number;
}

/** Reads one BER-TLV header at `at`; its value must end by `limit` (the parent's end). */
function readNode(buf: Uint8Array, at: number, limit: number, path: string): Node {
  let off = at;
  if (off >= limit) throw new AraRulesError('missing tag', at, path);
  let tag = buf[off++];
  if ((tag & 0x1f) === 0x1f) {
    // Multi-byte tag (ISO 8825-1 §8.1.2.4): at most three bytes here.
    for (let n = 0; ; n++) {
      if (off >= limit) throw new AraRulesError(`truncated tag ${tagHex(tag)}`, at, path);
      tag = (tag << 8) | buf[off++];
      if (!(buf[off - 1] & 0x80)) break;
      if (n === 1) throw new AraRulesError('tag longer than 3 bytes', at, path);
    }
  }
  if (off >= limit) throw new AraRulesError(`${tagName(tag)} has no length`, at, path);
  let len = buf[off++];
  if (len & 0x80) {
    const k = len & 0x7f;
    if (k === 0 || k > 3) throw new AraRulesError(`${tagName(tag)} has an unsupported length byte ${len.toString(16).toUpperCase()}`, at, path);
    if (off + k > limit) throw new AraRulesError(`${tagName(tag)} has a truncated length`, at, path);
    len = 0;
    for (let i = 0; i < k; i++) len = len * 256 + buf[off++];
  }
  if (off + len > limit)
    throw new AraRulesError(`${tagName(tag)} value of ${len} bytes overruns its container (${limit - off} left)`, at, path);
  return { tag, at, start: off, end: off + len };
}

function childrenOf(buf: Uint8Array, parent: Node, path: string): Node[] {
  const out: Node[] = [];
  for (let off = parent.start; off < parent.end; ) {
    const n = readNode(buf, off, parent.end, path);
    out.push(n);
    off = n.end;
  }
  return out;
}

/** Total size (header + value) of the Response-ALL-REF-AR-DO whose first bytes are `head`, to know when GET DATA [next] is done. */
export function allRulesSize(head: Uint8Array): number {
  const path = 'FF40';
  if (head.length < 2 || head[0] !== 0xff || head[1] !== 0x40)
    throw new AraRulesError(`expected Response-ALL-REF-AR-DO (FF40), found ${hex(head.subarray(0, 2)) || 'nothing'}`, 0, path);
  if (head.length < 3) throw new AraRulesError('Response-ALL-REF-AR-DO (FF40) has no length', 0, path);
  const b = head[2];
  if (b < 0x80) return 3 + b;
  const k = b & 0x7f;
  if (k === 0 || k > 3) throw new AraRulesError(`Response-ALL-REF-AR-DO (FF40) has an unsupported length byte ${b.toString(16).toUpperCase()}`, 0, path);
  if (head.length < 3 + k) throw new AraRulesError('Response-ALL-REF-AR-DO (FF40) has a truncated length', 0, path);
  let len = 0;
  for (let i = 0; i < k; i++) len = len * 256 + head[3 + i];
  return 3 + k + len;
}

/** Parses a complete Response-ALL-REF-AR-DO (`FF40 L {E2 …}*`, GET DATA [all] plus any GET DATA [next] parts). */
export function parseAllRules(data: Uint8Array): AccessRule[] {
  allRulesSize(data); // names a wrong outer tag precisely
  const top = readNode(data, 0, data.length, 'FF40');
  if (top.end !== data.length) throw new AraRulesError(`${data.length - top.end} trailing byte(s) after Response-ALL-REF-AR-DO`, top.end, 'FF40');
  return parseRefArDos(data, top.start, top.end, 'FF40');
}

/** Parses a sequence of REF-AR-DOs in buf[start, end); `base` names the container in errors. */
export function parseRefArDos(buf: Uint8Array, start = 0, end = buf.length, base = 'rules'): AccessRule[] {
  const out: AccessRule[] = [];
  const holder: Node = { tag: 0, at: start, start, end };
  childrenOf(buf, holder, base).forEach((n, i) => {
    const path = `${base} > E2#${i + 1}`;
    if (n.tag !== TAG.REF_AR_DO) throw new AraRulesError(`${tagName(n.tag)} where a REF-AR-DO (E2) is expected`, n.at, path);
    out.push(parseRefArDo(buf, n, path));
  });
  return out;
}

function parseRefArDo(buf: Uint8Array, e2: Node, path: string): AccessRule {
  const parts = childrenOf(buf, e2, path);
  const [ref, ar, extra] = parts;
  if (!ref) throw new AraRulesError('empty REF-AR-DO (needs a REF-DO and an AR-DO)', e2.at, path);
  if (ref.tag !== TAG.REF_DO) throw new AraRulesError(`${tagName(ref.tag)} where the REF-DO (E1) is expected`, ref.at, path);
  if (!ar) throw new AraRulesError('REF-AR-DO without an AR-DO (E3)', e2.at, path);
  if (ar.tag !== TAG.AR_DO) throw new AraRulesError(`${tagName(ar.tag)} where the AR-DO (E3) is expected`, ar.at, path);
  if (extra) throw new AraRulesError(`${tagName(extra.tag)} after the AR-DO`, extra.at, path);
  return { ...parseRefDo(buf, ref, `${path} > E1`), ...parseArDo(buf, ar, `${path} > E3`), offset: e2.at };
}

function parseRefDo(buf: Uint8Array, e1: Node, path: string): { aid: AidRef; app: AppRef; packageName?: string } {
  const [a, h, p, extra] = childrenOf(buf, e1, path);
  if (!a) throw new AraRulesError('empty REF-DO (needs an AID-REF-DO and a DeviceAppID-REF-DO)', e1.at, path);
  const aLen = a.end - a.start;
  let aid: AidRef;
  if (a.tag === TAG.AID_REF) {
    if (aLen !== 0 && (aLen < 5 || aLen > 16)) throw new AraRulesError(`AID-REF-DO (4F) of ${aLen} bytes (must be 0 or 5..16)`, a.at, `${path} > 4F`);
    aid = aLen === 0 ? { kind: 'all' } : { kind: 'aid', aid: buf.slice(a.start, a.end) };
  } else if (a.tag === TAG.DEFAULT_AID_REF) {
    if (aLen !== 0) throw new AraRulesError(`default-application AID-REF-DO (C0) of ${aLen} bytes (must be empty)`, a.at, `${path} > C0`);
    aid = { kind: 'default' };
  } else throw new AraRulesError(`${tagName(a.tag)} where an AID-REF-DO (4F or C0) is expected`, a.at, path);
  if (!h) throw new AraRulesError('REF-DO without a DeviceAppID-REF-DO (C1)', e1.at, path);
  if (h.tag !== TAG.APP_REF) throw new AraRulesError(`${tagName(h.tag)} where the DeviceAppID-REF-DO (C1) is expected`, h.at, path);
  const hLen = h.end - h.start;
  if (hLen !== 0 && hLen !== 20 && hLen !== 32)
    throw new AraRulesError(`DeviceAppID-REF-DO (C1) of ${hLen} bytes (must be 0, 20 or 32)`, h.at, `${path} > C1`);
  const app: AppRef = hLen === 0 ? { kind: 'all' } : { kind: 'hash', hash: buf.slice(h.start, h.end) };
  if (!p) return { aid, app };
  if (p.tag !== TAG.PKG_REF) throw new AraRulesError(`${tagName(p.tag)} after the DeviceAppID-REF-DO`, p.at, path);
  if (extra) throw new AraRulesError(`${tagName(extra.tag)} after the PKG-REF-DO`, extra.at, path);
  const name = buf.subarray(p.start, p.end);
  if (!name.length || name.some((c) => c < 0x20 || c > 0x7e)) throw new AraRulesError('PKG-REF-DO (CA) is not a printable ASCII package name', p.at, `${path} > CA`);
  return { aid, app, packageName: String.fromCharCode(...name) };
}

function parseArDo(buf: Uint8Array, e3: Node, path: string): { apdu?: ApduRule; nfc?: boolean; perm?: Uint8Array } {
  const out: { apdu?: ApduRule; nfc?: boolean; perm?: Uint8Array } = {};
  const seen = new Set<number>();
  for (const n of childrenOf(buf, e3, path)) {
    const v = buf.subarray(n.start, n.end);
    const at = `${path} > ${tagHex(n.tag)}`;
    if (seen.has(n.tag)) throw new AraRulesError(`${tagName(n.tag)} given twice in one AR-DO`, n.at, at);
    seen.add(n.tag);
    if (n.tag === TAG.APDU_AR) out.apdu = apduRule(v, n.at, at);
    else if (n.tag === TAG.NFC_AR) {
      if (v.length !== 1 || v[0] > 1) throw new AraRulesError(`NFC-AR-DO (D1) value ${hex(v) || 'empty'} (must be 00 or 01)`, n.at, at);
      out.nfc = v[0] === 1;
    } else if (n.tag === TAG.PERM_AR) {
      if (v.length !== 8) throw new AraRulesError(`PERM-AR-DO (DB) of ${v.length} bytes (must be 8)`, n.at, at);
      out.perm = v.slice();
    }
    // Other tags in an AR-DO are skipped: later SEAC versions add access rules there (AOSP AR_DO ignores them too).
  }
  return out;
}

function apduRule(v: Uint8Array, at: number, path: string): ApduRule {
  if (v.length === 1 && v[0] <= 1) return v[0] === 1 ? { kind: 'always' } : { kind: 'never' };
  if (v.length === 0 || v.length % 8 !== 0)
    throw new AraRulesError(`APDU-AR-DO (D0) of ${v.length} bytes (must be 00, 01 or N×8 bytes of header and mask)`, at, path);
  const filters: ApduFilter[] = [];
  for (let i = 0; i < v.length; i += 8) filters.push({ header: v.slice(i, i + 4), mask: v.slice(i + 4, i + 8) });
  return { kind: 'filter', filters };
}

// ---------------------------------------------------------------------------------------------------------------
// Evaluation

/** The device application as the ACE identifies it: hashes of each of its signing certificates. */
export interface AppIdentity {
  sha256: Uint8Array[];
  sha1: Uint8Array[];
}

/** The SE application asked for: its AID, or the default (implicitly selected) application. */
export type SeTarget = Uint8Array | 'default';

/**
 * Which step of the search decided (SEAC rule conflict resolution, in AOSP's order):
 * aid-app (AID, this app) > aid-other-app (the AID names other apps only: NEVER) > aid-all-apps (AID, all apps) >
 * all-aids-app (all AIDs, this app) > all-aids-other-app (all-AID rules name other apps: NEVER) > all-aids-all-apps >
 * no-rule (NEVER).
 * no-ara-m: the ACE found no ARA-M on the SE (NEVER for everyone).
 */
export type DecisionReason = 'aid-app' | 'aid-other-app' | 'aid-all-apps' | 'all-aids-app' | 'all-aids-other-app' | 'all-aids-all-apps' | 'no-rule' | 'no-ara-m';

export interface Access {
  apdu: ApduRule;
  nfc: boolean;
}

export interface Decision extends Access {
  reason: DecisionReason;
  /** Which hash matched for the *-app reasons. */
  hash?: 'sha256' | 'sha1';
  /** The rules merged into this decision (empty for the NEVER reasons without a rule). */
  rules: AccessRule[];
}

const NEVER: ApduRule = { kind: 'never' };

/** A rule's own access with the SEAC defaults: no APDU-AR-DO = NEVER; no NFC-AR-DO = ALWAYS unless APDU is NEVER (Annex G). */
export function ruleAccess(r: AccessRule): Access {
  const apdu = r.apdu ?? NEVER;
  return { apdu, nfc: r.nfc ?? apdu.kind !== 'never' };
}

/**
 * Several rules at the same level combine to the stricter: NEVER beats everything, filters beat ALWAYS, and filter
 * lists are joined (a command passes when any filter of any rule matches), like AOSP AccessRuleCache.putWithMerge.
 */
export function mergeAccess(list: Access[]): Access {
  if (!list.length) return { apdu: NEVER, nfc: false };
  const nfc = list.every((a) => a.nfc);
  if (list.some((a) => a.apdu.kind === 'never')) return { apdu: NEVER, nfc };
  const filters = list.flatMap((a) => (a.apdu.kind === 'filter' ? a.apdu.filters : []));
  return { apdu: filters.length ? { kind: 'filter', filters } : { kind: 'always' }, nfc };
}

function targets(ref: AidRef, target: SeTarget): boolean {
  if (target === 'default') return ref.kind === 'default';
  return ref.kind === 'aid' && equal(ref.aid, target);
}

/** The rules among `candidates` naming one of the app's hashes: SHA-256 ones if any match, else SHA-1 ones. */
function byApp(candidates: AccessRule[], app: AppIdentity): { rules: AccessRule[]; hash: 'sha256' | 'sha1' } | undefined {
  const named = (hashes: Uint8Array[]) =>
    candidates.filter((r) => {
      const ref = r.app;
      return ref.kind === 'hash' && hashes.some((h) => equal(h, ref.hash));
    });
  const s256 = named(app.sha256.filter((h) => h.length === 32));
  if (s256.length) return { rules: s256, hash: 'sha256' };
  const s1 = named(app.sha1.filter((h) => h.length === 20));
  if (s1.length) return { rules: s1, hash: 'sha1' };
  return undefined;
}

/** A decision from merged rules; with no rules it is NEVER for APDUs and NFC. */
export function decide(reason: DecisionReason, rules: AccessRule[], hash?: 'sha256' | 'sha1'): Decision {
  const d: Decision = { ...mergeAccess(rules.map(ruleAccess)), reason, rules };
  if (hash) d.hash = hash;
  return d;
}

/**
 * The access rule for `app` on `target`. An AID's own rules shadow the all-AID rules; within a group a rule naming
 * the app wins over the all-apps rule, and a group that names only other apps yields NEVER (SEAC conflict
 * resolution, AOSP AccessRuleCache cases A and C). Rules carrying a PKG-REF-DO are not channel-access rules.
 */
export function evaluateRules(rules: AccessRule[], target: SeTarget, app: AppIdentity): Decision {
  const usable = rules.filter((r) => r.packageName === undefined);
  const levels: { group: AccessRule[]; named: DecisionReason; other: DecisionReason; every: DecisionReason }[] = [
    { group: usable.filter((r) => targets(r.aid, target)), named: 'aid-app', other: 'aid-other-app', every: 'aid-all-apps' },
    { group: usable.filter((r) => r.aid.kind === 'all'), named: 'all-aids-app', other: 'all-aids-other-app', every: 'all-aids-all-apps' },
  ];
  for (const { group, named, other, every } of levels) {
    if (!group.length) continue;
    const hit = byApp(group, app);
    if (hit) return decide(named, hit.rules, hit.hash);
    if (group.some((r) => r.app.kind === 'hash')) return decide(other, []);
    return decide(every, group.filter((r) => r.app.kind === 'all'));
  }
  return decide('no-rule', []);
}

/** Whether a command passes an APDU rule; filters look at the 4-byte header as the app sent it. */
export function apduAllowed(rule: ApduRule, command: Uint8Array): boolean {
  if (rule.kind !== 'filter') return rule.kind === 'always';
  if (command.length < 4) return false;
  return rule.filters.some((f) => f.header.every((h, i) => (command[i] & f.mask[i]) === h));
}

/** One-line description of a rule, for logs and error messages. */
export function describeRule(r: AccessRule): string {
  const aid = r.aid.kind === 'aid' ? hex(r.aid.aid) : r.aid.kind === 'all' ? 'all AIDs' : 'default applet';
  const app = r.app.kind === 'hash' ? `${r.app.hash.length === 32 ? 'SHA-256' : 'SHA-1'} ${hex(r.app.hash)}` : 'all apps';
  return `${aid} / ${app}${r.packageName ? ` / ${r.packageName}` : ''}: ${describeApdu(ruleAccess(r).apdu)}, NFC ${ruleAccess(r).nfc ? 'always' : 'never'}`;
}

export function describeApdu(a: ApduRule): string {
  if (a.kind !== 'filter') return `APDU ${a.kind}`;
  return `APDU filter ${a.filters.map((f) => `${hex(f.header)}/${hex(f.mask)}`).join(' ')}`;
}
