/** The config file: presets only without one, overrides, custom providers, errors naming the field. */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ConfigError, defaultConfigPath, loadProviderRegistry } from '../../../src/oauth/config.js';
import type { StandardAdapter } from '../../../src/oauth/providers/standardAdapter.js';

const home = fs.mkdtempSync(path.join(os.tmpdir(), 'credproxy-config-'));
afterAll(() => fs.rmSync(home, { recursive: true, force: true }));

let n = 0;
function writeConfig(value: unknown): string {
  const file = path.join(home, `config-${n++}.json`);
  fs.writeFileSync(file, typeof value === 'string' ? value : JSON.stringify(value));
  return file;
}
const load = (value: unknown) => loadProviderRegistry({ configPath: writeConfig(value) });
const loadError = (value: unknown): string => {
  try {
    load(value);
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return (err as Error).message;
  }
  throw new Error('expected a ConfigError');
};

const CUSTOM = {
  clientId: 'cli',
  flows: ['device_code', 'pkce_redirect'],
  endpoints: { authorization: 'https://idp.example.com/auth', token: 'https://idp.example.com/token', deviceAuthorization: 'https://idp.example.com/device' },
  redirectUri: 'https://idp.example.com/oob',
};

describe('provider config', () => {
  it('no config file: the five presets with their flows', () => {
    const registry = loadProviderRegistry({ configPath: path.join(home, 'missing.json') });
    expect(registry.list()).toEqual([
      { name: 'anthropic', kind: 'preset', flows: ['pkce_redirect'] },
      { name: 'codex', kind: 'preset', flows: ['browser_redirect', 'device_code'] },
      { name: 'gemini', kind: 'preset', flows: ['pkce_redirect', 'browser_redirect'] },
      { name: 'github', kind: 'preset', flows: ['device_code'] },
      { name: 'qwen', kind: 'preset', flows: ['device_code'] },
    ]);
    expect(registry.get('nope')).toBeUndefined();
    expect(registry.get('__proto__')).toBeUndefined();
  });

  it('reads <CREDPROXY_HOME>/config.json by default', () => {
    const dir = fs.mkdtempSync(path.join(home, 'home-'));
    const env = { CREDPROXY_HOME: dir };
    expect(defaultConfigPath(env)).toBe(path.join(dir, 'config.json'));
    fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify({ providers: { mine: CUSTOM } }));
    expect(loadProviderRegistry({ env }).get('mine')?.flows).toEqual(['device_code', 'pkce_redirect']);
  });

  it('overrides merge into a preset: one endpoint replaced, the others kept', () => {
    const codex = load({ providers: { codex: { endpoints: { token: 'http://127.0.0.1:9/oauth/token' }, callback: { port: 0 } } } }).get('codex') as StandardAdapter;
    expect(codex.kind).toBe('preset');
    expect(codex.definition.endpoints.token).toBe('http://127.0.0.1:9/oauth/token');
    expect(codex.definition.endpoints.authorization).toBe('https://auth.openai.com/oauth/authorize');
    expect(codex.definition.callback).toEqual({ host: 'localhost', port: 0, path: '/auth/callback' });
    expect(codex.definition.authParams.originator).toBe('codex_cli_rs');
  });

  it('custom providers get the standard adapter, and each provider carries its own public fields', () => {
    const registry = load({ providers: { mine: { ...CUSTOM, publicFields: ['tenant'] } }, daemon: { ignored: true } });
    expect(registry.list().find((p) => p.name === 'mine')).toEqual({ name: 'mine', kind: 'custom', flows: ['device_code', 'pkce_redirect'] });
    expect(registry.get('mine')!.publicFields).toEqual(['tenant']);
    expect(registry.get('codex')!.publicFields).toEqual(['account_id']);
    // A registry without the custom provider knows nothing of its fields: no global declaration leaks.
    expect(load({}).get('mine')).toBeUndefined();
  });

  it('errors name the file and the field', () => {
    const cases: Array<[unknown, string]> = [
      [{ providers: { mine: { ...CUSTOM, endpoints: { ...CUSTOM.endpoints, token: 'http://idp.example.com/token' } } } }, 'providers.mine.endpoints.token: must be an https URL'],
      [{ providers: { mine: { ...CUSTOM, clientId: undefined } } }, 'providers.mine.clientId: is required'],
      [{ providers: { mine: { ...CUSTOM, redirectUri: undefined } } }, 'providers.mine.redirectUri: is required for the pkce_redirect flow'],
      [{ providers: { mine: { ...CUSTOM, endpoints: { token: 'https://idp.example.com/token' }, flows: ['device_code'] } } }, 'providers.mine.endpoints.deviceAuthorization: is required'],
      [{ providers: { mine: { ...CUSTOM, flows: ['implicit'] } } }, 'providers.mine.flows.0'],
      [{ providers: { mine: { ...CUSTOM, publicFields: ['refresh_token'] } } }, 'providers.mine.publicFields.0: names a secret, host-only or standard field'],
      [{ providers: { github: { clientid: 'x' } } }, 'providers.github: Unrecognized key: "clientid"'],
      [{ providers: { github: { endpoints: { token: 'ftp://x' } } } }, 'providers.github.endpoints.token'],
      [{ providers: { codex: { callback: { port: 70000 } } } }, 'providers.codex.callback.port'],
      [{ providers: { codex: { endpoints: { deviceAuthToken: null } } } }, 'providers.codex.endpoints.deviceAuthToken'],
      [{ providers: { 'bad name': CUSTOM } }, 'providers.bad name: provider names must match'],
      [{ providers: { mine: { ...CUSTOM, name: 'other' } } }, 'providers.mine.name: not allowed'],
      [{ providers: [] }, 'providers must be an object'],
      [[], 'the top level must be a JSON object'],
    ];
    for (const [config, expected] of cases) {
      const message = loadError(config);
      expect(message, JSON.stringify(config)).toContain(expected);
      expect(message).toMatch(/config-\d+\.json/);
    }
  });

  it('invalid JSON names the file without quoting its content', () => {
    const message = loadError('{"providers": {"gemini": {"clientSecret": "TOP-SECRET-VALUE" ,,}}}');
    expect(message).toMatch(/config-\d+\.json: not valid JSON$/);
    expect(message).not.toContain('TOP-SECRET');
  });

  it('an invalid secret field never echoes the value', () => {
    const message = loadError({ providers: { gemini: { clientSecret: '' }, mine: { ...CUSTOM, clientSecret: 'TOP-SECRET', tokenEndpointAuthMethod: 'private_key_jwt' } } });
    expect(message).toContain('providers.gemini.clientSecret');
    expect(message).not.toContain('TOP-SECRET');
  });

  it('an unreadable path is an error naming it', () => {
    const dir = fs.mkdtempSync(path.join(home, 'dir-'));
    expect(() => loadProviderRegistry({ configPath: dir })).toThrow(new ConfigError(`Cannot read config file ${dir}: EISDIR`));
  });
});
