// Durable chip state: a key/value store with atomic multi-key commits, kept as an append-only log of CRC-checked
// records. A commit is one record, so a process killed or a power cut mid-write leaves a torn tail that the next open
// drops: the state is always the last whole commit. A tearing hook cuts power at the Nth persistent write.
import {
  closeSync,
  existsSync,
  fstatSync,
  fsyncSync,
  openSync,
  readFileSync,
  readSync,
  renameSync,
  rmSync,
  writeFileSync,
  writeSync,
  ftruncateSync,
} from 'node:fs';
import { dirname } from 'node:path';
import { crc32 } from 'node:zlib';
import { concat, equal, readU16, readU32, u16, u32 } from './bytes.ts';

/** Thrown when the (simulated) power is cut; the host sees the card vanish, volatile state is lost. */
export class PowerLoss extends Error {
  constructor(detail = 'power lost') {
    super(detail);
    this.name = 'PowerLoss';
  }
}

/** A store that cannot be opened or used as asked (bad file, lock held, misuse of transactions). */
export class StoreError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'StoreError';
  }
}

export interface ChipStore {
  /** The state file, or null for an in-memory store. */
  readonly path: string | null;
  get(key: string): Uint8Array | undefined;
  has(key: string): boolean;
  /** Keys starting with prefix, sorted. */
  keys(prefix?: string): string[];
  /** Outside a transaction a write is its own atomic commit. */
  put(key: string, value: Uint8Array): void;
  delete(key: string): void;
  getJson<T>(key: string): T | undefined;
  putJson(key: string, value: unknown): void;
  begin(): void;
  commit(): void;
  /** Drops every write since begin(). */
  abort(): void;
  readonly inTransaction: boolean;
  /**
   * Tearing: power is cut at the nth persistent write from now (puts and deletes count one each; the commit record
   * itself counts one, and a cut there leaves a half-written record on the medium). Throws PowerLoss.
   */
  armTear(n: number): void;
  disarmTear(): void;
  readonly powered: boolean;
  /** Power returns: volatile state is gone, the state is re-read from the medium (torn tail dropped). */
  powerUp(): void;
  /** Persistent writes (puts + deletes) since open. */
  readonly writeCount: number;
  /** Bytes appended to the medium since open. */
  readonly bytesWritten: number;
  close(): void;
}

/** Where the log lives: a file or a buffer; both hold the same bytes. */
interface Medium {
  readonly path: string | null;
  read(): Uint8Array;
  append(bytes: Uint8Array): void;
  truncate(length: number): void;
  /** Atomically replaces the whole content (compaction). */
  replace(bytes: Uint8Array): void;
  close(): void;
}

// File layout: MAGIC (8 bytes), then records: u32 payload length | u32 CRC-32 of payload | payload.
// Payload: u32 op count, then ops: u8 kind (1 put, 2 delete) | u16 key length | key UTF-8 | (put) u32 length | value.
const MAGIC = new TextEncoder().encode('JPKISE\x00\x01');
const OP_PUT = 1;
const OP_DELETE = 2;
const RECORD_HEADER = 8;
const MAX_RECORD = 256 * 1024 * 1024;
const COMPACT_MIN = 256 * 1024;

type Op = { key: string; value: Uint8Array | null };

function encodeRecord(ops: Op[]): Uint8Array {
  const enc = new TextEncoder();
  const parts: Uint8Array[] = [u32(ops.length)];
  for (const op of ops) {
    const k = enc.encode(op.key);
    if (k.length > 0xffff) throw new StoreError(`key too long (${k.length} bytes): ${op.key.slice(0, 40)}…`);
    parts.push(Uint8Array.of(op.value ? OP_PUT : OP_DELETE), u16(k.length), k);
    if (op.value) parts.push(u32(op.value.length), op.value);
  }
  const payload = concat(...parts);
  return concat(u32(payload.length), u32(crc32(payload) >>> 0), payload);
}

