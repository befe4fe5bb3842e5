// jpki-se chip serve: the chip as a virtual card for vsmartcard's vpcd, until SIGINT/SIGTERM.
import { existsSync } from 'node:fs';
import { openChip } from '../emulator/card.ts';
import { VPCD_PORT, connectToVpcd, listenForVpcd } from '../emulator/transport/vicc.ts';
import type { ViccCard } from '../emulator/transport/vicc.ts';
import type { Values } from './args.ts';
import { UsageError, flag, parseHostPort, str } from './args.ts';
import { traceLine } from './apdu.ts';
import type { Io } from './io.ts';
import { profileOption, requireState, summary } from './chip.ts';
import { vmReporter } from './vm-report.ts';

export async function chipServe(v: Values, io: Io): Promise<number> {
  const state = requireState(v);
  const profile = profileOption(v);
  const vpcdText = str(v, 'vpcd');
  const listenText = str(v, 'listen');
  if (vpcdText !== undefined && listenText !== undefined) throw new UsageError('give either --vpcd or --listen, not both');
  const listen = listenText === undefined ? undefined : parseHostPort('--listen', listenText, '127.0.0.1');
  const vpcd = vpcdText === undefined ? { host: '127.0.0.1', port: VPCD_PORT } : parseHostPort('--vpcd', vpcdText, '127.0.0.1');

  const created = !existsSync(state);
  // --cycles and --bytecode-trace report per APDU, so they bring the APDU trace with them.
  const vm = vmReporter(v, io.out);
  const chip = openChip({ state, profile, log: flag(v, 'verbose') ? (m) => io.out(`chip: ${m}`) : undefined, ...vm?.chip });
  // Retries repeat the same complaint every few seconds: say it once until something changes.
  let last = '';
  const log = (m: string) => {
    if (m !== last) io.out(m);
    last = m;
  };
  const card: ViccCard = flag(v, 'trace') || vm
    ? {
        get atr() {
          return chip.atr;
        },
        powerUp: () => chip.powerUp(),
        powerDown: () => chip.powerDown(),
        reset: () => chip.reset(),
        transmit(apdu) {
          io.out(traceLine('>>', apdu));
          vm?.begin();
          const r = chip.transmit(apdu);
          io.out(traceLine('<<', r));
          const line = vm?.end();
          if (line) io.out(line);
          return r;
        },
      }
    : chip;
  try {
    io.out(created ? `created ${state} (a new chip)` : `opened ${state}`);
    for (const line of summary(chip)) io.out(`  ${line}`);
    if (!listen) io.out(`connecting to vpcd at ${vpcd.host}:${vpcd.port}; retrying until it answers (is pcscd with vsmartcard-vpcd running?)`);
    const link = listen
      ? listenForVpcd(card, { host: listen.host, port: listen.port, log })
      : connectToVpcd(card, { host: vpcd.host, port: vpcd.port, reconnect: true, log });
    try {
      if (listen) await link.ready;
      io.out('Ctrl-C (SIGINT) or SIGTERM stops the chip');
      // A link that fails for good ends the command; otherwise it runs until a stop signal.
      const failed = link.ready.then(
        () => new Promise<never>(() => {}),
        (e: unknown) => Promise.reject(e),
      );
      const reason = await Promise.race([io.stop(), failed]);
      io.out(`${reason}: stopping`);
    } finally {
      await link.close();
    }
  } finally {
    chip.close();
  }
  io.out(`chip state saved in ${state}`);
  return 0;
}
