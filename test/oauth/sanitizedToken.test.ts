/**
 * The SanitizedToken brand: a handler's token data must come out of sanitizeToken. The type checks
 * below are part of `npm run lint` (tsc covers test/): if a stored token could be returned, the
 * `@ts-expect-error` lines would stop being errors and the build would fail.
 */
import { describe, expect, it } from 'vitest';
import type { Handler } from '../../src/handlers/context.js';
import { sanitizeToken, type SanitizedToken } from '../../src/oauth/token.js';
import type { StoredToken } from '../../src/store/types.js';

const stored: StoredToken = { access_token: 'at', expiry: 2_000_000_000, token_type: 'Bearer', refresh_token: 'rt-secret', id_token: 'idt' };

// @ts-expect-error a stored token is not a SanitizedToken
const leaky: SanitizedToken = stored;

// @ts-expect-error get_token cannot reply with the stored token
const leakyHandler: Handler<'get_token'> = async (ctx, { provider }) => (await ctx.tokens.read(provider, 'default'))!;

// @ts-expect-error nor can oauth_poll put one inside its "complete" reply
const leakyPoll: Handler<'oauth_poll'> = async () => ({ status: 'complete', token: stored });

const sound: Handler<'get_token'> = async (ctx, { provider }) => sanitizeToken((await ctx.tokens.read(provider, 'default'))!, ctx.publicFields(provider));

describe('SanitizedToken', () => {
  it('is what sanitizeToken returns, with no secret field at run time', () => {
    const token: SanitizedToken = sanitizeToken(stored, ['id_token', 'refresh_token']);
    expect(token).toEqual({ access_token: 'at', expiry: 2_000_000_000, token_type: 'Bearer' });
    // The brand is a compile-time marker only: nothing extra goes on the wire.
    expect(Object.getOwnPropertySymbols(token)).toEqual([]);
    expect([leaky, leakyHandler, leakyPoll, sound].every((x) => x !== undefined)).toBe(true);
  });
});
