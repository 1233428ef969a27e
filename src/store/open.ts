/** Chooses and opens the host store backend. Never the kernel keyring (see keyring.ts). */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { FileStore, fileStorePaths, PASSPHRASE_ENV, passphraseFrom } from './fileStore.js';
import { KEYRING_ENTRY_OPTIONS, KEYRING_SERVICE } from './keyringNames.js';
import { MemoryStore } from './memory.js';
import { describePostgresUrl, isPostgresUrl, STORE_URL_ENV } from './postgresTarget.js';
import { StoreError, type KeyStore, type StoreBackend, type TokenStore } from './types.js';

/** A backend, 'auto', or the connection URL of a PostgreSQL store ('postgres' alone: the URL in CREDPROXY_STORE_URL). */
export type StoreChoice = 'auto' | StoreBackend | `postgres://${string}` | `postgresql://${string}`;

export interface OpenStoresOptions {
  backend: StoreChoice;
  dataDir: string;
  /** CREDPROXY_PASSPHRASE and DBUS_SESSION_BUS_ADDRESS are read from here. Default process.env. */
  env?: NodeJS.ProcessEnv;
  /** How long the keyring probe may take. Default PROBE_TIMEOUT_MS. */
  probeTimeoutMs?: number;
  /** A daemon's stores: a shared store registers this process (PostgreSQL hosts table) with this version. */
  daemonVersion?: string;
  /** Operational messages of a shared store (outages, reconnections); never secrets. */
  log?: (line: string) => void;
}

/** How long a keyring has to answer before 'auto' settles for the file store. */
export const PROBE_TIMEOUT_MS = 2000;

export interface OpenedStores {
  /** tokens and keys are the same object; closing both is fine. */
  tokens: TokenStore;
  keys: KeyStore;
  backend: StoreBackend;
  /** Which backend was chosen and why, for `status` output and logs. */
  reason: string;
  /** One honest line on what this backend protects against. */
  protects: string;
}

export const PROTECTS = {
  keyring: 'secrets held by the OS keyring (desktop Secret Service or Keychain), unlocked with your login; other processes of your user can still ask for them',
  fileKey: 'protects against copying the store file alone; not against another process of your user, which can read the key file',
  filePassphrase: 'encrypted at rest with your passphrase; a process of your user that can read your environment can still decrypt',
  memory: 'nothing is persisted; credentials vanish when the daemon stops',
  postgresKey:
    'values are sealed on this host (AES-256-GCM, bound to their provider/bucket/key name) with the key file in the data directory: the database and its backups see names, times and host names, never a token or key; any host (or process of your user) with that key file and database access can decrypt',
  postgresPassphrase:
    'values are sealed on this host (AES-256-GCM, bound to their provider/bucket/key name) with CREDPROXY_PASSPHRASE: the database and its backups see names, times and host names, never a token or key; a process that can read your environment and reach the database can decrypt',
} as const;

/** Opens the stores of `options.backend`; 'auto' prefers a keyring that answers the probe. */
export async function openStores(options: OpenStoresOptions): Promise<OpenedStores> {
  const env = options.env ?? process.env;
  const decision = await decideBackend(options);
  const { reason, protects } = describeStore(decision, options.dataDir, env);
  let store: TokenStore & KeyStore;
  if (decision.backend === 'postgres') {
    // Loaded only for this backend: nothing else pays for the PostgreSQL client.
    const { PostgresStore } = await import('./postgresStore.js');
    store = await PostgresStore.open({
      url: decision.url!,
      dataDir: options.dataDir,
      env,
      ...(options.daemonVersion !== undefined && { heartbeat: { version: options.daemonVersion } }),
      ...(options.log && { log: options.log }),
    });
  } else if (decision.backend === 'memory') store = new MemoryStore();
  else if (decision.backend === 'file') store = await FileStore.open({ dataDir: options.dataDir, env });
  else {
    // The native library is loaded only for this backend (it costs the daemon ~9 MB of memory).
    const { KeyringStore } = await import('./keyring.js');
    store = await KeyringStore.open({ dataDir: options.dataDir });
  }
  return { tokens: store, keys: store, backend: decision.backend, reason, protects };
}

