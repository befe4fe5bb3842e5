// The linker (JCVM 3.0.5 ch. 4, 6) and the firewall (JCRE 3.0.5 ch. 6) of the VM.
import { describe, expect, it } from 'vitest';
import { fromHex } from '../emulator/bytes.ts';
import type { CpEntry } from '../emulator/vm/types.ts';
import { VmThrow, isArray } from '../emulator/vm/types.ts';
import { LinkError } from '../emulator/vm/linker.ts';
import { LANG_CLASSES } from '../emulator/vm/api/lang.ts';
import type { Item, TestVm } from './helpers/vm-build.ts';
import { FRAMEWORK, I, LANG, buildPackage, testVm } from './helpers/vm-build.ts';

const lang = (classToken: number) => ({ internal: false as const, pkg: 0, classToken });
const fw = (classToken: number) => ({ internal: false as const, pkg: 1, classToken });
const sret = (...code: Item[][]): Item[] => [...code.flat(), ...I('sreturn')];

function exceptionName(t: TestVm, f: () => unknown): string {
  try {
    f();
  } catch (e) {
    if (!(e instanceof VmThrow)) throw e;
    const o = t.vm.heap.peek(e.ref);
    return o && !isArray(o) ? o.cls.name : 'array';
  }
  return 'none';
}

