/**
 * Keeps decrypted tokens in the daemon so a get_token does not decrypt or call the keyring.
 * The cache is valid only while the store's change stamp is unchanged; any write by any process
 * (including this one) changes the stamp and empties it.
 */
import type { StoredToken, TokenStore } from './types.js';

export class CachedTokenStore implements TokenStore {
  private stamp: string | null = null;
  private readonly tokens = new Map<string, Readonly<StoredToken> | null>();
  /** Buckets whose token lock this process holds: their reads go to the store (see withTokenLock). */
  private readonly locked = new Map<string, number>();

  constructor(private readonly inner: TokenStore) {}

  get backend() {
    return this.inner.backend;
  }

  private current(): Map<string, Readonly<StoredToken> | null> {
    const stamp = this.inner.changeStamp();
    if (stamp !== this.stamp) {
      this.tokens.clear();
      this.stamp = stamp;
    }
    return this.tokens;
  }

  /**
   * The cached token of (provider, bucket) if the cache holds one under the store's current stamp,
   * else undefined (not cached, or the store changed): a synchronous read for the hot path, checked
   * exactly as getToken checks its cache.
   */
  peek(provider: string, bucket: string): Readonly<StoredToken> | undefined {
    const key = `${provider}\u0000${bucket}`;
    if (this.locked.has(key)) return undefined;
    // The cached object itself (frozen when cached): the hot path only reads it.
    return this.current().get(key) ?? undefined;
  }

  async getToken(provider: string, bucket: string): Promise<StoredToken | null> {
    const key = `${provider}\u0000${bucket}`;
    if (this.locked.has(key)) return this.inner.getToken(provider, bucket);
    const cache = this.current();
    if (cache.has(key)) {
      const hit = cache.get(key)!;
      return hit ? { ...hit } : null;
    }
    const stampBefore = this.stamp;
    const token = await this.inner.getToken(provider, bucket);
    // Only cache what was read under an unchanged stamp; a concurrent write makes it suspect.
    if (this.inner.changeStamp() === stampBefore) cache.set(key, token ? Object.freeze({ ...token }) : null);
    return token;
  }

  saveToken(provider: string, bucket: string, token: StoredToken): Promise<void> {
    return this.writing(() => this.inner.saveToken(provider, bucket, token));
  }

  removeToken(provider: string, bucket: string): Promise<boolean> {
    return this.writing(() => this.inner.removeToken(provider, bucket));
  }

  /**
   * A write empties the cache. One that failed without moving the store's stamp wrote nothing, so
   * what was cached is put back: a shared store that is unreachable keeps serving cached tokens
   * even after a client's save was refused.
   */
  private async writing<T>(write: () => Promise<T>): Promise<T> {
    const before = this.stamp;
    const cached = new Map(this.tokens);
    let restored = false;
    this.stamp = null;
    try {
      return await write();
    } catch (err) {
      if (before !== null && this.inner.changeStamp() === before) {
        const cache = this.current();
        for (const [key, token] of cached) if (!cache.has(key)) cache.set(key, token);
        restored = true;
      }
      throw err;
    } finally {
      if (!restored) this.stamp = null;
    }
  }

  listProviders(): Promise<string[]> {
    return this.inner.listProviders();
  }

  listBuckets(provider: string): Promise<string[]> {
    return this.inner.listBuckets(provider);
  }

  /**
   * Under the lock, reads come from the store itself: a refresh decides on what it re-reads there,
   * and a change stamp learned on another channel (a shared store's NOTIFY) may not have caught up
   * with the write that the previous holder committed before it let go.
   */
  withTokenLock<T>(provider: string, bucket: string, fn: () => Promise<T>, signal?: AbortSignal): Promise<T> {
    return this.inner.withTokenLock(
      provider,
      bucket,
      async () => {
        const key = `${provider}\u0000${bucket}`;
        this.locked.set(key, (this.locked.get(key) ?? 0) + 1);
        try {
          return await fn();
        } finally {
          const left = this.locked.get(key)! - 1;
          if (left === 0) this.locked.delete(key);
          else this.locked.set(key, left);
        }
      },
      signal,
    );
  }

  changeStamp(): string {
    return this.inner.changeStamp();
  }

  close(): Promise<void> {
    return this.inner.close?.() ?? Promise.resolve();
  }
}
