/**
 * The CLI login formats (src/oauth/importers): each writer puts a refreshed token into the tool's
 * own shape and units and leaves every other field alone, and its reader reads the result back;
 * writeBack only overwrites a file that still holds the refresh token credproxy last knew, keeps
 * the file's mode, owner and layout, and never throws.
 */
import fs from 'node:fs';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { claudeCode } from '../../src/oauth/importers/claudeCode.js';
import { codexCli } from '../../src/oauth/importers/codexCli.js';
import { geminiCli } from '../../src/oauth/importers/geminiCli.js';
import { qwenCode } from '../../src/oauth/importers/qwenCode.js';
import { TOOL_FORMATS } from '../../src/oauth/importers/registry.js';
import { readToolFile, rewriteToolFile } from '../../src/oauth/importers/toolFile.js';
import type { ToolFormat } from '../../src/oauth/importers/toolFormat.js';
import { writeBack, writeBackTarget } from '../../src/oauth/importers/writeBack.js';
import { mapTokenResponse } from '../../src/oauth/providers/tokenMapping.js';
import { REFRESH_ATTEMPT_FIELD, WRITE_BACK_FIELD } from '../../src/oauth/token.js';
import type { StoredToken } from '../../src/store/types.js';
import { tempDir } from '../helpers/daemon.js';

const NOW_MS = 1_750_000_000_123;
const EXPIRY = 1_750_003_600;

function jwt(claims: Record<string, unknown>): string {
  const part = (v: unknown) => Buffer.from(JSON.stringify(v)).toString('base64url');
  return `${part({ alg: 'none' })}.${part(claims)}.sig`;
}

/** A fixture of each format holding refresh token `rt`, with fields of the tool's own beside the login. */
const FIXTURES: Record<string, (rt: string) => Record<string, unknown>> = {
  'claude-code': (rt) => ({
    claudeAiOauth: { accessToken: 'old-at', refreshToken: rt, expiresAt: 1_700_000_000_000, scopes: ['user:inference'], subscriptionType: 'max', rateLimitTier: 'tier' },
    mcpOAuth: { server: { accessToken: 'mcp' } },
  }),
  codex: (rt) => ({
    OPENAI_API_KEY: null,
    tokens: { id_token: jwt({ sub: 'old' }), access_token: jwt({ exp: 1_700_000_000 }), refresh_token: rt, account_id: 'acct-1' },
    last_refresh: '2025-01-01T00:00:00.000Z',
    auth_mode: 'chatgpt',
  }),
  'gemini-cli': (rt) => ({ access_token: 'old-at', refresh_token: rt, scope: 'openid', token_type: 'Bearer', id_token: 'old-idt', expiry_date: 1_700_000_000_000.5 }),
  'qwen-code': (rt) => ({ access_token: 'old-at', refresh_token: rt, token_type: 'Bearer', resource_url: 'portal.qwen.ai', expiry_date: 1_700_000_000_000 }),
};

/** A refreshed token as the coordinator stores it (access token a JWT so codex can read its exp). */
function refreshed(rt: string, extra: Partial<StoredToken> = {}): StoredToken {
  return { access_token: jwt({ exp: EXPIRY, n: rt }), expiry: EXPIRY, token_type: 'Bearer', refresh_token: rt, ...extra };
}

