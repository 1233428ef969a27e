/**
 * `credproxy doctor`: every check of the host, in a fixed order. The socket directory and clock
 * checks live here; the store, sandbox and daemon ones in their own modules. Nothing here writes
 * anything, and nothing reported is a secret.
 */
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { dataDir } from '../../paths.js';
import { DISCOVERY_FILE } from '../../server/discovery.js';
import { defaultSocketDir, privateDirProblem, type PrivateDirProblem } from '../../server/socketPath.js';
import { fileStorePaths } from '../../store/fileStore.js';
import type { StoreChoice } from '../../store/open.js';
import { ok, problem, sh, type Check } from './check.js';
import { daemonChecks, type DaemonSummary } from './daemonChecks.js';
import { formatDuration } from './duration.js';
import { CliError } from './errors.js';
import { sandboxChecks } from './sandboxChecks.js';
import { storeChecks } from './storeChecks.js';

export interface DoctorOptions {
  env: NodeJS.ProcessEnv;
  /** The global --store choice. */
  store: StoreChoice;
  /** --daemon CONTROL_SOCKET; else current.json decides. */
  daemon?: string;
  now: () => number;
}

export interface DoctorReport {
  checks: Check[];
  daemon?: DaemonSummary;
}

/** Runs every check (the slow ones — keyring probe, child processes, the daemon — side by side). */
export async function runDoctorChecks(options: DoctorOptions): Promise<DoctorReport> {
  const { env, now } = options;
  const [store, sandboxes, daemon] = await Promise.all([storeChecks(options.store, env), sandboxChecks(env), daemonChecks(options.daemon, env, now())]);
  const checks = [socketDirCheck(env), ...store, ...sandboxes, clockCheck(env, now()), ...daemon.checks];
  return daemon.daemon ? { checks, daemon: daemon.daemon } : { checks };
}

/** The default socket directory (PROTOCOL.md §1): ours, a real directory, exactly 0700; its sockets and current.json 0600. */
export function socketDirCheck(env: NodeJS.ProcessEnv): Check {
  const dir = defaultSocketDir(env);
  const xdg = env.XDG_RUNTIME_DIR;
  const note = xdg && path.dirname(dir) !== path.resolve(xdg) ? ` (XDG_RUNTIME_DIR ${xdg} is not used: it is not an existing directory of yours, or socket paths in it would be too long)` : '';
  let st: fs.Stats;
  try {
    st = fs.lstatSync(dir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return ok('socket-dir', `${dir} does not exist yet; serve creates it 0700${note}`);
    throw new CliError(`Cannot inspect the socket directory ${dir}: ${(err as NodeJS.ErrnoException).code ?? 'error'}`);
  }
  const bad = privateDirProblem(dir, st);
  if (bad) return problem('socket-dir', `${bad.message}${st.isSymbolicLink() ? ' (it is a symlink)' : ''}`, dirFix(bad, dir, st));
  const mode = st.mode & 0o777;
  // No group/other bits, but missing owner bits: serve cannot create its sockets there.
  if (mode !== 0o700) return problem('socket-dir', `${dir} has mode ${mode.toString(8)}; it must be 700`, `chmod 700 ${sh(dir)}`);
  const inside = socketDirContents(dir);
  if (inside.issues.length) return problem('socket-dir', `${dir} is 0700, but ${inside.issues.join('; ')}`, inside.fixes.join(' && '));
  return ok('socket-dir', `${dir}: a 0700 directory of uid ${st.uid}; ${inside.checked || 'nothing in it yet'}${note}`);
}

function dirFix(bad: PrivateDirProblem, dir: string, st: fs.Stats): string {
  if (bad.kind === 'mode') return `chmod 700 ${sh(dir)}`;
  if (bad.kind === 'not-directory') return `rm ${sh(dir)} (serve then creates the directory)`;
  return `sudo rm -rf ${sh(dir)} (it belongs to uid ${st.uid}), or point XDG_RUNTIME_DIR at a directory of yours`;
}

/** current.json, the sockets and the sandbox-socket subdirectories: each ours and owner-only. */
function socketDirContents(dir: string): { issues: string[]; fixes: string[]; checked: string } {
  const uid = process.getuid?.() ?? 0;
  const issues: string[] = [];
  const files: string[] = [];
  const dirs: string[] = [];
  const foreign: string[] = [];
  let sockets = 0;
  let discovery = false;
  // Sockets and current.json: no group/other bit (they are made 0600). Sandbox-socket directories: 0700.
  const inspect = (full: string, kind: 'file' | 'dir'): void => {
    const st = fs.lstatSync(full);
    const mode = st.mode & 0o777;
    if (st.uid !== uid) {
      issues.push(`${full} belongs to uid ${st.uid}`);
      foreign.push(full);
    } else if (kind === 'file' ? (mode & 0o077) !== 0 : mode !== 0o700) {
      issues.push(`${full} has mode ${mode.toString(8)}`);
      (kind === 'file' ? files : dirs).push(full);
    }
  };
  for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
    const full = path.join(dir, entry.name);
    if (entry.name === DISCOVERY_FILE) {
      discovery = true;
      inspect(full, 'file');
    } else if (entry.isSocket() && /\.(sock|ctl)$/.test(entry.name)) {
      sockets += 1;
      inspect(full, 'file');
    } else if (entry.isDirectory()) {
      inspect(full, 'dir');
      for (const inner of fs.readdirSync(full, { withFileTypes: true })) {
        if (!inner.isSocket()) continue;
        sockets += 1;
        inspect(path.join(full, inner.name), 'file');
      }
    }
  }
  const fixes = [
    ...(files.length ? [`chmod 600 ${files.map(sh).join(' ')}`] : []),
    ...(dirs.length ? [`chmod 700 ${dirs.map(sh).join(' ')}`] : []),
    ...(foreign.length ? [`sudo rm -rf ${foreign.map(sh).join(' ')}`] : []),
  ];
  const parts = [...(discovery ? [DISCOVERY_FILE] : []), ...(sockets ? [`${sockets} socket${sockets === 1 ? '' : 's'}`] : [])];
  return { issues, fixes, checked: parts.length ? `${parts.join(' and ')} owner-only` : '' };
}

