/** `credproxy keys set|list|rm`: API keys in the host store. Values come from stdin only. */
import { Command } from 'commander';
import { CliError } from '../util/errors.js';
import { readStdin } from '../util/stdin.js';
import { withHostStores } from '../util/stores.js';
import { toKeyName } from '../util/target.js';

/** Strips exactly one trailing newline (what `echo` or a file adds); anything else is the value. */
export function keyValueFrom(input: string): string {
  const value = input.replace(/\r?\n$/, '');
  if (value.length === 0) throw new CliError('The key value on stdin is empty');
  // A second line is a paste or file mistake; storing it would corrupt every request header.
  if (/[\r\n]/.test(value)) throw new CliError('The key value on stdin spans several lines; pipe in exactly one line');
  return value;
}

function setCommand(): Command {
  return new Command('set')
    .description('store an API key read from stdin (never from the command line, where other users could see it)')
    .argument('<name>', 'key name, e.g. openai')
    .addHelpText('after', '\n  credproxy keys set openai < ~/openai.key\n  pass show openai | credproxy keys set openai')
    .action(async (name: string, _opts: unknown, cmd: Command) => {
      const keyName = toKeyName(name);
      const value = keyValueFrom(await readStdin(`No key value on stdin; pipe it in, e.g. credproxy keys set ${keyName} < FILE`));
      await withHostStores(cmd, ({ keys }) => keys.setKey(keyName, value));
      process.stdout.write(`Stored key ${keyName}\n`);
    });
}

function listCommand(): Command {
  return new Command('list')
    .alias('ls')
    .description('list stored key names, one per line (never their values)')
    .action(async (_opts: unknown, cmd: Command) => {
      const names = await withHostStores(cmd, ({ keys }) => keys.listKeys());
      if (names.length > 0) process.stdout.write(`${names.join('\n')}\n`);
    });
}

function rmCommand(): Command {
  return new Command('rm')
    .alias('remove')
    .description('remove a stored key')
    .argument('<name>', 'key name')
    .action(async (name: string, _opts: unknown, cmd: Command) => {
      const keyName = toKeyName(name);
      const existed = await withHostStores(cmd, ({ keys }) => keys.deleteKey(keyName));
      if (!existed) throw new CliError(`No key named ${keyName}`);
      process.stdout.write(`Removed key ${keyName}\n`);
    });
}

export function keysCommand(): Command {
  return new Command('keys')
    .description('manage API keys in the host store')
    .addCommand(setCommand())
    .addCommand(listCommand())
    .addCommand(rmCommand());
}
