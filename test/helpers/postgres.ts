/**
 * A real PostgreSQL server for tests: initdb into a temp directory as a non-root user (the
 * `postgres` account when the tests run as root, as CI does), a private unix socket directory and
 * no TCP listener, trust authentication on that socket only. Ready means a connection succeeded,
 * never a fixed sleep. stop()/start() restart the same cluster for outage tests.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';

export const POSTGRES_PACKAGE = 'postgresql';

/** The newest /usr/lib/postgresql/<major>/bin holding initdb and postgres, or null. */
export function findPostgresBin(): string | null {
  const root = '/usr/lib/postgresql';
  let majors: string[];
  try {
    majors = fs.readdirSync(root).filter((d) => /^\d+$/.test(d)).sort((a, b) => Number(b) - Number(a));
  } catch {
    return null;
  }
  for (const major of majors) {
    const bin = path.join(root, major, 'bin');
    if (['initdb', 'postgres', 'pg_dump'].every((tool) => fs.existsSync(path.join(bin, tool)))) return bin;
  }
  return null;
}

/** Why the PostgreSQL tests cannot run here, or null; with CI=true a reason is a failure, not a skip. */
export function postgresMissing(): string | null {
  return findPostgresBin() ? null : `no PostgreSQL server binaries under /usr/lib/postgresql/*/bin (Debian: apt-get install ${POSTGRES_PACKAGE})`;
}

export interface TestPostgres {
  /** The unix socket directory: the `host` of a connection. */
  socketDir: string;
  /** The cluster's data directory (pg_hba.conf lives there). */
  dataDir: string;
  database: string;
  user: string;
  /** A connection URL (no password: trust on the private socket). */
  url: string;
  bin: string;
  /** Runs a server tool (pg_dump, psql) as the cluster's owner against this server; returns stdout. */
  tool(name: string, args: string[]): string;
  /** A client of its own, connected; the caller ends it. */
  client(): Promise<pg.Client>;
  stop(): Promise<void>;
  start(): Promise<void>;
  /** Stops the server and removes its directory. */
  destroy(): Promise<void>;
}

/**
 * Runs `file args` as `owner` when we are root (initdb and postgres refuse to run as root). setpriv
 * execs in place, so signals sent to the child reach postgres itself.
 */
function asOwner(owner: string | null, file: string, args: string[]): [string, string[]] {
  return owner ? ['setpriv', [`--reuid=${owner}`, `--regid=${owner}`, '--init-groups', '--', file, ...args]] : [file, args];
}

export async function startPostgres(): Promise<TestPostgres> {
  const bin = findPostgresBin();
  if (!bin) throw new Error(postgresMissing()!);
  const owner = process.getuid?.() === 0 ? 'postgres' : null;
  const base = fs.mkdtempSync(path.join(os.tmpdir(), 'cpg-'));
  const dataDir = path.join(base, 'data');
  const socketDir = path.join(base, 'sock');
  fs.mkdirSync(socketDir);
  if (owner) {
    // The cluster owner must own the whole tree; the tmp base stays reachable for it.
    execFileSync('chown', ['-R', `${owner}:`, base]);
    fs.chmodSync(base, 0o755);
  }
  const user = owner ?? os.userInfo().username;
  const [initFile, initArgs] = asOwner(owner, path.join(bin, 'initdb'), ['-D', dataDir, '-U', user, '--auth=trust', '-E', 'UTF8', '--no-instructions']);
  execFileSync(initFile, initArgs, { stdio: 'pipe' });
  const database = 'postgres';
  const url = `postgres://${encodeURIComponent(user)}@/${database}?host=${encodeURIComponent(socketDir)}`;

  let child: ChildProcess | null = null;
  let exited: Promise<void> = Promise.resolve();
  let log = '';

  const start = async (): Promise<void> => {
    const [file, args] = asOwner(owner, path.join(bin, 'postgres'), ['-D', dataDir, '-k', socketDir, '-c', 'listen_addresses=', '-c', 'fsync=off']);
    const proc = spawn(file, args, { stdio: ['ignore', 'ignore', 'pipe'] });
    child = proc;
    proc.stderr!.setEncoding('utf8').on('data', (chunk: string) => (log = (log + chunk).slice(-4000)));
    exited = new Promise((resolve) => proc.once('exit', () => resolve()));
    // Ready when a query goes through; the server's own startup decides how long that takes.
    for (;;) {
      if (proc.exitCode !== null || proc.signalCode !== null) throw new Error(`postgres exited during startup: ${log}`);
      const c = new pg.Client({ host: socketDir, user, database });
      try {
        await c.connect();
        await c.query('SELECT 1');
        await c.end();
        return;
      } catch {
        await c.end().catch(() => {});
        await new Promise<void>((resolve) => {
          // Either the server comes up (next attempt) or it dies (checked at the loop's top).
          const t = setTimeout(resolve, 50);
          void exited.then(() => {
            clearTimeout(t);
            resolve();
          });
        });
      }
    }
  };

  const stop = async (): Promise<void> => {
    const proc = child;
    if (!proc || proc.exitCode !== null || proc.signalCode !== null) return;
    // SIGINT: fast shutdown, every session is terminated (what a database restart does to clients).
    proc.kill('SIGINT');
    await exited;
    child = null;
  };

  await start();
  return {
    socketDir,
    dataDir,
    database,
    user,
    url,
    bin,
    tool(name, args) {
      const [file, full] = asOwner(owner, path.join(bin, name), ['-h', socketDir, '-U', user, ...args]);
      return execFileSync(file, full, { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
    },
    async client() {
      const c = new pg.Client({ host: socketDir, user, database });
      await c.connect();
      return c;
    },
    stop,
    start,
    async destroy() {
      await stop();
      fs.rmSync(base, { recursive: true, force: true });
    },
  };
}
