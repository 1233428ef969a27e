/** Abortable lock waits (src/store/locks.ts): the in-process queue and proper-lockfile's retry loop. */
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FileStore } from '../../src/store/fileStore.js';
import { KeyedMutex, tokenLockPath, withFileLock } from '../../src/store/locks.js';
import { assertBuilt, cleanEnv, removeTempDirs, startWorker, tempDir } from './helpers.js';

afterAll(removeTempDirs);

const LOCK = { waitMs: 30_000, staleMs: 10_000, what: 'the test lock' };

describe('KeyedMutex', () => {
  it('a waiter aborted in the queue never runs; the ones behind it keep their order', async () => {
    const mutex = new KeyedMutex();
    const ran: string[] = [];
    let letGo!: () => void;
    const first = mutex.run('k', () => new Promise<void>((resolve) => (letGo = resolve)));
    const aborter = new AbortController();
    const second = mutex.run('k', async () => void ran.push('second'), aborter.signal);
    const third = mutex.run('k', async () => void ran.push('third'));
    const fourth = mutex.run('k', async () => void ran.push('fourth'));
    aborter.abort('stop');
    await expect(second).rejects.toBe('stop');
    expect(ran).toEqual([]);
    letGo();
    await Promise.all([first, third, fourth]);
    expect(ran).toEqual(['third', 'fourth']);
    // Nothing is left queued: a new caller runs at once.
    expect(await mutex.run('k', async () => 'free')).toBe('free');
  });

  it('rejects at once for a signal that has already aborted', async () => {
    const mutex = new KeyedMutex();
    let ran = false;
    await expect(mutex.run('k', async () => void (ran = true), AbortSignal.abort('late'))).rejects.toBe('late');
    expect(ran).toBe(false);
  });
});

describe('withFileLock and another process', () => {
  beforeAll(assertBuilt);

  it('an abort during the retry loop ends it at once, and no lock directory of ours remains', async () => {
    const dir = tempDir();
    await FileStore.open({ dataDir: dir, env: cleanEnv() });
    const lockPath = tokenLockPath(path.join(dir, 'locks'), 'p', 'b');
    const holder = startWorker({ op: 'hold-lock', dataDir: dir, provider: 'p', bucket: 'b' });
    try {
      await holder.waitForLines(1);
      let ran = false;
      const started = Date.now();
      // The abort comes from a timer, as the daemon's request timeout does: by then the loop has
      // retried many times (its backoff is capped at 100 ms).
      const waiting = withFileLock(lockPath, LOCK, async () => void (ran = true), AbortSignal.timeout(300));
      await expect(waiting).rejects.toMatchObject({ name: 'TimeoutError' });
      expect(Date.now() - started).toBeLessThan(2_000);
      expect(ran).toBe(false);
      expect(fs.existsSync(`${lockPath}.lock`)).toBe(true); // still the other process's

      holder.child.kill('SIGUSR2');
      await holder.waitForLines(2);
      expect(fs.existsSync(`${lockPath}.lock`)).toBe(false);
      // Free at the first attempt: waitMs 0 fails unless nobody holds it.
      expect(await withFileLock(lockPath, { ...LOCK, waitMs: 0 }, async () => 'mine')).toBe('mine');
      expect(fs.existsSync(`${lockPath}.lock`)).toBe(false);
    } finally {
      if (holder.child.exitCode === null && holder.child.signalCode === null) holder.child.kill('SIGKILL');
    }
  });
});

describe('withFileLock aborted at any moment', () => {
  it('either runs the body and releases, or rejects with the reason without running it; no lock is ever left behind', async () => {
    const dir = tempDir();
    const lockPath = path.join(dir, 'target');
    let ran = 0;
    let rejected = 0;
    for (let i = 0; i < 120; i++) {
      const aborter = new AbortController();
      let bodyRan = false;
      const attempt = withFileLock(lockPath, LOCK, async () => void (bodyRan = true), aborter.signal);
      // Abort after a varying number of event-loop turns: before the queue, during the mkdir of
      // proper-lockfile, after it succeeded, or after the body ran.
      for (let turn = 0; turn < i % 8; turn++) await new Promise((resolve) => setImmediate(resolve));
      aborter.abort('stop');
      const outcome = await attempt.then(
        () => 'ran' as const,
        (err: unknown) => err,
      );
      if (outcome === 'ran') {
        ran++;
        expect(bodyRan).toBe(true);
      } else {
        rejected++;
        expect(outcome).toBe('stop');
        expect(bodyRan).toBe(false);
      }
      expect(fs.existsSync(`${lockPath}.lock`)).toBe(false);
    }
    expect(ran + rejected).toBe(120);
    expect(rejected).toBeGreaterThan(0);
  });
});
