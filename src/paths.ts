/** Where credproxy keeps its data on the host. */
import os from 'node:os';
import path from 'node:path';

/** `$CREDPROXY_HOME` (tests) else `$XDG_DATA_HOME/credproxy` else `~/.local/share/credproxy`. */
export function dataDir(env: NodeJS.ProcessEnv = process.env): string {
  if (env.CREDPROXY_HOME) return path.resolve(env.CREDPROXY_HOME);
  const xdg = env.XDG_DATA_HOME && path.isAbsolute(env.XDG_DATA_HOME) ? env.XDG_DATA_HOME : path.join(os.homedir(), '.local', 'share');
  return path.join(xdg, 'credproxy');
}
