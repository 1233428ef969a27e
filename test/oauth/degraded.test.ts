/**
 * A daemon whose authorization server misbehaves: a fault-injecting TCP proxy (test/helpers/
 * faultProxy.ts) sits between the daemon and a real oidc-provider (rotation with reuse detection)
 * and answers 500, 503 a few times, garbage, an HTML page, resets, or stalls. What must hold:
 * transient failures are retried and may then succeed; exhausted retries give REFRESH_FAILED and lose
 * nothing (the stored refresh token still works); a stalled server never turns a still-valid token
 * into an error nor slows down get_token of other buckets (latencies are measured and printed, not
 * asserted); and no get_token reply ever carries a token that has expired at the moment of the reply.
 * The daemon's upstream HTTP timeout is short (refresh deps) so a stall costs the tests little.
 */
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ProviderRegistry } from '../../src/oauth/providerTypes.js';
import { OBTAINED_AT_FIELD, REFRESH_ATTEMPT_FIELD, REFRESH_RESULT_FIELD } from '../../src/oauth/token.js';
import { startDaemon, type Daemon, type StartOptions } from '../../src/server/daemon.js';
import { MemoryStore } from '../../src/store/memory.js';
import type { StoredToken } from '../../src/store/types.js';
import { startAuthServer, type AuthServer } from '../helpers/authServer.js';
import { tempDir } from '../helpers/daemon.js';
import { startFaultProxy, type FaultMode, type FaultProxy } from '../helpers/faultProxy.js';
import { deviceLogin, registryFrom, writeProviderConfig } from '../helpers/providerLogin.js';
import { allReceivedText, RawClient } from '../helpers/rawClient.js';

const P = 'myidp';
const HTTP_TIMEOUT_MS = 400;

let idp: AuthServer;
let proxy: FaultProxy;
let registry: ProviderRegistry;
let dir: string;
const daemons: Daemon[] = [];

beforeAll(async () => {
  idp = await startAuthServer({ deviceInterval: 0.1, rotateRefreshTokens: true });
  proxy = await startFaultProxy(Number(new URL(idp.issuer).port));
  dir = tempDir('cpdg-');
  const configPath = path.join(dir, 'config.json');
  writeProviderConfig(configPath, idp, P, proxy.origin);
  registry = registryFrom(configPath);
});