/** Which backend a store choice leads to and why. */
export interface StoreDecision {
  backend: StoreBackend;
  /** Why, without the file store's key (describeStore adds it). */
  reason: string;
  /** The keyring probe, when the decision needed one. */
  probe?: ProbeResult;
  /** The PostgreSQL store's URL (never printed: it may carry a password). */
  url?: string;
}

/**
 * Decides which backend `options.backend` opens, reading only whether files exist and asking the
 * keyring about an item that never exists: nothing is created or written, so `doctor` can report
 * the choice on a machine where credproxy never ran. A requested keyring that cannot be used is a
 * StoreError here, as it is for openStores.
 */
export async function decideBackend(options: OpenStoresOptions): Promise<StoreDecision> {
  const env = options.env ?? process.env;
  const timeoutMs = options.probeTimeoutMs ?? PROBE_TIMEOUT_MS;
  const url = postgresUrlOf(options.backend, env);
  if (url !== undefined) {
    const from = isPostgresUrl(options.backend) ? '' : ` (from ${STORE_URL_ENV})`;
    return { backend: 'postgres', reason: `PostgreSQL store ${describePostgresUrl(url)}${from}`, url };
  }
  switch (options.backend) {
    case 'memory':
      return { backend: 'memory', reason: 'memory store: requested' };
    case 'file':
      return { backend: 'file', reason: 'file store: requested' };
    case 'keyring': {
      const probe = await probeKeyring(env, timeoutMs);
      if (!probe.ok) throw new StoreError('unavailable', `The OS keyring was requested but cannot be used: ${probe.why}`);
      return { backend: 'keyring', reason: `keyring: requested; ${probe.what}`, probe };
    }
    case 'auto': {
      const { storePath } = fileStorePaths(options.dataDir);
      // Switching an existing file store to a keyring that just appeared would hide its credentials.
      if (fs.existsSync(storePath)) return { backend: 'file', reason: `file store: ${storePath} already holds the credentials` };
      if (process.platform !== 'linux' && process.platform !== 'darwin') {
        return { backend: 'file', reason: `file store: the keyring is only used automatically on Linux and macOS, not ${process.platform}` };
      }
      const probe = await probeKeyring(env, timeoutMs);
      if (probe.ok) return { backend: 'keyring', reason: `keyring: ${probe.what}`, probe };
      const hidden = fs.existsSync(path.join(options.dataDir, 'keyring.state')) ? ' (credentials saved earlier in the keyring are not visible now)' : '';
      return { backend: 'file', reason: `file store: ${probe.why}${hidden}`, probe };
    }
    default:
      throw new StoreError('unavailable', `Unknown store backend ${JSON.stringify(options.backend)}`);
  }
}

/** The PostgreSQL URL a choice names: the URL itself, or CREDPROXY_STORE_URL for 'postgres' and for 'auto' when it is set. */
function postgresUrlOf(choice: StoreChoice, env: NodeJS.ProcessEnv): string | undefined {
  if (isPostgresUrl(choice)) return choice;
  const fromEnv = env[STORE_URL_ENV] || undefined;
  if (choice === 'postgres') {
    if (!fromEnv) throw new StoreError('unavailable', `--store postgres needs the database URL: set ${STORE_URL_ENV} or give --store-url-file`);
    if (!isPostgresUrl(fromEnv)) throw new StoreError('unavailable', `${STORE_URL_ENV} does not hold a postgres:// URL`);
    return fromEnv;
  }
  if (choice === 'auto' && fromEnv !== undefined && isPostgresUrl(fromEnv)) return fromEnv;
  return undefined;
}

