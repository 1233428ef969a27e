/**
 * Host-side refresh of (provider, bucket) per PROTOCOL.md §6.4: single-flight in this process and,
 * through the store's refresh lock, across every process sharing the store; a re-read under the lock
 * so a refresh another process already did is reused; a cooldown (min(30 s, L/4)) persisted in the stored token;
 * retries of transient failures only; one merge (mergeToken) and one atomic save.
 *
 * The upstream call never follows the caller's signal: a refresh aborted after the provider rotated
 * the refresh token but before the save would burn the grant. A cancelled caller only stops waiting.
 */
import { errors, ProxyError } from '../protocol/errors.js';
import type { StoredToken } from '../store/types.js';
import { defaultFlowDeps } from './flowDeps.js';
import type { FlowDeps } from './flowTypes.js';
import type { TokenService } from './TokenService.js';
import { mergeToken } from './token.js';
import { writeBack } from './importers/writeBack.js';
import { UpstreamError } from './upstream.js';
import { pause, raceAbort } from '../abort.js';

/** What the coordinator needs from a provider adapter (StandardAdapter has it). */
export interface RefreshableAdapter {
  refresh(stored: Pick<StoredToken, 'refresh_token'>, deps: FlowDeps, signal?: AbortSignal): Promise<StoredToken>;
}

/** A provider lookup; ProviderRegistry fits. Adapters without `refresh` count as unknown. */
export interface RefreshRegistry {
  get(name: string): object | undefined;
}

/** How refreshes behave; the clock is the TokenService's. */
export interface RefreshTuning {
  /** Network for the upstream calls (fetch, HTTP timeout); `now` always comes from the TokenService. */
  deps?: Partial<Omit<FlowDeps, 'now'>>;
  /** Caps the cooldown (one upstream refresh per provider:bucket, across processes), which is otherwise min(30 s, L/4). */
  cooldownMs?: number;
  /** Waits before the retries of a transient failure; its length is the number of retries. */
  retryDelaysMs?: readonly number[];
  sleep?: (ms: number) => Promise<void>;
  /** Problems after a refresh was stored that must not fail it (a tool file that could not be written back). */
  log?: (line: string) => void;
}

/** What a caller of refresh() asks for beyond the refresh itself. */
export interface RefreshRequest {
  /** A proactive renewal: refresh only if the token, re-read under the lock, is still due for one. */
  renewal?: boolean;
}

export interface RefreshCoordinatorOptions extends RefreshTuning {
  tokens: TokenService;
  registry: RefreshRegistry;
}

/** How often a process waiting for another's refresh looks at the store's change stamp (a stat for the file store). */
const REFRESH_WATCH_MS = 10;

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
  return signal ? raceAbort(promise, signal, errors.cancelled) : promise;
}

export class RefreshCoordinator {
  private readonly tokens: TokenService;
  private readonly registry: RefreshRegistry;
  private readonly deps: FlowDeps;
  private readonly cooldownCapMs: number;
  private readonly retryDelaysMs: readonly number[];
  private readonly sleep: (ms: number) => Promise<void>;
  private readonly log: (line: string) => void;
  private readonly inFlight = new Map<string, Promise<StoredToken>>();

  constructor(options: RefreshCoordinatorOptions) {
    this.tokens = options.tokens;
    this.registry = options.registry;
    this.deps = defaultFlowDeps({ ...options.deps, now: options.tokens.now });
    this.cooldownCapMs = options.cooldownMs ?? Infinity;
    this.retryDelaysMs = options.retryDelaysMs ?? [1_000, 3_000];
    this.sleep = options.sleep ?? ((ms) => new Promise((resolve) => setTimeout(resolve, ms)));
    this.log = options.log ?? (() => {});
  }

