/**
 * Everything about a stored token's life on the host: freshness (one refresh margin, one clock),
 * changes under the store's refresh lock (lock, re-read, merge, atomic save), the incoming allowlist
 * of client writes, and the host-only refresh bookkeeping. Handlers, the CLI, login completion and
 * the refresh coordinator all go through it; nothing else takes the store's token lock.
 */
import type { CachedTokenStore } from '../store/CachedTokenStore.js';
import type { StoredToken, TokenStore } from '../store/types.js';
import { acceptIncoming, mergeToken, OBTAINED_AT_FIELD, REFRESH_ATTEMPT_FIELD, REFRESH_RESULT_FIELD, secondsToExpiry } from './token.js';

/** get_token refreshes a token this close to expiry first (PROTOCOL.md §6): at most this, L/4 for shorter lifetimes L. */
export const DEFAULT_REFRESH_MARGIN_S = 60;

/**
 * How the timings of §6.4 scale with a token's lifetime L. Each is capped for long-lived tokens and
 * a fraction of L for short ones, so a 4 s test token and a 5 min Keycloak token renew neither
 * continuously nor never. A token of unknown lifetime (stored before lifetimes were kept) gets the caps.
 */
export interface TokenTiming {
  /** Refresh margin cap (60 s); the margin is min(cap, L/4). */
  maxMarginMs: number;
  /** Cooldown cap (30 s); the cooldown is min(cap, L/4). */
  maxCooldownMs: number;
  /** Renewal lead floor (300 s); the lead is min(max(floor, L/10), L/2). */
  minLeadMs: number;
  /** Renewal jitter cap (30 s); the jitter is uniform in [0, min(cap, L/10)]. */
  maxJitterMs: number;
}

export const DEFAULT_TIMING: TokenTiming = { maxMarginMs: DEFAULT_REFRESH_MARGIN_S * 1000, maxCooldownMs: 30_000, minLeadMs: 300_000, maxJitterMs: 30_000 };

/** Processes sharing a store share the host clock; a stamp further ahead than this was not written by a refresh. */
const FUTURE_STAMP_TOLERANCE_MS = 1_000;

export interface TokenServiceOptions {
  /** The clock every freshness decision uses (ms). */
  now?: () => number;
  /** Shorthand for timing.maxMarginMs, in seconds. */
  refreshMarginS?: number;
  timing?: Partial<TokenTiming>;
}

/**
 * Reads and writes of one (provider, bucket) while its refresh lock is held. A write checks the
 * signal given to `locked` right before it starts: aborted, it rejects with the signal's reason and
 * writes nothing; once started, it completes (an atomic save is never torn).
 */
export interface LockedToken {
  read(): Promise<StoredToken | null>;
  save(token: StoredToken): Promise<void>;
  /** Removes the token; returns whether one existed. */
  remove(): Promise<boolean>;
}

export class TokenService {
  readonly now: () => number;
  readonly timing: TokenTiming;
  private readonly changeListeners = new Set<(provider: string, bucket: string) => void>();

  constructor(
    private readonly store: TokenStore,
    options: TokenServiceOptions = {},
  ) {
    this.now = options.now ?? Date.now;
    this.timing = {
      ...DEFAULT_TIMING,
      ...(options.refreshMarginS !== undefined && { maxMarginMs: options.refreshMarginS * 1000 }),
      ...options.timing,
    };
  }

  /** The change stamp of the store: it moves whenever any process writes it. */
  changeStamp(): string | null {
    return this.store.changeStamp();
  }

  /** The stored token if the store can answer at once from its cache (CachedTokenStore), else undefined. */
  peek(provider: string, bucket: string): Readonly<StoredToken> | undefined {
    return (this.store as Partial<Pick<CachedTokenStore, 'peek'>>).peek?.(provider, bucket);
  }

  /** The stored token (with its secrets: host use only), or null. */
  read(provider: string, bucket: string): Promise<StoredToken | null> {
    return this.store.getToken(provider, bucket);
  }

  listProviders(): Promise<string[]> {
    return this.store.listProviders();
  }

