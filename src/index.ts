/** credproxy's public API: the sandbox client, the host stores, the daemon and the wire protocol. */
export * from './client/index.js';
export * from './store/index.js';
export { startDaemon, type Daemon, type StartOptions } from './server/daemon.js';
export { DEFAULT_LIMITS, type ConnectionLimits, type DaemonOptions } from './server/options.js';
export { loadPolicy, parsePolicy, OPEN_POLICY, type Policy } from './auth/policy.js';
export { hashCapability } from './auth/capability.js';
export { GrantRegistry, type GrantInfo } from './auth/GrantRegistry.js';
export { FULL_GRANT, type Grant } from './auth/grants.js';
export { defaultSocketPath } from './server/socketPath.js';
export { mergeToken, sanitizeToken, type SanitizedToken } from './oauth/token.js';
export { TokenService } from './oauth/TokenService.js';
export { loadProviderRegistry } from './oauth/config.js';
export { dataDir } from './paths.js';
export * from './protocol/index.js';
