/**
 * The contract between login sessions (src/oauth/sessions.ts, the oauth_* handlers) and the flows
 * (src/oauth/flows/*). A flow runs one OAuth login on the host; the session layer owns ids, expiry,
 * single use, peer binding and storage. Flows never store tokens and never put secrets (device code,
 * verifier, challenge, state, client secret, authorization code) into `publicData`.
 */
import type { StoredToken } from '../store/types.js';

/** Wire names of PROTOCOL.md §6.1. */
export type FlowType = 'device_code' | 'pkce_redirect' | 'browser_redirect';

/** Everything a flow may use from the outside world; injected so tests control time and network. */
export interface FlowDeps {
  fetch: typeof globalThis.fetch;
  /** Milliseconds since the epoch. */
  now: () => number;
  /** Cryptographically random bytes. */
  randomBytes: (n: number) => Uint8Array;
  /** Per upstream HTTP call (PROTOCOL.md §4: 15 s). */
  httpTimeoutMs: number;
}

/** Fields a flow reveals to the client; exactly the §6.1 reply fields beyond session_id/flow_type. */
export interface FlowPublicData {
  auth_url?: string;
  verification_url?: string;
  verification_uri?: string;
  user_code?: string;
  verification_uri_complete?: string;
}

export type PollResult =
  | { status: 'pending'; pollIntervalMs: number; /** set when the provider said slow_down */ intervalSeconds?: number }
  | { status: 'complete'; token: StoredToken };

/** A typed failure; `code` is the protocol error the session layer answers with. Messages are safe. */
export class FlowError extends Error {
  override readonly name = 'FlowError';
  constructor(
    readonly code: 'ACCESS_DENIED' | 'SESSION_EXPIRED' | 'POLL_FAILED' | 'EXCHANGE_FAILED' | 'FLOW_INITIATION_FAILED',
    message: string,
  ) {
    super(message);
  }
}

/** One started login. */
export interface StartedFlow {
  readonly flowType: FlowType;
  readonly publicData: FlowPublicData;
  /** The interval the client should poll at (device/browser), or a sensible default. */
  pollIntervalMs(): number;
  /**
   * device_code / browser_redirect: one step. Never blocks longer than one upstream request and never
   * calls the token endpoint sooner than the current interval after the previous call (returns
   * pending without a request instead). Throws FlowError.
   */
  poll?(signal: AbortSignal): Promise<PollResult>;
  /** pkce_redirect: exchanges the pasted code (verifying state held on the host). Throws FlowError. */
  exchange?(pasted: string, signal: AbortSignal): Promise<StoredToken>;
  /** Aborts background work and frees resources (the loopback callback port). Idempotent. */
  cancel(): Promise<void>;
}
