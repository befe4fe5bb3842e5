// CAP file reader (JCVM 3.0.5 ch. 6, CAP formats 2.1 and 2.2): frames every component of a Java Card package, checks
// the parts a card manager relies on at GP LOAD time, and rebuilds the Load File Data Block in install order.
// Method, Class and Descriptor bodies are framed but not interpreted here; the VM reads them through componentInfo().
import { unzipSync } from 'fflate';
import { concat, equal, hex } from './bytes.ts';

/** Component tags, JCVM §6.1 Table 6-1. */
export const TAG = {
  Header: 1,
  Directory: 2,
  Applet: 3,
  Import: 4,
  ConstantPool: 5,
  Class: 6,
  Method: 7,
  StaticField: 8,
  ReferenceLocation: 9,
  Export: 10,
  Descriptor: 11,
  Debug: 12,
} as const;

export const COMPONENT_NAMES: Record<number, string> = {
  1: 'Header',
  2: 'Directory',
  3: 'Applet',
  4: 'Import',
  5: 'ConstantPool',
  6: 'Class',
  7: 'Method',
  8: 'StaticField',
  9: 'ReferenceLocation',
  10: 'Export',
  11: 'Descriptor',
  12: 'Debug',
};

/** File names inside the JAR's `<package path>/javacard/` directory, JCVM §6.1.1 Table 6-2 (not case sensitive). */
export const COMPONENT_FILES: Record<number, string> = {
  1: 'Header.cap',
  2: 'Directory.cap',
  3: 'Applet.cap',
  4: 'Import.cap',
  5: 'ConstantPool.cap',
  6: 'Class.cap',
  7: 'Method.cap',
  8: 'StaticField.cap',
  9: 'RefLocation.cap',
  10: 'Export.cap',
  11: 'Descriptor.cap',
  12: 'Debug.cap',
};

/** Reference install order, JCVM §6.2 Table 6-3; GP LOAD sends this order. Debug is never downloaded. */
export const LOAD_ORDER: readonly number[] = [1, 2, 4, 3, 6, 7, 8, 10, 5, 9, 11];

/** Header flags, JCVM §6.3 Table 6-4. */
export const ACC_INT = 0x01;
export const ACC_EXPORT = 0x02;
export const ACC_APPLET = 0x04;

const MAGIC = 0xdecaffed;

export class CapError extends Error {
  /** Component name (e.g. 'Applet'), when the problem lies in one. */
  readonly component?: string;
  /** Byte offset: in the Load File Data Block, or in the JAR entry when reading a JAR. */
  readonly offset?: number;
  constructor(what: string, component?: string, offset?: number, origin?: string) {
    const where = [
      component === undefined ? undefined : `${component} component`,
      origin,
      offset === undefined ? undefined : `offset ${offset}`,
    ].filter((s) => s !== undefined);
    super(where.length ? `CAP ${where.join(', ')}: ${what}` : `CAP: ${what}`);
    this.name = 'CapError';
    this.component = component;
    this.offset = offset;
  }
}

export interface PackageRef {
  aid: Uint8Array;
  major: number;
  minor: number;
}

export interface AppletEntry {
  aid: Uint8Array;
  /** Offset into the Method component's info of the applet's static install(byte[],short,byte). */
  installMethodOffset: number;
}

export interface ExportedClass {
  /** Offset into the Class component's info. */
  classOffset: number;
  /** Offsets into the static field image. */
  staticFieldOffsets: number[];
  /** Offsets into the Method component's info. */
  staticMethodOffsets: number[];
}

export interface CustomComponent {
  tag: number;
  size: number;
  aid: Uint8Array;
}

export interface DirectoryInfo {
  /** Indexed by tag - 1: 11 entries in CAP 2.1, 12 (with Debug) in CAP 2.2. */
  componentSizes: number[];
  staticFieldSize: { imageSize: number; arrayInitCount: number; arrayInitSize: number };
  importCount: number;
  appletCount: number;
  customComponents: CustomComponent[];
}

