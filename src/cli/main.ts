#!/usr/bin/env node
/** Entry point of the `credproxy` binary. */
import { buildProgram } from './program.js';
import { formatError } from './util/errors.js';

function die(err: unknown): never {
  process.stderr.write(`${formatError(err)}\n`);
  process.exit(1);
}

// `credproxy keys list | head -1` closes the pipe early; that is not an error worth a stack trace.
process.stdout.on('error', (err: NodeJS.ErrnoException) => (err.code === 'EPIPE' ? process.exit(process.exitCode ?? 0) : die(err)));
// Last line of defence for the "no stack traces" rule.
process.on('uncaughtException', die);
process.on('unhandledRejection', die);

try {
  await buildProgram().parseAsync(process.argv);
} catch (err) {
  process.stderr.write(`${formatError(err)}\n`);
  process.exitCode = 1;
}
// Every command closes what it opened; should a handle still linger, do not hang the shell.
setTimeout(() => process.exit(), 2_000).unref();
