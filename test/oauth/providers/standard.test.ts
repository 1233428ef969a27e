/**
 * The generic adapter (custom providers) against a real authorization server (oidc-provider via
 * test/helpers/authServer.ts): device approve/deny, PKCE paste, browser redirect, refresh rotation.
 * oauth4webapi validates everything here, id_token claims included.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { StartedFlow } from '../../../src/oauth/flowTypes.js';
import { providersFromConfig } from '../../../src/oauth/config.js';
import type { StandardAdapter } from '../../../src/oauth/providers/standardAdapter.js';
import { startAuthServer, type AuthServer } from '../../helpers/authServer.js';
import { never, testDeps } from '../flows/helpers.js';

let as: AuthServer;
let adapter: StandardAdapter;

beforeAll(async () => {
  as = await startAuthServer();
  const config = {
    providers: {
      idp: {
        clientId: as.clientId,
        issuer: as.issuer,
        scopes: as.scopes.split(' '),
        flows: ['device_code', 'pkce_redirect', 'browser_redirect'],
        endpoints: as.endpoints,
        redirectUri: 'https://auth.invalid/oauth/code',
        callback: { port: 0, path: '/callback' },
      },
    },
  };
  adapter = providersFromConfig(config, 'config.json').find((a) => a.name === 'idp')!;
});
afterAll(() => as?.close());

async function pollUntilDone(flow: StartedFlow, deps: ReturnType<typeof testDeps>) {
  for (let i = 0; i < 10; i++) {
    deps.clock.advance(flow.pollIntervalMs());
    const result = await flow.poll!(never);
    if (result.status === 'complete') return result.token;
  }
  throw new Error('login did not complete');
}

describe('standard adapter against oidc-provider', () => {
  it('device code: approve → token with a refresh token; then refresh rotates it', async () => {
    const deps = testDeps();
    const flow = await adapter.start('device_code', deps);
    expect(flow.publicData.verification_uri).toBe(as.endpoints.verification);
    deps.clock.advance(flow.pollIntervalMs());
    expect(await flow.poll!(never)).toMatchObject({ status: 'pending' });
    await as.approveDevice(flow.publicData.user_code!);
    const token = await pollUntilDone(flow, deps);
    expect(token).toMatchObject({ token_type: 'Bearer', access_token: expect.any(String), refresh_token: expect.any(String) });
    expect(as.issued.accessTokens).toContain(token.access_token);
    expect(token.expiry).toBe(Math.floor(deps.clock.t / 1000) + 3600);

    const refreshed = await adapter.refresh(token, deps);
    expect(refreshed.access_token).not.toBe(token.access_token);
    expect(refreshed.refresh_token).toBeTruthy();
    expect(refreshed.refresh_token).not.toBe(token.refresh_token);
    await expect(adapter.refresh(token, deps)).rejects.toMatchObject({ oauthError: 'invalid_grant' });
  });

  it('device code: deny → ACCESS_DENIED', async () => {
    const deps = testDeps();
    const flow = await adapter.start('device_code', deps);
    await as.denyDevice(flow.publicData.user_code!);
    deps.clock.advance(flow.pollIntervalMs());
    await expect(flow.poll!(never)).rejects.toMatchObject({ code: 'ACCESS_DENIED' });
  });

  it('PKCE paste: authorize in the browser, paste the redirect URL (iss checked), get tokens', async () => {
    const flow = await adapter.start('pkce_redirect', testDeps());
    const redirect = await as.authorize(flow.publicData.auth_url!);
    expect(redirect.searchParams.get('iss')).toBe(as.issuer);
    const token = await flow.exchange!(redirect.href, never);
    expect(token).toMatchObject({ token_type: 'Bearer', refresh_token: expect.any(String), id_token: expect.any(String) });
  });

  it('PKCE paste: a bare code works too; a code from another login fails', async () => {
    const a = await adapter.start('pkce_redirect', testDeps());
    const b = await adapter.start('pkce_redirect', testDeps());
    const codeA = (await as.authorize(a.publicData.auth_url!)).searchParams.get('code')!;
    await expect(b.exchange!(codeA, never)).rejects.toMatchObject({ code: 'EXCHANGE_FAILED', message: 'Token exchange failed: token endpoint answered invalid_grant' });
    const c = await adapter.start('pkce_redirect', testDeps());
    const codeC = (await as.authorize(c.publicData.auth_url!)).searchParams.get('code')!;
    await expect(c.exchange!(codeC, never)).resolves.toMatchObject({ refresh_token: expect.any(String) });
  });

  it('browser redirect: the server redirects to the loopback callback; poll completes', async () => {
    const flow = await adapter.start('browser_redirect', testDeps());
    const page = await as.authorizeAndFollow(flow.publicData.auth_url!);
    expect(page.status).toBe(200);
    expect(await flow.poll!(never)).toMatchObject({ status: 'complete', token: { refresh_token: expect.any(String) } });
  });

  it('browser redirect: a denied consent is ACCESS_DENIED', async () => {
    const flow = await adapter.start('browser_redirect', testDeps());
    await as.authorizeAndFollow(flow.publicData.auth_url!, { deny: true });
    await expect(flow.poll!(never)).rejects.toMatchObject({ code: 'ACCESS_DENIED' });
  });
});
