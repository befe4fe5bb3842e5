// java.lang and javacard.framework natives: the APDU state machine alone, then Util, AID, JCSystem, OwnerPIN and the
// exception classes against the real heap over an in-memory store (test/helpers/vm-native.ts).
import { beforeEach, describe, expect, test } from 'vitest';
import { IsoError } from '../emulator/iso.ts';
import { PowerLoss } from '../emulator/store.ts';
import { fromHex, hex } from '../emulator/bytes.ts';
import * as A from '../emulator/vm/api/apdu.ts';
import { ApiFault, ApduReason, prepareJcreExceptions } from '../emulator/vm/api/exceptions.ts';
import { VmFault } from '../emulator/vm/exceptions.ts';
import { FRAMEWORK_CLASSES } from '../emulator/vm/api/framework.ts';
import { LANG_CLASSES } from '../emulator/vm/api/lang.ts';
import { createAidObject } from '../emulator/vm/api/aid.ts';
import { ArrayKind, Memory } from '../emulator/vm/types.ts';
import type { HeapArray, JcreState, LinkedClass, NativeMethod } from '../emulator/vm/types.ts';
import { jcreState, nativeHarness } from './helpers/vm-native.ts';
import type { NativeHarness } from './helpers/vm-native.ts';

const IMPLS = [...LANG_CLASSES, ...FRAMEWORK_CLASSES];
const S = A.ApduState;

/** A fresh JcreState holding this command (what the runtime does before process()). */
function cmd(text: string, extra: Partial<JcreState> = {}): JcreState {
  const st = { ...jcreState(), ...extra };
  A.beginCommand(st, fromHex(text));
  return st;
}

/** The APDUException reason an APDU state-machine call fails with. */
function apduFault(fn: () => unknown): number | undefined {
  try {
    fn();
  } catch (e) {
    if (e instanceof ApiFault && e.className === 'javacard.framework.APDUException') return e.reason;
    if (e instanceof ApiFault) return -1000 - e.reason;
    throw e;
  }
  return undefined;
}

describe('APDU: command parsing (ISO 7816-3 cases)', () => {
  test('short and extended cases decode Lc and Ne', () => {
    expect(A.parseCommand(fromHex('00A40400'))).toEqual({ case: 1, extended: false, lc: 0, le: 0 });
    expect(A.parseCommand(fromHex('00B0000000'))).toEqual({ case: 2, extended: false, lc: 0, le: 256 });
    expect(A.parseCommand(fromHex('00B0000010'))).toEqual({ case: 2, extended: false, lc: 0, le: 16 });
    expect(A.parseCommand(fromHex('00D6000002AABB'))).toEqual({ case: 3, extended: false, lc: 2, le: 0 });
    expect(A.parseCommand(fromHex('0088000002AABB00'))).toEqual({ case: 4, extended: false, lc: 2, le: 256 });
    expect(A.parseCommand(fromHex('00B0000000000'.padEnd(14, '0')))).toEqual({ case: 2, extended: true, lc: 0, le: 65536 });
    expect(A.parseCommand(fromHex('00B0000000012C'))).toEqual({ case: 2, extended: true, lc: 0, le: 300 });
    const data = '11'.repeat(300);
    expect(A.parseCommand(fromHex(`00DA000000012C${data}`))).toEqual({ case: 3, extended: true, lc: 300, le: 0 });
    expect(A.parseCommand(fromHex(`002A9E9A00012C${data}0000`))).toEqual({ case: 4, extended: true, lc: 300, le: 65536 });
  });

  test('malformed length fields are 6700', () => {
    for (const bad of ['00A404', '00D6000003AABB', '00D6000001AABBCCDD', '00B000000001', '00DA0000000000AA', '00DA00000000020102030405']) {
      let sw = 0;
      try {
        A.parseCommand(fromHex(bad));
      } catch (e) {
        sw = e instanceof IsoError ? e.sw : -1;
      }
      expect(sw, bad).toBe(0x6700);
    }
  });

  test('the buffer header is CLA INS P1 P2 P3, or the 7-byte extended form', () => {
    const st = jcreState();
    expect(hex(A.beginCommand(st, fromHex('80CA9F7F')))).toBe('80CA9F7F00');
    expect(hex(A.beginCommand(st, fromHex('00D6000002AABB')))).toBe('00D6000002');
    expect(hex(A.beginCommand(st, fromHex(`00DA000000012C${'11'.repeat(300)}`)))).toBe('00DA000000012C');
    expect(st.state).toBe(S.INITIAL);
    expect(st.lc).toBe(300);
    expect(st.extended).toBe(true);
  });
});

