/**
 * Refresh across processes (PROTOCOL.md §6.4): several child processes, each with its own
 * RefreshCoordinator over its own FileStore on one data directory, refresh the same bucket at the
 * same moment against a real oidc-provider that rotates refresh tokens and revokes the grant on reuse.
 * Only the store's refresh lock and the re-read under it keep them to one upstream refresh.
 */
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { defaultFlowDeps } from '../../src/oauth/flowDeps.js';
import { loadProviderRegistry } from '../../src/oauth/config.js';
import { TokenService } from '../../src/oauth/TokenService.js';
import { RefreshCoordinator } from '../../src/oauth/refreshCoordinator.js';
import { FileStore } from '../../src/store/fileStore.js';
import type { StoredToken } from '../../src/store/types.js';
import { startAuthServer, type AuthServer } from '../helpers/authServer.js';
import { tempDir } from '../helpers/daemon.js';

const WORKER = fileURLToPath(new URL('../fixtures/refresh-worker.mjs', import.meta.url));
const run = promisify(execFile);
const P = 'myidp';

let idp: AuthServer;
let dir: string;
let configPath: string;

beforeAll(async () => {
  idp = await startAuthServer({ deviceInterval: 1, rotateRefreshTokens: true });
  dir = tempDir('cpr-');
  configPath = path.join(dir, 'config.json');
  fs.writeFileSync(
    configPath,
    JSON.stringify({ providers: { [P]: { clientId: idp.clientId, issuer: idp.issuer, scopes: idp.scopes.split(' '), flows: ['device_code'], endpoints: idp.endpoints } } }),
  );
});

afterAll(async () => {
  await idp?.close();
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

async function login(): Promise<StoredToken> {
  const deps = defaultFlowDeps({ now: Date.now });
  const flow = await loadProviderRegistry({ configPath, env: {} }).get(P)!.start('device_code', deps);
  await idp.approveDevice(flow.publicData.user_code!);
  for (;;) {
    const result = await flow.poll!(AbortSignal.timeout(15_000));
    if (result.status === 'complete') return result.token;
    await new Promise((r) => setTimeout(r, result.pollIntervalMs));
  }
}

it('4 processes refreshing one bucket at once → one upstream refresh, no invalid_grant, one shared token', async () => {
  const dataDir = path.join(dir, 'home');
  const store = await FileStore.open({ dataDir, env: {} });
  const initial = await login();
  await store.saveToken(P, 'default', initial);
  const from = idp.stats.tokenRequestLog.length;

  const startAt = Date.now() + 1_500; // every worker has loaded dist/ and opened its store by then
  const workers = Array.from({ length: 4 }, () =>
    run(process.execPath, [WORKER, JSON.stringify({ dataDir, configPath, provider: P, bucket: 'default', startAt })], { timeout: 60_000 }),
  );
  const results = (await Promise.all(workers)).map((r) => JSON.parse(r.stdout.trim()) as { ok: boolean; access_token?: string; code?: string });

  const log = idp.stats.tokenRequestLog.slice(from);
  expect(log.filter((e) => e.error === 'invalid_grant')).toEqual([]);
  expect(log.map((e) => [e.grantType, e.status])).toEqual([['refresh_token', 200]]);
  expect(results.every((r) => r.ok)).toBe(true);
  const tokens = new Set(results.map((r) => r.access_token));
  expect(tokens.size).toBe(1);
  expect(tokens.has(initial.access_token)).toBe(false);

  const stored = (await store.getToken(P, 'default'))!;
  expect(stored.access_token).toBe([...tokens][0]);
  expect(stored.refresh_token).not.toBe(initial.refresh_token);
  expect(stored.refresh_token).toBe(idp.issued.refreshTokens.at(-1));

  // The grant survived: the stored refresh token still works (a later process, past the cooldown).
  const later = new RefreshCoordinator({ tokens: new TokenService(store, { now: () => Date.now() + 31_000 }), registry: loadProviderRegistry({ configPath, env: {} }) });
  const next = await later.refresh(P, 'default');
  expect(next.access_token).not.toBe(stored.access_token);
  expect(idp.stats.tokenRequestLog.slice(from).map((e) => e.status)).toEqual([200, 200]);
  await store.close();
}, 90_000);
