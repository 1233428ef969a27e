/** Host-side stores: interfaces, the three backends and the backend chooser. */
export { StoreError, type KeyStore, type StoreBackend, type StoredToken, type TokenStore } from './types.js';
export { MemoryStore } from './memory.js';
export { FileStore, PASSPHRASE_ENV, type FileStoreOptions } from './fileStore.js';
export { KeyringStore, KEYRING_SERVICE, type KeyringStoreOptions } from './keyring.js';
export { openStores, probeKeyring, PROTECTS, type OpenStoresOptions, type OpenedStores, type ProbeResult, type StoreChoice } from './open.js';
