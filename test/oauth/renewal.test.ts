/**
 * Proactive renewal (PROTOCOL.md §6.4) against a real authorization server (oidc-provider with
 * refresh-token rotation and reuse detection) and the real RefreshCoordinator:
 * - with an injected clock: a jump past the renewal time renews on the next wall-clock check, the
 *   back-off doubles from 30 s to 30 min and stops after 10 failures (also with two schedulers on one
 *   store), REAUTH_REQUIRED stops at once and marks the bucket needs_login, stop() leaves no timer
 *   behind, and no store change is missed (one made during a scan, one after a failed start);
 * - with 4 s access tokens and the real clock: a daemon keeps a token valid by itself across five
 *   lifetimes, renewing each token once, while no client asks for anything.
 * The tests wait on events (the scheduler's own wall-clock checks, store writes, the server's and
 * the proxy's request logs), never on fixed sleeps.
 */
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ProviderRegistry } from '../../src/oauth/providerTypes.js';
import { RefreshCoordinator, type RefreshRequest } from '../../src/oauth/refreshCoordinator.js';
import { RenewalScheduler, type Renewer, type RenewalStatus } from '../../src/oauth/RenewalScheduler.js';
import { OBTAINED_AT_FIELD, REFRESH_ATTEMPT_FIELD } from '../../src/oauth/token.js';
import { TokenService } from '../../src/oauth/TokenService.js';
import { startDaemon, type Daemon } from '../../src/server/daemon.js';
import { MemoryStore } from '../../src/store/memory.js';
import type { StoredToken } from '../../src/store/types.js';
import { startAuthServer, type AuthServer } from '../helpers/authServer.js';
import { tempDir } from '../helpers/daemon.js';
import { startFaultProxy, type FaultProxy } from '../helpers/faultProxy.js';
import { daemonLogin, deviceLogin, registryFrom, writeProviderConfig } from '../helpers/providerLogin.js';
import { RawClient } from '../helpers/rawClient.js';
import { trackTimers } from '../helpers/timerTracker.js';

const P = 'myidp';
const dirs: string[] = [];

afterAll(() => {
  for (const dir of dirs) fs.rmSync(dir, { recursive: true, force: true });
});

/** A TokenService whose clock the test sets, and which reports the scheduler's wall-clock checks (each calls changeStamp once). */
class SteppedTokens extends TokenService {
  ticks = 0;
  private waiters: Array<{ at: number; resolve: () => void }> = [];
  constructor(
    store: MemoryStore,
    readonly clock: { now: number },
  ) {
    super(store, { now: () => clock.now });
  }
  override changeStamp(): string | null {
    this.ticks++;
    for (const w of this.waiters.splice(0)) {
      if (this.ticks >= w.at) w.resolve();
      else this.waiters.push(w);
    }
    return super.changeStamp();
  }
  /** Resolves after `count` more wall-clock checks of the scheduler. */
  afterTicks(count: number): Promise<void> {
    const at = this.ticks + count;
    return new Promise((resolve) => this.waiters.push({ at, resolve }));
  }
  /** Resolves at the first check after which `cond` holds (checked after each tick). */
  async until(cond: () => boolean | Promise<boolean>, what: string, maxTicks = 2_000): Promise<void> {
    for (let i = 0; i < maxTicks; i++) {
      if (await cond()) return;
      await this.afterTicks(1);
    }
    throw new Error(`${what}: not reached after ${maxTicks} checks`);
  }
}

/** The real coordinator, with every call and its outcome counted. */
class CountingRenewer implements Renewer {
  calls: Array<{ bucket: string; options?: RefreshRequest; outcome?: string }> = [];
  constructor(private readonly inner: RefreshCoordinator) {}
  canRefresh(provider: string): boolean {
    return this.inner.canRefresh(provider);
  }
  async refresh(provider: string, bucket: string, signal?: AbortSignal, options?: RefreshRequest): Promise<StoredToken> {
    const call: CountingRenewer['calls'][number] = { bucket, ...(options && { options }) };
    this.calls.push(call);
    try {
      const token = await this.inner.refresh(provider, bucket, signal, options);
      call.outcome = 'ok';
      return token;
    } catch (err) {
      call.outcome = (err as { code?: string }).code ?? String(err);
      throw err;
    }
  }
  of(bucket: string) {
    return this.calls.filter((c) => c.bucket === bucket);
  }
}

