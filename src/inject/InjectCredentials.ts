/**
 * Where inject mode's credentials come from: API keys from the key store, OAuth access tokens through
 * freshToken (refreshed within the margin by the single-flight RefreshCoordinator, like get_token).
 * Values stay in the daemon: they are only ever written into an upstream request's header.
 */
import { freshToken, type Refresher } from '../oauth/freshToken.js';
import type { TokenService } from '../oauth/TokenService.js';
import { errors, ProxyError } from '../protocol/errors.js';
import { bucketOrDefault } from '../protocol/names.js';
import type { KeyStore, StoredToken } from '../store/types.js';
import type { RouteCredential } from './routeSchema.js';

export interface InjectCredentialsDeps {
  tokens: TokenService;
  keys: KeyStore;
  refresher: Refresher | null;
  refreshWaitMs?: number;
}

/** What a request carries: the credential's value and, for an OAuth route, the token it came from (its fields bind the request, bindToken). */
export interface Attachment {
  value: string;
  token: StoredToken | null;
}

export class InjectCredentials {
  constructor(private readonly deps: InjectCredentialsDeps) {}

  /** The value to attach now; throws ProxyError (its message names the credential, never a value). */
  async current(credential: RouteCredential, signal: AbortSignal): Promise<Attachment> {
    if ('key' in credential) {
      const key = await this.deps.keys.getKey(credential.key);
      if (key === null) throw new ProxyError('NOT_FOUND', `No API key ${credential.key} is stored on the host`);
      return { value: key, token: null };
    }
    const bucket = bucketOrDefault(credential.bucket);
    const stored = await this.deps.tokens.read(credential.provider, bucket);
    if (!stored) throw errors.tokenNotFound(credential.provider, bucket);
    const { refresher, tokens, refreshWaitMs } = this.deps;
    const token = await freshToken({ tokens, refresher, signal, ...(refreshWaitMs !== undefined && { refreshWaitMs }) }, credential.provider, bucket, stored);
    return { value: token.access_token, token };
  }

  /**
   * After the upstream refused `used` (401): one forced refresh, shared with every concurrent caller.
   * Null when there is nothing new to try (an API key, no refresher, a failed refresh, the cooldown
   * handing back the same token).
   */
  async renewed(credential: RouteCredential, used: string, signal: AbortSignal): Promise<Attachment | null> {
    if ('key' in credential || !this.deps.refresher) return null;
    try {
      const token = await this.deps.refresher.refresh(credential.provider, bucketOrDefault(credential.bucket), signal);
      return token.access_token !== used && this.deps.tokens.isValid(token) ? { value: token.access_token, token } : null;
    } catch {
      return null;
    }
  }
}
