/** The daemon's token cache: emptied by every write, kept when a write was refused without changing the store. */
import { describe, expect, it } from 'vitest';
import { CachedTokenStore } from '../../src/store/CachedTokenStore.js';
import { MemoryStore } from '../../src/store/memory.js';
import { StoreError, type StoredToken } from '../../src/store/types.js';
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
