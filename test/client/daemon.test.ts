/**
 * Wire compatibility with the real daemon (src/server): the proxy stores against startDaemon on a
 * real socket, with a memory store behind it. The scripted peer tests cover the edge cases; these
 * check that both sides agree on the contract.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { ProxyClient, ProxyClientError } from '../../src/client/ProxyClient.js';
import { KEY_MANAGEMENT_UNAVAILABLE, ProxyKeyStore } from '../../src/client/ProxyKeyStore.js';
import { ProxyTokenStore } from '../../src/client/ProxyTokenStore.js';
import { HOST_REFRESH_TOKEN, sampleToken, startTestDaemon, type TestDaemon } from '../helpers/daemon.js';
import { SlowStore } from '../helpers/slowStore.js';

let daemon: TestDaemon | undefined;
let client: ProxyClient | undefined;

afterEach(async () => {
  await client?.close();
  await daemon?.stop();
  client = undefined;
  daemon = undefined;
});

describe('proxy stores against the real daemon', () => {
  it('reads, saves, lists and removes tokens, never receiving the refresh token', async () => {
    daemon = await startTestDaemon();
    await daemon.store.saveToken('anthropic', 'default', sampleToken({ access_token: 'at-1' }));
    client = new ProxyClient({ socketPath: daemon.socketPath });
    const tokens = new ProxyTokenStore(client);

    const token = await tokens.getToken('anthropic');
    expect(token).toMatchObject({ access_token: 'at-1', token_type: 'Bearer' });
    expect(JSON.stringify(token)).not.toContain(HOST_REFRESH_TOKEN);
    await expect(tokens.getToken('anthropic', 'missing')).resolves.toBeNull();

    await tokens.saveToken('anthropic', 'work', { access_token: 'at-2', expiry: Math.floor(Date.now() / 1000) + 600, token_type: 'Bearer' });
    await expect(tokens.listBuckets('anthropic')).resolves.toEqual(['default', 'work']);
    await expect(tokens.listProviders()).resolves.toEqual(['anthropic']);
    await tokens.removeToken('anthropic', 'work');
    await expect(tokens.getToken('anthropic', 'work')).resolves.toBeNull();
    expect(client.version).toBe(2);
  });

  it('reads keys and refuses key management locally', async () => {
    daemon = await startTestDaemon();
    await daemon.store.setKey('openai', 'sk-test');
    client = new ProxyClient({ socketPath: daemon.socketPath });
    const keys = new ProxyKeyStore(client);
    await expect(keys.getKey('openai')).resolves.toBe('sk-test');
    await expect(keys.getKey('absent')).resolves.toBeNull();
    await expect(keys.hasKey('openai')).resolves.toBe(true);
    await expect(keys.listKeys()).resolves.toEqual(['openai']);
    await expect(keys.setKey('x', 'y')).rejects.toThrow(KEY_MANAGEMENT_UNAVAILABLE);
  });

  it('surfaces host validation errors with their code', async () => {
    daemon = await startTestDaemon();
    client = new ProxyClient({ socketPath: daemon.socketPath });
    const error = await new ProxyTokenStore(client).getToken('bad name!').catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ProxyClientError);
    expect((error as ProxyClientError).code).toBe('INVALID_REQUEST');
  });

  it('times out and stays usable: the late reply to the cancelled request is dropped', async () => {
    const store = new SlowStore(1_000);
    daemon = await startTestDaemon({ tokens: store, keys: store });
    await store.saveToken('slow', 'default', sampleToken());
    client = new ProxyClient({ socketPath: daemon.socketPath });
    const slow = await client.request('get_token', { provider: 'slow' }, { timeoutMs: 100 }).catch((e: unknown) => e);
    expect((slow as ProxyClientError).code).toBe('TIMEOUT');
    await expect(client.request('list_providers', {})).resolves.toEqual({ providers: ['slow'] });
  });

  it('negotiates version 1 when asked to', async () => {
    daemon = await startTestDaemon();
    client = new ProxyClient({ socketPath: daemon.socketPath, maxVersion: 1 });
    await expect(client.request('list_providers', {})).resolves.toEqual({ providers: [] });
    expect(client.version).toBe(1);
  });
});