  /**
   * Refreshes (provider, bucket) and returns the full stored token; concurrent callers in this process
   * share one refresh. Checks in §6.4's order: PROVIDER_NOT_FOUND, NOT_FOUND, REFRESH_NOT_AVAILABLE.
   * Throws ProxyError.
   */
  refresh(provider: string, bucket: string, signal?: AbortSignal, options: RefreshRequest = {}): Promise<StoredToken> {
    const adapter = this.adapterOf(provider);
    if (!adapter) return Promise.reject(errors.noOAuthProvider(provider));
    // A caller that already gave up starts no upstream call.
    if (signal?.aborted) return Promise.reject(errors.cancelled());
    const key = `${provider}\u0000${bucket}`;
    let flight = this.inFlight.get(key);
    if (!flight) {
      flight = this.run(adapter, provider, bucket, options.renewal === true).finally(() => this.inFlight.delete(key));
      this.inFlight.set(key, flight);
    }
    return untilAborted(flight, signal);
  }

  /** True when `provider` has a refresh configuration (an adapter that can refresh). */
  canRefresh(provider: string): boolean {
    return this.adapterOf(provider) !== undefined;
  }

  /** Resolves once no refresh is running (so the store can be closed after it saved). */
  async idle(): Promise<void> {
    while (this.inFlight.size > 0) await Promise.allSettled([...this.inFlight.values()]);
  }

  private adapterOf(provider: string): RefreshableAdapter | undefined {
    const adapter = this.registry.get(provider) as Partial<RefreshableAdapter> | undefined;
    return typeof adapter?.refresh === 'function' ? (adapter as RefreshableAdapter) : undefined;
  }

  private async run(adapter: RefreshableAdapter, provider: string, bucket: string, renewal: boolean): Promise<StoredToken> {
    const seen = usable(provider, bucket, await this.tokens.read(provider, bucket));
    // While another process holds the lock, its refresh is taken the moment it is stored, rather
    // than after queueing for the lock behind every other process that waits for the same refresh.
    const watching = new AbortController();
    // Aborted only when the other process's result wins: it ends this process's wait for the lock
    // (the handle's saves would refuse it too, so it is never aborted once the lock is held).
    const lockWait = new AbortController();
    const elsewhere = this.refreshedElsewhere(provider, bucket, seen, watching.signal);
    const underLock = this.tokens.locked(
      provider,
      bucket,
      async (locked) => {
        // The lock is ours: from here on, this process decides (the watch could only see its own save).
        watching.abort();
        const current = usable(provider, bucket, await locked.read());
        // Another process refreshed (or logged in) while this one waited for the lock.
        if (changedSince(seen, current) && !this.tokens.needsRefresh(current)) return current;
        // Decided under the lock: of several daemons sharing the store, only the first renews.
        if (renewal && !this.tokens.renewalDue(current)) return current;

        const waitMs = this.cooldownLeft(current);
        if (waitMs > 0) {
          if (this.tokens.isValid(current)) return current;
          throw new ProxyError('RATE_LIMITED', `Token for ${provider}/${bucket} was refreshed moments ago; retry later`, Math.ceil(waitMs / 1000));
        }
        // Stamped before the call, so even an attempt that crashes mid-way starts the cooldown.
        const stamped = this.tokens.withRefreshAttempt(current, this.tokens.now());
        await locked.save(stamped);
        return this.callUpstream(adapter, provider, bucket, stamped, locked.save);
      },
      lockWait.signal,
    );
    try {
      return await Promise.race([underLock, elsewhere]);
    } finally {
      if (!watching.signal.aborted) {
        // The other process's result won (or the wait failed): give up the wait, whose rejection
        // with the abort nobody needs.
        underLock.catch(() => undefined);
        lockWait.abort();
        watching.abort();
      }
    }
  }

