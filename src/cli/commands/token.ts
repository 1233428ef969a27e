/** `credproxy token PROVIDER`: print an access token — the one command that prints a secret. */
import { Command } from 'commander';
import { secondsToExpiry } from '../../oauth/token.js';
import { DEFAULT_BUCKET } from '../../protocol/names.js';
import { CliError } from '../util/errors.js';
import { describeExpiry } from '../util/duration.js';
import { noDaemonOption } from '../util/noDaemonOption.js';
import { daemonSocket } from '../util/daemonSocket.js';
import { daemonAccessToken } from '../util/proxy.js';
import { label, toTarget, type Target } from '../util/target.js';


async function fromHost(cmd: Command, target: Target): Promise<string | null> {
  // Loaded only here: the proxy path (every apiKeyHelper call in a sandbox) needs no store code.
  const { withHostStores } = await import('../util/stores.js');
  return withHostStores(cmd, async ({ tokens }) => {
    const token = await tokens.getToken(target.provider, target.bucket);
    if (!token) return null;
    // The CLI does not refresh; an expired token would only fail later, further from the cause.
    const left = secondsToExpiry(token, Date.now());
    if (left <= 0) {
      throw new CliError(`Token for ${label(target)} ${describeExpiry(left)}; start a daemon (credproxy serve --detach), which refreshes it, or import a new one`);
    }
    return token.access_token;
  });
}

export function tokenCommand(): Command {
  return new Command('token')
    .description('print the access token of PROVIDER/BUCKET on stdout')
    .argument('<provider>', 'provider name')
    .option('--bucket <bucket>', 'bucket', DEFAULT_BUCKET)
    .addOption(noDaemonOption())
    .addHelpText(
      'after',
      `
The token comes through a daemon, which refreshes it when needed: the one CREDPROXY_SOCKET (or
LLXPRT_CREDENTIAL_SOCKET) names, else the daemon running for this session (serve --detach, or
a serve on the default socket). Without either, or with --no-daemon, it is read from the host
store (--store, which applies to that case only), and an expired token is an error.`,
    )
    .action(async (provider: string, opts: { bucket: string; daemon: boolean }, cmd: Command) => {
      const target = toTarget(provider, opts.bucket);
      const found = await daemonSocket(opts.daemon);
      // Through a daemon, which refreshes a nearly expired token before answering (PROTOCOL.md §6).
      const accessToken = found ? await daemonAccessToken(found, target) : await fromHost(cmd, target);
      if (accessToken === null) throw new CliError(`No token for ${label(target)}`);
      process.stdout.write(`${accessToken}\n`);
    });
}