describe('linker: classes, tokens and method tables', () => {
  it('links an applet class under javacard.framework.Applet: inherited natives by token, overrides, cell layout', () => {
    const t = testVm();
    const b = buildPackage({
      aid: 'F0000000020001',
      imports: [LANG, FRAMEWORK],
      classes: [
        // MyApplet extends Applet: 3 cells (a ref, a short), process at public token 7, a package method at token 0.
        { offset: 0, superclass: fw(3), fields: 3, firstReferenceToken: 0, referenceCount: 1, publicBase: 7, publicMethods: ['process'], packageMethods: ['helper'] },
        // Sub extends MyApplet with 1 more cell.
        { offset: 30, superclass: { internal: true, classOffset: 0 }, fields: 1 },
      ],
      methods: [
        { name: 'process', nargs: 2, code: I('return') },
        { name: 'helper', nargs: 1, code: I('return') },
      ],
    });
    const u = t.link(b);
    const cls = u.pkg.classesByOffset.get(0)!;
    const sub = u.pkg.classesByOffset.get(30)!;
    expect(cls.superclass?.name).toBe('javacard.framework.Applet');
    expect(cls.publicVirtuals.length).toBe(8);
    expect(cls.publicVirtuals[1]?.name).toBe('javacard.framework.Applet.register()V');
    expect(cls.publicVirtuals[0]?.name).toBe('java.lang.Object.equals(Ljava/lang/Object;)Z');
    expect(cls.publicVirtuals[6]?.native).toBeTypeOf('function'); // select() from the API
    expect(cls.publicVirtuals[7]?.offset).toBe(b.offsets.get('process'));
    expect(cls.packageVirtuals[0]?.offset).toBe(b.offsets.get('helper'));
    expect([cls.firstCell, cls.instanceCells, cls.referenceCells]).toEqual([0, 3, [0]]);
    expect([sub.firstCell, sub.instanceCells, sub.referenceCells]).toEqual([3, 4, [0]]);
    expect(sub.publicVirtuals[7]).toBe(cls.publicVirtuals[7]);
    expect(sub.packageVirtuals[0]).toBe(cls.packageVirtuals[0]); // same package: package methods inherited
    expect(sub.key).toBe('F0000000020001:30');
  });

  it('links a client package to a library by export tokens; the library keeps its static image', () => {
    const t = testVm();
    const lib = buildPackage({
      aid: 'F0000000030001',
      version: [1, 2],
      imports: [LANG],
      classes: [{ offset: 0, superclass: lang(0) }],
      // One short static at offset 0 with the non-default value 21.
      statics: { imageSize: 2, nonDefault: [0, 21] },
      cp: [{ tag: 5, kind: 'staticField', ref: { internal: true, offset: 0 } }],
      methods: [{ name: 'twice', nargs: 1, code: sret(I('sload_0'), I('getstatic_s', 0), I('sadd'), I('sload_0'), I('sadd')) }],
      exports: [{ classOffset: 0, staticFields: [0], staticMethods: ['twice'] }],
    });
    t.link(lib, 0);
    const libRef = { aid: fromHex('F0000000030001'), major: 1, minor: 1 };
    const clientCp: CpEntry[] = [
      { tag: 6, kind: 'staticMethod', ref: { internal: false, pkg: 1, classToken: 0, token: 0 } },
      { tag: 5, kind: 'staticField', ref: { internal: false, pkg: 1, classToken: 0, token: 0 } },
    ];
    const client = buildPackage({
      aid: 'F0000000040001',
      imports: [LANG, libRef],
      cp: clientCp,
      methods: [{ name: 'main', nargs: 0, code: sret(I('sconst_2'), I('invokestatic', 0), I('getstatic_s', 1), I('sadd')) }],
    });
    const cu = t.link(client);
    expect(t.run(cu, client, 'main')).toBe(2 + 21 + 2 + 21);

    // Refusals name the package, version and token.
    const bad = (imports: typeof client.cap.imports, cp: CpEntry[] = clientCp) =>
      () => t.link(buildPackage({ aid: 'F0000000040002', imports, cp, methods: [{ name: 'm', nargs: 0, code: I('return') }] }));
    expect(bad([LANG, { ...libRef, minor: 3 }])).toThrow(/package F0000000030001 1\.3 is incompatible with version 1\.2 on the card/);
    expect(bad([LANG, { ...libRef, major: 2 }])).toThrow(LinkError);
    expect(bad([LANG, { aid: fromHex('F0000000039999'), major: 1, minor: 0 }])).toThrow(/package 1 \(F0000000039999 1\.0\) is not on the card/);
    expect(bad([LANG, libRef], [{ tag: 6, kind: 'staticMethod', ref: { internal: false, pkg: 1, classToken: 0, token: 5 } }])).toThrow(
      /ConstantPool component, entry 0: static method token 5 of class token 0 does not exist in F0000000030001/,
    );
    expect(bad([LANG, libRef], [{ tag: 1, kind: 'class', ref: { internal: false, pkg: 1, classToken: 9 } }])).toThrow(/class token 9 does not exist/);
    expect(bad([LANG], [{ tag: 3, kind: 'virtualMethod', cls: lang(0), token: 4 }])).toThrow(/public virtual method token 4 does not exist in java\.lang\.Object/);
  });

  it('refuses a reference to an API method that has no native implementation', () => {
    const t = testVm({ natives: LANG_CLASSES });
    const b = buildPackage({
      aid: 'F0000000050001',
      imports: [LANG, FRAMEWORK],
      cp: [{ tag: 6, kind: 'staticMethod', ref: { internal: false, pkg: 1, classToken: 7, token: 1 } }], // ISOException.throwIt
      methods: [{ name: 'm', nargs: 0, code: I('return') }],
    });
    expect(() => t.link(b)).toThrow(/API method javacard\.framework\.ISOException\.throwIt\(S\)V has no native implementation/);
  });

  it('builds the static image: array_init arrays (persistent, owned by the package context) and non-default values', () => {
    const t = testVm();
    const b = buildPackage({
      aid: 'F0000000060001',
      // refs: a byte[] {1,2,3} and a short[] {0x0102, -1}; defaults: a byte at 4; non-default: byte -2 at 5, short 0x1234 at 6, int at 8.
      statics: { imageSize: 12, referenceCount: 2, arrayInits: [{ type: 3, values: [1, 2, 3] }, { type: 4, values: [1, 2, 0xff, 0xff] }], defaultValueCount: 1, nonDefault: [0xfe, 0x12, 0x34, 0x80, 0, 0, 1] },
      cp: [
        { tag: 5, kind: 'staticField', ref: { internal: true, offset: 0 } },
        { tag: 5, kind: 'staticField', ref: { internal: true, offset: 2 } },
        { tag: 5, kind: 'staticField', ref: { internal: true, offset: 5 } },
        { tag: 5, kind: 'staticField', ref: { internal: true, offset: 6 } },
        { tag: 5, kind: 'staticField', ref: { internal: true, offset: 8 } },
        { tag: 5, kind: 'staticField', ref: { internal: true, offset: 4 } },
      ],
      methods: [
        { name: 'b2', nargs: 0, code: sret(I('getstatic_a', 0), I('sconst_2'), I('baload')) },
        { name: 's1', nargs: 0, code: sret(I('getstatic_a', 1), I('sconst_1'), I('saload')) },
        { name: 'nd', nargs: 0, code: sret(I('getstatic_b', 2), I('getstatic_s', 3), I('sadd'), I('getstatic_b', 5), I('sadd')) },
        { name: 'ni', nargs: 0, code: [...I('getstatic_i', 4), ...I('ireturn')] },
      ],
    });
    const u = t.link(b, 3);
    expect(t.run(u, b, 'b2')).toBe(3);
    expect(t.run(u, b, 's1')).toBe(-1);
    expect(t.run(u, b, 'nd')).toBe(0x1234 - 2);
    expect(t.run(u, b, 'ni') | 0).toBe(0x80000001 | 0);
    const arr = t.vm.heap.peek(u.pkg.statics[0]);
    expect(arr && isArray(arr) ? [arr.owner, arr.memory, arr.length] : undefined).toEqual([3, 0, 3]);
    expect(u.pkg.staticReferenceCells ?? 4).toBeGreaterThanOrEqual(4);
  });
});

