// The `.apdu` script parser (conformance/README.md "Script format"): logical lines, statements, includes, cases.
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { basename, dirname, extname, isAbsolute, join, normalize, resolve } from 'node:path';
import { ScriptError, type Case, type Expr, type ScriptFile, type SourcePos, type Step } from '../types.ts';
import { loadApdutool } from './apdutool.ts';
import { NAME_RE, parseExpr, readString, type Locate } from './expr.ts';
import { parsePattern } from './pattern.ts';

const STATEMENTS = [
  '>', '<', 'suite', 'case', 'ref', 'tags', 'mandatory', 'optional', 'requires', 'option', 'var', 'default',
  'assert', 'include', 'power', 'reset', 'atr', 'channel', 'scp03', 'replay', 'raw', 'load', 'verify-signature', 'echo',
];

/** GPC Amd D Table 7-3 (EXTERNAL AUTHENTICATE P1): the SCP03 security levels a session may ask for. */
const SCP03_LEVELS = [0x00, 0x01, 0x03, 0x11, 0x13, 0x33];

const DEFAULT_LOAD_BLOCK = 200;

// --- logical lines ---------------------------------------------------------------------------------------------------

interface Line {
  text: string;
  at: Locate;
}

/** The first index before `end`, outside "…" strings (with \ escapes), where `hit` holds; -1 if none. */
function outsideStrings(s: string, hit: (i: number) => boolean, end = s.length): number {
  let inString = false;
  for (let i = 0; i < end; i++) {
    const c = s[i];
    if (inString) {
      if (c === '\\') i++;
      else if (c === '"') inString = false;
    } else if (c === '"') {
      inString = true;
    } else if (hit(i)) {
      return i;
    }
  }
  return -1;
}

/** Cuts a `#` comment, leaving `#` inside "…" strings alone. */
function stripComment(s: string): string {
  const i = outsideStrings(s, (k) => s[k] === '#');
  return i < 0 ? s : s.slice(0, i);
}

/** Physical lines joined by trailing `\`, comments removed; each keeps a map back to file line and column. */
function logicalLines(text: string, file: string): Line[] {
  const phys = text.replace(/^\uFEFF/, '').split(/\r?\n/);
  const out: Line[] = [];
  let cur = '';
  let segs: { off: number; line: number }[] = [];
  for (let n = 0; n < phys.length; n++) {
    let s = stripComment(phys[n]).trimEnd();
    const cont = s.endsWith('\\');
    if (cont) s = s.slice(0, -1);
    segs.push({ off: cur.length, line: n + 1 });
    cur += s;
    if (cont && n < phys.length - 1) {
      cur += ' ';
      continue;
    }
    const fixed = segs;
    out.push({
      text: cur,
      at: (offset) => {
        let seg = fixed[0];
        for (const g of fixed) if (g.off <= offset) seg = g;
        return { file, line: seg.line, col: offset - seg.off + 1 };
      },
    });
    cur = '';
    segs = [];
  }
  return out;
}

// --- parser state ----------------------------------------------------------------------------------------------------

type SendStep = Extract<Step, { op: 'send' }>;

interface CaseDraft {
  c: Case;
  refs: string[];
  tags: string[];
  requires: string[];
  mandatory?: boolean;
}

interface State {
  path: string;
  read: (path: string) => string;
  suite?: string;
  refs: string[];
  tags: string[];
  requires: string[];
  mandatory: boolean;
  getResponse: boolean;
  prologue: Step[];
  cases: Case[];
  cur: CaseDraft | null;
  /** The send a `<` line adds an alternative to (only right after `>` / replay / `<`). */
  lastSend: SendStep | null;
  /** A `raw` waiting for its send. */
  raw: SourcePos | null;
  ids: Map<string, SourcePos>;
}

function fmt(pos: SourcePos): string {
  return `${pos.file}:${pos.line}:${pos.col}`;
}

function steps(st: State): Step[] {
  return st.cur ? st.cur.c.steps : st.prologue;
}

function unique(xs: string[]): string[] {
  return [...new Set(xs)];
}

export function parseScript(text: string, path: string, read?: (path: string) => string): ScriptFile {
  const st: State = {
    path,
    read: read ?? ((p) => readFileSync(p, 'utf8')),
    refs: [],
    tags: [],
    requires: [],
    mandatory: true,
    getResponse: true,
    prologue: [],
    cases: [],
    cur: null,
    lastSend: null,
    raw: null,
    ids: new Map(),
  };
  parseFile(st, text, path, [path]);
  endSection(st);
  return {
    path,
    suite: st.suite ?? basename(path, extname(path)),
    getResponse: st.getResponse,
    prologue: st.prologue,
    cases: st.cases,
  };
}

