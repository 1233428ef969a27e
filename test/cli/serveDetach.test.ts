/**
 * `credproxy serve --detach` end to end: the real CLI starts the real daemon in the background and
 * exits; the daemon keeps serving through the socket discovery names, is idempotent to start, and
 * stops cleanly on SIGTERM. Each test's daemon lives in its own sandbox runtime directory.
 */
import { existsSync, readFileSync, readdirSync, readlinkSync, statSync } from 'node:fs';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { expectOneErrorLine, makeSandbox, runCli, type Sandbox } from './cliHarness.js';
import { DetachedDaemons, readEntry, runsOurCli, socketDir, waitFor } from './detached.js';
import { waitForAudit } from '../helpers/auditFile.js';

let box: Sandbox;
const daemons = new DetachedDaemons();
beforeEach(() => (box = makeSandbox()));
afterEach(async () => {
  // Whatever the test got to: any daemon that wrote a current.json in this sandbox is stopped.
  daemons.track(socketDir(box));
  daemons.track(box.dir);
  try {
    await daemons.stopAll();
  } finally {
    box.cleanup();
  }
});

const nowSec = (): number => Math.floor(Date.now() / 1000);
const detach = (args: string[] = []) => runCli(['serve', '--detach', '--store', 'file', ...args], { env: box.env });

/** A sandboxed process's environment: only the socket, and a home with no store in it. */
function sandboxEnv(socket: string): NodeJS.ProcessEnv {
  return { PATH: process.env.PATH, CREDPROXY_HOME: path.join(box.dir, 'empty-home'), CREDPROXY_SOCKET: socket };
}

