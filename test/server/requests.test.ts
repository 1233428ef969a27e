/** Request/response rules of PROTOCOL.md §4 and cancel (§6). */
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startDaemon, type Daemon } from '../../src/server/daemon.js';
import { RawClient } from '../helpers/rawClient.js';
import { sampleToken, startTestDaemon, tempDir, type TestDaemon } from '../helpers/daemon.js';
import { SlowStore } from '../helpers/slowStore.js';
import { MemoryStore } from '../../src/store/memory.js';
import { StoreError } from '../../src/store/types.js';

let d: TestDaemon;
beforeAll(async () => {
  d = await startTestDaemon();
  await d.store.saveToken('anthropic', 'default', sampleToken());
});
afterAll(() => d.stop());

describe('ids and ops', () => {
  it('echoes a numeric id as its decimal string', async () => {
    const c = await RawClient.ready(d.socketPath);
    c.send({ v: 2, id: 42, op: 'list_api_keys' });
    expect(await c.next()).toEqual({ v: 2, id: '42', ok: true, data: { keys: [] } });
    c.close();
  });

  it.each([
    [{ v: 2, op: 'list_api_keys' }],
    [{ v: 2, id: '', op: 'list_api_keys' }],
    [{ v: 2, id: { a: 1 }, op: 'list_api_keys' }],
    [{ v: 2, id: 'x' }],
    [{ v: 2, id: 'x', op: 7 }],
  ])('answers %j with INVALID_REQUEST and id "unknown"', async (frame) => {
    const c = await RawClient.ready(d.socketPath);
    c.send(frame);
    expect(await c.next()).toMatchObject({ id: 'unknown', ok: false, code: 'INVALID_REQUEST' });
    c.close();
  });

  it.each(['__proto__', 'constructor', 'toString', 'hasOwnProperty', 'no_such_op', 'handshake'])('treats %s as an unknown op', async (op) => {
    const c = await RawClient.ready(d.socketPath);
    expect(await c.request(op, {}, 'u')).toEqual({ v: 2, id: 'u', ok: false, code: 'INVALID_REQUEST', error: `Unknown operation: ${op}` });
    c.close();
  });

  it('treats cancel as unknown under version 1', async () => {
    const c = await RawClient.ready(d.socketPath, { minVersion: 1, maxVersion: 1 }, 1);
    c.send({ v: 1, id: 'c', op: 'cancel', payload: { targetId: 'x' } });
    expect(await c.next()).toMatchObject({ v: 1, id: 'c', ok: false, code: 'INVALID_REQUEST', error: 'Unknown operation: cancel' });
    c.close();
  });

  it('defaults a missing payload to {} and rejects a non-object payload', async () => {
    const c = await RawClient.ready(d.socketPath);
    c.send({ v: 2, id: 'p1', op: 'list_providers' });
    expect(await c.replyFor('p1')).toMatchObject({ ok: true, data: { providers: ['anthropic'] } });
    for (const payload of [[], 'x', 5, null]) {
      const id = `bad-${JSON.stringify(payload)}`;
      c.send({ v: 2, id, op: 'list_providers', payload });
      expect(await c.replyFor(id)).toMatchObject({ ok: false, code: 'INVALID_REQUEST', error: 'Invalid field "payload": must be an object' });
    }
    c.close();
  });
});

describe('schemas and names', () => {
  it.each([
    ['get_token', {}, 'provider'],
    ['get_token', { provider: 7 }, 'provider'],
    ['get_token', { provider: 'anthropic', bucket: 3 }, 'bucket'],
    ['get_token', { provider: '../etc' }, 'provider'],
    ['get_token', { provider: 'a b' }, 'provider'],
    ['get_token', { provider: 'x'.repeat(65) }, 'provider'],
    ['get_token', { provider: '' }, 'provider'],
    ['get_token', { provider: 'anthropic', bucket: 'a/b' }, 'bucket'],
    ['get_api_key', { name: 'bad@name' }, 'name'],
    ['get_api_key', { name: ['k'] }, 'name'],
    ['has_api_key', {}, 'name'],
    ['save_token', { provider: 'anthropic' }, 'token'],
    ['save_token', { provider: 'anthropic', token: { access_token: 'a', expiry: '1' } }, 'token.expiry'],
    ['save_token', { provider: 'anthropic', token: { access_token: '', expiry: 1 } }, 'token.access_token'],
    ['save_token', { provider: 'anthropic', token: { access_token: 'a', expiry: 1, token_type: 'MAC' } }, 'token.token_type'],
    ['list_buckets', { provider: null }, 'provider'],
    ['cancel', {}, 'targetId'],
  ])('%s %j → INVALID_REQUEST naming %s', async (op, payload, field) => {
    const c = await RawClient.ready(d.socketPath);
    const reply = await c.request(op, payload, 's');
    expect(reply).toMatchObject({ ok: false, code: 'INVALID_REQUEST' });
    expect(reply.error).toContain(`"${field}"`);
    c.close();
  });

  it('accepts names at the edge of the rule', async () => {
    const c = await RawClient.ready(d.socketPath);
    const name = `A-z_0.9@${'x'.repeat(56)}`;
    expect(name).toHaveLength(64);
    expect(await c.request('get_token', { provider: name })).toMatchObject({ ok: false, code: 'NOT_FOUND' });
    c.close();
  });

  it('does not touch the store when the payload is invalid', async () => {
    const c = await RawClient.ready(d.socketPath);
    const before = await d.store.getToken('anthropic', 'default');
    await c.request('save_token', { provider: 'anthropic', token: { access_token: 'new', expiry: 'soon' } });
    expect(await d.store.getToken('anthropic', 'default')).toEqual(before);
    c.close();
  });
});

