/**
 * The token model of PROTOCOL.md §5, pure: the one sanitizer (host → client), the one incoming
 * allowlist (client → host) and the one merge. Both directions keep the same fields: the standard
 * ones plus the provider's declared public fields, never a secret or host-only field.
 */
import type { StoredToken } from '../store/types.js';

declare const sanitized: unique symbol;

/** The wire shape of a token a client sees. */
export interface TokenView {
  access_token: string;
  expiry: number;
  token_type: string;
  scope?: string;
  [publicField: string]: unknown;
}

/**
 * A token that came out of `sanitizeToken`: the only token type a handler may reply with. The brand
 * exists only for the compiler, so a StoredToken (which lacks it) cannot be returned by mistake.
 */
export type SanitizedToken = TokenView & { readonly [sanitized]: true };

/** Fields that never cross the socket, in either direction, whatever a provider declares public. */
export const SECRET_TOKEN_FIELDS: ReadonlySet<string> = new Set(['refresh_token', 'id_token', 'code_verifier', 'code', 'state', 'device_code', 'client_secret']);

/** Host bookkeeping: epoch ms of the last upstream refresh attempt (the TokenService reads and writes it). */
export const REFRESH_ATTEMPT_FIELD = 'refresh_attempted_at';

/** When the host obtained this token (epoch ms): a login, a refresh, an import. Its lifetime is expiry minus this. */
export const OBTAINED_AT_FIELD = 'obtained_at';

/** How the last upstream refresh ended: 'ok' or its error code (REAUTH_REQUIRED means a login is needed). */
export const REFRESH_RESULT_FIELD = 'refresh_result';

/**
 * Host bookkeeping of an imported login: `{format, path}` of the CLI tool's own credentials file that
 * refreshed tokens are written back into (src/oauth/importers/writeBack.ts).
 */
export const WRITE_BACK_FIELD = 'write_back';

/**
 * Host bookkeeping kept in the stored token. A client must never set it — a forged refresh stamp
 * would skip the cooldown, a forged lifetime would stretch the margins, a forged write-back target
 * would make the host write tokens into a file of the client's choosing — nor read it.
 */
export const HOST_ONLY_TOKEN_FIELDS: ReadonlySet<string> = new Set([REFRESH_ATTEMPT_FIELD, OBTAINED_AT_FIELD, REFRESH_RESULT_FIELD, WRITE_BACK_FIELD]);

/** Whether a provider may declare `field` public (config validation uses the same rule). */
export function mayBePublic(field: string): boolean {
  return !SECRET_TOKEN_FIELDS.has(field) && !HOST_ONLY_TOKEN_FIELDS.has(field) && !UNSAFE_KEYS.has(field) && !STANDARD_FIELDS.has(field);
}

const STANDARD_FIELDS: ReadonlySet<string> = new Set(['access_token', 'expiry', 'token_type', 'scope']);
const UNSAFE_KEYS: ReadonlySet<string> = new Set(['__proto__', 'constructor', 'prototype']);

/** A public field value: a primitive, never an object (which could smuggle nested secrets). */
function isPublicValue(value: unknown): value is string | number | boolean {
  return typeof value === 'string' || typeof value === 'boolean' || (typeof value === 'number' && Number.isFinite(value));
}

/** Every token sanitizeToken built; the dispatcher refuses token replies that are not one of them. */
const issued = new WeakSet<object>();

/** True for a token built by sanitizeToken (frozen, so nothing was added back since). */
export function isSanitizedToken(value: unknown): value is SanitizedToken {
  return typeof value === 'object' && value !== null && issued.has(value);
}

/** Builds the sanitized token by allowlist: standard fields plus `publicFields` of the provider. Frozen. */
export function sanitizeToken(token: StoredToken, publicFields: readonly string[]): SanitizedToken {
  const out: TokenView = {
    access_token: token.access_token,
    expiry: token.expiry,
    token_type: normalizeTokenType(token.token_type),
  };
  if (typeof token.scope === 'string') out.scope = token.scope;
  for (const field of publicFields) {
    if (!mayBePublic(field) || !Object.hasOwn(token, field)) continue;
    const value = token[field];
    if (isPublicValue(value)) out[field] = value;
  }
  issued.add(Object.freeze(out));
  return out as SanitizedToken;
}

/**
 * The incoming direction (save_token): the same allowlist. `null` means absent; refresh tokens,
 * id tokens, host bookkeeping and undeclared fields are dropped, never stored. The schema has
 * already checked access_token, expiry and token_type.
 */
export function acceptIncoming(token: Readonly<Record<string, unknown>>, publicFields: readonly string[]): Partial<StoredToken> {
  const out: Partial<StoredToken> = {};
  if (typeof token.access_token === 'string') out.access_token = token.access_token;
  if (typeof token.expiry === 'number' && Number.isFinite(token.expiry)) out.expiry = token.expiry;
  if (typeof token.token_type === 'string') out.token_type = normalizeTokenType(token.token_type);
  if (typeof token.scope === 'string') out.scope = token.scope;
  for (const field of publicFields) {
    if (!mayBePublic(field) || !Object.hasOwn(token, field)) continue;
    const value = token[field];
    if (isPublicValue(value)) out[field] = value;
  }
  return out;
}

/** "bearer" in any case is stored and served as "Bearer"; other types pass as given. */
export function normalizeTokenType(tokenType: unknown): string {
  if (typeof tokenType !== 'string' || tokenType.length === 0 || /^bearer$/i.test(tokenType)) return 'Bearer';
  return tokenType;
}

/**
 * Merges `incoming` into `stored`: every field of `incoming` that is not undefined/null replaces the
 * stored one, except that `refresh_token` is replaced only by a non-empty string.
 */
export function mergeToken(stored: StoredToken | null, incoming: Partial<StoredToken>): StoredToken {
  const merged: Record<string, unknown> = {};
  for (const [field, value] of Object.entries(stored ?? {})) if (!UNSAFE_KEYS.has(field)) merged[field] = value;
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
