/**
 * A fleet on one PostgreSQL store: three daemons, each a process of its own with its own data
 * directory and the same passphrase, against a real oidc-provider that rotates refresh tokens and
 * revokes the grant when an old one is reused. Only the database's advisory lock, the re-read
 * under it and the cooldown keep them to one upstream refresh; a host killed -9 mid-refresh frees
 * the lock with its session; a removal on one host is seen by the others through NOTIFY.
 */
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { RefreshCoordinator } from '../../src/oauth/refreshCoordinator.js';
import { TokenService } from '../../src/oauth/TokenService.js';
import type { PostgresStore } from '../../src/store/postgresStore.js';
import { startAuthServer, type AuthServer } from '../helpers/authServer.js';
import { startFaultProxy, type FaultProxy } from '../helpers/faultProxy.js';
import { deviceLogin, registryFrom, writeProviderConfig } from '../helpers/providerLogin.js';
import { RawClient } from '../helpers/rawClient.js';
import { startWorker, stopAllWorkers, type Worker, type WorkerLine } from '../helpers/renewalWorker.js';
import { freshDatabase, hostDir, openStore, pgSkipReason, until, usePostgres } from './postgresHelpers.js';

const FLEET_DAEMON = fileURLToPath(new URL('../fixtures/postgres-daemon.mjs', import.meta.url));
const PASSPHRASE = 'fleet passphrase shared by every host';
const P = 'fleetidp';

const server = usePostgres();
let idp: AuthServer;
let proxy: FaultProxy;
let configDir: string;

beforeAll(async () => {
  if (pgSkipReason) return;
  idp = await startAuthServer({ rotateRefreshTokens: true });
  proxy = await startFaultProxy(Number(new URL(idp.issuer).port));
  configDir = hostDir();
  writeProviderConfig(path.join(configDir, 'direct.json'), idp, P);
  writeProviderConfig(path.join(configDir, 'proxied.json'), idp, P, proxy.origin);
});

afterEach(stopAllWorkers);

afterAll(async () => {
  await stopAllWorkers();
  await proxy?.close();
  await idp?.close();
});

interface Host {
  worker: Worker;
  socket: string;
  control: string;
  pid: number;
}

async function startHost(url: string, options: { config?: 'direct' | 'proxied'; cooldownMs?: number } = {}): Promise<Host> {
  const dataDir = hostDir();
  const worker = startWorker(
    { url, dataDir, configPath: path.join(configDir, `${options.config ?? 'direct'}.json`), socketPath: path.join(dataDir, 'd.sock'), cooldownMs: options.cooldownMs },
    process.env,
    { script: FLEET_DAEMON, passphrase: PASSPHRASE },
  );
  const ready = await worker.waitFor((l) => l.event === 'ready', 'ready');
  return { worker, socket: ready.socket as string, control: ready.control as string, pid: ready.pid as number };
}

/** The test process as one more host: logs in and stores the token, as `credproxy login` would. */
async function loginInto(url: string): Promise<{ store: PostgresStore; access: string; refresh: string }> {
  const store = await openStore({ url, env: { CREDPROXY_PASSPHRASE: PASSPHRASE } });
  const token = await deviceLogin(registryFrom(path.join(configDir, 'direct.json')), P, idp);
  await new TokenService(store).replace(P, 'default', token);
  return { store, access: token.access_token, refresh: token.refresh_token! };
}

/** Waits until each host's store has seen the database's current generation (through `source` when given). */
async function caughtUp(url: string, hosts: Host[], source?: 'notify'): Promise<void> {
  const db = new pg.Client({ connectionString: url });
  await db.connect();
  const generation = Number((await db.query<{ g: string }>('SELECT generation AS g FROM credproxy_generation')).rows[0]!.g);
  await db.end();
  const seen = (l: WorkerLine): boolean => l.event === 'generation' && (source === undefined || l.source === source) && Number(l.value) >= generation;
  for (const h of hosts) await h.worker.waitFor(seen, `generation ${generation}`);
}

async function request(host: Host, op: string, payload: Record<string, unknown>, socket = host.socket): Promise<Record<string, unknown>> {
  const c = await RawClient.ready(socket);
  try {
    return await c.request(op, payload, undefined);
  } finally {
    c.close();
  }
}

