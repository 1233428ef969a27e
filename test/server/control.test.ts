/**
 * PROTOCOL.md §11 on the daemon side: the control socket and its admin ops, sandbox sockets bound to
 * run-time grants, grant lifetimes, discovery (current.json) and connection caps — through real
 * sockets, with a real other uid where the kernel's peer credentials decide.
 */
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readDiscovery } from '../../src/server/discovery.js';
import { HOST_REFRESH_TOKEN, sampleToken, startTestDaemon, tempDir, type TestDaemon } from '../helpers/daemon.js';
import { canSwitchUid, mustSwitchUid, OTHER_UID, OtherUidArea } from '../helpers/otherUid.js';
import { allReceivedText, RawClient } from '../helpers/rawClient.js';
import { scriptedDeviceProvider } from '../helpers/scriptedProvider.js';
import { waitForAudit } from '../helpers/auditFile.js';

const GRANT = { providers: { anthropic: ['default'] }, keys: ['openai'], ops: ['read'] };

let d: TestDaemon;
let auditFile: string;
beforeAll(async () => {
  auditFile = path.join(tempDir(), 'audit.log');
  d = await startTestDaemon({ audit: auditFile, limits: { maxSandboxConnections: 3 } });
  await d.store.saveToken('anthropic', 'default', sampleToken({ access_token: 'at-anthropic' }));
  await d.store.saveToken('gemini', 'default', sampleToken({ access_token: 'at-gemini' }));
  await d.store.setKey('openai', 'sk-openai');
  await d.store.setKey('groq', 'gsk-groq');
});
afterAll(async () => {
  await d.stop();
  // Nothing any client read in this file held a refresh token.
  expect(allReceivedText()).not.toContain(HOST_REFRESH_TOKEN);
});

const control = () => RawClient.ready(d.daemon.controlPath);

function mode(file: string): number {
  return fs.statSync(file).mode & 0o777;
}

describe('control socket and discovery', () => {
  it('is a 0600 socket next to the main one; current.json names both, 0600', () => {
    expect(path.dirname(d.daemon.controlPath)).toBe(path.dirname(d.socketPath));
    expect(d.daemon.controlPath).toMatch(/\/\d+-[0-9a-f]{32}\.ctl$/);
    expect(mode(d.daemon.controlPath)).toBe(0o600);
    const file = path.join(d.dir, 'current.json');
    expect(mode(file)).toBe(0o600);
    expect(readDiscovery(d.dir)).toEqual({ pid: process.pid, socket: d.socketPath, control: d.daemon.controlPath, version: expect.stringMatching(/^\d+\.\d+\.\d+/) });
  });

  it('a stale current.json (its pid is gone) is ignored, and stop removes the daemon\'s own entry', async () => {
    const dir = tempDir();
    const file = path.join(dir, 'current.json');
    fs.writeFileSync(file, JSON.stringify({ pid: process.pid, socket: '/x.sock', control: '/x.ctl', version: '0.0.0' }), { mode: 0o644 });
    // Readable by others (or planted): not believed, even though its pid is alive.
    expect(readDiscovery(dir)).toBeNull();
    fs.chmodSync(file, 0o600);
    expect(readDiscovery(dir)?.control).toBe('/x.ctl');
    fs.writeFileSync(file, JSON.stringify({ pid: 2 ** 22 + 12345, socket: '/x.sock', control: '/x.ctl', version: '0.0.0' }), { mode: 0o600 });
    // Its pid is gone: a stale entry.
    expect(readDiscovery(dir)).toBeNull();
    const t = await startTestDaemon({ socketPath: path.join(dir, 'd.sock') });
    expect(readDiscovery(dir)?.socket).toBe(t.socketPath);
    await t.daemon.stop();
    expect(fs.existsSync(path.join(dir, 'current.json'))).toBe(false);
    expect(fs.existsSync(t.daemon.controlPath)).toBe(false);
    await t.stop();
  });

  it('serves only the admin ops: token ops are refused there', async () => {
    const c = await control();
    expect(await c.request('get_token', { provider: 'anthropic' })).toMatchObject({ ok: false, code: 'UNAUTHORIZED' });
    expect(await c.request('list_api_keys')).toMatchObject({ ok: false, code: 'UNAUTHORIZED' });
    expect(await c.request('grant_list')).toMatchObject({ ok: true });
    c.close();
  });

  it('admin ops are refused on the main socket (full grant), on sandbox sockets and over TCP', async () => {
    const main = await RawClient.ready(d.socketPath);
    for (const op of ['grant_open', 'grant_close', 'grant_list', 'daemon_status']) {
      const payload = op === 'grant_close' ? { grant_id: 'run-x' } : op === 'grant_open' ? GRANT : {};
      expect(await main.request(op, payload)).toMatchObject({ ok: false, code: 'UNAUTHORIZED' });
    }
    main.close();
    const c = await control();
    const opened = (await c.request('grant_open', GRANT)).data as { socket: string };
    const sandbox = await RawClient.ready(opened.socket);
    expect(await sandbox.request('grant_list')).toMatchObject({ ok: false, code: 'UNAUTHORIZED' });
    expect(await sandbox.request('grant_open', { ...GRANT, providers: '*' })).toMatchObject({ ok: false, code: 'UNAUTHORIZED' });
    sandbox.close();
    c.close();
  });

  it('refuses a capability on the control socket', async () => {
    const c = await RawClient.connect(d.daemon.controlPath);
    c.send({ v: 2, op: 'handshake', payload: { minVersion: 1, maxVersion: 2, capabilityToken: 'a'.repeat(64) } });
    expect(await c.next()).toMatchObject({ ok: false, code: 'UNAUTHORIZED' });
    c.close();
  });
});

