// jpki-se entry point (bin/jpki-se.js runs it with tsx): binds the command tree to this process.
import { run } from './run.ts';

/** Long-running commands (chip serve) stop on SIGINT or SIGTERM; handlers exist only while one waits. */
function stop(): Promise<string> {
  return new Promise((resolve) => {
    const on = (signal: NodeJS.Signals) => {
      process.off('SIGINT', on);
      process.off('SIGTERM', on);
      resolve(signal);
    };
    process.on('SIGINT', on);
    process.on('SIGTERM', on);
  });
}

// A closed pipe (e.g. "| head") ends the output, not with a stack trace.
process.stdout.on('error', (e: NodeJS.ErrnoException) => {
  if (e.code === 'EPIPE') process.exit(process.exitCode ?? 0);
  throw e;
});

const code = await run(process.argv.slice(2), {
  out: (line) => process.stdout.write(line + '\n'),
  err: (line) => process.stderr.write(line + '\n'),
  stop,
  env: process.env,
});
process.exitCode = code;
// Should a socket or timer outlive its command, still exit (unref: this timer alone keeps nothing alive).
setTimeout(() => process.exit(code), 3000).unref();