/** The full reason line and the protection of the stores a decision opens; the file store's key follows `env`. */
export function describeStore(decision: StoreDecision, dataDir: string, env: NodeJS.ProcessEnv): { reason: string; protects: string } {
  if (decision.backend === 'memory') return { reason: decision.reason, protects: PROTECTS.memory };
  if (decision.backend === 'keyring') return { reason: decision.reason, protects: PROTECTS.keyring };
  const withPassphrase = passphraseFrom(env) !== undefined;
  if (decision.backend === 'postgres') {
    return {
      reason: `${decision.reason}; sealed with ${withPassphrase ? PASSPHRASE_ENV : `the key file ${fileStorePaths(dataDir).keyPath}`}`,
      protects: withPassphrase ? PROTECTS.postgresPassphrase : PROTECTS.postgresKey,
    };
  }
  return {
    reason: `${decision.reason}; encrypted with ${withPassphrase ? PASSPHRASE_ENV : `the key file ${fileStorePaths(dataDir).keyPath}`}`,
    protects: withPassphrase ? PROTECTS.filePassphrase : PROTECTS.fileKey,
  };
}

export type ProbeResult = { ok: true; what: string } | { ok: false; why: string };

// Looks up an item that never exists: answers without creating anything or prompting to unlock.
const PROBE_SCRIPT = `
const [modulePath, service, options] = process.argv.slice(1);
try {
  const { AsyncEntry } = require(modulePath);
  new AsyncEntry(service, 'probe:availability', JSON.parse(options)).getPassword().then(
    () => process.exit(0),
    (err) => { process.stderr.write(String(err && err.message)); process.exit(3); });
} catch (err) { process.stderr.write(String(err && err.message)); process.exit(3); }
`;

/**
 * Asks the OS keyring for a nonexistent item in a child process: the native constructor is
 * synchronous and a Secret Service that never answers would otherwise freeze this process.
 */
export async function probeKeyring(env: NodeJS.ProcessEnv, timeoutMs: number): Promise<ProbeResult> {
  const seconds = `${Number((timeoutMs / 1000).toFixed(1))} s`;
  const name = process.platform === 'darwin' ? 'the macOS Keychain' : process.platform === 'linux' ? 'the Secret Service' : 'the OS keyring';
  if (process.platform === 'linux') {
    // libdbus does not guess a session bus, so without the variable the keyring cannot work here.
    if (!env.DBUS_SESSION_BUS_ADDRESS) return { ok: false, why: 'no D-Bus session bus (DBUS_SESSION_BUS_ADDRESS is not set)' };
    // The native library talks to the bus named in the real process environment.
    if (env !== process.env && env.DBUS_SESSION_BUS_ADDRESS !== process.env.DBUS_SESSION_BUS_ADDRESS) {
      return { ok: false, why: 'the given DBUS_SESSION_BUS_ADDRESS differs from this process environment, which the keyring library uses' };
    }
  }
  let modulePath: string;
  try {
    modulePath = createRequire(import.meta.url).resolve('@napi-rs/keyring');
  } catch {
    return { ok: false, why: 'the @napi-rs/keyring module is not installed' };
  }
  return new Promise<ProbeResult>((resolve) => {
    const child = spawn(process.execPath, ['-e', PROBE_SCRIPT, modulePath, KEYRING_SERVICE, JSON.stringify(KEYRING_ENTRY_OPTIONS)], {
      env,
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let stderr = '';
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (chunk: string) => (stderr = (stderr + chunk).slice(0, 2000)));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      resolve({ ok: false, why: `no ${name.replace(/^the /, '')} answered within ${seconds}` });
    }, timeoutMs);
    child.on('error', (err) => {
      clearTimeout(timer);
      resolve({ ok: false, why: `cannot start the keyring probe: ${err.message}` });
    });
    child.on('close', (code) => {
      clearTimeout(timer);
      if (code === 0) resolve({ ok: true, what: `${name} answered within ${seconds}` });
      else resolve({ ok: false, why: `${name} did not work: ${stderr.trim().split('\n')[0]?.slice(0, 300) || `probe exited with ${code}`}` });
    });
  });
}
