// The JCRE for CAP load files (JCRE 3.0.5): the AppletRuntime the card dispatches to. It links load files at LOAD,
// creates applet instances with their static install method, runs select/deselect/process in the applet's context,
// maps uncaught exceptions to status words, keeps applet instances as heap roots (they survive power cycles), clears
// transient memory at deselect and reset, and makes each command's writes durable before the response leaves.
import { randomBytes } from 'node:crypto';
import type { CommandApdu, ResponseApdu } from '../apdu.ts';
import type { AppletContext, AppletRuntime, InstallRequest } from '../applet.ts';
import { concat, fromHex, hex } from '../bytes.ts';
import { IsoError, SW, isValidSw } from '../iso.ts';
import type { ChipProfile } from '../profile.ts';
import type { ChipStore } from '../store.ts';
import { PowerLoss } from '../store.ts';
import { CapError, parseLoadFileDataBlock } from '../cap-reader.ts';
import type { Model } from '../gp/registry.ts';
import type { CardEnv } from '../gp/env.ts';
import type { SecureChannels } from './secure-channel.ts';
import { createSecureChannelService } from './secure-channel.ts';
import { K_LOAD_FILE, loadModel, saveCard, saveRegistry } from '../gp/registry.ts';
import type { CycleProfile, CycleReport, JcreServices, JcreState, LinkedClass, NativeClassImpl, Ref, SecureChannelService } from './types.ts';
import { ArrayKind, JCRE_CONTEXT, Memory, NULL, VmThrow, isArray } from './types.ts';
import { parseCapPackage } from './cap/parse.ts';
import { verifyCapPackage } from './cap/verify.ts';
import type { LinkUnit } from './linker.ts';
import { LinkError, arrayInitKind, linkPackage } from './linker.ts';
import type { ApiRegistry } from './api/registry.ts';
import { buildApiRegistry } from './api/registry.ts';
import { createMeter } from './cycles.ts';
import type { VmCycleMeter } from './cycles.ts';
import { DEFAULT_CYCLE_PROFILE } from './profiles/jcop4.ts';
import type { ChipVm } from './vm.ts';
import { createVm } from './vm.ts';
import { VmFault } from './exceptions.ts';
import type { Obj } from './heap-persist.ts';
import { LANG_CLASSES } from './api/lang.ts';
import { FRAMEWORK_CLASSES } from './api/framework.ts';
import { SECURITY_CLASSES } from './api/security.ts';
import { CRYPTO_CLASSES } from './api/crypto.ts';
import { GP_CLASSES } from './api/globalplatform.ts';
import { createAidObject } from './api/aid.ts';
import { SystemReason, readReason } from './api/exceptions.ts';
import { freshJcreState, parseCommand as parseApduLengths, responseData, startCommand } from './api/apdu.ts';

const APPLET = 'javacard.framework.Applet';
const M_PROCESS = `${APPLET}.process(Ljavacard/framework/APDU;)V`;
const M_SELECT = `${APPLET}.select()Z`;
const M_DESELECT = `${APPLET}.deselect()V`;
const M_SIO = `${APPLET}.getShareableInterfaceObject(Ljavacard/framework/AID;B)Ljavacard/framework/Shareable;`;
const M_MULTI_SELECT = 'javacard.framework.MultiSelectable.select(Z)Z';
const M_MULTI_DESELECT = 'javacard.framework.MultiSelectable.deselect(Z)V';
const M_UNINSTALL = 'javacard.framework.AppletEvent.uninstall()V';
const M_GP_PROCESS_DATA = 'org.globalplatform.Application.processData([BSS)V';
const M_GP_PERSONALIZE = 'org.globalplatform.Personalization.processData([BSS[BS)S';
const ISO_EXCEPTION = 'javacard.framework.ISOException';
const K_CONTEXTS = 'vm/contexts';
/** APDU buffer: 261 bytes of a short APDU, 7 + 256 for extended length (JC API APDU class description). */
const APDU_BUFFER_BYTES = 263;
/** Heap root names (heap.roots). */
const ROOT_APPLET = 'applet:';
const ROOT_BUFFER = 'jcre.apdu.buffer';
const ROOT_APDU = 'jcre.apdu';
const ROOT_AID = 'jcre.aid:';

