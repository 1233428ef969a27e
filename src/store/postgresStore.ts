/**
 * Tokens and keys in a PostgreSQL database shared by many hosts (schema: postgresSchema.ts).
 *
 * - Values are sealed on this host (AES-256-GCM, postgresKey.ts) with the row's names as associated
 *   data; the database holds ciphertext, names, times and host names only.
 * - The refresh lock is `pg_advisory_xact_lock` in a transaction on a connection of its own: the
 *   server releases it when the transaction or the session ends, so a host that dies mid-refresh
 *   frees it at once, with no stale-lock timeout. A lock whose connection broke refuses the writes
 *   made under it (another host may hold it by then).
 * - Every write is one transaction that also bumps the generation row and NOTIFYs it; the change
 *   stamp follows it (PostgresChangeFeed.ts), through a re-read on every reconnection too.
 * - Outages: while the listener is away the stamp holds for `offlineServeMs` (the daemon's cache
 *   keeps serving still-valid tokens; expired ones are never served), then changes so nothing
 *   cached is served indefinitely. Reads that miss the cache, writes and locks fail with
 *   StoreError('unavailable'). Reconnection backs off up to 10 s.
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import os from 'node:os';
import path from 'node:path';
import type { ClientBase, ClientConfig, Pool, PoolClient } from 'pg';
import { parseIntoClientConfig } from 'pg-connection-string';
import { raceAbort } from '../abort.js';
import { ensurePrivateDir } from './atomicWrite.js';
import { openValue, sealValue } from './crypto.js';
import { checkKeyName, checkKeyValue, checkTokenNames, tokenToJson } from './document.js';
import { fileStorePaths, passphraseFrom } from './fileStore.js';
import { storeKey } from './postgresKey.js';
import { readPostgresReport, type PostgresReport } from './postgresReport.js';
import { PostgresChangeFeed, type StoreHealth } from './PostgresChangeFeed.js';
import { CHANGE_CHANNEL, LOCK_NAMESPACE, migrate } from './postgresSchema.js';
import { describePostgresUrl, STORE_URL_ENV } from './postgresTarget.js';
import { StoreError, type KeyStore, type StoredToken, type TokenStore } from './types.js';

type PgModule = (typeof import('pg'))['default'];

export type { GenerationSource, StoreHealth } from './PostgresChangeFeed.js';

export interface PostgresStoreOptions {
  /** The connection URL (it may carry a password and TLS options; it is never printed). */
  url: string;
  /** This host's data directory: where the key file lives when no passphrase is set. */
  dataDir: string;
  /** CREDPROXY_PASSPHRASE is read from here. Default process.env. */
  env?: NodeJS.ProcessEnv;
  /** Register this process in the hosts table (daemons do; one-shot commands do not). */
  heartbeat?: { version: string; intervalMs?: number };
  /** How long withTokenLock waits for another host's refresh. Default 60 s. */
  lockWaitMs?: number;
  /** How long cached tokens may be served while the database is unreachable. Default 10 min. */
  offlineServeMs?: number;
  /** How often the change listener is checked for life (and the generation re-read). Default 10 s. */
  probeMs?: number;
  /** How long one query may take before its connection counts as broken. Default 15 s. */
  queryTimeoutMs?: number;
  now?: () => number;
  /** The waits between reconnection attempts (tests hold reconnection with it). */
  sleep?: (ms: number) => Promise<void>;
  /** Operational messages: outages and reconnections (never a secret). */
  log?: (line: string) => void;
}

const DEFAULT_LOCK_WAIT_MS = 60_000;
const DEFAULT_OFFLINE_SERVE_MS = 10 * 60_000;
const DEFAULT_HEARTBEAT_MS = 30_000;
const QUERY_TIMEOUT_MS = 15_000;

async function loadPg(): Promise<PgModule> {
  try {
    return (await import('pg')).default;
  } catch {
    throw new StoreError('unavailable', 'The PostgreSQL store needs the `pg` module, which is not installed (npm install pg)');
  }
}

