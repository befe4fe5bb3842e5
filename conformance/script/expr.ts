// Expressions of the conformance script format (conformance/README.md "Expressions"): parsing text into an Expr and
// evaluating an Expr against the run's variables.
import { createHash } from 'node:crypto';
import { concat, hex } from '../../emulator/bytes.ts';
import { ScriptError, type Expr, type ExprPart, type SourcePos } from '../types.ts';

export type Vars = Map<string, Uint8Array>;

/** Maps an offset in the text being parsed to its place in the file (continued lines span several file lines). */
export type Locate = (offset: number) => SourcePos;

/** The locator of a text that sits on one line, starting at pos. */
export function locator(pos: SourcePos): Locate {
  return (offset) => ({ file: pos.file, line: pos.line, col: pos.col + offset });
}

const FUNCTIONS = ['sha1', 'sha256', 'len', 'der', 'slice'] as const;
type Fn = (typeof FUNCTIONS)[number];

function isFn(name: string): name is Fn {
  return (FUNCTIONS as readonly string[]).includes(name);
}

export const NAME_RE = /^[A-Za-z_][A-Za-z0-9_]*/;

/** Reads the `"…"` string whose opening quote is text[i] (escapes: \" and \\); end is the index after the closing quote. */
export function readString(text: string, i: number, at: Locate): { bytes: Uint8Array; end: number } {
  let s = '';
  let j = i + 1;
  while (j < text.length) {
    const c = text[j];
    if (c === '\\') {
      const n = text[j + 1];
      if (n === '"' || n === '\\') {
        s += n;
        j += 2;
        continue;
      }
      throw new ScriptError(at(j), `unknown escape \\${n ?? ''} in a string: only \\" and \\\\ are allowed`);
    }
    if (c === '"') return { bytes: new TextEncoder().encode(s), end: j + 1 };
    s += c;
    j++;
  }
  throw new ScriptError(at(i), 'unterminated string: no closing "');
}

/** Reads `${NAME}` whose `$` is text[i]. */
export function readVarRef(text: string, i: number, at: Locate): { name: string; end: number } {
  if (text[i + 1] !== '{') throw new ScriptError(at(i), 'expected ${NAME} after $');
  const m = NAME_RE.exec(text.slice(i + 2));
  if (!m) throw new ScriptError(at(i + 2), 'expected a variable name after ${');
  const close = i + 2 + m[0].length;
  if (text[close] !== '}') throw new ScriptError(at(close), `expected } to close \${${m[0]}`);
  return { name: m[0], end: close + 1 };
}

/** Upper-case hex with a space between bytes, for messages. */
export function spaced(b: Uint8Array): string {
  return hex(b).replace(/(..)(?=.)/g, '$1 ');
}

// --- parsing ---------------------------------------------------------------------------------------------------------

/**
 * Parses an expression (README "Expressions"; `[ … ]` Lc only when allowLc, i.e. in a `>` command).
 * `at` places offsets of `text` in the file; by default text sits on pos's line from pos.col on.
 */
export function parseExpr(text: string, pos: SourcePos, allowLc: boolean, at: Locate = locator(pos)): Expr {
  const { expr, end } = parseSeq(text, 0, allowLc, '', at);
  if (end < text.length) throw new ScriptError(at(end), unexpectedMessage(text[end]));
  return expr;
}

function unexpectedMessage(ch: string): string {
  if (ch === ')') return 'unbalanced parenthesis: no ( for this )';
  if (ch === ']') return 'unbalanced bracket: no [ for this ]';
  return `unexpected '${ch}'`;
}

function skipSpace(text: string, i: number): number {
  while (i < text.length && /\s/.test(text[i])) i++;
  return i;
}