export interface VmRuntimeOptions {
  store: ChipStore;
  profile: ChipProfile;
  cycleProfile?: CycleProfile;
  /** Native API classes; default: every API module of emulator/vm/api. */
  natives?: NativeClassImpl[];
  /** The card manager's registry as the card sees it now (GPSystem, appletInfo); default: read from the store. */
  model?: () => Model;
  log?: (message: string) => void;
  /** The card state for a command on a logical channel (org.globalplatform.SecureChannel runs the SD's SCP03 there). */
  cardEnv?: (channel: number) => CardEnv;
  stackWords?: number;
  maxFrames?: number;
  maxBytecodes?: number;
}

export interface VmRuntime extends AppletRuntime {
  /** Parses, verifies and links a Load File Data Block at the end of LOAD; throws IsoError 6A80 naming the reason. */
  loadFile(elf: string, block: Uint8Array): void;
  /** The load file was deleted. */
  unloadFile(elf: string): void;
  /** Whether the instance's class implements javacard.framework.MultiSelectable. */
  multiSelectable(aid: string): boolean;
  /** Cycle report of the last command (install, select or process). */
  lastReport(): CycleReport | undefined;
  /** Bytecode trace: one line per instruction while set. */
  trace: ((line: string) => void) | undefined;
  /** Called with each report as lastReport() changes: one APDU may run several phases (SELECT: select + process). */
  onReport: ((report: CycleReport, phase: ReportPhase) => void) | undefined;
  /** Heap use for tools (chip info): totals as JCSystem.getAvailableMemory sees them, and objects per context. */
  memoryUse(): VmMemoryUse;
  /** The VM (tests and tools); undefined before the first power-up. */
  readonly vm: ChipVm | undefined;
  /** The linked package of a load file (tests and tools). */
  unit(elf: string): LinkUnit | undefined;
}

export type ReportPhase = 'install' | 'select' | 'deselect' | 'process';

export interface VmMemoryUse {
  /** The profile's persistent memory, the part load files take, the heap's part and what is left (getAvailableMemory). */
  persistentBytes: number;
  loadFileBytes: number;
  heapBytes: number;
  availableBytes: number;
  clearOnReset: { used: number; size: number };
  clearOnDeselect: { used: number; size: number };
  objects: number;
  /** Live objects by owning context (0 = the JCRE): count, persistent bytes (headers included), transient bytes. */
  byContext: Map<number, { objects: number; persistentBytes: number; transientBytes: number }>;
}

/** Every native API module on this chip. */
export function defaultNatives(): NativeClassImpl[] {
  return [...LANG_CLASSES, ...FRAMEWORK_CLASSES, ...SECURITY_CLASSES, ...CRYPTO_CLASSES, ...GP_CLASSES];
}

let sharedApi: { natives: readonly NativeClassImpl[]; api: ApiRegistry } | undefined;
function apiFor(natives: readonly NativeClassImpl[] | undefined): ApiRegistry {
  if (!natives) {
    if (!sharedApi) sharedApi = { natives: [], api: buildApiRegistry(defaultNatives()) };
    return sharedApi.api;
  }
  return buildApiRegistry(natives);
}

interface ContextTable {
  next: number;
  byPackage: Record<string, number>;
}

