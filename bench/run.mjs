// `npm run bench`: every benchmark of bench/, one after the other, on this machine; prints a table
// and writes bench/results.json (figures, targets met or not, and the machine they came from).
// Usage: npm run bench [-- --quick]   (--quick: fewer rounds, for a smoke run; not for publishing)
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { run as helperPath } from './helper-path.mjs';
import { run as latency } from './latency.mjs';
import { machine } from './lib/machine.mjs';
import { run as memory } from './memory.mjs';
import { run as pipeline } from './pipeline.mjs';
import { run as storm } from './storm.mjs';

const quick = process.argv.includes('--quick');
const here = path.dirname(fileURLToPath(import.meta.url));
const log = (line) => process.stderr.write(`${line}\n`);

const started = machine();
log(`machine: ${started.cores} cores (${started.cpu}), Node ${started.node}, load ${started.loadAverage.join(' ')}, pinning: ${started.pinning}`);
log('the daemon\'s own work per request (no sockets) …');
const pipe = await pipeline({ requests: quick ? 50_000 : 200_000 });
log('get_token latency and throughput …');
const lat = await latency({ quick });
log('helper path …');
const helper = await helperPath({ iterations: quick ? 4 : 10 });
log('memory and start-up …');
const mem = await memory({ starts: quick ? 3 : 10, settleMs: quick ? 2_000 : 20_000 });
log('refresh storm …');
const st = await storm(quick ? { requests: 200, connections: 20, processes: 2 } : {});

const serial = Object.fromEntries(lat.serial.map((r) => [r.server, r]));
const tput = (server, conns) => lat.throughput.find((r) => r.server === server && r.connections === conns);
const target = (name, value, limit, ok) => ({ name, value, limit, met: ok });
const targets = [
  target('serial get_token p50 / floor (memory store)', serial.memory.ratioToFloor.median, '≤ 1.15', serial.memory.ratioToFloor.median <= 1.15),
  target('throughput / floor at 16 connections (memory store)', tput('memory', 16).ratioToFloor.median, '≥ 0.85', tput('memory', 16).ratioToFloor.median >= 0.85),
  target('throughput / floor at 64 connections (memory store)', tput('memory', 64).ratioToFloor.median, '≥ 0.85', tput('memory', 64).ratioToFloor.median >= 0.85),
  target('default (file) store p50 / memory store p50', Number((serial.file.p50 / serial.memory.p50).toFixed(2)), '≤ 1.1', serial.file.p50 / serial.memory.p50 <= 1.1),
  target('credproxy token via the proxy / node -e 0', helper.tokenToNode.median, '≤ 1.5', helper.tokenToNode.median <= 1.5),
  target('daemon RSS idle, MB (default store)', mem.idle.file.rssIdleMb, '≤ 60', mem.idle.file.rssIdleMb <= 60),
  target('RSS added by 1000 idle connections, MB', mem.idle.file.per1000ConnectionsMb, '≤ 30', mem.idle.file.per1000ConnectionsMb <= 30),
  target('process start to socket ready, ms (default store)', mem.startup.file.readyMs, '≤ 300', mem.startup.file.readyMs <= 300),
  target('refresh storm: upstream refreshes', st.upstreamRefreshes, '= 1', st.upstreamRefreshes === 1),
  target('refresh storm: p99 / one refresh alone', st.p99ToSoloRefresh, '< 2 (+ lock hand-off)', st.p99ToSoloRefresh < 2),
];

const results = { machine: started, finishedLoadAverage: machine().loadAverage, quick, pipeline: pipe, latency: lat, helperPath: helper, memory: mem, storm: st, targets };
if (!quick) fs.writeFileSync(path.join(here, 'results.json'), `${JSON.stringify(results, null, 2)}\n`);

const pad = (s, n) => String(s).padEnd(n);
console.log(`\nthe daemon's own work per get_token, no sockets: ${pipe.daemonNsPerRequest} ns (the floor's decode + encode: ${pipe.floorNsPerRequest} ns; added ${pipe.addedNsPerRequest} ns)`);
console.log(`serial get_token, one connection (µs; ratio = median over ${lat.serial[1].ratioToFloor.pairs} alternated rounds, [q1–q3])`);
for (const r of lat.serial) console.log(`  ${pad(r.server, 8)} p50 ${pad(r.p50, 7)} p99 ${pad(r.p99, 8)} p99.9 ${pad(r.p999, 8)} ${r.ratioToFloor ? `${r.ratioToFloor.median}x floor [${r.ratioToFloor.q1}–${r.ratioToFloor.q3}]` : ''}`);
console.log('throughput, closed loop (requests/s; ratio = median of alternated rounds)');
for (const r of lat.throughput) console.log(`  ${pad(r.server, 8)} ${pad(`${r.connections} conns`, 9)} ${pad(r.requestsPerSecond, 7)} ${r.ratioToFloor ? `${r.ratioToFloor.median}x floor` : ''}`);
console.log(`helper path (median of ${helper.iterations}): node -e 0 ${helper.medianMs.node} ms, credproxy token ${helper.medianMs.token} ms (${helper.tokenToNode.median}x), git credential fill ${helper.medianMs.gitFill} ms (${helper.gitFillToNode.median}x)`);
for (const [kind, m] of Object.entries(mem.idle)) console.log(`memory (${kind}): RSS idle ${m.rssIdleMb} MB, +1000 idle connections ${m.per1000ConnectionsMb} MB`);
for (const [kind, s] of Object.entries(mem.startup)) console.log(`start-up (${kind}): ready after ${s.readyMs} ms (node -e 0: ${s.nodeMs} ms)`);
console.log(`refresh storm: ${st.requests} requests, ${st.connections} connections, ${st.processes} daemons → ${st.upstreamRefreshes} upstream refresh(es), failures ${JSON.stringify(st.failedRequests)}, p99 ${st.latencyMs.p99} ms vs ${st.soloRefreshMs} ms for one refresh alone`);
for (const n of lat.notes) console.log(`note: ${n}`);
console.log('\ntargets');
for (const t of targets) console.log(`  ${t.met ? 'met    ' : 'NOT MET'} ${pad(t.name, 56)} ${pad(t.value, 8)} (${t.limit})`);
if (!quick) console.log(`\nwritten: ${path.relative(process.cwd(), path.join(here, 'results.json'))}`);
