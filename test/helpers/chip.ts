// Test helpers: an in-memory chip, hex in/out, and an SCP03 session over it.
import { openChip } from '../../emulator/card.ts';
import type { Chip, ChipOptions } from '../../emulator/card.ts';
import { fromHex, hex } from '../../emulator/bytes.ts';
import { openSecureChannel } from '../../emulator/scp03.ts';
import type { KeySet } from '../../emulator/scp03.ts';

export const DEFAULT_KEY = fromHex('404142434445464748494A4B4C4D4E4F');
export const DEFAULT_KEYS: KeySet = { enc: DEFAULT_KEY, mac: DEFAULT_KEY, dek: DEFAULT_KEY };
export const ISD = 'A000000151000000';

export function newChip(opts: ChipOptions = {}): Chip {
  return openChip(opts);
}

export interface Rsp {
  data: string;
  sw: number;
  hex: string;
}

function split(r: Uint8Array): Rsp {
  return { data: hex(r.subarray(0, r.length - 2)), sw: (r[r.length - 2] << 8) | r[r.length - 1], hex: hex(r) };
}

/** Sends one APDU given in hex; returns data (hex) and SW. */
export function tx(chip: Chip, apdu: string): Rsp {
  return split(chip.transmit(fromHex(apdu)));
}

export async function secure(chip: Chip, level = 0x03, keys: KeySet = DEFAULT_KEYS, kvn = 0, channel = 0) {
  const transmit = async (a: Uint8Array) => chip.transmit(a);
  const cla = channel === 0 ? 0x80 : channel < 4 ? 0x80 | channel : 0xc0 | (channel - 4);
  const sc = await openSecureChannel(transmit, { keys, kvn, level, cla });
  return {
    ...sc,
    /** Wrapped command in hex → plain response. */
    async send(apdu: string): Promise<Rsp> {
      return split(await sc.transmit(fromHex(apdu)));
    },
  };
}
