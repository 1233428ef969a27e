// Refresh storm: K concurrent get_token / refresh_token requests for one expiring token, over C
// connections spread across P `credproxy serve` processes sharing one file store, against a real
// authorization server (oidc-provider, in process on 127.0.0.1, rotating refresh tokens with reuse
// detection). Reports the upstream refresh count (the target is exactly 1) and request latency,
// beside one refresh through one daemon alone (upstream round trip + lock + store write).
// Usage: node --import ./bench/lib/ts-loader.mjs bench/storm.mjs [K] [C] [P]   (after `npm run build`)
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { FileStore } from '../dist/store/fileStore.js';
import { connectClient } from './lib/frameClient.mjs';
import { machine } from './lib/machine.mjs';
import { scratch, startServer } from './lib/servers.mjs';
import { latencySummary, median, round } from './lib/stats.mjs';

const PROVIDER = 'stormidp';
const here = path.dirname(fileURLToPath(import.meta.url));

/** The stored token made to need a refresh now: 20 s left of a one-hour lifetime, no recent attempt. */
function expiring(token) {
  const now = Date.now();
  const { refresh_attempted_at: _attempt, refresh_result: _result, ...rest } = token;
  return { ...rest, expiry: Math.floor(now / 1000) + 20, obtained_at: now - 3_580_000 };
}

const refreshesAt = (idp) => idp.stats.tokenRequestLog.filter((r) => r.grantType === 'refresh_token');

export async function run({ requests = 1000, connections = 50, processes = 4 } = {}) {
  // TypeScript test helpers, through the loader this script is run with.
  const { startAuthServer } = await import('../test/helpers/authServer.ts');
  const { deviceLogin, registryFrom, writeProviderConfig } = await import('../test/helpers/providerLogin.ts');
  const { dir, cleanup } = scratch('cpstorm-');
  const idp = await startAuthServer({ rotateRefreshTokens: true, accessTokenTtlSeconds: 3600 });
  const daemons = [];
  try {
    const config = path.join(dir, 'config.json');
    writeProviderConfig(config, idp, PROVIDER);
    const dataDir = path.join(dir, 'shared-data');
    fs.mkdirSync(dataDir, { mode: 0o700 });
    const store = await FileStore.open({ dataDir, env: {} });
    await store.saveToken(PROVIDER, 'default', await deviceLogin(registryFrom(config), PROVIDER, idp));
    for (let p = 0; p < processes; p++) {
      daemons.push(await startServer('file', { dir, name: `storm${p}`, extraArgs: ['--config', config], env: { CREDPROXY_HOME: dataDir } }));
    }

    const solo = await connectClient(daemons[0].socketPath);
    /** Makes the stored token expire soon, then has the storm client send `count` requests at once. */
    const storm = async (count) => {
      const child = spawn(process.execPath, [path.join(here, 'storm-client.mjs'), PROVIDER, String(count), String(connections), ...daemons.map((d) => d.socketPath)], { stdio: ['pipe', 'pipe', 'inherit'] });
      let out = '';
      child.stdout.on('data', (b) => (out += b));
      const exited = new Promise((resolve, reject) => child.once('exit', (code) => (code === 0 ? resolve() : reject(new Error(`storm client exited ${code}`)))));
      while (!out.includes('ready\n')) await new Promise((r) => child.stdout.once('data', r));
      await store.saveToken(PROVIDER, 'default', expiring(await store.getToken(PROVIDER, 'default')));
      const start = refreshesAt(idp).length;
      child.stdin.end('go\n');
      await exited;
      const result = JSON.parse(out.slice(out.indexOf('ready\n') + 6));
      return { refreshes: refreshesAt(idp).slice(start), latencies: result.latencies, failures: result.failures, tokens: new Set(result.tokens) };
    };
    // A first storm warms every daemon's refresh path (code loaded and compiled); not counted.
    await storm(200);

    // One refresh alone through one daemon, three times: the yardstick for the storm's latency.
    const soloTimes = [];
    for (let i = 0; i < 3; i++) {
      await store.saveToken(PROVIDER, 'default', expiring(await store.getToken(PROVIDER, 'default')));
      const before = refreshesAt(idp).length;
      const t0 = process.hrtime.bigint();
      const reply = await solo.request('refresh_token', { provider: PROVIDER });
      soloTimes.push(Number(process.hrtime.bigint() - t0) / 1e6);
      if (!reply.ok || refreshesAt(idp).length !== before + 1) throw new Error(`a solo refresh did not reach the server once: ${reply.code}`);
    }
    const soloMs = median(soloTimes);

    const { refreshes: stormRefreshes, latencies, failures, tokens } = await storm(requests);
    solo.close();
    const final = await store.getToken(PROVIDER, 'default');
    await store.close();
    const lat = latencySummary(latencies);
    return {
      requests,
      connections,
      processes,
      upstreamRefreshes: stormRefreshes.length,
      upstreamErrors: stormRefreshes.filter((r) => r.status !== 200).map((r) => r.error ?? r.status),
      failedRequests: failures,
      distinctTokensServed: tokens.size,
      finalTokenIsTheLatestIssued: final.access_token === idp.issued.accessTokens.at(-1),
      latencyMs: { p50: round(lat.p50, 1), p99: round(lat.p99, 1), max: round(Math.max(...latencies), 1) },
      soloRefreshMs: round(soloMs, 1),
      soloRefreshRuns: soloTimes.map((x) => round(x, 1)),
      p99ToSoloRefresh: round(lat.p99 / soloMs),
    };
  } finally {
    for (const d of daemons) await d.stop();
    await idp.close();
    cleanup();
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const [k, c, p] = process.argv.slice(2).map(Number);
  const result = await run({ ...(k && { requests: k }), ...(c && { connections: c }), ...(p && { processes: p }) });
  console.log(JSON.stringify({ machine: machine(), ...result }, null, 2));
}
