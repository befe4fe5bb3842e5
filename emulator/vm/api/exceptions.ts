// Java Card exceptions as the JCRE raises them: one JCRE-owned temporary entry point instance per class, reused for
// every throw (JCRE 3.0.5 §6.2.1), the reason code kept in the instance's native record, and the natives of the
// CardException / CardRuntimeException family (constructor, getReason, setReason, static throwIt).
// The runtime's Vm.throwApi should call throwJcre so that reasons set here and read by getReason / the SW mapping agree.
import type { HeapInstance, NativeClassImpl, NativeMethod, Ref, Vm } from '../types.ts';
import { isArray, JCRE_CONTEXT, VmThrow } from '../types.ts';
import { VmFault } from '../exceptions.ts';

/** Native record key of the reason code (CardException.getReason, ISOException's status word). */
export const REASON_KEY = 'reason';

export const J = {
  npe: 'java.lang.NullPointerException',
  aioobe: 'java.lang.ArrayIndexOutOfBoundsException',
  security: 'java.lang.SecurityException',
  negativeSize: 'java.lang.NegativeArraySizeException',
  classCast: 'java.lang.ClassCastException',
  iso: 'javacard.framework.ISOException',
  apdu: 'javacard.framework.APDUException',
  system: 'javacard.framework.SystemException',
  pin: 'javacard.framework.PINException',
  transaction: 'javacard.framework.TransactionException',
} as const;

/** APDUException reasons (javacard.framework.APDUException). */
export const ApduReason = {
  ILLEGAL_USE: 1,
  BUFFER_BOUNDS: 2,
  BAD_LENGTH: 3,
  IO_ERROR: 4,
  NO_T0_GETREPLY: 0xaa,
  T1_IFD_ABORT: 0xab,
  NO_T0_REISSUE: 0xac,
} as const;

/** SystemException reasons. */
export const SystemReason = { ILLEGAL_VALUE: 1, NO_TRANSIENT_SPACE: 2, ILLEGAL_TRANSIENT: 3, ILLEGAL_AID: 4, NO_RESOURCE: 5, ILLEGAL_USE: 6 } as const;
export const PinReason = { ILLEGAL_VALUE: 1, ILLEGAL_STATE: 2 } as const;

/**
 * A Java exception decided by host-side logic that has no Vm at hand (the pure APDU state machine): the native
 * wrapper turns it into the JCRE instance with throwJcre.
 */
export class ApiFault extends Error {
  readonly className: string;
  readonly reason: number;
  constructor(className: string, reason = 0) {
    super(`${className}(${reason})`);
    this.name = 'ApiFault';
    this.className = className;
    this.reason = reason;
  }
}

/** The reason code of a Throwable (0 when never set, e.g. a plain UserException()). */
export function readReason(o: HeapInstance): number {
  const r = o.native?.[REASON_KEY];
  return typeof r === 'number' ? r : 0;
}

/** Stores a reason: a temporary entry point's native record is RAM-like in the heap (never logged or persisted). */
export function writeReason(vm: Vm, o: HeapInstance, reason: number): void {
  vm.heap.setNative(o, REASON_KEY, (reason << 16) >> 16);
}

/**
 * The JCRE-owned instance of an API exception class with this reason (JCRE §6.2.1: temporary entry point, reused).
 * It is kept as a named heap root so that object deletion never frees it.
 */
export function jcreException(vm: Vm, className: string, reason = 0): Ref {
  const heap = vm.heap;
  const root = `jcre.exception:${className}`;
  let ref = heap.roots.get(root);
  const found = ref ? heap.peek(ref) : undefined;
  let o: HeapInstance;
  if (found && !isArray(found) && found.cls.name === className) {
    o = found;
  } else {
    // Allocation can itself fail (SystemException when memory is full): no Java exception object can exist then.
    if (creating) throw new VmFault(`no memory for the JCRE's ${className} object`);
    creating = true;
    try {
      o = heap.newInstance(vm.apiClass(className), JCRE_CONTEXT);
    } finally {
      creating = false;
    }
    ref = o.ref;
    heap.makeGlobal(ref, true);
    heap.roots.set(root, ref);
  }
  if (readReason(o) !== ((reason << 16) >> 16)) writeReason(vm, o, reason);
  return o.ref;
}

let creating = false;

/** The exceptions the JCRE and the API throw, allocated ahead (e.g. at power-up) so that a full heap can still throw. */
export const JCRE_EXCEPTION_CLASSES = [
  J.npe,
  J.aioobe,
  J.security,
  J.negativeSize,
  J.classCast,
  'java.lang.ArithmeticException',
  'java.lang.ArrayStoreException',
  J.iso,
  J.apdu,
  J.system,
  J.pin,
  J.transaction,
  'javacard.security.CryptoException',
];

export function prepareJcreExceptions(vm: Vm): void {
  for (const name of JCRE_EXCEPTION_CLASSES) jcreException(vm, name);
}

/** Throws the JCRE-owned instance of an API exception: what Vm.throwApi does. */
export function throwJcre(vm: Vm, className: string, reason = 0): never {
  throw new VmThrow(jcreException(vm, className, reason), reason ? `${className}(0x${(reason & 0xffff).toString(16)})` : className);
}

/** Runs host-side logic and converts an ApiFault into the Java exception. */
export function rethrow(vm: Vm, e: unknown): never {
  if (e instanceof ApiFault) throwJcre(vm, e.className, e.reason);
  throw e;
}

// ---------------------------------------------------------------------------------------------------------------
// Natives of the exception classes. Statics (constructors, throwIt) are bound per class; getReason/setReason are
// virtual and inherited from CardException / CardRuntimeException by the registry.
// ---------------------------------------------------------------------------------------------------------------

const initWithReason: NativeMethod = (vm, a) => writeReason(vm, vm.heap.instance(a[0]), a[1]);
const getReason: NativeMethod = (vm, a) => (readReason(vm.heap.instance(a[0])) << 16) >> 16;
const setReason: NativeMethod = (vm, a) => writeReason(vm, vm.heap.instance(a[0]), a[1]);

function reasonClass(name: string, withReasonMethods: boolean): NativeClassImpl {
  const methods: Record<string, NativeMethod> = {
    '<init>(S)V': initWithReason,
    'throwIt(S)V': (vm, a) => throwJcre(vm, name, a[0]),
  };
  if (withReasonMethods) {
    methods['getReason()S'] = getReason;
    methods['setReason(S)V'] = setReason;
  }
  return { name, methods };
}

/** CardException, CardRuntimeException and their API subclasses (javacard.framework, javacard.framework.service). */
export const EXCEPTION_CLASSES: NativeClassImpl[] = [
  reasonClass('javacard.framework.CardException', true),
  reasonClass('javacard.framework.CardRuntimeException', true),
  reasonClass('javacard.framework.ISOException', false),
  reasonClass('javacard.framework.APDUException', false),
  reasonClass('javacard.framework.PINException', false),
  reasonClass('javacard.framework.SystemException', false),
  reasonClass('javacard.framework.TransactionException', false),
  reasonClass('javacard.framework.service.ServiceException', false),
  {
    name: 'javacard.framework.UserException',
    methods: {
      '<init>()V': () => undefined,
      '<init>(S)V': initWithReason,
      'throwIt(S)V': (vm, a) => throwJcre(vm, 'javacard.framework.UserException', a[0]),
    },
  },
];
