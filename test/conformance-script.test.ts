// The script side of the conformance suite: the .apdu parser, response patterns, expressions, apdutool scripts.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { fromHex, hex } from '../emulator/bytes.ts';
import { loadApdutool, parseApdutool } from '../conformance/script/apdutool.ts';
import { evalExpr, expandText, parseExpr, type Vars } from '../conformance/script/expr.ts';
import { loadScripts, parseScript } from '../conformance/script/parse.ts';
import { matchResponse, parsePattern } from '../conformance/script/pattern.ts';
import { ScriptError, type Expr, type ResponsePattern, type Step } from '../conformance/types.ts';

const POS = { file: 'p.apdu', line: 4, col: 3 };

function files(map: Record<string, string>): (path: string) => string {
  return (p) => {
    const body = map[p];
    if (body === undefined) throw new Error(`ENOENT: ${p}`);
    return body;
  };
}

/** The message of the ScriptError that f throws. */
function scriptError(f: () => unknown): string {
  try {
    f();
  } catch (e) {
    if (e instanceof ScriptError) return e.message;
    throw e;
  }
  throw new Error('no error thrown');
}

function ev(text: string, vars: Vars = new Map()): string {
  return hex(evalExpr(parseExpr(text, POS, true), vars));
}

function pat(text: string): ResponsePattern {
  return parsePattern(text, POS, true);
}

function match(text: string, data: string, sw: number | undefined, vars: Vars = new Map()) {
  return matchResponse(pat(text), fromHex(data), sw, vars);
}

function bytesOf(e: Expr): string {
  return hex(evalExpr(e, new Map()));
}

// --- a realistic script ----------------------------------------------------------------------------------------------

const MAIN = `suite  GP card manager: SELECT, GET DATA, SCP03
ref    GPCS 2.3.1 §11
tags   gp scp03
default ISD = A000000151000000
include common/keys.apdu   # keys and folders

# setup: runs at the start of every case
> 00 A4 04 00 [\${ISD}] 00
< 6F * 84 (AID: XX{8}) * 9000
< 6F XX * 6283

case GP-GETDATA-01  GET DATA CPLC answers the CPLC
ref  GPCS 2.3.1 §H.6
tags cplc
optional
> 80 CA 9F 7F 00
< 9F 7F 2A XX{42} 9000 | 6A88

case GP-SCP03-01 a session on channel 1
requires phone
channel 1
scp03 open key=\${KEY} kvn=30 level=33 i=70
> 80 F2 80 00 02 4F 00 00
< (+LIST: *) 61XX|9000
scp03 corrupt-mac
raw
> 80 F2 40 00 \\
     02 4F 00 00
< 6982
replay
< 6982
scp03 close
channel 0
load \${CAPDIR}/hello.cap block=128
var H = sha256("a#b" \${AID})
assert slice(\${H}, 0, 4) != 00000000
verify-signature cert=der(\${CERT}) data=slice(\${SIG_IN}, 0, 51) sig=\${SIG} scheme=pkcs1
echo AID is \${AID}
power down
power up
atr 3B XX *
reset

case GP-SCP03-02 explicit keys
mandatory
scp03 open enc=\${KEY} mac=\${KEY} dek=sha1("x")
`;

const KEYS = `# shared keys (no cases here)
default KEY = 404142434445464748494A4B4C4D4E4F
var CAPDIR = "caps"
`;

