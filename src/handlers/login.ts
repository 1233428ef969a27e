/**
 * The oauth_* ops (PROTOCOL.md §6.1–6.3) over a provider registry and a session store: the host
 * runs the flow, stores the FULL token, and the client sees only URLs, user codes and the
 * sanitized token.
 */
import { errors, ProxyError } from '../protocol/errors.js';
import type { Payload } from '../protocol/messages.js';
import { bucketOrDefault } from '../protocol/names.js';
import { defaultFlowDeps } from '../oauth/flowDeps.js';
import { FlowError, type FlowDeps, type FlowType } from '../oauth/flowTypes.js';
import { FLOW_ALIASES, type ProviderRegistry } from '../oauth/providerTypes.js';
import { type LoginSession, SessionStore, type SessionStoreOptions } from '../oauth/sessions.js';
import { type SanitizedToken, sanitizeToken } from '../oauth/token.js';
import type { StoredToken } from '../store/types.js';
import type { HandlerContext, PollData } from './context.js';
import type { LoginService } from './oauth.js';

export interface LoginServiceOptions extends SessionStoreOptions {
  registry: ProviderRegistry;
  /** Network for the flows; defaults to the real one with a 15 s HTTP limit. The clock is `now`. */
  flowDeps?: Partial<Omit<FlowDeps, 'now'>>;
}

/** Sessions are bound to the peer uid and the grant of the connection that created them. */
function ownerOf(ctx: HandlerContext): string {
  return `${ctx.peer?.uid ?? '-'}|${ctx.grant.id}`;
}

const WRONG_FLOW: Record<'oauth_poll' | 'oauth_exchange', { allowed: FlowType[]; hint: string }> = {
  oauth_poll: { allowed: ['device_code', 'browser_redirect'], hint: 'Use oauth_exchange instead.' },
  oauth_exchange: { allowed: ['pkce_redirect'], hint: 'Use oauth_poll instead.' },
};