  listBuckets(provider: string): Promise<string[]> {
    return this.store.listBuckets(provider);
  }

  /** Seconds the token has left at this moment (negative when expired). */
  secondsLeft(token: Pick<StoredToken, 'expiry'>): number {
    return secondsToExpiry(token, this.now());
  }

  /** Still valid at this moment. */
  isValid(token: Pick<StoredToken, 'expiry'>): boolean {
    return this.secondsLeft(token) > 0;
  }

  /** Milliseconds the token has left at this moment (negative when expired). */
  msLeft(token: Pick<StoredToken, 'expiry'>): number {
    return token.expiry * 1000 - this.now();
  }

  /** The lifetime L the host gave the token (expiry minus when it was obtained), or undefined when unknown. */
  lifetimeMs(token: StoredToken): number | undefined {
    const obtained = token[OBTAINED_AT_FIELD];
    if (typeof obtained !== 'number' || !Number.isFinite(obtained)) return undefined;
    const lifetime = token.expiry * 1000 - obtained;
    return lifetime > 0 ? lifetime : undefined;
  }

  /** min(cap, L × fraction), or the cap when L is unknown. */
  private scaled(token: StoredToken, cap: number, fraction: number): number {
    const lifetime = this.lifetimeMs(token);
    return lifetime === undefined ? cap : Math.min(cap, lifetime * fraction);
  }

  /** get_token refreshes first within this many ms of expiry: min(60 s, L/4). */
  refreshMarginMs(token: StoredToken): number {
    return this.scaled(token, this.timing.maxMarginMs, 1 / 4);
  }

  /** At most one upstream refresh per this many ms: min(30 s, L/4). */
  cooldownMs(token: StoredToken): number {
    return this.scaled(token, this.timing.maxCooldownMs, 1 / 4);
  }

  /** How long before expiry the host renews on its own: min(max(300 s, L/10), L/2). */
  renewalLeadMs(token: StoredToken): number {
    const lifetime = this.lifetimeMs(token);
    if (lifetime === undefined) return this.timing.minLeadMs;
    return Math.min(Math.max(this.timing.minLeadMs, lifetime / 10), lifetime / 2);
  }

  /** The most a renewal is moved earlier at random, so daemons sharing a store do not fire together: min(30 s, L/10). */
  renewalJitterMs(token: StoredToken): number {
    return this.scaled(token, this.timing.maxJitterMs, 1 / 10);
  }

  /** Within the refresh margin and refreshable: get_token should refresh it before serving. */
  needsRefresh(token: StoredToken): boolean {
    return Boolean(token.refresh_token) && this.msLeft(token) <= this.refreshMarginMs(token);
  }

  /** Within the renewal lead (and its jitter) and refreshable: a proactive renewal is due. */
  renewalDue(token: StoredToken): boolean {
    return Boolean(token.refresh_token) && this.msLeft(token) <= this.renewalLeadMs(token) + this.renewalJitterMs(token);
  }

  /** `token` marked as obtained by the host now (a login, a refresh, an import): its lifetime starts here. */
  obtainedNow(token: StoredToken): StoredToken {
    return { ...token, [OBTAINED_AT_FIELD]: this.now() };
  }

  /** How the last upstream refresh ended ('ok' or an error code), or undefined when none is recorded. */
  lastRefreshResult(token: StoredToken): string | undefined {
    const result = token[REFRESH_RESULT_FIELD];
    return typeof result === 'string' ? result : undefined;
  }

  /** Nobody but the user can bring it back: expired without a refresh token, or its refresh token rejected. */
  needsLogin(token: StoredToken): boolean {
    if (this.lastRefreshResult(token) === 'REAUTH_REQUIRED') return true;
    return !token.refresh_token && !this.isValid(token);
  }

  /** `token` with the outcome of a refresh attempt recorded. */
  withRefreshResult(token: StoredToken, result: string): StoredToken {
    return { ...token, [REFRESH_RESULT_FIELD]: result };
  }

