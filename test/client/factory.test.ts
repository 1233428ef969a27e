import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { createKeyStore, createStores, createTokenStore } from '../../src/client/factory.js';
import { ProxyKeyStore } from '../../src/client/ProxyKeyStore.js';
import { ProxyTokenStore } from '../../src/client/ProxyTokenStore.js';
import { FileStore } from '../../src/store/fileStore.js';
import { FrameServer } from '../helpers/frameServer.js';

const TOKEN = { access_token: 'at', expiry: 1_900_000_000, token_type: 'Bearer' };

let servers: FrameServer[] = [];
let toClose: Array<{ close?(): Promise<void> }> = [];
let dirs: string[] = [];

afterEach(async () => {
  for (const store of toClose) await store.close?.();
  for (const server of servers) await server.close();
  for (const dir of dirs) fs.rmSync(dir, { recursive: true, force: true });
  servers = [];
  toClose = [];
  dirs = [];
});

/** A peer answering get_token and list_api_keys. */
async function peer(): Promise<FrameServer> {
  const server = await FrameServer.start({
    onRequest: (f, c) => (f.op === 'get_token' ? c.reply(f, TOKEN) : c.reply(f, { keys: ['openai'] })),
  });
  servers.push(server);
  return server;
}

function track<T extends { close?(): Promise<void> }>(store: T): T {
  toClose.push(store);
  return store;
}

describe('store factory in a sandbox', () => {
  it('returns proxy stores when CREDPROXY_SOCKET is set', async () => {
    const server = await peer();
    const env = { CREDPROXY_SOCKET: server.socketPath };
    const tokens = track(await createTokenStore({ env }));
    const keys = track(await createKeyStore({ env }));
    expect(tokens).toBeInstanceOf(ProxyTokenStore);
    expect(keys).toBeInstanceOf(ProxyKeyStore);
    expect(tokens.backend).toBe('proxy');
    await expect(tokens.getToken('anthropic', 'default')).resolves.toEqual(TOKEN);
    await expect(keys.listKeys()).resolves.toEqual(['openai']);
    expect(server.connections[0]!.requests.map((f) => f.op)).toEqual(['get_token', 'list_api_keys']);
  });

  it('falls back to LLXPRT_CREDENTIAL_SOCKET', async () => {
    const server = await peer();
    const tokens = track(await createTokenStore({ env: { LLXPRT_CREDENTIAL_SOCKET: server.socketPath } }));
    expect(tokens).toBeInstanceOf(ProxyTokenStore);
    await expect(tokens.getToken('anthropic', 'default')).resolves.toEqual(TOKEN);
    expect(server.connections).toHaveLength(1);
  });

  it('prefers CREDPROXY_SOCKET over LLXPRT_CREDENTIAL_SOCKET', async () => {
    const preferred = await peer();
    const other = await peer();
    const env = { CREDPROXY_SOCKET: preferred.socketPath, LLXPRT_CREDENTIAL_SOCKET: other.socketPath };
    const tokens = track(await createTokenStore({ env }));
    await tokens.getToken('anthropic', 'default');
    expect(preferred.connections).toHaveLength(1);
    expect(other.connections).toHaveLength(0);
  });

  it('shares one connection per socket and closes it with the last store', async () => {
    const server = await peer();
    const env = { CREDPROXY_SOCKET: server.socketPath };
    const tokens = await createTokenStore({ env });
    const keys = await createKeyStore({ env });
    await tokens.getToken('anthropic', 'default');
    await keys.listKeys();
    expect(server.connections).toHaveLength(1);

    await tokens.close?.();
    await tokens.close?.();
    await expect(keys.listKeys()).resolves.toEqual(['openai']);
    expect(server.connections).toHaveLength(1);
    await keys.close?.();
    await server.connections[0]!.waitClosed();
    expect(server.connections[0]!.endedByClient).toBe(true);
  });

  it('passes the capability token read from CREDPROXY_CAPABILITY_FD to the handshake', async () => {
    // The token is read once per process and cached; no other test here depends on its absence.
    const server = await peer();
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cpx-fd-'));
    dirs.push(dir);
    const token = 'c'.repeat(64);
    fs.writeFileSync(path.join(dir, 'cap'), `${token}\n`);
    const fd = fs.openSync(path.join(dir, 'cap'), 'r');
    const env: NodeJS.ProcessEnv = { CREDPROXY_SOCKET: server.socketPath, CREDPROXY_CAPABILITY_FD: String(fd) };
    const tokens = track(await createTokenStore({ env }));
    expect(env.CREDPROXY_CAPABILITY_FD).toBeUndefined();
    expect(() => fs.fstatSync(fd)).toThrow(/EBADF/);
    await tokens.getToken('anthropic', 'default');
    expect((server.connections[0]!.frames[0]!.payload as { capabilityToken?: string }).capabilityToken).toBe(token);
  });
});

describe('store factory on the host', () => {
  it('opens the host stores when no proxy socket is set', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cpx-host-'));
    dirs.push(dir);
    const stores = await createStores({ env: { CREDPROXY_SOCKET: '' }, backend: 'memory', dataDir: dir });
    expect(stores.mode).toBe('host');
    expect(stores.tokens.backend).toBe('memory');

    // File stores serve as both token and key store; the factory must not close the half it returns.
    const closeSpy = vi.spyOn(FileStore.prototype, 'close');
    const env = {};
    const tokens = track(await createTokenStore({ env, backend: 'file', dataDir: dir }));
    expect(tokens.backend).toBe('file');
    await tokens.saveToken('anthropic', 'default', TOKEN);
    await expect(tokens.getToken('anthropic', 'default')).resolves.toMatchObject(TOKEN);
    const keys = track(await createKeyStore({ env, backend: 'file', dataDir: dir }));
    expect(keys.backend).toBe('file');
    expect(closeSpy).not.toHaveBeenCalled();
    closeSpy.mockRestore();
  });
});
