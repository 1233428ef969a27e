/**
 * `doctor`'s store checks: which backend the --store choice opens and why, the data directory, and
 * whether the OS keyring answers. Nothing is created or written: the store is never opened (that
 * would create the data directory and a key file); only file existence, modes and the store
 * file's header are read.
 */
import fs from 'node:fs';
import path from 'node:path';
import { dataDir as dataDirOf } from '../../paths.js';
import { HEADER_LENGTH, HeaderError, parseHeader, type KeyKind } from '../../store/crypto.js';
import { fileStorePaths, keySourceMismatch, missingKeyFile, PASSPHRASE_ENV, passphraseFrom } from '../../store/fileStore.js';
import { decideBackend, describeStore, PROBE_TIMEOUT_MS, probeKeyring, type ProbeResult, type StoreChoice, type StoreDecision } from '../../store/open.js';
import { SCHEMA_VERSION } from '../../store/postgresSchema.js';
import { describePostgresUrl, STORE_URL_ENV } from '../../store/postgresTarget.js';
import { StoreError } from '../../store/types.js';
import { ok, problem, sh, warnCheck, type Check } from './check.js';
import { CliError } from './errors.js';
import { installCommand, onPath } from './onPath.js';
import { keyFileWarning } from './stores.js';

const USE_FILE_STORE = `or set ${PASSPHRASE_ENV} and use --store file`;

/** The `store`, `data-dir` and `keyring` checks for `choice` (the global --store). */
export async function storeChecks(choice: StoreChoice, env: NodeJS.ProcessEnv): Promise<Check[]> {
  const dir = dataDirOf(env);
  let decision: StoreDecision | null = null;
  let store: Check;
  try {
    decision = await decideBackend({ backend: choice, dataDir: dir, env });
    store = storeCheck(decision, dir, env);
  } catch (err) {
    // decideBackend's only StoreError: --store keyring with no usable keyring.
    if (!(err instanceof StoreError)) throw err;
    store = problem('store', err.message, 'drop --store keyring (auto falls back to the encrypted file store), or make the keyring answer (see the keyring check)');
  }
  // A decision that did not need the keyring did not ask it; the keyring check asks anyway.
  const probe = decision?.probe ?? (await probeKeyring(env, PROBE_TIMEOUT_MS));
  const database = decision?.backend === 'postgres' ? [await databaseCheck(decision.url!, dir, env)] : [];
  return [store, ...database, dataDirCheck(dir), keyringCheck(probe, decision, env)];
}

/**
 * The PostgreSQL store, read-only and without the key: reachable, its schema version, the daemons
 * whose heartbeat is recent and the refresh locks waited for now. Never the URL's password.
 */
