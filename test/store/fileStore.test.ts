/** FileStore on real files: the shared contract, encryption, key handling and permissions. */
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { FileStore } from '../../src/store/fileStore.js';
import { StoreError } from '../../src/store/types.js';
import { storeContract, type Store } from './contract.js';
import { modeOf, removeTempDirs, tempDir, token } from './helpers.js';

afterAll(removeTempDirs);

const NO_PASS: NodeJS.ProcessEnv = {};
const PASS: NodeJS.ProcessEnv = { CREDPROXY_PASSPHRASE: 'correct horse battery staple' };
const WRONG: NodeJS.ProcessEnv = { CREDPROXY_PASSPHRASE: 'wrong horse' };

describe('FileStore contract (key file)', () => {
  const dirs = new Map<Store, string>();
  storeContract({
    async open() {
      const dir = tempDir();
      const store = await FileStore.open({ dataDir: dir, env: NO_PASS });
      dirs.set(store, dir);
      return store;
    },
    reopen: (store) => FileStore.open({ dataDir: dirs.get(store)!, env: NO_PASS }),
  });
});

describe('FileStore contract (passphrase)', () => {
  const dirs = new Map<Store, string>();
  storeContract({
    async open() {
      const dir = tempDir();
      const store = await FileStore.open({ dataDir: dir, env: PASS });
      dirs.set(store, dir);
      return store;
    },
    reopen: (store) => FileStore.open({ dataDir: dirs.get(store)!, env: PASS }),
  });
});

async function expectStoreError(promise: Promise<unknown>, reason: StoreError['reason'], message: string | RegExp) {
  const err = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(StoreError);
  expect((err as StoreError).reason).toBe(reason);
  if (typeof message === 'string') expect((err as StoreError).message).toBe(message);
  else expect((err as StoreError).message).toMatch(message);
  return err as StoreError;
}

