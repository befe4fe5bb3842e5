import { describe, it, expect } from 'vitest';
import { strToU8, zipSync, unzipSync } from 'fflate';
import { bytes, concat, fromHex, hex } from '../emulator/bytes.ts';
import {
  ACC_APPLET,
  ACC_EXPORT,
  CapError,
  COMPONENT_NAMES,
  LOAD_ORDER,
  TAG,
  componentInfo,
  loadFileDataBlock,
  parseLoadFileDataBlock,
  readCapFile,
} from '../emulator/cap-reader.ts';
import { JAVA_LANG, JAVACARD_FRAMEWORK, buildCap } from './fixtures/cap-builder.ts';
import { HELLO, HELLO_APPLET_AID, HELLO_PACKAGE_AID, LIBRARY, LIBRARY_PACKAGE_AID, MULTI, MULTI_APPLET_AIDS } from './fixtures/samples.ts';

/** Tag -> offset of each component in a block (framing only, for building test mutations). */
function layout(block: Uint8Array): Map<number, number> {
  const out = new Map<number, number>();
  for (let off = 0; off < block.length; off += 3 + ((block[off + 1] << 8) | block[off + 2])) out.set(block[off], off);
  return out;
}

function at(block: Uint8Array, tag: number): number {
  const off = layout(block).get(tag);
  if (off === undefined) throw new Error(`tag ${tag} not in block`);
  return off;
}

function patched(block: Uint8Array, offset: number, ...values: number[]): Uint8Array {
  const out = block.slice();
  out.set(values, offset);
  return out;
}

function tagsOf(block: Uint8Array): number[] {
  return [...layout(block).keys()];
}

/** Runs fn, expects a CapError naming `component` at `offset`, both in the fields and in the message. */
function capError(fn: () => unknown, component: string, offset: number | undefined, message?: RegExp): CapError {
  let caught: unknown;
  try {
    fn();
  } catch (e) {
    caught = e;
  }
  expect(caught).toBeInstanceOf(CapError);
  const err = caught as CapError;
  expect(err.component).toBe(component);
  expect(err.offset).toBe(offset);
  expect(err.message).toContain(`${component} component`);
  if (offset !== undefined) expect(err.message).toContain(`offset ${offset}`);
  if (message) expect(err.message).toMatch(message);
  return err;
}

const DIR_COUNTS_21 = 3 + 11 * 2 + 6; // import_count in a CAP 2.1 Directory

