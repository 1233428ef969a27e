/** Bad input: every case exits non-zero with one specific `credproxy: …` line and no stack trace. */
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { expectOneErrorLine, makeSandbox, runCli, runCliWithTtyStdin, type Sandbox } from './cliHarness.js';

let box: Sandbox;
beforeEach(() => (box = makeSandbox()));
afterEach(() => box.cleanup());

const fail = async (args: string[], input?: string): Promise<string> => expectOneErrorLine(await runCli(args, { env: box.env, input }));

describe('names', () => {
  it('rejects a bad provider name with the validator message, for every provider command', async () => {
    const msg = 'credproxy: Invalid provider name "bad/name": must match ^[A-Za-z0-9._@-]{1,64}$';
    expect(await fail(['token', 'bad/name', '--store', 'file'])).toBe(msg);
    expect(await fail(['logout', 'bad/name', '--store', 'file'])).toBe(msg);
    expect(await fail(['import', 'bad/name', '--store', 'file'], '{"access_token":"a","expiry":1}')).toBe(msg);
  });

  it('rejects a bad bucket name', async () => {
    expect(await fail(['token', 'anthropic', '--bucket', 'a b', '--store', 'file'])).toBe(
      'credproxy: Invalid bucket name "a b": must match ^[A-Za-z0-9._@-]{1,64}$',
    );
  });
});

describe('import input', () => {
  it('empty stdin', async () => {
    expect(await fail(['import', 'anthropic', '--store', 'file'], '')).toBe('credproxy: No token JSON on stdin; pipe it in or use --file FILE');
    expect(await fail(['import', 'anthropic', '--store', 'file'], '  \n')).toBe('credproxy: No token JSON on stdin; pipe it in or use --file FILE');
  });

  it('stdin is a terminal', async () => {
    const r = await runCliWithTtyStdin(['import', 'anthropic', '--store', 'file'], box.env);
    expect(r.code).not.toBe(0);
    // `script` merges the child's stdout and stderr into the terminal, with CRLF line ends.
    expect(r.stdout.replace(/\r/g, '')).toBe('credproxy: No token JSON on stdin; pipe it in or use --file FILE\n');
  });

  it('unreadable --file', async () => {
    const missing = path.join(box.dir, 'nope.json');
    expect(await fail(['import', 'anthropic', '--store', 'file', '--file', missing])).toBe(`credproxy: Cannot read token file ${missing}: ENOENT`);
    expect(await fail(['import', 'anthropic', '--store', 'file', '--file', box.dir])).toBe(`credproxy: Cannot read token file ${box.dir}: EISDIR`);
  });

  it('invalid JSON, without quoting the input', async () => {
    const line = await fail(['import', 'anthropic', '--store', 'file'], '{"access_token": "sekrit-value" oops');
    expect(line).toBe('credproxy: Token input is not valid JSON');
  });

  it('missing or mistyped fields are named', async () => {
    const f = (json: unknown): Promise<string> => fail(['import', 'anthropic', '--store', 'file'], JSON.stringify(json));
    expect(await f([1])).toBe('credproxy: Token JSON must be an object');
    expect(await f({ expiry: 2e9 })).toBe('credproxy: Token JSON needs a non-empty string "access_token"');
    expect(await f({ access_token: 'a' })).toBe('credproxy: Token JSON needs "expiry" (epoch seconds or milliseconds) or "expires_in" (seconds)');
    expect(await f({ access_token: 'a', expiry: '2000000000' })).toContain('"expiry" must be a positive number');
    expect(await f({ access_token: 'a', expires_in: -5 })).toContain('"expires_in" must be a non-negative number');
    expect(await f({ access_token: 'a', expiry: 2e9, refresh_token: 42 })).toBe('credproxy: Token JSON field "refresh_token" must be a string');
    expect(await f({ access_token: 'a', expiry: 2e9, scope: ['x'] })).toBe('credproxy: Token JSON field "scope" must be a string');
  });
});

describe('options', () => {
  it('unknown --store value lists the choices', async () => {
    expect(await fail(['status', '--store', 'floppy'])).toBe(
      "credproxy: option '--store <backend>' argument 'floppy' is invalid. Allowed choices are auto, keyring, file, memory, postgres, or a postgres:// URL.",
    );
  });

  it('--store memory is refused for one-shot commands', async () => {
    const msg = 'credproxy: --store memory only makes sense with serve: a one-shot command would start empty and forget everything at exit';
    expect(await fail(['keys', 'set', 'openai', '--store', 'memory'], 'v')).toBe(msg);
    expect(await fail(['status', '--store', 'memory'])).toBe(msg);
  });

  it('unknown command', async () => {
    expect(await fail(['tokn'])).toMatch(/^credproxy: unknown command 'tokn'/);
  });

  it('bad --tcp: not loopback, a host name, no port, bad port', async () => {
    expect(await fail(['serve', '--store', 'memory', '--tcp', '0.0.0.0:8080'])).toContain('TCP address 0.0.0.0 is not loopback');
    expect(await fail(['serve', '--store', 'memory', '--tcp', 'localhost:8080'])).toContain('TCP address localhost is not loopback');
    expect(await fail(['serve', '--store', 'memory', '--tcp', '127.0.0.1'])).toContain('expected 127.0.0.1:PORT or [::1]:PORT');
    expect(await fail(['serve', '--store', 'memory', '--tcp', '127.0.0.1:70000'])).toContain('Invalid TCP port 70000');
  });

  it('bad --allow-uid', async () => {
    for (const uid of ['abc', '-1', '1.5', '4294967295']) {
      expect(await fail(['serve', '--store', 'memory', '--allow-uid', '0', '--allow-uid', uid])).toBe(
        `credproxy: option '--allow-uid <uid>' argument '${uid}' is invalid. UID must be a whole number from 0 to 4294967294`,
      );
    }
  });
});

describe('serve start-up failures', () => {
  it('unreadable policy file', async () => {
    const policy = path.join(box.dir, 'missing-policy.json');
    expect(await fail(['serve', '--store', 'memory', '--policy', policy])).toBe(`credproxy: Cannot read policy file ${policy}: ENOENT`);
  });

  it('invalid policy file names the problem', async () => {
    const policy = path.join(box.dir, 'policy.json');
    writeFileSync(policy, '{"default": {"ops": ["fly"]}}');
    expect(await fail(['serve', '--store', 'memory', '--policy', policy])).toMatch(new RegExp(`^credproxy: Policy file ${policy}: .*ops`));
  });

  it('socket path too long (reported by the daemon)', async () => {
    const long = path.join(box.dir, `${'s'.repeat(120)}.sock`);
    expect(await fail(['serve', '--store', 'memory', '--socket', long])).toMatch(/^credproxy: Socket path too long \(\d+ bytes; it must be under 100\)/);
  });

  it('socket directory missing', async () => {
    const sock = path.join(box.dir, 'no-such-dir', 'd.sock');
    expect(await fail(['serve', '--store', 'memory', '--socket', sock])).toBe(`credproxy: Socket directory ${path.dirname(sock)} does not exist`);
  });
});
