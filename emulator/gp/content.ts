// Card content management: INSTALL (GPCS 2.3.1 §11.5), LOAD (§11.6) and DELETE (§11.2).
import { createHash } from 'node:crypto';
import type { CommandApdu } from '../apdu.ts';
import { concat, fromHex, hex, equal } from '../bytes.ts';
import { IsoError, SW } from '../iso.ts';
import { CapError, parseLoadFileDataBlock } from '../cap-reader.ts';
import { parseTlvs, readHeader, TlvError } from '../tlv.ts';
import type { CardEnv } from './env.ts';
import type { AppEntry, ElfEntry, Model } from './registry.ts';
import {
  K_LOAD_FILE,
  SD_MODULE_AID,
  findApp,
  findElf,
  isdAid,
  newKeySet,
  saveCard,
  saveKeys,
  saveRegistry,
  usedPersistent,
} from './registry.ts';
import { AppLife, ElfLife, Priv, SD_ONLY_PRIVS, SdLife, decodePrivileges } from './constants.ts';
import { deleteKeys } from './keys.ts';

const DONE = Uint8Array.of(0x00); // "no additional data" response of INSTALL/LOAD/DELETE

/** Reads the LV fields of an INSTALL data field; names the field that is malformed. */
function readLvs(data: Uint8Array, names: string[]): Uint8Array[] {
  const out: Uint8Array[] = [];
  let off = 0;
  for (const name of names) {
    if (off >= data.length) throw new IsoError(SW.WRONG_DATA, `INSTALL data ends before the ${name} field`);
    const len = data[off++];
    if (off + len > data.length) throw new IsoError(SW.WRONG_DATA, `${name} field of ${len} bytes overruns the data`);
    out.push(data.subarray(off, off + len));
    off += len;
  }
  if (off !== data.length) throw new IsoError(SW.WRONG_DATA, `${data.length - off} bytes after the last INSTALL field`);
  return out;
}

function checkAid(aid: Uint8Array, what: string): string {
  if (aid.length < 5 || aid.length > 16) throw new IsoError(SW.WRONG_DATA, `${what} AID of ${aid.length} bytes (5–16 allowed)`);
  return hex(aid);
}

/** Card content management authority (GPCS §9.1? Authorized Management / Delegated Management). */
function requireManagement(sd: AppEntry): void {
  if (sd.privileges & Priv.AUTHORIZED_MANAGEMENT) return;
  if (sd.privileges & Priv.DELEGATED_MANAGEMENT)
    throw new IsoError(SW.CONDITIONS_NOT_SATISFIED, 'delegated management needs tokens, which this emulator does not verify');
  throw new IsoError(SW.CONDITIONS_NOT_SATISFIED, 'security domain has no card content management privilege');
}

/** Commands with P1 b8 set continue in the next command (GPCS §11.5.2.1, §11.2.2.1): gather the pieces. */
function gather(env: CardEnv, cmd: CommandApdu): Uint8Array | undefined {
  const st = env.channels[env.channel].sd;
  const more = (cmd.p1 & 0x80) !== 0;
  const p1 = cmd.p1 & 0x7f;
  if (st.more && (st.more.ins !== cmd.ins || st.more.p1 !== p1)) {
    st.more = null;
    throw new IsoError(SW.CONDITIONS_NOT_SATISFIED, 'previous command announced more data with other parameters');
  }
  const parts = st.more ? [...st.more.parts, cmd.data] : [cmd.data];
  if (more) {
    st.more = { ins: cmd.ins, p1, p2: cmd.p2, parts };
    return undefined;
  }
  st.more = null;
  return concat(...parts);
}

export function install(env: CardEnv, sd: AppEntry, cmd: CommandApdu): Uint8Array {
  const data = gather(env, cmd);
  if (!data) return new Uint8Array(0);
  const p1 = cmd.p1 & 0x7f;
  switch (p1) {
    case 0x02:
      return installForLoad(env, sd, data);
    case 0x04:
      return installForInstall(env, sd, data, false);
    case 0x0c:
      return installForInstall(env, sd, data, true);
    case 0x08:
      return makeSelectable(env, sd, data);
    case 0x10:
      return extradite(env, sd, data);
    case 0x20:
      return forPersonalization(env, sd, data);
    case 0x40:
      return registryUpdate(env, sd, data);
  }
  throw new IsoError(SW.INCORRECT_P1P2, `INSTALL P1 ${cmd.p1.toString(16)} not supported`);
}

