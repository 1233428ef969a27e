/**
 * Proves the authorization server harness (test/helpers/authServer.ts) against plain fetch and
 * oauth4webapi only, so that project tests can rely on it: device flow (approve, deny, expiry,
 * slow_down), PKCE code flow (paste page and loopback callback), refresh with and without rotation.
 *
 * Findings about oidc-provider 9.13 that shape the harness (read from its source, confirmed below):
 * - slow_down: the provider defines a SlowDown error class but never throws it; the device_code grant
 *   answers authorization_pending however fast it is polled ('oidc-provider never answers slow_down').
 *   The harness therefore offers RFC 8628 §3.5 as an opt-in (enforcePollInterval), implemented in its
 *   own middleware: a pending poll that comes sooner than the interval after the previous poll of the
 *   same device code becomes slow_down, and the interval enforced for that code grows by
 *   slowDownIncrementSeconds (RFC: 5). Answers carrying tokens are never rewritten.
 * - interval: the provider's device authorization response has no `interval` field at all (clients
 *   must then use RFC 8628's default of 5 s) and no setting for one; the harness adds it (default 1,
 *   null leaves it out).
 * - expiry: an expired device code answers expired_token only while the store still holds it; the
 *   bundled memory adapter drops entries clockTolerance (15 s) after expiry, so the harness brings its
 *   own adapter that never evicts.
 * - offline_access is dropped at the authorization endpoint unless prompt=consent; the harness's
 *   issueRefreshToken issues refresh tokens regardless, like most real providers.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import * as oauth from 'oauth4webapi';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { startAuthServer, type AuthServer } from '../helpers/authServer.js';

const DEVICE_GRANT = 'urn:ietf:params:oauth:grant-type:device_code';
const insecure = { [oauth.allowInsecureRequests]: true } as const;

/**
 * Holds Date still for the in-process server and the test alike (timers stay real), so expiry and
 * poll spacing are decided by advance() and not by how busy the machine is.
 */
function holdDate(): { advance(ms: number): void; release(): void } {
  vi.useFakeTimers({ toFake: ['Date'], now: Date.now() });
  return {
    advance: (ms) => vi.setSystemTime(Date.now() + ms),
    release: () => vi.useRealTimers(),
  };
}

type Json = Record<string, unknown>;

/** A form POST with plain fetch, answering status and parsed JSON. */
async function post(url: string, params: Record<string, string>): Promise<{ status: number; body: Json }> {
  const res = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' },
    body: new URLSearchParams(params),
  });
  return { status: res.status, body: (await res.json()) as Json };
}

async function startDevice(server: AuthServer): Promise<{ device_code: string; user_code: string; interval?: number; expires_in: number }> {
  const res = await post(server.endpoints.deviceAuthorization, { client_id: server.clientId, scope: server.scopes });
  expect(res.status).toBe(200);
  return res.body as { device_code: string; user_code: string; interval?: number; expires_in: number };
}

function pollDevice(server: AuthServer, deviceCode: string) {
  return post(server.endpoints.token, { client_id: server.clientId, grant_type: DEVICE_GRANT, device_code: deviceCode });
}

function refresh(server: AuthServer, refreshToken: string) {
  return post(server.endpoints.token, { client_id: server.clientId, grant_type: 'refresh_token', refresh_token: refreshToken });
}

async function discover(server: AuthServer): Promise<oauth.AuthorizationServer> {
  const issuer = new URL(server.issuer);
  return oauth.processDiscoveryResponse(issuer, await oauth.discoveryRequest(issuer, { algorithm: 'oidc', ...insecure }));
}

/** An authorization URL with S256 PKCE and a state, as the product builds it. */
async function pkceAuthUrl(server: AuthServer, redirectUri: string) {
  const verifier = oauth.generateRandomCodeVerifier();
  const state = oauth.generateRandomState();
  const url = new URL(server.endpoints.authorization);
  url.search = new URLSearchParams({
    client_id: server.clientId,
    response_type: 'code',
    redirect_uri: redirectUri,
    scope: server.scopes,
    state,
    code_challenge: await oauth.calculatePKCECodeChallenge(verifier),
    code_challenge_method: 'S256',
  }).toString();
  return { url: url.href, verifier, state };
}

