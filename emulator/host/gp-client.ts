// A GlobalPlatform host in the manner of GlobalPlatformPro, over any APDU transport: select a security domain, open
// SCP03 (Amd D), and run the card manager commands of GPCS 2.3.1 §11 (GET STATUS, GET DATA, PUT KEY, DELETE, INSTALL,
// LOAD, SET STATUS). Every refusal becomes a GpError carrying the status word and its meaning.
import { createHash } from 'node:crypto';
import type { CommandFields, ResponseApdu } from '../apdu.ts';
import { decodeCla, encodeCla, encodeCommand, parseCommand, parseResponse } from '../apdu.ts';
import { concat, equal, fromHex, hex, readUint } from '../bytes.ts';
import { SW, swHex, swMeaning } from '../iso.ts';
import { encodeLength, parseTlvs, TlvError } from '../tlv.ts';
import type { CapFile } from '../cap-reader.ts';
import { loadFileDataBlock, readCapFile } from '../cap-reader.ts';
import type { AuthInfo, KeySet } from '../scp03.ts';
import { Level, encryptKeyData, isValidLevel, kcv, openSecureChannel } from '../scp03.ts';
import type { CardRecognition, CplcField, ExtendedResources, KeyInfo, RegistryEntry } from './gp-data.ts';
import {
  StatusScope,
  parseCardRecognition,
  parseCplc,
  parseExtendedResources,
  parseKeyInformation,
  parseStatusLegacy,
  parseStatusTags,
  unwrapDataObject,
} from './gp-data.ts';

/** What the client needs of a reader or chip: the Target of emulator/transport/target.ts fits. */
export interface ApduTransport {
  transmit(apdu: Uint8Array): Promise<Uint8Array>;
}

/** Sees every APDU on the wire (after secure messaging): '>>' command, '<<' response. */
export type TraceFn = (direction: '>>' | '<<', apdu: Uint8Array) => void;

/** A card refusal (sw set) or a malformed answer (sw undefined). */
export class GpError extends Error {
  readonly sw: number | undefined;
  constructor(message: string, sw?: number) {
    super(message);
    this.name = 'GpError';
    this.sw = sw;
  }
}

/** The GlobalPlatform test key "40..4F" that GPP and most sample cards default to. */
export const DEFAULT_TEST_KEY = fromHex('404142434445464748494A4B4C4D4E4F');
/** ISD AIDs tried when no security domain is named and SELECT without data fails: GP, Visa/OP, GP 2.1 short. */
export const ISD_CANDIDATES = ['A000000151000000', 'A000000003000000', 'A0000001510000'];
/** Load file and module a card offers for creating security domains (GPCS; GPP's --domain default). */
export const SD_PACKAGE_AID = 'A0000001515350';
export const SD_MODULE_AID = 'A000000151535041';
/** Privilege bit of a security domain (GPCS Table 11-7, byte 1 b8). */
const PRIV_SD = 0x800000;

const INS = {
  SELECT: 0xa4,
  GET_RESPONSE: 0xc0,
  GET_DATA: 0xca,
  GET_STATUS: 0xf2,
  PUT_KEY: 0xd8,
  DELETE: 0xe4,
  INSTALL: 0xe6,
  LOAD: 0xe8,
  SET_STATUS: 0xf0,
} as const;

/**
 * The LOAD commands for a Load File Data Block (GPCS 2.3.1 §11.6.2): the Load File is C4 ‖ length ‖ LFDB, cut into
 * blocks of `block` bytes, P1 80 on the last one, P2 the block number. RangeError when it needs more than 256 blocks.
 */
export function loadCommands(lfdb: Uint8Array, block: number): CommandFields[] {
  const file = concat(Uint8Array.of(0xc4), encodeLength(lfdb.length), lfdb);
  const blocks = Math.ceil(file.length / block);
  if (blocks > 256) throw new RangeError(`the load file of ${file.length} bytes needs ${blocks} blocks of ${block} bytes; LOAD allows 256`);
  return Array.from({ length: blocks }, (_, n) => ({
    cla: 0x80,
    ins: INS.LOAD,
    p1: n === blocks - 1 ? 0x80 : 0x00,
    p2: n,
    data: file.subarray(n * block, (n + 1) * block),
    ne: 256,
  }));
}

