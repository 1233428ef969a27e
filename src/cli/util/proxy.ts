/** Sandbox-side mode: when a proxy socket is in the environment, commands go through the daemon. */
import { ProxyClient } from '../../client/ProxyClient.js';
import { readCapabilityFromEnv } from '../../client/capability.js';

export { proxySocketFromEnv } from '../../client/factory.js';

/** Runs `fn` with a connected-on-demand client, closing it so no idle timer keeps the CLI alive. */
export async function withProxyClient<T>(socketPath: string, fn: (client: ProxyClient) => Promise<T>): Promise<T> {
  const capabilityToken = readCapabilityFromEnv();
  const client = new ProxyClient(capabilityToken ? { socketPath, capabilityToken } : { socketPath });
  try {
    return await fn(client);
  } finally {
    await client.close();
  }
}
