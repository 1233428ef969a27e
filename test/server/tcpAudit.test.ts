/** The loopback TCP listener (capability required) and the audit log (§9). */
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hashCapability } from '../../src/auth/capability.js';
import { parsePolicy } from '../../src/auth/policy.js';
import { startDaemon } from '../../src/server/daemon.js';
import { MemoryStore } from '../../src/store/memory.js';
import { RawClient } from '../helpers/rawClient.js';
import { HOST_REFRESH_TOKEN, sampleToken, startTestDaemon, tempDir, type TestDaemon } from '../helpers/daemon.js';

const CAP = '0123456789abcdef'.repeat(4);
const policy = () =>
  parsePolicy(JSON.stringify({ default: { providers: '*', keys: '*', ops: ['read'] }, capabilities: [{ id: 'vm', tokenSha256: hashCapability(CAP).toString('hex'), providers: '*', keys: ['k1'], ops: ['read'] }] }));

describe('TCP listener', () => {
  let d: TestDaemon;
  beforeAll(async () => {
    d = await startTestDaemon({ tcp: '127.0.0.1:0', policy: policy() });
    await d.store.saveToken('anthropic', 'default', sampleToken({ access_token: 'at-tcp' }));
  });
  afterAll(() => d.stop());

  async function tcpHandshake(payload: Record<string, unknown>) {
    const c = await RawClient.connect(d.daemon.tcpAddress!);
    c.send({ v: 2, op: 'handshake', payload });
    return { c, reply: await c.next() };
  }

  it('listens on loopback only', () => {
    expect(d.daemon.tcpAddress?.host).toBe('127.0.0.1');
    expect(d.daemon.tcpAddress?.port).toBeGreaterThan(0);
  });

  it('refuses a TCP handshake without a capability token, even though the Unix default grant exists', async () => {
    const { c, reply } = await tcpHandshake({ minVersion: 1, maxVersion: 2 });
    expect(reply).toEqual({ v: 2, op: 'handshake', ok: false, code: 'UNAUTHORIZED', error: 'Invalid or missing capability token' });
    expect(await c.waitClosed(4_000)).toBe(true);
  });

  it.each([['f'.repeat(64)], [CAP.toUpperCase()], [CAP.slice(1)], [42]])('refuses capability %j', async (token) => {
    const { c, reply } = await tcpHandshake({ minVersion: 1, maxVersion: 2, capabilityToken: token });
    expect(reply).toMatchObject({ ok: false, code: 'UNAUTHORIZED' });
    c.close();
  });

  it('serves a valid capability with its grant', async () => {
    const { c, reply } = await tcpHandshake({ minVersion: 1, maxVersion: 2, capabilityToken: CAP });
    expect(reply).toMatchObject({ ok: true });
    expect(await c.request('get_token', { provider: 'anthropic' })).toMatchObject({ ok: true, data: { access_token: 'at-tcp' } });
    expect(await c.request('get_api_key', { name: 'k2' })).toMatchObject({ ok: false, code: 'UNAUTHORIZED' });
    c.close();
  });

  it.each(['0.0.0.0:0', '192.168.1.1:80', 'localhost', '127.0.0.1:70000', 'example:1'])('refuses --tcp %s', async (spec) => {
    const store = new MemoryStore();
    await expect(startDaemon({ tokens: store, keys: store, socketPath: path.join(tempDir(), 'x.sock'), tcp: spec })).rejects.toThrow(/not loopback|Invalid TCP/);
  });
});

describe('audit log', () => {
  it('writes one JSON line per event with the §9 fields and no secret', async () => {
    const auditFile = path.join(tempDir(), 'audit.log');
    const d = await startTestDaemon({ audit: auditFile, policy: policy() });
    await d.store.saveToken('anthropic', 'work', sampleToken({ access_token: 'at-audited-secret' }));
    await d.store.setKey('k1', 'sk-audited-key-secret');
    const c = await RawClient.ready(d.socketPath, { minVersion: 1, maxVersion: 2, capabilityToken: CAP });
    await c.request('get_token', { provider: 'anthropic', bucket: 'work' });
    await c.request('get_api_key', { name: 'k1' });
    await c.request('get_token', { provider: 'nobody' });
    await c.request('save_token', { provider: 'anthropic', token: { access_token: 'at-sandbox-secret', expiry: 1 } });
    c.sendRaw(Buffer.from([0, 0, 0, 2, 0x5b, 0x5d]));
    await c.waitClosed();
    await d.stop();

    const text = fs.readFileSync(auditFile, 'utf8');
    const lines = text.trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(fs.statSync(auditFile).mode & 0o777).toBe(0o600);
    const getToken = lines.find((l) => l.op === 'get_token' && l.outcome === 'ok')!;
    expect(getToken).toMatchObject({ conn: expect.any(Number), grant: 'vm', provider: 'anthropic', bucket: 'work', ms: expect.any(Number) });
    expect(getToken.peer).toMatchObject({ pid: process.pid, uid: process.getuid!() });
    expect(typeof getToken.ts).toBe('string');
    expect(lines).toContainEqual(expect.objectContaining({ op: 'get_token', provider: 'nobody', outcome: 'NOT_FOUND' }));
    expect(lines).toContainEqual(expect.objectContaining({ op: 'save_token', outcome: 'UNAUTHORIZED' }));
    expect(lines).toContainEqual(expect.objectContaining({ op: 'connection', outcome: 'FRAME_NOT_OBJECT' }));
    for (const secret of ['at-audited-secret', 'sk-audited-key-secret', 'at-sandbox-secret', CAP, HOST_REFRESH_TOKEN]) expect(text).not.toContain(secret);
  });

  it('a failing audit file (disk full) is reported once and does not take the daemon down', async () => {
    if (!fs.existsSync('/dev/full')) return;
    const lines: string[] = [];
    const d = await startTestDaemon({ audit: '/dev/full', log: (line) => lines.push(line) });
    await d.store.saveToken('anthropic', 'default', sampleToken({ access_token: 'at-full-disk' }));
    const c = await RawClient.ready(d.socketPath, { minVersion: 1, maxVersion: 2 });
    for (let i = 0; i < 3; i++) {
      expect(await c.request('get_token', { provider: 'anthropic' })).toMatchObject({ ok: true });
      await new Promise((r) => setTimeout(r, 20));
    }
    expect(lines.filter((l) => l.includes('audit log /dev/full failed (ENOSPC)'))).toHaveLength(1);
    c.close();
    await d.stop();
  });
});
