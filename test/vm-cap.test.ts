import { describe, expect, it } from 'vitest';
import { fromHex, hex } from '../emulator/bytes.ts';
import { CapError, TAG, parseLoadFileDataBlock, readCapFile } from '../emulator/cap-reader.ts';
import { OPCODES, instructionLength } from '../emulator/vm/opcodes.ts';
import { decodeRefLocation, parseCapPackage, parseClassComponent, parseConstantPool, parseDescriptor } from '../emulator/vm/cap/parse.ts';
import { verifyCapPackage } from '../emulator/vm/cap/verify.ts';
import { assemble } from '../emulator/vm/cap/asm.ts';
import { encodeClass, encodeHandlers, encodeRefList, writeCapJar, writeLoadFileDataBlock } from '../emulator/vm/cap/write.ts';
import type { CapPackage } from '../emulator/vm/types.ts';
import { ASM_SAMPLES, assembleSample } from './fixtures/asm/samples.ts';
import type { SampleName } from './fixtures/asm/samples.ts';
import { HELLO, LIBRARY, MULTI } from './fixtures/samples.ts';

const FIXTURES = { HELLO, MULTI, LIBRARY };
const SAMPLES = Object.keys(ASM_SAMPLES) as SampleName[];

function fromBlock(block: Uint8Array): CapPackage {
  return parseCapPackage(parseLoadFileDataBlock(block));
}

/** Expects a CapError naming `component` at `offset`, whose message matches `text`. */
function refused(f: () => unknown, component: string, offset: number, text: RegExp): void {
  let err: unknown;
  try {
    f();
  } catch (e) {
    err = e;
  }
  expect(err, 'expected a CapError').toBeInstanceOf(CapError);
  const e = err as CapError;
  expect(e.component).toBe(component);
  expect(e.offset).toBe(offset);
  expect(e.message).toContain(`${component} component`);
  expect(e.message).toContain(`offset ${offset}`);
  expect(e.message).toMatch(text);
}

/** Every instruction of every method (by Descriptor extents): pc and mnemonic. */
function instructions(p: CapPackage): { pc: number; mnemonic: string; method: number }[] {
  const out: { pc: number; mnemonic: string; method: number }[] = [];
  const info = p.method.info;
  for (const c of p.descriptor?.classes ?? []) {
    for (const m of c.methods) {
      if (c.flags & 0x40 || m.flags & 0x40) continue;
      const header = info[m.methodOffset] & 0x80 ? 4 : 2;
      let pc = m.methodOffset + header;
      const end = pc + m.bytecodeCount;
      while (pc < end) {
        out.push({ pc, mnemonic: OPCODES[info[pc]]!.mnemonic, method: m.methodOffset });
        pc += instructionLength(info, pc);
      }
    }
  }
  return out.sort((a, b) => a.pc - b.pc);
}

function find(p: CapPackage, mnemonic: string, nth = 0): number {
  const hits = instructions(p).filter((i) => i.mnemonic === mnemonic);
  if (!hits[nth]) throw new Error(`no ${mnemonic} #${nth}`);
  return hits[nth].pc;
}

function mutate(p: CapPackage, f: (q: CapPackage) => void): CapPackage {
  const q = structuredClone(p);
  f(q);
  return q;
}

/** Offset of a component in a block, by tag. */
function componentAt(block: Uint8Array, tag: number): number {
  for (let off = 0; off < block.length; off += 3 + ((block[off + 1] << 8) | block[off + 2])) if (block[off] === tag) return off;
  throw new Error(`tag ${tag} absent`);
}

