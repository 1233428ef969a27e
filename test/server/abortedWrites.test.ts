/**
 * What a write that times out or is cancelled while it waits for the refresh lock may still do
 * (README "When a request times out"): nothing. Real daemons on real sockets, the lock held by
 * another process (file store, keyring store) or by another holder in this process (memory store).
 * Every wait is on an event — the holder's "held" line, a reply, the lock queue — never on a sleep.
 */
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { PollResult } from '../../src/oauth/flowTypes.js';
import { TokenService } from '../../src/oauth/TokenService.js';
import { startDaemon, type Daemon, type StartOptions } from '../../src/server/daemon.js';
import { FileStore } from '../../src/store/fileStore.js';
import { KeyringStore } from '../../src/store/keyring.js';
import { tokenLockPath } from '../../src/store/locks.js';
import { MemoryStore } from '../../src/store/memory.js';
import type { KeyStore, StoredToken, TokenStore } from '../../src/store/types.js';
import { sampleToken } from '../helpers/daemon.js';
import { RawClient } from '../helpers/rawClient.js';
import { scriptedDeviceProvider } from '../helpers/scriptedProvider.js';
import { assertBuilt, cleanEnv, removeTempDirs, startWorker, tempDir, type WorkerRun } from '../store/helpers.js';
import { missingBinaries, SECRET_SERVICE_PACKAGES, startSecretService, type SecretService } from '../store/secretService.js';

const P = 'anthropic';
const B = 'default';
const TIMEOUT_MS = 400;
// Long enough that a stop() which had to wait for a lock wait still running would be obvious.
const SHUTDOWN_GRACE_MS = 20_000;

afterAll(removeTempDirs);

/** `promise`, or a rejection naming `what` when it has not settled within `ms` (a bound, not a wait). */
function within<T>(ms: number, what: string, promise: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const bound = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`${what} did not settle within ${ms} ms`)), ms)));
  return Promise.race([promise, bound]).finally(() => clearTimeout(timer));
}

async function daemonOn(store: TokenStore & KeyStore, dir: string, extra: Partial<StartOptions> = {}): Promise<Daemon> {
  return startDaemon({
    tokens: store,
    keys: store,
    socketPath: path.join(dir, 'd.sock'),
    audit: 'off',
    discovery: false,
    limits: { operationTimeoutMs: TIMEOUT_MS, shutdownGraceMs: SHUTDOWN_GRACE_MS },
    ...extra,
  });
}

/** Stops the daemon and returns how long that took: it waits (up to the grace) for handler work still running. */
async function timedStop(daemon: Daemon): Promise<number> {
  const started = Date.now();
  await daemon.stop();
  return Date.now() - started;
}

type Write = 'save_token' | 'remove_token';
type Ending = 'timeout' | 'cancel';

/**
 * Sends `write` for (P, B) while the lock is held and ends it by `ending`; returns the reply. A
 * cancel is sent once a later request on the same connection has been answered, so the write is
 * certainly under way (waiting for the lock) when it arrives.
 */
async function endedWrite(client: RawClient, write: Write, ending: Ending): Promise<Record<string, unknown>> {
  const payload = write === 'save_token' ? { provider: P, bucket: B, token: { access_token: 'at-from-the-sandbox', expiry: 2_000_000_000, token_type: 'Bearer' } } : { provider: P, bucket: B };
  if (ending === 'timeout') return client.request(write, payload, 'w');
  client.send({ v: 2, id: 'w', op: write, payload });
  expect(await client.request('has_api_key', { name: 'k' }, 'probe')).toMatchObject({ ok: true });
  expect(await client.request('cancel', { targetId: 'w' }, 'c')).toEqual({ v: 2, id: 'c', ok: true, data: { cancelled: true } });
  return client.replyFor('w');
}

const EXPECTED: Record<Ending, Record<string, unknown>> = {
  timeout: { v: 2, id: 'w', ok: false, code: 'INTERNAL_ERROR', error: 'Operation timed out' },
  cancel: { v: 2, id: 'w', ok: false, code: 'CANCELLED', error: 'Request cancelled' },
};

const CASES: Array<[Write, Ending]> = [
  ['save_token', 'timeout'],
  ['remove_token', 'timeout'],
  ['save_token', 'cancel'],
  ['remove_token', 'cancel'],
];

interface CrossProcessBackend {
  /** A store over `dir`; `refreshLockWaitMs` 0 means "fail unless the lock is free at the first attempt". */
  open(dir: string, refreshLockWaitMs?: number): Promise<TokenStore & KeyStore>;
  /** The worker command that holds the refresh lock of (P, B) over the same storage. */
  holdCommand(dir: string): Record<string, unknown>;
  env(): NodeJS.ProcessEnv;
}

