// The jpki-se command tree: help texts, dispatch, and the exit-code contract (0 ok, 1 card/transport error, 2 usage).
import type { Options, Values } from './args.ts';
import { PlainError, UsageError, parse } from './args.ts';
import type { Io } from './io.ts';
import { TARGET_HELP, TARGET_OPTIONS } from './target.ts';
import { GP_HELP, GP_OPTIONS, gpDelete, gpInfo, gpInstall, gpList, gpLoad, gpPutKey, gpSetStatus } from './gp.ts';
import { apduCommand } from './apdu.ts';
import { chipInfo, chipNew } from './chip.ts';
import { VM_REPORT_HELP, VM_REPORT_OPTIONS } from './vm-report.ts';
import { asmCommand } from './asm.ts';
import { capInfo } from './cap.ts';
import { convertCommand } from './convert.ts';
import { CONFORMANCE_RUN_OPTIONS, conformanceCheck, conformanceList, conformanceRun } from './conformance.ts';

interface Leaf {
  path: string[];
  summary: string;
  /** Full help text: usage line(s), description, options. */
  help: string;
  options: Options;
  positionals: { min: number; max: number; what: string };
  run(values: Values, positionals: string[], io: Io): Promise<number> | number;
}

const NONE = { min: 0, max: 0, what: 'arguments' };

/** `chip new` options that only --personalise uses; each of them sends the command down that path. */
const PERSONALISE_OPTIONS: Options = {
  personalise: { type: 'string' },
  ca: { type: 'string' },
  'auth-pin': { type: 'string' },
  'sign-password': { type: 'string' },
  name: { type: 'string' },
  birth: { type: 'string' },
  address: { type: 'string' },
  sex: { type: 'string' },
  'my-number': { type: 'string' },
  'se-id': { type: 'string' },
  'app-cert': { type: 'string' },
};

const CHIP_NEW: Leaf = {
  path: ['chip', 'new'],
  summary: 'create a chip state file (optionally a personalised card or phone)',
  help: `Usage: jpki-se chip new --state FILE [--profile NAME] [--force]
       jpki-se chip new --state FILE --personalise card|phone [--ca DIR] [--auth-pin PIN]
                        [--sign-password PW] [--name NAME] [--birth YYYYMMDD] [--address TEXT]
                        [--sex 1|2|9] [--my-number DIGITS] [--se-id HEX] [--app-cert FILE]
                        [--profile NAME] [--force]

Creates a chip: FILE then holds a fresh card (issuer security domain with the initial
key set, card life cycle SECURED), ready for "chip serve", "apdu" and "gp".

With --personalise the chip is then issued from a test CA, each party of the real
issuance played in turn (docs/jpki-applet.md, "Personalisation helpers"):
  card   a My Number Card (profile mynumber-card): the JPKI AP and the text AP
         installed under the ISD, keys imported, certificates, PINs, both locked
  phone  a phone's GP-SE: the JPKI APSD with random SCP03 keys, the ARA-M with a rule
         for one app, the JPKI AP under the APSD with keys made on chip, certificates,
         the user PINs set through the app; FILE.phone.json (mode 0600) keeps the SE
         id, the APSD keys and the app certificate for later tools
The holder is a fictional test citizen unless the options below say otherwise.

Options:
  --state FILE          the state file to create
  --profile NAME        chip profile (default jcop4-like; mynumber-card with --personalise card)
  --force               replace FILE (and FILE.phone.json) if it exists
  --personalise KIND    card or phone
  --ca DIR              the test CA: loaded when DIR holds one, else created there
                        (default FILE.ca)
  --auth-pin PIN        auth PIN (利用者証明用), 4 digits (default 1234)
  --sign-password PW    sign password (署名用), 6-16 of A-Z and 0-9 (default ABC123)
  --name NAME           氏名; an ASCII space becomes U+3000 between family and given name
  --birth YYYYMMDD      生年月日; the holder must be 15 or older (default 19800217)
  --address TEXT        住所, at most 200 characters
  --sex 1|2|9           male, female, not applicable (default 2)
  --my-number DIGITS    個人番号, 12 digits with a valid check digit (card only)
  --se-id HEX           the 16-byte SE identifier (phone only; default random)
  --app-cert FILE       the app's signing certificate, DER or PEM, that the ARA-M rule
                        names (phone only; default a new self-signed one)
  -h, --help            show this help`,
  options: { state: { type: 'string' }, profile: { type: 'string' }, force: { type: 'boolean' }, ...PERSONALISE_OPTIONS },
  positionals: NONE,
  run: async (v, _p, io) =>
    Object.keys(PERSONALISE_OPTIONS).some((k) => v[k] !== undefined) ? (await import('./personalise.ts')).chipNewPersonalised(v, io) : chipNew(v, io),
};

