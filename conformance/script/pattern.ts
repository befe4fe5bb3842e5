// Response patterns (conformance/README.md "Response patterns"): parsing `<` / `atr` text and matching a response.
import { hex } from '../../emulator/bytes.ts';
import { swHex } from '../../emulator/iso.ts';
import { ScriptError, type PatternToken, type ResponsePattern, type SourcePos, type SwAlternative } from '../types.ts';
import { locator, readString, readVarRef, type Locate, type Vars } from './expr.ts';

const MAX_REPEAT = 0xffff;

type Lex =
  | { t: 'hex'; s: string; i: number }
  | { t: 'star'; i: number }
  | { t: 'open'; i: number; capture?: { name: string; append: boolean } }
  | { t: 'close'; i: number }
  | { t: 'rep'; min: number; max: number; i: number }
  | { t: 'str'; bytes: Uint8Array; i: number }
  | { t: 'var'; name: string; i: number }
  | { t: 'len'; op: '=' | '>=' | '<='; n: number; i: number }
  | { t: 'pipe'; i: number };

const SW_EXPECTED = 'expected a status word like 9000 or 6AXX at the end of the pattern';

function lex(text: string, at: Locate): Lex[] {
  const out: Lex[] = [];
  let i = 0;
  while (i < text.length) {
    const ch = text[i];
    const rest = text.slice(i);
    if (/\s/.test(ch)) {
      i++;
    } else if (ch === '(') {
      const m = /^\(\s*(\+?)\s*([A-Za-z_][A-Za-z0-9_]*)\s*:/.exec(rest);
      if (m) {
        out.push({ t: 'open', i, capture: { name: m[2], append: m[1] === '+' } });
        i += m[0].length;
      } else if (/^\(\s*\+/.test(rest)) {
        throw new ScriptError(at(i), 'expected (+NAME: …) to append to a variable');
      } else {
        out.push({ t: 'open', i });
        i++;
      }
    } else if (ch === ')') {
      out.push({ t: 'close', i });
      i++;
    } else if (ch === '*') {
      out.push({ t: 'star', i });
      i++;
    } else if (ch === '|') {
      out.push({ t: 'pipe', i });
      i++;
    } else if (ch === '{') {
      const m = /^\{\s*(\d+)\s*(?:,\s*(\d+)\s*)?\}/.exec(rest);
      if (!m) throw new ScriptError(at(i), 'expected a repetition {N} or {N,M} (decimal counts)');
      const min = Number(m[1]);
      const max = m[2] === undefined ? min : Number(m[2]);
      if (max < min) throw new ScriptError(at(i), `repetition {${min},${max}}: the maximum is below the minimum`);
      if (max > MAX_REPEAT) throw new ScriptError(at(i), `repetition count ${max} is over ${MAX_REPEAT}`);
      out.push({ t: 'rep', min, max, i });
      i += m[0].length;
    } else if (ch === '"') {
      const s = readString(text, i, at);
      out.push({ t: 'str', bytes: s.bytes, i });
      i = s.end;
    } else if (ch === '$') {
      const v = readVarRef(text, i, at);
      out.push({ t: 'var', name: v.name, i });
      i = v.end;
    } else if (/^len\b|^len[<>=]/.test(rest)) {
      const m = /^len\s*(>=|<=|=)\s*(\d+)/.exec(rest);
      if (!m) throw new ScriptError(at(i), 'expected len=N, len>=N or len<=N (a decimal byte count)');
      out.push({ t: 'len', op: m[1] as '=' | '>=' | '<=', n: Number(m[2]), i });
      i += m[0].length;
    } else if (/[0-9A-Fa-fXx]/.test(ch)) {
      const s = /^[0-9A-Fa-fXx]+/.exec(rest)![0];
      out.push({ t: 'hex', s, i });
      i += s.length;
    } else {
      throw new ScriptError(at(i), `unexpected '${ch}' in a pattern`);
    }
  }
  return out;
}

/** Bytes with X nibbles: a 0 mask nibble is "any". */
function hexWithMask(s: string): { value: Uint8Array; mask: Uint8Array } {
  const n = s.length / 2;
  const value = new Uint8Array(n);
  const mask = new Uint8Array(n);
  for (let k = 0; k < s.length; k++) {
    const c = s[k];
    const wild = c === 'X' || c === 'x';
    const shift = k % 2 === 0 ? 4 : 0;
    if (!wild) {
      value[k >> 1] |= parseInt(c, 16) << shift;
      mask[k >> 1] |= 0xf << shift;
    }
  }
  return { value, mask };
}

/**
 * Parses a response pattern: data tokens, then (withSw) the status word alternatives.
 * `at` places offsets of `text` in the file (continued lines); by default text starts at pos.
 */
export function parsePattern(text: string, pos: SourcePos, withSw: boolean, at: Locate = locator(pos)): ResponsePattern {
  const toks = lex(text, at);
  // Parentheses first, so that `6F (XX 9000` is reported as what it is rather than as a missing status word.
  const open: number[] = [];
  for (const t of toks) {
    if (t.t === 'open') open.push(t.i);
    else if (t.t === 'close' && open.pop() === undefined) {
      throw new ScriptError(at(t.i), 'unbalanced parenthesis: no ( for this )');
    }
  }
  if (open.length > 0) throw new ScriptError(at(open[open.length - 1]), 'unbalanced parenthesis: this ( is not closed');
  let dataEnd = toks.length;
  const sw: SwAlternative[] = [];
  if (withSw) {
    const last = toks[toks.length - 1];
    if (!last || last.t !== 'hex') throw new ScriptError(at(text.trimEnd().length), SW_EXPECTED);
    const alts = [last];
    dataEnd = toks.length - 1;
    for (;;) {
      const pipe = toks[dataEnd - 1];
      if (!pipe || pipe.t !== 'pipe') break;
      const prev = toks[dataEnd - 2];
      if (!prev || prev.t !== 'hex') throw new ScriptError(at(pipe.i), 'expected a status word before |');
      alts.unshift(prev);
      dataEnd -= 2;
    }
    for (const a of alts) {
      if (a.s.length !== 4) throw new ScriptError(at(a.i), `${SW_EXPECTED} (${a.s} is not 4 hex digits or X)`);
      const { value, mask } = hexWithMask(a.s);
      sw.push({ value: (value[0] << 8) | value[1], mask: (mask[0] << 8) | mask[1] });
    }
  }
  const built = build(toks.slice(0, dataEnd), 0, 0, at, withSw);
  if (built.k < dataEnd) {
    throw new ScriptError(at(toks[built.k].i), 'unbalanced parenthesis: no ( for this )');
  }
  return { data: built.items, sw, text: text.trim(), pos: at(text.length - text.trimStart().length) };
}

/** Parses tokens into pattern items up to a `)` (returned at index k) or the end. */
function build(
  toks: Lex[],
  k: number,
  depth: number,
  at: Locate,
  withSw: boolean,
): { items: PatternToken[]; k: number } {
  const items: PatternToken[] = [];
  // Whether the last item may take a {N}: a byte, a string, a variable, a group not yet repeated.
  let repeatable = false;
  let plainGroup = false;
  while (k < toks.length) {
    const tok = toks[k];
    switch (tok.t) {
      case 'hex': {
        if (tok.s.length % 2 !== 0) {
          throw new ScriptError(at(tok.i), `odd number of hex digits in ${tok.s}: a byte is two hex digits`);
        }
        // One token per byte so that a following {N} repeats the last byte only (6F10{2} = 6F 10 10).
        for (let b = 0; b < tok.s.length; b += 2) items.push({ kind: 'bytes', ...hexWithMask(tok.s.substr(b, 2)) });
        repeatable = true;
        plainGroup = false;
        break;
      }
      case 'str':
        items.push({ kind: 'bytes', value: tok.bytes, mask: new Uint8Array(tok.bytes.length).fill(0xff) });
        repeatable = tok.bytes.length > 0;
        plainGroup = false;
        break;
      case 'var':
        items.push({ kind: 'var', name: tok.name, pos: at(tok.i) });
        repeatable = true;
        plainGroup = false;
        break;
      case 'star':
        items.push({ kind: 'star' });
        repeatable = false;
        break;
      case 'len':
        if (depth > 0) throw new ScriptError(at(tok.i), 'a len check applies to the whole data: not inside ( )');
        items.push({ kind: 'len', op: tok.op, n: tok.n });
        repeatable = false;
        break;
      case 'pipe':
        throw new ScriptError(
          at(tok.i),
          withSw
            ? '| separates status word alternatives, at the end of the pattern (9000|6A88)'
            : 'an ATR pattern has no status word: | is not allowed',
        );
      case 'open': {
        const inner = build(toks, k + 1, depth + 1, at, withSw);
        if (inner.k >= toks.length) throw new ScriptError(at(tok.i), 'unbalanced parenthesis: this ( is not closed');
        if (inner.items.length === 0) throw new ScriptError(at(tok.i), 'empty group ( )');
        if (tok.capture) {
          items.push({ kind: 'capture', name: tok.capture.name, append: tok.capture.append, items: inner.items });
          plainGroup = false;
        } else {
          items.push({ kind: 'group', items: inner.items, min: 1, max: 1 });
          plainGroup = true;
        }
        repeatable = true;
        k = inner.k;
        break;
      }
      case 'close':
        if (depth === 0) throw new ScriptError(at(tok.i), 'unbalanced parenthesis: no ( for this )');
        return { items: merge(items), k };
      case 'rep': {
        if (!repeatable) {
          throw new ScriptError(at(tok.i), `{${tok.min}…} must follow a byte, a "string", a \${NAME} or a ( group )`);
        }
        const prev = items[items.length - 1];
        if (plainGroup && prev.kind === 'group') items[items.length - 1] = { ...prev, min: tok.min, max: tok.max };
        else items[items.length - 1] = { kind: 'group', items: [prev], min: tok.min, max: tok.max };
        repeatable = false;
        plainGroup = false;
        break;
      }
    }
    k++;
  }
  return { items: merge(items), k };
}

/** Joins adjacent literal bytes into one token (fewer steps when matching). */
function merge(items: PatternToken[]): PatternToken[] {
  const out: PatternToken[] = [];
  for (const it of items) {
    const last = out[out.length - 1];
    if (it.kind === 'bytes' && last && last.kind === 'bytes') {
      const value = new Uint8Array(last.value.length + it.value.length);
      const mask = new Uint8Array(value.length);
      value.set(last.value);
      value.set(it.value, last.value.length);
      mask.set(last.mask);
      mask.set(it.mask, last.mask.length);
      out[out.length - 1] = { kind: 'bytes', value, mask };
    } else {
      out.push(it);
    }
  }
  return out;
}

// --- matching --------------------------------------------------------------------------------------------------------

export interface MatchResult {
  ok: boolean;
  captures: Map<string, Uint8Array>;
  at: number;
  reason: string;
}

/** A byte as the pattern wants it: hex with X for the "any" nibbles. */
function maskedHex(value: number, mask: number): string {
  const h = hex(Uint8Array.of(value));
  return ((mask & 0xf0) ? h[0] : 'X') + ((mask & 0x0f) ? h[1] : 'X');
}

export function swText(a: SwAlternative): string {
  const h = swHex(a.value);
  const m = a.mask;
  return [12, 8, 4, 0].map((s, k) => ((m >> s) & 0xf ? h[k] : 'X')).join('');
}

type Cont = (p: number) => boolean;

interface Capture {
  name: string;
  append: boolean;
  start: number;
  end: number;
}

/**
 * Matches data and SW against a pattern by backtracking (`*` tries the shortest stretch first; `{N,M}` the longest).
 * `${NAME}` stands for the variable's value before the match (captures of this match are not seen by it).
 */
export function matchResponse(p: ResponsePattern, data: Uint8Array, sw: number | undefined, vars: Vars): MatchResult {
  const varBytes = new Map<string, Uint8Array>();
  const resolve = (items: PatternToken[]): void => {
    for (const it of items) {
      if (it.kind === 'var') {
        const v = vars.get(it.name);
        if (v === undefined) throw new ScriptError(it.pos, `variable ${it.name} is not set`);
        varBytes.set(it.name, v);
      } else if (it.kind === 'group' || it.kind === 'capture') {
        resolve(it.items);
      }
    }
  };
  resolve(p.data);

  const n = data.length;
  // The furthest point any attempt reached before failing: what the report points at.
  const best = { at: -1, reason: 'data does not match' };
  const fail = (at: number, reason: string): false => {
    if (at > best.at) {
      best.at = at;
      best.reason = reason;
    }
    return false;
  };
  const trail: Capture[] = [];

  const fixedCache = new Map<PatternToken[], number | null>();
  /** The length every match of items has, when it has one and nothing in it captures. */
  const fixedLen = (items: PatternToken[]): number | null => {
    const cached = fixedCache.get(items);
    if (cached !== undefined) return cached;
    let len: number | null = 0;
    for (const it of items) {
      let l: number | null = null;
      if (it.kind === 'bytes') l = it.value.length;
      else if (it.kind === 'var') l = varBytes.get(it.name)!.length;
      else if (it.kind === 'len') l = 0;
      else if (it.kind === 'group' && it.min === it.max) {
        const inner = fixedLen(it.items);
        l = inner === null ? null : inner * it.min;
      }
      if (l === null) {
        len = null;
        break;
      }
      len += l;
    }
    fixedCache.set(items, len);
    return len;
  };

  const literal = (value: Uint8Array, mask: Uint8Array | null, at: number, what: string): boolean => {
    for (let j = 0; j < value.length; j++) {
      const q = at + j;
      if (q >= n) return fail(n, `data has ${n} bytes, expected more`);
      const m = mask ? mask[j] : 0xff;
      if ((data[q] & m) !== (value[j] & m)) {
        return fail(q, `data byte ${q} is ${hex(data.subarray(q, q + 1))}, expected ${maskedHex(value[j], m)}${what}`);
      }
    }
    return true;
  };

  /** Matches fixed-length, capture-free items at p (no backtracking needed). */
  const fixedAt = (items: PatternToken[], p: number): boolean => {
    for (const it of items) {
      if (it.kind === 'bytes') {
        if (!literal(it.value, it.mask, p, '')) return false;
        p += it.value.length;
      } else if (it.kind === 'var') {
        const v = varBytes.get(it.name)!;
        if (!literal(v, null, p, ` (\${${it.name}})`)) return false;
        p += v.length;
      } else if (it.kind === 'group') {
        const l = fixedLen(it.items)!;
        for (let c = 0; c < it.min; c++, p += l) if (!fixedAt(it.items, p)) return false;
      }
    }
    return true;
  };

  // Failed (top-level `*` index, position) pairs: the rest of the top-level sequence is the same continuation each
  // time, so a position that failed once fails again (keeps `* … * …` patterns polynomial, not exponential).
  const anyMemo = new Map<number, Set<number>>();
  const top = p.data;

  const seq = (items: PatternToken[], idx: number, p: number, k: Cont): boolean => {
    if (idx === items.length) return k(p);
    const it = items[idx];
    const next: Cont = (q) => seq(items, idx + 1, q, k);
    switch (it.kind) {
      case 'bytes':
        return literal(it.value, it.mask, p, '') && next(p + it.value.length);
      case 'var': {
        const v = varBytes.get(it.name)!;
        return literal(v, null, p, ` (\${${it.name}})`) && next(p + v.length);
      }
      case 'len':
        return next(p);
      case 'star': {
        let failed: Set<number> | undefined;
        if (items === top) {
          failed = anyMemo.get(idx);
          if (!failed) anyMemo.set(idx, (failed = new Set()));
        }
        for (let q = p; q <= n; q++) {
          if (failed?.has(q)) continue;
          if (next(q)) return true;
          failed?.add(q);
        }
        return false;
      }
      case 'capture':
        return seq(it.items, 0, p, (q) => {
          trail.push({ name: it.name, append: it.append, start: p, end: q });
          if (next(q)) return true;
          trail.pop();
          return false;
        });
      case 'group': {
        const l = fixedLen(it.items);
        if (l !== null) {
          // Count the repetitions that match, then try the longest first.
          let c = 0;
          while (c < it.max && p + (c + 1) * l <= n && fixedAt(it.items, p + c * l)) c++;
          if (c < it.min) {
            fixedAt(it.items, p + c * l); // records the mismatch or the missing bytes
            return false;
          }
          for (let r = c; r >= it.min; r--) if (next(p + r * l)) return true;
          return false;
        }
        const rep = (c: number, q: number): boolean => {
          if (c < it.max && seq(it.items, 0, q, (r) => (r === q && c >= it.min ? false : rep(c + 1, r)))) return true;
          return c >= it.min && next(q);
        };
        return rep(0, p);
      }
    }
  };

  const dataOk = seq(p.data, 0, 0, (q) => q === n || fail(q, `data has ${n} bytes, expected ${q}`));

  let lenReason = '';
  for (const it of p.data) {
    if (it.kind !== 'len') continue;
    const ok = it.op === '=' ? n === it.n : it.op === '>=' ? n >= it.n : n <= it.n;
    if (!ok && !lenReason) lenReason = `len ${n}, expected len${it.op}${it.n}`;
  }

  let swReason = '';
  if (p.sw.length > 0) {
    const alts = p.sw.map(swText).join('|');
    if (sw === undefined) swReason = `no status word, expected ${alts}`;
    else if (!p.sw.some((a) => (sw & a.mask) === (a.value & a.mask))) swReason = `status word ${swHex(sw)}, expected ${alts}`;
  }

  const ok = dataOk && !lenReason && !swReason;
  const captures = new Map<string, Uint8Array>();
  if (ok) {
    for (const c of trail) {
      const got = data.slice(c.start, c.end);
      const before = c.append ? (captures.get(c.name) ?? vars.get(c.name) ?? new Uint8Array(0)) : new Uint8Array(0);
      const joined = new Uint8Array(before.length + got.length);
      joined.set(before);
      joined.set(got, before.length);
      captures.set(c.name, joined);
    }
  }
  return {
    ok,
    captures,
    at: dataOk ? -1 : best.at,
    reason: ok ? '' : swReason || (dataOk ? lenReason : best.reason),
  };
}
