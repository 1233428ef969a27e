/** Host-side storage interfaces. Every backend (keyring, file, memory, postgres) implements both. */

/** A token as stored on the host (PROTOCOL.md §5). `expiry` is Unix epoch seconds. */
export interface StoredToken {
  access_token: string;
  expiry: number;
  token_type: string;
  refresh_token?: string;
  scope?: string;
  [field: string]: unknown;
}

export type StoreBackend = 'keyring' | 'file' | 'memory' | 'postgres';

export interface TokenStore {
  readonly backend: StoreBackend;
  /** The stored token, or null when (provider, bucket) has none. */
  getToken(provider: string, bucket: string): Promise<StoredToken | null>;
  /** Replaces the token of (provider, bucket) atomically. */
  saveToken(provider: string, bucket: string, token: StoredToken): Promise<void>;
  /** Removes the token; returns whether one existed. */
  removeToken(provider: string, bucket: string): Promise<boolean>;
  /** Providers that hold at least one token, sorted. */
  listProviders(): Promise<string[]>;
  /** Buckets of one provider, sorted. */
  listBuckets(provider: string): Promise<string[]>;
  /**
   * Runs `fn` while holding the cross-process lock of (provider, bucket): the "refresh lock" that
   * serializes refresh, save_token merges and remove_token across every process sharing the store.
   * An abort of `signal` while waiting for the lock rejects with the signal's reason, at once and
   * without running `fn` or keeping the lock; once `fn` runs, the signal no longer matters here.
   */
  withTokenLock<T>(provider: string, bucket: string, fn: () => Promise<T>, signal?: AbortSignal): Promise<T>;
  /**
   * A cheap, synchronous value that changes whenever any process writes the store. Callers cache
   * decrypted tokens and drop the cache when the stamp changes.
   */
  changeStamp(): string;
  /** Whether the store can be reached now, for daemon_status (shared stores only). */
  health?(): { state: 'ok' | 'degraded'; detail: string };
  /** Releases resources (watchers, handles). */
  close?(): Promise<void>;
}

export interface KeyStore {
  readonly backend: StoreBackend;
  getKey(name: string): Promise<string | null>;
  setKey(name: string, value: string): Promise<void>;
  /** Returns whether a key existed. */
  deleteKey(name: string): Promise<boolean>;
  /** Key names, sorted. */
  listKeys(): Promise<string[]>;
  hasKey(name: string): Promise<boolean>;
  changeStamp(): string;
  close?(): Promise<void>;
}

/** Why a store could not be used; its message is safe to print. */
export class StoreError extends Error {
  override readonly name = 'StoreError';
  constructor(
    readonly reason: 'locked' | 'decrypt_failed' | 'corrupt' | 'unavailable' | 'io' | 'invalid_name',
    message: string,
  ) {
    super(message);
  }
}
