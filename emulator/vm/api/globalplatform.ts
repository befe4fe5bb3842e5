// org.globalplatform (GP API 1.6): GPSystem and the security domain's SecureChannel as seen by an applet. The
// protocol itself runs in emulator/vm/secure-channel.ts behind vm.services.secureChannel(aid).
import type { HeapInstance, NativeClassImpl, NativeMethod, Ref, SecureChannelService, Vm } from '../types.ts';
import { JCRE_CONTEXT, NULL } from '../types.ts';
import type { Heap } from '../types.ts';
import { IsoError } from '../../iso.ts';
import { CardLife, Priv } from '../../gp/constants.ts';
import { byteRange, readBytes, writeOut } from './security.ts';

const SC_IMPL = 'jpkise.gp.SecureChannelImpl';
const ISO_EXCEPTION = 'javacard.framework.ISOException';

/** ISO7816.OFFSET_CDATA, where processSecurity leaves its response (GP API 1.6 SecureChannel.processSecurity). */
const OFFSET_CDATA = 5;
/** javacard.framework.APDU states (APDU.STATE_INITIAL, STATE_PARTIAL_INCOMING, STATE_FULL_INCOMING). */
const STATE_INITIAL = 0;
const STATE_PARTIAL_INCOMING = 1;
const STATE_FULL_INCOMING = 2;

function currentAid(vm: Vm): string {
  const aid = vm.currentApplet;
  if (!aid) return vm.throwApi('java.lang.SecurityException');
  return aid;
}

/** An IsoError from the secure channel becomes the ISOException the GP API specifies (reason = status word as a short). */
function viaService<T>(vm: Vm, f: () => T): T {
  try {
    return f();
  } catch (e) {
    if (e instanceof IsoError) vm.throwApi(ISO_EXCEPTION, (e.sw << 16) >> 16);
    throw e;
  }
}

function serviceOf(vm: Vm, ref: Ref): SecureChannelService {
  const o: HeapInstance = vm.heap.instance(ref);
  const aid = o.native?.aid;
  if (typeof aid !== 'string') return vm.throwApi('java.lang.SecurityException');
  return vm.services.secureChannel(aid);
}

/**
 * One SecureChannel object per applet and heap, a permanent JCRE entry point the applet may keep in a field. Objects
 * made before a power cycle stay in the heap (their native record names the applet) and are simply not reused.
 */
const channels = new WeakMap<Heap, Map<string, Ref>>();

function secureChannelObject(vm: Vm, aid: string): Ref {
  let byAid = channels.get(vm.heap);
  if (!byAid) channels.set(vm.heap, (byAid = new Map()));
  const hit = byAid.get(aid);
  if (hit && vm.heap.peek(hit)) return hit;
  const o = vm.heap.newInstance(vm.apiClass(SC_IMPL), JCRE_CONTEXT, { aid });
  vm.heap.makeGlobal(o.ref);
  byAid.set(aid, o.ref);
  return o.ref;
}

const secureChannelMethods: Record<string, NativeMethod> = {
  /** Receives the command data itself if the applet has not, answers at OFFSET_CDATA and returns the length. */
  'processSecurity(Ljavacard/framework/APDU;)S': (vm, a) => {
    const svc = serviceOf(vm, a[0]);
    const j = vm.jcre;
    const buffer = vm.heap.array(j.apduBuffer);
    if (j.state === STATE_INITIAL || j.state === STATE_PARTIAL_INCOMING) {
      const cdata = j.extended ? 7 : 5;
      const data = j.command.subarray(cdata, cdata + j.lc);
      if (cdata + data.length > buffer.length) vm.throwApi('javacard.framework.APDUException', 2 /* BUFFER_BOUNDS */);
      vm.heap.writeBytes(buffer, cdata, data, false);
      j.received = j.lc;
      j.state = STATE_FULL_INCOMING;
    }
    vm.cycles.crypto('SCP03/processSecurity', j.command.length);
    const r = viaService(vm, () => svc.processSecurity(j.command));
    if (r.sw !== 0x9000) vm.throwApi(ISO_EXCEPTION, (r.sw << 16) >> 16);
    writeOut(vm, j.apduBuffer, OFFSET_CDATA, r.data);
    return r.data.length;
  },
  /** The buffer holds response data then the status word; returns the protected data's length, SW removed. */
  'wrap([BSS)S': (vm, a) => {
    const svc = serviceOf(vm, a[0]);
    const len = a[3];
    const all = readBytes(vm, a[1], a[2], len);
    if (len < 2) vm.throwApi('java.lang.ArrayIndexOutOfBoundsException');
    const sw = (all[len - 2] << 8) | all[len - 1];
    vm.cycles.crypto('SCP03/wrap', len - 2);
    const out = viaService(vm, () => svc.wrap(all.subarray(0, len - 2), sw));
    writeOut(vm, a[1], a[2], out);
    return out.length;
  },
  /** The buffer holds the whole command (header and data); returns the unwrapped command's whole length. */
  'unwrap([BSS)S': (vm, a) => {
    const svc = serviceOf(vm, a[0]);
    const cmd = readBytes(vm, a[1], a[2], a[3]);
    vm.cycles.crypto('SCP03/unwrap', cmd.length);
    const out = viaService(vm, () => svc.unwrap(cmd));
    if (out !== cmd) writeOut(vm, a[1], a[2], out);
    return out.length;
  },
  'decryptData([BSS)S': (vm, a) => {
    const svc = serviceOf(vm, a[0]);
    const data = readBytes(vm, a[1], a[2], a[3]);
    vm.cycles.crypto('SCP03/decryptData', data.length);
    const out = viaService(vm, () => svc.decryptData(data));
    writeOut(vm, a[1], a[2], out);
    return out.length;
  },
  'encryptData([BSS)S': (vm, a) => {
    const svc = serviceOf(vm, a[0]);
    const data = readBytes(vm, a[1], a[2], a[3]);
    vm.cycles.crypto('SCP03/encryptData', data.length);
    const out = viaService(vm, () => svc.encryptData(data));
    byteRange(vm, a[1], a[2], out.length);
    writeOut(vm, a[1], a[2], out);
    return out.length;
  },
  'resetSecurity()V': (vm, a) => serviceOf(vm, a[0]).resetSecurity(),
  'getSecurityLevel()B': (vm, a) => (serviceOf(vm, a[0]).securityLevel() << 24) >> 24,
};