/** Table 11-42: ELF AID, SD AID, LFDB hash, load parameters, load token. */
function installForLoad(env: CardEnv, sd: AppEntry, data: Uint8Array): Uint8Array {
  requireManagement(sd);
  const [elfAid, sdAid, hash, , token] = readLvs(data, ['load file AID', 'security domain AID', 'hash', 'load parameters', 'load token']);
  const elf = checkAid(elfAid, 'load file');
  if (findElf(env.model, elf) || findApp(env.model, elf))
    throw new IsoError(SW.CONDITIONS_NOT_SATISFIED, `AID ${elf} is already on the card`);
  const target = sdAid.length ? hex(sdAid) : sd.aid;
  const targetSd = findApp(env.model, target);
  if (!targetSd?.isSd) throw new IsoError(SW.REFERENCED_DATA_NOT_FOUND, `security domain ${target} not found`);
  if (target !== sd.aid && sd.aid !== isdAid(env.model))
    throw new IsoError(SW.CONDITIONS_NOT_SATISFIED, 'only the ISD may load on behalf of another security domain');
  if (token.length) throw new IsoError(SW.WRONG_DATA, 'load tokens (delegated management) are not supported');
  if (hash.length && ![20, 32, 48, 64].includes(hash.length)) throw new IsoError(SW.WRONG_DATA, `hash of ${hash.length} bytes`);
  env.channels[env.channel].sd.load = { elf, sd: target, hash: hash.slice(), next: 0, parts: [], size: 0 };
  return DONE;
}

/** LOAD blocks (Table 11-58): P1 b8 = last block, P2 = block number from 00. */
export function load(env: CardEnv, sd: AppEntry, cmd: CommandApdu): Uint8Array {
  const st = env.channels[env.channel].sd;
  const ld = st.load;
  if (!ld) throw new IsoError(SW.CONDITIONS_NOT_SATISFIED, 'LOAD without INSTALL [for load]');
  if (cmd.p1 !== 0x00 && cmd.p1 !== 0x80) {
    st.load = null;
    throw new IsoError(SW.INCORRECT_P1P2, `LOAD P1 ${cmd.p1.toString(16)}`);
  }
  if (cmd.p2 !== ld.next) {
    st.load = null;
    throw new IsoError(SW.INCORRECT_P1P2, `LOAD block ${cmd.p2} where ${ld.next} was expected`);
  }
  ld.parts.push(cmd.data.slice());
  ld.size += cmd.data.length;
  ld.next++;
  const free = env.profile.persistentBytes - usedPersistent(env.model);
  if (ld.size > free + 64) {
    st.load = null;
    throw new IsoError(SW.NOT_ENOUGH_MEMORY, `load file exceeds the ${free} bytes free`);
  }
  if (cmd.p1 === 0x00) {
    if (ld.next > 0xff) {
      st.load = null;
      throw new IsoError(SW.WRONG_DATA, 'more than 256 LOAD blocks');
    }
    return new Uint8Array(0);
  }
  st.load = null;
  finishLoad(env, sd, ld.elf, ld.sd, ld.hash, concat(...ld.parts));
  return DONE;
}