describe('APDU state machine', () => {
  test('case 1: nothing to receive, no response', () => {
    const st = cmd('00700000');
    const plan = A.setIncomingAndReceive(st, 261);
    expect(plan.count).toBe(0);
    expect(st.state).toBe(S.FULL_INCOMING);
    expect(A.getIncomingLength(st)).toBe(0);
    expect(A.responseData(st).length).toBe(0);
  });

  test('case 2: setOutgoing gives Le (00 = 256), then length and send', () => {
    const st = cmd('00B0000000');
    expect(A.setOutgoing(st)).toBe(256);
    expect(st.state).toBe(S.OUTGOING);
    A.setOutgoingLength(st, 3);
    expect(st.state).toBe(S.OUTGOING_LENGTH_KNOWN);
    const buf = Uint8Array.from([9, 8, 7, 6, 5]);
    A.sendBytes(st, buf, 1, 2);
    expect(st.state).toBe(S.PARTIAL_OUTGOING);
    A.sendBytes(st, buf, 4, 1);
    expect(st.state).toBe(S.FULL_OUTGOING);
    expect(hex(A.responseData(st))).toBe('080705');
  });

  test('case 3: all data received at OFFSET_CDATA; getOffsetCdata 5', () => {
    const st = cmd('00D6000003AABBCC');
    expect(apduFault(() => A.getIncomingLength(st))).toBe(ApduReason.ILLEGAL_USE);
    const plan = A.setIncomingAndReceive(st, 261);
    expect(plan).toEqual({ cmdOffset: 5, bufOffset: 5, count: 3 });
    expect(st.state).toBe(S.FULL_INCOMING);
    expect(A.getIncomingLength(st)).toBe(3);
    expect(A.getOffsetCdata(st)).toBe(5);
    expect(A.receiveBytes(st, 5, 261).count).toBe(0);
    expect(apduFault(() => A.setIncomingAndReceive(st, 261))).toBe(ApduReason.ILLEGAL_USE);
  });

  test('case 4: receive then setOutgoingAndSend; Le 0 reported for case 3/4 without Le', () => {
    const st = cmd('0088000002AABB10');
    A.setIncomingAndReceive(st, 261);
    expect(A.setOutgoing(st)).toBe(16);
    A.setOutgoingLength(st, 2);
    A.sendBytes(st, Uint8Array.from([1, 2, 3]), 0, 2);
    expect(hex(A.responseData(st))).toBe('0102');
    const st2 = cmd('0088000002AABB');
    A.setIncomingAndReceive(st2, 261);
    A.setOutgoingAndSend(st2, Uint8Array.from([5, 6, 7, 8]), 1, 3);
    expect(st2.state).toBe(S.FULL_OUTGOING);
    expect(hex(A.responseData(st2))).toBe('060708');
    expect(apduFault(() => A.sendBytes(st2, new Uint8Array(8), 0, 1))).toBe(ApduReason.ILLEGAL_USE);
  });

  test('extended case 3E: offset 7, data arrives in whole in-blocks that fit', () => {
    const data = Uint8Array.from({ length: 600 }, (_, i) => i & 0xff);
    const st = cmd(`00DA00000258${hex(data)}`.replace('00DA00000258', '00DA0000000258'), { extendedLengthApplet: true });
    expect(st.lc).toBe(600);
    const got = new Uint8Array(261);
    const apply = (p: A.ReceivePlan) => got.set(st.command.subarray(p.cmdOffset, p.cmdOffset + p.count), p.bufOffset);
    const first = A.setIncomingAndReceive(st, 261);
    expect(first).toEqual({ cmdOffset: 7, bufOffset: 7, count: 254 });
    apply(first);
    expect(hex(got.subarray(7, 261))).toBe(hex(data.subarray(0, 254)));
    expect(st.state).toBe(S.PARTIAL_INCOMING);
    expect(A.getOffsetCdata(st)).toBe(7);
    const second = A.receiveBytes(st, 0, 261);
    expect(second.count).toBe(254);
    apply(second);
    expect(hex(got.subarray(0, 254))).toBe(hex(data.subarray(254, 508)));
    const third = A.receiveBytes(st, 0, 261);
    expect(third.count).toBe(92);
    expect(st.state).toBe(S.FULL_INCOMING);
    expect(st.received).toBe(600);
  });

  test('receiveBytes with a small in-block size: block-sized chunks and BUFFER_BOUNDS', () => {
    const st = cmd(`00D60000C8${'5A'.repeat(200)}`, { inBlockSize: 32 });
    // 128 bytes of room after the header: four whole 32-byte blocks.
    expect(A.setIncomingAndReceive(st, 133).count).toBe(128);
    // Room for fewer than one block (and fewer than the 72 remaining bytes).
    expect(apduFault(() => A.receiveBytes(st, 120, 133))).toBe(ApduReason.BUFFER_BOUNDS);
    expect(apduFault(() => A.receiveBytes(st, -1, 133))).toBe(ApduReason.BUFFER_BOUNDS);
    expect(A.receiveBytes(st, 100, 133).count).toBe(32);
    expect(A.receiveBytes(st, 5, 133).count).toBe(40);
    expect(st.state).toBe(S.FULL_INCOMING);
    expect(A.receiveBytes(st, 5, 133).count).toBe(0);
  });

  test('illegal orders of calls are ILLEGAL_USE', () => {
    const st = cmd('0088000002AABB00');
    expect(apduFault(() => A.receiveBytes(st, 5, 261))).toBe(ApduReason.ILLEGAL_USE);
    expect(apduFault(() => A.setOutgoingLength(st, 1))).toBe(ApduReason.ILLEGAL_USE);
    expect(apduFault(() => A.sendBytes(st, new Uint8Array(10), 0, 1))).toBe(ApduReason.ILLEGAL_USE);
    A.setOutgoing(st);
    expect(apduFault(() => A.setOutgoing(st))).toBe(ApduReason.ILLEGAL_USE);
    expect(apduFault(() => A.setOutgoing(st, true))).toBe(ApduReason.ILLEGAL_USE);
    expect(apduFault(() => A.setIncomingAndReceive(st, 261))).toBe(ApduReason.ILLEGAL_USE);
    expect(apduFault(() => A.receiveBytes(st, 5, 261))).toBe(ApduReason.ILLEGAL_USE);
    expect(apduFault(() => A.getIncomingLength(st))).toBe(ApduReason.ILLEGAL_USE);
    expect(apduFault(() => A.setOutgoingAndSend(st, new Uint8Array(10), 0, 1))).toBe(ApduReason.ILLEGAL_USE);
    A.setOutgoingLength(st, 4);
    expect(apduFault(() => A.setOutgoingLength(st, 4))).toBe(ApduReason.ILLEGAL_USE);
  });

  test('setOutgoingLength: BAD_LENGTH rules (negative, > 256 without ExtendedLength, no-chaining limits)', () => {
    const neg = cmd('00B0000000');
    A.setOutgoing(neg);
    expect(apduFault(() => A.setOutgoingLength(neg, -1))).toBe(ApduReason.BAD_LENGTH);
    const big = cmd('00B0000000');
    A.setOutgoing(big);
    expect(apduFault(() => A.setOutgoingLength(big, 257))).toBe(ApduReason.BAD_LENGTH);
    const ext = cmd('00B00000000000', { extendedLengthApplet: true });
    expect(A.setOutgoing(ext)).toBe(32767);
    A.setOutgoingLength(ext, 1000);
    expect(ext.outgoingLength).toBe(1000);
    const t1 = cmd('00B0000000', { outBlockSize: 254 });
    A.setOutgoing(t1, true);
    expect(apduFault(() => A.setOutgoingLength(t1, 253))).toBe(ApduReason.BAD_LENGTH);
    const t1ok = cmd('00B0000000', { outBlockSize: 254 });
    A.setOutgoing(t1ok, true);
    A.setOutgoingLength(t1ok, 252);
    const t0 = cmd('00B00000000000', { protocol: A.PROTOCOL_T0, extendedLengthApplet: true });
    A.setOutgoing(t0, true);
    expect(apduFault(() => A.setOutgoingLength(t0, 257))).toBe(ApduReason.BAD_LENGTH);
  });

  test('sending more than setOutgoingLength is refused (APDU.sendBytes: response byte count exceeded → ILLEGAL_USE)', () => {
    const st = cmd('00B0000000');
    A.setOutgoing(st);
    A.setOutgoingLength(st, 4);
    const buf = Uint8Array.from([1, 2, 3, 4, 5, 6]);
    A.sendBytes(st, buf, 0, 3);
    expect(apduFault(() => A.sendBytes(st, buf, 3, 2))).toBe(ApduReason.ILLEGAL_USE);
    expect(st.sent).toBe(3);
    A.sendBytesLong(st, buf, 5, 1);
    expect(hex(A.responseData(st))).toBe('01020306');
    expect(apduFault(() => A.sendBytesLong(st, buf, 0, 1))).toBe(ApduReason.ILLEGAL_USE);
  });

  test('send ranges: BUFFER_BOUNDS for the APDU buffer, ArrayIndexOutOfBounds for sendBytesLong', () => {
    const st = cmd('00B0000000');
    A.setOutgoing(st);
    A.setOutgoingLength(st, 10);
    expect(apduFault(() => A.sendBytes(st, new Uint8Array(8), 6, 4))).toBe(ApduReason.BUFFER_BOUNDS);
    expect(apduFault(() => A.sendBytes(st, new Uint8Array(8), -1, 2))).toBe(ApduReason.BUFFER_BOUNDS);
    let cls = '';
    try {
      A.sendBytesLong(st, new Uint8Array(8), 6, 4);
    } catch (e) {
      cls = (e as ApiFault).className;
    }
    expect(cls).toBe('java.lang.ArrayIndexOutOfBoundsException');
    expect(st.sent).toBe(0);
  });

  test('no-chaining: unfinished response padded with zeros; waitExtension refused', () => {
    const st = cmd('00B0000000');
    A.waitExtension(st);
    A.setOutgoing(st, true);
    A.setOutgoingLength(st, 4);
    A.sendBytes(st, Uint8Array.from([0xaa, 0xbb]), 0, 2);
    expect(hex(A.responseData(st))).toBe('AABB0000');
    expect(apduFault(() => A.waitExtension(st))).toBe(ApduReason.ILLEGAL_USE);
    // The next command starts clean.
    A.beginCommand(st, fromHex('00B0000000'));
    A.waitExtension(st);
    expect(st.response).toEqual([]);
  });

  test('CLA classification and channel numbers', () => {
    expect(A.isCommandChainingCLA(0x10)).toBe(true);
    expect(A.isCommandChainingCLA(0x00)).toBe(false);
    expect(A.isSecureMessagingCLA(0x0c)).toBe(true);
    expect(A.isSecureMessagingCLA(0x04)).toBe(true);
    expect(A.isSecureMessagingCLA(0x03)).toBe(false);
    expect(A.isSecureMessagingCLA(0x60)).toBe(true);
    expect(A.isSecureMessagingCLA(0x4f)).toBe(false);
    expect(A.isISOInterindustryCLA(0x84)).toBe(false);
    expect(A.isISOInterindustryCLA(0x00)).toBe(true);
    expect(A.isValidCLA(0x20)).toBe(false);
    expect(A.isValidCLA(0xff)).toBe(false);
    expect(A.isValidCLA(0x80)).toBe(true);
    expect(A.claChannel(0x03)).toBe(3);
    expect(A.claChannel(0x81)).toBe(1);
    expect(A.claChannel(0x40)).toBe(4);
    expect(A.claChannel(0x4f)).toBe(19);
    expect(A.claChannel(0x3f)).toBe(0);
  });
});

