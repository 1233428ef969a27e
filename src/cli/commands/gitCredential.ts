/**
 * `credproxy git-credential get|store|erase`: a git credential helper for sandboxes (gitcredentials(7)).
 * `get` answers with the provider's access token, fetched through the proxy (the daemon refreshes
 * it), for https and the provider's own host only; for anything else it prints nothing, so git
 * asks its other helpers. Tokens come from the host, so `store` and `erase` change nothing.
 *
 * The helper itself is util/gitCredentialHelper.ts, which the binary's helper path also runs
 * without this command tree (helperPath.ts).
 */
import { Command } from 'commander';
import { GIT_CREDENTIAL_DEFAULTS } from '../helperPath.js';
import { runGitCredential, type GitCredentialOptions } from '../util/gitCredentialHelper.js';

const DEFAULT_USERNAME = GIT_CREDENTIAL_DEFAULTS.username;

export function gitCredentialCommand(): Command {
  return new Command('git-credential')
    .description('git credential helper inside a sandbox: answers git with an access token from the daemon')
    .argument('<operation>', 'get, store or erase (git appends it)')
    .option('--provider <provider>', 'provider whose access token is the password', GIT_CREDENTIAL_DEFAULTS.provider)
    .option('--bucket <bucket>', 'bucket', GIT_CREDENTIAL_DEFAULTS.bucket)
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
    .action((operation: string, opts: GitCredentialOptions) => runGitCredential(operation, opts));
}
