// The JCRE end to end: CAP load files through GP LOAD/INSTALL under SCP03, applet install/select/process/deselect,
// exceptions as status words, refusals at LOAD and INSTALL, persistence across power cycles, cycle reports and trace.
import { describe, expect, it } from 'vitest';
import { fromHex, hex } from '../emulator/bytes.ts';
import { PowerLoss, openMemoryStore } from '../emulator/store.ts';
import { openChip } from '../emulator/card.ts';
import { assemble } from '../emulator/vm/cap/asm.ts';
import { writeLoadFileDataBlock } from '../emulator/vm/cap/write.ts';
import { ASM_SAMPLES, assembleSample, sampleBlock } from './fixtures/asm/samples.ts';
import { HELLO, HELLO_APPLET_AID, HELLO_PACKAGE_AID } from './fixtures/samples.ts';
import { secure, tx } from './helpers/chip.ts';
import { apdu, gpInstall, gpLoad, loadAndInstall, lv, vmChip } from './helpers/vm-chip.ts';

const ECHO = ASM_SAMPLES.echo;
const COUNTER = ASM_SAMPLES.counter;
const select = (aid: Uint8Array | string) => {
  const a = typeof aid === 'string' ? aid : hex(aid);
  return '00A40400' + lv(a);
};

/** An applet that throws on demand: INS 01 NullPointerException, INS 02 ISOException(6A82), INS 03 SystemException. */
const PROBE = `
.package com.test.probe F0000000080001 1.0
.import javacard/framework
.applet F000000008000101 Probe
.class public Probe extends Applet
  .field private selects S
  .method protected <init>()V
    .stack 1
    aload_0
    invokespecial Applet.<init>()V
    return
  .end method
  .method public static install([BSB)V
    .stack 2
    new Probe
    dup
    invokespecial Probe.<init>()V
    invokevirtual Applet.register()V
    return
  .end method
  .method public select()Z
    .stack 3
    aload_0
    getfield_s_this selects
    sconst_1
    sadd
    putfield_s_this selects
    getfield_s_this selects
    sconst_3
    if_scmplt ok
    sconst_0
    sreturn
  ok:
    sconst_1
    sreturn
  .end method
  .method public process(Ljavacard/framework/APDU;)V
    .stack 3
    aload_0
    invokevirtual Applet.selectingApplet()Z
    ifeq dispatch
    return
  dispatch:
    aload_1
    invokevirtual APDU.getBuffer()[B
    sconst_1
    baload
    slookupswitch other 0x01:npe 0x02:iso 0x03:sys
  npe:
    aconst_null
    arraylength
    pop
    return
  iso:
    sspush 0x6A82
    invokestatic ISOException.throwIt(S)V
    return
  sys:
    sconst_1
    invokestatic SystemException.throwIt(S)V
    return
  other:
    return
  .end method
.end class
`;

/** Install without register(). */
const LAZY = `
.package com.test.lazy F0000000090001 1.0
.import javacard/framework
.applet F000000009000101 Lazy
.class public Lazy extends Applet
  .method public static install([BSB)V
    .stack 1
    return
  .end method
  .method public process(Ljavacard/framework/APDU;)V
    .stack 1
    return
  .end method
.end class
`;