describe('serve --detach', () => {
  it('returns once the daemon is ready; the daemon outlives it, serves, and stops cleanly on SIGTERM', async () => {
    const access = 'at-through-the-detached-daemon';
    const put = await runCli(['import', 'github', '--store', 'file'], { env: box.env, input: JSON.stringify({ access_token: access, expiry: nowSec() + 3600 }) });
    expect(put.code, put.stderr).toBe(0);

    const started = await detach();
    // runCli resolved: the parent has exited, with the ready line printed.
    expect(started.code, started.stderr).toBe(0);
    const entry = daemons.track(socketDir(box))!;
    expect(entry).not.toBeNull();
    expect(started.stdout).toBe(`${entry.socket}\n`);
    const log = path.join(box.env.CREDPROXY_HOME!, 'serve.log');
    expect(started.stderr).toBe(`credproxy: daemon started (pid ${entry.pid}); its messages go to ${log}\n`);
    expect(path.dirname(entry.socket)).toBe(socketDir(box));
    expect(runsOurCli(entry.pid)).toBe(true);
    if (process.platform === 'linux') {
      // Its own session (no controlling terminal) and stdin from /dev/null.
      const stat = readFileSync(`/proc/${entry.pid}/stat`, 'utf8');
      const [, , , session] = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      expect(Number(session)).toBe(entry.pid);
      expect(readlinkSync(`/proc/${entry.pid}/fd/0`)).toBe('/dev/null');
    }

    // Through the socket the parent printed (and current.json names), after the parent is gone.
    const token = await runCli(['token', 'github'], { env: sandboxEnv(entry.socket) });
    expect(token.code, token.stderr).toBe(0);
    expect(token.stdout).toBe(`${access}\n`);
    await waitForAudit(path.join(box.env.CREDPROXY_HOME!, 'audit.log'), '"op":"get_token"');

    // Its stderr went to the log, 0600.
    expect(statSync(log).mode & 0o777).toBe(0o600);
    await waitFor(() => readFileSync(log, 'utf8').includes('store backend: file'), 'the store line in serve.log');

    process.kill(entry.pid, 'SIGTERM');
    await waitFor(() => !existsSync(entry.socket) && !existsSync(path.join(socketDir(box), 'current.json')), 'the socket and current.json to go');
    await waitFor(() => !runsOurCli(entry.pid), 'the daemon to exit');
    expect(existsSync(entry.control)).toBe(false);
    expect(readFileSync(log, 'utf8')).toContain('credproxy: received SIGTERM, shutting down');
  });

  it('is idempotent: a second --detach names the running daemon and starts none', async () => {
    const first = await detach();
    expect(first.code, first.stderr).toBe(0);
    const entry = daemons.track(socketDir(box))!;

    const second = await detach();
    expect(second.code, second.stderr).toBe(0);
    expect(second.stdout).toBe(`${entry.socket}\n`);
    expect(second.stderr).toBe(`credproxy: a daemon is already running (pid ${entry.pid}); not starting another\n`);

    const json = await detach(['--json']);
    expect(json.code, json.stderr).toBe(0);
    expect(JSON.parse(json.stdout)).toEqual({ socket: entry.socket, control: entry.control });

    expect(readEntry(socketDir(box))).toEqual(entry);
    expect(readdirSync(socketDir(box)).filter((f) => f.endsWith('.sock'))).toEqual([path.basename(entry.socket)]);
  });

  it('two started at once make one daemon, and both print its socket', async () => {
    const [a, b] = await Promise.all([detach(), detach()]);
    const entry = daemons.track(socketDir(box))!;
    expect(a.code, a.stderr).toBe(0);
    expect(b.code, b.stderr).toBe(0);
    expect(a.stdout).toBe(`${entry.socket}\n`);
    expect(b.stdout).toBe(`${entry.socket}\n`);
    expect([a.stderr, b.stderr].filter((s) => s.includes('already running'))).toHaveLength(1);
    expect(readdirSync(socketDir(box)).filter((f) => f.endsWith('.sock'))).toEqual([path.basename(entry.socket)]);
  });

  it('--json prints the daemon\'s own ready document', async () => {
    const started = await detach(['--json', '--tcp', '127.0.0.1:0', '--audit', 'off']);
    expect(started.code, started.stderr).toBe(0);
    const entry = daemons.track(socketDir(box))!;
    const ready = JSON.parse(started.stdout) as { socket: string; control: string; tcp: { host: string; port: number } };
    expect(ready).toMatchObject({ socket: entry.socket, control: entry.control, tcp: { host: '127.0.0.1' } });
    expect(ready.tcp.port).toBeGreaterThan(0);
  });

  it('a daemon that fails to start: its own error line, exit 1, nothing left running', async () => {
    const policy = path.join(box.dir, 'missing-policy.json');
    const foreground = await runCli(['serve', '--store', 'file', '--policy', policy], { env: box.env });
    const line = expectOneErrorLine(foreground);
    const failed = await detach(['--policy', policy]);
    expect(expectOneErrorLine(failed)).toBe(line);
    expect(failed.stdout).toBe('');
    expect(readEntry(socketDir(box))).toBeNull();
    // The log has it too, for a start from a shell profile whose stderr nobody reads.
    expect(readFileSync(path.join(box.env.CREDPROXY_HOME!, 'serve.log'), 'utf8')).toContain(line);
  });

  it('a current.json whose daemon is gone does not count as running', async () => {
    const first = await detach();
    const old = daemons.track(socketDir(box))!;
    expect(first.code).toBe(0);
    process.kill(old.pid, 'SIGKILL'); // no cleanup: current.json and the socket stay behind
    await waitFor(() => !runsOurCli(old.pid), 'the killed daemon to die');
    expect(readEntry(socketDir(box))).toEqual(old);

    const again = await detach();
    expect(again.code, again.stderr).toBe(0);
    const entry = daemons.track(socketDir(box))!;
    expect(entry.pid).not.toBe(old.pid);
    expect(again.stdout).toBe(`${entry.socket}\n`);
    expect(again.stderr).toContain(`daemon started (pid ${entry.pid})`);
  });

  it('with --socket it starts another daemon there even when one is running', async () => {
    expect((await detach()).code).toBe(0);
    const main = daemons.track(socketDir(box))!;
    const sock = path.join(box.dir, 'extra.sock');
    const extra = await detach(['--socket', sock]);
    expect(extra.code, extra.stderr).toBe(0);
    // The sandbox directory is private, so that daemon keeps its current.json beside its socket.
    const entry = daemons.track(box.dir)!;
    expect(extra.stdout).toBe(`${sock}\n`);
    expect(entry.socket).toBe(sock);
    expect(entry.pid).not.toBe(main.pid);
    expect(runsOurCli(main.pid)).toBe(true);
  });
});
