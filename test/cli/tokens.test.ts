/** import / token / status / logout against the real CLI and a real file store. */
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { makeSandbox, runCli, type RunResult, type Sandbox } from './cliHarness.js';

let box: Sandbox;
beforeEach(() => (box = makeSandbox()));
afterEach(() => box.cleanup());

const secret = (prefix: string): string => `${prefix}-${randomBytes(12).toString('hex')}`;
const nowSec = (): number => Math.floor(Date.now() / 1000);
const cli = (args: string[], input?: string): Promise<RunResult> => runCli([...args, '--store', 'file'], { env: box.env, input });

function expectNoSecret(result: RunResult, ...secrets: string[]): void {
  for (const s of secrets) {
    expect(result.stdout).not.toContain(s);
    expect(result.stderr).not.toContain(s);
  }
}

describe('import from stdin, then token and status', () => {
  it('stores the full token, prints the access token only on `token`, and status never shows a secret', async () => {
    const access = secret('at');
    const refresh = secret('rt');
    const expiry = nowSec() + 3600;
    const json = JSON.stringify({ access_token: access, refresh_token: refresh, expiry, token_type: 'bearer', scope: 'a b' });

    const imported = await cli(['import', 'anthropic'], json);
    expect(imported.code, imported.stderr).toBe(0);
    expect(imported.stdout).toMatch(/^Imported token for anthropic\/default \(expires in (59m|1h); refresh token stored\)\n$/);
    expectNoSecret(imported, access, refresh);

    const token = await cli(['token', 'anthropic']);
    expect(token.code, token.stderr).toBe(0);
    expect(token.stdout).toBe(`${access}\n`);
    expectNoSecret({ ...token, stdout: '' }, access, refresh);
    expect(token.stdout).not.toContain(refresh);

    const status = await cli(['status']);
    expect(status.code, status.stderr).toBe(0);
    expect(status.stdout).toMatch(/^Store: file /);
    expect(status.stdout).toMatch(/ {2}anthropic\/default {2}expires in (59m|1h) {2}refresh token: yes\n/);
    expectNoSecret(status, access, refresh);

    const json2 = await cli(['status', '--json']);
    expect(json2.code, json2.stderr).toBe(0);
    expectNoSecret(json2, access, refresh);
    const report = JSON.parse(json2.stdout) as { store: { backend: string }; tokens: unknown[]; keys: string[] };
    expect(report.store.backend).toBe('file');
    expect(report.tokens).toEqual([
      { provider: 'anthropic', bucket: 'default', expiry, expiresInSeconds: expect.any(Number), expired: false, hasRefreshToken: true, needsLogin: false },
    ]);
    expect(report.keys).toEqual([]);
  });

  it('the global --store option also works before the command', async () => {
    const access = secret('at');
    const put = await runCli(['--store', 'file', 'import', 'p1'], { env: box.env, input: JSON.stringify({ access_token: access, expiry: nowSec() + 600 }) });
    expect(put.code, put.stderr).toBe(0);
    const got = await runCli(['--store', 'file', 'token', 'p1'], { env: box.env });
    expect(got.stdout).toBe(`${access}\n`);
  });
});

