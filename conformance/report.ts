// Reports of a conformance run: console lines, a readable diff of a failed response, JUnit XML (the Ant/Jenkins
// format that CI servers read; conformance/junit.xsd describes what is written) and TAP version 14.
import { hostname } from 'node:os';
import { hex } from '../emulator/bytes.ts';
import { swHex, swMeaning } from '../emulator/iso.ts';
import type { ApduRecord, CaseResult, ResponsePattern, RunResult } from './types.ts';

/** Bytes per line in diffs and logs. */
const WRAP = 32;
/** "< received: " and "< expected: " are this wide: data lines and markers are aligned after them. */
const LABEL = 12;

const h2 = (x: number) => x.toString(16).toUpperCase().padStart(2, '0');

/** Hex grouped by byte, WRAP bytes per line. */
function hexLines(b: Uint8Array): string[] {
  const out: string[] = [];
  for (let i = 0; i < b.length; i += WRAP) out.push(Array.from(b.subarray(i, i + WRAP), h2).join(' '));
  return out;
}

/** The echo lines and start time the runner adds to a CaseResult (runner.ts CaseRun), when present. */
interface Extras {
  echoes?: { text: string; after: number }[];
  startedAt?: string;
}
const extras = (c: CaseResult): Extras => c as CaseResult & Extras;

/**
 * Data under a label, wrapped, with ^^ under the byte at `at` on the line that holds it (at = data.length: just after
 * the last byte, where more was expected; at < 0: no marker).
 */
function dataBlock(label: string, data: Uint8Array, at: number, width = LABEL): string[] {
  const lines = hexLines(data);
  if (!lines.length) lines.push('(no data)');
  const out = lines.map((l, i) => (i === 0 ? label.padEnd(width) : ' '.repeat(width)) + l);
  if (at >= 0) {
    const line = data.length === 0 ? 0 : Math.min(Math.floor(at / WRAP), lines.length - 1);
    const col = width + (at - line * WRAP) * 3;
    out.splice(line + 1, 0, ' '.repeat(col) + '^^');
  }
  return out;
}

function expectedBlock(label: string, expected: ResponsePattern[], width = LABEL): string[] {
  const or = label.startsWith('<') ? '<' + 'or:'.padStart(label.length - 1) : 'or:'.padStart(label.length);
  return expected.map((p, i) => (i === 0 ? label : or).padEnd(width) + p.text);
}

function swMatches(expected: ResponsePattern[], sw: number): boolean {
  return expected.some((p) => p.sw.some((a) => (sw & a.mask) === (a.value & a.mask)));
}

/**
 * A failed response, readable: the command, the expected pattern(s), the received data with ^^ under the first byte
 * that differs (`at`, -1 when the data matched), the status word with its meaning (^^^^ under it when no alternative
 * allows it), and the matcher's reason.
 */
export function formatDiff(command: Uint8Array, expected: ResponsePattern[], response: Uint8Array, at: number, reason: string): string {
  const out = hexLines(command).map((l, i) => (i === 0 ? '> ' : '  ') + l);
  if (!command.length) out.push('> (empty command)');
  out.push(...expectedBlock('< expected:', expected));
  if (response.length < 2) {
    out.push(`< received: ${hexLines(response).join(' ') || '(nothing)'} (no status word)`);
  } else {
    const sw = (response[response.length - 2] << 8) | response[response.length - 1];
    out.push(...dataBlock('< received:', response.subarray(0, response.length - 2), at));
    out.push(`${'SW: '.padStart(LABEL)}${swHex(sw)} (${swMeaning(sw)})`);
    if (expected.length && !swMatches(expected, sw)) out.push(' '.repeat(LABEL) + '^^^^');
  }
  out.push(`  ${reason}`);
  return out.join('\n');
}

