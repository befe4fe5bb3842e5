// jpki-se gp …: GlobalPlatform card management over SCP03, in the manner of GlobalPlatformPro.
import { readFileSync } from 'node:fs';
import { hex } from '../emulator/bytes.ts';
import { readCapFile } from '../emulator/cap-reader.ts';
import type { CapFile } from '../emulator/cap-reader.ts';
import type { KeySet } from '../emulator/scp03.ts';
import { cardLifeName } from '../emulator/gp/constants.ts';
import type { GpClient, LoadOptions, StatusTarget } from '../emulator/host/gp-client.ts';
import { DEFAULT_TEST_KEY, connectGp } from '../emulator/host/gp-client.ts';
import { GpDataError, formatEntries, keyTypeName, parsePrivileges, privilegeLabels } from '../emulator/host/gp-data.ts';
import type { Options, Values } from './args.ts';
import { UsageError, flag, parseAesKey, parseAid, parseByte, parseHex, parseInteger, str } from './args.ts';
import { traceLine } from './apdu.ts';
import type { Io } from './io.ts';
import { TARGET_HELP, TARGET_OPTIONS, openCliTarget } from './target.ts';

export const GP_OPTIONS: Options = {
  ...TARGET_OPTIONS,
  sd: { type: 'string' },
  key: { type: 'string' },
  enc: { type: 'string' },
  mac: { type: 'string' },
  dek: { type: 'string' },
  kvn: { type: 'string' },
  level: { type: 'string' },
  trace: { type: 'boolean', short: 'd' },
};

export const GP_HELP = `${TARGET_HELP}
  --sd AID          security domain to select (default: the ISD)
  --key HEX         ENC, MAC and DEK key (default: the GP test key 404142434445464748494A4B4C4D4E4F)
  --enc HEX, --mac HEX, --dek HEX
                    the three keys one by one (all three together)
  --kvn HEX         key version number (default 00: the card's choice)
  --level HEX       SCP03 security level 01 (C-MAC), 03 (+C-DEC), 11 (+R-MAC), 13, 33 (+R-ENC); default 03
  -d, --trace       print every APDU on the wire
  -h, --help        show this help`;

interface Auth {
  keys: KeySet;
  kvn: number;
  level: number;
}

const LEVELS = [0x01, 0x03, 0x11, 0x13, 0x33];

function keysFrom(v: Values, prefix: '' | 'new-'): KeySet | undefined {
  const one = str(v, `${prefix}key`);
  const parts = (['enc', 'mac', 'dek'] as const).map((n) => [n, str(v, `${prefix}${n}`)] as const);
  const given = parts.filter(([, x]) => x !== undefined);
  if (one !== undefined && given.length) throw new UsageError(`give --${prefix}key or --${prefix}enc/--${prefix}mac/--${prefix}dek, not both`);
  if (one !== undefined) {
    const k = parseAesKey(`--${prefix}key`, one);
    return { enc: k, mac: k, dek: k };
  }
  if (!given.length) return undefined;
  const missing = parts.filter(([, x]) => x === undefined).map(([n]) => `--${prefix}${n}`);
  if (missing.length) throw new UsageError(`--${prefix}enc, --${prefix}mac and --${prefix}dek go together (missing ${missing.join(', ')})`);
  const [enc, mac, dek] = parts.map(([n, x]) => parseAesKey(`--${prefix}${n}`, x!));
  return { enc, mac, dek };
}

function authFrom(v: Values): Auth {
  const keys = keysFrom(v, '') ?? { enc: DEFAULT_TEST_KEY, mac: DEFAULT_TEST_KEY, dek: DEFAULT_TEST_KEY };
  const kvnText = str(v, 'kvn');
  const kvn = kvnText === undefined ? 0 : parseByte('--kvn', kvnText);
  const levelText = str(v, 'level');
  const level = levelText === undefined ? 0x03 : parseByte('--level', levelText);
  if (!LEVELS.includes(level)) throw new UsageError(`--level ${levelText} is not one of 01, 03, 11, 13, 33`);
  return { keys, kvn, level };
}

