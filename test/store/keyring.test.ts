/**
 * KeyringStore against a real Secret Service (dbus-daemon + gnome-keyring-daemon started here).
 * With CI=true this must run: missing components fail the suite instead of skipping it.
 */
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { KeyringStore } from '../../src/store/keyring.js';
import { openStores, probeKeyring } from '../../src/store/open.js';
import { storeContract, type Store } from './contract.js';
import { assertBuilt, removeTempDirs, runWorker, runWorkers, startWorker, tempDir, token } from './helpers.js';
import { missingBinaries, SECRET_SERVICE_PACKAGES, startSecretService, startSessionBus, type SecretService } from './secretService.js';

const missing = missingBinaries();
const required = process.env.CI === 'true';
const skip = missing.length > 0 && !required;
if (skip) {
  console.warn(`Skipping the keyring tests: ${missing.join(', ')} not found (Debian: apt-get install ${SECRET_SERVICE_PACKAGES}). With CI=true they fail instead.`);
}

let services = 0;
const nextService = () => `credproxy-test-${process.pid}-${++services}`;

describe.skipIf(skip)('KeyringStore with a real Secret Service', () => {
  let ss: SecretService | undefined;
  const savedAddress = process.env.DBUS_SESSION_BUS_ADDRESS;

  beforeAll(async () => {
    if (missing.length > 0) throw new Error(`CI=true but ${missing.join(', ')} not installed: apt-get install ${SECRET_SERVICE_PACKAGES}`);
    assertBuilt();
    ss = await startSecretService();
    // The native library reads this at its first use in this process, which comes after this line.
    process.env.DBUS_SESSION_BUS_ADDRESS = ss.address;
  });

  // A test that broke the service (our daemon died, lost its name or its unlock) fails here with the
  // daemon's own words, instead of the next test failing with a misleading keyring error.
  afterEach(async () => {
    await ss?.assertHealthy();
  });

  afterAll(async () => {
    await ss?.stop();
    if (savedAddress === undefined) delete process.env.DBUS_SESSION_BUS_ADDRESS;
    else process.env.DBUS_SESSION_BUS_ADDRESS = savedAddress;
    removeTempDirs();
  });

  const openKeyring = (dataDir = tempDir(), service = nextService()) => KeyringStore.open({ dataDir, service });

  describe('contract', () => {
    storeContract({
      open: () => openKeyring(),
      reopen: (store: Store) => {
        const k = store as KeyringStore;
        return openKeyring(path.dirname(k.statePath), k.service);
      },
    });
  });

  it('keeps items in the Secret Service, found by a D-Bus SearchItems (not the kernel keyring)', async () => {
    const service = nextService();
    const store = await openKeyring(tempDir(), service);
    await store.saveToken('prov', 'work', token());
    await store.setKey('openai', 'sk-1');
    const items = await ss!.searchItems(service);
    expect(items).toHaveLength(2);
    for (const item of items) expect(item).toMatch(/^\/org\/freedesktop\/secrets\/collection\/login\//);
    await store.removeToken('prov', 'work');
    expect(await ss!.searchItems(service)).toHaveLength(1);
  });

  it('keeps keyring.state 0600 and moves its stamp on writes by another process', async () => {
    const dir = tempDir();
    const service = nextService();
    const store = await openKeyring(dir, service);
    expect(fs.statSync(path.join(dir, 'keyring.state')).mode & 0o777).toBe(0o600);
    await store.setKey('mine', 'v');
    const stamp = store.changeStamp();
    expect(await store.getKey('theirs')).toBeNull(); // cached as absent under this stamp
    await runWorker({ op: 'set-key', backend: 'keyring', dataDir: dir, service, name: 'theirs', value: 'v2' });
    expect(store.changeStamp()).not.toBe(stamp);
    expect(await store.getKey('theirs')).toBe('v2');
    expect(await store.listKeys()).toEqual(['mine', 'theirs']);
  });

  it('3 processes x 10 locked read-modify-write updates lose none', { timeout: 120_000 }, async () => {
    const dir = tempDir();
    const service = nextService();
    await runWorkers([0, 1, 2].map((id) => ({ op: 'increment', backend: 'keyring', dataDir: dir, service, id, count: 10 })));
    const store = await openKeyring(dir, service);
    expect((await store.getToken('counter', 'default'))!.count).toBe(30);
    expect(await store.listKeys()).toHaveLength(30);
  });

  it('a locked collection: each operation fails with a StoreError naming it, changes nothing, and the data is there once unlocked', async () => {
    const dir = tempDir();
    const service = nextService();
    const store = await openKeyring(dir, service);
    await store.saveToken('p', 'b', token({ access_token: 'at-before' }));
    await store.setKey('k', 'v0');
    const collection = await ss!.lockDefaultCollection();
    expect(collection).toBe('/org/freedesktop/secrets/collection/login');
    try {
      const locked = await openKeyring(dir, service); // nothing cached
      const refused = { name: 'StoreError', reason: 'unavailable', message: expect.stringMatching(/default collection .*"login" keyring\) is locked/) };
      await expect(locked.getToken('p', 'b')).rejects.toMatchObject(refused);
      await expect(locked.getKey('k')).rejects.toMatchObject(refused);
      await expect(locked.listKeys()).rejects.toMatchObject(refused);
      await expect(locked.saveToken('p', 'b', token({ access_token: 'at-while-locked' }))).rejects.toMatchObject(refused);
      await expect(locked.setKey('k2', 'v')).rejects.toMatchObject(refused);
    } finally {
      await ss!.restartKeyring(); // the restarted daemon unlocks the login keyring again
    }
    const unlocked = await openKeyring(dir, service);
    expect((await unlocked.getToken('p', 'b'))!.access_token).toBe('at-before');
    expect(await unlocked.listKeys()).toEqual(['k']);
  });

  it('rebuilds its connection when the Secret Service restarts, and the data survived on disk', async () => {
    const dir = tempDir();
    const service = nextService();
    const store = await openKeyring(dir, service);
    await store.saveToken('p', 'b', token());
    await store.setKey('before', 'v0');
    await ss!.restartKeyring();
    // The cached entry's Secret Service session died with the daemon ("The session does not exist"):
    // the store must rebuild it instead of failing from now on.
    await store.saveToken('p', 'b', token({ access_token: 'at-after' }));
    expect((await store.getToken('p', 'b'))!.access_token).toBe('at-after');
    const fresh = await openKeyring(dir, service);
    expect(await fresh.getKey('before')).toBe('v0');
  });

  it('openStores: auto chooses the keyring when the Secret Service answers', async () => {
    const opened = await openStores({ backend: 'auto', dataDir: tempDir(), env: process.env });
    expect(opened.backend).toBe('keyring');
    expect(opened.reason).toBe('keyring: the Secret Service answered within 2 s');
    expect(opened.protects).toMatch(/Secret Service .* other processes of your user can still ask for them/);
    const explicit = await openStores({ backend: 'keyring', dataDir: tempDir(), env: process.env });
    expect(explicit.reason).toBe('keyring: requested; the Secret Service answered within 2 s');
  });

  it('openStores: auto keeps an existing file store even when a keyring answers', async () => {
    const dir = tempDir();
    const file = await openStores({ backend: 'file', dataDir: dir, env: { DBUS_SESSION_BUS_ADDRESS: ss!.address } });
    await file.keys.setKey('k', 'v');
    const opened = await openStores({ backend: 'auto', dataDir: dir, env: process.env });
    expect(opened.backend).toBe('file');
    expect(opened.reason).toContain('already holds the credentials');
    expect(await opened.keys.getKey('k')).toBe('v');
  });

  it('probe: a session bus without a Secret Service fails fast with the D-Bus reason', async () => {
    const bare = await startSessionBus();
    try {
      // Probed in a child process, so this worker's keyring connection is not affected.
      const result = await probeKeyring({ ...process.env, DBUS_SESSION_BUS_ADDRESS: bare.address }, 5000).catch((e: unknown) => e);
      // A custom env with another bus is refused before probing (the library uses process.env)...
      expect(result).toEqual({ ok: false, why: expect.stringContaining('differs from this process environment') });
      // ...so probe the bare bus from a child whose own process env names it.
      const run = startWorker({ op: 'probe' }, { ...bare.env });
      const { code, stderr } = await run.exited;
      expect(code, stderr).toBe(0);
      const probe = JSON.parse(run.lines[0]!) as { ok: boolean; why?: string };
      expect(probe.ok).toBe(false);
      // The bus's own answer, not the probe's timeout ("no Secret Service answered within …"): it failed fast.
      expect(probe.why).toMatch(/^the Secret Service did not work: .*(ServiceUnknown|not provided|activat)/i);
    } finally {
      await bare.stop();
    }
  });
});