describe('parseScript: a realistic script', () => {
  const sf = parseScript(MAIN, 'gp/select.apdu', files({ 'gp/common/keys.apdu': KEYS }));

  it('reads the file metadata and the prologue, include expanded in place', () => {
    expect(sf.path).toBe('gp/select.apdu');
    expect(sf.suite).toBe('GP card manager: SELECT, GET DATA, SCP03');
    expect(sf.getResponse).toBe(true);
    expect(sf.prologue.map((s) => s.op)).toEqual(['var', 'var', 'var', 'send']);
    const [isd, key, capdir, select] = sf.prologue;
    expect(isd).toMatchObject({ op: 'var', name: 'ISD', onlyIfUnset: true, pos: { file: 'gp/select.apdu', line: 4, col: 1 } });
    expect(key).toMatchObject({ op: 'var', name: 'KEY', onlyIfUnset: true, pos: { file: 'gp/common/keys.apdu', line: 2 } });
    expect(capdir).toMatchObject({ op: 'var', name: 'CAPDIR', onlyIfUnset: false });
    if (capdir.op !== 'var') throw new Error('var expected');
    expect(bytesOf(capdir.expr)).toBe(hex(new TextEncoder().encode('caps')));
    if (select.op !== 'send') throw new Error('send expected');
    expect(select.expect).toHaveLength(2);
    expect(select.expect[0].text).toBe('6F * 84 (AID: XX{8}) * 9000');
    expect(select.expect[1].sw).toEqual([{ value: 0x6283, mask: 0xffff }]);
    const apdu = evalExpr(select.apdu!, new Map([['ISD', fromHex('A000000151000000')]]));
    expect(hex(apdu)).toBe('00A4040008A00000015100000000');
  });

  it('builds the cases with refs, tags, flags and steps', () => {
    expect(sf.cases.map((c) => c.id)).toEqual(['GP-GETDATA-01', 'GP-SCP03-01', 'GP-SCP03-02']);
    const [cplc, scp, explicit] = sf.cases;
    expect(cplc).toMatchObject({
      title: 'GET DATA CPLC answers the CPLC',
      file: 'gp/select.apdu',
      pos: { file: 'gp/select.apdu', line: 12, col: 1 },
      refs: ['GPCS 2.3.1 §H.6'],
      tags: ['gp', 'scp03', 'cplc'],
      mandatory: false,
      requires: [],
    });
    const send = cplc.steps[0];
    if (send.op !== 'send') throw new Error('send expected');
    expect(send.expect[0].sw.map((a) => a.value)).toEqual([0x9000, 0x6a88]);
    expect(scp).toMatchObject({ refs: ['GPCS 2.3.1 §11'], tags: ['gp', 'scp03'], mandatory: true, requires: ['phone'] });
    expect(scp.steps.map((s) => s.op)).toEqual([
      'channel', 'scp03-open', 'send', 'scp03-corrupt-mac', 'send', 'send', 'scp03-close', 'channel', 'load', 'var',
      'assert', 'verify-signature', 'echo', 'power', 'power', 'atr', 'power',
    ]);
    expect(explicit.mandatory).toBe(true);
  });

  it('reads each step kind', () => {
    const s = sf.cases[1].steps;
    const find = <O extends Step['op']>(op: O, n = 0): Extract<Step, { op: O }> =>
      s.filter((x): x is Extract<Step, { op: O }> => x.op === op)[n];
    expect(find('channel')).toMatchObject({ channel: 1, pos: { line: 21, col: 1 } });
    const open = find('scp03-open');
    expect(open).toMatchObject({ kvn: 0x30, level: 0x33, i: 0x70 });
    expect(open.enc).toEqual([{ kind: 'var', name: 'KEY', pos: { file: 'gp/select.apdu', line: 22, col: 16 } }]);
    expect(open.mac).toBe(open.enc);
    const list = find('send', 0);
    expect(list.raw).toBe(false);
    expect(list.expect[0].data[0]).toMatchObject({ kind: 'capture', name: 'LIST', append: true, items: [{ kind: 'star' }] });
    expect(list.expect[0].sw).toEqual([
      { value: 0x6100, mask: 0xff00 },
      { value: 0x9000, mask: 0xffff },
    ]);
    const raw = find('send', 1);
    expect(raw.raw).toBe(true);
    expect(bytesOf(raw.apdu!)).toBe('80F24000024F0000'); // continued line joined
    const replay = find('send', 2);
    expect(replay).toMatchObject({ apdu: null, raw: false, pos: { line: 30, col: 1 } });
    expect(replay.expect.map((e) => e.text)).toEqual(['6982']);
    expect(find('load')).toEqual({ op: 'load', pos: { file: 'gp/select.apdu', line: 34, col: 1 }, path: '${CAPDIR}/hello.cap', block: 128 });
    const h = find('var');
    expect(h.name).toBe('H');
    expect(h.expr[0]).toMatchObject({ kind: 'call', fn: 'sha256' });
    const a = find('assert');
    expect(a.equal).toBe(false);
    expect(a.left[0]).toMatchObject({ kind: 'call', fn: 'slice', args: [[{ kind: 'var', name: 'H' }], [{ kind: 'num', value: 0 }], [{ kind: 'num', value: 4 }]] });
    const v = find('verify-signature');
    expect(v.cert[0]).toMatchObject({ kind: 'call', fn: 'der' });
    expect(v.sig).toEqual([{ kind: 'var', name: 'SIG', pos: { file: 'gp/select.apdu', line: 37, col: 69 } }]);
    expect(find('echo').text).toBe('AID is ${AID}');
    expect(s.filter((x) => x.op === 'power').map((x) => (x.op === 'power' ? x.action : ''))).toEqual(['down', 'up', 'reset']);
    expect(find('atr').pattern).toMatchObject({ sw: [], text: '3B XX *' });
    const ex = sf.cases[2].steps[0];
    if (ex.op !== 'scp03-open') throw new Error('scp03-open expected');
    expect(ex).toMatchObject({ kvn: 0, level: 0x01 });
    expect(ex.kvnExpr).toBeUndefined();
    const byVar = parseScript('ref r\ncase A t\nscp03 open key=00 kvn=${KVN}', 't.apdu').cases[0].steps[0];
    if (byVar.op !== 'scp03-open') throw new Error('scp03-open expected');
    expect(byVar.kvnExpr).toEqual([{ kind: 'var', name: 'KVN', pos: { file: 't.apdu', line: 3, col: 23 } }]);
    expect(ex.i).toBeUndefined();
    expect(bytesOf(ex.dek)).toBe('11F6AD8EC52A2984ABAAFD7C3B516503785C2072');
  });

  it('keeps # inside strings, defaults the suite to the file name, reads option no-get-response', () => {
    const f = parseScript('ref r\noption no-get-response\ncase A t\necho "#1" # not this\nvar X = "a#b"', 'dir/my-suite.apdu');
    expect(f.suite).toBe('my-suite');
    expect(f.getResponse).toBe(false);
    const [echo, v] = f.cases[0].steps;
    expect(echo).toMatchObject({ op: 'echo', text: '"#1"' });
    if (v.op !== 'var') throw new Error('var expected');
    expect(bytesOf(v.expr)).toBe('612362');
  });
});

