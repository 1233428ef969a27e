/**
 * The refresh storm on the keyring store: four processes, each with its own RefreshCoordinator over
 * its own KeyringStore on one data directory and one real Secret Service (a private dbus-daemon and
 * gnome-keyring-daemon, test/store/secretService.ts), refresh one bucket at the same moment against
 * a real oidc-provider that rotates refresh tokens and revokes the grant on reuse. Only the store's
 * refresh lock and the re-read under it keep them to one upstream refresh.
 * With CI=true this must run: missing components fail the suite instead of skipping it.
 */
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startAuthServer, type AuthServer } from '../helpers/authServer.js';
import { tempDir } from '../helpers/daemon.js';
import { deviceLogin, registryFrom, writeProviderConfig } from '../helpers/providerLogin.js';
import { startWorker, stopAllWorkers } from '../helpers/renewalWorker.js';
import { missingBinaries, SECRET_SERVICE_PACKAGES, startSecretService, type SecretService } from '../store/secretService.js';

const missing = missingBinaries();
const required = process.env.CI === 'true';
const skip = missing.length > 0 && !required;
if (skip) {
  console.warn(`Skipping the keyring refresh storm: ${missing.join(', ')} not found (Debian: apt-get install ${SECRET_SERVICE_PACKAGES}). With CI=true it fails instead.`);
}

const P = 'myidp';

describe.skipIf(skip)('refresh storm on the keyring store (real Secret Service)', () => {
  let ss: SecretService | undefined;
  let idp: AuthServer;
  let dir: string;

  beforeAll(async () => {
    if (missing.length > 0) throw new Error(`CI=true but ${missing.join(', ')} not installed: apt-get install ${SECRET_SERVICE_PACKAGES}`);
    ss = await startSecretService();
    idp = await startAuthServer({ deviceInterval: 0.1, rotateRefreshTokens: true });
    dir = tempDir('cprk-');
  });

  afterAll(async () => {
    await stopAllWorkers();
    await idp?.close();
    await ss?.stop();
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  /** Runs one worker to its end and returns its last line. */
  async function once(cmd: Record<string, unknown>): Promise<Record<string, unknown>> {
    const w = startWorker(cmd, ss!.env);
    const { code, stderr } = await w.exited;
    if (code !== 0) throw new Error(`worker ${String(cmd.op)} exited with ${code}: ${stderr}`);
    return w.lines.at(-1)!;
  }

  it('4 processes refreshing one bucket at once → one upstream refresh, no invalid_grant, one shared token, items in the Secret Service', async () => {
    const configPath = path.join(dir, 'config.json');
    writeProviderConfig(configPath, idp, P);
    const dataDir = path.join(dir, 'home');
    const store = { backend: 'keyring', dataDir, service: `credproxy-storm-${process.pid}` };
    const initial = await deviceLogin(registryFrom(configPath), P, idp);
    await once({ op: 'save', ...store, provider: P, bucket: 'default', token: initial });
    expect(await ss!.searchItems(store.service)).toHaveLength(1);
    const fromServer = idp.stats.tokenRequestLog.length;

    const workers = Array.from({ length: 4 }, () => startWorker({ op: 'refresh', ...store, configPath, provider: P, bucket: 'default', gate: true }, ss!.env));
    await Promise.all(workers.map((w) => w.waitFor((l) => l.event === 'ready', 'ready')));
    for (const w of workers) w.child.stdin!.write('go\n');
    const exits = await Promise.all(workers.map((w) => w.exited));
    expect(exits.map((e) => e.code), exits.map((e) => e.stderr).join('\n')).toEqual([0, 0, 0, 0]);
    const results = workers.map((w) => w.lines.at(-1) as { ok: boolean; access_token?: string; code?: string });

    const log = idp.stats.tokenRequestLog.slice(fromServer);
    console.log(`keyring storm: ${log.length} token request(s) at the server for 4 concurrent refreshes: ${JSON.stringify(log.map((e) => [e.grantType, e.status]))}`);
    expect(log.filter((e) => e.error === 'invalid_grant')).toEqual([]);
    expect(log.map((e) => [e.grantType, e.status])).toEqual([['refresh_token', 200]]);
    expect(results.every((r) => r.ok), JSON.stringify(results)).toBe(true);
    const tokens = new Set(results.map((r) => r.access_token));
    expect(tokens.size).toBe(1);
    expect(tokens.has(initial.access_token)).toBe(false);

    const stored = (await once({ op: 'read', ...store, provider: P, bucket: 'default' })).token as Record<string, unknown>;
    expect(stored.access_token).toBe([...tokens][0]);
    expect(stored.refresh_token).not.toBe(initial.refresh_token);
    expect(stored.refresh_token).toBe(idp.issued.refreshTokens.at(-1));
    expect(await ss!.searchItems(store.service)).toHaveLength(1);

    // The grant survived: the stored refresh token still works (a later process, past the cooldown).
    const later = await once({ op: 'refresh', ...store, configPath, provider: P, bucket: 'default', skewMs: 31_000 });
    expect(later).toMatchObject({ ok: true });
    expect(later.access_token).not.toBe(stored.access_token);
    expect(idp.stats.tokenRequestLog.slice(fromServer).map((e) => e.status)).toEqual([200, 200]);
    await ss!.assertHealthy();
  }, 60_000);
});
