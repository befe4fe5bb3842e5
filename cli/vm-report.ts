// Per-APDU VM reporting for "apdu" and "chip serve": the cycle report of the applet code an APDU ran (summed over its
// phases: a SELECT runs select() then process()) and, optionally, the interpreter's line per bytecode.
import type { ChipOptions } from '../emulator/card.ts';
import { formatReport } from '../emulator/vm/cycles.ts';
import type { ReportPhase, VmRuntime } from '../emulator/vm/runtime.ts';
import type { CycleProfile, CycleReport } from '../emulator/vm/types.ts';
import type { Options, Values } from './args.ts';
import { flag } from './args.ts';

export const VM_REPORT_OPTIONS: Options = {
  cycles: { type: 'boolean', short: 'c' },
  'bytecode-trace': { type: 'boolean' },
};

export const VM_REPORT_HELP = `  -c, --cycles      after each response, the cycle report of the applet code it ran
  --bytecode-trace  print each bytecode the applet code executes (method+offset, operands, stack top)`;

export interface VmReporter {
  /** Chip options that attach the reporter to the chip's VM when it opens. */
  chip: Pick<ChipOptions, 'onVm'>;
  /** Call before sending an APDU: forgets what ran earlier (power-up, the previous APDU). */
  begin(): void;
  /** The report line for the APDU since begin(), or undefined when it ran no applet code (or --cycles is off). */
  end(): string | undefined;
}

/** Sums the phase reports of one APDU; every field of a report adds up (I/O is charged by process() only). */
function add(a: CycleReport, b: CycleReport): CycleReport {
  return {
    bytecodes: a.bytecodes + b.bytecodes,
    cycles: a.cycles + b.cycles,
    nativeCalls: a.nativeCalls + b.nativeCalls,
    persistentBytesWritten: a.persistentBytesWritten + b.persistentBytesWritten,
    estimatedUs: a.estimatedUs + b.estimatedUs,
    ioBytes: a.ioBytes + b.ioBytes,
  };
}

/** "cycles: 61 bytecodes, 2 880 cycles, 6 native, 0 B NVM, est. 0.79 ms (exec 0.12 ms + I/O 0.67 ms) [select+process] on jcop4-j3r180". */
export function cycleLine(r: CycleReport, phases: ReportPhase[], profile: CycleProfile): string {
  return `   cycles: ${formatReport(r, profile)} [${phases.join('+')}] on ${profile.name}`;
}

/** What --cycles / --bytecode-trace ask for; `out` receives the trace lines as they happen. */
export function vmReporter(v: Values, out: (line: string) => void): VmReporter | undefined {
  const cycles = flag(v, 'cycles');
  const bytecodes = flag(v, 'bytecode-trace');
  if (!cycles && !bytecodes) return undefined;
  let total: CycleReport | undefined;
  let phases: ReportPhase[] = [];
  let profile: CycleProfile | undefined;
  return {
    chip: {
      onVm(rt: VmRuntime) {
        if (bytecodes) rt.trace = (line) => out(`   | ${line}`.trimEnd());
        if (!cycles) return;
        rt.onReport = (r, phase) => {
          total = total ? add(total, r) : { ...r };
          phases.push(phase);
          profile = rt.vm?.cycles.profile;
        };
      },
    },
    begin() {
      total = undefined;
      phases = [];
    },
    end() {
      if (!total || !profile) return undefined;
      return cycleLine(total, phases, profile);
    },
  };
}
