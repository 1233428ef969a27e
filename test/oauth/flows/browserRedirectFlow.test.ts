/**
 * Browser redirect: the one-shot loopback callback server (state check, pages, closing) and the
 * single exchange, against a local standard token endpoint.
 */
import http from 'node:http';
import net, { type AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import type { StartedFlow } from '../../../src/oauth/flowTypes.js';
import { startBrowserRedirectFlow } from '../../../src/oauth/flows/browserRedirectFlow.js';
import { providerDefinitionSchema } from '../../../src/oauth/providers/definition.js';
import { createAdapter } from '../../../src/oauth/providers/registry.js';
import { browserGet, never, probePort, s256, startFakeServer, testDeps, type FakeServer } from './helpers.js';

let server: FakeServer | undefined;
let flow: StartedFlow | undefined;
const extraServers: http.Server[] = [];
afterEach(async () => {
  await flow?.cancel();
  await server?.close();
  for (const s of extraServers.splice(0)) s.close();
  server = flow = undefined;
});

async function start(tokenDelayMs = 0, callback: Record<string, unknown> = { port: 0, path: '/cb' }) {
  let challenge = '';
  server = await startFakeServer((req) => {
    if (s256(String(req.body.code_verifier)) !== challenge) return { status: 400, body: { error: 'invalid_grant' } };
    return { body: { access_token: 'at', token_type: 'Bearer', expires_in: 60 }, delayMs: tokenDelayMs };
  });
  const adapter = createAdapter(
    providerDefinitionSchema.parse({
      name: 'idp',
      clientId: 'cli',
      flows: ['browser_redirect'],
      endpoints: { authorization: 'https://idp.test/authorize', token: `${server.url}/token` },
      callback,
    }),
  );
  flow = await adapter.start('browser_redirect', testDeps());
  const authUrl = new URL(flow.publicData.auth_url!);
  challenge = authUrl.searchParams.get('code_challenge')!;
  const redirect = new URL(authUrl.searchParams.get('redirect_uri')!);
  return { flow, server, state: authUrl.searchParams.get('state')!, redirect, port: Number(redirect.port) };
}

describe('browser redirect flow', () => {
  it('listens on an ephemeral loopback port named in redirect_uri', async () => {
    const { flow, redirect, port } = await start();
    expect(flow.flowType).toBe('browser_redirect');
    expect(redirect.protocol + redirect.hostname + redirect.pathname).toBe('http:127.0.0.1/cb');
    expect(port).toBeGreaterThan(0);
    expect(await probePort(port)).toBe('connected');
    expect(await flow.poll!(never)).toEqual({ status: 'pending', pollIntervalMs: 1_000 });
  });

  it('a callback with the wrong state gets a failure page, no exchange, and the login keeps waiting', async () => {
    const { flow, server, redirect, port } = await start();
    const page = await browserGet(`${redirect.href}?code=c&state=forged`);
    expect(page.status).toBe(400);
    expect(page.text).toContain('Login failed');
    expect(page.text).not.toContain('forged');
    expect(await browserGet(`${redirect.href}?error=access_denied&state=forged`)).toMatchObject({ status: 400 });
    expect(await flow.poll!(never)).toMatchObject({ status: 'pending' });
    expect(server.requests).toHaveLength(0);
    expect(await probePort(port)).toBe('connected');
  });

  it('the right callback gets a success page, closes the server, and poll exchanges exactly once', async () => {
    const { flow, server, state, redirect, port } = await start();
    expect((await browserGet(`http://127.0.0.1:${port}/favicon.ico`)).status).toBe(404);
    const page = await browserGet(`${redirect.href}?code=the-code&state=${encodeURIComponent(state)}`);
    expect(page.status).toBe(200);
    expect(page.text).toContain('Login complete');
    expect(page.text).not.toContain('the-code');
    await new Promise((r) => setTimeout(r, 50));
    expect(await probePort(port)).toBe('ECONNREFUSED');
    const result = await flow.poll!(never);
    expect(result).toMatchObject({ status: 'complete', token: { access_token: 'at', token_type: 'Bearer' } });
    await expect(flow.poll!(never)).rejects.toMatchObject({ code: 'POLL_FAILED' });
    expect(server.to('/token')).toHaveLength(1);
    expect(server.to('/token')[0]!.body).toMatchObject({ grant_type: 'authorization_code', code: 'the-code', redirect_uri: redirect.href });
  });

  it('a poll that gives up mid-exchange does not lose the code: the next poll gets the token', async () => {
    const { flow, server, state, redirect } = await start(300);
    await browserGet(`${redirect.href}?code=the-code&state=${state}`);
    const aborter = new AbortController();
    const first = flow.poll!(aborter.signal).catch((e: unknown) => e);
    setTimeout(() => aborter.abort(), 50);
    expect(await first).toMatchObject({ code: 'POLL_FAILED' });
    expect(await flow.poll!(never)).toMatchObject({ status: 'complete' });
    expect(server.to('/token')).toHaveLength(1);
  });

  it('a poll that arrives already aborted leaves no unhandled rejection when the exchange then fails', async () => {
    const { flow, server, state, redirect } = await start();
    await browserGet(`${redirect.href}?code=the-code&state=${state}`);
    await server.close(); // the exchange will fail: nothing listens at the token endpoint
    const unhandled: unknown[] = [];
    const onUnhandled = (reason: unknown) => unhandled.push(reason);
    process.on('unhandledRejection', onUnhandled);
    try {
      await expect(flow.poll!(AbortSignal.abort())).rejects.toMatchObject({ code: 'POLL_FAILED', message: 'Poll cancelled' });
      await new Promise((r) => setTimeout(r, 200));
      expect(unhandled).toEqual([]);
      await expect(flow.poll!(never)).rejects.toMatchObject({ code: 'POLL_FAILED', message: expect.stringContaining('Token exchange failed') });
    } finally {
      process.off('unhandledRejection', onUnhandled);
    }
  });

  it('a denied authorization (right state) is ACCESS_DENIED and closes the server', async () => {
    const { flow, state, redirect, port } = await start();
    const page = await browserGet(`${redirect.href}?error=access_denied&state=${state}`);
    expect(page.text).toContain('not granted');
    await expect(flow.poll!(never)).rejects.toMatchObject({ code: 'ACCESS_DENIED', message: 'User denied authorization' });
    await new Promise((r) => setTimeout(r, 50));
    expect(await probePort(port)).toBe('ECONNREFUSED');
  });

  it('cancel() frees the port', async () => {
    const { flow, port } = await start();
    expect(await probePort(port)).toBe('connected');
    await flow.cancel();
    expect(await probePort(port)).toBe('ECONNREFUSED');
    await expect(flow.poll!(never)).rejects.toMatchObject({ code: 'POLL_FAILED' });
    await flow.cancel(); // idempotent
  });

  it('a busy fixed port is FLOW_INITIATION_FAILED naming the port', async () => {
    const busy = http.createServer();
    extraServers.push(busy);
    await new Promise<void>((r) => busy.listen(0, '127.0.0.1', r));
    const port = (busy.address() as AddressInfo).port;
    await expect(start(0, { port, path: '/cb', host: 'localhost' })).rejects.toMatchObject({
      code: 'FLOW_INITIATION_FAILED',
      message: expect.stringContaining(`port ${port}`),
    });
  });

  it('a request target that is not a valid URL gets a 404 and the login keeps waiting (no throw in the request handler)', async () => {
    const { flow, port } = await start();
    const statusLine = await new Promise<string>((resolve, reject) => {
      const socket = net.connect({ host: '127.0.0.1', port }, () => socket.write('GET //[ HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n'));
      socket.once('data', (chunk) => {
        socket.destroy();
        resolve(String(chunk).split('\r\n')[0]!);
      });
      socket.once('error', reject);
      setTimeout(() => reject(new Error('no response from the callback server')), 2_000).unref();
    });
    expect(statusLine).toBe('HTTP/1.1 404 Not Found');
    expect(await probePort(port)).toBe('connected');
    expect(await flow.poll!(never)).toMatchObject({ status: 'pending' });
  });

  it('closes by itself after maxLifetimeMs when nobody cancels', async () => {
    const abandoned = await startBrowserRedirectFlow(
      {
        callback: { host: '127.0.0.1', port: 0, path: '/cb' },
        authUrl: ({ redirectUri }) => `https://idp.test/a?redirect_uri=${encodeURIComponent(redirectUri)}`,
        exchange: () => Promise.reject(new Error('unused')),
        maxLifetimeMs: 100,
      },
      testDeps(),
    );
    const port = Number(new URL(new URL(abandoned.publicData.auth_url!).searchParams.get('redirect_uri')!).port);
    expect(await probePort(port)).toBe('connected');
    await new Promise((r) => setTimeout(r, 250));
    expect(await probePort(port)).toBe('ECONNREFUSED');
  });
});
