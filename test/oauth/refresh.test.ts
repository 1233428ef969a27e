/**
 * Host-side refresh (PROTOCOL.md §6.4) through the daemon's socket against a real authorization server
 * (oidc-provider in-process, a custom provider) with refresh-token rotation and reuse detection: a
 * refresh token used twice would revoke the whole grant, so any race shows up as invalid_grant.
 */
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { defaultFlowDeps } from '../../src/oauth/flowDeps.js';
import { loadProviderRegistry } from '../../src/oauth/config.js';
import type { ProviderRegistry } from '../../src/oauth/providerTypes.js';
import { RefreshCoordinator } from '../../src/oauth/refreshCoordinator.js';
import { OBTAINED_AT_FIELD, REFRESH_ATTEMPT_FIELD } from '../../src/oauth/token.js';
import { TokenService } from '../../src/oauth/TokenService.js';
import { startDaemon, type Daemon } from '../../src/server/daemon.js';
import { MemoryStore } from '../../src/store/memory.js';
import type { StoredToken } from '../../src/store/types.js';
import { startAuthServer, type AuthServer } from '../helpers/authServer.js';
import { startTestDaemon, tempDir } from '../helpers/daemon.js';
import { allReceivedText, RawClient } from '../helpers/rawClient.js';

let idp: AuthServer;
let daemon: Daemon;
let store: MemoryStore;
let registry: ProviderRegistry;
let auditFile: string;
/** The clock of the daemon and the coordinator: real time plus a skew tests can advance. */
let skewMs = 0;
const clock = () => Date.now() + skewMs;
/** Retry waits the coordinator asked for; they pass at once. */
const sleeps: number[] = [];

const P = 'myidp';

beforeAll(async () => {
  idp = await startAuthServer({ deviceInterval: 1, rotateRefreshTokens: true });
  const dir = tempDir();
  const configPath = path.join(dir, 'config.json');
  fs.writeFileSync(
    configPath,
    JSON.stringify({ providers: { [P]: { clientId: idp.clientId, issuer: idp.issuer, scopes: idp.scopes.split(' '), flows: ['device_code'], endpoints: idp.endpoints } } }),
  );
  registry = loadProviderRegistry({ configPath });
  store = new MemoryStore();
  auditFile = path.join(dir, 'audit.log');
  const refresh = {
    sleep: async (ms: number) => {
      sleeps.push(ms);
    },
  };
  daemon = await startDaemon({ tokens: store, keys: store, socketPath: path.join(dir, 'r.sock'), audit: auditFile, providers: registry, refresh, now: clock, renewal: false });
});

afterAll(async () => {
  await daemon?.stop();
  await idp?.close();
  // No refresh token, old or new, ever crossed the socket or reached the audit log; nor did the cooldown stamp.
  const received = allReceivedText();
  const audit = fs.readFileSync(auditFile, 'utf8');
  expect(idp.issued.refreshTokens.length).toBeGreaterThan(5);
  for (const rt of idp.issued.refreshTokens) {
    expect(received).not.toContain(rt);
    expect(audit).not.toContain(rt);
  }
  expect(received).not.toContain(REFRESH_ATTEMPT_FIELD);
});

/** A real login (device flow, approved through the server's pages) stored under (P, bucket). */
async function login(bucket: string): Promise<StoredToken> {
  const deps = defaultFlowDeps({ now: clock });
  const flow = await registry.get(P)!.start('device_code', deps);
  await idp.approveDevice(flow.publicData.user_code!);
  for (;;) {
    const result = await flow.poll!(AbortSignal.timeout(15_000));
    if (result.status === 'complete') {
      await store.saveToken(P, bucket, result.token);
      return result.token;
    }
    await new Promise((r) => setTimeout(r, result.pollIntervalMs));
  }
}

/** Token endpoint requests the server saw while `fn` ran (tests in a file run one at a time). */
async function tokenRequestsDuring<T>(fn: () => Promise<T>): Promise<{ result: T; log: AuthServer['stats']['tokenRequestLog'] }> {
  const from = idp.stats.tokenRequestLog.length;
  const result = await fn();
  return { result, log: idp.stats.tokenRequestLog.slice(from) };
}

