/** The one-line outcomes of `credproxy login`: the success line and a message per failure code. */
import { errorCode } from '../../client/loginDriver.js';
import { NEVER_EXPIRES } from '../../oauth/providers/definition.js';
import type { SanitizedToken } from '../../oauth/token.js';
import { CliError } from './errors.js';
import { describeExpiry } from './duration.js';

/** "2026-11-28 14:03 UTC" for an epoch-seconds expiry. */
export function utcMinute(epochSeconds: number): string {
  return `${new Date(epochSeconds * 1000).toISOString().slice(0, 16).replace('T', ' ')} UTC`;
}

/** "Logged in to P (bucket B); token expires in 59m (2026-11-28 14:03 UTC)". */
export function successLine(provider: string, bucket: string, token: SanitizedToken, nowMs: number): string {
  if (token.expiry >= NEVER_EXPIRES) return `Logged in to ${provider} (bucket ${bucket}); the token does not expire`;
  const left = token.expiry - Math.floor(nowMs / 1000);
  return `Logged in to ${provider} (bucket ${bucket}); token ${describeExpiry(left)} (${utcMinute(token.expiry)})`;
}

/** The message for a provider the host does not know. */
export function unknownProvider(provider: string, mode: 'host' | 'proxy'): CliError {
  return new CliError(
    mode === 'host'
      ? `unknown provider ${provider}; "credproxy providers" lists the configured ones`
      : `unknown provider ${provider}: the credential proxy has no login configuration for it`,
  );
}

/**
 * Turns a failure of either backend into the CliError the user sees. Messages from the host are
 * safe by contract (PROTOCOL.md §4); they are kept where they say something the code does not.
 */
export function loginFailure(err: unknown, provider: string, mode: 'host' | 'proxy'): unknown {
  if (err instanceof CliError) return err;
  const code = errorCode(err);
  const detail = err instanceof Error ? err.message.replace(/[.\s]+$/, '') : '';
  switch (code) {
    case 'ACCESS_DENIED':
      return new CliError('authorization denied');
    case 'SESSION_EXPIRED':
      return new CliError('the login expired; run login again');
    case 'SESSION_NOT_FOUND':
      return new CliError('the login session no longer exists (did the daemon restart?); run login again');
    case 'SESSION_ALREADY_USED':
      return new CliError('the login session was already used; run login again');
    case 'PROVIDER_NOT_FOUND':
      return unknownProvider(provider, mode);
    case 'FLOW_INITIATION_FAILED':
      return new CliError(`could not start the login: ${detail}`);
    case 'EXCHANGE_FAILED':
      return new CliError(`the authorization code was not accepted (${detail}); run login again`);
    case 'POLL_FAILED':
      return new CliError(`waiting for authorization failed: ${detail}`);
    case 'UNAUTHORIZED':
      // The cause keeps the code for withDaemonClient's hint on the host.
      return new CliError(`the credential proxy refused the login: ${detail}`, { cause: err });
    default: {
      // Other protocol or client errors keep their message and get their code, like other commands.
      const name = err instanceof Error ? err.name : '';
      if (code !== undefined && (name === 'ProxyError' || name === 'ProxyClientError')) return new CliError(`${detail} (${code})`);
      return err;
    }
  }
}