function decodePayload(p: Uint8Array, at: number): Op[] {
  const dec = new TextDecoder('utf-8', { fatal: true });
  const fail = (what: string): never => {
    throw new StoreError(`corrupt record at offset ${at}: ${what}`);
  };
  if (p.length < 4) fail('no op count');
  const n = readU32(p, 0);
  let o = 4;
  const ops: Op[] = [];
  for (let i = 0; i < n; i++) {
    if (o + 3 > p.length) fail(`op ${i} truncated`);
    const kind = p[o];
    const kl = readU16(p, o + 1);
    o += 3;
    if (o + kl > p.length) fail(`key of op ${i} truncated`);
    const key = dec.decode(p.subarray(o, o + kl));
    o += kl;
    if (kind === OP_DELETE) {
      ops.push({ key, value: null });
    } else if (kind === OP_PUT) {
      if (o + 4 > p.length) fail(`value length of op ${i} truncated`);
      const vl = readU32(p, o);
      o += 4;
      if (o + vl > p.length) fail(`value of op ${i} truncated`);
      ops.push({ key, value: p.slice(o, o + vl) });
      o += vl;
    } else fail(`op ${i} has unknown kind ${kind}`);
  }
  if (o !== p.length) fail(`${p.length - o} trailing bytes`);
  return ops;
}

/**
 * Replays the log. A record that is short or fails its CRC ends the log (a torn write: everything after it is
 * dropped). A record whose CRC holds but whose content does not parse is corruption, not tearing: that is an error.
 */
function replay(bytes: Uint8Array, where: string): { data: Map<string, Uint8Array>; validLength: number } {
  const data = new Map<string, Uint8Array>();
  if (bytes.length === 0) return { data, validLength: 0 };
  if (bytes.length < MAGIC.length || !equal(bytes.subarray(0, MAGIC.length), MAGIC)) {
    // A header torn during creation is the only way a short prefix of MAGIC appears.
    if (bytes.length < MAGIC.length && equal(bytes, MAGIC.subarray(0, bytes.length))) return { data, validLength: 0 };
    throw new StoreError(`${where} is not a jpki-se chip state (bad magic)`);
  }
  let o = MAGIC.length;
  while (o + RECORD_HEADER <= bytes.length) {
    const len = readU32(bytes, o);
    const crc = readU32(bytes, o + 4);
    if (len > MAX_RECORD || o + RECORD_HEADER + len > bytes.length) break;
    const payload = bytes.subarray(o + RECORD_HEADER, o + RECORD_HEADER + len);
    if ((crc32(payload) >>> 0) !== crc) break;
    for (const op of decodePayload(payload, o)) {
      if (op.value) data.set(op.key, op.value);
      else data.delete(op.key);
    }
    o += RECORD_HEADER + len;
  }
  return { data, validLength: o };
}

function memoryMedium(): Medium {
  let buf: Uint8Array = new Uint8Array(0);
  return {
    path: null,
    read: () => buf,
    append: (b) => {
      buf = concat(buf, b);
    },
    truncate: (n) => {
      buf = buf.slice(0, n);
    },
    replace: (b) => {
      buf = b.slice();
    },
    close: () => {},
  };
}

// Paths open in this process: a second open would interleave two logs.
const openPaths = new Set<string>();

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** One writer per state file: a lock file holding the owner's pid; a dead owner's lock is taken over. */
function takeLock(path: string): string {
  const lock = `${path}.lock`;
  if (openPaths.has(path)) throw new StoreError(`${path} is already open in this process`);
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const fd = openSync(lock, 'wx');
      writeSync(fd, String(process.pid));
      closeSync(fd);
      openPaths.add(path);
      return lock;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw new StoreError(`cannot lock ${path}: ${(e as Error).message}`);
      const owner = Number.parseInt(readFileSync(lock, 'utf8'), 10);
      if (Number.isInteger(owner) && owner !== process.pid && pidAlive(owner))
        throw new StoreError(`${path} is in use by process ${owner} (lock ${lock})`);
      rmSync(lock, { force: true });
    }
  }
  throw new StoreError(`cannot lock ${path}: lock file keeps reappearing`);
}

