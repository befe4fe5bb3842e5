// The vpcd end of a TCP connection for tests: 2-byte big-endian length framing (vpcd.md), parsed here independently
// of emulator/transport/vicc.ts so the tests do not check the vicc against itself.
import type { Socket } from 'node:net';
import { fromHex, hex } from '../../emulator/bytes.ts';

/** The vpcd end of a TCP connection: 2-byte big-endian length framing, parsed here independently of vicc.ts. */
export function vpcdPeer(socket: Socket) {
  let buf = Buffer.alloc(0);
  const frames: Uint8Array[] = [];
  const waiting: ((f: Uint8Array) => void)[] = [];
  socket.on('data', (chunk: Buffer) => {
    buf = Buffer.concat([buf, chunk]);
    while (buf.length >= 2 && buf.length >= 2 + buf.readUInt16BE(0)) {
      const f = new Uint8Array(buf.subarray(2, 2 + buf.readUInt16BE(0)));
      buf = buf.subarray(2 + f.length);
      const w = waiting.shift();
      if (w) w(f);
      else frames.push(f);
    }
  });
  socket.on('error', () => {});
  const send = (payload: Uint8Array) => {
    const head = Buffer.alloc(2);
    head.writeUInt16BE(payload.length);
    socket.write(Buffer.concat([head, payload]));
  };
  const reply = () =>
    new Promise<Uint8Array>((resolve, reject) => {
      const f = frames.shift();
      if (f) return resolve(f);
      const timer = setTimeout(() => reject(new Error('no reply within 5 s')), 5000);
      waiting.push((g) => {
        clearTimeout(timer);
        resolve(g);
      });
    });
  return {
    send,
    ask: async (payload: string | Uint8Array) => {
      send(typeof payload === 'string' ? fromHex(payload) : payload);
      return hex(await reply());
    },
  };
}
