/**
 * GitHub preset against a local server speaking GitHub's device flow: Accept: application/json,
 * pending/slow_down/expired/denied as HTTP 200 with an `error` field, non-expiring tokens.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { FlowError, type StartedFlow } from '../../../src/oauth/flowTypes.js';
import { NEVER_EXPIRES } from '../../../src/oauth/providers/definition.js';
import { never, startFakeServer, testDeps, type FakeServer, type Reply } from '../flows/helpers.js';
import { configured } from './presetHelpers.js';

let server: FakeServer | undefined;
let flow: StartedFlow | undefined;
afterEach(async () => {
  await flow?.cancel();
  await server?.close();
  server = flow = undefined;
});

/** `answers` are the token endpoint's replies, in order (all HTTP 200 unless given). */
async function start(answers: Array<Record<string, unknown>>) {
  let i = 0;
  server = await startFakeServer((req): Reply => {
    if (req.headers.accept !== 'application/json') return { body: 'access_token=x&token_type=bearer' };
    if (req.path === '/login/device/code') {
      return { body: { device_code: 'dc-1', user_code: 'ABCD-1234', verification_uri: 'https://github.com/login/device', expires_in: 899, interval: 5 } };
    }
    return { body: answers[Math.min(i++, answers.length - 1)] };
  });
  const adapter = configured('github', {
    clientId: 'Iv1.test',
    scopes: ['read:user'],
    endpoints: { deviceAuthorization: `${server.url}/login/device/code`, token: `${server.url}/login/oauth/access_token` },
  });
  const deps = testDeps();
  flow = await adapter.start('device_code', deps);
  return { flow, deps, server };
}

const step = async (f: StartedFlow, deps: ReturnType<typeof testDeps>, ms: number) => {
  deps.clock.advance(ms);
  return f.poll!(never);
};

describe('github preset', () => {
  it('without a client id, starting a login fails with a clear FLOW_INITIATION_FAILED', async () => {
    const adapter = configured('github', {});
    await expect(adapter.start('device_code', testDeps())).rejects.toEqual(
      new FlowError('FLOW_INITIATION_FAILED', 'github needs a client id: set providers.github.clientId in the config file'),
    );
  });

  it('device flow: 200-with-error pending, slow_down with the new interval, then a non-expiring token', async () => {
    const { flow, deps, server } = await start([
      { error: 'authorization_pending', error_description: 'pending' },
      { error: 'slow_down', error_description: 'too fast', interval: 10 },
      { access_token: 'gho_x', token_type: 'bearer', scope: 'read:user' },
    ]);
    expect(flow.publicData).toMatchObject({ user_code: 'ABCD-1234', verification_uri: 'https://github.com/login/device' });
    const code = server.to('/login/device/code')[0]!;
    expect(code.body).toEqual({ client_id: 'Iv1.test', scope: 'read:user' });
    expect(await step(flow, deps, 5_000)).toEqual({ status: 'pending', pollIntervalMs: 5_000 });
    expect(await step(flow, deps, 5_000)).toEqual({ status: 'pending', pollIntervalMs: 10_000, intervalSeconds: 10 });
    expect(await step(flow, deps, 9_000)).toMatchObject({ status: 'pending' });
    expect(server.to('/login/oauth/access_token')).toHaveLength(2);
    const done = await step(flow, deps, 1_000);
    expect(done).toEqual({ status: 'complete', token: { access_token: 'gho_x', token_type: 'Bearer', scope: 'read:user', expiry: NEVER_EXPIRES } });
    const grant = server.to('/login/oauth/access_token')[0]!;
    expect(grant.body).toEqual({ client_id: 'Iv1.test', device_code: 'dc-1', grant_type: 'urn:ietf:params:oauth:grant-type:device_code' });
  });

  it('slow_down without an interval adds 5 s', async () => {
    const { flow, deps } = await start([{ error: 'slow_down' }]);
    expect(await step(flow, deps, 5_000)).toMatchObject({ pollIntervalMs: 10_000, intervalSeconds: 10 });
  });

  it('expiring app tokens keep expires_in and the refresh token', async () => {
    const { flow, deps } = await start([{ access_token: 'ghu_x', token_type: 'bearer', expires_in: 28800, refresh_token: 'ghr_x', refresh_token_expires_in: 15897600 }]);
    const done = await step(flow, deps, 5_000);
    expect(done).toMatchObject({ status: 'complete', token: { expiry: Math.floor(deps.clock.t / 1000) + 28800, refresh_token: 'ghr_x' } });
  });

  it('expired_token and access_denied (HTTP 200) map to SESSION_EXPIRED and ACCESS_DENIED', async () => {
    const a = await start([{ error: 'expired_token' }]);
    await expect(step(a.flow, a.deps, 5_000)).rejects.toMatchObject({ code: 'SESSION_EXPIRED', message: 'Device code expired' });
    await a.flow.cancel();
    await a.server.close();
    const b = await start([{ error: 'access_denied' }]);
    await expect(step(b.flow, b.deps, 5_000)).rejects.toMatchObject({ code: 'ACCESS_DENIED', message: 'User denied authorization' });
  });

  it('an unknown 200 error is POLL_FAILED naming the error code only', async () => {
    const { flow, deps } = await start([{ error: 'incorrect_client_credentials', error_description: 'secret stuff' }]);
    const err = (await step(flow, deps, 5_000).catch((e: unknown) => e)) as FlowError;
    expect(err).toMatchObject({ code: 'POLL_FAILED' });
    expect(err.message).toBe('Token request failed: token endpoint answered incorrect_client_credentials');
  });
});
