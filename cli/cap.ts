// jpki-se cap info: read a CAP file (JAR or Load File Data Block), check it as the card does at LOAD (cap-reader framing,
// the CAP model, verify.ts) and say what it holds.
import { readFileSync } from 'node:fs';
import { hex } from '../emulator/bytes.ts';
import { ACC_APPLET, ACC_EXPORT, ACC_INT, componentName, loadFileDataBlock, readCapFile } from '../emulator/cap-reader.ts';
import type { CapFile } from '../emulator/cap-reader.ts';
import type { CapPackage } from '../emulator/vm/types.ts';
import { apiPackages } from '../emulator/vm/cap/api-table.ts';
import { parseCapPackage } from '../emulator/vm/cap/parse.ts';
import { verifyCapPackage } from '../emulator/vm/cap/verify.ts';
import type { Values } from './args.ts';
import type { Io } from './io.ts';
import { table } from './chip.ts';

function flagNames(flags: number): string {
  const names = [flags & ACC_INT ? 'int' : '', flags & ACC_EXPORT ? 'export' : '', flags & ACC_APPLET ? 'applet' : ''].filter(Boolean);
  return names.length ? names.join(', ') : 'none';
}

export function capInfo(_v: Values, positionals: string[], io: Io): number {
  const path = positionals[0];
  let bytes: Uint8Array;
  try {
    bytes = readFileSync(path);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new Error(code === 'ENOENT' ? `CAP file ${path} does not exist` : `cannot read CAP file ${path}: ${(e as Error).message}`);
  }
  let file: CapFile;
  let pkg: CapPackage;
  try {
    file = readCapFile(bytes);
    pkg = parseCapPackage(file);
    verifyCapPackage(pkg);
  } catch (e) {
    throw new Error(`${path}: ${(e as Error).message}`);
  }
  const jar = bytes[0] === 0x50 && bytes[1] === 0x4b;
  const api = new Map(apiPackages().map((p) => [p.aid, p]));
  io.out(`file:       ${path} (${bytes.length} bytes, ${jar ? 'JAR' : 'Load File Data Block'})`);
  io.out(`package:    ${hex(pkg.package.aid)} v${pkg.package.major}.${pkg.package.minor}${pkg.package.name ? ` (${pkg.package.name})` : ''}`);
  io.out(`format:     CAP ${pkg.formatMajor}.${pkg.formatMinor}, flags ${flagNames(pkg.flags)}`);
  if (!pkg.imports.length) io.out('imports:    none');
  pkg.imports.forEach((imp, i) => {
    const aid = hex(imp.aid);
    const known = api.get(aid);
    // The chip provides the API natively: same major, minor no newer than the chip's (JCVM §4.5.2 binary compatibility).
    const note = known
      ? imp.major === known.major && imp.minor <= known.minor
        ? known.name
        : `${known.name}; the chip has v${known.major}.${known.minor}`
      : 'not in the chip API: load that package first';
    io.out(`${i ? '            ' : 'imports:    '}${aid} v${imp.major}.${imp.minor} (${note})`);
  });
  if (!pkg.applets.length) io.out('applets:    none');
  pkg.applets.forEach((a, i) => io.out(`${i ? '            ' : 'applets:    '}${hex(a.aid)} (install method at Method offset ${a.installMethodOffset})`));
  const classes = pkg.classes.filter((c) => c.kind === 'class').length;
  const methods = pkg.descriptor?.classes.reduce((n, c) => n + c.methods.length, 0);
  io.out(
    `classes:    ${classes} class${classes === 1 ? '' : 'es'}, ${pkg.classes.length - classes} interface${pkg.classes.length - classes === 1 ? '' : 's'}` +
      `${methods === undefined ? '' : `, ${methods} method${methods === 1 ? '' : 's'}`}, ${pkg.method.handlers.length} exception handler${pkg.method.handlers.length === 1 ? '' : 's'}`,
  );
  io.out(`statics:    ${pkg.staticField.imageSize} bytes image, ${pkg.staticField.arrayInits.length} array initialiser${pkg.staticField.arrayInits.length === 1 ? '' : 's'}`);
  if (pkg.exports) io.out(`exports:    ${pkg.exports.length} class${pkg.exports.length === 1 ? '' : 'es'}`);
  io.out(`constants:  ${pkg.constantPool.length} constant pool entries`);
  io.out(`load file:  ${loadFileDataBlock(file).length} bytes (what GP LOAD carries: install order, no Descriptor or Debug)`);
  io.out('');
  io.out('components (bytes, tag and size included):');
  const tags = [...file.components.keys()].sort((a, b) => a - b);
  const rows = [['tag', 'component', 'bytes'], ...tags.map((t) => [String(t), componentName(t), String(file.components.get(t)!.length)])];
  rows.push(['', 'total', String(tags.reduce((n, t) => n + file.components.get(t)!.length, 0))]);
  for (const line of table(rows)) io.out(`  ${line}`);
  return 0;
}
