/**
 * The PostgreSQL store's tables, created and migrated on first use. Each migration runs in one
 * transaction under an advisory lock, so hosts starting together migrate once and never see a
 * half-built schema. Everything secret is a sealed `bytea` (crypto.ts sealValue); names, times and
 * host names are plain, so the database can key and list them.
 */
import type { ClientBase } from 'pg';
import { StoreError } from './types.js';

/** The schema version this build writes and reads. */
export const SCHEMA_VERSION = 1;

/** Classid of every advisory lock credproxy takes; the objid is 0 for migrations, a bucket's hash for its refresh lock. */
export const LOCK_NAMESPACE = 0x43505853; // "CPXS"

/** The NOTIFY channel every write signals, with the new generation as payload. */
export const CHANGE_CHANNEL = 'credproxy_changes';

const MIGRATIONS: ReadonlyArray<readonly string[]> = [
  [
    // Key parameters shared by every host (the scrypt salt, or "key file"), and a sealed check
    // value: a host with another key is told so at open instead of finding an "empty" store.
    `CREATE TABLE credproxy_key_params (
       id int PRIMARY KEY CHECK (id = 1),
       key_kind text NOT NULL CHECK (key_kind IN ('keyfile', 'passphrase')),
       salt bytea NOT NULL, log_n int NOT NULL, r int NOT NULL, p int NOT NULL,
       key_check bytea NOT NULL,
       created_at timestamptz NOT NULL DEFAULT now())`,
    // One row; every write transaction bumps it and NOTIFYs, so caches learn of every change.
    `CREATE TABLE credproxy_generation (
       id int PRIMARY KEY CHECK (id = 1),
       store_id text NOT NULL,
       generation bigint NOT NULL)`,
    `INSERT INTO credproxy_generation (id, store_id, generation) VALUES (1, gen_random_uuid()::text, 0)`,
    `CREATE TABLE credproxy_tokens (
       provider text NOT NULL, bucket text NOT NULL,
       sealed bytea NOT NULL,
       updated_at timestamptz NOT NULL DEFAULT now(),
       PRIMARY KEY (provider, bucket))`,
    `CREATE TABLE credproxy_keys (
       name text PRIMARY KEY,
       sealed bytea NOT NULL,
       updated_at timestamptz NOT NULL DEFAULT now())`,
    // Daemons sharing the store, for status and doctor.
    `CREATE TABLE credproxy_hosts (
       host text NOT NULL, pid int NOT NULL, version text NOT NULL,
       started_at timestamptz NOT NULL, last_seen timestamptz NOT NULL,
       lock_waits bigint NOT NULL DEFAULT 0,
       PRIMARY KEY (host, pid))`,
  ],
];

/** Brings the schema to SCHEMA_VERSION; returns the version found before. */
export async function migrate(client: ClientBase): Promise<number> {
  await client.query('BEGIN');
  try {
    await client.query('SELECT pg_advisory_xact_lock($1, 0)', [LOCK_NAMESPACE]);
    await client.query('CREATE TABLE IF NOT EXISTS credproxy_schema_version (version int PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())');
    const { rows } = await client.query<{ v: number | null }>('SELECT max(version) AS v FROM credproxy_schema_version');
    const found = rows[0]?.v ?? 0;
    if (found > SCHEMA_VERSION) {
      throw new StoreError('unavailable', `The PostgreSQL store has schema version ${found}, newer than this build reads (${SCHEMA_VERSION}); upgrade credproxy on this host`);
    }
    for (let v = found + 1; v <= SCHEMA_VERSION; v++) {
      for (const statement of MIGRATIONS[v - 1]!) await client.query(statement);
      await client.query('INSERT INTO credproxy_schema_version (version) VALUES ($1)', [v]);
    }
    await client.query('COMMIT');
    return found;
  } catch (err) {
    await client.query('ROLLBACK').catch(() => {});
    throw err;
  }
}
