/** Store URLs without a server: what may be printed, what argv may not carry, how a choice resolves. */
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { decideBackend, describeStore } from '../../src/store/open.js';
import { describePostgresUrl, isPostgresUrl, parsePostgresUrl, readStoreUrlFile, refusePasswordInArgv } from '../../src/store/postgresTarget.js';
import { StoreError } from '../../src/store/types.js';
import { removeTempDirs, tempDir } from './helpers.js';

afterAll(removeTempDirs);

describe('PostgreSQL store URLs', () => {
  it('prints host, port and database, never the password', () => {
    expect(describePostgresUrl('postgres://alice:s3cret@db.example:5433/creds?sslmode=verify-full')).toBe('db.example:5433/creds');
    expect(describePostgresUrl('postgresql://alice@/creds?host=%2Frun%2Fpostgresql')).toBe('/run/postgresql/creds');
    expect(describePostgresUrl('postgres://[::1]/x')).toBe('[::1]/x');
    expect(describePostgresUrl('postgres://db')).toBe('db/postgres');
    expect(parsePostgresUrl('postgres://alice:s3cret@db/x')).toMatchObject({ user: 'alice', hasPassword: true });
    expect(parsePostgresUrl('postgres://alice@db/x?password=p').hasPassword).toBe(true);
    expect(parsePostgresUrl('postgres://alice@db/x').hasPassword).toBe(false);
    expect(isPostgresUrl('POSTGRESQL://h/d')).toBe(true);
    expect(isPostgresUrl('mysql://h/d')).toBe(false);
    expect(() => parsePostgresUrl('postgres://h/d#frag')).toThrow(StoreError);
  });

  it('refuses a URL whose user name or password has an unencoded "/" or "?", without showing any of it', () => {
    for (const url of ['postgres://user:pa/ss@db.example/prod', 'postgres://user:pa?ss@db.example/prod', 'postgres://us/er@db/x']) {
      let message = '';
      try {
        parsePostgresUrl(url);
      } catch (err) {
        message = (err as StoreError).message;
      }
      expect(message).toMatch(/percent-encode/);
      expect(message).not.toMatch(/ss@|pa\/|pa\?|us\/er/);
    }
    expect(parsePostgresUrl('postgres://user:pa%2Fss@db.example/prod')).toMatchObject({ host: 'db.example', database: 'prod', hasPassword: true });
  });

  it('refuses a password on the command line without repeating it', () => {
    expect(() => refusePasswordInArgv('postgres://alice@db/x')).not.toThrow();
    for (const url of ['postgres://alice:s3cret@db/x', 'postgres://alice@db/x?sslmode=require&password=s3cret']) {
      let message = '';
      try {
        refusePasswordInArgv(url);
      } catch (err) {
        message = (err as Error).message;
      }
      expect(message).toMatch(/^Refusing a PostgreSQL URL with a password on the command line/);
      expect(message).not.toContain('s3cret');
    }
  });

  it('reads the URL from a file (its first non-empty line)', () => {
    const dir = tempDir();
    const file = path.join(dir, 'url');
    fs.writeFileSync(file, '\n  postgres://alice:s3cret@db/x  \n', { mode: 0o600 });
    expect(readStoreUrlFile(file)).toBe('postgres://alice:s3cret@db/x');
    fs.writeFileSync(file, 'not a url\n');
    expect(() => readStoreUrlFile(file)).toThrow(/does not hold a postgres:\/\/ URL/);
    expect(() => readStoreUrlFile(path.join(dir, 'missing'))).toThrow(/Cannot read the store URL file .*ENOENT/);
  });

  it('a URL, --store postgres with CREDPROXY_STORE_URL, or auto with it set choose the PostgreSQL store', async () => {
    const dataDir = tempDir();
    const url = 'postgres://alice:s3cret@db.example/creds';
    const direct = await decideBackend({ backend: 'postgres://alice@db.example/creds', dataDir, env: {} });
    expect(direct).toMatchObject({ backend: 'postgres', reason: 'PostgreSQL store db.example/creds' });
    const named = await decideBackend({ backend: 'postgres', dataDir, env: { CREDPROXY_STORE_URL: url } });
    expect(named).toMatchObject({ backend: 'postgres', reason: 'PostgreSQL store db.example/creds (from CREDPROXY_STORE_URL)', url });
    expect((await decideBackend({ backend: 'auto', dataDir, env: { CREDPROXY_STORE_URL: url } })).backend).toBe('postgres');
    await expect(decideBackend({ backend: 'postgres', dataDir, env: {} })).rejects.toThrow(/needs the database URL: set CREDPROXY_STORE_URL or give --store-url-file/);
    const described = describeStore(named, dataDir, { CREDPROXY_PASSPHRASE: 'p' });
    expect(described.reason).toBe('PostgreSQL store db.example/creds (from CREDPROXY_STORE_URL); sealed with CREDPROXY_PASSPHRASE');
    expect(described.protects).toMatch(/never a token or key/);
    expect(JSON.stringify(described)).not.toContain('s3cret');
    expect(describeStore(named, dataDir, {}).reason).toMatch(/sealed with the key file .*store\.key$/);
  });
});