/**
 * Called by pg only when the server asks for a password the URL does not hold: PGPASSWORD, else
 * PGPASSFILE / ~/.pgpass (pg's own lookup of it is deprecated), else a clear error.
 */
export async function passwordFromEnvironment(params: { host?: string; port?: number; database?: string; user?: string }): Promise<string> {
  if (process.env.PGPASSWORD) return process.env.PGPASSWORD;
  const { default: pgpass } = await import('pgpass');
  const found = await new Promise<string | undefined>((resolve) => pgpass(params, resolve));
  if (found !== undefined) return found;
  throw new StoreError(
    'unavailable',
    `PostgreSQL asks for a password for user ${params.user ?? '(default)'} and none is configured: put it in the URL file (--store-url-file), in ${STORE_URL_ENV}, in PGPASSWORD or in PGPASSFILE`,
  );
}

/**
 * How credproxy connects: the URL (with its TLS options), the password from the environment when
 * the URL has none. The URL is parsed here rather than passed as `connectionString`, which would
 * override the password function with the URL's (absent) password.
 */
export function postgresClientConfig(url: string, queryTimeoutMs: number | undefined): ClientConfig {
  const fromUrl = parseIntoClientConfig(url);
  return {
    ...fromUrl,
    password: typeof fromUrl.password === 'string' && fromUrl.password !== '' ? fromUrl.password : passwordFromEnvironment,
    application_name: 'credproxy',
    connectionTimeoutMillis: 10_000,
    keepAlive: true,
    // Without it the first keep-alive probe waits the OS default, two hours.
    keepAliveInitialDelayMillis: 10_000,
    ...(queryTimeoutMs !== undefined && { query_timeout: queryTimeoutMs }),
  } as ClientConfig;
}

export class PostgresStore implements TokenStore, KeyStore {
  readonly backend = 'postgres' as const;
  /** "host/db", safe to print. */
  readonly target: string;
  private readonly pool: Pool;
  private readonly lockPool: Pool;
  private readonly changes: PostgresChangeFeed;
  private readonly lockWaitMs: number;
  private key: Buffer | null = null;
  private closing = false;
  private heartbeatTimer: NodeJS.Timeout | null = null;
  private beating: Promise<void> = Promise.resolve();
  /** The refresh lock `fn` of withTokenLock runs under, so its writes can tell it was lost. */
  private readonly heldLock = new AsyncLocalStorage<HeldLock>();
  private lockWaits = 0;
  private readonly keyCache = new Map<string, string | null>();
  private keyCacheStamp = '';

  private constructor(
    pg: PgModule,
    private readonly options: PostgresStoreOptions,
  ) {
    this.target = describePostgresUrl(options.url);
    this.lockWaitMs = options.lockWaitMs ?? DEFAULT_LOCK_WAIT_MS;
    this.changes = new PostgresChangeFeed({
      pg,
      config: this.clientConfig(options.queryTimeoutMs ?? QUERY_TIMEOUT_MS),
      target: this.target,
      now: options.now ?? Date.now,
      sleep: options.sleep ?? ((ms) => new Promise((resolve) => setTimeout(resolve, ms).unref())),
      log: options.log ?? (() => {}),
      offlineServeMs: options.offlineServeMs ?? DEFAULT_OFFLINE_SERVE_MS,
      ...(options.probeMs !== undefined && { probeMs: options.probeMs }),
    });
    // A daemon's row is fresh again as soon as the database is back.
    if (options.heartbeat) this.changes.events.on('connected', () => void this.beat(options.heartbeat!.version));
    this.pool = new pg.Pool({ ...this.clientConfig(options.queryTimeoutMs ?? QUERY_TIMEOUT_MS), max: 4 });
    // Lock holders wait up to lockWaitMs and then hold across a refresh; writes use the other pool,
    // so a daemon refreshing many buckets at once cannot starve its own saves.
    this.lockPool = new pg.Pool({ ...this.clientConfig(undefined), max: 16 });
    // An idle pooled connection that breaks (a database restart) must not crash the process.
    this.pool.on('error', () => {});
    this.lockPool.on('error', () => {});
  }

