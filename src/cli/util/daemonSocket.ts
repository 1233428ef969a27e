/** Which daemon a host command goes through: the one the environment names, else a discovered one. */
import { proxySocketFromEnv } from '../../client/proxyEnv.js';
import type { DaemonSocket } from './proxy.js';

/**
 * The one decision of whether a command goes through a daemon: the socket variable when set, else
 * the running daemon of the default socket directory, else null (the command uses the host store).
 * `useDaemon: false` (--no-daemon) always answers null.
 */
export async function daemonSocket(useDaemon = true, env: NodeJS.ProcessEnv = process.env): Promise<DaemonSocket | null> {
  if (!useDaemon) return null;
  const fromEnv = proxySocketFromEnv(env);
  if (fromEnv) return { socketPath: fromEnv, source: 'env' };
  // Loaded only here: the sandbox helpers always have the variable and must not load server code.
  const { findAnsweringDaemon } = await import('../../server/discovery.js');
  const entry = await findAnsweringDaemon(env);
  return entry ? { socketPath: entry.socket, source: 'discovered', pid: entry.pid } : null;
}