// --- malformed scripts -----------------------------------------------------------------------------------------------

describe('parseScript: errors at file:line:col', () => {
  const err = (text: string, read?: (p: string) => string): string => scriptError(() => parseScript(text, 't.apdu', read));

  it.each([
    ['odd hex', 'ref r\ncase A t\n> 00 A4 0 00', 't.apdu:3:9: odd number of hex digits in 0: a byte is two hex digits'],
    ['< without >', 'ref r\ncase A t\n< 9000', 't.apdu:3:1: < without a > (or replay) before it'],
    ['< after another statement', 'ref r\ncase A t\n> 00 B0 00 00 00\necho x\n< 9000', 't.apdu:5:1: < without a > (or replay) before it'],
    ['bad SW token', 'ref r\ncase A t\n> 00 B0 00 00 00\n< 6F 10 900', 't.apdu:4:9: expected a status word like 9000 or 6AXX at the end of the pattern (900 is not 4 hex digits or X)'],
    ['no SW at all', 'ref r\ncase A t\n> 00 B0 00 00 00\n<  6F *', 't.apdu:4:8: expected a status word like 9000 or 6AXX at the end of the pattern'],
    ['unclosed parenthesis', 'ref r\ncase A t\n> 00 B0 00 00 00\n< 6F (XX 9000', 't.apdu:4:6: unbalanced parenthesis: this ( is not closed'],
    ['stray parenthesis', 'ref r\ncase A t\n> 00 B0 00 00 00\n< 6F XX) 9000', 't.apdu:4:8: unbalanced parenthesis: no ( for this )'],
    ['duplicate id', 'ref r\ncase A t\ncase  A again', 't.apdu:3:7: duplicate case id A (also at t.apdu:2:1)'],
    ['missing ref', 'tags x\ncase A t\n> 00 B0 00 00 00\ncase B u\nref s', 't.apdu:2:1: case A has no ref: add a ref line to the case or to the file\'s prologue'],
    ['bad level', 'ref r\ncase A t\nscp03 open key=00 level=02', 't.apdu:3:25: level=02 is not an SCP03 security level: allowed 00 01 03 11 13 33 (GPC Amd D Table 7-3)'],
    ['channel 20', 'ref r\ncase A t\nchannel 20', 't.apdu:3:9: channel 20 is out of range: logical channels are 0–19 (ISO 7816-4 §5.4.1)'],
    ['raw at the end', 'ref r\ncase A t\nraw\necho no send', 't.apdu:3:1: raw is not followed by a > command'],
    ['raw before the next case', 'ref r\nraw\ncase A t\n> 00 B0 00 00 00', 't.apdu:2:1: raw is not followed by a > command'],
    ['unterminated string', 'ref r\ncase A t\n> 00 A4 04 00 ["abc] 00', 't.apdu:3:16: unterminated string: no closing "'],
    ['[ outside a command', 'ref r\ncase A t\nvar X = 01 [02]', 't.apdu:3:12: [ … ] (Lc) is only allowed in a > command'],
    ['unknown function', 'ref r\ncase A t\nvar X = md5(01)', 't.apdu:3:9: unknown function md5 (known: sha1, sha256, len, der, slice)'],
    ['scp03 keys missing', 'ref r\ncase A t\nscp03 open enc=00 mac=00', 't.apdu:3:1: scp03 open needs key=EXPR or all of enc=EXPR mac=EXPR dek=EXPR'],
    ['scp03 unknown argument', 'ref r\ncase A t\nscp03 open key=00 kvm=30', 't.apdu:3:19: unknown argument kvm= for scp03 open (known: key= enc= mac= dek= kvn= level= i=)'],
    ['bad tag', 'ref r\ntags gp Card', 't.apdu:2:9: tags Card: a tag is lowercase letters, digits and \'-\''],
    ['bad case id', 'ref r\ncase A/B t', 't.apdu:2:6: case id A/B: use letters, digits, \'.\', \'_\' and \'-\''],
    ['unknown option', 'option fast\nref r', 't.apdu:1:8: unknown option fast (known: no-get-response)'],
    ['suite inside a case', 'ref r\ncase A t\nsuite X', 't.apdu:3:1: suite belongs in the prologue, before the first case'],
    ['power sideways', 'ref r\ncase A t\npower cycle', 't.apdu:3:7: expected power up or power down'],
    ['{N} after *', 'ref r\ncase A t\n> 00 B0 00 00 00\n< * {2} 9000', 't.apdu:4:5: {2…} must follow a byte, a "string", a ${NAME} or a ( group )'],
    ['odd hex on a continued line', 'ref r\ncase A t\n> 00 A4 \\\n   04 0 00', 't.apdu:4:7: odd number of hex digits in 0: a byte is two hex digits'],
    ['assert without operator', 'ref r\ncase A t\nassert 01 = 01', 't.apdu:3:1: assert needs EXPR == EXPR or EXPR != EXPR'],
    ['bad escape', 'ref r\ncase A t\nvar X = "a\\n"', 't.apdu:3:11: unknown escape \\n in a string: only \\" and \\\\ are allowed'],
  ])('%s', (_name, text, message) => {
    expect(err(text)).toBe(message);
  });

  it('names an unknown statement and lists the known ones', () => {
    expect(err('ref r\n  send 00 A4')).toMatch(
      /^t\.apdu:2:3: unknown statement send \(known: > < suite case ref tags .* verify-signature echo\)$/,
    );
  });

  it('include: a cycle names the chain, a case inside an include is refused, a missing file is named', () => {
    const read = files({
      'suite/inc/b.apdu': 'var B = 01\ninclude ../a.apdu\n',
      'suite/inc/c.apdu': '\ncase C t\n',
    });
    expect(scriptError(() => parseScript('ref r\ninclude inc/b.apdu\n', 'suite/a.apdu', read))).toBe(
      'suite/inc/b.apdu:2:1: include cycle: suite/a.apdu → suite/inc/b.apdu → suite/a.apdu',
    );
    expect(scriptError(() => parseScript('ref r\ncase A t\n  include inc/c.apdu', 'suite/a.apdu', read))).toBe(
      'suite/inc/c.apdu:2:1: case in an included file (included from suite/a.apdu): includes hold prologue material only',
    );
    expect(scriptError(() => parseScript('ref r\ninclude nope.apdu', 'suite/a.apdu', read))).toBe(
      'suite/a.apdu:2:9: cannot read include suite/nope.apdu: ENOENT: suite/nope.apdu',
    );
  });

  it('include inside a case adds its steps to the case, not to the prologue', () => {
    const f = parseScript('ref r\ncase A t\ninclude x.apdu\n> 00', 'a.apdu', files({ 'x.apdu': 'var X = 01\necho in x' }));
    expect(f.prologue).toEqual([]);
    expect(f.cases[0].steps.map((s) => `${s.op}@${s.pos.file}:${s.pos.line}`)).toEqual([
      'var@x.apdu:1',
      'echo@x.apdu:2',
      'send@a.apdu:4',
    ]);
  });

  it('a `<` in an include does not attach to the includer\'s `>`', () => {
    const read = files({ 'x.apdu': '< 9000' });
    expect(scriptError(() => parseScript('ref r\n> 00 B0 00 00 00\ninclude x.apdu', 'a.apdu', read))).toBe(
      'x.apdu:1:1: < without a > (or replay) before it',
    );
  });
});

