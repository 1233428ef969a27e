/**
 * Public API of the credproxy client (PROTOCOL.md §8), published as `credproxy/client`: the entry a
 * sandboxed process imports. It must load no native code and no host-only dependency (koffi,
 * @napi-rs/keyring, store backends, commander, oauth4webapi, zod at runtime): only node built-ins
 * and the pure parts of src/protocol. The factory's host mode loads the store backends on demand.
 * test/client/packageEntry.test.ts enforces this against the packed package.
 */
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
export type { SanitizedToken } from '../oauth/token.js';
export type { ErrorCode } from '../protocol/errors.js';