  /**
   * Connects, creates or migrates the schema, checks this host's key against the store's and starts
   * listening for changes. An unreachable database, a wrong key or a newer schema fail here.
   */
  static async open(options: PostgresStoreOptions): Promise<PostgresStore> {
    const store = new PostgresStore(await loadPg(), options);
    try {
      ensurePrivateDir(path.resolve(options.dataDir));
      await store.run('open the store', async (client) => {
        await migrate(client);
        store.key = await storeKey(client, {
          passphrase: passphraseFrom(options.env ?? process.env),
          keyPath: fileStorePaths(options.dataDir).keyPath,
          label: store.target,
        });
      });
      await store.changes.start();
      if (options.heartbeat) await store.startHeartbeat(options.heartbeat);
    } catch (err) {
      await store.close();
      throw store.asStoreError(err, 'open the store');
    }
    return store;
  }

  private clientConfig(queryTimeoutMs: number | undefined): ClientConfig {
    return postgresClientConfig(this.options.url, queryTimeoutMs);
  }

  // ---- TokenStore ----

  async getToken(provider: string, bucket: string): Promise<StoredToken | null> {
    checkTokenNames(provider, bucket);
    const { rows } = await this.query<{ sealed: Buffer }>('read a token', 'SELECT sealed FROM credproxy_tokens WHERE provider = $1 AND bucket = $2', [provider, bucket]);
    if (!rows[0]) return null;
    const plain = openValue(rows[0].sealed, this.requireKey(), tokenAad(provider, bucket));
    if (!plain) throw this.undecryptable(`the token ${provider}/${bucket}`);
    try {
      return JSON.parse(plain.toString('utf8')) as StoredToken;
    } catch {
      // Authenticated yet not JSON: written by something else with this key, not by credproxy.
      throw new StoreError('corrupt', `The token ${provider}/${bucket} in the PostgreSQL store at ${this.target} decrypted but is not a token`);
    }
  }

  async saveToken(provider: string, bucket: string, token: StoredToken): Promise<void> {
    checkTokenNames(provider, bucket);
    const sealed = sealValue(Buffer.from(tokenToJson(token), 'utf8'), this.requireKey(), tokenAad(provider, bucket));
    await this.write('save a token', async (c) => {
      await c.query(
        `INSERT INTO credproxy_tokens (provider, bucket, sealed) VALUES ($1, $2, $3)
         ON CONFLICT (provider, bucket) DO UPDATE SET sealed = EXCLUDED.sealed, updated_at = now()`,
        [provider, bucket, sealed],
      );
      return true;
    });
  }

  async removeToken(provider: string, bucket: string): Promise<boolean> {
    checkTokenNames(provider, bucket);
    return this.write('remove a token', async (c) => (await c.query('DELETE FROM credproxy_tokens WHERE provider = $1 AND bucket = $2', [provider, bucket])).rowCount! > 0);
  }

  async listProviders(): Promise<string[]> {
    const { rows } = await this.query<{ provider: string }>('list providers', 'SELECT provider FROM credproxy_tokens GROUP BY provider ORDER BY provider COLLATE "C"');
    return rows.map((r) => r.provider);
  }

  async listBuckets(provider: string): Promise<string[]> {
    const { rows } = await this.query<{ bucket: string }>('list buckets', 'SELECT bucket FROM credproxy_tokens WHERE provider = $1 ORDER BY bucket COLLATE "C"', [provider]);
    return rows.map((r) => r.bucket);
  }

