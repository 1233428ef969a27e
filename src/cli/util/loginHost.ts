/**
 * Host mode of `credproxy login`: the same login service the daemon runs, in-process, over the
 * host stores — so the FULL token (refresh token included) lands in the host store exactly as if a
 * daemon had stored it, and the CLI itself only ever sees the sanitized token.
 */
import { BucketUsage } from '../../handlers/bucketUsage.js';
import type { HandlerContext } from '../../handlers/context.js';
import { createLoginService } from '../../handlers/login.js';
import type { FlowName, LoginBackend, LoginPoll, LoginStart } from '../../client/loginDriver.js';
import { parseLoginPoll, parseLoginStart } from '../../client/loginDriver.js';
import type { SanitizedToken } from '../../oauth/token.js';
import type { ProviderRegistry } from '../../oauth/providerTypes.js';
import { ProxyError } from '../../protocol/errors.js';
import { parsePayload, type OpName, type Payload } from '../../protocol/messages.js';
import { FULL_GRANT } from '../../server/grants.js';
import type { HostStores } from './stores.js';

/** The payload checks the daemon applies before any handler runs. */
function checked<O extends OpName>(op: O, payload: unknown): Payload<O> {
  const parsed = parsePayload(op, payload);
  if (!parsed.ok) throw new ProxyError('INVALID_REQUEST', parsed.message);
  return parsed.payload;
}

/** The oauth_* ops run in this process against the host stores, with the host user's full grant. */
export class HostLoginBackend implements LoginBackend {
  readonly mode = 'host' as const;
  private readonly service;
  private readonly usage = new BucketUsage();
  /** Aborted on close, so a flow step still running cannot outlive the command. */
  private readonly lifetime = new AbortController();

  constructor(
    registry: ProviderRegistry,
    private readonly stores: HostStores,
  ) {
    this.service = createLoginService({ registry });
  }

  private context(signal: AbortSignal): HandlerContext {
    return {
      tokens: this.stores.tokens,
      keys: this.stores.keys,
      grant: FULL_GRANT,
      peer: { uid: process.getuid?.() ?? -1, gid: process.getgid?.() ?? -1, pid: process.pid },
      usage: this.usage,
      refresher: null,
      signal: AbortSignal.any([signal, this.lifetime.signal]),
      now: Date.now,
    };
  }

  async initiate(provider: string, bucket: string, flow: FlowName | undefined): Promise<LoginStart> {
    const payload = checked('oauth_initiate', { provider, bucket, ...(flow !== undefined && { flow }) });
    return parseLoginStart(await this.service.initiate(this.context(this.lifetime.signal), payload));
  }

  async poll(sessionId: string, signal: AbortSignal): Promise<LoginPoll> {
    return parseLoginPoll(await this.service.poll(this.context(signal), checked('oauth_poll', { session_id: sessionId })));
  }

  async exchange(sessionId: string, code: string, signal: AbortSignal): Promise<SanitizedToken> {
    const data = await this.service.exchange(this.context(signal), checked('oauth_exchange', { session_id: sessionId, code }));
    return data as SanitizedToken;
  }

  async cancel(sessionId: string): Promise<void> {
    await this.service.cancel(this.context(this.lifetime.signal), checked('oauth_cancel', { session_id: sessionId }));
  }

  /** Cancels every open session (freeing callback ports); the stores stay with their opener. */
  async close(): Promise<void> {
    this.lifetime.abort();
    await this.service.shutdown().catch(() => {});
  }
}