afterAll(async () => {
  for (const d of daemons) await d.stop();
  proxy?.releaseStalled();
  await proxy?.close();
  await idp?.close();
  // No refresh token crossed any socket, in any reply of any failure.
  const received = allReceivedText();
  for (const rt of idp?.issued.refreshTokens ?? []) expect(received).not.toContain(rt);
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

/** A daemon on its own memory store, refreshing through the proxy; no proactive renewal (the tests drive every refresh). */
async function daemonWith(options: Partial<StartOptions> = {}): Promise<{ daemon: Daemon; store: MemoryStore }> {
  const store = new MemoryStore();
  const daemon = await startDaemon({
    tokens: store,
    keys: store,
    socketPath: path.join(dir, `d${daemons.length}.sock`),
    audit: 'off',
    discovery: false,
    providers: registry,
    renewal: false,
    // No cooldown: every refresh here is one the test asks for.
    timing: { maxCooldownMs: 0 },
    ...options,
    refresh: { deps: { httpTimeoutMs: HTTP_TIMEOUT_MS }, retryDelaysMs: [100, 200], ...options.refresh },
  });
  daemons.push(daemon);
  return { daemon, store };
}

/**
 * A real login (the proxy passing) stored under `bucket` with the given expiry and no recorded
 * lifetime, so the refresh margin is its 60 s cap: `expiresInS` ≤ 60 means get_token refreshes first.
 */
async function storedLogin(store: MemoryStore, bucket: string, expiresInS: number): Promise<StoredToken> {
  proxy.set({ kind: 'pass' });
  const token = await deviceLogin(registry, P, idp);
  const rest: StoredToken = { ...token, expiry: Math.floor(Date.now() / 1000) + expiresInS };
  delete rest[OBTAINED_AT_FIELD];
  await store.saveToken(P, bucket, rest);
  return (await store.getToken(P, bucket))!;
}

/** Sends one request and resolves with the reply and the moment it arrived. */
async function timed(c: RawClient, op: string, payload: Record<string, unknown>, timeoutMs = 30_000): Promise<{ reply: Record<string, unknown>; sentAt: number; at: number }> {
  const id = `q${Math.random().toString(16).slice(2)}`;
  const sentAt = Date.now();
  c.send({ v: 2, id, op, payload });
  const reply = await c.replyFor(id, timeoutMs);
  return { reply, sentAt, at: Date.now() };
}

/** The invariant of every get_token reply: an ok reply carries a token that is valid when it arrives. */
function expectNeverExpired(r: { reply: Record<string, unknown>; at: number }): void {
  if (r.reply.ok === true) {
    const token = r.reply.data as { expiry: number };
    expect(token.expiry * 1000, `get_token served a token that expired at ${token.expiry * 1000}, reply at ${r.at}`).toBeGreaterThan(r.at);
  }
}

function stats(values: number[]): string {
  const sorted = [...values].sort((a, b) => a - b);
  const at = (q: number) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!.toFixed(2);
  return `n=${sorted.length} p50=${at(0.5)} ms p95=${at(0.95)} ms max=${sorted.at(-1)!.toFixed(2)} ms`;
}

describe('transient failures of the token endpoint', () => {
  let daemon: Daemon;
  let store: MemoryStore;

  beforeAll(async () => {
    ({ daemon, store } = await daemonWith());
  });

  it('503 twice, then the server answers: the third try succeeds and the rotated refresh token is stored', async () => {
    const before = await storedLogin(store, 'retry', 3600);
    const fromProxy = proxy.requests.length;
    const fromServer = idp.stats.tokenRequestLog.length;
    proxy.set({ kind: 'fail503', count: 2 });
    const c = await RawClient.ready(daemon.socketPath);
    const { reply } = await timed(c, 'refresh_token', { provider: P, bucket: 'retry' });
    c.close();
    expect(reply.ok, JSON.stringify(reply)).toBe(true);
    expect((reply.data as StoredToken).access_token).not.toBe(before.access_token);
    expect(proxy.requests.slice(fromProxy).map((r) => r.outcome)).toEqual(['http503', 'http503', 'pass']);
    expect(idp.stats.tokenRequestLog.slice(fromServer).map((e) => [e.grantType, e.status])).toEqual([['refresh_token', 200]]);
    const stored = (await store.getToken(P, 'retry'))!;
    expect(stored.refresh_token).toBe(idp.issued.refreshTokens.at(-1));
    expect(stored[REFRESH_RESULT_FIELD]).toBe('ok');
  });

  const faults: Array<{ name: string; mode: FaultMode; outcome: string }> = [
    { name: 'HTTP 500', mode: { kind: 'http500' }, outcome: 'http500' },
    { name: 'HTTP 503 three times', mode: { kind: 'fail503', count: 3 }, outcome: 'http503' },
    { name: 'a stall past the HTTP timeout', mode: { kind: 'stall' }, outcome: 'stall' },
    { name: 'a connection reset', mode: { kind: 'reset' }, outcome: 'reset' },
    { name: 'garbage bytes', mode: { kind: 'garbage' }, outcome: 'garbage' },
    { name: 'an HTML page with 200', mode: { kind: 'html200' }, outcome: 'html200' },
  ];

  it.each(faults)('$name on every try → REFRESH_FAILED after 3 tries; nothing lost: the stored refresh token still works', async ({ name, mode, outcome }) => {
    const bucket = `fault-${outcome}`;
    const before = await storedLogin(store, bucket, 3600);
    const fromProxy = proxy.requests.length;
    const fromServer = idp.stats.tokenRequestLog.length;
    proxy.set(mode);
    const c = await RawClient.ready(daemon.socketPath);
    const failed = await timed(c, 'refresh_token', { provider: P, bucket });
    proxy.releaseStalled();
    console.log(`${name}: ${failed.reply.code} after ${failed.at - failed.sentAt} ms: "${String(failed.reply.error)}"`);
    expect(failed.reply).toMatchObject({ ok: false, code: 'REFRESH_FAILED' });
    expect(String(failed.reply.error)).not.toContain(before.refresh_token!);
    expect(proxy.requests.slice(fromProxy).map((r) => r.outcome)).toEqual([outcome, outcome, outcome]);
    expect(idp.stats.tokenRequestLog.length).toBe(fromServer);
    const kept = (await store.getToken(P, bucket))!;
    expect(kept.access_token).toBe(before.access_token);
    expect(kept.refresh_token).toBe(before.refresh_token);
    expect(kept[REFRESH_RESULT_FIELD]).toBe('REFRESH_FAILED');

    proxy.set({ kind: 'pass' });
    const ok = await timed(c, 'refresh_token', { provider: P, bucket });
    c.close();
    expect(ok.reply.ok, JSON.stringify(ok.reply)).toBe(true);
    expect(idp.stats.tokenRequestLog.slice(fromServer).map((e) => [e.grantType, e.status])).toEqual([['refresh_token', 200]]);
    expect((await store.getToken(P, bucket))![REFRESH_RESULT_FIELD]).toBe('ok');
  });
});

describe('a stalled or failing server and get_token', () => {
  const REFRESH_WAIT_MS = 800;
  let daemon: Daemon;
  let store: MemoryStore;

  beforeAll(async () => {
    // The latency measurement asks faster than the default 60 requests per second of a connection.
    ({ daemon, store } = await daemonWith({ refreshWaitMs: REFRESH_WAIT_MS, limits: { maxPerSecond: 100_000 } }));
  });

  it('a still-valid token inside its refresh margin is served as stored after about refreshWaitMs while the server stalls; the refresh fails in the background', async () => {
    const stored = await storedLogin(store, 'margin', 30);
    proxy.set({ kind: 'stall' });
    const fromProxy = proxy.requests.length;
    const c = await RawClient.ready(daemon.socketPath);
    const r = await timed(c, 'get_token', { provider: P, bucket: 'margin' });
    console.log(`stalled server: get_token of a token inside its refresh margin answered in ${r.at - r.sentAt} ms (refreshWaitMs ${REFRESH_WAIT_MS})`);
    expect(r.reply.ok, JSON.stringify(r.reply)).toBe(true);
    expect(r.reply.data).toMatchObject({ access_token: stored.access_token, expiry: stored.expiry });
    expectNeverExpired(r);
    // The refresh went on without the client and ended as the stalls timed out.
    await proxy.waitForRequests(fromProxy + 3);
    for (;;) {
      const now = (await store.getToken(P, 'margin'))!;
      if (now[REFRESH_RESULT_FIELD] === 'REFRESH_FAILED') break;
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    proxy.releaseStalled();
    expect(proxy.requests.slice(fromProxy).map((q) => q.outcome)).toEqual(['stall', 'stall', 'stall']);
    expect((await store.getToken(P, 'margin'))!.refresh_token).toBe(stored.refresh_token);
    // The server is back: the same refresh token works.
    proxy.set({ kind: 'pass' });
    const back = await timed(c, 'refresh_token', { provider: P, bucket: 'margin' });
    c.close();
    expect(back.reply.ok, JSON.stringify(back.reply)).toBe(true);
    expect((back.reply.data as StoredToken).access_token).not.toBe(stored.access_token);
  });

  it.each([
    { name: 'stalls', mode: { kind: 'stall' } as FaultMode },
    { name: 'answers 500', mode: { kind: 'http500' } as FaultMode },
  ])('while the server $name, get_token of other buckets keeps its latency (measured, printed)', async ({ name, mode }) => {
    const busyBucket = `busy-${mode.kind}`;
    const otherBucket = `other-${mode.kind}`;
    await storedLogin(store, busyBucket, 30);
    await storedLogin(store, otherBucket, 3600);
    const fresh = await RawClient.ready(daemon.socketPath);
    /** Sequential get_token of the healthy bucket, 2 ms apart, at least `count` of them and until `more` says enough. */
    const measure = async (count: number, more: () => boolean = () => false): Promise<number[]> => {
      const out: number[] = [];
      for (let i = 0; i < count || more(); i++) {
        if (i > 0) await new Promise((resolve) => setTimeout(resolve, 2));
        const t0 = process.hrtime.bigint();
        const reply = await fresh.request('get_token', { provider: P, bucket: otherBucket });
        out.push(Number(process.hrtime.bigint() - t0) / 1e6);
        expect(reply.ok, JSON.stringify(reply)).toBe(true);
      }
      return out;
    };
    proxy.set({ kind: 'pass' });
    await measure(20); // warm-up
    const baseline = await measure(200);

    proxy.set(mode);
    const fromProxy = proxy.requests.length;
    // Another connection keeps the failing bucket's refreshes going the whole time.
    const busy = await RawClient.ready(daemon.socketPath);
    let running = true;
    const busyReplies: Array<{ reply: Record<string, unknown>; at: number }> = [];
    const load = (async () => {
      while (running) busyReplies.push(await timed(busy, 'get_token', { provider: P, bucket: busyBucket }));
    })();
    await proxy.waitForRequests(fromProxy + 1);
    // Sampled across three full upstream tries (for a stall: three HTTP timeouts).
    const during = await measure(200, () => proxy.requests.length < fromProxy + 4);
    running = false;
    await load;
    proxy.releaseStalled();
    proxy.set({ kind: 'pass' });
    busy.close();
    fresh.close();
    console.log(`get_token latency of another bucket, server healthy: ${stats(baseline)}`);
    console.log(`get_token latency of another bucket, server ${name} (${proxy.requests.length - fromProxy} upstream tries meanwhile): ${stats(during)}`);
    for (const r of busyReplies) expectNeverExpired(r);
    expect(busyReplies.every((r) => r.reply.ok)).toBe(true);
  });
});

describe('no get_token reply carries an expired token', () => {
  const REFRESH_WAIT_MS = 2_200;
  let daemon: Daemon;
  let store: MemoryStore;

  beforeAll(async () => {
    // Retries that outlast both the token (at most 2 s left) and the wait: 3 tries over more than 2.4 s.
    ({ daemon, store } = await daemonWith({ refreshWaitMs: REFRESH_WAIT_MS, refresh: { retryDelaysMs: [1_200, 1_200] } }));
  });

  /**
   * get_token of `bucket` every 100 ms over four connections, from before its expiry until a reply
   * satisfies `stop` (or 60 requests); every reply is checked when it arrives.
   */
  async function hammer(bucket: string, stop: (r: { reply: Record<string, unknown> }) => boolean): Promise<Array<{ reply: Record<string, unknown>; sentAt: number; at: number }>> {
    const conns = await Promise.all(Array.from({ length: 4 }, () => RawClient.ready(daemon.socketPath)));
    const replies: Array<{ reply: Record<string, unknown>; sentAt: number; at: number }> = [];
    const pending: Array<Promise<void>> = [];
    let stopped = false;
    try {
      for (let i = 0; !stopped && i < 60; i++) {
        pending.push(
          timed(conns[i % conns.length]!, 'get_token', { provider: P, bucket }).then((r) => {
            expectNeverExpired(r);
            replies.push(r);
            if (stop(r)) stopped = true;
          }),
        );
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
      await Promise.all(pending);
    } finally {
      for (const c of conns) c.close();
    }
    return replies.sort((a, b) => a.sentAt - b.sentAt);
  }

  it('the token expires during failing retries: requests made while it was valid wait and get REFRESH_FAILED, never the expired token', async () => {
    await new Promise((r) => setTimeout(r, 1000 - (Date.now() % 1000) + 5));
    const stored = await storedLogin(store, 'expiring', 2);
    proxy.set({ kind: 'http500' });
    const replies = await hammer('expiring', (r) => r.reply.ok === false);
    proxy.set({ kind: 'pass' });
    const expiredAt = stored.expiry * 1000;
    console.log(
      `expiring during failing retries: ${replies.length} replies, ` +
        replies.map((r) => `${r.reply.ok ? 'ok' : String(r.reply.code)}@${r.at - expiredAt}ms`).join(' '),
    );
    expect(replies[0]!.sentAt).toBeLessThan(expiredAt);
    expect(replies.at(-1)!.reply).toMatchObject({ ok: false, code: 'REFRESH_FAILED' });
    for (const r of replies.filter((x) => x.reply.ok)) expect((r.reply.data as StoredToken).access_token).toBe(stored.access_token);
    // The refresh token was never used: it still works.
    const c = await RawClient.ready(daemon.socketPath);
    const fromServer = idp.stats.tokenRequestLog.length;
    expect((await timed(c, 'refresh_token', { provider: P, bucket: 'expiring' })).reply.ok).toBe(true);
    expect(idp.stats.tokenRequestLog.slice(fromServer).map((e) => e.status)).toEqual([200]);
    c.close();
  });

  it('the token expires during retries that then succeed: requests made while it was valid wait and get the new token, never the expired one', async () => {
    await new Promise((r) => setTimeout(r, 1000 - (Date.now() % 1000) + 5));
    const stored = await storedLogin(store, 'recovers', 2);
    const fromProxy = proxy.requests.length;
    proxy.set({ kind: 'fail503', count: 2 });
    const replies = await hammer('recovers', (r) => r.reply.ok === true && (r.reply.data as StoredToken).access_token !== stored.access_token);
    const expiredAt = stored.expiry * 1000;
    console.log(
      `expiring during retries that succeed: ${replies.length} replies, ` +
        replies.map((r) => `${r.reply.ok ? ((r.reply.data as StoredToken).access_token === stored.access_token ? 'old' : 'new') : String(r.reply.code)}@${r.at - expiredAt}ms`).join(' '),
    );
    expect(replies[0]!.sentAt).toBeLessThan(expiredAt);
    expect(replies.every((r) => r.reply.ok)).toBe(true);
    const stamp = (await store.getToken(P, 'recovers'))![REFRESH_ATTEMPT_FIELD];
    expect(typeof stamp).toBe('number');
    expect(proxy.requests.slice(fromProxy).map((r) => r.outcome)).toEqual(['http503', 'http503', 'pass']);
  });
});