  /**
   * Holds `pg_advisory_xact_lock(namespace, hashtext('provider/bucket'))` (names never hold a '/')
   * for the whole of `fn`, in a transaction on a connection of its own. An abort while waiting cancels the wait on the server
   * and drops that connection, so the lock is never taken behind the caller's back.
   */
  async withTokenLock<T>(provider: string, bucket: string, fn: () => Promise<T>, signal?: AbortSignal): Promise<T> {
    checkTokenNames(provider, bucket);
    signal?.throwIfAborted();
    const what = `the refresh lock of ${provider}:${bucket}`;
    const connecting = this.lockPool.connect();
    let client: PoolClient;
    try {
      client = await (signal ? raceAbort(connecting, signal, () => signal.reason) : connecting);
    } catch (err) {
      void connecting.then((c) => c.release(), () => {});
      throw signal?.aborted ? err : this.asStoreError(err, `take ${what}`);
    }
    // A checked-out pg client has no 'error' listener of the pool's: a connection that breaks
    // (a database restart) must mark the lock lost, not crash the process.
    const held: HeldLock = { what, lost: false };
    const lost = (): void => {
      held.lost = true;
    };
    client.on('error', lost);
    client.on('end', lost);
    const acquire = (async () => {
      await client.query('BEGIN');
      await client.query(`SET LOCAL lock_timeout = ${Math.max(1, Math.floor(this.lockWaitMs))}`);
      await client.query('SELECT pg_advisory_xact_lock($1, hashtext($2))', [LOCK_NAMESPACE, `${provider}/${bucket}`]);
    })();
    this.lockWaits++;
    try {
      await (signal ? raceAbort(acquire, signal, () => signal.reason) : acquire);
    } catch (err) {
      if (signal?.aborted) this.abandonLockWait(client, acquire, lost);
      else release(client, lost, true);
      if ((err as { code?: string }).code === '55P03') {
        const waited = this.lockWaitMs >= 1000 ? `${Math.round(this.lockWaitMs / 1000)} s` : `${this.lockWaitMs} ms`;
        throw new StoreError('locked', `Timed out after ${waited} waiting for ${what}, held by another host`);
      }
      throw signal?.aborted ? err : this.asStoreError(err, `take ${what}`);
    } finally {
      this.lockWaits--;
    }
    try {
      return await this.heldLock.run(held, fn);
    } finally {
      // Ending the transaction releases the lock; a broken connection has released it already.
      await client.query('ROLLBACK').then(
        () => release(client, lost, false),
        () => release(client, lost, true),
      );
    }
  }

  /** An aborted lock wait: cancel it on the server, and drop the connection whatever it got. */
  private abandonLockWait(client: PoolClient, acquire: Promise<void>, lost: () => void): void {
    const pid = (client as unknown as { processID?: number }).processID;
    if (pid) void this.pool.query('SELECT pg_cancel_backend($1)', [pid]).catch(() => {});
    // Dropping the session ends its transaction: a lock granted in the meantime goes with it.
    void acquire.then(
      () => release(client, lost, true),
      () => release(client, lost, true),
    );
  }

  /** Moves whenever any host writes the store (PostgresChangeFeed.stamp). */
  changeStamp(): string {
    return this.changes.stamp();
  }

  /** 'generation' (value, source), 'connected', 'disconnected': for logs and tests. */
  get events(): PostgresChangeFeed['events'] {
    return this.changes.events;
  }

  /** The server process of the change listener (pg_stat_activity.pid), or null while disconnected. */
  get listenerBackendPid(): number | null {
    return this.changes.listenerBackendPid;
  }

  /** 'degraded' while the database is unreachable (for daemon_status and logs). */
  health(): StoreHealth {
    return this.changes.health();
  }

  // ---- KeyStore ----

  async getKey(name: string): Promise<string | null> {
    checkKeyName(name);
    const cache = this.keys();
    if (cache.has(name)) return cache.get(name)!;
    const stamp = this.changeStamp();
    const { rows } = await this.query<{ sealed: Buffer }>('read a key', 'SELECT sealed FROM credproxy_keys WHERE name = $1', [name]);
    let value: string | null = null;
    if (rows[0]) {
      const plain = openValue(rows[0].sealed, this.requireKey(), keyAad(name));
      if (!plain) throw this.undecryptable(`the key ${name}`);
      value = plain.toString('utf8');
    }
    if (this.changeStamp() === stamp) cache.set(name, value);
    return value;
  }

