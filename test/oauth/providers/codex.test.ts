/**
 * Codex preset against a local server speaking OpenAI's wire format: the browser redirect (port
 * overridden to ephemeral; 1455 may be busy) and the device-auth fallback (usercode, 403/404 pending,
 * server-generated verifier, form exchange with the deviceauth redirect URI). account_id from id_token.
 */
import { afterEach, describe, expect, it } from 'vitest';
import type { StartedFlow } from '../../../src/oauth/flowTypes.js';
import { mergeToken, sanitizeToken } from '../../../src/oauth/token.js';
import { loadProviderRegistry, presetRegistry } from '../../../src/oauth/config.js';
import { browserGet, fakeJwt, never, probePort, s256, startFakeServer, testDeps, type FakeServer, type Reply } from '../flows/helpers.js';
import { configured } from './presetHelpers.js';

let server: FakeServer | undefined;
let flow: StartedFlow | undefined;
afterEach(async () => {
  await flow?.cancel();
  await server?.close();
  server = flow = undefined;
});

const CLIENT_ID = 'app_EMoamEEZ73f0CkXaXp7hrann';
const ID_TOKEN = fakeJwt({ iss: 'https://auth.openai.com', aud: CLIENT_ID, 'https://api.openai.com/auth': { chatgpt_account_id: 'acct-42' } });

function tokenReply(body: Record<string, unknown>, expected: { redirectUri: string; verifier: (v: string) => boolean }): Reply {
  const ok = body.grant_type === 'authorization_code' && body.code === 'oai-code' && body.client_id === CLIENT_ID &&
    body.redirect_uri === expected.redirectUri && expected.verifier(String(body.code_verifier));
  if (!ok) return { status: 400, body: { error: 'invalid_grant' } };
  return { body: { access_token: 'oat', refresh_token: 'ort', id_token: ID_TOKEN, token_type: 'Bearer', expires_in: 864000 } };
}

