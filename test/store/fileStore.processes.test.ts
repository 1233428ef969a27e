/** FileStore across real processes (built dist/ code): lost updates, kill -9 mid-write, stamps. */
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FileStore } from '../../src/store/fileStore.js';
import { assertBuilt, blobFor, cleanEnv, removeTempDirs, runWorker, runWorkers, startWorker, tempDir, token } from './helpers.js';

beforeAll(assertBuilt);
afterAll(removeTempDirs);

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe('FileStore shared by several processes', () => {
  for (const [label, env] of [
    ['key file', cleanEnv()],
    ['passphrase', cleanEnv({ CREDPROXY_PASSPHRASE: 'shared passphrase' })],
  ] as const) {
    it(`4 processes x 25 read-modify-write updates lose none (${label})`, { timeout: 120_000 }, async () => {
      const dir = tempDir();
      await runWorkers([0, 1, 2, 3].map((id) => ({ op: 'increment', dataDir: dir, id, count: 25 })), env);
      const store = await FileStore.open({ dataDir: dir, env });
      expect((await store.getToken('counter', 'default'))!.count).toBe(100);
      const keys = await store.listKeys();
      expect(keys).toHaveLength(100);
      for (let id = 0; id < 4; id++) for (let i = 0; i < 25; i++) expect(await store.getKey(`k-${id}-${i}`)).toBe(`v-${id}-${i}`);
    });
  }

  it('a write by another process moves the change stamp and is read back', async () => {
    const dir = tempDir();
    const env = cleanEnv();
    const store = await FileStore.open({ dataDir: dir, env });
    await store.saveToken('p', 'b', token());
    const stamp = store.changeStamp();
    await runWorker({ op: 'set-key', dataDir: dir, name: 'from-child', value: 'v' }, env);
    expect(store.changeStamp()).not.toBe(stamp);
    expect(await store.getKey('from-child')).toBe('v');
    expect(await store.getToken('p', 'b')).toEqual(token());
  });
});

describe('FileStore under kill -9', () => {
  it('a writer killed at random moments leaves old or new content, never a broken file', { timeout: 180_000 }, async () => {
    const dir = tempDir();
    const env = cleanEnv();
    const size = 1 << 20;
    const storePath = path.join(dir, 'store.enc');
    let committed = 0;
    for (let round = 0; round < 10; round++) {
      // A short stale time: the killed writer's lock must be broken before the next round can write.
      const worker = startWorker({ op: 'hammer', dataDir: dir, size, from: committed + 1, lockStaleMs: 2000 }, env);
      await worker.waitForLines(1 + Math.floor(Math.random() * 3));
      await sleep(Math.random() * 40);
      worker.child.kill('SIGKILL');
      const { signal } = await worker.exited;
      expect(signal).toBe('SIGKILL');
      const printed = worker.lines.filter(Boolean).map(Number);
      const lastPrinted = printed[printed.length - 1]!;

      // A fresh reader (as a restarted daemon would be) must decrypt a whole write.
      const reader = await FileStore.open({ dataDir: dir, env });
      const stored = (await reader.getToken('big', 'default'))!;
      expect(stored).not.toBeNull();
      // Everything reported as written is there; at most one more write may have landed unreported.
      expect(stored.expiry === lastPrinted || stored.expiry === lastPrinted + 1).toBe(true);
      expect(stored.access_token.length).toBe(size);
      expect(stored.access_token === blobFor(stored.expiry, size)).toBe(true);
      committed = stored.expiry;
      await reader.close();
    }
    // Whatever the kills left behind (temp files, a stale lock), a new writer carries on.
    const store = await FileStore.open({ dataDir: dir, env, lockStaleMs: 2000 });
    await store.saveToken('after', 'default', token());
    expect(await store.getToken('after', 'default')).toEqual(token());
    expect((await store.getToken('big', 'default'))!.expiry).toBe(committed);
    expect(fs.readdirSync(dir).filter((n) => n.endsWith('.tmp'))).toEqual([]);
    expect(fs.statSync(storePath).mode & 0o777).toBe(0o600);
  });
});