// --- expressions -----------------------------------------------------------------------------------------------------

describe('expressions', () => {
  it('builds commands with short and extended Lc', () => {
    expect(ev('00 A4 04 00 [A0 00 00 01 51] 00')).toBe('00A4040005A00000015100');
    const big = 'AB'.repeat(300);
    expect(ev(`80 E8 00 00 [${big}] 0000`)).toBe(`80E8000000012C${big}0000`);
    expect(ev('[' + '00'.repeat(255) + ']').slice(0, 2)).toBe('FF');
    expect(ev('"AB" 0D0A')).toBe('41420D0A');
  });

  it('len is one byte, two over 255', () => {
    expect(ev('len("abc")')).toBe('03');
    expect(ev('len(${X})', new Map([['X', new Uint8Array(256)]]))).toBe('0100');
    expect(ev('len("")')).toBe('00');
  });

  it('der keeps the first TLV and drops FF filler; a truncated TLV is an error', () => {
    const body = '02 01 05';
    expect(ev(`der(30 03 ${body} FF FF FF)`)).toBe('3003020105');
    const long = '30 82 01 00 ' + '00'.repeat(256);
    expect(ev(`der(${long} FF FF)`)).toBe(`30820100${'00'.repeat(256)}`);
    expect(ev('der(9F 7F 02 01 02 FF)')).toBe('9F7F020102');
    expect(scriptError(() => ev('der(30 05 02 01 FF)'))).toBe('p.apdu:4:3: der(…): the TLV needs 7 bytes, the value has 5');
    expect(scriptError(() => ev('der(30 80 00 00)'))).toBe('p.apdu:4:3: der(…): indefinite length (80) is not DER');
  });

  it('sha1, sha256, slice', () => {
    expect(ev('sha256("abc")')).toBe('BA7816BF8F01CFEA414140DE5DAE2223B00361A396177A9CB410FF61F20015AD');
    expect(ev('sha1("abc")')).toBe('A9993E364706816ABA3E25717850C26C9CD0D89D');
    expect(ev('slice(00 01 02 03 04, 1, 3)')).toBe('0102');
    expect(ev('slice(00 01 02 03 04, 3)')).toBe('0304');
    expect(ev('slice(sha256("abc"), 0, 4) 9000')).toBe('BA7816BF9000');
    expect(scriptError(() => ev('slice(01 02, 1, 5)'))).toBe('p.apdu:4:3: slice(…, 1, 5) is out of range: the value has 2 bytes');
  });

  it('an unset variable is an error at its position; a number outside slice is an error', () => {
    expect(scriptError(() => ev('00 A4 ${NOPE}'))).toBe('p.apdu:4:9: variable NOPE is not set');
    expect(scriptError(() => evalExpr([{ kind: 'num', value: 1, pos: POS }], new Map()))).toMatch(/only allowed as an offset of slice/);
    expect(scriptError(() => ev('00 []'))).toBe('p.apdu:4:6: [ … ] is empty: a command with no data has no Lc');
  });

  it('parse errors point at the offending character', () => {
    expect(scriptError(() => parseExpr('01 0203 ABC', POS, false))).toBe('p.apdu:4:11: odd number of hex digits in ABC: a byte is two hex digits');
    expect(scriptError(() => parseExpr('sha256(01', POS, false))).toBe('p.apdu:4:9: unbalanced parenthesis: sha256( is not closed');
    expect(scriptError(() => parseExpr('01 02)', POS, false))).toBe('p.apdu:4:8: unbalanced parenthesis: no ( for this )');
    expect(scriptError(() => parseExpr('len(01, 02)', POS, false))).toBe("p.apdu:4:9: unexpected ',': len takes one argument");
    expect(scriptError(() => parseExpr('slice(01, x)', POS, false))).toBe('p.apdu:4:13: slice offsets are decimal numbers: slice(EXPR, START[, END])');
    expect(scriptError(() => parseExpr('${1X}', POS, false))).toBe('p.apdu:4:5: expected a variable name after ${');
    expect(scriptError(() => parseExpr('01 zz 02', POS, false))).toMatch(/^p\.apdu:4:6: unexpected zz: expected hex bytes/);
  });

  it('expandText: hex for echo, UTF-8 for paths', () => {
    const vars: Vars = new Map([['AID', fromHex('A0000001')], ['DIR', new TextEncoder().encode('caps')]]);
    expect(expandText('AID is ${AID}.', vars, POS, 'hex')).toBe('AID is A0000001.');
    expect(expandText('${DIR}/x.cap', vars, POS, 'utf8')).toBe('caps/x.cap');
    expect(scriptError(() => expandText('a ${NO} b', vars, POS, 'hex'))).toBe('p.apdu:4:5: variable NO is not set');
  });
});