const CHIP_SERVE: Leaf = {
  path: ['chip', 'serve'],
  summary: 'present the chip to PC/SC through vpcd (vsmartcard)',
  help: `Usage: jpki-se chip serve --state FILE [--profile NAME] [--vpcd HOST:PORT | --listen [HOST:]PORT]
                       [-d] [-v] [--cycles] [--bytecode-trace]

Runs the chip in FILE (created if missing) as a virtual card for vsmartcard's vpcd, so
PC/SC programs (gp.jar, pcsc_scan, opensc-tool, pyscard) see it in "Virtual PCD 00 00".
By default it connects to vpcd at 127.0.0.1:35963 and keeps retrying until vpcd is there;
with --listen it waits for vpcd (reversed mode) or an Android ACardEmulator to connect.
Stops on Ctrl-C (SIGINT) or SIGTERM; every acknowledged command is already in FILE.

Options:
  --state FILE          the chip's state file
  --profile NAME        chip profile when FILE is created (default jcop4-like)
  --vpcd HOST:PORT      vpcd to connect to (default 127.0.0.1:35963)
  --listen [HOST:]PORT  listen instead (default host 127.0.0.1; port 0 picks a free one)
  -d, --trace           print every APDU the card receives and its response
  -v, --verbose         print the chip's own log (secure channel sessions, refusals)
  -c, --cycles          with each traced APDU, the cycle report of the applet code it ran (implies -d)
  --bytecode-trace      print each bytecode applet code executes (implies -d)
  -h, --help            show this help`,
  options: {
    state: { type: 'string' },
    profile: { type: 'string' },
    vpcd: { type: 'string' },
    listen: { type: 'string' },
    trace: { type: 'boolean', short: 'd' },
    verbose: { type: 'boolean', short: 'v' },
    ...VM_REPORT_OPTIONS,
  },
  positionals: NONE,
  run: async (v, _p, io) => (await import('./serve.ts')).chipServe(v, io),
};

const CHIP_INFO: Leaf = {
  path: ['chip', 'info'],
  summary: 'show what a chip state file holds',
  help: `Usage: jpki-se chip info --state FILE

Reads the chip in FILE directly (no APDUs): profile, ATR, card life cycle, IIN/CIN,
memory in use (load files; the Java Card heap: persistent bytes used and available,
transient RAM, objects per applet), the registry (security domains, applications,
load files) and the key sets of every security domain, shown by key check value (KCV),
never by value.

Options:
  --state FILE      the chip's state file
  -h, --help        show this help`,
  options: { state: { type: 'string' } },
  positionals: NONE,
  run: (v, _p, io) => chipInfo(v, io),
};

