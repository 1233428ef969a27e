// get_token latency (serial) and throughput (closed loop, 1/16/64 connections from separate client
// processes) of `credproxy serve` on each store, against the floor server, measured in this run.
//
// Serial: one connection per server; rounds of ROUND requests go to each server in turn (the order
// rotates every round), and each round's p50 is divided by the floor's p50 of the same round. The
// client and every server are pinned to one CPU when taskset is available: unpinned, whether a
// ping-pong pair shares a core or wakes the other one decides a 20 µs vs 90 µs round trip on a VM,
// which is placement luck, not daemon cost.
//
// Usage: node bench/latency.mjs [--quick]   (after `npm run build`)
import { spawn } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { connectClient } from './lib/frameClient.mjs';
import { canPin, machine, pinSelf } from './lib/machine.mjs';
import { keyringAvailable, scratch, seedToken, startServer } from './lib/servers.mjs';
import { latencySummary, median, ratioSummary, round } from './lib/stats.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const GET = { provider: 'anthropic' };

async function timedRound(client, count, samples) {
  const perRound = [];
  for (let i = 0; i < count; i++) {
    const t0 = process.hrtime.bigint();
    const reply = await client.request('get_token', GET);
    const us = Number(process.hrtime.bigint() - t0) / 1000;
    if (reply.ok !== true) throw new Error(`get_token failed: ${reply.code}`);
    samples.push(us);
    perRound.push(us);
  }
  return median(perRound);
}

/** Serial latency of every server, alternated in rounds; ratios to the floor per round. */
export async function serialLatency(servers, { rounds, round: roundSize, warmup }) {
  const clients = await Promise.all(servers.map((s) => connectClient(s.socketPath)));
  for (const c of clients) await timedRound(c, warmup, []);
  const samples = servers.map(() => []);
  const roundP50 = servers.map(() => []);
  for (let r = 0; r < rounds; r++) {
    for (let k = 0; k < servers.length; k++) {
      const i = (k + r) % servers.length;
      roundP50[i].push(await timedRound(clients[i], roundSize, samples[i]));
    }
  }
  clients.forEach((c) => c.close());
  const floor = roundP50[0];
  return servers.map((s, i) => ({
    server: s.name,
    ...mapValues(latencySummary(samples[i]), (v) => round(v, 1)),
    ratioToFloor: i === 0 ? null : mapValues(ratioSummary(roundP50[i], floor), (v) => round(v)),
  }));
}

function mapValues(obj, fn) {
  return Object.fromEntries(Object.entries(obj).map(([k, v]) => [k, k === 'n' || k === 'pairs' ? v : fn(v)]));
}

/** Requests per second of `conns` closed-loop connections spread over up to 4 client processes. */
async function throughputOnce(server, conns, durationMs) {
  const procs = Math.min(conns, 4);
  const startAt = Date.now() + 300;
  const counts = await Promise.all(
    Array.from({ length: procs }, (_, p) => {
      const mine = Math.floor(conns / procs) + (p < conns % procs ? 1 : 0);
      const child = spawn(process.execPath, [path.join(here, 'throughput-client.mjs'), server.socketPath, String(mine), String(durationMs), String(startAt)], { stdio: ['ignore', 'pipe', 'inherit'] });
      let out = '';
      child.stdout.on('data', (b) => (out += b));
      return new Promise((resolve, reject) =>
        child.once('exit', (code) => (code === 0 ? resolve(JSON.parse(out)) : reject(new Error(`throughput client exited ${code}`)))),
      );
    }),
  );
  const done = counts.reduce((a, c) => a + c.done, 0);
  const ms = Math.max(...counts.map((c) => c.ms));
  return (done / ms) * 1000;
}

/** Throughput of each daemon against the floor, alternated: floor, daemon, floor, daemon, … */
export async function throughput(servers, { connections, rounds, durationMs }) {
  const out = [];
  for (const conns of connections) {
    const rates = servers.map(() => []);
    for (let r = 0; r < rounds; r++) {
      for (let k = 0; k < servers.length; k++) {
        const i = (k + r) % servers.length;
        rates[i].push(await throughputOnce(servers[i], conns, durationMs));
      }
    }
    servers.forEach((s, i) => {
      out.push({
        server: s.name,
        connections: conns,
        requestsPerSecond: Math.round(median(rates[i])),
        ratioToFloor: i === 0 ? null : mapValues(ratioSummary(rates[i], rates[0]), (v) => round(v)),
      });
    });
  }
  return out;
}

/** Starts the floor and the daemons (keyring only when a session bus is there), all on `cpu`. */
export async function startAll(dir, cpu) {
  const servers = [await startServer('floor', { dir, cpu }), await startServer('memory', { dir, cpu }), await startServer('file', { dir, cpu })];
  const notes = [];
  if (keyringAvailable()) {
    try {
      servers.push(await startServer('keyring', { dir, cpu, env: { DBUS_SESSION_BUS_ADDRESS: process.env.DBUS_SESSION_BUS_ADDRESS } }));
    } catch (err) {
      notes.push(`keyring store not measured: ${err.message.split('\n')[0]}`);
    }
  } else notes.push('keyring store not measured: no D-Bus session bus (DBUS_SESSION_BUS_ADDRESS unset)');
  for (const s of servers) await seedToken(s);
  return { servers, notes };
}

export async function run({ quick = false } = {}) {
  const { dir, cleanup } = scratch();
  const result = { machine: machine(), notes: [] };
  try {
    // Serial: client (this process) and servers on CPU 0.
    const serialCpu = canPin() ? 0 : null;
    if (serialCpu !== null) await pinSelf(0);
    let { servers, notes } = await startAll(dir, serialCpu);
    result.notes.push(...notes);
    result.serial = await serialLatency(servers, quick ? { rounds: 8, round: 250, warmup: 500 } : { rounds: 40, round: 500, warmup: 2000 });
    for (const s of servers) await s.stop();
    // Throughput: nothing pinned; the clients and the server share the machine as they would.
    if (serialCpu !== null) await pinSelf(`0-${machine().cores - 1}`);
    ({ servers } = await startAll(dir, null));
    result.throughput = await throughput(servers, quick ? { connections: [1, 16, 64], rounds: 2, durationMs: 300 } : { connections: [1, 16, 64], rounds: 5, durationMs: 1000 });
    for (const s of servers) await s.stop();
  } finally {
    cleanup();
  }
  return result;
}


if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const result = await run({ quick: process.argv.includes('--quick') });
  console.log(JSON.stringify(result, null, 2));
}
