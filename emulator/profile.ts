// Chip profiles: what a chip says about itself (ATR, CPLC, IIN/CIN) and its sizes. Data, not code.
import { concat, fromHex } from './bytes.ts';
import type { CycleProfile } from './vm/types.ts';
import { DEFAULT_CYCLE_PROFILE } from './vm/profiles/jcop4.ts';

export interface ChipProfile {
  name: string;
  /** ATR sent at power-up (ISO 7816-3 §8). */
  atr: Uint8Array;
  /** Issuer Identification Number, value of GET DATA tag 42 (GPCS 2.3.1 §11.3.3.1). */
  iin: Uint8Array;
  /** Card Image Number, value of tag 45. */
  cin: Uint8Array;
  /** Card Production Life Cycle data, 42 bytes (Open Platform 2.0.1 §6.12.1); GET DATA 9F7F. */
  cplc: Uint8Array;
  /** Key diversification data (first 10 bytes of INITIALIZE UPDATE); GET DATA CF. */
  kdd: Uint8Array;
  isdAid: Uint8Array;
  /** SCP03 "i" parameter of the ISD (Amd D Table 5-1): 70 = pseudo-random challenge, R-MAC, R-ENC. */
  scpI: number;
  /** Initial key set of the ISD: KVN and the three AES keys (Amd D §4.1.2: ENC, MAC, DEK). */
  initialKvn: number;
  initialKey: Uint8Array;
  /** Minimum security level for card-content management commands (GPCS Table 11-2: at least "authenticated"). */
  minContentLevel: number;
  /** Persistent memory for load files and applet data (bytes). */
  persistentBytes: number;
  transientResetBytes: number;
  transientDeselectBytes: number;
  logicalChannels: number;
  /** Largest command data field accepted (FCI tag 9F65); extended-length APDUs are supported. */
  maxCommandData: number;
  /** Card life cycle state of a new chip. */
  initialLifeCycle: number;
  /** Timing model of this chip's VM (docs/cycle-model.md). */
  cycles: CycleProfile;
  /** JCSystem.getMaxCommitCapacity(): bytes a transaction may log before TransactionException.BUFFER_FULL. */
  commitCapacity: number;
  /** VM limits: deepest call chain in frames, and stack size in 16-bit words (locals + operands); beyond = stack overflow. */
  maxFrameDepth: number;
  maxStackWords: number;
  /** Persistent-memory write page in bytes (pages touched by a write are what the cycle model charges). */
  nvmPageBytes: number;
}

// CPLC (42 bytes): fabricator 4790 (NXP), IC type, OS id/release, dates in BCD YDDD; serial 1234ABCD.
const CPLC = fromHex(
  '4790' + 'D321' + '4700' + '6012' + '0000' + '6102' + '1234ABCD' + '0001' + '4812' + '6103' +
    '0000' + '6104' + '0000' + '0000' + '00000000' + '0000' + '0000' + '00000000',
);

/** The default profile: a JCOP4-class GP-SE (sizes from JCAlgTest's J3R180 header, see javacard.md §4.2). */
export const DEFAULT_PROFILE: ChipProfile = {
  name: 'jcop4-like',
  // 3B 8A 80 01 + historical bytes "JPKI-SE-EM" + TCK; T=1 only (TD1=80 → TD2=01).
  atr: withTck(concat(fromHex('3B8A8001'), new TextEncoder().encode('JPKI-SE-EM'))),
  iin: fromHex('42018C'),
  cin: fromHex('45' + '1234ABCD0001'),
  cplc: CPLC,
  kdd: concat(fromHex('0000'), CPLC.subarray(12, 20)),
  isdAid: fromHex('A000000151000000'),
  scpI: 0x70,
  initialKvn: 0x30,
  initialKey: fromHex('404142434445464748494A4B4C4D4E4F'),
  minContentLevel: 0x01,
  persistentBytes: 139_360,
  transientResetBytes: 4_084,
  transientDeselectBytes: 4_084,
  logicalChannels: 20,
  maxCommandData: 32_767,
  initialLifeCycle: 0x0f,
  cycles: DEFAULT_CYCLE_PROFILE,
  // J3R180 header: JCSystem.getMaxCommitCapacity() = 5120 B (javacard.md §4.2).
  commitCapacity: 5_120,
  // [assumption] JCOP-class stacks are ~2 KB of RAM: 1024 words; 128 frames leaves ~8 words per frame at full depth.
  maxFrameDepth: 128,
  maxStackWords: 1_024,
  nvmPageBytes: DEFAULT_CYCLE_PROFILE.nvmPageBytes,
};

/** Appends the check byte TCK (XOR of T0..last historical byte), required when T=1 is offered (ISO 7816-3 §8.2.5). */
export function withTck(atrWithoutTck: Uint8Array): Uint8Array {
  let x = 0;
  for (let i = 1; i < atrWithoutTck.length; i++) x ^= atrWithoutTck[i];
  return concat(atrWithoutTck, Uint8Array.of(x));
}

/**
 * The My Number Card: the same chip model with the card's contactless ATR (OpenSC card-jpki.c matches it; jpki.md §1.1).
 * The real card's OS and memory sizes are not public; the JCOP4-class figures stand in for them.
 */
export const MYNUMBER_CARD_PROFILE: ChipProfile = {
  ...DEFAULT_PROFILE,
  name: 'mynumber-card',
  atr: fromHex('3BE000FF8131FE4514'),
};

export const PROFILES: Record<string, ChipProfile> = {
  [DEFAULT_PROFILE.name]: DEFAULT_PROFILE,
  [MYNUMBER_CARD_PROFILE.name]: MYNUMBER_CARD_PROFILE,
};

export function profileByName(name: string): ChipProfile {
  const p = PROFILES[name];
  if (!p) throw new Error(`unknown chip profile "${name}" (known: ${Object.keys(PROFILES).join(', ')})`);
  return p;
}