describe('renewal with an injected clock', () => {
  let idp: AuthServer;
  let proxy: FaultProxy;
  let registry: ProviderRegistry;
  const clock = { now: Date.now() };
  let store: MemoryStore;
  let tokens: SteppedTokens;
  let coordinator: RefreshCoordinator;

  beforeAll(async () => {
    idp = await startAuthServer({ deviceInterval: 0.1, rotateRefreshTokens: true });
    proxy = await startFaultProxy(Number(new URL(idp.issuer).port));
    const dir = tempDir('cprn-');
    dirs.push(dir);
    const configPath = path.join(dir, 'config.json');
    writeProviderConfig(configPath, idp, P, proxy.origin);
    registry = registryFrom(configPath);
    store = new MemoryStore();
    tokens = new SteppedTokens(store, clock);
    // Retries pass at once: the clock is the test's, and the count of attempts is what matters.
    coordinator = new RefreshCoordinator({ tokens, registry, sleep: async () => {} });
  });

  afterAll(async () => {
    await proxy?.close();
    await idp?.close();
  });

  /** A real login (through the proxy in pass mode), stored as a login would store it: obtained now. */
  async function loginInto(bucket: string): Promise<StoredToken> {
    proxy.set({ kind: 'pass' });
    // The login polls on real time; the injected clock starts from it again for each test.
    const token = await deviceLogin(registry, P, idp);
    clock.now = Date.now();
    await tokens.replace(P, bucket, token);
    return (await store.getToken(P, bucket))!;
  }

  function planOf(scheduler: RenewalScheduler, bucket: string): RenewalStatus | undefined {
    return scheduler.status().find((s) => s.provider === P && s.bucket === bucket);
  }

  it('plans expiry − lead − jitter; a jump of the clock past it renews at the next wall-clock check, not at the timer', async () => {
    const before = await loginInto('jump');
    const renewer = new CountingRenewer(coordinator);
    const scheduler = new RenewalScheduler(tokens, renewer, { watchMs: 10, random: () => 0.5 });
    await scheduler.start();
    try {
      const lead = tokens.renewalLeadMs(before);
      const jitter = tokens.renewalJitterMs(before);
      expect(tokens.lifetimeMs(before)).toBeGreaterThan(3_590_000);
      expect(lead).toBeCloseTo(tokens.lifetimeMs(before)! / 10, 0); // L = 1 h: max(300 s, L/10)
      expect(jitter).toBe(30_000);
      const due = before.expiry * 1000 - lead - 0.5 * jitter;
      expect(planOf(scheduler, 'jump')).toMatchObject({ state: 'scheduled', failures: 0, next_renewal: due });

      // Wall-clock checks come and go; nothing is due yet.
      await tokens.afterTicks(5);
      expect(renewer.of('jump')).toEqual([]);

      // The clock jumps (a suspend, an NTP step) past the renewal time: the timer is still an hour
      // of real time away, so only the wall-clock check can start the renewal.
      const fromServer = idp.stats.tokenRequestLog.length;
      clock.now = due + 1;
      const ticksAtJump = tokens.ticks;
      await tokens.until(() => renewer.of('jump').some((c) => c.outcome !== undefined), 'renewal after the jump');
      console.log(`after the clock jump the renewal ran within ${tokens.ticks - ticksAtJump} wall-clock check(s)`);
      expect(renewer.of('jump')).toEqual([{ bucket: 'jump', options: { renewal: true }, outcome: 'ok' }]);
      expect(idp.stats.tokenRequestLog.slice(fromServer).map((e) => [e.grantType, e.status])).toEqual([['refresh_token', 200]]);
      const after = (await store.getToken(P, 'jump'))!;
      expect(after.access_token).not.toBe(before.access_token);
      expect(after.refresh_token).toBe(idp.issued.refreshTokens.at(-1));
      expect(after[OBTAINED_AT_FIELD]).toBe(clock.now);
      // The new token gets its own plan, an hour on.
      await tokens.until(() => planOf(scheduler, 'jump')?.next_renewal === after.expiry * 1000 - tokens.renewalLeadMs(after) - 0.5 * tokens.renewalJitterMs(after), 'plan of the new token');
      expect(planOf(scheduler, 'jump')?.state).toBe('scheduled');
    } finally {
      await scheduler.stop();
      await store.removeToken(P, 'jump');
    }
  });

  it('stop() leaves no timer of the scheduler pending, also after renewals that stored new tokens', async () => {
    await loginInto('stop');
    const tracker = trackTimers(/RenewalScheduler/);
    const renewer = new CountingRenewer(coordinator);
    let scheduler: RenewalScheduler | undefined;
    try {
      scheduler = new RenewalScheduler(tokens, renewer, { watchMs: 10, random: () => 0.5 });
      await scheduler.start();
      expect(tracker.pending().length).toBeGreaterThanOrEqual(2); // the watch interval and the bucket's timer
      // Two renewals, each storing a new token (and so replanning from inside the renewal).
      for (let i = 1; i <= 2; i++) {
        clock.now = planOf(scheduler, 'stop')!.next_renewal! + 1;
        await tokens.until(() => renewer.of('stop').filter((c) => c.outcome === 'ok').length === i, `renewal ${i}`);
        await tokens.until(() => planOf(scheduler!, 'stop')?.state === 'scheduled' && planOf(scheduler!, 'stop')!.next_renewal! > clock.now, `plan after renewal ${i}`);
      }
      await scheduler.stop();
      expect(tracker.pending()).toEqual([]);
      // Nothing left to fire: however far the clock goes, no renewal starts.
      clock.now += 24 * 3600_000;
      await new Promise((resolve) => setImmediate(resolve));
      expect(renewer.of('stop').length).toBe(2);
    } finally {
      tracker.restore();
      await scheduler?.stop();
      await store.removeToken(P, 'stop');
    }
  });

  it('back-off 30 s, 60 s, 120 s … capped at 30 min, and no more tries after 10 failures in a row (the upstream answers 500)', async () => {
    const before = await loginInto('backoff');
    const renewer = new CountingRenewer(coordinator);
    const logs: string[] = [];
    const scheduler = new RenewalScheduler(tokens, renewer, { watchMs: 10, random: () => 0.5, log: (l) => logs.push(l) });
    await scheduler.start();
    try {
      proxy.set({ kind: 'http500' });
      const fromProxy = proxy.requests.length;
      const fromServer = idp.stats.tokenRequestLog.length;
      const waits: number[] = [];
      for (let attempt = 1; attempt <= 10; attempt++) {
        const plan = planOf(scheduler, 'backoff')!;
        expect(plan.state).toBe(attempt === 1 ? 'scheduled' : 'backoff');
        clock.now = plan.next_renewal!; // exactly due
        await tokens.until(() => (planOf(scheduler, 'backoff')?.failures ?? 0) === attempt, `failure ${attempt}`);
        const after = planOf(scheduler, 'backoff')!;
        expect(after.last_error).toBe('REFRESH_FAILED');
        if (attempt < 10) waits.push((after.next_renewal! - clock.now) / 1000);
        else expect(after).toEqual({ provider: P, bucket: 'backoff', state: 'failing', failures: 10, last_error: 'REFRESH_FAILED' });
      }
      console.log(`renewal back-off waits (s): ${waits.join(', ')}; then stopped after 10 failures`);
      expect(waits).toEqual([30, 60, 120, 240, 480, 960, 1800, 1800, 1800]);
      expect(renewer.of('backoff').map((c) => c.outcome)).toEqual(Array(10).fill('REFRESH_FAILED'));
      // Each renewal is one refresh: the first try and two retries, all answered 500 by the proxy.
      expect(proxy.requests.slice(fromProxy).map((r) => r.outcome)).toEqual(Array(30).fill('http500'));
      expect(idp.stats.tokenRequestLog.length).toBe(fromServer);
      expect(logs.at(-1)).toMatch(/stopped after 10 failures in a row \(REFRESH_FAILED\)/);

      // Stopped: a day later nothing has been tried again.
      clock.now += 24 * 3600_000;
      await tokens.afterTicks(5);
      expect(renewer.of('backoff').length).toBe(10);
      expect(proxy.requests.length).toBe(fromProxy + 30);

      // Nothing was lost: the stored refresh token (never sent to the server) still works.
      const stored = (await store.getToken(P, 'backoff'))!;
      expect(stored.refresh_token).toBe(before.refresh_token);
      proxy.set({ kind: 'pass' });
      const renewed = await coordinator.refresh(P, 'backoff');
      expect(renewed.access_token).not.toBe(before.access_token);
      expect(idp.stats.tokenRequestLog.slice(fromServer).map((e) => [e.grantType, e.status])).toEqual([['refresh_token', 200]]);
    } finally {
      proxy.set({ kind: 'pass' });
      await scheduler.stop();
      await store.removeToken(P, 'backoff');
    }
  });

  it('two daemons on one store back off together through an outage: at most 10 tries each, then both stop', async () => {
    const before = await loginInto('shared-outage');
    // Two daemons: each its own TokenService and coordinator, one store (its lock is shared by both).
    const otherTokens = new SteppedTokens(store, clock);
    const daemons = [
      { tokens, renewer: new CountingRenewer(coordinator) },
      { tokens: otherTokens, renewer: new CountingRenewer(new RefreshCoordinator({ tokens: otherTokens, registry, sleep: async () => {} })) },
    ].map((d, i) => ({ ...d, scheduler: new RenewalScheduler(d.tokens, d.renewer, { watchMs: 10, random: () => (i === 0 ? 0.2 : 0.8) }) }));
    for (const d of daemons) await d.scheduler.start();
    try {
      proxy.set({ kind: 'http500' });
      const fromProxy = proxy.requests.length;
      const fromServer = idp.stats.tokenRequestLog.length;
      const startedAt = clock.now;
      const plans = () => daemons.map((d) => planOf(d.scheduler, 'shared-outage')!);
      const settled = () => plans().every((p) => p.state !== 'renewing' && (p.next_renewal === undefined || p.next_renewal > clock.now));
      let steps = 0;
      // Step the clock to the next attempt either daemon has planned, until neither plans one.
      for (; steps < 100; steps++) {
        const next = plans().flatMap((p) => (p.state === 'scheduled' || p.state === 'backoff' ? [p.next_renewal!] : []));
        if (next.length === 0) break;
        clock.now = Math.max(clock.now, Math.min(...next));
        await tokens.until(settled, `step ${steps}`);
      }
      const tries = (proxy.requests.length - fromProxy) / 3;
      console.log(
        `two daemons, upstream down: ${tries} refresh attempts (3 tries each) in ${steps} steps over ${((clock.now - startedAt) / 3600_000).toFixed(1)} h of clock; ` +
          `renewal calls ${daemons.map((d) => d.renewer.of('shared-outage').length).join('/')}, states ${plans().map((p) => `${p.state}(${p.failures})`).join('/')}`,
      );
      expect(plans().map((p) => p.state)).toEqual(['failing', 'failing']);
      // Each daemon counts the failures it sees, its own and the other's: at most 10 tries each, not one per cooldown.
      expect(tries).toBeLessThanOrEqual(20);
      expect(idp.stats.tokenRequestLog.length).toBe(fromServer);
      expect((await store.getToken(P, 'shared-outage'))!.refresh_token).toBe(before.refresh_token);
    } finally {
      proxy.set({ kind: 'pass' });
      for (const d of daemons) await d.scheduler.stop();
      await store.removeToken(P, 'shared-outage');
    }
  });

  it('a token another process stores while a scan of the store is running is still planned', async () => {
    /** A store whose next read of one bucket waits until the test lets it go: a scan held open. */
    class GatedStore extends MemoryStore {
      gate: { bucket: string; entered: () => void; release: Promise<void> } | null = null;
      override async getToken(provider: string, bucket: string): Promise<StoredToken | null> {
        const gate = this.gate;
        if (gate && gate.bucket === bucket) {
          this.gate = null;
          gate.entered();
          await gate.release;
        }
        return super.getToken(provider, bucket);
      }
    }
    const gated = new GatedStore();
    const own = new SteppedTokens(gated, clock);
    // Another process: its own service on the same store, so this scheduler hears of its writes only through the change stamp.
    const other = new TokenService(gated, { now: () => clock.now });
    const far = (name: string): StoredToken => ({ access_token: `at-${name}`, refresh_token: `rt-${name}`, token_type: 'Bearer', expiry: Math.floor(clock.now / 1000) + 3600 });
    const scheduler = new RenewalScheduler(own, new CountingRenewer(coordinator), { watchMs: 10 });
    await scheduler.start();
    try {
      let entered!: () => void;
      let release!: () => void;
      const inScan = new Promise<void>((resolve) => (entered = resolve));
      gated.gate = { bucket: 'first', entered, release: new Promise<void>((resolve) => (release = resolve)) };
      await other.replace(P, 'first', far('first'));
      await inScan; // the scan that this write started is reading 'first'
      await other.replace(P, 'second', far('second'));
      await own.afterTicks(2); // the stamp moved again while that scan was still running
      release();
      await own.until(() => scheduler.status().length === 2, 'both buckets planned', 100);
      expect(scheduler.status().map((s) => [s.bucket, s.state])).toEqual([
        ['first', 'scheduled'],
        ['second', 'scheduled'],
      ]);
    } finally {
      await scheduler.stop();
    }
  });

  it('a store that cannot be read at start: start() fails, but the store is still watched and a later token is planned', async () => {
    class UnreadableOnce extends MemoryStore {
      failures = 1;
      override async listProviders(): Promise<string[]> {
        if (this.failures-- > 0) throw new Error('the keyring is locked');
        return super.listProviders();
      }
    }
    const flaky = new UnreadableOnce();
    const own = new SteppedTokens(flaky, clock);
    const other = new TokenService(flaky, { now: () => clock.now });
    const scheduler = new RenewalScheduler(own, new CountingRenewer(coordinator), { watchMs: 10 });
    try {
      await expect(scheduler.start()).rejects.toThrow('the keyring is locked');
      // Unlocked later; another process stores a token.
      await other.replace(P, 'later', { access_token: 'at-later', refresh_token: 'rt-later', token_type: 'Bearer', expiry: Math.floor(clock.now / 1000) + 3600 });
      let guard: NodeJS.Timeout | undefined;
      await Promise.race([
        own.until(() => scheduler.status().length === 1, 'the later token planned', 100),
        new Promise((_, reject) => (guard = setTimeout(() => reject(new Error('no wall-clock check ran after the failed start')), 5_000))),
      ]).finally(() => clearTimeout(guard));
      expect(scheduler.status()).toMatchObject([{ bucket: 'later', state: 'scheduled' }]);
    } finally {
      await scheduler.stop();
    }
  });

  it('REAUTH_REQUIRED (invalid_grant) stops renewal at once and marks the bucket needs_login, here and in a scheduler started later', async () => {
    const before = await loginInto('reauth');
    const renewer = new CountingRenewer(coordinator);
    const logs: string[] = [];
    const scheduler = new RenewalScheduler(tokens, renewer, { watchMs: 10, random: () => 0.5, log: (l) => logs.push(l) });
    await scheduler.start();
    let later: RenewalScheduler | undefined;
    try {
      // The user revoked the grant at the provider.
      expect(await idp.revokeRefreshToken(before.refresh_token!)).toBe(true);
      const fromServer = idp.stats.tokenRequestLog.length;
      clock.now = planOf(scheduler, 'reauth')!.next_renewal! + 1;
      await tokens.until(() => planOf(scheduler, 'reauth')?.state === 'needs_login', 'needs_login');
      expect(planOf(scheduler, 'reauth')).toEqual({ provider: P, bucket: 'reauth', state: 'needs_login', failures: 0, last_error: 'REAUTH_REQUIRED' });
      expect(idp.stats.tokenRequestLog.slice(fromServer).map((e) => [e.status, e.error])).toEqual([[400, 'invalid_grant']]);
      expect(logs.join('\n')).toMatch(/renewal of myidp\/reauth stopped: the provider rejected the refresh token; log in again/);
      expect(tokens.lastRefreshResult((await store.getToken(P, 'reauth'))!)).toBe('REAUTH_REQUIRED');

      // Hours later, past every back-off: no second try.
      clock.now += 6 * 3600_000;
      await tokens.afterTicks(5);
      expect(renewer.of('reauth').map((c) => c.outcome)).toEqual(['REAUTH_REQUIRED']);
      expect(idp.stats.tokenRequestLog.length).toBe(fromServer + 1);

      // Another daemon (or this one restarted) reads the mark from the store and does not try either.
      const otherRenewer = new CountingRenewer(coordinator);
      later = new RenewalScheduler(tokens, otherRenewer, { watchMs: 10 });
      await later.start();
      await tokens.afterTicks(5);
      expect(planOf(later, 'reauth')).toMatchObject({ state: 'needs_login' });
      expect(otherRenewer.calls).toEqual([]);
    } finally {
      await later?.stop();
      await scheduler.stop();
      await store.removeToken(P, 'reauth');
    }
  });
});

