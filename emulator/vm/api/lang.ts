// java.lang (and the one-class packages java.io, java.rmi) of Java Card 3.0.5: Object and the Throwable hierarchy.
// Constructors are plain <init>()V with nothing to initialise; Object.equals is reference identity (JC API java.lang).
import type { NativeClassImpl } from '../types.ts';

const noop = (): undefined => undefined;

const THROWABLES = [
  'java.lang.Throwable',
  'java.lang.Exception',
  'java.lang.RuntimeException',
  'java.lang.ArithmeticException',
  'java.lang.ArrayIndexOutOfBoundsException',
  'java.lang.ArrayStoreException',
  'java.lang.ClassCastException',
  'java.lang.IndexOutOfBoundsException',
  'java.lang.NegativeArraySizeException',
  'java.lang.NullPointerException',
  'java.lang.SecurityException',
  'java.io.IOException',
  'java.rmi.RemoteException',
];

export const LANG_CLASSES: NativeClassImpl[] = [
  {
    name: 'java.lang.Object',
    methods: {
      '<init>()V': noop,
      // Same reference (no firewall check: comparing references reads neither object).
      'equals(Ljava/lang/Object;)Z': (_vm, a) => (a[0] === a[1] ? 1 : 0),
    },
  },
  ...THROWABLES.map((name): NativeClassImpl => ({ name, methods: { '<init>()V': noop } })),
];