describe('codex preset', () => {
  it('uses the fixed loopback port 1455 and /auth/callback by default, browser first, device fallback', () => {
    const codex = loadProviderRegistry({ configPath: '/nonexistent/config.json' }).get('codex')!;
    expect(codex.flows).toEqual(['browser_redirect', 'device_code']);
    expect((codex as unknown as { definition: { callback: unknown } }).definition.callback).toEqual({ host: 'localhost', port: 1455, path: '/auth/callback' });
  });

  it('browser redirect: extra authorize params, loopback callback, form exchange, account_id from the id_token', async () => {
    let challenge = '';
    let redirectUri = '';
    server = await startFakeServer((req) => tokenReply(req.body, { redirectUri, verifier: (v) => s256(v) === challenge }));
    const adapter = configured('codex', { endpoints: { token: `${server.url}/oauth/token` }, callback: { port: 0 } });
    const deps = testDeps();
    flow = await adapter.start('browser_redirect', deps);
    const authUrl = new URL(flow.publicData.auth_url!);
    challenge = authUrl.searchParams.get('code_challenge')!;
    redirectUri = authUrl.searchParams.get('redirect_uri')!;
    expect(authUrl.origin + authUrl.pathname).toBe('https://auth.openai.com/oauth/authorize');
    expect(Object.fromEntries(authUrl.searchParams)).toMatchObject({
      client_id: CLIENT_ID,
      scope: 'openid profile email offline_access',
      id_token_add_organizations: 'true',
      codex_cli_simplified_flow: 'true',
      originator: 'codex_cli_rs',
      code_challenge_method: 'S256',
    });
    expect(redirectUri).toMatch(/^http:\/\/localhost:\d+\/auth\/callback$/);
    const port = Number(new URL(redirectUri).port);
    expect(await flow.poll!(never)).toMatchObject({ status: 'pending' });
    const page = await browserGet(`http://127.0.0.1:${port}/auth/callback?code=oai-code&state=${authUrl.searchParams.get('state')}`);
    expect(page.status).toBe(200);
    const done = await flow.poll!(never);
    if (done.status !== 'complete') throw new Error('not complete');
    expect(done.token).toMatchObject({ access_token: 'oat', refresh_token: 'ort', id_token: ID_TOKEN, account_id: 'acct-42' });
    expect(sanitizeToken(done.token, presetRegistry().get('codex')!.publicFields)).toEqual({ access_token: 'oat', expiry: Math.floor(deps.clock.t / 1000) + 864000, token_type: 'Bearer', account_id: 'acct-42' });
    expect(server.requests[0]!.json).toBe(false);
    expect(await probePort(port)).toBe('ECONNREFUSED');
  });

  it('device auth: usercode, 403/404 while pending, then the server-issued code and verifier are exchanged', async () => {
    server = await startFakeServer((req): Reply => {
      if (req.path === '/api/accounts/deviceauth/usercode') {
        return req.json && req.body.client_id === CLIENT_ID ? { body: { device_auth_id: 'dai-SECRET', user_code: 'CODX-1234', interval: '7' } } : { status: 400, body: {} };
      }
      if (req.path === '/api/accounts/deviceauth/token') {
        const n = server!.to(req.path).length;
        if (!req.json || req.body.device_auth_id !== 'dai-SECRET' || req.body.user_code !== 'CODX-1234') return { status: 400, body: {} };
        if (n === 1) return { status: 403, body: { error: { message: 'pending' } } };
        if (n === 2) return { status: 404, body: 'not yet' };
        return { body: { authorization_code: 'oai-code', code_verifier: 'server-verifier-SECRET', code_challenge: s256('server-verifier-SECRET') } };
      }
      return tokenReply(req.body, { redirectUri: 'https://auth.openai.com/deviceauth/callback', verifier: (v) => v === 'server-verifier-SECRET' });
    });
    const adapter = configured('codex', {
      endpoints: {
        token: `${server.url}/oauth/token`,
        deviceAuthUserCode: `${server.url}/api/accounts/deviceauth/usercode`,
        deviceAuthToken: `${server.url}/api/accounts/deviceauth/token`,
      },
    });
    const deps = testDeps();
    flow = await adapter.start('device_code', deps);
    expect(flow.publicData).toEqual({ verification_url: 'https://auth.openai.com/codex/device', verification_uri: 'https://auth.openai.com/codex/device', user_code: 'CODX-1234' });
    expect(flow.pollIntervalMs()).toBe(7_000); // numeric string interval
    const poll = async () => {
      deps.clock.advance(7_000);
      return flow!.poll!(never);
    };
    expect(await poll()).toMatchObject({ status: 'pending' }); // 403
    expect(await poll()).toMatchObject({ status: 'pending' }); // 404
    expect(await poll()).toMatchObject({ status: 'pending' }); // code arrives; exchanged on the next poll
    expect(server.to('/oauth/token')).toHaveLength(0);
    deps.clock.advance(1_000);
    expect(await flow.poll!(never)).toMatchObject({ status: 'pending' }); // interval still applies
    const done = await poll();
    expect(done).toMatchObject({ status: 'complete', token: { access_token: 'oat', account_id: 'acct-42' } });
    expect(server.to('/api/accounts/deviceauth/token')).toHaveLength(3);
    expect(server.to('/oauth/token')[0]!.body).toMatchObject({ redirect_uri: 'https://auth.openai.com/deviceauth/callback', code_verifier: 'server-verifier-SECRET' });
    expect(JSON.stringify(flow.publicData)).not.toContain('SECRET');
  });

  it('device auth expires locally after 15 minutes when the endpoint names no lifetime', async () => {
    server = await startFakeServer((req): Reply =>
      req.path.endsWith('/usercode') ? { body: { device_auth_id: 'd', user_code: 'u' } } : { status: 403, body: {} },
    );
    const adapter = configured('codex', { endpoints: { deviceAuthUserCode: `${server.url}/usercode`, deviceAuthToken: `${server.url}/token` } });
    const deps = testDeps();
    flow = await adapter.start('device_code', deps);
    expect(flow.pollIntervalMs()).toBe(5_000);
    deps.clock.advance(15 * 60_000);
    await expect(flow.poll!(never)).rejects.toMatchObject({ code: 'SESSION_EXPIRED' });
  });

  it('a refresh without id_token keeps the stored account_id', async () => {
    server = await startFakeServer((req) =>
      req.body.grant_type === 'refresh_token' && req.body.refresh_token === 'ort' && req.body.client_id === CLIENT_ID
        ? { body: { access_token: 'oat-2', token_type: 'Bearer', expires_in: 100 } }
        : { status: 400, body: { error: 'invalid_grant' } },
    );
    const adapter = configured('codex', { endpoints: { token: `${server.url}/oauth/token` } });
    const stored = { access_token: 'oat', expiry: 1, token_type: 'Bearer', refresh_token: 'ort', id_token: ID_TOKEN, account_id: 'acct-42' };
    const refreshed = await adapter.refresh(stored, testDeps());
    expect(refreshed.account_id).toBeUndefined();
    expect(mergeToken(stored, refreshed)).toMatchObject({ access_token: 'oat-2', refresh_token: 'ort', account_id: 'acct-42' });
  });
});
