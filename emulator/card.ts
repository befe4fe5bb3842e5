// The chip: power, logical channels, SELECT, GET RESPONSE and dispatch to security domains or applets (ISO/IEC 7816-4).
import type { CommandApdu, ResponseApdu } from './apdu.ts';
import { decodeCla, encodeResponse, parseCommand } from './apdu.ts';
import { concat, fromHex, hex } from './bytes.ts';
import { IsoError, SW } from './iso.ts';
import type { ChipStore } from './store.ts';
import { openFileStore, openMemoryStore, PowerLoss } from './store.ts';
import type { ChipProfile } from './profile.ts';
import { DEFAULT_PROFILE, profileByName } from './profile.ts';
import type { AppletContext, AppletRuntime, NativePackage } from './applet.ts';
import { nativeRuntime } from './applet.ts';
import type { VmRuntime } from './vm/runtime.ts';
import { createVmRuntime } from './vm/runtime.ts';
import type { CardEnv, ChannelState } from './gp/env.ts';
import { freshChannel, freshSdState } from './gp/env.ts';
import type { AppEntry, Model } from './gp/registry.ts';
import { createChipState, findApp, hasChip, isSelectableState, isdAid, loadModel, storedProfileName } from './gp/registry.ts';
import { CardLife, Priv } from './gp/constants.ts';
import { processSd } from './gp/security-domain.ts';
import { cardRecognitionData } from './gp/get-data.ts';
import { tlv } from './tlv.ts';
import { uint } from './bytes.ts';

export interface Chip {
  readonly atr: Uint8Array;
  readonly powered: boolean;
  readonly profile: ChipProfile;
  readonly store: ChipStore;
  /** Cold reset: clears all volatile state; returns the ATR. */
  powerUp(): Uint8Array;
  powerDown(): void;
  /** Warm reset. */
  reset(): Uint8Array;
  /** One command APDU in, one response APDU out. Malformed input gets its status word; only a power cut throws (PowerLoss). */
  transmit(apdu: Uint8Array): Uint8Array;
  /** Read-only snapshot of the registry, for tools and tests. */
  model(): Model;
  close(): void;
}

export interface ChipOptions {
  /** State file; absent = an in-memory chip. */
  state?: string;
  /** Create the state when the file holds no chip (default true). */
  create?: boolean;
  profile?: string | ChipProfile;
  /** Applet runtimes (the VM; test applets). Native packages are added to the registry as load files. */
  runtimes?: AppletRuntime[];
  nativePackages?: NativePackage[];
  /** Transport behaviour for responses without Le: 'T=1' returns the data, 'T=0' answers 61xx (ISO 7816-3 §10.3.? case 4). */
  protocol?: 'T=0' | 'T=1';
  /** Durable fsync after each commit (default true for a state file). */
  fsync?: boolean;
  log?: (message: string) => void;
  /** An already open store (tests of tearing). */
  store?: ChipStore;
  /** The Java Card VM runtime for CAP load files (default on). */
  vm?: boolean;
  /** Receives the VM runtime (cycle reports, bytecode trace). */
  onVm?: (vm: VmRuntime) => void;
}

/** A stored chip keeps the profile it was made with; asking for another one is an error, not a silent switch. */
function chipProfile(store: ChipStore, wanted: string | ChipProfile | undefined): ChipProfile {
  const asked = typeof wanted === 'string' ? profileByName(wanted) : wanted;
  const stored = hasChip(store) ? storedProfileName(store) : undefined;
  if (stored === undefined) return asked ?? DEFAULT_PROFILE;
  if (asked && asked.name !== stored) throw new Error(`the chip was made with profile "${stored}", not "${asked.name}"`);
  return asked ?? profileByName(stored);
}

