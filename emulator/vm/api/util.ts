// javacard.framework.Util: array copy/fill/compare and short packing (JC API 3.0.5 Util). Every argument is checked
// before the first byte is written; writes go through the heap so transactions, tearing and the cycle meter see them.
import type { NativeClassImpl, Vm } from '../types.ts';
import { byteArray, checkRange, s16 } from './checks.ts';

/** Util.arrayCopy / arrayCopyNonAtomic: returns destOff + length. */
function copy(atomic: boolean) {
  return (vm: Vm, a: Int32Array): number => {
    const src = byteArray(vm, a[0]);
    const dst = byteArray(vm, a[2]);
    checkRange(vm, src, a[1], a[4]);
    checkRange(vm, dst, a[3], a[4]);
    // Overlapping ranges copy as if through a temporary array (Util.arrayCopy javadoc); the heap handles that.
    if (a[4] > 0) vm.heap.copyBytes(src, a[1], dst, a[3], a[4], atomic);
    return s16(a[3] + a[4]);
  };
}

/** Util.arrayFill / arrayFillNonAtomic(bArray, bOff, bLen, bValue): returns bOff + bLen. */
function fill(atomic: boolean) {
  return (vm: Vm, a: Int32Array): number => {
    const arr = byteArray(vm, a[0]);
    checkRange(vm, arr, a[1], a[2]);
    if (a[2] > 0) vm.heap.fillBytes(arr, a[1], a[2], a[3] & 0xff, atomic);
    return s16(a[1] + a[2]);
  };
}

export const UTIL_CLASS: NativeClassImpl = {
  name: 'javacard.framework.Util',
  methods: {
    'arrayCopy([BS[BSS)S': copy(true),
    'arrayCopyNonAtomic([BS[BSS)S': copy(false),
    'arrayFill([BSSB)S': fill(true),
    'arrayFillNonAtomic([BSSB)S': fill(false),
    // -1 / 0 / 1 on the first differing byte, compared as Java (signed) bytes.
    'arrayCompare([BS[BSS)B': (vm, a) => {
      const src = byteArray(vm, a[0]);
      const dst = byteArray(vm, a[2]);
      checkRange(vm, src, a[1], a[4]);
      checkRange(vm, dst, a[3], a[4]);
      const x = src.data as Uint8Array;
      const y = dst.data as Uint8Array;
      for (let i = 0; i < a[4]; i++) {
        const p = (x[a[1] + i] << 24) >> 24;
        const q = (y[a[3] + i] << 24) >> 24;
        if (p !== q) return p < q ? -1 : 1;
      }
      return 0;
    },
    'makeShort(BB)S': (_vm, a) => s16(((a[0] & 0xff) << 8) | (a[1] & 0xff)),
    'getShort([BS)S': (vm, a) => {
      const arr = byteArray(vm, a[0]);
      checkRange(vm, arr, a[1], 2);
      const d = arr.data as Uint8Array;
      return s16((d[a[1]] << 8) | d[a[1] + 1]);
    },
    'setShort([BSS)S': (vm, a) => {
      const arr = byteArray(vm, a[0]);
      checkRange(vm, arr, a[1], 2);
      vm.heap.writeBytes(arr, a[1], Uint8Array.of((a[2] >> 8) & 0xff, a[2] & 0xff), true);
      return s16(a[1] + 2);
    },
  },
};
