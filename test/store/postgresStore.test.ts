/**
 * PostgresStore against a real PostgreSQL server: values sealed before they leave the host (pg_dump
 * holds none), rows bound to their names, one key per fleet, changes seen on other hosts through
 * NOTIFY and through the generation re-read after a lost connection, the refresh lock across
 * stores (abort while waiting), and a database restart in the middle of use.
 */
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import pg from 'pg';
import { describe, expect, it } from 'vitest';
import { CachedTokenStore } from '../../src/store/CachedTokenStore.js';
import { LOCK_NAMESPACE } from '../../src/store/postgresSchema.js';
import { StoreError } from '../../src/store/types.js';
import { token } from './helpers.js';
import { freshDatabase, gatedSleep, holdLock, hostDir, nextEvent, nextGeneration, openStore, pgSkipReason, until, usePostgres } from './postgresHelpers.js';

const server = usePostgres();

const CANARY_ACCESS = 'at-CANARY-3b8f0c1d9e2a4f6b8c0d2e4f6a8b0c1d';
const CANARY_REFRESH = 'rt-CANARY-7e6d5c4b3a29180f7e6d5c4b3a291807';
const CANARY_KEY = 'sk-CANARY-0a1b2c3d4e5f60718293a4b5c6d7e8f9';

async function rejection(promise: Promise<unknown>): Promise<StoreError> {
  const err = await promise.then(
    () => null,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(StoreError);
  return err as StoreError;
}

describe.skipIf(pgSkipReason !== null)('PostgresStore on a real PostgreSQL server', () => {
  it('stores, lists and removes tokens and keys; the stamp moves on every write', async () => {
    const { url } = await freshDatabase(server());
    const store = await openStore({ url });
    expect(store.backend).toBe('postgres');
    expect(await store.getToken('p', 'default')).toBeNull();
    const s0 = store.changeStamp();
    await store.saveToken('zeta', 'b', token());
    await store.saveToken('alpha', 'work', token({ access_token: 'at-2' }));
    await store.saveToken('alpha', 'default', token({ access_token: 'at-3' }));
    expect(store.changeStamp()).not.toBe(s0);
    expect(await store.listProviders()).toEqual(['alpha', 'zeta']);
    expect(await store.listBuckets('alpha')).toEqual(['default', 'work']);
    expect(await store.getToken('alpha', 'work')).toEqual(token({ access_token: 'at-2' }));
    await store.setKey('OPENAI', 'v1');
    expect(await store.getKey('OPENAI')).toBe('v1');
    expect(await store.hasKey('nope')).toBe(false);
    expect(await store.listKeys()).toEqual(['OPENAI']);
    const s1 = store.changeStamp();
    expect(await store.removeToken('zeta', 'b')).toBe(true);
    expect(await store.removeToken('zeta', 'b')).toBe(false);
    expect(await store.deleteKey('OPENAI')).toBe(true);
    expect(store.changeStamp()).not.toBe(s1);
    expect(await store.listProviders()).toEqual(['alpha']);
    expect((await rejection(store.getToken('bad name', 'b'))).reason).toBe('invalid_name');
    const report = await store.report();
    expect(report).toMatchObject({ schemaVersion: 1, connected: true, lockWaiters: 0 });
    expect(report.target).not.toMatch(/password/);
  });

  it('the database (pg_dump) holds no token, refresh token or key, only ciphertext', async () => {
    const { url, name } = await freshDatabase(server());
    const store = await openStore({ url, env: { CREDPROXY_PASSPHRASE: 'fleet passphrase' } });
    await store.saveToken('acme', 'default', token({ access_token: CANARY_ACCESS, refresh_token: CANARY_REFRESH }));
    await store.setKey('ACME_KEY', CANARY_KEY);
    const dump = server().tool('pg_dump', ['-d', name]);
    expect(dump).toContain('credproxy_tokens');
    for (const secret of [CANARY_ACCESS, CANARY_REFRESH, CANARY_KEY, 'fleet passphrase']) expect(dump).not.toContain(secret);
    // The bytea column is hex in a dump: the hex of the secrets must not be there either.
    for (const secret of [CANARY_ACCESS, CANARY_REFRESH, CANARY_KEY]) expect(dump).not.toContain(Buffer.from(secret).toString('hex'));
    expect(await store.getToken('acme', 'default')).toMatchObject({ access_token: CANARY_ACCESS, refresh_token: CANARY_REFRESH });
  });

  it('a host with another key gets decrypt_failed naming the rule, never an empty store', async () => {
    const first = await freshDatabase(server());
    await openStore({ url: first.url, env: { CREDPROXY_PASSPHRASE: 'right' } });
    const wrong = await rejection(openStore({ url: first.url, env: { CREDPROXY_PASSPHRASE: 'wrong' } }));
    expect(wrong.reason).toBe('decrypt_failed');
    expect(wrong.message).toMatch(/CREDPROXY_PASSPHRASE is not the key it was created with; every host sharing the database must use the same key/);
    expect(wrong.message).not.toContain('wrong');
    const none = await rejection(openStore({ url: first.url, env: {} }));
    expect(none.reason).toBe('decrypt_failed');
    expect(none.message).toMatch(/created with CREDPROXY_PASSPHRASE, which is not set now/);

    // Key files: a host without a copy of the first host's key file is refused, and so is one with its own.
    const second = await freshDatabase(server());
    const host1 = hostDir();
    await openStore({ url: second.url, dataDir: host1 });
    const missing = await rejection(openStore({ url: second.url, dataDir: hostDir() }));
    expect(missing.reason).toBe('decrypt_failed');
    expect(missing.message).toMatch(/needs its key file .*store\.key, which is missing.*a copy of the first host's store\.key/);
    const other = hostDir();
    await openStore({ url: (await freshDatabase(server())).url, dataDir: other }); // mints another key file
    const foreign = await rejection(openStore({ url: second.url, dataDir: other }));
    expect(foreign.reason).toBe('decrypt_failed');
    expect(foreign.message).toMatch(/key file .* is not the key it was created with/);
    // With a copy of the key file, the second host opens the store.
    const copy = await openStore({ url: second.url, dataDir: hostDir(host1) });
    expect(await copy.listProviders()).toEqual([]);
  });

  it('scrypt costs in the database beyond the file store\'s bounds are refused before any key is derived', async () => {
    const { url } = await freshDatabase(server());
    await openStore({ url, env: { CREDPROXY_PASSPHRASE: 'right' } });
    // Someone with write access to the database (not the key) raises the cost.
    const db = new pg.Client({ connectionString: url });
    await db.connect();
    await db.query('UPDATE credproxy_key_params SET log_n = 40 WHERE id = 1');
    await db.end();
    const refused = await rejection(openStore({ url, env: { CREDPROXY_PASSPHRASE: 'right' } }));
    expect(refused.reason).toBe('corrupt');
    expect(refused.message).toMatch(/out of range \(scrypt logN 40, r 8, p 1\)/);
  });

  it('a row copied into another bucket (or key) fails to decrypt instead of passing for it', async () => {
    const { url } = await freshDatabase(server());
    const store = await openStore({ url });
    await store.saveToken('acme', 'alice', token({ access_token: 'at-alice' }));
    await store.saveToken('acme', 'bob', token({ access_token: 'at-bob' }));
    await store.setKey('A', 'value-a');
    await store.setKey('B', 'value-b');
    // What someone with write access to the database could do: move ciphertext between rows.
    const direct = new pg.Client({ connectionString: url });
    await direct.connect();
    await direct.query(`UPDATE credproxy_tokens SET sealed = (SELECT sealed FROM credproxy_tokens WHERE bucket = 'alice') WHERE bucket = 'bob'`);
    await direct.query(`UPDATE credproxy_keys SET sealed = (SELECT sealed FROM credproxy_keys WHERE name = 'A') WHERE name = 'B'`);
    await direct.end();
    const swapped = await rejection(store.getToken('acme', 'bob'));
    expect(swapped.reason).toBe('decrypt_failed');
    expect(swapped.message).toMatch(/the token acme\/bob/);
    expect(swapped.message).not.toContain('at-alice');
    expect((await rejection(store.getKey('B'))).reason).toBe('decrypt_failed');
    expect(await store.getToken('acme', 'alice')).toMatchObject({ access_token: 'at-alice' });
  });

  it('a token removed on one host is gone on another at its next read after the notification', async () => {
    const { url } = await freshDatabase(server());
    const dirA = hostDir();
    const a = await openStore({ url, dataDir: dirA });
    const b = await openStore({ url, dataDir: hostDir(dirA) });
    await a.saveToken('acme', 'default', token({ access_token: 'at-shared' }));
    const cachedB = new CachedTokenStore(b);
    // b learns of a's write by notification (its stamp may already be there: wait only if not).
    await until(async () => (await b.getToken('acme', 'default')) !== null);
    expect(await cachedB.getToken('acme', 'default')).toMatchObject({ access_token: 'at-shared' });
    const notified = nextGeneration(b, 'notify');
    expect(await a.removeToken('acme', 'default')).toBe(true);
    await notified;
    expect(await cachedB.getToken('acme', 'default')).toBeNull();
  });

  it('a notification missed while the listener was cut off is caught by the generation re-read on reconnect', async () => {
    const { url } = await freshDatabase(server());
    const dirA = hostDir();
    const a = await openStore({ url, dataDir: dirA });
    const gate = gatedSleep();
    const b = await openStore({ url, dataDir: hostDir(dirA), sleep: gate.sleep });
    await a.saveToken('acme', 'default', token({ access_token: 'at-before' }));
    await a.setKey('K', 'key-before');
    const cachedB = new CachedTokenStore(b);
    await until(async () => (await cachedB.getToken('acme', 'default')) !== null);
    expect(await b.getKey('K')).toBe('key-before');

    gate.close(); // b's reconnection waits until the test opens the gate
    const lost = nextEvent(b, 'disconnected');
    const pid = b.listenerBackendPid!;
    const admin = await server().client();
    await admin.query('SELECT pg_terminate_backend($1)', [pid]);
    await admin.end();
    await lost;
    expect(b.health().state).toBe('degraded');
    // Written while b hears nothing.
    const heard: string[] = [];
    b.events.on('generation', (_g: number, source: string) => heard.push(source));
    expect(await a.removeToken('acme', 'default')).toBe(true);
    await a.setKey('K', 'key-after');
    const back = nextEvent(b, 'connected');
    gate.open();
    await back;
    expect(heard).toEqual(['reconnect']);
    expect(b.health().state).toBe('ok');
    expect(await cachedB.getToken('acme', 'default')).toBeNull();
    expect(await b.getKey('K')).toBe('key-after');
  });

  it('a listener connection that goes silent (a NAT dropped the flow, nothing closed) is noticed by its probe: degraded, then caught up', async () => {
    const { url, name } = await freshDatabase(server());
    const dirA = hostDir();
    const a = await openStore({ url, dataDir: dirA });
    const pgSocket = path.join(server().socketDir, fs.readdirSync(server().socketDir).find((f) => /^\.s\.PGSQL\.\d+$/.test(f))!);
    // Every connection of b goes through this forwarder, which can stop passing bytes without closing anything.
    let silent = false;
    const flows = new Set<net.Socket>();
    const forwarder = net.createServer((client) => {
      const upstream = net.connect(pgSocket);
      flows.add(client).add(upstream);
      client.on('data', (d) => silent || upstream.write(d));
      upstream.on('data', (d) => silent || client.write(d));
      const end = (): void => {
        client.destroy();
        upstream.destroy();
      };
      for (const s of [client, upstream]) s.on('close', end).on('error', end);
    });
    await new Promise<void>((resolve) => forwarder.listen(0, '127.0.0.1', resolve));
    const port = (forwarder.address() as net.AddressInfo).port;
    try {
      const b = await openStore({ url: `postgres://${encodeURIComponent(server().user)}@127.0.0.1:${port}/${name}`, dataDir: hostDir(dirA), probeMs: 100, queryTimeoutMs: 300 });
      await a.setKey('K', 'key-before');
      await until(async () => (await b.getKey('K')) === 'key-before');
      expect(b.health().state).toBe('ok');

      silent = true;
      await until(async () => b.health().state === 'degraded');
      // Written while b hears nothing, not even an error.
      await a.setKey('K', 'key-after');
      silent = false;
      await until(async () => b.health().state === 'ok');
      expect(await b.getKey('K')).toBe('key-after');
    } finally {
      for (const s of flows) s.destroy();
      forwarder.close();
    }
  });

  it('the refresh lock excludes other hosts; an abort while waiting rejects at once and leaves no waiter or lock', async () => {
    const { url } = await freshDatabase(server());
    const dirA = hostDir();
    const a = await openStore({ url, dataDir: dirA });
    const b = await openStore({ url, dataDir: hostDir(dirA) });
    const { release, holder } = await holdLock(a, 'acme', 'default', async () => 'a');
    const controller = new AbortController();
    const order: string[] = [];
    const waiter = b.withTokenLock('acme', 'default', async () => order.push('b ran'), controller.signal);
    await until(async () => (await a.report()).lockWaiters === 1);
    // Another bucket is not serialized behind it.
    expect(await b.withTokenLock('acme', 'other', async () => 'free')).toBe('free');
    const reason = new Error('caller gave up');
    controller.abort(reason);
    await expect(waiter).rejects.toBe(reason);
    await until(async () => (await a.report()).lockWaiters === 0);
    release();
    expect(await holder).toBe('a');
    expect(order).toEqual([]);
    // The lock is free: the aborted waiter did not take it behind the caller's back.
    expect(await b.withTokenLock('acme', 'default', async () => 'next')).toBe('next');
    const already = new AbortController();
    already.abort(new Error('before'));
    await expect(b.withTokenLock('acme', 'default', async () => 'x', already.signal)).rejects.toThrow('before');
  });

  it('a database restart: still-valid cached tokens are served, writes fail clearly, then resume', async () => {
    const { url } = await freshDatabase(server());
    const logs: string[] = [];
    const store = await openStore({ url, log: (l) => logs.push(l), heartbeat: { version: 'test' } });
    await store.saveToken('acme', 'default', token({ access_token: 'at-valid' }));
    await store.setKey('K', 'v');
    const cached = new CachedTokenStore(store);
    expect(await cached.getToken('acme', 'default')).toMatchObject({ access_token: 'at-valid' });
    expect(await store.getKey('K')).toBe('v');
    expect((await store.report()).hosts.map((h) => h.pid)).toEqual([process.pid]);

    const lost = nextEvent(store, 'disconnected');
    await server().stop();
    await lost;
    expect(store.health()).toMatchObject({ state: 'degraded' });
    expect(logs.join('\n')).toMatch(/lost the connection to PostgreSQL/);
    expect(await cached.getToken('acme', 'default')).toMatchObject({ access_token: 'at-valid' });
    expect(await store.getKey('K')).toBe('v');
    const failed = await rejection(cached.saveToken('acme', 'default', token({ access_token: 'at-new' })));
    expect(failed.reason).toBe('unavailable');
    expect(failed.message).toMatch(/PostgreSQL store at .* is unavailable: cannot save a token/);
    // The refused write changed nothing: the cache still serves what the store holds.
    expect(await cached.getToken('acme', 'default')).toMatchObject({ access_token: 'at-valid' });
    expect((await rejection(cached.removeToken('acme', 'default'))).reason).toBe('unavailable');
    expect(await cached.getToken('acme', 'default')).toMatchObject({ access_token: 'at-valid' });
    const lockFailed = await rejection(store.withTokenLock('acme', 'default', async () => 'never'));
    expect(lockFailed.reason).toBe('unavailable');

    const back = nextEvent(store, 'connected');
    await server().start();
    await back;
    expect(logs.join('\n')).toMatch(/reconnected to PostgreSQL/);
    await store.saveToken('acme', 'default', token({ access_token: 'at-new' }));
    expect(await cached.getToken('acme', 'default')).toMatchObject({ access_token: 'at-new' });
  });

  it('stops serving cached tokens once the database has been away longer than offlineServeMs', async () => {
    const { url } = await freshDatabase(server());
    let now = 1_000_000;
    const gate = gatedSleep();
    const store = await openStore({ url, now: () => now, offlineServeMs: 60_000, sleep: gate.sleep });
    await store.saveToken('acme', 'default', token());
    const stamp = store.changeStamp();
    gate.close();
    const lost = nextEvent(store, 'disconnected');
    const admin = await server().client();
    await admin.query('SELECT pg_terminate_backend($1)', [store.listenerBackendPid]);
    await admin.end();
    await lost;
    now += 59_999;
    expect(store.changeStamp()).toBe(stamp);
    now += 1;
    expect(store.changeStamp()).not.toBe(stamp);
    expect(store.health().detail).toMatch(/no longer served/);
    const back = nextEvent(store, 'connected');
    gate.open();
    await back;
    expect(store.changeStamp()).toBe(stamp);
  });

  it('a password comes from the URL or PGPASSFILE; none, or a wrong one, is a clear error that never shows it', async () => {
    const pgs = server();
    const admin = await pgs.client();
    await admin.query(`CREATE ROLE pwuser LOGIN PASSWORD 'pw-secret-4711'`);
    await admin.query('CREATE DATABASE pwdb OWNER pwuser');
    // Password authentication for this role only, ahead of the trust line the other tests use.
    const hba = path.join(pgs.dataDir, 'pg_hba.conf');
    fs.writeFileSync(hba, `local all pwuser scram-sha-256\n${fs.readFileSync(hba, 'utf8')}`);
    await admin.query('SELECT pg_reload_conf()');
    await admin.end();
    const socket = encodeURIComponent(pgs.socketDir);
    const bare = `postgres://pwuser@/pwdb?host=${socket}`;
    const saved = { PGPASSWORD: process.env.PGPASSWORD, PGPASSFILE: process.env.PGPASSFILE };
    delete process.env.PGPASSWORD;
    const passFile = path.join(hostDir(), 'pgpass');
    try {
      process.env.PGPASSFILE = path.join(hostDir(), 'absent');
      const none = await rejection(openStore({ url: bare }));
      expect(none.reason).toBe('unavailable');
      expect(none.message).toMatch(/asks for a password for user pwuser and none is configured/);

      const wrong = await rejection(openStore({ url: `postgres://pwuser:not-the-password@/pwdb?host=${socket}` }));
      expect(wrong.reason).toBe('unavailable');
      expect(wrong.message).toMatch(/28P01/);
      expect(wrong.message).not.toContain('not-the-password');

      const dataDir = hostDir();
      const inUrl = await openStore({ url: `postgres://pwuser:pw-secret-4711@/pwdb?host=${socket}`, dataDir });
      expect(inUrl.target).toBe(`${pgs.socketDir}/pwdb`);
      await inUrl.setKey('K', 'v');
      await inUrl.close();

      fs.writeFileSync(passFile, '*:*:*:pwuser:pw-secret-4711\n', { mode: 0o600 });
      process.env.PGPASSFILE = passFile;
      const fromFile = await openStore({ url: bare, dataDir });
      expect(await fromFile.getKey('K')).toBe('v');
    } finally {
      for (const [k, v] of Object.entries(saved)) if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
  });

  it('hosts opening a new database together migrate it once and agree on one key; a newer schema is refused', async () => {
    const { url } = await freshDatabase(server());
    const env = { CREDPROXY_PASSPHRASE: 'opened together' };
    const stores = await Promise.all([0, 1, 2].map(() => openStore({ url, env })));
    await stores[0]!.saveToken('acme', 'default', token({ access_token: 'at-together' }));
    for (const s of stores) expect(await s.getToken('acme', 'default')).toMatchObject({ access_token: 'at-together' });
    const direct = new pg.Client({ connectionString: url });
    await direct.connect();
    expect((await direct.query('SELECT version FROM credproxy_schema_version')).rows).toEqual([{ version: 1 }]);
    await direct.query('INSERT INTO credproxy_schema_version (version) VALUES (2)');
    await direct.end();
    const newer = await rejection(openStore({ url, env }));
    expect(newer.reason).toBe('unavailable');
    expect(newer.message).toMatch(/schema version 2, newer than this build reads \(1\); upgrade credproxy on this host/);
  });

  it('a refresh lock held longer than lockWaitMs by another host is a clear locked error', async () => {
    const { url } = await freshDatabase(server());
    const dirA = hostDir();
    const a = await openStore({ url, dataDir: dirA });
    const b = await openStore({ url, dataDir: hostDir(dirA), lockWaitMs: 1 });
    const { release, holder } = await holdLock(a, 'acme', 'default', async () => undefined);
    const err = await rejection(b.withTokenLock('acme', 'default', async () => 'never'));
    expect(err.reason).toBe('locked');
    expect(err.message).toMatch(/waiting for the refresh lock of acme:default, held by another host/);
    release();
    await holder;
    expect(await b.withTokenLock('acme', 'default', async () => 'after')).toBe('after');
  });

  it('a refresh lock whose connection is cut mid-way refuses the writes under it, without crashing; the lock is free for others', async () => {
    const { url, name } = await freshDatabase(server());
    const dirA = hostDir();
    const a = await openStore({ url, dataDir: dirA });
    const b = await openStore({ url, dataDir: hostDir(dirA) });
    await a.saveToken('acme', 'default', token({ access_token: 'at-before' }));
    // Released (below) only once its session has been cut: the save under the lost lock comes after.
    const { release: cut, holder } = await holdLock(a, 'acme', 'default', () => a.saveToken('acme', 'default', token({ access_token: 'at-under-lost-lock' })));
    const admin = await server().client();
    await admin.query(`SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory' AND classid = $1 AND granted AND database = (SELECT oid FROM pg_database WHERE datname = $2)`, [LOCK_NAMESPACE, name]);
    await admin.end();
    // The other host gets the lock at once: the server released it with the session.
    expect(await b.withTokenLock('acme', 'default', async () => 'b has it')).toBe('b has it');
    cut();
    const err = await rejection(holder);
    expect(err.reason).toBe('locked');
    expect(err.message).toMatch(/Lost the refresh lock of acme:default \(its database connection ended\); nothing was written/);
    expect(await b.getToken('acme', 'default')).toMatchObject({ access_token: 'at-before' });
  });
});
