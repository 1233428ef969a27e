/**
 * The one freshness decision for serving a stored token: get_token and inject mode's proxy both
 * attach what this returns, so both refresh within the margin through the same single-flight
 * RefreshCoordinator and never serve an expired token.
 */
import { pause, raceAbort } from '../abort.js';
import { errors, ProxyError } from '../protocol/errors.js';
import type { StoredToken } from '../store/types.js';
import type { TokenService } from './TokenService.js';

/** Host-side refresh of (provider, bucket) in §6.4's check order; RefreshCoordinator is one. Throws ProxyError. */
export interface Refresher {
  refresh(provider: string, bucket: string, signal?: AbortSignal): Promise<StoredToken>;
}

/** What freshToken needs: the token service, the refresher (null: none) and the caller's signal. */
export interface FreshTokenContext {
  tokens: TokenService;
  refresher: Refresher | null;
  /** How long a still-valid token waits for its refresh before it is served as stored (~2 s). */
  refreshWaitMs?: number;
  signal: AbortSignal;
}

/** freshToken's answer when it needs no wait: valid and, when it can be refreshed, not yet due. */
export function servableAsStored(tokens: TokenService, token: StoredToken): boolean {
  return token.refresh_token ? !tokens.needsRefresh(token) : tokens.isValid(token);
}

/** PROTOCOL.md §6 get_token: "if that fails or takes more than about 2 s". */
const DEFAULT_REFRESH_WAIT_MS = 2_000;

/**
 * The token to serve: the stored one, refreshed first when it is within the refresh margin and the
 * host can refresh it. A still-valid token waits for that refresh only briefly (refreshWaitMs, ~2 s):
 * a slow or failing authorization server must not turn a usable token into a wait or an error. The
 * refresh goes on in the background and the next request sees its result. Validity is decided at
 * the moment of the reply, so a token that expired during the wait is never served.
 */
export async function freshToken(ctx: FreshTokenContext, provider: string, bucket: string, stored: StoredToken): Promise<StoredToken> {
  if (servableAsStored(ctx.tokens, stored)) return stored;
  if (!stored.refresh_token) {
    throw new ProxyError('REFRESH_NOT_AVAILABLE', `Token for ${provider}/${bucket} has expired and has no refresh token; log in again`);
  }
  if (!ctx.refresher) {
    if (ctx.tokens.isValid(stored)) return stored;
    throw errors.noOAuthProvider(provider);
  }
  // Not tied to this request's signal: other requests may be waiting on the same refresh.
  const refreshing = ctx.refresher.refresh(provider, bucket).then(
    (token) => ({ token }),
    (error: unknown) => ({ error }),
  );
  const outcome = ctx.tokens.isValid(stored)
    ? await Promise.race([refreshing, pause(ctx.refreshWaitMs ?? DEFAULT_REFRESH_WAIT_MS, ctx.signal, { unref: true }).then(() => null)])
    : await raceAbort(refreshing, ctx.signal, errors.cancelled);
  if (outcome && 'token' in outcome && ctx.tokens.isValid(outcome.token)) return outcome.token;
  if (ctx.signal.aborted) throw errors.cancelled();
  if (ctx.tokens.isValid(stored)) return stored;
  if (outcome && 'error' in outcome) throw outcome.error;
  // The refresh outlived the wait and the stored token expired meanwhile: wait for the refresh after all.
  const late = await raceAbort(refreshing, ctx.signal, errors.cancelled);
  if ('error' in late) throw late.error;
  if (ctx.tokens.isValid(late.token)) return late.token;
  throw new ProxyError('REFRESH_FAILED', `The refreshed token for ${provider}/${bucket} has already expired`);
}

