/** Token and API-key ops through a real socket, sanitization (§5) and grants (§7). */
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hashCapability } from '../../src/auth/capability.js';
import { parsePolicy } from '../../src/auth/policy.js';
import { createProviderRegistry } from '../../src/oauth/providers/registry.js';
import { providersFromConfig } from '../../src/oauth/config.js';
import { allReceivedText, RawClient } from '../helpers/rawClient.js';
import { HOST_REFRESH_TOKEN, sampleToken, startTestDaemon, type TestDaemon } from '../helpers/daemon.js';

let d: TestDaemon;
let c: RawClient;
beforeAll(async () => {
  d = await startTestDaemon();
  await d.store.saveToken('anthropic', 'default', sampleToken({ access_token: 'at-anthropic-default' }));
  await d.store.saveToken('anthropic', 'work', sampleToken({ access_token: 'at-anthropic-work' }));
  await d.store.saveToken('codex', 'default', sampleToken({ access_token: 'at-codex', account_id: 'acct-1', id_token: 'codex-id-token-secret' }));
  await d.store.setKey('openai', 'sk-openai-value');
  await d.store.setKey('groq', 'gsk-groq-value');
  c = await RawClient.ready(d.socketPath);
});
afterAll(async () => {
  c.close();
  await d.stop();
  // Across every byte any client read in this file: the host's refresh token never crossed.
  expect(allReceivedText()).not.toContain(HOST_REFRESH_TOKEN);
  expect(allReceivedText()).not.toContain('idt-secret-never-served');
});