describe('limits and cancel', () => {
  let slow: { daemon: Daemon; store: SlowStore };
  beforeAll(async () => {
    const store = new SlowStore(1_500);
    await store.saveToken('slow', 'default', sampleToken());
    const daemon = await startDaemon({ tokens: store, keys: store, socketPath: path.join(tempDir(), 's.sock'), audit: 'off', limits: { operationTimeoutMs: 3_000 } });
    slow = { daemon, store };
  });
  afterAll(() => slow.daemon.stop());

  it('refuses a duplicate in-flight id and still answers the original once', async () => {
    const c = await RawClient.ready(slow.daemon.socketPath);
    c.send({ v: 2, id: 'dup', op: 'get_token', payload: { provider: 'slow' } });
    c.send({ v: 2, id: 'dup', op: 'get_token', payload: { provider: 'slow' } });
    expect(await c.next()).toEqual({ v: 2, id: 'dup', ok: false, code: 'INVALID_REQUEST', error: 'Duplicate request id' });
    expect(await c.next()).toMatchObject({ id: 'dup', ok: true });
    await new Promise((r) => setTimeout(r, 300));
    expect(c.frames.filter((f) => f.id === 'dup')).toHaveLength(2);
    c.close();
  });

  it('answers the 17th request in flight with RESOURCE_EXHAUSTED', async () => {
    const c = await RawClient.ready(slow.daemon.socketPath);
    for (let i = 0; i < 17; i++) c.send({ v: 2, id: `f${i}`, op: 'get_token', payload: { provider: 'slow' } });
    // The cap is checked before the op's schema, as before any other work.
    c.send({ v: 2, id: 'bad-schema', op: 'get_token', payload: { provider: 'bad name' } });
    expect(await c.replyFor('f16')).toMatchObject({ ok: false, code: 'RESOURCE_EXHAUSTED' });
    expect(await c.replyFor('bad-schema')).toMatchObject({ ok: false, code: 'RESOURCE_EXHAUSTED' });
    for (let i = 0; i < 16; i++) expect(await c.replyFor(`f${i}`)).toMatchObject({ ok: true });
    c.close();
  });

  it('answers the 61st request within a second with RATE_LIMITED and retryAfter 1', async () => {
    // The daemon's clock stands still until the test moves it, so "within a second" holds however slow the machine.
    let clockMs = Date.now();
    const timed = await startTestDaemon({ now: () => clockMs });
    const c = await RawClient.ready(timed.socketPath);
    // Batches of 10 stay under the in-flight limit.
    const replies = [];
    for (let batch = 0; batch < 61; batch += 10) {
      const ids = Array.from({ length: Math.min(10, 61 - batch) }, (_, i) => `q${batch + i}`);
      for (const id of ids) c.send({ v: 2, id, op: 'has_api_key', payload: { name: 'k' } });
      for (const id of ids) replies.push(await c.replyFor(id));
    }
    expect(replies.filter((r) => r.ok === true)).toHaveLength(60);
    expect(replies[60]).toEqual({ v: 2, id: 'q60', ok: false, code: 'RATE_LIMITED', error: 'Too many requests', retryAfter: 1 });
    clockMs += 1_100;
    expect(await c.request('has_api_key', { name: 'k' }, 'after')).toMatchObject({ ok: true });
    c.close();
    await timed.stop();
  });

  it('counts malformed frames against the rate limit too', async () => {
    const frozen = Date.now();
    const timed = await startTestDaemon({ now: () => frozen });
    const c = await RawClient.ready(timed.socketPath);
    for (let i = 0; i < 60; i++) c.send({ v: 2, op: 'list_api_keys' });
    for (let i = 0; i < 60; i++) expect(await c.next()).toMatchObject({ id: 'unknown', code: 'INVALID_REQUEST' });
    expect(await c.request('list_api_keys', {}, 'after-junk')).toMatchObject({ code: 'RATE_LIMITED', retryAfter: 1 });
    c.close();
    await timed.stop();
  });

  it('store failures reach the client without host paths', async () => {
    class BrokenStore extends MemoryStore {
      override async getToken(): Promise<never> {
        throw new StoreError('decrypt_failed', 'Cannot decrypt the credential store at /home/alice/.local/share/credproxy/store.enc: wrong CREDPROXY_PASSPHRASE or the file is damaged');
      }
    }
    const store = new BrokenStore();
    const daemon = await startDaemon({ tokens: store, keys: store, socketPath: path.join(tempDir(), 'b.sock'), audit: 'off' });
    const c = await RawClient.ready(daemon.socketPath);
    const reply = await c.request('get_token', { provider: 'anthropic' });
    expect(reply).toMatchObject({ ok: false, code: 'INTERNAL_ERROR', error: 'The credential store on the host cannot be used' });
    expect(JSON.stringify(reply)).not.toContain('/home/alice');
    c.close();
    await daemon.stop();
  });

  it('cancels a slow op: the target answers CANCELLED exactly once', async () => {
    const c = await RawClient.ready(slow.daemon.socketPath);
    c.send({ v: 2, id: 'target', op: 'get_token', payload: { provider: 'slow' } });
    await new Promise((r) => setTimeout(r, 100));
    expect(await c.request('cancel', { targetId: 'target' }, 'canceller')).toEqual({ v: 2, id: 'canceller', ok: true, data: { cancelled: true } });
    expect(await c.replyFor('target')).toEqual({ v: 2, id: 'target', ok: false, code: 'CANCELLED', error: 'Request cancelled' });
    await new Promise((r) => setTimeout(r, 2_000));
    expect(c.frames.filter((f) => f.id === 'target')).toHaveLength(1);
    c.close();
  });

  it('answers cancelled:false for an unknown or finished target and for another connection\'s request', async () => {
    const a = await RawClient.ready(slow.daemon.socketPath);
    const b = await RawClient.ready(slow.daemon.socketPath);
    a.send({ v: 2, id: 'mine', op: 'get_token', payload: { provider: 'slow' } });
    expect(await b.request('cancel', { targetId: 'mine' })).toMatchObject({ ok: true, data: { cancelled: false } });
    expect(await a.replyFor('mine')).toMatchObject({ ok: true });
    expect(await a.request('cancel', { targetId: 'mine' })).toMatchObject({ ok: true, data: { cancelled: false } });
    a.close();
    b.close();
  });

  it('times out each of several requests started at different moments, answering the ones in between', async () => {
    // One deadline timer serves the connection: after the first timeout it waits for the next request's.
    const store = new SlowStore(5_000);
    await store.saveToken('slow', 'default', sampleToken());
    await store.saveToken('anthropic', 'default', sampleToken());
    const daemon = await startDaemon({ tokens: store, keys: store, socketPath: path.join(tempDir(), 'm.sock'), audit: 'off', limits: { operationTimeoutMs: 300 } });
    const c = await RawClient.ready(daemon.socketPath);
    c.send({ v: 2, id: 'first', op: 'get_token', payload: { provider: 'slow' } });
    expect(await c.request('get_token', { provider: 'anthropic' }, 'between')).toMatchObject({ ok: true });
    c.send({ v: 2, id: 'second', op: 'get_token', payload: { provider: 'slow' } });
    const timedOut = { ok: false, code: 'INTERNAL_ERROR', error: 'Operation timed out' };
    expect(await c.replyFor('first')).toMatchObject(timedOut);
    expect(await c.replyFor('second')).toMatchObject(timedOut);
    c.close();
    await daemon.stop();
  });

  it('times out a store operation with INTERNAL_ERROR "Operation timed out"', async () => {
    const store = new SlowStore(5_000);
    await store.saveToken('slow', 'default', sampleToken());
    const daemon = await startDaemon({ tokens: store, keys: store, socketPath: path.join(tempDir(), 't.sock'), audit: 'off', limits: { operationTimeoutMs: 300 } });
    const c = await RawClient.ready(daemon.socketPath);
    expect(await c.request('get_token', { provider: 'slow' }, 'to')).toEqual({ v: 2, id: 'to', ok: false, code: 'INTERNAL_ERROR', error: 'Operation timed out' });
    c.close();
    await daemon.stop();
  });
});
