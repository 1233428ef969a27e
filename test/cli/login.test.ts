/**
 * `credproxy login` end to end: the real CLI against a real authorization server (oidc-provider,
 * test/helpers/authServer.ts) configured as a custom provider in the test's DATA_DIR/config.json.
 * Proxy mode goes through a real `credproxy serve`; host mode runs the flow in the CLI process.
 * The user is scripted through the server's own pages (approveDevice, authorize).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { renderUnicodeCompact } from 'uqr';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { startAuthServer, type AuthServer } from '../helpers/authServer.js';
import { CLI, expectOneErrorLine, finished, makeSandbox, runCli, spawnCli, type RunResult, type Sandbox } from './cliHarness.js';
import { waitForAudit } from '../helpers/auditFile.js';

let idp: AuthServer;
let box: Sandbox;
const children: ChildProcess[] = [];

beforeAll(async () => {
  idp = await startAuthServer();
});
afterAll(() => idp.close());

beforeEach(() => {
  box = makeSandbox();
  mkdirSync(box.env.CREDPROXY_HOME!, { recursive: true, mode: 0o700 });
  writeFileSync(path.join(box.env.CREDPROXY_HOME!, 'config.json'), JSON.stringify(providerConfig(idp)));
});
afterEach(() => {
  // Only the processes this test started, by their own handles.
  for (const child of children.splice(0)) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  box.cleanup();
});

/** The authorization server as a custom provider (format: src/oauth/config.ts). */
function providerConfig(server: AuthServer): Record<string, unknown> {
  return {
    providers: {
      myidp: {
        clientId: server.clientId,
        issuer: server.issuer,
        scopes: server.scopes.split(' '),
        flows: ['device_code', 'pkce_redirect', 'browser_redirect'],
        endpoints: {
          authorization: server.endpoints.authorization,
          token: server.endpoints.token,
          deviceAuthorization: server.endpoints.deviceAuthorization,
        },
        redirectUri: server.redirectUris.find((u) => u.startsWith('https:'))!,
        callback: { host: '127.0.0.1', port: 0, path: '/callback' },
      },
    },
  };
}

const SUCCESS = /^Logged in to myidp \(bucket (\S+)\); token expires in (59m|1h) \(\d{4}-\d\d-\d\d \d\d:\d\d UTC\)\n$/;

interface Running {
  child: ChildProcess;
  exit: Promise<RunResult>;
  /** Resolves with the first match of `re` in stderr so far or to come. */
  stderrMatch(re: RegExp): Promise<RegExpExecArray>;
}

function start(args: string[], env: NodeJS.ProcessEnv, { keepStdin = false } = {}): Running {
  const child = spawnCli(args, env);
  children.push(child);
  const exit = finished(child, 30_000);
  if (!keepStdin) child.stdin!.end();
  return { child, exit, stderrMatch: matcher(child.stderr!, exit) };
}

/** Waits for `re` in everything `stream` has said so far or will say before the process exits. */
function matcher(stream: NodeJS.ReadableStream, exit: Promise<RunResult>): (re: RegExp) => Promise<RegExpExecArray> {
  let text = '';
  stream.on('data', (d: Buffer | string) => (text += d.toString()));
  return (re) =>
    new Promise<RegExpExecArray>((resolve, reject) => {
      const check = (): boolean => {
        const m = re.exec(text);
        if (m) resolve(m);
        return m !== null;
      };
      if (check()) return;
      const onData = () => check() && stream.off('data', onData);
      stream.on('data', onData);
      void exit.then((r) => reject(new Error(`exited (${r.code}) before ${re} appeared: ${r.stdout}${r.stderr}`)));
    });
}

