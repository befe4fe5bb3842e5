// Whether a TCP port is in LISTEN state, read from /proc (a probe connection would look like a card insertion to vpcd).
import { readFileSync } from 'node:fs';

/** Whether vpcd listens on a TCP port, from /proc (a probe connection would look like a card to vpcd). */
export function listening(port: number): boolean {
  const want = `:${port.toString(16).toUpperCase().padStart(4, '0')}`;
  for (const f of ['/proc/net/tcp', '/proc/net/tcp6']) {
    let text = '';
    try {
      text = readFileSync(f, 'utf8');
    } catch {
      continue;
    }
    for (const line of text.split('\n').slice(1)) {
      const cols = line.trim().split(/\s+/);
      if (cols[1]?.endsWith(want) && cols[3] === '0A') return true;
    }
  }
  return false;
}
