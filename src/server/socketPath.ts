/**
 * Socket location rules (PROTOCOL.md §1): a private 0700 directory, an unguessable file name, a
 * path short enough for every platform, and cleanup of sockets whose daemon is gone.
 */
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';

/** sockaddr_un.sun_path is 104 bytes on macOS; stay under 100. */
export const MAX_SOCKET_PATH_BYTES = 100;

function uid(): number {
  return process.getuid?.() ?? 0;
}

function ownedDirectory(dir: string | undefined): dir is string {
  if (!dir || !path.isAbsolute(dir)) return false;
  try {
    const st = fs.statSync(dir);
    return st.isDirectory() && st.uid === uid();
  } catch {
    return false;
  }
}

/** Candidate socket directories, best first. */
export function socketDirCandidates(env: NodeJS.ProcessEnv = process.env): string[] {
  const dirs: string[] = [];
  if (ownedDirectory(env.XDG_RUNTIME_DIR)) dirs.push(path.join(env.XDG_RUNTIME_DIR, 'credproxy'));
  dirs.push(path.join(fs.realpathSync(os.tmpdir()), `credproxy-${uid()}`));
  dirs.push(`/tmp/credproxy-${uid()}`);
  return [...new Set(dirs)];
}

/**
 * Creates the directory 0700, or checks an existing one: it must be a real directory owned by us
 * with no group/other bits. We never chmod a directory we did not just create.
 */
export function ensurePrivateDir(dir: string): void {
  try {
    fs.mkdirSync(dir, { mode: 0o700 });
    fs.chmodSync(dir, 0o700); // the umask may have masked bits off; never adds any beyond 0700
    return;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') {
      throw new Error(`Cannot create socket directory ${dir}: ${(err as NodeJS.ErrnoException).code ?? 'error'}`);
    }
  }
  const problem = privateDirProblem(dir, fs.lstatSync(dir));
  if (problem) throw new Error(problem.message);
}

/** What makes an existing socket directory unusable, for ensurePrivateDir's error and `doctor`'s fix. */
export interface PrivateDirProblem {
  kind: 'not-directory' | 'owner' | 'mode';
  message: string;
}

/** Why `dir` (lstat'ed as `st`: a symlink is not followed) is not a private directory of ours, or null. */
export function privateDirProblem(dir: string, st: fs.Stats): PrivateDirProblem | null {
  if (!st.isDirectory()) return { kind: 'not-directory', message: `Socket directory ${dir} exists but is not a directory` };
  if (st.uid !== uid()) return { kind: 'owner', message: `Socket directory ${dir} is owned by uid ${st.uid}, not ${uid()}; refusing to use it` };
  if ((st.mode & 0o077) !== 0) {
    return { kind: 'mode', message: `Socket directory ${dir} has mode ${(st.mode & 0o777).toString(8)}; it must be 700 (fix it or remove it)` };
  }
  return null;
}

/** `{pid}-{nonce}.sock` with a 128-bit hex nonce. */
export function socketFileName(pid = process.pid): string {
  return `${pid}-${randomBytes(16).toString('hex')}.sock`;
}

/** Throws a specific error when a socket path would not fit in sockaddr_un on every platform. */
export function assertSocketPathLength(socketPath: string): void {
  const bytes = Buffer.byteLength(socketPath);
  if (bytes >= MAX_SOCKET_PATH_BYTES) {
    throw new Error(`Socket path too long (${bytes} bytes; it must be under ${MAX_SOCKET_PATH_BYTES}): ${socketPath}`);
  }
}

/** The longest name a sandbox socket adds after the directory and its `/` (§11): `run-<12 hex>/<32 hex>.sock`. */
const SANDBOX_SOCKET_SUFFIX_BYTES = 'run-'.length + 12 + 1 + 32 + '.sock'.length;

/**
 * The default socket directory: the first candidate where a main socket and every sandbox socket
 * fit. Host commands look for a running daemon's current.json here (§11).
 */
export function defaultSocketDir(env: NodeJS.ProcessEnv = process.env): string {
  const mainName = socketFileName().length;
  for (const dir of socketDirCandidates(env)) {
    const dirBytes = Buffer.byteLength(dir);
    if (dirBytes + 1 + Math.max(mainName, SANDBOX_SOCKET_SUFFIX_BYTES) < MAX_SOCKET_PATH_BYTES) return dir;
  }
  throw new Error('No socket directory gives a path under 100 bytes; pass --socket with a short path');
}

/** Picks the default socket path: a fresh name in the default socket directory. */
export function defaultSocketPath(env: NodeJS.ProcessEnv = process.env): { dir: string; socketPath: string } {
  const dir = defaultSocketDir(env);
  return { dir, socketPath: path.join(dir, socketFileName()) };
}

/** Resolves whether something listens on a Unix socket path: 'live', 'stale' (ECONNREFUSED) or 'absent'. */
export function probeSocket(socketPath: string, timeoutMs = 1000): Promise<'live' | 'stale' | 'absent'> {
  return new Promise((resolve) => {
    const conn = net.connect(socketPath);
    const done = (state: 'live' | 'stale' | 'absent'): void => {
      clearTimeout(timer);
      conn.destroy();
      resolve(state);
    };
    // A listener that accepts slowly is still alive: never remove it.
    const timer = setTimeout(() => done('live'), timeoutMs);
    conn.once('connect', () => done('live'));
    conn.once('error', (err: NodeJS.ErrnoException) => {
      if (err.code === 'ECONNREFUSED') done('stale');
      else if (err.code === 'ENOENT') done('absent');
      else done('live');
    });
  });
}

/**
 * Removes sockets in `dir` whose listener is gone (`.sock` and control `.ctl`), and sandbox-socket
 * subdirectories (§11) left behind by a daemon that died: only when every socket in them is stale.
 * Returns the removed paths. A live socket is never removed.
 */
export async function removeStaleSockets(dir: string): Promise<string[]> {
  const removed: string[] = [];
  for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory() && !entry.isSymbolicLink()) {
      if (await removeStaleSandboxDir(full)) removed.push(full);
      continue;
    }
    if (!/\.(sock|ctl)$/.test(entry.name) || !entry.isSocket()) continue;
    if ((await probeSocket(full)) === 'stale') {
      try {
        fs.unlinkSync(full);
        removed.push(full);
      } catch {
        // Raced with another daemon's cleanup; nothing to do.
      }
    }
  }
  return removed;
}

/** A 0700 directory of ours holding only stale sockets: a sandbox socket directory of a dead daemon. */
async function removeStaleSandboxDir(dir: string): Promise<boolean> {
  const st = fs.lstatSync(dir);
  if (st.uid !== uid() || (st.mode & 0o777) !== 0o700) return false;
  const entries = fs.readdirSync(dir, { withFileTypes: true });
  if (entries.length === 0 || !entries.every((e) => e.isSocket() && e.name.endsWith('.sock'))) return false;
  for (const e of entries) if ((await probeSocket(path.join(dir, e.name))) !== 'stale') return false;
  fs.rmSync(dir, { recursive: true, force: true });
  return true;
}
