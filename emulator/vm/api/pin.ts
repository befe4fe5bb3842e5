// OwnerPIN, the OwnerPINx / OwnerPINxWithPredecrement implementations and OwnerPINBuilder (JC API 3.0.5).
// State: a hidden persistent byte array [triesRemaining, tryLimit, pinLength, pin[maxPINSize]] and a hidden
// CLEAR_ON_RESET boolean array [validated, predecremented] (OwnerPIN javadoc: transient state must be CLEAR_ON_RESET),
// their refs in the native record (keys ending in "Ref").
// check(): the try counter is decremented by a non-transactional write made durable BEFORE the comparison and restored
// only on a match, so a power cut during check never gives a free try; the comparison time does not depend on the
// PIN bytes (OwnerPIN javadoc: protect against program flow prediction).
import type { HeapArray, HeapInstance, NativeClassImpl, NativeMethod, Ref, Vm } from '../types.ts';
import { ArrayKind, Memory, isArray } from '../types.ts';
import { byteArray, checkRange, instanceArg, s8 } from './checks.ts';
import { J, PinReason, throwJcre } from './exceptions.ts';

export const OWNER_PIN = 'javacard.framework.OwnerPIN';
/** Hidden implementation classes returned by OwnerPINBuilder (names outside the API packages). */
export const OWNER_PIN_X = 'jcre.OwnerPINx';
export const OWNER_PIN_X_PREDECREMENT = 'jcre.OwnerPINxWithPredecrement';

const TRIES = 0;
const LIMIT = 1;
const LENGTH = 2;
const VALUE = 3;
const VALIDATED = 0;
const ARMED = 1;

interface Pin {
  o: HeapInstance;
  data: HeapArray;
  flags: HeapArray;
  max: number;
}

/** Allocates the hidden arrays of a new PIN object (constructor and OwnerPINBuilder). */
function initPin(vm: Vm, o: HeapInstance, tryLimit: number, maxPINSize: number): void {
  if (tryLimit < 1 || maxPINSize < 1) throwJcre(vm, J.pin, PinReason.ILLEGAL_VALUE);
  const data = vm.heap.newArray(ArrayKind.Byte, VALUE + maxPINSize, Memory.Persistent, o.owner);
  const flags = vm.heap.newArray(ArrayKind.Boolean, 2, Memory.ClearOnReset, o.owner);
  vm.heap.storeArray(data, TRIES, tryLimit);
  vm.heap.storeArray(data, LIMIT, tryLimit);
  vm.heap.setNative(o, 'maxPINSize', maxPINSize);
  vm.heap.setNative(o, 'dataRef', data.ref);
  vm.heap.setNative(o, 'flagsRef', flags.ref);
}

/** The PIN state of `this`; an object whose constructor never ran behaves as a null reference. */
function pin(vm: Vm, ref: Ref): Pin {
  const o = instanceArg(vm, ref);
  const n = o.native;
  const d = n?.['dataRef'];
  const f = n?.['flagsRef'];
  // Hidden arrays are JCRE-internal: read without the firewall check of the caller's context.
  const data = typeof d === 'number' ? vm.heap.peek(d) : undefined;
  const flags = typeof f === 'number' ? vm.heap.peek(f) : undefined;
  if (!data || !flags || !isArray(data) || !isArray(flags)) throwJcre(vm, J.npe);
  return { o, data, flags, max: (n?.['maxPINSize'] as number) ?? 0 };
}

const bytes = (a: HeapArray): Uint8Array => a.data as Uint8Array;

/** Non-transactional durable write of the try counter (OwnerPIN: not part of an ongoing transaction). */
function writeTries(vm: Vm, p: Pin, tries: number, atomic: boolean): void {
  vm.heap.writeBytes(p.data, TRIES, Uint8Array.of(tries & 0xff), atomic);
}

/** Transient flags never take part in transactions (JCRE §7.7). */
function setFlag(vm: Vm, p: Pin, index: number, value: boolean): void {
  if ((bytes(p.flags)[index] !== 0) !== value) vm.heap.storeArray(p.flags, index, value ? 1 : 0);
}