function fileMedium(path: string, create: boolean, fsync: boolean): Medium {
  if (!existsSync(path) && !create) throw new StoreError(`${path} does not exist (create a chip with "jpki-se chip new")`);
  const lock = takeLock(path);
  let fd: number;
  try {
    fd = openSync(path, 'a+');
  } catch (e) {
    openPaths.delete(path);
    rmSync(lock, { force: true });
    throw new StoreError(`cannot open ${path}: ${(e as Error).message}`);
  }
  const sync = (f: number) => {
    if (fsync) fsyncSync(f);
  };
  return {
    path,
    read: () => {
      const size = fstatSync(fd).size;
      const b = new Uint8Array(size);
      let o = 0;
      while (o < size) {
        const n = readSyncAt(fd, b, o);
        if (n === 0) break;
        o += n;
      }
      return b.subarray(0, o);
    },
    append: (b) => {
      let o = 0;
      while (o < b.length) o += writeSync(fd, b, o, b.length - o);
      sync(fd);
    },
    truncate: (n) => {
      ftruncateSync(fd, n);
      sync(fd);
    },
    replace: (b) => {
      // Write aside, make it durable, then rename over: at every instant one whole file is in place.
      const tmp = `${path}.tmp`;
      writeFileSync(tmp, b);
      if (fsync) {
        const t = openSync(tmp, 'r+');
        fsyncSync(t);
        closeSync(t);
      }
      renameSync(tmp, path);
      if (fsync) syncDir(dirname(path));
      closeSync(fd);
      fd = openSync(path, 'a+');
    },
    close: () => {
      closeSync(fd);
      rmSync(lock, { force: true });
      openPaths.delete(path);
    },
  };
}

function readSyncAt(fd: number, b: Uint8Array, o: number): number {
  // Positional read from the start, independent of the append cursor.
  return readSync(fd, b, o, b.length - o, o);
}

function syncDir(dir: string): void {
  try {
    const d = openSync(dir, 'r');
    fsyncSync(d);
    closeSync(d);
  } catch {
    // Some file systems refuse fsync on a directory; the rename is still atomic there.
  }
}

