// jcasm source text → a syntax tree (docs/jcasm.md). Only the shape of the text is checked here; names, tokens and
// operands are resolved by asm.ts.

export class AsmError extends Error {
  constructor(file: string, line: number, what: string) {
    super(`${file}:${line}: ${what}`);
    this.name = 'AsmError';
  }
}

export type Fail = (line: number, what: string) => never;

/** An initial value: a number (or a constant's name), or an array initialiser. */
export type AsmInit = { kind: 'value'; text: string } | { kind: 'array'; items: string[] } | { kind: 'string'; bytes: number[] };

export interface AsmField {
  line: number;
  name: string;
  descriptor: string;
  flags: Set<string>;
  init?: AsmInit;
}

export interface AsmInsn {
  line: number;
  mnemonic: string;
  args: string[];
}

export interface AsmCatch {
  line: number;
  /** The caught class, or null for a catch-all handler (written `any` in the source; CAP catch_type_index 0). */
  catchClass: string | null;
  from: string;
  to: string;
  handler: string;
}

export type AsmItem = { label: string; line: number } | AsmInsn;

export interface AsmMethod {
  line: number;
  name: string;
  descriptor: string;
  flags: Set<string>;
  stack?: number;
  locals?: number;
  body: AsmItem[];
  catches: AsmCatch[];
}

export interface AsmClass {
  line: number;
  name: string;
  isInterface: boolean;
  flags: Set<string>;
  superName?: string;
  interfaces: string[];
  fields: AsmField[];
  methods: AsmMethod[];
}

export interface AsmModule {
  line: number;
  /** Slash form, "com/example/echo". */
  name: string;
  aid: string;
  major: number;
  minor: number;
  format: [number, number];
  int: boolean;
  library: boolean;
  imports: { name: string; line: number }[];
  consts: Map<string, { text: string; line: number }>;
  applets: { aid: string; cls: string; line: number }[];
  classes: AsmClass[];
}

const CLASS_FLAGS = new Set(['public', 'final', 'abstract']);
const MEMBER_FLAGS = new Set(['public', 'protected', 'private', 'static', 'final', 'abstract']);

/** Splits one line into tokens; ';' and '//' start a comment at line start or after white space (';' ends descriptors). */
export function tokenize(text: string, fail: (what: string) => never): string[] {
  const out: string[] = [];
  const re = /\s+|"((?:[^"\\]|\\.)*)"|'(\\.|[^'\\])'|[{}=,]|[^\s{}=,"]+/gy;
  let prevSpace = true;
  while (re.lastIndex < text.length) {
    const start = re.lastIndex;
    if (prevSpace && (text.startsWith(';', start) || text.startsWith('//', start))) break;
    const m = re.exec(text);
    if (!m) fail(`cannot read "${text.slice(start)}"`);
    const tok = m[0];
    if (/^\s+$/.test(tok)) {
      prevSpace = true;
      continue;
    }
    prevSpace = tok === ',' || tok === '{' || tok === '=';
    out.push(tok);
  }
  return out;
}

function unquote(tok: string): number[] {
  const body = tok.slice(1, -1).replace(/\\(.)/g, '$1');
  return [...Buffer.from(body, 'utf8')];
}

function parseInit(toks: string[], fail: (what: string) => never): AsmInit {
  if (toks.length === 0) fail('"=" needs a value');
  if (toks[0] === '{') {
    if (toks[toks.length - 1] !== '}') fail('array initialiser must end with "}"');
    const items = toks.slice(1, -1).filter((t) => t !== ',');
    return { kind: 'array', items };
  }
  if (toks[0].startsWith('"')) {
    if (toks.length !== 1) fail('a string initialiser stands alone');
    return { kind: 'string', bytes: unquote(toks[0]) };
  }
  if (toks.length !== 1) fail(`unexpected "${toks.slice(1).join(' ')}" after the value`);
  return { kind: 'value', text: toks[0] };
}

