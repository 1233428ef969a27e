/** Framing rules of PROTOCOL.md §2 on a live socket. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { encodeFrame, MAX_FRAME_V1, MAX_FRAME_V2 } from '../../src/protocol/framing.js';
import { RawClient } from '../helpers/rawClient.js';
import { startTestDaemon, type TestDaemon } from '../helpers/daemon.js';

let d: TestDaemon;
beforeAll(async () => {
  d = await startTestDaemon();
});
afterAll(() => d.stop());

function header(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n, 0);
  return b;
}

/** A request frame whose body is exactly `size` bytes. */
function frameOfSize(size: number, id = 'big'): Buffer {
  const base = { v: 2, id, op: 'has_api_key', payload: { name: 'k' }, pad: '' };
  const overhead = Buffer.byteLength(JSON.stringify(base));
  const body = Buffer.from(JSON.stringify({ ...base, pad: 'x'.repeat(size - overhead) }));
  expect(body.length).toBe(size);
  return Buffer.concat([header(size), body]);
}

describe.concurrent('framing on the wire', () => {
  it('closes on a length over 64 KiB before the handshake, without waiting for the body', async () => {
    const c = await RawClient.connect(d.socketPath);
    c.sendRaw(header(MAX_FRAME_V1 + 1));
    expect(await c.waitClosed(2_000)).toBe(true);
    expect(c.frames).toEqual([]);
  });

  it('serves a frame of exactly 64 KiB under v1 and closes on 64 KiB + 1', async () => {
    const c = await RawClient.ready(d.socketPath, { minVersion: 1, maxVersion: 1 }, 1);
    c.sendRaw(frameOfSize(MAX_FRAME_V1, 'at-limit'));
    expect(await c.replyFor('at-limit')).toMatchObject({ ok: true, data: { exists: false } });
    c.sendRaw(header(MAX_FRAME_V1 + 1));
    expect(await c.waitClosed(2_000)).toBe(true);
  });

  it('allows 4 MiB frames under v2, and no more', async () => {
    const c = await RawClient.ready(d.socketPath);
    c.sendRaw(frameOfSize(MAX_FRAME_V1 + 1, 'over-v1'));
    expect(await c.replyFor('over-v1')).toMatchObject({ ok: true });
    c.sendRaw(frameOfSize(MAX_FRAME_V2, 'at-v2'));
    expect(await c.replyFor('at-v2', 10_000)).toMatchObject({ ok: true });
    c.sendRaw(header(MAX_FRAME_V2 + 1));
    expect(await c.waitClosed(2_000)).toBe(true);
  });

  it.each([1, 2, 3])('closes after 5 s when %i stray header bytes stay buffered', async (n) => {
    const c = await RawClient.ready(d.socketPath);
    c.sendRaw(Buffer.alloc(n));
    expect(await c.waitClosed(2_000)).toBe(false);
    expect(await c.waitClosed(6_000)).toBe(true);
  });

  it('closes a slow body that trickles in for more than 5 s', async () => {
    const c = await RawClient.ready(d.socketPath);
    const frame = encodeFrame({ v: 2, id: 'slow', op: 'list_api_keys', payload: {} });
    c.sendRaw(frame.subarray(0, 6));
    let sent = 6;
    const trickle = setInterval(() => {
      if (sent < frame.length - 1 && !c.closed) c.sendRaw(frame.subarray(sent, ++sent));
    }, 500);
    const closed = await c.waitClosed(8_000);
    clearInterval(trickle);
    expect(closed).toBe(true);
    expect(c.frames.some((f) => f.id === 'slow')).toBe(false);
  });

  it.each([
    ['invalid JSON', Buffer.from('{"v":2,')],
    ['invalid UTF-8', Buffer.from([0x7b, 0xff, 0x7d])],
    ['an array', Buffer.from('[1,2,3]')],
    ['a string', Buffer.from('"handshake"')],
  ])('closes the connection on %s', async (_label, body) => {
    const c = await RawClient.ready(d.socketPath);
    c.sendRaw(Buffer.concat([header(body.length), body]));
    expect(await c.waitClosed(2_000)).toBe(true);
  });

  it('decodes several frames arriving in one chunk and one frame split across many', async () => {
    const c = await RawClient.ready(d.socketPath);
    const a = encodeFrame({ v: 2, id: 'a', op: 'list_api_keys' });
    const b = encodeFrame({ v: 2, id: 'b', op: 'list_providers' });
    c.sendRaw(Buffer.concat([a, b.subarray(0, 3)]));
    for (const byte of b.subarray(3)) c.sendRaw(Buffer.from([byte]));
    expect(await c.replyFor('a')).toMatchObject({ ok: true, data: { keys: [] } });
    expect(await c.replyFor('b')).toMatchObject({ ok: true, data: { providers: [] } });
  });
});

describe('partial-frame timeout', () => {
  let quick: TestDaemon;
  beforeAll(async () => {
    quick = await startTestDaemon({ limits: { partialFrameTimeoutMs: 400 } });
  });
  afterAll(() => quick.stop());

  it('is measured per frame: back-to-back frames that each complete in time keep the connection open', async () => {
    const c = await RawClient.ready(quick.socketPath);
    const a = encodeFrame({ v: 2, id: 'a', op: 'list_api_keys', payload: {} });
    const b = encodeFrame({ v: 2, id: 'b', op: 'list_providers', payload: {} });
    const pause = () => new Promise((r) => setTimeout(r, 250));
    c.sendRaw(a.subarray(0, 10));
    await pause();
    c.sendRaw(Buffer.concat([a.subarray(10), b.subarray(0, 10)])); // a completes, b starts
    await pause(); // 500 ms since a's first byte, 250 ms since b's
    c.sendRaw(b.subarray(10));
    expect(await c.replyFor('a')).toMatchObject({ ok: true });
    expect(await c.replyFor('b')).toMatchObject({ ok: true });
    expect(c.closed).toBe(false);
    c.close();
  });
});
