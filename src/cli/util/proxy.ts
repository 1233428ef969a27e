/**
 * When commands go through a daemon: in a sandbox, the one CREDPROXY_SOCKET names; on the host, the
 * running daemon that discovery finds (PROTOCOL.md §11). Free of commander: the helper path
 * (helperPath.ts) runs through here without the CLI parser.
 */
import { ProxyClient } from '../../client/ProxyClient.js';
import { readCapabilityFromEnv } from '../../client/capability.js';
import { proxyClientOptions, proxySocketFromEnv } from '../../client/proxyEnv.js';
import { ProxyTokenStore } from '../../client/ProxyTokenStore.js';
import type { SanitizedToken } from '../../oauth/token.js';
import { CliError } from './errors.js';
import { label, type Target } from './target.js';

export { proxySocketFromEnv };

/** The daemon a command goes through, and how it was found. */
export interface DaemonSocket {
  socketPath: string;
  source: 'env' | 'discovered';
  /** The discovered daemon's pid (current.json); unknown for a socket from the environment. */
  pid?: number;
}

/**
 * Runs `fn` against `found`. A discovered daemon's main socket gives the policy's default grant, which
 * may be narrower than what the host user means to do; its refusal then says how to bypass it.
 */
export async function withDaemonClient<T>(found: DaemonSocket, fn: (client: ProxyClient) => Promise<T>): Promise<T> {
  try {
    return await withProxyClient(found.socketPath, fn);
  } catch (err) {
    if (found.source === 'discovered' && refused(err)) {
      const message = err instanceof CliError ? err.message : `${(err as Error).message} (UNAUTHORIZED)`;
      throw new CliError(`${message}; the running daemon (pid ${found.pid}) refused it under its policy, --no-daemon uses the host store instead`);
    }
    throw err;
  }
}

/** The access token of `target` through `found` (the daemon refreshes it first when needed); none is an error. */
export async function daemonAccessToken(found: DaemonSocket, target: Target): Promise<string> {
  return (await withDaemonClient(found, (client) => proxyToken(client, target))).access_token;
}

/** An UNAUTHORIZED answer, also when a command already turned it into its own CliError (login). */
function refused(err: unknown): boolean {
  for (let e: unknown = err; e instanceof Error; e = e.cause) {
    if ((e as { code?: unknown }).code === 'UNAUTHORIZED') return true;
  }
  return false;
}

/** The proxy socket for commands that only work inside a sandbox (they have no host-store fallback). */
export function requireProxySocket(command: string): string {
  const socketPath = proxySocketFromEnv();
  if (!socketPath) {
    throw new CliError(`${command} gets credentials from the credproxy daemon: set CREDPROXY_SOCKET (or LLXPRT_CREDENTIAL_SOCKET) to its socket`);
  }
  return socketPath;
}

/** Runs `fn` with a connected-on-demand client, closing it so no idle timer keeps the CLI alive. */
export async function withProxyClient<T>(socketPath: string, fn: (client: ProxyClient) => Promise<T>): Promise<T> {
  const capabilityToken = readCapabilityFromEnv();
  const client = new ProxyClient(proxyClientOptions(socketPath, capabilityToken));
  try {
    return await fn(client);
  } finally {
    await client.close();
  }
}

/** The token of `target` through the proxy (the daemon refreshes it first when needed); none is an error. */
export async function proxyToken(client: ProxyClient, target: Target): Promise<SanitizedToken> {
  // The caller owns the client (withProxyClient closes it); the store must not close it itself.
  const token = await new ProxyTokenStore(client, async () => {}).getToken(target.provider, target.bucket);
  if (!token) throw new CliError(`No token for ${label(target)}`);
  return token;
}