describe('sandbox sockets (grant_open)', () => {
  it('each grant gets its own 0700 subdirectory and 0600 socket; connecting is the capability, scoped to the grant', async () => {
    const c = await control();
    const reply = await c.request('grant_open', { ...GRANT, label: 'agent one' });
    expect(reply).toMatchObject({ ok: true, data: { grant_id: expect.stringMatching(/^run-[0-9a-f]{12}$/), socket: expect.any(String) } });
    const { grant_id, socket } = reply.data as { grant_id: string; socket: string };
    expect(reply.data).not.toHaveProperty('capability');
    expect(path.dirname(socket)).toBe(path.join(d.dir, grant_id));
    expect(socket).toMatch(/\/[0-9a-f]{32}\.sock$/);
    expect(mode(path.dirname(socket))).toBe(0o700);
    expect(mode(socket)).toBe(0o600);
    // Only the socket is in the subdirectory: a launcher mounts it and the sandbox sees nothing else.
    expect(fs.readdirSync(path.dirname(socket))).toEqual([path.basename(socket)]);

    const s = await RawClient.ready(socket);
    expect(await s.request('get_token', { provider: 'anthropic' })).toMatchObject({ ok: true, data: { access_token: 'at-anthropic' } });
    expect(await s.request('get_token', { provider: 'gemini' })).toMatchObject({ ok: false, code: 'UNAUTHORIZED' });
    expect(await s.request('get_api_key', { name: 'openai' })).toMatchObject({ ok: true, data: { key: 'sk-openai' } });
    expect(await s.request('get_api_key', { name: 'groq' })).toMatchObject({ ok: false, code: 'UNAUTHORIZED' });
    expect(await s.request('list_providers')).toMatchObject({ data: { providers: ['anthropic'] } });
    expect(await s.request('list_api_keys')).toMatchObject({ data: { keys: ['openai'] } });
    expect(await s.request('save_token', { provider: 'anthropic', token: { access_token: 'x', expiry: 1 } })).toMatchObject({ code: 'UNAUTHORIZED' });

    const list = (await c.request('grant_list')).data as { grants: Array<Record<string, unknown>> };
    expect(list.grants.find((g) => g.grant_id === grant_id)).toEqual({
      grant_id,
      label: 'agent one',
      providers: GRANT.providers,
      keys: GRANT.keys,
      ops: GRANT.ops,
      created: expect.any(Number),
      connections: 1,
    });
    s.close();
    c.close();
  });

  it('a grant without ttl_s ends when its control connection closes: connections, socket and directory go', async () => {
    const c = await control();
    const { socket } = (await c.request('grant_open', GRANT)).data as { socket: string };
    const s = await RawClient.ready(socket);
    c.close();
    expect(await s.waitClosed()).toBe(true);
    // The grant's clean-up runs once the daemon saw the close; wait for it by connecting.
    await expectGone(socket);
    expect(fs.existsSync(path.dirname(socket))).toBe(false);
  });

  it('a capability asked for works over TCP only for its own grant; grant_close ends it', async () => {
    const t = await startTestDaemon({ tcp: '127.0.0.1:0' });
    try {
      await t.store.saveToken('anthropic', 'default', sampleToken({ access_token: 'at-tcp' }));
      const c = await RawClient.ready(t.daemon.controlPath);
      const a = (await c.request('grant_open', { ...GRANT, capability: true, ttl_s: 600 })).data as { grant_id: string; socket: string; capability: string };
      const b = (await c.request('grant_open', { ...GRANT, capability: true })).data as { grant_id: string; socket: string; capability: string };
      expect(a.capability).toMatch(/^[0-9a-f]{64}$/);
      const tcp = await RawClient.connect(t.daemon.tcpAddress!);
      tcp.send({ v: 2, op: 'handshake', payload: { minVersion: 1, maxVersion: 2, capabilityToken: a.capability } });
      expect(await tcp.next()).toMatchObject({ ok: true });
      expect(await tcp.request('get_token', { provider: 'anthropic' })).toMatchObject({ ok: true, data: { access_token: 'at-tcp' } });
      // b's capability is no key to a's sandbox socket.
      const cross = await RawClient.connect(a.socket);
      cross.send({ v: 2, op: 'handshake', payload: { minVersion: 1, maxVersion: 2, capabilityToken: b.capability } });
      expect(await cross.next()).toMatchObject({ ok: false, code: 'UNAUTHORIZED' });
      cross.close();

      expect(await c.request('grant_close', { grant_id: a.grant_id })).toMatchObject({ ok: true, data: {} });
      expect(await tcp.waitClosed()).toBe(true);
      await expectGone(a.socket);
      expect(await c.request('grant_close', { grant_id: a.grant_id })).toMatchObject({ ok: false, code: 'NOT_FOUND' });
      expect(await c.request('grant_close', { grant_id: 'default' })).toMatchObject({ ok: false, code: 'NOT_FOUND' });
      c.close();
    } finally {
      await t.stop();
    }
  });

  it('bad grant_open payloads are refused naming the field', async () => {
    const c = await control();
    expect(await c.request('grant_open', { ...GRANT, ops: ['admin'] })).toMatchObject({ code: 'INVALID_REQUEST', error: expect.stringContaining('"ops.0"') });
    expect(await c.request('grant_open', { ...GRANT, providers: { 'bad name': '*' } })).toMatchObject({ code: 'INVALID_REQUEST' });
    expect(await c.request('grant_open', { ...GRANT, ttl_s: 0 })).toMatchObject({ code: 'INVALID_REQUEST', error: expect.stringContaining('"ttl_s"') });
    c.close();
  });

  it('caps connections per sandbox socket, and audits the refusal', async () => {
    const c = await control();
    const { socket } = (await c.request('grant_open', GRANT)).data as { socket: string };
    const open = await Promise.all([1, 2, 3].map(() => RawClient.ready(socket)));
    const fourth = await RawClient.connect(socket);
    expect(await fourth.waitClosed()).toBe(true);
    for (const x of open) expect(await x.request('list_api_keys')).toMatchObject({ ok: true });
    for (const x of open) x.close();
    c.close();
    await expectGone(socket);
    await waitForAudit(auditFile, '"outcome":"CONNECTION_LIMIT"');
  });

  it('daemon_status: pid, version, store, listeners, connections, tokens — never a token value', async () => {
    const c = await control();
    const { grant_id } = (await c.request('grant_open', GRANT)).data as { grant_id: string };
    const status = (await c.request('daemon_status')).data as Record<string, unknown>;
    expect(status).toMatchObject({ pid: process.pid, store: 'memory', uptime_s: expect.any(Number), sessions: [] });
    expect(status.listeners).toEqual(expect.arrayContaining([{ kind: 'main', path: d.socketPath }, { kind: 'control', path: d.daemon.controlPath }, expect.objectContaining({ kind: 'sandbox', grant_id })]));
    // Paths a launcher must keep out of its sandbox: at least the daemon's own sockets and directory.
    expect(status.protected_paths).toEqual(expect.arrayContaining([d.socketPath, d.daemon.controlPath, d.dir]));
    expect(status.tokens).toContainEqual({ provider: 'anthropic', bucket: 'default', expiry: expect.any(Number), refresh_token: true, needs_login: false });
    expect(JSON.stringify(status)).not.toContain('at-anthropic');
    c.close();
  });
});

