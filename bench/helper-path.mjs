// The helper path: wall time of `credproxy token P` through the proxy (what a sandbox's apiKeyHelper
// or git helper pays per call) against `node -e 0` on the same machine, alternated in one run.
// Median of N runs after one warm-up of each. Usage: node bench/helper-path.mjs [N]  (after `npm run build`)
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { ProxyClient } from '../dist/client/index.js';

const N = Number(process.argv[2] ?? 10);
const root = path.join(path.dirname(fileURLToPath(import.meta.url)), '..');
const cli = path.join(root, 'dist', 'cli', 'main.js');
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cpb-'));
const socketPath = path.join(dir, 'b.sock');

const serve = spawn(process.execPath, [cli, 'serve', '--store', 'memory', '--socket', socketPath, '--audit', 'off'], {
  stdio: ['ignore', 'pipe', 'ignore'],
  env: { ...process.env, CREDPROXY_HOME: path.join(dir, 'home') },
});
await new Promise((resolve, reject) => {
  serve.stdout.once('data', resolve);
  serve.once('exit', (code) => reject(new Error(`serve exited ${code}`)));
});
const client = new ProxyClient({ socketPath });
await client.request('save_token', { provider: 'github', token: { access_token: 'gho-bench', expiry: Math.floor(Date.now() / 1000) + 3600 } });
await client.close();

const env = { ...process.env, CREDPROXY_SOCKET: socketPath };
function wallMs(args) {
  const start = process.hrtime.bigint();
  const r = spawnSync(process.execPath, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
  if (r.status !== 0) throw new Error(`${args.join(' ')} failed: ${r.stderr}`);
  return Number(process.hrtime.bigint() - start) / 1e6;
}
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

const floor = [];
const token = [];
wallMs(['-e', '0']);
wallMs([cli, 'token', 'github']);
for (let i = 0; i < N; i++) {
  floor.push(wallMs(['-e', '0']));
  token.push(wallMs([cli, 'token', 'github']));
}
serve.kill('SIGTERM');
fs.rmSync(dir, { recursive: true, force: true });
const f = median(floor);
const t = median(token);
console.log(`machine: ${os.cpus().length} cores, Node ${process.version}, load ${os.loadavg()[0].toFixed(2)}`);
console.log(`node -e 0                     ${f.toFixed(1)} ms (median of ${N})`);
console.log(`credproxy token (via proxy)   ${t.toFixed(1)} ms (median of ${N})  = ${(t / f).toFixed(2)}x node -e 0`);
