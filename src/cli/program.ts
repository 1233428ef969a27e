/** Builds the `credproxy` command tree; main.ts runs it. */
import { readFileSync } from 'node:fs';
import { Command } from 'commander';
import { execCommand } from './commands/exec.js';
import { gitCredentialCommand } from './commands/gitCredential.js';
import { importCommand } from './commands/import.js';
import { keysCommand } from './commands/keys.js';
import { loginCommand } from './commands/login.js';
import { logoutCommand } from './commands/logout.js';
import { providersCommand } from './commands/providers.js';
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

/**
 * Settings that commander copies only to subcommands made with .command(), not to added ones, so
 * they are applied to the whole tree: usage errors in the one-line `credproxy: …` format, global
 * options in every --help, and exits thrown (main.ts decides the exit code) instead of process.exit.
 */
function configureTree(cmd: Command): void {
  cmd
    .configureHelp({ showGlobalOptions: true })
    .configureOutput({ outputError: (text, write) => write(`credproxy: ${oneLine(text.replace(/^error: /, ''))}\n`) })
    .exitOverride();
  for (const sub of cmd.commands) configureTree(sub);
}

export function buildProgram(): Command {
  const program = new Command('credproxy')
    .description('host-side credential broker: keeps refresh tokens and API keys on the host, serves short-lived access tokens to sandboxes')
    .version(packageVersion())
    .addOption(storeOption())
    .addHelpText('after', '\nData lives in $CREDPROXY_HOME, else $XDG_DATA_HOME/credproxy, else ~/.local/share/credproxy.');
  for (const command of [serveCommand(), loginCommand(), providersCommand(), importCommand(), tokenCommand(), logoutCommand(), keysCommand(), statusCommand(), gitCredentialCommand(), execCommand()]) {
    program.addCommand(command);
  }
  configureTree(program);
  return program;
}
