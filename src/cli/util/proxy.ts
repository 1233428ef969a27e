/** Sandbox-side mode: when a proxy socket is in the environment, commands go through the daemon. */
import { ProxyClient } from '../../client/ProxyClient.js';
import { readCapabilityFromEnv } from '../../client/capability.js';

/** The proxy socket from `CREDPROXY_SOCKET`, else llxprt-code's `LLXPRT_CREDENTIAL_SOCKET`. */
export function proxySocketFromEnv(env: NodeJS.ProcessEnv = process.env): string | undefined {
  return env.CREDPROXY_SOCKET || env.LLXPRT_CREDENTIAL_SOCKET || undefined;
}

/** Runs `fn` with a connected-on-demand client, closing it so no idle timer keeps the CLI alive. */
export async function withProxyClient<T>(socketPath: string, fn: (client: ProxyClient) => Promise<T>): Promise<T> {
  const capabilityToken = readCapabilityFromEnv();
  const client = new ProxyClient(capabilityToken ? { socketPath, capabilityToken } : { socketPath });
  try {
    return await fn(client);
  } finally {
    // The client unrefs an idle socket, so the loop could drain before its graceful close
    // completes; hold the process open (briefly) until it has.
    const hold = setTimeout(() => {}, 3_000);
    await client.close().finally(() => clearTimeout(hold));
  }
}