describe('parseCapPackage on the fixture CAPs', () => {
  it('reads HELLO: constant pool, class, method, applet, static field, descriptor', () => {
    const p = parseCapPackage(readCapFile(HELLO.jar));
    expect(p.formatMinor).toBe(1);
    expect(p.constantPool).toEqual([
      { tag: 1, kind: 'class', ref: { internal: false, pkg: 1, classToken: 3 } },
      { tag: 6, kind: 'staticMethod', ref: { internal: false, pkg: 1, classToken: 3, token: 0 } },
      { tag: 3, kind: 'virtualMethod', cls: { internal: false, pkg: 1, classToken: 3 }, token: 1 },
    ]);
    expect(p.classes).toHaveLength(1);
    const c = p.classes[0];
    expect(c.kind === 'class' && c.superclass).toEqual({ internal: false, pkg: 1, classToken: 3 });
    expect(c.kind === 'class' && c.firstReferenceToken).toBe(0xff);
    expect(hex(p.method.info)).toBe('0001307A');
    expect(p.method.handlers).toEqual([]);
    expect(p.applets[0].installMethodOffset).toBe(1);
    expect(p.staticField.arrayInits).toEqual([{ type: 3, values: fromHex('010203') }]);
    expect(p.descriptor?.constantPoolTypes).toEqual([0xffff, 0xffff, 0xffff]);
    expect(p.exports).toBeUndefined();
  });

  it('reads MULTI (CAP 2.2: signature pool length, package name, two applets)', () => {
    const p = parseCapPackage(readCapFile(MULTI.jar));
    expect(p.formatMinor).toBe(2);
    expect(p.package.name).toBe('com.example.multi');
    expect(p.classes.map((c) => c.offset)).toEqual([2, 12]); // after the u2 signature_pool_length
    expect(p.applets.map((a) => a.installMethodOffset)).toEqual([1, 4]);
  });

  it('reads LIBRARY (Export component, no applets)', () => {
    const p = parseCapPackage(readCapFile(LIBRARY.jar));
    expect(p.applets).toEqual([]);
    expect(p.exports).toEqual([{ classOffset: 0, staticFieldOffsets: [0], staticMethodOffsets: [1] }]);
  });

  it('parses the JAR and the block form alike and verifies them', () => {
    for (const [name, cap] of Object.entries(FIXTURES)) {
      const fromJar = parseCapPackage(readCapFile(cap.jar));
      expect(fromBlock(cap.block), name).toEqual(fromJar);
      expect(() => verifyCapPackage(fromJar), name).not.toThrow();
    }
  });
});

describe('writeLoadFileDataBlock / writeCapJar round trips', () => {
  it('parse(write(p)) deep-equals p for every fixture CAP, block and JAR', () => {
    for (const [name, cap] of Object.entries(FIXTURES)) {
      const p = parseCapPackage(readCapFile(cap.jar));
      expect(fromBlock(writeLoadFileDataBlock(p)), name).toEqual(p);
      expect(parseCapPackage(readCapFile(writeCapJar(p, 'com.example.x'))), name).toEqual(p);
    }
  });

  it('rewrites the CAP 2.1 fixtures byte for byte', () => {
    expect(hex(writeLoadFileDataBlock(parseCapPackage(readCapFile(HELLO.jar))))).toBe(hex(HELLO.block));
    expect(hex(writeLoadFileDataBlock(parseCapPackage(readCapFile(LIBRARY.jar))))).toBe(hex(LIBRARY.block));
  });

  it('round-trips every assembled sample (with and without the Descriptor)', () => {
    for (const name of SAMPLES) {
      const p = assembleSample(name);
      expect(fromBlock(writeLoadFileDataBlock(p)), name).toEqual(p);
      const { descriptor: _d, ...withoutDescriptor } = p;
      const stripped = fromBlock(writeLoadFileDataBlock(p, { descriptor: false }));
      expect(stripped, name).toEqual(withoutDescriptor);
      expect(() => verifyCapPackage(stripped), name).not.toThrow();
      expect(parseCapPackage(readCapFile(writeCapJar(p, ASM_SAMPLES[name].name))), name).toEqual(p);
    }
  });

  it('keeps custom components when rewriting', () => {
    const q = mutate(assembleSample('echo'), (x) => {
      x.customComponents = [{ tag: 0x90, aid: fromHex('A000000151FF'), data: fromHex('0102030405') }];
    });
    const jar = writeCapJar(q, 'com.jpkise.echo');
    const back = parseCapPackage(readCapFile(jar));
    expect(back.customComponents).toEqual(q.customComponents);
    expect(fromBlock(writeLoadFileDataBlock(q))).toEqual(q);
  });

  it('skips CAP 2.2 remote information structurally and writes it back unchanged', () => {
    // A remote class (flags ACC_REMOTE) with remote_interface_info: 1 method (hash, signature offset, token),
    // hash modifier "ab", class name "R", 1 remote interface.
    const remote = '01 1234 0000 05' + '02 6162' + '01 52' + '01 8103';
    const cls = fromHex('0000' + '20 8003 00FF00 00000000' + remote + '00 8003 00FF00 00000000');
    const { classes } = parseClassComponent(cls, true);
    expect(classes.map((c) => c.offset)).toEqual([2, 2 + 10 + 14]);
    expect(hex(classes[0].remoteInfo!)).toBe(remote.replace(/ /g, '').toUpperCase());
    const p = { ...assembleSample('echo'), formatMinor: 2, classes };
    expect(hex(encodeClass(p))).toBe(hex(cls));
  });

  it('encodes RefLocation distances with 255 runs and decodes them back', () => {
    const offsets = [3, 258, 513, 514, 1000];
    const list = encodeRefList(offsets);
    expect([...list]).toEqual([3, 255, 0, 255, 0, 1, 255, 231]);
    expect(decodeRefLocation(list, new Uint8Array(0)).byteIndex).toEqual(offsets);
  });

  it('refuses to write a model whose class offsets disagree with the layout', () => {
    const p = mutate(assembleSample('echo'), (q) => {
      q.classes[0].offset = 4;
    });
    expect(() => writeLoadFileDataBlock(p)).toThrow(/records offset 4 but is written at offset 0/);
  });
});

