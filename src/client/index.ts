/** Public API of the credproxy client (PROTOCOL.md §8). */
export { CAPABILITY_FD_ENV, assertCapabilityToken, isCapabilityToken, readCapabilityFromEnv } from './capability.js';
export {
  CONNECTION_LOST_MESSAGE,
  ProxyClient,
  ProxyClientError,
  type ClientErrorCode,
  type ProxyClientOptions,
  type RequestOptions,
  type RequestPayload,
} from './ProxyClient.js';
export { ProxyTokenStore, type BucketStats, type SandboxTokenStore } from './ProxyTokenStore.js';
export { KEY_MANAGEMENT_UNAVAILABLE, ProxyKeyStore, type SandboxKeyStore } from './ProxyKeyStore.js';
export { createKeyStore, createStores, createTokenStore, proxySocketFromEnv, type StoreFactoryOptions, type Stores } from './factory.js';