/** Splits "name(desc)ret" into its name and method descriptor. */
export function splitMethodSig(sig: string, fail: (what: string) => never): { name: string; descriptor: string } {
  const i = sig.indexOf('(');
  if (i <= 0 || !/^\([^)]*\)(V|[ZBSI]|L[^;]+;|\[[ZBSI]|\[L[^;]+;)$/.test(sig.slice(i))) {
    fail(`"${sig}" is not name(arguments)return, e.g. process(Ljavacard/framework/APDU;)V`);
  }
  return { name: sig.slice(0, i), descriptor: sig.slice(i) };
}

export function parseSource(source: string, file: string): AsmModule {
  const lines = source.split(/\r?\n/);
  let mod: AsmModule | undefined;
  let cls: AsmClass | undefined;
  let method: AsmMethod | undefined;
  let lastAbstract = false;
  const failAt: Fail = (line, what) => {
    throw new AsmError(file, line, what);
  };
  const pending: { consts: AsmModule['consts']; imports: AsmModule['imports'] } = { consts: new Map(), imports: [] };

  for (let n = 1; n <= lines.length; n++) {
    const fail: (what: string) => never = (what) => failAt(n, what);
    let toks = tokenize(lines[n - 1], fail);
    if (toks.length === 0) continue;
    // Labels: "name:" before an instruction or alone.
    while (toks.length && /^[A-Za-z_$][\w$]*:$/.test(toks[0])) {
      if (!method) fail(`label ${toks[0]} outside a method`);
      method.body.push({ label: toks[0].slice(0, -1), line: n });
      toks = toks.slice(1);
    }
    if (toks.length === 0) continue;
    const head = toks[0];
    const args = toks.slice(1);
    if (!head.startsWith('.')) {
      if (!method) fail(`instruction "${head}" outside a method`);
      method.body.push({ line: n, mnemonic: head, args: args.filter((a) => a !== ',') });
      continue;
    }
    switch (head) {
      case '.package': {
        if (mod) fail('a second .package; one package per source');
        if (args.length !== 3) fail('.package <name> <AID hex> <major.minor>');
        const ver = /^(\d+)\.(\d+)$/.exec(args[2]);
        if (!ver) fail(`package version "${args[2]}" is not major.minor`);
        if (!/^([0-9A-Fa-f]{2}){5,16}$/.test(args[1])) fail(`package AID "${args[1]}" is not 5..16 hex bytes`);
        mod = {
          line: n, name: args[0].replace(/\./g, '/'), aid: args[1].toUpperCase(), major: Number(ver[1]), minor: Number(ver[2]),
          format: [2, 1], int: false, library: false, imports: pending.imports, consts: pending.consts, applets: [], classes: [],
        };
        break;
      }
      case '.cap': {
        const v = /^2\.([12])$/.exec(args[0] ?? '');
        if (!v || args.length !== 1) fail('.cap 2.1 or .cap 2.2');
        need(mod, fail).format = [2, Number(v[1])];
        break;
      }
      case '.int':
        need(mod, fail).int = true;
        break;
      case '.library':
        need(mod, fail).library = true;
        break;
      case '.import':
        if (args.length !== 1) fail('.import <package name>');
        (mod ?? pending).imports.push({ name: args[0].replace(/\./g, '/'), line: n });
        break;
      case '.const': {
        const rest = args.filter((a) => a !== '=');
        if (rest.length !== 2 || !/^[A-Za-z_$][\w$]*$/.test(rest[0])) fail('.const NAME value');
        const consts = (mod ?? pending).consts;
        if (consts.has(rest[0])) fail(`constant ${rest[0]} is defined twice`);
        consts.set(rest[0], { text: rest[1], line: n });
        break;
      }
      case '.applet': {
        if (args.length !== 2) fail('.applet <AID hex> <class>');
        if (!/^([0-9A-Fa-f]{2}){5,16}$/.test(args[0])) fail(`applet AID "${args[0]}" is not 5..16 hex bytes`);
        need(mod, fail).applets.push({ aid: args[0].toUpperCase(), cls: args[1], line: n });
        break;
      }
      case '.class':
      case '.interface': {
        const m = need(mod, fail);
        if (cls) fail(`.${head.slice(1)} inside ${cls.name}; close it with .end first`);
        const isInterface = head === '.interface';
        const flags = new Set<string>();
        let i = 0;
        while (i < args.length && CLASS_FLAGS.has(args[i])) flags.add(args[i++]);
        const name = args[i++];
        if (!name || !/^[A-Za-z_$][\w$]*$/.test(name)) fail(`${head} needs a simple class name, got "${name ?? ''}"`);
        const c: AsmClass = { line: n, name, isInterface, flags, interfaces: [], fields: [], methods: [] };
        while (i < args.length) {
          const kw = args[i++];
          const list: string[] = [];
          while (i < args.length && args[i] !== 'extends' && args[i] !== 'implements') {
            if (args[i] !== ',') list.push(args[i]);
            i++;
          }
          if (list.length === 0) fail(`"${kw}" needs a class name`);
          if (kw === 'extends' && !isInterface) {
            if (list.length !== 1) fail('a class extends one class');
            c.superName = list[0];
          } else if ((kw === 'implements' && !isInterface) || (kw === 'extends' && isInterface)) c.interfaces.push(...list);
          else fail(`unexpected "${kw}"`);
        }
        if (isInterface) c.flags.add('abstract');
        m.classes.push(c);
        cls = c;
        break;
      }
      case '.field': {
        if (!cls || method) fail('.field belongs inside a .class, outside methods');
        const eq = args.indexOf('=');
        const decl = eq >= 0 ? args.slice(0, eq) : args;
        const flags = new Set<string>();
        let i = 0;
        while (i < decl.length && MEMBER_FLAGS.has(decl[i])) flags.add(decl[i++]);
        if (decl.length - i !== 2) fail('.field [modifiers] <name> <type descriptor> [= value]');
        const [name, descriptor] = decl.slice(i);
        if (!/^(?:[ZBSI]|L[^;]+;|\[[ZBSI]|\[L[^;]+;)$/.test(descriptor)) fail(`"${descriptor}" is not a Java Card field type (Z B S I Lpkg/Cls; or an array of those)`);
        const f: AsmField = { line: n, name, descriptor, flags };
        if (eq >= 0) f.init = parseInit(args.slice(eq + 1), fail);
        cls.fields.push(f);
        break;
      }
      case '.method': {
        if (!cls) fail('.method outside a class');
        if (method) fail(`.method inside ${method.name}; close it with .end method`);
        const flags = new Set<string>();
        let i = 0;
        while (i < args.length && MEMBER_FLAGS.has(args[i])) flags.add(args[i++]);
        if (args.length - i !== 1) fail('.method [modifiers] name(arguments)return');
        const sig = splitMethodSig(args[i], fail);
        if (cls.isInterface) flags.add('abstract');
        const m: AsmMethod = { line: n, ...sig, flags, body: [], catches: [] };
        cls.methods.push(m);
        // An abstract method is a one-line declaration; anything else opens a body closed by ".end method".
        method = flags.has('abstract') ? undefined : m;
        lastAbstract = flags.has('abstract');
        break;
      }
      case '.stack':
      case '.locals': {
        if (!method) fail(`${head} outside a method`);
        const v = Number(args[0]);
        if (args.length !== 1 || !Number.isInteger(v) || v < 0 || v > 255) fail(`${head} needs a count 0..255`);
        if (head === '.stack') method.stack = v;
        else method.locals = v;
        break;
      }
      case '.catch': {
        if (!method) fail('.catch outside a method');
        // .catch <Class|any> from <L1> to <L2> using <L3>   (the keywords are optional)
        const rest = args.filter((a) => a !== 'from' && a !== 'to' && a !== 'using');
        if (rest.length !== 4) fail('.catch <Class|any> from <start label> to <end label> using <handler label>');
        method.catches.push({ line: n, catchClass: rest[0] === 'any' ? null : rest[0], from: rest[1], to: rest[2], handler: rest[3] });
        break;
      }
      case '.end': {
        const what = args[0];
        if (what !== undefined && !['method', 'class', 'interface'].includes(what)) fail(`.end ${what}: expected .end method, .end class or .end interface`);
        if (what === 'method' && !method && lastAbstract) lastAbstract = false; // tolerated after an abstract declaration
        else if (method && what !== 'class' && what !== 'interface') method = undefined;
        else if (method) fail(`.end ${what} inside method ${method.name}; close the method first`);
        else if (cls && what !== 'method') cls = undefined;
        else fail(`.end ${what ?? ''} without an open ${what ?? 'class or method'}`);
        break;
      }
      default:
        fail(`unknown directive ${head}`);
    }
  }
  if (!mod) throw new AsmError(file, 1, 'no .package directive');
  if (method) throw new AsmError(file, method.line, `method ${method.name} is not closed with .end method`);
  if (cls) throw new AsmError(file, cls.line, `class ${cls.name} is not closed with .end class`);
  return mod;
}

function need(mod: AsmModule | undefined, fail: (what: string) => never): AsmModule {
  if (!mod) fail('.package must come first');
  return mod;
}
