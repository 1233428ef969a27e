/**
 * refresh_token and the oauth_* ops. The OAuth machinery (providers, flows, sessions, refresh
 * coordination) plugs in through `ctx.refresher` and `LoginService`; a daemon started without them
 * knows no OAuth provider and answers accordingly.
 */
import { sanitizeToken } from '../oauth/token.js';
import { errors, ProxyError } from '../protocol/errors.js';
import type { Payload } from '../protocol/messages.js';
import { bucketOrDefault } from '../protocol/names.js';
import type { Handler, HandlerContext, OpResults } from './context.js';

type LoginOp = 'oauth_initiate' | 'oauth_exchange' | 'oauth_poll' | 'oauth_cancel';

/** Host-side login sessions (PROTOCOL.md §6.1–6.3). */
export interface LoginService {
  initiate(ctx: HandlerContext, payload: Payload<'oauth_initiate'>): Promise<OpResults['oauth_initiate']>;
  exchange(ctx: HandlerContext, payload: Payload<'oauth_exchange'>): Promise<OpResults['oauth_exchange']>;
  poll(ctx: HandlerContext, payload: Payload<'oauth_poll'>): Promise<OpResults['oauth_poll']>;
  cancel(ctx: HandlerContext, payload: Payload<'oauth_cancel'>): Promise<OpResults['oauth_cancel']>;
  /** Aborts every session (daemon shutdown). */
  shutdown(): Promise<void>;
}

/** The refresher checks §6.4's order (PROVIDER_NOT_FOUND, NOT_FOUND, REFRESH_NOT_AVAILABLE) itself. */
export const refreshToken: Handler<'refresh_token'> = async (ctx, { provider, bucket }) => {
  if (!ctx.refresher) throw errors.noOAuthProvider(provider);
  const token = await ctx.refresher.refresh(provider, bucketOrDefault(bucket), ctx.signal);
  return sanitizeToken(token, ctx.publicFields(provider));
};

/** Builds the oauth_* handlers over a login service (or none). */
export function oauthHandlers(login: LoginService | null): { [O in LoginOp]: Handler<O> } {
  return {
    oauth_initiate: async (ctx, payload) => {
      if (!login) throw errors.noOAuthProvider(payload.provider);
      return login.initiate(ctx, payload);
    },
    oauth_exchange: async (ctx, payload) => {
      if (!login) throw new ProxyError('SESSION_NOT_FOUND', 'Session not found');
      return login.exchange(ctx, payload);
    },
    oauth_poll: async (ctx, payload) => {
      if (!login) throw new ProxyError('SESSION_NOT_FOUND', 'Session not found');
      return login.poll(ctx, payload);
    },
    oauth_cancel: async (ctx, payload) => {
      if (!login) return {};
      return login.cancel(ctx, payload);
    },
  };
}