describe('FileStore encryption and keys', () => {
  it('encrypts at rest: no token or key text in the file', async () => {
    const dir = tempDir();
    const store = await FileStore.open({ dataDir: dir, env: NO_PASS });
    await store.saveToken('prov', 'default', token({ access_token: 'AT-PLAINTEXT-MARKER', refresh_token: 'RT-PLAINTEXT-MARKER' }));
    await store.setKey('openai', 'SK-PLAINTEXT-MARKER');
    const raw = fs.readFileSync(path.join(dir, 'store.enc'));
    expect(raw.subarray(0, 4).toString()).toBe('CPXS');
    for (const marker of ['AT-PLAINTEXT', 'RT-PLAINTEXT', 'SK-PLAINTEXT', 'prov', 'openai']) expect(raw.includes(marker)).toBe(false);
  });

  it('wrong passphrase: decrypt_failed with the exact message, file unchanged', async () => {
    const dir = tempDir();
    const storePath = path.join(dir, 'store.enc');
    const store = await FileStore.open({ dataDir: dir, env: PASS });
    await store.saveToken('p', 'b', token());
    const before = fs.readFileSync(storePath);
    const err = await expectStoreError(
      FileStore.open({ dataDir: dir, env: WRONG }),
      'decrypt_failed',
      `Cannot decrypt the credential store at ${storePath}: wrong CREDPROXY_PASSPHRASE or the file is damaged`,
    );
    expect(err.message).not.toContain('wrong horse');
    expect(err.message).not.toContain('correct horse');
    expect(fs.readFileSync(storePath).equals(before)).toBe(true);
    // The right passphrase still opens it.
    expect(await (await FileStore.open({ dataDir: dir, env: PASS })).getToken('p', 'b')).toEqual(token());
  });

  it('a write through an instance that meets a wrong-passphrase file fails and leaves it alone', async () => {
    const dir = tempDir();
    const storePath = path.join(dir, 'store.enc');
    const wrong = await FileStore.open({ dataDir: dir, env: WRONG }); // empty dir: opens fine
    const right = await FileStore.open({ dataDir: dir, env: PASS });
    await right.setKey('k', 'v');
    const before = fs.readFileSync(storePath);
    await expectStoreError(wrong.setKey('k2', 'v2'), 'decrypt_failed', /wrong CREDPROXY_PASSPHRASE/);
    await expectStoreError(wrong.getKey('k'), 'decrypt_failed', /wrong CREDPROXY_PASSPHRASE/);
    expect(fs.readFileSync(storePath).equals(before)).toBe(true);
  });

  it('says specifically when the passphrase is missing, or set for a key-file store', async () => {
    const passDir = tempDir();
    await (await FileStore.open({ dataDir: passDir, env: PASS })).setKey('k', 'v');
    await expectStoreError(FileStore.open({ dataDir: passDir, env: NO_PASS }), 'decrypt_failed', /was created with CREDPROXY_PASSPHRASE, which is not set now/);
    expect(fs.existsSync(path.join(passDir, 'store.key'))).toBe(false);

    const keyDir = tempDir();
    await (await FileStore.open({ dataDir: keyDir, env: NO_PASS })).setKey('k', 'v');
    await expectStoreError(FileStore.open({ dataDir: keyDir, env: PASS }), 'decrypt_failed', /encrypted with the key file .*store\.key, not a passphrase, but CREDPROXY_PASSPHRASE is set/);
  });

  it('a missing key file is an error, never a fresh key and an empty store', async () => {
    const dir = tempDir();
    await (await FileStore.open({ dataDir: dir, env: NO_PASS })).setKey('k', 'v');
    fs.rmSync(path.join(dir, 'store.key'));
    await expectStoreError(FileStore.open({ dataDir: dir, env: NO_PASS }), 'decrypt_failed', /needs its key file .*store\.key, which is missing/);
    expect(fs.existsSync(path.join(dir, 'store.key'))).toBe(false);
  });

  it('a different key file gives decrypt_failed', async () => {
    const dir = tempDir();
    await (await FileStore.open({ dataDir: dir, env: NO_PASS })).setKey('k', 'v');
    fs.writeFileSync(path.join(dir, 'store.key'), Buffer.alloc(32, 7), { mode: 0o600 });
    await expectStoreError(FileStore.open({ dataDir: dir, env: NO_PASS }), 'decrypt_failed', /key file .* does not belong to it or the file is damaged/);
  });

  it('damaged files are reported, never treated as empty or overwritten', async () => {
    const dir = tempDir();
    const storePath = path.join(dir, 'store.enc');
    const store = await FileStore.open({ dataDir: dir, env: NO_PASS });
    await store.saveToken('p', 'b', token());
    const good = fs.readFileSync(storePath);

    const cases: [Buffer, StoreError['reason'], RegExp][] = [
      [Buffer.from('{"tokens":{},"keys":{}}'), 'corrupt', /damaged \(not a credproxy store \(bad magic\)\)/],
      [good.subarray(0, 20), 'corrupt', /damaged \(file too short/],
      [Buffer.alloc(0), 'corrupt', /damaged \(file too short \(0 bytes\)\)/],
      [Buffer.concat([good.subarray(0, 4), Buffer.from([9]), good.subarray(5)]), 'corrupt', /unsupported format version 9/],
      [Buffer.concat([good.subarray(0, good.length - 1), Buffer.from([good[good.length - 1]! ^ 1])]), 'decrypt_failed', /does not belong to it or the file is damaged/],
      [good.subarray(0, good.length - 3), 'decrypt_failed', /or the file is damaged/],
    ];
    for (const [bytes, reason, message] of cases) {
      fs.writeFileSync(storePath, bytes);
      await expectStoreError(FileStore.open({ dataDir: dir, env: NO_PASS }), reason, message);
      await expectStoreError(store.setKey('x', 'y'), reason, message);
      expect(fs.readFileSync(storePath).equals(bytes)).toBe(true);
    }
  });

  it('creates the data dir 0700, key file and store file 0600 even with umask 0', async () => {
    const old = process.umask(0);
    try {
      const dir = path.join(tempDir(), 'nested', 'credproxy');
      const store = await FileStore.open({ dataDir: dir, env: NO_PASS });
      expect(modeOf(dir)).toBe(0o700);
      expect(modeOf(path.join(dir, 'store.key'))).toBe(0o600);
      expect(fs.statSync(path.join(dir, 'store.key')).size).toBe(32);
      expect(modeOf(path.join(dir, 'locks'))).toBe(0o700);
      await store.saveToken('p', 'b', token());
      expect(modeOf(path.join(dir, 'store.enc'))).toBe(0o600);
    } finally {
      process.umask(old);
    }
  });

  it('tightens a data dir that was left group/world accessible', async () => {
    const dir = tempDir();
    fs.chmodSync(dir, 0o755);
    await FileStore.open({ dataDir: dir, env: NO_PASS });
    expect(modeOf(dir)).toBe(0o700);
  });

  it('leftover temp files do not break opening, and the next write clears them', async () => {
    const dir = tempDir();
    const store = await FileStore.open({ dataDir: dir, env: NO_PASS });
    await store.setKey('k', 'v');
    const leftover = path.join(dir, '.store.enc.99999.abcdef.tmp');
    fs.writeFileSync(leftover, 'half a write', { mode: 0o600 });
    const again = await FileStore.open({ dataDir: dir, env: NO_PASS });
    expect(await again.getKey('k')).toBe('v');
    await again.setKey('k2', 'v2');
    expect(fs.existsSync(leftover)).toBe(false);
  });

  it('error messages never contain secret values', async () => {
    const dir = tempDir();
    const store = await FileStore.open({ dataDir: dir, env: PASS });
    await store.saveToken('p', 'b', token({ access_token: 'AT-SECRET', refresh_token: 'RT-SECRET' }));
    await store.setKey('k', 'SK-SECRET');
    fs.appendFileSync(path.join(dir, 'store.enc'), 'x');
    const err = await expectStoreError(FileStore.open({ dataDir: dir, env: PASS }), 'decrypt_failed', /damaged/);
    for (const secret of ['AT-SECRET', 'RT-SECRET', 'SK-SECRET', 'correct horse']) expect(`${err.message} ${err.stack}`).not.toContain(secret);
  });

  it('cached reads still see an out-of-band replace (their cost is measured by npm run bench, not here)', async () => {
    const dir = tempDir();
    const a = await FileStore.open({ dataDir: dir, env: NO_PASS });
    const b = await FileStore.open({ dataDir: dir, env: NO_PASS });
    await a.saveToken('p', 'b', token());
    for (let i = 0; i < 3; i++) expect((await b.getToken('p', 'b'))!.access_token).toBe(token().access_token);
    await a.saveToken('p', 'b', token({ access_token: 'at-new' }));
    expect((await b.getToken('p', 'b'))!.access_token).toBe('at-new');
  });
});
