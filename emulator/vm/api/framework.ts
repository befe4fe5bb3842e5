// javacard.framework natives (Java Card 3.0.5 classic): Applet here; AID, APDU, JCSystem, OwnerPIN*, Util and the
// exception classes in their own modules. The registry binds them by Java class name + "name(descriptor)".
import type { NativeClassImpl } from '../types.ts';
import { AID_CLASS, bytesArg } from './aid.ts';
import { APDU_CLASS } from './apdu.ts';
import { EXCEPTION_CLASSES, J, SystemReason, throwJcre } from './exceptions.ts';
import { JCSYSTEM_CLASS } from './jcsystem.ts';
import { PIN_CLASSES } from './pin.ts';
import { UTIL_CLASS } from './util.ts';

const SW_FUNC_NOT_SUPPORTED = 0x6a81;

export const APPLET_CLASS: NativeClassImpl = {
  name: 'javacard.framework.Applet',
  methods: {
    '<init>()V': () => undefined,
    // The base class cannot be installed: subclasses define their own static install (Applet javadoc).
    'install([BSB)V': (vm) => throwJcre(vm, J.iso, SW_FUNC_NOT_SUPPORTED),
    'reSelectingApplet()Z': (vm) => (vm.jcre.reselecting ? 1 : 0),
    'register()V': (vm, a) => vm.services.registerApplet(a[0], null),
    'register([BSB)V': (vm, a) => {
      const aid = bytesArg(vm, a[1], a[2], a[3]);
      if (aid.length < 5 || aid.length > 16) throwJcre(vm, J.system, SystemReason.ILLEGAL_VALUE);
      vm.services.registerApplet(a[0], aid);
    },
    'selectingApplet()Z': (vm) => (vm.jcre.selecting ? 1 : 0),
    'select()Z': () => 1,
    'deselect()V': () => undefined,
    'getShareableInterfaceObject(Ljavacard/framework/AID;B)Ljavacard/framework/Shareable;': () => 0,
  },
};

export const FRAMEWORK_CLASSES: NativeClassImpl[] = [
  AID_CLASS,
  APDU_CLASS,
  APPLET_CLASS,
  JCSYSTEM_CLASS,
  UTIL_CLASS,
  ...PIN_CLASSES,
  ...EXCEPTION_CLASSES,
];
