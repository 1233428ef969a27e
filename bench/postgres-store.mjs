// Cached get_token latency of `credproxy serve` on the PostgreSQL store against the memory store,
// alternated in rounds on one pinned CPU exactly as latency.mjs measures the daemon against the
// floor; the PostgreSQL server is the test suite's private one (test/helpers/postgres.ts: initdb
// in a temp directory, a unix socket there, no TCP).
// Usage: node --import ./bench/lib/ts-loader.mjs bench/postgres-store.mjs   (after `npm run build`;
// needs Debian's postgresql)
import { fileURLToPath } from 'node:url';
import { serialLatency } from './latency.mjs';
import { canPin, machine, pinSelf } from './lib/machine.mjs';
import { scratch, seedToken, startServer } from './lib/servers.mjs';

export async function run({ quick = false } = {}) {
  const { startPostgres } = await import('../test/helpers/postgres.ts');
  const { dir, cleanup } = scratch('cpbpg-');
  const pg = await startPostgres();
  const servers = [];
  try {
    const cpu = canPin() ? 0 : null;
    if (cpu !== null) await pinSelf(cpu);
    servers.push(await startServer('memory', { dir, cpu }), await startServer('postgres', { dir, cpu, env: { CREDPROXY_STORE_URL: pg.url } }));
    for (const s of servers) await seedToken(s);
    // The first server is the reference of serialLatency's ratios: here the memory store.
    const [memory, postgres] = await serialLatency(servers, quick ? { rounds: 8, round: 250, warmup: 500 } : { rounds: 40, round: 500, warmup: 2000 });
    const { ratioToFloor: _reference, ...memoryFigures } = memory;
    const { ratioToFloor: ratioToMemory, ...postgresFigures } = postgres;
    return { memory: memoryFigures, postgres: { ...postgresFigures, ratioToMemory } };
  } finally {
    for (const s of servers) await s.stop();
    await pg.destroy();
    cleanup();
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const result = await run({ quick: process.argv.includes('--quick') });
  console.log(JSON.stringify({ machine: machine(), ...result }, null, 2));
  console.log(`postgres / memory p50: ${result.postgres.ratioToMemory.median}x [${result.postgres.ratioToMemory.q1}–${result.postgres.ratioToMemory.q3}] (target ≤ 1.1x)`);
}