/** The scenarios with the lock held by a real second process (store-worker.mjs "hold-lock"). */
function crossProcessScenarios(backend: () => CrossProcessBackend): void {
  it.each(CASES)('%s ended by %s while another process holds the lock writes nothing, stops waiting and keeps no lock', async (write, ending) => {
    const b = backend();
    const dir = tempDir();
    const store = await b.open(dir);
    const original: StoredToken = sampleToken();
    await store.saveToken(P, B, original);
    const lockDir = `${tokenLockPath(path.join(dir, 'locks'), P, B)}.lock`;

    const holder: WorkerRun = startWorker(b.holdCommand(dir), b.env());
    try {
      await holder.waitForLines(1);
      expect(holder.lines[0]).toBe('held');
      const daemon = await daemonOn(store, dir);
      const client = await RawClient.ready(daemon.socketPath);
      expect(await endedWrite(client, write, ending)).toEqual(EXPECTED[ending]);
      client.close();

      // The lock is still held by the other process. A lock wait (or proper-lockfile retry loop)
      // still running would keep the daemon's stop waiting for the whole grace period.
      expect(await timedStop(daemon)).toBeLessThan(3_000);
      expect(fs.existsSync(lockDir)).toBe(true);

      holder.child.kill('SIGUSR2');
      await holder.waitForLines(2);
      expect(holder.lines[1]).toBe('released');
      expect((await holder.exited).code).toBe(0);
      // Nothing of ours is left behind: the only lock directory was the other process's.
      expect(fs.existsSync(lockDir)).toBe(false);

      const reader = await b.open(dir);
      expect(await reader.getToken(P, B)).toEqual(original);
      // Another writer gets the lock on its first attempt.
      const other = await b.open(dir, 0);
      await new TokenService(other).replace(P, B, sampleToken({ access_token: 'at-next-writer' }));
      expect((await reader.getToken(P, B))!.access_token).toBe('at-next-writer');
      await Promise.all([store.close?.(), reader.close?.(), other.close?.()]);
    } finally {
      if (holder.child.exitCode === null && holder.child.signalCode === null) holder.child.kill('SIGKILL');
    }
  });
}

describe('file store, the refresh lock held by another process', () => {
  beforeAll(assertBuilt);
  crossProcessScenarios(() => ({
    open: (dir, refreshLockWaitMs) => FileStore.open({ dataDir: dir, env: cleanEnv(), ...(refreshLockWaitMs === undefined ? {} : { refreshLockWaitMs }) }),
    holdCommand: (dir) => ({ op: 'hold-lock', dataDir: dir, provider: P, bucket: B }),
    env: () => cleanEnv(),
  }));

  it('a completed login whose poll timed out waiting for the lock is still stored, and the session is spent', async () => {
    const dir = tempDir();
    const store = await FileStore.open({ dataDir: dir, env: cleanEnv() });
    const issued = sampleToken({ access_token: 'at-from-the-login' });
    const provider = scriptedDeviceProvider({ name: P, poll: async (): Promise<PollResult> => ({ status: 'complete', token: issued }) });
    const holder = startWorker({ op: 'hold-lock', dataDir: dir, provider: P, bucket: B });
    try {
      await holder.waitForLines(1);
      const daemon = await daemonOn(store, dir, { providers: provider.registry });
      const client = await RawClient.ready(daemon.socketPath);
      const started = await client.request('oauth_initiate', { provider: P }, 'i');
      const session = (started.data as { session_id: string }).session_id;
      expect(await client.request('oauth_poll', { session_id: session }, 'p1')).toEqual({ v: 2, id: 'p1', ok: false, code: 'INTERNAL_ERROR', error: 'Operation timed out' });
      // The provider's answer is not thrown away and cannot be redeemed twice.
      expect(await client.request('oauth_poll', { session_id: session }, 'p2')).toMatchObject({ ok: false, code: 'SESSION_ALREADY_USED' });
      expect(await store.getToken(P, B)).toBeNull();

      holder.child.kill('SIGUSR2');
      await holder.waitForLines(2);
      // The completion was queued on the lock before this reader, so it has stored when this runs.
      const stored = await new TokenService(store).locked(P, B, (t) => t.read());
      // As issued, plus the host's note of when it obtained it.
      expect(stored).toEqual({ ...issued, obtained_at: expect.any(Number) });
      client.close();
      await daemon.stop();
    } finally {
      if (holder.child.exitCode === null && holder.child.signalCode === null) holder.child.kill('SIGKILL');
    }
  });
});