export function openChip(opts: ChipOptions = {}): Chip {
  const store = opts.store ?? (opts.state ? openFileStore(opts.state, { create: opts.create !== false, fsync: opts.fsync ?? true }) : openMemoryStore());
  let profile: ChipProfile;
  try {
    profile = chipProfile(store, opts.profile);
  } catch (e) {
    if (!opts.store) store.close();
    throw e;
  }
  if (!hasChip(store)) {
    if (opts.create === false) {
      store.close();
      throw new Error(`${opts.state ?? 'store'} holds no chip (create one with "jpki-se chip new")`);
    }
    createChipState(store, profile);
  }
  const natives = nativeRuntime(opts.nativePackages ?? []);
  const log = opts.log ?? (() => {});
  const t0 = opts.protocol === 'T=0';
  let model = loadModel(store);
  // The VM comes last: it executes every load file that no other runtime claims.
  const vm = opts.vm === false ? undefined : createVmRuntime({ store, profile, model: () => model, log, cardEnv: (ch) => env(ch) });
  if (vm) opts.onVm?.(vm);
  const runtimes: AppletRuntime[] = [natives, ...(opts.runtimes ?? []), ...(vm ? [vm] : [])];
  registerNativePackages(store, model, opts.nativePackages ?? []);
  let powered = false;
  let channels: ChannelState[] = [];

  const runtimeFor = (elf: string) => runtimes.find((r) => r.handles(elf));
  const env = (channel: number): CardEnv => ({
    store,
    profile,
    model,
    channels,
    channel,
    runtimeFor,
    reload: () => {
      model = loadModel(store);
    },
    log,
  });

  function powerUp(): Uint8Array {
    if (!store.powered) store.powerUp();
    model = loadModel(store);
    natives.restore(model.registry.apps.filter((a) => natives.handles(a.elf)));
    for (const r of runtimes) r.reset?.();
    channels = Array.from({ length: profile.logicalChannels }, (_, i) => freshChannel(i === 0));
    powered = true;
    selectDefault(0);
    return profile.atr;
  }

  /** The default application (Card Reset privilege holder) is implicitly selected on the basic channel (GPCS §6.6.1.4?). */
  function selectDefault(ch: number): void {
    const aid = model.card.defaultSelected;
    const app = findApp(model, aid) ?? findApp(model, isdAid(model));
    if (!app || !mayBeSelected(app)) return;
    if (!app.isSd) {
      const rt = runtimeFor(app.elf);
      if (!rt || !rt.select(app.aid, { channel: ch, selecting: true })) return;
    }
    channels[ch].selected = app.aid;
  }

  function mayBeSelected(app: AppEntry): boolean {
    if (!isSelectableState(app)) return false;
    const life = model.card.lifeCycle;
    if (life === CardLife.TERMINATED || life === CardLife.CARD_LOCKED)
      return app.aid === isdAid(model) || (app.privileges & Priv.FINAL_APPLICATION) !== 0;
    return true;
  }

  function deselect(ch: number): void {
    const c = channels[ch];
    const aid = c.selected;
    c.selected = null;
    c.scp = null;
    c.pendingAuth = null;
    c.chain = null;
    c.sd = freshSdState();
    if (!aid) return;
    const app = findApp(model, aid);
    if (app && !app.isSd) runtimeFor(app.elf)?.deselect(aid, { channel: ch, selecting: false });
  }

  function transmit(raw: Uint8Array): Uint8Array {
    if (!powered) powerUp();
    try {
      const r = process(raw);
      return encodeResponse(r.data, r.sw);
    } catch (e) {
      if (e instanceof PowerLoss) {
        powered = false;
        throw e;
      }
      if (e instanceof IsoError) {
        log(e.message);
        return encodeResponse(new Uint8Array(0), e.sw);
      }
      // A defect, not the host's fault: answer 6F00 and keep the chip usable.
      log(`internal error: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`);
      if (store.inTransaction) store.abort();
      model = loadModel(store);
      return encodeResponse(new Uint8Array(0), SW.UNKNOWN);
    }
  }

  function process(raw: Uint8Array): ResponseApdu {
    const cmd = parseCommand(raw);
    const cla = decodeCla(cmd.cla);
    if (!cla) throw new IsoError(SW.CLA_NOT_SUPPORTED, `class ${cmd.cla.toString(16)}`);
    const chIdx = cla.channel;
    if (chIdx >= channels.length || !channels[chIdx].open)
      throw new IsoError(SW.LOGICAL_CHANNEL_NOT_SUPPORTED, `logical channel ${chIdx} is not open`);
    const ch = channels[chIdx];
    if (cla.interindustry && cmd.ins === 0xc0) return getResponse(ch, cmd);
    ch.response = null;
    if (cla.interindustry && cmd.ins === 0x70) return manageChannel(chIdx, cmd);
    if (cla.interindustry && cmd.ins === 0xa4 && cmd.p1 === 0x04) {
      const r = selectByName(chIdx, cmd);
      if (r) return finish(ch, cmd, r);
    }
    return finish(ch, cmd, dispatch(chIdx, cmd));
  }

  function dispatch(chIdx: number, cmd: CommandApdu, selecting = false): ResponseApdu {
    const ch = channels[chIdx];
    if (!ch.selected) throw new IsoError(SW.APPLET_SELECT_FAILED, 'no application selected on this channel');
    const app = findApp(model, ch.selected);
    if (!app) throw new IsoError(SW.APPLET_SELECT_FAILED, 'the selected application was deleted');
    if (app.isSd) return processSd(env(chIdx), app, cmd);
    const rt = runtimeFor(app.elf);
    if (!rt) throw new IsoError(SW.APPLET_SELECT_FAILED, `no runtime executes ${app.elf}`);
    const ctx: AppletContext = { channel: chIdx, selecting };
    return rt.process(app.aid, cmd, ctx);
  }

  /** Shapes the response to Ne: 61xx and GET RESPONSE for what does not fit (ISO 7816-4 §5.3.4, §7.6.1). */
  function finish(ch: ChannelState, cmd: CommandApdu, r: ResponseApdu): ResponseApdu {
    const ok = r.sw === SW.OK;
    if (!r.data.length || !ok) return r;
    const limit = cmd.ne === 0 ? (t0 ? 0 : Infinity) : cmd.ne;
    if (r.data.length <= limit) return r;
    ch.response = r.data.slice(limit);
    return { data: r.data.slice(0, limit), sw: 0x6100 | Math.min(ch.response.length, 256) % 256 };
  }

  function getResponse(ch: ChannelState, cmd: CommandApdu): ResponseApdu {
    const pending = ch.response;
    ch.response = null;
    if (cmd.p1 !== 0 || cmd.p2 !== 0) throw new IsoError(SW.INCORRECT_P1P2, 'GET RESPONSE takes P1-P2 0000');
    if (!pending) throw new IsoError(SW.CONDITIONS_NOT_SATISFIED, 'no response data waiting');
    if (cmd.data.length) throw new IsoError(SW.WRONG_LENGTH, 'GET RESPONSE has no data field');
    const n = cmd.ne || pending.length;
    if (n >= pending.length) return { data: pending, sw: SW.OK };
    ch.response = pending.slice(n);
    return { data: pending.slice(0, n), sw: 0x6100 | Math.min(ch.response.length, 256) % 256 };
  }

  /** MANAGE CHANNEL (ISO 7816-4 §7.1.2): P1 00 open (P2 00 = card assigns), P1 80 close P2. */
  function manageChannel(from: number, cmd: CommandApdu): ResponseApdu {
    if (cmd.data.length) throw new IsoError(SW.WRONG_LENGTH, 'MANAGE CHANNEL has no data field');
    if (cmd.p1 === 0x80) {
      const target = cmd.p2 === 0 ? from : cmd.p2;
      if (target === 0) throw new IsoError(SW.INCORRECT_P1P2, 'the basic channel cannot be closed');
      if (target >= channels.length) throw new IsoError(SW.INCORRECT_P1P2, `channel ${target} does not exist`);
      if (!channels[target].open) throw new IsoError(SW.LOGICAL_CHANNEL_NOT_SUPPORTED, `channel ${target} is not open`);
      deselect(target);
      channels[target] = freshChannel(false);
      return { data: new Uint8Array(0), sw: SW.OK };
    }
    if (cmd.p1 !== 0x00) throw new IsoError(SW.INCORRECT_P1P2, `MANAGE CHANNEL P1 ${cmd.p1.toString(16)}`);
    let target = cmd.p2;
    if (target === 0) {
      target = channels.findIndex((c, i) => i > 0 && !c.open);
      if (target < 0) throw new IsoError(SW.FUNC_NOT_SUPPORTED, 'no logical channel free');
    } else {
      if (target >= channels.length) throw new IsoError(SW.INCORRECT_P1P2, `channel ${target} does not exist`);
      if (channels[target].open) throw new IsoError(SW.CONDITIONS_NOT_SATISFIED, `channel ${target} is already open`);
    }
    channels[target] = freshChannel(true);
    // From the basic channel the default application is selected; from another, the same application (ISO 7816-4 §5.1.1.2? / GPCS §11.1.5).
    const origin = channels[from].selected;
    if (from === 0) selectDefault(target);
    else if (origin) trySelect(target, findApp(model, origin)!);
    return { data: cmd.p2 === 0 ? Uint8Array.of(target) : new Uint8Array(0), sw: SW.OK };
  }

  function selectedElsewhere(aid: string, except: number): boolean {
    return channels.some((c, i) => i !== except && c.open && c.selected === aid);
  }

  function trySelect(chIdx: number, app: AppEntry): boolean {
    if (!mayBeSelected(app)) return false;
    if (!app.isSd) {
      const rt = runtimeFor(app.elf);
      if (!rt || !rt.select(app.aid, { channel: chIdx, selecting: true })) return false;
    }
    channels[chIdx].selected = app.aid;
    return true;
  }

  /** SELECT by DF name (ISO 7816-4 §7.1.1; GPCS §11.9): partial AID, first/next occurrence; unmatched → current app. */
  function selectByName(chIdx: number, cmd: CommandApdu): ResponseApdu | null {
    const ch = channels[chIdx];
    if (cmd.p2 & 0xf0) throw new IsoError(SW.INCORRECT_P1P2, `SELECT P2 ${cmd.p2.toString(16)}`);
    const occurrence = cmd.p2 & 0x03;
    if (occurrence === 0x01 || occurrence === 0x03) throw new IsoError(SW.INCORRECT_P1P2, 'SELECT last/previous occurrence not supported');
    const life = model.card.lifeCycle;
    const prefix = cmd.data.length ? hex(cmd.data) : isdAid(model);
    const all = model.registry.apps.filter((a) => a.aid.startsWith(prefix) && cmd.data.length <= 16);
    let candidates = all.filter((a) => mayBeSelected(a));
    if (occurrence === 0x02 && ch.selected) {
      const at = candidates.findIndex((a) => a.aid === ch.selected);
      candidates = at >= 0 ? candidates.slice(at + 1) : candidates;
    }
    const target = candidates[0];
    if (!target) {
      if (all.length && (life === CardLife.CARD_LOCKED || life === CardLife.TERMINATED))
        throw new IsoError(SW.FUNC_NOT_SUPPORTED, 'card is locked: only the ISD can be selected');
      if (all.length && all.some((a) => a.lifeCycle & 0x80)) throw new IsoError(SW.FILE_NOT_FOUND, 'application is locked');
      // No match: the currently selected application gets the SELECT (JCRE 3.0.5 §4.? ; GP SDs answer 6A82).
      if (ch.selected && !findApp(model, ch.selected)?.isSd) return null;
      throw new IsoError(SW.FILE_NOT_FOUND, `no application matches ${hex(cmd.data)}`);
    }
    const multi = target.isSd || runtimeMultiSelectable(target);
    if (!multi && selectedElsewhere(target.aid, chIdx))
      throw new IsoError(SW.CONDITIONS_NOT_SATISFIED, `${target.aid} is selected on another channel`);
    deselect(chIdx);
    if (!trySelect(chIdx, target)) throw new IsoError(SW.APPLET_SELECT_FAILED, `${target.aid} refused selection`);
    if (!target.isSd) return dispatch(chIdx, cmd, true);
    const fci = (cmd.p2 & 0x0c) === 0x0c ? new Uint8Array(0) : sdFci(target);
    const locked = life === CardLife.CARD_LOCKED;
    return { data: fci, sw: locked ? SW.WARN_SELECTED_LOCKED : SW.OK };
  }

  function runtimeMultiSelectable(app: AppEntry): boolean {
    if (natives.handles(app.elf)) return natives.instance(app.aid)?.multiSelectable ?? false;
    return runtimeFor(app.elf)?.multiSelectable?.(app.aid) ?? false;
  }

  /** FCI of a security domain (GPCS §11.9.3.1, Table 11-75?): 6F { 84 AID, A5 { 73 recognition data, 9F6E, 9F65 } }. */
  function sdFci(sd: AppEntry): Uint8Array {
    const i = sd.scpI ?? profile.scpI;
    const rec = cardRecognitionData(i);
    return tlv(
      0x6f,
      tlv(0x84, fromHex(sd.aid)),
      tlv(0xa5, rec, tlv(0x9f6e, concat(profile.cplc.subarray(0, 2), profile.cplc.subarray(2, 8))), tlv(0x9f65, uint(profile.maxCommandData, 2))),
    );
  }

  return {
    get atr() {
      return profile.atr;
    },
    get powered() {
      return powered;
    },
    profile,
    store,
    powerUp,
    powerDown() {
      for (let i = 0; i < channels.length; i++) if (channels[i].open) deselect(i);
      powered = false;
    },
    reset: powerUp,
    transmit,
    model: () => model,
    close() {
      powered = false;
      store.close();
    },
  };
}

/** Native packages appear in the registry as load files of the chip image. */
function registerNativePackages(store: ChipStore, model: Model, packages: NativePackage[]): void {
  const missing = packages.filter((p) => !model.registry.elfs.some((e) => e.aid === p.aid));
  if (!missing.length) return;
  const isd = isdAid(model);
  for (const p of missing)
    model.registry.elfs.push({
      aid: p.aid,
      lifeCycle: 0x01,
      sd: isd,
      version: p.version,
      modules: p.modules.map((m) => m.aid),
      imports: [],
      native: true,
      size: 0,
    });
  store.begin();
  store.putJson('gp/registry', model.registry);
  store.commit();
}
