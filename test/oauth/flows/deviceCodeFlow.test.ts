/**
 * RFC 8628 on the host, against a local standards-compliant server (custom provider, oauth4webapi
 * path): interval enforcement with a controlled clock, slow_down, terminal errors, safe messages.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { FlowError, type StartedFlow } from '../../../src/oauth/flowTypes.js';
import { providerDefinitionSchema } from '../../../src/oauth/providers/definition.js';
import { createAdapter } from '../../../src/oauth/providers/registry.js';
import { startFakeServer, testDeps, never, type FakeServer, type Handler, type TestDeps } from './helpers.js';

let server: FakeServer | undefined;
let flow: StartedFlow | undefined;
afterEach(async () => {
  await flow?.cancel();
  await server?.close();
  server = flow = undefined;
});

const DEVICE = { device_code: 'dev-code-SECRET', user_code: 'WDJB-MJHT', verification_uri: 'https://idp.test/device', expires_in: 600 };

/** Starts a device login against a server whose token endpoint answers with `token`. */
async function start(token: Handler, device: Record<string, unknown> = { ...DEVICE, interval: 5 }, deps: TestDeps = testDeps()) {
  server = await startFakeServer((req) => (req.path === '/device' ? { body: device } : token(req)));
  const adapter = createAdapter(
    providerDefinitionSchema.parse({
      name: 'idp',
      clientId: 'cli',
      scopes: ['openid', 'offline_access'],
      flows: ['device_code'],
      endpoints: { token: `${server.url}/token`, deviceAuthorization: `${server.url}/device` },
    }),
  );
  flow = await adapter.start('device_code', deps);
  return { flow, deps, server };
}

const pending: Handler = () => ({ status: 400, body: { error: 'authorization_pending' } });