  /**
   * Resolves with the token once another process has stored a refreshed one (changed since `seen`,
   * no longer due for a refresh); never rejects, and stops looking when `signal` aborts. It reads
   * only when the store's change stamp moves, every REFRESH_WATCH_MS while the lock is held elsewhere.
   */
  private refreshedElsewhere(provider: string, bucket: string, seen: StoredToken, signal: AbortSignal): Promise<StoredToken> {
    return new Promise((resolve) => {
      void (async () => {
        let stamp = this.tokens.changeStamp();
        while (!signal.aborted) {
          await pause(REFRESH_WATCH_MS, signal);
          const now = this.tokens.changeStamp();
          if (signal.aborted || (now !== null && now === stamp)) continue;
          stamp = now;
          const current = await this.tokens.read(provider, bucket).catch(() => null);
          if (!signal.aborted && current?.refresh_token && changedSince(seen, current) && !this.tokens.needsRefresh(current)) {
            resolve(current);
            return;
          }
        }
      })();
    });
  }

  /** Milliseconds of cooldown left for `token` (0 when none). */
  private cooldownLeft(token: StoredToken): number {
    const stamp = this.tokens.lastRefreshAttempt(token);
    if (stamp === undefined) return 0;
    return Math.max(0, stamp + Math.min(this.cooldownCapMs, this.tokens.cooldownMs(token)) - this.tokens.now());
  }

  /** The upstream refresh with retries, then merge and save; runs under the refresh lock. */
  private async callUpstream(
    adapter: RefreshableAdapter,
    provider: string,
    bucket: string,
    stored: StoredToken,
    save: (token: StoredToken) => Promise<void>,
  ): Promise<StoredToken> {
    for (let attempt = 0; ; attempt++) {
      let failure: UpstreamError;
      try {
        const fresh = await adapter.refresh(stored, this.deps);
        // The provider's answer cannot clear the host's cooldown stamp; its lifetime starts now.
        const merged = this.tokens.withRefreshResult(this.tokens.obtainedNow(this.tokens.withRefreshAttempt(mergeToken(stored, fresh), stored)), 'ok');
        await save(merged);
        writeBack(merged, stored, { now: this.tokens.now, log: this.log }); // never throws: the token is already stored
        return merged;
      } catch (err) {
        if (!(err instanceof UpstreamError)) throw err; // store failures and bugs are not retried
        failure = err;
      }
      const kind = classify(failure);
      if (kind === 'reauth') return this.afterRejection(provider, bucket, stored, failure, save);
      const delay = this.retryDelaysMs[attempt];
      if (kind === 'fatal' || delay === undefined) {
        await save(this.tokens.withRefreshResult(stored, 'REFRESH_FAILED'));
        throw new ProxyError('REFRESH_FAILED', `Refresh of ${provider}/${bucket} failed: ${failure.message}`);
      }
      await this.sleep(delay);
    }
  }

  /** invalid_grant/401: a token written meanwhile (a login, another refresher) may still be good. */
  private async afterRejection(provider: string, bucket: string, used: StoredToken, failure: UpstreamError, save: (token: StoredToken) => Promise<void>): Promise<StoredToken> {
    const current = await this.tokens.read(provider, bucket);
    if (current && changedSince(used, current) && this.tokens.isValid(current)) return current;
    // Kept with the token, so status shows NEEDS LOGIN and renewal stops, in every process.
    if (current && !changedSince(used, current)) await save(this.tokens.withRefreshResult(current, 'REAUTH_REQUIRED'));
    const reason = failure.details.oauthError === 'invalid_grant' ? 'the provider rejected the refresh token' : 'the provider refused the refresh';
    throw new ProxyError('REAUTH_REQUIRED', `Refresh of ${provider}/${bucket} failed: ${reason}; log in again`);
  }
}

/** The stored token if it can be refreshed; NOT_FOUND / REFRESH_NOT_AVAILABLE otherwise. */
function usable(provider: string, bucket: string, token: StoredToken | null): StoredToken {
  if (!token) throw errors.tokenNotFound(provider, bucket);
  if (!token.refresh_token) throw new ProxyError('REFRESH_NOT_AVAILABLE', `Token for ${provider}/${bucket} has no refresh token; log in again`);
  return token;
}
