/** Socket location, permissions, stale cleanup and shutdown (PROTOCOL.md §1). */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { startDaemon } from '../../src/server/daemon.js';
import { MemoryStore } from '../../src/store/memory.js';
import { RawClient } from '../helpers/rawClient.js';
import { sampleToken, tempDir } from '../helpers/daemon.js';
import { SlowStore } from '../helpers/slowStore.js';

const CHILD = fileURLToPath(new URL('../fixtures/daemon-child.mjs', import.meta.url));
const children: ChildProcess[] = [];
afterEach(() => {
  for (const c of children.splice(0)) c.kill('SIGKILL');
});

/** Starts the fixture daemon in its own process and resolves with its socket path. */
function spawnDaemon(socketArg: string, env: NodeJS.ProcessEnv = process.env): Promise<{ child: ChildProcess; socket: string }> {
  const child = spawn(process.execPath, [CHILD, socketArg], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  children.push(child);
  return new Promise((resolve, reject) => {
    let out = '';
    let err = '';
    child.stdout!.on('data', (b: Buffer) => {
      out += b.toString();
      const line = out.split('\n')[0];
      if (out.includes('\n')) resolve({ child, socket: (JSON.parse(line!) as { socket: string }).socket });
    });
    child.stderr!.on('data', (b: Buffer) => (err += b.toString()));
    child.once('exit', (code) => reject(new Error(`daemon exited ${code}: ${err}`)));
  });
}

function exitCode(child: ChildProcess): Promise<number | null> {
  return new Promise((resolve) => (child.exitCode !== null ? resolve(child.exitCode) : child.once('exit', (code) => resolve(code))));
}

function memory() {
  const store = new MemoryStore();
  return { tokens: store, keys: store, audit: 'off' };
}

describe('default socket location', () => {
  it('creates a 0700 directory and a 0600 {pid}-{nonce}.sock under 100 bytes', async () => {
    const runtime = tempDir('xdg-');
    const { child, socket } = await spawnDaemon('default', { ...process.env, XDG_RUNTIME_DIR: runtime });
    expect(path.dirname(socket)).toBe(path.join(runtime, 'credproxy'));
    expect(path.basename(socket)).toMatch(new RegExp(`^${child.pid}-[0-9a-f]{32}\\.sock$`));
    expect(Buffer.byteLength(socket)).toBeLessThan(100);
    expect(fs.statSync(path.dirname(socket)).mode & 0o777).toBe(0o700);
    expect(fs.statSync(socket).mode & 0o777).toBe(0o600);
    child.kill('SIGTERM');
    expect(await exitCode(child)).toBe(0);
  });

  it('falls back to the temp directory when XDG_RUNTIME_DIR is not an existing directory', async () => {
    const { child, socket } = await spawnDaemon('default', { ...process.env, XDG_RUNTIME_DIR: '/nonexistent/run' });
    expect(path.dirname(socket)).toBe(path.join(fs.realpathSync(process.env.TMPDIR ?? '/tmp'), `credproxy-${process.getuid!()}`));
    child.kill('SIGTERM');
    expect(await exitCode(child)).toBe(0);
  });

  it('falls back to a shorter directory when XDG_RUNTIME_DIR would make the path too long', async () => {
    const deep = path.join(tempDir('xdg-'), 'a'.repeat(60));
    fs.mkdirSync(deep);
    const { child, socket } = await spawnDaemon('default', { ...process.env, XDG_RUNTIME_DIR: deep });
    expect(socket.startsWith(deep)).toBe(false);
    expect(Buffer.byteLength(socket)).toBeLessThan(100);
    child.kill('SIGTERM');
    await exitCode(child);
  });

  it.each([
    ['group/other bits', (dir: string) => fs.chmodSync(dir, 0o755), /mode 755; it must be 700/],
    ['another owner', (dir: string) => fs.chownSync(dir, 65534, 65534), /owned by uid 65534/],
  ])('refuses a socket directory with %s and leaves it as it was', async (_label, spoil, message) => {
    if (_label === 'another owner' && process.getuid?.() !== 0) return;
    const runtime = tempDir('xdg-');
    const dir = path.join(runtime, 'credproxy');
    fs.mkdirSync(dir, { mode: 0o700 });
    spoil(dir);
    const before = fs.statSync(dir);
    await expect(spawnDaemon('default', { ...process.env, XDG_RUNTIME_DIR: runtime })).rejects.toThrow(message);
    const after = fs.statSync(dir);
    expect([after.mode, after.uid]).toEqual([before.mode, before.uid]);
  });
});

describe('stale sockets', () => {
  it('removes a socket whose daemon was killed, and never a live one', async () => {
    const runtime = tempDir('xdg-');
    const env = { ...process.env, XDG_RUNTIME_DIR: runtime };
    const dead = await spawnDaemon('default', env);
    dead.child.kill('SIGKILL');
    await exitCode(dead.child);
    expect(fs.existsSync(dead.socket)).toBe(true);
    const live = await spawnDaemon('default', env);
    const third = await spawnDaemon('default', env);
    expect(fs.existsSync(dead.socket)).toBe(false);
    expect(fs.existsSync(live.socket)).toBe(true);
    const c = await RawClient.ready(live.socket);
    expect(await c.request('list_providers')).toMatchObject({ ok: true });
    c.close();
    for (const d of [live, third]) d.child.kill('SIGTERM');
  });

  it('with an explicit path: replaces a stale socket, refuses a live one and a non-socket file', async () => {
    const dir = tempDir();
    const socketPath = path.join(dir, 'x.sock');
    const dead = await spawnDaemon(socketPath);
    dead.child.kill('SIGKILL');
    await exitCode(dead.child);
    const d = await startDaemon({ ...memory(), socketPath });
    await expect(startDaemon({ ...memory(), socketPath })).rejects.toThrow(`Another daemon is already listening on ${socketPath}`);
    await d.stop();
    const file = path.join(dir, 'plain.sock');
    fs.writeFileSync(file, 'data');
    await expect(startDaemon({ ...memory(), socketPath: file })).rejects.toThrow(/is not a socket; refusing to replace it/);
    expect(fs.readFileSync(file, 'utf8')).toBe('data');
  });

  it('refuses an explicit socket path of 100 bytes or more', async () => {
    const long = path.join(tempDir(), `${'s'.repeat(100)}.sock`);
    await expect(startDaemon({ ...memory(), socketPath: long })).rejects.toThrow(/Socket path too long \(\d+ bytes; it must be under 100\)/);
  });
});

describe('shutdown', () => {
  it.each(['SIGTERM', 'SIGINT', 'SIGHUP'] as const)('%s stops the daemon cleanly and removes the socket', async (signal) => {
    const dir = tempDir();
    const { child, socket } = await spawnDaemon(path.join(dir, 's.sock'));
    child.kill(signal);
    expect(await exitCode(child)).toBe(0);
    expect(fs.existsSync(socket)).toBe(false);
  });

  it('stop() lets an in-flight request finish, then closes and removes the socket', async () => {
    const store = new SlowStore(800);
    await store.saveToken('slow', 'default', sampleToken({ access_token: 'at-inflight' }));
    const d = await startDaemon({ tokens: store, keys: store, socketPath: path.join(tempDir(), 'g.sock'), audit: 'off' });
    const c = await RawClient.ready(d.socketPath);
    c.send({ v: 2, id: 'inflight', op: 'get_token', payload: { provider: 'slow' } });
    await new Promise((r) => setTimeout(r, 100));
    const stopped = d.stop();
    await expect(new Promise((resolve, reject) => net.connect(d.socketPath).once('connect', resolve).once('error', reject))).rejects.toThrow();
    expect(await c.replyFor('inflight')).toMatchObject({ ok: true, data: { access_token: 'at-inflight' } });
    await stopped;
    expect(await c.waitClosed(2_000)).toBe(true);
    expect(fs.existsSync(d.socketPath)).toBe(false);
  });
});
