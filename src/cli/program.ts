/** Builds the `credproxy` command tree; main.ts runs it. */
import { readFileSync } from 'node:fs';
import { Command } from 'commander';
import { oneLine } from './util/errors.js';
import { storeOption, storeUrlFileOption } from './util/storeOption.js';
import { commandWord } from './commandWord.js';

/**
 * Each command's module, loaded only when that command runs (or for the full help): the helper
 * commands a sandbox runs on every git operation or API call load no store, OAuth or daemon code.
 */
const COMMANDS: ReadonlyArray<readonly [string, () => Promise<Command>]> = [
  ['serve', async () => (await import('./commands/serve.js')).serveCommand()],
  ['login', async () => (await import('./commands/login.js')).loginCommand()],
  ['providers', async () => (await import('./commands/providers.js')).providersCommand()],
  ['routes', async () => (await import('./commands/routes.js')).routesCommand()],
  ['import', async () => (await import('./commands/import.js')).importCommand()],
  ['token', async () => (await import('./commands/token.js')).tokenCommand()],
  ['logout', async () => (await import('./commands/logout.js')).logoutCommand()],
  ['keys', async () => (await import('./commands/keys.js')).keysCommand()],
  ['status', async () => (await import('./commands/status.js')).statusCommand()],
  ['doctor', async () => (await import('./commands/doctor.js')).doctorCommand()],
  ['git-credential', async () => (await import('./commands/gitCredential.js')).gitCredentialCommand()],
  ['exec', async () => (await import('./commands/exec.js')).execCommand()],
  ['run', async () => (await import('./commands/run.js')).runCommand()],
];

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

/**
 * The command tree for `argv`: only the named command when the first word that names one does
 * (its own --help included), every command otherwise (`credproxy --help`, a typo's error).
 */
export async function buildProgram(argv: readonly string[] = process.argv): Promise<Command> {
  const program = new Command('credproxy')
    .description('host-side credential broker: keeps refresh tokens and API keys on the host, serves short-lived access tokens to sandboxes')
    .version(packageVersion())
    .addOption(storeOption())
    .addOption(storeUrlFileOption())
    .addHelpText('after', '\nData lives in $CREDPROXY_HOME, else $XDG_DATA_HOME/credproxy, else ~/.local/share/credproxy.');
  const named = commandWord(argv.slice(2), COMMANDS.map(([name]) => name));
  const chosen = named === undefined ? COMMANDS : COMMANDS.filter(([name]) => name === named);
  for (const command of await Promise.all(chosen.map(([, load]) => load()))) program.addCommand(command);
  configureTree(program);
  return program;
}
