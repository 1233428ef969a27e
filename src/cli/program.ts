/** Builds the `credproxy` command tree; main.ts runs it. */
import { readFileSync } from 'node:fs';
import { Command } from 'commander';
import { importCommand } from './commands/import.js';
import { keysCommand } from './commands/keys.js';
import { logoutCommand } from './commands/logout.js';
import { serveCommand } from './commands/serve.js';
import { statusCommand } from './commands/status.js';
import { tokenCommand } from './commands/token.js';
import { oneLine } from './util/errors.js';
import { storeOption } from './util/stores.js';

function packageVersion(): string {
  try {
    // Same relative location from src/cli and dist/cli.
    const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version?: string };
    return pkg.version ?? 'unknown';
  } catch {
    return 'unknown';
  }
}

export function buildProgram(): Command {
  const program = new Command('credproxy')
    .description('host-side credential broker: keeps refresh tokens and API keys on the host, serves short-lived access tokens to sandboxes')
    .version(packageVersion())
    .addOption(storeOption())
    .configureHelp({ showGlobalOptions: true })
    // Usage errors follow the same one-line `credproxy: …` format as every other failure.
    .configureOutput({ outputError: (text, write) => write(`credproxy: ${oneLine(text.replace(/^error: /, ''))}\n`) })
    .addHelpText('after', '\nData lives in $CREDPROXY_HOME, else $XDG_DATA_HOME/credproxy, else ~/.local/share/credproxy.');
  for (const command of [serveCommand(), importCommand(), tokenCommand(), logoutCommand(), keysCommand(), statusCommand()]) {
    program.addCommand(command);
  }
  return program;
}
