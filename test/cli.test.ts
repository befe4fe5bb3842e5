// The jpki-se command line: most cases run the command tree in-process (fast); a few spawn the real CLI through tsx
// to prove exit codes and stderr as a shell sees them.
import { describe, it, expect, beforeEach, afterAll } from 'vitest';
import { spawn, spawnSync } from 'node:child_process';
import { createConnection, createServer } from 'node:net';
import { copyFileSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { COMMANDS, run } from '../cli/run.ts';
import type { Io } from '../cli/io.ts';
import { fromHex, hex } from '../emulator/bytes.ts';
import { kcv } from '../emulator/scp03.ts';
import { DEFAULT_PROFILE } from '../emulator/profile.ts';
// HELLO_APP: the VM installs only applets whose install registers an instance.
import { HELLO_APP as HELLO, HELLO_APPLET_AID, HELLO_PACKAGE_AID } from './fixtures/samples.ts';
import { ASM_SAMPLES, sampleBlock } from './fixtures/asm/samples.ts';
import { cli } from './helpers/cli.ts';

const root = join(import.meta.dirname, '..');
const dir = mkdtempSync(join(tmpdir(), 'jpki-cli-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

let n = 0;
let state: string;
beforeEach(() => {
  state = join(dir, `chip${n++}.img`);
});

async function newChip(): Promise<void> {
  expect((await cli('chip', 'new', '--state', state)).code).toBe(0);
}

const PKG = hex(HELLO_PACKAGE_AID);
const APP = hex(HELLO_APPLET_AID);

describe('chip new / info', () => {
  it('creates a chip and shows its profile, registry, key sets and memory', async () => {
    const created = await cli('chip', 'new', '--state', state);
    expect(created.code).toBe(0);
    expect(created.out[0]).toBe(`created ${state}`);
    expect(created.out).toContain(`  ATR:      ${hex(DEFAULT_PROFILE.atr)}`);
    const info = await cli('chip', 'info', '--state', state);
    expect(info.code).toBe(0);
    expect(info.out).toContain('profile:  jcop4-like');
    expect(info.out).toContain('card:     SECURED (0F)');
    expect(info.out).toContain('memory:   0 of 139360 bytes of persistent memory used by load files (139360 free)');
    expect(info.out.find((l) => l.includes('ISD   A000000151000000'))).toMatch(/PERSONALIZED\s+9EDC00/);
    expect(info.out.find((l) => l.includes('A0000001515350 '))).toContain('modules A000000151535041');
    // Keys appear by KCV only: the test key's KCV, never the key itself.
    expect(info.out.find((l) => l.startsWith('  A000000151000000  30'))).toBe(
      '  A000000151000000  30   0    1: AES-128 504A77; 2: AES-128 504A77; 3: AES-128 504A77',
    );
    expect(info.out.join('\n')).not.toContain('404142434445464748494A4B4C4D4E4F');
  });

  it('refuses to overwrite a chip without --force, and names an unknown profile', async () => {
    await newChip();
    const again = await cli('chip', 'new', '--state', state);
    expect(again).toMatchObject({ code: 1, err: [`jpki-se chip new: ${state} already exists (use --force to replace it)`] });
    expect((await cli('chip', 'new', '--state', state, '--force')).code).toBe(0);
    const bad = await cli('chip', 'new', '--state', state + 'x', '--profile', 'nope');
    expect(bad.code).toBe(2);
    expect(bad.err[0]).toContain('unknown chip profile "nope" (known: jcop4-like, mynumber-card)');
    expect(existsSync(state + 'x')).toBe(false);
  });

  it('names a missing state file and how to create it', async () => {
    for (const argv of [['chip', 'info'], ['apdu'], ['gp', 'list']]) {
      const r = await cli(...argv, '--state', state, ...(argv[0] === 'apdu' ? ['00A40400'] : []));
      expect(r.code).toBe(1);
      expect(r.err).toEqual([`jpki-se ${argv.join(' ')}: state file ${state} does not exist (create it with "jpki-se chip new --state ${state}")`]);
    }
  });
});

describe('apdu', () => {
  it('traces commands and responses with the status word meaning', async () => {
    await newChip();
    const r = await cli('apdu', '--state', state, '00 A4 04 0C 08 A0:00:00:01:51:00:00:00', '80CA004200', '80CA00FE00');
    expect(r.code).toBe(0);
    expect(r.out).toEqual([
      '>> 00A4040C08A000000151000000',
      '<< 9000 (OK)',
      '>> 80CA004200',
      `<< 4203${hex(DEFAULT_PROFILE.iin)} 9000 (OK)`,
      '>> 80CA00FE00',
      '<< 6A88 (referenced data not found)',
    ]);
  });

  it('names bad hex and short commands precisely, before touching the card', async () => {
    await newChip();
    const bad = await cli('apdu', '--state', state, '00A40400', '00A4 04ZZ');
    expect(bad).toMatchObject({ code: 2, out: [] });
    expect(bad.err).toEqual(['jpki-se apdu: APDU 2 "00A4 04ZZ": "Z" at position 8 is not a hex digit (see "jpki-se apdu --help")']);
    expect((await cli('apdu', '--state', state, '00A404')).err[0]).toContain('APDU "00A404" has 3 bytes; a command needs at least CLA INS P1 P2');
    expect((await cli('apdu', '--state', state, '00A4040')).err[0]).toContain('odd number of hex digits (7)');
    expect((await cli('apdu', '--state', state)).err[0]).toContain('missing APDU (hex)');
    expect((await cli('apdu', '00A40400')).err[0]).toContain('give --state FILE (an emulated chip) or --reader NAME (a PC/SC reader)');
  });
});

describe('gp', () => {
  it('loads and installs a CAP, lists it, locks it and deletes it', async () => {
    await newChip();
    const cap = join(dir, 'hello.cap');
    writeFileSync(cap, HELLO.jar);
    const load = await cli('gp', 'load', '--state', state, cap, '--install', '--block-size', '64');
    expect(load.err).toEqual([]);
    expect(load.out).toEqual([`loaded ${PKG} v1.0: 167 bytes in 3 blocks, applets ${APP}`, `installed ${APP}, selectable`]);
    const list = await cli('gp', 'list', '--state', state, '--level', '33');
    expect(list.out.slice(0, 1)).toEqual(['ISD: A000000151000000 (SECURED)']);
    const at = list.out.indexOf(`APP: ${APP} (SELECTABLE)`);
    expect(at).toBeGreaterThan(0);
    expect(list.out.slice(at + 1, at + 4)).toEqual(['     Privs:   000000', `     From:    ${PKG}`, '     Parent:  A000000151000000']);
    expect(list.out).toContain(`PKG: ${PKG} (LOADED)`);
    expect((await cli('gp', 'set-status', '--state', state, 'app', APP, 'lock')).out).toEqual([`${APP}: state 80 set`]);
    expect((await cli('gp', 'list', '--state', state)).out).toContain(`APP: ${APP} (LOCKED(SELECTABLE))`);
    const refused = await cli('gp', 'delete', '--state', state, PKG);
    expect(refused).toMatchObject({ code: 1, err: [`jpki-se gp delete: DELETE ${PKG} failed: 6985 conditions of use not satisfied`] });
    expect((await cli('gp', 'delete', '--state', state, '--related', PKG)).out).toEqual([`deleted ${PKG} and its related objects`]);
    expect((await cli('gp', 'list', '--state', state)).out.join('\n')).not.toContain(PKG);
  });

  it('creates a domain, replaces its keys and authenticates with the new ones; --trace shows the wire', async () => {
    await newChip();
    const sd = 'A000000151535041AB';
    const mk = await cli('gp', 'install', '--state', state, '--domain', sd, '--privs', 'authorized-management');
    expect(mk.out).toEqual([`created security domain ${sd}, privileges 804000 (security-domain, authorized-management)`]);
    const key = '000102030405060708090A0B0C0D0E0F';
    const put = await cli('gp', 'put-key', '--state', state, '--sd', sd, '--new-kvn', '30', '--replace', '30', '--new-key', key);
    const check = hex(kcv(fromHex(key)));
    expect(put.out).toEqual([`key set 30 replaced by key set 30 (KCV ENC ${check}, MAC ${check}, DEK ${check})`]);
    expect((await cli('gp', 'list', '--state', state, '--sd', sd)).err[0]).toContain('card cryptogram does not verify');
    const traced = await cli('gp', 'list', '--state', state, '--sd', sd, '--key', key, '-d');
    expect(traced.code).toBe(0);
    expect(traced.out[0]).toBe(`>> 00A4040009${sd}00`);
    expect(traced.out.some((l) => l.startsWith('>> 8050000008'))).toBe(true);
    expect(traced.out.some((l) => l.startsWith('>> 84F2'))).toBe(true); // GET STATUS with secure messaging
    expect(traced.out).toContain(`SD: ${sd} (SELECTABLE)`);
    // The session is ended by selecting the domain again, in plain.
    expect(traced.out.filter((l) => l.startsWith('>> ')).at(-1)).toBe(`>> 00A4040009${sd}00`);
  });

  it('shows card information without keys', async () => {
    await newChip();
    const r = await cli('gp', 'info', '--state', state, '--key', '00'.repeat(16));
    expect(r.code).toBe(0);
    expect(r.out).toContain('card data: GlobalPlatform 2.3.1, SCP03 i=70');
    expect(r.out).toContain('key set:   KVN 30: 1 AES-128, 2 AES-128, 3 AES-128');
    expect(r.out).toContain(`  ICSerialNumber                    1234ABCD`);
  });

  it('refuses bad options with one precise line and exit 2', async () => {
    await newChip();
    const cases: [string[], string][] = [
      [['gp', 'list', '--state', state, '--level', '31'], '--level 31 is not one of 01, 03, 11, 13, 33'],
      [['gp', 'list', '--state', state, '--key', '0011'], '--key has 2 bytes; an AES key has 16, 24 or 32'],
      [['gp', 'list', '--state', state, '--enc', '00'.repeat(16)], '--enc, --mac and --dek go together (missing --mac, --dek)'],
      [['gp', 'list', '--state', state, '--bogus'], 'unknown option --bogus'],
      [['gp', 'list', '--state'], 'option --state needs a value'],
      [['gp', 'list', '--state', state, 'extra'], 'unexpected argument "extra"'],
      [['gp', 'delete', '--state', state, 'A0'], 'AID "A0" has 1 bytes; an AID has 5 to 16'],
      [['gp', 'install', '--state', state, '--package', PKG], 'missing --applet AID'],
      [['gp', 'install', '--state', state, '--domain', PKG, '--privs', 'root'], '--privs: unknown privilege "root"'],
      [['gp', 'put-key', '--state', state, '--new-key', '00'.repeat(16)], 'missing --new-kvn HEX'],
      [['gp', 'set-status', '--state', state, 'app', APP, 'frozen'], 'state "frozen" is not one of lock, unlock, selectable, personalized or a hex byte'],
      [['gp', 'load', '--state', state, 'x.cap', '--hash', 'md5'], '--hash md5 is not one of sha1, sha256, sha384, sha512'],
      [['gp', 'frob'], 'unknown subcommand "frob" (list, info, put-key, delete, install, load, set-status)'],
      [['frob'], 'unknown command "frob"'],
      [['gp'], 'missing subcommand'],
      [[], 'missing command'],
    ];
    for (const [argv, message] of cases) {
      const r = await cli(...argv);
      expect({ argv, code: r.code }).toEqual({ argv, code: 2 });
      expect(r.err.length).toBe(1);
      expect(r.err[0]).toContain(message);
    }
  });
});

// ---------------------------------------------------------------------------------------------------------------
// The Java Card VM from the command line: asm, cap info, apdu --cycles / --bytecode-trace, chip info's heap.

const ECHO_SRC = join(root, 'test', 'fixtures', 'asm', 'echo.jca');
const ECHO_PKG = hex(ASM_SAMPLES.echo.packageAid);
const ECHO_APP = hex(ASM_SAMPLES.echo.appletAid);
const SELECT_ECHO = `00A40400${hex(Uint8Array.of(ASM_SAMPLES.echo.appletAid.length))}${ECHO_APP}`;
/** "   cycles: 25 bytecodes, 16 298 cycles, 5 native, 0 B NVM, est. 2.71 ms (exec 0.509 ms + I/O 2.2 ms) [process] on jcop4-j3r180" */
const CYCLE_LINE =
  /^ {3}cycles: (\d[\d ]*) bytecodes, (\d[\d ]*) cycles, (?:(\d[\d ]*) native, )?(\d[\d ]*) B NVM, est\. ([\d.]+) ms \(exec ([\d.]+) ms \+ I\/O ([\d.]+) ms\) \[([a-z+]+)\] on jcop4-j3r180$/;
const num = (s: string) => Number(s.replace(/ /g, ''));

/** A fresh chip with the echo sample assembled by "jpki-se asm", loaded and installed by "jpki-se gp". */
async function echoChip(): Promise<void> {
  await newChip();
  const cap = join(dir, `echo-${n}.cap`);
  expect((await cli('asm', ECHO_SRC, '--out', cap)).code).toBe(0);
  const load = await cli('gp', 'load', '--state', state, cap);
  expect(load).toMatchObject({ code: 0, err: [] });
  expect(load.out[0]).toMatch(new RegExp(`^loaded ${ECHO_PKG} v1\\.0: \\d+ bytes in \\d+ blocks?, applets ${ECHO_APP}$`));
  const inst = await cli('gp', 'install', '--state', state, '--package', ECHO_PKG, '--applet', ECHO_APP);
  expect(inst).toMatchObject({ code: 0, out: [`installed ${ECHO_APP} (module ${ECHO_APP} of ${ECHO_PKG}), selectable`] });
}

describe('asm', () => {
  it('writes the Load File Data Block the assembler makes, or the JAR form with --jar', async () => {
    const out = join(dir, 'echo-block.cap');
    const r = await cli('asm', ECHO_SRC, '--out', out);
    expect(r).toMatchObject({ code: 0, err: [] });
    const block = readFileSync(out);
    expect(hex(block)).toBe(hex(sampleBlock('echo')));
    expect(r.out).toEqual([`${out}: ${block.length} bytes (Load File Data Block), package ${ECHO_PKG} v1.0 (com.jpkise.echo), 1 class, applet ${ECHO_APP}`]);
    const jar = join(dir, 'echo.jar.cap');
    expect((await cli('asm', ECHO_SRC, '--out', jar, '--jar')).out[0]).toContain('bytes (JAR), package');
    expect(readFileSync(jar).subarray(0, 2).toString()).toBe('PK');
    // Without --out: next to the source, .jca → .cap.
    const copy = join(dir, 'mine.jca');
    copyFileSync(ECHO_SRC, copy);
    expect((await cli('asm', copy)).code).toBe(0);
    expect(hex(readFileSync(join(dir, 'mine.cap')))).toBe(hex(block));
  });

  it('reports a source error as one "file:line: what" line and exit 1, writing nothing', async () => {
    const src = join(dir, 'bad.jca');
    const out = join(dir, 'bad.cap');
    writeFileSync(src, '.package com.x A000000151AA 1.0\n.import javacard/framework\n.frob 1\n');
    const r = await cli('asm', src, '--out', out);
    expect(r).toEqual({ code: 1, out: [], err: [`${src}:3: unknown directive .frob`] });
    expect(existsSync(out)).toBe(false);
    writeFileSync(src, readFileSync(ECHO_SRC, 'utf8').replace('bspush COUNT_LENGTH\n    if_scmpge', 'bspush COUNT_LENGTH\n    if_scmpge nowhere ;'));
    const label = await cli('asm', src, '--out', out);
    expect(label.code).toBe(1);
    expect(label.err).toHaveLength(1);
    expect(label.err[0]).toMatch(new RegExp(`^${src.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}:\\d+: .*nowhere`));
    expect(await cli('asm', join(dir, 'none.jca'))).toMatchObject({ code: 1, err: [`jpki-se asm: source file ${join(dir, 'none.jca')} does not exist`] });
    expect((await cli('asm')).code).toBe(2);
    expect((await cli('asm', src, '--out', src)).err[0]).toContain('is the source file');
  });
});

describe('asm --lib', () => {
  it('assembles a client against a library package assembled first', async () => {
    const lib = join(dir, 'lib.jca');
    const app = join(dir, 'app.jca');
    writeFileSync(lib, '.package com.x.lib A00000015177 1.0\n.library\n.class public Twice\n  .method public static of(S)S\n    .stack 2\n    sload_0\n    sload_0\n    sadd\n    sreturn\n  .end method\n.end class\n');
    writeFileSync(app, '.package com.x.app A00000015178 1.0\n.import com/x/lib\n.class public App\n  .method public static f(S)S\n    .stack 1\n    sload_0\n    invokestatic Twice.of(S)S\n    sreturn\n  .end method\n.end class\n');
    const alone = await cli('asm', app);
    expect(alone.code).toBe(1);
    expect(alone.err[0]).toMatch(new RegExp(`^${app.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}:\\d+: `));
    const r = await cli('asm', '--lib', lib, app);
    expect(r).toMatchObject({ code: 0, err: [] });
    expect(r.out[0]).toContain('package A00000015178 v1.0 (com.x.app), 1 class, no applets');
    const info = await cli('cap', 'info', join(dir, 'app.cap'));
    expect(info.out).toContain('imports:    A00000015177 v1.0 (not in the chip API: load that package first)');
    expect((await cli('asm', '--lib', lib, '--lib', app, app)).err).toEqual([`${app}: not a library (no .library directive and no exported Shareable interface)`]);
  });
});

describe('cap info', () => {
  it('shows package, imports, applets, classes and component sizes of a block and of a JAR', async () => {
    const cap = join(dir, 'info.cap');
    writeFileSync(cap, sampleBlock('echo'));
    const r = await cli('cap', 'info', cap);
    expect(r).toMatchObject({ code: 0, err: [] });
    expect(r.out).toContain(`file:       ${cap} (${sampleBlock('echo').length} bytes, Load File Data Block)`);
    expect(r.out).toContain(`package:    ${ECHO_PKG} v1.0`);
    expect(r.out).toContain('imports:    A0000000620101 v1.6 (javacard.framework)');
    expect(r.out).toContain(`applets:    ${ECHO_APP} (install method at Method offset 8)`);
    expect(r.out).toContain('classes:    1 class, 0 interfaces, 3 methods, 0 exception handlers');
    // Component rows add up to the file (a block is exactly its components).
    const rows = r.out.filter((l) => /^ {2}\d+ +\w+ +\d+$/.test(l)).map((l) => l.trim().split(/ +/));
    expect(rows.map((x) => x[1])).toEqual(['Header', 'Directory', 'Applet', 'Import', 'ConstantPool', 'Class', 'Method', 'StaticField', 'ReferenceLocation', 'Descriptor']);
    expect(rows.reduce((a, x) => a + Number(x[2]), 0)).toBe(sampleBlock('echo').length);
    expect(r.out.find((l) => l.startsWith('load file:'))).toBe(`load file:  ${sampleBlock('echo', { descriptor: false }).length} bytes (what GP LOAD carries: install order, no Descriptor or Debug)`);
    const jar = join(dir, 'info.jar.cap');
    await cli('asm', ECHO_SRC, '--out', jar, '--jar');
    const j = await cli('cap', 'info', jar);
    expect(j.out[0]).toMatch(/bytes, JAR\)$/);
    expect(j.out.slice(1)).toEqual(r.out.slice(1));
  });

  it('names the component and offset of a malformed CAP, exit 1', async () => {
    const block = sampleBlock('echo');
    const cut = join(dir, 'cut.cap');
    writeFileSync(cut, block.subarray(0, block.length - 5));
    const r = await cli('cap', 'info', cut);
    expect(r.code).toBe(1);
    expect(r.err).toHaveLength(1);
    expect(r.err[0]).toMatch(new RegExp(`^jpki-se cap info: ${cut.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: CAP Descriptor component, offset \\d+: declares \\d+ info bytes but only \\d+ remain`));
    // The Applet component's install method offset points past the Method component: found by verification.
    const bad = Uint8Array.from(block);
    const at = hex(bad).indexOf(ECHO_APP) / 2 + ASM_SAMPLES.echo.appletAid.length; // the u2 after the applet AID
    bad[at] = 0x7f;
    const badFile = join(dir, 'bad-applet.cap');
    writeFileSync(badFile, bad);
    const v = await cli('cap', 'info', badFile);
    expect(v.code).toBe(1);
    expect(v.err[0]).toMatch(/: CAP (Applet|Method) component, offset \d+: /);
    expect((await cli('cap', 'info')).code).toBe(2);
    expect((await cli('cap', 'info', join(dir, 'nope.cap'))).err).toEqual([`jpki-se cap info: CAP file ${join(dir, 'nope.cap')} does not exist`]);
  });
});

describe('apdu --cycles / --bytecode-trace', () => {
  const script = [SELECT_ECHO, '8001000003AABBCC', '8002000000', '8003000000'];

  it('loads the assembled echo applet through GP and reports each APDU that ran applet code', async () => {
    await echoChip();
    const r = await cli('apdu', '--state', state, '--cycles', ...script);
    expect(r).toMatchObject({ code: 0, err: [] });
    expect(r.out).toHaveLength(12);
    const [, sel, selCycles, , echo, echoCycles, , count, countCycles, , sw, swCycles] = r.out;
    expect(sel).toBe('<< 9000 (OK)');
    expect(echo).toBe('<< AABBCC 9000 (OK)');
    expect(count).toBe('<< 000102030405060708090A0B0C0D0E0F10 9000 (OK)');
    expect(sw).toBe('<< 6D00 (instruction not supported)');
    const parsed = [selCycles, echoCycles, countCycles, swCycles].map((l) => {
      const m = CYCLE_LINE.exec(l);
      expect(m, l).not.toBeNull();
      return { bytecodes: num(m![1]), cycles: num(m![2]), est: Number(m![5]), exec: Number(m![6]), io: Number(m![7]), phases: m![8] };
    });
    expect(parsed.map((p) => p.phases)).toEqual(['select+process', 'process', 'process', 'process']);
    for (const p of parsed) {
      expect(p.bytecodes).toBeGreaterThan(0);
      expect(p.cycles).toBeGreaterThan(p.bytecodes); // every bytecode costs cycles
      expect(Math.abs(p.est - (p.exec + p.io))).toBeLessThan(0.016); // each printed to 3 significant digits
    }
    // INS 02 runs a 17-iteration loop: more bytecodes than the straight-line echo.
    expect(parsed[2].bytecodes).toBeGreaterThan(17 * 8);
    expect(parsed[2].bytecodes).toBeGreaterThan(parsed[1].bytecodes);
  });

  it('gives the same counts on two fresh chips (deterministic), and no line for commands outside the VM', async () => {
    // Two fresh chips made the same way (asm, gp load, gp install), each sent the same APDUs.
    const runs: string[][] = [];
    for (let i = 0; i < 2; i++) {
      state = join(dir, `det${i}.img`);
      await echoChip();
      runs.push((await cli('apdu', '--state', state, '--cycles', ...script)).out);
    }
    expect(runs[0].filter((l) => CYCLE_LINE.test(l))).toHaveLength(4);
    expect(runs[1]).toEqual(runs[0]);
    // The ISD answers without the VM: no cycle line, except the echo applet's deselect() on the SELECT that leaves it.
    const isd = await cli('apdu', '--state', state, '--cycles', SELECT_ECHO, '00A4040008A000000151000000', '80CA004200');
    expect(isd.out[5]).toMatch(/^ {3}cycles: 0 bytecodes, .* \[deselect\] on jcop4-j3r180$/);
    expect(isd.out.slice(6)).toEqual(['>> 80CA004200', `<< 4203${hex(DEFAULT_PROFILE.iin)} 9000 (OK)`]);
    const plain = await cli('apdu', '--state', state, '--cycles', '80CA004200');
    expect(plain.out).toEqual(['>> 80CA004200', `<< 4203${hex(DEFAULT_PROFILE.iin)} 9000 (OK)`]);
  });

  it('prints one trace line per bytecode, as many as the report counts', async () => {
    await echoChip();
    const r = await cli('apdu', '--state', state, '--cycles', '--bytecode-trace', SELECT_ECHO, '8001000003AABBCC');
    expect(r.code).toBe(0);
    const echoAt = r.out.indexOf('>> 8001000003AABBCC');
    const lines = r.out.slice(echoAt + 1, r.out.indexOf('<< AABBCC 9000 (OK)'));
    expect(lines.length).toBeGreaterThan(10);
    for (const l of lines) expect(l).toMatch(new RegExp(`^ {3}\\| ${ECHO_PKG}:\\d+\\+\\d+ [a-z_0-9]+( [0-9a-f]{2})* \\|( -?\\d+)*$`));
    expect(lines[0]).toMatch(/\+0 aload_0 \|$/);
    expect(lines.at(-1)).toMatch(/ return \|/);
    expect(lines.some((l) => / invokestatic /.test(l))).toBe(true); // Util.arrayCopyNonAtomic
    const m = CYCLE_LINE.exec(r.out.at(-1)!);
    expect(num(m![1])).toBe(lines.length);
    // Trace alone: no cycle lines.
    const t = await cli('apdu', '--state', state, '--bytecode-trace', SELECT_ECHO, '8001000003AABBCC');
    expect(t.out.filter((l) => l.startsWith('   cycles:'))).toEqual([]);
    expect(t.out.slice(t.out.indexOf('>> 8001000003AABBCC') + 1, t.out.indexOf('<< AABBCC 9000 (OK)'))).toEqual(lines);
  });

  it('needs an emulated chip', async () => {
    const r = await cli('apdu', '--reader', 'Some Reader', '--cycles', '00A40400');
    expect(r).toMatchObject({ code: 2, err: ['jpki-se apdu: --cycles and --bytecode-trace need an emulated chip (--state FILE) (see "jpki-se apdu --help")'] });
  });
});

describe('chip info: the Java Card heap', () => {
  it('shows persistent heap use and availability, RAM, and objects per applet context', async () => {
    await newChip();
    const before = await cli('chip', 'info', '--state', state);
    const heapLine = (out: string[]) => /^heap: {5}(\d+) bytes of persistent memory used by (\d+) objects?, (\d+) available \(JCSystem\.getAvailableMemory\)$/.exec(out.find((l) => l.startsWith('heap:'))!)!;
    const h0 = heapLine(before.out);
    expect(Number(h0[1]) + Number(h0[3])).toBe(DEFAULT_PROFILE.persistentBytes); // nothing loaded: all of it is the heap's
    expect(before.out).toContain(`RAM:      CLEAR_ON_RESET 0 of ${DEFAULT_PROFILE.transientResetBytes} bytes used, CLEAR_ON_DESELECT 0 of ${DEFAULT_PROFILE.transientDeselectBytes} bytes used`);
    state = join(dir, `chip${n++}.img`);
    await echoChip();
    await cli('apdu', '--state', state, SELECT_ECHO, '8001000001AA');
    const after = await cli('chip', 'info', '--state', state);
    expect(after.code).toBe(0);
    const loadFiles = Number(/^memory: {3}(\d+) of/.exec(after.out.find((l) => l.startsWith('memory:'))!)![1]);
    const h1 = heapLine(after.out);
    expect(Number(h1[1])).toBeGreaterThan(0);
    expect(Number(h1[1]) + Number(h1[3]) + loadFiles).toBe(DEFAULT_PROFILE.persistentBytes);
    const at = after.out.findIndex((l) => l.startsWith('Java Card heap by context'));
    expect(at).toBeGreaterThan(0);
    expect(after.out[at + 1]).toMatch(/^ {2}context +package +applet instances +objects +persistent +transient$/);
    const rows = after.out.slice(at + 2, after.out.indexOf('', at)).map((l) => l.trim().split(/ {2,}/));
    const jcre = rows.find((x) => x[0] === '0 (JCRE)')!;
    const echo = rows.find((x) => x[1] === ECHO_PKG)!;
    expect(echo[2]).toBe(ECHO_APP);
    expect(Number(echo[3])).toBeGreaterThanOrEqual(1); // the applet instance itself
    expect(Number(jcre[5])).toBeGreaterThan(0); // the APDU buffer is CLEAR_ON_RESET RAM
    // The rows add up to the heap line.
    expect(rows.reduce((a, x) => a + Number(x[4]), 0)).toBe(Number(h1[1]));
    expect(rows.reduce((a, x) => a + Number(x[3]), 0)).toBe(Number(h1[2]));
  });
});

/** Waits (without a deadline of its own: the test timeout bounds it) until some line matches. */
async function waitFor(lines: string[], re: RegExp): Promise<RegExpExecArray> {
  for (;;) {
    for (const l of lines) {
      const m = re.exec(l);
      if (m) return m;
    }
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** A minimal vpcd peer: sends frames (2-byte length + payload) and collects the answers. */
async function vpcdExchange(port: number, payloads: string[], answers: number): Promise<string[]> {
  const s = createConnection({ host: '127.0.0.1', port });
  const got: string[] = [];
  let buf = Buffer.alloc(0);
  s.on('data', (d: Buffer) => {
    buf = Buffer.concat([buf, d]);
    while (buf.length >= 2 && buf.length >= 2 + buf.readUInt16BE(0)) {
      got.push(buf.subarray(2, 2 + buf.readUInt16BE(0)).toString('hex').toUpperCase());
      buf = buf.subarray(2 + buf.readUInt16BE(0));
    }
  });
  await new Promise<void>((r) => s.once('connect', () => r()));
  for (const p of payloads) {
    const b = Buffer.from(p, 'hex');
    s.write(Buffer.concat([Buffer.of(b.length >> 8, b.length & 0xff), b]));
  }
  while (got.length < answers) await new Promise((r) => setTimeout(r, 10));
  await new Promise<void>((r) => s.end(() => r()));
  return got;
}

describe('chip serve', () => {
  it('creates the chip, serves a vpcd peer in reversed mode with a trace, and stops on request', async () => {
    const out: string[] = [];
    let stop!: (reason: string) => void;
    const stopped = new Promise<string>((r) => (stop = r));
    const io: Io = { out: (l) => out.push(...l.split('\n')), err: (l) => out.push('ERR ' + l), stop: () => stopped, env: {} };
    const done = run(['chip', 'serve', '--state', state, '--listen', '127.0.0.1:0', '--trace'], io);
    const port = Number((await waitFor(out, /^vicc: waiting for vpcd on 127\.0\.0\.1:(\d+)$/))[1]);
    expect(out[0]).toBe(`created ${state} (a new chip)`);
    const answers = await vpcdExchange(port, ['01', '04', '80CA004500'], 2);
    expect(answers).toEqual([hex(DEFAULT_PROFILE.atr), `4507${hex(DEFAULT_PROFILE.cin)}9000`]);
    expect(out).toContain('>> 80CA004500');
    expect(out).toContain(`<< 4507${hex(DEFAULT_PROFILE.cin)} 9000 (OK)`);
    stop('test-stop');
    expect(await done).toBe(0);
    expect(out.slice(-2)).toEqual(['test-stop: stopping', `chip state saved in ${state}`]);
    // The lock is released: the chip opens again.
    expect((await cli('chip', 'info', '--state', state)).code).toBe(0);
  });

  it('with --cycles traces every APDU and reports the cycles of applet code', async () => {
    await echoChip();
    const out: string[] = [];
    let stop!: (reason: string) => void;
    const stopped = new Promise<string>((r) => (stop = r));
    const io: Io = { out: (l) => out.push(...l.split('\n')), err: (l) => out.push('ERR ' + l), stop: () => stopped, env: {} };
    const done = run(['chip', 'serve', '--state', state, '--listen', '127.0.0.1:0', '--cycles'], io);
    const port = Number((await waitFor(out, /^vicc: waiting for vpcd on 127\.0\.0\.1:(\d+)$/))[1]);
    const answers = await vpcdExchange(port, ['01', '04', SELECT_ECHO, '8001000003AABBCC', '80CA004500'], 4);
    expect(answers.slice(1)).toEqual(['9000', 'AABBCC9000', '6D00']);
    stop('test-stop');
    expect(await done).toBe(0);
    const at = out.indexOf('>> 8001000003AABBCC');
    expect(out[at + 1]).toBe('<< AABBCC 9000 (OK)');
    expect(out[at + 2]).toMatch(CYCLE_LINE);
    expect(out[at + 2]).toMatch(/\[process\]/);
    expect(out.filter((l) => CYCLE_LINE.test(l))).toHaveLength(3); // SELECT, echo, and 80CA (INS CA is the applet's: 6D00)
    expect(out.some((l) => l.startsWith('   | '))).toBe(false); // no bytecode trace unless asked
  });

  it('refuses contradictory or malformed endpoints', async () => {
    expect((await cli('chip', 'serve', '--state', state, '--vpcd', 'h:1', '--listen', '2')).err[0]).toContain('give either --vpcd or --listen, not both');
    expect((await cli('chip', 'serve', '--state', state, '--vpcd', 'host:port')).err[0]).toContain('--vpcd "host:port" is not HOST:PORT');
    expect((await cli('chip', 'serve', '--state', state, '--listen', '70000')).err[0]).toContain('--listen port 70000 is outside 0–65535');
    expect(existsSync(state)).toBe(false);
  });
});

describe('help', () => {
  it('has a help text for every command and group, on stdout with exit 0', async () => {
    expect(COMMANDS.length).toBe(17);
    for (const path of COMMANDS) {
      for (const flagName of ['--help', '-h']) {
        const r = await cli(...path, flagName);
        expect(r.code).toBe(0);
        expect(r.out[0]).toMatch(new RegExp(`^Usage: jpki-se ${path.join(' ')} `));
        expect(r.out.length).toBeGreaterThan(4);
      }
    }
    const top = await cli('--help');
    for (const path of COMMANDS) expect(top.out.join('\n')).toContain(`  ${path.join(' ')}`);
    expect((await cli('gp', '--help')).out[0]).toBe('Usage: jpki-se gp list|info|put-key|delete|install|load|set-status [options]');
    expect((await cli('chip', '-h')).out[0]).toBe('Usage: jpki-se chip new|serve|info [options]');
    expect((await cli('cap', '--help')).out[0]).toBe('Usage: jpki-se cap info [options]');
  });
});

describe('the real process', () => {
  const tsx = join(root, 'node_modules', '.bin', 'tsx');
  const main = join(root, 'cli', 'main.ts');
  const spawnCli = (...args: string[]) => spawnSync(tsx, [main, ...args], { encoding: 'utf8', env: { ...process.env, JPKI_DEBUG: '' } });

  it('exits 2 on bad usage and 1 on a missing state file, each with one stderr line and no stack trace', () => {
    const usage = spawnCli('gp', 'list', '--state', state, '--bogus');
    expect(usage.status).toBe(2);
    expect(usage.stderr).toBe('jpki-se gp list: unknown option --bogus (see "jpki-se gp list --help")\n');
    expect(usage.stdout).toBe('');
    const missing = spawnCli('apdu', '--state', state, '00A4040000');
    expect(missing.status).toBe(1);
    expect(missing.stderr.trim().split('\n')).toEqual([`jpki-se apdu: state file ${state} does not exist (create it with "jpki-se chip new --state ${state}")`]);
  });

  it('serves until SIGTERM (forwarded by the bin launcher), retrying while vpcd is absent', async () => {
    // A port nobody listens on: bind one, then free it.
    const probe = createServer();
    await new Promise<void>((r) => probe.listen(0, '127.0.0.1', () => r()));
    const port = (probe.address() as { port: number }).port;
    await new Promise<void>((r) => probe.close(() => r()));
    // Through bin/jpki-se.js, the installed entry point: it must pass the signal on to the CLI it runs.
    const bin = join(root, 'bin', 'jpki-se.js');
    const child = spawn(process.execPath, [bin, 'chip', 'serve', '--state', state, '--vpcd', `127.0.0.1:${port}`], { env: { ...process.env, JPKI_DEBUG: '' } });
    const lines: string[] = [];
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => lines.push(...d.toString().split('\n').filter(Boolean)));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
    await waitFor(lines, /not reachable/);
    expect(lines).toContain(`connecting to vpcd at 127.0.0.1:${port}; retrying until it answers (is pcscd with vsmartcard-vpcd running?)`);
    child.kill('SIGTERM');
    expect(await exited).toBe(0);
    expect(stderr).toBe('');
    expect(lines.slice(-2)).toEqual(['SIGTERM: stopping', `chip state saved in ${state}`]);
  });

  it('creates a chip and talks to it across processes', () => {
    expect(spawnCli('chip', 'new', '--state', state).status).toBe(0);
    const r = spawnCli('apdu', '--state', state, '80CA004500');
    expect(r.status).toBe(0);
    expect(r.stdout).toBe(`>> 80CA004500\n<< 4507${hex(DEFAULT_PROFILE.cin)} 9000 (OK)\n`);
  });
});
