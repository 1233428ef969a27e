/** Sandbox-side mode: when a proxy socket is in the environment, commands go through the daemon. */
import { ProxyClient } from '../../client/ProxyClient.js';
import { readCapabilityFromEnv } from '../../client/capability.js';
import { proxyClientOptions, proxySocketFromEnv } from '../../client/factory.js';
import { ProxyTokenStore } from '../../client/ProxyTokenStore.js';
import type { SanitizedToken } from '../../oauth/token.js';
import { CliError } from './errors.js';
import { label, type Target } from './target.js';

export { proxySocketFromEnv };

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