describe('structural refusals: parse', () => {
  const echo = assembleSample('echo');
  const block = writeLoadFileDataBlock(echo);

  it('1. constant pool tag outside 1..6', () => {
    refused(() => parseConstantPool(fromHex('0001 07000000')), 'ConstantPool', 2, /constant_pool\[0\] has tag 7/);
  });

  it('2. Classref padding not zero (through a whole block)', () => {
    const b = block.slice();
    const cp = componentAt(b, TAG.ConstantPool) + 3;
    const idx = echo.constantPool.findIndex((e) => e.kind === 'class');
    b[cp + 2 + 4 * idx + 3] = 0x55;
    refused(() => fromBlock(b), 'ConstantPool', 2 + 4 * idx + 3, /padding byte is 0x55/);
  });

  it('3. SuperMethodref naming an external class', () => {
    refused(() => parseConstantPool(fromHex('0001 04800301')), 'ConstantPool', 3, /SuperMethodref\) names an external class/);
  });

  it('4. internal static reference with a non-zero padding byte', () => {
    refused(() => parseConstantPool(fromHex('0001 06070001')), 'ConstantPool', 3, /padding byte is 0x7/);
  });

  it('5. an interface_info after a class_info', () => {
    const cls = fromHex('00 8003 00FF00 00000000' + '80');
    refused(() => parseClassComponent(cls, false), 'Class', 10, /interface_info comes before the classes/);
  });

  it('6. class_info truncated inside its method table', () => {
    const cls = fromHex('00 8003 00FF00 00 02 00 00 0001');
    refused(() => parseClassComponent(cls, false), 'Class', 12, /public_virtual_method_table\[1\] needs 2 bytes/);
  });

  it('7. reserved class flag bit', () => {
    refused(() => parseClassComponent(fromHex('10 8003 00FF00 00000000'), false), 'Class', 0, /reserved flag bit/);
  });

  it('8. RefLocation ends inside a 255 run', () => {
    refused(() => decodeRefLocation(fromHex('05FF'), new Uint8Array(0)), 'ReferenceLocation', 3, /ends inside a run of 255/);
  });

  it('9. RefLocation lists an offset twice', () => {
    refused(() => decodeRefLocation(new Uint8Array(0), fromHex('0500')), 'ReferenceLocation', 5, /listed twice/);
  });

  it('10. Descriptor type descriptors running past the end', () => {
    refused(() => parseDescriptor(fromHex('00 0000 05 12')), 'Descriptor', 3, /runs past the end of the type descriptors/);
  });

  it('11. Descriptor truncated inside a method descriptor', () => {
    refused(() => parseDescriptor(fromHex('01 00 01 0000 00 0000 0001 00 01 0001')), 'Descriptor', 14, /methods\[0\]\.type_offset needs 2 bytes/);
  });
});

