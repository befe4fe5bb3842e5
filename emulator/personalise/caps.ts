// The product applets' Load File Data Blocks for personalisation: build/cap/<name>.cap when it is newer than every
// source of that applet (what `npm run build` leaves), else built on the spot with javac into build/ (the same output).
// Without a JDK and without a fresh build/cap file the error says what to install or run.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { DEFAULT_CAP_OUT, PRODUCT_DIR, ROOT, apiClassesIn, buildSample, javaSources, loadProductApplet } from '../../applet/build.ts';
import type { ProductApplet } from '../../applet/build.ts';
import type { AssembledLibrary } from '../vm/cap/asm.ts';

const cache = new Map<ProductApplet, Uint8Array>();

/** Newest modification time of the applet's sources and description. */
function sourcesTime(name: ProductApplet): number {
  const files = [...javaSources(join(PRODUCT_DIR, name, 'src')), join(PRODUCT_DIR, name, `${name}.json`)];
  return Math.max(...files.map((f) => statSync(f).mtimeMs));
}

/** The applet's CAP (Load File Data Block), from build/cap when fresh, else compiled and converted now. */
export function appletBlock(name: ProductApplet): Uint8Array {
  const hit = cache.get(name);
  if (hit) return hit;
  const cap = join(DEFAULT_CAP_OUT, `${name}.cap`);
  let block: Uint8Array;
  if (existsSync(cap) && statSync(cap).mtimeMs >= sourcesTime(name)) block = new Uint8Array(readFileSync(cap));
  else {
    if (spawnSync('javac', ['-version']).error)
      throw new Error(`${relative(ROOT, cap)} is missing or older than applet/${name}: run \`npm run build\` (needs a JDK, e.g. apt-get install openjdk-17-jdk-headless)`);
    const work = mkdtempSync(join(tmpdir(), `jpki-se-${name}-`));
    try {
      const r = buildSample(loadProductApplet(name), new Map<string, AssembledLibrary>(), {
        apiClasses: apiClassesIn(work),
        classesRoot: join(work, 'classes'),
        capRoot: join(work, 'cap'),
        samplesDir: PRODUCT_DIR,
      });
      if (!r.ok || !r.block) throw new Error(`building applet/${name} failed:\n${r.compile.output}${r.messages.join('\n')}`);
      block = r.block;
      mkdirSync(DEFAULT_CAP_OUT, { recursive: true });
      const tmp = `${cap}.${process.pid}.tmp`;
      writeFileSync(tmp, block);
      renameSync(tmp, cap);
    } finally {
      rmSync(work, { recursive: true, force: true });
    }
  }
  cache.set(name, block);
  return block;
}