describe('authorization server harness (default options)', () => {
  let server: AuthServer;
  let as: oauth.AuthorizationServer;
  let client: oauth.Client;

  beforeAll(async () => {
    server = await startAuthServer();
    as = await discover(server);
    client = { client_id: server.clientId };
  });
  afterAll(async () => {
    await server.close();
  });

  it('publishes its endpoints in discovery metadata', () => {
    expect(server.issuer).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    expect(as.issuer).toBe(server.issuer);
    expect(as.authorization_endpoint).toBe(server.endpoints.authorization);
    expect(as.token_endpoint).toBe(server.endpoints.token);
    expect(as.device_authorization_endpoint).toBe(server.endpoints.deviceAuthorization);
    expect(as.code_challenge_methods_supported).toEqual(['S256']);
  });

  it('device flow: pending until approved, then tokens with a refresh token (oauth4webapi)', async () => {
    const started = await oauth.processDeviceAuthorizationResponse(
      as,
      client,
      await oauth.deviceAuthorizationRequest(as, client, oauth.None(), { scope: server.scopes }, insecure),
    );
    expect(started.verification_uri).toBe(server.endpoints.verification);
    expect(new URL(started.verification_uri_complete!).searchParams.get('user_code')).toBe(started.user_code);
    expect(started.interval).toBe(1);
    expect(started.expires_in).toBe(600);

    const poll = async () =>
      oauth.processDeviceCodeResponse(as, client, await oauth.deviceCodeGrantRequest(as, client, oauth.None(), started.device_code, insecure));
    await expect(poll()).rejects.toMatchObject({ error: 'authorization_pending', status: 400 });

    await server.approveDevice(started.user_code);
    const tokens = await poll();
    expect(tokens.token_type).toBe('bearer');
    expect(tokens.access_token).toEqual(expect.any(String));
    expect(tokens.refresh_token).toEqual(expect.any(String));
    expect(tokens.expires_in).toBe(3600);
    expect(server.issued.deviceCodes).toContain(started.device_code);
    expect(server.issued.accessTokens).toContain(tokens.access_token);
    expect(server.issued.refreshTokens).toContain(tokens.refresh_token);

    // A device code is single-use.
    expect((await pollDevice(server, started.device_code)).body.error).toBe('invalid_grant');
  });

  it('device flow: Abort on the confirm page makes the poll answer access_denied', async () => {
    const started = await startDevice(server);
    expect((await pollDevice(server, started.device_code)).body.error).toBe('authorization_pending');
    await server.denyDevice(started.user_code);
    const res = await pollDevice(server, started.device_code);
    expect(res.status).toBe(400);
    expect(res.body.error).toBe('access_denied');
    // The user code is spent: neither decision can be taken again.
    await expect(server.approveDevice(started.user_code)).rejects.toThrow(/not accepted/);
  });

  it('device flow: an unknown user code is rejected by the verification page', async () => {
    await expect(server.approveDevice('BCDF-GHJK')).rejects.toThrow(/NotFoundError/);
  });

  it('oidc-provider never answers slow_down by itself, however fast it is polled', async () => {
    const started = await startDevice(server);
    const answers = await Promise.all([0, 1, 2, 3, 4].map(() => pollDevice(server, started.device_code)));
    expect(answers.map((a) => a.body.error)).toEqual(Array(5).fill('authorization_pending'));
  });

  it('PKCE code-paste flow: redirect carries code and state; exchange with the verifier yields tokens', async () => {
    const pasteUri = 'https://auth.invalid/oauth/code';
    const { url, verifier, state } = await pkceAuthUrl(server, pasteUri);
    const redirect = await server.authorize(url);
    expect(redirect.origin + redirect.pathname).toBe(pasteUri);
    expect(redirect.searchParams.get('state')).toBe(state);
    expect(redirect.searchParams.get('iss')).toBe(server.issuer);
    const code = redirect.searchParams.get('code');
    expect(code).toEqual(expect.any(String));
    expect(server.issued.authorizationCodes).toContain(code);

    const params = oauth.validateAuthResponse(as, client, redirect, state);
    const tokens = await oauth.processAuthorizationCodeResponse(
      as,
      client,
      await oauth.authorizationCodeGrantRequest(as, client, oauth.None(), params, pasteUri, verifier, insecure),
    );
    expect(tokens.access_token).toEqual(expect.any(String));
    expect(tokens.refresh_token).toEqual(expect.any(String));
    expect(server.issued.refreshTokens).toContain(tokens.refresh_token);

    // Codes are single-use.
    const again = await post(server.endpoints.token, {
      client_id: server.clientId, grant_type: 'authorization_code', code: code!, redirect_uri: pasteUri, code_verifier: verifier,
    });
    expect(again.body.error).toBe('invalid_grant');
  });

  it('PKCE: a wrong verifier is invalid_grant, and an authorization request without a challenge is refused', async () => {
    const { url, state } = await pkceAuthUrl(server, 'https://auth.invalid/oauth/code');
    const redirect = await server.authorize(url);
    expect(redirect.searchParams.get('state')).toBe(state);
    const res = await post(server.endpoints.token, {
      client_id: server.clientId,
      grant_type: 'authorization_code',
      code: redirect.searchParams.get('code')!,
      redirect_uri: 'https://auth.invalid/oauth/code',
      code_verifier: oauth.generateRandomCodeVerifier(),
    });
    expect(res.status).toBe(400);
    expect(res.body.error).toBe('invalid_grant');

    const noPkce = new URL(url);
    noPkce.searchParams.delete('code_challenge');
    noPkce.searchParams.delete('code_challenge_method');
    const refused = await server.authorize(noPkce.href);
    expect(refused.searchParams.get('error')).toBe('invalid_request');
    expect(refused.searchParams.get('code')).toBeNull();
  });

  it('authorize({deny: true}) refuses consent: the redirect carries access_denied and the state', async () => {
    const { url, state } = await pkceAuthUrl(server, 'https://auth.invalid/oauth/code');
    const redirect = await server.authorize(url, { deny: true });
    expect(redirect.searchParams.get('error')).toBe('access_denied');
    expect(redirect.searchParams.get('state')).toBe(state);
    expect(redirect.searchParams.get('code')).toBeNull();
  });

  it('authorizeAndFollow delivers the redirect to a loopback callback server on any port (native client)', async () => {
    const received: URL[] = [];
    const callback: Server = createServer((req, res) => {
      received.push(new URL(req.url ?? '/', 'http://127.0.0.1'));
      res.writeHead(200, { 'content-type': 'text/plain' }).end('login complete');
    });
    await new Promise<void>((resolve) => callback.listen(0, '127.0.0.1', resolve));
    try {
      const redirectUri = `http://127.0.0.1:${(callback.address() as AddressInfo).port}/callback`;
      const { url, verifier, state } = await pkceAuthUrl(server, redirectUri);
      const result = await server.authorizeAndFollow(url);
      expect(result).toEqual({ status: 200, body: 'login complete' });
      expect(received).toHaveLength(1);
      const params = oauth.validateAuthResponse(as, client, received[0]!.searchParams, state);
      const tokens = await oauth.processAuthorizationCodeResponse(
        as,
        client,
        await oauth.authorizationCodeGrantRequest(as, client, oauth.None(), params, redirectUri, verifier, insecure),
      );
      expect(tokens.refresh_token).toEqual(expect.any(String));
    } finally {
      await new Promise<void>((resolve) => callback.close(() => resolve()));
    }
  });

  it('refresh with rotation (default): a new refresh token each time; reusing an old one revokes the grant', async () => {
    const started = await startDevice(server);
    await server.approveDevice(started.user_code);
    const first = (await pollDevice(server, started.device_code)).body;
    const rt0 = first.refresh_token as string;

    const r1 = await oauth.processRefreshTokenResponse(as, client, await oauth.refreshTokenGrantRequest(as, client, oauth.None(), rt0, insecure));
    expect(r1.access_token).not.toBe(first.access_token);
    expect(r1.refresh_token).toEqual(expect.any(String));
    expect(r1.refresh_token).not.toBe(rt0);
    expect(server.issued.refreshTokens).toContain(r1.refresh_token);

    expect((await refresh(server, rt0)).body.error).toBe('invalid_grant'); // reuse detected
    expect((await refresh(server, r1.refresh_token!)).body.error).toBe('invalid_grant'); // whole grant revoked
  });

  it('revokeRefreshToken makes the next refresh invalid_grant', async () => {
    const started = await startDevice(server);
    await server.approveDevice(started.user_code);
    const rt = (await pollDevice(server, started.device_code)).body.refresh_token as string;
    expect(await server.revokeRefreshToken(rt)).toBe(true);
    expect(await server.revokeRefreshToken(rt)).toBe(false);
    const res = await refresh(server, rt);
    expect(res.status).toBe(400);
    expect(res.body.error).toBe('invalid_grant');
  });

  it('failNextTokenRequests answers the next token requests with an error, then the provider answers again', async () => {
    const started = await startDevice(server);
    server.failNextTokenRequests(2, 503);
    const first = await pollDevice(server, started.device_code);
    const second = await pollDevice(server, started.device_code);
    expect([first.status, second.status]).toEqual([503, 503]);
    expect(first.body.error).toBe('temporarily_unavailable');
    expect((await pollDevice(server, started.device_code)).body.error).toBe('authorization_pending');
  });
});

