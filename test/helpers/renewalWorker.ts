/**
 * Child processes running test/fixtures/renewal-worker.mjs (or another fixture script on the built
 * code): their JSON stdout lines as events to wait on, and a cleanup that leaves no process behind.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import { fileURLToPath } from 'node:url';

export const RENEWAL_WORKER = fileURLToPath(new URL('../fixtures/renewal-worker.mjs', import.meta.url));
const BUILT = fileURLToPath(new URL('../../dist/server/daemon.js', import.meta.url));

export type WorkerLine = Record<string, unknown> & { event?: string };

export interface Worker {
  child: ChildProcess;
  lines: WorkerLine[];
  /** Resolves with the first line (already printed or to come) that `match` accepts; rejects if the worker exits first. */
  waitFor(match: (line: WorkerLine) => boolean, what?: string): Promise<WorkerLine>;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null; stderr: string }>;
  /** SIGTERM (then SIGKILL after 5 s) and wait for the exit. */
  stop(): Promise<void>;
}

const running = new Set<Worker>();

export interface WorkerOptions {
  /** The fixture to run (default RENEWAL_WORKER). */
  script?: string;
  /** CREDPROXY_PASSPHRASE of the child (default none, whatever the developer's environment holds). */
  passphrase?: string;
}

export function startWorker(cmd: Record<string, unknown>, env: NodeJS.ProcessEnv = process.env, options: WorkerOptions = {}): Worker {
  if (!fs.existsSync(BUILT)) throw new Error(`${BUILT} is missing: run \`npm run build\` (test/globalSetup.ts does it unless CREDPROXY_SKIP_BUILD=1)`);
  const child = spawn(process.execPath, [options.script ?? RENEWAL_WORKER, JSON.stringify(cmd)], {
    env: { ...env, CREDPROXY_PASSPHRASE: options.passphrase ?? '' },
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  const lines: WorkerLine[] = [];
  const waiters: Array<{ match: (line: WorkerLine) => boolean; resolve: (line: WorkerLine) => void }> = [];
  let partial = '';
  let stderr = '';
  child.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
    const parts = (partial + chunk).split('\n');
    partial = parts.pop()!;
    for (const part of parts) {
      if (!part.trim()) continue;
      const line = JSON.parse(part) as WorkerLine;
      lines.push(line);
      for (const w of waiters.splice(0)) {
        if (w.match(line)) w.resolve(line);
        else waiters.push(w);
      }
    }
  });
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null; stderr: string }>((resolve) =>
    child.on('close', (code, signal) => resolve({ code, signal, stderr })),
  );
  const worker: Worker = {
    child,
    lines,
    exited,
    waitFor(match, what = 'a line') {
      const found = lines.find(match);
      if (found) return Promise.resolve(found);
      return new Promise((resolve, reject) => {
        waiters.push({ match, resolve });
        void exited.then(({ code, signal, stderr: err }) => reject(new Error(`worker ${String(cmd.op)} exited (${code ?? signal}) before ${what}: ${err}`)));
      });
    },
    async stop() {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGTERM');
        const force = setTimeout(() => child.kill('SIGKILL'), 5_000);
        await exited;
        clearTimeout(force);
      }
      running.delete(worker);
    },
  };
  running.add(worker);
  void exited.then(() => running.delete(worker));
  return worker;
}

/** Stops every worker still running (for afterAll/afterEach). */
export async function stopAllWorkers(): Promise<void> {
  await Promise.all([...running].map((w) => w.stop()));
}
