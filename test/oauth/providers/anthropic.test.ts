/** Anthropic preset against a local server speaking its wire format: JSON token bodies, CODE#STATE. */
import { afterEach, describe, expect, it } from 'vitest';
import type { StartedFlow } from '../../../src/oauth/flowTypes.js';
import { sanitizeToken } from '../../../src/oauth/token.js';
import { presetRegistry } from '../../../src/oauth/config.js';
import { never, s256, startFakeServer, testDeps, type FakeServer } from '../flows/helpers.js';
import { configured } from './presetHelpers.js';

let server: FakeServer | undefined;
let flow: StartedFlow | undefined;
afterEach(async () => {
  await flow?.cancel();
  await server?.close();
  server = flow = undefined;
});

const CLIENT_ID = '9d1c250a-e61b-44d9-88ed-5944d1962f5e';
const REDIRECT = 'https://console.anthropic.com/oauth/code/callback';

async function start(override: Record<string, unknown> = {}) {
  let challenge = '';
  let state = '';
  server = await startFakeServer((req) => {
    if (!req.json) return { status: 415, body: { error: 'invalid_request' } };
    const b = req.body;
    if (b.grant_type === 'refresh_token') {
      return b.refresh_token === 'rt-1' && b.client_id === CLIENT_ID
        ? { body: { access_token: 'at-2', expires_in: 3600, token_type: 'Bearer' } }
        : { status: 400, body: { error: 'invalid_grant' } };
    }
    const ok = b.grant_type === 'authorization_code' && b.code === 'auth-code' && b.state === state && b.client_id === CLIENT_ID &&
      b.redirect_uri === REDIRECT && s256(String(b.code_verifier)) === challenge;
    return ok
      ? { body: { access_token: 'at-1', refresh_token: 'rt-1', expires_in: 28800, token_type: 'Bearer', scope: 'user:inference', account: { uuid: 'u' } } }
      : { status: 400, body: { error: 'invalid_grant' } };
  });
  const adapter = configured('anthropic', { endpoints: { token: `${server.url}/v1/oauth/token` }, ...override });
  const deps = testDeps();
  flow = await adapter.start('pkce_redirect', deps);
  const authUrl = new URL(flow.publicData.auth_url!);
  challenge = authUrl.searchParams.get('code_challenge')!;
  state = authUrl.searchParams.get('state')!;
  return { adapter, flow, authUrl, state, deps, server };
}

describe('anthropic preset', () => {
  it('offers PKCE code-paste with the published client and an authorize URL carrying code=true', async () => {
    const { adapter, authUrl } = await start();
    expect(adapter.flows).toEqual(['pkce_redirect']);
    expect(authUrl.origin + authUrl.pathname).toBe('https://claude.ai/oauth/authorize');
    expect([...authUrl.searchParams.keys()][0]).toBe('code');
    expect(Object.fromEntries(authUrl.searchParams)).toMatchObject({
      code: 'true',
      response_type: 'code',
      client_id: CLIENT_ID,
      redirect_uri: REDIRECT,
      scope: 'org:create_api_key user:profile user:inference',
      code_challenge_method: 'S256',
    });
  });

  it('exchanges the pasted CODE#STATE with a JSON body carrying state and verifier', async () => {
    const { flow, state, deps, server } = await start();
    const token = await flow.exchange!(`auth-code#${state}`, never);
    expect(token).toMatchObject({ access_token: 'at-1', refresh_token: 'rt-1', token_type: 'Bearer', expiry: Math.floor(deps.clock.t / 1000) + 28800 });
    const req = server.requests[0]!;
    expect(req.headers['content-type']).toContain('application/json');
    expect(Object.keys(req.body).sort()).toEqual(['client_id', 'code', 'code_verifier', 'grant_type', 'redirect_uri', 'state']);
    expect(sanitizeToken(token, presetRegistry().get('anthropic')!.publicFields)).toEqual({ access_token: 'at-1', expiry: token.expiry, token_type: 'Bearer', scope: 'user:inference' });
  });

  it('rejects a pasted state that is not this login’s, without calling the token endpoint', async () => {
    const { flow, server } = await start();
    await expect(flow.exchange!('auth-code#someone-elses-state', never)).rejects.toMatchObject({ code: 'EXCHANGE_FAILED', message: expect.stringContaining('State mismatch') });
    expect(server.requests).toHaveLength(0);
  });

  it('refreshes with a JSON body {grant_type, refresh_token, client_id}', async () => {
    const { adapter, server, deps } = await start();
    const token = await adapter.refresh({ refresh_token: 'rt-1' }, deps);
    expect(token).toMatchObject({ access_token: 'at-2', token_type: 'Bearer' });
    expect(server.requests[0]!.body).toEqual({ grant_type: 'refresh_token', refresh_token: 'rt-1', client_id: CLIENT_ID });
    await expect(adapter.refresh({ refresh_token: 'stale' }, deps)).rejects.toMatchObject({ name: 'UpstreamError', oauthError: 'invalid_grant' });
  });

  it('sends the configured User-Agent', async () => {
    const { flow, state, server } = await start({ userAgent: 'claude-cli/1.0.0 (external, cli)' });
    await flow.exchange!(`auth-code#${state}`, never);
    expect(server.requests[0]!.headers['user-agent']).toBe('claude-cli/1.0.0 (external, cli)');
  });
});
