/** Host-side access to a running daemon's control socket (PROTOCOL.md §11): admin ops only. */
import { ProxyClient } from '../../client/ProxyClient.js';
import type { JsonObject } from '../../protocol/framing.js';
import { findAnsweringDaemon, type DiscoveryEntry } from '../../server/discovery.js';

/**
 * A client of a control socket. It never closes itself when idle: a grant opened without ttl_s
 * lives exactly as long as this connection, so only close() (or the process dying) may end it.
 */
export function controlClient(controlPath: string): ProxyClient {
  return new ProxyClient({ socketPath: controlPath, idleTimeoutMs: Infinity });
}

/** The running daemon named by `--daemon CONTROL_SOCKET`, else the answering one current.json names, else null. */
export async function daemonControlPath(explicit: string | undefined, env: NodeJS.ProcessEnv = process.env): Promise<{ control: string; entry: DiscoveryEntry | null } | null> {
  if (explicit !== undefined) return { control: explicit, entry: null };
  const entry = await findAnsweringDaemon(env);
  return entry ? { control: entry.control, entry } : null;
}

/** One daemon_status over a connection of its own (closed after); rejects as the client does. */
export async function daemonStatus(controlPath: string, timeoutMs: number): Promise<JsonObject> {
  const client = controlClient(controlPath);
  try {
    return await client.request('daemon_status', {}, { timeoutMs });
  } finally {
    await client.close();
  }
}