/** Opens the target, selects the SD and (unless `plain`) authenticates; always closes the target. */
async function withGp(v: Values, io: Io, plain: boolean, body: (gp: GpClient) => Promise<void>): Promise<number> {
  const auth = authFrom(v);
  const sdText = str(v, 'sd');
  const sd = sdText === undefined ? undefined : parseAid('--sd', sdText);
  const trace = flag(v, 'trace') ? (d: '>>' | '<<', a: Uint8Array) => io.out(traceLine(d, a)) : undefined;
  const target = await openCliTarget(v);
  try {
    const gp = await connectGp(target, { sd, trace });
    if (!plain) await gp.authenticate(auth);
    try {
      await body(gp);
    } catch (e) {
      await gp.end().catch(() => {}); // the command's own error is the one to report
      throw e;
    }
    await gp.end();
  } finally {
    await target.close();
  }
  return 0;
}

function privsOption(v: Values): number | undefined {
  const t = str(v, 'privs');
  if (t === undefined) return undefined;
  try {
    return parsePrivileges(t);
  } catch (e) {
    if (e instanceof GpDataError) throw new UsageError(`--privs: ${e.message}`);
    throw e;
  }
}

function privsText(p: number): string {
  const names = privilegeLabels(p);
  return `${hex(Uint8Array.of(p >> 16, (p >> 8) & 0xff, p & 0xff))}${names.length ? ` (${names.join(', ')})` : ''}`;
}

// ---------------------------------------------------------------------------------------------------------------

export async function gpList(v: Values, io: Io): Promise<number> {
  return withGp(v, io, false, async (gp) => {
    const l = await gp.list();
    for (const line of formatEntries([...l.isd, ...l.apps, ...l.loadFiles])) io.out(line);
  });
}

export async function gpInfo(v: Values, io: Io): Promise<number> {
  return withGp(v, io, true, async (gp) => {
    const i = await gp.info();
    io.out(`SD:        ${i.sd}`);
    if (i.iin) io.out(`IIN:       ${i.iin}`);
    if (i.cin) io.out(`CIN:       ${i.cin}`);
    if (i.kdd) io.out(`KDD:       ${i.kdd}`);
    if (i.cardData) {
      const parts: string[] = [];
      if (i.cardData.gpVersion) parts.push(`GlobalPlatform ${i.cardData.gpVersion}`);
      if (i.cardData.scp) parts.push(`SCP${String(i.cardData.scp.scp).padStart(2, '0')} i=${hex(Uint8Array.of(i.cardData.scp.i))}`);
      io.out(`card data: ${parts.join(', ') || i.cardData.oids.map((o) => o.oid).join(' ')}`);
    }
    if (i.keys) {
      const byKvn = new Map<number, string[]>();
      for (const k of i.keys) byKvn.set(k.kvn, [...(byKvn.get(k.kvn) ?? []), `${k.id} ${k.components.map((c) => keyTypeName(c.type, c.length)).join('+')}`]);
      for (const [kvn, keys] of byKvn) io.out(`key set:   KVN ${hex(Uint8Array.of(kvn))}: ${keys.join(', ')}`);
    }
    if (i.sequenceCounter !== undefined) io.out(`sequence counter: ${i.sequenceCounter}`);
    if (i.resources) {
      const r = i.resources;
      const parts: string[] = [];
      if (r.applications !== undefined) parts.push(`${r.applications} application${r.applications === 1 ? '' : 's'}`);
      if (r.freeNonVolatile !== undefined) parts.push(`${r.freeNonVolatile} bytes persistent free`);
      if (r.freeVolatile !== undefined) parts.push(`${r.freeVolatile} bytes transient`);
      io.out(`resources: ${parts.join(', ')}`);
    }
    if (i.cplc) {
      io.out('CPLC:');
      for (const f of i.cplc) io.out(`  ${f.name.padEnd(34)}${f.value}${f.date ? ` (${f.date})` : ''}`);
    }
    if (i.missing.length) io.out(`not given by the card: ${i.missing.join(', ')}`);
  });
}

