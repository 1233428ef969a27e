/**
 * Host-side refresh of (provider, bucket) per PROTOCOL.md §6.4: single-flight in this process and,
 * through the store's refresh lock, across every process sharing the store; a re-read under the lock
 * so a refresh another process already did is reused; a 30 s cooldown persisted in the stored token;
 * retries of transient failures only; one merge (mergeToken) and one atomic save.
 *
 * The upstream call never follows the caller's signal: a refresh aborted after the provider rotated
 * the refresh token but before the save would burn the grant. A cancelled caller only stops waiting.
 */
import { randomBytes } from 'node:crypto';
import { ProxyError } from '../protocol/errors.js';
import type { StoredToken, TokenStore } from '../store/types.js';
import type { FlowDeps } from './flowTypes.js';
import { mergeToken, secondsToExpiry } from './token.js';
import { UpstreamError } from './upstream.js';
import { raceAbort } from '../abort.js';

/** What the coordinator needs from a provider adapter (StandardAdapter has it). */
export interface RefreshableAdapter {
  refresh(stored: Pick<StoredToken, 'refresh_token'>, deps: FlowDeps, signal?: AbortSignal): Promise<StoredToken>;
}

/** A provider lookup; ProviderRegistry fits. Adapters without `refresh` count as unknown. */
export interface RefreshRegistry {
  get(name: string): object | undefined;
}

export interface RefreshCoordinatorOptions {
  tokens: TokenStore;
  registry: RefreshRegistry;
  deps?: Partial<FlowDeps>;
  /** At most one upstream refresh per provider:bucket per this long, across processes. */
  cooldownMs?: number;
  /** Waits before the retries of a transient failure; its length is the number of retries. */
  retryDelaysMs?: readonly number[];
  sleep?: (ms: number) => Promise<void>;
}

/**
 * Host-only field of the stored token: epoch ms of the last upstream refresh attempt (the shared
 * cooldown clock). The sanitizer's allowlist keeps it off the socket, as every undeclared field.
 */
export const REFRESH_ATTEMPT_FIELD = 'refresh_attempted_at';

/** A token this close to expiry (seconds) is not worth returning in place of a refresh (§6 get_token). */
export const REFRESH_MARGIN_S = 60;

const OAUTH_TRANSIENT = new Set(['temporarily_unavailable', 'server_error', 'slow_down']);

type Failure = 'reauth' | 'transient' | 'fatal';

/** Sorts an upstream failure: invalid_grant/401 need a new login, network/5xx/429 may pass. */
function classify(err: UpstreamError): Failure {
  const { oauthError, status } = err.details;
  if (oauthError === 'invalid_grant' || status === 401) return 'reauth';
  if (status !== undefined && (status >= 500 || status === 429)) return 'transient';
  if (oauthError !== undefined) return OAUTH_TRANSIENT.has(oauthError) ? 'transient' : 'fatal';
  // No status and no OAuth error: the request never got an answer (network error, timeout).
  return status === undefined ? 'transient' : 'fatal';
}

/** Another process changed the token since `seen` (a refresh or a new login). */
function changedSince(seen: StoredToken, current: StoredToken): boolean {
  return current.access_token !== seen.access_token || current.refresh_token !== seen.refresh_token || current.expiry !== seen.expiry;
}

/** Resolves with `promise`, or rejects with CANCELLED when `signal` aborts first (the promise runs on). */
function untilAborted<T>(promise: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  const cancelled = () => new ProxyError('CANCELLED', 'Request cancelled');
  if (!signal) return promise;
  if (signal.aborted) return Promise.reject(cancelled());
  return raceAbort(promise, signal, cancelled);
}

export class RefreshCoordinator {
  private readonly tokens: TokenStore;
  private readonly registry: RefreshRegistry;
  private readonly deps: FlowDeps;
  private readonly cooldownMs: number;
  private readonly retryDelaysMs: readonly number[];
  private readonly sleep: (ms: number) => Promise<void>;
  private readonly inFlight = new Map<string, Promise<StoredToken>>();

  constructor(options: RefreshCoordinatorOptions) {
    this.tokens = options.tokens;
    this.registry = options.registry;
    this.deps = {
      fetch: globalThis.fetch,
      now: Date.now,
      randomBytes: (n) => randomBytes(n),
      httpTimeoutMs: 15_000,
      ...options.deps,
    };
    this.cooldownMs = options.cooldownMs ?? 30_000;
    this.retryDelaysMs = options.retryDelaysMs ?? [1_000, 3_000];
    this.sleep = options.sleep ?? ((ms) => new Promise((resolve) => setTimeout(resolve, ms)));
  }

  /** The daemon's `refresher`: refreshes (provider, bucket) and returns the full stored token. */
  readonly refresher = (provider: string, bucket: string, signal?: AbortSignal): Promise<StoredToken> => this.refresh(provider, bucket, signal);

  /** True when `provider` is known and its adapter can refresh. */
  canRefresh(provider: string): boolean {
    return this.adapterOf(provider) !== undefined;
  }