describe('import --file and expiry forms', () => {
  async function storedExpiry(provider: string, bucket: string): Promise<number> {
    const r = await cli(['status', '--json']);
    const report = JSON.parse(r.stdout) as { tokens: { provider: string; bucket: string; expiry: number }[] };
    const t = report.tokens.find((x) => x.provider === provider && x.bucket === bucket);
    if (!t) throw new Error(`no ${provider}/${bucket} in status: ${r.stdout}`);
    return t.expiry;
  }

  it('reads --file into the given bucket and converts expires_in to an absolute expiry', async () => {
    const file = path.join(box.dir, 'tok.json');
    const access = secret('at');
    writeFileSync(file, JSON.stringify({ access_token: access, expires_in: 7200 }));
    const before = nowSec();
    const r = await cli(['import', 'gemini', '--bucket', 'work', '--file', file]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain('Imported token for gemini/work (expires in 2h; no refresh token)');
    const expiry = await storedExpiry('gemini', 'work');
    expect(expiry).toBeGreaterThanOrEqual(before + 7200);
    expect(expiry).toBeLessThanOrEqual(nowSec() + 7200);
    expect((await cli(['token', 'gemini', '--bucket', 'work'])).stdout).toBe(`${access}\n`);
    // Another bucket of the same provider is a different slot.
    expect((await cli(['token', 'gemini'])).stderr).toBe('credproxy: No token for gemini/default\n');
  });

  it('takes an expiry of 1e11 or more as milliseconds', async () => {
    const ms = Date.now() + 3_600_500;
    expect((await cli(['import', 'qwen'], JSON.stringify({ access_token: 'x', expiry: ms }))).code).toBe(0);
    expect(await storedExpiry('qwen', 'default')).toBe(Math.floor(ms / 1000));
  });

  it('replaces the stored token instead of merging: a re-import without refresh token drops the old one', async () => {
    await cli(['import', 'codex'], JSON.stringify({ access_token: 'a1', refresh_token: secret('rt'), expiry: nowSec() + 999 }));
    await cli(['import', 'codex'], JSON.stringify({ access_token: 'a2', expiry: nowSec() + 999 }));
    const report = JSON.parse((await cli(['status', '--json'])).stdout) as { tokens: { hasRefreshToken: boolean }[] };
    expect(report.tokens).toHaveLength(1);
    expect(report.tokens[0]!.hasRefreshToken).toBe(false);
    expect((await cli(['token', 'codex'])).stdout).toBe('a2\n');
  });
});

describe('expired tokens', () => {
  it('status flags them; token refuses to print an expired token from the host store', async () => {
    const access = secret('at');
    const imported = await cli(['import', 'old'], JSON.stringify({ access_token: access, expiry: nowSec() - 3 * 3600 - 60 }));
    expect(imported.code).toBe(0);
    expect(imported.stderr).toContain('expired and cannot be refreshed');

    const status = await cli(['status']);
    expect(status.stdout).toMatch(/old\/default {2}EXPIRED 3h 1m ago {2}refresh token: no/);
    expect(status.stdout).toContain('Warnings:\n  - old/default is expired and has no refresh token');
    expectNoSecret(status, access);

    const token = await cli(['token', 'old']);
    expect(token.code).toBe(1);
    expect(token.stdout).toBe('');
    expect(token.stderr).toMatch(/^credproxy: Token for old\/default EXPIRED 3h 1m ago; .*\n$/);
  });
});

describe('logout', () => {
  it('removes the token; a second logout and a token lookup then report it missing', async () => {
    await cli(['import', 'anthropic', '--bucket', 'b1'], JSON.stringify({ access_token: 'x', expiry: nowSec() + 999 }));
    const out = await cli(['logout', 'anthropic', '--bucket', 'b1']);
    expect(out.code, out.stderr).toBe(0);
    expect(out.stdout).toBe('Logged out of anthropic/b1\n');
    const again = await cli(['logout', 'anthropic', '--bucket', 'b1']);
    expect(again.code).toBe(1);
    expect(again.stderr).toBe('credproxy: No token for anthropic/b1\n');
    expect((await cli(['token', 'anthropic', '--bucket', 'b1'])).stderr).toBe('credproxy: No token for anthropic/b1\n');
    expect((await cli(['status'])).stdout).toContain('Tokens:\n  (none)\n');
  });
});

describe('status warnings about the file store key', () => {
  it('warns when CREDPROXY_PASSPHRASE is unset, and not when it is set', async () => {
    const withPass = await cli(['status']);
    expect(withPass.code, withPass.stderr).toBe(0);
    expect(withPass.stdout).not.toContain('Warnings:');
    expect(withPass.stdout).not.toContain('CREDPROXY_PASSPHRASE is unset');
    // A separate home: a store created with a passphrase is not meant to open without it.
    const other = makeSandbox();
    try {
      delete other.env.CREDPROXY_PASSPHRASE;
      const without = await runCli(['status', '--store', 'file'], { env: other.env });
      expect(without.code, without.stderr).toBe(0);
      expect(without.stdout).toContain(`Warnings:\n  - CREDPROXY_PASSPHRASE is unset: the file store's encryption key sits beside it in ${other.env.CREDPROXY_HOME}`);
    } finally {
      other.cleanup();
    }
  });
});