/** Load File (Table 11-60): optional DAP blocks E2, then C4 Load File Data Block (D3/D4 ciphered form refused). */
function finishLoad(env: CardEnv, sd: AppEntry, elfAid: string, sdAid: string, hash: Uint8Array, file: Uint8Array): void {
  let off = 0;
  let lfdb: Uint8Array | undefined;
  try {
    while (off < file.length) {
      const h = readHeader(file, off);
      if (h.tag === 0xe2) {
        // DAP block: accepted but not verified (no DAP Verification privilege on any SD of this chip).
      } else if (h.tag === 0xc4) {
        lfdb = file.subarray(h.start, h.end);
      } else if (h.tag === 0xd3 || h.tag === 0xd4) {
        throw new IsoError(SW.WRONG_DATA, 'ciphered load file data blocks (D3/D4) are not supported');
      } else {
        throw new IsoError(SW.WRONG_DATA, `unexpected tag ${h.tag.toString(16)} at offset ${off} of the load file`);
      }
      off = h.end;
    }
  } catch (e) {
    if (e instanceof TlvError) throw new IsoError(SW.WRONG_DATA, `load file: ${e.message}`);
    throw e;
  }
  if (!lfdb) throw new IsoError(SW.WRONG_DATA, 'load file has no C4 load file data block');
  if (hash.length) {
    const alg = { 20: 'sha1', 32: 'sha256', 48: 'sha384', 64: 'sha512' }[hash.length]!;
    if (!equal(createHash(alg).update(lfdb).digest(), hash))
      throw new IsoError(SW.WRONG_DATA, 'load file data block hash does not match INSTALL [for load]');
  }
  let cap;
  try {
    cap = parseLoadFileDataBlock(lfdb);
  } catch (e) {
    if (e instanceof CapError) throw new IsoError(SW.WRONG_DATA, `CAP: ${e.message}`);
    throw e;
  }
  const pkg = hex(cap.package.aid);
  if (pkg !== elfAid) throw new IsoError(SW.WRONG_DATA, `CAP package AID ${pkg} differs from INSTALL [for load] AID ${elfAid}`);
  for (const imp of cap.imports) {
    const have = findElf(env.model, hex(imp.aid));
    if (!have) throw new IsoError(SW.WRONG_DATA, `imported package ${hex(imp.aid)} ${imp.major}.${imp.minor} is not on the card`);
    // Binary compatibility (JCVM §4.5): same major version, minor at least the one compiled against.
    if (have.version[0] !== imp.major || have.version[1] < imp.minor)
      throw new IsoError(
        SW.WRONG_DATA,
        `imported package ${hex(imp.aid)} ${imp.major}.${imp.minor} is incompatible with ${have.version[0]}.${have.version[1]} on the card`,
      );
  }
  const modules = cap.applets.map((a) => hex(a.aid));
  for (const mod of modules)
    if (findApp(env.model, mod) || findElf(env.model, mod)) throw new IsoError(SW.WRONG_DATA, `module AID ${mod} clashes`);
  const free = env.profile.persistentBytes - usedPersistent(env.model);
  if (lfdb.length > free) throw new IsoError(SW.NOT_ENOUGH_MEMORY, `load file of ${lfdb.length} bytes, ${free} free`);
  // The runtime that will execute the load file refuses it here if it does not parse, verify or link (6A80).
  env.runtimeFor(elfAid)?.loadFile?.(elfAid, lfdb);
  const entry: ElfEntry = {
    aid: elfAid,
    lifeCycle: ElfLife.LOADED,
    sd: sdAid,
    version: [cap.package.major, cap.package.minor],
    modules,
    imports: cap.imports.map((i) => ({ aid: hex(i.aid), major: i.major, minor: i.minor })),
    native: false,
    size: lfdb.length,
  };
  env.model.registry.elfs.push(entry);
  env.store.put(K_LOAD_FILE + elfAid, lfdb.slice());
  saveRegistry(env.store, env.model);
  env.log(`loaded ${elfAid} v${entry.version.join('.')} (${lfdb.length} bytes, modules ${modules.join(' ') || 'none'})`);
  void sd;
}

function parsePrivileges(field: Uint8Array): number {
  const p = decodePrivileges(field);
  if (p === undefined) throw new IsoError(SW.WRONG_DATA, `privileges field of ${field.length} bytes (1 or 3 allowed)`);
  return p;
}

function checkPrivileges(p: number, isSd: boolean): void {
  if (!isSd && p & SD_ONLY_PRIVS) throw new IsoError(SW.WRONG_DATA, 'security-domain privileges for an application');
  if (p & Priv.AUTHORIZED_MANAGEMENT && p & Priv.DELEGATED_MANAGEMENT)
    throw new IsoError(SW.WRONG_DATA, 'Authorized and Delegated Management together');
}

