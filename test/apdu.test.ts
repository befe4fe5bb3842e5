import { describe, it, expect } from 'vitest';
import { parseCommand, encodeCommand, decodeCla, encodeCla } from '../emulator/apdu.ts';
import { fromHex, hex } from '../emulator/bytes.ts';
import { IsoError } from '../emulator/iso.ts';

const swOf = (f: () => unknown) => {
  try {
    f();
  } catch (e) {
    if (e instanceof IsoError) return e.sw;
    throw e;
  }
  return 0x9000;
};

describe('command APDU parsing (ISO 7816-4 §5.1)', () => {
  it('parses the four short cases', () => {
    expect(parseCommand(fromHex('00A40400'))).toMatchObject({ case: 1, ne: 0, extended: false });
    expect(parseCommand(fromHex('80CA006600'))).toMatchObject({ case: 2, ne: 256 });
    expect(parseCommand(fromHex('80CA006610'))).toMatchObject({ case: 2, ne: 16 });
    const c3 = parseCommand(fromHex('00A4040003A00000'));
    expect(c3).toMatchObject({ case: 3, ne: 0 });
    expect(hex(c3.data)).toBe('A00000');
    const c4 = parseCommand(fromHex('00A4040003A0000000'));
    expect(c4).toMatchObject({ case: 4, ne: 256 });
  });

  it('parses the extended cases', () => {
    expect(parseCommand(fromHex('00B00000000000'))).toMatchObject({ case: 2, ne: 65536, extended: true });
    expect(parseCommand(fromHex('00B00000000100'))).toMatchObject({ case: 2, ne: 256, extended: true });
    const data = 'AB'.repeat(300);
    const c3 = parseCommand(fromHex('80E20000' + '00012C' + data));
    expect(c3).toMatchObject({ case: 3, extended: true });
    expect(c3.data.length).toBe(300);
    const c4 = parseCommand(fromHex('80E20000' + '00012C' + data + '0000'));
    expect(c4).toMatchObject({ case: 4, ne: 65536 });
  });

  it('refuses length structures of no case with 6700', () => {
    for (const bad of ['', '00', '00A404', '00A4040002A0', '00A4040002A0000000', '00A404000000', '00A40400000003A0', '00A4040000000000'])
      expect(swOf(() => parseCommand(fromHex(bad))), bad).toBe(0x6700);
  });

  it('round-trips through encodeCommand, choosing short or extended fields', () => {
    for (const [data, ne] of [[0, 0], [0, 256], [5, 0], [5, 10], [255, 256], [256, 0], [10, 257], [0, 65536], [300, 65536]]) {
      const cmd = { cla: 0x80, ins: 0xe2, p1: 1, p2: 2, data: new Uint8Array(data).fill(7), ne };
      const back = parseCommand(encodeCommand(cmd));
      expect(back.data.length).toBe(data);
      expect(back.ne).toBe(ne);
      expect(back.extended).toBe(data > 255 || ne > 256);
    }
  });
});

describe('class byte (ISO 7816-4 §5.4.1)', () => {
  it('decodes channels, secure messaging and chaining', () => {
    expect(decodeCla(0x00)).toMatchObject({ channel: 0, sm: 'none', interindustry: true, chaining: false });
    expect(decodeCla(0x84)).toMatchObject({ channel: 0, sm: 'proprietary', interindustry: false }); // GP's SM indication (b3)
    expect(decodeCla(0x0c)).toMatchObject({ sm: 'header-authenticated' });
    expect(decodeCla(0x83)).toMatchObject({ channel: 3, interindustry: false });
    expect(decodeCla(0x10)).toMatchObject({ chaining: true, channel: 0 });
    expect(decodeCla(0x40)).toMatchObject({ channel: 4, further: true });
    expect(decodeCla(0x4f)).toMatchObject({ channel: 19 });
    expect(decodeCla(0x6f)).toMatchObject({ channel: 19, sm: 'header-not-processed' });
    expect(decodeCla(0xc5)).toMatchObject({ channel: 9, interindustry: false });
    expect(decodeCla(0x20)).toBeUndefined();
    expect(decodeCla(0xa0)).toBeUndefined();
    expect(decodeCla(0xff)).toBeUndefined();
  });

  it('encodes every channel back to a class that decodes to it', () => {
    for (let ch = 0; ch < 20; ch++)
      for (const proprietary of [false, true])
        for (const sm of [false, true]) {
          const d = decodeCla(encodeCla(ch, { proprietary, sm }))!;
          expect(d.channel).toBe(ch);
          expect(d.interindustry).toBe(!proprietary);
          expect(d.sm !== 'none').toBe(sm);
        }
    expect(() => encodeCla(20)).toThrow(RangeError);
  });
});
