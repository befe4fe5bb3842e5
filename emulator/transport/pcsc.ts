// Host-side access to a real PC/SC reader (pcscd) through the optional `smartcard` npm package, loaded on first use.

/** PC/SC cannot be used here: the `smartcard` package is missing or broken, pcscd is not running, or it has no reader. */
export class PcscUnavailable extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'PcscUnavailable';
  }
}

export interface PcscReaderInfo {
  name: string;
  cardPresent: boolean;
  /** ATR of the card in the reader, when pcscd knows one. */
  atr: Uint8Array | null;
}

export interface PcscConnectOptions {
  /** Exact reader name, or a case-insensitive substring of it; absent = the first reader holding a card. */
  reader?: string;
  /** SCARD_SHARE_EXCLUSIVE instead of SHARED. */
  exclusive?: boolean;
  /** Let the package answer T=0 61xx/6Cxx itself (GET RESPONSE / Le retry). Default false: raw responses. */
  autoGetResponse?: boolean;
}

export interface PcscConnection {
  readonly reader: string;
  /** ATR of the current power-up (refreshed by reset). */
  readonly atr: Uint8Array;
  readonly protocol: 'T=0' | 'T=1' | 'RAW';
  /** One C-APDU in, one R-APDU (data + SW1 SW2) out. Calls are queued: a card does one command at a time. */
  transmit(apdu: Uint8Array): Promise<Uint8Array>;
  /** Warm reset (SCardReconnect with SCARD_RESET_CARD); returns the new ATR. */
  reset(): Promise<Uint8Array>;
  /** Leaves the card powered (SCARD_LEAVE_CARD) and releases the PC/SC context. Idempotent. */
  close(): Promise<void>;
}

// The slice of the `smartcard` API used here (its own typings are not needed at compile time: the package is optional).
interface ScCard {
  readonly protocol: number;
  transmit(command: Buffer, options?: { maxRecvLength?: number; autoGetResponse?: boolean }): Promise<Buffer>;
  getStatus(): { state: number; protocol: number; atr: Buffer };
  disconnect(disposition?: number): void;
  reconnect(shareMode?: number, protocol?: number, initialization?: number): Promise<number>;
}
interface ScReader {
  readonly name: string;
  readonly state: number;
  readonly atr: Buffer | null;
  connect(shareMode?: number, protocol?: number): Promise<ScCard>;
}
interface ScContext {
  listReaders(): ScReader[];
  close(): void;
}
interface ScModule {
  Context: new () => ScContext;
  SCARD_SHARE_SHARED: number;
  SCARD_SHARE_EXCLUSIVE: number;
  SCARD_PROTOCOL_T0: number;
  SCARD_PROTOCOL_T1: number;
  SCARD_LEAVE_CARD: number;
  SCARD_RESET_CARD: number;
  SCARD_STATE_PRESENT: number;
  transmitWithAutoResponse?: (card: ScCard, command: Buffer, options?: { maxRecvLength?: number }) => Promise<Buffer>;
}

/** Room for an extended-length response: 65536 data bytes + SW1 SW2. */
const MAX_RECV = 65538;

let loaded: Promise<ScModule> | null = null;

