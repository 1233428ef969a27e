/**
 * `credproxy status` answers "will my agent work in an hour?": per bucket the time left, the refresh
 * token, the last refresh (when, how it ended), the running daemon's next renewal, and NEEDS LOGIN
 * with the command to run — through the real CLI, a real file store and a real `credproxy serve`.
 */
import { randomBytes } from 'node:crypto';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { REFRESH_ATTEMPT_FIELD, REFRESH_RESULT_FIELD } from '../../src/oauth/token.js';
import { FileStore } from '../../src/store/fileStore.js';
import { makeSandbox, runCli, startServe, type Sandbox } from './cliHarness.js';

let box: Sandbox;
const stops: Array<() => Promise<unknown>> = [];
beforeEach(() => {
  box = makeSandbox();
});
afterEach(async () => {
  for (const stop of stops.splice(0)) await stop();
  box.cleanup();
});

async function cli(args: string[], input?: string) {
  const r = await runCli(['--store', 'file', ...args], { env: box.env, ...(input !== undefined && { input }) });
  expect(r.code, r.stderr).toBe(0);
  return r;
}

interface StatusToken {
  provider: string;
  bucket: string;
  needsLogin?: boolean;
  fix?: string;
  lastRefresh?: { at: number; result?: string };
  nextRenewal?: number;
}

async function statusJson(): Promise<{ tokens: StatusToken[]; warnings: string[] }> {
  return JSON.parse((await cli(['status', '--json'])).stdout) as { tokens: StatusToken[]; warnings: string[] };
}

describe('status per bucket', () => {
  it('a rejected refresh token is NEEDS LOGIN with the command; a healthy one is not', async () => {
    const expiry = Math.floor(Date.now() / 1000) + 3600;
    const secret = `rt-${randomBytes(8).toString('hex')}`;
    await cli(['import', 'anthropic'], JSON.stringify({ access_token: 'at-ok', refresh_token: secret, expiry }));
    await cli(['import', 'gemini', '--bucket', 'work'], JSON.stringify({ access_token: 'at-bad', refresh_token: `${secret}-2`, expiry: expiry - 7200 }));
    // What a refresh that got invalid_grant leaves in the store (the coordinator writes these fields).
    const store = await FileStore.open({ dataDir: box.env.CREDPROXY_HOME!, env: box.env });
    const stamp = Date.now() - 60_000;
    await store.saveToken('gemini', 'work', { ...(await store.getToken('gemini', 'work'))!, [REFRESH_ATTEMPT_FIELD]: stamp, [REFRESH_RESULT_FIELD]: 'REAUTH_REQUIRED' });
    await store.close();

    const report = await statusJson();
    expect(report.tokens.find((t) => t.provider === 'anthropic')).toMatchObject({ needsLogin: false });
    expect(report.tokens.find((t) => t.provider === 'anthropic')).not.toHaveProperty('fix');
    expect(report.tokens.find((t) => t.provider === 'gemini')).toMatchObject({
      needsLogin: true,
      fix: 'credproxy login gemini --bucket work',
      lastRefresh: { at: stamp, result: 'REAUTH_REQUIRED' },
    });
    expect(report.warnings).toContain('gemini/work: the provider rejected its refresh token; run credproxy login gemini --bucket work');
    const text = (await cli(['status'])).stdout;
    expect(text).toMatch(/gemini\/work .*last refresh: 1m ago REAUTH_REQUIRED {2}NEEDS LOGIN: credproxy login gemini --bucket work/);
    expect(text).not.toContain(secret);
  });

  it('with a daemon running, the next renewal comes from it (expiry minus the lifetime-scaled lead)', async () => {
    const expiry = Math.floor(Date.now() / 1000) + 3600;
    await cli(['import', 'anthropic'], JSON.stringify({ access_token: 'at-ok', refresh_token: 'rt-ok', expiry }));
    const serve = startServe(['--store', 'file'], box.env);
    stops.push(async () => {
      serve.child.kill('SIGTERM');
      await serve.exit;
    });
    await serve.ready;
    const token = (await statusJson()).tokens.find((t) => t.provider === 'anthropic')!;
    // L = 1 h: lead min(max(300 s, 360 s), 1800 s) = 360 s, jitter up to min(30 s, 360 s) = 30 s.
    expect(token.nextRenewal).toBeGreaterThanOrEqual(expiry * 1000 - 360_000 - 30_000 - 2_000);
    expect(token.nextRenewal).toBeLessThanOrEqual(expiry * 1000 - 360_000 + 2_000);
    expect((await cli(['status'])).stdout).toMatch(/anthropic\/default .*next renewal: in 5\dm/);
  });
});
