// javacard.framework.APDU: the command/response state machine as pure functions over JcreState, and the natives that
// move bytes between the command, the global APDU buffer and the response (JC API 3.0.5 APDU, javacardx.apdu.
// ExtendedLength; JCRE 3.0.5 §9 (APDU transfers), §6.2.1/§6.2.2 (APDU object and buffer are entry point / global)).
//
// How the runtime uses it, per command APDU:
//  1. Allocate once: the APDU buffer (byte array, ≥ 261 bytes; ≥ 7 + 256 with extended length; heap.makeGlobal(ref))
//     and the APDU object (an instance of javacard.framework.APDU, heap.makeGlobal(ref, true)); put their refs in
//     JcreState.apduBuffer / apduObject.
//  2. Check the command: parseCommand(cmd) throws IsoError 6700 for a malformed length encoding. An extended command
//     (parsed.extended) for an applet that does not implement javacardx.apdu.ExtendedLength is refused by the runtime
//     with 6700 before process() is called.
//  3. Set JcreState.selecting / channel / selectedApplet / extendedLengthApplet (and optionally inBlockSize,
//     outBlockSize, protocol, reselecting), then call startCommand(vm, cmd): it resets the state machine (state
//     STATE_INITIAL, lc, le, received, outgoingLength, sent, response, noChaining), zeroes the APDU buffer and writes
//     the header (CLA INS P1 P2 P3, or CLA INS P1 P2 00 L1 L2 for extended) at offset 0 (APDU class javadoc).
//  4. Call Applet.process(APDU). The natives below read JcreState.command for incoming data and append outgoing
//     bytes to JcreState.response.
//  5. Build the response: responseData(st) (data sent, with the zero padding JCRE §9.4.2.1 asks for an unfinished
//     no-chaining response) followed by the status word (9000, or the ISOException reason, or 6F00).
//
// Defaults when JcreState leaves them out: in/out block size 254 (IFSC/IFSD of the reference card, javacard.md §3),
// protocol PROTOCOL_T1. The emulator carries whole APDUs, not T=1 blocks: the no-chaining limit IFSD−2 of
// setOutgoingLength is enforced only when the runtime sets outBlockSize explicitly.
import { concat } from '../../bytes.ts';
import { IsoError, SW } from '../../iso.ts';
import type { JcreState, NativeClassImpl, NativeMethod, Vm } from '../types.ts';
import { byteArray, s16 } from './checks.ts';
import { ApduReason, ApiFault, J, rethrow } from './exceptions.ts';

/** APDU.STATE_* (javacard.framework.APDU). */
export const ApduState = {
  INITIAL: 0,
  PARTIAL_INCOMING: 1,
  FULL_INCOMING: 2,
  OUTGOING: 3,
  OUTGOING_LENGTH_KNOWN: 4,
  PARTIAL_OUTGOING: 5,
  FULL_OUTGOING: 6,
  ERROR_NO_T0_GETRESPONSE: -1,
  ERROR_T1_IFD_ABORT: -2,
  ERROR_IO: -3,
  ERROR_NO_T0_REISSUE: -4,
} as const;

export const PROTOCOL_T0 = 0;
export const PROTOCOL_T1 = 1;
export const DEFAULT_BLOCK_SIZE = 254;
/** ISO7816.OFFSET_CDATA / OFFSET_EXT_CDATA. */
export const OFFSET_CDATA = 5;
export const OFFSET_EXT_CDATA = 7;

export interface ParsedCommand {
  /** ISO 7816-3 §12.1 case 1–4. */
  case: 1 | 2 | 3 | 4;
  extended: boolean;
  /** Nc: command data length. */
  lc: number;
  /** Ne: 0 when absent, 256 for a short 00, 65536 for an extended 0000. */
  le: number;
}


