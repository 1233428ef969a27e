/**
 * Host-side login through the daemon's socket (PROTOCOL.md §6.1–6.3) against a real authorization
 * server (oidc-provider in-process), configured as a custom provider.
 */
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadProviderRegistry } from '../../src/oauth/config.js';
import { startDaemon, type Daemon } from '../../src/server/daemon.js';
import { MemoryStore } from '../../src/store/memory.js';
import { startAuthServer, type AuthServer } from '../helpers/authServer.js';
import { allReceivedText, RawClient } from '../helpers/rawClient.js';
import { tempDir } from '../helpers/daemon.js';
import { canSwitchUid, mustSwitchUid, OTHER_UID, OtherUidArea } from '../helpers/otherUid.js';

let idp: AuthServer;
let daemon: Daemon;
let store: MemoryStore;
let auditFile: string;
/** Holds the daemon's socket, so that a client of another uid can reach it once exposed. */
let area: OtherUidArea;
/** The daemon's clock: real time plus a skew tests can advance. */
let skewMs = 0;
const clock = () => Date.now() + skewMs;

const SESSION_ID = /^[0-9a-f]{32}$/;

beforeAll(async () => {
  idp = await startAuthServer({ deviceInterval: 1 });
  const dir = tempDir();
  const configPath = path.join(dir, 'config.json');
  fs.writeFileSync(
    configPath,
    JSON.stringify({
      providers: {
        myidp: {
          clientId: idp.clientId,
          issuer: idp.issuer,
          scopes: idp.scopes.split(' '),
          flows: ['device_code', 'pkce_redirect', 'browser_redirect'],
          endpoints: idp.endpoints,
          redirectUri: 'https://auth.invalid/oauth/code',
          callback: { port: 0, path: '/callback' },
          authParams: { prompt: 'consent' },
        },
      },
    }),
  );
  store = new MemoryStore();
  auditFile = path.join(dir, 'audit.log');
  area = OtherUidArea.create();
  daemon = await startDaemon({ tokens: store, keys: store, socketPath: area.socketPath('l.sock'), audit: auditFile, providers: loadProviderRegistry({ configPath }), now: clock, allowUids: [OTHER_UID] });
});

afterAll(async () => {
  await daemon.stop();
  area?.remove();
  await idp.close();
  // No secret of any login crossed the socket or reached the audit log.
  const received = allReceivedText();
  const audit = fs.readFileSync(auditFile, 'utf8');
  const { refreshTokens, deviceCodes, authorizationCodes, codeVerifiers, states } = idp.issued;
  for (const list of [refreshTokens, deviceCodes, authorizationCodes, codeVerifiers, states]) expect(list.length).toBeGreaterThan(0);
  for (const secret of [...refreshTokens, ...deviceCodes, ...authorizationCodes, ...codeVerifiers]) {
    expect(received).not.toContain(secret);
    expect(audit).not.toContain(secret);
  }
  // A state travels only inside its own auth_url (the user must open it), never on its own.
  for (const state of states) {
    expect(received.split(state).length - 1).toBeLessThanOrEqual(1);
    expect(audit).not.toContain(state);
  }
  expect(audit).not.toMatch(/"session":"[0-9a-f]{9,}"/);
});

async function client(): Promise<RawClient> {
  return RawClient.ready(daemon.socketPath);
}

async function pollUntilDone(c: RawClient, sessionId: string, maxMs = 15_000): Promise<Record<string, unknown>> {
  const deadline = Date.now() + maxMs;
  for (;;) {
    const reply = await c.request('oauth_poll', { session_id: sessionId });
    const data = reply.data as Record<string, unknown> | undefined;
    if (!reply.ok || data?.status !== 'pending') return reply;
    if (Date.now() > deadline) throw new Error('login did not complete');
    await new Promise((r) => setTimeout(r, Number(data.pollIntervalMs)));
  }
}