// --- patterns --------------------------------------------------------------------------------------------------------

describe('response patterns', () => {
  it('masks in bytes and SW; spaces optional', () => {
    expect(match('6F10 84 XX 9000', '6F108401', 0x9000).ok).toBe(true);
    expect(match('6X 1X 9000', '6A1F', 0x9000).ok).toBe(true);
    expect(match('4X 9000', '4F', 0x9000).ok).toBe(true);
    const r = match('41 42 4X 9000', '414251', 0x9000);
    expect(r).toMatchObject({ ok: false, at: 2, reason: 'data byte 2 is 51, expected 4X' });
    expect(match('63CX', '', 0x63c2).ok).toBe(true);
    expect(match('63CX', '', 0x63d2).reason).toBe('status word 63D2, expected 63CX');
    expect(match('"OK" 9000', '4F4B', 0x9000).ok).toBe(true);
  });

  it('SW alternatives, with or without spaces around |', () => {
    expect(match('9000|6A88', '', 0x6a88).ok).toBe(true);
    expect(match('9000 | 6A88', '', 0x9000).ok).toBe(true);
    expect(match('6A82|6A88', '', 0x6a86)).toMatchObject({ ok: false, at: -1, reason: 'status word 6A86, expected 6A82|6A88' });
    expect(match('9000', '', undefined).reason).toBe('no status word, expected 9000');
  });

  it('`*` backtracks and captures the AID', () => {
    const fci = '6F 1A 84 08 A0 00 00 01 51 00 00 00 A5 0E 73 0C 84 08 A0 00 00 01 51 00 00 00 9F 65 01 FF';
    const r = match('6F * 84 (AID: XX{8}) * 9000', fci.replace(/ /g, ''), 0x9000);
    expect(r.ok).toBe(true);
    // The shortest `*` first: the first 84 after 6F.
    expect(hex(r.captures.get('AID')!)).toBe('08A0000001510000');
    const t = match('6F XX 84 08 (AID: XX{8}) * 9000', fci.replace(/ /g, ''), 0x9000);
    expect(hex(t.captures.get('AID')!)).toBe('A000000151000000');
    // Needs backtracking: the first 02 is followed by the wrong byte.
    const b = match('(A: *) 02 03 * 9000', '0102040203', 0x9000);
    expect(b.ok).toBe(true);
    expect(hex(b.captures.get('A')!)).toBe('010204');
    expect(match('* 03 9000', '010203', 0x9000).ok).toBe(true);
    expect(match('* 9000', '', 0x9000).ok).toBe(true);
  });

  it('ranges and repeated groups', () => {
    expect(match('XX{2,4} 9000', '0102', 0x9000).ok).toBe(true);
    expect(match('XX{2,4} 9000', '0102030405', 0x9000)).toMatchObject({ ok: false, at: 4, reason: 'data has 5 bytes, expected 4' });
    expect(match('XX{2,4} 9000', '01', 0x9000)).toMatchObject({ ok: false, at: 1, reason: 'data has 1 bytes, expected more' });
    const g = match('(A: XX{1,3}) 02 9000', '010202', 0x9000);
    expect(hex(g.captures.get('A')!)).toBe('0102'); // longest first, then one fewer
    expect(match('(01 0X){3} 9000', '010201030104', 0x9000).ok).toBe(true);
    expect(match('(01 0X){3} 9000', '010201130104', 0x9000)).toMatchObject({ ok: false, at: 3, reason: 'data byte 3 is 13, expected 0X' });
    expect(match('6F10{2} 9000', '6F1010', 0x9000).ok).toBe(true); // the repetition takes the last byte only
    expect(match('"ab"{2} 9000', '61626162', 0x9000).ok).toBe(true);
    expect(match('(AA *){2} BB 9000', 'AA01AA0203BB', 0x9000).ok).toBe(true);
  });

  it('is fast on KB-sized data', () => {
    const data = new Uint8Array(2048).fill(0x5a);
    expect(matchResponse(pat('XX{2048} 9000'), data, 0x9000, new Map()).ok).toBe(true);
    expect(matchResponse(pat('(XX XX){1024} 9000'), data, 0x9000, new Map()).ok).toBe(true);
    expect(matchResponse(pat('(C: XX{1,2048}) 9000'), data, 0x9000, new Map()).ok).toBe(true);
    const miss = matchResponse(pat('* 5A * 5A * 01 * 9000'), data, 0x9000, new Map());
    expect(miss).toMatchObject({ ok: false, at: 2048 });
    expect(matchResponse(pat('XX{2047} 9000'), data, 0x9000, new Map())).toMatchObject({ ok: false, at: 2047, reason: 'data has 2048 bytes, expected 2047' });
  });

  it('appends join the current value; captures of a failed match do not leak', () => {
    const vars: Vars = new Map([['CERT', fromHex('3082')]]);
    const r = match('(+CERT: XX{3}) (+CERT: XX) 9000', '01020304', 0x9000, vars);
    expect(hex(r.captures.get('CERT')!)).toBe('308201020304');
    const fresh = match('(+NEW: XX) 9000', 'AA', 0x9000);
    expect(hex(fresh.captures.get('NEW')!)).toBe('AA');
    const bad = match('(X: XX) (Y: XX) 01 9000', '050602', 0x9000);
    expect(bad.ok).toBe(false);
    expect(bad.captures.size).toBe(0);
    const swBad = match('(X: XX) 9000', '05', 0x6a82);
    expect(swBad.ok).toBe(false);
    expect(swBad.captures.size).toBe(0);
    // A capture tried and abandoned during backtracking is not kept.
    const back = match('(A: 01) 02 9000 ', '0102', 0x9000);
    expect([...back.captures.keys()]).toEqual(['A']);
    const again = match('(+L: XX){2} 9000', '0A0B', 0x9000, new Map([['L', fromHex('FF')]]));
    expect(hex(again.captures.get('L')!)).toBe('FF0A0B');
  });

  it('variables match their bytes; an unset one is an error', () => {
    const vars: Vars = new Map([['AID', fromHex('A0000001')]]);
    expect(match('84 04 ${AID} 9000', '8404A0000001', 0x9000, vars).ok).toBe(true);
    expect(match('84 04 ${AID} 9000', '8404A0000002', 0x9000, vars)).toMatchObject({
      at: 5,
      reason: 'data byte 5 is 02, expected 01 (${AID})',
    });
    expect(scriptError(() => match('${NOPE} 9000', '', 0x9000))).toBe('p.apdu:4:3: variable NOPE is not set');
  });

  it('len checks look at the whole data', () => {
    expect(match('len>=4 * 9000', '01020304', 0x9000).ok).toBe(true);
    expect(match('len>=16 * 9000', '0102', 0x9000)).toMatchObject({ ok: false, at: -1, reason: 'len 2, expected len>=16' });
    expect(match('len<=1 * 9000', '0102', 0x9000).reason).toBe('len 2, expected len<=1');
    expect(match('len=2 * 9000', '0102', 0x9000).ok).toBe(true);
  });

  it('data failures: too short, too long, SW reported first', () => {
    expect(match('6F 10 84 9000', '6F10', 0x9000)).toMatchObject({ at: 2, reason: 'data has 2 bytes, expected more' });
    expect(match('9000', '6F', 0x9000)).toMatchObject({ at: 0, reason: 'data has 1 bytes, expected 0' });
    expect(match('6F 9000', '70', 0x6a82)).toMatchObject({ ok: false, at: 0, reason: 'status word 6A82, expected 9000' });
  });

  it('ATR patterns have no status word', () => {
    const p = parsePattern('3B XX * 8X', POS, false);
    expect(p.sw).toEqual([]);
    expect(matchResponse(p, fromHex('3B8F800180'), undefined, new Map()).ok).toBe(true);
    expect(scriptError(() => parsePattern('3B | 3F', POS, false))).toBe('p.apdu:4:6: an ATR pattern has no status word: | is not allowed');
  });

  it('parse errors', () => {
    const e = (t: string): string => scriptError(() => pat(t));
    expect(e('6F 1 9000')).toBe('p.apdu:4:6: odd number of hex digits in 1: a byte is two hex digits');
    expect(e('6F109000')).toBe('p.apdu:4:3: expected a status word like 9000 or 6AXX at the end of the pattern (6F109000 is not 4 hex digits or X)');
    expect(e('6F | 9000 XX 9000')).toBe('p.apdu:4:6: | separates status word alternatives, at the end of the pattern (9000|6A88)');
    expect(e('| 9000')).toBe('p.apdu:4:3: expected a status word before |');
    expect(e('XX{3,2} 9000')).toBe('p.apdu:4:5: repetition {3,2}: the maximum is below the minimum');
    expect(e('XX{a} 9000')).toBe('p.apdu:4:5: expected a repetition {N} or {N,M} (decimal counts)');
    expect(e('() 9000')).toBe('p.apdu:4:3: empty group ( )');
    expect(e('(XX len=2) 9000')).toBe('p.apdu:4:7: a len check applies to the whole data: not inside ( )');
    expect(e('len>x 9000')).toBe('p.apdu:4:3: expected len=N, len>=N or len<=N (a decimal byte count)');
    expect(e('6F ?? 9000')).toBe("p.apdu:4:6: unexpected '?' in a pattern");
    expect(e('')).toBe('p.apdu:4:3: expected a status word like 9000 or 6AXX at the end of the pattern');
  });
});

