/** A client written only from PROTOCOL.md reads tokens and keys with the v1 and v2 handshakes. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HOST_REFRESH_TOKEN, sampleToken, startTestDaemon, type TestDaemon } from '../helpers/daemon.js';
import { runSpecClient } from '../helpers/specClient.js';

let d: TestDaemon;
beforeAll(async () => {
  d = await startTestDaemon();
  await d.store.saveToken('qwen', 'default', sampleToken({ access_token: 'at-qwen', resource_url: 'https://portal.qwen.example/v1' }));
  await d.store.setKey('openrouter', 'sk-or-1');
});
afterAll(() => d.stop());

describe.each(['v1', 'v2'] as const)('spec-only client, %s handshake', (range) => {
  it('reads a token and an API key', async () => {
    const frames = await runSpecClient(d.socketPath, range, [
      { op: 'get_token', payload: { provider: 'qwen' } },
      { op: 'get_api_key', payload: { name: 'openrouter' } },
      { op: 'list_api_keys' },
    ]);
    const version = range === 'v1' ? 1 : 2;
    expect(frames[0]).toEqual({ v: version, op: 'handshake', ok: true, data: { version } });
    expect(frames[1]).toMatchObject({ v: version, id: 'req-0', ok: true, data: { access_token: 'at-qwen', token_type: 'Bearer', resource_url: 'https://portal.qwen.example/v1' } });
    expect(frames[2]).toEqual({ v: version, id: 'req-1', ok: true, data: { key: 'sk-or-1' } });
    expect(frames[3]).toEqual({ v: version, id: 'req-2', ok: true, data: { keys: ['openrouter'] } });
    expect(JSON.stringify(frames)).not.toContain(HOST_REFRESH_TOKEN);
  });
});
