/**
 * The request pipeline apart from any socket: a Connection over an in-memory transport, replies too
 * large for the negotiated version (§10 RESPONSE_TOO_LARGE), and grants revoked while the daemon runs.
 */
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hashCapability, newCapability } from '../../src/auth/capability.js';
import { GrantRegistry, MAIN_LISTENER } from '../../src/auth/GrantRegistry.js';
import { OPEN_POLICY } from '../../src/auth/policy.js';
import { FULL_GRANT } from '../../src/auth/grants.js';
import { buildHandlers, BucketUsage, type HandlerTable } from '../../src/handlers/index.js';
import { HostLoginBackend } from '../../src/cli/util/loginHost.js';
import { sanitizeToken } from '../../src/oauth/token.js';
import { StoreError, type StoredToken } from '../../src/store/types.js';
import { TokenService } from '../../src/oauth/TokenService.js';
import { encodeFrame, FrameDecoder, type JsonObject, MAX_FRAME_V2 } from '../../src/protocol/framing.js';
import { openAuditLog } from '../../src/server/audit.js';
import { Connection } from '../../src/server/connection.js';
import { Dispatcher } from '../../src/server/dispatch.js';
import { DEFAULT_LIMITS } from '../../src/server/options.js';
import { memoryTransportPair, type Transport } from '../../src/server/transport.js';
import { MemoryStore } from '../../src/store/memory.js';
import { HOST_REFRESH_TOKEN, sampleToken, startTestDaemon, tempDir, type TestDaemon } from '../helpers/daemon.js';
import { SlowStore } from '../helpers/slowStore.js';
import { scriptedDeviceProvider } from '../helpers/scriptedProvider.js';
import { RawClient } from '../helpers/rawClient.js';

/** The client end of an in-memory pair, reading frames with the project's decoder. */
function memoryClient(end: Transport) {
  const decoder = new FrameDecoder(MAX_FRAME_V2);
  const frames: JsonObject[] = [];
  const raw: Buffer[] = [];
  let wake: (() => void) | null = null;
  let closed = false;
  end.start(
    (chunk) => {
      raw.push(chunk);
      frames.push(...decoder.push(chunk));
      wake?.();
    },
    () => {
      closed = true;
      wake?.();
    },
  );
  return {
    raw,
    get closed() {
      return closed;
    },
    send: (frame: JsonObject) => end.write(encodeFrame(frame)),
    async next(): Promise<JsonObject> {
      while (frames.length === 0) {
        if (closed) throw new Error('closed');
        await new Promise<void>((r) => (wake = r));
      }
      return frames.shift()!;
    },
  };
}

