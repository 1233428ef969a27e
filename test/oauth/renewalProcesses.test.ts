/**
 * Renewal and the refresh lock across processes, on one file store, against a real authorization
 * server (oidc-provider) that rotates refresh tokens and revokes the grant when one is used twice:
 * - four daemon processes with renewal on share the store: each 4 s token is renewed once, by one of
 *   them, inside its renewal window, and the bucket never holds an expired token;
 * - a get_token whose token expires while another process holds the refresh lock waits for the
 *   refresh instead of serving the expired token;
 * - a process killed with SIGKILL while holding the refresh lock holds nobody up for longer than the
 *   stale-lock timeout, and the stored refresh token still works afterwards.
 * Workers are real processes on the built code (test/fixtures/renewal-worker.mjs); the test waits on
 * their stdout lines, the store and the server's request log.
 */
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { ProviderRegistry } from '../../src/oauth/providerTypes.js';
import { RefreshCoordinator } from '../../src/oauth/refreshCoordinator.js';
import { OBTAINED_AT_FIELD } from '../../src/oauth/token.js';
import { TokenService } from '../../src/oauth/TokenService.js';
import { startDaemon, type Daemon } from '../../src/server/daemon.js';
import { FileStore } from '../../src/store/fileStore.js';
import type { StoredToken } from '../../src/store/types.js';
import { startAuthServer, type AuthServer } from '../helpers/authServer.js';
import { tempDir } from '../helpers/daemon.js';
import { deviceLogin, registryFrom, writeProviderConfig } from '../helpers/providerLogin.js';
import { RawClient } from '../helpers/rawClient.js';
import { startWorker, stopAllWorkers, type WorkerLine } from '../helpers/renewalWorker.js';

const P = 'myidp';
const TTL_S = 4;
/** The lock of a crashed holder is broken after this; the holder refreshes it every half of it. */
const LOCK_STALE_MS = 3_000;

let idp: AuthServer;
let dir: string;
let dataDir: string;
let configPath: string;
let registry: ProviderRegistry;
let store: FileStore;

beforeAll(async () => {
  idp = await startAuthServer({ deviceInterval: 0.1, rotateRefreshTokens: true, accessTokenTtlSeconds: TTL_S });
  dir = tempDir('cprp-');
  dataDir = path.join(dir, 'home');
  configPath = path.join(dir, 'config.json');
  writeProviderConfig(configPath, idp, P);
  registry = registryFrom(configPath);
  // Opened (key file created) before any worker, which then all find the same store.
  store = await FileStore.open({ dataDir, env: {}, lockStaleMs: LOCK_STALE_MS });
});

afterEach(async () => {
  await stopAllWorkers();
});

