/**
 * The token model: the one sanitizer and the one merge of PROTOCOL.md §5. Pure.
 */
import type { StoredToken } from '../store/types.js';
import { publicFieldsOf } from './publicFields.js';

/** The only token shape that ever crosses the socket. */
export interface SanitizedToken {
  access_token: string;
  expiry: number;
  token_type: string;
  scope?: string;
  [publicField: string]: unknown;
}

/** Fields that never cross the socket, whatever a provider declares public. */
export const SECRET_TOKEN_FIELDS: ReadonlySet<string> = new Set(['refresh_token', 'id_token', 'code_verifier', 'code', 'state', 'device_code', 'client_secret']);

/** Builds the sanitized token by allowlist: standard fields plus the provider's declared public fields. */
export function sanitizeToken(provider: string, token: StoredToken): SanitizedToken {
  const out: SanitizedToken = {
    access_token: token.access_token,
    expiry: token.expiry,
    token_type: normalizeTokenType(token.token_type),
  };
  if (typeof token.scope === 'string') out.scope = token.scope;
  for (const field of publicFieldsOf(provider)) {
    if (SECRET_TOKEN_FIELDS.has(field)) continue;
    const value = token[field];
    if (value !== undefined && value !== null && (typeof value !== 'object' || value === null)) {
      out[field] = value;
    }
  }
  return out;
}

/** "bearer" in any case is stored and served as "Bearer"; other types pass as given. */
export function normalizeTokenType(tokenType: unknown): string {
  if (typeof tokenType !== 'string' || tokenType.length === 0 || /^bearer$/i.test(tokenType)) return 'Bearer';
  return tokenType;
}

const UNSAFE_KEYS = new Set(['__proto__', 'constructor', 'prototype']);

/**
 * Merges `incoming` into `stored`: every field of `incoming` that is not undefined/null replaces the
 * stored one, except that `refresh_token` is replaced only by a non-empty string.
 */
export function mergeToken(stored: StoredToken | null, incoming: Partial<StoredToken>): StoredToken {
  const merged: Record<string, unknown> = { ...(stored ?? {}) };
  for (const [field, value] of Object.entries(incoming)) {
    if (value === undefined || value === null || UNSAFE_KEYS.has(field)) continue;
    if (field === 'refresh_token' && (typeof value !== 'string' || value.length === 0)) continue;
    merged[field] = value;
  }
  merged.token_type = normalizeTokenType(merged.token_type);
  if (typeof merged.access_token !== 'string' || typeof merged.expiry !== 'number') {
    throw new TypeError('Merged token lacks access_token or expiry');
  }
  return merged as StoredToken;
}

/** Seconds until the token expires (negative when expired). */
export function secondsToExpiry(token: Pick<StoredToken, 'expiry'>, nowMs: number): number {
  return token.expiry - Math.floor(nowMs / 1000);
}