describe('JCRE: applets from CAP load files (GP LOAD/INSTALL under SCP03)', () => {
  it('installs the echo sample and answers APDUs; ISOException gives its status word', async () => {
    const { chip, vm } = vmChip();
    await loadAndInstall(chip, hex(ECHO.packageAid), sampleBlock('echo'), hex(ECHO.appletAid));
    expect(tx(chip, select(ECHO.appletAid)).sw).toBe(0x9000);
    expect(tx(chip, '8001000003AABBCC00')).toMatchObject({ data: 'AABBCC', sw: 0x9000 });
    expect(tx(chip, '8002000000')).toMatchObject({ data: '000102030405060708090A0B0C0D0E0F10', sw: 0x9000 });
    const r = vm.lastReport()!;
    expect(r.bytecodes).toBeGreaterThan(17 * 8); // the 17-iteration loop
    expect(r.cycles).toBeGreaterThan(0);
    expect(r.nativeCalls).toBeGreaterThanOrEqual(3);
    expect(tx(chip, '8003000000').sw).toBe(0x6d00);
  });

  it('keeps the counter through transactions, aborts and power cycles', async () => {
    const store = openMemoryStore();
    const { chip } = vmChip({ store });
    await loadAndInstall(chip, hex(COUNTER.packageAid), sampleBlock('counter'), hex(COUNTER.appletAid));
    expect(tx(chip, select(COUNTER.appletAid)).sw).toBe(0x9000);
    expect(tx(chip, '8010000000').data).toBe('0001');
    expect(tx(chip, '8010000000').data).toBe('0002');
    expect(tx(chip, '8012000000').data).toBe('0002'); // aborted transaction: unchanged
    chip.powerDown();
    chip.powerUp();
    expect(tx(chip, select(COUNTER.appletAid)).sw).toBe(0x9000);
    expect(tx(chip, '8014000000').data).toBe('0002');
    // A new chip on the same medium (every command's writes were made durable before its response).
    const again = openChip({ store });
    expect(tx(again, select(COUNTER.appletAid)).sw).toBe(0x9000);
    expect(tx(again, '8010000000').data).toBe('0003');
  });

  it('propagates a power cut at a persistent write (tearing) as the chip losing power; the transaction is all-or-nothing', async () => {
    const { chip, vm } = vmChip();
    await loadAndInstall(chip, hex(COUNTER.packageAid), sampleBlock('counter'), hex(COUNTER.appletAid));
    expect(tx(chip, select(COUNTER.appletAid)).sw).toBe(0x9000);
    expect(tx(chip, '8010000000').data).toBe('0001');
    vm.vm!.heap.armTear(2); // inside the transaction of the next increment
    expect(() => chip.transmit(fromHex('8010000000'))).toThrow(PowerLoss);
    expect(chip.powered).toBe(false);
    expect(tx(chip, select(COUNTER.appletAid)).sw).toBe(0x9000);
    expect(tx(chip, '8014000000').data).toBe('0001');
  });

  it('maps uncaught exceptions: ISOException → its SW, anything else → 6F00; select() false → 6999', async () => {
    const { chip, logs } = vmChip();
    const pkg = assemble(PROBE, { file: 'probe.jca' }).pkg;
    await loadAndInstall(chip, 'F0000000080001', writeLoadFileDataBlock(pkg), 'F000000008000101');
    expect(tx(chip, select('F000000008000101')).sw).toBe(0x9000);
    expect(tx(chip, '8001000000').sw).toBe(0x6f00);
    expect(logs.some((l) => /uncaught java\.lang\.NullPointerException/.test(l))).toBe(true);
    expect(tx(chip, '8002000000').sw).toBe(0x6a82);
    expect(tx(chip, '8003000000').sw).toBe(0x6f00);
    expect(tx(chip, '8004000000').sw).toBe(0x9000);
    // The instance's field persists between selections; the third select() answers false.
    expect(tx(chip, select('F000000008000101')).sw).toBe(0x9000);
    expect(tx(chip, select('F000000008000101')).sw).toBe(0x6999);
  });

  it('refuses INSTALL when install() does not register, leaving nothing behind', async () => {
    const { chip, logs } = vmChip();
    const sc = await secure(chip);
    const pkg = assemble(LAZY, { file: 'lazy.jca' }).pkg;
    expect((await gpLoad(sc, 'F0000000090001', writeLoadFileDataBlock(pkg))).sw).toBe(0x9000);
    expect((await gpInstall(sc, 'F0000000090001', 'F000000009000101', 'F000000009000101')).sw).toBe(0x6a80);
    expect(logs.some((l) => /did not call register\(\)/.test(l))).toBe(true);
    expect((await sc.send(apdu(0x80, 0xf2, 0x40, 0x02, '4F00', 256))).sw).toBe(0x6a88); // no application
    // The placeholder CAP of the GP tests without `register` is refused the same way.
    expect((await gpLoad(sc, hex(HELLO_PACKAGE_AID), HELLO.block)).sw).toBe(0x9000);
    expect((await gpInstall(sc, hex(HELLO_PACKAGE_AID), hex(HELLO_APPLET_AID), hex(HELLO_APPLET_AID))).sw).toBe(0x6a80);
  });

  it('refuses at LOAD a CAP that does not link, with the reason logged and the registry unchanged', async () => {
    const { chip, logs } = vmChip();
    const sc = await secure(chip);
    const pkg = assembleSample('echo');
    // Point a virtual method reference at a token javacard.framework.APDU does not have.
    const i = pkg.constantPool.findIndex((e) => e.kind === 'virtualMethod' && !e.cls.internal);
    const e = pkg.constantPool[i];
    if (e.kind !== 'virtualMethod') throw new Error('no virtual method reference');
    pkg.constantPool[i] = { ...e, token: 0x7e };
    expect((await gpLoad(sc, hex(ECHO.packageAid), writeLoadFileDataBlock(pkg))).sw).toBe(0x6a80);
    expect(logs.some((l) => new RegExp(`ConstantPool component, entry ${i}: public virtual method token 126 does not exist`).test(l))).toBe(true);
    expect((await sc.send(apdu(0x80, 0xf2, 0x20, 0x02, '4F00', 256))).data).not.toContain(hex(ECHO.packageAid));
    // The good CAP loads afterwards.
    expect((await gpLoad(sc, hex(ECHO.packageAid), sampleBlock('echo'))).sw).toBe(0x9000);
  });

  it('traces bytecodes when asked', async () => {
    const { chip, vm } = vmChip();
    await loadAndInstall(chip, hex(ECHO.packageAid), sampleBlock('echo'), hex(ECHO.appletAid));
    tx(chip, select(ECHO.appletAid));
    const lines: string[] = [];
    vm.trace = (l) => lines.push(l);
    tx(chip, '8001000001AA00');
    vm.trace = undefined;
    expect(lines.length).toBe(vm.lastReport()!.bytecodes);
    expect(lines[0]).toMatch(/^A0000001510A0001:\d+\+0 aload_0 \| $/);
    expect(lines.some((l) => / slookupswitch /.test(l))).toBe(true);
  });

  it('deletes an applet and its package: the instance is gone, the AIDs can be reused', async () => {
    const { chip } = vmChip();
    await loadAndInstall(chip, hex(ECHO.packageAid), sampleBlock('echo'), hex(ECHO.appletAid));
    const sc = await secure(chip);
    expect((await sc.send(apdu(0x80, 0xe4, 0, 0x80, '4F' + lv(hex(ECHO.packageAid)), 256))).sw).toBe(0x9000);
    tx(chip, '00A4040000');
    await loadAndInstall(chip, hex(ECHO.packageAid), sampleBlock('echo'), hex(ECHO.appletAid));
    expect(tx(chip, select(ECHO.appletAid)).sw).toBe(0x9000);
    expect(tx(chip, '8001000002BEEF00').data).toBe('BEEF');
  });
});