async function client(): Promise<RawClient> {
  return RawClient.ready(daemon.socketPath);
}

describe('refresh_token op', () => {
  it('returns a new sanitized token; the store holds the rotated refresh token; one upstream refresh', async () => {
    const before = await login('one');
    const c = await client();
    const { result: reply, log } = await tokenRequestsDuring(() => c.request('refresh_token', { provider: P, bucket: 'one' }));
    expect(reply.ok).toBe(true);
    const token = reply.data as Record<string, unknown>;
    expect(Object.keys(token).sort()).toEqual(['access_token', 'expiry', 'scope', 'token_type'].filter((k) => k in token));
    expect(token.access_token).not.toBe(before.access_token);
    expect(token.token_type).toBe('Bearer');
    const stored = (await store.getToken(P, 'one'))!;
    expect(stored.access_token).toBe(token.access_token);
    expect(stored.refresh_token).not.toBe(before.refresh_token);
    expect(idp.issued.refreshTokens).toContain(stored.refresh_token);
    expect(log.map((e) => [e.grantType, e.status])).toEqual([['refresh_token', 200]]);
    c.close();
  });

  it('checks in §6.4 order — PROVIDER_NOT_FOUND, NOT_FOUND, REFRESH_NOT_AVAILABLE — without calling upstream', async () => {
    await store.saveToken(P, 'no-rt', { access_token: 'at-plain', expiry: Math.floor(clock() / 1000) + 3600, token_type: 'Bearer' });
    await store.saveToken('nosuch', 'default', { access_token: 'at-x', expiry: 1, token_type: 'Bearer', refresh_token: 'rt-for-unknown-provider' });
    const c = await client();
    const { result, log } = await tokenRequestsDuring(async () => [
      await c.request('refresh_token', { provider: P, bucket: 'absent' }),
      await c.request('refresh_token', { provider: P, bucket: 'no-rt' }),
      await c.request('refresh_token', { provider: 'nosuch' }),
      // An unconfigured provider is PROVIDER_NOT_FOUND even without a token (llxprt-code's order).
      await c.request('refresh_token', { provider: 'nosuch', bucket: 'absent' }),
    ]);
    expect(result.map((r) => r.code)).toEqual(['NOT_FOUND', 'REFRESH_NOT_AVAILABLE', 'PROVIDER_NOT_FOUND', 'PROVIDER_NOT_FOUND']);
    expect(log).toEqual([]);
    c.close();
  });

  it('single-flight in process: 10 concurrent requests on 3 connections → one upstream refresh, one token', async () => {
    const before = await login('many');
    const conns = await Promise.all([client(), client(), client()]);
    const { result: replies, log } = await tokenRequestsDuring(() =>
      Promise.all(Array.from({ length: 10 }, (_, i) => conns[i % 3]!.request('refresh_token', { provider: P, bucket: 'many' }))),
    );
    expect(replies.every((r) => r.ok)).toBe(true);
    const tokens = new Set(replies.map((r) => (r.data as { access_token: string }).access_token));
    expect(tokens.size).toBe(1);
    expect(tokens.has(before.access_token)).toBe(false);
    expect(log.map((e) => e.grantType)).toEqual(['refresh_token']);
    expect((await store.getToken(P, 'many'))!.access_token).toBe([...tokens][0]);
    for (const c of conns) c.close();
  });
});

describe('get_token', () => {
  it('refreshes first when the token expires within 60 s', async () => {
    const real = await login('soon');
    await store.saveToken(P, 'soon', { ...real, access_token: 'at-about-to-expire', expiry: Math.floor(clock() / 1000) + 30 });
    const c = await client();
    const { result: reply, log } = await tokenRequestsDuring(() => c.request('get_token', { provider: P, bucket: 'soon' }));
    expect(reply.ok).toBe(true);
    const token = reply.data as { access_token: string; expiry: number };
    expect(token.access_token).not.toBe('at-about-to-expire');
    expect(token.expiry).toBeGreaterThan(Math.floor(clock() / 1000) + 60);
    expect(log.map((e) => [e.grantType, e.status])).toEqual([['refresh_token', 200]]);
    expect((await store.getToken(P, 'soon'))!.refresh_token).not.toBe(real.refresh_token);
    c.close();
  });
});