const APDU: Leaf = {
  path: ['apdu'],
  summary: 'send raw APDUs and trace them',
  help: `Usage: jpki-se apdu (--state FILE | --reader NAME) [--cycles] [--bytecode-trace] APDU...

Sends each APDU (hex; spaces, ':' and '-' allowed inside) in order and prints
">> command" and "<< response SW (meaning)". No secure channel: for card-manager
commands that need one, use "jpki-se gp". On an emulated chip, --cycles adds after
each response that ran applet code a line "cycles: N bytecodes, N cycles, …, est. T
(exec + I/O) [phases] on PROFILE"; --bytecode-trace prints "| method+offset opcode
operands | stack top" for every bytecode as it runs.

Examples:
  jpki-se apdu --state chip.img "00 A4 04 00 08 A000000151000000" 80CA9F7F00
  jpki-se apdu --state chip.img --cycles 00A4040009A0000001510A000101 8001000003010203

Options:
${TARGET_HELP}
${VM_REPORT_HELP}
  -h, --help        show this help`,
  options: { ...TARGET_OPTIONS, ...VM_REPORT_OPTIONS },
  positionals: { min: 1, max: Infinity, what: 'APDU (hex)' },
  run: (v, p, io) => apduCommand(v, p, io),
};

const ASM: Leaf = {
  path: ['asm'],
  summary: 'assemble a jcasm source into a CAP file',
  help: `Usage: jpki-se asm [--out FILE.cap] [--jar] [--lib LIB.jca]... FILE.jca

Assembles FILE.jca (the jcasm language, docs/jcasm.md) into a CAP package, checks it
as the card does at LOAD (structure of every component) and writes it: by default as a
Load File Data Block (the concatenated components GP LOAD carries), with --jar as the
converter's JAR form. Errors: one line "file:line: what", exit 1.

Example:
  jpki-se asm test/fixtures/asm/echo.jca --out echo.cap && jpki-se gp load --state chip.img echo.cap --install

Options:
  --out FILE        the CAP file to write (default: FILE.jca with .cap)
  --jar             write the JAR form (META-INF/MANIFEST.MF, <package>/javacard/*.cap)
  --lib LIB.jca     a library package (.library) this one imports; repeat in import order
  -h, --help        show this help`,
  options: { out: { type: 'string' }, jar: { type: 'boolean' }, lib: { type: 'string', multiple: true } },
  positionals: { min: 1, max: 1, what: 'source file (.jca)' },
  run: (v, p, io) => asmCommand(v, p, io),
};

const CONVERT: Leaf = {
  path: ['convert'],
  summary: 'convert javac class files of a package into a CAP file',
  help: `Usage: jpki-se convert --classdir DIR --package NAME --package-aid AID --version MAJ.MIN
                       [--applet CLASS=AID]... [--out DIR] [--exportpath PATH]... [--jar]
                       [--format 2.1|2.2]

Converts the class files of one Java package (javac -source 8 -target 8 against the
Java Card API stubs, docs/cli.md) into a CAP file: DIR/<package as path>/*.class are
read, checked against the Java Card language subset, translated and laid out, and the
CAP written is read back and verified as the card does at LOAD. Writes
OUT/<last package name segment>.cap, and OUT/<segment>.exp when the package exports
Shareable interfaces, for packages converted later with --exportpath.
Problems are listed as "File.java:line: error: Class.method: what", exit 1.

Options:
  --classdir DIR        root of javac's output (-d DIR)
  --package NAME        the package to convert, dotted (com.example.wallet)
  --package-aid AID     package AID, 5 to 16 bytes in hex
  --version MAJ.MIN     package version (e.g. 1.0)
  --applet CLASS=AID    an applet class (simple or dotted name) and its AID; repeat
  --out DIR             where to write the CAP and export files (default .)
  --exportpath PATH     an export file (.exp) of a package this one imports, or a folder
                        searched for them; repeat. The Java Card API needs none.
  --jar                 write the CAP as a JAR (JCVM 6.1.1) instead of a Load File Data Block
  --format 2.1|2.2      CAP and export file format (default 2.1)
  -h, --help            show this help`,
  options: {
    classdir: { type: 'string' },
    package: { type: 'string' },
    'package-aid': { type: 'string' },
    version: { type: 'string' },
    applet: { type: 'string', multiple: true },
    out: { type: 'string' },
    exportpath: { type: 'string', multiple: true },
    jar: { type: 'boolean' },
    format: { type: 'string' },
  },
  positionals: NONE,
  run: (v, _p, io) => convertCommand(v, io),
};