export async function gpPutKey(v: Values, io: Io): Promise<number> {
  const keys = keysFrom(v, 'new-');
  if (!keys) throw new UsageError('missing the new keys: --new-key HEX, or --new-enc, --new-mac and --new-dek');
  const kvnText = str(v, 'new-kvn');
  if (kvnText === undefined) throw new UsageError('missing --new-kvn HEX (the key version of the new key set)');
  const newKvn = parseByte('--new-kvn', kvnText, 1, 0x7f);
  const replaceText = str(v, 'replace');
  const replaceKvn = replaceText === undefined ? 0 : parseByte('--replace', replaceText, 1, 0x7f);
  return withGp(v, io, false, async (gp) => {
    const r = await gp.putKey({ keys, newKvn, replaceKvn });
    const kvn = hex(Uint8Array.of(r.kvn));
    const kcvs = `KCV ENC ${hex(r.kcvs[0])}, MAC ${hex(r.kcvs[1])}, DEK ${hex(r.kcvs[2])}`;
    io.out(replaceKvn ? `key set ${hex(Uint8Array.of(replaceKvn))} replaced by key set ${kvn} (${kcvs})` : `key set ${kvn} added (${kcvs})`);
  });
}

export async function gpDelete(v: Values, positionals: string[], io: Io): Promise<number> {
  const aids = positionals.map((p, i) => parseAid(positionals.length > 1 ? `AID ${i + 1}` : 'AID', p));
  const related = flag(v, 'related');
  return withGp(v, io, false, async (gp) => {
    for (const aid of aids) {
      await gp.deleteObject(aid, related);
      io.out(`deleted ${aid}${related ? ' and its related objects' : ''}`);
    }
  });
}

export async function gpInstall(v: Values, io: Io): Promise<number> {
  const domain = str(v, 'domain');
  const selectable = str(v, 'make-selectable');
  const pkg = str(v, 'package');
  const modes = [domain !== undefined, selectable !== undefined, pkg !== undefined || str(v, 'applet') !== undefined].filter(Boolean).length;
  if (modes !== 1) throw new UsageError('give one of --package/--applet, --domain or --make-selectable');
  const privileges = privsOption(v);
  const paramsText = str(v, 'params');
  const params = paramsText === undefined ? undefined : parseHex('--params', paramsText);
  const scpText = str(v, 'scp-i');
  const scpI = scpText === undefined ? undefined : parseByte('--scp-i', scpText);
  if (scpI !== undefined && domain === undefined) throw new UsageError('--scp-i goes with --domain');
  if (domain !== undefined) {
    const aid = parseAid('--domain', domain);
    if (params) throw new UsageError('--params does not go with --domain (use --scp-i)');
    return withGp(v, io, false, async (gp) => {
      await gp.createDomain({ aid, privileges, scpI });
      io.out(`created security domain ${aid}, privileges ${privsText((privileges ?? 0) | 0x800000)}`);
    });
  }
  if (selectable !== undefined) {
    const aid = parseAid('--make-selectable', selectable);
    return withGp(v, io, false, async (gp) => {
      await gp.makeSelectable(aid, privileges);
      io.out(`${aid} is selectable`);
    });
  }
  if (pkg === undefined) throw new UsageError('missing --package AID (the load file)');
  const appletText = str(v, 'applet');
  if (appletText === undefined) throw new UsageError('missing --applet AID (the module in the load file)');
  const elf = parseAid('--package', pkg);
  const module = parseAid('--applet', appletText);
  const aidText = str(v, 'aid');
  const aid = aidText === undefined ? module : parseAid('--aid', aidText);
  const only = flag(v, 'install-only');
  return withGp(v, io, false, async (gp) => {
    await gp.install({ elf, module, aid, privileges, params, selectable: !only });
    io.out(`installed ${aid} (module ${module} of ${elf})${only ? '' : ', selectable'}${privileges ? `, privileges ${privsText(privileges)}` : ''}`);
  });
}