export function keySetFrom(key: Uint8Array): KeySet {
  return { enc: key, mac: key, dek: key };
}

function checkAid(aid: string, what: string): Uint8Array {
  let b: Uint8Array;
  try {
    b = fromHex(aid);
  } catch {
    throw new RangeError(`${what} AID "${aid}" is not hex`);
  }
  if (b.length < 5 || b.length > 16) throw new RangeError(`${what} AID ${hex(b)} has ${b.length} bytes; 5 to 16 allowed`);
  return b;
}

function checkAesKey(what: string, k: Uint8Array): void {
  if (k.length !== 16 && k.length !== 24 && k.length !== 32) throw new RangeError(`${what} has ${k.length} bytes; AES keys have 16, 24 or 32`);
}

const lv = (b: Uint8Array) => {
  if (b.length > 255) throw new RangeError(`field of ${b.length} bytes does not fit a one-byte length`);
  return concat(Uint8Array.of(b.length), b);
};

/** Privileges as sent in INSTALL: one byte when bytes 2 and 3 are zero (GP 2.1.1 cards), else three (GPCS §11.5.2.3.2). */
function privilegeField(p: number): Uint8Array {
  if (!Number.isInteger(p) || p < 0 || p > 0xffffff) throw new RangeError(`privileges ${p} do not fit 3 bytes`);
  return p & 0xffff ? Uint8Array.of(p >> 16, (p >> 8) & 0xff, p & 0xff) : Uint8Array.of(p >> 16);
}

/** Largest plain command data that still fits a short APDU at this level (C-DEC pads to 16, the MAC adds 8 or 16). */
export function maxShortData(level: number, s16: boolean): number {
  const mac = level & Level.CMAC ? (s16 ? 16 : 8) : 0;
  if (!(level & Level.CDEC)) return 255 - mac;
  return Math.floor((255 - mac) / 16) * 16 - 1; // at least one padding byte
}

/**
 * One exchange on the wire with the T=0-style follow-ups a host does (ISO 7816-4 §5.3.4): 6Cxx → resend with Le = xx,
 * 61xx → GET RESPONSE until the data is complete. Returns data + SW as received (still protected, if it was).
 */
async function exchange(t: ApduTransport, apdu: Uint8Array, trace: TraceFn | undefined): Promise<Uint8Array> {
  const once = async (a: Uint8Array) => {
    trace?.('>>', a);
    const r = await t.transmit(a);
    trace?.('<<', r);
    if (r.length < 2) throw new GpError(`card answered ${r.length} byte(s) without a status word`);
    return r;
  };
  let r = await once(apdu);
  if (r[r.length - 2] === 0x6c) {
    // Wrong Le: the card names the right one; only meaningful for a command that has an Le (case 2 or 4).
    const c = parseCommand(apdu);
    if (c.ne) r = await once(encodeCommand({ ...c, ne: r[r.length - 1] || 256 }));
  }
  const parts: Uint8Array[] = [];
  const cla = decodeCla(apdu[0]);
  const channel = cla ? cla.channel : 0;
  for (let guard = 0; r[r.length - 2] === 0x61; guard++) {
    if (guard > 256) throw new GpError('card keeps answering 61xx');
    parts.push(r.subarray(0, r.length - 2));
    r = await once(encodeCommand({ cla: encodeCla(channel), ins: INS.GET_RESPONSE, p1: 0, p2: 0, ne: r[r.length - 1] || 256 }));
  }
  return parts.length ? concat(...parts, r) : r;
}

export interface ConnectOptions {
  /** Security domain to select (hex AID); default: the ISD. */
  sd?: string;
  trace?: TraceFn;
}

export interface AuthOptions {
  keys: KeySet;
  /** Key version number; 0 or absent: the card's choice. */
  kvn?: number;
  /** Security level (Amd D Table 7-3): 01, 03, 11, 13 or 33; default 03. */
  level?: number;
  s16?: boolean;
}

export interface GpInfo {
  sd: string;
  cplc?: CplcField[];
  iin?: string;
  cin?: string;
  cardData?: CardRecognition;
  keys?: KeyInfo[];
  sequenceCounter?: number;
  kdd?: string;
  resources?: ExtendedResources;
  /** Objects the card did not give, with its status word. */
  missing: string[];
}