afterAll(async () => {
  await stopAllWorkers();
  await store?.close();
  await idp?.close();
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

interface TokenShape {
  access: string;
  refresh: string | null;
  expiry: number;
  obtained_at?: number;
  attempted_at?: number;
  result?: string;
}
type SaveLine = WorkerLine & { pid: number; at: number; bucket: string; before: TokenShape | null; after: TokenShape };

/** A refresh past the cooldown, in a process of its own making: proves the stored refresh token is still good. */
async function storedRefreshTokenWorks(bucket: string): Promise<void> {
  const fromServer = idp.stats.tokenRequestLog.length;
  const later = new RefreshCoordinator({ tokens: new TokenService(store, { now: () => Date.now() + 31_000 }), registry });
  const before = (await store.getToken(P, bucket))!;
  const after = await later.refresh(P, bucket);
  expect(after.access_token).not.toBe(before.access_token);
  expect(idp.stats.tokenRequestLog.slice(fromServer).map((e) => [e.grantType, e.status])).toEqual([['refresh_token', 200]]);
}

/** Resolves once `cond` holds, checking the shared store every 20 ms (its stamp is one stat). */
async function whenStore(cond: () => Promise<boolean>, what: string, maxMs = 30_000): Promise<void> {
  const deadline = Date.now() + maxMs;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe('four daemon processes with renewal on, one file store', () => {
  it('renew each 4 s token once (one of them, in its renewal window), never reuse a refresh token, and the bucket stays valid', async () => {
    const daemons = Array.from({ length: 4 }, (_, i) =>
      startWorker({ op: 'daemon', backend: 'file', dataDir, configPath, socketPath: path.join(dir, `d${i}.sock`), watchMs: 200, lockStaleMs: LOCK_STALE_MS }),
    );
    await Promise.all(daemons.map((d) => d.waitFor((l) => l.event === 'ready', 'ready')));

    const login = await deviceLogin(registry, P, idp);
    const fromServer = idp.stats.tokenRequestLog.length;
    await new TokenService(store).replace(P, 'shared', login);
    const start = Date.now();
    const windowMs = 2.5 * TTL_S * 1000;
    let samples = 0;
    // Sampled all along: the bucket never holds an expired token.
    await whenStore(async () => {
      const token = (await store.getToken(P, 'shared'))!;
      samples++;
      if (token.expiry * 1000 <= Date.now()) throw new Error(`the stored token expired at ${token.expiry * 1000} (now ${Date.now()})`);
      return Date.now() - start >= windowMs;
    }, 'the observation window');
    const end = Date.now();
    await Promise.all(daemons.map((d) => d.stop()));

    const saves = daemons.flatMap((d) => d.lines.filter((l): l is SaveLine => l.event === 'save' && l.bucket === 'shared'));
    const renewals = saves.filter((s) => s.before !== null && s.after.access !== s.before.access);
    const byProcess = daemons.map((d) => renewals.filter((r) => r.pid === d.child.pid).length);
    const refreshes = idp.stats.tokenRequestLog.slice(fromServer).filter((e) => e.grantType === 'refresh_token');
    console.log(
      `4 daemons, 4 s tokens, ${((end - start) / 1000).toFixed(1)} s: ${refreshes.length} refresh requests at the server ` +
        `(${((refreshes.length * TTL_S * 1000) / (end - start)).toFixed(2)} per lifetime), renewals per daemon ${byProcess.join('/')}, ` +
        `${saves.length} store writes, ${samples} store samples`,
    );

    // No refresh token was used twice: the server rejected nothing, and each refresh renewed one token.
    expect(idp.stats.tokenRequestLog.slice(fromServer).filter((e) => e.error !== undefined)).toEqual([]);
    expect(refreshes.every((e) => e.status === 200)).toBe(true);
    expect(renewals.length).toBe(refreshes.length);
    expect(new Set(renewals.map((r) => r.before!.access)).size).toBe(renewals.length);
    expect(new Set(renewals.map((r) => r.before!.refresh)).size).toBe(renewals.length);
    // One chain from the login: every renewal replaced the token the previous one stored.
    const chain = new Map(renewals.map((r) => [r.before!.access, r.after.access]));
    const successors = new Set(chain.values());
    let access = [...chain.keys()].find((a) => !successors.has(a));
    let length = 0;
    while (access !== undefined && chain.has(access)) {
      access = chain.get(access);
      length++;
    }
    expect(length).toBe(renewals.length);
    expect(renewals.length).toBeGreaterThanOrEqual(3);
    for (const r of renewals) {
      const prev = r.before!;
      const lifetime = prev.expiry * 1000 - prev.obtained_at!;
      // Decided under the lock when due (expiry − L/2 − L/10 at the earliest), and done before the old one expired.
      expect(r.after.attempted_at!).toBeGreaterThanOrEqual(prev.expiry * 1000 - lifetime / 2 - lifetime / 10);
      expect(r.after.obtained_at!).toBeLessThan(prev.expiry * 1000);
    }

    const stored = (await store.getToken(P, 'shared'))!;
    expect(stored.refresh_token).toBe(idp.issued.refreshTokens.at(-1));
    await storedRefreshTokenWorks('shared');
  }, 60_000);
});

describe('the refresh lock held by another process', () => {
  let daemon: Daemon;

  beforeAll(async () => {
    daemon = await startDaemon({
      tokens: store,
      keys: store,
      socketPath: path.join(dir, 'lock.sock'),
      audit: 'off',
      discovery: false,
      providers: registry,
      renewal: false,
      refreshWaitMs: 2_500,
    });
  });

  afterAll(async () => {
    await daemon?.stop();
  });

  /** A real login stored under `bucket` with `expiry` (epoch s) and no recorded lifetime (so the refresh margin is 60 s). */
  async function storedLogin(bucket: string, expiry: (nowS: number) => number, { alignToSecond = false } = {}): Promise<StoredToken> {
    const token = await deviceLogin(registry, P, idp);
    if (alignToSecond) await new Promise((r) => setTimeout(r, 1000 - (Date.now() % 1000) + 5));
    const rest: StoredToken = { ...token, expiry: expiry(Math.floor(Date.now() / 1000)) };
    delete rest[OBTAINED_AT_FIELD];
    await store.saveToken(P, bucket, rest);
    return (await store.getToken(P, bucket))!;
  }

  it('a token that expires while get_token waits on the lock is not served: the reply carries the refreshed token', async () => {
    const holder = startWorker({ op: 'hold-lock', backend: 'file', dataDir, provider: P, bucket: 'waits', lockStaleMs: LOCK_STALE_MS });
    await holder.waitFor((l) => l.event === 'locked', 'locked');
    // Stored as a second begins, so the token has just under 2 s left: less than the 2.5 s wait.
    const stored = await storedLogin('waits', (nowS) => nowS + 2, { alignToSecond: true });
    const fromServer = idp.stats.tokenRequestLog.length;

    const c = await RawClient.ready(daemon.socketPath);
    const sentAt = Date.now();
    c.send({ v: 2, id: 'g', op: 'get_token', payload: { provider: P, bucket: 'waits' } });
    let repliedAt = 0;
    const reply = c.replyFor('g', 30_000).then((r) => {
      repliedAt = Date.now();
      return r;
    });
    // The stored token expires while the lock is held; only then is the lock released.
    await new Promise((r) => setTimeout(r, Math.max(0, stored.expiry * 1000 - Date.now() + 50)));
    const answeredBeforeExpiry = repliedAt !== 0;
    expect(sentAt, 'get_token was asked while the token was still valid').toBeLessThan(stored.expiry * 1000);
    holder.child.stdin!.write('release\n');
    await holder.waitFor((l) => l.event === 'released', 'released');
    const r = await reply;
    c.close();
    console.log(`get_token waited ${repliedAt - sentAt} ms (token expired after ${stored.expiry * 1000 - sentAt} ms, lock held until then)`);
    expect(answeredBeforeExpiry).toBe(false);
    expect(r.ok, JSON.stringify(r)).toBe(true);
    const served = r.data as { access_token: string; expiry: number };
    expect(served.expiry * 1000).toBeGreaterThan(repliedAt);
    expect(served.access_token).not.toBe(stored.access_token);
    expect(idp.stats.tokenRequestLog.slice(fromServer).map((e) => [e.grantType, e.status])).toEqual([['refresh_token', 200]]);
    await holder.exited;
  });

  it('a holder killed with SIGKILL: get_token of an expired token proceeds after the stale-lock timeout and the refresh token still works', async () => {
    const stored = await storedLogin('killed', (nowS) => nowS - 10);
    const holder = startWorker({ op: 'hold-lock', backend: 'file', dataDir, provider: P, bucket: 'killed', lockStaleMs: LOCK_STALE_MS });
    await holder.waitFor((l) => l.event === 'locked', 'locked');
    const fromServer = idp.stats.tokenRequestLog.length;

    const c = await RawClient.ready(daemon.socketPath);
    c.send({ v: 2, id: 'k', op: 'get_token', payload: { provider: P, bucket: 'killed' } });
    let repliedAt = 0;
    const reply = c.replyFor('k', 30_000).then((r) => {
      repliedAt = Date.now();
      return r;
    });
    // The daemon is waiting for the lock (its refresh has not reached the server) when the holder dies.
    await new Promise((r) => setImmediate(r));
    const killedAt = Date.now();
    holder.child.kill('SIGKILL');
    const exit = await holder.exited;
    expect(exit.signal).toBe('SIGKILL');
    const r = await reply;
    c.close();
    console.log(`after SIGKILL of the lock holder, get_token answered in ${repliedAt - killedAt} ms (stale-lock timeout ${LOCK_STALE_MS} ms)`);
    expect(repliedAt).toBeGreaterThan(killedAt);
    expect(r.ok, JSON.stringify(r)).toBe(true);
    const served = r.data as { access_token: string; expiry: number };
    expect(served.access_token).not.toBe(stored.access_token);
    expect(served.expiry * 1000).toBeGreaterThan(repliedAt);
    expect(idp.stats.tokenRequestLog.slice(fromServer).map((e) => [e.grantType, e.status])).toEqual([['refresh_token', 200]]);
    const after = (await store.getToken(P, 'killed'))!;
    expect(after.refresh_token).toBe(idp.issued.refreshTokens.at(-1));
    await storedRefreshTokenWorks('killed');
  });
});
