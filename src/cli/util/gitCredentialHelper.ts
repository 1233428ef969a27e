/**
 * The git credential helper (gitcredentials(7)) behind `credproxy git-credential`: `get` answers
 * with the provider's access token, fetched through the proxy (the daemon refreshes it), for https
 * and the provider's own host only; anything else gets no answer, so git asks its other helpers.
 *
 * This runs on every git operation: it loads only the client and small CLI utils, never commander,
 * the host store, OAuth or server code.
 */
import { CliError } from './errors.js';
import { formatCredentialAnswer, readCredentialRequest, type CredentialRequest } from './gitCredentialIo.js';
import { proxyToken, requireProxySocket, withProxyClient } from './proxy.js';
import { toTarget, type Target } from './target.js';

/** Git hosts of the providers that are one; any other provider needs --host. */
const GIT_HOSTS: Readonly<Record<string, string>> = { github: 'github.com' };

export interface GitCredentialOptions {
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

function helperFrom(opts: GitCredentialOptions): Helper {
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

/** Runs one operation; unknown ones are ignored silently, as gitcredentials(7) asks (room for new ones). */
export async function runGitCredential(operation: string, opts: GitCredentialOptions): Promise<void> {
  if (operation !== 'get' && operation !== 'store' && operation !== 'erase') return;
  const helper = helperFrom(opts);
  if (operation === 'get') return get(helper);
  // Read what git sends so that it never writes into a closed pipe, then do nothing: storing
  // would put the token into a sandbox-side copy, and erasing must not log the host out.
  await readCredentialRequest();
}
