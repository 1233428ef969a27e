/**
 * `import --from TOOL --write-back` end to end: a real login at a real authorization server
 * (oidc-provider with refresh-token rotation and JWT access tokens, so Codex's reader finds an
 * `exp`) is written into each tool's file format, imported through the real CLI into a file store,
 * refreshed by a real `credproxy serve` (the presets pointed at the local server by the config file),
 * and the tool's file is then checked: same shape, other fields kept, the rotated values the daemon
 * stores, mode (and, as root, owner) kept, readable by the format's reader.
 */
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadProviderRegistry } from '../../src/oauth/config.js';
import { defaultFlowDeps } from '../../src/oauth/flowDeps.js';
import { toolFormat } from '../../src/oauth/importers/registry.js';
import { WRITE_BACK_FIELD } from '../../src/oauth/token.js';
import { FileStore } from '../../src/store/fileStore.js';
import type { StoredToken } from '../../src/store/types.js';
import { startAuthServer, type AuthServer } from '../helpers/authServer.js';
import { RawClient } from '../helpers/rawClient.js';
import { finished, makeSandbox, runCli, spawnCli, type RunResult, type Sandbox } from './cliHarness.js';

const LOGIN = 'myidp';
const AS_ROOT = process.getuid?.() === 0;

let idp: AuthServer;
let box: Sandbox;
let configPath: string;

beforeAll(async () => {
  idp = await startAuthServer({ jwtAccessTokens: true, rotateRefreshTokens: true });
  box = makeSandbox();
  fs.mkdirSync(box.env.CREDPROXY_HOME!, { recursive: true, mode: 0o700 });
  configPath = path.join(box.env.CREDPROXY_HOME!, 'config.json');
  const token = idp.endpoints.token;
  fs.writeFileSync(
    configPath,
    JSON.stringify({
      providers: {
        // The presets the tools map to, pointed at the local server (overrides merge into the presets).
        anthropic: { clientId: idp.clientId, issuer: idp.issuer, endpoints: { token }, tokenRequestFormat: 'form' },
        codex: { clientId: idp.clientId, issuer: idp.issuer, endpoints: { token } },
        gemini: { clientId: idp.clientId, issuer: idp.issuer, endpoints: { token }, tokenEndpointAuthMethod: 'none' },
        qwen: { clientId: idp.clientId, issuer: idp.issuer, endpoints: { token } },
        // Only to obtain real tokens: the same server as a custom provider with the device flow.
        [LOGIN]: { clientId: idp.clientId, issuer: idp.issuer, scopes: idp.scopes.split(' '), flows: ['device_code'], endpoints: idp.endpoints },
      },
    }),
  );
});

afterAll(async () => {
  await idp?.close();
  box?.cleanup();
});

/** A real login: device flow approved through the server's own pages. */
async function realLogin(): Promise<StoredToken> {
  const deps = defaultFlowDeps({ now: Date.now });
  const flow = await loadProviderRegistry({ configPath }).get(LOGIN)!.start('device_code', deps);
  await idp.approveDevice(flow.publicData.user_code!);
  for (;;) {
    const result = await flow.poll!(AbortSignal.timeout(15_000));
    if (result.status === 'complete') return result.token;
    await new Promise((r) => setTimeout(r, result.pollIntervalMs));
  }
}

/** Each tool's file holding `t`, with fields of the tool's own that a write-back must leave alone. */
const FILES: Record<string, { rel: string; mode: number; doc: (t: StoredToken) => Record<string, unknown> }> = {
  'claude-code': {
    rel: '.claude/.credentials.json',
    mode: 0o600,
    doc: (t) => ({
      claudeAiOauth: { accessToken: t.access_token, refreshToken: t.refresh_token, expiresAt: t.expiry * 1000, scopes: ['user:inference', 'user:profile'], subscriptionType: 'max' },
      mcpOAuth: { 'some-server': { accessToken: 'mcp-token', expiresAt: 123 } },
    }),
  },
  codex: {
    rel: '.codex/auth.json',
    mode: 0o644,
    doc: (t) => ({
      OPENAI_API_KEY: null,
      tokens: { id_token: t.id_token, access_token: t.access_token, refresh_token: t.refresh_token, account_id: 'acct-e2e' },
      last_refresh: '2025-01-02T03:04:05.678Z',
    }),
  },
  'gemini-cli': {
    rel: '.gemini/oauth_creds.json',
    mode: 0o600,
    doc: (t) => ({ access_token: t.access_token, refresh_token: t.refresh_token, scope: 'openid', token_type: 'Bearer', id_token: t.id_token, expiry_date: t.expiry * 1000 + 0.5 }),
  },
  'qwen-code': {
    rel: '.qwen/oauth_creds.json',
    mode: 0o640,
    doc: (t) => ({ access_token: t.access_token, refresh_token: t.refresh_token, token_type: 'Bearer', resource_url: 'portal.qwen.ai', expiry_date: t.expiry * 1000 }),
  },
};

