/**
 * Locks shared by the stores: an in-process keyed mutex, and cross-process locks built on
 * proper-lockfile (a lock is a directory created with mkdir, kept fresh by mtime updates).
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import { createHash } from 'node:crypto';
import path from 'node:path';
import lockfile from 'proper-lockfile';
import { pause, raceAbort } from '../abort.js';
import { StoreError } from './types.js';

/** Serializes async work per key inside one process; FIFO, no polling. */
export class KeyedMutex {
  private readonly tails = new Map<string, Promise<void>>();

  /**
   * Runs `fn` once every earlier caller for `key` is done. An abort of `signal` while waiting rejects
   * with the signal's reason and gives up the place in the queue: `fn` never runs.
   */
  async run<T>(key: string, fn: () => Promise<T>, signal?: AbortSignal): Promise<T> {
    signal?.throwIfAborted();
    const previous = this.tails.get(key) ?? Promise.resolve();
    let release!: () => void;
    const mine = new Promise<void>((resolve) => (release = resolve));
    const tail = previous.then(() => mine);
    this.tails.set(key, tail);
    // Dropped once everything queued up to here is done; only the last waiter's tail may go, or a
    // later waiter would lose its place. A waiter that gave up still leaves its (already released)
    // link in the chain, so whoever queued behind it keeps waiting for the holder in front.
    void tail.then(() => {
      if (this.tails.get(key) === tail) this.tails.delete(key);
    });
    try {
      await (signal ? raceAbort(previous, signal, () => signal.reason) : previous);
      // The abort may have come in the same turn the previous holder let go.
      signal?.throwIfAborted();
    } catch (err) {
      release();
      throw err;
    }
    try {
      return await fn();
    } finally {
      release();
    }
  }
}

export interface FileLockOptions {
  /** How long to wait for another holder before failing with StoreError('locked'). */
  waitMs: number;
  /** A lock whose mtime is older than this is considered abandoned (holder crashed). */
  staleMs: number;
  /** Human description for error messages, e.g. "the credential store". */
  what: string;
}

/** Passed to the body of a cross-process lock so it can check, before committing, that it still holds it. */
export interface LockHandle {
  /** Throws StoreError('locked') when proper-lockfile reported the lock compromised. */
  assertHeld(): void;
}

interface Holder {
  readonly path: string;
  released: boolean;
  readonly handle: LockHandle;
}

// proper-lockfile is not re-entrant and two acquisitions in one process would just poll each
// other, so every lock path also gets a process-wide FIFO mutex (shared by all store instances).
const processMutex = new KeyedMutex();
// Which lock paths the current async call chain already holds: a nested acquisition of the same
// path (e.g. a withTokenLock body calling a helper that takes the same lock) runs directly instead
// of deadlocking until the wait times out.
const held = new AsyncLocalStorage<readonly Holder[]>();

/**
 * Runs `fn` holding the in-process lock `key`; a nested call for the same key runs directly. An
 * abort of `signal` before the lock is taken rejects with the signal's reason; `fn` does not run.
 */
export async function withProcessLock<T>(key: string, fn: () => Promise<T>, signal?: AbortSignal): Promise<T> {
  if (heldBy(key)) return fn();
  return processMutex.run(key, () => runHolding(key, NOT_A_FILE_LOCK, fn), signal);
}

const NOT_A_FILE_LOCK: LockHandle = { assertHeld() {} };

function heldBy(key: string): Holder | undefined {
  return held.getStore()?.find((h) => h.path === key && !h.released);
}

/** Lock bodies running now, in every call chain. */
let holding = 0;

async function runHolding<T>(key: string, handle: LockHandle, fn: () => Promise<T>): Promise<T> {
  const holder: Holder = { path: key, released: false, handle };
  holding += 1;
  try {
    return await held.run([...(held.getStore() ?? []), holder], fn);
  } finally {
    // Work the body left running after it returned must not count as holding the lock.
    holder.released = true;
    // On Node 20 a live AsyncLocalStorage puts a hook on every promise the process makes (a third
    // of a get_token's cost in the daemon); with no lock held there is nothing to find, so the
    // storage is switched off until the next run() switches it on again.
    holding -= 1;
    if (holding === 0) held.disable();
  }
}

/**
 * Runs `fn` while holding the cross-process lock `<lockPath>.lock` (a directory); `lockPath` itself
 * need not exist. Waits up to `waitMs` with jittered backoff, then fails with StoreError('locked').
 * An abort of `signal` ends the wait at once (in the process queue or between attempts) and rejects
 * with the signal's reason; `fn` does not run, and a lock that was taken anyway is released first.
 * Once `fn` runs, the signal is its business.
 */
export async function withFileLock<T>(lockPath: string, options: FileLockOptions, fn: (lock: LockHandle) => Promise<T>, signal?: AbortSignal): Promise<T> {
  const target = path.resolve(lockPath);
  const outer = heldBy(target);
  if (outer) return fn(outer.handle);

  return processMutex.run(target, async () => {
    let compromised = false;
    const release = await acquire(target, options, () => (compromised = true), signal);
    const handle: LockHandle = {
      assertHeld() {
        if (compromised) {
          throw new StoreError('locked', `Lost the lock on ${options.what} (${target}.lock) while holding it; another process may have taken it over`);
        }
      },
    };
    try {
      const result = await runHolding(target, handle, () => fn(handle));
      handle.assertHeld();
      return result;
    } finally {
      // A failed release (lock dir already removed as stale) must not mask the body's outcome.
      await release().catch(() => undefined);
    }
  }, signal);
}

async function acquire(target: string, options: FileLockOptions, onCompromised: () => void, signal?: AbortSignal): Promise<() => Promise<void>> {
  const deadline = Date.now() + options.waitMs;
  let delay = 5;
  for (;;) {
    signal?.throwIfAborted();
    let release: () => Promise<void>;
    try {
      release = await lockfile.lock(target, {
        realpath: false,
        stale: options.staleMs,
        update: Math.max(1000, Math.floor(options.staleMs / 2)),
        retries: 0,
        // Without this, proper-lockfile throws from a timer and kills the process.
        onCompromised,
      });
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code !== 'ELOCKED') {
        throw new StoreError('io', `Cannot lock ${options.what} (${target}.lock): ${code ?? (err as Error).message}`);
      }
      const left = deadline - Date.now();
      if (left <= 0) {
        throw new StoreError('locked', `Timed out after ${options.waitMs} ms waiting for the lock on ${options.what} (${target}.lock); another process holds it`);
      }
      await pause(Math.min(left, delay * (0.5 + Math.random())), signal);
      delay = Math.min(delay * 1.6, 25);
      continue;
    }
    // The attempt was already under way when the caller gave up: nobody will use this lock.
    if (signal?.aborted) {
      await release().catch(() => undefined);
      signal.throwIfAborted();
    }
    return release;
  }
}

/** The lock path of one (provider, bucket) under `locksDir`: hashed, so no name can escape the dir. */
export function tokenLockPath(locksDir: string, provider: string, bucket: string): string {
  const digest = createHash('sha256').update(provider).update('\0').update(bucket).digest('hex');
  return path.join(locksDir, `token-${digest.slice(0, 32)}`);
}
