import { hex } from '../emulator/bytes.ts';
import { ASM_SAMPLES, sampleBlock } from '../test/fixtures/asm/samples.ts';
import { secure, tx } from '../test/helpers/chip.ts';
import { gpLoad, gpInstall, apdu, lv, vmChip } from '../test/helpers/vm-chip.ts';

const { chip, vm, logs } = vmChip();
chip.powerUp();
for (const n of ['echo', 'counter', 'pin', 'rsa'] as const) {
  const b = sampleBlock(n);
  console.log(n, b.length);
}
const sc = await secure(chip);
let t0 = performance.now();
for (const n of ['echo', 'counter', 'pin', 'rsa'] as const) {
  const s = ASM_SAMPLES[n];
  const r = await gpLoad(sc, hex(s.packageAid), sampleBlock(n));
  const i = await gpInstall(sc, hex(s.packageAid), hex(s.appletAid), hex(s.appletAid));
  console.log(n, r.sw.toString(16), i.sw.toString(16), (performance.now() - t0).toFixed(1));
  t0 = performance.now();
}
// delete + load loop for echo
const E = ASM_SAMPLES.echo; const blk = sampleBlock('echo');
t0 = performance.now();
for (let k = 0; k < 200; k++) {
  const d = await sc.send(apdu(0x80, 0xe4, 0x00, 0x80, '4F' + lv(hex(E.packageAid)), 256));
  if (d.sw !== 0x9000) throw new Error('del ' + d.sw.toString(16));
  const r = await gpLoad(sc, hex(E.packageAid), blk);
  if (r.sw !== 0x9000) throw new Error('load ' + r.sw.toString(16));
}
await gpInstall(sc, hex(E.packageAid), hex(E.appletAid), hex(E.appletAid));
console.log('200 delete+load echo ms', (performance.now() - t0).toFixed(1));
console.log(tx(chip, '00A40400' + lv(hex(E.appletAid))).sw.toString(16));
const cmd = '0001000005' + '0102030405';
t0 = performance.now();
for (let k = 0; k < 50000; k++) tx(chip, cmd);
console.log('echo/s', (50000 / (performance.now() - t0) * 1000).toFixed(0));
console.log(logs.slice(-5));