describe('device code flow', () => {
  it('approved: the host stores the full token, the client gets the sanitized one, the session is gone', async () => {
    const c = await client();
    const init = await c.request('oauth_initiate', { provider: 'myidp', bucket: 'work', flow: 'device' });
    expect(init.ok).toBe(true);
    const data = init.data as Record<string, unknown>;
    expect(data.session_id).toMatch(SESSION_ID);
    expect(data.flow_type).toBe('device_code');
    expect(data.verification_url).toBe(data.verification_uri);
    expect(typeof data.user_code).toBe('string');
    expect(data.pollIntervalMs).toBe(1_000);
    expect(Object.keys(data).sort()).toEqual(
      ['flow_type', 'pollIntervalMs', 'session_id', 'user_code', 'verification_uri', 'verification_uri_complete', 'verification_url'].filter((k) => k in data),
    );

    expect(await c.request('oauth_poll', { session_id: data.session_id })).toMatchObject({ ok: true, data: { status: 'pending' } });
    await idp.approveDevice(String(data.user_code));
    const done = await pollUntilDone(c, String(data.session_id));
    expect(done).toMatchObject({ ok: true, data: { status: 'complete' } });
    const token = (done.data as { token: Record<string, unknown> }).token;
    expect(Object.keys(token).sort()).toEqual(['access_token', 'expiry', 'scope', 'token_type'].filter((k) => k in token));
    expect(token).not.toHaveProperty('refresh_token');

    const stored = await store.getToken('myidp', 'work');
    expect(stored?.access_token).toBe(token.access_token);
    expect(idp.issued.refreshTokens).toContain(stored?.refresh_token);
    expect(stored?.expiry).toBeGreaterThan(Math.floor(Date.now() / 1000));

    expect(await c.request('oauth_poll', { session_id: data.session_id })).toMatchObject({ ok: false, code: 'SESSION_NOT_FOUND' });
    c.close();
  });

  it('denied → ACCESS_DENIED and the session is deleted', async () => {
    const c = await client();
    const init = (await c.request('oauth_initiate', { provider: 'myidp', flow: 'device_code' })).data as Record<string, string>;
    await idp.denyDevice(init.user_code!);
    const reply = await pollUntilDone(c, init.session_id!);
    expect(reply).toMatchObject({ ok: false, code: 'ACCESS_DENIED', error: 'User denied authorization' });
    expect(await c.request('oauth_poll', { session_id: init.session_id })).toMatchObject({ code: 'SESSION_NOT_FOUND' });
    c.close();
  });

  it('never calls the token endpoint faster than the interval, however fast the client polls', async () => {
    const c = await client();
    const init = (await c.request('oauth_initiate', { provider: 'myidp', flow: 'device' })).data as Record<string, string>;
    const before = idp.stats.tokenRequests;
    const started = Date.now();
    while (Date.now() - started < 2_500) {
      expect(await c.request('oauth_poll', { session_id: init.session_id })).toMatchObject({ ok: true, data: { status: 'pending' } });
      await new Promise((r) => setTimeout(r, 40));
    }
    const elapsed = Date.now() - started;
    const calls = idp.stats.tokenRequests - before;
    expect(calls).toBeGreaterThanOrEqual(1);
    expect(calls).toBeLessThanOrEqual(Math.floor(elapsed / 1_000) + 1);
    const times = idp.stats.tokenRequestTimes.slice(-calls);
    for (let i = 1; i < times.length; i++) expect(times[i]! - times[i - 1]!).toBeGreaterThanOrEqual(950);
    await c.request('oauth_cancel', { session_id: init.session_id });
    c.close();
  });
});

describe('device code expiry', () => {
  it('an expired device code → SESSION_EXPIRED "Device code expired"', async () => {
    const shortIdp = await startAuthServer({ deviceInterval: 1, deviceCodeTtlSeconds: 1 });
    const dir = tempDir();
    const configPath = path.join(dir, 'config.json');
    fs.writeFileSync(configPath, JSON.stringify({ providers: { short: { clientId: shortIdp.clientId, issuer: shortIdp.issuer, scopes: ['openid', 'offline_access'], flows: ['device_code'], endpoints: shortIdp.endpoints } } }));
    const s = new MemoryStore();
    const d = await startDaemon({ tokens: s, keys: s, socketPath: path.join(dir, 'e.sock'), audit: 'off', providers: loadProviderRegistry({ configPath }) });
    const c = await RawClient.ready(d.socketPath);
    const init = (await c.request('oauth_initiate', { provider: 'short' })).data as Record<string, string>;
    await new Promise((r) => setTimeout(r, 2_200));
    expect(await pollUntilDone(c, init.session_id!)).toMatchObject({ ok: false, code: 'SESSION_EXPIRED', error: 'Device code expired' });
    expect(await c.request('oauth_poll', { session_id: init.session_id })).toMatchObject({ code: 'SESSION_NOT_FOUND' });
    c.close();
    await d.stop();
    await shortIdp.close();
  });
});

