// The conformance suite's shared shapes: a parsed script (what conformance/script/ produces) and a run's results (what
// conformance/runner.ts produces and conformance/report.ts prints). The format itself: conformance/README.md.

/** Where a statement or token stands in a script: 1-based line and column. */
export interface SourcePos {
  file: string;
  line: number;
  col: number;
}

/** A malformed script (or a runtime problem tied to a place in one): "file:line:col: message". */
export class ScriptError extends Error {
  readonly pos: SourcePos;
  readonly reason: string;
  constructor(pos: SourcePos, reason: string) {
    super(`${pos.file}:${pos.line}:${pos.col}: ${reason}`);
    this.name = 'ScriptError';
    this.pos = pos;
    this.reason = reason;
  }
}

// --- expressions (commands, var/default/assert, directive arguments) ---------------------------------------------

export type ExprPart =
  | { kind: 'bytes'; bytes: Uint8Array }
  | { kind: 'var'; name: string; pos: SourcePos }
  /** sha1, sha256, len, der, slice: args are expressions; slice's offsets are `num` parts. */
  | { kind: 'call'; fn: 'sha1' | 'sha256' | 'len' | 'der' | 'slice'; args: Expr[]; pos: SourcePos }
  | { kind: 'num'; value: number; pos: SourcePos }
  /** `[ … ]` in a command: the content preceded by its length as Lc (short, or 00 hh ll when over 255). */
  | { kind: 'lc'; content: Expr; pos: SourcePos };

/** A concatenation. */
export type Expr = ExprPart[];

// --- response patterns -------------------------------------------------------------------------------------------

export type PatternToken =
  /** Literal bytes; a 0 bit in mask is "any" (X nibbles give 0x0F / 0xF0 masks). */
  | { kind: 'bytes'; value: Uint8Array; mask: Uint8Array }
  /** `*`: zero or more bytes. */
  | { kind: 'star' }
  /** `XX{N}`, `(…){N,M}`: the items repeated min..max times (an unrepeated group has min = max = 1). */
  | { kind: 'group'; items: PatternToken[]; min: number; max: number }
  /** `(NAME: …)` / `(+NAME: …)`. */
  | { kind: 'capture'; name: string; append: boolean; items: PatternToken[] }
  | { kind: 'var'; name: string; pos: SourcePos }
  /** `len=N`, `len>=N`, `len<=N`: a check on the whole data, consuming nothing. */
  | { kind: 'len'; op: '=' | '>=' | '<='; n: number };

/** One alternative of a status word: sw & mask must equal value & mask. */
export interface SwAlternative {
  value: number;
  mask: number;
}

export interface ResponsePattern {
  data: PatternToken[];
  /** Empty for an ATR pattern (no status word). */
  sw: SwAlternative[];
  /** The pattern as written, for reports. */
  text: string;
  pos: SourcePos;
}

// --- steps, cases, files -----------------------------------------------------------------------------------------

export type Step =
  /** `>` (apdu set) or `replay` (apdu null), with its `<` alternatives (none written: 9000 and no data). */
  | { op: 'send'; pos: SourcePos; apdu: Expr | null; expect: ResponsePattern[]; raw: boolean }
  | { op: 'var'; pos: SourcePos; name: string; expr: Expr; onlyIfUnset: boolean }
  | { op: 'assert'; pos: SourcePos; left: Expr; right: Expr; equal: boolean }
  | { op: 'power'; pos: SourcePos; action: 'up' | 'down' | 'reset' }
  | { op: 'atr'; pos: SourcePos; pattern: ResponsePattern }
  | { op: 'channel'; pos: SourcePos; channel: number }
  /** kvn: a literal; kvnExpr (then kvn is 0): an expression such as ${APSD_KVN}, one byte at run time. */
  | { op: 'scp03-open'; pos: SourcePos; enc: Expr; mac: Expr; dek: Expr; kvn: number; kvnExpr?: Expr; level: number; i?: number }
  | { op: 'scp03-close'; pos: SourcePos }
  | { op: 'scp03-corrupt-mac'; pos: SourcePos }
  /** path: the file relative to the script's folder, as written (variables expanded at run time). */
  | { op: 'load'; pos: SourcePos; path: string; block: number }
  | { op: 'verify-signature'; pos: SourcePos; cert: Expr; data: Expr; sig: Expr }
  | { op: 'echo'; pos: SourcePos; text: string };

export interface Case {
  id: string;
  title: string;
  /** The script file (the top-level one, not an include). */
  file: string;
  pos: SourcePos;
  refs: string[];
  /** The file's tags and the case's own. */
  tags: string[];
  mandatory: boolean;
  /** Profiles (--profile) that must all be given for the case to run. */
  requires: string[];
  steps: Step[];
}

export interface ScriptFile {
  path: string;
  suite: string;
  /** `option no-get-response` turns off the runner's 61XX / 6CXX handling for this file. */
  getResponse: boolean;
  /** Setup steps (includes expanded) run at the start of every case, after its reset. */
  prologue: Step[];
  cases: Case[];
}

// --- results -----------------------------------------------------------------------------------------------------

/** One exchange on the wire (after wrapping), and what the pattern saw (after unwrapping and GET RESPONSE). */
export interface ApduRecord {
  pos: SourcePos;
  channel: number;
  command: Uint8Array;
  /** The response as matched: data ‖ SW. */
  response: Uint8Array;
  /** Wall time from the first command byte out to the last response byte in (GET RESPONSEs included). */
  ms: number;
}

export type Outcome = 'pass' | 'fail' | 'error' | 'skip';

export interface CaseResult {
  id: string;
  title: string;
  file: string;
  suite: string;
  refs: string[];
  tags: string[];
  mandatory: boolean;
  outcome: Outcome;
  /** fail / error / skip: what happened, one line ("6A82 expected, 6A86 received"; "requires phone"). */
  message?: string;
  /** fail: the multi-line readable diff (command, expected pattern, response, ^^ marker). */
  diff?: string;
  /** Where the failing step is. */
  at?: SourcePos;
  apdus: ApduRecord[];
  ms: number;
}

export interface RunResult {
  target: string;
  /** ISO 8601. */
  startedAt: string;
  ms: number;
  cases: CaseResult[];
}