describe('cooldown (30 s per provider:bucket)', () => {
  it('a second refresh inside it returns the valid token; an expired one gets RATE_LIMITED; after it, upstream again', async () => {
    await login('cool');
    const c = await client();
    const first = await tokenRequestsDuring(() => c.request('refresh_token', { provider: P, bucket: 'cool' }));
    expect(first.log).toHaveLength(1);
    const token = first.result.data as { access_token: string };

    skewMs += 10_000;
    const second = await tokenRequestsDuring(() => c.request('refresh_token', { provider: P, bucket: 'cool' }));
    expect(second.log).toEqual([]);
    expect((second.result.data as { access_token: string }).access_token).toBe(token.access_token);

    // Expired inside the cooldown: the stamp is kept, the expiry moves into the past (an hour-long
    // token, so the cooldown stays the 30 s cap: it scales with the lifetime).
    const stored = (await store.getToken(P, 'cool'))!;
    const expiry = Math.floor(clock() / 1000) - 5;
    await store.saveToken(P, 'cool', { ...stored, expiry, [OBTAINED_AT_FIELD]: (expiry - 3600) * 1000 });
    const limited = await tokenRequestsDuring(() => c.request('refresh_token', { provider: P, bucket: 'cool' }));
    expect(limited.log).toEqual([]);
    expect(limited.result).toMatchObject({ ok: false, code: 'RATE_LIMITED' });
    expect(limited.result.retryAfter).toBeGreaterThanOrEqual(15);
    expect(limited.result.retryAfter).toBeLessThanOrEqual(20);

    skewMs += 21_000;
    const after = await tokenRequestsDuring(() => c.request('refresh_token', { provider: P, bucket: 'cool' }));
    expect(after.result.ok).toBe(true);
    expect(after.log.map((e) => [e.grantType, e.status])).toEqual([['refresh_token', 200]]);
    c.close();
  });
});

describe('cooldown stamp', () => {
  it('a stamp in the future (no refresh writes one) does not hold refreshes off', async () => {
    const real = await login('future');
    await store.saveToken(P, 'future', { ...real, expiry: Math.floor(clock() / 1000) - 5, [REFRESH_ATTEMPT_FIELD]: clock() + 20_000 });
    const c = await client();
    const { result: reply, log } = await tokenRequestsDuring(() => c.request('get_token', { provider: P, bucket: 'future' }));
    expect(reply.ok).toBe(true);
    expect(log.map((e) => [e.grantType, e.status])).toEqual([['refresh_token', 200]]);
    const stored = (await store.getToken(P, 'future'))!;
    expect(stored[REFRESH_ATTEMPT_FIELD]).toBeLessThanOrEqual(clock());
    expect(reply.data).not.toHaveProperty(REFRESH_ATTEMPT_FIELD);
    c.close();
  });
});

