// jpki-se asm: jcasm source (docs/jcasm.md) → a verified CAP file, as a Load File Data Block or the converter's JAR form.
import { readFileSync, writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { hex } from '../emulator/bytes.ts';
import { readCapFile } from '../emulator/cap-reader.ts';
import { AsmError, assemble } from '../emulator/vm/cap/asm.ts';
import type { AssembledLibrary } from '../emulator/vm/cap/asm.ts';
import { parseSource } from '../emulator/vm/cap/asm-syntax.ts';
import { parseCapPackage } from '../emulator/vm/cap/parse.ts';
import { verifyCapPackage } from '../emulator/vm/cap/verify.ts';
import { writeCapJar, writeLoadFileDataBlock } from '../emulator/vm/cap/write.ts';
import type { CapPackage } from '../emulator/vm/types.ts';
import type { Values } from './args.ts';
import { PlainError, UsageError, flag, str } from './args.ts';
import type { Io } from './io.ts';

function readSource(path: string, what: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new Error(code === 'ENOENT' ? `${what} ${path} does not exist` : `cannot read ${what} ${path}: ${(e as Error).message}`);
  }
}

/** Assembles one source; assembler and structural errors come out compiler style, naming the file (and line). */
function assembleFile(path: string, libraries: AssembledLibrary[]): { pkg: CapPackage; library?: AssembledLibrary; name: string } {
  const text = readSource(path, 'source file');
  try {
    const r = assemble(text, { file: path, libraries });
    verifyCapPackage(r.pkg);
    return { ...r, name: parseSource(text, path).name.replace(/\//g, '.') };
  } catch (e) {
    if (e instanceof AsmError) throw new PlainError(e.message);
    if (e instanceof Error && e.name === 'CapError') throw new PlainError(`${path}: ${e.message}`);
    throw e;
  }
}

/** Default output: the source's name with .cap for .jca. */
export function defaultOutput(source: string): string {
  return /\.jca$/i.test(source) ? source.replace(/\.jca$/i, '.cap') : `${source}.cap`;
}

export function asmCommand(v: Values, positionals: string[], io: Io): number {
  const source = positionals[0];
  const out = str(v, 'out') ?? defaultOutput(source);
  if (!out) throw new UsageError('--out needs a file name');
  if (resolve(out) === resolve(source)) throw new UsageError(`--out ${out} is the source file`);
  const libs = (v.lib ?? []) as string[];
  const libraries: AssembledLibrary[] = [];
  for (const lib of libs) {
    const r = assembleFile(lib, libraries);
    if (!r.library) throw new PlainError(`${lib}: not a library (no .library directive and no exported Shareable interface)`);
    libraries.push(r.library);
  }
  const { pkg, name } = assembleFile(source, libraries);
  const jar = flag(v, 'jar');
  const bytes = jar ? writeCapJar(pkg, name) : writeLoadFileDataBlock(pkg);
  // What was written must read back as it will at "cap info" and LOAD: a failure here is an assembler defect.
  try {
    verifyCapPackage(parseCapPackage(readCapFile(bytes)));
  } catch (e) {
    throw new Error(`${source}: the CAP written does not read back (an assembler defect): ${(e as Error).message}`);
  }
  try {
    writeFileSync(out, bytes);
  } catch (e) {
    throw new Error(`cannot write ${out}: ${(e as Error).message}`);
  }
  const classes = pkg.classes.filter((c) => c.kind === 'class').length;
  const ifaces = pkg.classes.length - classes;
  const parts = [
    `package ${hex(pkg.package.aid)} v${pkg.package.major}.${pkg.package.minor} (${name})`,
    `${classes} class${classes === 1 ? '' : 'es'}${ifaces ? `, ${ifaces} interface${ifaces === 1 ? '' : 's'}` : ''}`,
    pkg.applets.length ? `applet${pkg.applets.length === 1 ? '' : 's'} ${pkg.applets.map((a) => hex(a.aid)).join(' ')}` : 'no applets',
  ];
  io.out(`${out}: ${bytes.length} bytes (${jar ? 'JAR' : 'Load File Data Block'}), ${parts.join(', ')}`);
  return 0;
}