/** The harness with an APDU buffer and object in place. */
function withApdu(h: NativeHarness): HeapArray {
  const buf = h.heap.newArray(ArrayKind.Byte, 261, Memory.ClearOnReset, 0);
  h.heap.makeGlobal(buf.ref);
  const apdu = h.heap.newInstance(h.vm.apiClass('javacard.framework.APDU'), 0);
  h.heap.makeGlobal(apdu.ref, true);
  h.vm.jcre.apduBuffer = buf.ref;
  h.vm.jcre.apduObject = apdu.ref;
  return buf;
}

describe('APDU natives over the heap', () => {
  let h: NativeHarness;
  let buf: HeapArray;
  const APDU = 'javacard.framework.APDU';
  beforeEach(() => {
    h = nativeHarness(IMPLS);
    buf = withApdu(h);
  });

  test('startCommand zeroes the buffer and writes the header; receive and send move bytes', () => {
    (buf.data as Uint8Array).fill(0xee);
    A.startCommand(h.vm, fromHex('8010000003010203'));
    const apdu = h.vm.jcre.apduObject;
    expect(hex(h.read(buf).subarray(0, 10))).toBe('80100000030000000000');
    expect(h.call(APDU, 'getBuffer()[B', [apdu])).toBe(buf.ref);
    expect(h.call(APDU, 'setIncomingAndReceive()S', [apdu])).toBe(3);
    expect(hex(h.read(buf).subarray(0, 9))).toBe('801000000301020300');
    expect(h.call(APDU, 'getCurrentState()B', [apdu])).toBe(S.FULL_INCOMING);
    expect(h.call(APDU, 'setOutgoing()S', [apdu])).toBe(0);
    h.call(APDU, 'setOutgoingLength(S)V', [apdu, 2]);
    h.call(APDU, 'sendBytes(SS)V', [apdu, 5, 2]);
    const data = h.bytes([0x42, 0x43]);
    expect(h.thrown(() => h.call(APDU, 'sendBytesLong([BSS)V', [apdu, data.ref, 0, 1]))).toMatchObject({
      cls: 'javacard.framework.APDUException',
      reason: ApduReason.ILLEGAL_USE,
    });
    expect(hex(A.responseData(h.vm.jcre))).toBe('0102');
    expect(h.call(APDU, 'getCLAChannel()B')).toBe(0);
    expect(h.call(APDU, 'isISOInterindustryCLA()Z', [apdu])).toBe(0);
    expect(h.call(APDU, 'getProtocol()B')).toBe(A.PROTOCOL_T1);
    expect(h.call(APDU, 'getInBlockSize()S')).toBe(254);
  });

  test('APDUException is one JCRE-owned temporary entry point, reused, readable from any context', () => {
    A.startCommand(h.vm, fromHex('00B0000000'));
    const apdu = h.vm.jcre.apduObject;
    h.call(APDU, 'setOutgoing()S', [apdu]);
    const first = h.thrown(() => h.call(APDU, 'setOutgoing()S', [apdu]));
    expect(first).toMatchObject({ cls: 'javacard.framework.APDUException', reason: ApduReason.ILLEGAL_USE });
    const second = h.thrown(() => h.call(APDU, 'setOutgoingLength(S)V', [apdu, -5]));
    expect(second).toMatchObject({ cls: 'javacard.framework.APDUException', reason: ApduReason.BAD_LENGTH });
    expect(second!.ref).toBe(first!.ref);
    h.vm.context = 7;
    expect(h.call('javacard.framework.CardRuntimeException', 'getReason()S', [second!.ref])).toBe(ApduReason.BAD_LENGTH);
  });
});

