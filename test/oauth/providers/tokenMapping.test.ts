/** Token response → StoredToken: expiry rule of PROVIDERS.md, token_type, kept fields, JWT claims. */
import { describe, expect, it } from 'vitest';
import { NEVER_EXPIRES } from '../../../src/oauth/providers/definition.js';
import { expiryFrom, mapTokenResponse } from '../../../src/oauth/providers/tokenMapping.js';
import { isAllowedEndpoint, isLoopbackHost } from '../../../src/oauth/upstream.js';
import { fakeJwt } from '../flows/helpers.js';

const NOW = 1_700_000_000_999; // floor → 1_700_000_000
const mapping = { defaultExpiresIn: 3600, nonExpiring: false, claims: {} };

describe('token mapping', () => {
  it('expiry = floor(now_ms/1000) + expires_in, 3600 when missing, not a number, or ≤ 0', () => {
    expect(expiryFrom(120, NOW, mapping)).toBe(1_700_000_120);
    expect(expiryFrom('120', NOW, mapping)).toBe(1_700_000_120);
    expect(expiryFrom(120.9, NOW, mapping)).toBe(1_700_000_120);
    for (const bad of [undefined, null, 'soon', '', 0, -5, NaN, {}]) expect(expiryFrom(bad, NOW, mapping)).toBe(1_700_003_600);
    expect(expiryFrom(undefined, NOW, { ...mapping, nonExpiring: true })).toBe(NEVER_EXPIRES);
    expect(expiryFrom(60, NOW, { ...mapping, nonExpiring: true })).toBe(1_700_000_060);
  });

  it('keeps provider fields, drops expires_in and unsafe keys, normalizes token_type and scope', () => {
    const body = JSON.parse('{"access_token":"a","token_type":"bearer","expires_in":10,"refresh_token":"","scope":["x","y"],"resource_url":"r","__proto__":{"polluted":true}}');
    const token = mapTokenResponse({ tokenMapping: mapping }, body, NOW);
    expect(token).toEqual({ access_token: 'a', token_type: 'Bearer', expiry: 1_700_000_010, scope: 'x y', resource_url: 'r' });
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    expect(mapTokenResponse({ tokenMapping: mapping }, { access_token: 'a', token_type: 'DPoP' }, NOW).token_type).toBe('DPoP');
  });

  it('reads claim fields from the id_token, then the access_token, first candidate path first', () => {
    const claims = { account_id: [['https://api.openai.com/auth', 'chatgpt_account_id'], ['account_id']] };
    const def = { tokenMapping: { ...mapping, claims } };
    const nested = fakeJwt({ 'https://api.openai.com/auth': { chatgpt_account_id: 'nested' }, account_id: 'flat' });
    expect(mapTokenResponse(def, { access_token: 'a', id_token: nested }, NOW).account_id).toBe('nested');
    expect(mapTokenResponse(def, { access_token: 'a', id_token: fakeJwt({ account_id: 'flat' }) }, NOW).account_id).toBe('flat');
    expect(mapTokenResponse(def, { access_token: fakeJwt({ account_id: 'from-at' }) }, NOW).account_id).toBe('from-at');
    expect(mapTokenResponse(def, { access_token: 'opaque', id_token: 'not.a-jwt' }, NOW)).not.toHaveProperty('account_id');
  });

  it('plain http only for loopback hosts', () => {
    for (const host of ['127.0.0.1', '127.1.2.3', '::1', '[::1]', 'localhost', 'LOCALHOST']) expect(isLoopbackHost(host), host).toBe(true);
    for (const host of ['128.0.0.1', '127.0.0.256', 'localhost.evil.test', '127.0.0.1.nip.io', '10.0.0.1', '::ffff:7f00:1', '0.0.0.0']) expect(isLoopbackHost(host), host).toBe(false);
    expect(isAllowedEndpoint('https://example.com/t')).toBe(true);
    expect(isAllowedEndpoint('http://127.0.0.1:8080/t')).toBe(true);
    expect(isAllowedEndpoint('http://[::1]:8080/t')).toBe(true);
    expect(isAllowedEndpoint('http://example.com/t')).toBe(false);
    expect(isAllowedEndpoint('file:///etc/passwd')).toBe(false);
    expect(isAllowedEndpoint('not a url')).toBe(false);
  });
});
