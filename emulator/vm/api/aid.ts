// javacard.framework.AID: 5–16 AID bytes kept (hex) in the instance's native record. AID objects the JCRE hands out
// (JCSystem.getAID, lookupAID, getPreviousContextAID) are permanent entry points (JCRE 3.0.5 §6.2.1).
import { fromHex, hex } from '../../bytes.ts';
import type { HeapInstance, NativeClassImpl, Ref, Vm } from '../types.ts';
import { JCRE_CONTEXT, isArray } from '../types.ts';
import { byteArray, checkRange, instanceArg, s8 } from './checks.ts';
import { J, SystemReason, throwJcre } from './exceptions.ts';

export const AID_CLASS_NAME = 'javacard.framework.AID';
const AID_KEY = 'aid';

/** The AID bytes of an AID instance (empty when its constructor never ran: only unverified code can do that). */
export function aidBytes(o: HeapInstance): Uint8Array {
  const v = o.native?.[AID_KEY];
  return typeof v === 'string' ? fromHex(v) : new Uint8Array(0);
}

/** A JCRE-owned AID object (permanent entry point) for the runtime's JcreServices.aidObject. */
export function createAidObject(vm: Vm, aid: Uint8Array): Ref {
  const o = vm.heap.newInstance(vm.apiClass(AID_CLASS_NAME), JCRE_CONTEXT, { [AID_KEY]: hex(aid) });
  vm.heap.makeGlobal(o.ref, false);
  return o.ref;
}

/** Bytes of an AID-typed argument, or null for a null reference or an object that is not an AID. */
export function aidArg(vm: Vm, ref: Ref): Uint8Array | null {
  if (ref === 0) return null;
  const o = vm.heap.get(ref);
  if (isArray(o) || !isAid(o)) return null;
  return aidBytes(o);
}

function isAid(o: HeapInstance): boolean {
  for (let c: HeapInstance['cls'] | null = o.cls; c; c = c.superclass) if (c.name === AID_CLASS_NAME) return true;
  return false;
}

/** Bytes [off, off+len) of a byte array argument after the null and range checks. */
export function bytesArg(vm: Vm, ref: Ref, off: number, len: number): Uint8Array {
  const a = byteArray(vm, ref);
  checkRange(vm, a, off, len);
  return (a.data as Uint8Array).slice(off, off + len);
}

function same(a: Uint8Array, b: Uint8Array, n: number): boolean {
  if (a.length < n || b.length < n) return false;
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return false;
  return true;
}

const self = (vm: Vm, ref: Ref): Uint8Array => aidBytes(instanceArg(vm, ref));

export const AID_CLASS: NativeClassImpl = {
  name: AID_CLASS_NAME,
  methods: {
    '<init>([BSB)V': (vm, a) => {
      const o = instanceArg(vm, a[0]);
      const a2 = byteArray(vm, a[1]);
      checkRange(vm, a2, a[2], a[3]);
      if (a[3] < 5 || a[3] > 16) throwJcre(vm, J.system, SystemReason.ILLEGAL_VALUE);
      vm.heap.setNative(o, AID_KEY, hex((a2.data as Uint8Array).subarray(a[2], a[2] + a[3])));
    },
    'equals(Ljava/lang/Object;)Z': (vm, a) => {
      const other = aidArg(vm, a[1]);
      const mine = self(vm, a[0]);
      return other !== null && other.length === mine.length && same(mine, other, mine.length) ? 1 : 0;
    },
    'equals([BSB)Z': (vm, a) => {
      if (a[1] === 0) return 0;
      const b = bytesArg(vm, a[1], a[2], a[3]);
      const mine = self(vm, a[0]);
      return b.length === mine.length && same(mine, b, b.length) ? 1 : 0;
    },
    'partialEquals([BSB)Z': (vm, a) => {
      if (a[1] === 0) return 0;
      const b = bytesArg(vm, a[1], a[2], a[3]);
      return same(self(vm, a[0]), b, b.length) ? 1 : 0;
    },
    'RIDEquals(Ljavacard/framework/AID;)Z': (vm, a) => {
      const other = aidArg(vm, a[1]);
      return other !== null && same(self(vm, a[0]), other, 5) ? 1 : 0;
    },
    'getBytes([BS)B': (vm, a) => {
      const mine = self(vm, a[0]);
      const dst = byteArray(vm, a[1]);
      checkRange(vm, dst, a[2], mine.length);
      vm.heap.writeBytes(dst, a[2], mine, true);
      return s8(mine.length);
    },
    // getPartialBytes(aidOffset, dest, oOffset, oLength): oLength 0 = the rest of the AID from aidOffset.
    'getPartialBytes(S[BSB)B': (vm, a) => {
      const mine = self(vm, a[0]);
      const dst = byteArray(vm, a[2]);
      const aidOff = a[1];
      const len = a[4] === 0 ? mine.length - aidOff : a[4];
      if (aidOff < 0 || aidOff > mine.length || len < 0 || aidOff + len > mine.length) throwJcre(vm, J.aioobe);
      checkRange(vm, dst, a[3], len);
      if (len > 0) vm.heap.writeBytes(dst, a[3], mine.subarray(aidOff, aidOff + len), true);
      return s8(len);
    },
  },
};
