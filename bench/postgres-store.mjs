// Cached get_token latency on the PostgreSQL store against the memory store, each through a real
// daemon socket in its own process, measured in this run on this machine. The PostgreSQL server is
// a private one: initdb into a temp directory (as the postgres user when run as root), a unix
// socket in that directory, no TCP — the approach of test/helpers/postgres.ts.
// Usage: node bench/postgres-store.mjs [REQUESTS]   (after `npm run build`; needs Debian's postgresql)
import { execFileSync, spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { encodeFrame, FrameDecoder } from '../dist/protocol/framing.js';

const N = Number(process.argv[2] ?? 20000);
const WARMUP = 2000;
const ROUND = 500;
const here = path.dirname(fileURLToPath(import.meta.url));

function postgresBin() {
  const root = '/usr/lib/postgresql';
  const majors = fs.existsSync(root) ? fs.readdirSync(root).filter((d) => /^\d+$/.test(d)).sort((a, b) => b - a) : [];
  const bin = majors.map((m) => path.join(root, m, 'bin')).find((b) => fs.existsSync(path.join(b, 'postgres')));
  if (!bin) throw new Error('no PostgreSQL server under /usr/lib/postgresql/*/bin (Debian: apt-get install postgresql)');
  return bin;
}

/** Starts a private server; resolves once a query goes through. */
async function startPostgres(base) {
  const bin = postgresBin();
  const owner = process.getuid() === 0 ? 'postgres' : null;
  const as = (file, args) => (owner ? ['setpriv', [`--reuid=${owner}`, `--regid=${owner}`, '--init-groups', '--', file, ...args]] : [file, args]);
  const data = path.join(base, 'pgdata');
  const sock = path.join(base, 'pgsock');
  fs.mkdirSync(sock);
  if (owner) {
    execFileSync('chown', ['-R', `${owner}:`, base]);
    fs.chmodSync(base, 0o755);
  }
  const user = owner ?? os.userInfo().username;
  execFileSync(...as(path.join(bin, 'initdb'), ['-D', data, '-U', user, '--auth=trust', '--no-instructions']), { stdio: 'pipe' });
  const child = spawn(...as(path.join(bin, 'postgres'), ['-D', data, '-k', sock, '-c', 'listen_addresses=']), { stdio: 'ignore' });
  for (;;) {
    if (child.exitCode !== null) throw new Error('postgres exited during startup');
    const c = new pg.Client({ host: sock, user, database: 'postgres' });
    try {
      await c.connect();
      await c.end();
      break;
    } catch {
      await c.end().catch(() => {});
      await new Promise((r) => setTimeout(r, 50));
    }
  }
  return { child, url: `postgres://${user}@/postgres?host=${encodeURIComponent(sock)}` };
}

function startDaemon(mode, dir, label) {
  const socketPath = path.join(dir, `${label}.sock`);
  const child = spawn(process.execPath, [path.join(here, 'server-child.mjs'), mode, socketPath, path.join(dir, `${label}-data`)], {
    stdio: ['ignore', 'pipe', 'inherit'],
    env: { ...process.env, CREDPROXY_PASSPHRASE: '' },
  });
  return new Promise((resolve, reject) => {
    child.stdout.once('data', (b) => resolve({ child, socketPath, label: b.toString().trim().replace('ready ', '') }));
    child.once('exit', (code) => reject(new Error(`${label} daemon exited ${code}`)));
  });
}

async function connect(socketPath) {
  const sock = net.connect(socketPath);
  await new Promise((r) => sock.once('connect', r));
  const decoder = new FrameDecoder(4 * 1024 * 1024);
  let waiter = null;
  sock.on('data', (chunk) => {
    for (const f of decoder.push(chunk)) waiter?.(f);
  });
  const roundTrip = (frame) =>
    new Promise((resolve) => {
      waiter = resolve;
      sock.write(encodeFrame(frame));
    });
  await roundTrip({ v: 2, op: 'handshake', payload: { minVersion: 1, maxVersion: 2 } });
  let seq = 0;
  return {
    async run(count, samples) {
      for (let i = 0; i < count; i++) {
        const t0 = process.hrtime.bigint();
        const reply = await roundTrip({ v: 2, id: `b${seq++}`, op: 'get_token', payload: { provider: 'anthropic' } });
        const dt = Number(process.hrtime.bigint() - t0) / 1000;
        if (reply.ok !== true) throw new Error(`get_token failed: ${JSON.stringify(reply)}`);
        samples?.push(dt);
      }
    },
    close: () => sock.destroy(),
  };
}

function percentiles(samples) {
  const sorted = Float64Array.from(samples).sort();
  const pct = (p) => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
  return { p50: pct(50), p90: pct(90), p99: pct(99) };
}

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cpbp-'));
const daemons = [];
let postgres = null;
const results = [];
try {
  postgres = await startPostgres(dir);
  daemons.push(await startDaemon('memory', dir, 'memory'), await startDaemon(postgres.url, dir, 'postgres'));
  const clients = await Promise.all(daemons.map((d) => connect(d.socketPath)));
  for (const c of clients) await c.run(WARMUP);
  // Interleaved short rounds, so machine noise falls on both alike.
  const samples = clients.map(() => []);
  for (let done = 0; done < N; done += ROUND) for (let i = 0; i < clients.length; i++) await clients[i].run(ROUND, samples[i]);
  clients.forEach((c) => c.close());
  daemons.forEach((d, i) => results.push({ label: d.label, ...percentiles(samples[i]) }));
} finally {
  for (const d of daemons) d.child.kill('SIGTERM');
  await Promise.all(daemons.map((d) => new Promise((r) => (d.child.exitCode !== null ? r() : d.child.once('exit', r)))));
  if (postgres) {
    postgres.child.kill('SIGINT');
    await new Promise((r) => (postgres.child.exitCode !== null ? r() : postgres.child.once('exit', r)));
  }
  fs.rmSync(dir, { recursive: true, force: true });
}

console.log(`cached get_token round trips: ${N} sequential requests after ${WARMUP} warm-up, one connection per daemon (µs)`);
for (const r of results) console.log(`${r.label.padEnd(10)} p50 ${r.p50.toFixed(1).padStart(7)}  p90 ${r.p90.toFixed(1).padStart(7)}  p99 ${r.p99.toFixed(1).padStart(7)}`);
const [memory, postgresResult] = results;
console.log(`postgres / memory p50: ${(postgresResult.p50 / memory.p50).toFixed(2)}x (target ≤ 1.1x)`);