describe('renewal of 4 s access tokens by a daemon (real clock)', () => {
  const TTL_S = 4;
  let idp: AuthServer;
  let daemon: Daemon;
  let dir: string;

  /** Every write of the store, with the token stored before and after it. */
  interface Write {
    at: number;
    bucket: string;
    before: StoredToken | null;
    after: StoredToken;
  }
  class RecordingStore extends MemoryStore {
    history: Write[] = [];
    override async saveToken(provider: string, bucket: string, token: StoredToken): Promise<void> {
      const before = await super.getToken(provider, bucket);
      await super.saveToken(provider, bucket, token);
      // Sampled straight from the store at the moment of the change.
      this.history.push({ at: Date.now(), bucket, before, after: (await super.getToken(provider, bucket))! });
    }
  }
  let store: RecordingStore;

  beforeAll(async () => {
    idp = await startAuthServer({ deviceInterval: 0.1, rotateRefreshTokens: true, accessTokenTtlSeconds: TTL_S });
    dir = tempDir('cprd-');
    dirs.push(dir);
    const configPath = path.join(dir, 'config.json');
    writeProviderConfig(configPath, idp, P);
    store = new RecordingStore();
    daemon = await startDaemon({
      tokens: store,
      keys: store,
      socketPath: path.join(dir, 'd.sock'),
      audit: 'off',
      discovery: false,
      providers: registryFrom(configPath),
      renewal: { watchMs: 200 },
      log: (line) => console.log(`daemon: ${line}`),
    });
  });

  afterAll(async () => {
    await daemon?.stop();
    await idp?.close();
  });

  it('keeps the token valid across 5 lifetimes with no client request: each token renewed once, in its renewal window, before it expired', async () => {
    const c = await RawClient.ready(daemon.socketPath);
    await daemonLogin(c, P, 'auto', idp);
    c.close();
    const loginWrite = store.history.filter((w) => w.bucket === 'auto').at(-1)!;
    const fromServer = idp.stats.tokenRequestLog.length;
    const start = Date.now();
    const windowMs = 5 * TTL_S * 1000;

    // The daemon is left alone: the test only watches the store, on every write.
    await new Promise<void>((resolve, reject) => {
      const check = setInterval(() => {
        const current = store.history.filter((w) => w.bucket === 'auto').at(-1)!;
        if (current.after.expiry * 1000 <= Date.now()) {
          clearInterval(check);
          reject(new Error(`the stored token expired at ${current.after.expiry * 1000} (now ${Date.now()})`));
        } else if (Date.now() - start >= windowMs) {
          clearInterval(check);
          resolve();
        }
      }, 50);
    });
    const end = Date.now();
    const final = (await store.getToken(P, 'auto'))!;
    expect(final.expiry * 1000).toBeGreaterThan(end);

    const writes = store.history.filter((w) => w.bucket === 'auto' && w.at >= loginWrite.at);
    const renewals = writes.filter((w) => w.before && w.after.access_token !== w.before.access_token);
    const refreshes = idp.stats.tokenRequestLog.slice(fromServer).filter((e) => e.grantType === 'refresh_token');
    const elapsed = end - start;
    console.log(
      `4 s tokens, ${(elapsed / 1000).toFixed(1)} s without a client: ${refreshes.length} refresh requests at the server ` +
        `(${((refreshes.length * TTL_S * 1000) / elapsed).toFixed(2)} per ${TTL_S} s lifetime), ${writes.length} store writes; ` +
        `token age at renewal (ms): ${renewals.map((w) => Number(w.after[REFRESH_ATTEMPT_FIELD]) - Number(w.before![OBTAINED_AT_FIELD])).join(', ')}`,
    );

    // Every sample — the token stored at each change — was valid, and so was the token it replaced.
    for (const w of writes) {
      expect(w.after.expiry * 1000, 'the token stored at a change is valid').toBeGreaterThan(w.at);
      if (w.before) expect(w.before.expiry * 1000, 'the replaced token had not expired').toBeGreaterThan(w.at);
    }
    // Each upstream refresh renewed the token once: one successful refresh per stored token, none rejected.
    expect(refreshes.every((e) => e.status === 200)).toBe(true);
    expect(refreshes.length).toBe(renewals.length);
    expect(new Set(renewals.map((w) => w.before!.access_token)).size).toBe(renewals.length);
    // Enough to stay valid through 5 lifetimes; every renewal decided inside the renewal window
    // (expiry − L/2 − L/10 at the earliest), never earlier, so never more than one per half-lifetime or so.
    expect(renewals.length).toBeGreaterThanOrEqual(4);
    for (const w of renewals) {
      const prev = w.before!;
      const lifetime = prev.expiry * 1000 - Number(prev[OBTAINED_AT_FIELD]);
      const earliest = prev.expiry * 1000 - lifetime / 2 - lifetime / 10;
      expect(Number(w.after[REFRESH_ATTEMPT_FIELD])).toBeGreaterThanOrEqual(earliest);
    }
    // Nothing but the login and the renewals talked to the token endpoint.
    expect(idp.stats.tokenRequestLog.slice(fromServer).length).toBe(refreshes.length);
  }, 60_000);

  it('a revoked grant: the renewal gets invalid_grant once and daemon_status says needs_login', async () => {
    const c = await RawClient.ready(daemon.socketPath);
    await daemonLogin(c, P, 'revoked', idp);
    c.close();
    const stored = (await store.getToken(P, 'revoked'))!;
    expect(await idp.revokeRefreshToken(stored.refresh_token!)).toBe(true);
    const fromServer = idp.stats.tokenRequestLog.length;
    const rejected = () => idp.stats.tokenRequestLog.slice(fromServer).filter((e) => e.error === 'invalid_grant');
    // The renewal comes by itself about 2 s after the login; the store records its outcome.
    await new Promise<void>((resolve) => {
      const check = setInterval(() => {
        if (store.history.some((w) => w.bucket === 'revoked' && w.after.refresh_result === 'REAUTH_REQUIRED')) {
          clearInterval(check);
          resolve();
        }
      }, 50);
    });
    expect(rejected().length).toBe(1);
    const ctl = await RawClient.ready(daemon.controlPath);
    // The scheduler takes the outcome in once the refresh call returns, just after that write.
    let status: { tokens: Array<Record<string, unknown>> };
    let line: Record<string, unknown> | undefined;
    do {
      status = (await ctl.request('daemon_status')).data as typeof status;
      line = status.tokens.find((t) => t.bucket === 'revoked');
    } while (line?.renewal === 'renewing');
    ctl.close();
    expect(line).toMatchObject({ provider: P, bucket: 'revoked', refresh_token: true, needs_login: true, renewal: 'needs_login', last_refresh: { result: 'REAUTH_REQUIRED' } });
    expect(line).not.toHaveProperty('next_renewal');
    expect(JSON.stringify(status)).not.toContain(stored.access_token);
    // The 'auto' bucket of the previous test is still being renewed and is fine.
    expect(status.tokens.find((t) => t.bucket === 'auto')).toMatchObject({ needs_login: false, renewal: expect.stringMatching(/^(scheduled|renewing)$/), last_refresh: { result: 'ok' } });
  }, 30_000);
});
