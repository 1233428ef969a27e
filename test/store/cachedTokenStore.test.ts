/** The daemon's token cache: emptied by every write, kept when a write was refused without changing the store. */
import { describe, expect, it } from 'vitest';
import { CachedTokenStore } from '../../src/store/CachedTokenStore.js';
import { MemoryStore } from '../../src/store/memory.js';
import { FileStore } from '../../src/store/fileStore.js';
import { StoreError, type StoredToken, type TokenStore } from '../../src/store/types.js';
import { tempDir } from '../helpers/daemon.js';
import { token } from './helpers.js';

/** A memory store whose reads and writes can be made to fail, counting the reads that reach it. */
class FlakyStore extends MemoryStore {
  down = false;
  /** A failed write that may have landed: the stamp moves anyway. */
  moveStampOnFailure = false;
  reads = 0;
  private extra = 0;

  override async getToken(provider: string, bucket: string): Promise<StoredToken | null> {
    this.reads++;
    if (this.down) throw new StoreError('unavailable', 'down');
    return super.getToken(provider, bucket);
  }

  override async saveToken(provider: string, bucket: string, t: StoredToken): Promise<void> {
    if (this.down) {
      if (this.moveStampOnFailure) this.extra++;
      throw new StoreError('unavailable', 'down');
    }
    return super.saveToken(provider, bucket, t);
  }

  override changeStamp(): string {
    return `${super.changeStamp()}:${this.extra}`;
  }
}

describe('CachedTokenStore', () => {
  it('serves from the cache until a write, and reads again after it', async () => {
    const inner = new FlakyStore();
    await inner.saveToken('p', 'b', token());
    const cache = new CachedTokenStore(inner);
    await cache.getToken('p', 'b');
    await cache.getToken('p', 'b');
    expect(inner.reads).toBe(1);
    await cache.saveToken('p', 'b', token({ access_token: 'at-2' }));
    expect(await cache.getToken('p', 'b')).toMatchObject({ access_token: 'at-2' });
    expect(inner.reads).toBe(2);
  });

  it('a write refused without moving the stamp keeps the cache; one that may have landed empties it', async () => {
    const inner = new FlakyStore();
    await inner.saveToken('p', 'b', token());
    const cache = new CachedTokenStore(inner);
    await cache.getToken('p', 'b');
    inner.down = true;
    await expect(cache.saveToken('p', 'b', token({ access_token: 'at-lost' }))).rejects.toThrow(StoreError);
    expect(await cache.getToken('p', 'b')).toMatchObject({ access_token: 'at-1' });
    expect(inner.reads).toBe(1);
    inner.moveStampOnFailure = true;
    await expect(cache.saveToken('p', 'b', token({ access_token: 'at-maybe' }))).rejects.toThrow(StoreError);
    await expect(cache.getToken('p', 'b')).rejects.toThrow(StoreError);
  });
});

describe('CachedTokenStore under the token lock', () => {
  it('reads the store itself, even when its change stamp has not caught up with another host\'s write', async () => {
    // Two hosts on one store; this one learns of changes late (a shared store whose notification
    // is still on its way): its stamp does not move when the other host writes.
    const dir = tempDir('cplock-');
    const ours = await FileStore.open({ dataDir: dir, env: {} });
    const theirs = await FileStore.open({ dataDir: dir, env: {} });
    const lagging: TokenStore = Object.assign(Object.create(ours) as FileStore, { changeStamp: () => 'stamp-not-caught-up' });
    const cache = new CachedTokenStore(lagging);
    await ours.saveToken('p', 'b', token({ access_token: 'at-before', refresh_token: 'rt-before' }));
    expect(await cache.getToken('p', 'b')).toMatchObject({ access_token: 'at-before' });

    // The other host refreshes under the lock and lets go.
    await theirs.withTokenLock('p', 'b', () => theirs.saveToken('p', 'b', token({ access_token: 'at-after', refresh_token: 'rt-after' })));

    // Outside the lock the cache may still answer from what it holds (the store's stamp says so)…
    expect(cache.peek('p', 'b')).toMatchObject({ access_token: 'at-before' });
    // …but under the lock, where a refresh decides whether to call the provider, it reads the store.
    const underLock = await cache.withTokenLock('p', 'b', async () => {
      expect(cache.peek('p', 'b')).toBeUndefined();
      return cache.getToken('p', 'b');
    });
    expect(underLock).toMatchObject({ access_token: 'at-after', refresh_token: 'rt-after' });
    await ours.close();
    await theirs.close();
  });
});