/** A subclass of OwnerPIN may keep the validated flag itself (protected get/setValidatedFlag): dispatch to it. */
function isSubclass(p: Pin): boolean {
  return p.o.cls.native === undefined;
}
function setValidated(vm: Vm, p: Pin, value: boolean): void {
  if (isSubclass(p)) vm.invokeVirtual(p.o.ref, `${OWNER_PIN}.setValidatedFlag(Z)V`, [p.o.ref, value ? 1 : 0]);
  else setFlag(vm, p, VALIDATED, value);
}
function getValidated(vm: Vm, p: Pin): boolean {
  if (isSubclass(p)) return vm.invokeVirtual(p.o.ref, `${OWNER_PIN}.getValidatedFlag()Z`, [p.o.ref]) !== 0;
  return bytes(p.flags)[VALIDATED] !== 0;
}

/** Constant-time compare of candidate[off, off+len) with the stored value: time depends on maxPINSize only. */
function matches(p: Pin, candidate: Uint8Array, off: number, len: number): boolean {
  const d = bytes(p.data);
  let diff = len ^ d[LENGTH];
  for (let i = 0; i < p.max; i++) diff |= (i < len ? candidate[off + i] : 0) ^ d[VALUE + i];
  return diff === 0;
}

/**
 * PIN presentation. `decrement` false for OwnerPINxWithPredecrement.check (the counter was decremented before).
 * Order (OwnerPIN.check javadoc): clear the validated flag; a blocked PIN fails; decrement durably; then the argument
 * checks (a NullPointer/ArrayIndexOutOfBounds exception still costs a try); compare; on a match restore and validate.
 */
function check(vm: Vm, p: Pin, a: Int32Array, decrement: boolean): number {
  setValidated(vm, p, false);
  const tries = bytes(p.data)[TRIES];
  if (tries === 0) return 0;
  if (decrement) {
    writeTries(vm, p, tries - 1, false);
    vm.heap.persistNow?.();
  }
  const cand = byteArray(vm, a[1]);
  checkRange(vm, cand, a[2], a[3]);
  if (!matches(p, bytes(cand), a[2], a[3])) return 0;
  writeTries(vm, p, bytes(p.data)[LIMIT], false);
  setValidated(vm, p, true);
  return 1;
}

/** update(pin, offset, length): new value, try counter to the limit, validated flag cleared (owner operation). */
function update(vm: Vm, p: Pin, a: Int32Array): void {
  const src = byteArray(vm, a[1]);
  checkRange(vm, src, a[2], a[3]);
  if (a[3] > p.max) throwJcre(vm, J.pin, PinReason.ILLEGAL_VALUE);
  const d = bytes(p.data);
  const image = new Uint8Array(VALUE + p.max);
  image[TRIES] = d[LIMIT];
  image[LIMIT] = d[LIMIT];
  image[LENGTH] = a[3];
  image.set(bytes(src).subarray(a[2], a[2] + a[3]), VALUE);
  // One atomic write: counter, length and value change together even if power is cut (JCRE §7.2 atomicity).
  vm.heap.writeBytes(p.data, 0, image, true);
  setFlag(vm, p, ARMED, false);
  setValidated(vm, p, false);
}

function resetAndUnblock(vm: Vm, p: Pin): void {
  writeTries(vm, p, bytes(p.data)[LIMIT], true);
  setFlag(vm, p, ARMED, false);
  setValidated(vm, p, false);
}

/** PIN.reset: only when validated (else nothing); not part of a transaction like check. */
function reset(vm: Vm, p: Pin): void {
  if (!getValidated(vm, p)) return;
  setValidated(vm, p, false);
  writeTries(vm, p, bytes(p.data)[LIMIT], false);
}

const on = (f: (vm: Vm, p: Pin, a: Int32Array) => number | void): NativeMethod => (vm, a) => f(vm, pin(vm, a[0]), a);

export const OWNER_PIN_CLASS: NativeClassImpl = {
  name: OWNER_PIN,
  methods: {
    '<init>(BB)V': (vm, a) => initPin(vm, instanceArg(vm, a[0]), a[1], a[2]),
    'check([BSB)Z': on((vm, p, a) => check(vm, p, a, true)),
    'getTriesRemaining()B': on((_vm, p) => s8(bytes(p.data)[TRIES])),
    'getValidatedFlag()Z': on((_vm, p) => bytes(p.flags)[VALIDATED]),
    'setValidatedFlag(Z)V': on((vm, p, a) => setFlag(vm, p, VALIDATED, a[1] !== 0)),
    'isValidated()Z': on((vm, p) => (getValidated(vm, p) ? 1 : 0)),
    'reset()V': on(reset),
    'resetAndUnblock()V': on(resetAndUnblock),
    'update([BSB)V': on(update),
  },
};

