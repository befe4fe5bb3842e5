// jpki-se chip new | info: create a chip state file and show what it holds (read offline, without APDUs).
import { existsSync, readFileSync, rmSync, statSync } from 'node:fs';
import { openChip } from '../emulator/card.ts';
import type { Chip } from '../emulator/card.ts';
import { fromHex, hex } from '../emulator/bytes.ts';
import { DEFAULT_PROFILE, profileByName } from '../emulator/profile.ts';
import type { ChipProfile } from '../emulator/profile.ts';
import { kcv } from '../emulator/scp03.ts';
import { appLifeName, cardLifeName } from '../emulator/gp/constants.ts';
import { usedPersistent } from '../emulator/gp/registry.ts';
import type { Model } from '../emulator/gp/registry.ts';
import { keyTypeName } from '../emulator/host/gp-data.ts';
import { JPKI_AID, JPKI_APSD_AID } from '../emulator/host/jpki-perso.ts';
import { TEXT_AP_AID } from '../emulator/host/textap-perso.ts';
import { ARA_M_AID } from '../emulator/device/ace.ts';
import type { VmRuntime } from '../emulator/vm/runtime.ts';
import type { Values } from './args.ts';
import { UsageError, flag, str } from './args.ts';
import type { Io } from './io.ts';
import { missingState } from './target.ts';

export function requireState(v: Values): string {
  const state = str(v, 'state');
  if (state === undefined) throw new UsageError('missing --state FILE');
  if (!state) throw new UsageError('--state needs a file name');
  return state;
}

