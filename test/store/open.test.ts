/** openStores without a Secret Service: explicit backends, 'auto' falling back to the file store. */
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { openStores, PROTECTS } from '../../src/store/open.js';
import { StoreError } from '../../src/store/types.js';
import { removeTempDirs, tempDir, token } from './helpers.js';

afterAll(removeTempDirs);

const NO_BUS: NodeJS.ProcessEnv = { PATH: process.env.PATH };

describe('openStores', () => {
  it('memory', async () => {
    const opened = await openStores({ backend: 'memory', dataDir: tempDir() });
    expect(opened).toMatchObject({ backend: 'memory', reason: 'memory store: requested', protects: PROTECTS.memory });
    expect(opened.tokens).toBe(opened.keys);
  });

  it('file with the key file, and with a passphrase', async () => {
    const dir = tempDir();
    const opened = await openStores({ backend: 'file', dataDir: dir, env: NO_BUS });
    expect(opened.backend).toBe('file');
    expect(opened.reason).toBe(`file store: requested; encrypted with the key file ${path.join(dir, 'store.key')}`);
    expect(opened.protects).toBe('protects against copying the store file alone; not against another process of your user, which can read the key file');
    await opened.tokens.saveToken('p', 'b', token());
    await opened.tokens.close?.();
    await opened.keys.close?.(); // same object: closing twice is fine

    const withPass = await openStores({ backend: 'file', dataDir: tempDir(), env: { CREDPROXY_PASSPHRASE: 'pw' } });
    expect(withPass.reason).toBe('file store: requested; encrypted with CREDPROXY_PASSPHRASE');
    expect(withPass.protects).toBe(PROTECTS.filePassphrase);
    expect(withPass.protects).not.toContain('pw');
  });

  it('auto without DBUS_SESSION_BUS_ADDRESS chooses the file store and says why', async () => {
    const dir = tempDir();
    const opened = await openStores({ backend: 'auto', dataDir: dir, env: NO_BUS });
    expect(opened.backend).toBe('file');
    expect(opened.reason).toBe(
      `file store: no D-Bus session bus (DBUS_SESSION_BUS_ADDRESS is not set); encrypted with the key file ${path.join(dir, 'store.key')}`,
    );
    expect(opened.protects).toBe(PROTECTS.fileKey);
  });

  it('auto mentions keyring credentials it cannot reach', async () => {
    const dir = tempDir();
    fs.writeFileSync(path.join(dir, 'keyring.state'), '3\n', { mode: 0o600 });
    const opened = await openStores({ backend: 'auto', dataDir: dir, env: NO_BUS });
    expect(opened.reason).toContain('(credentials saved earlier in the keyring are not visible now)');
  });

  it('auto on an existing file store keeps it, without probing', async () => {
    const dir = tempDir();
    const first = await openStores({ backend: 'file', dataDir: dir, env: NO_BUS });
    await first.keys.setKey('k', 'v');
    const opened = await openStores({ backend: 'auto', dataDir: dir, env: NO_BUS });
    expect(opened.reason).toMatch(/^file store: .*store\.enc already holds the credentials; encrypted with the key file/);
    expect(await opened.keys.getKey('k')).toBe('v');
  });

  it('keyring requested without a session bus is a clear StoreError', async () => {
    const err = await openStores({ backend: 'keyring', dataDir: tempDir(), env: NO_BUS }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(StoreError);
    expect(err).toMatchObject({
      reason: 'unavailable',
      message: 'The OS keyring was requested but cannot be used: no D-Bus session bus (DBUS_SESSION_BUS_ADDRESS is not set)',
    });
  });

  it('auto gives up on a bus that never answers after the probe timeout, without hanging', async () => {
    // A socket that accepts and then says nothing: the D-Bus handshake in the probe child stalls.
    const dir = tempDir();
    const sockPath = path.join(dir, 'silent.sock');
    const held: net.Socket[] = [];
    const server = net.createServer((sock) => held.push(sock));
    await new Promise<void>((resolve) => server.listen(sockPath, resolve));
    const saved = process.env.DBUS_SESSION_BUS_ADDRESS;
    // The probe reads the bus from process.env, like the native library it stands in for. This
    // worker never loads a keyring connection itself, so changing it here is safe.
    process.env.DBUS_SESSION_BUS_ADDRESS = `unix:path=${sockPath}`;
    try {
      const opened = await openStores({ backend: 'auto', dataDir: path.join(dir, 'data'), env: process.env, probeTimeoutMs: 500 });
      expect(opened.backend).toBe('file');
      expect(opened.reason).toMatch(/^file store: no Secret Service answered within 0\.5 s; encrypted with /);
    } finally {
      if (saved === undefined) delete process.env.DBUS_SESSION_BUS_ADDRESS;
      else process.env.DBUS_SESSION_BUS_ADDRESS = saved;
      for (const sock of held) sock.destroy();
      await new Promise((resolve) => server.close(resolve));
    }
  });

  it('a file store that cannot be decrypted fails auto too, instead of hiding behind another backend', async () => {
    const dir = tempDir();
    await (await openStores({ backend: 'file', dataDir: dir, env: { CREDPROXY_PASSPHRASE: 'a' } })).keys.setKey('k', 'v');
    const err = await openStores({ backend: 'auto', dataDir: dir, env: { CREDPROXY_PASSPHRASE: 'b' } }).catch((e: unknown) => e);
    expect(err).toMatchObject({ name: 'StoreError', reason: 'decrypt_failed' });
  });
});
