// ISO/IEC 7816-4 status words and the error value that carries one up to the APDU boundary.

export const SW = {
  OK: 0x9000,
  MORE_DATA: 0x6100, // 61xx: xx bytes still available (T=0 style)
  WARN_SELECTED_LOCKED: 0x6283, // selected file/application invalidated (card locked)
  WARN_EOF: 0x6282,
  MORE_STATUS: 0x6310, // GPCS: more data available (GET STATUS)
  AUTH_FAILED: 0x6300,
  MEMORY_FAILURE: 0x6581,
  WRONG_LENGTH: 0x6700,
  LOGICAL_CHANNEL_NOT_SUPPORTED: 0x6881,
  SECURE_MESSAGING_NOT_SUPPORTED: 0x6882,
  LAST_COMMAND_EXPECTED: 0x6883,
  CHAINING_NOT_SUPPORTED: 0x6884,
  SECURITY_STATUS: 0x6982,
  AUTH_METHOD_BLOCKED: 0x6983,
  REFERENCE_DATA_INVALIDATED: 0x6984,
  CONDITIONS_NOT_SATISFIED: 0x6985,
  COMMAND_NOT_ALLOWED: 0x6986,
  SM_DATA_MISSING: 0x6987,
  SM_DATA_INCORRECT: 0x6988,
  APPLET_SELECT_FAILED: 0x6999,
  WRONG_DATA: 0x6a80,
  FUNC_NOT_SUPPORTED: 0x6a81,
  FILE_NOT_FOUND: 0x6a82,
  RECORD_NOT_FOUND: 0x6a83,
  NOT_ENOUGH_MEMORY: 0x6a84,
  INCORRECT_P1P2: 0x6a86,
  REFERENCED_DATA_NOT_FOUND: 0x6a88,
  WRONG_P1P2: 0x6b00,
  CORRECT_LENGTH: 0x6c00, // 6Cxx: wrong Le, xx is the right one
  INS_NOT_SUPPORTED: 0x6d00,
  CLA_NOT_SUPPORTED: 0x6e00,
  UNKNOWN: 0x6f00,
} as const;

/** A command failed with this status word. Thrown anywhere below the APDU boundary, turned into the response there. */
export class IsoError extends Error {
  readonly sw: number;
  constructor(sw: number, detail?: string) {
    super(`${swHex(sw)} ${swMeaning(sw)}${detail ? `: ${detail}` : ''}`);
    this.name = 'IsoError';
    this.sw = sw;
  }
}

export function swHex(sw: number): string {
  return sw.toString(16).toUpperCase().padStart(4, '0');
}

const MEANINGS: Record<number, string> = {
  0x9000: 'OK',
  0x6282: 'end of data reached before Le bytes',
  0x6283: 'selected file or application invalidated (card locked)',
  0x6310: 'more data available',
  0x6300: 'authentication failed',
  0x6400: 'execution error, state of non-volatile memory unchanged',
  0x6581: 'memory failure',
  0x6700: 'wrong length',
  0x6881: 'logical channel not supported',
  0x6882: 'secure messaging not supported',
  0x6883: 'last command of the chain expected',
  0x6884: 'command chaining not supported',
  0x6982: 'security status not satisfied',
  0x6983: 'authentication method blocked',
  0x6984: 'reference data not usable',
  0x6985: 'conditions of use not satisfied',
  0x6986: 'command not allowed',
  0x6987: 'expected secure messaging data objects missing',
  0x6988: 'incorrect secure messaging data objects',
  0x6999: 'applet selection failed',
  0x6a80: 'incorrect parameters in the data field',
  0x6a81: 'function not supported',
  0x6a82: 'file or application not found',
  0x6a83: 'record not found',
  0x6a84: 'not enough memory space',
  0x6a86: 'incorrect parameters P1-P2',
  0x6a88: 'referenced data not found',
  0x6b00: 'wrong parameters P1-P2',
  0x6d00: 'instruction not supported',
  0x6e00: 'class not supported',
  0x6f00: 'no precise diagnosis',
};

export function swMeaning(sw: number): string {
  const exact = MEANINGS[sw];
  if (exact) return exact;
  const sw1 = sw >> 8;
  const sw2 = sw & 0xff;
  if (sw1 === 0x61) return `${sw2 || 256} more bytes available (GET RESPONSE)`;
  if (sw1 === 0x6c) return `wrong Le, exact length is ${sw2 || 256}`;
  if (sw1 === 0x63 && (sw2 & 0xf0) === 0xc0) return `verification failed, ${sw2 & 0x0f} tries left`;
  if (sw1 === 0x62) return 'warning, state of non-volatile memory unchanged';
  if (sw1 === 0x63) return 'warning, state of non-volatile memory changed';
  if (sw1 === 0x64) return 'execution error, state of non-volatile memory unchanged';
  if (sw1 === 0x65) return 'execution error, state of non-volatile memory changed';
  if (sw1 === 0x66) return 'security-related issue';
  return 'unknown status';
}

/** True for SW1 values ISO 7816-3 allows as the first status byte (61–6F except 60, and 90). */
export function isValidSw(sw: number): boolean {
  const sw1 = sw >> 8;
  return sw1 === 0x90 || (sw1 >= 0x61 && sw1 <= 0x6f);
}
