// get_token latency: the daemon (memory store, default store) against a bare Node frame server,
// all measured in this run on this machine. Sequential requests on one connection; prints p50/p90/p99.
// Usage: node bench/get-token.mjs [REQUESTS]   (after `npm run build`)
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { encodeFrame, FrameDecoder } from '../dist/protocol/framing.js';

const N = Number(process.argv[2] ?? 20000);
const WARMUP = 2000;
const here = path.dirname(fileURLToPath(import.meta.url));

function startServer(mode, dir) {
  const socketPath = path.join(dir, `${mode}.sock`);
  const child = spawn(process.execPath, [path.join(here, 'server-child.mjs'), mode, socketPath, path.join(dir, `${mode}-data`)], {
    stdio: ['ignore', 'pipe', 'inherit'],
    env: { ...process.env, CREDPROXY_PASSPHRASE: process.env.CREDPROXY_PASSPHRASE ?? '' },
  });
  return new Promise((resolve, reject) => {
    child.stdout.once('data', (b) => resolve({ child, socketPath, label: b.toString().trim().replace('ready', mode) }));
    child.once('exit', (code) => reject(new Error(`${mode} server exited ${code}`)));
  });
}

/** A connected, handshaken client that times sequential get_token round trips. */
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

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cpb-'));
const servers = [];
const results = [];
try {
  for (const mode of ['bare', 'memory', 'auto']) servers.push(await startServer(mode, dir));
  const clients = await Promise.all(servers.map((s) => connect(s.socketPath)));
  for (const c of clients) await c.run(WARMUP);
  // Interleave short rounds so machine noise falls on every server alike.
  const ROUND = 500;
  const samples = clients.map(() => []);
  for (let done = 0; done < N; done += ROUND) for (let i = 0; i < clients.length; i++) await clients[i].run(ROUND, samples[i]);
  clients.forEach((c) => c.close());
  servers.forEach((s, i) => results.push({ label: s.label, ...percentiles(samples[i]) }));
} finally {
  for (const s of servers) s.child.kill('SIGTERM');
  fs.rmSync(dir, { recursive: true, force: true });
}

console.log(`get_token round trips: ${N} sequential requests after ${WARMUP} warm-up, one connection (µs)`);
for (const r of results) console.log(`${r.label.padEnd(16)} p50 ${r.p50.toFixed(1).padStart(7)}  p90 ${r.p90.toFixed(1).padStart(7)}  p99 ${r.p99.toFixed(1).padStart(7)}`);
const [bare, memory, auto] = results;
console.log(`memory / bare p50: ${(memory.p50 / bare.p50).toFixed(2)}x (target ≤ 1.3x)`);
console.log(`default store / memory p50: ${(auto.p50 / memory.p50).toFixed(2)}x (target ≤ 2x)`);