  async setKey(name: string, value: string): Promise<void> {
    checkKeyName(name);
    checkKeyValue(value);
    const sealed = sealValue(Buffer.from(value, 'utf8'), this.requireKey(), keyAad(name));
    await this.write('save a key', async (c) => {
      await c.query('INSERT INTO credproxy_keys (name, sealed) VALUES ($1, $2) ON CONFLICT (name) DO UPDATE SET sealed = EXCLUDED.sealed, updated_at = now()', [name, sealed]);
      return true;
    });
  }

  async deleteKey(name: string): Promise<boolean> {
    checkKeyName(name);
    return this.write('delete a key', async (c) => (await c.query('DELETE FROM credproxy_keys WHERE name = $1', [name])).rowCount! > 0);
  }

  async listKeys(): Promise<string[]> {
    const { rows } = await this.query<{ name: string }>('list keys', 'SELECT name FROM credproxy_keys ORDER BY name COLLATE "C"');
    return rows.map((r) => r.name);
  }

  async hasKey(name: string): Promise<boolean> {
    return (await this.getKey(name)) !== null;
  }

  /** The database as status and doctor show it. */
  async report(): Promise<PostgresReport> {
    try {
      const report = await readPostgresReport(this.pool, this.target);
      const since = this.changes.disconnectedSince;
      return { ...report, connected: since === null, ...(since !== null && { degradedSince: since }) };
    } catch (err) {
      throw this.asStoreError(err, 'read its status');
    }
  }

  /** Stops listening and the heartbeat (removing this host's row), closes the pools. Idempotent. */
  async close(): Promise<void> {
    if (this.closing) return;
    this.closing = true;
    if (this.heartbeatTimer) clearInterval(this.heartbeatTimer);
    if (this.options.heartbeat && this.changes.disconnectedSince === null) {
      await this.beating;
      const forget = (): Promise<unknown> => this.pool.query('DELETE FROM credproxy_hosts WHERE host = $1 AND pid = $2', [os.hostname(), process.pid]);
      // A pooled connection left over from before a database restart fails once; a fresh one follows.
      await forget().catch(forget).catch(() => {});
    }
    await this.changes.close();
    await Promise.allSettled([this.pool.end(), this.lockPool.end()]);
    this.key = null;
    this.keyCache.clear();
  }

  // ---- internals ----

  private keys(): Map<string, string | null> {
    const stamp = this.changeStamp();
    if (stamp !== this.keyCacheStamp) {
      this.keyCache.clear();
      this.keyCacheStamp = stamp;
    }
    return this.keyCache;
  }

  private requireKey(): Buffer {
    if (!this.key) throw new StoreError('unavailable', `The PostgreSQL store at ${this.target} is closed`);
    return this.key;
  }

  private undecryptable(what: string): StoreError {
    return new StoreError(
      'decrypt_failed',
      `Cannot decrypt ${what} in the PostgreSQL store at ${this.target}: the row was not sealed for it with this host's key (copied from another row, another key, or damaged)`,
    );
  }

  private async query<R extends object>(action: string, sql: string, params: unknown[] = []): Promise<{ rows: R[] }> {
    try {
      return await this.pool.query<R & Record<string, unknown>>(sql, params);
    } catch (err) {
      throw this.asStoreError(err, action);
    }
  }

  /** `fn` on one pooled connection; a connection that failed is dropped, not returned to the pool. */
  private async run<T>(action: string, fn: (client: PoolClient) => Promise<T>): Promise<T> {
    let client: PoolClient;
    try {
      client = await this.pool.connect();
    } catch (err) {
      throw this.asStoreError(err, action);
    }
    // The query in flight gets the error; the event itself must not crash the process.
    const ignore = (): void => {};
    client.on('error', ignore);
    try {
      const result = await fn(client);
      release(client, ignore, false);
      return result;
    } catch (err) {
      release(client, ignore, true);
      throw this.asStoreError(err, action);
    }
  }