/** Closes the prologue or the current case: a pending `raw` is an error, a case gets its refs, tags and flags. */
function endSection(st: State): void {
  if (st.raw) throw new ScriptError(st.raw, 'raw is not followed by a > command');
  st.lastSend = null;
  const d = st.cur;
  if (!d) return;
  d.c.refs = d.refs.length > 0 ? d.refs : [...st.refs];
  if (d.c.refs.length === 0) {
    throw new ScriptError(d.c.pos, `case ${d.c.id} has no ref: add a ref line to the case or to the file's prologue`);
  }
  d.c.tags = unique([...st.tags, ...d.tags]);
  d.c.requires = unique([...st.requires, ...d.requires]);
  d.c.mandatory = d.mandatory ?? st.mandatory;
  st.cases.push(d.c);
  st.cur = null;
}

/** chain: the files being included, outermost first (the top-level script is chain[0]). */
function parseFile(st: State, text: string, file: string, chain: string[]): void {
  for (const line of logicalLines(text, file)) statement(st, line, chain);
}

function statement(st: State, line: Line, chain: string[]): void {
  const text = line.text;
  const start = text.length - text.trimStart().length;
  if (start === text.length) return;
  let kw: string;
  let argStart: number;
  if (text[start] === '>' || text[start] === '<') {
    kw = text[start];
    argStart = start + 1;
  } else {
    kw = /^\S+/.exec(text.slice(start))![0];
    argStart = start + kw.length;
  }
  while (argStart < text.length && /\s/.test(text[argStart])) argStart++;
  const arg = text.slice(argStart).trimEnd();
  const pos = line.at(start);
  const argAt: Locate = (k) => line.at(argStart + k);
  const inInclude = chain.length > 1;
  const noArgs = (): void => {
    if (arg) throw new ScriptError(argAt(0), `${kw} takes no arguments`);
  };
  const prologueOnly = (): void => {
    if (st.cur) throw new ScriptError(pos, `${kw} belongs in the prologue, before the first case`);
  };
  const push = (s: Step): void => {
    steps(st).push(s);
  };

  if (kw !== '<') st.lastSend = null;

  switch (kw) {
    case '>': {
      if (!arg) throw new ScriptError(pos, '> needs a command (hex bytes)');
      const send: SendStep = { op: 'send', pos, apdu: parseExpr(arg, argAt(0), true, argAt), expect: [], raw: !!st.raw };
      st.raw = null;
      push(send);
      st.lastSend = send;
      return;
    }
    case '<':
      if (!st.lastSend) throw new ScriptError(pos, '< without a > (or replay) before it');
      st.lastSend.expect.push(parsePattern(arg, argAt(0), true, argAt));
      return;
    case 'replay': {
      noArgs();
      const send: SendStep = { op: 'send', pos, apdu: null, expect: [], raw: !!st.raw };
      st.raw = null;
      push(send);
      st.lastSend = send;
      return;
    }
    case 'raw':
      noArgs();
      if (st.raw) throw new ScriptError(pos, `raw follows another raw (${fmt(st.raw)}) with no > between them`);
      st.raw = pos;
      return;
    case 'suite':
      prologueOnly();
      if (!arg) throw new ScriptError(pos, 'suite needs a name');
      st.suite = arg;
      return;
    case 'case': {
      if (inInclude) {
        throw new ScriptError(
          pos,
          `case in an included file (included from ${chain[chain.length - 2]}): includes hold prologue material only`,
        );
      }
      endSection(st);
      const m = /^\S+/.exec(arg);
      if (!m) throw new ScriptError(pos, 'case needs an id: case ID TITLE');
      const id = m[0];
      if (!/^[A-Za-z0-9._-]+$/.test(id)) {
        throw new ScriptError(argAt(0), `case id ${id}: use letters, digits, '.', '_' and '-'`);
      }
      const prev = st.ids.get(id);
      if (prev) throw new ScriptError(argAt(0), `duplicate case id ${id} (also at ${fmt(prev)})`);
      st.ids.set(id, pos);
      const c: Case = {
        id,
        title: arg.slice(id.length).trim(),
        file: st.path,
        pos,
        refs: [],
        tags: [],
        mandatory: true,
        requires: [],
        steps: [],
      };
      st.cur = { c, refs: [], tags: [], requires: [] };
      return;
    }
    case 'ref':
      if (!arg) throw new ScriptError(pos, 'ref needs the specification section it checks');
      (st.cur ? st.cur.refs : st.refs).push(arg);
      return;
    case 'tags':
    case 'requires': {
      const words = tagList(arg, argAt, kw);
      if (words.length === 0) throw new ScriptError(pos, `${kw} needs at least one tag`);
      if (kw === 'tags') (st.cur ? st.cur.tags : st.tags).push(...words);
      else (st.cur ? st.cur.requires : st.requires).push(...words);
      return;
    }
    case 'mandatory':
    case 'optional':
      noArgs();
      if (st.cur) st.cur.mandatory = kw === 'mandatory';
      else st.mandatory = kw === 'mandatory';
      return;
    case 'option':
      prologueOnly();
      if (arg !== 'no-get-response') {
        throw new ScriptError(argAt(0), `unknown option ${arg || '(none)'} (known: no-get-response)`);
      }
      st.getResponse = false;
      return;
    case 'var':
    case 'default': {
      const m = NAME_RE.exec(arg);
      if (!m) throw new ScriptError(argAt(0), `expected ${kw} NAME = EXPR`);
      let i = m[0].length;
      while (/\s/.test(arg[i] ?? '')) i++;
      if (arg[i] !== '=') throw new ScriptError(argAt(i), `expected = after ${kw} ${m[0]}`);
      i++;
      while (/\s/.test(arg[i] ?? '')) i++;
      if (i >= arg.length) throw new ScriptError(argAt(i), `expected an expression after ${kw} ${m[0]} =`);
      const at: Locate = (k) => argAt(i + k);
      push({ op: 'var', pos, name: m[0], expr: parseExpr(arg.slice(i), at(0), false, at), onlyIfUnset: kw === 'default' });
      return;
    }
    case 'assert': {
      const op = findOperator(arg);
      if (!op) throw new ScriptError(pos, 'assert needs EXPR == EXPR or EXPR != EXPR');
      const left = arg.slice(0, op.i);
      const right = arg.slice(op.i + 2);
      if (!left.trim()) throw new ScriptError(argAt(0), `expected an expression before ${op.op}`);
      if (!right.trim()) throw new ScriptError(argAt(op.i + 2), `expected an expression after ${op.op}`);
      const rAt: Locate = (k) => argAt(op.i + 2 + k);
      push({
        op: 'assert',
        pos,
        left: parseExpr(left, argAt(0), false, argAt),
        right: parseExpr(right, rAt(0), false, rAt),
        equal: op.op === '==',
      });
      return;
    }
    case 'include': {
      if (!arg) throw new ScriptError(pos, 'include needs a file');
      const rel = arg.startsWith('"') ? readString(arg, 0, argAt).bytes : null;
      const named = rel ? new TextDecoder().decode(rel) : arg;
      const target = isAbsolute(named) ? normalize(named) : normalize(join(dirname(line.at(0).file), named));
      const abs = resolve(target);
      const cycleAt = chain.findIndex((f) => resolve(f) === abs);
      if (cycleAt >= 0) {
        throw new ScriptError(pos, `include cycle: ${[...chain.slice(cycleAt), target].join(' → ')}`);
      }
      let body: string;
      try {
        body = st.read(target);
      } catch (e) {
        throw new ScriptError(argAt(0), `cannot read include ${target}: ${e instanceof Error ? e.message : String(e)}`);
      }
      parseFile(st, body, target, [...chain, target]);
      st.lastSend = null;
      return;
    }
    case 'power':
      if (arg !== 'up' && arg !== 'down') throw new ScriptError(argAt(0), 'expected power up or power down');
      push({ op: 'power', pos, action: arg });
      return;
    case 'reset':
      noArgs();
      push({ op: 'power', pos, action: 'reset' });
      return;
    case 'atr':
      if (!arg) throw new ScriptError(pos, 'atr needs a pattern (data only, no status word): atr 3B XX *');
      push({ op: 'atr', pos, pattern: parsePattern(arg, argAt(0), false, argAt) });
      return;
    case 'channel': {
      if (!/^\d+$/.test(arg)) throw new ScriptError(argAt(0), 'channel needs a number 0–19');
      const n = Number(arg);
      if (n > 19) {
        throw new ScriptError(argAt(0), `channel ${n} is out of range: logical channels are 0–19 (ISO 7816-4 §5.4.1)`);
      }
      push({ op: 'channel', pos, channel: n });
      return;
    }
    case 'scp03':
      push(scp03(arg, argAt, pos));
      return;
    case 'load': {
      if (!arg) throw new ScriptError(pos, 'load needs a CAP file: load FILE [block=N]');
      let path: string;
      let rest: number;
      if (arg.startsWith('"')) {
        const s = readString(arg, 0, argAt);
        path = new TextDecoder().decode(s.bytes);
        rest = s.end;
      } else {
        path = /^\S+/.exec(arg)![0];
        rest = path.length;
      }
      const args = namedArgs(arg.slice(rest), (k) => argAt(rest + k), ['block'], 'load');
      let block = DEFAULT_LOAD_BLOCK;
      const b = args.get('block');
      if (b) {
        // GPCS 2.3.1 §11.6.2: each LOAD carries one short-APDU block.
        if (!/^\d+$/.test(b.text) || Number(b.text) < 1 || Number(b.text) > 255) {
          throw new ScriptError(b.at(0), `block=${b.text}: expected a byte count 1–255`);
        }
        block = Number(b.text);
      }
      push({ op: 'load', pos, path, block });
      return;
    }
    case 'verify-signature': {
      const args = namedArgs(arg, argAt, ['cert', 'data', 'sig', 'scheme'], 'verify-signature');
      const scheme = args.get('scheme');
      if (scheme && scheme.text !== 'pkcs1') {
        throw new ScriptError(scheme.at(0), `unknown scheme ${scheme.text} (known: pkcs1)`);
      }
      const expr = (name: string): Expr => {
        const a = args.get(name);
        if (!a) throw new ScriptError(pos, 'verify-signature needs cert=EXPR data=EXPR sig=EXPR');
        return parseExpr(a.text, a.at(0), false, a.at);
      };
      push({ op: 'verify-signature', pos, cert: expr('cert'), data: expr('data'), sig: expr('sig') });
      return;
    }
    case 'echo':
      push({ op: 'echo', pos, text: arg });
      return;
    default:
      throw new ScriptError(pos, `unknown statement ${kw} (known: ${STATEMENTS.join(' ')})`);
  }
}