export interface StaticFieldInfo {
  imageSize: number;
  referenceCount: number;
  arrayInits: { type: number; values: Uint8Array }[];
  defaultValueCount: number;
  nonDefaultValues: Uint8Array;
}

export interface CapFile {
  formatMajor: number;
  formatMinor: number;
  flags: number;
  package: PackageRef & { name?: string };
  /** Applet component entries; empty when the package defines no applet. */
  applets: AppletEntry[];
  imports: PackageRef[];
  /** Export component, when present. */
  exports?: ExportedClass[];
  /** Directory component sizes (same as directory.componentSizes). */
  componentSizes: number[];
  directory: DirectoryInfo;
  staticField: StaticFieldInfo;
  referenceLocation: { byteIndexOffsets: Uint8Array; byte2IndexOffsets: Uint8Array };
  /** Raw component bytes (tag, size and info) by tag, exactly as read. */
  components: Map<number, Uint8Array>;
}

/** One framed component: raw bytes, where they start in the input, and which JAR entry they came from. */
interface Framed {
  tag: number;
  raw: Uint8Array;
  base: number;
  origin?: string;
}

export function componentName(tag: number): string {
  return COMPONENT_NAMES[tag] ?? (tag >= 128 ? `custom(tag ${tag})` : `unknown(tag ${tag})`);
}

/** The info bytes (without tag and size) of a component, or undefined if absent. */
export function componentInfo(cap: CapFile, tag: number): Uint8Array | undefined {
  return cap.components.get(tag)?.subarray(3);
}

/** Bounded big-endian reader over one component's info; every overrun becomes a CapError at the right offset. */
interface Cursor {
  pos: number;
  readonly end: number;
  u1(what: string): number;
  u2(what: string): number;
  u4(what: string): number;
  take(n: number, what: string): Uint8Array;
  aid(what: string): Uint8Array;
  fail(what: string, at?: number): never;
}

function cursor(c: Framed): Cursor {
  const name = componentName(c.tag);
  const raw = c.raw;
  const cur: Cursor = {
    pos: 3,
    end: raw.length,
    fail(what: string, at = cur.pos): never {
      throw new CapError(what, name, c.base + at, c.origin);
    },
    take(n: number, what: string): Uint8Array {
      if (cur.pos + n > cur.end) {
        cur.fail(`${what} needs ${n} byte(s) but only ${cur.end - cur.pos} remain in the component`);
      }
      const out = raw.slice(cur.pos, cur.pos + n);
      cur.pos += n;
      return out;
    },
    u1(what: string): number {
      return cur.take(1, what)[0];
    },
    u2(what: string): number {
      const b = cur.take(2, what);
      return (b[0] << 8) | b[1];
    },
    u4(what: string): number {
      const b = cur.take(4, what);
      return ((b[0] << 24) | (b[1] << 16) | (b[2] << 8) | b[3]) >>> 0;
    },
    aid(what: string): Uint8Array {
      const at = cur.pos;
      const len = cur.u1(`${what} AID length`);
      // ISO 7816-5 AIDs are 5..16 bytes (JCVM §4.2, restated for every AID_length item in ch. 6).
      if (len < 5 || len > 16) cur.fail(`${what} AID length ${len} is outside 5..16`, at);
      return cur.take(len, `${what} AID`);
    },
  };
  return cur;
}

function expectEnd(cur: Cursor, what: string): void {
  if (cur.pos !== cur.end) cur.fail(`${cur.end - cur.pos} byte(s) left over after ${what}; the component size disagrees with its content`);
}

function versionText(major: number, minor: number): string {
  return `${major}.${minor}`;
}

/**
 * Parses concatenated components (a GP Load File Data Block, or a raw .cap). Checks: each component's framing within
 * the buffer, no duplicate tags, Header first, magic, CAP format 2.1/2.2, known tags, Directory present and its sizes
 * equal to the actual ones, required components present, Applet/Import/ConstantPool/StaticField/ReferenceLocation/Export
 * internal lengths, AID lengths 5..16, header flags against the components present.
 */