/** A concatenation up to the end of text or one of the `stop` characters (not consumed). */
function parseSeq(text: string, i: number, allowLc: boolean, stop: string, at: Locate): { expr: Expr; end: number } {
  const parts: ExprPart[] = [];
  const pushBytes = (b: Uint8Array): void => {
    const last = parts[parts.length - 1];
    if (last && last.kind === 'bytes') parts[parts.length - 1] = { kind: 'bytes', bytes: concat(last.bytes, b) };
    else parts.push({ kind: 'bytes', bytes: b });
  };
  for (;;) {
    i = skipSpace(text, i);
    if (i >= text.length) break;
    const ch = text[i];
    if (stop.includes(ch)) break;
    if (ch === '"') {
      const s = readString(text, i, at);
      pushBytes(s.bytes);
      i = s.end;
    } else if (ch === '$') {
      const v = readVarRef(text, i, at);
      parts.push({ kind: 'var', name: v.name, pos: at(i) });
      i = v.end;
    } else if (ch === '[') {
      if (!allowLc) throw new ScriptError(at(i), '[ … ] (Lc) is only allowed in a > command');
      const inner = parseSeq(text, i + 1, false, ']', at);
      if (text[inner.end] !== ']') throw new ScriptError(at(i), 'unbalanced bracket: this [ is not closed');
      parts.push({ kind: 'lc', content: inner.expr, pos: at(i) });
      i = inner.end + 1;
    } else if (/[A-Za-z0-9_]/.test(ch)) {
      const word = /^[A-Za-z0-9_]+/.exec(text.slice(i))![0];
      if (/^[0-9A-Fa-f]+$/.test(word)) {
        if (word.length % 2 !== 0) {
          throw new ScriptError(at(i), `odd number of hex digits in ${word}: a byte is two hex digits`);
        }
        const b = new Uint8Array(word.length / 2);
        for (let k = 0; k < b.length; k++) b[k] = parseInt(word.substr(k * 2, 2), 16);
        pushBytes(b);
        i += word.length;
      } else {
        const open = skipSpace(text, i + word.length);
        if (text[open] !== '(') {
          throw new ScriptError(
            at(i),
            `unexpected ${word}: expected hex bytes, "text", \${NAME} or a function (${FUNCTIONS.join(', ')})`,
          );
        }
        if (!isFn(word)) throw new ScriptError(at(i), `unknown function ${word} (known: ${FUNCTIONS.join(', ')})`);
        const call = parseCall(text, word, i, open, at);
        parts.push(call.part);
        i = call.end;
      }
    } else {
      throw new ScriptError(at(i), unexpectedMessage(ch));
    }
  }
  return { expr: parts, end: i };
}

function parseCall(text: string, fn: Fn, start: number, open: number, at: Locate): { part: ExprPart; end: number } {
  const unclosed = (): ScriptError => new ScriptError(at(open), `unbalanced parenthesis: ${fn}( is not closed`);
  const arg = parseSeq(text, open + 1, false, ',)', at);
  if (arg.end >= text.length) throw unclosed();
  if (arg.expr.length === 0) throw new ScriptError(at(arg.end), `${fn}(…) needs an argument before '${text[arg.end]}'`);
  const args: Expr[] = [arg.expr];
  let i = arg.end;
  if (fn === 'slice') {
    while (text[i] === ',' && args.length < 3) {
      i = skipSpace(text, i + 1);
      const m = /^\d+/.exec(text.slice(i));
      if (!m) throw new ScriptError(at(i), 'slice offsets are decimal numbers: slice(EXPR, START[, END])');
      args.push([{ kind: 'num', value: Number(m[0]), pos: at(i) }]);
      i = skipSpace(text, i + m[0].length);
    }
    if (args.length < 2) throw new ScriptError(at(i), 'slice needs a start offset: slice(EXPR, START[, END])');
  }
  if (i >= text.length) throw unclosed();
  if (text[i] !== ')') {
    const what = fn === 'slice' ? 'slice takes EXPR, START[, END]' : `${fn} takes one argument`;
    throw new ScriptError(at(i), `unexpected '${text[i]}': ${what}`);
  }
  return { part: { kind: 'call', fn, args, pos: at(start) }, end: i + 1 };
}

// --- evaluation ------------------------------------------------------------------------------------------------------

export function evalExpr(expr: Expr, vars: Vars): Uint8Array {
  return concat(...expr.map((p) => evalPart(p, vars)));
}