function tagList(arg: string, at: Locate, kw: string): string[] {
  const out: string[] = [];
  const re = /\S+/g;
  for (let m = re.exec(arg); m; m = re.exec(arg)) {
    if (!/^[a-z0-9-]+$/.test(m[0])) {
      throw new ScriptError(at(m.index), `${kw} ${m[0]}: a tag is lowercase letters, digits and '-'`);
    }
    out.push(m[0]);
  }
  return out;
}

/** The first `==` or `!=` outside a string. */
function findOperator(s: string): { i: number; op: '==' | '!=' } | null {
  const i = outsideStrings(s, (k) => (s[k] === '=' || s[k] === '!') && s[k + 1] === '=', s.length - 1);
  return i < 0 ? null : { i, op: s[i] === '=' ? '==' : '!=' };
}

interface NamedArg {
  text: string;
  at: Locate;
}

/** Splits `name=value name=value …` where values are expressions that may hold spaces, strings and calls. */
function namedArgs(arg: string, at: Locate, known: string[], stmt: string): Map<string, NamedArg> {
  const starts: { name: string; i: number; v: number }[] = [];
  let inString = false;
  let depth = 0;
  for (let i = 0; i < arg.length; i++) {
    const c = arg[i];
    if (inString) {
      if (c === '\\') i++;
      else if (c === '"') inString = false;
      continue;
    }
    if (c === '"') inString = true;
    else if ('([{'.includes(c)) depth++;
    else if (')]}'.includes(c)) depth--;
    else if (depth === 0 && (i === 0 || /\s/.test(arg[i - 1]))) {
      const m = /^([a-z][a-z-]*)=/.exec(arg.slice(i));
      if (m) {
        if (!known.includes(m[1])) {
          throw new ScriptError(at(i), `unknown argument ${m[1]}= for ${stmt} (known: ${known.map((k) => `${k}=`).join(' ')})`);
        }
        if (starts.some((s) => s.name === m[1])) throw new ScriptError(at(i), `${m[1]}= is given twice`);
        starts.push({ name: m[1], i, v: i + m[0].length });
      }
    }
  }
  const first = starts.length > 0 ? starts[0].i : arg.length;
  const lead = arg.slice(0, first);
  if (lead.trim()) {
    const k = lead.length - lead.trimStart().length;
    throw new ScriptError(at(k), `unexpected ${lead.trim()}: ${stmt} takes name=value arguments (${known.join(', ')})`);
  }
  const out = new Map<string, NamedArg>();
  starts.forEach((s, n) => {
    const end = n + 1 < starts.length ? starts[n + 1].i : arg.length;
    const raw = arg.slice(s.v, end);
    const text = raw.trimEnd();
    if (!text.trim()) throw new ScriptError(at(s.v), `${s.name}= needs a value`);
    out.set(s.name, { text, at: (k) => at(s.v + k) });
  });
  return out;
}

