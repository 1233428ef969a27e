/**
 * `credproxy serve` end to end: the real CLI starts the real daemon; other CLI processes and a
 * ProxyClient talk to it through the socket it prints; signals stop it cleanly.
 */
import type { ChildProcess } from 'node:child_process';
import { existsSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ProxyClient } from '../../src/client/ProxyClient.js';
import { makeSandbox, runCli, startServe, type RunResult, type Sandbox } from './cliHarness.js';
import { waitForAudit } from '../helpers/auditFile.js';

let box: Sandbox;
let serving: ChildProcess | undefined;
beforeEach(() => (box = makeSandbox()));
afterEach(() => {
  // Only the daemon this test started, by its own handle.
  if (serving && serving.exitCode === null && serving.signalCode === null) serving.kill('SIGKILL');
  serving = undefined;
  box.cleanup();
});

const nowSec = (): number => Math.floor(Date.now() / 1000);

/** Starts `serve`, resolves with its first stdout line and a promise of its exit. */
async function serve(args: string[]): Promise<{ line: string; exit: Promise<RunResult>; child: ChildProcess }> {
  const { child, ready, exit } = startServe(args, box.env);
  serving = child;
  return { line: await ready, exit, child };
}

/** Environment of a sandboxed process: only the socket, and a home with no host store in it. */
function sandboxEnv(socket: string, variable = 'CREDPROXY_SOCKET'): NodeJS.ProcessEnv {
  return { PATH: process.env.PATH, CREDPROXY_HOME: path.join(box.dir, 'empty-home'), [variable]: socket };
}