export function parseLoadFileDataBlock(block: Uint8Array): CapFile {
  if (block.length === 0) throw new CapError('empty Load File Data Block', undefined, 0);
  const list: Framed[] = [];
  const seen = new Map<number, number>();
  let off = 0;
  while (off < block.length) {
    const tag = block[off];
    const name = componentName(tag);
    if (off + 3 > block.length) {
      throw new CapError(`component header truncated: ${block.length - off} byte(s) left, a tag and u2 size need 3`, name, off);
    }
    const size = (block[off + 1] << 8) | block[off + 2];
    if (size === 0) throw new CapError('size is 0; every component has a non-empty info (JCVM §6.1)', name, off);
    if (off + 3 + size > block.length) {
      throw new CapError(`declares ${size} info bytes but only ${block.length - off - 3} remain in the block`, name, off);
    }
    const first = seen.get(tag);
    if (first !== undefined) throw new CapError(`duplicate component (the first one is at offset ${first})`, name, off);
    seen.set(tag, off);
    list.push({ tag, raw: block.slice(off, off + 3 + size), base: off });
    off += 3 + size;
  }
  return checkComponents(list);
}

/** Reads a .cap file: the JAR/zip form (`<package path>/javacard/Header.cap` etc.) or raw concatenated components. */
export function readCapFile(file: Uint8Array): CapFile {
  if (file.length >= 2 && file[0] === 0x50 && file[1] === 0x4b) return readJar(file);
  if (file.length > 0 && file[0] === TAG.Header) return parseLoadFileDataBlock(file);
  throw new CapError('neither a JAR (zip, "PK") nor concatenated components starting with Header (tag 1)', undefined, 0);
}

/** The Load File Data Block for GP LOAD: components in install order, Descriptor only if asked (and present), Debug and custom components never. */
export function loadFileDataBlock(cap: CapFile, opts: { includeDescriptor?: boolean } = {}): Uint8Array {
  const parts: Uint8Array[] = [];
  for (const tag of LOAD_ORDER) {
    if (tag === TAG.Descriptor && !opts.includeDescriptor) continue;
    const c = cap.components.get(tag);
    if (c) parts.push(c);
  }
  return concat(...parts);
}

const JAR_ENTRY = /^(.*?)(?:^|\/)javacard\/([^/]+\.cap)$/i;
const MAX_COMPONENT = 3 + 0xffff;

function readJar(file: Uint8Array): CapFile {
  const oversized: string[] = [];
  let entries: Record<string, Uint8Array>;
  try {
    entries = unzipSync(file, {
      filter: (f) => {
        if (!JAR_ENTRY.test(f.name)) return false;
        // A component is at most 3 + 65535 bytes; refusing bigger entries also bounds decompression.
        if (f.originalSize > MAX_COMPONENT) {
          oversized.push(f.name);
          return false;
        }
        return true;
      },
    });
  } catch (e) {
    throw new CapError(`unreadable JAR/zip: ${e instanceof Error ? e.message : String(e)}`, undefined, 0);
  }
  if (oversized.length) throw new CapError(`JAR entry ${oversized[0]} is larger than any component can be (${MAX_COMPONENT} bytes)`);
  const names = Object.keys(entries);
  if (names.length === 0) throw new CapError('JAR holds no <package path>/javacard/*.cap component entries');
  const dirs = new Set(names.map((n) => JAR_ENTRY.exec(n)?.[1] ?? ''));
  if (dirs.size > 1) throw new CapError(`JAR holds components of more than one package: ${[...dirs].map((d) => `${d}/javacard/`).join(', ')}`);

  const fileTags = new Map(Object.entries(COMPONENT_FILES).map(([tag, f]) => [f.toLowerCase(), Number(tag)]));
  const byTag = new Map<number, Framed>();
  for (const path of names.sort()) {
    const raw = entries[path];
    const fileName = (JAR_ENTRY.exec(path)?.[2] ?? '').toLowerCase();
    const expected = fileTags.get(fileName);
    const name = componentName(expected ?? raw[0] ?? 0);
    if (raw.length < 3) throw new CapError(`entry has ${raw.length} byte(s), a tag and u2 size need 3`, name, 0, path);
    const tag = raw[0];
    if (expected !== undefined && tag !== expected) {
      throw new CapError(`entry holds tag ${tag} (${componentName(tag)}), expected tag ${expected}`, name, 0, path);
    }
    const size = (raw[1] << 8) | raw[2];
    if (size === 0) throw new CapError('size is 0; every component has a non-empty info (JCVM §6.1)', name, 1, path);
    if (3 + size !== raw.length) {
      throw new CapError(`component size ${size} but the entry holds ${raw.length - 3} info bytes`, name, 1, path);
    }
    const dup = byTag.get(tag);
    if (dup) throw new CapError(`duplicate component (also in ${dup.origin})`, name, 0, path);
    byTag.set(tag, { tag, raw: raw.slice(), base: 0, origin: path });
  }
  const header = byTag.get(TAG.Header);
  if (!header) throw new CapError('JAR has no Header.cap', 'Header');
  const order = [...LOAD_ORDER, TAG.Debug, ...[...byTag.keys()].filter((t) => t > TAG.Debug).sort((a, b) => a - b)];
  const list = order.map((t) => byTag.get(t)).filter((c): c is Framed => c !== undefined);
  // Tags no list above mentions (unknown ones) still go through the tag check.
  for (const [tag, c] of byTag) if (!order.includes(tag)) list.push(c);
  return checkComponents(list);
}