const missing = missingBinaries();
const skipKeyring = missing.length > 0 && process.env.CI !== 'true';
if (skipKeyring) console.warn(`Skipping the keyring variant: ${missing.join(', ')} not found (Debian: apt-get install ${SECRET_SERVICE_PACKAGES}).`);

describe.skipIf(skipKeyring)('keyring store, the refresh lock held by another process', () => {
  let ss: SecretService | undefined;
  const savedAddress = process.env.DBUS_SESSION_BUS_ADDRESS;
  const service = `credproxy-test-abort-${process.pid}`;
  beforeAll(async () => {
    if (missing.length > 0) throw new Error(`CI=true but ${missing.join(', ')} not installed: apt-get install ${SECRET_SERVICE_PACKAGES}`);
    assertBuilt();
    ss = await startSecretService();
    // The native library reads this at its first use in this process, which comes after this line.
    process.env.DBUS_SESSION_BUS_ADDRESS = ss.address;
  });
  afterAll(async () => {
    await ss?.stop();
    if (savedAddress === undefined) delete process.env.DBUS_SESSION_BUS_ADDRESS;
    else process.env.DBUS_SESSION_BUS_ADDRESS = savedAddress;
  });

  crossProcessScenarios(() => ({
    open: (dir, refreshLockWaitMs) => KeyringStore.open({ dataDir: dir, service: `${service}-${path.basename(dir)}`, ...(refreshLockWaitMs === undefined ? {} : { refreshLockWaitMs }) }),
    holdCommand: (dir) => ({ op: 'hold-lock', backend: 'keyring', dataDir: dir, service: `${service}-${path.basename(dir)}`, provider: P, bucket: B }),
    env: () => cleanEnv({ DBUS_SESSION_BUS_ADDRESS: ss!.address }),
  }));
});

describe('memory store, the refresh lock held by another holder in the daemon process', () => {
  /** Holds (P, B)'s lock on `store` until `letGo()`; resolves once it holds it. */
  async function holdLock(store: TokenStore): Promise<{ letGo: () => void; done: Promise<void> }> {
    let letGo!: () => void;
    let held!: () => void;
    const holding = new Promise<void>((resolve) => (held = resolve));
    const done = store.withTokenLock(P, B, () => {
      held();
      return new Promise<void>((resolve) => (letGo = resolve));
    });
    await holding;
    return { letGo, done };
  }

  it.each(CASES)('%s ended by %s writes nothing and gives the lock up at once', async (write, ending) => {
    const dir = tempDir();
    const store = new MemoryStore();
    const original = sampleToken();
    await store.saveToken(P, B, original);
    const holder = await holdLock(store);
    const daemon = await daemonOn(store, dir);
    const client = await RawClient.ready(daemon.socketPath);
    expect(await endedWrite(client, write, ending)).toEqual(EXPECTED[ending]);
    client.close();
    // A write still queued for the lock would keep stop() waiting for the grace period.
    expect(await timedStop(daemon)).toBeLessThan(3_000);

    holder.letGo();
    await holder.done;
    expect(await store.getToken(P, B)).toEqual(original);
    // The aborted request left no place in the queue behind: the next holder gets the lock at once.
    await within(1_000, 'the next lock holder', store.withTokenLock(P, B, async () => store.saveToken(P, B, sampleToken({ access_token: 'at-next' }))));
    expect((await store.getToken(P, B))!.access_token).toBe('at-next');
  });

  it('a write queued behind the aborted one still waits for the holder, then runs', async () => {
    const dir = tempDir();
    const store = new MemoryStore();
    await store.saveToken(P, B, sampleToken());
    const holder = await holdLock(store);
    const daemon = await daemonOn(store, dir, { limits: { operationTimeoutMs: 10_000, shutdownGraceMs: SHUTDOWN_GRACE_MS } });
    const client = await RawClient.ready(daemon.socketPath);
    const token = { access_token: 'at-second', expiry: 2_000_000_000, token_type: 'Bearer' };
    client.send({ v: 2, id: 'first', op: 'save_token', payload: { provider: P, token: { ...token, access_token: 'at-first' } } });
    client.send({ v: 2, id: 'second', op: 'save_token', payload: { provider: P, token } });
    expect(await client.request('cancel', { targetId: 'first' }, 'c')).toMatchObject({ ok: true, data: { cancelled: true } });
    expect(await client.replyFor('first')).toMatchObject({ code: 'CANCELLED' });
    // Still the holder's: the second write has not jumped the queue.
    expect((await store.getToken(P, B))!.access_token).not.toBe('at-second');
    holder.letGo();
    expect(await client.replyFor('second')).toEqual({ v: 2, id: 'second', ok: true, data: {} });
    expect((await store.getToken(P, B))!.access_token).toBe('at-second');
    client.close();
    await daemon.stop();
  });
});