function readCap(path: string): CapFile {
  let bytes: Uint8Array;
  try {
    bytes = readFileSync(path);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new Error(code === 'ENOENT' ? `CAP file ${path} does not exist` : `cannot read CAP file ${path}: ${(e as Error).message}`);
  }
  try {
    return readCapFile(bytes);
  } catch (e) {
    throw new Error(`${path}: ${(e as Error).message}`);
  }
}

export async function gpLoad(v: Values, positionals: string[], io: Io): Promise<number> {
  const opts: LoadOptions = {};
  const bs = str(v, 'block-size');
  if (bs !== undefined) opts.blockSize = parseInteger('--block-size', bs, 1, 32512);
  const forSd = str(v, 'for-sd');
  if (forSd !== undefined) opts.sd = parseAid('--for-sd', forSd);
  const hash = str(v, 'hash');
  if (hash !== undefined) {
    if (hash !== 'sha1' && hash !== 'sha256' && hash !== 'sha384' && hash !== 'sha512')
      throw new UsageError(`--hash ${hash} is not one of sha1, sha256, sha384, sha512`);
    opts.hash = hash;
  }
  const installAll = flag(v, 'install');
  const privileges = privsOption(v);
  const paramsText = str(v, 'params');
  const params = paramsText === undefined ? undefined : parseHex('--params', paramsText);
  if (!installAll && (privileges !== undefined || params !== undefined)) throw new UsageError('--privs and --params go with --install');
  const cap = readCap(positionals[0]);
  return withGp(v, io, false, async (gp) => {
    const r = await gp.load(cap, opts);
    io.out(`loaded ${r.elf} v${r.version.join('.')}: ${r.bytes} bytes in ${r.blocks} block${r.blocks === 1 ? '' : 's'}${r.modules.length ? `, applets ${r.modules.join(' ')}` : ''}`);
    if (!installAll) return;
    if (!r.modules.length) throw new Error(`${r.elf} has no applets to install`);
    for (const m of r.modules) {
      await gp.install({ elf: r.elf, module: m, aid: m, privileges, params });
      io.out(`installed ${m}, selectable`);
    }
  });
}

const CARD_STATES: Record<string, number> = { initialized: 0x07, secured: 0x0f, 'card-locked': 0x7f, locked: 0x7f, terminated: 0xff };
const APP_STATES: Record<string, number> = { lock: 0x80, unlock: 0x00, selectable: 0x07, personalized: 0x0f };

function stateArg(text: string, names: Record<string, number>, what: string): number {
  const named = names[text.toLowerCase()];
  if (named !== undefined) return named;
  if (/^(?:0x)?[0-9a-f]{2}$/i.test(text)) return parseByte(what, text);
  throw new UsageError(`${what} "${text}" is not one of ${Object.keys(names).join(', ')} or a hex byte`);
}

export async function gpSetStatus(v: Values, positionals: string[], io: Io): Promise<number> {
  const [kind, ...rest] = positionals;
  let target: StatusTarget;
  let aid: string | undefined;
  let state: number;
  if (kind === 'card') {
    if (rest.length !== 1) throw new UsageError('usage: gp set-status card STATE');
    target = 'card';
    state = stateArg(rest[0], CARD_STATES, 'card state');
  } else if (kind === 'app' || kind === 'domain') {
    if (rest.length !== 2) throw new UsageError(`usage: gp set-status ${kind} AID STATE`);
    target = kind;
    aid = parseAid('AID', rest[0]);
    state = stateArg(rest[1], APP_STATES, 'state');
  } else {
    throw new UsageError(`set-status applies to card, app or domain, not "${kind}"`);
  }
  return withGp(v, io, false, async (gp) => {
    await gp.setStatus(target, state, aid);
    const s = hex(Uint8Array.of(state));
    if (target === 'card') io.out(`card life cycle set to ${cardLifeName(state)} (${s})`);
    else io.out(`${aid}${target === 'domain' ? ' and its applications' : ''}: state ${s} set`);
  });
}
