// Where APDUs go: an emulated chip in a state file (--state) or a PC/SC reader (--reader), through openTarget.
import { existsSync } from 'node:fs';
import { openTarget } from '../emulator/transport/target.ts';
import type { Target, TargetOptions } from '../emulator/transport/target.ts';
import type { Options, Values } from './args.ts';
import { UsageError, str } from './args.ts';

export const TARGET_OPTIONS: Options = {
  state: { type: 'string' },
  reader: { type: 'string' },
};

export const TARGET_HELP = `  --state FILE      an emulated chip kept in FILE (see "jpki-se chip new")
  --reader NAME     a card in the PC/SC reader NAME (or part of its name)`;

/** The state file is named but absent: a runtime error with the command that fixes it. */
export function missingState(path: string): Error {
  return new Error(`state file ${path} does not exist (create it with "jpki-se chip new --state ${path}")`);
}

/** Opens the target the options name; raw responses (no automatic GET RESPONSE: the callers decide). `chip` applies to --state. */
export async function openCliTarget(values: Values, chip?: TargetOptions['chip']): Promise<Target> {
  const state = str(values, 'state');
  const reader = str(values, 'reader');
  if (state !== undefined && reader !== undefined) throw new UsageError('give either --state or --reader, not both');
  if (state === undefined && reader === undefined) throw new UsageError('give --state FILE (an emulated chip) or --reader NAME (a PC/SC reader)');
  if (state !== undefined) {
    if (!state.trim()) throw new UsageError('--state needs a file name');
    if (!existsSync(state)) throw missingState(state);
    return openTarget(`state:${state}`, { chip });
  }
  if (!reader!.trim()) throw new UsageError('--reader needs a reader name (or part of one)');
  return openTarget(`pcsc:${reader}`, { autoGetResponse: false });
}
