/**
 * Host mode of `credproxy login`: the daemon's request pipeline, in-process, over the host stores —
 * the same validation, handlers and login service, with the host user's full grant — so the FULL
 * token (refresh token included) lands in the host store exactly as if a daemon had stored it, and
 * the CLI itself only ever sees the sanitized token.
 */
import { FULL_GRANT } from '../../auth/grants.js';
import { ownIdentity } from '../../auth/peer.js';
import { buildHandlers, BucketUsage } from '../../handlers/index.js';
import { createLoginService } from '../../handlers/login.js';
import type { FlowName, LoginBackend, LoginPoll, LoginStart } from '../../client/loginDriver.js';
import { parseLoginPoll, parseLoginStart } from '../../client/loginDriver.js';
import type { SanitizedToken } from '../../oauth/token.js';
import type { ProviderRegistry } from '../../oauth/providerTypes.js';
import { TokenService } from '../../oauth/TokenService.js';
import { ProxyError } from '../../protocol/errors.js';
import type { JsonObject } from '../../protocol/framing.js';
import { openAuditLog } from '../../server/audit.js';
import { type Caller, Dispatcher } from '../../server/dispatch.js';
import type { HostStores } from './stores.js';

/** The oauth_* ops through an in-process Dispatcher against the host stores. */
export class HostLoginBackend implements LoginBackend {
  readonly mode = 'host' as const;
  private readonly login;
  private readonly dispatcher: Dispatcher;
  private readonly caller: Caller = { conn: 0, peer: ownIdentity(), grant: FULL_GRANT, version: 2 };
  /** Aborted on close, so a flow step still running cannot outlive the command. */
  private readonly lifetime = new AbortController();

  constructor(registry: ProviderRegistry, stores: HostStores) {
    this.login = createLoginService({ registry });
    this.dispatcher = new Dispatcher({
      handlers: buildHandlers(this.login),
      services: {
        tokens: new TokenService(stores.tokens),
        keys: stores.keys,
        usage: new BucketUsage(),
        refresher: null,
        publicFields: (provider) => registry.get(provider)?.publicFields ?? [],
      },
      audit: openAuditLog('off'),
      now: Date.now,
    });
  }

  /**
   * One op through the pipeline. A failure is thrown as what caused it: on the host the user may see
   * a store's own message (its path, ENOSPC), which a sandbox never does.
   */
  private async call(op: string, payload: JsonObject, signal: AbortSignal): Promise<JsonObject> {
    const outcome = await this.dispatcher.call(this.caller, op, payload, AbortSignal.any([signal, this.lifetime.signal]));
    if (outcome.ok) return outcome.data;
    if (outcome.cause instanceof Error) throw outcome.cause;
    throw new ProxyError(outcome.code, outcome.error, outcome.retryAfter);
  }

  async initiate(provider: string, bucket: string, flow: FlowName | undefined): Promise<LoginStart> {
    return parseLoginStart(await this.call('oauth_initiate', { provider, bucket, ...(flow !== undefined && { flow }) }, this.lifetime.signal));
  }

  async poll(sessionId: string, signal: AbortSignal): Promise<LoginPoll> {
    return parseLoginPoll(await this.call('oauth_poll', { session_id: sessionId }, signal));
  }

  async exchange(sessionId: string, code: string, signal: AbortSignal): Promise<SanitizedToken> {
    return (await this.call('oauth_exchange', { session_id: sessionId, code }, signal)) as SanitizedToken;
  }

  async cancel(sessionId: string): Promise<void> {
    await this.call('oauth_cancel', { session_id: sessionId }, this.lifetime.signal);
  }

  /**
   * Cancels every open session (freeing callback ports) and waits for work still running — a token
   * being stored when Ctrl-C came — so the opener closes the stores only after it.
   */
  async close(): Promise<void> {
    this.lifetime.abort();
    await this.login.shutdown().catch(() => {});
    await this.dispatcher.idle();
  }
}
