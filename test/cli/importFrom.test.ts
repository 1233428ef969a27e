/**
 * `credproxy import --from TOOL` against the real CLI and a real file store. Each tool's login file
 * is a fixture written here in that tool's format (never a real user's file), at its default place
 * under the sandbox HOME or wherever --path says.
 */
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { OBTAINED_AT_FIELD, WRITE_BACK_FIELD } from '../../src/oauth/token.js';
import { FileStore } from '../../src/store/fileStore.js';
import type { StoredToken } from '../../src/store/types.js';
import { expectOneErrorLine, makeSandbox, runCli, type RunResult, type Sandbox } from './cliHarness.js';

let box: Sandbox;
beforeEach(() => (box = makeSandbox()));
afterEach(() => box.cleanup());

const secret = (prefix: string): string => `${prefix}-${randomBytes(12).toString('hex')}`;
const nowSec = (): number => Math.floor(Date.now() / 1000);
const cli = (args: string[], env: NodeJS.ProcessEnv = box.env): Promise<RunResult> => runCli([...args, '--store', 'file'], { env });

/** An unsigned JWT with `claims` (Codex's readers, and credproxy's, only decode it). */
function jwt(claims: Record<string, unknown>): string {
  const part = (v: unknown) => Buffer.from(JSON.stringify(v)).toString('base64url');
  return `${part({ alg: 'RS256', typ: 'JWT' })}.${part(claims)}.${randomBytes(16).toString('base64url')}`;
}

/** Writes `doc` as the tool would (pretty JSON, 0600) at `rel` under the sandbox HOME; returns the path. */
function writeToolFile(rel: string, doc: unknown): string {
  const file = path.join(box.dir, rel);
  fs.mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
  fs.writeFileSync(file, `${JSON.stringify(doc, null, 2)}\n`, { mode: 0o600 });
  return file;
}

/**
 * The stored token without the host's note of when it was obtained (checked here: the import's own
 * time, never a value from the file), so the tests compare what came from the tool.
 */
async function stored(provider: string, bucket = 'default'): Promise<StoredToken | null> {
  const store = await FileStore.open({ dataDir: box.env.CREDPROXY_HOME!, env: box.env });
  try {
    const token = await store.getToken(provider, bucket);
    if (token) {
      expect(token[OBTAINED_AT_FIELD]).toBeGreaterThan(Date.now() - 120_000);
      delete token[OBTAINED_AT_FIELD];
    }
    return token;
  } finally {
    await store.close();
  }
}

interface StatusToken {
  provider: string;
  bucket: string;
  expiry: number;
  hasRefreshToken: boolean;
}
async function statusTokens(): Promise<StatusToken[]> {
  const r = await cli(['status', '--json']);
  expect(r.code, r.stderr).toBe(0);
  return (JSON.parse(r.stdout) as { tokens: StatusToken[] }).tokens;
}

function expectNoSecret(result: RunResult, ...secrets: string[]): void {
  for (const s of secrets) {
    expect(result.stdout).not.toContain(s);
    expect(result.stderr).not.toContain(s);
  }
}

const ONE_REFRESHER = /^From now on only credproxy may refresh this login: let .+ get its token from credproxy.*, or the two refreshers will burn each other's single-use refresh token$/;