const CAP_INFO: Leaf = {
  path: ['cap', 'info'],
  summary: 'check a CAP file and show what it holds',
  help: `Usage: jpki-se cap info FILE.cap

Reads a CAP file (the converter's JAR form or a Load File Data Block), checks it as the
card does at LOAD (framing, every component, cross-references) and prints the package
AID and version, CAP format, imports (and whether the chip's API provides them),
applets, classes, static fields, and the size of every component. A malformed CAP is
named with its component and offset (exit 1).

Options:
  -h, --help        show this help`,
  options: {},
  positionals: { min: 1, max: 1, what: 'CAP file' },
  run: (v, p, io) => capInfo(v, p, io),
};

const GP_LIST: Leaf = {
  path: ['gp', 'list'],
  summary: 'list security domains, applications and load files',
  help: `Usage: jpki-se gp list (--state FILE | --reader NAME) [options]

Opens SCP03 and lists the registry with GET STATUS: the ISD, applications and security
domains, load files with their modules.

Options:
${GP_HELP}`,
  options: GP_OPTIONS,
  positionals: NONE,
  run: (v, _p, io) => gpList(v, io),
};

const GP_INFO: Leaf = {
  path: ['gp', 'info'],
  summary: 'card data: CPLC, IIN, CIN, key information',
  help: `Usage: jpki-se gp info (--state FILE | --reader NAME) [--sd AID]

Reads the security domain's data objects with GET DATA (no secure channel needed):
CPLC (9F7F), IIN (42), CIN (45), card recognition data (66), key information (E0),
sequence counter (C1), key diversification data (CF), extended resources (FF21).

Options:
${GP_HELP}`,
  options: GP_OPTIONS,
  positionals: NONE,
  run: (v, _p, io) => gpInfo(v, io),
};

const GP_PUT_KEY: Leaf = {
  path: ['gp', 'put-key'],
  summary: 'add or replace an SCP03 key set',
  help: `Usage: jpki-se gp put-key (--state FILE | --reader NAME) [options]
           --new-kvn HEX (--new-key HEX | --new-enc HEX --new-mac HEX --new-dek HEX) [--replace KVN]

PUT KEY of three AES keys (16, 24 or 32 bytes) encrypted with the current DEK; the
card's key check values are verified. Without --replace a key set is added; with it
the key set KVN is replaced (and renumbered to --new-kvn).

Options:
  --new-kvn HEX     key version of the new key set (01–7F)
  --new-key HEX     one key for ENC, MAC and DEK
  --new-enc HEX, --new-mac HEX, --new-dek HEX
                    the three new keys one by one
  --replace KVN     key version to replace
${GP_HELP}`,
  options: {
    ...GP_OPTIONS,
    'new-kvn': { type: 'string' },
    'new-key': { type: 'string' },
    'new-enc': { type: 'string' },
    'new-mac': { type: 'string' },
    'new-dek': { type: 'string' },
    replace: { type: 'string' },
  },
  positionals: NONE,
  run: (v, _p, io) => gpPutKey(v, io),
};

const GP_DELETE: Leaf = {
  path: ['gp', 'delete'],
  summary: 'delete applications, security domains or load files',
  help: `Usage: jpki-se gp delete (--state FILE | --reader NAME) [options] [--related] AID...

DELETE each AID. With --related a load file goes with its instances and a security
domain with everything associated with it.

Options:
  --related         delete related objects too (DELETE P2 80)
${GP_HELP}`,
  options: { ...GP_OPTIONS, related: { type: 'boolean' } },
  positionals: { min: 1, max: Infinity, what: 'AID to delete' },
  run: (v, p, io) => gpDelete(v, p, io),
};