export function createVmRuntime(opts: VmRuntimeOptions): VmRuntime {
  const store = opts.store;
  const log = opts.log ?? (() => {});
  const api = apiFor(opts.natives);
  const model = opts.model ?? (() => loadModel(store));
  const meter: VmCycleMeter = createMeter(opts.cycleProfile ?? opts.profile.cycles ?? DEFAULT_CYCLE_PROFILE);
  const cardEnv = opts.cardEnv;
  const channels: SecureChannels | undefined = cardEnv ? createSecureChannelService(() => cardEnv(jcre.channel)) : undefined;
  const units = new Map<string, LinkUnit>();
  const classesByKey = new Map<string, LinkedClass>();
  for (const c of api.classes.values()) classesByKey.set(c.key, c);
  /** Applet instance AID → its load file; contexts of the applets active on some channel (channel → AID). */
  const active = new Map<number, string>();
  let vm: ChipVm | undefined;
  let report: CycleReport | undefined;
  let trace: ((line: string) => void) | undefined;
  let onReport: ((report: CycleReport, phase: ReportPhase) => void) | undefined;
  /** The install in progress: the instance AID and, once register() ran, the applet object. */
  let installing: { aid: string; context: number; ref: Ref } | null = null;
  /** The applet a context's code acts for (JCSystem.getAID): the selected/installing one, or a Shareable server. */
  const contextApplet = new Map<number, string>();

  const jcre: JcreState = freshJcreState();

  const contexts = (): ContextTable => store.getJson<ContextTable>(K_CONTEXTS) ?? { next: 1, byPackage: {} };

  const resolve = (aid: string): LinkUnit | undefined => api.units.get(aid) ?? units.get(aid);

  function addUnit(elf: string, unit: LinkUnit): void {
    units.set(elf, unit);
    for (const c of unit.pkg.classesByOffset.values()) classesByKey.set(c.key, c);
  }

  /** Parse (cap-reader framing + CAP model), verify and link one load file; LinkError / CapError name the reason. */
  function link(elf: string, block: Uint8Array, context: number): LinkUnit {
    const cap = parseCapPackage(parseLoadFileDataBlock(block));
    verifyCapPackage(cap);
    if (hex(cap.package.aid) !== elf) throw new LinkError(`package AID ${hex(cap.package.aid)} is not the load file AID ${elf}`);
    return linkPackage(cap, { context, resolve, api });
  }

  function appletUnit(aid: string): { unit: LinkUnit; elf: string } | undefined {
    const app = model().registry.apps.find((a) => a.aid === aid);
    if (!app) return undefined;
    const unit = units.get(app.elf);
    return unit ? { unit, elf: app.elf } : undefined;
  }

  function services(): JcreServices {
    return {
      registerApplet(applet, aid) {
        const v = vm!;
        // Applet.register javadoc: outside install(), a second registration or an AID in use → ILLEGAL_AID.
        const SYS = 'javacard.framework.SystemException';
        if (!installing) return v.throwApi(SYS, SystemReason.ILLEGAL_AID);
        if (aid && hex(aid) !== installing.aid) return v.throwApi(SYS, SystemReason.ILLEGAL_AID);
        const o = v.heap.peek(applet);
        if (!o || isArray(o) || o.owner !== installing.context || !isAppletClass(o.cls)) return v.throwApi(SYS, SystemReason.ILLEGAL_VALUE);
        if (installing.ref !== NULL) return v.throwApi(SYS, SystemReason.ILLEGAL_AID);
        installing.ref = applet;
      },
      aidObject(aid) {
        const a = hex(aid);
        if (!model().registry.apps.some((x) => x.aid === a)) return NULL;
        return aidObject(a);
      },
      shareable(serverAid, parameter) {
        const v = vm!;
        const server = hex(serverAid);
        const ref = v.heap.roots.get(ROOT_APPLET + server);
        const su = appletUnit(server);
        if (ref === NULL || !su) return NULL;
        const client = v.currentApplet;
        const clientAid = client ? aidObject(client) : NULL;
        const ctx = su.unit.pkg.context;
        const before = contextApplet.get(ctx);
        contextApplet.set(ctx, server);
        try {
          const sio = v.invokeVirtualIn(ctx, ref, M_SIO, [clientAid, parameter]);
          const o = sio === NULL ? undefined : v.heap.peek(sio);
          // Only a Shareable object is handed across the firewall (JCRE §6.2.4); anything else reads as null.
          return o && !isArray(o) && o.cls.isShareable ? sio : NULL;
        } finally {
          if (before === undefined) contextApplet.delete(ctx);
          else contextApplet.set(ctx, before);
        }
      },
      isAppletActive(aid) {
        return [...active.values()].includes(hex(aid));
      },
      appletInfo(aid) {
        const a = model().registry.apps.find((x) => x.aid === aid);
        return a ? { privileges: a.privileges, lifeCycle: a.lifeCycle, securityDomain: a.sd } : undefined;
      },
      setAppletLifeCycle(aid, state) {
        const m = model();
        const a = m.registry.apps.find((x) => x.aid === aid);
        // Application-specific states keep b1-b2 = 11 (SELECTABLE) and may not set the LOCKED bit (GPCS §5.3.1).
        if (!a || (state & 0x83) !== 0x03 || state < 0x07) return false;
        a.lifeCycle = state;
        saveRegistry(store, m);
        return true;
      },
      cardLifeCycle() {
        return model().card.lifeCycle;
      },
      setCardLifeCycle(state) {
        const m = model();
        m.card.lifeCycle = state;
        saveCard(store, m);
        return true;
      },
      secureChannel(aid): SecureChannelService {
        if (!channels) throw new VmFault('org.globalplatform.SecureChannel needs the card manager (no card environment)');
        return channels.service(aid);
      },
      random: (n) => new Uint8Array(randomBytes(n)),
    };
  }

  function aidObject(aid: string): Ref {
    const v = vm!;
    const have = v.heap.roots.get(ROOT_AID + aid);
    if (have !== NULL && v.heap.peek(have)) return have;
    const ref = createAidObject(v, fromHex(aid));
    v.heap.roots.set(ROOT_AID + aid, ref);
    return ref;
  }

  function isAppletClass(c: LinkedClass): boolean {
    for (let s: LinkedClass | null = c; s; s = s.superclass) if (s.name === APPLET) return true;
    return false;
  }

  function implementsApi(ref: Ref, iface: string): boolean {
    const o = vm?.heap.peek(ref);
    if (!o || isArray(o)) return false;
    return o.cls.interfaces.some((i) => i.name === iface);
  }

  /** Power-up: relink every stored load file in load order, then the heap (instances need their classes). */
  function powerUp(): void {
    units.clear();
    classesByKey.clear();
    for (const c of api.classes.values()) classesByKey.set(c.key, c);
    const table = contexts();
    for (const elf of model().registry.elfs) {
      if (elf.native) continue;
      const block = store.get(K_LOAD_FILE + elf.aid);
      if (!block) continue;
      try {
        addUnit(elf.aid, link(elf.aid, block, table.byPackage[elf.aid] ?? JCRE_CONTEXT));
      } catch (e) {
        log(`VM: load file ${elf.aid} no longer links: ${(e as Error).message}`);
      }
    }
    if (!vm) {
      vm = createVm({
        store,
        sizes: {
          persistentBytes: opts.profile.persistentBytes,
          transientResetBytes: opts.profile.transientResetBytes,
          transientDeselectBytes: opts.profile.transientDeselectBytes,
          commitCapacity: opts.profile.commitCapacity ?? 4096,
        },
        meter,
        api,
        resolveClass: (key) => classesByKey.get(key),
        services: services(),
        jcre,
        appletOfContext: (ctx) => (ctx === JCRE_CONTEXT ? null : (contextApplet.get(ctx) ?? null)),
        reservedPersistent: () => model().registry.elfs.reduce((n, e) => n + e.size, 0),
        stackWords: opts.stackWords ?? opts.profile.maxStackWords,
        maxFrames: opts.maxFrames ?? opts.profile.maxFrameDepth,
        maxBytecodes: opts.maxBytecodes,
      });
    } else vm.heap.powerUp();
    channels?.reset();
    vm.interp.trace = trace;
    for (const u of units.values()) vm.heap.attachStatics(u.pkg);
    active.clear();
    contextApplet.clear();
    (jcre.activeApplets as Set<string>).clear();
  }

  function theVm(): ChipVm {
    if (!vm) powerUp();
    return vm!;
  }

  /** The JCRE's APDU buffer (global byte array) and APDU object (temporary entry point), created once. */
  function apduObjects(v: ChipVm): void {
    let buf = v.heap.roots.get(ROOT_BUFFER);
    if (buf === NULL || !v.heap.peek(buf)) {
      buf = v.heap.newArray(ArrayKind.Byte, APDU_BUFFER_BYTES, Memory.ClearOnReset, JCRE_CONTEXT).ref;
      v.heap.makeGlobal(buf);
      v.heap.roots.set(ROOT_BUFFER, buf);
    }
    let apdu = v.heap.roots.get(ROOT_APDU);
    if (apdu === NULL || !v.heap.peek(apdu)) {
      apdu = v.heap.newInstance(v.apiClass('javacard.framework.APDU'), JCRE_CONTEXT).ref;
      v.heap.makeGlobal(apdu, true);
      v.heap.roots.set(ROOT_APDU, apdu);
    }
    jcre.apduBuffer = buf;
    jcre.apduObject = apdu;
  }

  /** Starts a command's accounting. */
  function begin(v: ChipVm): void {
    meter.reset();
    v.interp.resetBudget();
  }

  /** Ends a command: durable writes first (JCRE §7.6.3: an open transaction is aborted), then the report. */
  function end(v: ChipVm, ioIn: number, ioOut: number, phase: ReportPhase): void {
    v.heap.flush();
    // Only process() moves APDU bytes; select/deselect/install run inside an APDU whose I/O is charged there.
    if (ioIn > 0 || ioOut > 0) meter.io(ioIn, ioOut);
    report = meter.report();
    onReport?.(report, phase);
  }

  /** The status word of an uncaught Java exception: ISOException → its reason, anything else 6F00 (JCRE §? ). */
  function statusOf(v: ChipVm, e: VmThrow): number {
    const o = v.heap.peek(e.ref);
    if (o && !isArray(o)) {
      for (let c: LinkedClass | null = o.cls; c; c = c.superclass)
        if (c.name === ISO_EXCEPTION) {
          const sw = readReason(o) & 0xffff;
          if (isValidSw(sw)) return sw;
          // Not an ISO 7816 status word (e.g. 0000, C400): 6F00 instead, as the transport could not carry it (docs/vm.md).
          log(`ISOException reason ${sw.toString(16).padStart(4, '0')} is not a status word: 6F00`);
          return SW.UNKNOWN;
        }
      log(`uncaught ${o.cls.name}${readReason(o) ? ` (reason ${readReason(o)})` : ''}`);
    }
    return SW.UNKNOWN;
  }

  function install(req: InstallRequest): void {
    const v = theVm();
    const unit = units.get(req.elf);
    if (!unit) throw new IsoError(SW.REFERENCED_DATA_NOT_FOUND, `load file ${req.elf} is not linked on this card`);
    const method = unit.applets.get(req.module);
    if (!method) throw new IsoError(SW.REFERENCED_DATA_NOT_FOUND, `module ${req.module} has no install method`);
    begin(v);
    const ctx = unit.pkg.context;
    // bArray (JCRE §11.? / GPCS §11.5.2.3): instance AID, control information (privileges), application parameters, each LV.
    const aid = fromHex(req.aid);
    const privs = req.privileges > 0xff ? Uint8Array.of(req.privileges >> 16, req.privileges >> 8, req.privileges) : Uint8Array.of(req.privileges);
    const params = concat(Uint8Array.of(aid.length), aid, Uint8Array.of(privs.length), privs, Uint8Array.of(req.params.length), req.params);
    installing = { aid: req.aid, context: ctx, ref: NULL };
    contextApplet.set(ctx, req.aid);
    let failure: string | undefined;
    let bArray: Ref = NULL;
    try {
      const arr = v.heap.newArray(ArrayKind.Byte, params.length, Memory.ClearOnReset, JCRE_CONTEXT);
      bArray = arr.ref;
      v.heap.makeGlobal(arr.ref);
      v.heap.writeBytes(arr, 0, params, false);
      v.invokeIn(ctx, method, [arr.ref, 0, params.length]);
      if (installing.ref === NULL) failure = 'the applet did not call register()';
    } catch (e) {
      if (e instanceof VmThrow) failure = `install threw ${describe(v, e)}`;
      else if (e instanceof PowerLoss) throw e;
      else failure = `install failed: ${e instanceof Error ? e.message : String(e)}`;
    }
    const ref = installing.ref;
    installing = null;
    // bArray is global for the install call only (JCRE 3.0.5 §6.2.2: its reference may not be stored): freed below.
    if (bArray !== NULL) v.heap.dropGlobal(bArray);
    contextApplet.delete(ctx);
    if (failure) {
      // Nothing of a failed install stays: its objects are unreachable and freed (GPCS §11.5.2.? INSTALL fails).
      v.heap.flush();
      v.heap.collect();
      end(v, 0, 0, 'install');
      throw new IsoError(SW.WRONG_DATA, `${req.aid}: ${failure}`);
    }
    v.heap.roots.set(ROOT_APPLET + req.aid, ref);
    v.heap.collect();
    end(v, 0, 0, 'install');
    log(`installed ${req.aid} from ${req.elf} (${report?.bytecodes ?? 0} bytecodes)`);
  }

  function describe(v: ChipVm, e: VmThrow): string {
    const o = v.heap.peek(e.ref);
    if (!o || isArray(o)) return e.message;
    const r = readReason(o);
    return r ? `${o.cls.name}(0x${(r & 0xffff).toString(16)})` : o.cls.name;
  }

  function appletRef(v: ChipVm, aid: string): Ref {
    const ref = v.heap.roots.get(ROOT_APPLET + aid);
    return ref !== NULL && v.heap.peek(ref) ? ref : NULL;
  }

  function select(aid: string, ctx: AppletContext): boolean {
    const v = theVm();
    const ref = appletRef(v, aid);
    const au = appletUnit(aid);
    if (ref === NULL || !au) return false;
    const context = au.unit.pkg.context;
    const elsewhere = [...active.entries()].some(([ch, a]) => ch !== ctx.channel && a === aid);
    const multi = implementsApi(ref, 'javacard.framework.MultiSelectable');
    // Another applet of the same package active elsewhere: both must be MultiSelectable (JCRE §4.2.? ).
    const samePackage = [...active.entries()].some(([ch, a]) => ch !== ctx.channel && a !== aid && appletUnit(a)?.unit === au.unit);
    if ((elsewhere || samePackage) && !multi) return false;
    begin(v);
    contextApplet.set(context, aid);
    jcre.selecting = true;
    jcre.channel = ctx.channel;
    jcre.selectedApplet = aid;
    let ok = false;
    try {
      ok = (multi && (elsewhere || samePackage) ? v.invokeVirtualIn(context, ref, M_MULTI_SELECT, [elsewhere || samePackage ? 1 : 0]) : v.invokeVirtualIn(context, ref, M_SELECT, [])) !== 0;
    } catch (e) {
      if (e instanceof PowerLoss) throw e;
      log(`select of ${aid} failed: ${e instanceof VmThrow ? describe(v, e) : e instanceof Error ? e.message : String(e)}`);
      ok = false;
    } finally {
      jcre.selecting = false;
    }
    if (ok) {
      active.set(ctx.channel, aid);
      (jcre.activeApplets as Set<string>).add(aid);
    }
    end(v, 0, 0, 'select');
    return ok;
  }

  function deselect(aid: string, ctx: AppletContext): void {
    const v = theVm();
    const ref = appletRef(v, aid);
    const au = appletUnit(aid);
    if (active.get(ctx.channel) === aid) active.delete(ctx.channel);
    channels?.reset(ctx.channel);
    const stillActive = [...active.values()].includes(aid);
    if (!stillActive) (jcre.activeApplets as Set<string>).delete(aid);
    if (ref === NULL || !au) return;
    const context = au.unit.pkg.context;
    begin(v);
    contextApplet.set(context, aid);
    try {
      const multi = implementsApi(ref, 'javacard.framework.MultiSelectable');
      if (multi) v.invokeVirtualIn(context, ref, M_MULTI_DESELECT, [stillActive ? 1 : 0]);
      else v.invokeVirtualIn(context, ref, M_DESELECT, []);
    } catch (e) {
      // Exceptions from deselect are ignored (JCRE §4.? : the applet is deselected anyway).
      if (!(e instanceof VmThrow || e instanceof VmFault)) throw e;
    }
    // CLEAR_ON_DESELECT memory of a context goes when no applet of that context is active any more (JCRE §5.1).
    if (![...active.values()].some((a) => appletUnit(a)?.unit === au.unit)) v.heap.clearTransient(Memory.ClearOnDeselect, context);
    end(v, 0, 0, 'deselect');
  }

  function process(aid: string, cmd: CommandApdu, ctx: AppletContext): ResponseApdu {
    const v = theVm();
    const ref = appletRef(v, aid);
    const au = appletUnit(aid);
    if (ref === NULL || !au) throw new IsoError(SW.APPLET_SELECT_FAILED, `${aid} has no applet instance`);
    const raw = encodeCommand(cmd);
    const lengths = parseApduLengths(raw);
    const extendedOk = implementsApi(ref, 'javacardx.apdu.ExtendedLength');
    if (lengths.extended && !extendedOk) throw new IsoError(SW.WRONG_LENGTH, `${aid} does not implement ExtendedLength`);
    const context = au.unit.pkg.context;
    begin(v);
    apduObjects(v);
    jcre.selecting = ctx.selecting;
    jcre.channel = ctx.channel;
    jcre.selectedApplet = aid;
    jcre.extendedLengthApplet = extendedOk;
    contextApplet.set(context, aid);
    let sw: number = SW.OK;
    let data: Uint8Array = new Uint8Array(0);
    try {
      startCommand(v, raw);
      v.invokeVirtualIn(context, ref, M_PROCESS, [jcre.apduObject]);
      data = responseData(jcre);
    } catch (e) {
      if (e instanceof VmThrow) {
        sw = statusOf(v, e);
        // Data already sent goes out with a warning status only (ISO 7816-4 §5.1.3: errors carry no data).
        const out = responseData(jcre);
        if (sw >> 8 === 0x62 || sw >> 8 === 0x63) data = out;
      } else if (e instanceof PowerLoss) throw e;
      else {
        // A fault (malformed code met at run time, stack overflow, runaway loop) or a host defect: 6F00, chip usable.
        log(`${aid}: ${e instanceof VmFault ? e.message : `internal error: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`}`);
        sw = SW.UNKNOWN;
      }
    } finally {
      jcre.selecting = false;
    }
    end(v, raw.length, data.length + 2, 'process');
    return { data, sw };
  }

  function reset(): void {
    powerUp();
  }

  /**
   * STORE DATA forwarded by the security domain after INSTALL [for personalization] (GPCS 2.3.1 §11.11.2.3): the whole
   * command — header and (decrypted) data — in the global APDU buffer from offset 0, passed to Personalization.processData
   * (its output is the response data) or else Application.processData (GP API 1.6). Uncaught exceptions: ISOException →
   * its status word, anything else 6F00, as for process().
   */
  function processData(aid: string, data: Uint8Array, header: Uint8Array = Uint8Array.of(0x80, 0xe2, 0x80, 0x00)): Uint8Array {
    const v = theVm();
    const ref = appletRef(v, aid);
    const au = appletUnit(aid);
    if (ref === NULL || !au) throw new IsoError(SW.CONDITIONS_NOT_SATISFIED, `${aid} has no applet instance`);
    const perso = implementsApi(ref, 'org.globalplatform.Personalization');
    if (!perso && !implementsApi(ref, 'org.globalplatform.Application'))
      throw new IsoError(SW.CONDITIONS_NOT_SATISFIED, `${aid} implements neither org.globalplatform.Application nor Personalization`);
    const lc = data.length > 255 ? Uint8Array.of(0, data.length >> 8, data.length) : Uint8Array.of(data.length);
    const command = concat(header.subarray(0, 4), lc, data);
    begin(v);
    apduObjects(v);
    const buffer = v.heap.array(jcre.apduBuffer);
    if (command.length > buffer.length) throw new IsoError(SW.WRONG_LENGTH, `STORE DATA of ${data.length} bytes does not fit the APDU buffer`);
    const context = au.unit.pkg.context;
    contextApplet.set(context, aid);
    let sw: number = SW.OK;
    let out: Uint8Array = new Uint8Array(0);
    try {
      v.heap.writeBytes(buffer, 0, command, false);
      if (perso) {
        const n = v.invokeVirtualIn(context, ref, M_GP_PERSONALIZE, [jcre.apduBuffer, 0, command.length, jcre.apduBuffer, 0]);
        if (n < 0 || n > buffer.length) throw new VmFault(`Personalization.processData returned ${n} bytes`);
        out = (buffer.data as Uint8Array).slice(0, n);
      } else v.invokeVirtualIn(context, ref, M_GP_PROCESS_DATA, [jcre.apduBuffer, 0, command.length]);
    } catch (e) {
      if (e instanceof PowerLoss) throw e;
      if (e instanceof VmThrow) sw = statusOf(v, e);
      else {
        log(`${aid}: processData: ${e instanceof Error ? e.message : String(e)}`);
        sw = SW.UNKNOWN;
      }
    }
    end(v, 0, 0, 'process');
    if (sw !== SW.OK) throw new IsoError(sw, `${aid}: processData ended with ${sw.toString(16)}`);
    return out;
  }

  function memoryUse(): VmMemoryUse {
    const v = theVm();
    const u = v.heap.usage();
    const byContext: VmMemoryUse['byContext'] = new Map();
    // Refs are 16-bit (JCVM §3.1): a scan of the handle space finds every live object; sizes are the heap's own.
    for (let r = 1; r <= 0x7fff; r++) {
      const o = v.heap.peek(r) as Obj | undefined;
      if (!o) continue;
      const c = byContext.get(o.owner) ?? { objects: 0, persistentBytes: 0, transientBytes: 0 };
      c.objects++;
      c.persistentBytes += o.pbytes;
      c.transientBytes += o.tbytes;
      byContext.set(o.owner, c);
    }
    const p = opts.profile;
    return {
      persistentBytes: p.persistentBytes,
      loadFileBytes: model().registry.elfs.reduce((n, e) => n + e.size, 0),
      heapBytes: u.persistent,
      availableBytes: v.heap.availableMemory(Memory.Persistent),
      clearOnReset: { used: u.clearOnReset, size: p.transientResetBytes },
      clearOnDeselect: { used: u.clearOnDeselect, size: p.transientDeselectBytes },
      objects: u.objects,
      byContext,
    };
  }

  return {
    handles: (elf) => units.has(elf) || !model().registry.elfs.some((e) => e.aid === elf && e.native),
    install,
    uninstall(aid) {
      const v = theVm();
      const ref = appletRef(v, aid);
      if (ref !== NULL && implementsApi(ref, 'javacard.framework.AppletEvent')) {
        const au = appletUnit(aid);
        begin(v);
        try {
          if (au) v.invokeVirtualIn(au.unit.pkg.context, ref, M_UNINSTALL, []);
        } catch (e) {
          if (!(e instanceof VmThrow || e instanceof VmFault)) throw e;
        }
      }
      v.heap.roots.set(ROOT_APPLET + aid, NULL);
      v.heap.roots.set(ROOT_AID + aid, NULL);
      // The instance's objects go with it (JCRE 3.0.5 §11.3.4.1 applet deletion): whatever is now unreachable is freed.
      v.heap.collect();
      v.heap.flush();
    },
    select,
    deselect,
    process,
    reset,
    processData,
    loadFile(elf, block) {
      const v = theVm();
      const table = contexts();
      let unit: LinkUnit;
      const probe = (() => {
        try {
          return parseCapPackage(parseLoadFileDataBlock(block));
        } catch {
          return undefined;
        }
      })();
      // Packages with applets get their own firewall context; library code runs in its caller's (JCRE §6.1.1).
      const context = probe && probe.applets.length > 0 ? (table.byPackage[elf] ?? table.next) : JCRE_CONTEXT;
      try {
        unit = link(elf, block, context);
      } catch (e) {
        if (e instanceof LinkError || e instanceof CapError || (e instanceof Error && e.name === 'CapError')) {
          log(`LOAD ${elf} refused: ${e.message}`);
          throw new IsoError(SW.WRONG_DATA, `load file ${elf}: ${e.message}`);
        }
        throw e;
      }
      if (context !== JCRE_CONTEXT && table.byPackage[elf] === undefined) {
        table.byPackage[elf] = context;
        table.next = context + 1;
        store.putJson(K_CONTEXTS, table);
      }
      addUnit(elf, unit);
      v.heap.attachStatics(unit.pkg);
      initStaticArrays(v, unit);
      v.heap.flush();
    },
    unloadFile(elf) {
      if (!units.delete(elf)) return;
      vm?.heap.detachStatics(elf);
      vm?.heap.collect(); // objects only the package's statics held (JCRE 3.0.5 §11.3.4.2 package deletion)
      vm?.heap.flush();
    },
    multiSelectable(aid) {
      const v = theVm();
      const ref = appletRef(v, aid);
      return ref !== NULL && implementsApi(ref, 'javacard.framework.MultiSelectable');
    },
    lastReport: () => report,
    get trace() {
      return trace;
    },
    set trace(t) {
      trace = t;
      if (vm) vm.interp.trace = t;
    },
    get onReport() {
      return onReport;
    },
    set onReport(f) {
      onReport = f;
    },
    memoryUse,
    get vm() {
      return vm;
    },
    unit: (elf) => units.get(elf),
  };
}