describe('serve', () => {
  it('--json prints the socket; token reads through the proxy; SIGTERM exits 0 and removes the socket', async () => {
    const access = 'at-served-through-the-proxy';
    const refresh = 'rt-must-stay-on-the-host';
    const put = await runCli(['import', 'anthropic', '--store', 'file'], {
      env: box.env,
      input: JSON.stringify({ access_token: access, refresh_token: refresh, expiry: nowSec() + 3600 }),
    });
    expect(put.code, put.stderr).toBe(0);

    const { line, exit, child } = await serve(['--store', 'file', '--json']);
    const ready = JSON.parse(line) as { socket: string; control: string; tcp?: unknown };
    expect(Object.keys(ready)).toEqual(['socket', 'control']);
    // The control socket and discovery file sit beside it (PROTOCOL.md §11).
    expect(path.dirname(ready.control)).toBe(path.dirname(ready.socket));
    expect(JSON.parse(readFileSync(path.join(path.dirname(ready.socket), 'current.json'), 'utf8'))).toMatchObject({ pid: child.pid, socket: ready.socket, control: ready.control });
    // Default location: $XDG_RUNTIME_DIR/credproxy/{pid}-{nonce}.sock
    expect(path.dirname(ready.socket)).toBe(path.join(box.dir, 'credproxy'));
    expect(path.basename(ready.socket)).toMatch(new RegExp(`^${child.pid}-[0-9a-f]{24,}\\.sock$`));
    expect(statSync(ready.socket).isSocket()).toBe(true);

    const token = await runCli(['token', 'anthropic'], { env: sandboxEnv(ready.socket) });
    expect(token.code, token.stderr).toBe(0);
    expect(token.stdout).toBe(`${access}\n`);
    expect(token.stderr).not.toContain(refresh);

    const viaLlxprt = await runCli(['token', 'anthropic'], { env: sandboxEnv(ready.socket, 'LLXPRT_CREDENTIAL_SOCKET') });
    expect(viaLlxprt.stdout).toBe(`${access}\n`);

    const missing = await runCli(['token', 'gemini'], { env: sandboxEnv(ready.socket) });
    expect(missing.code).toBe(1);
    expect(missing.stderr).toBe('credproxy: No token for gemini/default\n');

    // The default audit log is <dataDir>/audit.log and records ops without secrets.
    const audit = await waitForAudit(path.join(box.env.CREDPROXY_HOME!, 'audit.log'), '"op":"get_token"');
    expect(audit).not.toContain(access);

    child.kill('SIGTERM');
    const result = await exit;
    expect(result.signal).toBeNull();
    expect(result.code).toBe(0);
    expect(existsSync(ready.socket)).toBe(false);
    expect(result.stderr).toMatch(/^credproxy: store backend: file \(/m);
    expect(result.stderr).toContain('received SIGTERM');
    expect(result.stdout + result.stderr).not.toContain(access);
    expect(result.stdout + result.stderr).not.toContain(refresh);
  });

  it('keeps serving, and still stops cleanly, after whoever read its stderr went away', async () => {
    const { line, exit, child } = await serve(['--store', 'memory', '--audit', '-']);
    child.stderr!.destroy(); // the launcher closes its end; every audit line now hits EPIPE
    const client = new ProxyClient({ socketPath: line });
    try {
      for (let i = 0; i < 3; i++) {
        expect(await client.request('list_providers', {})).toEqual({ providers: [] });
        await new Promise((r) => setTimeout(r, 50));
      }
    } finally {
      await client.close();
    }
    child.kill('SIGTERM');
    const result = await exit;
    expect(result.code).toBe(0);
    expect(existsSync(line)).toBe(false);
  });

  it('the daemon\'s token cache sees a token another process wrote to the file store', async () => {
    const put = (access: string) =>
      runCli(['import', 'anthropic', '--store', 'file'], { env: box.env, input: JSON.stringify({ access_token: access, refresh_token: 'rt-x', expiry: nowSec() + 3600 }) });
    expect((await put('at-first')).code).toBe(0);
    const { line } = await serve(['--store', 'file']);
    const read = () => runCli(['token', 'anthropic'], { env: sandboxEnv(line) });
    expect((await read()).stdout).toBe('at-first\n');
    expect((await read()).stdout).toBe('at-first\n'); // now served from the daemon's cache
    expect((await put('at-second')).code).toBe(0); // a separate process rewrites the store
    expect((await read()).stdout).toBe('at-second\n');
    // --no-daemon: this daemon is discoverable, and this write must come from another process.
    const gone = await runCli(['logout', 'anthropic', '--store', 'file', '--no-daemon'], { env: box.env });
    expect(gone.code, gone.stderr).toBe(0);
    expect((await read()).stderr).toBe('credproxy: No token for anthropic/default\n');
  });

  it('logout through the proxy removes the token on the host', async () => {
    await runCli(['import', 'anthropic', '--store', 'file'], { env: box.env, input: JSON.stringify({ access_token: 'x', expiry: nowSec() + 600 }) });
    const sock = path.join(box.dir, 'explicit.sock');
    const { line, exit, child } = await serve(['--store', 'file', '--socket', sock, '--audit', 'off']);
    expect(line).toBe(sock); // plain mode prints the bare path
    const out = await runCli(['logout', 'anthropic'], { env: sandboxEnv(sock) });
    expect(out.code, out.stderr).toBe(0);
    expect(out.stdout).toBe('Logged out of anthropic/default\n');
    expect((await runCli(['token', 'anthropic'], { env: sandboxEnv(sock) })).stderr).toBe('credproxy: No token for anthropic/default\n');
    child.kill('SIGINT');
    expect((await exit).code).toBe(0);
    expect(existsSync(sock)).toBe(false);
    expect(existsSync(path.join(box.env.CREDPROXY_HOME!, 'audit.log'))).toBe(false);
    // And on the host store itself, after the daemon is gone.
    expect((await runCli(['status', '--store', 'file'], { env: box.env })).stdout).toContain('Tokens:\n  (none)');
  });

  it('serves keys set through the CLI, with exactly one trailing newline trimmed', async () => {
    expect((await runCli(['keys', 'set', 'openai', '--store', 'file'], { env: box.env, input: ' sk value \r\n' })).code).toBe(0);
    const { line, exit, child } = await serve(['--store', 'file', '--json', '--audit', '-']);
    const { socket } = JSON.parse(line) as { socket: string };
    const client = new ProxyClient({ socketPath: socket });
    try {
      expect(await client.request('get_api_key', { name: 'openai' })).toEqual({ key: ' sk value ' });
    } finally {
      await client.close();
    }
    child.kill('SIGHUP');
    const result = await exit;
    expect(result.code).toBe(0);
    expect(result.stderr).toContain('"op":"get_api_key"'); // --audit - goes to stderr
    expect(result.stderr).not.toContain('sk value');
  });

  it('--tcp adds the loopback address to the --json line', async () => {
    const { line, exit, child } = await serve(['--store', 'memory', '--json', '--tcp', '127.0.0.1:0', '--audit', 'off']);
    const ready = JSON.parse(line) as { socket: string; tcp: { host: string; port: number } };
    expect(ready.tcp.host).toBe('127.0.0.1');
    expect(ready.tcp.port).toBeGreaterThan(0);
    child.kill('SIGTERM');
    expect((await exit).code).toBe(0);
    expect(existsSync(ready.socket)).toBe(false);
  });

  it('refuses a second daemon on a live socket, leaving the first one alone', async () => {
    const sock = path.join(box.dir, 'one.sock');
    const first = await serve(['--store', 'memory', '--socket', sock, '--audit', 'off']);
    const second = await runCli(['serve', '--store', 'memory', '--socket', sock, '--audit', 'off'], { env: box.env });
    expect(second.code).toBe(1);
    expect(second.stderr).toBe(`credproxy: Another daemon is already listening on ${sock}\n`);
    expect(statSync(sock).isSocket()).toBe(true);
    first.child.kill('SIGTERM');
    expect((await first.exit).code).toBe(0);
  });
});