describe('firewall (JCRE 3.0.5 ch. 6)', () => {
  const A = { internal: true as const, classOffset: 0 };
  const SHARED = { internal: true as const, classOffset: 20 };
  const PRIVATE = { internal: true as const, classOffset: 25 };
  const cp: CpEntry[] = [
    { tag: 1, kind: 'class', ref: A }, // 0
    { tag: 2, kind: 'instanceField', cls: A, token: 0 }, // 1
    { tag: 3, kind: 'virtualMethod', cls: A, token: 1 }, // 2: A.who()
    { tag: 1, kind: 'class', ref: SHARED }, // 3: Shareable interface
    { tag: 1, kind: 'class', ref: PRIVATE }, // 4: plain interface
    { tag: 5, kind: 'staticField', ref: { internal: true, offset: 0 } }, // 5
  ];
  const build = () =>
    buildPackage({
      aid: 'F0000000070001',
      imports: [LANG, FRAMEWORK],
      cp,
      statics: { imageSize: 2, nonDefault: [0, 99] },
      classes: [
        {
          offset: 0,
          superclass: lang(0),
          fields: 1,
          publicBase: 1,
          publicMethods: ['who'],
          interfaces: [
            { iface: SHARED, indexes: [1] },
            { iface: PRIVATE, indexes: [1] },
          ],
        },
        // SHARED extends javacard.framework.Shareable (class token 2 of javacard.framework).
        { offset: 20, interface: true, superInterfaces: [fw(2)] },
        { offset: 25, interface: true },
      ],
      methods: [
        { name: 'mk', nargs: 0, code: [...I('new', 0), ...I('areturn')] },
        // who(): creates an object and returns it: its owner shows the context the method ran in.
        { name: 'who', nargs: 1, code: [...I('new', 0), ...I('areturn')] },
        { name: 'getf', nargs: 1, code: sret(I('aload_0'), I('getfield_s', 1)) },
        { name: 'putf', nargs: 1, code: sret(I('aload_0'), I('sconst_1'), I('putfield_s', 1), I('sconst_0')) },
        { name: 'virt', nargs: 1, code: [...I('aload_0'), ...I('invokevirtual', 2), ...I('areturn')] },
        { name: 'viaShared', nargs: 1, code: [...I('aload_0'), ...I('invokeinterface', 1, 3, 0), ...I('areturn')] },
        { name: 'viaPrivate', nargs: 1, code: [...I('aload_0'), ...I('invokeinterface', 1, 4, 0), ...I('areturn')] },
        { name: 'arr', nargs: 0, code: [...I('sconst_2'), ...I('newarray', 11), ...I('areturn')] },
        { name: 'aget', nargs: 1, code: sret(I('aload_0'), I('sconst_0'), I('baload')) },
        { name: 'alen', nargs: 1, code: sret(I('aload_0'), I('arraylength')) },
        { name: 'cast', nargs: 1, code: sret(I('aload_0'), I('instanceof', 0, 0)) },
        { name: 'acast', nargs: 1, code: sret(I('aload_0'), I('instanceof', 11, 0)) },
        { name: 'stat', nargs: 0, code: sret(I('getstatic_s', 5)) },
      ],
    });

  it('refuses field, array, virtual method and cast access to another context\'s objects', () => {
    const t = testVm();
    const b = build();
    const u = t.link(b, 1);
    const theirs = t.run(u, b, 'mk', [], 2);
    const theirArray = t.run(u, b, 'arr', [], 2);
    expect(t.vm.heap.peek(theirs)?.owner).toBe(2);
    for (const [m, arg] of [['getf', theirs], ['putf', theirs], ['virt', theirs], ['acast', theirArray], ['aget', theirArray], ['alen', theirArray], ['viaPrivate', theirs]] as const)
      expect(exceptionName(t, () => t.run(u, b, m, [arg], 1)), m).toBe('java.lang.SecurityException');
    // The same accesses from the owner's context, and from the JCRE context, are allowed.
    expect(t.run(u, b, 'getf', [theirs], 2)).toBe(0);
    expect(t.run(u, b, 'getf', [theirs], 0)).toBe(0);
    expect(t.run(u, b, 'alen', [theirArray], 0)).toBe(2);
    // instanceof on a Shareable object of another context is allowed (here: A implements a Shareable interface).
    expect(t.run(u, b, 'cast', [theirs], 1)).toBe(1);
    // Static fields are not protected by the firewall (JCRE §6.1.6).
    expect(t.run(u, b, 'stat', [], 2)).toBe(99);
  });

  it('lets global arrays through, and Shareable interface calls switch to the server\'s context and back', () => {
    const t = testVm();
    const b = build();
    const u = t.link(b, 1);
    const theirArray = t.run(u, b, 'arr', [], 2);
    t.vm.heap.makeGlobal(theirArray);
    expect(t.run(u, b, 'alen', [theirArray], 1)).toBe(2);
    const server = t.run(u, b, 'mk', [], 2);
    const made = t.run(u, b, 'viaShared', [server], 1);
    expect(t.vm.heap.peek(made)?.owner).toBe(2); // who() ran in the server's context
    expect(t.vm.interp.context).toBe(0); // and the call returned to the caller's (here: none left, the JCRE's)
    const mine = t.run(u, b, 'mk', [], 1);
    expect(t.vm.heap.peek(t.run(u, b, 'viaShared', [mine], 1))?.owner).toBe(1); // same context: no switch
  });
});
