/**
 * Everything about a stored token's life on the host: freshness (one refresh margin, one clock),
 * changes under the store's refresh lock (lock, re-read, merge, atomic save), the incoming allowlist
 * of client writes, and the host-only refresh bookkeeping. Handlers, the CLI, login completion and
 * the refresh coordinator all go through it; nothing else takes the store's token lock.
 */
import type { StoredToken, TokenStore } from '../store/types.js';
import { acceptIncoming, mergeToken, REFRESH_ATTEMPT_FIELD, secondsToExpiry } from './token.js';

/** get_token refreshes a token this close to expiry first (PROTOCOL.md §6). */
export const DEFAULT_REFRESH_MARGIN_S = 60;

/** Processes sharing a store share the host clock; a stamp further ahead than this was not written by a refresh. */
const FUTURE_STAMP_TOLERANCE_MS = 1_000;

export interface TokenServiceOptions {
  /** The clock every freshness decision uses (ms). */
  now?: () => number;
  refreshMarginS?: number;
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
  readonly refreshMarginS: number;

  constructor(
    private readonly store: TokenStore,
    options: TokenServiceOptions = {},
  ) {
    this.now = options.now ?? Date.now;
    this.refreshMarginS = options.refreshMarginS ?? DEFAULT_REFRESH_MARGIN_S;
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

  /** Within the refresh margin and refreshable: get_token should refresh it before serving. */
  needsRefresh(token: StoredToken): boolean {
    return Boolean(token.refresh_token) && this.secondsLeft(token) <= this.refreshMarginS;
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
      },
      remove: async () => {
        signal?.throwIfAborted();
        return this.store.removeToken(provider, bucket);
      },
    };
    return this.store.withTokenLock(provider, bucket, () => fn(handle), signal);
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

  /** A client's save_token: only allowlisted fields (PROTOCOL.md §5) are merged into the stored token. */
  saveFromClient(provider: string, bucket: string, incoming: Readonly<Record<string, unknown>>, publicFields: readonly string[], signal?: AbortSignal): Promise<StoredToken | null> {
    const accepted = acceptIncoming(incoming, publicFields);
    return this.update(provider, bucket, () => accepted, signal);
  }

  /** Stores a complete token as given, replacing the bucket (import, a finished login). */
  replace(provider: string, bucket: string, token: StoredToken, signal?: AbortSignal): Promise<void> {
    return this.locked(provider, bucket, (t) => t.save(token), signal);
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
