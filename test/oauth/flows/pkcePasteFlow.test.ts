/**
 * PKCE code-paste against a local standard server: S256 challenge/verifier pairing checked by the
 * server, state checked on the host, all paste forms, secrets kept out of publicData and errors.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { FlowError, type StartedFlow } from '../../../src/oauth/flowTypes.js';
import { parsePastedCode } from '../../../src/oauth/flows/pkcePasteFlow.js';
import { providerDefinitionSchema } from '../../../src/oauth/providers/definition.js';
import { createAdapter } from '../../../src/oauth/providers/registry.js';
import { never, s256, startFakeServer, testDeps, type FakeServer, type Reply } from './helpers.js';

let server: FakeServer | undefined;
let flow: StartedFlow | undefined;
afterEach(async () => {
  await flow?.cancel();
  await server?.close();
  server = flow = undefined;
});

const REDIRECT = 'https://idp.test/oob';

/** A token endpoint that accepts only the verifier matching the challenge of the auth URL. */
async function start(extra: Record<string, unknown> = {}, reply?: (body: Record<string, unknown>) => Reply) {
  let challenge = '';
  server = await startFakeServer((req) => {
    if (reply) return reply(req.body);
    if (s256(String(req.body.code_verifier)) !== challenge || req.body.code !== 'the-code') {
      return { status: 400, body: { error: 'invalid_grant', error_description: `bad verifier ${String(req.body.code_verifier)}` } };
    }
    return { body: { access_token: 'at', token_type: 'Bearer', expires_in: 60, refresh_token: 'rt' } };
  });
  const adapter = createAdapter(
    providerDefinitionSchema.parse({
      name: 'idp',
      clientId: 'cli',
      scopes: ['profile'],
      flows: ['pkce_redirect'],
      endpoints: { authorization: 'https://idp.test/authorize', token: `${server.url}/token` },
      redirectUri: REDIRECT,
      ...extra,
    }),
  );
  const deps = testDeps();
  flow = await adapter.start('pkce_redirect', deps);
  const authUrl = new URL(flow.publicData.auth_url!);
  challenge = authUrl.searchParams.get('code_challenge')!;
  return { flow, authUrl, state: authUrl.searchParams.get('state')!, deps, server };
}

describe('parsePastedCode', () => {
  it('reads a bare code, CODE#STATE, a redirect URL (query or fragment), trimming quotes', () => {
    expect(parsePastedCode('  abc  ')).toEqual({ code: 'abc' });
    expect(parsePastedCode('abc#st')).toEqual({ code: 'abc', state: 'st' });
    expect(parsePastedCode('"abc#st"')).toEqual({ code: 'abc', state: 'st' });
    expect(parsePastedCode('https://x.test/cb?code=c1&state=s1&iss=https%3A%2F%2Fi')).toEqual({ code: 'c1', state: 's1', error: undefined, iss: 'https://i' });
    expect(parsePastedCode('http://localhost/cb#code=c2&state=s2')).toMatchObject({ code: 'c2', state: 's2' });
    expect(parsePastedCode('https://x.test/cb?error=access_denied&state=s')).toMatchObject({ error: 'access_denied', code: undefined });
    expect(parsePastedCode('')).toEqual({ code: undefined });
  });
});