describe('tokens', () => {
  it('get_token returns the sanitized token only', async () => {
    const reply = await c.request('get_token', { provider: 'anthropic' });
    expect(reply.ok).toBe(true);
    expect(Object.keys(reply.data as object).sort()).toEqual(['access_token', 'expiry', 'scope', 'token_type']);
    expect(reply.data).toMatchObject({ access_token: 'at-anthropic-default', token_type: 'Bearer', scope: 'read write' });
  });

  it('serves declared public provider fields and nothing else', async () => {
    const reply = await c.request('get_token', { provider: 'codex' });
    expect(reply.data).toMatchObject({ access_token: 'at-codex', account_id: 'acct-1' });
    expect(reply.data).not.toHaveProperty('id_token');
    expect(reply.data).not.toHaveProperty('refresh_token');
  });

  it('an undeclared field stays on the host; a daemon whose provider declares it public serves it', async () => {
    await d.store.saveToken('custom', 'default', sampleToken({ access_token: 'at-custom', tenant: 't-1' }));
    expect((await c.request('get_token', { provider: 'custom' })).data).not.toHaveProperty('tenant');
    const custom = {
      clientId: 'cli',
      flows: ['device_code'],
      endpoints: { token: 'https://idp.corp.internal/token', deviceAuthorization: 'https://idp.corp.internal/device' },
      publicFields: ['tenant'],
    };
    const providers = createProviderRegistry(providersFromConfig({ providers: { custom } }, 'test config'));
    const other = await startTestDaemon({ providers });
    try {
      await other.store.saveToken('custom', 'default', sampleToken({ access_token: 'at-custom', tenant: 't-1' }));
      const oc = await RawClient.ready(other.socketPath);
      const data = (await oc.request('get_token', { provider: 'custom' })).data as Record<string, unknown>;
      expect(data.tenant).toBe('t-1');
      expect(data).not.toHaveProperty('refresh_token');
      expect(data).not.toHaveProperty('id_token');
      // The first daemon (no such provider) still keeps the field: declarations are per daemon, not global.
      expect((await c.request('get_token', { provider: 'custom' })).data).not.toHaveProperty('tenant');
      oc.close();
    } finally {
      await other.stop();
    }
  });

  it('get_token of a missing bucket is NOT_FOUND', async () => {
    expect(await c.request('get_token', { provider: 'anthropic', bucket: 'nope' })).toMatchObject({ ok: false, code: 'NOT_FOUND' });
  });

  it('save_token keeps only allowlisted fields and merges them into the stored token', async () => {
    const reply = await c.request('save_token', {
      provider: 'anthropic',
      bucket: 'work',
      token: { access_token: 'at-new', expiry: 2_000_000_000, token_type: 'bearer', refresh_token: 'rt-from-sandbox', id_token: 'idt-from-sandbox', refresh_attempted_at: 1, extra: 'x' },
    });
    expect(reply).toMatchObject({ ok: true, data: {} });
    const stored = await d.store.getToken('anthropic', 'work');
    expect(stored).toMatchObject({ access_token: 'at-new', expiry: 2_000_000_000, token_type: 'Bearer', refresh_token: HOST_REFRESH_TOKEN, scope: 'read write', id_token: 'idt-secret-never-served' });
    // Host bookkeeping and undeclared fields from a client are dropped, never stored.
    expect(stored).not.toHaveProperty('refresh_attempted_at');
    expect(stored).not.toHaveProperty('extra');
  });

  it('save_token takes null for optional fields as absent (llxprt-code sends "scope": null)', async () => {
    const reply = await c.request('save_token', {
      provider: 'anthropic',
      bucket: 'nulls',
      token: { access_token: 'at-nulls', expiry: 2_000_000_000, token_type: null, scope: null, refresh_token: null, account_id: null },
    });
    expect(reply).toMatchObject({ ok: true, data: {} });
    const stored = (await d.store.getToken('anthropic', 'nulls'))!;
    // obtained_at: the host's own note of when this access token arrived (its lifetime starts there).
    expect(stored).toEqual({ access_token: 'at-nulls', expiry: 2_000_000_000, token_type: 'Bearer', obtained_at: expect.any(Number) });
    // Into an existing token, null leaves the stored scope as it was.
    await c.request('save_token', { provider: 'anthropic', bucket: 'work', token: { access_token: 'at-newer', expiry: 2_000_000_001, scope: null } });
    expect(await d.store.getToken('anthropic', 'work')).toMatchObject({ access_token: 'at-newer', scope: 'read write' });
  });

  it('save_token keeps a declared public field (codex account_id) and still refuses a wrong type', async () => {
    await c.request('save_token', { provider: 'codex', bucket: 'saved', token: { access_token: 'at-cx', expiry: 2_000_000_000, account_id: 'acct-9', tenant: 'no' } });
    const stored = (await d.store.getToken('codex', 'saved'))!;
    expect(stored).toEqual({ access_token: 'at-cx', expiry: 2_000_000_000, token_type: 'Bearer', account_id: 'acct-9', obtained_at: expect.any(Number) });
    expect(await c.request('save_token', { provider: 'codex', token: { access_token: 'at', expiry: 1, scope: 5 } })).toMatchObject({ code: 'INVALID_REQUEST', error: 'Invalid field "token.scope": must be string' });
  });

  it('save_token for a new bucket stores no refresh token at all', async () => {
    await c.request('save_token', { provider: 'anthropic', bucket: 'fresh', token: { access_token: 'at-f', expiry: 2_000_000_000, refresh_token: 'rt-sandbox' } });
    const stored = await d.store.getToken('anthropic', 'fresh');
    expect(stored?.refresh_token).toBeUndefined();
    expect(stored?.access_token).toBe('at-f');
  });

  it('the daemon sees writes made to the store behind its back (cache invalidation)', async () => {
    expect((await c.request('get_token', { provider: 'anthropic' })).data).toMatchObject({ access_token: 'at-anthropic-default' });
    await d.store.saveToken('anthropic', 'default', sampleToken({ access_token: 'at-rotated-elsewhere' }));
    expect((await c.request('get_token', { provider: 'anthropic' })).data).toMatchObject({ access_token: 'at-rotated-elsewhere' });
  });

  it('remove_token removes, and is idempotent', async () => {
    await d.store.saveToken('gone', 'default', sampleToken());
    expect(await c.request('remove_token', { provider: 'gone' })).toMatchObject({ ok: true, data: {} });
    expect(await d.store.getToken('gone', 'default')).toBeNull();
    expect(await c.request('remove_token', { provider: 'gone' })).toMatchObject({ ok: true, data: {} });
  });

  it('list_providers and list_buckets', async () => {
    expect((await c.request('list_providers')).data).toEqual({ providers: ['anthropic', 'codex', 'custom'] });
    expect((await c.request('list_buckets', { provider: 'anthropic' })).data).toEqual({ buckets: ['default', 'fresh', 'nulls', 'work'] });
  });

  it('get_bucket_stats counts served get_token requests per bucket', async () => {
    await c.request('get_token', { provider: 'anthropic', bucket: 'work' });
    const reply = await c.request('get_bucket_stats', { provider: 'anthropic', bucket: 'work' });
    expect(reply.ok).toBe(true);
    const stats = reply.data as { bucket: string; requestCount: number; percentage: number; lastUsed: number };
    expect(stats.bucket).toBe('work');
    expect(stats.requestCount).toBe(1);
    expect(stats.percentage).toBeGreaterThan(0);
    expect(stats.percentage).toBeLessThan(100);
    expect(typeof stats.lastUsed).toBe('number');
    expect(await c.request('get_bucket_stats', { provider: 'anthropic', bucket: 'nope' })).toMatchObject({ ok: false, code: 'NOT_FOUND' });
  });

  it('refresh_token without a provider config is PROVIDER_NOT_FOUND, checked before the store (§6.4)', async () => {
    expect(await c.request('refresh_token', { provider: 'anthropic', bucket: 'fresh' })).toMatchObject({ ok: false, code: 'PROVIDER_NOT_FOUND' });
    expect(await c.request('refresh_token', { provider: 'anthropic' })).toMatchObject({ ok: false, code: 'PROVIDER_NOT_FOUND' });
    expect(await c.request('refresh_token', { provider: 'nobody' })).toMatchObject({ ok: false, code: 'PROVIDER_NOT_FOUND' });
  });

  it('oauth ops are known: initiate → PROVIDER_NOT_FOUND, poll → SESSION_NOT_FOUND, cancel → {}', async () => {
    expect(await c.request('oauth_initiate', { provider: 'anthropic' })).toMatchObject({ ok: false, code: 'PROVIDER_NOT_FOUND' });
    expect(await c.request('oauth_poll', { session_id: '0'.repeat(32) })).toMatchObject({ ok: false, code: 'SESSION_NOT_FOUND' });
    expect(await c.request('oauth_exchange', { session_id: '0'.repeat(32), code: 'abc' })).toMatchObject({ ok: false, code: 'SESSION_NOT_FOUND' });
    expect(await c.request('oauth_cancel', { session_id: '0'.repeat(32) })).toMatchObject({ ok: true, data: {} });
  });
});