describe('each tool at its default path, read back through token and status', () => {
  it('claude-code: expiresAt ms → seconds, scopes joined, refresh token held, the apiKeyHelper advice', async () => {
    const access = secret('sk-ant-oat01');
    const refresh = secret('sk-ant-ort01');
    const expiresAtMs = (nowSec() + 8 * 3600) * 1000 + 789;
    const file = writeToolFile('.claude/.credentials.json', {
      claudeAiOauth: { accessToken: access, refreshToken: refresh, expiresAt: expiresAtMs, scopes: ['user:inference', 'user:profile'], subscriptionType: 'max' },
      mcpOAuth: { someServer: { accessToken: 'mcp-token' } },
    });

    const r = await cli(['import', '--from', 'claude-code']);
    expect(r.code, r.stderr).toBe(0);
    const lines = r.stdout.trimEnd().split('\n');
    expect(lines).toHaveLength(2);
    expect(lines[0]).toMatch(new RegExp(`^Imported token for anthropic/default from Claude Code's ${file} \\(expires in (7h 59m|8h); refresh token stored\\)$`));
    expect(lines[1]).toMatch(ONE_REFRESHER);
    expect(lines[1]).toContain('"apiKeyHelper": "credproxy token anthropic"');
    expectNoSecret(r, access, refresh);

    expect((await cli(['token', 'anthropic'])).stdout).toBe(`${access}\n`);
    expect(await statusTokens()).toEqual([{ provider: 'anthropic', bucket: 'default', expiry: Math.floor(expiresAtMs / 1000), expiresInSeconds: expect.any(Number), expired: false, hasRefreshToken: true, needsLogin: false }]);
    const token = await stored('anthropic');
    expect(token).toEqual({ access_token: access, refresh_token: refresh, expiry: Math.floor(expiresAtMs / 1000), token_type: 'Bearer', scope: 'user:inference user:profile' });
  });

  it('codex: expiry from the access token JWT exp, account_id kept, id_token kept on the host; $CODEX_HOME is honoured', async () => {
    const exp = nowSec() + 10 * 24 * 3600;
    const access = jwt({ exp, iat: nowSec(), 'https://api.openai.com/auth': { chatgpt_account_id: 'acct-from-claim' } });
    const refresh = secret('rt');
    const idToken = jwt({ exp, 'https://api.openai.com/auth': { chatgpt_account_id: 'acct-from-claim' } });
    const codexHome = path.join(box.dir, 'codex-home');
    writeToolFile('codex-home/auth.json', {
      OPENAI_API_KEY: null,
      tokens: { id_token: idToken, access_token: access, refresh_token: refresh, account_id: 'acct-123' },
      last_refresh: '2025-01-02T03:04:05.678Z',
    });
    // A file at ~/.codex would be the wrong one: CODEX_HOME names where Codex keeps its state.
    writeToolFile('.codex/auth.json', { tokens: { access_token: 'not-this-one' } });

    const r = await cli(['import', '--from', 'codex', '--bucket', 'work'], { ...box.env, CODEX_HOME: codexHome });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain(`Imported token for codex/work from Codex CLI's ${path.join(codexHome, 'auth.json')} (expires in `);
    expect(r.stdout).toMatch(/\(expires in (10d|9d 23h); refresh token stored\)\n/);
    expect(r.stdout.trimEnd().split('\n')[1]).toMatch(ONE_REFRESHER);
    expect(r.stdout).not.toContain('API key');

    expect((await cli(['token', 'codex', '--bucket', 'work'])).stdout).toBe(`${access}\n`);
    expect(await statusTokens()).toMatchObject([{ provider: 'codex', bucket: 'work', expiry: exp, hasRefreshToken: true }]);
    expect(await stored('codex', 'work')).toEqual({ access_token: access, refresh_token: refresh, expiry: exp, token_type: 'Bearer', id_token: idToken, account_id: 'acct-123' });
  });

  it('codex without tokens.account_id takes it from the id_token claim', async () => {
    const exp = nowSec() + 3600;
    writeToolFile('.codex/auth.json', {
      tokens: { id_token: jwt({ 'https://api.openai.com/auth': { chatgpt_account_id: 'acct-claim' } }), access_token: jwt({ exp }), refresh_token: secret('rt') },
    });
    expect((await cli(['import', '--from', 'codex'])).code).toBe(0);
    expect((await stored('codex'))?.account_id).toBe('acct-claim');
  });

  it('gemini-cli: expiry_date ms (fractional, as google-auth-library writes it), scope and token_type kept', async () => {
    const access = secret('ya29');
    const refresh = secret('1//0g');
    const expiryMs = (nowSec() + 3500) * 1000 + 362.7791;
    writeToolFile('.gemini/oauth_creds.json', {
      access_token: access,
      refresh_token: refresh,
      scope: 'https://www.googleapis.com/auth/cloud-platform openid',
      token_type: 'Bearer',
      id_token: 'idt',
      expiry_date: expiryMs,
    });
    const r = await cli(['import', '--from', 'gemini-cli']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^Imported token for gemini\/default from Gemini CLI's .*\/\.gemini\/oauth_creds\.json \(expires in 58m; refresh token stored\)\n/);
    expect((await cli(['token', 'gemini'])).stdout).toBe(`${access}\n`);
    expect(await stored('gemini')).toEqual({
      access_token: access,
      refresh_token: refresh,
      expiry: Math.floor(expiryMs / 1000),
      token_type: 'Bearer',
      scope: 'https://www.googleapis.com/auth/cloud-platform openid',
      id_token: 'idt',
    });
  });

  it('qwen-code: resource_url kept (a public field of qwen), expiry_date ms', async () => {
    const access = secret('qat');
    const expiryMs = (nowSec() + 6 * 3600) * 1000;
    writeToolFile('.qwen/oauth_creds.json', { access_token: access, refresh_token: secret('qrt'), token_type: 'Bearer', resource_url: 'portal.qwen.ai', expiry_date: expiryMs });
    const r = await cli(['import', '--from', 'qwen-code']);
    expect(r.code, r.stderr).toBe(0);
    expect((await cli(['token', 'qwen'])).stdout).toBe(`${access}\n`);
    expect(await statusTokens()).toMatchObject([{ provider: 'qwen', bucket: 'default', expiry: expiryMs / 1000, hasRefreshToken: true }]);
    expect(await stored('qwen')).toMatchObject({ resource_url: 'portal.qwen.ai', token_type: 'Bearer' });
  });

  it('a login without a refresh token is imported with no one-refresher advice (nothing to burn)', async () => {
    writeToolFile('.qwen/oauth_creds.json', { access_token: 'qat', expiry_date: (nowSec() + 600) * 1000 });
    const r = await cli(['import', '--from', 'qwen-code']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^Imported token for qwen\/default from Qwen Code's \S+ \(expires in (9m|10m); no refresh token\)\n$/);
  });
});

describe('--path, --write-back and the option rules', () => {
  it('--path reads a file anywhere; --write-back records the format and absolute path host-only', async () => {
    const file = writeToolFile('elsewhere/creds.json', {
      claudeAiOauth: { accessToken: secret('at'), refreshToken: secret('rt'), expiresAt: (nowSec() + 3600) * 1000, scopes: [] },
    });
    const r = await cli(['import', '--from', 'claude-code', '--path', file, '--bucket', 'b2', '--write-back']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout.trimEnd().split('\n')).toEqual([
      expect.stringMatching(new RegExp(`^Imported token for anthropic/b2 from Claude Code's ${file} `)),
      `Write-back on: each refresh by credproxy also writes the new tokens into ${file}`,
    ]);
    expect((await stored('anthropic', 'b2'))?.[WRITE_BACK_FIELD]).toEqual({ format: 'claude-code', path: file });

    // Importing again without --write-back turns it off.
    expect((await cli(['import', '--from', 'claude-code', '--path', file, '--bucket', 'b2'])).code).toBe(0);
    expect(await stored('anthropic', 'b2')).not.toHaveProperty(WRITE_BACK_FIELD);
  });

  it('the token JSON form cannot smuggle in a write-back target or any other host-only field', async () => {
    const expiry = nowSec() + 600;
    const r = await runCli(['import', 'anthropic', '--store', 'file'], {
      env: box.env,
      input: JSON.stringify({ access_token: 'x', expiry, [WRITE_BACK_FIELD]: { format: 'claude-code', path: '/etc/passwd' }, refresh_attempted_at: 1, [OBTAINED_AT_FIELD]: 1 }),
    });
    expect(r.code, r.stderr).toBe(0);
    expect(await stored('anthropic')).toEqual({ access_token: 'x', expiry, token_type: 'Bearer' });
  });

  it.each([
    [['import'], 'Name a PROVIDER (token JSON on stdin or --file) or --from TOOL (claude-code, codex, gemini-cli, qwen-code)'],
    [['import', 'anthropic', '--from', 'claude-code'], 'Give either PROVIDER or --from TOOL, not both'],
    [['import', 'anthropic', '--write-back'], '--write-back only works with --from TOOL'],
    [['import', 'anthropic', '--path', '/x'], '--path only works with --from TOOL'],
    [['import', '--from', 'claude-code', '--file', '/x'], "--file is for PROVIDER imports; with --from, name the tool's file with --path"],
    [['import', '--from', 'gemini-cli', '--with-api-key'], '--with-api-key only applies to --from codex'],
    [['import', '--from', 'cursor'], "option '--from <tool>' argument 'cursor' is invalid. Allowed choices are claude-code, codex, gemini-cli, qwen-code."],
  ])('%j is refused: %s', async (args, message) => {
    const r = await cli(args);
    expect(expectOneErrorLine(r)).toContain(message);
    expect(await statusTokens()).toEqual([]);
  });
});

describe("Codex's OPENAI_API_KEY is an API key, never silently dropped or stored", () => {
  const loginWithKey = () => ({ OPENAI_API_KEY: 'sk-proj-test-key', tokens: { access_token: jwt({ exp: nowSec() + 3600 }), refresh_token: 'rt' }, last_refresh: null });

  it('without --with-api-key: the login is imported and the key reported, not stored', async () => {
    writeToolFile('.codex/auth.json', loginWithKey());
    const r = await cli(['import', '--from', 'codex']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain(
      `${path.join(box.dir, '.codex/auth.json')} also holds an API key (OPENAI_API_KEY), not stored: pass --with-api-key to store it as key openai, or pipe it into credproxy keys set openai\n`,
    );
    expectNoSecret(r, 'sk-proj-test-key');
    expect((await cli(['keys', 'list'])).stdout).toBe('');
  });

  it('with --with-api-key: stored as key openai next to the login', async () => {
    writeToolFile('.codex/auth.json', loginWithKey());
    const r = await cli(['import', '--from', 'codex', '--with-api-key']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^Stored key openai \(from \S+auth\.json\)\nImported token for codex\/default /);
    expectNoSecret(r, 'sk-proj-test-key');
    expect((await cli(['keys', 'list'])).stdout).toBe('openai\n');
    expect(await statusTokens()).toHaveLength(1);
  });

  it('an API-key-only file: refused without the flag, only the key stored with it', async () => {
    const file = writeToolFile('.codex/auth.json', { OPENAI_API_KEY: 'sk-proj-only', tokens: null });
    const without = await cli(['import', '--from', 'codex']);
    expect(expectOneErrorLine(without)).toBe(
      `credproxy: ${file} holds no Codex CLI login, only an API key (OPENAI_API_KEY): pass --with-api-key to store it as key openai`,
    );
    expect((await cli(['keys', 'list'])).stdout).toBe('');

    const withKey = await cli(['import', '--from', 'codex', '--with-api-key']);
    expect(withKey.code, withKey.stderr).toBe(0);
    expect(withKey.stdout).toBe(`Stored key openai (from ${file})\n`);
    expect(await statusTokens()).toEqual([]);
    expect((await cli(['keys', 'list'])).stdout).toBe('openai\n');
  });

  it('--with-api-key on a file without a key is an error and stores nothing', async () => {
    const file = writeToolFile('.codex/auth.json', { OPENAI_API_KEY: null, tokens: { access_token: jwt({ exp: nowSec() + 3600 }) } });
    expect(expectOneErrorLine(await cli(['import', '--from', 'codex', '--with-api-key']))).toBe(`credproxy: --with-api-key: ${file} holds no API key`);
    expect(await statusTokens()).toEqual([]);
  });
});

describe('malformed files: one line naming the file and the field, nothing stored', () => {
  const cases: Array<[string, string, string, unknown | string, string]> = [
    ['not JSON', 'claude-code', '.claude/.credentials.json', '{"claudeAiOauth": {', 'is not valid JSON'],
    ['empty', 'gemini-cli', '.gemini/oauth_creds.json', '  \n', 'is empty'],
    ['not an object', 'qwen-code', '.qwen/oauth_creds.json', '[1, 2]', 'the file must hold a JSON object'],
    ['no claudeAiOauth section', 'claude-code', '.claude/.credentials.json', { mcpOAuth: {} }, 'field "claudeAiOauth" is missing'],
    ['missing access token', 'claude-code', '.claude/.credentials.json', { claudeAiOauth: { refreshToken: 'r', expiresAt: 1 } }, 'field "claudeAiOauth.accessToken" is missing'],
    ['empty access token', 'gemini-cli', '.gemini/oauth_creds.json', { access_token: '', expiry_date: 1 }, 'field "access_token" is missing'],
    ['access token of the wrong type', 'qwen-code', '.qwen/oauth_creds.json', { access_token: 42, expiry_date: 1 }, 'field "access_token" must be a string'],
    ['refresh token of the wrong type', 'gemini-cli', '.gemini/oauth_creds.json', { access_token: 'a', refresh_token: {}, expiry_date: 1 }, 'field "refresh_token" must be a string'],
    ['scopes not an array of strings', 'claude-code', '.claude/.credentials.json', { claudeAiOauth: { accessToken: 'a', expiresAt: 1e12, scopes: 'user:inference' } }, 'field "claudeAiOauth.scopes" must be an array of strings'],
    ['expiry not a number', 'claude-code', '.claude/.credentials.json', { claudeAiOauth: { accessToken: 'a', expiresAt: '1747909518727' } }, 'field "claudeAiOauth.expiresAt" must be a positive number (epoch milliseconds)'],
    ['expiry missing', 'qwen-code', '.qwen/oauth_creds.json', { access_token: 'a', refresh_token: 'r' }, 'field "expiry_date" is missing'],
    ['negative expiry', 'gemini-cli', '.gemini/oauth_creds.json', { access_token: 'a', expiry_date: -5 }, 'field "expiry_date" must be a positive number'],
    ['codex: no tokens', 'codex', '.codex/auth.json', { OPENAI_API_KEY: null, tokens: null }, 'field "tokens" is missing (no ChatGPT login in this file)'],
    ['codex: tokens not an object', 'codex', '.codex/auth.json', { tokens: 'x' }, 'field "tokens" must be an object'],
    ['codex: access token not a JWT', 'codex', '.codex/auth.json', { tokens: { access_token: 'opaque', refresh_token: 'r' } }, 'field "tokens.access_token" is not a JWT'],
    ['codex: JWT without exp', 'codex', '.codex/auth.json', { tokens: { access_token: jwt({ sub: 'u' }), refresh_token: 'r' } }, 'field "tokens.access_token" has no numeric "exp" claim'],
    ['codex: API key of the wrong type', 'codex', '.codex/auth.json', { OPENAI_API_KEY: 7, tokens: { access_token: jwt({ exp: 2e9 }) } }, 'field "OPENAI_API_KEY" must be a string'],
  ];

  it.each(cases)('%s', async (_name, from, rel, content, message) => {
    const file = path.join(box.dir, rel);
    fs.mkdirSync(path.dirname(file), { recursive: true });
    fs.writeFileSync(file, typeof content === 'string' ? content : JSON.stringify(content));
    const r = await cli(['import', '--from', from]);
    const line = expectOneErrorLine(r);
    expect(line).toContain(file);
    expect(line).toContain(message);
    expect(await statusTokens()).toEqual([]);
  });

  it('a missing file says where it looked and what to do', async () => {
    const r = await cli(['import', '--from', 'claude-code']);
    expect(expectOneErrorLine(r)).toBe(`credproxy: ${path.join(box.dir, '.claude/.credentials.json')} does not exist: log in with Claude Code first, or name its file with --path`);
    expect(await statusTokens()).toEqual([]);
  });

  it('a path that is not a regular file (a directory)', async () => {
    const dir = path.join(box.dir, 'adir');
    fs.mkdirSync(dir);
    const r = await cli(['import', '--from', 'qwen-code', '--path', dir]);
    expect(expectOneErrorLine(r)).toBe(`credproxy: Cannot read ${dir}: it is not a regular file`);
    expect(await statusTokens()).toEqual([]);
  });
});
