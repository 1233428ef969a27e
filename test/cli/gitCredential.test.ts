/**
 * `credproxy git-credential` against a real daemon, run by real git (`git credential fill`,
 * `approve`, `reject`) and directly, as git runs it, through the built CLI.
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { hashCapability, newCapability } from '../../src/auth/capability.js';
import { parsePolicy } from '../../src/auth/policy.js';
import { sampleToken, startTestDaemon, type TestDaemon } from '../helpers/daemon.js';
import { CLI, expectOneErrorLine, finished, runCli, type RunResult, useProxySandbox } from './cliHarness.js';

const EXPIRY = Math.floor(Date.now() / 1000) + 3600;
const GITHUB = 'protocol=https\nhost=github.com\n\n';

const fx = useProxySandbox({ expiry: EXPIRY });

const helper = (operation: string, input: string, extra: string[] = [], env: NodeJS.ProcessEnv = fx.box.env): Promise<RunResult> =>
  runCli(['git-credential', ...extra, operation], { env, input });

/** Real git with nothing of the developer's configuration: no system or global config, no prompts. */
function git(args: string[], input: string, helperArgs = ''): Promise<RunResult> {
  const helperCommand = `!'${process.execPath}' '${CLI}' git-credential${helperArgs ? ` ${helperArgs}` : ''}`;
  const env: NodeJS.ProcessEnv = { ...fx.box.env, GIT_CONFIG_NOSYSTEM: '1', GIT_TERMINAL_PROMPT: '0', HOME: fx.box.dir, XDG_CONFIG_HOME: path.join(fx.box.dir, 'xdg') };
  const child = spawn('git', ['-c', `credential.helper=${helperCommand}`, 'credential', ...args], { env, stdio: ['pipe', 'pipe', 'pipe'] });
  const done = finished(child);
  child.stdin.end(input);
  return done;
}

function attributes(output: string): Record<string, string> {
  return Object.fromEntries(
    output
      .split('\n')
      .filter((line) => line.includes('='))
      .map((line) => [line.slice(0, line.indexOf('=')), line.slice(line.indexOf('=') + 1)]),
  );
}

describe('git credential fill', () => {
  it('gets the access token from the daemon with username x-access-token', async () => {
    const r = await git(['fill'], GITHUB);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(attributes(r.stdout)).toEqual({ protocol: 'https', host: 'github.com', username: 'x-access-token', password: fx.token });
  });

  it('a host the helper does not serve gets nothing from it: git fails without a token and without prompting', async () => {
    const r = await git(['fill'], 'protocol=https\nhost=example.com\n\n');
    expect(r.code).not.toBe(0);
    expect(r.stdout).not.toContain(fx.token);
    expect(r.stderr).not.toContain(fx.token);
    expect(r.stderr).toContain('terminal prompts disabled');
    expect(r.stderr).not.toContain('credproxy:');
  });

  it('answers for the --host it is configured with', async () => {
    const r = await git(['fill'], 'protocol=https\nhost=git.corp.example\n\n', '--host git.corp.example');
    expect(r.code, r.stderr).toBe(0);
    expect(attributes(r.stdout)).toMatchObject({ username: 'x-access-token', password: fx.token });
  });
});