/** Static arrays from array_init (JCVM §6.10): persistent arrays of the package's context in the first reference cells. */
export function initStaticArrays(v: ChipVm, unit: LinkUnit): void {
  const inits = unit.arrayInits ?? [];
  inits.forEach((init, i) => {
    const k = arrayInitKind(init.type);
    if (!k) throw new IsoError(SW.WRONG_DATA, `StaticField component: array_init ${i} has type ${init.type}`);
    const count = Math.floor(init.values.length / k.size);
    const a = v.heap.newArray(k.kind, count, Memory.Persistent, unit.pkg.context);
    if (unit.library) v.heap.makeGlobal(a.ref); // library statics serve every context (documented deviation)
    const vals = init.values;
    if (k.size === 1) v.heap.writeBytes(a, 0, vals, true);
    else
      for (let j = 0; j < count; j++) {
        const o = j * k.size;
        const x = k.size === 2 ? ((vals[o] << 24) >> 16) | vals[o + 1] : (vals[o] << 24) | (vals[o + 1] << 16) | (vals[o + 2] << 8) | vals[o + 3];
        v.heap.storeArray(a, j, x);
      }
    v.heap.storeStatic(unit.pkg.statics, 2 * i, a.ref, unit.pkg);
  });
}

function encodeCommand(cmd: CommandApdu): Uint8Array {
  const head = Uint8Array.of(cmd.cla, cmd.ins, cmd.p1, cmd.p2);
  if (!cmd.data.length && !cmd.ne) return head;
  const parts: Uint8Array[] = [head];
  const ext = cmd.extended || cmd.data.length > 255 || cmd.ne > 256;
  if (cmd.data.length) parts.push(ext ? Uint8Array.of(0, cmd.data.length >> 8, cmd.data.length) : Uint8Array.of(cmd.data.length), cmd.data);
  if (cmd.ne) {
    const ne = cmd.ne === (ext ? 65536 : 256) ? 0 : cmd.ne;
    parts.push(ext ? (cmd.data.length ? Uint8Array.of(ne >> 8, ne) : Uint8Array.of(0, ne >> 8, ne)) : Uint8Array.of(ne));
  }
  return concat(...parts);
}