describe('parseLoadFileDataBlock on builder output', () => {
  it('reads Header, Applet, Import and Directory of a CAP 2.1 block', () => {
    const cap = parseLoadFileDataBlock(HELLO.block);
    expect([cap.formatMajor, cap.formatMinor]).toEqual([2, 1]);
    expect(cap.flags).toBe(ACC_APPLET);
    expect(hex(cap.package.aid)).toBe(hex(HELLO_PACKAGE_AID));
    expect([cap.package.major, cap.package.minor]).toEqual([1, 0]);
    expect(cap.package.name).toBeUndefined();
    expect(cap.applets.map((a) => [hex(a.aid), a.installMethodOffset])).toEqual([[hex(HELLO_APPLET_AID), 1]]);
    expect(cap.imports.map((p) => [hex(p.aid), p.major, p.minor])).toEqual([
      [hex(JAVA_LANG.aid), 1, 0],
      [hex(JAVACARD_FRAMEWORK.aid), 1, 6],
    ]);
    expect(cap.exports).toBeUndefined();
    expect(cap.componentSizes).toHaveLength(11);
    for (const [tag, raw] of cap.components) expect(cap.componentSizes[tag - 1]).toBe(raw.length - 3);
    expect(cap.componentSizes[TAG.Applet - 1]).toBeGreaterThan(0);
    expect(cap.componentSizes[TAG.Export - 1]).toBe(0);
    expect(cap.directory.importCount).toBe(2);
    expect(cap.directory.appletCount).toBe(1);
    expect(cap.staticField.imageSize).toBe(4);
    expect(cap.staticField.arrayInits.map((a) => [a.type, hex(a.values)])).toEqual([[3, '010203']]);
    expect([...cap.components.keys()]).toEqual(LOAD_ORDER.filter((t) => t !== TAG.Export));
    expect(hex(componentInfo(cap, TAG.Method) ?? bytes())).toBe('0001307A');
  });

  it('keeps raw components exactly as read, as copies', () => {
    const block = HELLO.block.slice();
    const cap = parseLoadFileDataBlock(block);
    for (const [tag, raw] of HELLO.components) expect(hex(cap.components.get(tag) ?? bytes())).toBe(hex(raw));
    block.fill(0);
    expect(cap.components.get(TAG.Header)?.[0]).toBe(TAG.Header);
  });

  it('reads the JAR form and the raw form to the same result', () => {
    const fromJar = readCapFile(HELLO.jar);
    const fromRaw = readCapFile(HELLO.block);
    expect(hex(fromJar.package.aid)).toBe(hex(HELLO_PACKAGE_AID));
    expect(fromJar.applets.map((a) => hex(a.aid))).toEqual([hex(HELLO_APPLET_AID)]);
    expect([...fromJar.components.keys()]).toEqual([...fromRaw.components.keys()]);
    for (const [tag, raw] of fromRaw.components) expect(hex(fromJar.components.get(tag) ?? bytes())).toBe(hex(raw));
  });

  it('reads CAP 2.2: package name, 12 Directory entries, Debug framed but never loaded', () => {
    const cap = readCapFile(MULTI.jar);
    expect([cap.formatMajor, cap.formatMinor]).toEqual([2, 2]);
    expect(cap.package.name).toBe('com.example.multi');
    expect([cap.package.major, cap.package.minor]).toEqual([1, 1]);
    expect(cap.componentSizes).toHaveLength(12);
    expect(cap.componentSizes[TAG.Debug - 1]).toBe((cap.components.get(TAG.Debug)?.length ?? 0) - 3);
    expect(cap.componentSizes[TAG.Debug - 1]).toBeGreaterThan(0);
    expect(cap.applets.map((a) => [hex(a.aid), a.installMethodOffset])).toEqual([
      [hex(MULTI_APPLET_AIDS[0]), 1],
      [hex(MULTI_APPLET_AIDS[1]), 4],
    ]);
    const lfdb = loadFileDataBlock(cap, { includeDescriptor: true });
    expect(tagsOf(lfdb)).not.toContain(TAG.Debug);
    expect(hex(lfdb)).toBe(hex(MULTI.block));
    // The raw block form may carry Debug (a raw .cap), the reader frames it.
    const withDebug = concat(MULTI.block, MULTI.components.get(TAG.Debug) ?? bytes());
    expect(parseLoadFileDataBlock(withDebug).components.has(TAG.Debug)).toBe(true);
  });

  it('builds the Load File Data Block in GP order, Descriptor only when asked, and it parses again', () => {
    const cap = readCapFile(HELLO.jar);
    const plain = loadFileDataBlock(cap);
    expect(tagsOf(plain)).toEqual([1, 2, 4, 3, 6, 7, 8, 5, 9]);
    const withDescriptor = loadFileDataBlock(cap, { includeDescriptor: true });
    expect(tagsOf(withDescriptor)).toEqual([1, 2, 4, 3, 6, 7, 8, 5, 9, 11]);
    expect(hex(withDescriptor)).toBe(hex(HELLO.block));
    // A Load File may leave the Descriptor out although the Directory still counts it.
    const again = parseLoadFileDataBlock(plain);
    expect(again.components.has(TAG.Descriptor)).toBe(false);
    expect(again.componentSizes[TAG.Descriptor - 1]).toBe(cap.componentSizes[TAG.Descriptor - 1]);
    const lib = readCapFile(LIBRARY.jar);
    expect(tagsOf(loadFileDataBlock(lib))).toEqual([1, 2, 4, 6, 7, 8, 10, 5, 9]);
  });

  it('reads a library package: no Applet component, Export parsed, ACC_EXPORT', () => {
    const cap = parseLoadFileDataBlock(LIBRARY.block);
    expect(hex(cap.package.aid)).toBe(hex(LIBRARY_PACKAGE_AID));
    expect([cap.package.major, cap.package.minor]).toEqual([2, 0]);
    expect(cap.flags).toBe(ACC_EXPORT);
    expect(cap.applets).toEqual([]);
    expect(cap.imports.map((p) => hex(p.aid))).toEqual([hex(JAVA_LANG.aid)]);
    expect(cap.exports).toEqual([{ classOffset: 0, staticFieldOffsets: [0], staticMethodOffsets: [1] }]);
    expect(cap.componentSizes[TAG.Applet - 1]).toBe(0);
  });

  it('accepts custom components declared in the Directory and leaves them out of the Load File', () => {
    const built = buildCap({
      packageAid: HELLO_PACKAGE_AID,
      applets: [{ aid: HELLO_APPLET_AID }],
      custom: [{ tag: 0x80, aid: fromHex('F000000001FF'), info: bytes(1, 2, 3, 4) }],
    });
    const custom = built.components.get(0x80) ?? bytes();
    const cap = parseLoadFileDataBlock(concat(built.block, custom));
    expect(cap.directory.customComponents.map((c) => [c.tag, c.size, hex(c.aid)])).toEqual([[0x80, 4, 'F000000001FF']]);
    expect(hex(cap.components.get(0x80) ?? bytes())).toBe('80000401020304');
    expect(tagsOf(loadFileDataBlock(cap, { includeDescriptor: true }))).not.toContain(0x80);
    expect(readCapFile(built.jar).components.has(0x80)).toBe(true);
    // Declared but absent is fine (a Load File without it); present but undeclared is not.
    expect(() => parseLoadFileDataBlock(built.block)).not.toThrow();
    capError(() => parseLoadFileDataBlock(concat(HELLO.block, custom)), 'custom(tag 128)', HELLO.block.length, /not declared in the Directory/);
    capError(
      () => parseLoadFileDataBlock(concat(built.block, bytes(0x80, 0, 3, 1, 2, 3))),
      'custom(tag 128)',
      built.block.length + 1,
      /size 4 but it has 3/,
    );
  });
});