  /**
   * One transaction: `change`, then (when it changed something) the generation bump and its NOTIFY,
   * delivered to every listener at commit. All of it or none of it lands.
   */
  private write(action: string, change: (client: ClientBase) => Promise<boolean>): Promise<boolean> {
    return this.run(action, async (client) => {
      let committing = false;
      try {
        await client.query('BEGIN');
        const changed = await change(client);
        let generation: number | null = null;
        if (changed) {
          const { rows } = await client.query<{ generation: string }>('UPDATE credproxy_generation SET generation = generation + 1 WHERE id = 1 RETURNING generation');
          generation = Number(rows[0]!.generation);
          await client.query('SELECT pg_notify($1, $2)', [CHANGE_CHANNEL, String(generation)]);
        }
        // Written under a refresh lock whose connection broke: another host may hold it now.
        const held = this.heldLock.getStore();
        if (held?.lost) throw new StoreError('locked', `Lost ${held.what} (its database connection ended); nothing was written`);
        committing = true;
        await client.query('COMMIT');
        if (generation !== null) this.changes.advance(generation, 'write');
        return changed;
      } catch (err) {
        // A commit whose answer was lost may have landed: caches must not trust what they hold.
        if (committing) this.changes.uncertain();
        await client.query('ROLLBACK').catch(() => {});
        throw err;
      }
    });
  }

  private async startHeartbeat(heartbeat: { version: string; intervalMs?: number }): Promise<void> {
    await this.beat(heartbeat.version);
    this.heartbeatTimer = setInterval(() => void this.beat(heartbeat.version), heartbeat.intervalMs ?? DEFAULT_HEARTBEAT_MS);
    this.heartbeatTimer.unref();
  }

  /** One heartbeat; close() waits for one in flight, so it cannot re-insert the row close deletes. */
  private beat(version: string): Promise<void> {
    if (this.closing) return Promise.resolve();
    const beat = this.pool
      .query(
        `INSERT INTO credproxy_hosts (host, pid, version, started_at, last_seen, lock_waits) VALUES ($1, $2, $3, now(), now(), $4)
         ON CONFLICT (host, pid) DO UPDATE SET version = EXCLUDED.version, last_seen = now(), lock_waits = EXCLUDED.lock_waits`,
        [os.hostname(), process.pid, version, this.lockWaits],
      )
      .then(
        () => {},
        () => {}, // an outage is reported by the listener, not by every heartbeat
      );
    this.beating = beat;
    return beat;
  }

  /**
   * A pg or network failure as a StoreError naming the action and the code only (never a value or
   * the URL). Anything else (a bug) is returned as it is, not disguised as an outage.
   */
  asStoreError(err: unknown, action: string): Error {
    if (err instanceof StoreError) return err;
    const code = (err as { code?: unknown }).code;
    const message = err instanceof Error ? err.message : '';
    if (typeof code !== 'string' && !/connection|terminat|timeout|ECONN|socket/i.test(message)) return err instanceof Error ? err : new Error(String(err));
    const text = typeof code === 'string' ? code : 'connection lost';
    const sqlClass = typeof code === 'string' && /^[0-9A-Z]{5}$/.test(code) ? code.slice(0, 2) : null;
    if (sqlClass === null || ['08', '57', '53', '28', '3D'].includes(sqlClass)) {
      return new StoreError('unavailable', `The PostgreSQL store at ${this.target} is unavailable: cannot ${action} (${text})`);
    }
    return new StoreError('io', `The PostgreSQL store at ${this.target} refused to ${action} (SQLSTATE ${text})`);
  }
}

interface HeldLock {
  what: string;
  /** Its connection ended: the server released the lock. */
  lost: boolean;
}

/** Back to the pool (or destroyed), without the listener added at checkout. */
function release(client: PoolClient, listener: () => void, destroy: boolean): void {
  client.off('error', listener);
  client.off('end', listener);
  client.release(destroy);
}

function tokenAad(provider: string, bucket: string): Buffer {
  return Buffer.from(`credproxy\u0000token\u0000${provider}\u0000${bucket}`, 'utf8');
}

function keyAad(name: string): Buffer {
  return Buffer.from(`credproxy\u0000key\u0000${name}`, 'utf8');
}
