/**
 * When commands go through a daemon: in a sandbox, the one CREDPROXY_SOCKET names; on the host, the
 * running daemon that discovery finds (PROTOCOL.md §11).
 */
import { Option } from 'commander';
import { ProxyClient } from '../../client/ProxyClient.js';
import { readCapabilityFromEnv } from '../../client/capability.js';
import { proxyClientOptions, proxySocketFromEnv } from '../../client/factory.js';
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

/** `--no-daemon` for the commands that would otherwise go through a running daemon. */
export function noDaemonOption(): Option {
  return new Option('--no-daemon', 'use the host store (--store) even when CREDPROXY_SOCKET is set or a daemon is running');
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
