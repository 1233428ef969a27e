/**
 * `credproxy serve` wires the refresh coordinator: the real built CLI, its file store and config in a
 * private CREDPROXY_HOME, a real oidc-provider as a custom provider, refresh_token over the socket.
 */
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { defaultFlowDeps } from '../../src/oauth/flowDeps.js';
import { loadProviderRegistry } from '../../src/oauth/config.js';
import { FileStore } from '../../src/store/fileStore.js';
import { finished, makeSandbox, spawnCli, type Sandbox } from '../cli/cliHarness.js';
import { startAuthServer, type AuthServer } from '../helpers/authServer.js';
import { allReceivedText, RawClient } from '../helpers/rawClient.js';

const P = 'myidp';
let idp: AuthServer;
let box: Sandbox;

beforeAll(async () => {
  idp = await startAuthServer({ deviceInterval: 1, rotateRefreshTokens: true });
  box = makeSandbox();
});

afterAll(async () => {
  await idp?.close();
  box?.cleanup();
});

it('serve answers refresh_token with a refreshed sanitized token and stores the rotated refresh token', async () => {
  const dataDir = box.env.CREDPROXY_HOME!;
  fs.mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  const configPath = path.join(dataDir, 'config.json');
  fs.writeFileSync(
    configPath,
    JSON.stringify({ providers: { [P]: { clientId: idp.clientId, issuer: idp.issuer, scopes: idp.scopes.split(' '), flows: ['device_code'], endpoints: idp.endpoints } } }),
  );
  const deps = defaultFlowDeps({ now: Date.now });
  const flow = await loadProviderRegistry({ configPath }).get(P)!.start('device_code', deps);
  await idp.approveDevice(flow.publicData.user_code!);
  let login;
  for (;;) {
    const result = await flow.poll!(AbortSignal.timeout(15_000));
    if (result.status === 'complete') {
      login = result.token;
      break;
    }
    await new Promise((r) => setTimeout(r, result.pollIntervalMs));
  }
  const store = await FileStore.open({ dataDir, env: box.env });
  await store.saveToken(P, 'default', login);

  const daemon = spawnCli(['serve', '--store', 'file', '--json', '--audit', 'off'], box.env);
  daemon.stdin!.end();
  const exit = finished(daemon, 60_000);
  try {
    const socket = await new Promise<string>((resolve, reject) => {
      let buf = '';
      daemon.stdout!.on('data', (d: Buffer) => {
        buf += d.toString();
        if (buf.includes('\n')) resolve((JSON.parse(buf.slice(0, buf.indexOf('\n'))) as { socket: string }).socket);
      });
      void exit.then((r) => reject(new Error(`serve exited early (${r.code}): ${r.stderr}`)));
    });
    const from = idp.stats.tokenRequestLog.length;
    const c = await RawClient.ready(socket);
    const reply = await c.request('refresh_token', { provider: P });
    c.close();
    expect(reply.ok, JSON.stringify(reply)).toBe(true);
    const token = reply.data as Record<string, unknown>;
    expect(token).not.toHaveProperty('refresh_token');
    expect(token.access_token).not.toBe(login.access_token);
    expect(idp.stats.tokenRequestLog.slice(from).map((e) => [e.grantType, e.status])).toEqual([['refresh_token', 200]]);
    const stored = (await store.getToken(P, 'default'))!;
    expect(stored.access_token).toBe(token.access_token);
    expect(stored.refresh_token).toBe(idp.issued.refreshTokens.at(-1));
    expect(stored.refresh_token).not.toBe(login.refresh_token);
    for (const rt of idp.issued.refreshTokens) expect(allReceivedText()).not.toContain(rt);
  } finally {
    daemon.kill('SIGTERM');
    await exit;
    await store.close();
  }
}, 60_000);