/**
 * How far a file's mtime may be ahead of the clock before the clock is called wrong: filesystems
 * stamp with a coarse clock and a network home can be a little ahead; a clock set back by hours
 * or years (a dead RTC battery, a restored VM snapshot) is what this is for.
 */
const CLOCK_TOLERANCE_MS = 5 * 60_000;

/** Most of a package's files; the walk stops here so a huge tree cannot slow the report. */
const MAX_PACKAGE_FILES = 5000;

/**
 * The clock against files this machine wrote or installed: a clock earlier than a file's mtime
 * was set back after that file was written. Without network time this is what can be checked;
 * a clock that runs ahead is not detectable here.
 */
export function clockCheck(env: NodeJS.ProcessEnv, nowMs: number): Check {
  // This module sits in {dist,src}/cli/util: the package root is three levels up.
  const codeDir = fileURLToPath(new URL('../..', import.meta.url));
  const store = fileStorePaths(dataDir(env));
  const written = [store.storePath, store.keyPath, path.join(dataDir(env), 'keyring.state'), path.join(dataDir(env), 'audit.log')];
  const candidates = [path.join(codeDir, '..', 'package.json'), ...walk(codeDir, MAX_PACKAGE_FILES), ...written, path.join(defaultSocketDir(env), DISCOVERY_FILE)];
  let newest = { file: '', mtimeMs: -Infinity };
  let count = 0;
  for (const file of candidates) {
    const st = fs.statSync(file, { throwIfNoEntry: false });
    if (!st) continue;
    count += 1;
    if (st.mtimeMs > newest.mtimeMs) newest = { file, mtimeMs: st.mtimeMs };
  }
  const clock = new Date(nowMs).toISOString();
  const stamp = new Date(newest.mtimeMs).toISOString();
  if (newest.mtimeMs > nowMs + CLOCK_TOLERANCE_MS) {
    const ahead = formatDuration((newest.mtimeMs - nowMs) / 1000);
    return problem(
      'clock',
      `the clock says ${clock}, but ${newest.file} was modified at ${stamp}, ${ahead} later: the clock is set in the past (or that file came from a machine whose clock ran ahead), so token expiry is misjudged`,
      process.platform === 'linux' ? 'timedatectl set-ntp true' : process.platform === 'darwin' ? 'sudo sntp -sS time.apple.com' : 'set the system clock to the current time',
    );
  }
  return ok('clock', `the clock (${clock}) is not behind the newest of ${count} files credproxy installed or wrote (${newest.file}, ${stamp}); a clock set in the past would be`);
}

/** Regular files under `dir`, symlinks not followed, at most `max`. */
function walk(dir: string, max: number): string[] {
  const out: string[] = [];
  const pending = [dir];
  while (pending.length && out.length < max) {
    const current = pending.pop()!;
    for (const entry of fs.readdirSync(current, { withFileTypes: true })) {
      const full = path.join(current, entry.name);
      if (entry.isDirectory()) pending.push(full);
      else if (entry.isFile() && out.length < max) out.push(full);
    }
  }
  return out;
}
