/**
 * Host paths a sandbox must never see (issue: no path of the host store, data directory, config,
 * keyring or control socket visible): credproxy's data directory (store, key file, config, audit
 * log), the daemon's socket directory (main and control sockets, other sandboxes' sockets), the
 * session's runtime directory (its bus, with the keyring on it), the keyring's files, and the
 * credential files of the CLIs credproxy imports from. Resolved through symlinks, so a mount
 * reached by another path is still recognised.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { dataDir } from '../paths.js';

/** `p` through its symlinks, or as given (made absolute) when it does not exist (yet). */
export function real(p: string): string {
  try {
    return fs.realpathSync(p);
  } catch {
    return path.resolve(p); // not there (yet): hidden by its name
  }
}

export function credentialPaths(env: NodeJS.ProcessEnv, daemonDir: string, fromDaemon: readonly string[] = []): string[] {
  const home = env.HOME && path.isAbsolute(env.HOME) ? env.HOME : os.homedir();
  const paths = [
    dataDir(env),
    daemonDir,
    path.join(home, '.local', 'share', 'keyrings'),
    path.join(home, '.claude', '.credentials.json'),
    path.join(env.CODEX_HOME && path.isAbsolute(env.CODEX_HOME) ? env.CODEX_HOME : path.join(home, '.codex'), 'auth.json'),
    path.join(home, '.gemini', 'oauth_creds.json'),
    path.join(home, '.qwen', 'oauth_creds.json'),
  ];
  if (env.XDG_RUNTIME_DIR && path.isAbsolute(env.XDG_RUNTIME_DIR)) paths.push(env.XDG_RUNTIME_DIR);
  // The daemon's own (its data directory, config, sockets), which this environment may not name.
  paths.push(...fromDaemon);
  return [...new Set(paths.map(real))];
}