/** The fields each format's writer updates; everything else must be as it was. */
function withoutUpdated(format: string, doc: Record<string, unknown>): Record<string, unknown> {
  const copy = structuredClone(doc) as Record<string, Record<string, unknown>>;
  const drop = (obj: Record<string, unknown>, ...keys: string[]) => keys.forEach((k) => delete obj[k]);
  if (format === 'claude-code') drop(copy.claudeAiOauth!, 'accessToken', 'refreshToken', 'expiresAt');
  if (format === 'codex') {
    drop(copy.tokens!, 'access_token', 'refresh_token', 'id_token');
    drop(copy, 'last_refresh');
  }
  if (format === 'gemini-cli') drop(copy, 'access_token', 'refresh_token', 'id_token', 'expiry_date');
  if (format === 'qwen-code') drop(copy, 'access_token', 'refresh_token', 'expiry_date');
  return copy;
}

function writeFixture(file: string, doc: unknown, mode: number): void {
  fs.mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
  fs.writeFileSync(file, `${JSON.stringify(doc, null, 2)}\n`);
  fs.chmodSync(file, mode);
}

/** Starts `credproxy serve` on the sandbox's file store; resolves with its socket. */
async function serve(): Promise<{ socket: string; stop: () => Promise<RunResult> }> {
  const child = spawnCli(['serve', '--store', 'file', '--json', '--audit', 'off'], box.env);
  child.stdin!.end();
  const exit = finished(child, 60_000);
  const socket = await new Promise<string>((resolve, reject) => {
    let buf = '';
    child.stdout!.on('data', (d: Buffer) => {
      buf += d.toString();
      if (buf.includes('\n')) resolve((JSON.parse(buf.slice(0, buf.indexOf('\n'))) as { socket: string }).socket);
    });
    void exit.then((r) => reject(new Error(`serve exited early (${r.code}): ${r.stderr}`)));
  });
  return {
    socket,
    stop: async () => {
      child.kill('SIGTERM');
      return exit;
    },
  };
}