  /**
   * Runs `fn` under the (provider, bucket) refresh lock, shared by every process using the store.
   * An abort of `signal` stops the wait for the lock and any write `fn` has not started yet (both
   * reject with the signal's reason); a write already started completes.
   */
  locked<T>(provider: string, bucket: string, fn: (token: LockedToken) => Promise<T>, signal?: AbortSignal): Promise<T> {
    const handle: LockedToken = {
      read: () => this.store.getToken(provider, bucket),
      save: async (token) => {
        signal?.throwIfAborted();
        await this.store.saveToken(provider, bucket, token);
        this.changed(provider, bucket);
      },
      remove: async () => {
        signal?.throwIfAborted();
        const existed = await this.store.removeToken(provider, bucket);
        this.changed(provider, bucket);
        return existed;
      },
    };
    return this.store.withTokenLock(provider, bucket, () => fn(handle), signal);
  }

  /** Calls `listener` after every save or removal made through this service (the renewal scheduler's cue). */
  onChange(listener: (provider: string, bucket: string) => void): () => void {
    this.changeListeners.add(listener);
    return () => this.changeListeners.delete(listener);
  }

  private changed(provider: string, bucket: string): void {
    for (const listener of this.changeListeners) listener(provider, bucket);
  }

  /**
   * Lock, re-read, merge what `patch` returns for the current token (null = leave it), atomic save.
   * Returns the token as stored afterwards. An abort of `signal` before the save writes nothing.
   */
  update(
    provider: string,
    bucket: string,
    patch: (current: StoredToken | null) => Partial<StoredToken> | null | Promise<Partial<StoredToken> | null>,
    signal?: AbortSignal,
  ): Promise<StoredToken | null> {
    return this.locked(provider, bucket, async (t) => {
      const current = await t.read();
      const change = await patch(current);
      if (change === null) return current;
      const merged = mergeToken(current, change);
      await t.save(merged);
      return merged;
    }, signal);
  }

  /**
   * A client's save_token: only allowlisted fields (PROTOCOL.md §5) are merged into the stored token.
   * A new access token starts a new lifetime, so the margins scale with what the client obtained.
   */
  saveFromClient(provider: string, bucket: string, incoming: Readonly<Record<string, unknown>>, publicFields: readonly string[], signal?: AbortSignal): Promise<StoredToken | null> {
    const accepted = acceptIncoming(incoming, publicFields);
    return this.update(
      provider,
      bucket,
      (current) => (typeof accepted.access_token === 'string' && accepted.access_token !== current?.access_token ? { ...accepted, [OBTAINED_AT_FIELD]: this.now() } : accepted),
      signal,
    );
  }

  /** Stores a complete token as given, replacing the bucket (import, a finished login); its lifetime starts now. */
  replace(provider: string, bucket: string, token: StoredToken, signal?: AbortSignal): Promise<void> {
    return this.locked(provider, bucket, (t) => t.save(this.obtainedNow(token)), signal);
  }

  /** Removes the token under the lock, so a logout that races a refresh wins. Returns whether one existed. */
  remove(provider: string, bucket: string, signal?: AbortSignal): Promise<boolean> {
    return this.locked(provider, bucket, (t) => t.remove(), signal);
  }

  /**
   * When the last upstream refresh of this token was attempted (epoch ms), or undefined. A stamp from
   * the future cannot come from a refresh: it is ignored rather than allowed to hold refreshes off.
   */
  lastRefreshAttempt(token: StoredToken): number | undefined {
    const stamp = token[REFRESH_ATTEMPT_FIELD];
    if (typeof stamp !== 'number' || !Number.isFinite(stamp) || stamp > this.now() + FUTURE_STAMP_TOLERANCE_MS) return undefined;
    return stamp;
  }

  /** `token` stamped with a refresh attempt at `at` (epoch ms), or with the stamp of `from`. */
  withRefreshAttempt(token: StoredToken, at: number | StoredToken): StoredToken {
    const stamp = typeof at === 'number' ? at : at[REFRESH_ATTEMPT_FIELD];
    return { ...token, [REFRESH_ATTEMPT_FIELD]: stamp };
  }
}
