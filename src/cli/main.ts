#!/usr/bin/env node
/** Entry point of the `credproxy` binary. */
import { CommanderError } from 'commander';
import { buildProgram } from './program.js';
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

if (process.argv[2] === 'relay') {
  // Hidden and lean (inject mode's in-sandbox relay): no commander, no store, no OAuth code.
  const { relayMain } = await import('../inject/relay.js');
  try {
    await relayMain(process.argv.slice(3));
  } catch (err) {
    die(err);
  }
  // Listening from here on (or, with --background, handed to its detached copy).
  settled = true;
} else {
  try {
    await (await buildProgram(process.argv)).parseAsync(process.argv);
  } catch (err) {
    // Commander has already printed its usage error or help text; only its exit code is left to apply.
    if (err instanceof CommanderError) process.exitCode = err.exitCode;
    else {
      process.stderr.write(`${formatError(err)}\n`);
      process.exitCode = 1;
    }
  }
  settled = true;
  // Every command closes what it opened; should a handle still linger, do not hang the shell.
  setTimeout(() => process.exit(), 2_000).unref();
}