const GP_INSTALL: Leaf = {
  path: ['gp', 'install'],
  summary: 'install an applet, create a security domain, make selectable',
  help: `Usage: jpki-se gp install (--state FILE | --reader NAME) [options] --package AID --applet AID [--aid AID]
           [--privs P] [--params HEX] [--install-only]
       jpki-se gp install … --domain AID [--privs P] [--scp-i HEX]
       jpki-se gp install … --make-selectable AID [--privs P]

INSTALL [for install and make selectable] of a module (--applet) from a loaded package;
--domain creates a security domain (APSD) from the card's SD package A0000001515350;
--make-selectable finishes an --install-only.
Privileges P: hex (80 or 804000) or names joined by commas, e.g.
security-domain,authorized-management or card-reset.

Options:
  --package AID     load file
  --applet AID      module (applet class AID) in the load file
  --aid AID         instance AID (default: the module AID)
  --privs P         privileges
  --params HEX      application parameters (sent as C9)
  --install-only    INSTALL [for install] only (state INSTALLED)
  --domain AID      create a security domain with this AID (Security Domain privilege added)
  --scp-i HEX       SCP03 "i" of the new domain (e.g. 70)
  --make-selectable AID
${GP_HELP}`,
  options: {
    ...GP_OPTIONS,
    package: { type: 'string' },
    applet: { type: 'string' },
    aid: { type: 'string' },
    privs: { type: 'string' },
    params: { type: 'string' },
    'install-only': { type: 'boolean' },
    domain: { type: 'string' },
    'scp-i': { type: 'string' },
    'make-selectable': { type: 'string' },
  },
  positionals: NONE,
  run: (v, _p, io) => gpInstall(v, io),
};

const GP_LOAD: Leaf = {
  path: ['gp', 'load'],
  summary: 'load a CAP file (and install its applets)',
  help: `Usage: jpki-se gp load (--state FILE | --reader NAME) [options] CAPFILE

INSTALL [for load] and LOAD blocks of a CAP file: the JAR form (.cap from the converter)
or raw concatenated components. With --install every applet of the package is then
installed and made selectable under its own AID.

Options:
  --block-size N    plain bytes per LOAD block (default: the most a short APDU carries
                    at the security level: 247 at 01/11, 239 at 03/13/33)
  --for-sd AID      associate the load file with this security domain
  --hash ALG        send the load file data block hash: sha1, sha256, sha384, sha512
  --install         install every applet after loading
  --privs P         privileges for --install
  --params HEX      application parameters for --install
${GP_HELP}`,
  options: {
    ...GP_OPTIONS,
    'block-size': { type: 'string' },
    'for-sd': { type: 'string' },
    hash: { type: 'string' },
    install: { type: 'boolean' },
    privs: { type: 'string' },
    params: { type: 'string' },
  },
  positionals: { min: 1, max: 1, what: 'CAP file' },
  run: (v, p, io) => gpLoad(v, p, io),
};

const GP_SET_STATUS: Leaf = {
  path: ['gp', 'set-status'],
  summary: 'change the life cycle of the card, an application or a domain',
  help: `Usage: jpki-se gp set-status (--state FILE | --reader NAME) [options] card STATE
       jpki-se gp set-status … app AID STATE
       jpki-se gp set-status … domain AID STATE

SET STATUS. card (P1 80): initialized, secured, card-locked (or locked), terminated.
app (P1 40, one application or security domain) and domain (P1 60, a security domain
with its applications): lock, unlock, selectable, personalized. Any state may also be
given as a hex byte.

Options:
${GP_HELP}`,
  options: GP_OPTIONS,
  positionals: { min: 2, max: 3, what: 'target and state' },
  run: (v, p, io) => gpSetStatus(v, p, io),
};