// --- apdutool --------------------------------------------------------------------------------------------------------

const SCR = `powerup;
// select
0x00 0xA4 0x04 0x00 0x02 0xA0 0x01 0x7F;
echo "hi there";
0x80 0xB8 0x00 0x00 0x00 0x7F;
delay 5; output on; contactless;
powerdown;
`;
const OUT = `Java Card APDU Tool
Received ATR = 0x3b 0xf0 0x11 0x00 0xff 0x00
CLA: 00, INS: a4, P1: 04, P2: 00, Lc: 02, a0, 01, Le: 00, SW1: 90, SW2: 00
CLA: 80, INS: b8, P1: 00, P2: 00, Lc: 00, Le: 02, 0a, 0b, SW1: 61, SW2: 10
`;

describe('apdutool scripts', () => {
  it('turns commands and the expected output into one case', () => {
    const sf = parseApdutool(SCR, 'x/t.scr', OUT, 'x/t.scr.expected.out');
    expect(sf).toMatchObject({ path: 'x/t.scr', suite: 't', getResponse: false, prologue: [] });
    const c = sf.cases[0];
    expect(c).toMatchObject({
      id: 't',
      title: 'apdutool script t',
      file: 'x/t.scr',
      refs: ['Oracle Java Card apdutool script'],
      tags: ['apdutool'],
      mandatory: true,
    });
    expect(c.steps.map((s) => s.op)).toEqual(['power', 'send', 'echo', 'send', 'power']);
    const [up, sel, echo, get, down] = c.steps;
    expect(up).toMatchObject({ action: 'up' });
    expect(down).toMatchObject({ action: 'down' });
    expect(echo).toMatchObject({ text: 'hi there', pos: { line: 4, col: 1 } });
    if (sel.op !== 'send' || get.op !== 'send') throw new Error('send expected');
    expect(bytesOf(sel.apdu!)).toBe('00A4040002A0017F');
    expect(bytesOf(get.apdu!)).toBe('80B800007F'); // Lc 0: no Lc byte, Le 7F kept
    expect(sel.pos).toEqual({ file: 'x/t.scr', line: 3, col: 1 });
    expect(sel.expect).toHaveLength(1);
    expect(sel.expect[0]).toMatchObject({ data: [], sw: [{ value: 0x9000, mask: 0xffff }], text: '9000', pos: { file: 'x/t.scr.expected.out', line: 3 } });
    expect(get.expect[0].text).toBe('0A 0B 6110');
    expect(matchResponse(get.expect[0], fromHex('0A0B'), 0x6110, new Map()).ok).toBe(true);
    expect(matchResponse(get.expect[0], fromHex('0A0C'), 0x6110, new Map()).ok).toBe(false);
  });

  it('reports mismatches between the script and its output', () => {
    const wrongIns = OUT.replace('INS: b8', 'INS: b9');
    expect(scriptError(() => parseApdutool(SCR, 'x/t.scr', wrongIns, 'x/t.expected.out'))).toBe(
      "x/t.expected.out:4:1: line 4 of t.expected.out is for 80 B9 00 00 00, the script's 2nd command is 80 B8 00 00 00",
    );
    const fewer = OUT.split('\n').slice(0, 3).join('\n');
    expect(scriptError(() => parseApdutool(SCR, 'x/t.scr', fewer, 'x/t.expected.out'))).toBe(
      'x/t.scr:5:1: no expected output for the 2nd command: t.expected.out has 1 CLA lines',
    );
    const more = OUT + 'CLA: 00, INS: c0, P1: 00, P2: 00, Lc: 00, Le: 00, SW1: 90, SW2: 00\n';
    expect(scriptError(() => parseApdutool(SCR, 'x/t.scr', more, 'x/t.expected.out'))).toBe(
      'x/t.expected.out:5:1: line 5 of t.expected.out has no command: the script has 2 commands',
    );
    const badLe = OUT.replace('Le: 02, 0a, 0b', 'Le: 03, 0a, 0b');
    expect(scriptError(() => parseApdutool(SCR, 'x/t.scr', badLe, 'x/t.expected.out'))).toBe(
      'x/t.expected.out:4:1: Le: 3 but 2 response bytes follow it',
    );
    expect(scriptError(() => parseApdutool(SCR, 'x/t.scr', undefined, 'x/t.expected.out'))).toBe(
      'x/t.scr:1:1: no expected output: looked for x/t.expected.out',
    );
  });

  it('reports malformed scripts', () => {
    const e = (scr: string): string => scriptError(() => parseApdutool(scr, 's.scr', '', 's.expected.out'));
    expect(e('0x00 0xA4 0x04 0x00 0x03 0xA0 0x01 0x7F;')).toBe('s.scr:1:21: LC is 0x03 but 2 data bytes stand between LC and LE');
    expect(e('powerup;\n  0x00 0xA4 0x04;')).toBe('s.scr:2:3: a command is CLA INS P1 P2 LC [LC data bytes] LE; this one has 3 bytes');
    expect(e('0x00 0xA4 0x04 0x00 0x00 0x7F')).toBe('s.scr:1:1: missing ; at the end of this command');
    expect(e('0x00 0x1A4;')).toBe('s.scr:1:6: 0x1A4 is not a byte: write 0xHH');
    expect(e('send 0x00;')).toBe('s.scr:1:1: unknown apdutool command send (known: powerup, powerdown, echo, delay, output, contacted, contactless)');
    expect(e('/* open\n comment')).toBe('s.scr:1:1: unterminated comment: no */');
    expect(e('output maybe;')).toBe('s.scr:1:8: expected output on or output off;');
  });

  it('loads the fixture pair from disk', () => {
    const sf = loadApdutool('test/fixtures/apdutool/hello.scr');
    const c = sf.cases[0];
    expect(c.id).toBe('hello');
    const sends = c.steps.filter((s) => s.op === 'send');
    expect(sends.map((s) => (s.op === 'send' ? bytesOf(s.apdu!) : ''))).toEqual([
      '00A4040007A00000006203017F',
      '80100000030102037F',
      '8020000000',
    ]);
    expect(sends.map((s) => (s.op === 'send' ? s.expect[0].text : ''))).toEqual(['9000', '01 02 03 9000', '6D00']);
    expect(c.steps.map((s) => s.op)).toEqual(['power', 'echo', 'send', 'send', 'send', 'power']);
  });
});

