/** `credproxy logout PROVIDER`: forget the token of one provider/bucket. */
import { Command } from 'commander';
import { TokenService } from '../../oauth/TokenService.js';
import { CliError } from '../util/errors.js';
import { proxySocketFromEnv, withProxyClient } from '../util/proxy.js';
import { withHostStores } from '../util/stores.js';
import { label, toTarget } from '../util/target.js';

export function logoutCommand(): Command {
  return new Command('logout')
    .description('remove the stored token of PROVIDER/BUCKET')
    .argument('<provider>', 'provider name')
    .option('--bucket <bucket>', 'bucket', 'default')
    .addHelpText('after', '\nWith CREDPROXY_SOCKET set, the daemon removes it (remove_token); otherwise the host store (--store).')
    .action(async (provider: string, opts: { bucket: string }, cmd: Command) => {
      const target = toTarget(provider, opts.bucket);
      const socketPath = proxySocketFromEnv();
      if (socketPath) {
        await withProxyClient(socketPath, (client) => client.request('remove_token', { provider: target.provider, bucket: target.bucket }));
      } else {
        // Under the refresh lock, so a refresh racing this logout cannot write the token back.
        const existed = await withHostStores(cmd, ({ tokens }) => new TokenService(tokens).remove(target.provider, target.bucket));
        if (!existed) throw new CliError(`No token for ${label(target)}`);
      }
      process.stdout.write(`Logged out of ${label(target)}\n`);
    });
}
