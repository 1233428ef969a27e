import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RawClient } from '../helpers/rawClient.js';
import { startTestDaemon, type TestDaemon } from '../helpers/daemon.js';

let d: TestDaemon;
beforeAll(async () => {
  d = await startTestDaemon();
});
afterAll(() => d.stop());

async function handshake(frame: Record<string, unknown>) {
  const c = await RawClient.connect(d.socketPath);
  c.send(frame);
  const reply = await c.next();
  return { c, reply };
}

describe('handshake (PROTOCOL.md §3)', () => {
  it.each([
    [{ minVersion: 1, maxVersion: 1 }, 1, 1],
    [{ minVersion: 1, maxVersion: 2 }, 2, 2],
    [{ minVersion: 2, maxVersion: 2 }, 2, 2],
    [{ minVersion: 3, maxVersion: 4 }, 2, 2],
    [{ minVersion: 2, maxVersion: 1 }, 1, 1],
    [{}, 1, 1],
    [{}, 2, 2],
  ])('payload %j with v=%s negotiates version %s', async (payload, v, version) => {
    const { c, reply } = await handshake({ v, op: 'handshake', payload });
    expect(reply).toEqual({ v: version, op: 'handshake', ok: true, data: { version } });
    c.close();
  });

  it('accepts a handshake frame without payload (bare v)', async () => {
    const { c, reply } = await handshake({ v: 1, op: 'handshake' });
    expect(reply).toEqual({ v: 1, op: 'handshake', ok: true, data: { version: 1 } });
    c.close();
  });

  it.each([
    [{ v: 3, op: 'handshake', payload: { minVersion: 3, maxVersion: 4 } }],
    [{ op: 'handshake', payload: { minVersion: 2, maxVersion: 1 } }],
    [{ v: '2', op: 'handshake' }],
    [{ v: 0, op: 'handshake' }],
  ])('rejects %j with UNKNOWN_VERSION and closes', async (frame) => {
    const { c, reply } = await handshake(frame);
    expect(reply).toEqual({ v: 2, op: 'handshake', ok: false, code: 'UNKNOWN_VERSION', error: 'Unsupported protocol version' });
    expect(await c.waitClosed(4_000)).toBe(true);
  });

  it('answers a request before the handshake with "Handshake required" and does not dispatch it', async () => {
    await d.store.setKey('k1', 'sk-secret-before-handshake');
    const { c, reply } = await handshake({ v: 2, id: 'x', op: 'get_api_key', payload: { name: 'k1' } });
    expect(reply).toEqual({ ok: false, code: 'INVALID_REQUEST', error: 'Handshake required' });
    expect(await c.waitClosed(4_000)).toBe(true);
    expect(c.frames).toHaveLength(1);
  });

  it('refuses a capability token the policy does not know', async () => {
    const { c, reply } = await handshake({ v: 2, op: 'handshake', payload: { minVersion: 1, maxVersion: 2, capabilityToken: 'a'.repeat(64) } });
    expect(reply).toEqual({ v: 2, op: 'handshake', ok: false, code: 'UNAUTHORIZED', error: 'Invalid or missing capability token' });
    expect(await c.waitClosed(4_000)).toBe(true);
  });

  it('closes a connection that never completes the handshake within 5 s', async () => {
    const c = await RawClient.connect(d.socketPath);
    const started = Date.now();
    expect(await c.waitClosed(8_000)).toBe(true);
    expect(Date.now() - started).toBeGreaterThanOrEqual(4_500);
  });
});