/** Install parameters field: C9 application-specific parameters, EF system parameters, others ignored (Table 11-49). */
function parseInstallParams(field: Uint8Array): Uint8Array {
  // GPCS 2.3.1 §11.5.2.3.7: C9 shall be present (C9 00 when the application takes no parameters).
  if (!field.length) throw new IsoError(SW.WRONG_DATA, 'install parameters field is empty (C9 is mandatory)');
  try {
    const list = parseTlvs(field);
    const c9 = list.find((t) => t.tag === 0xc9);
    if (!c9) throw new IsoError(SW.WRONG_DATA, 'install parameters without C9');
    return c9.value.slice();
  } catch (e) {
    if (e instanceof TlvError) throw new IsoError(SW.WRONG_DATA, `install parameters: ${e.message}`);
    throw e;
  }
}

/** Table 11-44: ELF AID, module AID, application AID, privileges, install parameters, install token. */
function installForInstall(env: CardEnv, sd: AppEntry, data: Uint8Array, selectable: boolean): Uint8Array {
  requireManagement(sd);
  const [elfAid, modAid, appAid, privField, paramField, token] = readLvs(data, [
    'load file AID',
    'module AID',
    'application AID',
    'privileges',
    'install parameters',
    'install token',
  ]);
  if (token.length) throw new IsoError(SW.WRONG_DATA, 'install tokens (delegated management) are not supported');
  const m = env.model;
  const elf = findElf(m, hex(elfAid));
  if (!elf) throw new IsoError(SW.REFERENCED_DATA_NOT_FOUND, `load file ${hex(elfAid)} not found`);
  const mod = hex(modAid);
  if (!elf.modules.includes(mod)) throw new IsoError(SW.REFERENCED_DATA_NOT_FOUND, `module ${mod} not in load file ${elf.aid}`);
  if (sd.aid !== isdAid(m) && elf.sd !== sd.aid)
    throw new IsoError(SW.CONDITIONS_NOT_SATISFIED, `load file ${elf.aid} is not associated with ${sd.aid}`);
  const aid = checkAid(appAid, 'application');
  if (findApp(m, aid) || findElf(m, aid)) throw new IsoError(SW.CONDITIONS_NOT_SATISFIED, `AID ${aid} is already on the card`);
  const privileges = parsePrivileges(privField);
  const isSd = mod === SD_MODULE_AID;
  if (isSd && !(privileges & Priv.SECURITY_DOMAIN))
    throw new IsoError(SW.WRONG_DATA, 'the security domain module needs the Security Domain privilege');
  if (!isSd && privileges & Priv.SECURITY_DOMAIN)
    throw new IsoError(SW.WRONG_DATA, 'Security Domain privilege for a module that is not a security domain');
  checkPrivileges(privileges, isSd);
  const params = parseInstallParams(paramField);
  const entry: AppEntry = {
    aid,
    lifeCycle: selectable ? (isSd ? SdLife.SELECTABLE : AppLife.SELECTABLE) : AppLife.INSTALLED,
    privileges,
    sd: sd.aid,
    elf: elf.aid,
    module: mod,
    isSd,
    params: hex(params),
  };
  if (isSd) {
    entry.scpI = sdScpI(params);
    // A new APSD starts with the profile's initial key set, to be replaced by PUT KEY (documented deviation).
    const key = hex(env.profile.initialKey);
    m.keys.set(aid, [newKeySet(env.profile.initialKvn, key, key, key)]);
    saveKeys(env.store, m, aid);
  } else {
    const rt = env.runtimeFor(elf.aid);
    // Without a runtime for this load file (no VM yet) the instance exists in the registry only.
    rt?.install({ elf: elf.aid, module: mod, aid, privileges, params });
  }
  m.registry.apps.push(entry);
  if (privileges & Priv.CARD_RESET) takeDefaultSelection(env, entry);
  saveRegistry(env.store, m);
  return DONE;
}

/** SD install parameters in C9 (GPCS §11.5.2.3.7? Table 11-50): tag 81 = SCP identifier and "i". */
function sdScpI(params: Uint8Array): number | undefined {
  if (!params.length) return undefined;
  try {
    const scp = parseTlvs(params).find((t) => t.tag === 0x81)?.value;
    if (!scp) return undefined;
    if (scp.length !== 2 || scp[0] !== 0x03) throw new IsoError(SW.WRONG_DATA, 'only SCP03 is supported for security domains');
    return scp[1];
  } catch (e) {
    if (e instanceof TlvError) throw new IsoError(SW.WRONG_DATA, `security domain parameters: ${e.message}`);
    throw e;
  }
}