function hexByte(a: NamedArg, name: string): number {
  if (!/^[0-9A-Fa-f]{1,2}$/.test(a.text)) throw new ScriptError(a.at(0), `${name}=${a.text}: expected a hex byte (HH)`);
  return parseInt(a.text, 16);
}

function scp03(arg: string, at: Locate, pos: SourcePos): Step {
  const m = /^\S*/.exec(arg)![0];
  const restAt = m.length + (arg.slice(m.length).length - arg.slice(m.length).trimStart().length);
  const rest = arg.slice(restAt);
  const noArgs = (): void => {
    if (rest) throw new ScriptError(at(restAt), `scp03 ${m} takes no arguments`);
  };
  if (m === 'close') {
    noArgs();
    return { op: 'scp03-close', pos };
  }
  if (m === 'corrupt-mac') {
    noArgs();
    return { op: 'scp03-corrupt-mac', pos };
  }
  if (m !== 'open') {
    throw new ScriptError(at(0), `unknown scp03 action ${m || '(none)'} (known: open, close, corrupt-mac)`);
  }
  const args = namedArgs(rest, (k) => at(restAt + k), ['key', 'enc', 'mac', 'dek', 'kvn', 'level', 'i'], 'scp03 open');
  const expr = (a: NamedArg): Expr => parseExpr(a.text, a.at(0), false, a.at);
  const key = args.get('key');
  const enc = args.get('enc');
  const mac = args.get('mac');
  const dek = args.get('dek');
  let keys: { enc: Expr; mac: Expr; dek: Expr };
  if (key) {
    const other = enc ?? mac ?? dek;
    if (other) throw new ScriptError(other.at(0), 'scp03 open takes key= or enc= mac= dek=, not both');
    const k = expr(key);
    keys = { enc: k, mac: k, dek: k };
  } else {
    if (!enc || !mac || !dek) throw new ScriptError(pos, 'scp03 open needs key=EXPR or all of enc=EXPR mac=EXPR dek=EXPR');
    keys = { enc: expr(enc), mac: expr(mac), dek: expr(dek) };
  }
  const kvnArg = args.get('kvn');
  const levelArg = args.get('level');
  const iArg = args.get('i');
  const level = levelArg ? hexByte(levelArg, 'level') : 0x01;
  if (levelArg && !SCP03_LEVELS.includes(level)) {
    throw new ScriptError(
      levelArg.at(0),
      `level=${levelArg.text} is not an SCP03 security level: allowed 00 01 03 11 13 33 (GPC Amd D Table 7-3)`,
    );
  }
  const step: Extract<Step, { op: 'scp03-open' }> = {
    op: 'scp03-open',
    pos,
    ...keys,
    kvn: kvnArg && !kvnArg.text.includes('$') ? hexByte(kvnArg, 'kvn') : 0,
    level,
  };
  // A key version a real card differs in comes from a variable (kvn=${APSD_KVN}).
  if (kvnArg?.text.includes('$')) step.kvnExpr = expr(kvnArg);
  if (iArg) step.i = hexByte(iArg, 'i');
  return step;
}