function openStore(medium: Medium): ChipStore {
  let committed = new Map<string, Uint8Array>();
  let logLength = 0;
  let pending: Map<string, Uint8Array | null> | null = null;
  let powered = true;
  let tearAt = 0; // 0 = disarmed; else the write number (counted from arming) that cuts power
  let tearCount = 0;
  let writeCount = 0;
  let bytesWritten = 0;
  let closed = false;

  function load(): void {
    const bytes = medium.read();
    const { data, validLength } = replay(bytes, medium.path ?? 'memory store');
    committed = data;
    if (validLength === 0) {
      medium.replace(MAGIC);
      logLength = MAGIC.length;
    } else {
      if (validLength < bytes.length) medium.truncate(validLength);
      logLength = validLength;
    }
  }
  load();

  const live = (): void => {
    if (closed) throw new StoreError('store is closed');
    if (!powered) throw new PowerLoss('no power: call powerUp() first');
  };

  /** Counts one persistent write; cuts power when the armed count is reached. */
  function tick(): void {
    if (tearAt === 0) return;
    tearCount++;
    if (tearCount >= tearAt) {
      tearAt = 0;
      powered = false;
      pending = null;
      throw new PowerLoss(`power cut at persistent write ${tearCount}`);
    }
  }

  function write(ops: Op[]): void {
    if (ops.length === 0) return;
    const rec = encodeRecord(ops);
    if (tearAt !== 0 && tearCount + 1 >= tearAt) {
      // Cut in the middle of the record: half of it reaches the medium, as on a real power cut.
      medium.append(rec.subarray(0, Math.max(1, rec.length >> 1)));
      tick();
    }
    medium.append(rec);
    logLength += rec.length;
    bytesWritten += rec.length;
    for (const op of ops) {
      if (op.value) committed.set(op.key, op.value);
      else committed.delete(op.key);
    }
    maybeCompact();
  }

  function liveSize(): number {
    let n = MAGIC.length + RECORD_HEADER + 4;
    for (const [k, v] of committed) n += 7 + k.length * 3 + v.length;
    return n;
  }

  function maybeCompact(): void {
    if (logLength < COMPACT_MIN) return;
    const size = liveSize();
    if (logLength < 4 * size) return;
    const snapshot = concat(MAGIC, encodeRecord([...committed].map(([key, value]) => ({ key, value }))));
    medium.replace(snapshot);
    logLength = snapshot.length;
  }

  function set(key: string, value: Uint8Array | null): void {
    live();
    tick();
    writeCount++;
    if (pending) pending.set(key, value);
    else write([{ key, value }]);
  }

  function get(key: string): Uint8Array | undefined {
    live();
    if (pending?.has(key)) return pending.get(key) ?? undefined;
    return committed.get(key);
  }

  return {
    path: medium.path,
    get,
    has: (key) => get(key) !== undefined,
    keys(prefix = '') {
      live();
      const all = new Set<string>();
      for (const k of committed.keys()) if (k.startsWith(prefix)) all.add(k);
      if (pending)
        for (const [k, v] of pending) {
          if (!k.startsWith(prefix)) continue;
          if (v) all.add(k);
          else all.delete(k);
        }
      return [...all].sort();
    },
    put: (key, value) => set(key, value.slice()),
    delete: (key) => set(key, null),
    getJson<T>(key: string): T | undefined {
      const v = get(key);
      if (v === undefined) return undefined;
      try {
        return JSON.parse(new TextDecoder().decode(v)) as T;
      } catch {
        throw new StoreError(`value of ${key} is not JSON`);
      }
    },
    putJson: (key, value) => set(key, new TextEncoder().encode(JSON.stringify(value))),
    begin() {
      live();
      if (pending) throw new StoreError('begin: a transaction is already open');
      pending = new Map();
    },
    commit() {
      live();
      if (!pending) throw new StoreError('commit: no transaction is open');
      const ops = [...pending].map(([key, value]) => ({ key, value }));
      try {
        write(ops);
      } finally {
        pending = null;
      }
    },
    abort() {
      if (!pending) throw new StoreError('abort: no transaction is open');
      pending = null;
    },
    get inTransaction() {
      return pending !== null;
    },
    armTear(n) {
      if (!Number.isInteger(n) || n < 1) throw new StoreError(`armTear: n must be a positive integer, got ${n}`);
      tearAt = n;
      tearCount = 0;
    },
    disarmTear() {
      tearAt = 0;
    },
    get powered() {
      return powered;
    },
    powerUp() {
      if (closed) throw new StoreError('store is closed');
      pending = null;
      load();
      powered = true;
    },
    get writeCount() {
      return writeCount;
    },
    get bytesWritten() {
      return bytesWritten;
    },
    close() {
      if (closed) return;
      closed = true;
      pending = null;
      medium.close();
    },
  };
}

/** Opens (or creates) a state file. fsync (default true) makes each commit durable before it returns. */
export function openFileStore(path: string, opts: { create?: boolean; fsync?: boolean } = {}): ChipStore {
  const medium = fileMedium(path, opts.create ?? true, opts.fsync ?? true);
  try {
    return openStore(medium);
  } catch (e) {
    medium.close();
    throw e;
  }
}

/** A store in memory with the same log format and semantics (tests, throw-away chips). */
export function openMemoryStore(): ChipStore {
  return openStore(memoryMedium());
}