  /** Refreshes (provider, bucket); concurrent callers in this process share one refresh. Throws ProxyError. */
  refresh(provider: string, bucket: string, signal?: AbortSignal): Promise<StoredToken> {
    const adapter = this.adapterOf(provider);
    if (!adapter) return Promise.reject(new ProxyError('PROVIDER_NOT_FOUND', `Provider ${provider} has no OAuth configuration on this host`));
    const key = `${provider}\u0000${bucket}`;
    let flight = this.inFlight.get(key);
    if (!flight) {
      flight = this.run(adapter, provider, bucket).finally(() => this.inFlight.delete(key));
      this.inFlight.set(key, flight);
    }
    return untilAborted(flight, signal);
  }

  /** Resolves once no refresh is running (so the store can be closed after it saved). */
  async idle(): Promise<void> {
    while (this.inFlight.size > 0) await Promise.allSettled([...this.inFlight.values()]);
  }

  private adapterOf(provider: string): RefreshableAdapter | undefined {
    const adapter = this.registry.get(provider) as Partial<RefreshableAdapter> | undefined;
    return typeof adapter?.refresh === 'function' ? (adapter as RefreshableAdapter) : undefined;
  }

  private async run(adapter: RefreshableAdapter, provider: string, bucket: string): Promise<StoredToken> {
    const seen = usable(provider, bucket, await this.tokens.getToken(provider, bucket));
    return this.tokens.withTokenLock(provider, bucket, async () => {
      const current = usable(provider, bucket, await this.tokens.getToken(provider, bucket));
      const now = this.deps.now();
      // Another process refreshed (or logged in) while this one waited for the lock.
      if (changedSince(seen, current) && secondsToExpiry(current, now) > REFRESH_MARGIN_S) return current;

      const waitMs = this.cooldownLeft(current, now);
      if (waitMs > 0) {
        if (secondsToExpiry(current, now) > 0) return current;
        throw new ProxyError('RATE_LIMITED', `Token for ${provider}/${bucket} was refreshed moments ago; retry later`, Math.ceil(waitMs / 1000));
      }
      // Stamped before the call, so even an attempt that crashes mid-way starts the cooldown.
      const stamped: StoredToken = { ...current, [REFRESH_ATTEMPT_FIELD]: now };
      await this.tokens.saveToken(provider, bucket, stamped);
      return this.callUpstream(adapter, provider, bucket, stamped);
    });
  }

  /**
   * Milliseconds of cooldown left for `token` (0 when none). Processes sharing a store share the host
   * clock, so a stamp in the future was not written by a refresh (a save_token can set any field): it
   * is ignored rather than allowed to hold refreshes off indefinitely.
   */
  private cooldownLeft(token: StoredToken, now: number): number {
    const stamp = token[REFRESH_ATTEMPT_FIELD];
    if (typeof stamp !== 'number' || !Number.isFinite(stamp) || stamp > now + 1_000) return 0;
    return Math.max(0, stamp + this.cooldownMs - now);
  }

  /** The upstream refresh with retries, then merge and save; runs under the refresh lock. */
  private async callUpstream(adapter: RefreshableAdapter, provider: string, bucket: string, stored: StoredToken): Promise<StoredToken> {
    for (let attempt = 0; ; attempt++) {
      let failure: UpstreamError;
      try {
        const fresh = await adapter.refresh(stored, this.deps);
        const merged = mergeToken(stored, fresh);
        merged[REFRESH_ATTEMPT_FIELD] = stored[REFRESH_ATTEMPT_FIELD];
        await this.tokens.saveToken(provider, bucket, merged);
        return merged;
      } catch (err) {
        if (!(err instanceof UpstreamError)) throw err; // store failures and bugs are not retried
        failure = err;
      }
      const kind = classify(failure);
      if (kind === 'reauth') return this.afterRejection(provider, bucket, stored, failure);
      const delay = this.retryDelaysMs[attempt];
      if (kind === 'fatal' || delay === undefined) {
        throw new ProxyError('REFRESH_FAILED', `Refresh of ${provider}/${bucket} failed: ${failure.message}`);
      }
      await this.sleep(delay);
    }
  }

  /** invalid_grant/401: a token written meanwhile (a login, another refresher) may still be good. */
  private async afterRejection(provider: string, bucket: string, used: StoredToken, failure: UpstreamError): Promise<StoredToken> {
    const current = await this.tokens.getToken(provider, bucket);
    if (current && changedSince(used, current) && secondsToExpiry(current, this.deps.now()) > 0) return current;
    const reason = failure.details.oauthError === 'invalid_grant' ? 'the provider rejected the refresh token' : 'the provider refused the refresh';
    throw new ProxyError('REAUTH_REQUIRED', `Refresh of ${provider}/${bucket} failed: ${reason}; log in again`);
  }
}

/** The stored token if it can be refreshed; NOT_FOUND / REFRESH_NOT_AVAILABLE otherwise. */
function usable(provider: string, bucket: string, token: StoredToken | null): StoredToken {
  if (!token) throw new ProxyError('NOT_FOUND', `No token for provider ${provider}, bucket ${bucket}`);
  if (!token.refresh_token) throw new ProxyError('REFRESH_NOT_AVAILABLE', `Token for ${provider}/${bucket} has no refresh token; log in again`);
  return token;
}
