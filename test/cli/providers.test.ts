/** `credproxy providers`: presets and custom providers from the config file, with their flows. */
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { expectOneErrorLine, makeSandbox, runCli, type Sandbox } from './cliHarness.js';

let box: Sandbox;
beforeEach(() => {
  box = makeSandbox();
  mkdirSync(box.env.CREDPROXY_HOME!, { recursive: true, mode: 0o700 });
});
afterEach(() => box.cleanup());

const CUSTOM = {
  clientId: 'cli',
  scopes: ['openid'],
  flows: ['pkce_redirect', 'device_code'],
  endpoints: {
    authorization: 'https://idp.example.com/authorize',
    token: 'https://idp.example.com/token',
    deviceAuthorization: 'https://idp.example.com/device',
  },
  redirectUri: 'https://idp.example.com/code',
};

function writeConfig(config: unknown, file = path.join(box.env.CREDPROXY_HOME!, 'config.json')): string {
  writeFileSync(file, typeof config === 'string' ? config : JSON.stringify(config));
  return file;
}

const PRESETS = ['anthropic', 'codex', 'gemini', 'github', 'qwen'];

describe('providers', () => {
  it('without a config file: the presets and their flows, default first', async () => {
    const r = await runCli(['providers'], { env: box.env });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toBe('');
    const lines = r.stdout.trimEnd().split('\n');
    expect(lines[0]).toMatch(/^NAME\s+KIND\s+FLOWS \(first = default\)$/);
    expect(lines.slice(1).map((l) => l.split(/\s+/)[0])).toEqual(PRESETS);
    expect(r.stdout).toMatch(/^anthropic\s+preset\s+paste$/m);
    expect(r.stdout).toMatch(/^github\s+preset\s+device$/m);
  });

  it('lists a custom provider after the presets; --json gives wire names and --flow names', async () => {
    writeConfig({ providers: { 'my-idp': CUSTOM, github: { clientId: 'Iv1.x' } } });
    const text = await runCli(['providers'], { env: box.env });
    expect(text.stdout.trimEnd().split('\n').at(-1)).toMatch(/^my-idp\s+custom\s+paste, device$/);

    const json = await runCli(['providers', '--json'], { env: box.env });
    expect(json.code, json.stderr).toBe(0);
    const { providers } = JSON.parse(json.stdout) as { providers: Array<{ name: string; kind: string; flows: string[]; flowOptions: string[] }> };
    expect(providers.map((p) => p.name)).toEqual([...PRESETS, 'my-idp']);
    expect(providers.find((p) => p.name === 'my-idp')).toEqual({ name: 'my-idp', kind: 'custom', flows: ['pkce_redirect', 'device_code'], flowOptions: ['paste', 'device'] });
    expect(providers.find((p) => p.name === 'codex')).toMatchObject({ kind: 'preset', flows: expect.arrayContaining(['browser_redirect', 'device_code']) });
    for (const p of providers) expect(Object.keys(p)).toEqual(['name', 'kind', 'flows', 'flowOptions']);
  });

  it('--config FILE reads another file; a missing one is an error rather than presets only', async () => {
    const other = writeConfig({ providers: { elsewhere: CUSTOM } }, path.join(box.dir, 'other.json'));
    const r = await runCli(['providers', '--json', '--config', other], { env: box.env });
    expect((JSON.parse(r.stdout) as { providers: Array<{ name: string }> }).providers.map((p) => p.name)).toContain('elsewhere');
    const missing = await runCli(['providers', '--config', path.join(box.dir, 'nope.json')], { env: box.env });
    expect(expectOneErrorLine(missing)).toBe(`credproxy: Config file ${path.join(box.dir, 'nope.json')} does not exist`);
  });

  it('an invalid config is one error line naming the field, never a value', async () => {
    const file = writeConfig({ providers: { bad: { ...CUSTOM, clientSecret: 'sekrit-value', endpoints: { token: 'ftp://x' } } } });
    const r = await runCli(['providers'], { env: box.env });
    const line = expectOneErrorLine(r);
    expect(line).toContain(file);
    expect(line).toContain('providers.bad.endpoints.token');
    expect(line).not.toContain('sekrit-value');
    writeConfig('{ not json');
    expect(expectOneErrorLine(await runCli(['providers', '--json'], { env: box.env }))).toBe(`credproxy: Invalid config file ${file}: not valid JSON`);
  });

  it('serve refuses to start on an invalid config, before touching the store', async () => {
    writeConfig('[]');
    const r = await runCli(['serve', '--store', 'memory', '--audit', 'off'], { env: box.env });
    expect(expectOneErrorLine(r)).toMatch(/^credproxy: Invalid config file .*config\.json/);
  });
});
