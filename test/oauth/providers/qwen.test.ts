/** Qwen preset against a local server: device code with PKCE, verifier checked by the server, resource_url. */
import { afterEach, describe, expect, it } from 'vitest';
import type { StartedFlow } from '../../../src/oauth/flowTypes.js';
import { sanitizeToken } from '../../../src/oauth/token.js';
import { presetRegistry } from '../../../src/oauth/config.js';
import { never, s256, startFakeServer, testDeps, type FakeServer, type Reply } from '../flows/helpers.js';
import { configured } from './presetHelpers.js';

let server: FakeServer | undefined;
let flow: StartedFlow | undefined;
afterEach(async () => {
  await flow?.cancel();
  await server?.close();
  server = flow = undefined;
});

const CLIENT_ID = 'f0304373b74a44d2b584a3fb70ca9e56';

async function start() {
  let challenge = '';
  let polls = 0;
  server = await startFakeServer((req): Reply => {
    if (req.path === '/api/v1/oauth2/device/code') {
      challenge = String(req.body.code_challenge);
      // Qwen names no interval.
      return { body: { device_code: 'dc', user_code: 'QW-1', verification_uri: 'https://chat.qwen.ai/authorize', verification_uri_complete: 'https://chat.qwen.ai/authorize?user_code=QW-1', expires_in: 900 } };
    }
    if (s256(String(req.body.code_verifier)) !== challenge) return { status: 400, body: { error: 'invalid_grant', error_description: 'PKCE' } };
    if (polls++ === 0) return { status: 400, body: { error: 'authorization_pending' } };
    return { body: { access_token: 'qat', refresh_token: 'qrt', token_type: 'Bearer', expires_in: 21600, resource_url: 'portal.qwen.ai' } };
  });
  const adapter = configured('qwen', {
    endpoints: { deviceAuthorization: `${server.url}/api/v1/oauth2/device/code`, token: `${server.url}/api/v1/oauth2/token` },
  });
  const deps = testDeps();
  flow = await adapter.start('device_code', deps);
  return { flow, deps, server };
}

describe('qwen preset', () => {
  it('sends a S256 challenge with the device request and the matching verifier with every device grant', async () => {
    const { flow, deps, server } = await start();
    const device = server.to('/api/v1/oauth2/device/code')[0]!;
    expect(device.body).toMatchObject({ client_id: CLIENT_ID, scope: 'openid profile email model.completion', code_challenge_method: 'S256' });
    expect(flow.publicData).toEqual({
      verification_url: 'https://chat.qwen.ai/authorize',
      verification_uri: 'https://chat.qwen.ai/authorize',
      user_code: 'QW-1',
      verification_uri_complete: 'https://chat.qwen.ai/authorize?user_code=QW-1',
    });
    expect(flow.pollIntervalMs()).toBe(5_000); // default: Qwen names no interval
    deps.clock.advance(4_999);
    await flow.poll!(never);
    expect(server.to('/api/v1/oauth2/token')).toHaveLength(0);
    deps.clock.advance(1);
    expect(await flow.poll!(never)).toMatchObject({ status: 'pending' });
    deps.clock.advance(5_000);
    const done = await flow.poll!(never);
    expect(done).toMatchObject({ status: 'complete', token: { access_token: 'qat', refresh_token: 'qrt', resource_url: 'portal.qwen.ai' } });
    const grants = server.to('/api/v1/oauth2/token');
    expect(grants).toHaveLength(2);
    expect(grants[0]!.body).toMatchObject({ grant_type: 'urn:ietf:params:oauth:grant-type:device_code', device_code: 'dc', client_id: CLIENT_ID });
    expect(grants[0]!.body.code_verifier).toBe(grants[1]!.body.code_verifier);
    for (const value of Object.values(flow.publicData)) expect(value).not.toContain(String(grants[0]!.body.code_verifier));
    if (done.status !== 'complete') throw new Error('not complete');
    expect(sanitizeToken(done.token, presetRegistry().get('qwen')!.publicFields)).toEqual({ access_token: 'qat', expiry: done.token.expiry, token_type: 'Bearer', resource_url: 'portal.qwen.ai' });
  });
});
