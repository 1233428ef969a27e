/** Starting a daemon on the host stores: what `serve` and `run` (when no daemon runs) share. */
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { startDaemon, type Daemon, type StartOptions } from '../../server/daemon.js';
import { CliError } from './errors.js';
import type { HostStores } from './stores.js';

export interface HostDaemonOptions extends Omit<StartOptions, 'tokens' | 'keys' | 'audit' | 'hostPaths'> {
  /** The audit target (a path, "-" or "off"); default DATA_DIR/audit.log. */
  audit?: string;
  /** A `--config` file given on the command line: it may hold client secrets, so it is one of the daemon's paths. */
  configPath?: string;
}

/**
 * startDaemon over `stores`: the audit log in a file by default (on stderr the audit trail would
 * drown the daemon's own messages), the data directory (and a config file) reported as the daemon's
 * own paths, and start errors — written for users — as one-line CLI errors.
 */
export async function startHostDaemon(stores: HostStores, options: HostDaemonOptions): Promise<Daemon> {
  const { audit: given, configPath, ...rest } = options;
  let audit = given;
  if (audit === undefined) {
    await mkdir(stores.dataDir, { recursive: true, mode: 0o700 });
    audit = path.join(stores.dataDir, 'audit.log');
  }
  try {
    return await startDaemon({
      ...rest,
      tokens: stores.tokens,
      keys: stores.keys,
      audit,
      hostPaths: [stores.dataDir, ...(configPath !== undefined ? [path.resolve(configPath)] : [])],
    });
  } catch (err) {
    // The daemon's start errors (path too long, unsafe directory, address in use) name what to fix.
    throw new CliError(err instanceof Error ? err.message : String(err));
  }
}
