/** Opening the host stores for a command, and always closing them again. */
import type { Command } from 'commander';
import { passphraseFrom } from '../../store/fileStore.js';
import { openStores } from '../../store/open.js';
import type { KeyStore, StoreBackend, TokenStore } from '../../store/types.js';
import { dataDir } from '../../paths.js';
import { PACKAGE_VERSION } from '../../server/discovery.js';
import { CliError } from './errors.js';
import { storeChoice, type StoreChoice } from './storeChoice.js';

export { storeChoice, type StoreChoice };

export interface HostStores {
  tokens: TokenStore;
  keys: KeyStore;
  backend: StoreBackend;
  reason: string;
  protects: string;
  dataDir: string;
}

/** What a daemon's stores add: a shared store registers the daemon (heartbeat) and reports outages to `log`. */
export interface DaemonStoreOptions {
  log: (line: string) => void;
}

/** Opens the stores under `dataDir()` (CREDPROXY_HOME respected). The caller must close them. */
export async function openHostStores(choice: StoreChoice, env: NodeJS.ProcessEnv = process.env, daemon?: DaemonStoreOptions): Promise<HostStores> {
  const dir = dataDir(env);
  const opened = await openStores({ backend: choice, dataDir: dir, env, ...(daemon && { daemonVersion: PACKAGE_VERSION, log: daemon.log }) });
  return { ...opened, dataDir: dir };
}

/** Closes both stores; a failure to close must not hide the command's own result. */
export async function closeHostStores(stores: HostStores): Promise<void> {
  await Promise.allSettled([stores.tokens.close?.(), stores.keys.close?.()]);
}

/**
 * Runs `fn` with the host stores open. The memory backend is refused here: a one-shot command
 * would start from an empty store and lose whatever it wrote when it exits.
 */
export async function withHostStores<T>(cmd: Command, fn: (stores: HostStores) => Promise<T>): Promise<T> {
  const choice = storeChoice(cmd);
  if (choice === 'memory') {
    throw new CliError('--store memory only makes sense with serve: a one-shot command would start empty and forget everything at exit');
  }
  const stores = await openHostStores(choice);
  try {
    return await fn(stores);
  } finally {
    await closeHostStores(stores);
  }
}

/**
 * The warning for a file store encrypted with the key file beside it, or null when the backend is
 * another one or CREDPROXY_PASSPHRASE is set.
 */
export function keyFileWarning(backend: StoreBackend, dataDir: string, env: NodeJS.ProcessEnv): string | null {
  if (backend !== 'file' || passphraseFrom(env) !== undefined) return null;
  return `CREDPROXY_PASSPHRASE is unset: the file store's encryption key sits beside it in ${dataDir}, so anyone who can read that directory can decrypt it`;
}
