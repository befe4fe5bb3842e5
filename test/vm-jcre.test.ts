// JCRE behaviours end to end on a chip with the VM (applets from test/fixtures/asm loaded through GP under SCP03):
// transient memory cleared at deselect and reset, available memory and object deletion, MultiSelectable applets on
// two logical channels, Shareable interfaces across packages and the firewall, STORE DATA to an applet after INSTALL
// [for personalization], and an applet running SCP03 through GPSystem.getSecureChannel().
import { describe, expect, it } from 'vitest';
import { fromHex, hex } from '../emulator/bytes.ts';
import type { Chip } from '../emulator/card.ts';
import { encryptKeyData, hostWrap } from '../emulator/scp03.ts';
import { ASM_SAMPLES, TEST_APPLETS, sampleBlock, testAppletBlock } from './fixtures/asm/samples.ts';
import type { TestAppletName } from './fixtures/asm/samples.ts';
import { DEFAULT_KEY, secure, tx } from './helpers/chip.ts';
import { apdu, gpInstall, gpLoad, loadAndInstall, lv, vmChip } from './helpers/vm-chip.ts';

const select = (aid: Uint8Array | string, cla = '00') => cla + 'A40400' + lv(typeof aid === 'string' ? aid : hex(aid));
const aidOf = (name: TestAppletName, i = 0) => hex(TEST_APPLETS[name].appletAids[i]);

/** Loads a test package and installs its applets (every module, instance AID = module AID). */
async function installTest(chip: Chip, name: TestAppletName): Promise<void> {
  const t = TEST_APPLETS[name];
  const sc = await secure(chip);
  const l = await gpLoad(sc, hex(t.packageAid), testAppletBlock(name));
  if (l.sw !== 0x9000) throw new Error(`LOAD ${name}: ${l.sw.toString(16)}`);
  for (const a of t.appletAids) {
    const r = await gpInstall(sc, hex(t.packageAid), hex(a), hex(a));
    if (r.sw !== 0x9000) throw new Error(`INSTALL ${hex(a)}: ${r.sw.toString(16)}`);
  }
}

async function installEcho(chip: Chip): Promise<void> {
  const e = ASM_SAMPLES.echo;
  await loadAndInstall(chip, hex(e.packageAid), sampleBlock('echo'), hex(e.appletAid));
}

describe('transient arrays (JCRE 3.0.5 ch. 5)', () => {
  it('CLEAR_ON_DESELECT clears when the applet is deselected; CLEAR_ON_RESET survives that and clears on reset', async () => {
    const { chip } = vmChip();
    await installTest(chip, 'memory');
    await installEcho(chip);
    const memory = aidOf('memory');
    expect(tx(chip, select(memory)).sw).toBe(0x9000);
    expect(tx(chip, '8042000000').data).toBe('000000010200'); // isTransient: CLEAR_ON_RESET 1, CLEAR_ON_DESELECT 2, persistent 0
    expect(tx(chip, '8040070000').sw).toBe(0x9000);
    expect(tx(chip, '8042000000').data).toBe('070707010200');
    // Reselecting the same applet deselects it first (JCRE §4.? ): the deselect array is cleared.
    expect(tx(chip, select(memory)).sw).toBe(0x9000);
    expect(tx(chip, '8042000000').data).toBe('070007010200');
    expect(tx(chip, '8040080000').sw).toBe(0x9000);
    // Selecting another applet deselects this one.
    expect(tx(chip, select(ASM_SAMPLES.echo.appletAid)).sw).toBe(0x9000);
    expect(tx(chip, select(memory)).sw).toBe(0x9000);
    expect(tx(chip, '8042000000').data).toBe('080008010200');
    // Warm reset, then a power cycle: the reset array is cleared each time, the persistent one kept.
    expect(tx(chip, '8040090000').sw).toBe(0x9000);
    chip.reset();
    expect(tx(chip, select(memory)).sw).toBe(0x9000);
    expect(tx(chip, '8042000000').data).toBe('000009010200');
    expect(tx(chip, '80400A0000').sw).toBe(0x9000);
    chip.powerDown();
    chip.powerUp();
    expect(tx(chip, select(memory)).sw).toBe(0x9000);
    expect(tx(chip, '8042000000').data).toBe('00000A010200');
  });
});

