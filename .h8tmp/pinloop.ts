import { hex } from '../emulator/bytes.ts';
import { ASM_SAMPLES, sampleBlock } from '../test/fixtures/asm/samples.ts';
import { secure } from '../test/helpers/chip.ts';
import { gpInstall, apdu, lv, vmChip, loadAndInstall } from '../test/helpers/vm-chip.ts';
const { chip, vm, logs } = vmChip();
chip.powerUp();
const P = ASM_SAMPLES.pin;
await loadAndInstall(chip, hex(P.packageAid), sampleBlock('pin'), hex(P.appletAid));
const sc = await secure(chip);
for (let k = 0; k < 200; k++) {
  const d = await sc.send(apdu(0x80, 0xe4, 0x00, 0x00, '4F' + lv(hex(P.appletAid))));
  const i = await gpInstall(sc, hex(P.packageAid), hex(P.appletAid), hex(P.appletAid));
  if (i.sw !== 0x9000) { console.log('fail at', k, d.sw.toString(16), logs.slice(-2)); break; }
}
const h = vm.vm!.heap as any;
console.log(Object.keys(h));
