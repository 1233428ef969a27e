/**
 * `credproxy exec --provider P [--bucket B] --env VAR [--key NAME --env VAR]... -- CMD [ARGS...]`:
 * runs CMD with fresh credentials in its environment, for tools that read a token or key from a
 * variable. The values come through the proxy (get_token, so the daemon refreshes; get_api_key),
 * go into the child's environment only — never argv, never output — and the connection is closed
 * before CMD starts. SIGTERM, SIGHUP and (off a terminal) SIGINT are passed on to CMD; the exit status is CMD's, or
 * 128 + the signal number when CMD was killed by a signal, as shells report it.
 *
 * Loads only the client and small CLI utils (no host store, OAuth or server code).
 */
import { spawn } from 'node:child_process';
import os from 'node:os';
import { Command } from 'commander';
import { ProxyKeyStore } from '../../client/ProxyKeyStore.js';
import { CliError, warn } from '../util/errors.js';
import { parseExecOptions, type ExecOption, type ExecOptionKind, type ExecSource } from '../util/execSpec.js';
import { proxyToken, requireProxySocket, withProxyClient } from '../util/proxy.js';
import { label } from '../util/target.js';

const FORWARDED_SIGNALS = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const;
const USAGE = '--provider P [--bucket B] --env VAR [--key NAME --env VAR]... -- CMD [ARGS...]';

/** Fetches every value over one connection; the variables of each source get the same value. */
async function fetchEnvironment(socketPath: string, sources: ExecSource[]): Promise<Record<string, string>> {
  const values = await withProxyClient(socketPath, (client) => {
    // The client is closed by withProxyClient; the key store must not close it on its own.
    const keys = new ProxyKeyStore(client, async () => {});
    return Promise.all(
      sources.map(async (source) => {
        if (source.kind === 'token') return (await proxyToken(client, source.target)).access_token;
        const key = await keys.getKey(source.name);
        if (key === null) throw new CliError(`No API key named ${source.name}`);
        return key;
      }),
    );
  });
  const env: Record<string, string> = {};
  sources.forEach((source, i) => {
    const value = values[i]!;
    // spawn() would refuse it with an error message that quotes the value.
    if (value.includes('\0')) throw new CliError(`The ${source.kind === 'token' ? `token for ${label(source.target)}` : `API key ${source.name}`} contains a NUL byte`);
    for (const name of source.vars) env[name] = value;
  });
  return env;
}

/** Runs CMD to its end with signals forwarded; resolves with the exit status to report. */
function runChild(command: string, args: string[], env: NodeJS.ProcessEnv): Promise<number> {
  return new Promise((resolve) => {
    const child = spawn(command, args, { stdio: 'inherit', env });
    // A Ctrl-C on a terminal already reaches CMD (the terminal signals the whole foreground process
    // group, which CMD shares); forwarding it too would deliver it twice, and a second Ctrl-C means
    // "quit" to many interactive tools. Sent by kill(1) to credproxy alone, it is forwarded.
    const interactive = process.stdin.isTTY === true;
    const forward = (signal: NodeJS.Signals): void => {
      if (signal === 'SIGINT' && interactive) return;
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
    };
    // Listening also keeps these signals from killing credproxy before CMD has reacted to them.
    for (const signal of FORWARDED_SIGNALS) process.on(signal, forward);
    const done = (status: number): void => {
      for (const signal of FORWARDED_SIGNALS) process.off(signal, forward);
      resolve(status);
    };
    child.once('error', (err: NodeJS.ErrnoException) => {
      // Also emitted when a kill fails; only a failed start ends the command here.
      if (child.pid !== undefined) return;
      // Shell conventions: 127 = not found, 126 = found but not runnable.
      warn(`Cannot run ${command}: ${err.code === 'ENOENT' ? 'command not found' : (err.code ?? err.message)}`);
      done(err.code === 'ENOENT' ? 127 : 126);
    });
    child.once('exit', (code, signal) => {
      if (signal) done(128 + (os.constants.signals[signal] ?? 0));
      else done(code ?? 1);
    });
  });
}

/** True when the arguments end with `-- CMD ARGS...`, so none of CMD's options were taken for ours. */
function commandFollowsDoubleDash(cmd: Command, command: string, args: string[]): boolean {
  let root = cmd;
  while (root.parent) root = root.parent;
  // commander keeps the argv it parsed on the root command; it is not in its typings.
  const raw = (root as unknown as { rawArgs?: string[] }).rawArgs ?? process.argv;
  const tail = ['--', command, ...args];
  const end = raw.slice(-tail.length);
  return end.length === tail.length && end.every((arg, i) => arg === tail[i]);
}

export function execCommand(): Command {
  // commander reports option occurrences in command-line order; the pairing depends on that order.
  const given: ExecOption[] = [];
  const record =
    (kind: ExecOptionKind) =>
    (value: string): string => {
      given.push({ kind, value });
      return value;
    };
  return new Command('exec')
    .description('run CMD with access tokens or API keys from the daemon in its environment (inside a sandbox)')
    .usage(USAGE)
    .option('--provider <provider>', 'an access token of PROVIDER (get_token; the daemon refreshes it)', record('provider'))
    .option('--bucket <bucket>', 'bucket of the --provider before it (default: default)', record('bucket'))
    .option('--key <name>', 'an API key (get_api_key)', record('key'))
    .option('--env <var>', 'variable that gets the value of the --provider or --key before it (repeatable)', record('env'))
    .argument('<command>', 'the command to run, after --')
    .argument('[args...]', 'its arguments')
    .addHelpText(
      'after',
      `
Examples:
  credproxy exec --provider github --env GH_TOKEN -- gh pr list
  credproxy exec --provider github --env GH_TOKEN --env GITHUB_TOKEN --key openai --env OPENAI_API_KEY -- ./build.sh

The values are read once, when CMD starts, and reach CMD only through its environment. The exit
status is CMD's, or 128 + N when CMD is killed by signal N; SIGTERM and SIGHUP sent to credproxy
are passed on to CMD, and SIGINT too unless stdin is a terminal (a Ctrl-C there already reaches CMD).`,
    )
    .action(async (command: string, args: string[], _opts: unknown, cmd: Command) => {
      const sources = parseExecOptions(given);
      if (!commandFollowsDoubleDash(cmd, command, args)) throw new CliError(`Put -- before the command: credproxy exec ${USAGE}`);
      const socketPath = requireProxySocket('exec');
      const values = await fetchEnvironment(socketPath, sources);
      process.exitCode = await runChild(command, args, { ...process.env, ...values });
    });
}