describe('device code flow', () => {
  it('reveals user code and verification URIs, never the device code', async () => {
    const { flow, server } = await start(pending, { ...DEVICE, verification_uri_complete: 'https://idp.test/device?c=WDJB' });
    expect(flow.flowType).toBe('device_code');
    expect(flow.publicData).toEqual({
      verification_url: 'https://idp.test/device',
      verification_uri: 'https://idp.test/device',
      user_code: 'WDJB-MJHT',
      verification_uri_complete: 'https://idp.test/device?c=WDJB',
    });
    expect(JSON.stringify(flow.publicData)).not.toContain('dev-code-SECRET');
    const authz = server.to('/device')[0]!;
    expect(authz.body).toMatchObject({ client_id: 'cli', scope: 'openid offline_access' });
  });

  it('never calls the token endpoint faster than the interval, however often the client polls', async () => {
    const { flow, deps, server } = await start(pending);
    expect(flow.pollIntervalMs()).toBe(5_000);
    for (let i = 0; i < 20; i++) expect(await flow.poll!(never)).toEqual({ status: 'pending', pollIntervalMs: 5_000 });
    expect(server.to('/token')).toHaveLength(0); // the first request also waits one interval
    deps.clock.advance(5_000);
    for (let i = 0; i < 10; i++) await flow.poll!(never);
    expect(server.to('/token')).toHaveLength(1);
    deps.clock.advance(4_999);
    for (let i = 0; i < 10; i++) await flow.poll!(never);
    expect(server.to('/token')).toHaveLength(1);
    deps.clock.advance(1);
    await flow.poll!(never);
    expect(server.to('/token')).toHaveLength(2);
    expect(server.to('/token')[0]!.body).toMatchObject({ grant_type: 'urn:ietf:params:oauth:grant-type:device_code', device_code: 'dev-code-SECRET', client_id: 'cli' });
  });

  it('does not send a second request while one is in flight', async () => {
    const { flow, deps, server } = await start(() => ({ status: 400, body: { error: 'authorization_pending' }, delayMs: 200 }));
    deps.clock.advance(5_000);
    const first = flow.poll!(never);
    deps.clock.advance(60_000);
    expect(await flow.poll!(never)).toMatchObject({ status: 'pending' });
    await first;
    expect(server.to('/token')).toHaveLength(1);
  });

  it('slow_down adds 5 s to the interval', async () => {
    let n = 0;
    const { flow, deps, server } = await start(() => (n++ === 0 ? { status: 400, body: { error: 'slow_down' } } : pending({} as never)));
    deps.clock.advance(5_000);
    expect(await flow.poll!(never)).toEqual({ status: 'pending', pollIntervalMs: 10_000, intervalSeconds: 10 });
    expect(flow.pollIntervalMs()).toBe(10_000);
    deps.clock.advance(9_999);
    await flow.poll!(never);
    expect(server.to('/token')).toHaveLength(1);
    deps.clock.advance(1);
    await flow.poll!(never);
    expect(server.to('/token')).toHaveLength(2);
  });

  it('uses the default interval of 5 s when the provider names none', async () => {
    const { deps, server, flow } = await start(pending, DEVICE);
    deps.clock.advance(4_999);
    await flow.poll!(never);
    expect(server.to('/token')).toHaveLength(0);
    deps.clock.advance(1);
    await flow.poll!(never);
    expect(server.to('/token')).toHaveLength(1);
  });

  it('maps expired_token to SESSION_EXPIRED and stays terminal without further requests', async () => {
    const { flow, deps, server } = await start(() => ({ status: 400, body: { error: 'expired_token' } }));
    deps.clock.advance(5_000);
    await expect(flow.poll!(never)).rejects.toEqual(new FlowError('SESSION_EXPIRED', 'Device code expired'));
    deps.clock.advance(60_000);
    await expect(flow.poll!(never)).rejects.toMatchObject({ code: 'SESSION_EXPIRED' });
    expect(server.to('/token')).toHaveLength(1);
  });

  it('reports SESSION_EXPIRED without a request once the device code lifetime is over', async () => {
    const { flow, deps, server } = await start(pending, { ...DEVICE, expires_in: 30 });
    deps.clock.advance(30_000);
    await expect(flow.poll!(never)).rejects.toMatchObject({ code: 'SESSION_EXPIRED', message: 'Device code expired' });
    expect(server.to('/token')).toHaveLength(0);
  });

  it('maps access_denied to ACCESS_DENIED', async () => {
    const { flow, deps } = await start(() => ({ status: 400, body: { error: 'access_denied', error_description: 'no' } }));
    deps.clock.advance(5_000);
    const err = await flow.poll!(never).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(FlowError);
    expect(err).toMatchObject({ code: 'ACCESS_DENIED', message: 'User denied authorization' });
  });

  it('other failures are POLL_FAILED with a safe message, and the session stays usable', async () => {
    let n = 0;
    const { flow, deps, server } = await start(() =>
      n++ === 0
        ? { status: 400, body: { error: 'invalid_client', error_description: 'leaked dev-code-SECRET', access_token: 'tok-SECRET' } }
        : { status: 500, body: 'upstream stack trace tok-SECRET' },
    );
    deps.clock.advance(5_000);
    const first = (await flow.poll!(never).catch((e: unknown) => e)) as FlowError;
    expect(first).toMatchObject({ code: 'POLL_FAILED' });
    expect(first.message).toContain('invalid_client');
    deps.clock.advance(5_000);
    const second = (await flow.poll!(never).catch((e: unknown) => e)) as FlowError;
    expect(second).toMatchObject({ code: 'POLL_FAILED' });
    expect(second.message).toContain('HTTP 500');
    for (const e of [first, second]) expect(e.message).not.toMatch(/SECRET|stack/);
    expect(server.to('/token')).toHaveLength(2);
  });

  it('completes with the mapped token: expiry in epoch seconds, Bearer, refresh token kept', async () => {
    let n = 0;
    const { flow, deps } = await start(() =>
      n++ < 1 ? pending({} as never) : { body: { access_token: 'at-1', token_type: 'bearer', expires_in: 120, refresh_token: 'rt-1', scope: 'openid' } },
    );
    deps.clock.advance(5_000);
    await flow.poll!(never);
    deps.clock.advance(5_000);
    const result = await flow.poll!(never);
    expect(result).toEqual({
      status: 'complete',
      token: { access_token: 'at-1', token_type: 'Bearer', expiry: Math.floor(deps.clock.t / 1000) + 120, refresh_token: 'rt-1', scope: 'openid' },
    });
    deps.clock.advance(5_000);
    await expect(flow.poll!(never)).rejects.toMatchObject({ code: 'POLL_FAILED' });
  });

  it('gives up an upstream call after httpTimeoutMs', async () => {
    const { flow, deps } = await start(() => ({ delayMs: 2_000, body: {} }), { ...DEVICE, interval: 5 }, testDeps({ httpTimeoutMs: 100 }));
    deps.clock.advance(5_000);
    // The message says the 100 ms limit ended it: the 2 s answer would have been a different failure.
    await expect(flow.poll!(never)).rejects.toMatchObject({ code: 'POLL_FAILED', message: 'Token request failed: token endpoint timed out' });
  });

  it('cancel aborts an in-flight request and ends the flow', async () => {
    const { flow, deps } = await start(() => ({ delayMs: 2_000, ...pending({} as never) }));
    deps.clock.advance(5_000);
    const polled = flow.poll!(never).catch((e: unknown) => e);
    await new Promise((r) => setTimeout(r, 50));
    await flow.cancel();
    expect(await polled).toMatchObject({ code: 'POLL_FAILED', message: 'This login was cancelled' });
    await expect(flow.poll!(never)).rejects.toMatchObject({ code: 'POLL_FAILED' });
  });

  it('a failing device authorization request is FLOW_INITIATION_FAILED with a safe message', async () => {
    server = await startFakeServer(() => ({ status: 401, body: { error: 'invalid_client', error_description: 'client cli-SECRET unknown' } }));
    const adapter = createAdapter(
      providerDefinitionSchema.parse({ name: 'idp', clientId: 'cli', flows: ['device_code'], endpoints: { token: `${server.url}/t`, deviceAuthorization: `${server.url}/d` } }),
    );
    const err = (await adapter.start('device_code', testDeps()).catch((e: unknown) => e)) as FlowError;
    expect(err).toMatchObject({ code: 'FLOW_INITIATION_FAILED' });
    expect(err.message).toContain('invalid_client');
    expect(err.message).not.toContain('SECRET');
  });
});