async function databaseCheck(url: string, dir: string, env: NodeJS.ProcessEnv): Promise<Check> {
  const { inspectPostgres } = await import('../../store/postgresReport.js');
  const { postgresClientConfig } = await import('../../store/postgresStore.js');
  const target = describePostgresUrl(url);
  let report;
  try {
    report = await inspectPostgres(postgresClientConfig(url, 5_000), target);
  } catch (err) {
    const code = (err as { code?: unknown }).code;
    return problem(
      'database',
      `PostgreSQL ${target} cannot be reached (${typeof code === 'string' ? code : 'no answer'})`,
      `start PostgreSQL at ${target} or fix the URL; the password comes from the URL (--store-url-file or ${STORE_URL_ENV}), PGPASSWORD or PGPASSFILE`,
    );
  }
  if (report.schemaVersion === 0) return ok('database', `PostgreSQL ${target} answers; no credproxy schema yet (the first serve, login or import creates it)`);
  if (report.schemaVersion > SCHEMA_VERSION) {
    return problem('database', `PostgreSQL ${target} has schema version ${report.schemaVersion}, newer than this credproxy reads (${SCHEMA_VERSION})`, 'upgrade credproxy on this host');
  }
  // The key itself is only checked when the store opens; here, whether this host brings the kind of key the fleet uses.
  const paths = { storePath: `postgres ${target}`, keyPath: fileStorePaths(dir).keyPath };
  const passphrase = passphraseFrom(env);
  const mismatch = report.keyKind && keySourceMismatch(paths, report.keyKind, passphrase);
  if (mismatch) {
    const fix = report.keyKind === 'passphrase' ? `export ${PASSPHRASE_ENV}='<the passphrase every host of this store uses>'` : `unset ${PASSPHRASE_ENV}`;
    return problem('database', mismatch.message, fix);
  }
  if (report.keyKind === 'keyfile' && !fs.existsSync(paths.keyPath)) {
    return problem('database', missingKeyFile(paths).message, `copy store.key from a host of this store: scp OTHER-HOST:DATA_DIR/store.key ${sh(paths.keyPath)} && chmod 600 ${sh(paths.keyPath)}`);
  }
  const hosts = report.hosts.map((h) => `${h.host}:${h.pid}`).join(', ') || 'none';
  return ok('database', `PostgreSQL ${target}: schema version ${report.schemaVersion}; daemons seen in the last 5 minutes: ${hosts}; refresh locks waited for now: ${report.lockWaiters}`);
}

function storeCheck(decision: StoreDecision, dir: string, env: NodeJS.ProcessEnv): Check {
  const { reason, protects } = describeStore(decision, dir, env);
  const detail = `${reason} — ${protects}`;
  if (decision.backend !== 'file') return ok('store', detail);
  const paths = fileStorePaths(dir);
  const passphrase = passphraseFrom(env);
  const kind = storedKeyKind(paths.storePath);
  if (kind instanceof HeaderError) {
    return problem('store', `The credential store at ${paths.storePath} is damaged (${kind.message})`, `mv ${sh(paths.storePath)} ${sh(`${paths.storePath}.damaged`)} (then log in or import again)`);
  }
  if (kind !== null) {
    const mismatch = keySourceMismatch(paths, kind, passphrase);
    if (mismatch) {
      const fix = kind === 'passphrase' ? `export ${PASSPHRASE_ENV}='<the passphrase the store was created with>'` : `unset ${PASSPHRASE_ENV}`;
      return problem('store', mismatch.message, fix);
    }
    if (kind === 'keyfile' && !fs.existsSync(paths.keyPath)) {
      return problem('store', missingKeyFile(paths).message, `cp <your backup of store.key> ${sh(paths.keyPath)}`);
    }
  }
  const keyFile = keyFileWarning('file', dir, env);
  if (!keyFile) return ok('store', detail);
  // A passphrase only keys a new store: an existing key-file store refuses to open with one set.
  const fix =
    kind === null
      ? `export ${PASSPHRASE_ENV}='<a passphrase>' wherever credproxy runs, before the first login or import`
      : `keep ${sh(dir)} private (chmod 700 ${sh(dir)}); a passphrase only applies to a new store: mv ${sh(paths.storePath)} ${sh(`${paths.storePath}.old`)}, export ${PASSPHRASE_ENV}, then log in or import again`;
  return warnCheck('store', `${detail}; ${keyFile}`, fix);
}

/** The key kind the store file's header names, null without a store file, or why the header is unreadable. */
function storedKeyKind(storePath: string): KeyKind | null | HeaderError {
  let fd: number;
  try {
    fd = fs.openSync(storePath, 'r');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw new CliError(`Cannot read ${storePath}: ${(err as NodeJS.ErrnoException).code ?? 'error'}`);
  }
  try {
    const head = Buffer.alloc(HEADER_LENGTH);
    const read = fs.readSync(fd, head, 0, HEADER_LENGTH, 0);
    return parseHeader(head.subarray(0, read)).kind;
  } catch (err) {
    if (err instanceof HeaderError) return err;
    throw err;
  } finally {
    fs.closeSync(fd);
  }
}

