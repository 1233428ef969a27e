/** Token ops: get_token, save_token, remove_token, list_providers, list_buckets, get_bucket_stats. */
import { allowsBucket, allowsProvider } from '../auth/grants.js';
import { freshToken, servableAsStored } from '../oauth/freshToken.js';
import { sanitizeToken, type SanitizedToken } from '../oauth/token.js';
import { errors } from '../protocol/errors.js';
import { bucketOrDefault } from '../protocol/names.js';
import type { StoredToken } from '../store/types.js';
import type { Handler, HandlerContext } from './context.js';

export const getToken: Handler<'get_token'> = (ctx, { provider, bucket }) => {
  const b = bucketOrDefault(bucket);
  // The common case, answered in this turn: a cached token (the store's stamp unchanged) that
  // needs no refresh. freshToken decides everything else.
  const cached = ctx.tokens.peek(provider, b);
  if (cached && servableAsStored(ctx.tokens, cached)) return served(ctx, provider, b, cached);
  return fromStore(ctx, provider, b);
};

async function fromStore(ctx: HandlerContext, provider: string, bucket: string): Promise<SanitizedToken> {
  const stored = await ctx.tokens.read(provider, bucket);
  if (!stored) throw errors.tokenNotFound(provider, bucket);
  return served(ctx, provider, bucket, await freshToken(ctx, provider, bucket, stored));
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