describe('available memory and object deletion', () => {
  /** JCSystem.getAvailableMemory (int form) for persistent, transient reset and transient deselect memory. */
  function available(chip: Chip): { persistent: number; reset: number; deselect: number } {
    const r = tx(chip, '8044000000');
    expect(r.sw).toBe(0x9000);
    const b = fromHex(r.data);
    const int = (o: number) => ((b[o] << 24) | (b[o + 1] << 16) | (b[o + 2] << 8) | b[o + 3]) >>> 0;
    return { persistent: int(0), reset: int(4), deselect: int(8) };
  }

  it('allocation lowers getAvailableMemory; requestObjectDeletion gives unreachable objects back, and only then', async () => {
    const { chip, vm } = vmChip();
    await installTest(chip, 'memory');
    expect(tx(chip, select(aidOf('memory'))).sw).toBe(0x9000);
    expect(tx(chip, '804C000000').data).toBe('01'); // isObjectDeletionSupported
    const m0 = available(chip);
    expect(m0.persistent).toBeGreaterThan(32767); // the int form reports more than a short can
    expect(m0.reset).toBeLessThan(chip.profile.transientResetBytes); // the applet's own transient arrays and the JCRE's
    expect(m0.deselect).toBeLessThanOrEqual(chip.profile.transientDeselectBytes);

    expect(tx(chip, '8046010000').sw).toBe(0x9000); // junk = new byte[256]
    const m1 = available(chip);
    const header = m0.persistent - m1.persistent - 256;
    expect(header).toBeGreaterThanOrEqual(0); // 256 data bytes and an object header
    expect(header).toBeLessThan(64);
    expect(m1.reset).toBe(m0.reset);

    // Dropping the reference without asking for deletion frees nothing (JCSystem.requestObjectDeletion is explicit).
    expect(tx(chip, '804A000000').sw).toBe(0x9000);
    expect(available(chip).persistent).toBe(m1.persistent);

    // A transient CLEAR_ON_DESELECT array: its bytes come from deselect RAM, its header from persistent memory.
    expect(tx(chip, '8048008000').sw).toBe(0x9000); // junk = transient byte[128]
    const m2 = available(chip);
    expect(m0.deselect - m2.deselect).toBe(128);
    expect(m1.persistent - m2.persistent).toBe(header);

    // Now drop it and ask for deletion: both unreachable arrays go at the end of the command.
    const before = vm.vm!.heap.usage().objects;
    expect(tx(chip, '804A010000').sw).toBe(0x9000);
    expect(vm.vm!.heap.usage().objects).toBe(before - 2);
    const m3 = available(chip);
    expect(m3).toEqual(m0);
    // What is still referenced survives the collection.
    expect(tx(chip, '8040330000').sw).toBe(0x9000);
    expect(tx(chip, '8042000000').data).toBe('333333010200');
  });

  it('an allocation beyond the available memory is refused with SystemException (6F00) and leaves memory as it was', async () => {
    const { chip, logs } = vmChip();
    await installTest(chip, 'memory');
    expect(tx(chip, select(aidOf('memory'))).sw).toBe(0x9000);
    // 32767 transient bytes: more than the profile's deselect RAM. The first failure also creates the JCRE's one
    // SystemException instance (a reused temporary entry point, JCRE §6.2.1), so memory is compared from the second.
    expect(tx(chip, '80487FFF00').sw).toBe(0x6f00);
    expect(logs.some((l) => /uncaught javacard\.framework\.SystemException/.test(l))).toBe(true);
    const m0 = available(chip);
    expect(tx(chip, '80487FFF00').sw).toBe(0x6f00);
    expect(tx(chip, '80467FFF00').sw).toBe(0x9000); // 32767 persistent bytes do fit
    expect(tx(chip, '804A010000').sw).toBe(0x9000); // and are given back
    expect(available(chip)).toEqual(m0);
  });
});