const CONFORMANCE_RUN: Leaf = {
  path: ['conformance', 'run'],
  summary: 'run conformance scripts against a chip or card',
  help: `Usage: jpki-se conformance run <files|dirs>... --target T [--tag T]... [--exclude-tag T]...
           [--id GLOB]... [--profile T]... [--var NAME=EXPR]... [--stop-on-fail | --continue]
           [--junit FILE] [--tap FILE] [--trace] [--quiet | --verbose] [--vpcd-port N]

Runs the cases of APDU scripts (.apdu, and Oracle apdutool .scr with their expected
output; directories are searched in name order) against a target and prints one line
per case: PASS, FAIL (with the command, the expected pattern, the response and ^^ under
the first byte that differs), ERROR or SKIP, then a summary. The format:
conformance/README.md. Every case starts with a warm reset; 61XX and 6CXX are followed
up as a T=0 reader driver does; SCP03 sessions, logical channels and LOADs are the
runner's. Exit status: 0 every mandatory case passed, 1 a mandatory case failed or
errored, 2 a usage or script error (nothing was sent).

Targets:
  emulator              a fresh emulated chip
  emulator:FILE         the chip in state file FILE (changed by the run)
  vpcd[:FILE]           the same chip served to pcscd through vpcd, reached through PC/SC
  pcsc[:READER]         a card in a PC/SC reader (READER: a name or part of one)

Options:
  --target T            where the APDUs go (above)
  --tag T               run the cases with tag T (repeat: any of them)
  --exclude-tag T       leave out the cases with tag T (repeatable)
  --id GLOB             run the cases whose id matches GLOB (* and ?; repeatable)
  --profile T           the target has profile T: cases that "requires T" run (repeatable)
  --var NAME=EXPR       set a variable before any script runs, over the scripts'
                        "default" (EXPR as in scripts: hex, "text", \${VAR}, functions)
  --stop-on-fail        after the first failed mandatory case, skip the rest
  --continue            run every case (the default)
  --junit FILE          write a JUnit XML report (Ant/Jenkins format)
  --tap FILE            write a TAP version 14 report
  --trace               print every APDU on the wire as it goes
  -q, --quiet           print only the failed and errored cases and the summary
  -v, --verbose         print every case's APDUs with their times
  --vpcd-port N         vpcd's port for the vpcd target (default 35963: "Virtual PCD 00 00")
  -h, --help            show this help`,
  options: CONFORMANCE_RUN_OPTIONS,
  positionals: { min: 1, max: Infinity, what: 'script file or directory' },
  run: (v, p, io) => conformanceRun(v, p, io),
};

const CONFORMANCE_CHECK: Leaf = {
  path: ['conformance', 'check'],
  summary: 'parse conformance scripts and report every error',
  help: `Usage: jpki-se conformance check <files|dirs>...

Parses the scripts without sending anything and prints every error as
file:line:col: message (exit 2), or "N files, M cases" when all are well formed.

Options:
  -h, --help            show this help`,
  options: {},
  positionals: { min: 1, max: Infinity, what: 'script file or directory' },
  run: (v, p, io) => conformanceCheck(v, p, io),
};

const CONFORMANCE_LIST: Leaf = {
  path: ['conformance', 'list'],
  summary: 'list the cases of conformance scripts',
  help: `Usage: jpki-se conformance list <files|dirs>...

Prints one line per case: id, mandatory or optional, tags, the specification
reference (and the profiles it requires).

Options:
  -h, --help            show this help`,
  options: {},
  positionals: { min: 1, max: Infinity, what: 'script file or directory' },
  run: (v, p, io) => conformanceList(v, p, io),
};

interface Group {
  name: string;
  summary: string;
  leaves: Leaf[];
}

const GROUPS: Group[] = [
  { name: 'chip', summary: 'create, serve and inspect emulated chips', leaves: [CHIP_NEW, CHIP_SERVE, CHIP_INFO] },
  { name: 'gp', summary: 'GlobalPlatform card management over SCP03', leaves: [GP_LIST, GP_INFO, GP_PUT_KEY, GP_DELETE, GP_INSTALL, GP_LOAD, GP_SET_STATUS] },
  { name: 'cap', summary: 'inspect CAP files', leaves: [CAP_INFO] },
  { name: 'conformance', summary: 'conformance scripts: run, check, list', leaves: [CONFORMANCE_RUN, CONFORMANCE_CHECK, CONFORMANCE_LIST] },
];
const TOP_LEAVES: Leaf[] = [APDU, ASM, CONVERT];