describe('failures', () => {
  it('a revoked refresh token → REAUTH_REQUIRED, not retried', async () => {
    const real = await login('revoked');
    expect(await idp.revokeRefreshToken(real.refresh_token!)).toBe(true);
    sleeps.length = 0;
    const c = await client();
    const { result: reply, log } = await tokenRequestsDuring(() => c.request('refresh_token', { provider: P, bucket: 'revoked' }));
    expect(reply).toMatchObject({ ok: false, code: 'REAUTH_REQUIRED' });
    expect(log.map((e) => e.error)).toEqual(['invalid_grant']);
    expect(sleeps).toEqual([]);
    expect(String(reply.error)).not.toContain(real.refresh_token);
    expect(String(reply.error)).not.toContain('http');
    c.close();
  });

  it('HTTP 401 → REAUTH_REQUIRED without a retry; the stored token is kept', async () => {
    const real = await login('unauthorized');
    sleeps.length = 0;
    idp.failNextTokenRequests(1, 401);
    const c = await client();
    const { result: reply, log } = await tokenRequestsDuring(() => c.request('refresh_token', { provider: P, bucket: 'unauthorized' }));
    expect(reply).toMatchObject({ ok: false, code: 'REAUTH_REQUIRED' });
    expect(log.map((e) => e.status)).toEqual([401]);
    expect(sleeps).toEqual([]);
    expect((await store.getToken(P, 'unauthorized'))!.refresh_token).toBe(real.refresh_token);
    c.close();
  });

  it('a 429 is retried like a 5xx', async () => {
    await login('throttled');
    sleeps.length = 0;
    idp.failNextTokenRequests(1, 429);
    const c = await client();
    const { result: reply, log } = await tokenRequestsDuring(() => c.request('refresh_token', { provider: P, bucket: 'throttled' }));
    expect(reply.ok).toBe(true);
    expect(log.map((e) => e.status)).toEqual([429, 200]);
    expect(sleeps).toEqual([1_000]);
    c.close();
  });

  it('one 503 is retried after 1 s and the refresh succeeds', async () => {
    await login('flaky');
    sleeps.length = 0;
    idp.failNextTokenRequests(1, 503);
    const c = await client();
    const { result: reply, log } = await tokenRequestsDuring(() => c.request('refresh_token', { provider: P, bucket: 'flaky' }));
    expect(reply.ok).toBe(true);
    expect(log.map((e) => e.status)).toEqual([503, 200]);
    expect(sleeps).toEqual([1_000]);
    expect((await store.getToken(P, 'flaky'))!.access_token).toBe((reply.data as { access_token: string }).access_token);
    c.close();
  });

  it('three 503s → REFRESH_FAILED after 3 attempts (waits 1 s, 3 s); the stored token is unchanged', async () => {
    const real = await login('down');
    sleeps.length = 0;
    idp.failNextTokenRequests(3, 503);
    const c = await client();
    const { result: reply, log } = await tokenRequestsDuring(() => c.request('refresh_token', { provider: P, bucket: 'down' }));
    expect(reply).toMatchObject({ ok: false, code: 'REFRESH_FAILED' });
    expect(String(reply.error)).not.toMatch(/https?:|harness/); // no URL, no error_description from the body
    expect(log.map((e) => e.status)).toEqual([503, 503, 503]);
    expect(sleeps).toEqual([1_000, 3_000]);
    const stored = (await store.getToken(P, 'down'))!;
    expect(stored.refresh_token).toBe(real.refresh_token);
    expect(stored.access_token).toBe(real.access_token);
    c.close();
  });
});

describe('without a refresher (library daemon)', () => {
  it('refresh_token answers PROVIDER_NOT_FOUND first, whatever the store holds', async () => {
    const t = await startTestDaemon();
    try {
      await t.store.saveToken('x', 'default', { access_token: 'a', expiry: 1, token_type: 'Bearer' });
      await t.store.saveToken('y', 'default', { access_token: 'a', expiry: 1, token_type: 'Bearer', refresh_token: 'rt-library' });
      const c = await RawClient.ready(t.socketPath);
      const codes = [];
      for (const provider of ['none', 'x', 'y']) codes.push((await c.request('refresh_token', { provider })).code);
      expect(codes).toEqual(['PROVIDER_NOT_FOUND', 'PROVIDER_NOT_FOUND', 'PROVIDER_NOT_FOUND']);
      c.close();
    } finally {
      await t.stop();
    }
  });
});