export interface Listing {
  isd: RegistryEntry[];
  apps: RegistryEntry[];
  loadFiles: RegistryEntry[];
}

export interface PutKeyOptions {
  keys: KeySet;
  newKvn: number;
  /** Key version to replace; absent or 0: add a new key set. */
  replaceKvn?: number;
}

export interface InstallOptions {
  elf: string;
  module: string;
  /** Instance AID; default: the module AID. */
  aid?: string;
  privileges?: number;
  /** Application-specific parameters: the value of C9 (GPCS Table 11-49). */
  params?: Uint8Array;
  /** INSTALL [for install and make selectable] (default) or [for install] only. */
  selectable?: boolean;
}

export interface DomainOptions {
  aid: string;
  /** Default: Security Domain only; the SD bit is always added. */
  privileges?: number;
  /** SCP03 "i" for the new domain, sent as 81 02 03 i in its C9 parameters. */
  scpI?: number;
}

export interface LoadOptions {
  /** Plain data per LOAD block; default: the most that fits a short APDU at the session's level. */
  blockSize?: number;
  /** Security domain to associate the load file with (INSTALL [for load] field 2); default: the selected one. */
  sd?: string;
  /** Send the Load File Data Block hash in INSTALL [for load] (GPCS §11.5.2.3.1). */
  hash?: 'sha1' | 'sha256' | 'sha384' | 'sha512';
  includeDescriptor?: boolean;
  onBlock?: (n: number, total: number) => void;
}

export interface LoadResult {
  elf: string;
  version: [number, number];
  modules: string[];
  blocks: number;
  bytes: number;
}

export type StatusTarget = 'card' | 'app' | 'domain';

export interface GpClient {
  readonly sdAid: string;
  /** FCI returned by SELECT. */
  readonly fci: Uint8Array;
  /** SCP03 session details once authenticated. */
  readonly session: (AuthInfo & { level: number }) | null;
  authenticate(opts: AuthOptions): Promise<AuthInfo>;
  /** Sends one command (through the session when there is one); returns data and SW without judging them. */
  transmit(c: CommandFields): Promise<ResponseApdu>;
  /** Like transmit, but any SW other than 9000 throws a GpError naming `what`. */
  command(c: CommandFields, what: string): Promise<Uint8Array>;
  /** GET DATA value of a tag; undefined when the card does not have the object (6A88 and the like). */
  getData(tag: number): Promise<Uint8Array | undefined>;
  info(): Promise<GpInfo>;
  status(p1: number): Promise<RegistryEntry[]>;
  list(): Promise<Listing>;
  putKey(opts: PutKeyOptions): Promise<{ kvn: number; kcvs: Uint8Array[] }>;
  deleteObject(aid: string, related?: boolean): Promise<void>;
  deleteKeys(opts: { kvn?: number; id?: number }): Promise<void>;
  install(opts: InstallOptions): Promise<void>;
  makeSelectable(aid: string, privileges?: number): Promise<void>;
  createDomain(opts: DomainOptions): Promise<void>;
  load(cap: CapFile | Uint8Array, opts?: LoadOptions): Promise<LoadResult>;
  setStatus(target: StatusTarget, state: number, aid?: string): Promise<void>;
  /** Ends the secure channel by selecting the security domain again (a reselection ends the session), so a card left
   * powered (PC/SC leaves it so) does not refuse the next tool's plain commands. */
  end(): Promise<void>;
}

/** Status words that mean "this card does not have that" for GET DATA and GET STATUS. */
const ABSENT: readonly number[] = [SW.REFERENCED_DATA_NOT_FOUND, SW.FILE_NOT_FOUND, SW.INCORRECT_P1P2, SW.WRONG_P1P2, SW.INS_NOT_SUPPORTED, SW.FUNC_NOT_SUPPORTED];

function failure(what: string, sw: number): GpError {
  return new GpError(`${what} failed: ${swHex(sw)} ${swMeaning(sw)}`, sw);
}

