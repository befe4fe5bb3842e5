// A Vm for the javacard.security / javacardx.crypto / org.globalplatform natives: the native harness (real heap over an
// in-memory store, the API registry) with every API class bound, a real RNG, and the crypto cycle charges recorded.
import { randomBytes } from 'node:crypto';
import { LANG_CLASSES } from '../../emulator/vm/api/lang.ts';
import { FRAMEWORK_CLASSES } from '../../emulator/vm/api/framework.ts';
import { SECURITY_CLASSES } from '../../emulator/vm/api/security.ts';
import { CRYPTO_CLASSES } from '../../emulator/vm/api/crypto.ts';
import { GP_CLASSES } from '../../emulator/vm/api/globalplatform.ts';
import type { HeapArray, Ref } from '../../emulator/vm/types.ts';
import { nativeHarness } from './vm-native.ts';
import type { NativeHarness } from './vm-native.ts';

export interface SecurityHarness extends NativeHarness {
  /** Crypto charges in call order: [operation key, bytes]. */
  charges: [string, number][];
  /** Calls a static API method (or constructor with `this` first). */
  st(cls: string, sig: string, ...args: number[]): number;
  /** Calls a virtual/interface method on an object: dispatched on the object's class, `this` prepended. */
  on(ref: Ref, sig: string, ...args: number[]): number;
  /** The CryptoException reason a call throws, another exception's class name, or undefined. */
  fails(fn: () => unknown): number | string | undefined;
  arr(hexOrBytes: string | Uint8Array | number): HeapArray;
}

export function securityHarness(): SecurityHarness {
  const h = nativeHarness([...LANG_CLASSES, ...FRAMEWORK_CLASSES, ...SECURITY_CLASSES, ...CRYPTO_CLASSES, ...GP_CLASSES]);
  const charges: [string, number][] = [];
  h.vm.services.random = (n) => new Uint8Array(randomBytes(n));
  h.vm.cycles.crypto = (op, n) => void charges.push([op, n]);
  h.vm.context = 1;
  const st = (cls: string, sig: string, ...args: number[]) => (h.call(cls, sig, args) as number | undefined) ?? 0;
  const on = (ref: Ref, sig: string, ...args: number[]) => st(h.heap.instance(ref).cls.name, sig, ref, ...args);
  return {
    ...h,
    charges,
    st,
    on,
    fails(fn) {
      const t = h.thrown(fn);
      if (!t) return undefined;
      return t.cls === 'javacard.security.CryptoException' ? t.reason : t.cls;
    },
    arr(v) {
      if (typeof v === 'number') return h.bytes(new Uint8Array(v));
      return h.bytes(typeof v === 'string' ? Buffer.from(v.replace(/\s/g, ''), 'hex') : v);
    },
  };
}