/** The JCRE state before any command: no APDU, nothing received or sent (filled by beginCommand per command). */
export function freshJcreState(): JcreState {
  return {
    apduBuffer: 0,
    apduObject: 0,
    command: new Uint8Array(0),
    state: 0,
    lc: 0,
    received: 0,
    le: 0,
    outgoingLength: 0,
    sent: 0,
    response: [],
    selecting: false,
    channel: 0,
    selectedApplet: '',
    extended: false,
    activeApplets: new Set<string>(),
  };
}
/** Decodes the length fields of a command APDU (ISO/IEC 7816-3 §12.1.3); 6700 when they do not match its size. */
export function parseCommand(cmd: Uint8Array): ParsedCommand {
  const n = cmd.length;
  if (n < 4) throw new IsoError(SW.WRONG_LENGTH, `command APDU of ${n} bytes`);
  if (n === 4) return { case: 1, extended: false, lc: 0, le: 0 };
  const p3 = cmd[4];
  if (n === 5) return { case: 2, extended: false, lc: 0, le: p3 === 0 ? 256 : p3 };
  if (p3 !== 0) {
    if (n === 5 + p3) return { case: 3, extended: false, lc: p3, le: 0 };
    if (n === 6 + p3) return { case: 4, extended: false, lc: p3, le: cmd[n - 1] === 0 ? 256 : cmd[n - 1] };
    throw new IsoError(SW.WRONG_LENGTH, `Lc ${p3} does not match a ${n}-byte command`);
  }
  if (n < 7) throw new IsoError(SW.WRONG_LENGTH, `extended length field cut short (${n} bytes)`);
  const l = (cmd[5] << 8) | cmd[6];
  if (n === 7) return { case: 2, extended: true, lc: 0, le: l === 0 ? 65536 : l };
  if (l === 0) throw new IsoError(SW.WRONG_LENGTH, 'extended Lc of 0');
  if (n === 7 + l) return { case: 3, extended: true, lc: l, le: 0 };
  if (n === 9 + l) {
    const le = (cmd[n - 2] << 8) | cmd[n - 1];
    return { case: 4, extended: true, lc: l, le: le === 0 ? 65536 : le };
  }
  throw new IsoError(SW.WRONG_LENGTH, `extended Lc ${l} does not match a ${n}-byte command`);
}

/** Resets the state machine for a new command; returns the header the APDU buffer starts with. */
export function beginCommand(st: JcreState, cmd: Uint8Array): Uint8Array {
  const p = parseCommand(cmd);
  st.command = cmd;
  st.state = ApduState.INITIAL;
  st.lc = p.lc;
  st.le = p.le;
  st.extended = p.extended;
  st.received = 0;
  st.outgoingLength = 0;
  st.sent = 0;
  st.response = [];
  st.noChaining = false;
  const header = new Uint8Array(p.extended ? 7 : 5);
  header.set(cmd.subarray(0, Math.min(cmd.length, header.length)));
  return header;
}

const fault = (reason: number): ApiFault => new ApiFault(J.apdu, reason);
const inBlock = (st: JcreState): number => st.inBlockSize ?? DEFAULT_BLOCK_SIZE;
const cdata = (st: JcreState): number => (st.extended ? OFFSET_EXT_CDATA : OFFSET_CDATA);
const incoming = (st: JcreState): boolean => st.state === ApduState.PARTIAL_INCOMING || st.state === ApduState.FULL_INCOMING;

/** Where received bytes go: command[cmdOffset, +count) → buffer[bufOffset, +count). */
export interface ReceivePlan {
  cmdOffset: number;
  bufOffset: number;
  count: number;
}

function receive(st: JcreState, bOff: number, bufLen: number): ReceivePlan {
  const remaining = st.lc - st.received;
  if (remaining <= 0) {
    st.state = ApduState.FULL_INCOMING;
    return { cmdOffset: cdata(st) + st.received, bufOffset: bOff, count: 0 };
  }
  const ibs = inBlock(st);
  const space = bufLen - bOff;
  // "The space in the buffer must allow for incoming block size" (APDU.receiveBytes).
  if (bOff < 0 || space < Math.min(remaining, ibs)) throw fault(ApduReason.BUFFER_BOUNDS);
  // All remaining bytes when they fit, else as many whole blocks as fit.
  const count = remaining <= space ? remaining : Math.floor(space / ibs) * ibs;
  const plan = { cmdOffset: cdata(st) + st.received, bufOffset: bOff, count };
  st.received += count;
  st.state = st.received === st.lc ? ApduState.FULL_INCOMING : ApduState.PARTIAL_INCOMING;
  return plan;
}

/** APDU.setIncomingAndReceive: once, before any outgoing call; receives at OFFSET_CDATA / OFFSET_EXT_CDATA. */
export function setIncomingAndReceive(st: JcreState, bufLen: number): ReceivePlan {
  if (st.state !== ApduState.INITIAL) throw fault(ApduReason.ILLEGAL_USE);
  st.state = ApduState.PARTIAL_INCOMING;
  return receive(st, cdata(st), bufLen);
}

/** APDU.receiveBytes(bOff): after setIncomingAndReceive, before any outgoing call. */
export function receiveBytes(st: JcreState, bOff: number, bufLen: number): ReceivePlan {
  if (!incoming(st)) throw fault(ApduReason.ILLEGAL_USE);
  return receive(st, bOff, bufLen);
}

/** APDU.getIncomingLength: Lc (as a Java short). */
export function getIncomingLength(st: JcreState): number {
  if (!incoming(st)) throw fault(ApduReason.ILLEGAL_USE);
  return s16(st.lc);
}

/** APDU.getOffsetCdata: 5, or 7 for an extended Lc. */
export function getOffsetCdata(st: JcreState): number {
  if (!incoming(st)) throw fault(ApduReason.ILLEGAL_USE);
  return cdata(st);
}