interface Header {
  formatMajor: number;
  formatMinor: number;
  flags: number;
  package: PackageRef & { name?: string };
}

function checkComponents(list: Framed[]): CapFile {
  const first = list[0];
  if (first.tag !== TAG.Header) {
    throw new CapError(`the first component must be Header (tag 1), found ${componentName(first.tag)}`, componentName(first.tag), first.base, first.origin);
  }
  const header = parseHeader(first);
  const v22 = header.formatMinor >= 2;
  const byTag = new Map<number, Framed>();
  for (const c of list) {
    if (c.tag === TAG.Debug && !v22) cursor(c).fail('the Debug component (tag 12) does not exist in CAP 2.1', 0);
    // Tags 13..127 are reserved for future JCVM components (§6.1); 128..255 are custom and must be in the Directory.
    if (c.tag === 0 || (c.tag > TAG.Debug && c.tag < 128)) cursor(c).fail(`unknown component tag ${c.tag}`, 0);
    byTag.set(c.tag, c);
  }
  const dirC = byTag.get(TAG.Directory);
  if (!dirC) {
    // In a block, reported where install order expects it: right after the Header.
    const at = first.origin === undefined ? first.base + first.raw.length : undefined;
    throw new CapError(first.origin === undefined ? 'no Directory component' : 'JAR has no Directory.cap', 'Directory', at);
  }
  const directory = parseDirectory(dirC, v22);
  checkDirectorySizes(dirC, directory, byTag, v22);

  const method = byTag.get(TAG.Method);
  const methodSize = method ? method.raw.length - 3 : 0;
  const handlerEnd = method ? parseMethodFraming(method) : 0;
  const classC = byTag.get(TAG.Class);
  if (classC && v22) parseClassFraming(classC);

  const appletC = byTag.get(TAG.Applet);
  const applets = appletC ? parseApplets(appletC, header.package.aid, handlerEnd, methodSize) : [];
  if (applets.length !== directory.appletCount) {
    cursor(dirC).fail(`Directory applet_count ${directory.appletCount} but the Applet component lists ${applets.length}`, directoryCountsAt(v22) + 1);
  }
  const imports = parseImports(present(byTag, TAG.Import), header.package.aid);
  if (imports.length !== directory.importCount) {
    cursor(dirC).fail(`Directory import_count ${directory.importCount} but the Import component lists ${imports.length}`, directoryCountsAt(v22));
  }
  checkConstantPool(present(byTag, TAG.ConstantPool));
  const staticField = parseStaticField(present(byTag, TAG.StaticField), directory, dirC, v22);
  const referenceLocation = parseReferenceLocation(present(byTag, TAG.ReferenceLocation));
  const exportC = byTag.get(TAG.Export);
  const exports = exportC
    ? parseExports(exportC, classC ? classC.raw.length - 3 : 0, methodSize, staticField.imageSize)
    : undefined;

  // JCVM §6.3: ACC_APPLET and ACC_EXPORT say whether the Applet and Export components exist.
  const hdr = cursor(first);
  if (Boolean(header.flags & ACC_APPLET) !== (appletC !== undefined)) {
    hdr.fail(`flags 0x${header.flags.toString(16)}: ACC_APPLET is ${header.flags & ACC_APPLET ? 'set' : 'clear'} but the Applet component is ${appletC ? 'present' : 'absent'}`, 9);
  }
  if (Boolean(header.flags & ACC_EXPORT) !== (exportC !== undefined)) {
    hdr.fail(`flags 0x${header.flags.toString(16)}: ACC_EXPORT is ${header.flags & ACC_EXPORT ? 'set' : 'clear'} but the Export component is ${exportC ? 'present' : 'absent'}`, 9);
  }

  const components = new Map<number, Uint8Array>();
  for (const c of list) components.set(c.tag, c.raw);
  return {
    formatMajor: header.formatMajor,
    formatMinor: header.formatMinor,
    flags: header.flags,
    package: header.package,
    applets,
    imports,
    ...(exports ? { exports } : {}),
    componentSizes: directory.componentSizes,
    directory,
    staticField,
    referenceLocation,
    components,
  };
}