/** The same for data without a status word (the ATR): `label expected:` / `label received:`. */
export function formatDataDiff(label: string, expected: ResponsePattern[], data: Uint8Array, at: number, reason: string): string {
  const width = label.length + 11; // "LABEL expected: "
  const out = [...expectedBlock(`${label} expected:`, expected, width), ...dataBlock(`${label} received:`, data, at, width)];
  out.push(`  ${reason}`);
  return out.join('\n');
}

// --- console -------------------------------------------------------------------------------------------------------

function ms(n: number): string {
  return n < 10 ? `${n.toFixed(1)} ms` : `${Math.round(n)} ms`;
}

function responseText(r: Uint8Array): string {
  if (r.length < 2) return hex(r);
  const data = r.subarray(0, r.length - 2);
  return `${data.length ? hex(data) + ' ' : ''}${swHex((r[r.length - 2] << 8) | r[r.length - 1])}`;
}

/** A case's APDUs and echo lines in the order they happened: "> cmd", "< resp (ms)", "# echo". */
export function caseLog(c: CaseResult): string[] {
  const echoes = extras(c).echoes ?? [];
  const out: string[] = [];
  let e = 0;
  const flush = (n: number) => {
    while (e < echoes.length && echoes[e].after <= n) out.push(`# ${echoes[e++].text}`);
  };
  c.apdus.forEach((a: ApduRecord, i) => {
    flush(i);
    out.push(`> ${hex(a.command)}${a.channel ? ` (channel ${a.channel})` : ''}`, `< ${responseText(a.response)} (${ms(a.ms)})`);
  });
  flush(Infinity);
  return out;
}

const LABELS = { pass: 'PASS', fail: 'FAIL', error: 'ERROR', skip: 'SKIP' } as const;

/** The lines of one case: verdict line, then (indented) where and why, the diff, echo lines; verbose: every APDU. */
export function formatCase(c: CaseResult, opts: { verbose?: boolean } = {}): string[] {
  const optional = c.mandatory ? '' : ' [optional]';
  if (c.outcome === 'skip') return [`SKIP ${c.id} — ${c.title}: ${c.message ?? 'skipped'}${optional}`];
  const out = [`${LABELS[c.outcome]} ${c.id} — ${c.title} (${ms(c.ms)})${optional}`];
  const pad = (s: string) => `    ${s}`;
  if (c.outcome !== 'pass') {
    const where = c.at ? `${c.at.file}:${c.at.line}:${c.at.col}: ` : '';
    out.push(pad(`${where}${c.message ?? c.outcome}`));
    if (c.diff) out.push(...c.diff.split('\n').map(pad));
  }
  if (opts.verbose) out.push(...caseLog(c).map(pad));
  else out.push(...(extras(c).echoes ?? []).map((e) => pad(`# ${e.text}`)));
  return out;
}

export interface Counts {
  total: number;
  passed: number;
  failed: number;
  failedMandatory: number;
  errors: number;
  skipped: number;
}

export function counts(cases: CaseResult[]): Counts {
  const n = (f: (c: CaseResult) => boolean) => cases.filter(f).length;
  return {
    total: cases.length,
    passed: n((c) => c.outcome === 'pass'),
    failed: n((c) => c.outcome === 'fail'),
    failedMandatory: n((c) => c.outcome === 'fail' && c.mandatory),
    errors: n((c) => c.outcome === 'error'),
    skipped: n((c) => c.outcome === 'skip'),
  };
}

/** "N cases: P passed, F failed (M mandatory), E errors, S skipped in T s; slowest APDU …". */
export function formatSummary(r: RunResult): string {
  const k = counts(r.cases);
  let slowest: { a: ApduRecord; id: string } | undefined;
  for (const c of r.cases) for (const a of c.apdus) if (!slowest || a.ms > slowest.a.ms) slowest = { a, id: c.id };
  const head = slowest ? hex(slowest.a.command.subarray(0, 16)) + (slowest.a.command.length > 16 ? '…' : '') : '';
  return (
    `${k.total} case${k.total === 1 ? '' : 's'}: ${k.passed} passed, ${k.failed} failed (${k.failedMandatory} mandatory), ` +
    `${k.errors} error${k.errors === 1 ? '' : 's'}, ${k.skipped} skipped in ${(r.ms / 1000).toFixed(2)} s` +
    (slowest ? `; slowest APDU ${head} (${ms(slowest.a.ms)}, ${slowest.id})` : '')
  );
}

