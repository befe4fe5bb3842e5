// Oracle Java Card apdutool scripts (`.scr`) and their recorded output (`.expected.out`) as a one-case ScriptFile
// (conformance/README.md "Oracle apdutool scripts").
import { existsSync, readFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { hex } from '../../emulator/bytes.ts';
import { swHex } from '../../emulator/iso.ts';
import { ScriptError, type ResponsePattern, type ScriptFile, type SourcePos, type Step } from '../types.ts';
import { spaced } from './expr.ts';

type Tok =
  | { t: 'byte'; v: number; pos: SourcePos }
  | { t: 'word'; s: string; pos: SourcePos }
  | { t: 'str'; s: string; pos: SourcePos }
  | { t: 'num'; n: number; pos: SourcePos }
  | { t: 'semi'; pos: SourcePos };

const COMMANDS = ['powerup', 'powerdown', 'echo', 'delay', 'output', 'contacted', 'contactless'];

function lex(text: string, file: string): Tok[] {
  const out: Tok[] = [];
  let line = 1;
  let lineStart = 0;
  const posAt = (i: number): SourcePos => ({ file, line, col: i - lineStart + 1 });
  let i = 0;
  while (i < text.length) {
    const c = text[i];
    const rest = text.slice(i, i + 64);
    if (c === '\n') {
      i++;
      line++;
      lineStart = i;
    } else if (/\s/.test(c)) {
      i++;
    } else if (rest.startsWith('//')) {
      while (i < text.length && text[i] !== '\n') i++;
    } else if (rest.startsWith('/*')) {
      const start = posAt(i);
      const end = text.indexOf('*/', i + 2);
      if (end < 0) throw new ScriptError(start, 'unterminated comment: no */');
      for (; i < end + 2; i++) {
        if (text[i] === '\n') {
          line++;
          lineStart = i + 1;
        }
      }
    } else if (c === ';') {
      out.push({ t: 'semi', pos: posAt(i) });
      i++;
    } else if (c === '"') {
      const end = text.indexOf('"', i + 1);
      const nl = text.indexOf('\n', i + 1);
      if (end < 0 || (nl >= 0 && nl < end)) throw new ScriptError(posAt(i), 'unterminated string: no closing "');
      out.push({ t: 'str', s: text.slice(i + 1, end), pos: posAt(i) });
      i = end + 1;
    } else if (/^0[xX]/.test(rest)) {
      const m = /^0[xX]([0-9A-Fa-f]*)[A-Za-z0-9_]*/.exec(rest)!;
      if (m[0].length !== m[1].length + 2 || m[1].length < 1 || m[1].length > 2) {
        throw new ScriptError(posAt(i), `${m[0]} is not a byte: write 0xHH`);
      }
      out.push({ t: 'byte', v: parseInt(m[1], 16), pos: posAt(i) });
      i += m[0].length;
    } else if (/[0-9]/.test(c)) {
      const m = /^[0-9]+/.exec(rest)!;
      out.push({ t: 'num', n: Number(m[0]), pos: posAt(i) });
      i += m[0].length;
    } else if (/[A-Za-z_]/.test(c)) {
      const m = /^[A-Za-z_][A-Za-z0-9_-]*/.exec(rest)!;
      out.push({ t: 'word', s: m[0], pos: posAt(i) });
      i += m[0].length;
    } else {
      throw new ScriptError(posAt(i), `unexpected '${c}'`);
    }
  }
  return out;
}

interface Command {
  pos: SourcePos;
  /** CLA INS P1 P2 Lc data, as the tool echoes them. */
  header: Uint8Array;
  data: Uint8Array;
  apdu: Uint8Array;
}

/** 1st, 2nd, 3rd, 4th, 11th, 21st … */
function ordinal(n: number): string {
  const t = n % 100;
  const suffix = t >= 11 && t <= 13 ? 'th' : ['th', 'st', 'nd', 'rd'][n % 10] ?? 'th';
  return `${n}${suffix}`;
}

function describe(header: Uint8Array, data: Uint8Array): string {
  return spaced(header) + (data.length > 0 ? ` ${spaced(data)}` : '');
}

/** A statement's tokens (up to `;`) into a step list and the command list. */
function statementOf(toks: Tok[], steps: Step[], commands: Command[]): void {
  const first = toks[0];
  if (first.t === 'byte') {
    const b: number[] = [];
    for (const t of toks) {
      if (t.t !== 'byte') throw new ScriptError(t.pos, 'expected 0xHH: a command is hex bytes only');
      b.push(t.v);
    }
    if (b.length < 6) {
      throw new ScriptError(first.pos, `a command is CLA INS P1 P2 LC [LC data bytes] LE; this one has ${b.length} bytes`);
    }
    const lc = b[4];
    if (b.length !== 6 + lc) {
      const lcTok = toks[4];
      throw new ScriptError(
        lcTok.pos,
        `LC is 0x${hex(Uint8Array.of(lc))} but ${b.length - 6} data bytes stand between LC and LE`,
      );
    }
    const data = Uint8Array.from(b.slice(5, 5 + lc));
    // LC 0 means no data and no Lc byte (ISO 7816-4 §5.1 case 1/2); the LE byte is always sent as Le.
    const apdu = Uint8Array.from(lc === 0 ? [...b.slice(0, 4), b[5]] : b);
    commands.push({ pos: first.pos, header: Uint8Array.from(b.slice(0, 5)), data, apdu });
    steps.push({ op: 'send', pos: first.pos, apdu: [{ kind: 'bytes', bytes: apdu }], expect: [], raw: false });
    return;
  }
  if (first.t !== 'word') throw new ScriptError(first.pos, `expected a command (0xHH … or ${COMMANDS.join(', ')})`);
  const args = toks.slice(1);
  const expectArgs = (ok: boolean, usage: string): void => {
    if (!ok) throw new ScriptError((args[0] ?? first).pos, `expected ${usage};`);
  };
  switch (first.s) {
    case 'powerup':
    case 'powerdown':
      expectArgs(args.length === 0, first.s);
      steps.push({ op: 'power', pos: first.pos, action: first.s === 'powerup' ? 'up' : 'down' });
      return;
    case 'echo': {
      const a = args[0];
      expectArgs(args.length === 1 && a.t === 'str', 'echo "text"');
      if (a.t === 'str') steps.push({ op: 'echo', pos: first.pos, text: a.s });
      return;
    }
    case 'delay':
      expectArgs(args.length === 1 && args[0].t === 'num', 'delay N');
      return;
    case 'output': {
      const a = args[0];
      expectArgs(args.length === 1 && a.t === 'word' && (a.s === 'on' || a.s === 'off'), 'output on or output off');
      return;
    }
    case 'contacted':
    case 'contactless':
      expectArgs(args.length === 0, first.s);
      return;
    default:
      throw new ScriptError(first.pos, `unknown apdutool command ${first.s} (known: ${COMMANDS.join(', ')})`);
  }
}

interface Echoed {
  line: number;
  header: Uint8Array;
  data: Uint8Array;
  response: Uint8Array;
  sw: number;
}

/** `CLA: 80, INS: b8, P1: 00, P2: 00, Lc: 02, 01, 02, Le: 01, 90, SW1: 90, SW2: 00`. */
function parseEchoLine(text: string, line: number, file: string): Echoed {
  const bad = (col: number, why: string): ScriptError => new ScriptError({ file, line, col }, why);
  const fields = new Map<string, number[]>();
  let label = '';
  let off = 0;
  for (const raw of text.split(',')) {
    const col = off + (raw.length - raw.trimStart().length) + 1;
    off += raw.length + 1;
    const item = raw.trim();
    const m = /^([A-Za-z0-9]+):\s*([0-9A-Fa-f]{2})$/.exec(item);
    if (m) {
      label = m[1];
      if (fields.has(label)) throw bad(col, `${label} appears twice`);
      fields.set(label, [parseInt(m[2], 16)]);
    } else if (/^[0-9A-Fa-f]{2}$/.test(item) && label) {
      fields.get(label)!.push(parseInt(item, 16));
    } else {
      throw bad(col, `cannot read "${item}" in an apdutool output line (expected LABEL: hh or hh)`);
    }
  }
  const get = (name: string): number[] => {
    const f = fields.get(name);
    if (!f) throw bad(1, `the apdutool output line has no ${name}:`);
    return f;
  };
  const [cla, ins, p1, p2, lcF, leF, sw1, sw2] = ['CLA', 'INS', 'P1', 'P2', 'Lc', 'Le', 'SW1', 'SW2'].map(get);
  for (const [name, f] of [['CLA', cla], ['INS', ins], ['P1', p1], ['P2', p2], ['SW1', sw1], ['SW2', sw2]] as const) {
    if (f.length !== 1) throw bad(1, `${name}: is followed by ${f.length - 1} extra bytes`);
  }
  if (lcF.length - 1 !== lcF[0]) throw bad(1, `Lc: ${lcF[0]} but ${lcF.length - 1} data bytes follow it`);
  if (leF.length - 1 !== leF[0]) throw bad(1, `Le: ${leF[0]} but ${leF.length - 1} response bytes follow it`);
  return {
    line,
    header: Uint8Array.of(cla[0], ins[0], p1[0], p2[0], lcF[0]),
    data: Uint8Array.from(lcF.slice(1)),
    response: Uint8Array.from(leF.slice(1)),
    sw: (sw1[0] << 8) | sw2[0],
  };
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

function exactPattern(e: Echoed, file: string): ResponsePattern {
  return {
    data: e.response.length > 0 ? [{ kind: 'bytes', value: e.response, mask: new Uint8Array(e.response.length).fill(0xff) }] : [],
    sw: [{ value: e.sw, mask: 0xffff }],
    text: `${e.response.length > 0 ? `${spaced(e.response)} ` : ''}${swHex(e.sw)}`,
    pos: { file, line: e.line, col: 1 },
  };
}

export function parseApdutool(
  scrText: string,
  scrPath: string,
  expectedText: string | undefined,
  expectedPath: string,
): ScriptFile {
  const name = basename(scrPath).replace(/\.scr$/, '');
  if (expectedText === undefined) {
    throw new ScriptError({ file: scrPath, line: 1, col: 1 }, `no expected output: looked for ${expectedPath}`);
  }
  const toks = lex(scrText, scrPath);
  const steps: Step[] = [];
  const commands: Command[] = [];
  let stmt: Tok[] = [];
  for (const t of toks) {
    if (t.t !== 'semi') {
      stmt.push(t);
      continue;
    }
    if (stmt.length > 0) statementOf(stmt, steps, commands);
    stmt = [];
  }
  if (stmt.length > 0) throw new ScriptError(stmt[0].pos, 'missing ; at the end of this command');

  const outName = basename(expectedPath);
  const echoed: Echoed[] = [];
  expectedText.split(/\r?\n/).forEach((l, n) => {
    if (/^\s*CLA:/.test(l)) echoed.push(parseEchoLine(l, n + 1, expectedPath));
  });
  echoed.forEach((e, n) => {
    const cmd = commands[n];
    if (!cmd) {
      throw new ScriptError(
        { file: expectedPath, line: e.line, col: 1 },
        `line ${e.line} of ${outName} has no command: the script has ${commands.length} commands`,
      );
    }
    if (!sameBytes(cmd.header, e.header) || !sameBytes(cmd.data, e.data)) {
      throw new ScriptError(
        { file: expectedPath, line: e.line, col: 1 },
        `line ${e.line} of ${outName} is for ${describe(e.header, e.data)}, the script's ${ordinal(n + 1)} command is ${describe(cmd.header, cmd.data)}`,
      );
    }
    const step = steps.find((s) => s.op === 'send' && s.pos === cmd.pos);
    if (step && step.op === 'send') step.expect.push(exactPattern(e, expectedPath));
  });
  if (commands.length > echoed.length) {
    const cmd = commands[echoed.length];
    throw new ScriptError(
      cmd.pos,
      `no expected output for the ${ordinal(echoed.length + 1)} command: ${outName} has ${echoed.length} CLA lines`,
    );
  }
  const pos: SourcePos = { file: scrPath, line: 1, col: 1 };
  return {
    path: scrPath,
    suite: name,
    getResponse: false,
    prologue: [],
    cases: [
      {
        id: name,
        title: `apdutool script ${name}`,
        file: scrPath,
        pos,
        refs: ['Oracle Java Card apdutool script'],
        tags: ['apdutool'],
        mandatory: true,
        requires: [],
        steps,
      },
    ],
  };
}

export function loadApdutool(scrPath: string): ScriptFile {
  const dir = dirname(scrPath);
  const name = basename(scrPath).replace(/\.scr$/, '');
  const candidates = [join(dir, `${name}.scr.expected.out`), join(dir, `${name}.expected.out`)];
  const found = candidates.find((p) => existsSync(p));
  const scrText = readFileSync(scrPath, 'utf8');
  if (!found) {
    throw new ScriptError({ file: scrPath, line: 1, col: 1 }, `no expected output: looked for ${candidates.join(' and ')}`);
  }
  return parseApdutool(scrText, scrPath, readFileSync(found, 'utf8'), found);
}
