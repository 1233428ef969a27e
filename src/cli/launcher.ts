#!/usr/bin/env node
/**
 * The `credproxy` binary. The build bundles this file and the helper path it imports into one
 * CommonJS file, dist/cli/credproxy.cjs (rolldown.config.mjs): a sandbox helper then starts almost
 * as fast as `node -e 0` — no ES module graph to resolve, no commander, no store or OAuth code.
 * Every other command loads the full CLI (main.js) as usual.
 */
import { helperPath } from './helperPath.js';
import { runCli } from './runCli.js';

const helper = helperPath(process.argv.slice(2));
if (helper) void runCli(helper);
// main.js stays outside the bundle (it is imported at run time, from next to this file).
else {
  import('./main.js').catch((err: unknown) => {
    process.stderr.write(`credproxy: cannot load the CLI: ${(err as Error).message}\n`);
    process.exitCode = 1;
  });
}
