/**
 * TokenService's writes under the refresh lock and their signal: a write that has not started when
 * the signal aborts does not happen; one that has started completes.
 */
import { describe, expect, it } from 'vitest';
import { TokenService } from '../../src/oauth/TokenService.js';
import { MemoryStore } from '../../src/store/memory.js';
import type { StoredToken } from '../../src/store/types.js';

const token = (overrides: Partial<StoredToken> = {}): StoredToken => ({ access_token: 'at-1', expiry: 1_900_000_000, token_type: 'Bearer', refresh_token: 'rt-1', ...overrides });

describe('TokenService writes and their signal', () => {
  it('an abort after the lock was taken but before the save writes nothing and frees the lock', async () => {
    const store = new MemoryStore();
    await store.saveToken('p', 'b', token());
    const service = new TokenService(store);
    const aborter = new AbortController();
    const reason = new Error('timed out');
    const updating = service.update(
      'p',
      'b',
      () => {
        aborter.abort(reason); // inside the lock, before the save
        return { access_token: 'at-2' };
      },
      aborter.signal,
    );
    await expect(updating).rejects.toBe(reason);
    expect(await store.getToken('p', 'b')).toEqual(token());
    expect(await store.withTokenLock('p', 'b', async () => 'free')).toBe('free');
  });

  it('saveFromClient, replace and remove with an aborted signal change nothing', async () => {
    const store = new MemoryStore();
    await store.saveToken('p', 'b', token());
    const service = new TokenService(store);
    const signal = AbortSignal.abort('cancelled');
    await expect(service.saveFromClient('p', 'b', { access_token: 'at-x', expiry: 1, token_type: 'Bearer' }, [], signal)).rejects.toBe('cancelled');
    await expect(service.replace('p', 'b', token({ access_token: 'at-y' }), signal)).rejects.toBe('cancelled');
    await expect(service.remove('p', 'b', signal)).rejects.toBe('cancelled');
    expect(await store.getToken('p', 'b')).toEqual(token());
  });

  it('a save that has started completes even if the signal aborts meanwhile', async () => {
    const aborter = new AbortController();
    class AbortingStore extends MemoryStore {
      override async saveToken(provider: string, bucket: string, saved: StoredToken): Promise<void> {
        aborter.abort('too late');
        await super.saveToken(provider, bucket, saved);
      }
    }
    const store = new AbortingStore();
    const service = new TokenService(store);
    expect(await service.update('p', 'b', () => ({ access_token: 'at-2', expiry: 1_900_000_000, token_type: 'Bearer' }), aborter.signal)).toMatchObject({ access_token: 'at-2' });
    expect((await store.getToken('p', 'b'))!.access_token).toBe('at-2');
  });

  it('without a signal nothing changes: locked writes run as before', async () => {
    const store = new MemoryStore();
    const service = new TokenService(store);
    await service.replace('p', 'b', token());
    expect(await service.locked('p', 'b', async (t) => t.remove())).toBe(true);
    expect(await service.remove('p', 'b')).toBe(false);
  });
});
