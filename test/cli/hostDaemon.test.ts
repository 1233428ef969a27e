/**
 * Host commands find the running daemon by themselves (current.json in the default socket
 * directory) when no socket variable is set. The daemons here run `--store memory`, so a token only
 * the daemon holds shows that a command went through it and not through the host store.
 */
import { spawnSync, type ChildProcess } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ProxyClient } from '../../src/client/ProxyClient.js';
import { ProxyTokenStore } from '../../src/client/ProxyTokenStore.js';
import { sampleToken, startTestDaemon, type TestDaemon } from '../helpers/daemon.js';
import { expectOneErrorLine, makeSandbox, runCli, startServe, type Sandbox } from './cliHarness.js';
import { socketDir } from './detached.js';
import { waitForAudit } from '../helpers/auditFile.js';

let box: Sandbox;
const children: ChildProcess[] = [];
let other: TestDaemon | undefined;
beforeEach(() => (box = makeSandbox()));
afterEach(async () => {
  // Only the processes this test started, by their own handles.
  for (const child of children.splice(0)) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  await other?.stop();
  other = undefined;
  box.cleanup();
});

const nowSec = (): number => Math.floor(Date.now() / 1000);
const host = (args: string[], input?: string) => runCli(args, { env: box.env, input });

/** `serve --json ARGS` in the sandbox's environment: the daemon discovery will find. */
async function serve(args: string[]): Promise<{ socket: string; pid: number }> {
  const { child, ready } = startServe(['--json', ...args], box.env);
  children.push(child);
  return { socket: (JSON.parse(await ready) as { socket: string }).socket, pid: child.pid! };
}

/** Saves a token in the daemon itself (save_token), where the host store cannot see it. */
async function saveInDaemon(socket: string, accessToken: string): Promise<void> {
  const client = new ProxyClient({ socketPath: socket });
  try {
    await client.request('save_token', { provider: 'github', bucket: 'default', token: { access_token: accessToken, expiry: nowSec() + 3600, token_type: 'Bearer' } });
  } finally {
    await client.close();
  }
}

/** What the daemon itself holds for github/default (null: nothing). */
async function inDaemon(socket: string): Promise<string | null> {
  const store = new ProxyTokenStore(new ProxyClient({ socketPath: socket }));
  try {
    return (await store.getToken('github'))?.access_token ?? null;
  } finally {
    await store.close();
  }
}