/** The access token is accepted by the provider (its userinfo endpoint). */
async function accepted(accessToken: string): Promise<boolean> {
  const res = await fetch(`${idp.issuer}/me`, { headers: { authorization: `Bearer ${accessToken}` } });
  await res.arrayBuffer();
  return res.status === 200;
}

/** The refresh token in the store is the live one: a refresh past the cooldown succeeds. */
async function refreshLater(store: PostgresStore): Promise<string> {
  const later = new RefreshCoordinator({ tokens: new TokenService(store, { now: () => Date.now() + 31_000 }), registry: registryFrom(path.join(configDir, 'direct.json')) });
  return (await later.refresh(P, 'default')).access_token;
}

async function lockWaiters(store: PostgresStore): Promise<number> {
  return (await store.report()).lockWaiters;
}

describe.skipIf(pgSkipReason !== null)('three daemons sharing one PostgreSQL store', () => {
  it('a refresh storm across them makes exactly one upstream refresh, no invalid_grant, and the final token works', { timeout: 120_000 }, async () => {
    const { url } = await freshDatabase(server());
    const hosts = await Promise.all([0, 1, 2].map(() => startHost(url)));
    const { store, access } = await loginInto(url);
    expect((await store.report()).hosts.map((h) => h.pid).sort()).toEqual(hosts.map((h) => h.pid).sort());
    const from = idp.stats.tokenRequestLog.length;

    // Four refreshes per daemon at once, each on a connection of its own.
    const replies = await Promise.all(hosts.flatMap((h) => [0, 1, 2, 3].map(() => request(h, 'refresh_token', { provider: P }))));
    for (const r of replies) expect(r.ok, JSON.stringify(r)).toBe(true);
    const served = new Set(replies.map((r) => (r.data as { access_token: string }).access_token));
    expect(served.size).toBe(1);
    const [fresh] = [...served];
    expect(fresh).not.toBe(access);

    const log = idp.stats.tokenRequestLog.slice(from);
    expect(log.filter((e) => e.error === 'invalid_grant')).toEqual([]);
    expect(log.map((e) => [e.grantType, e.status])).toEqual([['refresh_token', 200]]);
    expect(await accepted(fresh!)).toBe(true);
    const stored = (await store.getToken(P, 'default'))!;
    expect(stored.access_token).toBe(fresh);
    expect(stored.refresh_token).toBe(idp.issued.refreshTokens.at(-1));
    // The grant survived the storm: the rotated refresh token in the store still refreshes.
    expect(await accepted(await refreshLater(store))).toBe(true);
    expect(idp.stats.tokenRequestLog.slice(from).map((e) => e.status)).toEqual([200, 200]);
  });

  it('kill -9 of the host holding the lock mid-refresh: a waiting host takes the lock with the dead session and refreshes', { timeout: 120_000 }, async () => {
    const { url } = await freshDatabase(server());
    // No cooldown: the dead host's attempt must not hold the survivor back (that is the cooldown's
    // job, tested elsewhere); here only the lock is under test.
    const doomed = await startHost(url, { config: 'proxied', cooldownMs: 0 });
    const survivor = await startHost(url, { cooldownMs: 0 });
    const { store, access } = await loginInto(url);
    const from = idp.stats.tokenRequestLog.length;
    const seenByProxy = proxy.requests.length;

    proxy.set({ kind: 'stall' });
    const doomedReply = request(doomed, 'refresh_token', { provider: P }).catch((err: unknown) => err);
    // Its refresh request is held by the proxy: it holds the refresh lock, the provider has seen nothing.
    await proxy.waitForRequests(seenByProxy + 1);
    const survivorReply = request(survivor, 'refresh_token', { provider: P });
    await until(async () => (await lockWaiters(store)) === 1);

    const order: string[] = [];
    void survivorReply.then(() => order.push('survivor refreshed'));
    // 'exit' (SIGCHLD), not 'close': it comes as soon as the process is gone.
    const died = new Promise<void>((resolve) => doomed.worker.child.once('exit', () => resolve(void order.push('doomed died'))));
    doomed.worker.child.kill('SIGKILL');
    await died;
    const reply = await survivorReply;
    proxy.set({ kind: 'pass' });
    proxy.releaseStalled();
    await doomedReply;

    expect(order).toEqual(['doomed died', 'survivor refreshed']);
    expect(reply.ok, JSON.stringify(reply)).toBe(true);
    const token = (reply.data as { access_token: string }).access_token;
    expect(token).not.toBe(access);
    const log = idp.stats.tokenRequestLog.slice(from);
    expect(log.map((e) => [e.grantType, e.status])).toEqual([['refresh_token', 200]]);
    expect(await accepted(token)).toBe(true);
    expect((await store.getToken(P, 'default'))!.refresh_token).toBe(idp.issued.refreshTokens.at(-1));
    expect(await lockWaiters(store)).toBe(0);
  });

  it('a token removed through one daemon is gone on the others at their next read', { timeout: 60_000 }, async () => {
    const { url } = await freshDatabase(server());
    const [a, b, c] = await Promise.all([0, 1, 2].map(() => startHost(url)));
    await loginInto(url);
    for (const h of [a!, b!, c!]) expect((await request(h, 'get_token', { provider: P })).ok).toBe(true);
    const removed = await request(a!, 'remove_token', { provider: P });
    expect(removed.ok).toBe(true);
    // The removal's generation reached these daemons by notification; their next read misses.
    await caughtUp(url, [b!, c!], 'notify');
    for (const h of [b!, c!]) {
      const reply = await request(h, 'get_token', { provider: P });
      expect(reply).toMatchObject({ ok: false, code: 'NOT_FOUND' });
    }
  });

  it('a database restart mid-run: the daemons keep serving valid tokens, report degraded, refuse writes clearly, then resume', { timeout: 90_000 }, async () => {
    const { url } = await freshDatabase(server());
    const [a, b] = await Promise.all([0, 1].map(() => startHost(url)));
    const { access } = await loginInto(url);
    // Each daemon has seen the login's write before it caches the token: a notification arriving
    // after the get_token would empty that cache, and the outage below would find nothing to serve.
    await caughtUp(url, [a!, b!]);
    for (const h of [a!, b!]) expect(((await request(h, 'get_token', { provider: P })).data as { access_token: string }).access_token).toBe(access);

    await server().stop();
    for (const h of [a!, b!]) await h.worker.waitFor((l) => l.event === 'disconnected', 'the outage');
    for (const h of [a!, b!]) {
      const reply = await request(h, 'get_token', { provider: P });
      expect(reply.ok, JSON.stringify(reply)).toBe(true);
      expect((reply.data as { access_token: string }).access_token).toBe(access);
      const status = (await request(h, 'daemon_status', {}, h.control)).data as { store: string; store_health: { state: string; detail: string } };
      expect(status.store).toBe('postgres');
      expect(status.store_health.state).toBe('degraded');
      expect(status.store_health.detail).toMatch(/unreachable since .*still-valid cached tokens are served/);
    }
    const refused = await request(a!, 'save_token', { provider: P, token: { access_token: 'at-during-outage', expiry: Math.floor(Date.now() / 1000) + 600, token_type: 'Bearer' } });
    expect(refused).toMatchObject({ ok: false, code: 'INTERNAL_ERROR' });
    expect(refused.error).toMatch(/unreachable right now/);
    expect(a!.worker.lines.some((l) => l.event === 'log' && /lost the connection to PostgreSQL/.test(String(l.line)))).toBe(true);

    await server().start();
    for (const h of [a!, b!]) await h.worker.waitFor((l) => l.event === 'connected', 'the reconnection');
    const saved = await request(a!, 'save_token', { provider: P, token: { access_token: 'at-after-outage', expiry: Math.floor(Date.now() / 1000) + 600, token_type: 'Bearer' } });
    expect(saved.ok, JSON.stringify(saved)).toBe(true);
    await b!.worker.waitFor((l) => l.event === 'generation' && l.source === 'notify', 'the save notification');
    expect(((await request(b!, 'get_token', { provider: P })).data as { access_token: string }).access_token).toBe('at-after-outage');
    const status = (await request(b!, 'daemon_status', {}, b!.control)).data as { store_health: { state: string } };
    expect(status.store_health.state).toBe('ok');
  });
});