/** A component checkDirectorySizes has already proved present (required ones). */
function present(byTag: Map<number, Framed>, tag: number): Framed {
  const c = byTag.get(tag);
  if (!c) throw new CapError(`no ${componentName(tag)} component`, componentName(tag));
  return c;
}

/** JCVM §6.3. */
function parseHeader(c: Framed): Header {
  const cur = cursor(c);
  const magic = cur.u4('magic');
  if (magic !== MAGIC) cur.fail(`bad magic 0x${magic.toString(16).toUpperCase().padStart(8, '0')}, expected 0xDECAFFED`, 3);
  const formatMinor = cur.u1('minor_version');
  const formatMajor = cur.u1('major_version');
  if (formatMajor === 2 && formatMinor === 3) {
    cur.fail('CAP format 2.3 (Java Card 3.1+, compact/extended CAP) is not supported; convert for Java Card 3.0.5 or earlier (CAP 2.1 or 2.2)', 7);
  }
  if (formatMajor !== 2 || (formatMinor !== 1 && formatMinor !== 2)) {
    cur.fail(`CAP format ${versionText(formatMajor, formatMinor)} is not supported (only 2.1 and 2.2)`, 7);
  }
  const flagsAt = cur.pos;
  const flags = cur.u1('flags');
  if (flags & ~(ACC_INT | ACC_EXPORT | ACC_APPLET)) {
    cur.fail(`flags 0x${flags.toString(16)} has bits outside ACC_INT|ACC_EXPORT|ACC_APPLET (0x07)`, flagsAt);
  }
  const minor = cur.u1('package minor_version');
  const major = cur.u1('package major_version');
  const aid = cur.aid('package');
  const pkg: PackageRef & { name?: string } = { aid, major, minor };
  if (formatMinor >= 2) {
    // CAP 2.2 adds package_name_info; a zero length means no name was recorded.
    const nameAt = cur.pos;
    const len = cur.u1('package name_length');
    const nameBytes = cur.take(len, 'package name');
    if (len > 0) {
      try {
        pkg.name = new TextDecoder('utf-8', { fatal: true }).decode(nameBytes);
      } catch {
        cur.fail('package name is not valid UTF-8', nameAt + 1);
      }
    }
  }
  expectEnd(cur, 'package_info');
  return { formatMajor, formatMinor, flags, package: pkg };
}

