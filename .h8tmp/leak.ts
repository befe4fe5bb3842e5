import { hex } from '../emulator/bytes.ts';
import { ASM_SAMPLES, sampleBlock } from '../test/fixtures/asm/samples.ts';
import { tx } from '../test/helpers/chip.ts';
import { apdu, lv, vmChip, loadAndInstall } from '../test/helpers/vm-chip.ts';
const { chip, vm, logs } = vmChip();
chip.powerUp();
const P = ASM_SAMPLES.pin;
await loadAndInstall(chip, hex(P.packageAid), sampleBlock('pin'), hex(P.appletAid));
const u = () => JSON.stringify(vm.vm!.heap.usage());
console.log(u());
for (const c of ['00A40400' + lv(hex(P.appletAid)), '0024000001', '0024000001', '00A40400' + lv(hex(P.appletAid)), '0024000001','0020000004' + '31323335', '0020000004' + '31323334', '0022000000']) {
  const r = tx(chip, c);
  console.log(c, r.hex, u());
}
