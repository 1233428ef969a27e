/**
 * `credproxy git-credential get|store|erase`: a git credential helper for sandboxes (gitcredentials(7)).
 * `get` answers with the provider's access token, fetched through the proxy (the daemon refreshes
 * it), for https and the provider's own host only; for anything else it prints nothing, so git
 * asks its other helpers. Tokens come from the host, so `store` and `erase` change nothing.
 *
 * This runs on every git operation: it loads only the client and small CLI utils, never the host
 * store, OAuth or server code.
 */
import { Command } from 'commander';
import { CliError } from '../util/errors.js';
import { formatCredentialAnswer, readCredentialRequest, type CredentialRequest } from '../util/gitCredentialIo.js';
import { proxyToken, requireProxySocket, withProxyClient } from '../util/proxy.js';
import { toTarget, type Target } from '../util/target.js';

/** Git hosts of the providers that are one; any other provider needs --host. */
const GIT_HOSTS: Readonly<Record<string, string>> = { github: 'github.com' };
/** GitHub's documented username for token authentication over https; other hosts ignore or accept it. */
const DEFAULT_USERNAME = 'x-access-token';

interface Options {
  provider: string;
  bucket: string;
  host?: string;
  username: string;
}

interface Helper {
  target: Target;
  /** Lower case; compared with git's host attribute, which includes a port when the URL has one. */
  host: string;
  username: string;
}

function helperFrom(opts: Options): Helper {
  const target = toTarget(opts.provider, opts.bucket);
  const host = opts.host ?? GIT_HOSTS[target.provider];
  if (host === undefined) throw new CliError(`Provider ${target.provider} has no default git host; pass --host HOST`);
  if (!/^[^\s/=]+$/.test(host)) throw new CliError(`Invalid --host ${JSON.stringify(host.slice(0, 80))}: a host name, optionally with :PORT`);
  if (opts.username === '' || /[\n\0]/.test(opts.username)) throw new CliError('--username must be non-empty and on one line');
  return { target, host: host.toLowerCase(), username: opts.username };
}

/** Only https, so a token never travels in clear, and only the provider's host, so it goes nowhere else. */
function answers(helper: Helper, request: CredentialRequest): boolean {
  return request.protocol === 'https' && request.host?.toLowerCase() === helper.host;
}

async function get(helper: Helper): Promise<void> {
  const request = await readCredentialRequest();
  if (!answers(helper, request)) return;
  const socketPath = requireProxySocket('git-credential');
  const token = await withProxyClient(socketPath, (client) => proxyToken(client, helper.target));
  const answer: Array<[string, string]> = [
    ['username', helper.username],
    ['password', token.access_token],
  ];
  // Git 2.41+ uses it to drop the token from caching helpers once it expires; older git ignores it.
  if (Number.isSafeInteger(token.expiry) && token.expiry > 0) answer.push(['password_expiry_utc', String(token.expiry)]);
  process.stdout.write(formatCredentialAnswer(answer));
}

export function gitCredentialCommand(): Command {
  return new Command('git-credential')
    .description('git credential helper inside a sandbox: answers git with an access token from the daemon')
    .argument('<operation>', 'get, store or erase (git appends it)')
    .option('--provider <provider>', 'provider whose access token is the password', 'github')
    .option('--bucket <bucket>', 'bucket', 'default')
    .option('--host <host>', 'the git host to answer for (default: github.com for github; required for other providers)')
    .option('--username <name>', 'username to answer with', DEFAULT_USERNAME)
    .addHelpText(
      'after',
      `
Configure it in git (inside the sandbox, with CREDPROXY_SOCKET set):
  git config --global credential.helper '!credproxy git-credential'
  git config --global credential.https://git.corp.example.helper '!credproxy git-credential --provider corp-git --host git.corp.example'

get: for protocol=https and the helper's host, prints username=${DEFAULT_USERNAME} (or --username), the
access token as password, and password_expiry_utc; for any other protocol or host prints nothing and
exits 0, so git tries its other helpers. A daemon error is one line on stderr and a non-zero exit.
store, erase: read git's description and change nothing; the token belongs to the host, which
refreshes it (log in again or log out on the host). Other operations are ignored, as git asks.`,
    )
    .action(async (operation: string, opts: Options) => {
      // gitcredentials(7): a helper silently ignores operations it does not know (room for new ones).
      if (operation !== 'get' && operation !== 'store' && operation !== 'erase') return;
      const helper = helperFrom(opts);
      if (operation === 'get') {
        await get(helper);
        return;
      }
      // Read what git sends so that it never writes into a closed pipe, then do nothing: storing
      // would put the token into a sandbox-side copy, and erasing must not log the host out.
      await readCredentialRequest();
    });
}
