// npm run bench: throughput of the chip in-process, SCP03-wrapped, and the vpcd round trip; then the Java Card VM
// (bench/vm.ts): interpreter loops, sample applets and the predicted-vs-published cycle table; then the conversion time
// of the Java Card samples (bench/convert.ts); then the JPKI AP on a card and a phone (bench/jpki.ts); then the
// conformance suite's run time (bench/conformance.ts). Prints Markdown tables.
import { cpus, tmpdir } from 'node:os';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { openFileStore } from '../emulator/store.ts';
import { openChip } from '../emulator/card.ts';
import { fromHex } from '../emulator/bytes.ts';
import { hostUnwrap, hostWrap, openSecureChannel } from '../emulator/scp03.ts';
import { benchVm } from './vm.ts';
import { benchConvert, printConvertBench } from './convert.ts';
import { benchJpki, printJpkiBench } from './jpki.ts';
import { benchConformance, printConformanceBench } from './conformance.ts';

const KEY = fromHex('404142434445464748494A4B4C4D4E4F');

function rate(n: number, ms: number): number {
  return Math.round((n / ms) * 1000);
}

function timeLoop(n: number, body: () => void): number {
  const t0 = performance.now();
  for (let i = 0; i < n; i++) body();
  return performance.now() - t0;
}

async function main(): Promise<void> {
  const rows: [string, string, string][] = [];
  const chip = openChip();
  chip.powerUp();

  // Plain GET DATA (IIN) to the ISD, in-process.
  const getData = fromHex('80CA004200');
  timeLoop(20_000, () => chip.transmit(getData)); // warm-up
  const nPlain = 300_000;
  const plainMs = timeLoop(nPlain, () => chip.transmit(getData));
  rows.push(['plain GET DATA, in-process', `${rate(nPlain, plainMs).toLocaleString('en')} APDUs/s`, '≥ 100 000']);

  // SCP03 at C-MAC + C-DEC (level 03): host wrap, card unwrap/process/wrap, host unwrap — the whole exchange.
  for (const [level, label] of [
    [0x03, 'C-MAC + C-DEC'],
    [0x33, 'C-MAC + C-DEC + R-MAC + R-ENC'],
  ] as const) {
    const sc = await openSecureChannel(async (a) => chip.transmit(a), { keys: { enc: KEY, mac: KEY, dek: KEY }, level });
    const cmd = fromHex('80F28002024F0000');
    timeLoop(5_000, () => hostUnwrap(sc.session, chip.transmit(hostWrap(sc.session, cmd))));
    const nScp = 100_000;
    const ms = timeLoop(nScp, () => hostUnwrap(sc.session, chip.transmit(hostWrap(sc.session, cmd))));
    rows.push([`SCP03 ${label} GET STATUS (host + card)`, `${rate(nScp, ms).toLocaleString('en')} APDUs/s`, level === 0x03 ? '≥ 30 000' : '–']);
    chip.transmit(fromHex('00A4040000'));
  }

  // Durable commits: one 64-byte record per transaction to a state file, with and without fsync (the chip's default is on).
  const dir = mkdtempSync(join(tmpdir(), 'jpki-bench-'));
  try {
    for (const fsync of [true, false]) {
      const store = openFileStore(join(dir, `s${fsync}.img`), { fsync });
      const value = new Uint8Array(64).fill(0xa5);
      const n = fsync ? 500 : 20_000;
      const ms = timeLoop(n, () => {
        store.begin();
        store.put('bench/record', value);
        store.commit();
      });
      rows.push([`durable commit to a state file${fsync ? ' (fsync)' : ' (no fsync)'}`, `${rate(n, ms).toLocaleString('en')} commits/s`, 'reported']);
      store.close();
    }
    // A chip after 5 000 INITIALIZE UPDATEs (each commits the sequence counter): power-up replays or compacts the log.
    const chipPath = join(dir, 'chip.img');
    const c = openChip({ state: chipPath, fsync: false });
    c.powerUp();
    const iu = fromHex('8050300008112233445566778800');
    for (let i = 0; i < 5_000; i++) if (c.transmit(iu).at(-2) !== 0x90) throw new Error('INITIALIZE UPDATE failed');
    c.close();
    const size = statSync(chipPath).size;
    const t0 = performance.now();
    openChip({ state: chipPath, create: false }).close();
    rows.push(['open a state file after 5 000 commits', `${(performance.now() - t0).toFixed(1)} ms (${(size / 1024).toFixed(0)} KiB log)`, 'reported']);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }

  // vpcd round trip (needs pcscd with vsmartcard-vpcd for the PC/SC column).
  try {
    const { benchVpcd } = await import('./vpcd.ts');
    const v = await benchVpcd(5_000);
    rows.push(['vpcd protocol round trip (TCP, excl. pcscd), median', `${v.medianMs.toFixed(3)} ms (p95 ${v.p95Ms.toFixed(3)} ms)`, '≤ 1 ms']);
    if (v.viaPcscMedianMs !== undefined && v.viaPcscMedianMs !== null)
      rows.push(['PC/SC transmit through pcscd + vpcd, median', `${Number(v.viaPcscMedianMs).toFixed(3)} ms`, 'reported']);
  } catch (e) {
    rows.push(['vpcd round trip', `not measured: ${e instanceof Error ? e.message.split('\n')[0] : String(e)}`, '≤ 1 ms']);
  }

  console.log(`Machine: ${cpus().length} × ${cpus()[0]?.model ?? 'cpu'}, Node ${process.version}\n`);
  console.log('| measurement | result | target |\n|---|---|---|');
  for (const [a, b, c] of rows) console.log(`| ${a} | ${b} | ${c} |`);
  chip.close();

  // Java Card VM (issue 3): interpreter loops, sample applets, and the predicted-vs-published cycle table.
  const vm = await benchVm();
  console.log('\n### Java Card VM (issue 3)\n');
  console.log('| measurement | result | target |\n|---|---|---|');
  for (const [a, b, c] of vm.rows) console.log(`| ${a} | ${b} | ${c} |`);
  console.log(`\n${vm.cycleTable}`);

  printConvertBench(benchConvert());

  // JPKI AP (issue 5): sign and login throughput on an issued card and a provisioned phone, and the cycle model's view.
  printJpkiBench(await benchJpki());

  // Conformance suite (issue 6): the project's plan in-process and through pcscd + vpcd.
  printConformanceBench(await benchConformance());
}

await main();
