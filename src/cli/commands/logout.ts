/** `credproxy logout PROVIDER`: forget the token of one provider/bucket. */
import { Command } from 'commander';
import { TokenService } from '../../oauth/TokenService.js';
import { CliError } from '../util/errors.js';
import { noDaemonOption } from '../util/noDaemonOption.js';
import { daemonSocket } from '../util/daemonSocket.js';
import { withDaemonClient } from '../util/proxy.js';
import { withHostStores } from '../util/stores.js';
import { label, toTarget } from '../util/target.js';

export function logoutCommand(): Command {
  return new Command('logout')
    .description('remove the stored token of PROVIDER/BUCKET')
    .argument('<provider>', 'provider name')
    .option('--bucket <bucket>', 'bucket', 'default')
    .addOption(noDaemonOption())
    .addHelpText(
      'after',
      `
With CREDPROXY_SOCKET set, or a daemon running for this session, the daemon removes it
(remove_token; the daemon does not say whether there was one). Otherwise, or with --no-daemon,
the host store (--store) does.`,
    )
    .action(async (provider: string, opts: { bucket: string; daemon: boolean }, cmd: Command) => {
      const target = toTarget(provider, opts.bucket);
      const found = await daemonSocket(opts.daemon);
      if (found) {
        await withDaemonClient(found, (client) => client.request('remove_token', { provider: target.provider, bucket: target.bucket }));
      } else {
        // Under the refresh lock, so a refresh racing this logout cannot write the token back.
        const existed = await withHostStores(cmd, ({ tokens }) => new TokenService(tokens).remove(target.provider, target.bucket));
        if (!existed) throw new CliError(`No token for ${label(target)}`);
      }
      process.stdout.write(`Logged out of ${label(target)}\n`);
    });
}
