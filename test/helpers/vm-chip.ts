// Test helper: a chip with the VM, and GP LOAD / INSTALL of a Load File Data Block under SCP03.
import { concat, fromHex, hex } from '../../emulator/bytes.ts';
import { encodeCommand } from '../../emulator/apdu.ts';
import { encodeLength } from '../../emulator/tlv.ts';
import type { Chip, ChipOptions } from '../../emulator/card.ts';
import { openChip } from '../../emulator/card.ts';
import type { VmRuntime } from '../../emulator/vm/runtime.ts';
import { secure } from './chip.ts';
import type { Rsp } from './chip.ts';

type Sc = Awaited<ReturnType<typeof secure>>;

export const lv = (h: string): string => (h.length / 2).toString(16).padStart(2, '0').toUpperCase() + h;
export const apdu = (cla: number, ins: number, p1: number, p2: number, data: string, ne = 0): string =>
  hex(encodeCommand({ cla, ins, p1, p2, data: fromHex(data), ne }));

/** A chip with the VM runtime exposed. */
export function vmChip(opts: ChipOptions = {}): { chip: Chip; vm: VmRuntime; logs: string[] } {
  let vm: VmRuntime | undefined;
  const logs: string[] = [];
  const chip = openChip({ ...opts, log: (m) => logs.push(m), onVm: (r) => (vm = r) });
  return { chip, vm: vm!, logs };
}

/** INSTALL [for load] + LOAD blocks of 200 bytes; the last response. */
export async function gpLoad(sc: Sc, elfAid: string, block: Uint8Array): Promise<Rsp> {
  const r = await sc.send(apdu(0x80, 0xe6, 0x02, 0x00, lv(elfAid) + '00' + '00' + '00' + '00', 256));
  if (r.sw !== 0x9000) return r;
  const file = concat(Uint8Array.of(0xc4), encodeLength(block.length), block);
  let last = r;
  for (let i = 0, n = 0; i < file.length; i += 200, n++) {
    last = await sc.send(apdu(0x80, 0xe8, i + 200 >= file.length ? 0x80 : 0x00, n, hex(file.subarray(i, i + 200)), 256));
    if (last.sw !== 0x9000) return last;
  }
  return last;
}

/** INSTALL [for install and make selectable] with C9 application parameters. */
export async function gpInstall(sc: Sc, elf: string, mod: string, app: string, params = '', privs = '00'): Promise<Rsp> {
  return sc.send(apdu(0x80, 0xe6, 0x0c, 0x00, lv(elf) + lv(mod) + lv(app) + lv(privs) + lv('C9' + lv(params)) + '00', 256));
}

/** Opens SCP03, loads and installs; throws when a step does not answer 9000. */
export async function loadAndInstall(chip: Chip, elf: string, block: Uint8Array, mod: string, app = mod): Promise<void> {
  const sc = await secure(chip);
  const l = await gpLoad(sc, elf, block);
  if (l.sw !== 0x9000) throw new Error(`LOAD ${elf}: ${l.sw.toString(16)}`);
  const i = await gpInstall(sc, elf, mod, app);
  if (i.sw !== 0x9000) throw new Error(`INSTALL ${app}: ${i.sw.toString(16)}`);
}
