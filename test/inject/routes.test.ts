/** Injection routes: presets, config validation with clear errors, the route matcher and the header sanitizer. */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { bindToken, TokenBindingError } from '../../src/inject/bindToken.js';
import { sandboxResponseHeaders, upstreamRequestHeaders } from '../../src/inject/headers.js';
import { matchRequest } from '../../src/inject/routeMatcher.js';
import { RouteError, RouteTable } from '../../src/inject/RouteTable.js';
import type { Route } from '../../src/inject/routeSchema.js';
import { ConfigError } from '../../src/oauth/config.js';

const custom = {
  upstream: 'https://llm.example.test/api',
  credential: { provider: 'myidp', bucket: 'work' },
  allow: [{ method: 'post', path: '/v1/messages*' }, { method: 'GET', path: '/v1/models' }],
  env: { LLM_BASE_URL: '{url}', LLM_KEY: 'credproxy-managed' },
};

function table(routes: unknown): RouteTable {
  return RouteTable.fromConfig({ routes }, '/etc/credproxy/config.json');
}

function configError(routes: unknown): string {
  try {
    table(routes);
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return (err as Error).message;
  }
  throw new Error('expected a ConfigError');
}

describe('route table', () => {
  it('has the presets of PROVIDERS.md with their header rules and placeholders', () => {
    const t = RouteTable.presets();
    expect(t.names()).toEqual(['anthropic', 'anthropic-oauth', 'codex', 'gemini', 'github', 'openai', 'qwen']);
    expect(t.definition('anthropic')).toMatchObject({ upstream: 'https://api.anthropic.com', credential: { key: 'anthropic' }, header: 'x-api-key', format: '{}', env: { ANTHROPIC_BASE_URL: '{url}', ANTHROPIC_API_KEY: 'credproxy-managed' } });
    expect(t.definition('anthropic-oauth')).toMatchObject({ credential: { provider: 'anthropic' }, header: 'Authorization', format: 'Bearer {}', extraHeaders: { 'anthropic-beta': 'oauth-2025-04-20' }, env: { ANTHROPIC_AUTH_TOKEN: 'credproxy-managed' } });
    expect(t.definition('openai')).toMatchObject({ header: 'Authorization', format: 'Bearer {}', env: { OPENAI_BASE_URL: '{url}/v1', OPENAI_API_KEY: 'credproxy-managed' } });
    expect(t.definition('gemini')).toMatchObject({ header: 'x-goog-api-key', format: '{}', env: { GOOGLE_GEMINI_BASE_URL: '{url}', GEMINI_API_KEY: 'credproxy-managed' } });
    expect(t.definition('codex')).toMatchObject({ upstream: 'https://chatgpt.com/backend-api/codex', credential: { provider: 'codex' }, format: 'Bearer {}', tokenHeaders: { 'chatgpt-account-id': 'account_id' }, env: { OPENAI_BASE_URL: '{url}', OPENAI_API_KEY: 'credproxy-managed' } });
    expect(t.definition('qwen')).toMatchObject({ credential: { provider: 'qwen' }, format: 'Bearer {}', upstreamFrom: { field: 'resource_url', path: '/v1' }, env: { OPENAI_BASE_URL: '{url}' } });
    expect(t.definition('github')).toMatchObject({ upstream: 'https://api.github.com', credential: { provider: 'github' }, env: { GITHUB_API_URL: '{url}', GH_TOKEN: 'credproxy-managed' } });
  });

  it('takes custom routes and preset overrides from the config file, with defaults filled in', () => {
    const t = table({ internal: custom, anthropic: { allow: [{ method: 'POST', path: '/v1/messages' }] } });
    expect(t.definition('internal')).toMatchObject({ header: 'Authorization', format: 'Bearer {}', extraHeaders: {}, allow: [{ method: 'POST', path: '/v1/messages*' }, { method: 'GET', path: '/v1/models' }] });
    expect(t.definition('anthropic')).toMatchObject({ header: 'x-api-key', allow: [{ method: 'POST', path: '/v1/messages' }] });
  });

  it('refuses bad routes naming the file and the field, never the value', () => {
    expect(configError({ x: { ...custom, upstream: 'http://example.com' } })).toMatch(/config\.json: routes\.x\.upstream: must be an https URL/);
    expect(configError({ x: { ...custom, format: 'Bearer' } })).toMatch(/routes\.x\.format: must contain \{\}/);
    expect(configError({ x: { ...custom, env: { CREDPROXY_SOCKET: '{url}' } } })).toMatch(/routes\.x\.env\.CREDPROXY_SOCKET/);
    expect(configError({ x: { ...custom, env: {} } })).toMatch(/routes\.x\.env: must set at least one variable/);
    expect(configError({ x: { ...custom, credential: { key: 'k', provider: 'p' } } })).toMatch(/routes\.x\.credential/);
    expect(configError({ x: { ...custom, extraHeaders: { 'x-a': 'line\r\nInjected: 1' } } })).toMatch(/routes\.x\.extraHeaders\.x-a: must be printable ASCII/);
    expect(configError({ x: { ...custom, allow: [{ method: 'POST', path: 'v1' }] } })).toMatch(/routes\.x\.allow\.0\.path/);
    expect(configError({ x: { ...custom, upstream: 'https://a.test/?k=secret-in-query' } })).not.toContain('secret-in-query');
    expect(configError({ x: { ...custom, surprise: 1 } })).toMatch(/routes\.x/);
    expect(configError({ anthropic: { credential: { key: 'bad name' } } })).toMatch(/routes\.anthropic\.credential/);
    expect(configError({ 'bad name': custom })).toMatch(/routes\.bad name: route names must match/);
    expect(configError({ x: { ...custom, ca: '/nonexistent/ca.pem' } })).toMatch(/routes\.x\.ca: cannot read \/nonexistent\/ca\.pem \(ENOENT\)/);
    expect(() => RouteTable.fromConfig({ routes: [] }, 'c.json')).toThrow(/routes must be an object/);
  });

  it('reads a relative ca from beside the config file', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cp-routes-'));
    try {
      fs.writeFileSync(path.join(dir, 'ca.pem'), '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n');
      const t = RouteTable.fromConfig({ routes: { x: { ...custom, ca: 'ca.pem' } } }, path.join(dir, 'config.json'));
      expect(t.caOf('x')).toContain('BEGIN CERTIFICATE');
      expect(t.caOf('anthropic')).toBeUndefined();
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('resolves --inject choices with their bucket; unknown routes and buckets on keys are refused', () => {
    const t = table({ internal: custom });
    expect(t.resolve([{ route: 'internal', bucket: 'other' }, { route: 'openai' }]).map((r) => [r.name, r.credential])).toEqual([
      ['internal', { provider: 'myidp', bucket: 'other' }],
      ['openai', { key: 'openai' }],
    ]);
    expect(() => t.resolve([{ route: 'nope' }])).toThrow(RouteError);
    expect(() => t.resolve([{ route: 'nope' }])).toThrow(/No injection route nope \(known: anthropic, /);
    expect(() => t.resolve([{ route: 'openai', bucket: 'b' }])).toThrow(/API key openai, which has no buckets/);
    expect(() => t.resolve([{ route: 'openai' }, { route: 'openai' }])).toThrow(/named twice/);
  });
});

describe('route matcher', () => {
  const t = table({ internal: custom });
  const routes = new Map<string, Route>(t.resolve([{ route: 'internal' }, { route: 'openai' }]).map((r) => [r.name, r]));

  it('forwards an allowed request\'s path after the route name, with its query', () => {
    expect(matchRequest(routes, 'POST', '/internal/v1/messages?beta=true')).toMatchObject({ ok: true, forward: '/v1/messages?beta=true', path: '/v1/messages' });
    expect(matchRequest(routes, 'POST', '/internal/v1/messages/count_tokens')).toMatchObject({ ok: true, forward: '/v1/messages/count_tokens' });
    expect(matchRequest(routes, 'DELETE', '/openai/v1/files/x')).toMatchObject({ ok: true, forward: '/v1/files/x' });
    expect(matchRequest(routes, 'GET', '/openai')).toMatchObject({ ok: true, forward: '/' });
  });

  it('404 for a route outside the grant, 403 outside the allowlist, 400 for dot segments and encoded slashes', () => {
    expect(matchRequest(routes, 'GET', '/github/user')).toMatchObject({ ok: false, status: 404, reason: 'no route "github" in this grant' });
    expect(matchRequest(routes, 'GET', '/internal/v1/messages')).toMatchObject({ ok: false, status: 403, reason: 'GET /v1/messages is not allowed on route internal' });
    expect(matchRequest(routes, 'POST', '/internal/v1/models')).toMatchObject({ status: 403 });
    expect(matchRequest(routes, 'GET', '/internal/v1/models/x')).toMatchObject({ status: 403 });
    for (const sneaky of ['/internal/v1/messages/../../admin', '/internal/v1/messages/%2e%2e/admin', '/internal/v1/messages%2f..%2fadmin', '/internal/v1/messages\\..\\admin']) {
      expect(matchRequest(routes, 'POST', sneaky)).toMatchObject({ ok: false, status: 400 });
    }
    expect(matchRequest(routes, 'GET', 'http://evil.test/openai/x')).toMatchObject({ ok: false, status: 400 });
  });

  it('400 for a fragment or a parameterised dot segment that an upstream would read as another path', () => {
    // Upstream URL parsers cut at '#', and some servers strip ';params' before resolving '..'.
    for (const sneaky of ['/internal/v1/admin#/v1/messages', '/internal/v1/messages/..;/admin', '/internal/v1/messages/%2e%2e;x/admin', '/internal/v1/mes sages']) {
      expect(matchRequest(routes, 'POST', sneaky)).toMatchObject({ ok: false, status: 400 });
    }
    expect(matchRequest(routes, 'POST', '/internal/v1/messages')).toMatchObject({ ok: true });
  });
});

describe('token binding (upstream and headers from the stored token)', () => {
  const t = table({
    internal: custom,
    tokenhost: { ...custom, upstream: 'https://fallback.test/base', upstreamFrom: { field: 'resource_url', path: '/v1', hosts: ['*.qwen.test', 'exact.test', 'exact.test:8443'] }, tokenHeaders: { 'X-Account': 'account_id' } },
  });
  const [internal, tokenhost] = t.resolve([{ route: 'internal' }, { route: 'tokenhost' }]);
  const token = (fields: Record<string, unknown>) => ({ access_token: 'a', expiry: 1, token_type: 'Bearer', account_id: 'acct-1', ...fields });
  const upstreamOf = (fields: Record<string, unknown>) => bindToken(tokenhost!, token(fields)).upstream.href;
  const refusal = (fields: Record<string, unknown>): string => {
    try {
      bindToken(tokenhost!, token(fields));
    } catch (err) {
      expect(err).toBeInstanceOf(TokenBindingError);
      return (err as Error).message;
    }
    throw new Error('expected a TokenBindingError');
  };

  it('keeps the configured upstream and its base path when the route takes nothing from the token', () => {
    expect(bindToken(internal!, null)).toEqual({ upstream: new URL('https://llm.example.test/api'), headers: {} });
  });

  it('takes the upstream from the token field (a host or a URL), adding the path unless it is there, and falls back without the field', () => {
    expect(upstreamOf({ resource_url: 'portal.qwen.test' })).toBe('https://portal.qwen.test/v1');
    expect(upstreamOf({ resource_url: 'https://portal.qwen.test/v1' })).toBe('https://portal.qwen.test/v1');
    expect(upstreamOf({ resource_url: 'https://exact.test:8443/' })).toBe('https://exact.test:8443/v1');
    expect(upstreamOf({})).toBe('https://fallback.test/base');
    expect(upstreamOf({ resource_url: '' })).toBe('https://fallback.test/base');
    expect(bindToken(tokenhost!, token({})).headers).toEqual({ 'x-account': 'acct-1' });
  });

  it('refuses a token that would send the credential to a host outside the route\'s hosts, or over plain http', () => {
    expect(refusal({ resource_url: 'evil.test' })).toBe('the token of route tokenhost names an upstream in resource_url on host evil.test, which is not among the route\'s hosts (*.qwen.test, exact.test, exact.test:8443)');
    // The port is part of the host: an allowed name on another port is another upstream.
    expect(refusal({ resource_url: 'portal.qwen.test:8443' })).toMatch(/on host portal\.qwen\.test:8443, which is not among/);
    // A suffix match needs the dot: "notqwen.test" is not a subdomain of qwen.test.
    expect(refusal({ resource_url: 'notqwen.test' })).toMatch(/host notqwen\.test, which is not among/);
    expect(refusal({ resource_url: 'qwen.test' })).toMatch(/not among/);
    expect(refusal({ resource_url: 'http://portal.qwen.test' })).toMatch(/not an https URL/);
    expect(refusal({ resource_url: 'https://user:pw@portal.qwen.test' })).toMatch(/not an https URL without credentials/);
    expect(refusal({ resource_url: 'https://portal.qwen.test/?x=1' })).toMatch(/without credentials or query/);
    // The token picks the host, never the path the credential goes to there.
    expect(refusal({ resource_url: 'https://portal.qwen.test/api/admin' })).toBe('the token of route tokenhost names an upstream in resource_url with a path other than /v1');
    expect(refusal({ resource_url: 'https://portal.qwen.test/a%2f..%2fadmin' })).toMatch(/with a path other than \/v1/);
    expect(refusal({ resource_url: 'exa mple.test' })).toMatch(/resource_url that is not a host name or URL/);
  });

  it('refuses a token without a field the route sends, or with one that would split a header', () => {
    expect(refusal({ account_id: undefined })).toBe('the token of route tokenhost has no account_id, which the route sends in X-Account');
    expect(refusal({ account_id: 'a\r\nInjected: 1' })).toBe('the account_id of the token of route tokenhost cannot be sent in a header');
  });

  it('a preset override can drop the token-named upstream (null) to pin one upstream, or change it', () => {
    const pinned = table({ qwen: { upstream: 'https://gateway.corp.test/qwen/v1', upstreamFrom: null } });
    expect(pinned.definition('qwen')!.upstreamFrom).toBeUndefined();
    expect(bindToken(pinned.resolve([{ route: 'qwen' }])[0]!, token({ resource_url: 'portal.qwen.ai' })).upstream.href).toBe('https://gateway.corp.test/qwen/v1');
    expect(table({ qwen: { credential: { key: 'dashscope' }, upstreamFrom: null } }).definition('qwen')!.credential).toEqual({ key: 'dashscope' });
    expect(configError({ qwen: { credential: { key: 'dashscope' } } })).toMatch(/routes\.qwen\.upstreamFrom: needs an OAuth credential/);
    expect(table({ qwen: { upstreamFrom: { field: 'resource_url', hosts: ['portal.qwen.ai'] } } }).definition('qwen')!.upstreamFrom).toEqual({ field: 'resource_url', hosts: ['portal.qwen.ai'] });
    expect(pinned.kindOf('qwen')).toBe('changed');
    expect(pinned.kindOf('codex')).toBe('preset');
  });

  it('refuses token fields on API-key routes, secret fields, and a token header that is the credential header', () => {
    expect(configError({ x: { ...custom, credential: { key: 'k' }, tokenHeaders: { 'x-a': 'account_id' } } })).toMatch(/routes\.x\.tokenHeaders: needs an OAuth credential/);
    expect(configError({ x: { ...custom, credential: { key: 'k' }, upstreamFrom: { field: 'resource_url', hosts: ['a.test'] } } })).toMatch(/routes\.x\.upstreamFrom: needs an OAuth credential/);
    expect(configError({ x: { ...custom, tokenHeaders: { 'x-a': 'refresh_token' } } })).toMatch(/routes\.x\.tokenHeaders\.x-a: names a secret/);
    expect(configError({ x: { ...custom, upstreamFrom: { field: 'obtained_at', hosts: ['a.test'] } } })).toMatch(/routes\.x\.upstreamFrom\.field: names a secret, host-only/);
    expect(configError({ x: { ...custom, upstreamFrom: { field: 'resource_url', hosts: [] } } })).toMatch(/routes\.x\.upstreamFrom\.hosts: must name at least one host/);
    for (const broad of ['*', '*.com', 'Portal.test', 'a.test:port']) {
      expect(configError({ x: { ...custom, upstreamFrom: { field: 'resource_url', hosts: [broad] } } })).toMatch(/routes\.x\.upstreamFrom\.hosts\.0: must be a lower-case host name, or \*\.domain\.tld/);
    }
    expect(configError({ x: { ...custom, tokenHeaders: { authorization: 'account_id' } } })).toMatch(/routes\.x\.tokenHeaders: must not set the header that carries the credential/);
  });
});

describe('header sanitizer', () => {
  const [route] = table({ internal: { ...custom, extraHeaders: { 'anthropic-beta': 'oauth-2025-04-20' }, header: 'X-Token', format: 'Tok {}' } }).resolve([{ route: 'internal' }]);

  it('drops every credential the sandbox sent and hop-by-hop headers, then sets the credential and extra headers', () => {
    const out = upstreamRequestHeaders(
      {
        host: '127.0.0.1:1234',
        authorization: 'Bearer credproxy-managed',
        'x-api-key': 'credproxy-managed',
        'x-goog-api-key': 'x',
        cookie: 'a=b',
        'proxy-authorization': 'Basic x',
        'x-token': 'sandbox-value',
        connection: 'keep-alive, x-hop',
        'x-hop': '1',
        'keep-alive': 'timeout=5',
        'transfer-encoding': 'chunked',
        te: 'trailers',
        upgrade: 'h2c',
        expect: '100-continue',
        'anthropic-beta': 'tools-2024',
        'content-type': 'application/json',
        'content-length': '12',
      },
      route!,
      'THE-CREDENTIAL',
    );
    expect(out).toEqual({ 'x-token': 'Tok THE-CREDENTIAL', 'anthropic-beta': 'tools-2024, oauth-2025-04-20', 'content-type': 'application/json', 'content-length': '12' });
  });

  it('refuses a credential that would split a header', () => {
    expect(() => upstreamRequestHeaders({}, route!, 'a\r\nb: c')).toThrow(/cannot be sent in a header/);
  });

  it('drops cookies and hop-by-hop headers from the answer', () => {
    expect(sandboxResponseHeaders({ 'set-cookie': ['s=1'], connection: 'close', 'transfer-encoding': 'chunked', 'content-type': 'text/event-stream', 'www-authenticate': 'Bearer' })).toEqual({
      'content-type': 'text/event-stream',
      'www-authenticate': 'Bearer',
    });
  });
});