// --- loading files and directories -----------------------------------------------------------------------------------

/** Folders holding material for `include`, not scripts to run. */
const NOT_TOP_LEVEL = new Set(['include', 'common']);

function walk(dir: string, out: string[]): void {
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) {
      if (!NOT_TOP_LEVEL.has(e.name)) walk(p, out);
    } else if (e.name.endsWith('.apdu') || e.name.endsWith('.scr')) {
      out.push(p);
    }
  }
}

export function loadScripts(paths: string[]): ScriptFile[] {
  const files: string[] = [];
  const seen = new Set<string>();
  for (const p of paths) {
    let isDir: boolean;
    try {
      isDir = statSync(p).isDirectory();
    } catch {
      throw new Error(`${p}: no such file or directory`);
    }
    const found: string[] = [];
    if (isDir) walk(p, found);
    else found.push(p);
    found.sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
    for (const f of found) {
      const abs = resolve(f);
      if (seen.has(abs)) continue;
      seen.add(abs);
      files.push(f);
    }
  }
  const scripts = files.map((f) => (f.endsWith('.scr') ? loadApdutool(f) : parseScript(readFileSync(f, 'utf8'), f)));
  const where = new Map<string, SourcePos>();
  for (const s of scripts) {
    for (const c of s.cases) {
      const prev = where.get(c.id);
      if (prev) throw new ScriptError(c.pos, `duplicate case id ${c.id} (also at ${fmt(prev)})`);
      where.set(c.id, c.pos);
    }
  }
  return scripts;
}
