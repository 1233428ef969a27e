/**
 * A process waiting for the refresh lock takes another process's refreshed token as soon as it is
 * stored, without queueing for the lock (refreshCoordinator's refreshedElsewhere): here the holder
 * of the lock keeps it until the waiter has its answer, so a waiter that needed the lock would
 * never finish. Two FileStore instances on one data directory stand for two processes.
 */
import { afterEach, expect, it } from 'vitest';
import { RefreshCoordinator } from '../../src/oauth/refreshCoordinator.js';
import { TokenService } from '../../src/oauth/TokenService.js';
import { FileStore } from '../../src/store/fileStore.js';
import type { StoredToken, TokenStore } from '../../src/store/types.js';
import { sampleToken, tempDir } from '../helpers/daemon.js';

const P = 'watched';

/** The second process's store: the same file store, reporting its first read. */
function reporting(inner: FileStore): { store: TokenStore; firstRead: Promise<void> } {
  let seen!: () => void;
  const firstRead = new Promise<void>((resolve) => (seen = resolve));
  const store: TokenStore = {
    backend: inner.backend,
    getToken: async (p, b) => {
      const token = await inner.getToken(p, b);
      seen();
      return token;
    },
    saveToken: (p, b, t) => inner.saveToken(p, b, t),
    removeToken: (p, b) => inner.removeToken(p, b),
    listProviders: () => inner.listProviders(),
    listBuckets: (p) => inner.listBuckets(p),
    withTokenLock: (p, b, fn, signal) => inner.withTokenLock(p, b, fn, signal),
    changeStamp: () => inner.changeStamp(),
  };
  return { store, firstRead };
}

/** No upstream here: a refresh that reached the provider would be the bug under test. */
const neverRefreshes = {
  get: () => ({
    refresh: async (): Promise<StoredToken> => {
      throw new Error('the waiting process must not refresh upstream');
    },
  }),
};

const opened: FileStore[] = [];
afterEach(async () => {
  for (const s of opened.splice(0)) await s.close();
});

it.each(['get_token-style (due for refresh)', 'renewal'])('a %s refresh waiting on the lock returns the token another process stored, while that process still holds the lock', async (kind) => {
  const dataDir = tempDir('cpwatch-');
  const holderStore = await FileStore.open({ dataDir, env: {} });
  const waiterStore = await FileStore.open({ dataDir, env: {} });
  opened.push(holderStore, waiterStore);
  const now = Date.now();
  // 20 s left of an hour: due for a refresh (and for a renewal) in either process.
  await holderStore.saveToken(P, 'default', sampleToken({ access_token: 'at-old', refresh_token: 'rt-old', expiry: Math.floor(now / 1000) + 20, obtained_at: now - 3_580_000 }));

  const { store, firstRead } = reporting(waiterStore);
  const waiter = new RefreshCoordinator({ tokens: new TokenService(store), registry: neverRefreshes });
  const refreshed = sampleToken({ access_token: 'at-refreshed-elsewhere', refresh_token: 'rt-new', expiry: Math.floor(now / 1000) + 3600, obtained_at: now });

  let locked!: () => void;
  const lockTaken = new Promise<void>((resolve) => (locked = resolve));
  let gotAnswer!: () => void;
  const waiterDone = new Promise<void>((resolve) => (gotAnswer = resolve));
  const holder = holderStore.withTokenLock(P, 'default', async () => {
    locked();
    // The waiter has read the old token and now waits for this lock; the "refresh" lands, and the
    // lock is kept until the waiter has answered.
    await firstRead;
    await holderStore.saveToken(P, 'default', refreshed);
    await waiterDone;
  });
  await lockTaken;
  // Started outside the holder's body, as another process would be.
  const result = await waiter.refresh(P, 'default', undefined, { renewal: kind === 'renewal' });
  gotAnswer();
  await holder;
  expect(result.access_token).toBe('at-refreshed-elsewhere');
  expect(result.refresh_token).toBe('rt-new');
  // And the waiter gave up its place in the lock queue: the lock is free for the next one at once.
  expect(await waiterStore.withTokenLock(P, 'default', async () => 'free')).toBe('free');
});

it('a waiter whose lock comes first still decides under the lock (no stale answer from the watch)', async () => {
  const dataDir = tempDir('cpwatch-');
  const store = await FileStore.open({ dataDir, env: {} });
  opened.push(store);
  const now = Date.now();
  await store.saveToken(P, 'default', sampleToken({ access_token: 'at-old', refresh_token: 'rt-old', expiry: Math.floor(now / 1000) + 20, obtained_at: now - 3_580_000 }));
  let calls = 0;
  const registry = {
    get: () => ({
      refresh: async (): Promise<StoredToken> => {
        calls += 1;
        return { access_token: 'at-upstream', token_type: 'Bearer', expiry: Math.floor(Date.now() / 1000) + 3600, refresh_token: 'rt-upstream' };
      },
    }),
  };
  const coordinator = new RefreshCoordinator({ tokens: new TokenService(store), registry });
  const token = await coordinator.refresh(P, 'default');
  expect(token.access_token).toBe('at-upstream');
  expect(calls).toBe(1);
  expect((await store.getToken(P, 'default'))!.refresh_token).toBe('rt-upstream');
});
