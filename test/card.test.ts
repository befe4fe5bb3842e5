// The chip's ISO 7816-4 layer: SELECT, logical channels, GET RESPONSE, malformed commands.
import { describe, it, expect } from 'vitest';
import { newChip, tx, ISD } from './helpers/chip.ts';
import { testPackage, ECHO, ECHO2, SINGLE } from './fixtures/native-applets.ts';
import { openChip } from '../emulator/card.ts';
import { hex } from '../emulator/bytes.ts';
import { parseTlvs } from '../emulator/tlv.ts';

/** A chip with two echo instances and one single-selection applet installed from the native test package. */
async function chipWithApplets(protocol: 'T=0' | 'T=1' = 'T=1') {
  const chip = openChip({ nativePackages: [testPackage], protocol });
  const { secure } = await import('./helpers/chip.ts');
  const sc = await secure(chip);
  for (const [mod, aid] of [['F0000000AA01', ECHO], ['F0000000AA01', ECHO2], ['F0000000AA02', SINGLE]]) {
    const data = `05F0000000AA06${mod}07${aid}0100` + '02C900' + '00';
    const r = await sc.send(`80E60C00${(data.length / 2).toString(16).padStart(2, '0')}${data}00`);
    expect(r.sw, `install ${aid}`).toBe(0x9000);
  }
  return chip;
}

describe('power-up and the default selection', () => {
  it('answers the ATR and has the ISD selected on channel 0', () => {
    const chip = newChip();
    const atr = chip.powerUp();
    expect(hex(atr)).toBe(hex(chip.profile.atr));
    // T=1 ATR: TCK makes the XOR of T0..TCK zero (ISO 7816-3 §8.2.5).
    expect(atr.subarray(1).reduce((a, b) => a ^ b, 0)).toBe(0);
    expect(tx(chip, '80CA004200').sw).toBe(0x9000); // GET DATA reaches the ISD without any SELECT
  });
});

describe('SELECT by name', () => {
  it('selects the ISD by full AID, by partial AID and with no data, and returns its FCI', () => {
    const chip = newChip();
    for (const cmd of ['00A4040008A00000015100000000', '00A4040004A000000100', '00A4040000']) {
      const r = tx(chip, cmd);
      expect(r.sw, cmd).toBe(0x9000);
      const [fci] = parseTlvs(Buffer.from(r.data, 'hex'));
      expect(fci.tag).toBe(0x6f);
      const inner = parseTlvs(fci.value);
      expect(hex(inner.find((t) => t.tag === 0x84)!.value)).toBe(ISD);
      const a5 = parseTlvs(inner.find((t) => t.tag === 0xa5)!.value);
      expect(a5.map((t) => t.tag)).toContain(0x73);
      expect(a5.map((t) => t.tag)).toContain(0x9f65);
    }
  });

  it('P2 0C returns no FCI; bad P2 is 6A86; unknown AID is 6A82', () => {
    const chip = newChip();
    expect(tx(chip, '00A4040C08A00000015100000000')).toMatchObject({ sw: 0x9000, data: '' });
    expect(tx(chip, '00A4041008A000000151000000').sw).toBe(0x6a86);
    expect(tx(chip, '00A4040108A000000151000000').sw).toBe(0x6a86); // last occurrence: not supported
    expect(tx(chip, '00A4040005D392F00026').sw).toBe(0x6a82);
    expect(tx(chip, '00A40200020018').sw).toBe(0x6a86); // the ISD has no files
  });

  it('selects next occurrences of a partial AID in registry order', async () => {
    const chip = await chipWithApplets();
    expect(tx(chip, '00A4040006F0000000AA0100')).toMatchObject({ sw: 0x9000, data: ECHO });
    expect(tx(chip, '00A4040206F0000000AA0100')).toMatchObject({ sw: 0x9000, data: ECHO2 });
    // No further occurrence: as on a JCRE the SELECT then goes to the selected applet (ECHO2 answers 6D00).
    expect(tx(chip, '00A4040206F0000000AA0100').sw).toBe(0x6d00);
    tx(chip, '00A4040008A000000151000000');
    expect(tx(chip, '00A4040205F0000000BB').sw).toBe(0x6a82); // from the ISD: not found
    expect(tx(chip, '00A4040005F0000000AA00')).toMatchObject({ sw: 0x9000, data: ECHO });
  });

  it('an unmatched SELECT goes to the selected applet, as a JCRE does', async () => {
    const chip = await chipWithApplets();
    tx(chip, '00A4040007' + ECHO);
    // The echo applet does not know INS A4 and answers 6D00 itself; the ISD would have said 6A82.
    expect(tx(chip, '00A4040005D392F00026').sw).toBe(0x6d00);
  });
});

