/** Token ops: get_token, save_token, remove_token, list_providers, list_buckets, get_bucket_stats. */
import { allowsBucket, allowsProvider } from '../auth/grants.js';
import { sanitizeToken, type SanitizedToken } from '../oauth/token.js';
import { pause, raceAbort } from '../abort.js';
import { errors, ProxyError } from '../protocol/errors.js';
import { bucketOrDefault } from '../protocol/names.js';
import type { StoredToken } from '../store/types.js';
import type { Handler, HandlerContext } from './context.js';

/** PROTOCOL.md §6 get_token: "if that fails or takes more than about 2 s". */
const DEFAULT_REFRESH_WAIT_MS = 2_000;

/**
 * The token to serve: the stored one, refreshed first when it is within the refresh margin and the
 * host can refresh it. A still-valid token waits for that refresh only briefly (refreshWaitMs, ~2 s):
 * a slow or failing authorization server must not turn a usable token into a wait or an error. The
 * refresh goes on in the background and the next request sees its result. Validity is decided at
 * the moment of the reply, so a token that expired during the wait is never served.
 */
async function freshToken(ctx: HandlerContext, provider: string, bucket: string, stored: StoredToken): Promise<StoredToken> {
  if (!stored.refresh_token) {
    if (ctx.tokens.isValid(stored)) return stored;
    throw new ProxyError('REFRESH_NOT_AVAILABLE', `Token for ${provider}/${bucket} has expired and has no refresh token; log in again`);
  }
  if (!ctx.tokens.needsRefresh(stored)) return stored;
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

export const getToken: Handler<'get_token'> = (ctx, { provider, bucket }) => {
  const b = bucketOrDefault(bucket);
  // The common case, answered in this turn: a cached token (the store's stamp unchanged) that
  // needs no refresh. freshToken decides everything else.
  const cached = ctx.tokens.peek(provider, b);
  if (cached && servableAsStored(ctx, cached)) return served(ctx, provider, b, cached);
  return fromStore(ctx, provider, b);
};

async function fromStore(ctx: HandlerContext, provider: string, bucket: string): Promise<SanitizedToken> {
  const stored = await ctx.tokens.read(provider, bucket);
  if (!stored) throw errors.tokenNotFound(provider, bucket);
  return served(ctx, provider, bucket, await freshToken(ctx, provider, bucket, stored));
}

/** freshToken's answer without waiting: valid and, when it can be refreshed, not yet due. */
function servableAsStored(ctx: HandlerContext, token: StoredToken): boolean {
  return token.refresh_token ? !ctx.tokens.needsRefresh(token) : ctx.tokens.isValid(token);
}

function served(ctx: HandlerContext, provider: string, bucket: string, token: StoredToken): SanitizedToken {
  ctx.usage.record(provider, bucket, ctx.tokens.now());
  return sanitizeToken(token, ctx.publicFields(provider));
}

export const saveToken: Handler<'save_token'> = async (ctx, { provider, bucket, token }) => {
  // Only allowlisted fields are kept: a sandbox never supplies refresh tokens (they come from a
  // host-side login or refresh) nor the host's bookkeeping (which would let it skip the cooldown).
  // A timeout or cancel before the save starts writes nothing: what the client heard is what happened.
  await ctx.tokens.saveFromClient(provider, bucketOrDefault(bucket), token, ctx.publicFields(provider), ctx.signal);
  return {};
};

export const removeToken: Handler<'remove_token'> = async (ctx, { provider, bucket }) => {
  // Like save_token: a timeout or cancel before the removal starts leaves the token in place.
  await ctx.tokens.remove(provider, bucketOrDefault(bucket), ctx.signal);
  return {};
};

export const listProviders: Handler<'list_providers'> = async (ctx) => {
  const providers = (await ctx.tokens.listProviders()).filter((p) => allowsProvider(ctx.grant, p));
  return { providers };
};

export const listBuckets: Handler<'list_buckets'> = async (ctx, { provider }) => {
  const buckets = (await ctx.tokens.listBuckets(provider)).filter((b) => allowsBucket(ctx.grant, provider, b));
  return { buckets };
};

export const getBucketStats: Handler<'get_bucket_stats'> = async (ctx, { provider, bucket }) => {
  const b = bucketOrDefault(bucket);
  if (!(await ctx.tokens.read(provider, b))) throw errors.tokenNotFound(provider, b);
  return { bucket: b, ...ctx.usage.stats(provider, b) };
};