describe('writers: the tool shape and units, other fields untouched, readable by the reader', () => {
  it('claude-code: accessToken, refreshToken, expiresAt in ms; scopes, subscriptionType and mcpOAuth kept', () => {
    const token = refreshed('rt-new');
    const out = claudeCode.write(FIXTURES['claude-code']!('rt-old'), token, NOW_MS);
    expect(out).toEqual({
      claudeAiOauth: { accessToken: token.access_token, refreshToken: 'rt-new', expiresAt: EXPIRY * 1000, scopes: ['user:inference'], subscriptionType: 'max', rateLimitTier: 'tier' },
      mcpOAuth: { server: { accessToken: 'mcp' } },
    });
  });

  it('codex: tokens.* and last_refresh (ISO); id_token only when the refresh returned one; other keys kept', () => {
    const without = codexCli.write(FIXTURES.codex!('rt-old'), refreshed('rt-new'), NOW_MS);
    expect(without).toEqual({
      OPENAI_API_KEY: null,
      tokens: { id_token: jwt({ sub: 'old' }), access_token: refreshed('rt-new').access_token, refresh_token: 'rt-new', account_id: 'acct-1' },
      last_refresh: new Date(NOW_MS).toISOString(),
      auth_mode: 'chatgpt',
    });
    const withId = codexCli.write(FIXTURES.codex!('rt-old'), refreshed('rt-new', { id_token: 'new-idt', account_id: 'acct-2' }), NOW_MS);
    expect(withId.tokens).toMatchObject({ id_token: 'new-idt', account_id: 'acct-2' });
  });

  it('gemini-cli and qwen-code: expiry_date in ms; scope, token_type, resource_url kept or updated', () => {
    expect(geminiCli.write(FIXTURES['gemini-cli']!('rt-old'), refreshed('rt-new', { id_token: 'new-idt' }), NOW_MS)).toEqual({
      access_token: refreshed('rt-new').access_token,
      refresh_token: 'rt-new',
      scope: 'openid',
      token_type: 'Bearer',
      id_token: 'new-idt',
      expiry_date: EXPIRY * 1000,
    });
    expect(qwenCode.write(FIXTURES['qwen-code']!('rt-old'), refreshed('rt-new', { resource_url: 'other.qwen.ai' }), NOW_MS)).toEqual({
      access_token: refreshed('rt-new').access_token,
      refresh_token: 'rt-new',
      token_type: 'Bearer',
      resource_url: 'other.qwen.ai',
      expiry_date: EXPIRY * 1000,
    });
  });

  it.each([...TOOL_FORMATS.values()].map((f) => [f.name, f] as const))('%s: the reader reads what the writer wrote', (name, format: ToolFormat) => {
    const token = refreshed('rt-new');
    const back = format.read(format.write(FIXTURES[name]!('rt-old'), token, NOW_MS)).token!;
    expect(back).toMatchObject({ access_token: token.access_token, refresh_token: 'rt-new', expiry: EXPIRY, token_type: 'Bearer' });
  });

  it('a writer does not change the document it was given', () => {
    const doc = FIXTURES['claude-code']!('rt-old');
    const before = structuredClone(doc);
    claudeCode.write(doc, refreshed('rt-new'), NOW_MS);
    expect(doc).toEqual(before);
  });

  it('a file that lost the login section cannot be written (the field is named)', () => {
    expect(() => claudeCode.write({ other: 1 }, refreshed('x'), NOW_MS)).toThrow('field "claudeAiOauth" is no longer an object');
    expect(() => codexCli.write([], refreshed('x'), NOW_MS)).toThrow('the file no longer holds a JSON object');
  });
});

describe('default paths come from the environment', () => {
  it('HOME, CLAUDE_CONFIG_DIR and CODEX_HOME', () => {
    const env = { HOME: '/h' };
    expect(claudeCode.defaultPath(env)).toBe('/h/.claude/.credentials.json');
    expect(claudeCode.defaultPath({ ...env, CLAUDE_CONFIG_DIR: '/c' })).toBe('/c/.credentials.json');
    expect(codexCli.defaultPath(env)).toBe('/h/.codex/auth.json');
    expect(codexCli.defaultPath({ ...env, CODEX_HOME: '/x' })).toBe('/x/auth.json');
    expect(codexCli.defaultPath({ ...env, CODEX_HOME: '' })).toBe('/h/.codex/auth.json');
    expect(geminiCli.defaultPath(env)).toBe('/h/.gemini/oauth_creds.json');
    expect(qwenCode.defaultPath(env)).toBe('/h/.qwen/oauth_creds.json');
  });
});

describe('host-only fields', () => {
  it('a token endpoint response cannot set a write-back target or a refresh stamp', () => {
    const token = mapTokenResponse(
      { tokenMapping: { defaultExpiresIn: 3600, nonExpiring: false, claims: {} } },
      { access_token: 'a', expires_in: 60, [WRITE_BACK_FIELD]: { format: 'codex', path: '/etc/shadow' }, [REFRESH_ATTEMPT_FIELD]: 0 },
      NOW_MS,
    );
    expect(token).not.toHaveProperty(WRITE_BACK_FIELD);
    expect(token).not.toHaveProperty(REFRESH_ATTEMPT_FIELD);
  });
});