describe('authorization server harness (options)', () => {
  it('counts requests per endpoint and logs each token request', async () => {
    const server = await startAuthServer();
    try {
      const before = Date.now();
      const started = await startDevice(server);
      await pollDevice(server, started.device_code);
      await pollDevice(server, started.device_code);
      await server.approveDevice(started.user_code);
      const tokens = (await pollDevice(server, started.device_code)).body;
      await refresh(server, tokens.refresh_token as string);
      await server.authorize((await pkceAuthUrl(server, 'https://auth.invalid/oauth/code')).url);

      expect(server.stats.deviceAuthorizationRequests).toBe(1);
      expect(server.stats.tokenRequests).toBe(4);
      expect(server.stats.authorizationRequests).toBe(1);
      expect(server.stats.tokenRequestTimes).toHaveLength(4);
      const times = server.stats.tokenRequestTimes;
      expect(times[0]).toBeGreaterThanOrEqual(before);
      expect([...times].sort((a, b) => a - b)).toEqual(times);
      expect(server.stats.tokenRequestLog.map((e) => [e.grantType, e.status, e.error])).toEqual([
        [DEVICE_GRANT, 400, 'authorization_pending'],
        [DEVICE_GRANT, 400, 'authorization_pending'],
        [DEVICE_GRANT, 200, undefined],
        ['refresh_token', 200, undefined],
      ]);
      expect(server.issued.accessTokens).toHaveLength(2);
      expect(server.issued.refreshTokens).toHaveLength(2);
      expect(server.issued.authorizationCodes).toHaveLength(1);
    } finally {
      await server.close();
    }
  });

  it('an expired device code answers expired_token and can no longer be approved; access token TTL is configurable', async () => {
    const server = await startAuthServer({ deviceCodeTtlSeconds: 60, accessTokenTtlSeconds: 42 });
    const date = holdDate();
    try {
      const expiring = await startDevice(server);
      expect(expiring.expires_in).toBe(60);
      const approved = await startDevice(server);
      await server.approveDevice(approved.user_code);
      const tokens = await pollDevice(server, approved.device_code);
      expect(tokens.body.expires_in).toBe(42);

      expect((await pollDevice(server, expiring.device_code)).body.error).toBe('authorization_pending');
      date.advance(61_000); // expiry has whole-second resolution
      const res = await pollDevice(server, expiring.device_code);
      expect(res.status).toBe(400);
      expect(res.body.error).toBe('expired_token');
      await expect(server.approveDevice(expiring.user_code)).rejects.toThrow(/ExpiredError/);
    } finally {
      date.release();
      await server.close();
    }
  });

  it('enforcePollInterval: a too-fast pending poll gets slow_down and the enforced interval grows; tokens are never withheld', async () => {
    const server = await startAuthServer({ enforcePollInterval: true, deviceInterval: 1, slowDownIncrementSeconds: 1 });
    const date = holdDate();
    try {
      const started = await startDevice(server);
      expect((await pollDevice(server, started.device_code)).body.error).toBe('authorization_pending');
      const tooFast = await pollDevice(server, started.device_code); // at the same instant
      expect(tooFast.status).toBe(400);
      expect(tooFast.body.error).toBe('slow_down');

      date.advance(1_200); // longer than the advertised 1 s but shorter than the raised 2 s
      expect((await pollDevice(server, started.device_code)).body.error).toBe('slow_down');
      date.advance(3_050); // the interval is now 3 s
      expect((await pollDevice(server, started.device_code)).body.error).toBe('authorization_pending');

      await server.approveDevice(started.user_code);
      const tokens = await pollDevice(server, started.device_code); // too fast, but the answer carries tokens
      expect(tokens.status).toBe(200);
      expect(tokens.body.refresh_token).toEqual(expect.any(String));
    } finally {
      date.release();
      await server.close();
    }
  });

  it('deviceInterval: null leaves interval out of the device authorization response (RFC 8628 default 5 s applies)', async () => {
    const server = await startAuthServer({ deviceInterval: null });
    try {
      const started = await startDevice(server);
      expect(started).not.toHaveProperty('interval');
    } finally {
      await server.close();
    }
  });

  it('rotateRefreshTokens: false keeps one refresh token usable for every refresh', async () => {
    const server = await startAuthServer({ rotateRefreshTokens: false });
    try {
      const started = await startDevice(server);
      await server.approveDevice(started.user_code);
      const rt = (await pollDevice(server, started.device_code)).body.refresh_token as string;
      const r1 = await refresh(server, rt);
      const r2 = await refresh(server, rt);
      expect([r1.status, r2.status]).toEqual([200, 200]);
      expect(r1.body.access_token).not.toBe(r2.body.access_token);
      expect(r1.body.refresh_token).toBe(rt);
    } finally {
      await server.close();
    }
  });

  it('a web client only accepts its registered redirect URIs exactly', async () => {
    const server = await startAuthServer({ applicationType: 'web', redirectUris: ['http://127.0.0.1:45123/callback'] });
    try {
      const ok = await server.authorize((await pkceAuthUrl(server, 'http://127.0.0.1:45123/callback')).url);
      expect(ok.searchParams.get('code')).toEqual(expect.any(String));
      await expect(server.authorize((await pkceAuthUrl(server, 'http://127.0.0.1:45124/callback')).url)).rejects.toThrow(/redirect_uri/);
    } finally {
      await server.close();
    }
  });
});
