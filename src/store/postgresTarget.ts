/**
 * Where the PostgreSQL store lives, read from a connection URL without loading the `pg` client:
 * which URLs name it, how to print it without its password, and where the URL may come from (a
 * password is never taken from the command line, where every local user can read it).
 */
import fs from 'node:fs';
import { StoreError } from './types.js';

/** The environment variable holding the store URL (it may hold a password: the environment is private). */
export const STORE_URL_ENV = 'CREDPROXY_STORE_URL';

const URL_PATTERN = /^(postgres(?:ql)?):\/\/([^/?#]*)(\/[^?#]*)?(\?[^#]*)?$/i;

/** True for a `postgres://` or `postgresql://` URL. */
export function isPostgresUrl(value: string): boolean {
  return /^postgres(?:ql)?:\/\//i.test(value);
}

export interface PostgresTarget {
  /** Host name, IP or unix socket directory (default: the client's, /var/run/postgresql or localhost). */
  host: string;
  port: string | undefined;
  database: string;
  user: string | undefined;
  hasPassword: boolean;
}

/** The parts of a store URL that may be shown; a StoreError('unavailable') when it is not one. */
export function parsePostgresUrl(url: string): PostgresTarget {
  const m = URL_PATTERN.exec(url.trim());
  if (!m) throw new StoreError('unavailable', 'The PostgreSQL store URL is malformed; expected postgres://[user@]host[:port]/database[?options]');
  const authority = m[2]!;
  const at = authority.lastIndexOf('@');
  const userInfo = at >= 0 ? authority.slice(0, at) : '';
  const hostPort = at >= 0 ? authority.slice(at + 1) : authority;
  const colon = userInfo.indexOf(':');
  const user = colon >= 0 ? userInfo.slice(0, colon) : userInfo;
  const params = new URLSearchParams(m[4]?.slice(1) ?? '');
  const hostMatch = /^(\[[^\]]*\]|[^:]*)(?::(\d+))?$/.exec(hostPort);
  // An '@' after the host part is a user name or password with an unencoded '/', '?' or '#': the
  // URL would be read wrongly (and a password in it missed), so it is refused.
  if (!hostMatch || `${m[3] ?? ''}${m[4] ?? ''}`.includes('@')) {
    throw new StoreError('unavailable', 'The PostgreSQL store URL is malformed: percent-encode "/", "?", "#" and "@" in the user name and password (or take the password from PGPASSFILE)');
  }
  const host = safeDecode(hostMatch?.[1] ?? '') || params.get('host') || 'localhost';
  const database = safeDecode((m[3] ?? '/').slice(1)) || params.get('dbname') || safeDecode(user) || 'postgres';
  return {
    host,
    port: hostMatch?.[2] ?? params.get('port') ?? undefined,
    database,
    user: user ? safeDecode(user) : undefined,
    hasPassword: (colon >= 0 && userInfo.length > colon + 1) || params.has('password'),
  };
}

/** "host[:port]/database" (never the password), for status, doctor and error messages. */
export function describePostgresUrl(url: string): string {
  const t = parsePostgresUrl(url);
  return `${t.host}${t.port ? `:${t.port}` : ''}/${t.database}`;
}

/**
 * Refuses a URL given on the command line that carries a password: argv is visible to every
 * local user (ps, /proc). The message does not repeat the URL.
 */
export function refusePasswordInArgv(url: string): void {
  if (!parsePostgresUrl(url).hasPassword) return;
  throw new StoreError(
    'unavailable',
    `Refusing a PostgreSQL URL with a password on the command line (other local users can read the process list); put the URL in a file given with --store-url-file, in ${STORE_URL_ENV}, or keep the password in PGPASSFILE / PGPASSWORD`,
  );
}

/** The URL stored in `file` (first non-empty line); StoreError('io') naming the file only. */
export function readStoreUrlFile(file: string): string {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    throw new StoreError('io', `Cannot read the store URL file ${file}: ${(err as NodeJS.ErrnoException).code ?? 'error'}`);
  }
  const url = text.split('\n').map((l) => l.trim()).find((l) => l.length > 0);
  if (!url || !isPostgresUrl(url)) throw new StoreError('unavailable', `The store URL file ${file} does not hold a postgres:// URL`);
  return url;
}

function safeDecode(value: string): string {
  try {
    return decodeURIComponent(value);
  } catch {
    return value;
  }
}
