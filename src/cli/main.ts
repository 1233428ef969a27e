#!/usr/bin/env node
/** The full CLI (also the helper path, when run directly); the `credproxy` binary is launcher.ts. */
import { setFlagsFromString } from 'node:v8';
import { commandWord } from './commandWord.js';
import { helperPath } from './helperPath.js';
import { runCli } from './runCli.js';

// The daemon idles most of its life: a young generation capped at 1 MiB (V8 grows it to 16 MiB)
// keeps ~5 MB off its resident memory, and scavenging the few objects a request leaves alive stays
// cheap. It has to be set before the heap grows, so before the command's modules load.
if (commandWord(process.argv.slice(2), ['serve']) === 'serve') setFlagsFromString('--max-semi-space-size=1');

/** The full CLI: the command tree, loaded (with commander) only when the helper path does not apply. */
async function runProgram(argv: string[]): Promise<void> {
  const [{ CommanderError }, { buildProgram }] = await Promise.all([import('commander'), import('./program.js')]);
  try {
    await (await buildProgram(argv)).parseAsync(argv);
  } catch (err) {
    // Commander has already printed its usage error or help text; only its exit code is left to apply.
    if (err instanceof CommanderError) process.exitCode = err.exitCode;
    else throw err;
  }
}

if (process.argv[2] === 'relay') {
  // Hidden and lean (inject mode's in-sandbox relay): no commander, no store, no OAuth code. It
  // keeps listening after relayMain returns (or has handed over to its detached copy).
  const { relayMain } = await import('../inject/relay.js');
  await runCli(() => relayMain(process.argv.slice(3)), { keepsRunning: true });
} else {
  await runCli(() => helperPath(process.argv.slice(2))?.() ?? runProgram(process.argv));
}
