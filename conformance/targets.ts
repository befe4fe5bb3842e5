// The targets a conformance run talks to: the emulator in-process (fresh or a state file), the same chip served to
// pcscd as a vicc through vpcd and reached back through PC/SC, or a real card in a PC/SC reader. All give raw
// responses (no automatic GET RESPONSE: the runner does the T=0 follow-ups itself) and power control.
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads';
import type { MessagePort } from 'node:worker_threads';
import { openChip } from '../emulator/card.ts';
import type { Chip, ChipOptions } from '../emulator/card.ts';
import { connectReader, listReaders } from '../emulator/transport/pcsc.ts';
import type { PcscConnection } from '../emulator/transport/pcsc.ts';
import { emulatorTarget } from '../emulator/transport/target.ts';
import type { PowerControl, Target } from '../emulator/transport/target.ts';
import { VPCD_PORT, connectToVpcd } from '../emulator/transport/vicc.ts';
import type { ViccHandle } from '../emulator/transport/vicc.ts';

export type { PowerControl };
export type ConformanceTarget = Target & PowerControl;

export interface ConformanceTargetOptions {
  /** vpcd's TCP port for `vpcd` targets (default 35963, reader "Virtual PCD 00 00"). */
  vpcdPort?: number;
  /** How long to wait for pcscd to see the vicc's card (default 15 s). */
  insertTimeoutMs?: number;
  /**
   * Chip options for the emulator targets (state and create come from the spec). The vpcd target's chip runs in a
   * worker thread and takes only profile (by name), protocol, fsync and vm from them.
   */
  chip?: Omit<ChipOptions, 'state' | 'create'>;
  log?: (message: string) => void;
}

export const CONFORMANCE_TARGET_FORMS = ['emulator', 'emulator:<state file>', 'vpcd', 'vpcd:<state file>', 'pcsc', 'pcsc:<reader name or part of it>'];

/** The spec is not one of the accepted forms (a usage error for the CLI). */
export class TargetSpecError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'TargetSpecError';
  }
}

/** The PC/SC reader name vpcd gives a slot: port 35963 is "Virtual PCD 00 00", 35964 "Virtual PCD 00 01". */
export function vpcdReaderName(port: number): string {
  return `Virtual PCD 00 ${String(port - VPCD_PORT).padStart(2, '0')}`;
}

/** Checks a spec's form without opening anything (so the CLI can refuse a bad one before any file is read). */
export function checkTargetSpec(spec: string): { kind: 'emulator' | 'vpcd' | 'pcsc'; arg: string | undefined } {
  const colon = spec.indexOf(':');
  const kind = colon < 0 ? spec : spec.slice(0, colon);
  const arg = colon < 0 ? undefined : spec.slice(colon + 1);
  if (kind !== 'emulator' && kind !== 'vpcd' && kind !== 'pcsc') throw new TargetSpecError(`unknown target "${spec}"; accepted: ${CONFORMANCE_TARGET_FORMS.join(', ')}`);
  if (arg !== undefined && arg.trim() === '')
    throw new TargetSpecError(kind === 'pcsc' ? 'target "pcsc:" needs a reader name (or use "pcsc")' : `target "${kind}:" needs a state file after the colon`);
  return { kind, arg };
}

/** Opens the target `spec` names; close() releases it (and saves an emulated chip's state file). */
export async function openConformanceTarget(spec: string, opts: ConformanceTargetOptions = {}): Promise<ConformanceTarget> {
  const { kind, arg } = checkTargetSpec(spec);
  if (kind === 'pcsc') return pcscTarget(arg);
  if (arg !== undefined && !existsSync(arg)) throw new Error(`state file ${arg} does not exist (create it with "jpki-se chip new --state ${arg}")`);
  if (kind === 'vpcd') return vpcdTarget(spec, arg, opts);
  const chip = openChip({ ...opts.chip, log: opts.chip?.log ?? opts.log, ...(arg !== undefined ? { state: arg, create: false } : {}) });
  return emulatorTarget(spec, chip);
}

/**
 * A PC/SC card. emulator/transport/pcsc.ts offers warm reset (SCardReconnect SCARD_RESET_CARD) and disconnect with
 * SCARD_LEAVE_CARD only, so `power down` disconnects (the reader may keep the card powered) and `power up` connects
 * again and resets: the closest to a cold reset that the connection allows.
 */