/** Selects the security domain (or finds the ISD) and returns a client for it. */
export async function connectGp(transport: ApduTransport, opts: ConnectOptions = {}): Promise<GpClient> {
  const trace = opts.trace;
  const raw = (apdu: Uint8Array) => exchange(transport, apdu, trace);
  const select = async (aid: Uint8Array | null) =>
    parseResponse(await raw(encodeCommand({ cla: 0x00, ins: INS.SELECT, p1: 0x04, p2: 0x00, data: aid ?? new Uint8Array(0), ne: 256 })));
  // 6283: selected, but the card is CARD_LOCKED (GPCS §11.9.3.2) — still the right domain.
  const selected = (sw: number) => sw === SW.OK || sw === SW.WARN_SELECTED_LOCKED;

  let sdAid: string;
  let fci: Uint8Array;
  if (opts.sd) {
    const aid = checkAid(opts.sd, 'security domain');
    const r = await select(aid);
    if (!selected(r.sw)) throw failure(`SELECT ${hex(aid)}`, r.sw);
    sdAid = hex(aid);
    fci = r.data;
  } else {
    let r = await select(null);
    let found = selected(r.sw) ? fciAid(r.data) : undefined;
    for (const c of ISD_CANDIDATES) {
      if (found) break;
      r = await select(fromHex(c));
      if (selected(r.sw)) found = fciAid(r.data) ?? c;
    }
    if (!found) throw new GpError(`no issuer security domain answers SELECT (tried the default and ${ISD_CANDIDATES.join(', ')})`, r.sw);
    sdAid = found;
    fci = r.data;
  }

  let send = raw;
  let session: (AuthInfo & { level: number }) | null = null;
  let staticKeys: KeySet | null = null;
  let s16 = false;
  let legacyStatus = false;

  async function transmit(c: CommandFields): Promise<ResponseApdu> {
    return parseResponse(await send(encodeCommand(c)));
  }

  async function command(c: CommandFields, what: string): Promise<Uint8Array> {
    const r = await transmit(c);
    if (r.sw !== SW.OK) throw failure(what, r.sw);
    return r.data;
  }

  async function authenticate(a: AuthOptions): Promise<AuthInfo> {
    const level = a.level ?? Level.CMAC | Level.CDEC;
    if (!isValidLevel(level) || level === 0) throw new RangeError(`security level ${level.toString(16)} is not one of 01 03 11 13 33`);
    checkAesKey('Key-ENC', a.keys.enc);
    checkAesKey('Key-MAC', a.keys.mac);
    checkAesKey('Key-DEK', a.keys.dek);
    const sc = await openSecureChannel(raw, { keys: a.keys, kvn: a.kvn ?? 0, level, s16: a.s16, sdAid: fromHex(sdAid), cla: 0x80 });
    send = sc.transmit;
    staticKeys = a.keys;
    s16 = sc.session.s16;
    session = { ...sc.info, level };
    return sc.info;
  }

  async function getData(tag: number): Promise<Uint8Array | undefined> {
    const r = await transmit({ cla: 0x80, ins: INS.GET_DATA, p1: tag >> 8, p2: tag & 0xff, ne: 256 });
    if (ABSENT.includes(r.sw)) return undefined;
    if (r.sw !== SW.OK) throw failure(`GET DATA ${tag.toString(16).toUpperCase().padStart(4, '0')}`, r.sw);
    return r.data;
  }

  async function info(): Promise<GpInfo> {
    const out: GpInfo = { sd: sdAid, missing: [] };
    const get = async (tag: number, name: string): Promise<Uint8Array | undefined> => {
      const v = await getData(tag);
      if (!v) out.missing.push(name);
      return v;
    };
    const cplc = await get(0x9f7f, 'CPLC (9F7F)');
    if (cplc) out.cplc = parseCplc(cplc);
    const iin = await get(0x42, 'IIN (42)');
    if (iin) out.iin = hex(unwrapDataObject(0x42, iin));
    const cin = await get(0x45, 'CIN (45)');
    if (cin) out.cin = hex(unwrapDataObject(0x45, cin));
    const cd = await get(0x66, 'card data (66)');
    if (cd) out.cardData = parseCardRecognition(cd);
    const ki = await get(0xe0, 'key information (E0)');
    if (ki) out.keys = parseKeyInformation(ki);
    const seq = await get(0xc1, 'sequence counter (C1)');
    if (seq) out.sequenceCounter = readUint(unwrapDataObject(0xc1, seq));
    const kdd = await get(0xcf, 'key diversification data (CF)');
    if (kdd) out.kdd = hex(unwrapDataObject(0xcf, kdd));
    const res = await get(0xff21, 'extended card resources (FF21)');
    if (res) out.resources = parseExtendedResources(res);
    return out;
  }

  /** GET STATUS with 6310 continuation (GPCS §11.4.2.2); tag format first, the legacy format if the card refuses it. */
  async function status(p1: number): Promise<RegistryEntry[]> {
    const run = async (tags: boolean): Promise<ResponseApdu & { entries: RegistryEntry[] }> => {
      const p2 = tags ? 0x02 : 0x00;
      const crit = Uint8Array.of(0x4f, 0x00);
      let r = await transmit({ cla: 0x80, ins: INS.GET_STATUS, p1, p2, data: crit, ne: 256 });
      const chunks: Uint8Array[] = [];
      for (let guard = 0; r.sw === SW.MORE_STATUS; guard++) {
        if (guard > 1000) throw new GpError('GET STATUS keeps answering 6310');
        chunks.push(r.data);
        r = await transmit({ cla: 0x80, ins: INS.GET_STATUS, p1, p2: p2 | 0x01, data: crit, ne: 256 });
      }
      if (r.sw !== SW.OK) return { ...r, entries: [] };
      const data = concat(...chunks, r.data);
      return { ...r, entries: tags ? parseStatusTags(data, p1) : parseStatusLegacy(data, p1) };
    };
    let r = legacyStatus ? await run(false) : await run(true);
    if (!legacyStatus && (r.sw === SW.INCORRECT_P1P2 || r.sw === SW.WRONG_DATA)) {
      const old = await run(false);
      if (old.sw === SW.OK || old.sw === SW.REFERENCED_DATA_NOT_FOUND) {
        legacyStatus = true;
        r = old;
      }
    }
    if (r.sw === SW.REFERENCED_DATA_NOT_FOUND) return [];
    if (r.sw !== SW.OK) throw failure(`GET STATUS ${p1.toString(16).toUpperCase()}`, r.sw);
    return r.entries;
  }

  async function list(): Promise<Listing> {
    const isd = await status(StatusScope.ISD);
    const apps = await status(StatusScope.APPS);
    let loadFiles: RegistryEntry[];
    try {
      loadFiles = await status(StatusScope.LOAD_FILES_AND_MODULES);
    } catch (e) {
      // Cards without P1 10 answer 6A86: list load files without their modules.
      if (!(e instanceof GpError) || e.sw !== SW.INCORRECT_P1P2) throw e;
      loadFiles = await status(StatusScope.LOAD_FILES);
    }
    return { isd, apps, loadFiles };
  }

  function requireSession(what: string): KeySet {
    if (!staticKeys || !session) throw new GpError(`${what} needs a secure channel: authenticate first`);
    return staticKeys;
  }

  /** PUT KEY (GPCS §11.8.2.3, Amd D §7.2): three AES keys encrypted with the session's static DEK, KCVs checked. */
  async function putKey(o: PutKeyOptions): Promise<{ kvn: number; kcvs: Uint8Array[] }> {
    const current = requireSession('PUT KEY');
    if (!Number.isInteger(o.newKvn) || o.newKvn < 1 || o.newKvn > 0x7f) throw new RangeError(`new key version ${o.newKvn} is outside 01–7F`);
    const replace = o.replaceKvn ?? 0;
    if (!Number.isInteger(replace) || replace < 0 || replace > 0x7f) throw new RangeError(`key version to replace ${replace} is outside 01–7F`);
    const parts: Uint8Array[] = [Uint8Array.of(o.newKvn)];
    const expected: Uint8Array[] = [];
    for (const [name, k] of [['Key-ENC', o.keys.enc], ['Key-MAC', o.keys.mac], ['Key-DEK', o.keys.dek]] as const) {
      checkAesKey(`new ${name}`, k);
      const cipher = encryptKeyData(current.dek, k);
      const check = kcv(k);
      expected.push(check);
      parts.push(Uint8Array.of(0x88, cipher.length + 1, k.length), cipher, Uint8Array.of(check.length), check);
    }
    const what = replace ? `PUT KEY (replace key set ${h2(replace)} by ${h2(o.newKvn)})` : `PUT KEY (new key set ${h2(o.newKvn)})`;
    const r = await command({ cla: 0x80, ins: INS.PUT_KEY, p1: replace, p2: 0x81, data: concat(...parts), ne: 256 }, what);
    // The card answers the key version and one KCV per key (GPCS Table 11-73): they must match what was sent.
    if (r.length !== 1 + 3 * 3) throw new GpError(`${what}: response of ${r.length} bytes; expected KVN and three 3-byte KCVs`);
    if (r[0] !== o.newKvn) throw new GpError(`${what}: card confirmed key version ${h2(r[0])}`);
    const kcvs = [r.subarray(1, 4), r.subarray(4, 7), r.subarray(7, 10)].map((x) => x.slice());
    kcvs.forEach((got, i) => {
      if (!equal(got, expected[i])) throw new GpError(`${what}: card's KCV ${hex(got)} for key ${i + 1} differs from ${hex(expected[i])}`);
    });
    return { kvn: r[0], kcvs };
  }

  async function deleteObject(aid: string, related = false): Promise<void> {
    const a = checkAid(aid, 'object');
    await command(
      { cla: 0x80, ins: INS.DELETE, p1: 0x00, p2: related ? 0x80 : 0x00, data: concat(Uint8Array.of(0x4f, a.length), a), ne: 256 },
      `DELETE ${hex(a)}${related ? ' with related objects' : ''}`,
    );
  }

  async function deleteKeys(o: { kvn?: number; id?: number }): Promise<void> {
    const parts: Uint8Array[] = [];
    if (o.id !== undefined) parts.push(Uint8Array.of(0xd0, 1, o.id));
    if (o.kvn !== undefined) parts.push(Uint8Array.of(0xd2, 1, o.kvn));
    if (!parts.length) throw new RangeError('DELETE of keys needs a key version or a key identifier');
    await command({ cla: 0x80, ins: INS.DELETE, p1: 0x00, p2: 0x00, data: concat(...parts), ne: 256 }, 'DELETE key');
  }

  function installParams(params: Uint8Array | undefined): Uint8Array {
    const c9 = params ?? new Uint8Array(0);
    return concat(Uint8Array.of(0xc9), encodeLength(c9.length), c9);
  }

  async function install(o: InstallOptions): Promise<void> {
    const elf = checkAid(o.elf, 'load file');
    const mod = checkAid(o.module, 'module');
    const app = checkAid(o.aid ?? o.module, 'application');
    const selectable = o.selectable ?? true;
    const data = concat(lv(elf), lv(mod), lv(app), lv(privilegeField(o.privileges ?? 0)), lv(installParams(o.params)), lv(new Uint8Array(0)));
    const what = `INSTALL [for install${selectable ? ' and make selectable' : ''}] ${hex(app)}`;
    await command({ cla: 0x80, ins: INS.INSTALL, p1: selectable ? 0x0c : 0x04, p2: 0x00, data, ne: 256 }, what);
  }

  async function makeSelectable(aid: string, privileges?: number): Promise<void> {
    const app = checkAid(aid, 'application');
    const privs = privileges === undefined ? new Uint8Array(0) : privilegeField(privileges);
    const data = concat(Uint8Array.of(0, 0), lv(app), lv(privs), Uint8Array.of(0, 0));
    await command({ cla: 0x80, ins: INS.INSTALL, p1: 0x08, p2: 0x00, data, ne: 256 }, `INSTALL [for make selectable] ${hex(app)}`);
  }

  async function createDomain(o: DomainOptions): Promise<void> {
    let params: Uint8Array | undefined;
    if (o.scpI !== undefined) {
      if (!Number.isInteger(o.scpI) || o.scpI < 0 || o.scpI > 0xff) throw new RangeError(`SCP03 i ${o.scpI} is not a byte`);
      params = Uint8Array.of(0x81, 0x02, 0x03, o.scpI);
    }
    await install({ elf: SD_PACKAGE_AID, module: SD_MODULE_AID, aid: o.aid, privileges: (o.privileges ?? 0) | PRIV_SD, params, selectable: true });
  }

  /** INSTALL [for load] then LOAD blocks (GPCS §11.5.2.3.1, §11.6): Load File = C4 + the Load File Data Block. */
  async function load(capInput: CapFile | Uint8Array, o: LoadOptions = {}): Promise<LoadResult> {
    requireSession('LOAD');
    const cap = capInput instanceof Uint8Array ? readCapFile(capInput) : capInput;
    const lfdb = loadFileDataBlock(cap, { includeDescriptor: o.includeDescriptor });
    const limit = maxShortData(session!.level, s16);
    const block = o.blockSize ?? limit;
    if (!Number.isInteger(block) || block < 1 || block > 0x7f00) throw new RangeError(`block size ${block} is outside 1–32512`);
    const loads = loadCommands(lfdb, block);
    const blocks = loads.length;
    const elf = cap.package.aid;
    const sd = o.sd ? checkAid(o.sd, 'security domain') : new Uint8Array(0);
    const hash = o.hash ? new Uint8Array(createHash(o.hash).update(lfdb).digest()) : new Uint8Array(0);
    const empty = new Uint8Array(0);
    await command(
      { cla: 0x80, ins: INS.INSTALL, p1: 0x02, p2: 0x00, data: concat(lv(elf), lv(sd), lv(hash), lv(empty), lv(empty)), ne: 256 },
      `INSTALL [for load] ${hex(elf)}`,
    );
    for (const [n, c] of loads.entries()) {
      await command(c, `LOAD block ${n + 1} of ${blocks}`);
      o.onBlock?.(n + 1, blocks);
    }
    return {
      elf: hex(elf),
      version: [cap.package.major, cap.package.minor],
      modules: cap.applets.map((a) => hex(a.aid)),
      blocks,
      bytes: lfdb.length,
    };
  }

  /** SET STATUS (GPCS §11.10): P1 80 card life cycle, 40 one application or SD, 60 an SD with its applications. */
  async function setStatus(target: StatusTarget, state: number, aid?: string): Promise<void> {
    if (!Number.isInteger(state) || state < 0 || state > 0xff) throw new RangeError(`life cycle state ${state} is not a byte`);
    if (target === 'card') {
      await command({ cla: 0x80, ins: INS.SET_STATUS, p1: 0x80, p2: state }, `SET STATUS card ${h2(state)}`);
      return;
    }
    if (!aid) throw new RangeError(`SET STATUS of ${target === 'app' ? 'an application' : 'a security domain'} needs its AID`);
    const a = checkAid(aid, target === 'app' ? 'application' : 'security domain');
    const p1 = target === 'app' ? 0x40 : 0x60;
    await command({ cla: 0x80, ins: INS.SET_STATUS, p1, p2: state, data: a }, `SET STATUS ${hex(a)} ${h2(state)}`);
  }

  async function end(): Promise<void> {
    if (!session) return;
    session = null;
    staticKeys = null;
    send = raw;
    const r = await select(fromHex(sdAid));
    if (!selected(r.sw)) throw failure(`SELECT ${sdAid}`, r.sw);
  }

  return {
    end,
    get sdAid() {
      return sdAid;
    },
    get fci() {
      return fci;
    },
    get session() {
      return session;
    },
    authenticate,
    transmit,
    command,
    getData,
    info,
    status,
    list,
    putKey,
    deleteObject,
    deleteKeys,
    install,
    makeSelectable,
    createDomain,
    load,
    setStatus,
  };
}

/** The AID in an FCI (6F { 84 AID … }), if the answer is one. */
function fciAid(fci: Uint8Array): string | undefined {
  try {
    const top = parseTlvs(fci).find((t) => t.tag === 0x6f);
    const aid = top && parseTlvs(top.value).find((t) => t.tag === 0x84)?.value;
    return aid && aid.length >= 5 ? hex(aid) : undefined;
  } catch (e) {
    if (e instanceof TlvError) return undefined;
    throw e;
  }
}

function h2(n: number): string {
  return n.toString(16).toUpperCase().padStart(2, '0');
}