/** JCVM §6.4; CAP 2.1 has 11 component sizes (no Debug), CAP 2.2 has 12. */
function parseDirectory(c: Framed, v22: boolean): DirectoryInfo {
  const cur = cursor(c);
  const n = v22 ? 12 : 11;
  const componentSizes: number[] = [];
  for (let i = 0; i < n; i++) componentSizes.push(cur.u2(`component_sizes[${i}] (${componentName(i + 1)})`));
  const imageSize = cur.u2('static_field_size.image_size');
  const arrayInitCount = cur.u2('static_field_size.array_init_count');
  const arrayInitSize = cur.u2('static_field_size.array_init_size');
  const importCount = cur.u1('import_count');
  const appletCount = cur.u1('applet_count');
  const customCount = cur.u1('custom_count');
  const customComponents: CustomComponent[] = [];
  for (let i = 0; i < customCount; i++) {
    const tagAt = cur.pos;
    const tag = cur.u1(`custom_components[${i}].component_tag`);
    if (tag < 128) cur.fail(`custom component tag ${tag} is not in the custom range 128..255`, tagAt);
    if (customComponents.some((x) => x.tag === tag)) cur.fail(`custom component tag ${tag} is listed twice`, tagAt);
    const size = cur.u2(`custom_components[${i}].size`);
    const aid = cur.aid(`custom_components[${i}]`);
    customComponents.push({ tag, size, aid });
  }
  expectEnd(cur, 'custom_components');
  return { componentSizes, staticFieldSize: { imageSize, arrayInitCount, arrayInitSize }, importCount, appletCount, customComponents };
}

/** Offset in the Directory component of import_count (applet_count follows it). */
function directoryCountsAt(v22: boolean): number {
  return 3 + (v22 ? 12 : 11) * 2 + 6;
}

const REQUIRED = [TAG.Header, TAG.Directory, TAG.Import, TAG.ConstantPool, TAG.Class, TAG.Method, TAG.StaticField, TAG.ReferenceLocation, TAG.Descriptor];
/** Components a Load File may leave out although the Directory counts them: Descriptor is optional for download, Debug never goes. */
const STRIPPABLE = new Set<number>([TAG.Descriptor, TAG.Debug]);

function checkDirectorySizes(dirC: Framed, d: DirectoryInfo, byTag: Map<number, Framed>, v22: boolean): void {
  const cur = cursor(dirC);
  const n = v22 ? 12 : 11;
  for (let tag = 1; tag <= n; tag++) {
    const at = 3 + (tag - 1) * 2;
    const listed = d.componentSizes[tag - 1];
    const c = byTag.get(tag);
    const name = componentName(tag);
    if (c) {
      const actual = c.raw.length - 3;
      if (listed !== actual) cur.fail(`Directory gives ${name} size ${listed} but the ${name} component has ${actual}`, at);
    } else if (listed !== 0 && !STRIPPABLE.has(tag)) {
      cur.fail(`Directory gives ${name} size ${listed} but there is no ${name} component`, at);
    } else if (listed === 0 && (REQUIRED as number[]).includes(tag)) {
      cur.fail(`Directory gives ${name} size 0 but ${name} is a required component (JCVM §6.1)`, at);
    }
  }
  for (const [tag, c] of byTag) {
    if (tag < 128) continue;
    const decl = d.customComponents.find((x) => x.tag === tag);
    const own: Cursor = cursor(c);
    if (!decl) own.fail(`custom component tag ${tag} is not declared in the Directory`, 0);
    if (decl.size !== c.raw.length - 3) {
      own.fail(`Directory declares custom component ${tag} with size ${decl.size} but it has ${c.raw.length - 3}`, 1);
    }
  }
}