describe('PKCE code-paste flow', () => {
  async function startPaste(c: RawClient) {
    const init = (await c.request('oauth_initiate', { provider: 'myidp', flow: 'paste' })).data as Record<string, string>;
    expect(init.flow_type).toBe('pkce_redirect');
    expect(Object.keys(init).sort()).toEqual(['auth_url', 'flow_type', 'pollIntervalMs', 'session_id']);
    return init;
  }

  it('the right code is exchanged and stored; replay → SESSION_ALREADY_USED', async () => {
    const c = await client();
    const init = await startPaste(c);
    const redirect = await idp.authorize(init.auth_url!);
    const reply = await c.request('oauth_exchange', { session_id: init.session_id, code: redirect.href });
    expect(reply).toMatchObject({ ok: true, data: { token_type: 'Bearer' } });
    expect(reply.data).not.toHaveProperty('refresh_token');
    const stored = await store.getToken('myidp', 'default');
    expect(stored?.access_token).toBe((reply.data as Record<string, unknown>).access_token);
    expect(idp.issued.refreshTokens).toContain(stored?.refresh_token);
    expect(await c.request('oauth_exchange', { session_id: init.session_id, code: redirect.href })).toMatchObject({ code: 'SESSION_ALREADY_USED' });
    c.close();
  });

  it('a wrong code → EXCHANGE_FAILED and the session is consumed', async () => {
    const c = await client();
    const init = await startPaste(c);
    const redirect = await idp.authorize(init.auth_url!);
    expect(await c.request('oauth_exchange', { session_id: init.session_id, code: 'not-the-code' })).toMatchObject({ ok: false, code: 'EXCHANGE_FAILED' });
    expect(await c.request('oauth_exchange', { session_id: init.session_id, code: redirect.href })).toMatchObject({ code: 'SESSION_ALREADY_USED' });
    c.close();
  });

  it('a tampered state → EXCHANGE_FAILED', async () => {
    const c = await client();
    const init = await startPaste(c);
    const redirect = await idp.authorize(init.auth_url!);
    redirect.searchParams.set('state', 'tampered-state');
    expect(await c.request('oauth_exchange', { session_id: init.session_id, code: redirect.href })).toMatchObject({ ok: false, code: 'EXCHANGE_FAILED' });
    const code = new URL(redirect).searchParams.get('code');
    expect(await c.request('oauth_exchange', { session_id: init.session_id, code: `${code}#tampered` })).toMatchObject({ code: 'SESSION_ALREADY_USED' });
    c.close();
  });

  it('two concurrent exchanges of one session: exactly one succeeds', async () => {
    const c = await client();
    const init = await startPaste(c);
    const redirect = await idp.authorize(init.auth_url!);
    c.send({ v: 2, id: 'x1', op: 'oauth_exchange', payload: { session_id: init.session_id, code: redirect.href } });
    c.send({ v: 2, id: 'x2', op: 'oauth_exchange', payload: { session_id: init.session_id, code: redirect.href } });
    const replies = [await c.replyFor('x1'), await c.replyFor('x2')];
    expect(replies.filter((r) => r.ok === true)).toHaveLength(1);
    expect(replies.filter((r) => r.code === 'SESSION_ALREADY_USED')).toHaveLength(1);
    c.close();
  });
});

function callbackPort(authUrl: string): number {
  return Number(new URL(new URL(authUrl).searchParams.get('redirect_uri')!).port);
}

function portOpen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1');
    s.once('connect', () => (s.destroy(), resolve(true)));
    s.once('error', () => resolve(false));
  });
}

describe('browser redirect flow', () => {
  it('a scripted user agent completing the auth URL → stored; the callback port closes', async () => {
    const c = await client();
    const init = (await c.request('oauth_initiate', { provider: 'myidp', bucket: 'browser', flow: 'browser' })).data as Record<string, string>;
    expect(init.flow_type).toBe('browser_redirect');
    const port = callbackPort(init.auth_url!);
    expect(await portOpen(port)).toBe(true);
    const page = await idp.authorizeAndFollow(init.auth_url!);
    expect(page.status).toBe(200);
    const done = await pollUntilDone(c, init.session_id!);
    expect(done).toMatchObject({ ok: true, data: { status: 'complete' } });
    expect(idp.issued.refreshTokens).toContain((await store.getToken('myidp', 'browser'))?.refresh_token);
    expect(await portOpen(port)).toBe(false);
    c.close();
  });

  it('oauth_cancel closes the callback port', async () => {
    const c = await client();
    const init = (await c.request('oauth_initiate', { provider: 'myidp', flow: 'browser' })).data as Record<string, string>;
    const port = callbackPort(init.auth_url!);
    expect(await portOpen(port)).toBe(true);
    expect(await c.request('oauth_cancel', { session_id: init.session_id })).toMatchObject({ ok: true, data: {} });
    expect(await portOpen(port)).toBe(false);
    expect(await c.request('oauth_poll', { session_id: init.session_id })).toMatchObject({ code: 'SESSION_NOT_FOUND' });
    c.close();
  });
});