/** One line per case (with failures and their diffs indented), then the summary line. */
export function formatConsole(r: RunResult, opts: { verbose?: boolean } = {}): string[] {
  return [...r.cases.flatMap((c) => formatCase(c, opts)), formatSummary(r)];
}

// --- JUnit XML -------------------------------------------------------------------------------------------------------

/** Characters XML 1.0 allows (§2.2 Char): tab, LF, CR, U+0020–U+D7FF, U+E000–U+FFFD, U+10000–U+10FFFF. */
function xmlChar(c: number): boolean {
  return c === 0x9 || c === 0xa || c === 0xd || (c >= 0x20 && c <= 0xd7ff) || (c >= 0xe000 && c <= 0xfffd) || (c >= 0x10000 && c <= 0x10ffff);
}

/**
 * Escapes text for XML 1.0 content or (attr) an attribute value. Characters XML 1.0 forbids even as references
 * (control characters, lone surrogates, U+FFFE/FFFF) are written visibly as \xHH / \uHHHH.
 */
export function xmlEscape(s: string, attr = false): string {
  let out = '';
  for (const ch of s) {
    const c = ch.codePointAt(0) ?? 0;
    if (ch === '&') out += '&amp;';
    else if (ch === '<') out += '&lt;';
    else if (ch === '>') out += '&gt;';
    else if (ch === '"') out += '&quot;';
    else if (ch === "'" && attr) out += '&apos;';
    else if (attr && (c === 0x9 || c === 0xa || c === 0xd)) out += `&#${c};`; // kept through attribute normalisation
    else if (!xmlChar(c)) out += c < 0x100 ? `\\x${h2(c)}` : `\\u${c.toString(16).toUpperCase().padStart(4, '0')}`;
    else out += ch;
  }
  return out;
}

const secs = (n: number) => (n / 1000).toFixed(3);
/** xs:dateTime without fraction or zone, as Ant writes it (its schema's pattern has neither). */
const stamp = (iso: string) => iso.replace(/\.\d+/, '').replace(/Z$/, '');

function caseXml(c: CaseResult): string[] {
  const a = (s: string) => xmlEscape(s, true);
  const t = (s: string) => xmlEscape(s);
  const out = [`    <testcase name="${a(`${c.id}: ${c.title}`)}" classname="${a(c.suite)}" time="${secs(c.ms)}">`];
  const where = c.at ? `${c.at.file}:${c.at.line}:${c.at.col}: ` : '';
  const body = [where + (c.message ?? ''), ...(c.diff ? [c.diff] : []), ...(c.refs.length ? [`ref: ${c.refs.join('; ')}`] : [])].join('\n');
  if (c.outcome === 'fail')
    out.push(`      <failure message="${a(c.message ?? 'failed')}" type="${c.mandatory ? 'mismatch' : 'optional-mismatch'}">${t(body)}</failure>`);
  else if (c.outcome === 'error') out.push(`      <error message="${a(c.message ?? 'error')}" type="error">${t(body)}</error>`);
  else if (c.outcome === 'skip') out.push(`      <skipped message="${a(c.message ?? 'skipped')}"/>`);
  const log = caseLog(c);
  if (log.length) out.push(`      <system-out>${t(log.join('\n'))}</system-out>`);
  out.push('    </testcase>');
  return out;
}