/** JCVM §6.5. */
function parseApplets(c: Framed, packageAid: Uint8Array, handlerEnd: number, methodSize: number): AppletEntry[] {
  const cur = cursor(c);
  const count = cur.u1('count');
  if (count === 0) cur.fail('applet count is 0; a package without applets has no Applet component', 3);
  const out: AppletEntry[] = [];
  for (let i = 0; i < count; i++) {
    const aidAt = cur.pos;
    const aid = cur.aid(`applets[${i}]`);
    // JCVM §6.5: every applet AID shares the package's RID (first 5 bytes).
    if (!equal(aid.subarray(0, 5), packageAid.subarray(0, 5))) {
      cur.fail(`applets[${i}] AID ${hex(aid)} has RID ${hex(aid.subarray(0, 5))}, the package's is ${hex(packageAid.subarray(0, 5))}`, aidAt + 1);
    }
    if (out.some((a) => equal(a.aid, aid))) cur.fail(`applets[${i}] AID ${hex(aid)} is listed twice`, aidAt + 1);
    const offAt = cur.pos;
    const installMethodOffset = cur.u2(`applets[${i}].install_method_offset`);
    if (installMethodOffset < handlerEnd || installMethodOffset >= methodSize) {
      cur.fail(`applets[${i}] install_method_offset ${installMethodOffset} is outside the Method component's methods (${handlerEnd}..${methodSize - 1})`, offAt);
    }
    out.push({ aid, installMethodOffset });
  }
  expectEnd(cur, `${count} applet entries`);
  return out;
}

/** JCVM §6.6. */
function parseImports(c: Framed, packageAid: Uint8Array): PackageRef[] {
  const cur = cursor(c);
  const count = cur.u1('count');
  if (count > 128) cur.fail(`import count ${count} exceeds 128`, 3);
  const out: PackageRef[] = [];
  for (let i = 0; i < count; i++) {
    const at = cur.pos;
    const minor = cur.u1(`packages[${i}].minor_version`);
    const major = cur.u1(`packages[${i}].major_version`);
    const aid = cur.aid(`packages[${i}]`);
    if (equal(aid, packageAid)) cur.fail(`packages[${i}] imports the package itself (${hex(aid)})`, at + 3);
    if (out.some((p) => equal(p.aid, aid))) cur.fail(`packages[${i}] AID ${hex(aid)} is imported twice`, at + 3);
    out.push({ aid, major, minor });
  }
  expectEnd(cur, `${count} imported packages`);
  return out;
}

/** JCVM §6.7: u2 count, then 4-byte entries whose tag is 1..6 (Table 6-5). */
function checkConstantPool(c: Framed): void {
  const cur = cursor(c);
  const count = cur.u2('count');
  for (let i = 0; i < count; i++) {
    const at = cur.pos;
    const entry = cur.take(4, `constant_pool[${i}]`);
    if (entry[0] < 1 || entry[0] > 6) cur.fail(`constant_pool[${i}] has tag ${entry[0]}, expected 1..6`, at);
  }
  expectEnd(cur, `${count} constant pool entries`);
}

/** JCVM §6.8, CAP 2.2: the Class component opens with u2 signature_pool_length and the pool. */
function parseClassFraming(c: Framed): void {
  const cur = cursor(c);
  const len = cur.u2('signature_pool_length');
  cur.take(len, 'signature_pool');
}

/** JCVM §6.9: u1 handler_count and 8-byte exception handlers precede the methods; returns where the methods start. */
function parseMethodFraming(c: Framed): number {
  const cur = cursor(c);
  const handlers = cur.u1('handler_count');
  cur.take(handlers * 8, `${handlers} exception_handlers`);
  return cur.pos - 3;
}

