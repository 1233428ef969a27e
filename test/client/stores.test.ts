import { afterEach, describe, expect, it } from 'vitest';
import { ProxyClient, ProxyClientError } from '../../src/client/ProxyClient.js';
import { KEY_MANAGEMENT_UNAVAILABLE, ProxyKeyStore } from '../../src/client/ProxyKeyStore.js';
import { ProxyTokenStore } from '../../src/client/ProxyTokenStore.js';
import type { JsonObject } from '../../src/protocol/framing.js';
import { FrameServer, type PeerConnection } from '../helpers/frameServer.js';

type Script = (frame: JsonObject, conn: PeerConnection) => void;

const TOKEN = { access_token: 'at', expiry: 1_900_000_000, token_type: 'Bearer', scope: 'openid' };

let server: FrameServer | undefined;
let client: ProxyClient | undefined;

afterEach(async () => {
  await client?.close();
  await server?.close();
  client = undefined;
  server = undefined;
});

/** A server answering each op by `scripts[op]`, and the frames it received (handshake excluded). */
async function setup(scripts: Record<string, Script>) {
  server = await FrameServer.start({
    onRequest: (frame, conn) => {
      const script = scripts[frame.op as string];
      if (script) script(frame, conn);
      else conn.fail(frame, 'INVALID_REQUEST', `Unexpected op ${String(frame.op)}`);
    },
  });
  client = new ProxyClient({ socketPath: server.socketPath });
  const srv = server;
  const sent = () => srv.connections.flatMap((c) => c.requests).map((f) => ({ op: f.op, payload: f.payload }));
  return { tokens: new ProxyTokenStore(client), keys: new ProxyKeyStore(client), sent, server: srv };
}

const reply =
  (data: JsonObject): Script =>
  (f, c) =>
    c.reply(f, data);
const fail =
  (code: string, message: string, retryAfter?: number): Script =>
  (f, c) =>
    c.fail(f, code, message, retryAfter);

async function rejection(promise: Promise<unknown>): Promise<ProxyClientError> {
  try {
    await promise;
  } catch (error) {
    expect(error).toBeInstanceOf(ProxyClientError);
    return error as ProxyClientError;
  }
  throw new Error('expected the promise to reject');
}

