// The servers under benchmark, each in its own process: the floor, or `credproxy serve` exactly as
// a user starts it (audit log on, the default limits raised for the run by the policy file's
// per-grant `limits`), on the memory, file or keyring store.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { pinned } from './machine.mjs';
import { connectClient } from './frameClient.mjs';

export const ROOT = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
/** The binary as package.json installs it: the bundled launcher (the helper path) that loads main.js for the rest. */
export const CLI = path.join(ROOT, 'dist', 'cli', 'credproxy.cjs');
const FLOOR = path.join(ROOT, 'bench', 'floor-server.mjs');

/** The benchmarks' grant: everything, with per-connection limits high enough for a closed loop. */
export const BENCH_POLICY = {
  default: { providers: '*', keys: '*', ops: ['read', 'refresh', 'login', 'write'], limits: { inFlight: 1024, perSecond: 1_000_000 } },
};

/** A private scratch directory (0700), removed by the returned cleanup. */
export function scratch(prefix = 'cpbench-') {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  return { dir, cleanup: () => fs.rmSync(dir, { recursive: true, force: true }) };
}

/** Environment of a daemon that touches nothing of the user's: its own data and runtime dirs. */
export function isolatedEnv(dir, extra = {}) {
  const env = { PATH: process.env.PATH, HOME: path.join(dir, 'home'), CREDPROXY_HOME: path.join(dir, 'data'), XDG_RUNTIME_DIR: path.join(dir, 'run'), ...extra };
  for (const d of [env.HOME, env.XDG_RUNTIME_DIR]) fs.mkdirSync(d, { recursive: true, mode: 0o700 });
  return env;
}

function waitForLine(child, what) {
  return new Promise((resolve, reject) => {
    let out = '';
    let err = '';
    child.stderr?.on('data', (b) => (err = (err + b).slice(-2000)));
    child.stdout.on('data', (b) => {
      out += b;
      if (out.includes('\n')) resolve(out.split('\n')[0]);
    });
    child.once('exit', (code) => reject(new Error(`${what} exited ${code} before it was ready: ${err.trim()}`)));
  });
}

/**
 * Starts a server; resolves once it printed its ready line. kind: 'floor' | 'memory' | 'file' |
 * 'keyring' | 'auto'. `cpu` pins it (null: not pinned). Returns {pid, socketPath, startMs, stop()}.
 */
export async function startServer(kind, { dir, cpu = null, extraArgs = [], env = {}, name = kind } = {}) {
  const socketPath = path.join(dir, `${name}.sock`);
  let command;
  let args;
  if (kind === 'floor') {
    ({ command, args } = pinned(cpu, process.execPath, [FLOOR, socketPath]));
  } else {
    const policy = path.join(dir, `${name}-policy.json`);
    fs.writeFileSync(policy, JSON.stringify(BENCH_POLICY));
    const serveArgs = [CLI, '--store', kind, 'serve', '--socket', socketPath, '--policy', policy, '--audit', path.join(dir, `${name}-audit.log`), ...extraArgs];
    ({ command, args } = pinned(cpu, process.execPath, serveArgs));
  }
  const childEnv = kind === 'floor' ? { PATH: process.env.PATH } : isolatedEnv(path.join(dir, name), env);
  const t0 = process.hrtime.bigint();
  const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'], env: childEnv });
  await waitForLine(child, `${name} server`);
  const startMs = Number(process.hrtime.bigint() - t0) / 1e6;
  let exited = false;
  child.once('exit', () => (exited = true));
  return {
    name,
    kind,
    pid: child.pid,
    socketPath,
    startMs,
    async stop() {
      if (exited) return;
      child.kill('SIGTERM');
      await new Promise((resolve) => child.once('exit', resolve));
    },
  };
}

/** Stores the token the get_token benchmarks read (a daemon; the floor has its canned one). */
export async function seedToken(server, provider = 'anthropic') {
  if (server.kind === 'floor') return;
  const c = await connectClient(server.socketPath);
  const reply = await c.request('save_token', { provider, token: { access_token: `at-bench-${server.name}`, expiry: Math.floor(Date.now() / 1000) + 3600, token_type: 'Bearer' } });
  c.close();
  if (!reply.ok) throw new Error(`save_token on ${server.name} failed: ${reply.code}`);
}

/** Resident set size of a process in MB (/proc). */
export function rssMb(pid) {
  const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = Number(/VmRSS:\s+(\d+)/.exec(status)?.[1]);
  return kb / 1024;
}

/** Whether a Secret Service answers on this session bus (the keyring store's condition). */
export function keyringAvailable() {
  return Boolean(process.env.DBUS_SESSION_BUS_ADDRESS);
}
