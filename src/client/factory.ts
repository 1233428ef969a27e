/**
 * Picks the stores a process should use: the proxy stores when a credential proxy socket is in the
 * environment (the process runs in a sandbox), the host stores otherwise.
 */
import type { StoreChoice } from '../store/open.js';
import type { KeyStore, StoreBackend, TokenStore } from '../store/types.js';
import { dataDir as defaultDataDir } from '../paths.js';
import { readCapabilityFromEnv } from './capability.js';
import { ProxyClient, type ProxyClientOptions } from './ProxyClient.js';
import { proxyClientOptions, proxySocketFromEnv } from './proxyEnv.js';
import { ProxyKeyStore } from './ProxyKeyStore.js';
import { ProxyTokenStore } from './ProxyTokenStore.js';

export { proxyClientOptions, proxySocketFromEnv };

export interface StoreFactoryOptions {
  env?: NodeJS.ProcessEnv;
  /** Host mode: which backend to open (default 'auto'). */
  backend?: StoreChoice;
  /** Host mode: data directory (default dataDir(env)). */
  dataDir?: string;
  /** Host mode: how long to wait for the keyring probe. */
  probeTimeoutMs?: number;
  /** Proxy mode: the capability token (default: read once from CREDPROXY_CAPABILITY_FD). */
  capabilityToken?: string;
  /** Proxy mode: client timeouts; they apply when this call creates the shared client. */
  client?: Pick<ProxyClientOptions, 'requestTimeoutMs' | 'idleTimeoutMs' | 'handshakeTimeoutMs' | 'maxVersion'>;
}

export type Stores =
  | { mode: 'proxy'; socketPath: string; tokens: ProxyTokenStore; keys: ProxyKeyStore }
  | { mode: 'host'; tokens: TokenStore; keys: KeyStore; backend: StoreBackend; reason: string; protects: string };

/** Opens the token and key stores of this process (see the module comment for the choice). */
export async function createStores(options: StoreFactoryOptions = {}): Promise<Stores> {
  const env = options.env ?? process.env;
  const socketPath = proxySocketFromEnv(env);
  if (socketPath !== undefined) {
    return { mode: 'proxy', socketPath, tokens: proxyStore(ProxyTokenStore, socketPath, options, env), keys: proxyStore(ProxyKeyStore, socketPath, options, env) };
  }
  // Loaded on demand so that a sandboxed process never loads the keyring and file backends.
  const { openStores } = await import('../store/open.js');
  const opened = await openStores({
    backend: options.backend ?? 'auto',
    dataDir: options.dataDir ?? defaultDataDir(env),
    env,
    ...(options.probeTimeoutMs !== undefined ? { probeTimeoutMs: options.probeTimeoutMs } : {}),
  });
  return { mode: 'host', ...opened };
}

/** The token store of this process: ProxyTokenStore in a sandbox, the host TokenStore otherwise. */
export async function createTokenStore(options: StoreFactoryOptions = {}): Promise<TokenStore | ProxyTokenStore> {
  const stores = await createStores(options);
  await closeUnused(stores.keys, stores.tokens);
  return stores.tokens;
}

/** The key store of this process: the read-only ProxyKeyStore in a sandbox, the host KeyStore otherwise. */
export async function createKeyStore(options: StoreFactoryOptions = {}): Promise<KeyStore | ProxyKeyStore> {
  const stores = await createStores(options);
  await closeUnused(stores.tokens, stores.keys);
  return stores.keys;
}

/** Host backends return one object as both stores; it must stay open for the half that is used. */
async function closeUnused(unused: { close?(): Promise<void> }, used: object): Promise<void> {
  if (unused !== used) await unused.close?.();
}

// Stores created for the same socket (and capability) share one client, hence one connection. The
// client is closed when the last store using it is closed.
const sharedClients = new Map<string, { client: ProxyClient; refs: number }>();

function proxyStore<S>(
  Store: new (client: ProxyClient, release: () => Promise<void>) => S,
  socketPath: string,
  options: StoreFactoryOptions,
  env: NodeJS.ProcessEnv,
): S {
  const capabilityToken = options.capabilityToken ?? readCapabilityFromEnv(env);
  const key = `${socketPath}\0${capabilityToken ?? ''}`;
  let shared = sharedClients.get(key);
  if (!shared) {
    const client = new ProxyClient({ ...options.client, ...proxyClientOptions(socketPath, capabilityToken, env) });
    shared = { client, refs: 0 };
    sharedClients.set(key, shared);
  }
  const entry = shared;
  entry.refs += 1;
  let released = false;
  return new Store(entry.client, async () => {
    if (released) return;
    released = true;
    entry.refs -= 1;
    if (entry.refs > 0) return;
    if (sharedClients.get(key) === entry) sharedClients.delete(key);
    await entry.client.close();
  });
}
