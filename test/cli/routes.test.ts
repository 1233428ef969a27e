/** `credproxy routes`: the presets and the config file's routes, checked, as a table or JSON; never a credential. */
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

const PRESETS = ['anthropic', 'anthropic-oauth', 'codex', 'gemini', 'github', 'openai', 'qwen'];

function writeConfig(config: unknown, file = path.join(box.env.CREDPROXY_HOME!, 'config.json')): string {
  writeFileSync(file, typeof config === 'string' ? config : JSON.stringify(config));
  return file;
}

describe('routes', () => {
  it('without a config file: the presets, with credential, header and upstream', async () => {
    const r = await runCli(['routes'], { env: box.env });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toBe('');
    const lines = r.stdout.trimEnd().split('\n');
    expect(lines[0]).toMatch(/^NAME\s+KIND\s+CREDENTIAL\s+HEADER\s+UPSTREAM$/);
    expect(lines.slice(1).map((l) => l.split(/\s+/)[0])).toEqual(PRESETS);
    expect(r.stdout).toMatch(/^anthropic\s+preset\s+key anthropic\s+x-api-key\s+https:\/\/api\.anthropic\.com$/m);
    expect(r.stdout).toMatch(/^qwen\s+preset\s+provider qwen\s+Authorization\s+https:\/\/<token's resource_url>\/v1, else https:\/\/dashscope\.aliyuncs\.com\/compatible-mode\/v1$/m);
  });

  it('--json marks a changed preset and lists a custom route after the presets', async () => {
    writeConfig({
      routes: {
        anthropic: { allow: [{ method: 'POST', path: '/v1/messages*' }] },
        internal: { upstream: 'https://llm.corp.test/api', credential: { provider: 'my-idp', bucket: 'work' }, env: { LLM_BASE_URL: '{url}', LLM_API_KEY: 'credproxy-managed' } },
      },
    });
    const r = await runCli(['routes', '--json'], { env: box.env });
    expect(r.code, r.stderr).toBe(0);
    const { routes } = JSON.parse(r.stdout) as { routes: Array<Record<string, unknown>> };
    expect(routes.map((x) => x.name)).toEqual([...PRESETS, 'internal']);
    expect(routes.find((x) => x.name === 'anthropic')).toEqual({ name: 'anthropic', kind: 'changed', upstream: 'https://api.anthropic.com', credential: 'key anthropic', header: 'x-api-key', env: ['ANTHROPIC_BASE_URL', 'ANTHROPIC_API_KEY'], allow: ['POST /v1/messages*'] });
    expect(routes.at(-1)).toEqual({ name: 'internal', kind: 'custom', upstream: 'https://llm.corp.test/api', credential: 'provider my-idp/work', header: 'Authorization', env: ['LLM_BASE_URL', 'LLM_API_KEY'] });
    expect(routes.find((x) => x.name === 'qwen')).toMatchObject({ kind: 'preset', upstreamFrom: { field: 'resource_url', hosts: ['*.qwen.ai', 'dashscope.aliyuncs.com', 'dashscope-intl.aliyuncs.com'], path: '/v1' } });
  });

  it('a bad route is one error line naming the file and the field; a missing --config file is an error', async () => {
    const file = writeConfig({ routes: { internal: { upstream: 'http://llm.corp.test', credential: { key: 'k' }, env: { X: '{url}' } } } });
    expect(expectOneErrorLine(await runCli(['routes'], { env: box.env }))).toBe(
      `credproxy: Invalid config file ${file}: routes.internal.upstream: must be an https URL (plain http only for 127.0.0.1, ::1 or localhost)`,
    );
    const missing = path.join(box.dir, 'nope.json');
    expect(expectOneErrorLine(await runCli(['routes', '--config', missing], { env: box.env }))).toBe(`credproxy: Config file ${missing} does not exist`);
  });
});