describe('Util', () => {
  let h: NativeHarness;
  const U = 'javacard.framework.Util';
  beforeEach(() => {
    h = nativeHarness(IMPLS);
  });

  test('arrayCopy copies and returns destOff + length; overlapping ranges copy as through a temporary', () => {
    const src = h.bytes([1, 2, 3, 4, 5]);
    const dst = h.bytes(new Array(8).fill(0));
    expect(h.call(U, 'arrayCopy([BS[BSS)S', [src.ref, 1, dst.ref, 2, 3])).toBe(5);
    expect(hex(h.read(dst))).toBe('0000020304000000');
    expect(h.call(U, 'arrayCopyNonAtomic([BS[BSS)S', [src.ref, 0, src.ref, 1, 4])).toBe(5);
    expect(hex(h.read(src))).toBe('0101020304');
    expect(h.call(U, 'arrayCopy([BS[BSS)S', [dst.ref, 2, dst.ref, 0, 3])).toBe(3);
    expect(hex(h.read(dst))).toBe('0203040304000000');
  });

  test('bad ranges and nulls are refused before any byte changes', () => {
    const src = h.bytes([1, 2, 3, 4]);
    const dst = h.bytes([9, 9, 9]);
    const cases: [number, number, number, number, number, string][] = [
      [src.ref, 0, dst.ref, 1, 3, 'java.lang.ArrayIndexOutOfBoundsException'],
      [src.ref, 2, dst.ref, 0, 3, 'java.lang.ArrayIndexOutOfBoundsException'],
      [src.ref, -1, dst.ref, 0, 1, 'java.lang.ArrayIndexOutOfBoundsException'],
      [src.ref, 0, dst.ref, 0, -1, 'java.lang.ArrayIndexOutOfBoundsException'],
      [0, 0, dst.ref, 0, 1, 'java.lang.NullPointerException'],
      [src.ref, 0, 0, 0, 1, 'java.lang.NullPointerException'],
    ];
    for (const [s, so, d, dof, n, cls] of cases) {
      for (const sig of ['arrayCopy([BS[BSS)S', 'arrayCopyNonAtomic([BS[BSS)S']) {
        expect(h.thrown(() => h.call(U, sig, [s, so, d, dof, n]))?.cls, `${sig} ${so} ${dof} ${n}`).toBe(cls);
        expect(hex(h.read(dst))).toBe('090909');
      }
    }
    expect(h.thrown(() => h.call(U, 'arrayFillNonAtomic([BSSB)S', [dst.ref, 2, 2, 0]))?.cls).toBe('java.lang.ArrayIndexOutOfBoundsException');
    expect(h.thrown(() => h.call(U, 'getShort([BS)S', [dst.ref, 2]))?.cls).toBe('java.lang.ArrayIndexOutOfBoundsException');
    expect(h.thrown(() => h.call(U, 'setShort([BSS)S', [dst.ref, 2, 1]))?.cls).toBe('java.lang.ArrayIndexOutOfBoundsException');
    expect(hex(h.read(dst))).toBe('090909');
  });

  test('arrayCopy takes part in a transaction, arrayCopyNonAtomic does not', () => {
    const src = h.bytes([7, 7]);
    const a = h.bytes([0, 0]);
    const b = h.bytes([0, 0]);
    h.heap.flush();
    h.call('javacard.framework.JCSystem', 'beginTransaction()V');
    h.call(U, 'arrayCopy([BS[BSS)S', [src.ref, 0, a.ref, 0, 2]);
    h.call(U, 'arrayCopyNonAtomic([BS[BSS)S', [src.ref, 0, b.ref, 0, 2]);
    h.call(U, 'arrayFill([BSSB)S', [b.ref, 1, 1, 5]);
    h.call('javacard.framework.JCSystem', 'abortTransaction()V');
    expect(hex(h.read(a))).toBe('0000');
    expect(hex(h.read(b))).toBe('0707');
  });

  test('an atomic copy cut by power loss is all or nothing after power-up', () => {
    const src = h.bytes(new Array(200).fill(0x33));
    const dst = h.bytes(new Array(200).fill(0x11));
    h.heap.flush();
    h.heap.armTear(1);
    expect(() => h.call(U, 'arrayCopy([BS[BSS)S', [src.ref, 0, dst.ref, 0, 200])).toThrow(PowerLoss);
    h.heap.powerUp();
    expect(h.read(dst.ref).every((x) => x === 0x11)).toBe(true);
  });

  test('arrayCompare is signed, -1/0/1; fill, getShort/setShort/makeShort', () => {
    const x = h.bytes([1, 0x80, 3]);
    const y = h.bytes([1, 0x7f, 3]);
    expect(h.call(U, 'arrayCompare([BS[BSS)B', [x.ref, 0, y.ref, 0, 3])).toBe(-1);
    expect(h.call(U, 'arrayCompare([BS[BSS)B', [y.ref, 0, x.ref, 0, 3])).toBe(1);
    expect(h.call(U, 'arrayCompare([BS[BSS)B', [x.ref, 2, y.ref, 2, 1])).toBe(0);
    expect(h.call(U, 'arrayCompare([BS[BSS)B', [x.ref, 0, y.ref, 0, 0])).toBe(0);
    expect(h.thrown(() => h.call(U, 'arrayCompare([BS[BSS)B', [x.ref, 0, 0, 0, 1]))?.cls).toBe('java.lang.NullPointerException');
    expect(h.call(U, 'arrayFillNonAtomic([BSSB)S', [x.ref, 1, 2, -1])).toBe(3);
    expect(hex(h.read(x))).toBe('01FFFF');
    expect(h.call(U, 'getShort([BS)S', [x.ref, 1])).toBe(-1);
    expect(h.call(U, 'setShort([BSS)S', [x.ref, 0, 0x1234])).toBe(2);
    expect(hex(h.read(x))).toBe('1234FF');
    expect(h.call(U, 'makeShort(BB)S', [-128, -1])).toBe(-32513);
    expect(h.call(U, 'getShort([BS)S', [x.ref, 0])).toBe(0x1234);
  });
});