/** OwnerPINx administrative methods: they take part in a transaction (OwnerPINx javadoc). */
const ownerPinxMethods: Record<string, NativeMethod> = {
  'check([BSB)Z': on((vm, p, a) => check(vm, p, a, true)),
  'getTriesRemaining()B': on((_vm, p) => s8(bytes(p.data)[TRIES])),
  'isValidated()Z': on((_vm, p) => bytes(p.flags)[VALIDATED]),
  'reset()V': on(reset),
  'update([BSB)V': on(update),
  'getTryLimit()B': on((_vm, p) => s8(bytes(p.data)[LIMIT])),
  'setTryLimit(B)V': on((vm, p, a) => {
    if (a[1] < 1) throwJcre(vm, J.pin, PinReason.ILLEGAL_VALUE);
    vm.heap.writeBytes(p.data, LIMIT, Uint8Array.of(a[1]), true);
    setFlag(vm, p, ARMED, false);
    setFlag(vm, p, VALIDATED, false);
  }),
  'setTriesRemaining(B)V': on((vm, p, a) => {
    if (a[1] < 0 || a[1] > bytes(p.data)[LIMIT]) throwJcre(vm, J.pin, PinReason.ILLEGAL_VALUE);
    writeTries(vm, p, a[1], true);
    setFlag(vm, p, ARMED, false);
    setFlag(vm, p, VALIDATED, false);
  }),
};

export const OWNER_PIN_X_CLASS: NativeClassImpl = {
  name: OWNER_PIN_X,
  extends: 'java.lang.Object',
  implements: ['javacard.framework.OwnerPINx'],
  methods: ownerPinxMethods,
};

export const OWNER_PIN_X_PREDECREMENT_CLASS: NativeClassImpl = {
  name: OWNER_PIN_X_PREDECREMENT,
  extends: 'java.lang.Object',
  implements: ['javacard.framework.OwnerPINxWithPredecrement'],
  methods: {
    ...ownerPinxMethods,
    // Decrements (durably, outside any transaction) unless blocked, clears the validated flag, arms check.
    'decrementTriesRemaining()B': on((vm, p) => {
      setFlag(vm, p, VALIDATED, false);
      const tries = bytes(p.data)[TRIES];
      if (tries > 0) {
        writeTries(vm, p, tries - 1, false);
        vm.heap.persistNow?.();
        setFlag(vm, p, ARMED, true);
      }
      return s8(bytes(p.data)[TRIES]);
    }),
    // check without decrementing: decrementTriesRemaining must come first (PINException.ILLEGAL_STATE otherwise).
    'check([BSB)Z': on((vm, p, a) => {
      const armed = bytes(p.flags)[ARMED] !== 0;
      setFlag(vm, p, ARMED, false);
      if (!armed) {
        if (bytes(p.data)[TRIES] === 0) return 0;
        throwJcre(vm, J.pin, PinReason.ILLEGAL_STATE);
      }
      return check(vm, p, a, false);
    }),
  },
};

/** OwnerPINBuilder.buildOwnerPIN(tryLimit, maxPINSize, type): OWNER_PIN 1, OWNER_PIN_X 2, _WITH_PREDECREMENT 3. */
export const OWNER_PIN_BUILDER_CLASS: NativeClassImpl = {
  name: 'javacard.framework.OwnerPINBuilder',
  methods: {
    'buildOwnerPIN(BBB)Ljavacard/framework/PIN;': (vm, a) => {
      const cls = a[2] === 1 ? OWNER_PIN : a[2] === 2 ? OWNER_PIN_X : a[2] === 3 ? OWNER_PIN_X_PREDECREMENT : null;
      if (!cls) throwJcre(vm, J.pin, PinReason.ILLEGAL_VALUE);
      if (a[0] < 1 || a[1] < 1) throwJcre(vm, J.pin, PinReason.ILLEGAL_VALUE);
      const o = vm.heap.newInstance(vm.apiClass(cls), vm.context);
      initPin(vm, o, a[0], a[1]);
      return o.ref;
    },
  },
};

export const PIN_CLASSES: NativeClassImpl[] = [OWNER_PIN_CLASS, OWNER_PIN_X_CLASS, OWNER_PIN_X_PREDECREMENT_CLASS, OWNER_PIN_BUILDER_CLASS];