describe('session rules', () => {
  it('unknown ids, a missing id and oauth_cancel of unknown ids', async () => {
    const c = await client();
    expect(await c.request('oauth_poll', { session_id: 'f'.repeat(32) })).toMatchObject({ code: 'SESSION_NOT_FOUND' });
    expect(await c.request('oauth_exchange', { session_id: 'f'.repeat(32), code: 'x' })).toMatchObject({ code: 'SESSION_NOT_FOUND' });
    expect(await c.request('oauth_poll', {})).toMatchObject({ code: 'INVALID_REQUEST', error: 'Missing session_id' });
    expect(await c.request('oauth_cancel', { session_id: 'nope' })).toMatchObject({ ok: true, data: {} });
    c.close();
  });

  it('the wrong op for the flow type is INVALID_REQUEST with the protocol\'s message', async () => {
    const c = await client();
    const paste = (await c.request('oauth_initiate', { provider: 'myidp', flow: 'paste' })).data as Record<string, string>;
    expect(await c.request('oauth_poll', { session_id: paste.session_id })).toMatchObject({
      code: 'INVALID_REQUEST',
      error: 'Operation oauth_poll is not valid for flow type pkce_redirect. Use oauth_exchange instead.',
    });
    const device = (await c.request('oauth_initiate', { provider: 'myidp', flow: 'device' })).data as Record<string, string>;
    expect(await c.request('oauth_exchange', { session_id: device.session_id, code: 'x' })).toMatchObject({
      code: 'INVALID_REQUEST',
      error: 'Operation oauth_exchange is not valid for flow type device_code. Use oauth_poll instead.',
    });
    // The wrong-flow check did not consume either session.
    expect(await c.request('oauth_poll', { session_id: device.session_id })).toMatchObject({ ok: true });
    for (const s of [paste, device]) await c.request('oauth_cancel', { session_id: s.session_id });
    c.close();
  });

  it('unknown provider → PROVIDER_NOT_FOUND; unsupported flow → FLOW_INITIATION_FAILED', async () => {
    const c = await client();
    expect(await c.request('oauth_initiate', { provider: 'nobody' })).toMatchObject({ code: 'PROVIDER_NOT_FOUND' });
    expect(await c.request('oauth_initiate', { provider: 'anthropic', flow: 'device' })).toMatchObject({ code: 'FLOW_INITIATION_FAILED' });
    expect(await c.request('oauth_initiate', { provider: 'myidp', flow: 'telepathy' })).toMatchObject({ code: 'INVALID_REQUEST' });
    c.close();
  });

  it('a session expires after its TTL (controlled clock) and the sweep frees abandoned sessions', async () => {
    const c = await client();
    const a = (await c.request('oauth_initiate', { provider: 'myidp', flow: 'paste' })).data as Record<string, string>;
    const b = (await c.request('oauth_initiate', { provider: 'myidp', flow: 'browser' })).data as Record<string, string>;
    const port = callbackPort(b.auth_url!);
    const sessions = daemon.sessions!;
    const before = sessions.size;
    skewMs += 10 * 60_000 + 1;
    try {
      expect(await c.request('oauth_exchange', { session_id: a.session_id, code: 'x' })).toMatchObject({ code: 'SESSION_EXPIRED' });
      expect(await c.request('oauth_exchange', { session_id: a.session_id, code: 'x' })).toMatchObject({ code: 'SESSION_NOT_FOUND' });
      expect(await sessions.sweep()).toBeGreaterThanOrEqual(1);
      expect(sessions.size).toBeLessThan(before - 1);
      expect(await portOpen(port)).toBe(false);
      expect(await c.request('oauth_poll', { session_id: b.session_id })).toMatchObject({ code: 'SESSION_NOT_FOUND' });
    } finally {
      skewMs = 0;
    }
    c.close();
  });

  it.skipIf(!canSwitchUid && !mustSwitchUid)('a client of another uid cannot poll or cancel someone else\'s session', async () => {
    expect(canSwitchUid, 'this test needs root and /usr/bin/setpriv').toBe(true);
    const owner = await client();
    const init = (await owner.request('oauth_initiate', { provider: 'myidp', flow: 'device' })).data as Record<string, string>;
    area.expose(daemon.socketPath);
    const frames = await area.run(daemon.socketPath, 'v2', [
      { op: 'oauth_poll', payload: { session_id: init.session_id } },
      { op: 'oauth_cancel', payload: { session_id: init.session_id } },
    ]);
    expect(frames[1]).toMatchObject({ ok: false, code: 'UNAUTHORIZED', error: 'Session belongs to another client' });
    expect(frames[2]).toMatchObject({ ok: true, data: {} });
    // The foreign cancel was a no-op: the owner's session still answers.
    expect(await owner.request('oauth_poll', { session_id: init.session_id })).toMatchObject({ ok: true, data: { status: 'pending' } });
    await owner.request('oauth_cancel', { session_id: init.session_id });
    owner.close();
  });
});