describe('PKCE code-paste flow', () => {
  it('builds an S256 authorization URL with a host-side state', async () => {
    const { flow, authUrl, state } = await start();
    expect(flow.flowType).toBe('pkce_redirect');
    expect(Object.keys(flow.publicData)).toEqual(['auth_url']);
    expect(authUrl.origin + authUrl.pathname).toBe('https://idp.test/authorize');
    const q = Object.fromEntries(authUrl.searchParams);
    expect(q).toMatchObject({ response_type: 'code', client_id: 'cli', redirect_uri: REDIRECT, scope: 'profile', code_challenge_method: 'S256' });
    expect(q.code_challenge).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(state).toMatch(/^[A-Za-z0-9_-]{43}$/);
  });

  it('exchanges a bare code with the matching verifier (form body)', async () => {
    const { flow, server, deps } = await start();
    const token = await flow.exchange!('the-code', never);
    expect(token).toEqual({ access_token: 'at', token_type: 'Bearer', refresh_token: 'rt', expiry: Math.floor(deps.clock.t / 1000) + 60 });
    const req = server.to('/token')[0]!;
    expect(req.json).toBe(false);
    expect(req.body).toMatchObject({ grant_type: 'authorization_code', code: 'the-code', redirect_uri: REDIRECT, client_id: 'cli' });
    expect(JSON.stringify(flow.publicData)).not.toContain(String(req.body.code_verifier));
  });

  it('accepts CODE#STATE and the full redirect URL when the state matches', async () => {
    const a = await start();
    await expect(a.flow.exchange!(`the-code#${a.state}`, never)).resolves.toMatchObject({ access_token: 'at' });
    await a.flow.cancel();
    await a.server.close();
    const b = await start();
    await expect(b.flow.exchange!(`${REDIRECT}?code=the-code&state=${b.state}`, never)).resolves.toMatchObject({ access_token: 'at' });
  });

  it('a state mismatch is EXCHANGE_FAILED and never reaches the token endpoint', async () => {
    const { flow, server } = await start();
    await expect(flow.exchange!('the-code#not-the-state', never)).rejects.toEqual(
      new FlowError('EXCHANGE_FAILED', 'State mismatch: the pasted code does not belong to this login'),
    );
    await expect(flow.exchange!(`${REDIRECT}?code=the-code&state=other`, never)).rejects.toMatchObject({ code: 'EXCHANGE_FAILED' });
    expect(server.requests).toHaveLength(0);
  });

  it('checks iss in a pasted URL when the issuer is configured', async () => {
    const { flow, state, server } = await start({ issuer: 'https://idp.test' });
    await expect(flow.exchange!(`${REDIRECT}?code=the-code&state=${state}&iss=https%3A%2F%2Fevil.test`, never)).rejects.toMatchObject({ code: 'EXCHANGE_FAILED' });
    expect(server.requests).toHaveLength(0);
  });

  it('an error in the pasted URL: access_denied is ACCESS_DENIED', async () => {
    const { flow, state } = await start();
    await expect(flow.exchange!(`${REDIRECT}?error=access_denied&state=${state}`, never)).rejects.toMatchObject({ code: 'ACCESS_DENIED' });
  });

  it('a rejected exchange is EXCHANGE_FAILED without verifier, code or body in the message', async () => {
    const { flow, server } = await start();
    const err = (await flow.exchange!('wrong-code', never).catch((e: unknown) => e)) as FlowError;
    expect(err).toMatchObject({ code: 'EXCHANGE_FAILED', message: 'Token exchange failed: token endpoint answered invalid_grant' });
    const verifier = String(server.to('/token')[0]!.body.code_verifier);
    expect(verifier).toHaveLength(43);
    expect(err.message).not.toContain(verifier);
    expect(err.message).not.toContain('wrong-code');
    expect(err.message).not.toContain('bad verifier');
  });

  it('is single use: a second exchange does not call the provider', async () => {
    const { flow, server } = await start();
    await flow.exchange!('the-code', never);
    await expect(flow.exchange!('the-code', never)).rejects.toMatchObject({ code: 'EXCHANGE_FAILED' });
    expect(server.requests).toHaveLength(1);
  });

  it('fresh verifier and state for every login', async () => {
    const a = await start();
    const b = await start();
    expect(a.state).not.toBe(b.state);
    expect(a.authUrl.searchParams.get('code_challenge')).not.toBe(b.authUrl.searchParams.get('code_challenge'));
    await a.flow.cancel();
    await a.server.close();
  });
});