describe('MultiSelectable (JCRE 3.0.5 §4.2) on logical channels', () => {
  it('a MultiSelectable applet is active on two channels at once; select(Z)/deselect(Z) see the other channel', async () => {
    const { chip } = vmChip();
    await installTest(chip, 'multi');
    await installEcho(chip);
    const multi = aidOf('multi');
    expect(tx(chip, select(multi)).sw).toBe(0x9000);
    expect(tx(chip, '8050000000').data).toBe('00000000'); // Applet.select() on the first selection
    expect(tx(chip, '80525A0000').sw).toBe(0x9000); // CLEAR_ON_DESELECT cod[0] = 5A
    expect(tx(chip, '0070000000')).toMatchObject({ data: '01', sw: 0x9000 }); // MANAGE CHANNEL open → channel 1
    expect(tx(chip, select(multi, '01')).sw).toBe(0x9000);
    // On channel 1: select(appInstAlreadyActive = true), same context so the same CLEAR_ON_DESELECT array.
    expect(tx(chip, '8150000000').data).toBe('0100015A');
    expect(tx(chip, '8050000000').data).toBe('0100005A');
    // Closing channel 1 deselects there with appInstStillActive = true: nothing is cleared.
    expect(tx(chip, '0070800100').sw).toBe(0x9000);
    expect(tx(chip, '8050000000').data).toBe('0101005A');
    // Deselected on its last channel: the context's CLEAR_ON_DESELECT memory goes.
    expect(tx(chip, select(ASM_SAMPLES.echo.appletAid)).sw).toBe(0x9000);
    expect(tx(chip, select(multi)).sw).toBe(0x9000);
    expect(tx(chip, '8050000000').data).toBe('01000000');
  });

  it('an applet that is not MultiSelectable cannot be selected on a second channel (6985)', async () => {
    const { chip } = vmChip();
    await installEcho(chip);
    await installTest(chip, 'multi');
    const echo = ASM_SAMPLES.echo.appletAid;
    expect(tx(chip, select(echo)).sw).toBe(0x9000);
    expect(tx(chip, '0070000000').data).toBe('01');
    expect(tx(chip, select(echo, '01')).sw).toBe(0x6985);
    expect(tx(chip, '8101000001AA00').sw).not.toBe(0x9000); // channel 1 did not get the echo applet
    // The MultiSelectable one goes on channel 1 while channel 0 keeps echo, and echo still answers there.
    expect(tx(chip, select(aidOf('multi'), '01')).sw).toBe(0x9000);
    expect(tx(chip, '8150000000').data).toBe('00000100');
    expect(tx(chip, '8001000001AA00').data).toBe('AA');
    // Once echo leaves channel 0 it may be selected on channel 1.
    expect(tx(chip, select(aidOf('multi'))).sw).toBe(0x9000);
    expect(tx(chip, select(echo, '01')).sw).toBe(0x9000);
    expect(tx(chip, '8101000001BB00').data).toBe('BB');
  });
});

describe('Shareable interfaces across packages (JCRE 3.0.5 §6.2.4)', () => {
  async function serverAndClient() {
    const r = vmChip();
    await installTest(r.chip, 'server');
    await installTest(r.chip, 'client');
    expect(tx(r.chip, select(aidOf('client'))).sw).toBe(0x9000);
    return r;
  }

  it('the client calls the server through the SIO; the server runs in its own context and sees the client AID', async () => {
    const { chip } = await serverAndClient();
    expect(tx(chip, '8070000000')).toMatchObject({ data: '0001', sw: 0x9000 });
    expect(tx(chip, '8070000000').data).toBe('0002');
    // getShareableInterfaceObject received the client's AID; getPreviousContextAID inside the server is the client.
    expect(tx(chip, '8072000000')).toMatchObject({ data: aidOf('client'), sw: 0x9000 });
    expect(tx(chip, '8074000000')).toMatchObject({ data: aidOf('client'), sw: 0x9000 });
    // The server's counter was written in the server's context: selected directly it reads the same.
    expect(tx(chip, select(aidOf('server'))).sw).toBe(0x9000);
    expect(tx(chip, '8060000000').data).toBe('0002');
  });

  it('the server may refuse (null → 6A88); a kept SIO reference keeps working across commands and power cycles', async () => {
    const { chip } = await serverAndClient();
    expect(tx(chip, '8070010000').sw).toBe(0x6a88);
    expect(tx(chip, '8078000000').sw).toBe(0x9000);
    expect(tx(chip, '807A000000').data).toBe('0001');
    chip.powerDown();
    chip.powerUp();
    expect(tx(chip, select(aidOf('client'))).sw).toBe(0x9000);
    expect(tx(chip, '807A000000').data).toBe('0002');
  });

  it('touching a server object that is not Shareable is a SecurityException: 6F00', async () => {
    const { chip, logs } = await serverAndClient();
    expect(tx(chip, '8076000000').sw).toBe(0x6f00);
    expect(logs.some((l) => /uncaught java\.lang\.SecurityException/.test(l))).toBe(true);
    expect(tx(chip, '8070000000').data).toBe('0001'); // the chip goes on
  });
});

