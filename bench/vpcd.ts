// Round-trip latency of GET DATA over the vpcd protocol: to an in-process fake vpcd over loopback TCP (the vicc's own
// cost), and through the real pcscd + vsmartcard-vpcd with the `smartcard` package when both are there.
import { createServer } from 'node:net';
import type { Socket } from 'node:net';
import { openChip } from '../emulator/card.ts';
import { fromHex } from '../emulator/bytes.ts';
import { connectToVpcd, Ctrl, encodeFrame, frameReader } from '../emulator/transport/vicc.ts';
import { connectReader, listReaders } from '../emulator/transport/pcsc.ts';

export interface VpcdBench {
  medianMs: number;
  p95Ms: number;
  /** Median through pcscd, or null when pcscd/vpcd or the smartcard package is missing (see viaPcscSkipped). */
  viaPcscMedianMs: number | null;
  viaPcscSkipped?: string;
}

const GET_IIN = fromHex('80CA004200');
// The pcscd leg uses vpcd slot 1 (port 35963 + 1, reader "Virtual PCD 00 01") like test/pcsc.test.ts.
const PCSC_PORT = Number(process.env.JPKI_VPCD_BENCH_PORT ?? 35964);
const PCSC_READER = `Virtual PCD 00 ${String(PCSC_PORT - 35963).padStart(2, '0')}`;

function quantile(sorted: number[], q: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
}

/** A minimal vpcd: accepts one vicc and lets the caller send a payload and await its framed answer. */
async function fakeVpcd() {
  let socket: Socket | null = null;
  let accepted!: () => void;
  const ready = new Promise<void>((r) => (accepted = r));
  let pending: ((f: Uint8Array) => void) | null = null;
  const feed = frameReader((f) => {
    const p = pending;
    pending = null;
    p?.(f);
  });
  const server = createServer((s) => {
    socket = s;
    s.setNoDelay(true);
    s.on('data', (c: Buffer) => feed(new Uint8Array(c.buffer, c.byteOffset, c.length)));
    s.on('error', () => {});
    accepted();
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const addr = server.address();
  const port = addr && typeof addr === 'object' ? addr.port : 0;
  return {
    port,
    ready,
    send(payload: Uint8Array): void {
      socket?.write(encodeFrame(payload));
    },
    ask(payload: Uint8Array): Promise<Uint8Array> {
      return new Promise((resolve) => {
        pending = resolve;
        socket?.write(encodeFrame(payload));
      });
    },
    close: () =>
      new Promise<void>((r) => {
        socket?.destroy();
        server.close(() => r());
      }),
  };
}

async function viaFakeVpcd(n: number): Promise<number[]> {
  const chip = openChip();
  const vpcd = await fakeVpcd();
  const vicc = connectToVpcd(chip, { port: vpcd.port, reconnect: false });
  try {
    await vicc.ready;
    await vpcd.ready;
    vpcd.send(Uint8Array.of(Ctrl.POWER_ON));
    for (let i = 0; i < Math.min(200, n); i++) await vpcd.ask(GET_IIN); // warm-up
    const times: number[] = [];
    for (let i = 0; i < n; i++) {
      const t0 = performance.now();
      const r = await vpcd.ask(GET_IIN);
      times.push(performance.now() - t0);
      if (r[r.length - 2] !== 0x90) throw new Error(`GET DATA answered ${Buffer.from(r).toString('hex')}`);
    }
    return times;
  } finally {
    await vicc.close();
    await vpcd.close();
    chip.close();
  }
}

async function waitForCard(present: boolean, ms: number): Promise<boolean> {
  const t0 = Date.now();
  while (Date.now() - t0 < ms) {
    const r = (await listReaders()).find((x) => x.name === PCSC_READER);
    if (r && r.cardPresent === present) return true;
    await new Promise((res) => setTimeout(res, 50));
  }
  return false;
}

/** Median through pcscd, or the reason it could not be measured. */
async function viaPcscd(n: number): Promise<number | string> {
  let readers;
  try {
    readers = await listReaders();
  } catch (e) {
    return e instanceof Error ? e.message : String(e);
  }
  const reader = readers.find((r) => r.name === PCSC_READER);
  if (!reader) return `pcscd has no reader "${PCSC_READER}"`;
  if (reader.cardPresent) return `"${PCSC_READER}" already holds a card (another vicc on port ${PCSC_PORT})`;
  const chip = openChip();
  const vicc = connectToVpcd(chip, { port: PCSC_PORT, reconnect: false });
  try {
    await vicc.ready;
    if (!(await waitForCard(true, 10_000))) return `pcscd did not see the card in "${PCSC_READER}" within 10 s`;
    const card = await connectReader({ reader: PCSC_READER });
    try {
      for (let i = 0; i < Math.min(5, n); i++) await card.transmit(GET_IIN);
      const times: number[] = [];
      for (let i = 0; i < n; i++) {
        const t0 = performance.now();
        await card.transmit(GET_IIN);
        times.push(performance.now() - t0);
      }
      times.sort((a, b) => a - b);
      return quantile(times, 0.5);
    } finally {
      await card.close();
    }
  } finally {
    await vicc.close();
    chip.close();
  }
}

/**
 * n GET DATA round trips over loopback TCP to a fake vpcd; up to n (at most 200) more through pcscd when present.
 * Debian's vpcd 3.3 writes each frame as two send() calls, so Nagle + delayed ACK cost ~40 ms per message there.
 */
export async function benchVpcd(n: number): Promise<VpcdBench> {
  if (!Number.isInteger(n) || n < 1) throw new RangeError(`benchVpcd needs a positive whole number of round trips, got ${n}`);
  const times = (await viaFakeVpcd(n)).sort((a, b) => a - b);
  const pcsc = await viaPcscd(Math.min(n, 200));
  return {
    medianMs: quantile(times, 0.5),
    p95Ms: quantile(times, 0.95),
    viaPcscMedianMs: typeof pcsc === 'number' ? pcsc : null,
    ...(typeof pcsc === 'string' ? { viaPcscSkipped: pcsc } : {}),
  };
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const n = Number(process.argv[2] ?? 5000);
  console.log(await benchVpcd(n));
}
