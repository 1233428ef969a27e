/**
 * How a `credproxy` process runs one command: one-line errors and never a stack trace, a quiet exit
 * on a closed stdout pipe, and a visible failure when the event loop drains before the command
 * finished. Shared by the full CLI (main.ts) and the bundled helper path (launcher.ts).
 */
import { formatError } from './util/errors.js';

// Set once the command has run to its end (or failed in a way already reported).
let settled = false;

function exitNow(code: number): never {
  settled = true;
  process.exit(code);
}

function die(err: unknown): never {
  process.stderr.write(`${formatError(err)}\n`);
  exitNow(1);
}

/**
 * Runs `work` as the process's command and sets the exit code from how it ended. `keepsRunning`:
 * the command serves on after `work` resolves (the relay), so no exit is forced.
 */
export async function runCli(work: () => Promise<void>, { keepsRunning = false } = {}): Promise<void> {
  installGuards();
  try {
    await work();
  } catch (err) {
    process.stderr.write(`${formatError(err)}\n`);
    process.exitCode = 1;
  }
  settled = true;
  // Every command closes what it opened; should a handle still linger, do not hang the shell.
  if (!keepsRunning) setTimeout(() => process.exit(), 2_000).unref();
}

function installGuards(): void {
  // `credproxy keys list | head -1` closes the pipe early; that is not an error worth a stack trace.
  process.stdout.on('error', (err: NodeJS.ErrnoException) => (err.code === 'EPIPE' ? exitNow(Number(process.exitCode ?? 0)) : die(err)));
  // A closed stderr (a launcher that stopped reading) must not turn the next warning or audit line of
  // `serve` into an uncaught EPIPE that kills the daemon before it cleans up; there is nowhere left
  // to report to, so the write is dropped.
  process.stderr.on('error', () => {});
  // Last line of defence for the "no stack traces" rule.
  process.on('uncaughtException', die);
  process.on('unhandledRejection', die);

  // If the event loop drains while a command is still awaiting something (a handle unref'd too
  // early), Node would exit quietly; make that a visible failure rather than a silent success.
  process.on('exit', () => {
    if (settled) return;
    process.stderr.write('credproxy: internal error: the command stopped before it finished\n');
    process.exitCode = 1;
  });
}
