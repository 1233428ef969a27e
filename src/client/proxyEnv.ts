/**
 * Where the environment says the proxy is (PROTOCOL.md §8). Apart from factory.ts, whose host mode
 * reaches the store backends, so that the sandbox helpers can import it alone.
 */
import type { ProxyClientOptions } from './ProxyClient.js';

/** The proxy socket from CREDPROXY_SOCKET, else llxprt-code's LLXPRT_CREDENTIAL_SOCKET. */
export function proxySocketFromEnv(env: NodeJS.ProcessEnv = process.env): string | undefined {
  return env.CREDPROXY_SOCKET || env.LLXPRT_CREDENTIAL_SOCKET || undefined;
}

/**
 * The client options for the proxy named by the environment. With `CREDPROXY_TCP=HOST:PORT` (set by
 * `credproxy run --tcp`, for VM boundaries a Unix socket does not cross) and a capability, the
 * client uses that loopback TCP listener; otherwise the socket.
 */
export function proxyClientOptions(socketPath: string, capabilityToken: string | undefined, env: NodeJS.ProcessEnv = process.env): ProxyClientOptions {
  const tcp = env.CREDPROXY_TCP;
  if (tcp && capabilityToken !== undefined) {
    const m = /^(?:\[([^\]]+)\]|([^:]+)):(\d{1,5})$/.exec(tcp);
    const port = m ? Number(m[3]) : 0;
    if (!m || port < 1 || port > 65535) throw new TypeError(`CREDPROXY_TCP must be HOST:PORT or [IPv6]:PORT, not ${JSON.stringify(tcp)}`);
    return { host: m[1] ?? m[2]!, port, capabilityToken };
  }
  return capabilityToken !== undefined ? { socketPath, capabilityToken } : { socketPath };
}
