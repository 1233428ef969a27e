/** Shared helpers of the store tests: temp dirs, sample tokens, and child processes on dist/. */
import { spawn, type ChildProcess } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { StoredToken } from '../../src/store/types.js';

export const ROOT = fileURLToPath(new URL('../..', import.meta.url));
export const WORKER = path.join(ROOT, 'test/fixtures/store-worker.mjs');

const made: string[] = [];

export function tempDir(prefix = 'cps-'): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  made.push(dir);
  return dir;
}

export function removeTempDirs(): void {
  for (const dir of made.splice(0)) fs.rmSync(dir, { recursive: true, force: true });
}

export function token(overrides: Partial<StoredToken> = {}): StoredToken {
  return { access_token: 'at-1', expiry: 1_900_000_000, token_type: 'Bearer', refresh_token: 'rt-1', ...overrides };
}

/** Same derivation as the fixture worker. */
export function blobFor(seq: number, size: number): string {
  const unit = crypto.createHash('sha256').update(String(seq)).digest('hex');
  return unit.repeat(Math.ceil(size / unit.length)).slice(0, size);
}

/** Fails clearly when dist/ was not built (test/globalSetup.ts builds it). */
export function assertBuilt(): void {
  const entry = path.join(ROOT, 'dist/store/index.js');
  if (!fs.existsSync(entry)) throw new Error(`${entry} is missing: run \`npm run build\` (test/globalSetup.ts does it unless CREDPROXY_SKIP_BUILD=1)`);
}

export interface WorkerRun {
  child: ChildProcess;
  /** Lines printed so far. */
  lines: string[];
  /** Resolves on exit with the code (null when killed) and stderr. */
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null; stderr: string }>;
  /** Resolves once `count` lines have been printed. */
  waitForLines(count: number): Promise<void>;
}

/** process.env without CREDPROXY_PASSPHRASE, so a developer's own setting cannot leak into tests. */
export function cleanEnv(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  const env = { ...process.env, ...extra };
  if (!('CREDPROXY_PASSPHRASE' in extra)) delete env.CREDPROXY_PASSPHRASE;
  return env;
}

export function startWorker(cmd: Record<string, unknown>, env: NodeJS.ProcessEnv = cleanEnv()): WorkerRun {
  const child = spawn(process.execPath, [WORKER, JSON.stringify(cmd)], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  const lines: string[] = [];
  const waiters: { count: number; resolve: () => void }[] = [];
  let partial = '';
  let stderr = '';
  child.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
    const parts = (partial + chunk).split('\n');
    partial = parts.pop()!;
    lines.push(...parts);
    for (const w of waiters.splice(0)) {
      if (lines.length >= w.count) w.resolve();
      else waiters.push(w);
    }
  });
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null; stderr: string }>((resolve) =>
    child.on('close', (code, signal) => resolve({ code, signal, stderr })),
  );
  return {
    child,
    lines,
    exited,
    waitForLines(count) {
      if (lines.length >= count) return Promise.resolve();
      return new Promise<void>((resolve, reject) => {
        waiters.push({ count, resolve });
        void exited.then(({ code, stderr: err }) => reject(new Error(`worker exited (${code}) after ${lines.length} lines: ${err}`)));
      });
    },
  };
}

export async function runWorker(cmd: Record<string, unknown>, env?: NodeJS.ProcessEnv): Promise<string[]> {
  const run = startWorker(cmd, env);
  const { code, stderr } = await run.exited;
  if (code !== 0) throw new Error(`store worker ${String(cmd.op)} exited with ${code}: ${stderr}`);
  return run.lines;
}

/**
 * Runs workers side by side and waits for every one of them before reporting, so a failing worker
 * cannot leave the others running into the next test.
 */
export async function runWorkers(cmds: Record<string, unknown>[], env?: NodeJS.ProcessEnv): Promise<string[][]> {
  const runs = cmds.map((cmd) => startWorker(cmd, env));
  const results = await Promise.all(runs.map((run) => run.exited));
  const failures = results.flatMap(({ code, signal, stderr }, i) => (code === 0 ? [] : [`store worker ${i} (${String(cmds[i]!.op)}) exited with ${code ?? signal}: ${stderr}`]));
  if (failures.length > 0) throw new Error(failures.join('\n'));
  return runs.map((run) => run.lines);
}

export function modeOf(file: string): number {
  return fs.statSync(file).mode & 0o777;
}