/** Runs the CLI on a pseudo-terminal (util-linux `script`): stdin, stdout and stderr are all the terminal. */
function startOnTty(args: string[], env: NodeJS.ProcessEnv): Running & { type(text: string): void } {
  const quoted = [process.execPath, CLI, ...args].map((a) => `'${a.replace(/'/g, `'\\''`)}'`).join(' ');
  const child = spawn('script', ['-qefc', quoted, '/dev/null'], { env: { ...env, TERM: 'xterm' }, stdio: ['pipe', 'pipe', 'pipe'] });
  children.push(child);
  const exit = finished(child, 30_000);
  return { child, exit, stderrMatch: matcher(child.stdout!, exit), type: (text) => child.stdin!.write(text) };
}

async function serve(extra: string[] = [], store = 'file'): Promise<{ socket: string; daemon: Running }> {
  const daemon = start(['serve', '--store', store, '--json', ...extra], box.env);
  const line = await new Promise<string>((resolve, reject) => {
    let buf = '';
    daemon.child.stdout!.on('data', (d: Buffer | string) => {
      buf += d.toString();
      if (buf.includes('\n')) resolve(buf.slice(0, buf.indexOf('\n')));
    });
    void daemon.exit.then((r) => reject(new Error(`serve exited early (${r.code}): ${r.stderr}`)));
  });
  return { socket: (JSON.parse(line) as { socket: string }).socket, daemon };
}

/** A sandboxed process: only the socket, and a home without a host store or config. */
function sandboxEnv(socket: string, extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  return { PATH: process.env.PATH, CREDPROXY_HOME: path.join(box.dir, 'sandbox-home'), CREDPROXY_SOCKET: socket, ...extra };
}

interface StatusJson {
  tokens: Array<{ provider: string; bucket: string; hasRefreshToken?: boolean; expiresInSeconds?: number }>;
}
async function hostStatus(): Promise<StatusJson> {
  const r = await runCli(['status', '--json', '--store', 'file'], { env: box.env });
  expect(r.code, r.stderr).toBe(0);
  return JSON.parse(r.stdout) as StatusJson;
}

/** No secret the server handed out may appear in what the login printed. */
function expectNoSecrets(result: RunResult): void {
  const out = result.stdout + result.stderr;
  for (const secret of [...idp.issued.refreshTokens, ...idp.issued.deviceCodes, ...idp.issued.accessTokens, ...idp.issued.authorizationCodes]) {
    expect(out).not.toContain(secret);
  }
}

const USER_CODE = /enter the code: (\S+)/;
const INDENTED_URL = /^ {2}(http\S+)$/m;

describe('login through the proxy', () => {
  it('device flow: user code on stderr, success line on stdout, FULL token stored on the host', async () => {
    const { socket } = await serve();
    const login = start(['login', 'myidp', '--flow', 'device'], sandboxEnv(socket));
    const [, userCode] = await login.stderrMatch(USER_CODE);
    await idp.approveDevice(userCode!);
    const result = await login.exit;
    expect(result.code, result.stderr).toBe(0);
    expect(result.stdout).toMatch(SUCCESS);
    expect(result.stdout).toContain('(bucket default)');
    expect(result.stderr).toContain(`${idp.endpoints.verification}`);
    expect(result.stderr).toContain('Waiting for authorization');
    expectNoSecrets(result);

    const stored = (await hostStatus()).tokens.find((t) => t.provider === 'myidp' && t.bucket === 'default');
    expect(stored).toMatchObject({ hasRefreshToken: true });
    // The daemon serves the token it stored: the last access token the server issued.
    const token = await runCli(['token', 'myidp'], { env: sandboxEnv(socket) });
    expect(token.stdout).toBe(`${idp.issued.accessTokens.at(-1)}\n`);
  });

  it('paste flow: the auth URL on stderr, the redirect URL on stdin; --bucket is honoured', async () => {
    const { socket } = await serve();
    const login = start(['login', 'myidp', '--flow', 'paste', '--bucket', 'work'], sandboxEnv(socket), { keepStdin: true });
    const [, authUrl] = await login.stderrMatch(INDENTED_URL);
    expect(authUrl!.startsWith(idp.endpoints.authorization)).toBe(true);
    await login.stderrMatch(/Paste the authorization code: /);
    const redirect = await idp.authorize(authUrl!);
    expect(redirect.searchParams.get('code')).toBeTruthy();
    login.child.stdin!.end(`${redirect.href}\n`);
    const result = await login.exit;
    expect(result.code, result.stderr).toBe(0);
    expect(result.stdout).toMatch(SUCCESS);
    expect(result.stdout).toContain('(bucket work)');
    expect(result.stderr).not.toContain(redirect.searchParams.get('code')!); // the pasted code is not echoed
    expectNoSecrets(result);
    expect((await hostStatus()).tokens.find((t) => t.provider === 'myidp' && t.bucket === 'work')).toMatchObject({ hasRefreshToken: true });
  });

  it('browser flow: the host captures the redirect on its loopback callback', async () => {
    const { socket } = await serve();
    const login = start(['login', 'myidp', '--flow', 'browser'], sandboxEnv(socket));
    const [, authUrl] = await login.stderrMatch(INDENTED_URL);
    const callback = await idp.authorizeAndFollow(authUrl!);
    expect(callback.status).toBeLessThan(400);
    const result = await login.exit;
    expect(result.code, result.stderr).toBe(0);
    expect(result.stdout).toMatch(SUCCESS);
    expectNoSecrets(result);
  });

  it('Ctrl-C cancels the session on the host and exits 130', async () => {
    const { socket } = await serve();
    const login = start(['login', 'myidp', '--flow', 'device'], sandboxEnv(socket));
    await login.stderrMatch(USER_CODE);
    login.child.kill('SIGINT');
    const result = await login.exit;
    expect(result.code).toBe(130);
    expect(result.stdout).toBe('');
    expect(result.stderr.trimEnd().split('\n').at(-1)).toBe('credproxy: login cancelled');
    await waitForAudit(path.join(box.env.CREDPROXY_HOME!, 'audit.log'), /"op":"oauth_cancel".*"outcome":"ok"/);
    expect((await hostStatus()).tokens).toEqual([]);
  });

  it('never opens a browser from the sandbox, even when one would be available', async () => {
    const { socket } = await serve();
    const opened = fakeBrowser();
    const login = start(['login', 'myidp', '--flow', 'device'], sandboxEnv(socket, opened.env));
    const [, userCode] = await login.stderrMatch(USER_CODE);
    await idp.approveDevice(userCode!);
    expect((await login.exit).code).toBe(0);
    expect(existsSync(opened.log)).toBe(false);
  });

  it('unknown provider and unsupported flow come back from the daemon as specific errors', async () => {
    const { socket } = await serve();
    const unknown = await runCli(['login', 'nosuch'], { env: sandboxEnv(socket) });
    expect(expectOneErrorLine(unknown)).toBe('credproxy: unknown provider nosuch: the credential proxy has no login configuration for it');
    const flow = await runCli(['login', 'anthropic', '--flow', 'device'], { env: sandboxEnv(socket) });
    expect(expectOneErrorLine(flow)).toMatch(/^credproxy: could not start the login: .*anthropic.*device/);
    const config = await runCli(['login', 'myidp', '--config', '/x.json'], { env: sandboxEnv(socket) });
    expect(expectOneErrorLine(config)).toBe('credproxy: --config applies to host logins; the credential proxy uses its own configuration');
  });
});

/** An `xdg-open` on PATH that records its argument, with DISPLAY set. */
function fakeBrowser(): { env: NodeJS.ProcessEnv; log: string } {
  const bin = path.join(box.dir, 'bin');
  mkdirSync(bin, { recursive: true });
  const log = path.join(box.dir, 'opened.txt');
  writeFileSync(path.join(bin, 'xdg-open'), `#!/bin/sh\nprintf '%s\\n' "$1" >> '${log}'\n`);
  chmodSync(path.join(bin, 'xdg-open'), 0o755);
  return { env: { DISPLAY: ':99', PATH: `${bin}${path.delimiter}${process.env.PATH}` }, log };
}

describe('login on the host', () => {
  it('device flow: stores the full token in the host store; opens the browser at the complete URL', async () => {
    const opened = fakeBrowser();
    const login = start(['login', 'myidp', '--flow', 'device', '--store', 'file'], { ...box.env, ...opened.env });
    const [, userCode] = await login.stderrMatch(USER_CODE);
    await idp.approveDevice(userCode!);
    const result = await login.exit;
    expect(result.code, result.stderr).toBe(0);
    expect(result.stdout).toMatch(SUCCESS);
    expectNoSecrets(result);
    expect((await hostStatus()).tokens.find((t) => t.provider === 'myidp')).toMatchObject({ bucket: 'default', hasRefreshToken: true });
    const token = await runCli(['token', 'myidp', '--store', 'file'], { env: box.env });
    expect(token.stdout).toBe(`${idp.issued.accessTokens.at(-1)}\n`);
    await waitFor(() => existsSync(opened.log));
    // verification_uri_complete: the page with the user code filled in, as printed on stderr.
    const url = readFileSync(opened.log, 'utf8').trim();
    expect(url.startsWith(idp.endpoints.verification)).toBe(true);
    expect(new URL(url).searchParams.get('user_code')).toBe(userCode);
    expect(result.stderr).toContain(`  ${url}\n`);
    expect(result.stderr).toContain('(Opening it in your browser.)');
  });

  it('--no-browser keeps the browser closed; the URL is still printed', async () => {
    const opened = fakeBrowser();
    const login = start(['login', 'myidp', '--flow', 'device', '--store', 'file', '--no-browser'], { ...box.env, ...opened.env });
    const [, userCode] = await login.stderrMatch(USER_CODE);
    await idp.denyDevice(userCode!);
    const result = await login.exit;
    expect(result.stderr).toContain(idp.endpoints.verification);
    expect(existsSync(opened.log)).toBe(false);
  });

  it('a denied device login fails with the specific message', async () => {
    const login = start(['login', 'myidp', '--flow', 'device', '--store', 'file'], box.env);
    const [, userCode] = await login.stderrMatch(USER_CODE);
    await idp.denyDevice(userCode!);
    const result = await login.exit;
    expect(result.code).toBe(1);
    expect(result.stdout).toBe('');
    expect(result.stderr.trimEnd().split('\n').at(-1)).toBe('credproxy: authorization denied');
    expect((await hostStatus()).tokens).toEqual([]);
  });

  it('paste flow with CODE#STATE on stdin (blank lines skipped)', async () => {
    const login = start(['login', 'myidp', '--flow', 'paste', '--store', 'file'], box.env, { keepStdin: true });
    const [, authUrl] = await login.stderrMatch(INDENTED_URL);
    const redirect = await idp.authorize(authUrl!);
    const pasted = `${redirect.searchParams.get('code')}#${redirect.searchParams.get('state')}`;
    login.child.stdin!.end(`\n${pasted}\n`); // a blank line first is skipped
    const result = await login.exit;
    expect(result.code, result.stderr).toBe(0);
    expect(result.stdout).toMatch(SUCCESS);
    expectNoSecrets(result);
  });

  it('a paste whose state does not belong to the login is refused', async () => {
    const login = start(['login', 'myidp', '--flow', 'paste', '--store', 'file'], box.env, { keepStdin: true });
    const [, authUrl] = await login.stderrMatch(INDENTED_URL);
    const redirect = await idp.authorize(authUrl!);
    login.child.stdin!.end(`${redirect.searchParams.get('code')}#not-the-state\n`);
    const result = await login.exit;
    expect(result.code).toBe(1);
    expect(result.stderr.trimEnd().split('\n').at(-1)).toMatch(/^credproxy: the authorization code was not accepted \(.*state.*\); run login again$/i);
  });

  it('no code on stdin: a clear error, and no token', async () => {
    const login = start(['login', 'myidp', '--flow', 'paste', '--store', 'file'], box.env);
    const result = await login.exit;
    expect(result.code).toBe(1);
    expect(result.stderr.trimEnd().split('\n').at(-1)).toBe('credproxy: no authorization code on stdin; pipe it in or run login on a terminal');
  });

  it('bad input: unknown provider, invalid --flow, unsupported flow, missing --config file', async () => {
    const unknown = await runCli(['login', 'nosuch', '--store', 'file'], { env: box.env });
    expect(expectOneErrorLine(unknown)).toBe('credproxy: unknown provider nosuch; "credproxy providers" lists the configured ones');
    const invalid = await runCli(['login', 'myidp', '--flow', 'carrier-pigeon'], { env: box.env });
    expect(expectOneErrorLine(invalid)).toBe("credproxy: option '--flow <flow>' argument 'carrier-pigeon' is invalid. Use device, paste or browser.");
    const unsupported = await runCli(['login', 'anthropic', '--flow', 'device', '--store', 'file'], { env: box.env });
    expect(expectOneErrorLine(unsupported)).toBe('credproxy: anthropic does not support the device flow; use --flow paste');
    const badName = await runCli(['login', 'bad/name'], { env: box.env });
    expect(expectOneErrorLine(badName)).toMatch(/^credproxy: .*provider/);
    const missing = await runCli(['login', 'myidp', '--config', path.join(box.dir, 'nope.json')], { env: box.env });
    expect(expectOneErrorLine(missing)).toBe(`credproxy: Config file ${path.join(box.dir, 'nope.json')} does not exist`);
    const memory = await runCli(['login', 'myidp', '--store', 'memory'], { env: box.env });
    expect(expectOneErrorLine(memory)).toMatch(/^credproxy: --store memory only makes sense with serve/);
  });
});

describe('login on the host with a daemon running', () => {
  it('goes through the discovered daemon: its store gets the token, the host store none; the browser may open', async () => {
    // A memory-store daemon on the sandbox's default socket, reading DATA_DIR's provider config.
    await serve([], 'memory');
    const opened = fakeBrowser();
    const login = start(['login', 'myidp', '--flow', 'device', '--store', 'file'], { ...box.env, ...opened.env });
    const [, userCode] = await login.stderrMatch(USER_CODE);
    await idp.approveDevice(userCode!);
    const result = await login.exit;
    expect(result.code, result.stderr).toBe(0);
    expect(result.stdout).toMatch(SUCCESS);
    expectNoSecrets(result);
    await waitForAudit(path.join(box.env.CREDPROXY_HOME!, 'audit.log'), /"op":"oauth_initiate".*"outcome":"ok"/);
    // The host store got nothing; the daemon serves the token it stored.
    expect((await hostStatus()).tokens).toEqual([]);
    const token = await runCli(['token', 'myidp'], { env: box.env });
    expect(token.stdout).toBe(`${idp.issued.accessTokens.at(-1)}\n`);
    // Unlike from a sandbox, the host's own login may open the browser.
    await waitFor(() => existsSync(opened.log));
    expect(readFileSync(opened.log, 'utf8').trim().startsWith(idp.endpoints.verification)).toBe(true);
  });

  it('--config is refused with the way out; --no-daemon logs in here, into the host store', async () => {
    const { daemon } = await serve([], 'memory');
    const config = await runCli(['login', 'myidp', '--config', path.join(box.env.CREDPROXY_HOME!, 'config.json')], { env: box.env });
    expect(expectOneErrorLine(config)).toBe(
      `credproxy: --config applies to logins run here; the running daemon (pid ${daemon.child.pid}) uses its own configuration (add --no-daemon to log in here)`,
    );
    const login = start(['login', 'myidp', '--flow', 'device', '--store', 'file', '--no-daemon', '--no-browser'], box.env);
    const [, userCode] = await login.stderrMatch(USER_CODE);
    await idp.approveDevice(userCode!);
    const result = await login.exit;
    expect(result.code, result.stderr).toBe(0);
    expect((await hostStatus()).tokens.find((t) => t.provider === 'myidp')).toMatchObject({ bucket: 'default', hasRefreshToken: true });
  });
});

describe('login on a terminal', () => {
  it('device flow: a QR code of the complete URL and a spinner while waiting', async () => {
    const login = startOnTty(['login', 'myidp', '--flow', 'device', '--store', 'file', '--no-browser'], box.env);
    const [, userCode] = await login.stderrMatch(/enter the code: (\S+)/);
    await login.stderrMatch(/[⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏] Waiting for authorization \(Ctrl-C to cancel\)/);
    await idp.approveDevice(userCode!.trim());
    const result = await login.exit;
    expect(result.code, result.stdout).toBe(0);
    expect(result.stdout).toContain('scan the QR code');
    // The QR code encodes the link that fills in the code.
    const complete = /^ {2}(http\S+user_code=\S+?)\r?$/m.exec(result.stdout)![1]!;
    for (const row of renderUnicodeCompact(complete, { border: 2 }).split('\n')) expect(result.stdout).toContain(row);
    expect(result.stdout).toMatch(/Logged in to myidp \(bucket default\); token expires in/);
    expectNoSecrets(result);
  });

  it('paste flow: the pasted code is not echoed; Ctrl-C at the prompt cancels with 130', async () => {
    const login = startOnTty(['login', 'myidp', '--flow', 'paste', '--store', 'file', '--no-browser'], box.env);
    const [, authUrl] = await login.stderrMatch(/^ {2}(http\S+)\r?$/m);
    await login.stderrMatch(/Paste the authorization code: /);
    const redirect = await idp.authorize(authUrl!);
    login.type(`${redirect.href}\r`);
    const result = await login.exit;
    expect(result.code, result.stdout).toBe(0);
    expect(result.stdout).toContain('Paste the authorization code: (received)');
    expect(result.stdout).not.toContain(redirect.searchParams.get('code')!);
    expectNoSecrets(result);

    const again = startOnTty(['login', 'myidp', '--flow', 'paste', '--store', 'file', '--no-browser'], box.env);
    await again.stderrMatch(/Paste the authorization code: /);
    again.type('\x03'); // Ctrl-C in raw mode: no SIGINT, readline reports it
    const cancelled = await again.exit;
    expect(cancelled.code).toBe(130);
    expect(cancelled.stdout).toContain('credproxy: login cancelled');
  });
});

async function waitFor(condition: () => boolean, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 25));
  }
}