describe.skipIf(!canSwitchUid && !mustSwitchUid)('the control socket and another uid', () => {
  it('refuses another uid even when the main socket allows it', async () => {
    expect(canSwitchUid, 'this test needs root and /usr/bin/setpriv').toBe(true);
    const area = OtherUidArea.create();
    const t = await startTestDaemon({ allowUids: [OTHER_UID], socketPath: area.socketPath(), audit: auditFile });
    try {
      area.expose(t.socketPath);
      fs.chmodSync(t.daemon.controlPath, 0o666);
      const main = await area.run(t.socketPath, 'v2', [{ op: 'list_api_keys' }]);
      expect(main[1]).toMatchObject({ ok: true });
      const ctl = await area.run(t.daemon.controlPath, 'v2', [{ op: 'grant_list' }]);
      expect(ctl.at(-1)).toEqual({ closed: true });
      expect(ctl.filter((f) => 'ok' in f)).toEqual([]);
    } finally {
      await t.stop();
      area.remove();
    }
  });
});

/** Resolves once nothing listens at `socket` any more (the grant's clean-up ran). */
async function expectGone(socket: string): Promise<void> {
  for (;;) {
    const state = await new Promise<string>((resolve) => {
      const conn = net.connect(socket);
      conn.once('connect', () => {
        conn.destroy();
        resolve('live');
      });
      conn.once('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? 'error'));
    });
    if (state === 'ENOENT') return;
    await new Promise((r) => setImmediate(r));
  }
}

describe('ending a grant ends its logins', () => {
  it('closing the control connection cancels the login sessions opened through the grant\'s socket', async () => {
    const { registry: providers, firstCancel: flowCancelled } = scriptedDeviceProvider({ name: 'fake', userCode: 'WXYZ' });
    const t = await startTestDaemon({ providers });
    try {
      const c = await RawClient.ready(t.daemon.controlPath);
      const { socket } = (await c.request('grant_open', { providers: { fake: '*' }, keys: [], ops: ['login'] })).data as { socket: string };
      const s = await RawClient.ready(socket);
      expect(await s.request('oauth_initiate', { provider: 'fake' })).toMatchObject({ ok: true, data: { flow_type: 'device_code', user_code: 'WXYZ' } });
      const status = (await c.request('daemon_status')).data as { sessions: Array<{ session: string }> };
      expect(status.sessions).toEqual([expect.objectContaining({ session: expect.stringMatching(/^[0-9a-f]{8}$/), provider: 'fake' })]);
      expect(t.daemon.sessions!.size).toBe(1);
      c.close();
      await flowCancelled;
      await expectGone(socket);
      expect(t.daemon.sessions!.size).toBe(0);
    } finally {
      await t.stop();
    }
  });
});

describe('review fixes', () => {
  it('a grant_open cancelled before its socket is up leaves no grant behind', async () => {
    const c = await control();
    c.send({ v: 2, id: 'open', op: 'grant_open', payload: GRANT });
    c.send({ v: 2, id: 'stop', op: 'cancel', payload: { targetId: 'open' } });
    expect(await c.replyFor('open')).toMatchObject({ ok: false, code: 'CANCELLED' });
    // The undo runs once the socket it was making is up; wait for it through the registry's own view.
    for (;;) {
      const list = (await c.request('grant_list')).data as { grants: Array<{ grant_id: string }> };
      if (!list.grants.some((g) => g.grant_id.startsWith('run-'))) break;
      await new Promise((r) => setImmediate(r));
    }
    expect(fs.readdirSync(d.dir).filter((n) => n.startsWith('run-'))).toEqual([]);
    c.close();
  });

  it('connections that never authenticate cannot lock the owner out of the control socket', async () => {
    const t = await startTestDaemon({ tcp: '127.0.0.1:0', limits: { maxConnections: 2 } });
    try {
      const idle = await Promise.all([1, 2].map(() => RawClient.connect(t.daemon.tcpAddress!)));
      const third = await RawClient.connect(t.daemon.tcpAddress!);
      expect(await third.waitClosed()).toBe(true);
      const c = await RawClient.ready(t.daemon.controlPath);
      expect(await c.request('grant_list')).toMatchObject({ ok: true });
      c.close();
      for (const x of idle) x.close();
    } finally {
      await t.stop();
    }
  });

  it('with an explicit socket in a shared directory, the control socket and grant directories go to the private default directory', async () => {
    const shared = path.join(tempDir(), 'shared');
    fs.mkdirSync(shared, { mode: 0o755 });
    fs.chmodSync(shared, 0o755);
    const t = await startTestDaemon({ socketPath: path.join(shared, 'd.sock'), discovery: false });
    try {
      expect(path.dirname(t.daemon.controlPath)).not.toBe(shared);
      const st = fs.statSync(path.dirname(t.daemon.controlPath));
      expect(st.mode & 0o777).toBe(0o700);
      const c = await RawClient.ready(t.daemon.controlPath);
      const { socket } = (await c.request('grant_open', GRANT)).data as { socket: string };
      expect(path.dirname(path.dirname(socket))).toBe(path.dirname(t.daemon.controlPath));
      expect(fs.readdirSync(shared)).toEqual(['d.sock']);
      c.close();
      await expectGone(socket);
    } finally {
      await t.stop();
    }
  });
});
