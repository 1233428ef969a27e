/**
 * The token store a sandboxed process uses: every call is one request to the host daemon, and the
 * host answers with sanitized tokens only (PROTOCOL.md §5, §6).
 *
 * Why not `implements TokenStore`: that interface describes host storage. Its `backend` is a
 * StoreBackend ('keyring' | 'file' | 'memory'), and its `withTokenLock` (the cross-process refresh
 * lock) and `changeStamp` (a synchronous "store was written" stamp) have no honest implementation
 * over a socket — the host takes the lock itself inside save/remove/refresh, and a remote store has
 * no cheap synchronous stamp. Faking them would let host-only code run against the proxy and
 * silently lose its guarantees, so the sandbox gets its own interface with the data methods only.
 */
import type { JsonObject } from '../protocol/framing.js';
import { bucketOrDefault } from '../protocol/names.js';
import type { SanitizedToken } from '../oauth/token.js';
import type { StoredToken } from '../store/types.js';
import type { ProxyClient } from './ProxyClient.js';
import { malformed, orNullOnNotFound, stringList } from './replies.js';

/** Usage statistics of one bucket (get_bucket_stats). */
export interface BucketStats {
  bucket: string;
  requestCount: number;
  percentage: number;
  lastUsed?: number;
}

/** TokenStore's data methods as seen from a sandbox; an omitted bucket means "default". */
export interface SandboxTokenStore {
  readonly backend: 'proxy';
  /** The sanitized token, or null when (provider, bucket) has none. */
  getToken(provider: string, bucket?: string): Promise<SanitizedToken | null>;
  /** Merges `token` into the stored one on the host; a refresh_token is never sent. */
  saveToken(provider: string, bucket: string | undefined, token: SanitizedToken | StoredToken): Promise<void>;
  /** Removes the token. The protocol does not say whether one existed, hence void. */
  removeToken(provider: string, bucket?: string): Promise<void>;
  listProviders(): Promise<string[]>;
  listBuckets(provider: string): Promise<string[]>;
  /** Usage statistics, or null when the bucket is unknown. */
  getBucketStats(provider: string, bucket?: string): Promise<BucketStats | null>;
  /** Has the host refresh the token and returns the sanitized result. */
  refreshToken(provider: string, bucket?: string): Promise<SanitizedToken>;
  close(): Promise<void>;
}

export class ProxyTokenStore implements SandboxTokenStore {
  readonly backend = 'proxy' as const;

  /** `release` runs on close(); by default it closes the client (the factory passes a shared-client release). */
  constructor(
    private readonly client: ProxyClient,
    private readonly release: () => Promise<void> = () => client.close(),
  ) {}

  async getToken(provider: string, bucket?: string): Promise<SanitizedToken | null> {
    const data = await orNullOnNotFound(this.client.request('get_token', { provider, bucket: bucketOrDefault(bucket) }));
    return data && asToken(data, 'get_token');
  }

  async saveToken(provider: string, bucket: string | undefined, token: SanitizedToken | StoredToken): Promise<void> {
    // The host drops an incoming refresh_token anyway; not sending it keeps it off the wire.
    const { refresh_token: _dropped, ...rest } = token;
    await this.client.request('save_token', { provider, bucket: bucketOrDefault(bucket), token: rest as SanitizedToken });
  }

  async removeToken(provider: string, bucket?: string): Promise<void> {
    await this.client.request('remove_token', { provider, bucket: bucketOrDefault(bucket) });
  }

  async listProviders(): Promise<string[]> {
    return stringList(await this.client.request('list_providers', {}), 'providers', 'list_providers');
  }

  async listBuckets(provider: string): Promise<string[]> {
    return stringList(await this.client.request('list_buckets', { provider }), 'buckets', 'list_buckets');
  }

  async getBucketStats(provider: string, bucket?: string): Promise<BucketStats | null> {
    const data = await orNullOnNotFound(this.client.request('get_bucket_stats', { provider, bucket: bucketOrDefault(bucket) }));
    if (!data) return null;
    if (typeof data.bucket !== 'string' || typeof data.requestCount !== 'number' || typeof data.percentage !== 'number') {
      throw malformed('get_bucket_stats');
    }
    const stats: BucketStats = { bucket: data.bucket, requestCount: data.requestCount, percentage: data.percentage };
    if (typeof data.lastUsed === 'number') stats.lastUsed = data.lastUsed;
    return stats;
  }

  async refreshToken(provider: string, bucket?: string): Promise<SanitizedToken> {
    return asToken(await this.client.request('refresh_token', { provider, bucket: bucketOrDefault(bucket) }), 'refresh_token');
  }

  close(): Promise<void> {
    return this.release();
  }
}

function asToken(data: JsonObject, op: string): SanitizedToken {
  if (typeof data.access_token !== 'string' || typeof data.expiry !== 'number' || typeof data.token_type !== 'string') {
    throw malformed(op);
  }
  return data as SanitizedToken;
}