function message(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/** Loads `smartcard` once; PcscUnavailable says how to get it when it is not installed or its addon did not build. */
export function loadSmartcard(): Promise<ScModule> {
  loaded ??= (async () => {
    const name = 'smartcard'; // a variable: type-checks and bundles without the optional package
    let ns: unknown;
    try {
      ns = await import(name);
    } catch (e) {
      const code = (e as { code?: unknown }).code;
      if (code === 'ERR_MODULE_NOT_FOUND' || code === 'MODULE_NOT_FOUND')
        throw new PcscUnavailable(
          'the optional npm package "smartcard" is not installed: run "npm install smartcard" (it builds a native addon and needs libpcsclite-dev, pkg-config and a C++ toolchain)',
        );
      throw new PcscUnavailable(`the npm package "smartcard" failed to load (native addon not built?): ${message(e)}`);
    }
    // CommonJS seen from ESM: the exports object is the default export.
    const mod = ((ns as { default?: unknown }).default ?? ns) as Partial<ScModule>;
    if (typeof mod.Context !== 'function' || typeof mod.SCARD_STATE_PRESENT !== 'number')
      throw new PcscUnavailable('the npm package "smartcard" does not have the expected API (Context, SCARD_* constants); version 3.x is needed');
    return mod as ScModule;
  })();
  const p = loaded;
  p.catch(() => {
    if (loaded === p) loaded = null; // let a later call retry, after an install
  });
  return p;
}

function openContext(sc: ScModule): ScContext {
  try {
    return new sc.Context();
  } catch (e) {
    throw new PcscUnavailable(
      `cannot reach the PC/SC service (${message(e)}): is pcscd running? Start it with "pcscd" as root or "bash .ci/pcscd.sh"`,
    );
  }
}

function readersOf(sc: ScModule, ctx: ScContext): ScReader[] {
  try {
    return ctx.listReaders();
  } catch (e) {
    throw new PcscUnavailable(`PC/SC could not list readers: ${message(e)}`);
  }
}

function info(sc: ScModule, r: ScReader): PcscReaderInfo {
  const present = (r.state & sc.SCARD_STATE_PRESENT) !== 0;
  return { name: r.name, cardPresent: present, atr: present && r.atr ? new Uint8Array(r.atr) : null };
}

/** The readers pcscd knows, with whether each holds a card. */
export async function listReaders(): Promise<PcscReaderInfo[]> {
  const sc = await loadSmartcard();
  const ctx = openContext(sc);
  try {
    return readersOf(sc, ctx).map((r) => info(sc, r));
  } finally {
    ctx.close();
  }
}

/**
 * Picks the reader to use: an exact name wins; otherwise the readers whose name contains `wanted` (any case), and of
 * those (or of all, when nothing is wanted) the first that holds a card, else the first. Errors list what exists.
 */
export function pickReader<T extends PcscReaderInfo>(readers: T[], wanted?: string): T {
  const names = readers.map((r) => `"${r.name}"${r.cardPresent ? '' : ' (empty)'}`).join(', ');
  if (!readers.length) throw new PcscUnavailable('pcscd has no reader (for the emulator over vpcd: apt-get install vsmartcard-vpcd)');
  if (wanted !== undefined && wanted.trim() === '') throw new Error('empty PC/SC reader name');
  const exact = wanted === undefined ? undefined : readers.find((r) => r.name === wanted);
  if (exact) return exact;
  const pool = wanted === undefined ? readers : readers.filter((r) => r.name.toLowerCase().includes(wanted.toLowerCase()));
  if (!pool.length) throw new Error(`no PC/SC reader matches "${wanted}"; readers: ${names}`);
  return pool.find((r) => r.cardPresent) ?? pool[0];
}

function protocolName(sc: ScModule, p: number): PcscConnection['protocol'] {
  return p === sc.SCARD_PROTOCOL_T0 ? 'T=0' : p === sc.SCARD_PROTOCOL_T1 ? 'T=1' : 'RAW';
}

/** Connects to a card in a reader (see pickReader for how `reader` is matched). */
export async function connectReader(opts: PcscConnectOptions = {}): Promise<PcscConnection> {
  const sc = await loadSmartcard();
  const ctx = openContext(sc);
  let card: ScCard;
  let name: string;
  try {
    const readers = readersOf(sc, ctx);
    const chosen = pickReader(
      readers.map((r) => ({ ...info(sc, r), reader: r })),
      opts.reader,
    );
    name = chosen.name;
    if (!chosen.cardPresent) throw new Error(`no card in PC/SC reader "${name}"`);
    const share = opts.exclusive ? sc.SCARD_SHARE_EXCLUSIVE : sc.SCARD_SHARE_SHARED;
    try {
      card = await chosen.reader.connect(share, sc.SCARD_PROTOCOL_T0 | sc.SCARD_PROTOCOL_T1);
    } catch (e) {
      throw new Error(`cannot connect to the card in "${name}": ${message(e)}`);
    }
  } catch (e) {
    ctx.close();
    throw e;
  }
  return wrap(sc, ctx, card, name, opts);
}

function wrap(sc: ScModule, ctx: ScContext, card: ScCard, reader: string, opts: PcscConnectOptions): PcscConnection {
  let atr = new Uint8Array(card.getStatus().atr);
  let protocol = protocolName(sc, card.protocol);
  let closed = false;
  let closing: Promise<void> | null = null;
  let queue: Promise<unknown> = Promise.resolve();
  const share = opts.exclusive ? sc.SCARD_SHARE_EXCLUSIVE : sc.SCARD_SHARE_SHARED;

  /** Runs one card operation after the previous one settled. */
  const serial = <T>(what: string, op: () => Promise<T>): Promise<T> => {
    const run = async () => {
      if (closed) throw new Error(`PC/SC ${what} on "${reader}": the connection is closed`);
      try {
        return await op();
      } catch (e) {
        throw new Error(`PC/SC ${what} on "${reader}" failed: ${message(e)}`);
      }
    };
    const p = queue.then(run, run);
    queue = p.catch(() => {});
    return p;
  };

  return {
    reader,
    get atr() {
      return atr;
    },
    get protocol() {
      return protocol;
    },
    transmit(apdu) {
      if (!(apdu instanceof Uint8Array) || apdu.length < 4) return Promise.reject(new Error(`a command APDU needs at least 4 bytes, got ${apdu?.length ?? 'none'}`));
      return serial('transmit', async () => {
        const cmd = Buffer.from(apdu);
        const rsp = opts.autoGetResponse && sc.transmitWithAutoResponse
          ? await sc.transmitWithAutoResponse(card, cmd, { maxRecvLength: MAX_RECV })
          : await card.transmit(cmd, { maxRecvLength: MAX_RECV });
        // vpcd passes on a vicc's empty answer (a power cut) as a successful empty response: no SW means no card.
        if (rsp.length < 2) throw new Error(`the card answered ${rsp.length} bytes, not even a status word (removed or powered off?)`);
        return new Uint8Array(rsp);
      });
    },
    reset() {
      return serial('reset', async () => {
        const p = await card.reconnect(share, sc.SCARD_PROTOCOL_T0 | sc.SCARD_PROTOCOL_T1, sc.SCARD_RESET_CARD);
        protocol = protocolName(sc, p);
        atr = new Uint8Array(card.getStatus().atr);
        return atr;
      });
    },
    close() {
      closing ??= (async () => {
        await queue;
        closed = true;
        try {
          card.disconnect(sc.SCARD_LEAVE_CARD);
        } catch {
          // The card may already be gone; the context is released below either way.
        }
        ctx.close();
      })();
      return closing;
    },
  };
}