describe('a Connection over an in-memory transport', () => {
  it('is the same pipeline: handshake, sanitized get_token, schema errors, grant refusals, audit', async () => {
    const dir = tempDir();
    const auditFile = path.join(dir, 'audit.log');
    const audit = openAuditLog(auditFile);
    const store = new MemoryStore();
    await store.saveToken('anthropic', 'default', sampleToken({ access_token: 'at-memory' }));
    const dispatcher = new Dispatcher({
      handlers: buildHandlers(null),
      services: { tokens: new TokenService(store), keys: store, usage: new BucketUsage(), refresher: null, publicFields: () => [] },
      audit,
      now: Date.now,
    });
    const grants = new GrantRegistry();
    grants.add({ id: 'anthropic-only', providers: { anthropic: ['default'] }, keys: [], ops: ['read'] });
    grants.bind(MAIN_LISTENER, 'anthropic-only', { exclusive: false });
    const [serverEnd, clientEnd] = memoryTransportPair();
    const conn = new Connection(7, serverEnd, { uid: 1000, gid: 1000, pid: 1 }, {
      dispatcher,
      limits: DEFAULT_LIMITS,
      now: Date.now,
      authorize: (token) => grants.authorize(MAIN_LISTENER, token),
    });
    const c = memoryClient(clientEnd);

    c.send({ v: 2, op: 'handshake', payload: { minVersion: 1, maxVersion: 2 } });
    expect(await c.next()).toEqual({ v: 2, op: 'handshake', ok: true, data: { version: 2 } });
    c.send({ v: 2, id: 'a', op: 'get_token', payload: { provider: 'anthropic' } });
    expect(await c.next()).toEqual({ v: 2, id: 'a', ok: true, data: { access_token: 'at-memory', expiry: expect.any(Number), token_type: 'Bearer', scope: 'read write' } });
    c.send({ v: 2, id: 'b', op: 'get_token', payload: { provider: 'bad name' } });
    expect(await c.next()).toMatchObject({ id: 'b', code: 'INVALID_REQUEST', error: expect.stringContaining('Invalid field "provider"') });
    c.send({ v: 2, id: 'c', op: 'save_token', payload: { provider: 'anthropic', token: { access_token: 'x', expiry: 1 } } });
    expect(await c.next()).toMatchObject({ id: 'c', code: 'UNAUTHORIZED', error: 'Operation save_token (write) is not allowed for this connection' });
    c.send({ v: 2, id: 'd', op: 'get_token', payload: { provider: 'anthropic', bucket: 'work' } });
    expect(await c.next()).toMatchObject({ id: 'd', code: 'UNAUTHORIZED' });

    conn.destroy();
    expect(c.closed).toBe(true);
    await audit.close();
    const lines = fs.readFileSync(auditFile, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(lines.map((l) => [l.conn, l.grant, l.op, l.outcome])).toEqual([
      [7, 'anthropic-only', 'handshake', 'ok'],
      [7, 'anthropic-only', 'get_token', 'ok'],
      [7, 'anthropic-only', 'get_token', 'INVALID_REQUEST'],
      [7, 'anthropic-only', 'save_token', 'UNAUTHORIZED'],
      [7, 'anthropic-only', 'get_token', 'UNAUTHORIZED'],
    ]);
    expect(Buffer.concat(c.raw).toString('latin1')).not.toContain(HOST_REFRESH_TOKEN);
    fs.rmSync(dir, { recursive: true, force: true });
  });
});

describe('RESPONSE_TOO_LARGE (§10)', () => {
  let d: TestDaemon;
  beforeAll(async () => {
    d = await startTestDaemon();
    // A 70 000-char access token: over the v1 frame limit (64 KiB), well under v2's (4 MiB).
    await d.store.saveToken('big', 'default', sampleToken({ access_token: 'a'.repeat(70_000) }));
  });
  afterAll(() => d.stop());

  it('a reply over the v1 limit is replaced by RESPONSE_TOO_LARGE with the same id; the connection stays usable', async () => {
    const c = await RawClient.ready(d.socketPath, { minVersion: 1, maxVersion: 1 }, 1);
    expect(await c.request('get_token', { provider: 'big' }, 'big-1')).toEqual({
      v: 1,
      id: 'big-1',
      ok: false,
      code: 'RESPONSE_TOO_LARGE',
      error: 'Response too large for the negotiated protocol version',
    });
    expect(await c.request('list_api_keys', {}, 'after')).toEqual({ v: 1, id: 'after', ok: true, data: { keys: [] } });
    c.close();
  });

  it('under v2 the same reply fits', async () => {
    const c = await RawClient.ready(d.socketPath);
    const reply = await c.request('get_token', { provider: 'big' });
    expect(reply.ok).toBe(true);
    expect((reply.data as { access_token: string }).access_token).toHaveLength(70_000);
    c.close();
  });
});

describe('grants at run time', () => {
  it('a grant added to the running daemon serves its capability; revoking it closes its connections and refuses the capability', async () => {
    const d = await startTestDaemon({ tcp: '127.0.0.1:0', policy: OPEN_POLICY });
    try {
      await d.store.saveToken('anthropic', 'default', sampleToken({ access_token: 'at-run' }));
      const token = newCapability();
      d.daemon.grants.add({ id: 'run-1', providers: { anthropic: '*' }, keys: [], ops: ['read'] }, { capabilitySha256: hashCapability(token) });
      const tcp = d.daemon.tcpAddress!;
      const c = await RawClient.connect(tcp);
      c.send({ v: 2, op: 'handshake', payload: { minVersion: 1, maxVersion: 2, capabilityToken: token } });
      expect(await c.next()).toMatchObject({ ok: true });
      expect(await c.request('get_token', { provider: 'anthropic' })).toMatchObject({ ok: true, data: { access_token: 'at-run' } });
      expect(await c.request('get_token', { provider: 'gemini' })).toMatchObject({ code: 'UNAUTHORIZED' });
      // A bare main-socket connection (full grant) is not affected by the revocation.
      const bare = await RawClient.ready(d.socketPath);

      expect(d.daemon.grants.revoke('run-1')).toBe(true);
      expect(await c.waitClosed()).toBe(true);
      const again = await RawClient.connect(tcp);
      again.send({ v: 2, op: 'handshake', payload: { minVersion: 1, maxVersion: 2, capabilityToken: token } });
      expect(await again.next()).toEqual({ v: 2, op: 'handshake', ok: false, code: 'UNAUTHORIZED', error: 'Invalid or missing capability token' });
      expect(await bare.request('list_api_keys')).toMatchObject({ ok: true });
      bare.close();
      again.close();
    } finally {
      await d.stop();
    }
  });
});

describe('the sanitized-result stage', () => {
  it('refuses token data that did not come out of sanitizeToken, even a sanitized copy with a secret added back', async () => {
    const store = new MemoryStore();
    const stored = sampleToken({ access_token: 'at-leak' });
    await store.saveToken('anthropic', 'default', stored);
    const leaky: HandlerTable = {
      ...buildHandlers(null),
      get_token: async () => ({ ...sanitizeToken(stored, []), refresh_token: stored.refresh_token }) as never,
      refresh_token: async () => stored as never,
    };
    const dispatcher = new Dispatcher({
      handlers: leaky,
      services: { tokens: new TokenService(store), keys: store, usage: new BucketUsage(), refresher: null, publicFields: () => [] },
      audit: openAuditLog('off'),
      now: Date.now,
    });
    const caller = { conn: 1, peer: null, grant: FULL_GRANT, version: 2 as const };
    for (const op of ['get_token', 'refresh_token']) {
      const outcome = await dispatcher.call(caller, op, { provider: 'anthropic' }, new AbortController().signal);
      expect(outcome).toMatchObject({ ok: false, code: 'INTERNAL_ERROR', error: 'Internal error' });
      expect(JSON.stringify(outcome)).not.toContain(HOST_REFRESH_TOKEN);
    }
  });
});

describe('connection ends', () => {
  it('a request still in flight when its connection closes gets an audit line', async () => {
    const dir = tempDir();
    const auditFile = path.join(dir, 'audit.log');
    const store = new SlowStore(2_000);
    await store.saveToken('slow', 'default', sampleToken());
    const d = await startTestDaemon({ tokens: store, keys: store, audit: auditFile });
    try {
      const c = await RawClient.ready(d.socketPath);
      c.send({ v: 2, id: 'cut', op: 'get_token', payload: { provider: 'slow' } });
      await c.request('list_api_keys'); // the get_token frame has been read by now
      c.close();
      await d.stop();
      const lines = fs.readFileSync(auditFile, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
      expect(lines.filter((l) => l.op === 'get_token').map((l) => [l.provider, l.outcome])).toEqual([['slow', 'CONNECTION_CLOSED']]);
    } finally {
      await d.stop();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('a grant that reaches its deadline closes its connections and refuses its capability', async () => {
    const d = await startTestDaemon({ tcp: '127.0.0.1:0' });
    try {
      const token = newCapability();
      d.daemon.grants.add({ id: 'brief', providers: '*', keys: [], ops: ['read'] }, { capabilitySha256: hashCapability(token), expires: Date.now() + 300 });
      const c = await RawClient.connect(d.daemon.tcpAddress!);
      c.send({ v: 2, op: 'handshake', payload: { minVersion: 1, maxVersion: 2, capabilityToken: token } });
      expect(await c.next()).toMatchObject({ ok: true });
      expect(await c.waitClosed()).toBe(true);
      const again = await RawClient.connect(d.daemon.tcpAddress!);
      again.send({ v: 2, op: 'handshake', payload: { minVersion: 1, maxVersion: 2, capabilityToken: token } });
      expect(await again.next()).toMatchObject({ ok: false, code: 'UNAUTHORIZED' });
      again.close();
    } finally {
      await d.stop();
    }
  });
});

describe('host-side login through the in-process pipeline', () => {
  it('a store failure reaches the host user with the store\'s own message (never a sandbox)', async () => {
    const token: StoredToken = { access_token: 'at', expiry: Math.floor(Date.now() / 1000) + 3600, token_type: 'Bearer', refresh_token: 'rt-host' };
    const { registry } = scriptedDeviceProvider({ name: 'fake', pollIntervalMs: 1_000, poll: async () => ({ status: 'complete', token }) });
    class FullDisk extends MemoryStore {
      override async saveToken(): Promise<void> {
        throw new StoreError('io', 'Cannot write /home/alice/.local/share/credproxy/store.enc: ENOSPC');
      }
    }
    const store = new FullDisk();
    const backend = new HostLoginBackend(registry, { tokens: store, keys: store, backend: 'file', reason: '', protects: '', dataDir: '/nonexistent' });
    try {
      const start = await backend.initiate('fake', 'default', undefined);
      await expect(backend.poll(start.session_id, new AbortController().signal)).rejects.toThrow(/ENOSPC/);
    } finally {
      await backend.close();
    }
  });
});

describe('the request signal', () => {
  it('a handler that first looks at its signal after a cancel finds it aborted', async () => {
    const store = new MemoryStore();
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    let sawAborted: boolean | undefined;
    const handlers: HandlerTable = {
      ...buildHandlers(null),
      list_api_keys: async (ctx) => {
        await gate;
        sawAborted = ctx.signal.aborted;
        return { keys: [] };
      },
    };
    const dispatcher = new Dispatcher({
      handlers,
      services: { tokens: new TokenService(store), keys: store, usage: new BucketUsage(), refresher: null, publicFields: () => [] },
      audit: openAuditLog('off'),
      now: Date.now,
    });
    const [serverEnd, clientEnd] = memoryTransportPair();
    const conn = new Connection(9, serverEnd, null, { dispatcher, limits: DEFAULT_LIMITS, now: Date.now, authorize: () => FULL_GRANT });
    const c = memoryClient(clientEnd);
    c.send({ v: 2, op: 'handshake', payload: { minVersion: 1, maxVersion: 2 } });
    await c.next();
    c.send({ v: 2, id: 'slow', op: 'list_api_keys' });
    c.send({ v: 2, id: 'stop', op: 'cancel', payload: { targetId: 'slow' } });
    expect(await c.next()).toMatchObject({ id: 'slow', code: 'CANCELLED' });
    expect(await c.next()).toMatchObject({ id: 'stop', ok: true, data: { cancelled: true } });
    release();
    await dispatcher.idle();
    expect(sawAborted).toBe(true);
    conn.destroy();
  });
});