describe('get, run directly', () => {
  it('prints username, password and the expiry, one attribute per line', async () => {
    const r = await helper('get', GITHUB);
    expect(r).toMatchObject({ code: 0, stderr: '' });
    expect(r.stdout).toBe(`username=x-access-token\npassword=${fx.token}\npassword_expiry_utc=${EXPIRY}\n`);
  });

  it('reads only up to the blank line and takes url= for its parts', async () => {
    const r = await helper('get', `url=https://github.com/o/r.git\n\nprotocol=http\n`);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain(`password=${fx.token}\n`);
  });

  it('prints nothing and exits 0 for other protocols and hosts, without contacting the daemon', async () => {
    // A socket that does not exist: any attempt to connect would be an error.
    const env = { ...fx.box.env, CREDPROXY_SOCKET: path.join(fx.box.dir, 'no-daemon.sock') };
    const inputs = [
      'protocol=http\nhost=github.com\n\n',
      'protocol=ssh\nhost=github.com\n\n',
      'protocol=https\nhost=example.com\n\n',
      'protocol=https\nhost=gist.github.com\n\n',
      'protocol=https\nhost=github.com.evil.example\n\n',
      'protocol=https\nhost=github.com:8443\n\n',
      'host=github.com\n\n',
      'protocol=https\n\n',
      '',
    ];
    for (const input of inputs) {
      expect(await helper('get', input, [], env), input).toMatchObject({ code: 0, stdout: '', stderr: '' });
    }
    // The same socket with a matching host is tried, so the silence above is the host check.
    expect(expectOneErrorLine(await helper('get', GITHUB, [], env))).toContain('Cannot connect to the credential proxy');
  });

  it('matches the host case-insensitively', async () => {
    expect((await helper('get', 'protocol=https\nhost=GitHub.COM\n\n')).stdout).toContain(`password=${fx.token}\n`);
  });

  it('--host replaces the default host, --provider/--bucket pick the token, --username the name', async () => {
    const other = `tok-${randomBytes(8).toString('hex')}`;
    await fx.daemon.store.saveToken('forge', 'work', sampleToken({ access_token: other, expiry: EXPIRY }));
    const args = ['--provider', 'forge', '--bucket', 'work', '--host', 'forge.example:8443', '--username', 'oauth2'];
    const r = await helper('get', 'protocol=https\nhost=forge.example:8443\n\n', args);
    expect(r.code, r.stderr).toBe(0);
    expect(attributes(r.stdout)).toMatchObject({ username: 'oauth2', password: other });
    expect(await helper('get', GITHUB, args)).toMatchObject({ code: 0, stdout: '' });
  });

  it('ignores operations it does not know, as gitcredentials(7) asks', async () => {
    expect(await helper('capability', GITHUB)).toMatchObject({ code: 0, stdout: '', stderr: '' });
  });
});

describe('store and erase', () => {
  it('leave the token on the host unchanged, whether git or a caller sends them', async () => {
    const before = await fx.daemon.store.getToken('github', 'default');
    const description = `protocol=https\nhost=github.com\nusername=x-access-token\npassword=${fx.token}\n\n`;
    expect(await git(['approve'], description)).toMatchObject({ code: 0, stderr: '' });
    expect(await git(['reject'], description)).toMatchObject({ code: 0, stderr: '' });
    const planted = 'protocol=https\nhost=github.com\nusername=x-access-token\npassword=planted-by-the-sandbox\n\n';
    expect(await helper('store', planted)).toEqual({ code: 0, signal: null, stdout: '', stderr: '' });
    expect(await helper('erase', planted)).toEqual({ code: 0, signal: null, stdout: '', stderr: '' });
    expect(await fx.daemon.store.getToken('github', 'default')).toEqual(before);
    // And the helper still serves it.
    expect((await helper('get', GITHUB)).stdout).toContain(`password=${fx.token}\n`);
  });

  it('need no daemon at all', async () => {
    const env = { ...fx.box.env };
    delete env.CREDPROXY_SOCKET;
    expect(await helper('store', GITHUB, [], env)).toMatchObject({ code: 0, stdout: '', stderr: '' });
    expect(await helper('erase', GITHUB, [], env)).toMatchObject({ code: 0, stdout: '', stderr: '' });
  });
});