describe('GP: STORE DATA to an applet after INSTALL [for personalization] (GPCS 2.3.1 §11.11)', () => {
  const forPerso = (aid: string) => apdu(0x80, 0xe6, 0x20, 0x00, '0000' + lv(aid) + '000000', 256);

  it('Application.processData gets each whole STORE DATA command (header + data) in a global buffer', async () => {
    const { chip } = vmChip();
    await installTest(chip, 'perso');
    const perso = aidOf('perso');
    const sc = await secure(chip);
    expect((await sc.send(forPerso(perso))).sw).toBe(0x9000);
    const d1 = hex(new TextEncoder().encode('first block'));
    const d2 = hex(new TextEncoder().encode('last'));
    expect(await sc.send(apdu(0x80, 0xe2, 0x00, 0x00, d1))).toMatchObject({ data: '', sw: 0x9000 });
    expect(await sc.send(apdu(0x80, 0xe2, 0x80, 0x01, d2))).toMatchObject({ data: '', sw: 0x9000 });
    expect(tx(chip, select(perso)).sw).toBe(0x9000);
    // The SD unwrapped the command: the applet sees the plain class byte.
    expect(tx(chip, '8080000000').data).toBe('80E28001' + lv(d2));
  });

  it('encrypted STORE DATA reaches the applet decrypted; the applet\'s ISOException is the status word', async () => {
    const { chip } = vmChip();
    await installTest(chip, 'perso');
    const perso = aidOf('perso');
    const sc = await secure(chip);
    expect((await sc.send(forPerso(perso))).sw).toBe(0x9000);
    const plain = Uint8Array.from({ length: 32 }, (_, i) => i + 1);
    expect((await sc.send(apdu(0x80, 0xe2, 0x60, 0x00, hex(encryptKeyData(DEFAULT_KEY, plain))))).sw).toBe(0x9000);
    expect((await sc.send(apdu(0x80, 0xe2, 0x00, 0x01, '00'.repeat(60)))).sw).toBe(0x6a80); // 65 bytes > 64: refused
    expect(tx(chip, select(perso)).sw).toBe(0x9000);
    expect(tx(chip, '8080000000').data).toBe('80E26000' + lv(hex(plain)));
  });

  it('writes the applet made before its exception persist, in RAM and across a power cycle (no transaction)', async () => {
    const { chip } = vmChip();
    await installTest(chip, 'perso');
    const perso = aidOf('perso');
    const sc = await secure(chip);
    expect((await sc.send(forPerso(perso))).sw).toBe(0x9000);
    expect((await sc.send(apdu(0x80, 0xe2, 0x00, 0x00, '0102'))).sw).toBe(0x9000);
    expect((await sc.send(apdu(0x80, 0xe2, 0x80, 0x01, 'EE03'))).sw).toBe(0x6a80);
    expect(tx(chip, select(perso)).sw).toBe(0x9000);
    expect(tx(chip, '8080000000').data).toBe('80E2800102EE03');
    chip.powerDown();
    chip.powerUp();
    expect(tx(chip, select(perso)).sw).toBe(0x9000);
    expect(tx(chip, '8080000000').data).toBe('80E2800102EE03');
  });

  it('Personalization is preferred and its output is the response data; an applet without the interfaces gets 6985', async () => {
    const { chip } = vmChip();
    await installTest(chip, 'perso');
    await installEcho(chip);
    const sc = await secure(chip);
    expect((await sc.send(forPerso(aidOf('perso', 1)))).sw).toBe(0x9000);
    expect(await sc.send(apdu(0x80, 0xe2, 0x80, 0x00, 'CAFE'))).toMatchObject({ data: '4F4BE202', sw: 0x9000 });
    expect((await sc.send(forPerso(hex(ASM_SAMPLES.echo.appletAid)))).sw).toBe(0x9000);
    expect((await sc.send(apdu(0x80, 0xe2, 0x80, 0x00, 'CAFE'))).sw).toBe(0x6985);
  });
});