function pcscWrapper(name: string, connect: () => Promise<PcscConnection>, first: PcscConnection, onClose: () => Promise<void>): ConformanceTarget {
  let conn: PcscConnection | null = first;
  let atr = first.atr;
  let closed = false;
  const live = () => {
    if (closed) throw new Error(`target ${name} is closed`);
  };
  // A reset of a card left powered down (a case that ended with "power down") powers it up: reset and power up are one.
  const up = async () => {
    live();
    conn ??= await connect();
    atr = await conn.reset();
    return atr;
  };
  return {
    name,
    get atr() {
      return atr;
    },
    transmit: async (apdu) => {
      live();
      if (!conn) throw new Error(`target ${name}: the card is powered down (use "power up")`);
      return conn.transmit(apdu);
    },
    reset: up,
    powerUp: up,
    powerDown: async () => {
      live();
      const c = conn;
      conn = null;
      await c?.close();
    },
    close: async () => {
      if (closed) return;
      closed = true;
      const c = conn;
      conn = null;
      try {
        await c?.close();
      } finally {
        await onClose();
      }
    },
  };
}

async function pcscTarget(reader: string | undefined): Promise<ConformanceTarget> {
  // The connection is ours (not openTarget's Target) so that `power down` can drop it and `power up` make it again.
  const first = await connectReader({ reader, autoGetResponse: false });
  const connect = () => connectReader({ reader: first.reader, autoGetResponse: false });
  return pcscWrapper(`pcsc:${first.reader}`, connect, first, async () => {});
}

