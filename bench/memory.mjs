// Daemon memory and start-up: RSS of `credproxy serve` right after its first request and once idle
// (SETTLE_MS later), then with 1 000 idle connections past the handshake (from 4 client processes); process start to socket ready (the ready line, after
// which the socket accepts), median of N starts, beside `node -e 0`.
// Usage: node bench/memory.mjs [N] [SETTLE_MS]   (after `npm run build`)
import { spawn, spawnSync } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { connectClient } from './lib/frameClient.mjs';
import { machine } from './lib/machine.mjs';
import { rssMb, scratch, seedToken, startServer } from './lib/servers.mjs';
import { median, round } from './lib/stats.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const settle = (ms) => new Promise((r) => setTimeout(r, ms));

/** Opens `count` connections (handshake done) from `procs` child processes; resolves once all are up. */
async function idleConnections(socketPath, count, procs) {
  const children = [];
  await Promise.all(
    Array.from({ length: procs }, (_, p) => {
      const mine = Math.floor(count / procs) + (p < count % procs ? 1 : 0);
      const child = spawn(process.execPath, [path.join(here, 'idle-client.mjs'), socketPath, String(mine)], { stdio: ['pipe', 'pipe', 'inherit'] });
      children.push(child);
      return new Promise((resolve, reject) => {
        child.stdout.once('data', resolve);
        child.once('exit', (code) => reject(new Error(`idle client exited ${code}`)));
      });
    }),
  );
  return () => Promise.all(children.map((c) => new Promise((r) => { c.once('exit', r); c.stdin.end(); })));
}

export async function run({ starts = 10, settleMs = 20_000 } = {}) {
  const { dir, cleanup } = scratch();
  try {
    const result = { idle: {}, startup: {} };
    for (const kind of ['memory', 'file']) {
      const server = await startServer(kind, { dir, name: `rss-${kind}` });
      await seedToken(server);
      // One request, so the request path is loaded and compiled as it is once the daemon has served.
      const c = await connectClient(server.socketPath);
      await c.request('get_token', { provider: 'anthropic' });
      c.close();
      // Idle means idle: V8 returns memory some seconds after the last activity, not at once.
      const justServed = rssMb(server.pid);
      await settle(settleMs);
      const idle = rssMb(server.pid);
      const close = await idleConnections(server.socketPath, 1000, 4);
      await settle(settleMs);
      const loaded = rssMb(server.pid);
      await close();
      await server.stop();
      result.idle[kind] = { rssAfterFirstRequestMb: round(justServed, 1), rssIdleMb: round(idle, 1), rssWith1000ConnectionsMb: round(loaded, 1), per1000ConnectionsMb: round(loaded - idle, 1) };
    }
    for (const kind of ['memory', 'file']) {
      const times = [];
      const nodeTimes = [];
      for (let i = 0; i < starts + 1; i++) {
        const t0 = process.hrtime.bigint();
        spawnSync(process.execPath, ['-e', '0']);
        const nodeMs = Number(process.hrtime.bigint() - t0) / 1e6;
        const server = await startServer(kind, { dir, name: `start-${kind}-${i}` });
        await server.stop();
        // The first start of each warms the page cache; it is not counted.
        if (i > 0) {
          times.push(server.startMs);
          nodeTimes.push(nodeMs);
        }
      }
      result.startup[kind] = { readyMs: round(median(times), 1), nodeMs: round(median(nodeTimes), 1), starts };
    }
    return result;
  } finally {
    cleanup();
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const result = await run({ starts: Number(process.argv[2] ?? 10), settleMs: Number(process.argv[3] ?? 20_000) });
  console.log(JSON.stringify({ machine: machine(), ...result }, null, 2));
}