describe('AID', () => {
  let h: NativeHarness;
  const AID = 'javacard.framework.AID';
  beforeEach(() => {
    h = nativeHarness(IMPLS);
  });
  const newAid = (bytes: string): number => {
    const src = h.bytes(fromHex(`FF${bytes}`));
    const o = h.heap.newInstance(h.vm.apiClass(AID), h.vm.context);
    h.call(AID, '<init>([BSB)V', [o.ref, src.ref, 1, bytes.length / 2]);
    return o.ref;
  };

  test('constructor checks 5..16 bytes; equals, partialEquals, RIDEquals', () => {
    const short = h.bytes([1, 2, 3, 4]);
    const o = h.heap.newInstance(h.vm.apiClass(AID), 0);
    expect(h.thrown(() => h.call(AID, '<init>([BSB)V', [o.ref, short.ref, 0, 4]))).toMatchObject({
      cls: 'javacard.framework.SystemException',
      reason: 1,
    });
    const a = newAid('A000000151000000');
    const b = newAid('A000000151000000');
    const c = newAid('A000000151535041');
    const d = newAid('A000000003000000');
    expect(h.call(AID, 'equals(Ljava/lang/Object;)Z', [a, b])).toBe(1);
    expect(h.call(AID, 'equals(Ljava/lang/Object;)Z', [a, c])).toBe(0);
    expect(h.call(AID, 'equals(Ljava/lang/Object;)Z', [a, 0])).toBe(0);
    expect(h.call(AID, 'equals(Ljava/lang/Object;)Z', [a, short.ref])).toBe(0);
    expect(h.call(AID, 'RIDEquals(Ljavacard/framework/AID;)Z', [a, c])).toBe(1);
    expect(h.call(AID, 'RIDEquals(Ljavacard/framework/AID;)Z', [a, d])).toBe(0);
    const raw = h.bytes(fromHex('00A000000151000000'));
    expect(h.call(AID, 'equals([BSB)Z', [a, raw.ref, 1, 8])).toBe(1);
    expect(h.call(AID, 'equals([BSB)Z', [a, raw.ref, 1, 7])).toBe(0);
    expect(h.call(AID, 'equals([BSB)Z', [a, 0, 1, 7])).toBe(0);
    expect(h.call(AID, 'partialEquals([BSB)Z', [a, raw.ref, 1, 7])).toBe(1);
    expect(h.call(AID, 'partialEquals([BSB)Z', [c, raw.ref, 1, 7])).toBe(0);
    expect(h.thrown(() => h.call(AID, 'equals([BSB)Z', [a, raw.ref, 2, 8]))?.cls).toBe('java.lang.ArrayIndexOutOfBoundsException');
  });

  test('getBytes and getPartialBytes (length 0 = rest of the AID)', () => {
    const a = newAid('A0000001515350');
    const out = h.bytes(new Array(10).fill(0));
    expect(h.call(AID, 'getBytes([BS)B', [a, out.ref, 2])).toBe(7);
    expect(hex(h.read(out))).toBe('0000A000000151535000');
    expect(h.call(AID, 'getPartialBytes(S[BSB)B', [a, 5, out.ref, 0, 0])).toBe(2);
    expect(hex(h.read(out).subarray(0, 2))).toBe('5350');
    expect(h.call(AID, 'getPartialBytes(S[BSB)B', [a, 1, out.ref, 0, 3])).toBe(3);
    expect(hex(h.read(out).subarray(0, 3))).toBe('000001');
    expect(h.thrown(() => h.call(AID, 'getPartialBytes(S[BSB)B', [a, 6, out.ref, 0, 2]))?.cls).toBe('java.lang.ArrayIndexOutOfBoundsException');
    expect(h.thrown(() => h.call(AID, 'getBytes([BS)B', [a, out.ref, 4]))?.cls).toBe('java.lang.ArrayIndexOutOfBoundsException');
  });

  test('JCRE AID objects are permanent entry points usable from any context', () => {
    const ref = createAidObject(h.vm, fromHex('A0000001515350'));
    h.vm.context = 9;
    const mine = newAid('A0000001515350');
    expect(h.call(AID, 'equals(Ljava/lang/Object;)Z', [mine, ref])).toBe(1);
    expect(h.heap.instance(ref).entryPoint).toBe('permanent');
  });
});