/** Every command, for tests and docs. */
export const COMMANDS: string[][] = [...GROUPS.flatMap((g) => g.leaves.map((l) => l.path)), ...TOP_LEAVES.map((l) => l.path)];

const TOP_HELP = `Usage: jpki-se COMMAND [SUBCOMMAND] [options]

An emulated GlobalPlatform secure element for JPKI.

Commands:
${[
  ...GROUPS.flatMap((g) => g.leaves.map((l) => [l.path.join(' '), l.summary])),
  ...TOP_LEAVES.map((l) => [l.path.join(' '), l.summary]),
]
  .map(([c, s]) => `  ${c.padEnd(19)}${s}`)
  .join('\n')}

"jpki-se COMMAND --help" describes each. Exit status: 0 done, 1 card or transport
error, 2 bad command line. JPKI_DEBUG=1 prints stack traces.`;

function groupHelp(g: Group): string {
  return `Usage: jpki-se ${g.name} ${g.leaves.map((l) => l.path[1]).join('|')} [options]

${g.summary[0].toUpperCase()}${g.summary.slice(1)}:
${g.leaves.map((l) => `  ${l.path[1].padEnd(12)}${l.summary}`).join('\n')}

"jpki-se ${g.name} SUBCOMMAND --help" describes each.`;
}

const wantsHelp = (args: string[]) => args.some((a) => a === '--help' || a === '-h');
const oneLine = (s: string) => s.replace(/\s*\n\s*/g, ' ').trim();

/** Runs one command line; returns the exit status. Never throws. */
export async function run(argv: string[], io: Io): Promise<number> {
  const usage = (where: string, message: string, hint: string) => {
    io.err(`${where}: ${oneLine(message)} (see "${hint} --help")`);
    return 2;
  };
  const [first, ...rest] = argv;
  if (first === undefined) return usage('jpki-se', 'missing command', 'jpki-se');
  if (first === '--help' || first === '-h') {
    io.out(TOP_HELP);
    return 0;
  }
  let leaf = TOP_LEAVES.find((l) => l.path[0] === first);
  let args = rest;
  if (!leaf) {
    const g = GROUPS.find((x) => x.name === first);
    if (!g) return usage('jpki-se', `unknown command "${first}" (commands: ${[...GROUPS.map((x) => x.name), ...TOP_LEAVES.map((l) => l.path[0])].join(', ')})`, 'jpki-se');
    const [sub, ...more] = rest;
    if (sub === undefined || sub === '--help' || sub === '-h') {
      if (sub === undefined) return usage(`jpki-se ${g.name}`, `missing subcommand (${g.leaves.map((l) => l.path[1]).join(', ')})`, `jpki-se ${g.name}`);
      io.out(groupHelp(g));
      return 0;
    }
    leaf = g.leaves.find((l) => l.path[1] === sub);
    if (!leaf) return usage(`jpki-se ${g.name}`, `unknown subcommand "${sub}" (${g.leaves.map((l) => l.path[1]).join(', ')})`, `jpki-se ${g.name}`);
    args = more;
  }
  const name = `jpki-se ${leaf.path.join(' ')}`;
  if (wantsHelp(args)) {
    io.out(leaf.help);
    return 0;
  }
  try {
    const { values, positionals } = parse(args, leaf.options, leaf.positionals);
    return await leaf.run(values, positionals, io);
  } catch (e) {
    if (e instanceof UsageError) return usage(name, e.message, name);
    if (e instanceof PlainError) {
      io.err(oneLine(e.message));
      return 1;
    }
    const err = e instanceof Error ? e : new Error(String(e));
    io.err(`${name}: ${oneLine(err.message)}`);
    if (io.env.JPKI_DEBUG === '1' && err.stack) io.err(err.stack);
    return 1;
  }
}
