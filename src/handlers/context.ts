/** What every op handler receives besides its validated payload. */
import type { Grant } from '../server/grants.js';
import type { PeerCredentials } from '../server/peerCredentials.js';
import type { KeyStore, StoredToken, TokenStore } from '../store/types.js';
import type { BucketUsage } from './bucketUsage.js';

/** Host-side refresh of (provider, bucket); supplied by the refresh subsystem when configured. */
export type Refresher = (provider: string, bucket: string, signal: AbortSignal) => Promise<StoredToken>;

export interface HandlerContext {
  tokens: TokenStore;
  keys: KeyStore;
  grant: Grant;
  peer: PeerCredentials | null;
  usage: BucketUsage;
  refresher: Refresher | null;
  /** Aborted when the request is cancelled or times out. */
  signal: AbortSignal;
  now: () => number;
}

export type Handler<P> = (ctx: HandlerContext, payload: P) => Promise<Record<string, unknown>>;