describe('JCSystem and Applet', () => {
  let h: NativeHarness;
  const J = 'javacard.framework.JCSystem';
  beforeEach(() => {
    h = nativeHarness(IMPLS);
  });

  test('transient arrays: kinds, events, isTransient, refusals', () => {
    h.vm.context = 3;
    const r = h.call(J, 'makeTransientByteArray(SB)[B', [16, Memory.ClearOnDeselect]) as number;
    const arr = h.heap.array(r);
    expect([arr.kind, arr.length, arr.memory, arr.owner]).toEqual([ArrayKind.Byte, 16, Memory.ClearOnDeselect, 3]);
    expect(h.call(J, 'isTransient(Ljava/lang/Object;)B', [r])).toBe(Memory.ClearOnDeselect);
    const s = h.call(J, 'makeTransientShortArray(SB)[S', [4, Memory.ClearOnReset]) as number;
    expect(h.heap.array(s).kind).toBe(ArrayKind.Short);
    const o = h.call(J, 'makeTransientObjectArray(SB)[Ljava/lang/Object;', [2, 1]) as number;
    expect(h.heap.array(o).kind).toBe(ArrayKind.Reference);
    expect(h.call(J, 'isTransient(Ljava/lang/Object;)B', [h.bytes([1]).ref])).toBe(0);
    expect(h.thrown(() => h.call(J, 'makeTransientBooleanArray(SB)[Z', [4, 3]))).toMatchObject({ cls: 'javacard.framework.SystemException', reason: 1 });
    expect(h.thrown(() => h.call(J, 'makeTransientByteArray(SB)[B', [-1, 1]))?.cls).toBe('java.lang.NegativeArraySizeException');
    expect(h.thrown(() => h.call(J, 'makeTransientByteArray(SB)[B', [8000, 1]))).toMatchObject({ cls: 'javacard.framework.SystemException', reason: 2 });
    const g = h.call(J, 'makeGlobalArray(BS)Ljava/lang/Object;', [2, 8]) as number;
    expect(h.heap.array(g).global).toBe(true);
  });

  test('version, transactions, capacities, memory', () => {
    expect(h.call(J, 'getVersion()S')).toBe(0x0305);
    expect(h.call(J, 'getTransactionDepth()B')).toBe(0);
    expect(h.thrown(() => h.call(J, 'commitTransaction()V'))).toMatchObject({ cls: 'javacard.framework.TransactionException', reason: 2 });
    expect(h.thrown(() => h.call(J, 'abortTransaction()V'))).toMatchObject({ cls: 'javacard.framework.TransactionException', reason: 2 });
    h.call(J, 'beginTransaction()V');
    expect(h.thrown(() => h.call(J, 'beginTransaction()V'))).toMatchObject({ cls: 'javacard.framework.TransactionException', reason: 1 });
    expect(h.call(J, 'getTransactionDepth()B')).toBe(1);
    h.call(J, 'commitTransaction()V');
    expect(h.call(J, 'getMaxCommitCapacity()S')).toBe(1024);
    expect(h.call(J, 'getUnusedCommitCapacity()S')).toBe(1024);
    expect(h.call(J, 'getAvailableMemory(B)S', [0])).toBe(32767);
    expect(h.call(J, 'getAvailableMemory(B)S', [1])).toBe(h.heap.availableMemory(Memory.ClearOnReset));
    expect(h.thrown(() => h.call(J, 'getAvailableMemory(B)S', [3]))).toMatchObject({ cls: 'javacard.framework.SystemException', reason: 1 });
    const buf = h.heap.newArray(ArrayKind.Short, 3, Memory.Persistent, 0);
    h.call(J, 'getAvailableMemory([SSB)V', [buf.ref, 1, 0]);
    const n = h.heap.availableMemory(Memory.Persistent);
    const d = buf.data as Int16Array;
    expect([d[0], ((d[1] & 0xffff) << 16) | (d[2] & 0xffff)]).toEqual([0, n]);
    expect(h.thrown(() => h.call(J, 'getAvailableMemory([SSB)V', [buf.ref, 2, 0]))?.cls).toBe('java.lang.ArrayIndexOutOfBoundsException');
  });

  test('AIDs of contexts, lookupAID, isAppletActive, channel', () => {
    h.installed.add('A000000151000001');
    h.active.add('A000000151000001');
    h.vm.currentApplet = 'A000000151000001';
    const aid = h.call(J, 'getAID()Ljavacard/framework/AID;') as number;
    expect(aid).not.toBe(0);
    expect(h.call(J, 'getPreviousContextAID()Ljavacard/framework/AID;')).toBe(0);
    const raw = h.bytes(fromHex('A000000151000001'));
    expect(h.call(J, 'lookupAID([BSB)Ljavacard/framework/AID;', [raw.ref, 0, 8])).toBe(aid);
    expect(h.call(J, 'lookupAID([BSB)Ljavacard/framework/AID;', [raw.ref, 0, 7])).toBe(0);
    expect(h.call(J, 'isAppletActive(Ljavacard/framework/AID;)Z', [aid])).toBe(1);
    expect(h.call(J, 'isAppletActive(Ljavacard/framework/AID;)Z', [0])).toBe(0);
    h.vm.jcre.channel = 2;
    expect(h.call(J, 'getAssignedChannel()B')).toBe(2);
  });

  test('Applet: register with and without AID bytes, selectingApplet, base install refused', () => {
    const A_ = 'javacard.framework.Applet';
    h.call(A_, 'register()V', [42]);
    const raw = h.bytes(fromHex('00A00000015101'));
    h.call(A_, 'register([BSB)V', [43, raw.ref, 1, 6]);
    expect(h.registered.map((r) => [r.applet, r.aid && hex(r.aid)])).toEqual([[42, null], [43, 'A00000015101']]);
    expect(h.thrown(() => h.call(A_, 'register([BSB)V', [44, raw.ref, 1, 4]))).toMatchObject({ cls: 'javacard.framework.SystemException', reason: 1 });
    expect(h.call(A_, 'selectingApplet()Z', [42])).toBe(0);
    h.vm.jcre.selecting = true;
    expect(h.call(A_, 'selectingApplet()Z', [42])).toBe(1);
    expect(h.thrown(() => h.call(A_, 'install([BSB)V', [0, 0, 0]))).toMatchObject({ cls: 'javacard.framework.ISOException', reason: 0x6a81 });
  });
});

describe('exceptions and java.lang', () => {
  let h: NativeHarness;
  beforeEach(() => {
    h = nativeHarness(IMPLS);
  });

  test('throwIt raises the reusable JCRE instance with the reason; subclasses inherit getReason', () => {
    const a = h.thrown(() => h.call('javacard.framework.ISOException', 'throwIt(S)V', [0x6a82]));
    expect(a).toMatchObject({ cls: 'javacard.framework.ISOException', reason: 0x6a82 });
    const b = h.thrown(() => h.call('javacard.framework.ISOException', 'throwIt(S)V', [-28672]));
    expect(b!.ref).toBe(a!.ref);
    expect(h.call('javacard.framework.ISOException', 'getReason()S', [b!.ref])).toBe(-28672);
    expect(h.heap.instance(a!.ref).entryPoint).toBe('temporary');
    for (const [cls, reason] of [
      ['javacard.framework.PINException', 1],
      ['javacard.framework.SystemException', 6],
      ['javacard.framework.TransactionException', 3],
      ['javacard.framework.CardException', 9],
      ['javacard.framework.UserException', 4],
      ['javacard.framework.CardRuntimeException', 2],
      ['javacard.framework.service.ServiceException', 5],
    ] as const) {
      expect(h.thrown(() => h.call(cls, 'throwIt(S)V', [reason]))).toMatchObject({ cls, reason });
    }
  });

  test('the JCRE instance costs no persistent write per throw and survives power-up as a heap root', () => {
    const first = h.thrown(() => h.call('javacard.framework.ISOException', 'throwIt(S)V', [0x6700]))!;
    const writes = h.heap.writeCount;
    h.heap.armTear(1);
    expect(h.thrown(() => h.call('javacard.framework.ISOException', 'throwIt(S)V', [0x6982]))).toMatchObject({ reason: 0x6982 });
    h.heap.disarmTear();
    expect(h.heap.writeCount).toBe(writes);
    h.heap.flush();
    h.heap.powerUp();
    expect(h.thrown(() => h.call('javacard.framework.ISOException', 'throwIt(S)V', [0x6a80]))).toMatchObject({ ref: first.ref, reason: 0x6a80 });
  });

  test('a full heap: prepared JCRE exceptions still throw; unprepared ones end the command with a VmFault', () => {
    const fill = (x: NativeHarness) => {
      for (let n = x.heap.availableMemory(Memory.Persistent); n > 8; n = x.heap.availableMemory(Memory.Persistent)) {
        x.heap.newArray(ArrayKind.Byte, Math.min(0x7fff, n - 8), Memory.Persistent, 0);
      }
    };
    const J_ = 'javacard.framework.JCSystem';
    prepareJcreExceptions(h.vm);
    fill(h);
    expect(h.thrown(() => h.call(J_, 'makeTransientByteArray(SB)[B', [1, 1]))).toMatchObject({ cls: 'javacard.framework.SystemException', reason: 5 });
    const bare = nativeHarness(IMPLS);
    fill(bare);
    expect(() => bare.call(J_, 'makeTransientByteArray(SB)[B', [1, 1])).toThrow(VmFault);
  });

  test('an applet-owned exception keeps its reason in the object (constructor, setReason)', () => {
    h.vm.context = 5;
    const o = h.heap.newInstance(h.vm.apiClass('javacard.framework.ISOException'), 5);
    h.call('javacard.framework.ISOException', '<init>(S)V', [o.ref, 0x6985]);
    expect(h.call('javacard.framework.ISOException', 'getReason()S', [o.ref])).toBe(0x6985);
    h.call('javacard.framework.ISOException', 'setReason(S)V', [o.ref, 0x6a88]);
    expect(h.call('javacard.framework.ISOException', 'getReason()S', [o.ref])).toBe(0x6a88);
    const u = h.heap.newInstance(h.vm.apiClass('javacard.framework.UserException'), 5);
    h.call('javacard.framework.UserException', '<init>()V', [u.ref]);
    expect(h.call('javacard.framework.UserException', 'getReason()S', [u.ref])).toBe(0);
  });

  test('Object.equals is reference identity', () => {
    expect(h.call('java.lang.Object', 'equals(Ljava/lang/Object;)Z', [5, 5])).toBe(1);
    expect(h.call('java.lang.Object', 'equals(Ljava/lang/Object;)Z', [5, 6])).toBe(0);
    expect(h.call('java.lang.Object', 'equals(Ljava/lang/Object;)Z', [5, 0])).toBe(0);
  });

  test('every framework and java.lang method of the 3.0.5 API is bound, except SensitiveArrays', () => {
    const missing = [...h.registry.missing].filter((m) => /^(java\.lang|java\.io|java\.rmi|javacard\.framework\.[A-Z])/.test(m));
    expect(missing.every((m) => m.startsWith('javacard.framework.SensitiveArrays.'))).toBe(true);
  });
});