/** The data directory: ours, exactly 0700, and the store's secret files owner-only. */
function dataDirCheck(dir: string): Check {
  let st: fs.Stats;
  try {
    // Followed: a data directory that is a symlink to a private directory elsewhere is fine.
    st = fs.statSync(dir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return ok('data-dir', `${dir} does not exist yet; it is created 0700 on first use`);
    throw new CliError(`Cannot inspect the data directory ${dir}: ${(err as NodeJS.ErrnoException).code ?? 'error'}`);
  }
  const uid = process.getuid?.() ?? 0;
  if (!st.isDirectory()) return problem('data-dir', `${dir} exists but is not a directory`, `mv ${sh(dir)} ${sh(`${dir}.old`)}`);
  if (st.uid !== uid) return problem('data-dir', `${dir} is owned by uid ${st.uid}, not by you (uid ${uid})`, `sudo chown -R ${uid} ${sh(dir)}`);
  const issues: string[] = [];
  const fixes: string[] = [];
  const mode = st.mode & 0o777;
  if (mode !== 0o700) {
    issues.push(`${dir} has mode ${mode.toString(8)}; it must be 700${mode & 0o077 ? ' (others can list it)' : ''}`);
    fixes.push(`chmod 700 ${sh(dir)}`);
  }
  const { storePath, keyPath } = fileStorePaths(dir);
  const present = [storePath, keyPath].map((file) => ({ file, st: fs.statSync(file, { throwIfNoEntry: false }) })).filter((f) => f.st !== undefined);
  const loose = present.filter((f) => (f.st!.mode & 0o077) !== 0).map((f) => f.file);
  if (loose.length) {
    issues.push(`${loose.join(' and ')} can be read by group or others`);
    fixes.push(`chmod 600 ${loose.map(sh).join(' ')}`);
  }
  if (issues.length) return problem('data-dir', issues.join('; '), fixes.join(' && '));
  const files = present.length ? `; ${present.map((f) => path.basename(f.file)).join(' and ')} owner-only` : '';
  return ok('data-dir', `${dir}: a 0700 directory of uid ${uid}${files}`);
}

/**
 * Whether the keyring answers. Not answering is a warning only where it was asked for, or where
 * auto fell back to a file store without a passphrase; otherwise it is a note.
 */
function keyringCheck(probe: ProbeResult, decision: StoreDecision | null, env: NodeJS.ProcessEnv): Check {
  if (probe.ok) return ok('keyring', probe.what);
  if (decision !== null && decision.probe === undefined) return ok('keyring', `not reachable (${probe.why}); not needed, the ${decision.backend} store is in use`);
  // auto fell back to the file store: with a passphrase that is a sound store, nothing to fix.
  if (decision !== null && passphraseFrom(env) !== undefined) {
    return ok('keyring', `not reachable (${probe.why}); the file store, encrypted with ${PASSPHRASE_ENV}, is used instead`);
  }
  return warnCheck('keyring', `not reachable: ${probe.why}`, keyringFix(env));
}

function keyringFix(env: NodeJS.ProcessEnv): string {
  if (process.platform === 'darwin') return `security unlock-keychain login.keychain-db, ${USE_FILE_STORE}`;
  if (process.platform !== 'linux') return `use the file store: set ${PASSPHRASE_ENV} and use --store file`;
  if (onPath('gnome-keyring-daemon', env) === null) return `${installCommand('gnome-keyring', env)}, then log in to a desktop session; ${USE_FILE_STORE}`;
  if (!env.DBUS_SESSION_BUS_ADDRESS) {
    return `dbus-run-session -- sh -c 'gnome-keyring-daemon --unlock --components=secrets && exec credproxy serve' (type the keyring password, then Ctrl-D); ${USE_FILE_STORE}`;
  }
  return `gnome-keyring-daemon --unlock --components=secrets (type the keyring password, then Ctrl-D); ${USE_FILE_STORE}`;
}
