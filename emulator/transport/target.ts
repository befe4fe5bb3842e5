// One way for host tools to reach a card, whatever it is: the in-process emulator (fresh or from a state file) or a
// real PC/SC reader. Spec strings: "emulator", "emulator:<state file>", "state:<state file>", "pcsc", "pcsc:<reader>".
import { openChip } from '../card.ts';
import type { Chip, ChipOptions } from '../card.ts';
import { connectReader } from './pcsc.ts';

export interface Target {
  /** What was opened, for messages: "emulator", "emulator:chip.img", "pcsc:Virtual PCD 00 00". */
  name: string;
  /** ATR of the current power-up. */
  atr: Uint8Array;
  transmit(apdu: Uint8Array): Promise<Uint8Array>;
  /** Warm reset; returns the ATR. */
  reset(): Promise<Uint8Array>;
  close(): Promise<void>;
}

export interface TargetOptions {
  /** Chip options for emulator specs (state and create come from the spec). */
  chip?: Omit<ChipOptions, 'state' | 'create'>;
  /** PC/SC: exclusive access, and T=0 61xx/6Cxx handled by the package. */
  exclusive?: boolean;
  autoGetResponse?: boolean;
  log?: (message: string) => void;
}

export const TARGET_FORMS = ['emulator', 'emulator:<state file>', 'state:<state file>', 'pcsc', 'pcsc:<reader name or part of it>'];

/** Opens the card named by `spec`; an unknown spec gets an Error listing the accepted forms. */
export async function openTarget(spec: string, opts: TargetOptions = {}): Promise<Target> {
  if (typeof spec !== 'string') throw new TypeError(`target spec must be a string, got ${typeof spec}`);
  const colon = spec.indexOf(':');
  const kind = colon < 0 ? spec : spec.slice(0, colon);
  const arg = colon < 0 ? undefined : spec.slice(colon + 1);
  switch (kind) {
    case 'emulator':
    case 'state':
      if (arg === undefined) {
        if (kind === 'state') throw new Error('target "state:" needs a state file: state:<file>');
        return emulatorTarget('emulator', openChip({ ...opts.chip, log: opts.chip?.log ?? opts.log }));
      }
      if (arg.trim() === '') throw new Error(`target "${spec}" needs a state file after the colon`);
      return emulatorTarget(`${kind}:${arg}`, openChip({ ...opts.chip, log: opts.chip?.log ?? opts.log, state: arg, create: false }));
    case 'pcsc': {
      if (arg !== undefined && arg.trim() === '') throw new Error('target "pcsc:" needs a reader name (or use "pcsc" for the first reader with a card)');
      const c = await connectReader({ reader: arg, exclusive: opts.exclusive, autoGetResponse: opts.autoGetResponse });
      return {
        name: `pcsc:${c.reader}`,
        get atr() {
          return c.atr;
        },
        transmit: (apdu) => c.transmit(apdu),
        reset: () => c.reset(),
        close: () => c.close(),
      };
    }
    default:
      throw new Error(`unknown target "${spec}"; accepted: ${TARGET_FORMS.join(', ')}`);
  }
}

/** Power control a target may offer beyond reset (the emulator does; the conformance runner's power steps use it). */
export interface PowerControl {
  /** Cold power-up; returns the ATR. */
  powerUp(): Promise<Uint8Array>;
  powerDown(): Promise<void>;
}

/** The chip in-process, powered up. A transmit while powered down or after close is a rejection, like a card gone. */
export function emulatorTarget(name: string, chip: Chip): Target & PowerControl {
  let closed = false;
  let powered = true;
  const live = (what: string) => {
    if (closed) throw new Error(`target ${name} is closed`);
    if (!powered && what === 'transmit') throw new Error(`target ${name}: the card is powered down (use "power up")`);
  };
  try {
    chip.powerUp();
  } catch (e) {
    chip.close(); // release the state file's lock
    throw e;
  }
  return {
    name,
    get atr() {
      return chip.atr;
    },
    // async: a PowerLoss (simulated power cut) or a closed target becomes a rejection, like a card that vanished.
    transmit: async (apdu) => {
      live('transmit');
      return chip.transmit(apdu);
    },
    reset: async () => {
      live('reset');
      powered = true;
      return chip.reset();
    },
    powerUp: async () => {
      live('power up');
      powered = true;
      return chip.powerUp();
    },
    powerDown: async () => {
      live('power down');
      powered = false;
      chip.powerDown();
    },
    close: async () => {
      if (closed) return;
      closed = true;
      chip.close();
    },
  };
}
