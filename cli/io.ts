// What a command may touch of the outside world; main.ts binds it to the process, tests to buffers.

export interface Io {
  /** One line of normal output (stdout). */
  out(line: string): void;
  /** One line of diagnostics (stderr). */
  err(line: string): void;
  /** Resolves when a long-running command should stop (SIGINT/SIGTERM in main.ts); names the reason. */
  stop(): Promise<string>;
  env: Record<string, string | undefined>;
}