describe('facts from converter output', () => {
  it('reproduces the Header of the JC 2.x HelloWorld sample (CAP 2.1, package A00000006203010C01 v1.0)', () => {
    // Published dump of HelloWorld's Header.cap: 01 0013 DECAFFED 01 02 04 00 01 09 A00000006203010C01.
    const built = buildCap({ packageAid: fromHex('A00000006203010C01'), applets: [{ aid: fromHex('A00000006203010C0101') }] });
    expect(hex(built.components.get(TAG.Header) ?? bytes())).toBe('010013DECAFFED010204000109A00000006203010C01');
    const cap = parseLoadFileDataBlock(built.block);
    expect(cap.formatMinor).toBe(1);
    expect(cap.flags).toBe(0x04);
  });

  it('sizes a CAP 2.1 Directory at 31 bytes (11 component sizes), as converters emit', () => {
    // GP LOAD traces of converter output (CAP 2.1) show "02 001F" for the Directory.
    expect(hex((HELLO.components.get(TAG.Directory) ?? bytes()).subarray(0, 3))).toBe('02001F');
    expect(hex((MULTI.components.get(TAG.Directory) ?? bytes()).subarray(0, 3))).toBe('020021');
  });
});

describe('parseLoadFileDataBlock errors', () => {
  const block = HELLO.block;
  const dir = at(block, TAG.Directory);

  it('refuses an empty block', () => {
    expect(() => parseLoadFileDataBlock(bytes())).toThrow(CapError);
  });

  it('refuses every truncation with a component and an offset', () => {
    for (const source of [HELLO.block, MULTI.block, LIBRARY.block]) {
      for (let cut = 1; cut < source.length; cut++) {
        let caught: unknown;
        try {
          parseLoadFileDataBlock(source.subarray(0, cut));
        } catch (e) {
          caught = e;
        }
        // Cutting the Descriptor off whole is a legal Load File; everything else must fail.
        if (cut === at(source, TAG.Descriptor)) {
          expect(caught).toBeUndefined();
          continue;
        }
        expect(caught, `cut at ${cut}`).toBeInstanceOf(CapError);
        const err = caught as CapError;
        expect(err.component, `cut at ${cut}`).toBeDefined();
        expect(err.offset, `cut at ${cut}`).toBeTypeOf('number');
        expect(err.message).toMatch(/^CAP \S+ component, offset \d+: /);
      }
    }
  });

  it('names the truncated component and what is missing', () => {
    capError(() => parseLoadFileDataBlock(block.subarray(0, 2)), 'Header', 0, /header truncated/);
    capError(() => parseLoadFileDataBlock(block.subarray(0, 10)), 'Header', 0, /declares 16 info bytes but only 7 remain/);
    capError(() => parseLoadFileDataBlock(block.subarray(0, dir + 1)), 'Directory', dir, /header truncated/);
    capError(() => parseLoadFileDataBlock(block.subarray(0, dir)), 'Directory', dir, /no Directory component/);
    const imp = at(block, TAG.Import);
    // Sizes are checked in tag order, so the Applet (tag 3, after Import in install order) is reported first.
    capError(() => parseLoadFileDataBlock(block.subarray(0, imp)), 'Directory', dir + 3 + 2 * (TAG.Applet - 1), /Applet size 11 but there is no Applet component/);
  });

  it('refuses a size running past the buffer', () => {
    capError(() => parseLoadFileDataBlock(patched(block, 1, 0xff, 0xff)), 'Header', 0, /declares 65535 info bytes/);
    const method = at(block, TAG.Method);
    capError(() => parseLoadFileDataBlock(patched(block, method + 1, 0x7f, 0x00)), 'Method', method, /declares 32512/);
  });

  it('refuses a zero-size component', () => {
    capError(() => parseLoadFileDataBlock(concat(block, bytes(TAG.Export, 0, 0))), 'Export', block.length, /size is 0/);
  });

  it('refuses sizes that disagree with the Directory', () => {
    const method = at(block, TAG.Method);
    capError(
      () => parseLoadFileDataBlock(patched(block, dir + 3 + 2 * (TAG.Method - 1), 0, 5)),
      'Directory',
      dir + 3 + 2 * (TAG.Method - 1),
      /Directory gives Method size 5 but the Method component has 4/,
    );
    // Grow the Method component by one byte without telling the Directory.
    const grown = concat(block.subarray(0, method), bytes(TAG.Method, 0, 5), block.subarray(method + 3, method + 7), bytes(0x7a), block.subarray(method + 7));
    capError(() => parseLoadFileDataBlock(grown), 'Directory', dir + 3 + 2 * (TAG.Method - 1), /Method size 4 but the Method component has 5/);
    // An optional component the Directory does not count.
    capError(
      () => parseLoadFileDataBlock(patched(block, dir + 3 + 2 * (TAG.Export - 1), 0, 9)),
      'Directory',
      dir + 3 + 2 * (TAG.Export - 1),
      /Export size 9 but there is no Export component/,
    );
  });

  it('refuses a bad magic', () => {
    capError(() => parseLoadFileDataBlock(patched(block, 6, 0xee)), 'Header', 3, /bad magic 0xDECAFFEE, expected 0xDECAFFED/);
  });

  it('refuses a duplicate component', () => {
    const imp = HELLO.components.get(TAG.Import) ?? bytes();
    capError(() => parseLoadFileDataBlock(concat(block, imp)), 'Import', block.length, /duplicate component \(the first one is at offset \d+\)/);
  });

  it('requires the Header first', () => {
    const h = HELLO.components.get(TAG.Header) ?? bytes();
    capError(() => parseLoadFileDataBlock(concat(block.subarray(h.length), h)), 'Directory', 0, /first component must be Header/);
  });

  it('refuses CAP 2.3 with a clear message, and other unknown formats', () => {
    const v23 = buildCap({ packageAid: HELLO_PACKAGE_AID, format: [2, 3] });
    capError(() => parseLoadFileDataBlock(v23.block), 'Header', 7, /CAP format 2\.3 .*not supported.*3\.0\.5/);
    capError(() => parseLoadFileDataBlock(patched(block, 7, 0, 2)), 'Header', 7, /CAP format 2\.0 is not supported \(only 2\.1 and 2\.2\)/);
    capError(() => parseLoadFileDataBlock(patched(block, 7, 1, 3)), 'Header', 7, /CAP format 3\.1 is not supported/);
  });

  it('refuses AID lengths 0 and 17 in Header, Applet and Import', () => {
    for (const len of [0, 4, 17]) {
      const aid = new Uint8Array(len).fill(0xf0);
      capError(() => parseLoadFileDataBlock(buildCap({ packageAid: aid }).block), 'Header', 12, new RegExp(`package AID length ${len} is outside 5\\.\\.16`));
      const withApplet = buildCap({ packageAid: HELLO_PACKAGE_AID, applets: [{ aid }] }).block;
      capError(() => parseLoadFileDataBlock(withApplet), 'Applet', at(withApplet, TAG.Applet) + 4, new RegExp(`applets\\[0\\] AID length ${len}`));
      const withImport = buildCap({ packageAid: HELLO_PACKAGE_AID, imports: [JAVA_LANG, { aid, major: 1, minor: 0 }] }).block;
      const second = at(withImport, TAG.Import) + 4 + 3 + JAVA_LANG.aid.length;
      capError(() => parseLoadFileDataBlock(withImport), 'Import', second + 2, new RegExp(`packages\\[1\\] AID length ${len}`));
    }
    const ok = buildCap({ packageAid: new Uint8Array(16).fill(0xf0), applets: [{ aid: new Uint8Array(5).fill(0xf0) }] });
    expect(parseLoadFileDataBlock(ok.block).applets[0].aid).toHaveLength(5);
  });

  it('checks Applet and Import internal lengths and counts', () => {
    const applet = at(block, TAG.Applet);
    capError(() => parseLoadFileDataBlock(patched(block, applet + 3, 2)), 'Applet', applet + 3 + 1 + 1 + 7 + 2, /applets\[1\] AID length needs 1 byte/);
    capError(() => parseLoadFileDataBlock(patched(block, applet + 3, 0)), 'Applet', applet + 3, /count is 0/);
    const multi = MULTI.block;
    const mApplet = at(multi, TAG.Applet);
    capError(() => parseLoadFileDataBlock(patched(multi, mApplet + 3, 1)), 'Applet', mApplet + 3 + 1 + 10, /10 byte\(s\) left over after 1 applet entries/);
    const imp = at(block, TAG.Import);
    capError(() => parseLoadFileDataBlock(patched(block, imp + 3, 1)), 'Import', imp + 3 + 1 + 10, /10 byte\(s\) left over after 1 imported packages/);
    capError(() => parseLoadFileDataBlock(patched(block, imp + 3, 3)), 'Import', imp + 3 + 1 + 20, /packages\[2\]\.minor_version needs 1 byte/);
    capError(() => parseLoadFileDataBlock(patched(block, dir + DIR_COUNTS_21, 3)), 'Directory', dir + DIR_COUNTS_21, /import_count 3 but the Import component lists 2/);
    capError(() => parseLoadFileDataBlock(patched(block, dir + DIR_COUNTS_21 + 1, 2)), 'Directory', dir + DIR_COUNTS_21 + 1, /applet_count 2 but the Applet component lists 1/);
  });

  it('checks applet AIDs against the package RID and install offsets against the Method component', () => {
    const foreign = buildCap({ packageAid: HELLO_PACKAGE_AID, applets: [{ aid: fromHex('F1000000010101') }] }).block;
    capError(() => parseLoadFileDataBlock(foreign), 'Applet', at(foreign, TAG.Applet) + 5, /RID F100000001, the package's is F000000001/);
    const twice = buildCap({ packageAid: HELLO_PACKAGE_AID, applets: [{ aid: HELLO_APPLET_AID }, { aid: HELLO_APPLET_AID }] }).block;
    capError(() => parseLoadFileDataBlock(twice), 'Applet', at(twice, TAG.Applet) + 3 + 1 + 1 + 7 + 2 + 1, /listed twice/);
    const applet = at(block, TAG.Applet);
    const offsetAt = applet + 3 + 1 + 1 + 7;
    capError(() => parseLoadFileDataBlock(patched(block, offsetAt, 0, 4)), 'Applet', offsetAt, /install_method_offset 4 is outside .*\(1\.\.3\)/);
    capError(() => parseLoadFileDataBlock(patched(block, offsetAt, 0, 0)), 'Applet', offsetAt, /install_method_offset 0/);
  });

  it('checks header flags against the components present', () => {
    capError(() => parseLoadFileDataBlock(patched(block, 9, 0)), 'Header', 9, /ACC_APPLET is clear but the Applet component is present/);
    capError(() => parseLoadFileDataBlock(patched(block, 9, ACC_APPLET | ACC_EXPORT)), 'Header', 9, /ACC_EXPORT is set but the Export component is absent/);
    capError(() => parseLoadFileDataBlock(patched(block, 9, 0x14)), 'Header', 9, /bits outside/);
    const lib = LIBRARY.block;
    capError(() => parseLoadFileDataBlock(patched(lib, 9, ACC_EXPORT | ACC_APPLET)), 'Header', 9, /ACC_APPLET is set but the Applet component is absent/);
  });

  it('refuses tags the format does not define', () => {
    capError(() => parseLoadFileDataBlock(concat(block, bytes(13, 0, 1, 0))), 'unknown(tag 13)', block.length, /unknown component tag 13/);
    capError(() => parseLoadFileDataBlock(concat(block, bytes(0, 0, 1, 0))), 'unknown(tag 0)', block.length, /unknown component tag 0/);
    const debug = MULTI.components.get(TAG.Debug) ?? bytes();
    capError(() => parseLoadFileDataBlock(concat(block, debug)), 'Debug', block.length, /does not exist in CAP 2\.1/);
  });

  it('cross-checks the StaticField component with the Directory', () => {
    const sizes = dir + 3 + 11 * 2;
    capError(() => parseLoadFileDataBlock(patched(block, sizes, 0, 6)), 'Directory', sizes, /static image_size 6 but the StaticField component says 4/);
    capError(() => parseLoadFileDataBlock(patched(block, sizes + 2, 0, 2)), 'Directory', sizes + 2, /array_init_count 2 but the StaticField component has 1/);
    capError(() => parseLoadFileDataBlock(patched(block, sizes + 4, 0, 4)), 'Directory', sizes + 4, /array_init_size 4 but the StaticField arrays hold 3 bytes/);
    const sf = at(block, TAG.StaticField);
    capError(() => parseLoadFileDataBlock(patched(block, sf + 3, 0, 5)), 'StaticField', sf + 3, /image_size 5 but 2\*reference_count/);
    // A second array_init entry reads default_value_count as its type and count: 0x0200 bytes that are not there.
    capError(() => parseLoadFileDataBlock(patched(block, sf + 7, 0, 2)), 'StaticField', sf + 9 + 6 + 3, /array_init\[1\]\.values needs 512 byte/);
  });

  it('checks the ConstantPool, ReferenceLocation and Export layouts', () => {
    const cp = at(block, TAG.ConstantPool);
    capError(() => parseLoadFileDataBlock(patched(block, cp + 5 + 4, 9)), 'ConstantPool', cp + 5 + 4, /constant_pool\[1\] has tag 9/);
    capError(() => parseLoadFileDataBlock(patched(block, cp + 3, 0, 2)), 'ConstantPool', cp + 5 + 8, /4 byte\(s\) left over after 2 constant pool entries/);
    const rl = at(block, TAG.ReferenceLocation);
    capError(() => parseLoadFileDataBlock(patched(block, rl + 3, 0, 1)), 'ReferenceLocation', rl + 6, /byte2_index_count needs 2 byte/);
    const lib = LIBRARY.block;
    const ex = at(lib, TAG.Export);
    capError(() => parseLoadFileDataBlock(patched(lib, ex + 4, 0, 10)), 'Export', ex + 4, /class_offset 10 is beyond the Class component/);
    capError(() => parseLoadFileDataBlock(patched(lib, ex + 8, 0, 4)), 'Export', ex + 8, /static_field_offsets\[0\] 4 is beyond the static field image \(4 bytes\)/);
    capError(() => parseLoadFileDataBlock(patched(lib, ex + 10, 0, 9)), 'Export', ex + 10, /static_method_offsets\[0\] 9 is beyond the Method component/);
  });
});

describe('readCapFile errors', () => {
  it('refuses input that is neither a JAR nor a block', () => {
    expect(() => readCapFile(bytes(0x42, 1, 2))).toThrow(/neither a JAR .* nor concatenated components/);
    expect(() => readCapFile(bytes())).toThrow(CapError);
  });

  it('refuses a broken zip', () => {
    expect(() => readCapFile(HELLO.jar.slice(0, 40))).toThrow(CapError);
    expect(() => readCapFile(HELLO.jar.slice(0, 40))).toThrow(/unreadable JAR\/zip|no <package path>/);
  });

  it('refuses a JAR without components, with two packages, or with a wrong entry', () => {
    expect(() => readCapFile(zipSync({ 'META-INF/MANIFEST.MF': strToU8('Manifest-Version: 1.0\r\n') }))).toThrow(/no <package path>\/javacard\/\*\.cap/);
    const files = unzipSync(HELLO.jar);
    const two = { ...files, 'other/javacard/Header.cap': files[Object.keys(files).find((n) => n.endsWith('Header.cap')) ?? ''] };
    expect(() => readCapFile(zipSync(two))).toThrow(/more than one package/);
    const headerPath = Object.keys(files).find((n) => n.endsWith('/Header.cap')) ?? '';
    const importPath = Object.keys(files).find((n) => n.endsWith('/Import.cap')) ?? '';
    const swapped = { ...files, [headerPath]: files[importPath] };
    const e1 = capError(() => readCapFile(zipSync(swapped)), 'Header', 0, /holds tag 4 \(Import\), expected tag 1/);
    expect(e1.message).toContain(headerPath);
    const short = { ...files, [importPath]: files[importPath].subarray(0, files[importPath].length - 1) };
    capError(() => readCapFile(zipSync(short)), 'Import', 1, /component size 21 but the entry holds 20 info bytes/);
    const noHeader = { ...files };
    delete noHeader[headerPath];
    expect(() => readCapFile(zipSync(noHeader))).toThrow(/no Header\.cap/);
    const dirPath = Object.keys(files).find((n) => n.endsWith('/Directory.cap')) ?? '';
    const noDir = { ...files };
    delete noDir[dirPath];
    expect(() => readCapFile(zipSync(noDir))).toThrow(/no Directory\.cap/);
  });

  it('matches component file names without regard to case, and names JAR entries in errors', () => {
    const files = unzipSync(HELLO.jar);
    const lower = Object.fromEntries(Object.entries(files).map(([n, d]) => [n.replace(/[^/]+\.cap$/, (f) => f.toLowerCase()), d]));
    expect(hex(readCapFile(zipSync(lower)).package.aid)).toBe(hex(HELLO_PACKAGE_AID));
    const methodPath = Object.keys(files).find((n) => n.endsWith('/Method.cap')) ?? '';
    const bad = { ...files, [methodPath]: concat(bytes(TAG.Method, 0, 5), files[methodPath].subarray(3), bytes(0x7a)) };
    const err = capError(() => readCapFile(zipSync(bad)), 'Directory', 3 + 2 * (TAG.Method - 1), /Method size 4 but the Method component has 5/);
    expect(err.message).toContain('javacard/Directory.cap');
  });
});

/** mulberry32: a small seeded PRNG, so the mutation run is the same every time. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function mutate(src: Uint8Array, rnd: () => number): Uint8Array {
  const int = (n: number): number => Math.floor(rnd() * n);
  const kind = int(5);
  if (kind === 0) {
    const out = src.slice();
    for (let k = 1 + int(3); k > 0; k--) out[int(out.length)] = int(256);
    return out;
  }
  if (kind === 1) return src.slice(0, int(src.length));
  if (kind === 2) {
    const p = int(src.length + 1);
    const extra = Uint8Array.from({ length: 1 + int(8) }, () => int(256));
    return concat(src.subarray(0, p), extra, src.subarray(p));
  }
  if (kind === 3) {
    const p = int(src.length);
    return concat(src.subarray(0, p), src.subarray(Math.min(src.length, p + 1 + int(6))));
  }
  // Small adjustments to sizes and counts, where most checks live.
  const out = src.slice();
  const p = int(out.length);
  out[p] = (out[p] + (rnd() < 0.5 ? 1 : 255)) & 0xff;
  return out;
}

describe('mutation resilience', () => {
  it('throws nothing but CapError on 2000 mutated blocks', () => {
    const rnd = prng(0x5eed);
    const sources = [HELLO.block, MULTI.block, LIBRARY.block, concat(MULTI.block, MULTI.components.get(TAG.Debug) ?? bytes())];
    let refused = 0;
    for (let i = 0; i < 2000; i++) {
      const m = mutate(sources[i % sources.length], rnd);
      try {
        parseLoadFileDataBlock(m);
      } catch (e) {
        if (!(e instanceof CapError)) throw new Error(`mutation ${i} (${hex(m)}) threw ${String(e)}`);
        refused++;
      }
    }
    // Most mutations must be caught; a few land in bytes no check covers (method bodies, descriptor).
    expect(refused).toBeGreaterThan(1500);
  });

  it('throws nothing but CapError on 300 mutated JARs', () => {
    const rnd = prng(0xcafe);
    for (let i = 0; i < 300; i++) {
      const m = mutate(i % 2 ? HELLO.jar : MULTI.jar, rnd);
      try {
        readCapFile(m);
      } catch (e) {
        if (!(e instanceof CapError)) throw new Error(`JAR mutation ${i} threw ${String(e)}`);
      }
    }
  });

  it('names every component', () => {
    expect(Object.keys(COMPONENT_NAMES).map(Number)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]);
  });
});
