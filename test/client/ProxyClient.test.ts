import { afterEach, describe, expect, it } from 'vitest';
import { CONNECTION_LOST_MESSAGE, ProxyClient, ProxyClientError, type ProxyClientOptions } from '../../src/client/ProxyClient.js';
import { MAX_FRAME_V1 } from '../../src/protocol/framing.js';
import { FrameServer, type FrameServerOptions } from '../helpers/frameServer.js';

const TOKEN = 'ab'.repeat(32);
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

let server: FrameServer | undefined;
let clients: ProxyClient[] = [];

afterEach(async () => {
  await Promise.all(clients.map((c) => c.close()));
  clients = [];
  await server?.close();
  server = undefined;
});

async function setup(serverOptions: FrameServerOptions = {}, clientOptions: Partial<ProxyClientOptions> = {}) {
  server = await FrameServer.start(serverOptions);
  const client = new ProxyClient({ socketPath: server.socketPath, ...clientOptions });
  clients.push(client);
  return { server, client };
}

async function rejection(promise: Promise<unknown>): Promise<ProxyClientError> {
  try {
    await promise;
  } catch (error) {
    expect(error).toBeInstanceOf(ProxyClientError);
    return error as ProxyClientError;
  }
  throw new Error('expected the promise to reject');
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe('ProxyClient connection and handshake', () => {
  it('connects lazily: no connection before the first request', async () => {
    const { server, client } = await setup();
    await sleep(50);
    expect(server.connections).toHaveLength(0);
    expect(client.connected).toBe(false);

    const pending = client.request('list_providers', {});
    const conn = await server.connection(0);
    expect((await conn.next()).op).toBe('handshake');
    const request = await conn.next();
    expect(request).toMatchObject({ v: 2, op: 'list_providers', payload: {} });
    expect(request.id).toMatch(UUID);
    conn.reply(request, { providers: ['a'] });
    await expect(pending).resolves.toEqual({ providers: ['a'] });
    expect(client.version).toBe(2);
  });

  it('sends the exact v2 handshake without a capability token', async () => {
    const { server, client } = await setup({ onRequest: (f, c) => c.reply(f) });
    await client.request('list_api_keys', {});
    expect(server.connections[0]!.frames[0]).toStrictEqual({ v: 2, op: 'handshake', payload: { minVersion: 1, maxVersion: 2 } });
  });

  it('sends the capability token in the handshake when it has one', async () => {
    const { server, client } = await setup({ onRequest: (f, c) => c.reply(f) }, { capabilityToken: TOKEN });
    await client.request('list_api_keys', {});
    expect(server.connections[0]!.frames[0]).toStrictEqual({
      v: 2,
      op: 'handshake',
      payload: { minVersion: 1, maxVersion: 2, capabilityToken: TOKEN },
    });
  });

  it('offers only version 1 when maxVersion is 1 and then speaks v1', async () => {
    const { server, client } = await setup({ onRequest: (f, c) => c.reply(f) }, { maxVersion: 1 });
    await client.request('list_api_keys', {});
    const [handshake, request] = server.connections[0]!.frames;
    expect(handshake).toStrictEqual({ v: 1, op: 'handshake', payload: { minVersion: 1, maxVersion: 1 } });
    expect(request).toMatchObject({ v: 1, op: 'list_api_keys' });
    expect(client.version).toBe(1);
  });

  it('shares one connection and one handshake among concurrent first requests', async () => {
    const { server, client } = await setup({ onRequest: (f, c) => c.reply(f, { echo: f.id }) });
    const results = await Promise.all([1, 2, 3].map(() => client.request('list_providers', {})));
    expect(server.connections).toHaveLength(1);
    expect(server.connections[0]!.frames.filter((f) => f.op === 'handshake')).toHaveLength(1);
    expect(new Set(results.map((r) => r.echo)).size).toBe(3);
  });

  it("rejects with the host's code and message on a failed handshake, never showing the token", async () => {
    let attempts = 0;
    const { server, client } = await setup(
      {
        handshake: () =>
          ++attempts === 1
            ? { v: 2, op: 'handshake', ok: false, code: 'UNAUTHORIZED', error: `Invalid or missing capability token ${TOKEN}` }
            : { v: 2, op: 'handshake', ok: true, data: { version: 2 } },
        onRequest: (f, c) => c.reply(f, { keys: [] }),
      },
      { capabilityToken: TOKEN },
    );
    const error = await rejection(client.request('list_api_keys', {}));
    expect(error.code).toBe('UNAUTHORIZED');
    expect(error.message).toContain('Invalid or missing capability token');
    expect(error.message).not.toContain(TOKEN);
    expect(error.stack ?? '').not.toContain(TOKEN);
    expect(client.connected).toBe(false);
    // The failed connection is not reused; the next request tries again.
    await expect(client.request('list_api_keys', {})).resolves.toEqual({ keys: [] });
    expect(server.connections).toHaveLength(2);
  });

  it('gives up on a host that never answers the handshake', async () => {
    const { server, client } = await setup({ handshake: () => null }, { handshakeTimeoutMs: 100 });
    const error = await rejection(client.request('list_providers', {}));
    expect(error.code).toBe('HANDSHAKE_TIMEOUT');
    await server.connections[0]!.waitClosed();
  });

  it('reports a missing socket as CONNECT_FAILED', async () => {
    const { client } = await setup({}, { socketPath: '/nonexistent-credproxy-dir/x.sock' });
    const error = await rejection(client.request('list_providers', {}));
    expect(error.code).toBe('CONNECT_FAILED');
  });

  it('speaks the same protocol over loopback TCP, which requires a capability token', async () => {
    server = await FrameServer.start({ tcp: true, onRequest: (f, c) => c.reply(f, { providers: [] }) });
    expect(() => new ProxyClient({ port: server!.port! })).toThrow(/requires a capability token/);
    const client = new ProxyClient({ host: '127.0.0.1', port: server.port!, capabilityToken: TOKEN });
    clients.push(client);
    await expect(client.request('list_providers', {})).resolves.toEqual({ providers: [] });
    expect(server.connections[0]!.frames[0]).toMatchObject({ payload: { capabilityToken: TOKEN } });
  });

  it('rejects a malformed capability token without echoing it', () => {
    const secret = 'SECRET-not-a-token';
    expect(() => new ProxyClient({ socketPath: '/x', capabilityToken: secret })).toThrow(/64 lowercase hex/);
    try {
      new ProxyClient({ socketPath: '/x', capabilityToken: secret });
    } catch (error) {
      expect((error as Error).message).not.toContain(secret);
    }
  });
});

describe('ProxyClient requests', () => {
  it('correlates out-of-order replies by id', async () => {
    const { server, client } = await setup();
    const names = ['a', 'b', 'c'];
    const pending = names.map((name) => client.request('get_api_key', { name }));
    const conn = await server.connection(0);
    await conn.next();
    const requests = [await conn.next(), await conn.next(), await conn.next()];
    for (const request of [...requests].reverse()) {
      conn.reply(request, { key: `key-${(request.payload as { name: string }).name}` });
      await sleep(10);
    }
    await expect(Promise.all(pending)).resolves.toEqual([{ key: 'key-a' }, { key: 'key-b' }, { key: 'key-c' }]);
  });

  it('rejects error replies with code, message and retryAfter', async () => {
    const { client } = await setup({
      onRequest: (f, c) =>
        f.op === 'refresh_token' ? c.fail(f, 'RATE_LIMITED', 'Refresh rate limited', 7) : c.fail(f, 'NOT_FOUND', 'No token'),
    });
    const limited = await rejection(client.request('refresh_token', { provider: 'p' }));
    expect({ code: limited.code, message: limited.message, retryAfter: limited.retryAfter }).toEqual({
      code: 'RATE_LIMITED',
      message: 'Refresh rate limited',
      retryAfter: 7,
    });
    const missing = await rejection(client.request('get_token', { provider: 'p' }));
    expect(missing.code).toBe('NOT_FOUND');
    expect(missing.retryAfter).toBeUndefined();
  });

  it('on timeout (v2) rejects, sends cancel with the right targetId and drops the late reply', async () => {
    const { server, client } = await setup();
    const failed = rejection(client.request('refresh_token', { provider: 'p' }, { timeoutMs: 100 }));
    const conn = await server.connection(0);
    await conn.next();
    const request = await conn.next();
    const error = await failed;
    expect(error.code).toBe('TIMEOUT');
    const cancel = await conn.next();
    expect(cancel).toMatchObject({ v: 2, op: 'cancel', payload: { targetId: request.id } });
    expect(cancel.id).toMatch(UUID);
    expect(cancel.id).not.toBe(request.id);

    conn.fail(request, 'CANCELLED', 'Request cancelled');
    conn.reply(cancel, { cancelled: true });
    const next = client.request('list_providers', {});
    const nextRequest = await conn.next();
    expect(nextRequest.op).toBe('list_providers');
    conn.reply(nextRequest, { providers: ['x'] });
    await expect(next).resolves.toEqual({ providers: ['x'] });
    expect(server.connections).toHaveLength(1);
  });

  it('on timeout (v1) rejects without sending cancel', async () => {
    const { server, client } = await setup({ maxVersion: 1 });
    const failed = rejection(client.request('refresh_token', { provider: 'p' }, { timeoutMs: 100 }));
    const conn = await server.connection(0);
    await conn.next();
    await conn.next();
    expect((await failed).code).toBe('TIMEOUT');
    expect(await conn.nextWithin(200)).toBeNull();
  });

  it('cancels an aborted request on the host (v2)', async () => {
    const { server, client } = await setup();
    const controller = new AbortController();
    const failed = rejection(client.request('oauth_poll', { session_id: 's1' }, { signal: controller.signal }));
    const conn = await server.connection(0);
    await conn.next();
    const request = await conn.next();
    controller.abort();
    expect((await failed).code).toBe('ABORTED');
    expect(await conn.next()).toMatchObject({ op: 'cancel', payload: { targetId: request.id } });
  });

  it('rejects every pending request when the connection drops, and reconnects without replay', async () => {
    const { server, client } = await setup();
    const failed = [rejection(client.request('get_token', { provider: 'a' })), rejection(client.request('get_token', { provider: 'b' }))];
    const conn = await server.connection(0);
    await conn.next();
    await conn.next();
    await conn.next();
    conn.destroy();
    for (const error of await Promise.all(failed)) {
      expect(error.code).toBe('CONNECTION_LOST');
      expect(error.message).toBe(CONNECTION_LOST_MESSAGE);
    }
    expect(CONNECTION_LOST_MESSAGE).toBe('Credential proxy connection lost. Restart the session.');

    const third = client.request('get_token', { provider: 'c' });
    const conn2 = await server.connection(1);
    expect((await conn2.next()).op).toBe('handshake');
    const request = await conn2.next();
    expect(request.payload).toEqual({ provider: 'c' });
    conn2.reply(request, { access_token: 't', expiry: 1, token_type: 'Bearer' });
    await expect(third).resolves.toMatchObject({ access_token: 't' });
    expect(await conn2.nextWithin(100)).toBeNull();
  });

  it('closes gracefully after idleTimeoutMs and reconnects with a fresh handshake', async () => {
    const { server, client } = await setup({ onRequest: (f, c) => c.reply(f) }, { idleTimeoutMs: 100 });
    await client.request('list_providers', {});
    const conn = server.connections[0]!;
    await conn.waitClosed();
    expect(conn.endedByClient).toBe(true);
    expect(client.connected).toBe(false);

    await client.request('list_providers', {});
    expect(server.connections).toHaveLength(2);
    expect(server.connections[1]!.frames.map((f) => f.op)).toEqual(['handshake', 'list_providers']);
  });

  it('does not idle-close while a request is pending', async () => {
    const { server, client } = await setup({}, { idleTimeoutMs: 50 });
    const pending = client.request('refresh_token', { provider: 'p' });
    const conn = await server.connection(0);
    await conn.next();
    const request = await conn.next();
    await sleep(250);
    conn.reply(request, { access_token: 't', expiry: 1, token_type: 'Bearer' });
    await expect(pending).resolves.toMatchObject({ access_token: 't' });
    expect(server.connections).toHaveLength(1);
    expect(conn.endedByClient).toBe(false);
  });

  it('close() rejects pending requests and refuses later ones', async () => {
    const { server, client } = await setup();
    const failed = rejection(client.request('list_providers', {}));
    const conn = await server.connection(0);
    await conn.next();
    await conn.next();
    await client.close();
    expect((await failed).code).toBe('CLOSED');
    expect((await rejection(client.request('list_providers', {}))).code).toBe('CLOSED');
    await conn.waitClosed();
    expect(conn.endedByClient).toBe(true);
  });
});

describe('ProxyClient frame limits', () => {
  /** A save_token payload whose request frame body (with a 36-char uuid id) is exactly `size` bytes. */
  function payloadOfSize(version: 1 | 2, size: number) {
    const token = { access_token: '', expiry: 1, token_type: 'Bearer' };
    const payload = { provider: 'p', bucket: 'default', token };
    const base = JSON.stringify({ v: version, id: 'x'.repeat(36), op: 'save_token', payload }).length;
    token.access_token = 'a'.repeat(size - base);
    return payload;
  }

  it('sends a request of exactly the v1 limit and rejects one byte more locally', async () => {
    const { server, client } = await setup({ maxVersion: 1, onRequest: (f, c) => c.reply(f) });
    await expect(client.request('save_token', payloadOfSize(1, MAX_FRAME_V1))).resolves.toEqual({});
    const error = await rejection(client.request('save_token', payloadOfSize(1, MAX_FRAME_V1 + 1)));
    expect(error.code).toBe('FRAME_TOO_LARGE');
    expect(error.message).toMatch(/65537 bytes, over the 65536-byte frame limit of protocol version 1/);
    await sleep(50);
    expect(server.connections[0]!.requests).toHaveLength(1);
    expect(client.connected).toBe(true);
  });

  it('sends requests over 64 KiB once v2 is negotiated', async () => {
    const { server, client } = await setup({ onRequest: (f, c) => c.reply(f) });
    await expect(client.request('save_token', payloadOfSize(2, 200_000))).resolves.toEqual({});
    expect(server.connections[0]!.requests).toHaveLength(1);
  });

  it('accepts replies over 64 KiB only when v2 is negotiated', async () => {
    const big = { keys: ['k'.repeat(70_000)] };
    const v2 = await setup({ onRequest: (f, c) => c.reply(f, big) });
    await expect(v2.client.request('list_api_keys', {})).resolves.toEqual(big);
    await v2.server.close();

    const v1 = await setup({ maxVersion: 1, onRequest: (f, c) => c.reply(f, big) });
    const error = await rejection(v1.client.request('list_api_keys', {}));
    expect(error.code).toBe('CONNECTION_LOST');
  });
});