describe('logical channels (MANAGE CHANNEL)', () => {
  it('opens, uses and closes channels; a closed channel is 6881', () => {
    const chip = newChip();
    const open = tx(chip, '0070000001');
    expect(open).toMatchObject({ sw: 0x9000, data: '01' });
    expect(tx(chip, '81CA004200').sw).toBe(0x9000); // default selection (ISD) on the new channel
    expect(tx(chip, '017080010100').sw).toBe(0x6700); // MANAGE CHANNEL close takes no data
    expect(tx(chip, '00708001').sw).toBe(0x9000);
    expect(tx(chip, '81CA004200').sw).toBe(0x6881);
    expect(tx(chip, '00708001').sw).toBe(0x6881);
    expect(tx(chip, '00708000').sw).toBe(0x6a86); // the basic channel cannot be closed
    expect(tx(chip, '00700100').sw).toBe(0x6a86);
  });

  it('offers channels 1–19, using the further interindustry class for 4–19', () => {
    const chip = newChip();
    for (let i = 1; i < 20; i++) expect(tx(chip, '0070000001')).toMatchObject({ sw: 0x9000, data: i.toString(16).padStart(2, '0').toUpperCase() });
    expect(tx(chip, '0070000001').sw).toBe(0x6a81);
    expect(tx(chip, '4FCA004200').sw).toBe(0x9000); // channel 19
    expect(tx(chip, '0070800F').sw).toBe(0x9000);
    expect(tx(chip, '4BCA004200').sw).toBe(0x6881); // channel 15 is closed
    expect(tx(chip, '0070000F').sw).toBe(0x9000); // open a given channel
    expect(tx(chip, '0070000F').sw).toBe(0x6985);
  });

  it('keeps selections per channel and refuses a second selection of a non-multi-selectable applet', async () => {
    const chip = await chipWithApplets();
    expect(tx(chip, '00A4040007' + ECHO).sw).toBe(0x9000);
    tx(chip, '0070000001');
    expect(tx(chip, '01A4040007' + ECHO).sw).toBe(0x9000); // multi-selectable
    expect(tx(chip, '0003000000')).toMatchObject({ data: '00' }); // the applet sees which channel it runs on
    expect(tx(chip, '0103000000')).toMatchObject({ data: '01' });
    expect(tx(chip, '00A4040007' + SINGLE).sw).toBe(0x9000);
    expect(tx(chip, '01A4040007' + SINGLE).sw).toBe(0x6985);
    // Opening a channel from channel 1 selects the same application there.
    expect(tx(chip, '0170000001')).toMatchObject({ data: '02' });
    expect(tx(chip, '0203000000')).toMatchObject({ data: '02', sw: 0x9000 });
  });
});

describe('responses longer than Ne: 61xx and GET RESPONSE', () => {
  it('splits a 600-byte response into 256-byte pieces', async () => {
    const chip = await chipWithApplets();
    tx(chip, '00A4040007' + ECHO);
    const first = tx(chip, '0002025800'); // 0x258 = 600 bytes, Le 00 = 256
    expect(first.sw).toBe(0x6100); // 344 left: more than 256
    expect(first.data.length).toBe(512);
    const second = tx(chip, '00C0000000');
    expect(second.sw).toBe(0x6158); // 88 left
    const third = tx(chip, '00C0000058');
    expect(third.sw).toBe(0x9000);
    const all = first.data + second.data + third.data;
    expect(all).toBe(hex(Uint8Array.from({ length: 600 }, (_, i) => i & 0xff)));
    expect(tx(chip, '00C0000000').sw).toBe(0x6985); // nothing left
  });

  it('returns everything at once for extended Le', async () => {
    const chip = await chipWithApplets();
    tx(chip, '00A4040007' + ECHO);
    const r = tx(chip, '00020258000000');
    expect(r.sw).toBe(0x9000);
    expect(r.data.length).toBe(1200);
  });

  it('T=0 style: a case-3 command with response data gets 61xx', async () => {
    const chip = await chipWithApplets('T=0');
    tx(chip, '00A4040007' + ECHO + '00');
    const r = tx(chip, '0001000003AABBCC');
    expect(r).toMatchObject({ sw: 0x6103, data: '' });
    expect(tx(chip, '00C0000003')).toMatchObject({ sw: 0x9000, data: 'AABBCC' });
    // Any other command drops the waiting response.
    tx(chip, '0001000003AABBCC');
    tx(chip, '80CA004200');
    expect(tx(chip, '00C0000003').sw).not.toBe(0x9000);
  });
});

describe('malformed commands get ISO status words', () => {
  it.each([
    ['00A4', 0x6700],
    ['00A4040002A0', 0x6700],
    ['20A4040000', 0x6e00],
    ['FFA4040000', 0x6e00],
    ['02CA004200', 0x6881],
    ['8001000000', 0x6d00],
    ['00CA004200', 0x9000],
    ['80CA00FF00', 0x6a88],
    ['00C0000100', 0x6a86],
  ])('%s → %s', (apdu, sw) => {
    const chip = newChip();
    expect(tx(chip, apdu).sw).toBe(sw);
  });
});
