/**
 * What `status` and `doctor` show of a PostgreSQL store: the schema version, the daemons whose
 * heartbeat is recent, and the refresh locks being waited for. Read-only, and readable without
 * the key, so doctor can look at a store without opening (or creating) it.
 */
import type { ClientConfig } from 'pg';
import { LOCK_NAMESPACE } from './postgresSchema.js';

export interface PostgresReport {
  /** "host/db", never the password. */
  target: string;
  /** 0 when the schema has not been created yet (no host has used the store). */
  schemaVersion: number;
  connected: boolean;
  /** Since when (epoch ms) the database has been unreachable. */
  degradedSince?: number;
  hosts: Array<{ host: string; pid: number; version: string; lastSeen: string; lockWaits: number }>;
  /** Refresh locks some host is waiting for right now (pg_locks). */
  lockWaiters: number;
  /** Which key the store was created with (never the key): what a new host must bring. */
  keyKind?: 'keyfile' | 'passphrase';
}

/** Hosts whose heartbeat is older than this are not shown as live. */
export const HOST_FRESH_SECONDS = 300;

interface Queryable {
  query<R extends object>(sql: string, params?: unknown[]): Promise<{ rows: R[] }>;
}

/** The report over an open connection or pool (`connected` is true: it just answered). */
export async function readPostgresReport(db: Queryable, target: string): Promise<PostgresReport> {
  const exists = await db.query<{ t: string | null }>(`SELECT to_regclass('credproxy_schema_version')::text AS t`);
  const waiters = await db.query<{ n: string }>(`SELECT count(*) AS n FROM pg_locks WHERE locktype = 'advisory' AND classid = $1 AND objid <> 0 AND NOT granted`, [LOCK_NAMESPACE]);
  const lockWaiters = Number(waiters.rows[0]?.n ?? 0);
  if (!exists.rows[0]?.t) return { target, schemaVersion: 0, connected: true, hosts: [], lockWaiters };
  const version = await db.query<{ v: number | null }>('SELECT max(version) AS v FROM credproxy_schema_version');
  const schemaVersion = version.rows[0]?.v ?? 0;
  const hosts =
    schemaVersion === 0
      ? { rows: [] }
      : await db.query<{ host: string; pid: number; version: string; last_seen: Date; lock_waits: string }>(
          `SELECT host, pid, version, last_seen, lock_waits FROM credproxy_hosts WHERE last_seen > now() - make_interval(secs => $1) ORDER BY host, pid`,
          [HOST_FRESH_SECONDS],
        );
  const key = schemaVersion === 0 ? { rows: [] } : await db.query<{ key_kind: 'keyfile' | 'passphrase' }>('SELECT key_kind FROM credproxy_key_params WHERE id = 1');
  return {
    target,
    schemaVersion,
    ...(key.rows[0] && { keyKind: key.rows[0].key_kind }),
    connected: true,
    hosts: hosts.rows.map((h) => ({ host: h.host, pid: h.pid, version: h.version, lastSeen: h.last_seen.toISOString(), lockWaits: Number(h.lock_waits) })),
    lockWaiters,
  };
}

/** Connects once to `config`'s database, reads the report and disconnects (for doctor). */
export async function inspectPostgres(config: ClientConfig, target: string): Promise<PostgresReport> {
  const { default: pg } = await import('pg');
  const client = new pg.Client(config);
  client.on('error', () => {});
  await client.connect();
  try {
    return await readPostgresReport(client, target);
  } finally {
    await client.end().catch(() => {});
  }
}