describe('structural refusals: verify', () => {
  const echo = assembleSample('echo');
  const pin = assembleSample('pin');

  it('passes every assembled sample', () => {
    for (const name of SAMPLES) expect(() => verifyCapPackage(assembleSample(name)), name).not.toThrow();
  });

  it('12. invokestatic naming a class reference', () => {
    const pc = find(echo, 'invokestatic');
    const cls = echo.constantPool.findIndex((e) => e.kind === 'class');
    const bad = mutate(echo, (q) => {
      q.method.info[pc + 2] = cls;
    });
    refused(() => verifyCapPackage(bad), 'Method', pc, new RegExp(`invokestatic uses constant pool entry ${cls}, which is a class reference`));
  });

  it('13. constant pool index beyond the pool', () => {
    const pc = find(echo, 'invokevirtual');
    const bad = mutate(echo, (q) => {
      q.method.info[pc + 1] = 0x01;
    });
    refused(() => verifyCapPackage(bad), 'Method', pc + 1, /uses constant pool entry 2\d\d, but the constant pool has \d+ entries/);
  });

  it('14. operand missing from RefLocation', () => {
    const pc = find(echo, 'new');
    const bad = mutate(echo, (q) => {
      q.refLocation.byte2Index = q.refLocation.byte2Index.filter((o) => o !== pc + 1);
    });
    refused(() => verifyCapPackage(bad), 'Method', pc + 1, /new at \d+ has a constant pool index at offset \d+ that the ReferenceLocation component does not list/);
  });

  it('15. RefLocation listing an offset that is no operand', () => {
    const pc = find(echo, 'return');
    const bad = mutate(echo, (q) => {
      q.refLocation.byte2Index = [...q.refLocation.byte2Index, pc].sort((a, b) => a - b);
    });
    refused(() => verifyCapPackage(bad), 'ReferenceLocation', 2, new RegExp(`lists Method offset ${pc}, which is not a 2-byte constant pool index operand`));
  });

  it('16. branch into the middle of an instruction', () => {
    const pc = find(echo, 'ifeq');
    const bad = mutate(echo, (q) => {
      q.method.info[pc + 1] = 1;
    });
    refused(() => verifyCapPackage(bad), 'Method', pc, new RegExp(`ifeq at ${pc} jumps to ${pc + 1}, which is not an instruction start`));
  });

  it('17. unassigned opcode', () => {
    const pc = find(echo, 'return');
    const bad = mutate(echo, (q) => {
      q.method.info[pc] = 0xc0;
    });
    refused(() => verifyCapPackage(bad), 'Method', pc, /opcode 0xc0 is not a Java Card instruction/);
  });

  it('18. int instruction in a package without ACC_INT', () => {
    const pc = find(echo, 'sconst_0');
    const bad = mutate(echo, (q) => {
      q.method.info[pc] = 0x42; // iadd
    });
    refused(() => verifyCapPackage(bad), 'Method', pc, /iadd is an int instruction but the package does not set ACC_INT/);
  });

  it('19. applet install offset in the middle of a method', () => {
    const bad = mutate(echo, (q) => {
      q.applets[0].installMethodOffset += 1;
    });
    refused(() => verifyCapPackage(bad), 'Applet', 1 + 1 + echo.applets[0].aid.length, /install_method_offset is method offset \d+, which is not the start of a method/);
  });

  it('20. public method table entry that is not a method start', () => {
    const c = echo.classes[0];
    const bad = mutate(echo, (q) => {
      const k = q.classes[0];
      if (k.kind === 'class') k.publicVirtualMethodTable[0] += 3;
    });
    refused(() => verifyCapPackage(bad), 'Class', c.offset + 10, /public_virtual_method_table\[0\] \(token 7\) is method offset \d+, which is not the start of a method/);
  });

  it('21. superclass naming a class offset where there is none', () => {
    const bad = mutate(echo, (q) => {
      const k = q.classes[0];
      if (k.kind === 'class') k.superclass = { internal: true, classOffset: 99 };
    });
    refused(() => verifyCapPackage(bad), 'Class', 1, /super_class_ref names class offset 99, where the Class component has no class/);
  });

  it('22. external reference beyond the Import component', () => {
    const bad = mutate(echo, (q) => {
      q.constantPool[0] = { tag: 6, kind: 'staticMethod', ref: { internal: false, pkg: 5, classToken: 3, token: 0 } };
    });
    refused(() => verifyCapPackage(bad), 'ConstantPool', 3, /names imported package 5, but the Import component lists 1/);
  });

  it('23. static field reference beyond the image', () => {
    const i = pin.constantPool.findIndex((e) => e.kind === 'staticField');
    const bad = mutate(pin, (q) => {
      q.constantPool[i] = { tag: 5, kind: 'staticField', ref: { internal: true, offset: 40 } };
    });
    refused(() => verifyCapPackage(bad), 'ConstantPool', 2 + 4 * i + 2, /static field offset 40, beyond the 4-byte static field image/);
  });

  it('24. local variable beyond nargs + max_locals', () => {
    const pc = find(echo, 'sstore_3');
    const bad = mutate(echo, (q) => {
      // Shrink the method's max_locals to 1: locals are then this, apdu and one more.
      const m = instructions(echo).find((x) => x.pc === pc)!.method;
      q.method.info[m + 1] = (q.method.info[m + 1] & 0xf0) | 1;
    });
    refused(() => verifyCapPackage(bad), 'Method', pc, /sstore_3 uses local 3 but the method at \d+ has 3 local words/);
  });

  it('25. instruction running past the end of its method', () => {
    const calls = instructions(echo).filter((i) => i.mnemonic === 'invokestatic');
    const last = calls[calls.length - 1].pc; // ISOException.throwIt, then the final return
    const bad = mutate(echo, (q) => {
      const m = q.descriptor!.classes[0].methods.find((x) => x.token === 7)!;
      m.bytecodeCount -= 2;
      q.descriptor!.classes[0].methods.push({ ...m, token: 0xff, methodOffset: m.methodOffset + 2 + m.bytecodeCount, bytecodeCount: 0 });
    });
    refused(() => verifyCapPackage(bad), 'Method', last, /invokestatic runs past the end of the method/);
  });

  it('26. getfield_a on a primitive field', () => {
    const counter = assembleSample('counter');
    const pc = find(counter, 'getfield_s_this');
    const bad = mutate(counter, (q) => {
      q.method.info[pc] = 0xad; // getfield_a_this
    });
    refused(() => verifyCapPackage(bad), 'Method', pc, /getfield_a_this uses constant pool entry \d+, field token \d+ of the class at 0, which is a primitive field/);
  });

  it('27. exception handler range not on instruction boundaries', () => {
    const src = [
      '.package t.h A00000015199 1.0',
      '.class public H',
      '  .method public static f()V',
      '  a:',
      '    sspush 0x6A80',
      '    invokestatic javacard/framework/ISOException.throwIt(S)V',
      '  b:',
      '    return',
      '  c:',
      '    pop',
      '    return',
      '    .catch javacard/framework/ISOException from a to b using c',
      '  .end method',
      '.end class',
    ].join('\n');
    const p = assemble(src).pkg;
    expect(() => verifyCapPackage(p)).not.toThrow();
    const bad = mutate(p, (q) => {
      q.method.handlers[0].startOffset += 1;
      q.method.info.set(encodeHandlers(q.method.handlers));
    });
    refused(() => verifyCapPackage(bad), 'Method', 1, new RegExp(`exception_handlers\\[0\\]\\.start_offset ${p.method.handlers[0].startOffset + 1} is not an instruction start`));
    const bad2 = mutate(p, (q) => {
      q.method.handlers[0].handlerOffset = q.method.handlers[0].startOffset + 1; // inside sspush
      q.method.info.set(encodeHandlers(q.method.handlers));
    });
    refused(() => verifyCapPackage(bad2), 'Method', 5, /handler_offset \d+ is not an instruction start/);
  });

  it('28. Descriptor constant_pool_count different from the pool', () => {
    const bad = mutate(echo, (q) => {
      q.descriptor!.constantPoolTypes.pop();
    });
    const c = echo.descriptor!.classes[0];
    refused(() => verifyCapPackage(bad), 'Descriptor', 1 + 9 + 12 * c.methods.length, /type_descriptor_info.constant_pool_count is \d+ but the constant pool has \d+ entries/);
  });

  it('29. Export naming a class offset where there is none', () => {
    const lib = parseCapPackage(readCapFile(LIBRARY.jar));
    const bad = mutate(lib, (q) => {
      q.exports![0].classOffset = 7;
    });
    refused(() => verifyCapPackage(bad), 'Export', 1, /class_exports\[0\]\.class_offset 7 is not a class or interface/);
  });

  it('30. bytes between methods that no method descriptor covers', () => {
    const bad = mutate(echo, (q) => {
      q.descriptor!.classes[0].methods[0].bytecodeCount -= 1;
    });
    refused(() => verifyCapPackage(bad), 'Method', 7, /bytes 7\.\.7 belong to no method in the Descriptor component/);
  });
});

describe('mutated CAP files', () => {
  it('every single-byte mutation of the samples is accepted or refused with a CapError, never a crash', () => {
    // Deterministic xorshift so a failure reproduces.
    let seed = 0x2545f491;
    const rnd = (n: number) => {
      seed ^= seed << 13;
      seed ^= seed >>> 17;
      seed ^= seed << 5;
      return (seed >>> 0) % n;
    };
    let refusedCount = 0;
    for (const name of SAMPLES) {
      const block = writeLoadFileDataBlock(assembleSample(name));
      for (let i = 0; i < 1500; i++) {
        const b = block.slice();
        const at = rnd(b.length);
        b[at] = rnd(3) === 0 ? b[at] ^ (1 << rnd(8)) : rnd(256);
        try {
          verifyCapPackage(fromBlock(b));
        } catch (e) {
          if (!(e instanceof CapError)) throw new Error(`${name}: byte ${at} = ${b[at]}: ${String(e)}`);
          refusedCount++;
        }
      }
    }
    expect(refusedCount).toBeGreaterThan(1000);
  });
});