async function until(cond: () => Promise<boolean>, what: string, ms: number): Promise<void> {
  const t0 = Date.now();
  for (;;) {
    if (await cond().catch(() => false)) return;
    if (Date.now() - t0 > ms) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/**
 * The chip served as a vicc to pcscd's vpcd, then reached through PC/SC like any reader: the whole path a host
 * program takes (pcscd, vpcd's framing, the reader's T=0/T=1 handling) is exercised. close() ejects and saves the chip.
 * The chip and its vicc run in a worker thread: the `smartcard` binding makes some PC/SC calls synchronously
 * (SCardListReaders, SCardStatus, SCardDisconnect), and a vicc on the blocked main thread could not answer pcscd's
 * polls meanwhile, which deadlocks both.
 */
async function vpcdTarget(spec: string, state: string | undefined, opts: ConformanceTargetOptions): Promise<ConformanceTarget> {
  const port = opts.vpcdPort ?? VPCD_PORT;
  const reader = vpcdReaderName(port);
  const wait = opts.insertTimeoutMs ?? 15_000;
  const present = async () => (await listReaders()).some((r) => r.name === reader && r.cardPresent);
  const readers = await listReaders();
  const slot = readers.find((r) => r.name === reader);
  if (!slot) throw new Error(`pcscd has no reader "${reader}" for vpcd port ${port}; readers: ${readers.map((r) => `"${r.name}"`).join(', ') || 'none'}`);
  if (slot.cardPresent) throw new Error(`"${reader}" already holds a card: another vicc uses vpcd port ${port}`);
  const chip = opts.chip ?? {};
  const vicc = await startVicc(
    {
      role: VICC_ROLE,
      port,
      ...(state !== undefined ? { state } : {}),
      ...(typeof chip.profile === 'string' ? { profile: chip.profile } : {}),
      ...(chip.protocol ? { protocol: chip.protocol } : {}),
      ...(chip.fsync !== undefined ? { fsync: chip.fsync } : {}),
      ...(chip.vm !== undefined ? { vm: chip.vm } : {}),
    },
    opts.log ?? chip.log,
  );
  const teardown = async () => {
    await vicc.close();
    // Let pcscd see the removal, so that the next user of the slot finds it empty.
    await until(async () => !(await present()), `"${reader}" to be empty`, 3000).catch(() => undefined);
  };
  try {
    await until(present, `pcscd to see the card in "${reader}"`, wait);
    const connect = () => connectReader({ reader, autoGetResponse: false });
    const first = await connect();
    return pcscWrapper(`${spec} (${reader})`, connect, first, teardown);
  } catch (e) {
    await teardown().catch(() => undefined);
    throw e;
  }
}

// --- the vicc's worker thread --------------------------------------------------------------------------------------

const VICC_ROLE = 'jpki-se conformance vicc';

/** What the worker is asked to serve: plain values only (the chip options that survive a structured clone). */
interface ViccJob {
  role: typeof VICC_ROLE;
  port: number;
  state?: string;
  profile?: string;
  protocol?: 'T=0' | 'T=1';
  fsync?: boolean;
  vm?: boolean;
}

type ViccNote = { kind: 'ready' } | { kind: 'failed'; message: string } | { kind: 'log'; message: string } | { kind: 'closed' };

function isViccJob(d: unknown): d is ViccJob {
  return typeof d === 'object' && d !== null && (d as { role?: unknown }).role === VICC_ROLE;
}

const errText = (e: unknown) => (e instanceof Error ? e.message : String(e));

/** Worker side: opens the chip, connects it to vpcd, and on "close" disconnects and closes it (saving its state). */
function serveVicc(job: ViccJob, port: MessagePort): void {
  const note = (n: ViccNote) => port.postMessage(n);
  let chip: Chip;
  let vicc: ViccHandle;
  try {
    chip = openChip({
      ...(job.state !== undefined ? { state: job.state, create: false } : {}),
      ...(job.profile !== undefined ? { profile: job.profile } : {}),
      ...(job.protocol !== undefined ? { protocol: job.protocol } : {}),
      ...(job.fsync !== undefined ? { fsync: job.fsync } : {}),
      ...(job.vm !== undefined ? { vm: job.vm } : {}),
    });
  } catch (e) {
    note({ kind: 'failed', message: errText(e) });
    port.close();
    return;
  }
  chip.powerDown(); // vpcd powers the card up when pcscd asks
  vicc = connectToVpcd(chip, { port: job.port, reconnect: false, log: (message) => note({ kind: 'log', message }) });
  vicc.ready.then(
    () => note({ kind: 'ready' }),
    (e: unknown) => note({ kind: 'failed', message: errText(e) }),
  );
  port.on('message', (m: unknown) => {
    if (m !== 'close') return;
    void (async () => {
      await vicc.close().catch(() => undefined);
      try {
        chip.close();
      } catch (e) {
        note({ kind: 'log', message: `closing the chip failed: ${errText(e)}` });
      }
      note({ kind: 'closed' });
      port.close();
    })();
  });
}

if (!isMainThread && isViccJob(workerData) && parentPort) serveVicc(workerData, parentPort);

/**
 * The worker runs this module again. Its TypeScript is loaded through tsx's ESM hooks, registered in the worker (hooks of
 * the main thread, tsx's or vitest's, do not reach workers); the hook module's path comes from tsx's own exports map.
 */
function workerBootstrap(): string {
  const require = createRequire(import.meta.url);
  const pkgPath = require.resolve('tsx/package.json');
  const pkg = JSON.parse(readFileSync(pkgPath, 'utf8')) as { exports?: Record<string, { import?: { default?: string } } | string> };
  const entry = pkg.exports?.['./esm/api'];
  const rel = typeof entry === 'object' ? entry.import?.default : undefined;
  if (!rel) throw new Error(`tsx at ${pkgPath} has no ESM API export ("./esm/api")`);
  const api = pathToFileURL(join(dirname(pkgPath), rel)).href;
  return [
    "const { parentPort } = require('node:worker_threads');",
    `import(${JSON.stringify(api)})`,
    `  .then((tsx) => { tsx.register(); return import(${JSON.stringify(import.meta.url)}); })`,
    "  .catch((e) => parentPort.postMessage({ kind: 'failed', message: 'the vicc worker did not start: ' + (e && e.message ? e.message : String(e)) }));",
  ].join('\n');
}

/** Starts the worker; resolves once its vicc is connected to vpcd. close() ejects the card and saves the chip. */
async function startVicc(job: ViccJob, log: ((message: string) => void) | undefined): Promise<{ close(): Promise<void> }> {
  const worker = new Worker(workerBootstrap(), { eval: true, workerData: job });
  let closed: (() => void) | undefined;
  const done = new Promise<void>((r) => (closed = r));
  await new Promise<void>((resolve, reject) => {
    worker.on('message', (n: ViccNote) => {
      if (n.kind === 'ready') resolve();
      else if (n.kind === 'failed') reject(new Error(n.message));
      else if (n.kind === 'log') log?.(n.message);
      else closed?.();
    });
    worker.once('error', reject);
    worker.once('exit', (code) => {
      closed?.();
      reject(new Error(`the vicc worker exited (code ${code}) before it reached vpcd`));
    });
  }).catch(async (e: unknown) => {
    await worker.terminate();
    throw e;
  });
  return {
    close: async () => {
      worker.postMessage('close');
      // A worker that does not answer within 10 s is stopped (its chip then loses nothing committed: every write is).
      const timer = setTimeout(() => void worker.terminate(), 10_000);
      await done;
      clearTimeout(timer);
      await worker.terminate();
    },
  };
}