function evalPart(p: ExprPart, vars: Vars): Uint8Array {
  switch (p.kind) {
    case 'bytes':
      return p.bytes;
    case 'var': {
      const v = vars.get(p.name);
      if (v === undefined) throw new ScriptError(p.pos, `variable ${p.name} is not set`);
      return v;
    }
    case 'num':
      throw new ScriptError(p.pos, 'a number is only allowed as an offset of slice(…)');
    case 'lc': {
      const c = evalExpr(p.content, vars);
      // ISO 7816-4 §5.1: Lc is absent when there is no data, so an empty [ ] would silently turn into Le = 00.
      if (c.length === 0) throw new ScriptError(p.pos, '[ … ] is empty: a command with no data has no Lc');
      return concat(lengthBytes(c.length, p.pos, true), c);
    }
    case 'call':
      return evalCall(p.fn, p.args, p.pos, vars);
  }
}

/** 1 byte up to 255; over that 2 bytes (len) or 00 hh ll (an extended Lc, ISO 7816-4 §5.1). */
function lengthBytes(n: number, pos: SourcePos, extendedLc: boolean): Uint8Array {
  if (n <= 255) return Uint8Array.of(n);
  if (n > 0xffff) throw new ScriptError(pos, `${n} bytes do not fit a two-byte length`);
  return extendedLc ? Uint8Array.of(0, n >> 8, n & 0xff) : Uint8Array.of(n >> 8, n & 0xff);
}

function evalCall(fn: Fn, args: Expr[], pos: SourcePos, vars: Vars): Uint8Array {
  const x = evalExpr(args[0], vars);
  switch (fn) {
    case 'sha1':
    case 'sha256':
      return new Uint8Array(createHash(fn).update(x).digest());
    case 'len':
      return lengthBytes(x.length, pos, false);
    case 'der':
      return firstTlv(x, pos);
    case 'slice': {
      const start = numArg(args[1]);
      const end = args.length > 2 ? numArg(args[2]) : x.length;
      if (start > x.length || end > x.length || end < start) {
        throw new ScriptError(pos, `slice(…, ${start}, ${end}) is out of range: the value has ${x.length} bytes`);
      }
      return x.slice(start, end);
    }
  }
}

function numArg(e: Expr): number {
  const p = e[0];
  if (e.length !== 1 || p.kind !== 'num') throw new Error('slice offsets must be num parts');
  return p.value;
}

/** The first BER/DER TLV of x (ITU-T X.690 §8.1: tag, definite length in short or long form up to 4 bytes). */
function firstTlv(x: Uint8Array, pos: SourcePos): Uint8Array {
  const bad = (why: string): ScriptError => new ScriptError(pos, `der(…): ${why}`);
  if (x.length === 0) throw bad('the value is empty');
  let i = 1;
  if ((x[0] & 0x1f) === 0x1f) {
    while (i < x.length && x[i] & 0x80) i++;
    i++;
  }
  if (i >= x.length) throw bad(`the value (${x.length} bytes) ends inside the tag or before the length`);
  let len = x[i++];
  if (len & 0x80) {
    const n = len & 0x7f;
    if (n === 0) throw bad('indefinite length (80) is not DER');
    if (n > 4) throw bad(`a length of ${n} bytes is not supported (at most 4)`);
    if (i + n > x.length) throw bad(`the value (${x.length} bytes) ends inside the length`);
    len = 0;
    for (let k = 0; k < n; k++) len = len * 256 + x[i + k];
    i += n;
  }
  if (i + len > x.length) throw bad(`the TLV needs ${i + len} bytes, the value has ${x.length}`);
  return x.slice(0, i + len);
}

// --- free text -------------------------------------------------------------------------------------------------------

/** Replaces `${NAME}` in text: the variable as hex (echo) or its bytes read as UTF-8 (file paths). */
export function expandText(text: string, vars: Vars, pos: SourcePos, as: 'hex' | 'utf8'): string {
  return text.replace(/\$\{([A-Za-z_][A-Za-z0-9_]*)\}/g, (_m, name: string, offset: number) => {
    const v = vars.get(name);
    if (v === undefined) {
      throw new ScriptError({ file: pos.file, line: pos.line, col: pos.col + offset }, `variable ${name} is not set`);
    }
    return as === 'hex' ? hex(v) : new TextDecoder().decode(v);
  });
}