describe('api keys', () => {
  it('get_api_key, has_api_key, list_api_keys', async () => {
    expect(await c.request('get_api_key', { name: 'openai' })).toMatchObject({ ok: true, data: { key: 'sk-openai-value' } });
    expect(await c.request('get_api_key', { name: 'missing' })).toMatchObject({ ok: false, code: 'NOT_FOUND' });
    expect((await c.request('has_api_key', { name: 'openai' })).data).toEqual({ exists: true });
    expect((await c.request('has_api_key', { name: 'missing' })).data).toEqual({ exists: false });
    expect((await c.request('list_api_keys')).data).toEqual({ keys: ['groq', 'openai'] });
  });
});

describe('grants', () => {
  const capToken = 'c'.repeat(64);
  let g: TestDaemon;
  beforeAll(async () => {
    const policy = parsePolicy(
      JSON.stringify({
        default: { providers: { anthropic: ['default'] }, keys: ['openai'], ops: ['read'] },
        capabilities: [{ id: 'writer', tokenSha256: hashCapability(capToken).toString('hex'), providers: '*', keys: '*', ops: ['read', 'write'] }],
      }),
    );
    g = await startTestDaemon({ policy });
    await g.store.saveToken('anthropic', 'default', sampleToken());
    await g.store.saveToken('anthropic', 'work', sampleToken());
    await g.store.saveToken('gemini', 'default', sampleToken());
    await g.store.setKey('openai', 'sk-1');
    await g.store.setKey('groq', 'gsk-1');
  });
  afterAll(() => g.stop());

  it('the default grant limits providers, buckets, keys and op groups with UNAUTHORIZED naming the refusal', async () => {
    const u = await RawClient.ready(g.socketPath);
    expect(await u.request('get_token', { provider: 'anthropic' })).toMatchObject({ ok: true });
    expect(await u.request('get_token', { provider: 'anthropic', bucket: 'work' })).toMatchObject({
      ok: false,
      code: 'UNAUTHORIZED',
      error: 'Bucket work of provider anthropic is not allowed for this connection',
    });
    expect(await u.request('get_token', { provider: 'gemini' })).toMatchObject({ code: 'UNAUTHORIZED', error: 'Provider gemini is not allowed for this connection' });
    expect(await u.request('get_api_key', { name: 'groq' })).toMatchObject({ code: 'UNAUTHORIZED', error: 'API key groq is not allowed for this connection' });
    expect(await u.request('has_api_key', { name: 'groq' })).toMatchObject({ code: 'UNAUTHORIZED' });
    expect(await u.request('save_token', { provider: 'anthropic', token: { access_token: 'x', expiry: 1 } })).toMatchObject({
      code: 'UNAUTHORIZED',
      error: 'Operation save_token (write) is not allowed for this connection',
    });
    expect(await u.request('oauth_initiate', { provider: 'anthropic' })).toMatchObject({ code: 'UNAUTHORIZED' });
    expect(await u.request('refresh_token', { provider: 'anthropic' })).toMatchObject({ code: 'UNAUTHORIZED' });
    u.close();
  });

  it('list ops are filtered to the grant', async () => {
    const u = await RawClient.ready(g.socketPath);
    expect((await u.request('list_providers')).data).toEqual({ providers: ['anthropic'] });
    expect((await u.request('list_buckets', { provider: 'anthropic' })).data).toEqual({ buckets: ['default'] });
    expect(await u.request('list_buckets', { provider: 'gemini' })).toMatchObject({ code: 'UNAUTHORIZED' });
    expect((await u.request('list_api_keys')).data).toEqual({ keys: ['openai'] });
    u.close();
  });

  it('a capability token selects its own grant', async () => {
    const w = await RawClient.ready(g.socketPath, { minVersion: 1, maxVersion: 2, capabilityToken: capToken });
    expect(await w.request('get_token', { provider: 'gemini' })).toMatchObject({ ok: true });
    expect(await w.request('save_token', { provider: 'gemini', token: { access_token: 'x', expiry: 1 } })).toMatchObject({ ok: true });
    expect(await w.request('refresh_token', { provider: 'gemini' })).toMatchObject({ code: 'UNAUTHORIZED' });
    expect((await w.request('list_api_keys')).data).toEqual({ keys: ['groq', 'openai'] });
    w.close();
  });

  it('a policy without a default grant gives bare connections nothing', async () => {
    const bare = await startTestDaemon({ policy: parsePolicy('{}') });
    const u = await RawClient.ready(bare.socketPath);
    expect(await u.request('list_api_keys')).toMatchObject({ ok: false, code: 'UNAUTHORIZED' });
    u.close();
    await bare.stop();
  });
});

describe('policy file errors', () => {
  it.each([
    ['not json', /not valid JSON/],
    ['{"default":{"ops":["read","admin"]}}', /default\.ops\.1/],
    ['{"capabilities":[{"id":"x","tokenSha256":"abc"}]}', /capabilities\.0\.tokenSha256/],
    ['{"default":{"providers":{"bad name":"*"}}}', /default\.providers/],
    ['{"defaults":{}}', /Invalid field/],
    [`{"capabilities":[{"id":"default","tokenSha256":"${'a'.repeat(64)}"}]}`, /capabilities\.0\.id.*reserved/],
    [`{"capabilities":[{"id":"run-1","tokenSha256":"${'a'.repeat(64)}"}]}`, /capabilities\.0\.id.*must not start with "run-"/],
  ])('%s is rejected with a specific message', (text, pattern) => {
    expect(() => parsePolicy(text, path.join('x', 'policy.json'))).toThrow(pattern);
  });
});