describe('write-back after a daemon refresh', () => {
  it('each tool file gets the rotated tokens in its own format; a file with a newer login is left alone', async () => {
    const imported = new Map<string, { file: string; login: StoredToken; original: Record<string, unknown>; uid: number; gid: number }>();
    for (const [name, spec] of Object.entries(FILES)) {
      const login = await realLogin();
      const file = path.join(box.dir, spec.rel);
      const original = spec.doc(login);
      writeFixture(file, original, spec.mode);
      // As root, the file belongs to someone else (as a tool's file under another HOME would): the owner must survive.
      if (AS_ROOT && name === 'qwen-code') fs.chownSync(file, 4321, 4322);
      const st = fs.statSync(file);
      const r = await runCli(['import', '--from', name, '--write-back', '--store', 'file'], { env: box.env });
      expect(r.code, r.stderr).toBe(0);
      expect(r.stdout).toContain(`Write-back on: each refresh by credproxy also writes the new tokens into ${file}\n`);
      imported.set(name, { file, login, original, uid: st.uid, gid: st.gid });
    }
    // The conflict case: imported with --write-back, then the user logs in again in the tool.
    const relogin = path.join(box.dir, 'relogin', 'auth.json');
    const first = await realLogin();
    writeFixture(relogin, FILES.codex!.doc(first), 0o600);
    expect((await runCli(['import', '--from', 'codex', '--path', relogin, '--bucket', 'relogin', '--write-back', '--store', 'file'], { env: box.env })).code).toBe(0);
    const newerLogin = await realLogin();
    writeFixture(relogin, FILES.codex!.doc(newerLogin), 0o600);
    const reloginBytes = fs.readFileSync(relogin);

    const daemon = await serve();
    let daemonRun: RunResult | undefined;
    const replies = new Map<string, Record<string, unknown>>();
    try {
      const c = await RawClient.ready(daemon.socket);
      for (const name of imported.keys()) {
        const provider = toolFormat(name)!.provider;
        const reply = await c.request('refresh_token', { provider });
        expect(reply.ok, JSON.stringify(reply)).toBe(true);
        replies.set(name, reply.data as Record<string, unknown>);
      }
      const again = await c.request('refresh_token', { provider: 'codex', bucket: 'relogin' });
      expect(again.ok, JSON.stringify(again)).toBe(true);
      c.close();
    } finally {
      daemonRun = await daemon.stop();
    }

    const store = await FileStore.open({ dataDir: box.env.CREDPROXY_HOME!, env: box.env });
    try {
      for (const [name, { file, login, original, uid, gid }] of imported) {
        const format = toolFormat(name)!;
        const now = (await store.getToken(format.provider, 'default'))!;
        const served = replies.get(name)!;
        // The refresh happened and rotated: new access token served and stored, new refresh token stored.
        expect(served.access_token).toBe(now.access_token);
        expect(served).not.toHaveProperty(WRITE_BACK_FIELD);
        expect(served).not.toHaveProperty('refresh_token');
        expect(now.access_token).not.toBe(login.access_token);
        expect(now.refresh_token).not.toBe(login.refresh_token);
        expect(idp.issued.refreshTokens).toContain(now.refresh_token);
        expect(now[WRITE_BACK_FIELD]).toEqual({ format: name, path: file });

        const text = fs.readFileSync(file, 'utf8');
        expect(text.startsWith('{\n  "'), `${name} keeps its indentation`).toBe(true);
        expect(text.endsWith('}\n')).toBe(true);
        const doc = JSON.parse(text) as Record<string, unknown>;
        expect(withoutUpdated(name, doc), `${name}: every other field as it was`).toEqual(withoutUpdated(name, original));
        expect(Object.keys(doc)).toEqual(Object.keys(original));
        const st = fs.statSync(file);
        expect(st.mode & 0o7777, `${name} mode`).toBe(FILES[name]!.mode);
        expect([st.uid, st.gid], `${name} owner`).toEqual([uid, gid]);
        // What the tool would now read, through this project's reader of its format.
        const back = format.read(doc).token!;
        expect(back.access_token).toBe(now.access_token);
        expect(back.refresh_token).toBe(now.refresh_token);
        expect(back.expiry).toBe(now.expiry);
      }
      // Units: milliseconds where the tool keeps milliseconds; Codex's expiry is its JWT's own exp.
      const claude = JSON.parse(fs.readFileSync(imported.get('claude-code')!.file, 'utf8')) as { claudeAiOauth: { expiresAt: number } };
      expect(claude.claudeAiOauth.expiresAt).toBe((await store.getToken('anthropic', 'default'))!.expiry * 1000);
      const codex = JSON.parse(fs.readFileSync(imported.get('codex')!.file, 'utf8')) as { tokens: Record<string, string>; last_refresh: string };
      const codexNow = (await store.getToken('codex', 'default'))!;
      expect(codex.tokens.id_token).toBe(codexNow.id_token); // oidc-provider returns an id_token on refresh
      expect(codex.tokens.id_token).not.toBe(imported.get('codex')!.login.id_token);
      expect(Number.isNaN(Date.parse(codex.last_refresh))).toBe(false);
      expect(codex.last_refresh).not.toBe('2025-01-02T03:04:05.678Z');

      // The newer login in the tool's file was not overwritten; the refresh itself succeeded.
      expect(fs.readFileSync(relogin)).toEqual(reloginBytes);
      const reloginNow = (await store.getToken('codex', 'relogin'))!;
      expect(reloginNow.refresh_token).not.toBe(first.refresh_token);
      expect(daemonRun.stderr).toContain(
        `credproxy: write-back to ${relogin} skipped: it now holds a different refresh token than the one credproxy last wrote (a new Codex CLI login?); left unchanged`,
      );
      // Exactly that one write-back problem was reported, and no token reached the daemon's output.
      expect(daemonRun.stderr.match(/write-back/g)).toHaveLength(1);
      for (const rt of idp.issued.refreshTokens) expect(daemonRun.stderr).not.toContain(rt);
    } finally {
      await store.close();
    }
  }, 90_000);
});