describe('OwnerPIN', () => {
  let h: NativeHarness;
  const P = 'javacard.framework.OwnerPIN';
  let pin: number;
  let good: HeapArray;
  let bad: HeapArray;
  const tries = (): number => h.call(P, 'getTriesRemaining()B', [pin]) as number;
  const check = (a: HeapArray, off = 0, len = a.length): number => h.call(P, 'check([BSB)Z', [pin, a.ref, off, len]) as number;

  beforeEach(() => {
    h = nativeHarness(IMPLS);
    h.vm.context = 4;
    const o = h.heap.newInstance(h.vm.apiClass(P), 4);
    pin = o.ref;
    h.call(P, '<init>(BB)V', [pin, 3, 8]);
    good = h.bytes([1, 2, 3, 4]);
    bad = h.bytes([1, 2, 3, 5]);
    h.call(P, 'update([BSB)V', [pin, good.ref, 0, 4]);
    h.heap.flush();
  });

  test('constructor refuses a try limit or size below 1', () => {
    const o = h.heap.newInstance(h.vm.apiClass(P), 4);
    expect(h.thrown(() => h.call(P, '<init>(BB)V', [o.ref, 0, 8]))).toMatchObject({ cls: 'javacard.framework.PINException', reason: 1 });
    expect(h.thrown(() => h.call(P, '<init>(BB)V', [o.ref, 3, 0]))).toMatchObject({ cls: 'javacard.framework.PINException', reason: 1 });
  });

  test('check: match validates and restores, mismatch decrements, blocked after the limit, resetAndUnblock', () => {
    expect(check(bad)).toBe(0);
    expect(tries()).toBe(2);
    expect(h.call(P, 'isValidated()Z', [pin])).toBe(0);
    expect(check(good)).toBe(1);
    expect(tries()).toBe(3);
    expect(h.call(P, 'isValidated()Z', [pin])).toBe(1);
    // A prefix of the PIN is not the PIN.
    expect(check(good, 0, 3)).toBe(0);
    expect(h.call(P, 'isValidated()Z', [pin])).toBe(0);
    expect(check(bad)).toBe(0);
    expect(check(bad)).toBe(0);
    expect(tries()).toBe(0);
    expect(check(good)).toBe(0);
    expect(tries()).toBe(0);
    h.call(P, 'resetAndUnblock()V', [pin]);
    expect(tries()).toBe(3);
    expect(check(good)).toBe(1);
    h.call(P, 'reset()V', [pin]);
    expect(h.call(P, 'isValidated()Z', [pin])).toBe(0);
  });

  test('a null or out-of-range candidate still costs a try', () => {
    expect(h.thrown(() => h.call(P, 'check([BSB)Z', [pin, 0, 0, 4]))?.cls).toBe('java.lang.NullPointerException');
    expect(tries()).toBe(2);
    expect(h.thrown(() => check(good, 2, 4))?.cls).toBe('java.lang.ArrayIndexOutOfBoundsException');
    expect(tries()).toBe(1);
  });

  test('update refuses a PIN longer than maxPINSize; the new value replaces the old', () => {
    const long = h.bytes(new Array(9).fill(1));
    expect(h.thrown(() => h.call(P, 'update([BSB)V', [pin, long.ref, 0, 9]))).toMatchObject({ cls: 'javacard.framework.PINException', reason: 1 });
    h.call(P, 'update([BSB)V', [pin, long.ref, 0, 8]);
    expect(check(good)).toBe(0);
    expect(check(long, 0, 8)).toBe(1);
  });

  test('check is outside an ongoing transaction; update takes part in it', () => {
    const J = 'javacard.framework.JCSystem';
    h.call(J, 'beginTransaction()V');
    expect(check(bad)).toBe(0);
    h.call(P, 'update([BSB)V', [pin, bad.ref, 0, 4]);
    h.call(J, 'abortTransaction()V');
    expect(tries()).toBe(2);
    expect(check(good)).toBe(1);
  });

  test('the validated flag is CLEAR_ON_RESET transient memory', () => {
    expect(check(good)).toBe(1);
    h.heap.clearTransient(Memory.ClearOnReset);
    expect(h.call(P, 'isValidated()Z', [pin])).toBe(0);
    expect(check(good)).toBe(1);
    h.heap.flush();
    h.heap.powerUp();
    expect(h.call(P, 'isValidated()Z', [pin])).toBe(0);
    expect(tries()).toBe(3);
  });

  test('the try counter is durably decremented before the comparison: a power cut never gives a free try', () => {
    // Correct PIN: write 1 is the decrement, write 2 the restore after the comparison. Cut at the restore.
    const before = h.heap.writeCount;
    h.heap.armTear(2);
    expect(() => check(good)).toThrow(PowerLoss);
    expect(h.heap.writeCount - before).toBe(2);
    // What the store holds is what a fresh power-up sees.
    h.heap.powerUp();
    expect(tries()).toBe(2);
    expect(h.call(P, 'isValidated()Z', [pin])).toBe(0);
    // Cut at the decrement itself: the comparison never ran, nothing was learnt, the counter is unchanged.
    h.heap.armTear(1);
    expect(() => check(bad)).toThrow(PowerLoss);
    h.heap.powerUp();
    expect(tries()).toBe(2);
    // A wrong PIN followed by a cut at the applet's next persistent write keeps the decrement.
    const other = h.bytes([0]);
    h.heap.flush();
    expect(check(bad)).toBe(0);
    h.heap.armTear(1);
    expect(() => h.heap.storeArray(other, 0, 1)).toThrow(PowerLoss);
    h.heap.powerUp();
    expect(tries()).toBe(1);
  });

  test('a subclass overriding setValidatedFlag / getValidatedFlag is called by check and isValidated', () => {
    const base = h.vm.apiClass(P);
    const calls: number[] = [];
    const v = h.registry.virtuals;
    const setTok = v.get(`${P}.setValidatedFlag(Z)V`)!.token;
    const getTok = v.get(`${P}.getValidatedFlag()Z`)!.token;
    let flag = 0;
    const set: NativeMethod = (_vm, a) => void calls.push((flag = a[1]));
    const get: NativeMethod = () => flag;
    const virtuals = [...base.publicVirtuals];
    virtuals[setTok] = { ...virtuals[setTok]!, native: set };
    virtuals[getTok] = { ...virtuals[getTok]!, native: get };
    const sub: LinkedClass = { ...base, key: 'test:MyPin', name: 'test.MyPin', native: undefined, superclass: base, publicVirtuals: virtuals };
    h.classes.set(sub.key, sub);
    const o = h.heap.newInstance(sub, 4);
    h.call(P, '<init>(BB)V', [o.ref, 2, 4]);
    h.call(P, 'update([BSB)V', [o.ref, good.ref, 0, 4]);
    expect(h.call(P, 'check([BSB)Z', [o.ref, good.ref, 0, 4])).toBe(1);
    expect(calls).toEqual([0, 0, 1]);
    expect(h.call(P, 'isValidated()Z', [o.ref])).toBe(1);
  });
});

