// What a security domain sees of the card while it processes one command.
import type { ChipStore } from '../store.ts';
import type { ChipProfile } from '../profile.ts';
import type { AppletRuntime } from '../applet.ts';
import type { PendingSession, Session } from '../scp03.ts';
import type { Model } from './registry.ts';

export interface LoadState {
  elf: string;
  sd: string;
  hash: Uint8Array;
  next: number;
  parts: Uint8Array[];
  size: number;
}

/** Continuation state a security domain keeps per logical channel. */
export interface SdChannelState {
  load: LoadState | null;
  /** GET STATUS entries not yet sent (6310 continuation, GPCS §11.4.2). */
  status: { p1: number; format: number; entries: Uint8Array[] } | null;
  /** STORE DATA sequence: next block number and the application being personalised (null = the SD itself). */
  store: { next: number } | null;
  personalizing: string | null;
  /** Commands with P1 b8 "more commands" (INSTALL, DELETE, PUT KEY): data gathered so far. */
  more: { ins: number; p1: number; p2: number; parts: Uint8Array[] } | null;
}

export interface ChannelState {
  open: boolean;
  selected: string | null;
  scp: Session | null;
  pendingAuth: PendingSession | null;
  /** Remaining response bytes for GET RESPONSE (ISO 7816-4 §7.6.1). */
  response: Uint8Array | null;
  /** ISO command chaining in progress (CLA b5). */
  chain: { ins: number; p1: number; p2: number; parts: Uint8Array[] } | null;
  sd: SdChannelState;
}

export interface CardEnv {
  store: ChipStore;
  profile: ChipProfile;
  model: Model;
  channels: ChannelState[];
  channel: number;
  runtimeFor(elf: string): AppletRuntime | undefined;
  /** Re-reads the model from the store (after an aborted unit). */
  reload(): void;
  log(message: string): void;
}

export function freshSdState(): SdChannelState {
  return { load: null, status: null, store: null, personalizing: null, more: null };
}

export function freshChannel(open: boolean): ChannelState {
  return { open, selected: null, scp: null, pendingAuth: null, response: null, chain: null, sd: freshSdState() };
}