/** Only one application holds Card Reset (default selected) at a time (GPCS §6.6.1.4?). */
function takeDefaultSelection(env: CardEnv, app: AppEntry): void {
  const m = env.model;
  for (const a of m.registry.apps) if (a !== app) a.privileges &= ~Priv.CARD_RESET;
  m.card.defaultSelected = app.aid;
  saveCard(env.store, m);
}

/** Table 11-45: 00, 00, application AID, privileges, install parameters (empty), token. */
function makeSelectable(env: CardEnv, sd: AppEntry, data: Uint8Array): Uint8Array {
  requireManagement(sd);
  const [, , appAid, privField, , token] = readLvs(data, ['load file AID', 'module AID', 'application AID', 'privileges', 'install parameters', 'install token']);
  if (token.length) throw new IsoError(SW.WRONG_DATA, 'install tokens are not supported');
  const app = findApp(env.model, hex(appAid));
  if (!app) throw new IsoError(SW.REFERENCED_DATA_NOT_FOUND, `application ${hex(appAid)} not found`);
  if (app.lifeCycle !== AppLife.INSTALLED) throw new IsoError(SW.CONDITIONS_NOT_SATISFIED, `application ${app.aid} is not in INSTALLED state`);
  if (privField.length) {
    const p = parsePrivileges(privField);
    checkPrivileges(p, app.isSd);
    if (p) app.privileges = p | (app.isSd ? Priv.SECURITY_DOMAIN : 0);
  }
  app.lifeCycle = app.isSd ? SdLife.SELECTABLE : AppLife.SELECTABLE;
  if (app.privileges & Priv.CARD_RESET) takeDefaultSelection(env, app);
  saveRegistry(env.store, env.model);
  return DONE;
}

/** Table 11-46: SD AID, 00, application or ELF AID, 00, extradition parameters, token. */
function extradite(env: CardEnv, sd: AppEntry, data: Uint8Array): Uint8Array {
  requireManagement(sd);
  const [sdAid, , aid, , , token] = readLvs(data, ['security domain AID', 'empty', 'application AID', 'empty', 'extradition parameters', 'token']);
  if (token.length) throw new IsoError(SW.WRONG_DATA, 'extradition tokens are not supported');
  const m = env.model;
  const target = findApp(m, hex(sdAid));
  if (!target?.isSd) throw new IsoError(SW.REFERENCED_DATA_NOT_FOUND, `security domain ${hex(sdAid)} not found`);
  if (target.lifeCycle & AppLife.LOCKED_BIT) throw new IsoError(SW.CONDITIONS_NOT_SATISFIED, 'target security domain is locked');
  const what = hex(aid);
  const obj = findApp(m, what) ?? findElf(m, what);
  if (!obj) throw new IsoError(SW.REFERENCED_DATA_NOT_FOUND, `${what} not found`);
  if (what === isdAid(m)) throw new IsoError(SW.CONDITIONS_NOT_SATISFIED, 'the ISD cannot be extradited');
  if (what === target.aid) throw new IsoError(SW.WRONG_DATA, 'a security domain cannot be associated with itself');
  // No association cycles among security domains (GPCS §7.? SD hierarchy).
  for (let up: AppEntry | undefined = target; up && up.aid !== up.sd; up = findApp(m, up.sd))
    if (up.sd === what) throw new IsoError(SW.CONDITIONS_NOT_SATISFIED, 'extradition would create an association cycle');
  obj.sd = target.aid;
  saveRegistry(env.store, m);
  return DONE;
}

