/**
 * refresh_token and the oauth_* ops. The OAuth machinery (providers, flows, sessions, refresh
 * coordination) plugs in through `ctx.refresher` and `LoginService`; a daemon started without them
 * knows no OAuth provider and answers accordingly.
 */
import { ProxyError } from '../protocol/errors.js';
import type { Payload } from '../protocol/messages.js';
import { bucketOrDefault } from '../protocol/names.js';
import { sanitizeToken } from '../oauth/token.js';
import type { Handler, HandlerContext } from './context.js';

/** Host-side login sessions (PROTOCOL.md §6.1–6.3). */
export interface LoginService {
  initiate(ctx: HandlerContext, payload: Payload<'oauth_initiate'>): Promise<Record<string, unknown>>;
  exchange(ctx: HandlerContext, payload: Payload<'oauth_exchange'>): Promise<Record<string, unknown>>;
  poll(ctx: HandlerContext, payload: Payload<'oauth_poll'>): Promise<Record<string, unknown>>;
  cancel(ctx: HandlerContext, payload: Payload<'oauth_cancel'>): Promise<Record<string, unknown>>;
  /** Aborts every session (daemon shutdown). */
  shutdown(): Promise<void>;
}

function noProvider(provider: string): ProxyError {
  return new ProxyError('PROVIDER_NOT_FOUND', `Provider ${provider} has no OAuth configuration on this host`);
}

export const refreshToken: Handler<Payload<'refresh_token'>> = async (ctx, { provider, bucket }) => {
  const b = bucketOrDefault(bucket);
  const stored = await ctx.tokens.getToken(provider, b);
  if (!stored) throw new ProxyError('NOT_FOUND', `No token for provider ${provider}, bucket ${b}`);
  if (!stored.refresh_token) throw new ProxyError('REFRESH_NOT_AVAILABLE', `Token for ${provider}/${b} has no refresh token; log in again`);
  if (!ctx.refresher) throw noProvider(provider);
  return { ...sanitizeToken(provider, await ctx.refresher(provider, b, ctx.signal)) };
};

/** Builds the oauth_* handlers over a login service (or none). */
export function oauthHandlers(login: LoginService | null) {
  return {
    oauth_initiate: (async (ctx, payload) => {
      if (!login) throw noProvider(payload.provider);
      return login.initiate(ctx, payload);
    }) as Handler<Payload<'oauth_initiate'>>,
    oauth_exchange: (async (ctx, payload) => {
      if (!login) throw new ProxyError('SESSION_NOT_FOUND', 'Session not found');
      return login.exchange(ctx, payload);
    }) as Handler<Payload<'oauth_exchange'>>,
    oauth_poll: (async (ctx, payload) => {
      if (!login) throw new ProxyError('SESSION_NOT_FOUND', 'Session not found');
      return login.poll(ctx, payload);
    }) as Handler<Payload<'oauth_poll'>>,
    oauth_cancel: (async (ctx, payload) => {
      if (!login) return {};
      return login.cancel(ctx, payload);
    }) as Handler<Payload<'oauth_cancel'>>,
  };
}
