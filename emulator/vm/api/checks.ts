// Argument checks shared by the framework natives: nulls, array kinds and ranges, as a card checks them (the Java
// exception is thrown before anything is written).
import type { HeapArray, HeapInstance, Ref, Vm } from '../types.ts';
import { ArrayKind, isArray } from '../types.ts';
import { J, throwJcre } from './exceptions.ts';

/** A byte[] (or boolean[], which shares the representation) argument; null → NullPointerException. */
export function byteArray(vm: Vm, ref: Ref): HeapArray {
  if (ref === 0) throwJcre(vm, J.npe);
  const o = vm.heap.get(ref);
  // Only unverified bytecode can pass another type here: refused like a type-confused access (JCVM §6.2 firewall).
  if (!isArray(o) || (o.kind !== ArrayKind.Byte && o.kind !== ArrayKind.Boolean)) throwJcre(vm, J.security);
  return o;
}

/** A short[] argument (JCSystem.getAvailableMemory(short[],…)). */
export function shortArray(vm: Vm, ref: Ref): HeapArray {
  if (ref === 0) throwJcre(vm, J.npe);
  const o = vm.heap.get(ref);
  if (!isArray(o) || o.kind !== ArrayKind.Short) throwJcre(vm, J.security);
  return o;
}

/** An object argument of an API class (or a subclass) that keeps its state in the native record. */
export function instanceArg(vm: Vm, ref: Ref): HeapInstance {
  if (ref === 0) throwJcre(vm, J.npe);
  const o = vm.heap.get(ref);
  if (isArray(o)) throwJcre(vm, J.security);
  return o;
}

/** offset/length inside the array, else ArrayIndexOutOfBoundsException (negative values included). */
export function checkRange(vm: Vm, a: HeapArray, off: number, len: number): void {
  if (off < 0 || len < 0 || off + len > a.length) throwJcre(vm, J.aioobe);
}

/** Java short / byte truncation of a result word. */
export function s16(x: number): number {
  return (x << 16) >> 16;
}
export function s8(x: number): number {
  return (x << 24) >> 24;
}