describe('ProxyTokenStore', () => {
  it('reports the proxy backend', async () => {
    const { tokens } = await setup({});
    expect(tokens.backend).toBe('proxy');
  });

  it('maps getToken to get_token with the default bucket', async () => {
    const { tokens, sent } = await setup({ get_token: reply(TOKEN) });
    await expect(tokens.getToken('anthropic')).resolves.toEqual(TOKEN);
    await tokens.getToken('anthropic', 'work');
    expect(sent()).toEqual([
      { op: 'get_token', payload: { provider: 'anthropic', bucket: 'default' } },
      { op: 'get_token', payload: { provider: 'anthropic', bucket: 'work' } },
    ]);
  });

  it('maps NOT_FOUND to null for getToken and getBucketStats', async () => {
    const { tokens } = await setup({ get_token: fail('NOT_FOUND', 'No token'), get_bucket_stats: fail('NOT_FOUND', 'No bucket') });
    await expect(tokens.getToken('anthropic')).resolves.toBeNull();
    await expect(tokens.getBucketStats('anthropic', 'b')).resolves.toBeNull();
  });

  it('throws other errors with their code and message', async () => {
    const { tokens } = await setup({ get_token: fail('UNAUTHORIZED', 'Provider anthropic is not granted') });
    const error = await rejection(tokens.getToken('anthropic'));
    expect([error.code, error.message]).toEqual(['UNAUTHORIZED', 'Provider anthropic is not granted']);
  });

  it('refuses a malformed token reply', async () => {
    const { tokens } = await setup({ get_token: reply({ access_token: 42 }) });
    expect((await rejection(tokens.getToken('anthropic'))).code).toBe('PROTOCOL_ERROR');
  });

  it('saves through save_token without sending a refresh_token', async () => {
    const { tokens, sent } = await setup({ save_token: reply({}) });
    await tokens.saveToken('qwen', undefined, { ...TOKEN, refresh_token: 'rt-secret', resource_url: 'https://x' });
    expect(sent()).toEqual([
      { op: 'save_token', payload: { provider: 'qwen', bucket: 'default', token: { ...TOKEN, resource_url: 'https://x' } } },
    ]);
  });

  it('removes through remove_token', async () => {
    const { tokens, sent } = await setup({ remove_token: reply({}) });
    await expect(tokens.removeToken('qwen', 'b2')).resolves.toBeUndefined();
    expect(sent()).toEqual([{ op: 'remove_token', payload: { provider: 'qwen', bucket: 'b2' } }]);
  });

  it('lists providers and buckets', async () => {
    const { tokens, sent } = await setup({
      list_providers: reply({ providers: ['anthropic', 'qwen'] }),
      list_buckets: reply({ buckets: ['default', 'work'] }),
    });
    await expect(tokens.listProviders()).resolves.toEqual(['anthropic', 'qwen']);
    await expect(tokens.listBuckets('anthropic')).resolves.toEqual(['default', 'work']);
    expect(sent()).toEqual([
      { op: 'list_providers', payload: {} },
      { op: 'list_buckets', payload: { provider: 'anthropic' } },
    ]);
  });

  it('refuses a list reply that is not an array of strings', async () => {
    const { tokens } = await setup({ list_providers: reply({ providers: 'anthropic' }) });
    expect((await rejection(tokens.listProviders())).code).toBe('PROTOCOL_ERROR');
  });

  it('returns bucket stats', async () => {
    const stats = { bucket: 'default', requestCount: 3, percentage: 50, lastUsed: 1_700_000_000_000 };
    const { tokens, sent } = await setup({ get_bucket_stats: reply(stats) });
    await expect(tokens.getBucketStats('anthropic')).resolves.toEqual(stats);
    expect(sent()).toEqual([{ op: 'get_bucket_stats', payload: { provider: 'anthropic', bucket: 'default' } }]);
  });

  it('refreshes through refresh_token and surfaces RATE_LIMITED with retryAfter', async () => {
    let calls = 0;
    const { tokens, sent } = await setup({
      refresh_token: (f, c) => (++calls === 1 ? c.reply(f, TOKEN) : c.fail(f, 'RATE_LIMITED', 'Refresh cooldown', 12)),
    });
    await expect(tokens.refreshToken('codex', 'b')).resolves.toEqual(TOKEN);
    const error = await rejection(tokens.refreshToken('codex'));
    expect([error.code, error.message, error.retryAfter]).toEqual(['RATE_LIMITED', 'Refresh cooldown', 12]);
    expect(sent()).toEqual([
      { op: 'refresh_token', payload: { provider: 'codex', bucket: 'b' } },
      { op: 'refresh_token', payload: { provider: 'codex', bucket: 'default' } },
    ]);
  });

  it('close() closes the client it was given', async () => {
    const { tokens } = await setup({ list_providers: reply({ providers: [] }) });
    await tokens.listProviders();
    await tokens.close();
    expect((await rejection(tokens.listProviders())).code).toBe('CLOSED');
  });
});

describe('ProxyKeyStore', () => {
  it('reads keys through get_api_key, list_api_keys and has_api_key', async () => {
    const { keys, sent } = await setup({
      get_api_key: reply({ key: 'sk-123' }),
      list_api_keys: reply({ keys: ['openai'] }),
      has_api_key: reply({ exists: true }),
    });
    expect(keys.backend).toBe('proxy');
    await expect(keys.getKey('openai')).resolves.toBe('sk-123');
    await expect(keys.listKeys()).resolves.toEqual(['openai']);
    await expect(keys.hasKey('openai')).resolves.toBe(true);
    expect(sent()).toEqual([
      { op: 'get_api_key', payload: { name: 'openai' } },
      { op: 'list_api_keys', payload: {} },
      { op: 'has_api_key', payload: { name: 'openai' } },
    ]);
  });

  it('maps NOT_FOUND to null and other errors to throws', async () => {
    let calls = 0;
    const { keys } = await setup({
      get_api_key: (f, c) => (++calls === 1 ? c.fail(f, 'NOT_FOUND', 'No key') : c.fail(f, 'UNAUTHORIZED', 'Key x is not granted')),
    });
    await expect(keys.getKey('x')).resolves.toBeNull();
    expect((await rejection(keys.getKey('x'))).code).toBe('UNAUTHORIZED');
  });

  it('refuses a malformed has_api_key reply', async () => {
    const { keys } = await setup({ has_api_key: reply({ exists: 'yes' }) });
    expect((await rejection(keys.hasKey('x'))).code).toBe('PROTOCOL_ERROR');
  });

  it('refuses setKey and deleteKey with the exact message, without contacting the host', async () => {
    const { keys, server } = await setup({});
    expect(KEY_MANAGEMENT_UNAVAILABLE).toBe('API key management is not available in sandbox mode. Manage keys on the host.');
    for (const attempt of [keys.setKey('openai', 'sk-new'), keys.deleteKey('openai')]) {
      const error = await rejection(attempt);
      expect(error.message).toBe(KEY_MANAGEMENT_UNAVAILABLE);
      expect(error.code).toBe('READ_ONLY');
    }
    expect(server.connections).toHaveLength(0);
  });
});
