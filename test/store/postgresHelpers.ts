/**
 * Shared set-up of the PostgreSQL store tests: one real server per test file, a fresh database per
 * test, host data directories that share (or deliberately do not share) the key, and waiting on a
 * store's events instead of sleeping.
 */
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll } from 'vitest';
import { PostgresStore, type GenerationSource, type PostgresStoreOptions } from '../../src/store/postgresStore.js';
import { tempDir } from '../helpers/daemon.js';
import { postgresMissing, startPostgres, type TestPostgres } from '../helpers/postgres.js';

/** Why these tests cannot run; null when they can. With CI=true a reason fails the file instead. */
export const pgSkipReason: string | null = (() => {
  const missing = postgresMissing();
  if (missing && process.env.CI === 'true') throw new Error(`CI=true but ${missing}`);
  if (missing) console.warn(`Skipping the PostgreSQL store tests: ${missing}. With CI=true they fail instead.`);
  return missing;
})();

let server: TestPostgres | null = null;
const dirs: string[] = [];
const stores: PostgresStore[] = [];
let databases = 0;

/** Starts the file's server before its tests and removes everything after them. */
export function usePostgres(): () => TestPostgres {
  beforeAll(async () => {
    if (!pgSkipReason) server = await startPostgres();
  }, 60_000);
  afterAll(async () => {
    await Promise.allSettled(stores.splice(0).map((s) => s.close()));
    await server?.destroy();
    for (const d of dirs.splice(0)) fs.rmSync(d, { recursive: true, force: true });
  }, 60_000);
  return () => server!;
}

/** A new, empty database on the server; returns its URL. */
export async function freshDatabase(pg: TestPostgres): Promise<{ url: string; name: string }> {
  const name = `t${process.pid}_${++databases}`;
  const admin = await pg.client();
  await admin.query(`CREATE DATABASE ${name}`);
  await admin.end();
  return { url: `postgres://${encodeURIComponent(pg.user)}@/${name}?host=${encodeURIComponent(pg.socketDir)}`, name };
}

/** A host's data directory; with `keyFrom`, a copy of that host's key file (as an operator would copy it). */
export function hostDir(keyFrom?: string): string {
  const dir = tempDir('cpgh-');
  dirs.push(dir);
  if (keyFrom) fs.copyFileSync(path.join(keyFrom, 'store.key'), path.join(dir, 'store.key'));
  return dir;
}

/** Opens a store that is closed after the file's tests. */
export async function openStore(options: Partial<PostgresStoreOptions> & { url: string }): Promise<PostgresStore> {
  const store = await PostgresStore.open({ dataDir: options.dataDir ?? hostDir(), env: {}, ...options });
  stores.push(store);
  return store;
}

/** Resolves with the next generation `store` learns of from `source` (any source when omitted). */
export function nextGeneration(store: PostgresStore, source?: GenerationSource): Promise<number> {
  return new Promise((resolve) => {
    const on = (generation: number, from: GenerationSource): void => {
      if (source !== undefined && from !== source) return;
      store.events.off('generation', on);
      resolve(generation);
    };
    store.events.on('generation', on);
  });
}

/** Resolves on the next `event` of the store. */
export function nextEvent(store: PostgresStore, event: 'connected' | 'disconnected'): Promise<void> {
  return new Promise((resolve) => store.events.once(event, () => resolve()));
}

/** A sleep the test releases by hand: reconnection waits until the test says so. */
export function gatedSleep(): { sleep: (ms: number) => Promise<void>; open: () => void; close: () => void } {
  let gate: { promise: Promise<void>; release: () => void } | null = null;
  const close = (): void => {
    let release!: () => void;
    const promise = new Promise<void>((resolve) => (release = resolve));
    gate = { promise, release };
  };
  return {
    sleep: () => gate?.promise ?? Promise.resolve(),
    open: () => {
      gate?.release();
      gate = null;
    },
    close,
  };
}

/** Polls a condition on the database (pg_locks, pg_stat_activity) until it holds. */
export async function until(check: () => Promise<boolean>): Promise<void> {
  while (!(await check())) await new Promise((r) => setTimeout(r, 20));
}

/**
 * Takes `store`'s refresh lock of (provider, bucket) and keeps it until `release()`; `then` runs
 * under the lock after that. Resolves once the lock is held.
 */
export async function holdLock<T>(store: PostgresStore, provider: string, bucket: string, then: () => Promise<T>): Promise<{ release(): void; holder: Promise<T> }> {
  let release!: () => void;
  const released = new Promise<void>((resolve) => (release = resolve));
  let entered!: () => void;
  const inside = new Promise<void>((resolve) => (entered = resolve));
  const holder = store.withTokenLock(provider, bucket, async () => {
    entered();
    await released;
    return then();
  });
  await Promise.race([inside, holder]);
  return { release, holder };
}
