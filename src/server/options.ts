/** Options of the daemon, as the CLI and tests pass them. */
import type { KeyStore, TokenStore } from '../store/types.js';
import type { Policy } from '../auth/policy.js';

export interface DaemonOptions {
  tokens: TokenStore;
  keys: KeyStore;
  /** Explicit socket path; default per PROTOCOL.md §1. */
  socketPath?: string;
  /** Grants policy; absent = full access for same-uid connections without a capability. */
  policy?: Policy;
  /** Extra peer uids allowed besides the daemon's own. */
  allowUids?: number[];
  /** Audit sink: a file path, '-' for stderr, or 'off' (the default for library use; the CLI defaults to a file). */
  audit?: string;
  /** Optional loopback TCP listener, "127.0.0.1:PORT" (PORT 0 = any). */
  tcp?: string;
  /** Per-connection limits (PROTOCOL.md §4). */
  limits?: Partial<ConnectionLimits>;
  /** Injected clock (ms). */
  now?: () => number;
}

export interface ConnectionLimits {
  maxInFlight: number;
  maxPerSecond: number;
  handshakeTimeoutMs: number;
  partialFrameTimeoutMs: number;
  operationTimeoutMs: number;
  shutdownGraceMs: number;
  /** Open connections per daemon, every listener together (§11). */
  maxConnections: number;
  /** Open connections per sandbox socket (§11). */
  maxSandboxConnections: number;
  /** Inject mode: open connections per grant's proxy (each listener). */
  maxInjectConnections: number;
  /** Inject mode: request bodies kept for a 401 replay, all grants together; past it a body is streamed and not replayed. */
  injectReplayBytes: number;
  /** Inject mode: a proxied connection with no byte either way for this long is closed. */
  injectIdleMs: number;
}

export const DEFAULT_LIMITS: ConnectionLimits = {
  maxInFlight: 16,
  maxPerSecond: 60,
  handshakeTimeoutMs: 5_000,
  partialFrameTimeoutMs: 5_000,
  operationTimeoutMs: 15_000,
  shutdownGraceMs: 5_000,
  maxConnections: 4096,
  maxSandboxConnections: 256,
  maxInjectConnections: 256,
  injectReplayBytes: 32 * 1024 * 1024,
  injectIdleMs: 5 * 60_000,
};