describe('OwnerPINBuilder, OwnerPINx, OwnerPINxWithPredecrement', () => {
  let h: NativeHarness;
  const B = 'javacard.framework.OwnerPINBuilder';
  beforeEach(() => {
    h = nativeHarness(IMPLS);
  });
  const iface = (ref: number, sig: string, args: number[] = []): number => {
    const cls = h.heap.instance(ref).cls;
    const table = [...cls.interfaceMethods.values()].find((t) => t.some((m) => m?.name.endsWith(`.${sig}`)));
    const m = table?.find((x) => x?.name.endsWith(`.${sig}`));
    if (!m?.native) throw new Error(`no ${sig} in ${cls.name}`);
    return (m.native(h.vm, Int32Array.from([ref, ...args])) as number) ?? 0;
  };

  test('type 1 is an OwnerPIN; an unknown type is ILLEGAL_VALUE', () => {
    const r = h.call(B, 'buildOwnerPIN(BBB)Ljavacard/framework/PIN;', [3, 8, 1]) as number;
    expect(h.heap.instance(r).cls.name).toBe('javacard.framework.OwnerPIN');
    expect(h.thrown(() => h.call(B, 'buildOwnerPIN(BBB)Ljavacard/framework/PIN;', [3, 8, 4]))).toMatchObject({
      cls: 'javacard.framework.PINException',
      reason: 1,
    });
  });

  test('OwnerPINx: try limit and counter administration', () => {
    const r = h.call(B, 'buildOwnerPIN(BBB)Ljavacard/framework/PIN;', [3, 8, 2]) as number;
    const good = h.bytes([6, 6, 6, 6]);
    iface(r, 'update([BSB)V', [good.ref, 0, 4]);
    expect(iface(r, 'getTryLimit()B')).toBe(3);
    iface(r, 'setTryLimit(B)V', [5]);
    expect(iface(r, 'getTryLimit()B')).toBe(5);
    iface(r, 'setTriesRemaining(B)V', [1]);
    expect(iface(r, 'getTriesRemaining()B')).toBe(1);
    expect(h.thrown(() => iface(r, 'setTriesRemaining(B)V', [6]))?.cls).toBe('javacard.framework.PINException');
    expect(iface(r, 'check([BSB)Z', [good.ref, 0, 4])).toBe(1);
    expect(iface(r, 'getTriesRemaining()B')).toBe(5);
  });

  test('OwnerPINxWithPredecrement: check needs decrementTriesRemaining first and does not decrement', () => {
    const r = h.call(B, 'buildOwnerPIN(BBB)Ljavacard/framework/PIN;', [3, 8, 3]) as number;
    const good = h.bytes([6, 6, 6, 6]);
    const bad = h.bytes([6, 6, 6, 7]);
    iface(r, 'update([BSB)V', [good.ref, 0, 4]);
    expect(h.thrown(() => iface(r, 'check([BSB)Z', [good.ref, 0, 4]))).toMatchObject({ cls: 'javacard.framework.PINException', reason: 2 });
    expect(iface(r, 'decrementTriesRemaining()B')).toBe(2);
    expect(iface(r, 'check([BSB)Z', [bad.ref, 0, 4])).toBe(0);
    expect(iface(r, 'getTriesRemaining()B')).toBe(2);
    expect(iface(r, 'decrementTriesRemaining()B')).toBe(1);
    expect(iface(r, 'check([BSB)Z', [good.ref, 0, 4])).toBe(1);
    expect(iface(r, 'getTriesRemaining()B')).toBe(3);
    expect(iface(r, 'isValidated()Z')).toBe(1);
  });
});