/** Table 11-47: 00, 00, application AID, 00, 00, 00. Following STORE DATA goes to that application. */
function forPersonalization(env: CardEnv, sd: AppEntry, data: Uint8Array): Uint8Array {
  const [, , aid] = readLvs(data, ['empty', 'empty', 'application AID', 'empty', 'empty', 'empty']);
  const app = findApp(env.model, hex(aid));
  if (!app) throw new IsoError(SW.REFERENCED_DATA_NOT_FOUND, `application ${hex(aid)} not found`);
  if (app.sd !== sd.aid) throw new IsoError(SW.CONDITIONS_NOT_SATISFIED, `application ${app.aid} is not associated with ${sd.aid}`);
  if (app.lifeCycle & AppLife.LOCKED_BIT) throw new IsoError(SW.CONDITIONS_NOT_SATISFIED, `application ${app.aid} is locked`);
  const st = env.channels[env.channel].sd;
  st.personalizing = app.aid;
  st.store = null;
  return DONE;
}

/** Table 11-48: SD AID, 00, application AID, privileges, registry update parameters, token. */
function registryUpdate(env: CardEnv, sd: AppEntry, data: Uint8Array): Uint8Array {
  requireManagement(sd);
  const [sdAid, , aid, privField, , token] = readLvs(data, ['security domain AID', 'empty', 'application AID', 'privileges', 'parameters', 'token']);
  if (token.length) throw new IsoError(SW.WRONG_DATA, 'registry update tokens are not supported');
  const m = env.model;
  const app = findApp(m, hex(aid));
  if (!app) throw new IsoError(SW.REFERENCED_DATA_NOT_FOUND, `application ${hex(aid)} not found`);
  if (sdAid.length) return extradite(env, sd, concat(Uint8Array.of(sdAid.length), sdAid, Uint8Array.of(0, aid.length), aid, Uint8Array.of(0, 0, 0)));
  if (privField.length) {
    const p = parsePrivileges(privField) | (app.isSd ? Priv.SECURITY_DOMAIN : 0);
    checkPrivileges(p, app.isSd);
    if (app.aid === isdAid(m)) throw new IsoError(SW.CONDITIONS_NOT_SATISFIED, 'ISD privileges are fixed');
    app.privileges = p;
    if (p & Priv.CARD_RESET) takeDefaultSelection(env, app);
  }
  saveRegistry(env.store, m);
  return DONE;
}

/** DELETE (Table 11-22): 4F AID [B6 token CRT, 9E token] or D0 key id / D2 KVN; P2 80 = with related objects. */
export function deleteObject(env: CardEnv, sd: AppEntry, cmd: CommandApdu): Uint8Array {
  const data = gather(env, cmd);
  if (!data) return new Uint8Array(0);
  if (cmd.p2 !== 0x00 && cmd.p2 !== 0x80) throw new IsoError(SW.INCORRECT_P1P2, `DELETE P2 ${cmd.p2.toString(16)}`);
  let list;
  try {
    list = parseTlvs(data);
  } catch (e) {
    throw new IsoError(SW.WRONG_DATA, e instanceof TlvError ? `DELETE data: ${e.message}` : 'DELETE data');
  }
  const aidTlv = list.find((t) => t.tag === 0x4f);
  const keyId = list.find((t) => t.tag === 0xd0)?.value;
  const kvn = list.find((t) => t.tag === 0xd2)?.value;
  if (list.some((t) => t.tag === 0x9e)) throw new IsoError(SW.WRONG_DATA, 'delete tokens are not supported');
  if (!aidTlv) {
    if (!keyId && !kvn) throw new IsoError(SW.WRONG_DATA, 'DELETE needs 4F, D0 or D2');
    if ((keyId && keyId.length !== 1) || (kvn && kvn.length !== 1)) throw new IsoError(SW.WRONG_DATA, 'key identifier and version are one byte');
    deleteKeys(env, sd, keyId?.[0], kvn?.[0]);
    return DONE;
  }
  requireManagement(sd);
  const aid = checkAid(aidTlv.value, 'DELETE');
  const related = cmd.p2 === 0x80;
  const m = env.model;
  const victims = collect(env, m, sd, aid, related);
  const apps = new Set(victims.apps);
  const elfs = new Set(victims.elfs);
  // A load file still needed by another load file (import) or by an instance that stays cannot go.
  for (const e of m.registry.elfs)
    if (!elfs.has(e.aid)) for (const imp of e.imports) if (elfs.has(imp.aid)) throw new IsoError(SW.CONDITIONS_NOT_SATISFIED, `${imp.aid} is imported by ${e.aid}`);
  for (const a of m.registry.apps)
    if (!apps.has(a.aid) && elfs.has(a.elf)) throw new IsoError(SW.CONDITIONS_NOT_SATISFIED, `load file ${a.elf} has instance ${a.aid}`);
  for (const a of apps) {
    if (env.channels.some((c) => c.open && c.selected === a))
      throw new IsoError(SW.CONDITIONS_NOT_SATISFIED, `${a} is selected on a logical channel`);
  }
  for (const a of apps) {
    const entry = findApp(m, a)!;
    if (!entry.isSd) env.runtimeFor(entry.elf)?.uninstall(a);
    if (entry.isSd) {
      m.keys.delete(a);
      saveKeys(env.store, m, a);
    }
    if (m.card.defaultSelected === a) {
      m.card.defaultSelected = isdAid(m);
      findApp(m, isdAid(m))!.privileges |= Priv.CARD_RESET;
      saveCard(env.store, m);
    }
  }
  for (const e of elfs) env.runtimeFor(e)?.unloadFile?.(e);
  for (const e of elfs) if (env.store.has(K_LOAD_FILE + e)) env.store.delete(K_LOAD_FILE + e);
  m.registry.apps = m.registry.apps.filter((a) => !apps.has(a.aid));
  m.registry.elfs = m.registry.elfs.filter((e) => !elfs.has(e.aid));
  saveRegistry(env.store, m);
  env.log(`deleted ${[...apps, ...elfs].join(' ')}`);
  return DONE;
}