/** Le as the applet sees it: 256 for a short 00, at most 32767 for extended lengths (JC 3 extended APDU limits). */
function appletLe(st: JcreState): number {
  return Math.min(st.le, 32767);
}

/** APDU.setOutgoing / setOutgoingNoChaining: direction outbound, returns Le; remaining incoming data is discarded. */
export function setOutgoing(st: JcreState, noChaining = false): number {
  if (st.state < 0 || st.state >= ApduState.OUTGOING) throw fault(ApduReason.ILLEGAL_USE);
  st.state = ApduState.OUTGOING;
  st.noChaining = noChaining;
  return appletLe(st);
}

/** APDU.setOutgoingLength: once, after setOutgoing; BAD_LENGTH per the APDUException.BAD_LENGTH rules. */
export function setOutgoingLength(st: JcreState, len: number): void {
  if (st.state !== ApduState.OUTGOING) throw fault(ApduReason.ILLEGAL_USE);
  if (len < 0) throw fault(ApduReason.BAD_LENGTH);
  if (len > 256 && !st.extendedLengthApplet) throw fault(ApduReason.BAD_LENGTH);
  if (st.noChaining) {
    if ((st.protocol ?? PROTOCOL_T1) === PROTOCOL_T0 ? len > 256 : st.outBlockSize !== undefined && len > st.outBlockSize - 2) {
      throw fault(ApduReason.BAD_LENGTH);
    }
  }
  st.outgoingLength = len;
  st.state = ApduState.OUTGOING_LENGTH_KNOWN;
}

function send(st: JcreState, src: Uint8Array, off: number, len: number, bounds: ApiFault): void {
  if (st.state < ApduState.OUTGOING_LENGTH_KNOWN) throw fault(ApduReason.ILLEGAL_USE);
  if (off < 0 || len < 0 || off + len > src.length) throw bounds;
  // More than setOutgoingLength announced: "response byte count exceeded" (APDU.sendBytes: ILLEGAL_USE).
  if (st.sent + len > st.outgoingLength) throw fault(ApduReason.ILLEGAL_USE);
  if (len > 0) st.response.push(src.slice(off, off + len));
  st.sent += len;
  st.state = st.sent === st.outgoingLength ? ApduState.FULL_OUTGOING : ApduState.PARTIAL_OUTGOING;
}

/** APDU.sendBytes(bOff, len) from the APDU buffer `buf`. */
export function sendBytes(st: JcreState, buf: Uint8Array, bOff: number, len: number): void {
  send(st, buf, bOff, len, fault(ApduReason.BUFFER_BOUNDS));
}

/** APDU.sendBytesLong(outData, bOff, len): a range outside outData is ArrayIndexOutOfBoundsException. */
export function sendBytesLong(st: JcreState, data: Uint8Array, bOff: number, len: number): void {
  send(st, data, bOff, len, new ApiFault(J.aioobe));
}

/** APDU.setOutgoingAndSend: setOutgoing + setOutgoingLength(len) + sendBytes(bOff, len). */
export function setOutgoingAndSend(st: JcreState, buf: Uint8Array, bOff: number, len: number): void {
  setOutgoing(st);
  setOutgoingLength(st, len);
  sendBytes(st, buf, bOff, len);
}

/** APDU.waitExtension: not allowed in no-chaining mode (JCRE §9.4.2.1); otherwise nothing to do over APDUs. */
export function waitExtension(st: JcreState): void {
  if (st.noChaining) throw fault(ApduReason.ILLEGAL_USE);
}

/** The response data of the command (JCRE §9.4.2.1: an unfinished no-chaining response is completed with zeros). */
export function responseData(st: JcreState): Uint8Array {
  const data = st.response.length === 1 ? st.response[0] : concat(...st.response);
  if (st.noChaining && st.sent < st.outgoingLength) return concat(data, new Uint8Array(st.outgoingLength - st.sent));
  return data;
}

// CLA byte classification (JC API APDU, ISO/IEC 7816-4:2005 §5.1.1).
export const isCommandChainingCLA = (cla: number): boolean => (cla & 0x10) !== 0;
/** Secure messaging: b4b3 for channels 0–3 (b7 = 0), b6 for channels 4–19 (b7 = 1). */
export const isSecureMessagingCLA = (cla: number): boolean => ((cla & 0x40) === 0 ? (cla & 0x0c) !== 0 : (cla & 0x20) !== 0);
export const isISOInterindustryCLA = (cla: number): boolean => (cla & 0x80) === 0;
/** Invalid: b8b7b6 = 001 (RFU) or 0xFF. */
export const isValidCLA = (cla: number): boolean => (cla & 0xe0) !== 0x20 && (cla & 0xff) !== 0xff;
/** APDU.getCLAChannel: b2b1 (first interindustry), b4–b1 + 4 (further interindustry); 0 for an invalid CLA. */
export function claChannel(cla: number): number {
  if (!isValidCLA(cla)) return 0;
  return (cla & 0x40) === 0 ? cla & 0x03 : (cla & 0x0f) + 4;
}