describe('GP: an applet runs SCP03 through GPSystem.getSecureChannel() (GP API 1.6 SecureChannel)', () => {
  it('processSecurity opens the session; unwrap checks C-MAC and decrypts; wrap adds R-MAC and R-ENC', async () => {
    const { chip } = vmChip();
    await installTest(chip, 'perso');
    expect(tx(chip, select(aidOf('perso'))).sw).toBe(0x9000);
    // The host talks SCP03 to the selected applet with the keys of its security domain (the ISD).
    const sc = await secure(chip, 0x33);
    const data = hex(new TextEncoder().encode('secret command data'));
    // Level byte: AUTHENTICATED | R_ENCRYPTION | R_MAC | C_DECRYPTION | C_MAC, then the plain data.
    expect(await sc.send('80840000' + lv(data) + '00')).toMatchObject({ data: 'B3' + data, sw: 0x9000 });
    expect(await sc.send('8084000000')).toMatchObject({ data: 'B3', sw: 0x9000 }); // no data: MAC only
    expect(await sc.send('80840000' + lv(data) + '00')).toMatchObject({ data: 'B3' + data, sw: 0x9000 });
  });

  it('a bad C-MAC is refused (6982) and aborts the session until resetSecurity', async () => {
    const { chip } = vmChip();
    await installTest(chip, 'perso');
    expect(tx(chip, select(aidOf('perso'))).sw).toBe(0x9000);
    const sc = await secure(chip, 0x01);
    expect(await sc.send('8084000002ABCD00')).toMatchObject({ data: '81ABCD', sw: 0x9000 });
    const good = hostWrap(sc.session, fromHex('8084000002ABCD00'));
    const bad = good.slice();
    bad[bad.length - 2] ^= 1; // last MAC byte (Le follows)
    expect(hex(chip.transmit(bad))).toBe('6982');
    expect(hex(chip.transmit(good))).toBe('6985'); // aborted session: refused until resetSecurity
    expect(tx(chip, '8086000000').data).toBe('00');
    // Plain commands (no SM indication) pass unwrap unchanged once reset.
    expect(tx(chip, '8084000002ABCD00').data).toBe('00ABCD');
    // And a new session works.
    const again = await secure(chip, 0x01);
    expect((await again.send('8084000001EE00')).data).toBe('81EE');
  });

  it('the session is the applet\'s: it ends when the applet is deselected', async () => {
    const { chip } = vmChip();
    await installTest(chip, 'perso');
    await installEcho(chip);
    expect(tx(chip, select(aidOf('perso'))).sw).toBe(0x9000);
    const sc = await secure(chip, 0x01);
    const wrapped = hostWrap(sc.session, fromHex('8084000001EE00'));
    expect(tx(chip, select(ASM_SAMPLES.echo.appletAid)).sw).toBe(0x9000);
    expect(tx(chip, select(aidOf('perso'))).sw).toBe(0x9000);
    // No session any more: a command with the SM indication is not unwrapped (GP API: returned as it is).
    // The applet answers level 00 and the data as it came: EE and the 8-byte C-MAC.
    expect(hex(chip.transmit(wrapped))).toBe('00' + hex(wrapped.subarray(5, 5 + 9)) + '9000');
  });
});