/** The objects one DELETE removes (GPCS §11.2.1): the object, and with P2 = 80 its instances or associated objects. */
function collect(env: CardEnv, m: Model, sd: AppEntry, aid: string, related: boolean): { apps: string[]; elfs: string[] } {
  const isd = isdAid(m);
  const mayDelete = (assoc: string) => sd.aid === isd || sd.privileges & Priv.GLOBAL_DELETE || assoc === sd.aid;
  const elf = findElf(m, aid);
  if (elf) {
    if (elf.native) throw new IsoError(SW.CONDITIONS_NOT_SATISFIED, `${aid} is part of the chip image`);
    if (!mayDelete(elf.sd)) throw new IsoError(SW.CONDITIONS_NOT_SATISFIED, `${aid} belongs to another security domain`);
    const instances = m.registry.apps.filter((a) => a.elf === aid).map((a) => a.aid);
    if (instances.length && !related) throw new IsoError(SW.CONDITIONS_NOT_SATISFIED, `${aid} has instances: ${instances.join(' ')}`);
    return { apps: instances, elfs: [aid] };
  }
  const app = findApp(m, aid);
  if (!app) throw new IsoError(SW.REFERENCED_DATA_NOT_FOUND, `${aid} not found`);
  if (aid === isd) throw new IsoError(SW.CONDITIONS_NOT_SATISFIED, 'the ISD cannot be deleted');
  if (!mayDelete(app.sd)) throw new IsoError(SW.CONDITIONS_NOT_SATISFIED, `${aid} belongs to another security domain`);
  if (!app.isSd) return { apps: [aid], elfs: [] };
  const assocApps = m.registry.apps.filter((a) => a.sd === aid && a.aid !== aid);
  const assocElfs = m.registry.elfs.filter((e) => e.sd === aid);
  if (!related && (assocApps.length || assocElfs.length))
    throw new IsoError(SW.CONDITIONS_NOT_SATISFIED, `security domain ${aid} has associated objects`);
  const out = { apps: [aid], elfs: [] as string[] };
  for (const a of assocApps) {
    const sub = collect(env, m, app, a.aid, true);
    out.apps.push(...sub.apps);
    out.elfs.push(...sub.elfs);
  }
  for (const e of assocElfs) {
    out.elfs.push(e.aid);
    out.apps.push(...m.registry.apps.filter((a) => a.elf === e.aid).map((a) => a.aid));
  }
  return { apps: [...new Set(out.apps)], elfs: [...new Set(out.elfs)] };
}

export { fromHex };