// ---------------------------------------------------------------------------------------------------------------
// Natives. Instance methods ignore `this`: there is one APDU object, the JCRE's (JcreState.apduObject).
// ---------------------------------------------------------------------------------------------------------------

/** Called by the runtime per command (step 3 above): resets the state, zeroes the buffer, writes the header. */
export function startCommand(vm: Vm, cmd: Uint8Array): void {
  const header = beginCommand(vm.jcre, cmd);
  const buf = vm.heap.array(vm.jcre.apduBuffer);
  vm.heap.fillBytes(buf, 0, buf.length, 0, false);
  vm.heap.writeBytes(buf, 0, header, false);
}

function apduBuffer(vm: Vm) {
  return vm.heap.array(vm.jcre.apduBuffer);
}

function applyReceive(vm: Vm, plan: ReceivePlan): number {
  if (plan.count > 0) {
    const st = vm.jcre;
    vm.heap.writeBytes(apduBuffer(vm), plan.bufOffset, st.command.subarray(plan.cmdOffset, plan.cmdOffset + plan.count), false);
  }
  return plan.count;
}

/** Runs state-machine logic; an ApiFault becomes the JCRE-owned APDUException / exception. */
function guarded(fn: NativeMethod): NativeMethod {
  return (vm, a) => {
    try {
      return fn(vm, a);
    } catch (e) {
      rethrow(vm, e);
    }
  };
}

const cla = (vm: Vm): number => apduBuffer(vm).data[0];

export const APDU_CLASS: NativeClassImpl = {
  name: 'javacard.framework.APDU',
  methods: {
    'getBuffer()[B': (vm) => vm.jcre.apduBuffer,
    'getNAD()B': () => 0,
    'getCurrentState()B': (vm) => vm.jcre.state,
    'setIncomingAndReceive()S': guarded((vm) => applyReceive(vm, setIncomingAndReceive(vm.jcre, apduBuffer(vm).length))),
    'receiveBytes(S)S': guarded((vm, a) => applyReceive(vm, receiveBytes(vm.jcre, a[1], apduBuffer(vm).length))),
    'getIncomingLength()S': guarded((vm) => getIncomingLength(vm.jcre)),
    'getOffsetCdata()S': guarded((vm) => getOffsetCdata(vm.jcre)),
    'setOutgoing()S': guarded((vm) => setOutgoing(vm.jcre, false)),
    'setOutgoingNoChaining()S': guarded((vm) => setOutgoing(vm.jcre, true)),
    'setOutgoingLength(S)V': guarded((vm, a) => setOutgoingLength(vm.jcre, a[1])),
    'sendBytes(SS)V': guarded((vm, a) => sendBytes(vm.jcre, apduBuffer(vm).data as Uint8Array, a[1], a[2])),
    'sendBytesLong([BSS)V': guarded((vm, a) => {
      sendBytesLong(vm.jcre, byteArray(vm, a[1]).data as Uint8Array, a[2], a[3]);
    }),
    'setOutgoingAndSend(SS)V': guarded((vm, a) => setOutgoingAndSend(vm.jcre, apduBuffer(vm).data as Uint8Array, a[1], a[2])),
    'isCommandChainingCLA()Z': (vm) => (isCommandChainingCLA(cla(vm)) ? 1 : 0),
    'isSecureMessagingCLA()Z': (vm) => (isSecureMessagingCLA(cla(vm)) ? 1 : 0),
    'isISOInterindustryCLA()Z': (vm) => (isISOInterindustryCLA(cla(vm)) ? 1 : 0),
    'isValidCLA()Z': (vm) => (isValidCLA(cla(vm)) ? 1 : 0),
    // Static methods.
    'getInBlockSize()S': (vm) => vm.jcre.inBlockSize ?? DEFAULT_BLOCK_SIZE,
    'getOutBlockSize()S': (vm) => vm.jcre.outBlockSize ?? DEFAULT_BLOCK_SIZE,
    'getProtocol()B': (vm) => vm.jcre.protocol ?? PROTOCOL_T1,
    'getCurrentAPDU()Ljavacard/framework/APDU;': (vm) => vm.jcre.apduObject,
    'getCurrentAPDUBuffer()[B': (vm) => vm.jcre.apduBuffer,
    'getCLAChannel()B': (vm) => claChannel(cla(vm)),
    'waitExtension()V': guarded((vm) => waitExtension(vm.jcre)),
  },
};