describe('writeBack', () => {
  let dir: string;
  let logs: string[];
  const log = (line: string) => logs.push(line);
  beforeEach(() => {
    dir = tempDir('cpwb-');
    logs = [];
  });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  function place(name: string, format: string, rt: string, text?: (doc: unknown) => string, mode = 0o600): string {
    const file = path.join(dir, name);
    const doc = FIXTURES[format]!(rt);
    fs.writeFileSync(file, text ? text(doc) : `${JSON.stringify(doc, null, 2)}\n`, { mode });
    fs.chmodSync(file, mode);
    return file;
  }
  const withTarget = (token: StoredToken, format: ToolFormat, file: string): StoredToken => ({ ...token, [WRITE_BACK_FIELD]: writeBackTarget(format, file) });
  const previous = (rt: string): StoredToken => ({ access_token: 'old', expiry: 1, token_type: 'Bearer', refresh_token: rt });

  it('does nothing for a token without a write-back field', () => {
    expect(writeBack(refreshed('x'), previous('y'), { now: () => NOW_MS, log })).toEqual({ status: 'off' });
    expect(logs).toEqual([]);
  });

  it('rewrites the file: mode, owner, indentation and final newline kept; the reader sees the new values', () => {
    const file = place('creds.json', 'claude-code', 'rt-1', undefined, 0o640);
    const root = process.getuid?.() === 0;
    // As root, give the file away first: the rewrite must hand it back to that owner.
    if (root) fs.chownSync(file, 4321, 4322);
    const before = fs.statSync(file);
    const token = withTarget(refreshed('rt-2'), claudeCode, file);

    expect(writeBack(token, previous('rt-1'), { now: () => NOW_MS, log })).toEqual({ status: 'written', file });
    expect(logs).toEqual([]);
    const after = fs.statSync(file);
    expect(after.mode & 0o7777).toBe(0o640);
    expect([after.uid, after.gid]).toEqual([before.uid, before.gid]);
    expect(after.ino).not.toBe(before.ino); // replaced by rename, not written in place
    const text = fs.readFileSync(file, 'utf8');
    expect(text).toBe(`${JSON.stringify(claudeCode.write(FIXTURES['claude-code']!('rt-1'), token, NOW_MS), null, 2)}\n`);
    expect(claudeCode.read(JSON.parse(text)).token).toMatchObject({ refresh_token: 'rt-2', expiry: EXPIRY });
    expect(fs.readdirSync(dir)).toEqual(['creds.json']); // no temp file left
  });

  it('keeps a compact file compact, without a final newline if it had none', () => {
    const file = place('oauth_creds.json', 'qwen-code', 'rt-1', (doc) => JSON.stringify(doc));
    writeBack(withTarget(refreshed('rt-2'), qwenCode, file), previous('rt-1'), { now: () => NOW_MS, log });
    const text = fs.readFileSync(file, 'utf8');
    expect(text).not.toContain('\n');
    expect(JSON.parse(text)).toMatchObject({ refresh_token: 'rt-2', resource_url: 'portal.qwen.ai' });
  });

  it('follows a symlink: the link stays, its target gets the new tokens', () => {
    const real = place('real.json', 'gemini-cli', 'rt-1');
    const link = path.join(dir, 'link.json');
    fs.symlinkSync(real, link);
    expect(writeBack(withTarget(refreshed('rt-2'), geminiCli, link), previous('rt-1'), { now: () => NOW_MS, log }).status).toBe('written');
    expect(fs.lstatSync(link).isSymbolicLink()).toBe(true);
    expect(JSON.parse(fs.readFileSync(real, 'utf8'))).toMatchObject({ refresh_token: 'rt-2' });
  });

  it('writes when the file already holds the new refresh token (a provider that does not rotate)', () => {
    const file = place('auth.json', 'codex', 'rt-same');
    expect(writeBack(withTarget(refreshed('rt-same'), codexCli, file), previous('rt-same'), { now: () => NOW_MS, log }).status).toBe('written');
    expect(JSON.parse(fs.readFileSync(file, 'utf8')).last_refresh).toBe(new Date(NOW_MS).toISOString());
  });

  it('skips a file that holds another refresh token (a new login in the tool): unchanged, logged without secrets', () => {
    const file = place('creds.json', 'claude-code', 'rt-from-a-new-login');
    const bytes = fs.readFileSync(file);
    const outcome = writeBack(withTarget(refreshed('rt-2'), claudeCode, file), previous('rt-1'), { now: () => NOW_MS, log });
    expect(outcome).toMatchObject({ status: 'skipped', file });
    expect(fs.readFileSync(file)).toEqual(bytes);
    expect(logs).toEqual([
      `write-back to ${file} skipped: it now holds a different refresh token than the one credproxy last wrote (a new Claude Code login?); left unchanged — run credproxy import --from claude-code again to take that login over`,
    ]);
    for (const s of ['rt-from-a-new-login', 'rt-1', 'rt-2']) expect(logs.join('\n')).not.toContain(s);
  });

  it('skips a file that is gone (not recreated), one that is no longer a login, and one that is not JSON', () => {
    const gone = path.join(dir, 'gone.json');
    expect(writeBack(withTarget(refreshed('rt-2'), qwenCode, gone), previous('rt-1'), { now: () => NOW_MS, log }).status).toBe('skipped');
    expect(fs.existsSync(gone)).toBe(false);

    const other = path.join(dir, 'other.json');
    fs.writeFileSync(other, JSON.stringify({ mcpOAuth: {} }));
    writeBack(withTarget(refreshed('rt-2'), claudeCode, other), previous('rt-1'), { now: () => NOW_MS, log });
    expect(fs.readFileSync(other, 'utf8')).toBe(JSON.stringify({ mcpOAuth: {} }));

    const broken = path.join(dir, 'broken.json');
    fs.writeFileSync(broken, '{"access_token": ');
    writeBack(withTarget(refreshed('rt-2'), geminiCli, broken), previous('rt-1'), { now: () => NOW_MS, log });
    expect(fs.readFileSync(broken, 'utf8')).toBe('{"access_token": ');

    expect(logs).toEqual([
      `write-back to ${gone} skipped: the file is gone (logged out?); not recreated`,
      `write-back to ${other} skipped: it no longer holds a Claude Code login (field "claudeAiOauth" is missing (no Claude subscription login in this file)); left unchanged`,
      `write-back to ${broken} skipped: ${broken} is not valid JSON`,
    ]);
  });

  it('skips an invalid stored setting (unknown format, relative path) and survives a throwing log sink', () => {
    const bad = [{ format: 'cursor', path: '/x' }, { format: 'codex', path: 'relative.json' }, 'codex:/x'];
    for (const value of bad) {
      expect(writeBack({ ...refreshed('a'), [WRITE_BACK_FIELD]: value }, previous('b'), { now: () => NOW_MS, log }).status).toBe('skipped');
    }
    expect(logs).toHaveLength(3);
    expect(logs[0]).toBe('write-back skipped: the stored write-back setting is not valid; import the login again to set it');
    const throwing = () => {
      throw new Error('sink broken');
    };
    expect(writeBack({ ...refreshed('a'), [WRITE_BACK_FIELD]: 'x' }, previous('b'), { now: () => NOW_MS, log: throwing })).toMatchObject({ status: 'skipped' });
  });

  it('rewriteToolFile writes nothing when the file changed after it was read', () => {
    const file = place('oauth_creds.json', 'gemini-cli', 'rt-1');
    const read = readToolFile(file);
    fs.writeFileSync(file, JSON.stringify(FIXTURES['gemini-cli']!('rt-written-by-the-tool'), null, 2));
    expect(rewriteToolFile(read, { replaced: true })).toBe(false);
    expect(JSON.parse(fs.readFileSync(file, 'utf8')).refresh_token).toBe('rt-written-by-the-tool');
  });
});