// --- loading files and directories -----------------------------------------------------------------------------------

describe('loadScripts', () => {
  const root = mkdtempSync(join(tmpdir(), 'conf-script-'));
  afterAll(() => rmSync(root, { recursive: true, force: true }));
  const write = (rel: string, body: string): void => {
    mkdirSync(join(root, rel, '..'), { recursive: true });
    writeFileSync(join(root, rel), body);
  };
  write('suite/b.apdu', 'ref r\ninclude common/k.apdu\ncase B-1 t\n> 00 B0 00 00 00\n');
  write('suite/a.apdu', 'ref r\ncase A-1 t\n> 00 B0 00 00 00\n');
  write('suite/common/k.apdu', 'var K = 01\n');
  write('suite/common/x.apdu', 'ref r\ncase K-1 not run on its own\n');
  write('suite/include/i.apdu', 'ref r\ncase I-1 not run on its own\n');
  write('suite/sub/c.scr', '0x00 0x70 0x00 0x00 0x00 0x01;\n');
  write('suite/sub/c.expected.out', 'CLA: 00, INS: 70, P1: 00, P2: 00, Lc: 00, Le: 01, 01, SW1: 90, SW2: 00\n');
  write('suite/sub/notes.txt', 'not a script');
  write('dup/one.apdu', 'ref r\ncase SAME t\n');
  write('dup/two.apdu', 'ref r\n\ncase SAME t\n');
  write('lonely/d.scr', 'powerup;\n');

  it('walks directories in path order, skipping include/ and common/, reading .scr through apdutool', () => {
    const out = loadScripts([join(root, 'suite'), join(root, 'suite/a.apdu')]);
    expect(out.map((s) => s.path.slice(root.length + 1))).toEqual(['suite/a.apdu', 'suite/b.apdu', 'suite/sub/c.scr']);
    expect(out.flatMap((s) => s.cases.map((c) => c.id))).toEqual(['A-1', 'B-1', 'c']);
  });

  it('refuses duplicate ids across files, naming both places', () => {
    const one = join(root, 'dup/one.apdu');
    const two = join(root, 'dup/two.apdu');
    expect(scriptError(() => loadScripts([join(root, 'dup')]))).toBe(`${two}:3:1: duplicate case id SAME (also at ${one}:2:1)`);
  });

  it('names a missing path and a .scr without expected output', () => {
    expect(() => loadScripts([join(root, 'nope')])).toThrow(`${join(root, 'nope')}: no such file or directory`);
    const d = join(root, 'lonely/d.scr');
    expect(scriptError(() => loadScripts([d]))).toBe(
      `${d}:1:1: no expected output: looked for ${join(root, 'lonely/d.scr.expected.out')} and ${join(root, 'lonely/d.expected.out')}`,
    );
  });
});
