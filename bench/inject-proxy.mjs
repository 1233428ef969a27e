// Inject mode's proxy against calling the upstream directly, all measured in this run on this machine:
// the upstream (HTTPS, openssl-made CA) and the daemon each in their own process, the client here on
// keep-alive undici pools. Prints added latency per request (p50/p90/p99, sequential small GETs, over
// the proxy's loopback TCP port and its Unix socket), time to the first streamed SSE byte, and body
// throughput each way. Targets: ≤ 1 ms added at p50, throughput ≥ 0.8× direct.
// Throughput rounds alternate the targets; ratios are medians of pairs taken in the same round, with
// the daemon's CPU time per MiB beside them.
// Usage: node bench/inject-proxy.mjs [REQUESTS] [MIB] [ROUNDS]   (after `npm run build`)
import { execFileSync, spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { Agent, request } from 'undici';
import { median, ratioSummary } from './lib/stats.mjs';

const N = Number(process.argv[2] ?? 5000);
const MIB = Number(process.argv[3] ?? 128);
const ROUNDS = Number(process.argv[4] ?? 5);
const here = path.dirname(fileURLToPath(import.meta.url));
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cp-bench-inj-'));

function certs() {
  const ssl = (...args) => execFileSync('openssl', args, { cwd: dir, stdio: 'ignore' });
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  ssl('req', '-x509', ...ec, '-keyout', 'ca.key', '-out', 'ca.pem', '-days', '1', '-subj', '/CN=bench CA', '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign');
  fs.writeFileSync(path.join(dir, 'leaf.ext'), 'subjectAltName=IP:127.0.0.1\n');
  ssl('req', ...ec, '-keyout', 'leaf.key', '-out', 'leaf.csr', '-subj', '/CN=127.0.0.1');
  ssl('x509', '-req', '-in', 'leaf.csr', '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial', '-out', 'leaf.pem', '-days', '1', '-extfile', 'leaf.ext');
}

function start(...args) {
  const child = spawn(process.execPath, [path.join(here, 'inject-child.mjs'), ...args], { stdio: ['ignore', 'pipe', 'inherit'] });
  return new Promise((resolve, reject) => {
    let out = '';
    child.stdout.on('data', (d) => {
      out += d;
      const m = /^ready (.*)\n/.exec(out);
      if (m) resolve({ child, info: m[1] });
    });
    child.once('exit', (code) => reject(new Error(`${args[0]} exited ${code}`)));
  });
}

/** CPU seconds (user + system) a process has used, from /proc (Linux). */
function cpuSeconds(pid) {
  const fields = fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

const pct = (sorted, p) => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
const ms = (ns) => Number(ns) / 1e6;

async function latencies(target, count) {
  const out = [];
  for (let i = 0; i < count; i++) {
    const t0 = process.hrtime.bigint();
    const res = await request(`${target.origin}${target.prefix}/v1/models`, { dispatcher: target.dispatcher });
    await res.body.text();
    if (res.statusCode !== 200) throw new Error(`status ${res.statusCode}`);
    out.push(ms(process.hrtime.bigint() - t0));
  }
  return out.sort((a, b) => a - b);
}

async function firstByte(target, count) {
  const out = [];
  for (let i = 0; i < count; i++) {
    const t0 = process.hrtime.bigint();
    const res = await request(`${target.origin}${target.prefix}/v1/stream`, { dispatcher: target.dispatcher });
    let first;
    for await (const _chunk of res.body) first ??= process.hrtime.bigint();
    out.push(ms(first - t0));
  }
  return out.sort((a, b) => a - b);
}

async function download(target, bytes) {
  const t0 = process.hrtime.bigint();
  const res = await request(`${target.origin}${target.prefix}/v1/download?bytes=${bytes}`, { dispatcher: target.dispatcher });
  let n = 0;
  for await (const chunk of res.body) n += chunk.length;
  if (n !== bytes) throw new Error(`downloaded ${n} of ${bytes}`);
  return bytes / 1048576 / (ms(process.hrtime.bigint() - t0) / 1000);
}

async function upload(target, bytes) {
  const chunk = Buffer.alloc(64 * 1024, 0x62);
  let left = bytes;
  const body = new Readable({
    read() {
      if (left <= 0) return this.push(null);
      const part = left >= chunk.length ? chunk : chunk.subarray(0, left);
      left -= part.length;
      this.push(part);
    },
  });
  const t0 = process.hrtime.bigint();
  const res = await request(`${target.origin}${target.prefix}/v1/upload`, { method: 'POST', body, headers: { 'content-length': String(bytes) }, dispatcher: target.dispatcher });
  const { received } = JSON.parse(await res.body.text());
  if (received !== bytes) throw new Error(`uploaded ${received} of ${bytes}`);
  return bytes / 1048576 / (ms(process.hrtime.bigint() - t0) / 1000);
}

certs();
const upstream = await start('upstream', dir);
const port = Number(upstream.info);
const daemon = await start('daemon', dir, String(port));
const inject = JSON.parse(daemon.info);
const targets = {
  direct: { origin: `https://127.0.0.1:${port}`, prefix: '', dispatcher: new Agent({ connect: { ca: fs.readFileSync(path.join(dir, 'ca.pem'), 'utf8') }, keepAliveTimeout: 60_000 }) },
  // The loopback port answers only under the grant's key (what {url} holds for the program).
  'proxy tcp': { origin: `http://127.0.0.1:${inject.tcp.port}`, prefix: `/${inject.tcp.key}/bench`, dispatcher: new Agent({ keepAliveTimeout: 60_000 }) },
  'proxy unix': { origin: 'http://localhost', prefix: '/bench', dispatcher: new Agent({ connect: { socketPath: inject.socket }, keepAliveTimeout: 60_000 }) },
};

try {
  console.log(`inject proxy vs direct HTTPS upstream (node ${process.version}, ${os.cpus().length} cpus, ${N} sequential requests, ${ROUNDS} rounds of ${MIB} MiB bodies)`);
  const p50 = {};
  for (const [name, t] of Object.entries(targets)) {
    await latencies(t, Math.min(500, N)); // warm-up: connections, TLS, JIT
    const s = await latencies(t, N);
    p50[name] = pct(s, 50);
    console.log(`  latency     ${name.padEnd(10)} p50 ${pct(s, 50).toFixed(3)} ms  p90 ${pct(s, 90).toFixed(3)} ms  p99 ${pct(s, 99).toFixed(3)} ms`);
  }
  for (const name of ['proxy tcp', 'proxy unix']) console.log(`  added p50   ${name.padEnd(10)} ${(p50[name] - p50.direct).toFixed(3)} ms (target ≤ 1 ms)`);
  for (const [name, t] of Object.entries(targets)) {
    const s = await firstByte(t, 500);
    console.log(`  first byte  ${name.padEnd(10)} p50 ${pct(s, 50).toFixed(3)} ms  p99 ${pct(s, 99).toFixed(3)} ms (SSE)`);
  }
  // Throughput: ROUNDS rounds, each a MIB transfer per target and direction in rotating order, so
  // that the machine's drift moves direct and proxied alike; ratios are paired within a round.
  const bytes = MIB * 1048576;
  const names = Object.keys(targets);
  const runs = Object.fromEntries(names.map((n) => [n, { down: [], up: [], cpuDown: [], cpuUp: [] }]));
  for (const t of Object.values(targets)) await download(t, 16 * 1048576); // warm-up
  for (let r = 0; r < ROUNDS; r++) {
    const order = names.map((_, i) => names[(i + r) % names.length]);
    for (const dir of ['down', 'up']) {
      for (const name of order) {
        const before = cpuSeconds(daemon.child.pid);
        runs[name][dir].push(await (dir === 'down' ? download : upload)(targets[name], bytes));
        // The daemon's CPU milliseconds per MiB moved.
        runs[name][dir === 'down' ? 'cpuDown' : 'cpuUp'].push(((cpuSeconds(daemon.child.pid) - before) * 1000) / MIB);
      }
    }
  }
  for (const name of names) {
    const x = runs[name];
    const cpu = name === 'direct' ? '' : `  daemon cpu ${median(x.cpuDown).toFixed(2)} / ${median(x.cpuUp).toFixed(2)} ms per MiB`;
    console.log(`  throughput  ${name.padEnd(10)} down ${median(x.down).toFixed(0).padStart(4)} MiB/s  up ${median(x.up).toFixed(0).padStart(4)} MiB/s (median of ${ROUNDS})${cpu}`);
  }
  for (const name of ['proxy tcp', 'proxy unix']) {
    const down = ratioSummary(runs[name].down, runs.direct.down);
    const up = ratioSummary(runs[name].up, runs.direct.up);
    const f = (q) => `${q.median.toFixed(2)}× (${q.min.toFixed(2)}–${q.max.toFixed(2)})`;
    console.log(`  ratio       ${name.padEnd(10)} down ${f(down)}  up ${f(up)} direct (target ≥ 0.8×)`);
  }
} finally {
  for (const t of Object.values(targets)) await t.dispatcher.close();
  daemon.child.kill('SIGTERM');
  upstream.child.kill('SIGTERM');
  fs.rmSync(dir, { recursive: true, force: true });
}
