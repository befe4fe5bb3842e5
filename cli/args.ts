// Command-line parsing for jpki-se: node:util parseArgs with one-line usage errors, and value parsers that name what is wrong.
import { parseArgs } from 'node:util';
import type { ParseArgsConfig } from 'node:util';
import { hex } from '../emulator/bytes.ts';

/** The command line is wrong (exit 2); the message is one line. */
export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}

/** A runtime failure already worded for the user, compiler style (`file:line: what`): printed as is, exit 1. */
export class PlainError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'PlainError';
  }
}

export type Options = NonNullable<ParseArgsConfig['options']>;
export type Values = Record<string, string | boolean | (string | boolean)[] | undefined>;

export const HELP_OPTION: Options = { help: { type: 'boolean', short: 'h' } };

/** Parses argv against options; parseArgs' own errors become UsageErrors naming the option. */
export function parse(argv: string[], options: Options, positionals: { min: number; max: number; what: string }): { values: Values; positionals: string[] } {
  let r;
  try {
    r = parseArgs({ args: argv, options: { ...options, ...HELP_OPTION }, allowPositionals: true, strict: true });
  } catch (e) {
    throw new UsageError(describeParseError(e));
  }
  const values = r.values as Values;
  const pos = r.positionals;
  if (pos.length < positionals.min) throw new UsageError(`missing ${positionals.what}`);
  if (pos.length > positionals.max)
    throw new UsageError(positionals.max === 0 ? `unexpected argument "${pos[0]}"` : `unexpected argument "${pos[positionals.max]}" after ${positionals.what}`);
  return { values, positionals: pos };
}

function describeParseError(e: unknown): string {
  const err = e as { code?: string; message?: string };
  const msg = err.message ?? String(e);
  const opt = /'(-[^' ]+)/.exec(msg)?.[1];
  switch (err.code) {
    case 'ERR_PARSE_ARGS_UNKNOWN_OPTION':
      return `unknown option ${opt ?? msg}`;
    case 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE':
      if (/argument missing/.test(msg)) return `option ${opt} needs a value`;
      if (/does not take an argument/.test(msg)) return `option ${opt} takes no value`;
      return msg.split('\n')[0];
    default:
      return msg.split('\n')[0];
  }
}

export function str(v: Values, name: string): string | undefined {
  const x = v[name];
  return typeof x === 'string' ? x : undefined;
}

export function flag(v: Values, name: string): boolean {
  return v[name] === true;
}

/** Hex with optional spaces, ':' or '-' between digits; errors name the option and the first bad character. */
export function parseHex(what: string, text: string): Uint8Array {
  const clean = text.replace(/[\s:-]/g, '');
  const bad = /[^0-9a-fA-F]/.exec(clean);
  if (bad) {
    const at = text.indexOf(bad[0]);
    throw new UsageError(`${what} "${text}": "${bad[0]}" at position ${at + 1} is not a hex digit`);
  }
  if (clean.length % 2) throw new UsageError(`${what} "${text}": odd number of hex digits (${clean.length})`);
  return Uint8Array.from(clean.match(/../g) ?? [], (h) => parseInt(h, 16));
}

export function parseAid(what: string, text: string): string {
  const b = parseHex(what, text);
  if (b.length < 5 || b.length > 16) throw new UsageError(`${what} "${text}" has ${b.length} bytes; an AID has 5 to 16`);
  return hex(b);
}

export function parseAesKey(what: string, text: string): Uint8Array {
  const b = parseHex(what, text);
  if (![16, 24, 32].includes(b.length)) throw new UsageError(`${what} has ${b.length} bytes; an AES key has 16, 24 or 32`);
  return b;
}

/** One byte in hex ("30", "0x30"), as GP tools write key versions and states. */
export function parseByte(what: string, text: string, min = 0, max = 0xff): number {
  const m = /^(?:0x)?([0-9a-f]{1,2})$/i.exec(text.trim());
  if (!m) throw new UsageError(`${what} "${text}" is not a hex byte (e.g. 30)`);
  const n = parseInt(m[1], 16);
  if (n < min || n > max) throw new UsageError(`${what} ${text} is outside ${h2(min)}–${h2(max)}`);
  return n;
}

export function parseInteger(what: string, text: string, min: number, max: number): number {
  if (!/^\d+$/.test(text.trim())) throw new UsageError(`${what} "${text}" is not a whole number`);
  const n = Number(text);
  if (n < min || n > max) throw new UsageError(`${what} ${n} is outside ${min}–${max}`);
  return n;
}

/** "host:port", ":port" or "port". */
export function parseHostPort(what: string, text: string, defaultHost: string): { host: string; port: number } {
  const m = /^(?:(.*):)?(\d+)$/.exec(text.trim());
  if (!m) throw new UsageError(`${what} "${text}" is not HOST:PORT`);
  const port = parseInteger(`${what} port`, m[2], 0, 65535);
  return { host: m[1] || defaultHost, port };
}

function h2(n: number): string {
  return n.toString(16).toUpperCase().padStart(2, '0');
}
