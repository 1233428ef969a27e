/**
 * Daemons started with `serve --detach` outlive the CLI process that started them, so a test has no
 * ChildProcess handle to kill: they are found through the current.json they write and stopped by
 * pid — only after checking that the pid still runs our CLI, so a recycled pid is never signalled.
 */
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { CLI, type Sandbox } from './cliHarness.js';

export interface Entry {
  pid: number;
  socket: string;
  control: string;
  version: string;
}

/** The sandbox's default socket directory ($XDG_RUNTIME_DIR/credproxy). */
export const socketDir = (box: Sandbox): string => path.join(box.env.XDG_RUNTIME_DIR!, 'credproxy');

/** current.json of `dir`, or null when there is none. */
export function readEntry(dir: string): Entry | null {
  const file = path.join(dir, 'current.json');
  return existsSync(file) ? (JSON.parse(readFileSync(file, 'utf8')) as Entry) : null;
}

/**
 * Whether `pid` is a live process running our CLI. Reparented daemons are not reaped here when the
 * init process does not reap, so a dead one may linger as a zombie, which signal 0 still reaches.
 */
export function runsOurCli(pid: number): boolean {
  if (process.platform !== 'linux') {
    try {
      process.kill(pid, 0);
      return true;
    } catch {
      return false;
    }
  }
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
    if (state === 'Z' || state === 'X') return false;
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').includes(CLI);
  } catch {
    return false;
  }
}

/** Polls `condition` until it holds; the deadline is generous, it only bounds a broken run. */
export async function waitFor(condition: () => boolean, what: string, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** The detached daemons of one test file; stopAll() in afterEach, before the sandbox is removed. */
export class DetachedDaemons {
  private readonly pids = new Set<number>();

  /** Records the daemon named by `dir`'s current.json (if any) and returns the entry. */
  track(dir: string): Entry | null {
    const entry = readEntry(dir);
    if (entry) this.pids.add(entry.pid);
    return entry;
  }

  /** SIGTERM, then SIGKILL for one that did not stop in time; every tracked pid, whatever happened in the test. */
  async stopAll(): Promise<void> {
    const pids = [...this.pids];
    this.pids.clear();
    const failures: string[] = [];
    for (const pid of pids) {
      if (!runsOurCli(pid)) continue;
      process.kill(pid, 'SIGTERM');
      try {
        await waitFor(() => !runsOurCli(pid), `daemon ${pid} to stop`, 10_000);
      } catch {
        if (runsOurCli(pid)) process.kill(pid, 'SIGKILL');
        failures.push(`daemon ${pid} ignored SIGTERM`);
      }
    }
    if (failures.length) throw new Error(failures.join('; '));
  }
}
