// jpki-se apdu: send raw APDUs and trace them; the trace format is shared with "gp --trace".
import { hex } from '../emulator/bytes.ts';
import { swHex, swMeaning } from '../emulator/iso.ts';
import type { Values } from './args.ts';
import { UsageError, parseHex, str } from './args.ts';
import type { Io } from './io.ts';
import { openCliTarget } from './target.ts';
import { vmReporter } from './vm-report.ts';

export function traceLine(direction: '>>' | '<<', apdu: Uint8Array): string {
  if (direction === '>>') return `>> ${hex(apdu)}`;
  if (apdu.length < 2) return `<< ${hex(apdu)} (no status word)`;
  const sw = (apdu[apdu.length - 2] << 8) | apdu[apdu.length - 1];
  const data = apdu.subarray(0, apdu.length - 2);
  return `<< ${data.length ? hex(data) + ' ' : ''}${swHex(sw)} (${swMeaning(sw)})`;
}

/** Every APDU is checked before the card is touched: bad hex or a short command is a usage error naming which. */
export function parseApdus(texts: string[]): Uint8Array[] {
  return texts.map((t, i) => {
    const what = texts.length > 1 ? `APDU ${i + 1}` : 'APDU';
    const b = parseHex(what, t);
    if (b.length < 4) throw new UsageError(`${what} "${t}" has ${b.length} byte${b.length === 1 ? '' : 's'}; a command needs at least CLA INS P1 P2`);
    if (b.length > 65544) throw new UsageError(`${what} has ${b.length} bytes; the longest extended APDU has 65544`);
    return b;
  });
}

export async function apduCommand(v: Values, positionals: string[], io: Io): Promise<number> {
  const apdus = parseApdus(positionals);
  const vm = vmReporter(v, io.out);
  if (vm && str(v, 'reader') !== undefined) throw new UsageError('--cycles and --bytecode-trace need an emulated chip (--state FILE)');
  const target = await openCliTarget(v, vm?.chip);
  try {
    for (const a of apdus) {
      io.out(traceLine('>>', a));
      vm?.begin();
      const r = await target.transmit(a);
      io.out(traceLine('<<', r));
      const line = vm?.end();
      if (line) io.out(line);
    }
  } finally {
    await target.close();
  }
  return 0;
}