/** The Ant/Jenkins JUnit format: one testsuite per script file (named by its suite), one testcase per case. */
export function junitXml(r: RunResult): string {
  const host = hostname();
  const groups: CaseResult[][] = [];
  for (const c of r.cases) {
    const g = groups[groups.length - 1];
    if (g && g[0].file === c.file) g.push(c);
    else groups.push([c]);
  }
  const all = counts(r.cases);
  const a = (s: string) => xmlEscape(s, true);
  const out = [
    '<?xml version="1.0" encoding="UTF-8"?>',
    `<testsuites name="${a(`jpki-se conformance (${r.target})`)}" tests="${all.total}" failures="${all.failed}" errors="${all.errors}" skipped="${all.skipped}" time="${secs(r.ms)}" timestamp="${stamp(r.startedAt)}">`,
  ];
  groups.forEach((g, id) => {
    const k = counts(g);
    const time = g.reduce((s, c) => s + c.ms, 0);
    const ts = extras(g[0]).startedAt ?? r.startedAt;
    out.push(
      `  <testsuite name="${a(g[0].suite)}" id="${id}" tests="${k.total}" failures="${k.failed}" errors="${k.errors}" skipped="${k.skipped}" time="${secs(time)}" timestamp="${stamp(ts)}" hostname="${a(host)}">`,
      '    <properties>',
      `      <property name="file" value="${a(g[0].file)}"/>`,
      `      <property name="target" value="${a(r.target)}"/>`,
      '    </properties>',
      ...g.flatMap(caseXml),
      '  </testsuite>',
    );
  });
  out.push('</testsuites>');
  return out.join('\n') + '\n';
}

// --- TAP 14 ------------------------------------------------------------------------------------------------------------

/** A test point description: `#` starts a directive and `\` escapes, so both are escaped (TAP 14 "Escaping"). */
function tapText(s: string): string {
  return s.replace(/\\/g, '\\\\').replace(/#/g, '\\#').replace(/[\r\n]+/g, ' ');
}

/** A YAML block scalar (`|`) for multi-line text, or a JSON string (valid YAML) for one line. */
function yamlValue(s: string, indent: string): string {
  if (!s.includes('\n')) return JSON.stringify(s);
  const lines = s.split('\n');
  // An indentation indicator when the first line starts with a space (YAML would take it for the block's indentation).
  return `|${lines[0].startsWith(' ') ? '2' : ''}\n${lines.map((l) => (l ? indent + '  ' + l : '')).join('\n')}`;
}

/**
 * TAP version 14: the plan, one test point per case ("id - title"), `# SKIP reason` for skipped cases, and a YAML
 * diagnostic block (indented by 2) for failures and errors. A failed or errored optional case is `not ok … # TODO optional`, so
 * a TAP consumer reports it without failing the run, as the exit code does.
 */
export function tap(r: RunResult): string {
  const out = ['TAP version 14', `1..${r.cases.length}`];
  r.cases.forEach((c, i) => {
    const desc = `${tapText(c.id)} - ${tapText(c.title)}`;
    const n = i + 1;
    if (c.outcome === 'pass') out.push(`ok ${n} - ${desc}`);
    else if (c.outcome === 'skip') out.push(`ok ${n} - ${desc} # SKIP ${tapText(c.message ?? '')}`);
    else {
      const todo = c.mandatory ? '' : ' # TODO optional';
      out.push(`not ok ${n} - ${desc}${todo}`, '  ---');
      const y = (k: string, v: string) => out.push(`  ${k}: ${yamlValue(v, '  ')}`);
      y('outcome', c.outcome);
      y('message', c.message ?? c.outcome);
      if (c.at) y('at', `${c.at.file}:${c.at.line}:${c.at.col}`);
      if (c.refs.length) y('ref', c.refs.join('; '));
      if (c.diff) y('diff', c.diff);
      out.push(`  duration_ms: ${Math.round(c.ms * 1000) / 1000}`, '  ...');
    }
  });
  return out.join('\n') + '\n';
}
