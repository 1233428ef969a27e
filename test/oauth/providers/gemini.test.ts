/** Gemini preset against a local server speaking Google's wire format: offline access, client secret. */
import { inspect } from 'node:util';
import { afterEach, describe, expect, it } from 'vitest';
import type { FlowError, StartedFlow } from '../../../src/oauth/flowTypes.js';
import { never, s256, startFakeServer, testDeps, type FakeServer } from '../flows/helpers.js';
import { configured } from './presetHelpers.js';

let server: FakeServer | undefined;
let flow: StartedFlow | undefined;
afterEach(async () => {
  await flow?.cancel();
  await server?.close();
  server = flow = undefined;
});

const CLIENT_ID = '681255809395-oo8ft2oprdrnp9e3aqf6av3hmdib135j.apps.googleusercontent.com';
const SECRET = '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';

async function start(flowType: 'pkce_redirect' | 'browser_redirect' = 'pkce_redirect') {
  let challenge = '';
  server = await startFakeServer((req) => {
    const b = req.body;
    const ok = b.grant_type === 'authorization_code' && b.code === '4/g-code' && b.client_id === CLIENT_ID && b.client_secret === SECRET &&
      s256(String(b.code_verifier)) === challenge;
    // Google may omit token_type; an error body that echoes the secret must not leak into messages.
    return ok
      ? { body: { access_token: 'ya29.x', refresh_token: '1//r', expires_in: 3599, scope: 'https://www.googleapis.com/auth/cloud-platform' } }
      : { status: 400, body: { error: 'invalid_grant', error_description: `client_secret=${SECRET}` } };
  });
  const adapter = configured('gemini', { endpoints: { token: `${server.url}/token` } });
  const deps = testDeps();
  flow = await adapter.start(flowType, deps);
  const authUrl = new URL(flow.publicData.auth_url!);
  challenge = authUrl.searchParams.get('code_challenge')!;
  return { adapter, flow, authUrl, deps, server };
}

describe('gemini preset', () => {
  it('asks for offline access with consent, S256 and state; the secret is not in the URL', async () => {
    const { authUrl, adapter } = await start();
    expect(adapter.flows).toEqual(['pkce_redirect', 'browser_redirect']);
    expect(authUrl.origin + authUrl.pathname).toBe('https://accounts.google.com/o/oauth2/v2/auth');
    expect(Object.fromEntries(authUrl.searchParams)).toMatchObject({
      access_type: 'offline',
      prompt: 'consent',
      client_id: CLIENT_ID,
      redirect_uri: 'https://codeassist.google.com/authcode',
      code_challenge_method: 'S256',
      scope: 'https://www.googleapis.com/auth/cloud-platform https://www.googleapis.com/auth/userinfo.email https://www.googleapis.com/auth/userinfo.profile',
    });
    expect(authUrl.searchParams.get('state')).toBeTruthy();
    expect(authUrl.href).not.toContain(SECRET);
  });

  it('exchanges with the client secret and stores Bearer when Google omits token_type', async () => {
    const { flow, deps, server } = await start();
    const token = await flow.exchange!('4/g-code', never);
    expect(token).toEqual({
      access_token: 'ya29.x',
      refresh_token: '1//r',
      token_type: 'Bearer',
      scope: 'https://www.googleapis.com/auth/cloud-platform',
      expiry: Math.floor(deps.clock.t / 1000) + 3599,
    });
    expect(server.requests[0]!.body).toMatchObject({ redirect_uri: 'https://codeassist.google.com/authcode', client_secret: SECRET });
  });

  it('never shows the client secret in errors, public data or an inspected adapter', async () => {
    const { flow, adapter } = await start();
    const err = (await flow.exchange!('bad', never).catch((e: unknown) => e)) as FlowError;
    expect(err.code).toBe('EXCHANGE_FAILED');
    expect(err.message).not.toContain(SECRET);
    expect(JSON.stringify(flow.publicData)).not.toContain(SECRET);
    expect(inspect(adapter, { depth: 5, showHidden: true })).not.toContain(SECRET);
    expect(JSON.stringify(adapter)).not.toContain(SECRET);
  });

  it('also offers a loopback browser redirect on an ephemeral port', async () => {
    const { authUrl } = await start('browser_redirect');
    expect(authUrl.searchParams.get('redirect_uri')).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/oauth2callback$/);
  });
});
