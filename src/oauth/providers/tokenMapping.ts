/**
 * How a token endpoint response becomes a StoredToken: `expiry` in epoch seconds, `token_type`
 * normalized, provider fields kept (resource_url, id_token, ...), claim-derived fields added. Pure.
 */
import type { StoredToken } from '../../store/types.js';
import { HOST_ONLY_TOKEN_FIELDS, normalizeTokenType } from '../token.js';
import { positiveNumber } from '../upstream.js';
import { NEVER_EXPIRES, type ProviderDefinition } from './definition.js';

const UNSAFE_KEYS = new Set(['__proto__', 'constructor', 'prototype']);
/** Relative lifetimes mean nothing once stored; `expiry` replaces `expires_in`. */
const DROPPED = new Set(['expires_in']);

type Mapping = ProviderDefinition['tokenMapping'];

/** The payload of a JWT, unverified: for reading claims (and timing), never for trusting them. */
export function decodeJwtPayload(jwt: unknown): Record<string, unknown> | undefined {
  if (typeof jwt !== 'string') return undefined;
  const part = jwt.split('.')[1];
  if (!part) return undefined;
  try {
    const value: unknown = JSON.parse(Buffer.from(part, 'base64url').toString('utf8'));
    return value !== null && typeof value === 'object' && !Array.isArray(value) ? (value as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}

/** `floor(now_ms/1000) + expires_in`; the default lifetime when expires_in is missing, not a number or ≤ 0. */
export function expiryFrom(expiresIn: unknown, nowMs: number, mapping: Pick<Mapping, 'defaultExpiresIn' | 'nonExpiring'>): number {
  const nowS = Math.floor(nowMs / 1000);
  if ((expiresIn === undefined || expiresIn === null) && mapping.nonExpiring) return NEVER_EXPIRES;
  const seconds = positiveNumber(expiresIn);
  return nowS + (seconds !== undefined ? Math.floor(seconds) : mapping.defaultExpiresIn);
}

function claimAt(claims: Record<string, unknown> | undefined, path: readonly string[]): string | number | undefined {
  let value: unknown = claims;
  for (const key of path) {
    if (value === null || typeof value !== 'object' || !Object.hasOwn(value, key)) return undefined;
    value = (value as Record<string, unknown>)[key];
  }
  return (typeof value === 'string' && value.length > 0) || typeof value === 'number' ? value : undefined;
}

/** Maps a successful token response (refresh responses too) to the token to store. */
export function mapTokenResponse(def: Pick<ProviderDefinition, 'tokenMapping'>, body: Record<string, unknown>, nowMs: number): StoredToken {
  const token: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(body)) {
    // Host bookkeeping is the host's: a response naming a write-back target or a refresh stamp is not obeyed.
    if (value === undefined || value === null || UNSAFE_KEYS.has(key) || DROPPED.has(key) || HOST_ONLY_TOKEN_FIELDS.has(key)) continue;
    token[key] = value;
  }
  if (typeof body.access_token !== 'string' || body.access_token.length === 0) throw new TypeError('token response lacks access_token');
  token.token_type = normalizeTokenType(body.token_type);
  token.expiry = expiryFrom(body.expires_in, nowMs, def.tokenMapping);
  if (Array.isArray(body.scope)) token.scope = body.scope.filter((s) => typeof s === 'string').join(' ');
  else if (body.scope !== undefined && typeof body.scope !== 'string') delete token.scope;
  if (typeof body.refresh_token !== 'string' || body.refresh_token.length === 0) delete token.refresh_token;

  const sources = [decodeJwtPayload(body.id_token), decodeJwtPayload(body.access_token)];
  for (const [field, candidates] of Object.entries(def.tokenMapping.claims)) {
    if (UNSAFE_KEYS.has(field)) continue;
    let found: string | number | undefined;
    for (const claims of sources) {
      for (const path of candidates) {
        found ??= claimAt(claims, path);
      }
    }
    // A refresh response without id_token keeps the stored value: mergeToken skips undefined fields.
    if (found !== undefined) token[field] = found;
  }
  return token as StoredToken;
}