/** The --profile option; absent = the profile stored in the chip, or the default for a new chip. */
export function profileOption(v: Values): ChipProfile | undefined {
  const name = str(v, 'profile');
  if (name === undefined) return undefined;
  try {
    return profileByName(name);
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
}

/** A lock file naming a live process other than this one: the chip is in use. */
function liveLockOwner(path: string): number | undefined {
  const lock = `${path}.lock`;
  if (!existsSync(lock)) return undefined;
  const pid = Number.parseInt(readFileSync(lock, 'utf8'), 10);
  if (!Number.isInteger(pid) || pid === process.pid) return undefined;
  try {
    process.kill(pid, 0);
    return pid;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM' ? pid : undefined;
  }
}

/** The project's own applications, named in the registry table (chip new --personalise installs them). */
const KNOWN_APPS: Record<string, string> = {
  [JPKI_AID]: 'JPKI AP',
  [JPKI_APSD_AID]: 'JPKI APSD',
  [hex(ARA_M_AID)]: 'ARA-M',
  [TEXT_AP_AID]: 'text AP (券面入力補助AP)',
};

export function summary(chip: Chip): string[] {
  const m = chip.model();
  const isd = m.registry.apps[0];
  const sets = m.keys.get(isd.aid) ?? [];
  return [
    `profile:  ${chip.profile.name}`,
    `ATR:      ${hex(chip.atr)}`,
    `card:     ${cardLifeName(m.card.lifeCycle)} (${h2(m.card.lifeCycle)})`,
    `ISD:      ${isd.aid}, key set${sets.length === 1 ? '' : 's'} ${sets.map((s) => h2(s.kvn)).join(', ') || 'none'}`,
  ];
}

/** Where `chip new --personalise phone` keeps the phone's APSD keys and app certificate: next to the state file. */
export const phoneFileOf = (state: string): string => `${state}.phone.json`;

/** An existing FILE is replaced only with --force, and never while a live process has it open. */
export function checkReplace(state: string, force: boolean): void {
  if (!existsSync(state)) return;
  if (!force) throw new Error(`${state} already exists (use --force to replace it)`);
  const owner = liveLockOwner(state);
  if (owner !== undefined) throw new Error(`${state} is in use by process ${owner}; stop it before replacing the chip`);
}

/** A replaced chip's phone file describes keys that no longer exist: it goes with the chip. Returns what was removed. */
export function dropPhoneFile(state: string): string | undefined {
  const file = phoneFileOf(state);
  if (!existsSync(file)) return undefined;
  rmSync(file);
  return file;
}

/** The summary lines of a new chip, indented: profile, ATR, life cycle, ISD keys. */
export function newChipLines(chip: Chip): string[] {
  const lines = summary(chip).map((l) => `  ${l}`);
  if (hex(chip.profile.initialKey) === '404142434445464748494A4B4C4D4E4F')
    lines.push(`  keys:     ENC = MAC = DEK = ${hex(chip.profile.initialKey)} (the GlobalPlatform test key)`);
  return lines;
}

export function chipNew(v: Values, io: Io): number {
  const state = requireState(v);
  const profile = profileOption(v) ?? DEFAULT_PROFILE;
  checkReplace(state, flag(v, 'force'));
  const replaced = existsSync(state);
  if (replaced) {
    rmSync(state);
    rmSync(`${state}.lock`, { force: true });
  }
  const dropped = replaced ? dropPhoneFile(state) : undefined;
  const chip = openChip({ state, profile });
  try {
    io.out(`created ${state}`);
    for (const line of newChipLines(chip)) io.out(line);
    if (dropped) io.out(`removed ${dropped} (the keys of the chip replaced)`);
  } finally {
    chip.close();
  }
  return 0;
}

export function chipInfo(v: Values, io: Io): number {
  const state = requireState(v);
  if (!existsSync(state)) throw missingState(state);
  let vm: VmRuntime | undefined;
  const chip = openChip({ state, create: false, onVm: (rt) => (vm = rt) });
  try {
    const m = chip.model();
    const p = chip.profile;
    io.out(`state:    ${state} (${statSync(state).size} bytes)`);
    for (const line of summary(chip)) io.out(line);
    io.out(`IIN:      ${m.card.iin}`);
    io.out(`CIN:      ${m.card.cin}`);
    io.out(`default:  ${m.card.defaultSelected} (selected at reset)`);
    const used = usedPersistent(m);
    io.out(`memory:   ${used} of ${p.persistentBytes} bytes of persistent memory used by load files (${p.persistentBytes - used} free)`);
    const heap = vm ? vmMemoryLines(vm, m) : { lines: [], rows: [] };
    for (const line of heap.lines) io.out(line);
    const heapRows = heap.rows;
    io.out('');
    io.out('registry:');
    const rows: string[][] = [['kind', 'AID', 'state', 'privileges', 'security domain', 'details']];
    for (const a of m.registry.apps) {
      const kind = a === m.registry.apps[0] ? 'ISD' : a.isSd ? 'SD' : 'APP';
      const details = [...(KNOWN_APPS[a.aid] ? [KNOWN_APPS[a.aid]] : []), `from ${a.elf}`];
      if (a.params) details.push(`params ${a.params}`);
      if (a.scpI !== undefined) details.push(`SCP03 i=${h2(a.scpI)}`);
      rows.push([kind, a.aid, appLifeName(a.lifeCycle, a.isSd), hex(privBytes(a.privileges)), a.sd === a.aid ? '-' : a.sd, details.join(', ')]);
    }
    for (const e of m.registry.elfs) {
      const details = [`v${e.version.join('.')}`];
      if (e.native) details.push('in the chip image');
      else details.push(`${e.size} bytes`);
      if (e.modules.length) details.push(`modules ${e.modules.join(' ')}`);
      rows.push(['PKG', e.aid, e.lifeCycle === 0x01 ? 'LOADED' : h2(e.lifeCycle), '', e.sd, details.join(', ')]);
    }
    for (const line of table(rows)) io.out(`  ${line}`);
    if (heapRows.length) {
      io.out('');
      io.out('Java Card heap by context (objects and bytes each context owns; JCRE = APDU buffer, system objects):');
      for (const line of table(heapRows)) io.out(`  ${line}`);
    }
    io.out('');
    io.out('key sets:');
    const keyRows: string[][] = [['security domain', 'KVN', 'seq', 'keys (id: type, KCV)']];
    for (const [sd, sets] of m.keys)
      for (const s of sets)
        keyRows.push([
          sd,
          h2(s.kvn),
          String(s.seq),
          s.keys.map((k) => `${k.id}: ${keyTypeName(k.type, k.value.length / 2)} ${k.type === 0x88 ? hex(kcv(fromHex(k.value))) : ''}`.trim()).join('; '),
        ]);
    for (const line of table(keyRows)) io.out(`  ${line}`);
  } finally {
    chip.close();
  }
  return 0;
}

/**
 * The VM's memory as the applets see it: the heap summary lines and the per-context table rows. The VM is powered up
 * for this (load files linked, heap image read) without powering the chip, so no applet code runs.
 */
function vmMemoryLines(vm: VmRuntime, m: Model): { lines: string[]; rows: string[][] } {
  let u;
  try {
    u = vm.memoryUse(); // powers the VM up on first use
  } catch (e) {
    return { lines: [`heap:     unreadable: ${(e as Error).message}`], rows: [] };
  }
  const lines = [
    `heap:     ${u.heapBytes} bytes of persistent memory used by ${u.objects} object${u.objects === 1 ? '' : 's'}, ${u.availableBytes} available (JCSystem.getAvailableMemory)`,
    `RAM:      CLEAR_ON_RESET ${u.clearOnReset.used} of ${u.clearOnReset.size} bytes used, CLEAR_ON_DESELECT ${u.clearOnDeselect.used} of ${u.clearOnDeselect.size} bytes used`,
  ];
  const byContext = new Map<number, { elf: string; applets: string[] }>();
  for (const e of m.registry.elfs) {
    const unit = e.native ? undefined : vm.unit(e.aid);
    if (!unit || unit.library) continue;
    byContext.set(unit.pkg.context, { elf: e.aid, applets: [] });
  }
  for (const a of m.registry.apps) {
    const ctx = vm.unit(a.elf)?.pkg.context;
    if (ctx !== undefined) byContext.get(ctx)?.applets.push(a.aid);
  }
  const rows: string[][] = [['context', 'package', 'applet instances', 'objects', 'persistent', 'transient']];
  const contexts = [...new Set([0, ...byContext.keys(), ...u.byContext.keys()])].sort((a, b) => a - b);
  for (const ctx of contexts) {
    const c = u.byContext.get(ctx) ?? { objects: 0, persistentBytes: 0, transientBytes: 0 };
    const owner = byContext.get(ctx);
    rows.push([
      ctx === 0 ? '0 (JCRE)' : String(ctx),
      owner?.elf ?? '-',
      owner ? owner.applets.join(' ') || 'none' : '-',
      String(c.objects),
      String(c.persistentBytes),
      String(c.transientBytes),
    ]);
  }
  return { lines, rows };
}

function privBytes(p: number): Uint8Array {
  return Uint8Array.of(p >> 16, (p >> 8) & 0xff, p & 0xff);
}

/** Left-aligned columns, two spaces apart; trailing blanks trimmed. */
export function table(rows: string[][]): string[] {
  const widths = rows[0].map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)));
  return rows.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]))).join('  ').trimEnd());
}

function h2(n: number): string {
  return n.toString(16).toUpperCase().padStart(2, '0');
}