describe('RefreshCoordinator (same server, its own store)', () => {
  it('concurrent callers share one refresh: the very same result object, one upstream call', async () => {
    const own = new MemoryStore();
    await own.saveToken(P, 'default', await login('unit-sf'));
    const coordinator = new RefreshCoordinator({ tokens: new TokenService(own), registry });
    const { result, log } = await tokenRequestsDuring(() => Promise.all(Array.from({ length: 5 }, () => coordinator.refresh(P, 'default'))));
    // A second refresh that merely reused the stored result would read a fresh copy from the store.
    for (const r of result) expect(r).toBe(result[0]);
    expect(log).toHaveLength(1);
  });

  it('a caller that gives up stops waiting, but the refresh still completes and saves the rotated refresh token', async () => {
    const own = new MemoryStore();
    const real = await login('unit-cancel');
    await own.saveToken(P, 'default', real);
    const coordinator = new RefreshCoordinator({ tokens: new TokenService(own), registry });
    const abort = new AbortController();
    const pending = coordinator.refresh(P, 'default', abort.signal);
    abort.abort();
    await expect(pending).rejects.toMatchObject({ code: 'CANCELLED' });
    await coordinator.idle();
    const stored = (await own.getToken(P, 'default'))!;
    expect(stored.refresh_token).not.toBe(real.refresh_token);
    expect(stored.refresh_token).toBe(idp.issued.refreshTokens.at(-1));
  });

  it('re-reads under the lock: a token written while it waited is returned without calling upstream', async () => {
    /** Tells when a second lock request arrives: the coordinator has read the token and queued for the lock. */
    class LockWatch extends MemoryStore {
      private requests = 0;
      queued!: () => void;
      readonly waiting = new Promise<void>((resolve) => (this.queued = resolve));
      override withTokenLock<T>(provider: string, bucket: string, fn: () => Promise<T>): Promise<T> {
        if (++this.requests === 2) this.queued();
        return super.withTokenLock(provider, bucket, fn);
      }
    }
    const own = new LockWatch();
    const real = await login('unit-reread');
    await own.saveToken(P, 'default', real);
    const coordinator = new RefreshCoordinator({ tokens: new TokenService(own), registry, cooldownMs: 0 });
    let release!: () => void;
    const holder = own.withTokenLock(P, 'default', () => new Promise<void>((r) => (release = r)));
    const { result, log } = await tokenRequestsDuring(async () => {
      const pending = coordinator.refresh(P, 'default');
      await own.waiting; // it has read the token and queued for the lock
      // What another process's refresh leaves behind.
      await own.saveToken(P, 'default', { ...real, access_token: 'at-from-elsewhere', refresh_token: 'rt-from-elsewhere', expiry: Math.floor(Date.now() / 1000) + 3600 });
      release();
      await holder;
      return pending;
    });
    expect(result.access_token).toBe('at-from-elsewhere');
    expect(log).toEqual([]);
  });

  it('invalid_grant after another writer stored a new login meanwhile → that token, not REAUTH_REQUIRED', async () => {
    const own = new MemoryStore();
    const real = await login('unit-race');
    await own.saveToken(P, 'default', real);
    await idp.revokeRefreshToken(real.refresh_token!);
    const relogin = { ...real, access_token: 'at-new-login', refresh_token: 'rt-new-login', expiry: Math.floor(Date.now() / 1000) + 3600 };
    // The new login lands (without the lock, as an older tool would write) while the refresh is on the wire.
    const fetchWithLogin: typeof fetch = async (input, init) => {
      await own.saveToken(P, 'default', relogin);
      return fetch(input, init);
    };
    const coordinator = new RefreshCoordinator({ tokens: new TokenService(own), registry, deps: { fetch: fetchWithLogin } });
    const { result, log } = await tokenRequestsDuring(() => coordinator.refresh(P, 'default'));
    expect(log.map((e) => e.error)).toEqual(['invalid_grant']);
    expect(result.access_token).toBe('at-new-login');

    // Without a new token in the store the same rejection is REAUTH_REQUIRED.
    const plain = new RefreshCoordinator({ tokens: new TokenService(own), registry });
    await own.saveToken(P, 'default', real);
    await expect(plain.refresh(P, 'default')).rejects.toMatchObject({ code: 'REAUTH_REQUIRED' });
  });
});
