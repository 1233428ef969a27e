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
import { Command } from 'commander';
import { ProxyKeyStore } from '../../client/ProxyKeyStore.js';
import { runChild } from '../../sandbox/runChild.js';
import { CliError, warn } from '../util/errors.js';
import { commandFollowsDoubleDash } from '../util/doubleDash.js';
import { parseExecOptions, type ExecOption, type ExecOptionKind, type ExecSource } from '../util/execSpec.js';
import { proxyToken, requireProxySocket, withProxyClient } from '../util/proxy.js';
import { label } from '../util/target.js';

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
      process.exitCode = await runChild({ command, args, env: { ...process.env, ...values }, warn });
    });
}