export function createLoginService(options: LoginServiceOptions): LoginService & { sessions: SessionStore } {
  const sessions = new SessionStore(options);
  const deps = defaultFlowDeps({ ...options.flowDeps, now: options.now ?? Date.now });

  /** §6.2/§6.3 checks in order, ending with the flow type check for `op`. */
  function usableSession(ctx: HandlerContext, id: string, op: 'oauth_poll' | 'oauth_exchange'): LoginSession {
    const found = sessions.lookup(id, ownerOf(ctx));
    if (!found.ok) {
      switch (found.reason) {
        case 'not_found':
          throw new ProxyError('SESSION_NOT_FOUND', 'Session not found');
        case 'foreign':
          throw new ProxyError('UNAUTHORIZED', 'Session belongs to another client');
        case 'used':
          throw new ProxyError('SESSION_ALREADY_USED', 'Session already used');
        case 'expired':
          throw new ProxyError('SESSION_EXPIRED', 'Session expired');
      }
    }
    const { session } = found;
    const rule = WRONG_FLOW[op];
    if (!rule.allowed.includes(session.flowType)) {
      throw new ProxyError('INVALID_REQUEST', `Operation ${op} is not valid for flow type ${session.flowType}. ${rule.hint}`);
    }
    return session;
  }

  /**
   * Stores the full token (refresh token included) and returns what the client may see. Not
   * stopped by the request's signal: the user approved and the provider has issued the tokens (and
   * spent the code or device code), so dropping them would only force a new login while leaving a
   * live refresh token at the provider. A completion whose request timed out or was cancelled is
   * therefore stored anyway, and the session is spent either way.
   */
  async function complete(ctx: HandlerContext, session: LoginSession, token: StoredToken): Promise<SanitizedToken> {
    await ctx.tokens.replace(session.provider, session.bucket, token);
    return sanitizeToken(token, ctx.publicFields(session.provider));
  }

  return {
    sessions,

    async initiate(ctx, { provider, bucket, flow }: Payload<'oauth_initiate'>) {
      const adapter = options.registry.get(provider);
      if (!adapter) throw errors.noOAuthProvider(provider);
      const flowType = flow ? FLOW_ALIASES[flow]! : adapter.flows[0];
      if (!flowType || !adapter.flows.includes(flowType)) {
        throw new ProxyError('FLOW_INITIATION_FAILED', `Provider ${provider} does not support the ${flow ?? 'requested'} flow (supported: ${adapter.flows.join(', ')})`);
      }
      const owner = ownerOf(ctx);
      if (!sessions.hasRoomFor(owner)) throw new ProxyError('RESOURCE_EXHAUSTED', 'Too many login sessions open; cancel one first');
      // Taken before the await, so a cancel or timeout of this request during start() is seen below.
      const signal = ctx.signal;
      let started;
      try {
        started = await adapter.start(flowType, deps);
      } catch (err) {
        if (err instanceof FlowError) throw new ProxyError('FLOW_INITIATION_FAILED', err.message);
        throw new ProxyError('FLOW_INITIATION_FAILED', `Could not start the ${flowType} login with ${provider}`);
      }
      // Nobody will learn the id of a session created after the request was answered (cancelled or
      // timed out), and concurrent initiates may have filled the owner's slots meanwhile: end the flow
      // (freeing a callback port) rather than keep an orphan.
      if (signal.aborted || !sessions.hasRoomFor(owner)) {
        await started.cancel().catch(() => {});
        if (signal.aborted) throw errors.cancelled();
        throw new ProxyError('RESOURCE_EXHAUSTED', 'Too many login sessions open; cancel one first');
      }
      const session = sessions.create(owner, ctx.grant.id, provider, bucketOrDefault(bucket), started);
      return { session_id: session.id, flow_type: started.flowType, pollIntervalMs: started.pollIntervalMs(), ...started.publicData };
    },

    async exchange(ctx, { session_id, code }: Payload<'oauth_exchange'>) {
      const session = usableSession(ctx, session_id, 'oauth_exchange');
      session.used = true; // before the exchange: a failed code cannot be retried against this session
      try {
        const token = await session.flow.exchange!(code, ctx.signal);
        return await complete(ctx, session, token);
      } catch (err) {
        if (err instanceof ProxyError) throw err;
        throw new ProxyError('EXCHANGE_FAILED', err instanceof FlowError ? err.message : 'Authorization code exchange failed');
      } finally {
        await sessions.retire(session);
      }
    },

    async poll(ctx, { session_id }: Payload<'oauth_poll'>) {
      const session = usableSession(ctx, session_id, 'oauth_poll');
      // One upstream request at a time per session; a concurrent poll just hears "pending".
      if (session.polling) return { status: 'pending', pollIntervalMs: session.flow.pollIntervalMs() };
      session.polling = true;
      let result;
      try {
        result = await session.flow.poll!(ctx.signal);
      } catch (err) {
        if (err instanceof FlowError && (err.code === 'ACCESS_DENIED' || err.code === 'SESSION_EXPIRED')) {
          await sessions.remove(session);
          throw new ProxyError(err.code, err.code === 'ACCESS_DENIED' ? 'User denied authorization' : 'Device code expired');
        }
        throw new ProxyError('POLL_FAILED', err instanceof FlowError ? err.message : 'Polling the provider failed');
      } finally {
        session.polling = false;
      }
      if (result.status === 'pending') {
        const reply: PollData = { status: 'pending', pollIntervalMs: result.pollIntervalMs };
        if (result.intervalSeconds !== undefined) reply.interval = result.intervalSeconds;
        return reply;
      }
      session.used = true; // before storing
      try {
        return { status: 'complete', token: await complete(ctx, session, result.token) };
      } finally {
        await sessions.remove(session);
      }
    },

    async cancel(ctx, { session_id }: Payload<'oauth_cancel'>) {
      await sessions.cancel(session_id, ownerOf(ctx));
      return {};
    },

    shutdown: () => sessions.close(),
  };
}
