/** Token ops: get_token, save_token, remove_token, list_providers, list_buckets, get_bucket_stats. */
import { ProxyError } from '../protocol/errors.js';
import type { Payload } from '../protocol/messages.js';
import { bucketOrDefault } from '../protocol/names.js';
import { REFRESH_ATTEMPT_FIELD } from '../oauth/refreshCoordinator.js';
import { mergeToken, sanitizeToken, secondsToExpiry } from '../oauth/token.js';
import { allowsBucket, allowsProvider } from '../server/grants.js';
import type { StoredToken } from '../store/types.js';
import type { Handler, HandlerContext } from './context.js';

/** Refresh this long before expiry (PROTOCOL.md §6, get_token). */
const REFRESH_MARGIN_S = 60;

function notFound(provider: string, bucket: string): ProxyError {
  return new ProxyError('NOT_FOUND', `No token for provider ${provider}, bucket ${bucket}`);
}

async function freshToken(ctx: HandlerContext, provider: string, bucket: string, stored: StoredToken): Promise<StoredToken> {
  const remaining = secondsToExpiry(stored, ctx.now());
  if (remaining > REFRESH_MARGIN_S || !stored.refresh_token || !ctx.refresher) return stored;
  try {
    return await ctx.refresher(provider, bucket, ctx.signal);
  } catch (err) {
    if (remaining > 0) return stored; // still valid: serve it as stored
    throw err;
  }
}

export const getToken: Handler<Payload<'get_token'>> = async (ctx, { provider, bucket }) => {
  const b = bucketOrDefault(bucket);
  const stored = await ctx.tokens.getToken(provider, b);
  if (!stored) throw notFound(provider, b);
  const token = await freshToken(ctx, provider, b, stored);
  ctx.usage.record(provider, b, ctx.now());
  return { ...sanitizeToken(provider, token) };
};

export const saveToken: Handler<Payload<'save_token'>> = async (ctx, { provider, bucket, token }) => {
  const b = bucketOrDefault(bucket);
  // A sandbox never supplies refresh tokens (they only come from a host-side login or refresh), nor
  // the host's refresh bookkeeping, which would let it skip the refresh cooldown.
  const { refresh_token: _dropped, [REFRESH_ATTEMPT_FIELD]: _hostOnly, ...incoming } = token;
  await ctx.tokens.withTokenLock(provider, b, async () => {
    const stored = await ctx.tokens.getToken(provider, b);
    await ctx.tokens.saveToken(provider, b, mergeToken(stored, incoming as Partial<StoredToken>));
  });
  return {};
};

export const removeToken: Handler<Payload<'remove_token'>> = async (ctx, { provider, bucket }) => {
  const b = bucketOrDefault(bucket);
  await ctx.tokens.withTokenLock(provider, b, () => ctx.tokens.removeToken(provider, b));
  return {};
};

export const listProviders: Handler<Payload<'list_providers'>> = async (ctx) => {
  const providers = (await ctx.tokens.listProviders()).filter((p) => allowsProvider(ctx.grant, p));
  return { providers };
};

export const listBuckets: Handler<Payload<'list_buckets'>> = async (ctx, { provider }) => {
  const buckets = (await ctx.tokens.listBuckets(provider)).filter((b) => allowsBucket(ctx.grant, provider, b));
  return { buckets };
};

export const getBucketStats: Handler<Payload<'get_bucket_stats'>> = async (ctx, { provider, bucket }) => {
  const b = bucketOrDefault(bucket);
  if (!(await ctx.tokens.getToken(provider, b))) throw notFound(provider, b);
  return { bucket: b, ...ctx.usage.stats(provider, b) };
};
