/** Which host store a command's --store / --store-url-file select (the options: storeOption.ts). */
import type { Command } from 'commander';
import type { StoreChoice } from '../../store/open.js';
import { isPostgresUrl, readStoreUrlFile, refusePasswordInArgv } from '../../store/postgresTarget.js';
import { StoreError } from '../../store/types.js';
import { CliError } from './errors.js';

export type { StoreChoice };

/**
 * --store-url-file's URL, else --store as given ('postgres' and 'auto' read CREDPROXY_STORE_URL
 * when the store is opened). A URL with a password on the command line is refused: argv is
 * readable by every local user.
 */
export function storeChoice(cmd: Command): StoreChoice {
  const opts = cmd.optsWithGlobals() as { store?: StoreChoice; storeUrlFile?: string };
  const store = opts.store ?? 'auto';
  try {
    if (isPostgresUrl(store)) refusePasswordInArgv(store);
    if (opts.storeUrlFile === undefined) return store;
    if (store !== 'auto' && store !== 'postgres') {
      throw new CliError(`--store-url-file names a PostgreSQL store; it cannot be combined with --store ${isPostgresUrl(store) ? 'URL' : store}`);
    }
    return readStoreUrlFile(opts.storeUrlFile) as StoreChoice;
  } catch (err) {
    if (err instanceof StoreError) throw new CliError(err.message);
    throw err;
  }
}