/** JCVM §6.10, cross-checked with the Directory's static_field_size_info (§6.4). */
function parseStaticField(c: Framed, d: DirectoryInfo, dirC: Framed, v22: boolean): StaticFieldInfo {
  const cur = cursor(c);
  const imageSize = cur.u2('image_size');
  const referenceCount = cur.u2('reference_count');
  const arrayInitCount = cur.u2('array_init_count');
  const arrayInits: { type: number; values: Uint8Array }[] = [];
  let arrayBytes = 0;
  for (let i = 0; i < arrayInitCount; i++) {
    const type = cur.u1(`array_init[${i}].type`);
    const count = cur.u2(`array_init[${i}].count`);
    arrayInits.push({ type, values: cur.take(count, `array_init[${i}].values`) });
    arrayBytes += count;
  }
  const defaultValueCount = cur.u2('default_value_count');
  const nonDefaultCount = cur.u2('non_default_value_count');
  const nonDefaultValues = cur.take(nonDefaultCount, 'non_default_values');
  expectEnd(cur, 'non_default_values');
  // Static field image = references (2 bytes each), then default-valued, then non-default-valued primitives.
  const image = referenceCount * 2 + defaultValueCount + nonDefaultCount;
  if (image !== imageSize) {
    cur.fail(`image_size ${imageSize} but 2*reference_count + default_value_count + non_default_value_count = ${image}`, 3);
  }
  const sizeAt = 3 + (v22 ? 12 : 11) * 2;
  const dir = cursor(dirC);
  const s = d.staticFieldSize;
  if (s.imageSize !== imageSize) dir.fail(`Directory static image_size ${s.imageSize} but the StaticField component says ${imageSize}`, sizeAt);
  if (s.arrayInitCount !== arrayInitCount) {
    dir.fail(`Directory array_init_count ${s.arrayInitCount} but the StaticField component has ${arrayInitCount}`, sizeAt + 2);
  }
  if (s.arrayInitSize !== arrayBytes) {
    dir.fail(`Directory array_init_size ${s.arrayInitSize} but the StaticField arrays hold ${arrayBytes} bytes`, sizeAt + 4);
  }
  return { imageSize, referenceCount, arrayInits, defaultValueCount, nonDefaultValues };
}

/** JCVM §6.11. */
function parseReferenceLocation(c: Framed): { byteIndexOffsets: Uint8Array; byte2IndexOffsets: Uint8Array } {
  const cur = cursor(c);
  const n1 = cur.u2('byte_index_count');
  const byteIndexOffsets = cur.take(n1, 'offsets_to_byte_indices');
  const n2 = cur.u2('byte2_index_count');
  const byte2IndexOffsets = cur.take(n2, 'offsets_to_byte2_indices');
  expectEnd(cur, 'offsets_to_byte2_indices');
  return { byteIndexOffsets, byte2IndexOffsets };
}

/** JCVM §6.12. */
function parseExports(c: Framed, classSize: number, methodSize: number, imageSize: number): ExportedClass[] {
  const cur = cursor(c);
  const count = cur.u1('class_count');
  const out: ExportedClass[] = [];
  for (let i = 0; i < count; i++) {
    const at = cur.pos;
    const classOffset = cur.u2(`class_exports[${i}].class_offset`);
    if (classOffset >= classSize) cur.fail(`class_exports[${i}].class_offset ${classOffset} is beyond the Class component (${classSize} bytes)`, at);
    const nf = cur.u1(`class_exports[${i}].static_field_count`);
    const nm = cur.u1(`class_exports[${i}].static_method_count`);
    const staticFieldOffsets: number[] = [];
    for (let j = 0; j < nf; j++) {
      const fAt = cur.pos;
      const o = cur.u2(`class_exports[${i}].static_field_offsets[${j}]`);
      if (o >= imageSize) cur.fail(`class_exports[${i}].static_field_offsets[${j}] ${o} is beyond the static field image (${imageSize} bytes)`, fAt);
      staticFieldOffsets.push(o);
    }
    const staticMethodOffsets: number[] = [];
    for (let j = 0; j < nm; j++) {
      const mAt = cur.pos;
      const o = cur.u2(`class_exports[${i}].static_method_offsets[${j}]`);
      if (o >= methodSize) cur.fail(`class_exports[${i}].static_method_offsets[${j}] ${o} is beyond the Method component (${methodSize} bytes)`, mAt);
      staticMethodOffsets.push(o);
    }
    out.push({ classOffset, staticFieldOffsets, staticMethodOffsets });
  }
  expectEnd(cur, `${count} exported classes`);
  return out;
}