/** GPSystem life-cycle constants (GP API 1.6 GPSystem; GPCS 2.3.1 Tables 11-3, 11-5). */
const APPLICATION_LOCKED = 0x80;

function privileges(vm: Vm): number {
  return vm.services.appletInfo(currentAid(vm))?.privileges ?? 0;
}

const gpSystem: NativeClassImpl = {
  name: 'org.globalplatform.GPSystem',
  methods: {
    '<init>()V': () => undefined,
    'getCardContentState()B': (vm) => ((vm.services.appletInfo(currentAid(vm))?.lifeCycle ?? 0) << 24) >> 24,
    'getCardState()B': (vm) => (vm.services.cardLifeCycle() << 24) >> 24,
    // No global CVM service on this chip: the API allows null (GP API 1.6 getCVM).
    'getCVM(B)Lorg/globalplatform/CVM;': () => NULL,
    'getSecureChannel()Lorg/globalplatform/SecureChannel;': (vm) => secureChannelObject(vm, currentAid(vm)),
    /** CARD_LOCK privilege and a SECURED card (GPCS §5.1.1.4): SECURED → CARD_LOCKED. */
    'lockCard()Z': (vm) => {
      if (!(privileges(vm) & Priv.CARD_LOCK) || vm.services.cardLifeCycle() !== CardLife.SECURED) return 0;
      return vm.services.setCardLifeCycle(CardLife.CARD_LOCKED) ? 1 : 0;
    },
    /** CARD_TERMINATE privilege (GPCS §5.1.1.5): any state but TERMINATED → TERMINATED. */
    'terminateCard()Z': (vm) => {
      if (!(privileges(vm) & Priv.CARD_TERMINATE) || vm.services.cardLifeCycle() === CardLife.TERMINATED) return 0;
      return vm.services.setCardLifeCycle(CardLife.TERMINATED) ? 1 : 0;
    },
    // Historical bytes are fixed by the chip profile.
    'setATRHistBytes([BSB)Z': (vm, a) => {
      byteRange(vm, a[0], a[1], a[2] & 0xff);
      return 0;
    },
    /**
     * An application moves itself between application-specific states: b8 clear (not LOCKED) and b3..b1 = 111
     * (GPCS §5.3.1, Table 11-4); a locked application cannot unlock itself.
     */
    'setCardContentState(B)Z': (vm, a) => {
      const aid = currentAid(vm);
      const state = a[0] & 0xff;
      const info = vm.services.appletInfo(aid);
      if (!info || info.lifeCycle & APPLICATION_LOCKED) return 0;
      if (state & APPLICATION_LOCKED || (state & 0x07) !== 0x07) return 0;
      return vm.services.setAppletLifeCycle(aid, state) ? 1 : 0;
    },
    // The GP registry and global services are not offered to applets (see deviations): null, as for an unknown AID.
    'getRegistryEntry(Ljavacard/framework/AID;)Lorg/globalplatform/GPRegistryEntry;': () => NULL,
    'getService(Ljavacard/framework/AID;S)Lorg/globalplatform/GlobalService;': () => NULL,
  },
};

/** org.globalplatform natives: GPSystem and the hidden SecureChannel implementation. */
export const GP_CLASSES: NativeClassImpl[] = [
  gpSystem,
  { name: SC_IMPL, extends: 'java.lang.Object', implements: ['org.globalplatform.SecureChannel'], methods: secureChannelMethods },
];
