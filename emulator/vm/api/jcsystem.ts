// javacard.framework.JCSystem: transient arrays, transactions, AIDs of contexts, memory, object deletion, channels
// (JC API 3.0.5 JCSystem; JCRE 3.0.5 §5 transient objects, §7 transactions, §6.2.4 shareable objects).
import { fromHex } from '../../bytes.ts';
import type { NativeClassImpl, NativeMethod, Ref, Vm } from '../types.ts';
import { ArrayKind, Memory, isArray } from '../types.ts';
import { aidArg, bytesArg } from './aid.ts';
import { checkRange, shortArray, s16 } from './checks.ts';
import { J, SystemReason, throwJcre } from './exceptions.ts';

const SHORT_MAX = 32767;

/** Java Card API version 3.0.5 (JCSystem.getVersion: major in the high byte). */
export const API_VERSION = 0x0305;

function transientArray(kind: ArrayKind): NativeMethod {
  return (vm, a) => {
    const length = a[0];
    const event = a[1];
    if (event !== Memory.ClearOnReset && event !== Memory.ClearOnDeselect) throwJcre(vm, J.system, SystemReason.ILLEGAL_VALUE);
    if (length < 0) throwJcre(vm, J.negativeSize);
    const element = kind === ArrayKind.Reference ? vm.apiClass('java.lang.Object') : undefined;
    return vm.heap.newArray(kind, length, event as Memory, vm.context, element).ref;
  };
}

/** JCSystem.ARRAY_TYPE_BOOLEAN 1 … ARRAY_TYPE_OBJECT 5 → the heap's array kinds. */
const GLOBAL_ARRAY_KINDS: readonly (ArrayKind | undefined)[] = [
  undefined,
  ArrayKind.Boolean,
  ArrayKind.Byte,
  ArrayKind.Short,
  ArrayKind.Int,
  ArrayKind.Reference,
];

function aidOfApplet(vm: Vm, aid: string | null): Ref {
  return aid ? vm.services.aidObject(fromHex(aid)) : 0;
}

function memoryType(vm: Vm, t: number): Memory {
  if (t !== Memory.Persistent && t !== Memory.ClearOnReset && t !== Memory.ClearOnDeselect) {
    throwJcre(vm, J.system, SystemReason.ILLEGAL_VALUE);
  }
  return t as Memory;
}

export const JCSYSTEM_CLASS: NativeClassImpl = {
  name: 'javacard.framework.JCSystem',
  methods: {
    'isTransient(Ljava/lang/Object;)B': (vm, a) => {
      const o = a[0] === 0 ? undefined : vm.heap.peek(a[0]);
      return o && isArray(o) ? o.memory : Memory.Persistent;
    },
    'makeTransientBooleanArray(SB)[Z': transientArray(ArrayKind.Boolean),
    'makeTransientByteArray(SB)[B': transientArray(ArrayKind.Byte),
    'makeTransientShortArray(SB)[S': transientArray(ArrayKind.Short),
    'makeTransientObjectArray(SB)[Ljava/lang/Object;': transientArray(ArrayKind.Reference),
    // A global CLEAR_ON_RESET array accessible from every context (JCRE §6.2.2).
    'makeGlobalArray(BS)Ljava/lang/Object;': (vm, a) => {
      const kind = a[0] > 0 ? GLOBAL_ARRAY_KINDS[a[0]] : undefined;
      if (kind === undefined) throwJcre(vm, J.system, SystemReason.ILLEGAL_VALUE);
      if (a[1] < 0) throwJcre(vm, J.negativeSize);
      const element = kind === ArrayKind.Reference ? vm.apiClass('java.lang.Object') : undefined;
      const arr = vm.heap.newArray(kind, a[1], Memory.ClearOnReset, vm.context, element);
      vm.heap.makeGlobal(arr.ref);
      return arr.ref;
    },
    'getVersion()S': () => API_VERSION,
    'getAID()Ljavacard/framework/AID;': (vm) => aidOfApplet(vm, vm.currentApplet),
    'getPreviousContextAID()Ljavacard/framework/AID;': (vm) => aidOfApplet(vm, vm.previousApplet),
    'lookupAID([BSB)Ljavacard/framework/AID;': (vm, a) => vm.services.aidObject(bytesArg(vm, a[0], a[1], a[2])),
    // The heap raises TransactionException IN_PROGRESS / NOT_IN_PROGRESS (JCRE §7.1: no nesting).
    'beginTransaction()V': (vm) => vm.heap.beginTransaction(),
    'abortTransaction()V': (vm) => vm.heap.abortTransaction(),
    'commitTransaction()V': (vm) => vm.heap.commitTransaction(),
    'getTransactionDepth()B': (vm) => vm.heap.transactionDepth,
    // Capacities above Short.MAX_VALUE are reported as Short.MAX_VALUE (JCSystem javadoc).
    'getUnusedCommitCapacity()S': (vm) => Math.min(SHORT_MAX, Math.max(0, vm.heap.commitCapacity.max - vm.heap.commitCapacity.used)),
    'getMaxCommitCapacity()S': (vm) => Math.min(SHORT_MAX, vm.heap.commitCapacity.max),
    'getAvailableMemory(B)S': (vm, a) => Math.min(SHORT_MAX, vm.heap.availableMemory(memoryType(vm, a[0]))),
    // The full amount as an int: buffer[offset] = high short, buffer[offset+1] = low short.
    'getAvailableMemory([SSB)V': (vm, a) => {
      const buf = shortArray(vm, a[0]);
      checkRange(vm, buf, a[1], 2);
      const n = Math.min(0x7fffffff, vm.heap.availableMemory(memoryType(vm, a[2])));
      vm.heap.storeArray(buf, a[1], s16(n >>> 16));
      vm.heap.storeArray(buf, a[1] + 1, s16(n & 0xffff));
    },
    'getAppletShareableInterfaceObject(Ljavacard/framework/AID;B)Ljavacard/framework/Shareable;': (vm, a) => {
      const aid = aidArg(vm, a[0]);
      return aid ? vm.services.shareable(aid, a[1]) : 0;
    },
    'isObjectDeletionSupported()Z': (vm) => (vm.heap.isObjectDeletionSupported() ? 1 : 0),
    'requestObjectDeletion()V': (vm) => {
      if (!vm.heap.isObjectDeletionSupported()) throwJcre(vm, J.system, SystemReason.ILLEGAL_USE);
      vm.heap.requestObjectDeletion();
    },
    'getAssignedChannel()B': (vm) => vm.jcre.channel,
    'isAppletActive(Ljavacard/framework/AID;)Z': (vm, a) => {
      const aid = aidArg(vm, a[0]);
      return aid && vm.services.isAppletActive(aid) ? 1 : 0;
    },
  },
};
