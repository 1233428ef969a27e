/**
 * Parses the token JSON that `credproxy import` accepts into a StoredToken (PROTOCOL.md §5).
 *
 * Expiry forms, most explicit first:
 *   - `expiry` as Unix epoch seconds;
 *   - `expiry` as epoch milliseconds: any value >= 1e11 (1e11 seconds is the year 5138, so a
 *     value that large can only be milliseconds);
 *   - `expires_in` seconds from now, used only when `expiry` is absent.
 * `expires_in` is never stored: it is relative to a moment that has passed once it is on disk.
 *
 * Error messages name fields and never quote values: the input holds secrets.
 */
import { HOST_ONLY_TOKEN_FIELDS, mergeToken } from '../../oauth/token.js';
import type { StoredToken } from '../../store/types.js';
import { CliError } from './errors.js';

const MS_THRESHOLD = 1e11;

/** Builds the full stored token (refresh token included) from JSON text. */
export function parseTokenJson(text: string, nowMs: number): StoredToken {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    // JSON.parse's own message quotes part of the input, which may be a secret.
    throw new CliError('Token input is not valid JSON');
  }
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
    throw new CliError('Token JSON must be an object');
  }
  const input = { ...(raw as Record<string, unknown>) };

  if (typeof input.access_token !== 'string' || input.access_token.length === 0) {
    throw new CliError('Token JSON needs a non-empty string "access_token"');
  }
  input.expiry = expiryOf(input, nowMs);
  delete input.expires_in;
  // Host bookkeeping (refresh stamp, write-back target) is set by the host itself, never imported.
  for (const field of HOST_ONLY_TOKEN_FIELDS) delete input[field];

  for (const field of ['token_type', 'scope'] as const) {
    if (input[field] !== undefined && input[field] !== null && typeof input[field] !== 'string') {
      throw new CliError(`Token JSON field "${field}" must be a string`);
    }
  }
  if (input.refresh_token !== undefined && input.refresh_token !== null && typeof input.refresh_token !== 'string') {
    throw new CliError('Token JSON field "refresh_token" must be a string');
  }
  // The one merge builds the stored shape: it drops null fields and unsafe keys, normalizes
  // token_type, and ignores an empty refresh_token. Merging into nothing = replacing.
  return mergeToken(null, input as Partial<StoredToken>);
}

function expiryOf(input: Record<string, unknown>, nowMs: number): number {
  const { expiry, expires_in: expiresIn } = input;
  if (expiry !== undefined && expiry !== null) {
    if (typeof expiry !== 'number' || !Number.isFinite(expiry) || expiry <= 0) {
      throw new CliError('Token JSON field "expiry" must be a positive number (epoch seconds, or milliseconds)');
    }
    return Math.floor(expiry >= MS_THRESHOLD ? expiry / 1000 : expiry);
  }
  if (expiresIn !== undefined && expiresIn !== null) {
    if (typeof expiresIn !== 'number' || !Number.isFinite(expiresIn) || expiresIn < 0) {
      throw new CliError('Token JSON field "expires_in" must be a non-negative number of seconds');
    }
    return Math.floor(nowMs / 1000) + Math.floor(expiresIn);
  }
  throw new CliError('Token JSON needs "expiry" (epoch seconds or milliseconds) or "expires_in" (seconds)');
}