describe('errors: one line on stderr, non-zero exit, never the token', () => {
  it('no socket in the environment', async () => {
    const env = { ...fx.box.env };
    delete env.CREDPROXY_SOCKET;
    const r = await helper('get', GITHUB, [], env);
    expect(expectOneErrorLine(r)).toBe(
      'credproxy: git-credential gets credentials from the credproxy daemon: set CREDPROXY_SOCKET (or LLXPRT_CREDENTIAL_SOCKET) to its socket',
    );
    expect(r.stdout).toBe('');
  });

  it('LLXPRT_CREDENTIAL_SOCKET is read too', async () => {
    const env: NodeJS.ProcessEnv = { ...fx.box.env, LLXPRT_CREDENTIAL_SOCKET: fx.daemon.socketPath };
    delete env.CREDPROXY_SOCKET;
    expect((await helper('get', GITHUB, [], env)).stdout).toContain(`password=${fx.token}\n`);
  });

  it('no token stored for the bucket', async () => {
    const r = await helper('get', GITHUB, ['--bucket', 'other']);
    expect(expectOneErrorLine(r)).toBe('credproxy: No token for github/other');
    expect(r.stdout).toBe('');
  });

  it('a provider without a default git host needs --host', async () => {
    expect(expectOneErrorLine(await helper('get', GITHUB, ['--provider', 'anthropic']))).toBe('credproxy: Provider anthropic has no default git host; pass --host HOST');
  });

  it('a token with a line break is refused rather than letting it add attributes', async () => {
    await fx.daemon.store.saveToken('github', 'nl', sampleToken({ access_token: 'first-line\nusername=planted', expiry: EXPIRY }));
    const r = await helper('get', GITHUB, ['--bucket', 'nl']);
    expect(expectOneErrorLine(r)).toBe('credproxy: The password for git contains a line break or NUL byte; refusing to pass it on');
    expect(r.stdout).toBe('');
    expect(r.stderr).not.toContain('first-line');
  });

  it('bad names and hosts', async () => {
    expect(expectOneErrorLine(await helper('get', GITHUB, ['--provider', 'a/b']))).toBe('credproxy: Invalid provider name "a/b": must match ^[A-Za-z0-9._@-]{1,64}$');
    expect(expectOneErrorLine(await helper('get', GITHUB, ['--host', 'https://github.com/']))).toContain('credproxy: Invalid --host');
  });
});

describe('grants', () => {
  let restricted: TestDaemon;
  const capability = newCapability();

  beforeAll(async () => {
    const policy = parsePolicy(
      JSON.stringify({
        default: { providers: { anthropic: '*' }, keys: [], ops: ['read'] },
        capabilities: [{ id: 'git-box', tokenSha256: hashCapability(capability).toString('hex'), providers: { github: ['default'] }, keys: [], ops: ['read'] }],
      }),
    );
    restricted = await startTestDaemon({ policy });
  });
  afterAll(() => restricted.stop());
  beforeEach(() => restricted.store.saveToken('github', 'default', sampleToken({ access_token: fx.token, expiry: EXPIRY })));

  it('a provider outside the grant: the daemon UNAUTHORIZED message, non-zero, no token', async () => {
    const r = await helper('get', GITHUB, [], { ...fx.box.env, CREDPROXY_SOCKET: restricted.socketPath });
    expect(expectOneErrorLine(r)).toBe('credproxy: Provider github is not allowed for this connection (UNAUTHORIZED)');
    expect(r.stdout).toBe('');
  });

  it('a capability on CREDPROXY_CAPABILITY_FD grants it', async () => {
    const env = { ...fx.box.env, CREDPROXY_SOCKET: restricted.socketPath, CREDPROXY_CAPABILITY_FD: '3' };
    const child = spawn(process.execPath, [CLI, 'git-credential', 'get'], { env, stdio: ['pipe', 'pipe', 'pipe', 'pipe'] });
    const done = finished(child);
    (child.stdio[3] as NodeJS.WritableStream).end(`${capability}\n`);
    child.stdin!.end(GITHUB);
    const r = await done;
    expect(r.stderr).toBe('');
    expect(r.stdout).toContain(`password=${fx.token}\n`);
    expect(r.stdout).not.toContain(capability);
  });
});