describe('host commands with a daemon running', () => {
  it('token, status and logout go through the discovered daemon; --no-daemon uses the host store', async () => {
    const { socket, pid } = await serve(['--store', 'memory', '--audit', 'off']);
    await saveInDaemon(socket, 'at-only-in-the-daemon');
    expect(await inDaemon(socket)).toBe('at-only-in-the-daemon');

    const token = await host(['token', 'github', '--store', 'file']);
    expect(token.code, token.stderr).toBe(0);
    expect(token.stdout).toBe('at-only-in-the-daemon\n');
    const bypass = await host(['token', 'github', '--no-daemon', '--store', 'file']);
    expect(bypass.stderr).toBe('credproxy: No token for github/default\n');

    const status = await host(['status', '--store', 'file']);
    expect(status.code, status.stderr).toBe(0);
    expect(status.stdout).toContain(`\nDaemon: pid ${pid}, socket ${socket} (token, login and logout go through it)\n`);
    expect(status.stdout).toContain('Tokens:\n  (none)\n'); // status reports the host store
    const json = JSON.parse((await host(['status', '--json', '--store', 'file'])).stdout) as { daemon: unknown };
    expect(json.daemon).toEqual({ socket, source: 'discovered', pid });

    const logout = await host(['logout', 'github', '--store', 'file']);
    expect(logout.code, logout.stderr).toBe(0);
    expect(logout.stdout).toBe('Logged out of github/default\n');
    expect(await inDaemon(socket)).toBeNull();
    expect((await host(['token', 'github'])).stderr).toBe('credproxy: No token for github/default\n');
  });

  it('a token imported into the host store is served through a file-store daemon', async () => {
    // A file-store daemon over the same store as the host commands: import writes the host store
    // (import is never proxied: save_token would drop its refresh token), the daemon serves it.
    await serve(['--store', 'file']);
    const put = await host(['import', 'github', '--store', 'file'], JSON.stringify({ access_token: 'at-imported', expiry: nowSec() + 600 }));
    expect(put.code, put.stderr).toBe(0);
    expect((await host(['token', 'github'])).stdout).toBe('at-imported\n');
    await waitForAudit(path.join(box.env.CREDPROXY_HOME!, 'audit.log'), /"op":"get_token".*"outcome":"ok"/);
  });

  it('CREDPROXY_SOCKET wins over the discovered daemon', async () => {
    const { socket } = await serve(['--store', 'memory', '--audit', 'off']);
    await saveInDaemon(socket, 'at-discovered');
    other = await startTestDaemon();
    await other.store.saveToken('github', 'default', sampleToken({ access_token: 'at-from-the-variable' }));
    const token = await runCli(['token', 'github'], { env: { ...box.env, CREDPROXY_SOCKET: other.socketPath } });
    expect(token.stdout).toBe('at-from-the-variable\n');
    const status = JSON.parse((await runCli(['status', '--json', '--store', 'file'], { env: { ...box.env, CREDPROXY_SOCKET: other.socketPath } })).stdout) as { daemon: unknown };
    expect(status.daemon).toEqual({ socket: other.socketPath, source: 'env' });
  });

  it('a policy that narrows the main socket: the refusal names the daemon and --no-daemon', async () => {
    const policy = path.join(box.dir, 'policy.json');
    writeFileSync(policy, JSON.stringify({ default: { providers: '*', keys: [], ops: ['read'] } }));
    const { pid } = await serve(['--store', 'memory', '--audit', 'off', '--policy', policy]);
    expect((await host(['import', 'github', '--store', 'file'], JSON.stringify({ access_token: 'at-host', expiry: nowSec() + 600 }))).code).toBe(0);

    const refused = await host(['logout', 'github', '--store', 'file']);
    expect(expectOneErrorLine(refused)).toMatch(
      new RegExp(`^credproxy: .*\\(UNAUTHORIZED\\); the running daemon \\(pid ${pid}\\) refused it under its policy, --no-daemon uses the host store instead$`),
    );
    const direct = await host(['logout', 'github', '--no-daemon', '--store', 'file']);
    expect(direct.code, direct.stderr).toBe(0);
    expect(direct.stdout).toBe('Logged out of github/default\n');
  });
});

describe('discovery ignores a daemon that is gone', () => {
  /** A current.json as a daemon writes it, naming `pid` and a socket nobody listens on. */
  function staleEntry(pid: number): void {
    const dir = socketDir(box);
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    const entry = { pid, socket: path.join(dir, `${pid}-gone.sock`), control: path.join(dir, `${pid}-gone.ctl`), version: '0.0.0' };
    writeFileSync(path.join(dir, 'current.json'), JSON.stringify(entry), { mode: 0o600 });
  }

  beforeEach(async () => {
    const put = await host(['import', 'github', '--store', 'file'], JSON.stringify({ access_token: 'at-host-store', expiry: nowSec() + 600 }));
    expect(put.code, put.stderr).toBe(0);
  });

  it.each([
    // A process that has exited and been reaped: its pid is gone.
    ['its pid is gone', () => spawnSync(process.execPath, ['-e', '']).pid],
    // A live pid (this test's own, as after pid reuse) whose socket has no listener.
    ['its pid is alive but its socket is gone', () => process.pid],
  ])('%s: token, logout and status use the host store', async (_name, pidOf) => {
    staleEntry(pidOf());
    const token = await host(['token', 'github', '--store', 'file']);
    expect(token.code, token.stderr).toBe(0);
    expect(token.stdout).toBe('at-host-store\n');
    const status = await host(['status', '--json', '--store', 'file']);
    expect((JSON.parse(status.stdout) as { daemon: unknown }).daemon).toBeNull();
    expect((await host(['status', '--store', 'file'])).stdout).not.toContain('Daemon:');
    const logout = await host(['logout', 'github', '--store', 'file']);
    expect(logout.stdout).toBe('Logged out of github/default\n');
    // The host store answered: a second logout there knows the token is gone (a daemon could not say).
    expect((await host(['logout', 'github', '--store', 'file'])).stderr).toBe('credproxy: No token for github/default\n');
  });
});
