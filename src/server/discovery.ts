/**
 * `current.json` (PROTOCOL.md §11): how host-side commands find a running daemon without being told
 * its socket. Written atomically (0600) on start, removed on stop if it is still this daemon's; an
 * entry whose pid is gone is ignored.
 */
import fs from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { writeFileAtomic } from '../store/atomicWrite.js';
import { defaultSocketDir, probeSocket } from './socketPath.js';

export interface DiscoveryEntry {
  pid: number;
  socket: string;
  control: string;
  version: string;
}

export const DISCOVERY_FILE = 'current.json';

/** The package version string (`version` of package.json). */
export const PACKAGE_VERSION: string = (createRequire(import.meta.url)('../../package.json') as { version: string }).version;

export function writeDiscovery(dir: string, entry: DiscoveryEntry): void {
  writeFileAtomic(path.join(dir, DISCOVERY_FILE), `${JSON.stringify(entry)}\n`);
}

/** Removes the entry when it still names `pid` (a newer daemon may have replaced it). */
export function removeDiscovery(dir: string, pid: number): void {
  const file = path.join(dir, DISCOVERY_FILE);
  if (readEntry(file)?.pid === pid) fs.rmSync(file, { force: true });
}

/** The running daemon of `dir`, or null when there is none (no file, unreadable, or its pid is gone). */
export function readDiscovery(dir: string): DiscoveryEntry | null {
  const entry = readEntry(path.join(dir, DISCOVERY_FILE));
  return entry && processAlive(entry.pid) ? entry : null;
}

/**
 * The daemon a host command should use when it was given no socket: the one whose current.json is in
 * the default socket directory (a daemon started with `--socket` elsewhere writes its own directory's).
 */
export function findRunningDaemon(env: NodeJS.ProcessEnv = process.env): DiscoveryEntry | null {
  let dir: string;
  try {
    dir = defaultSocketDir(env);
  } catch {
    return null;
  }
  return readDiscovery(dir);
}

/**
 * findRunningDaemon(), and only when something listens on the entry's main socket. A daemon killed
 * with SIGKILL leaves its current.json behind, and its pid may since belong to another process of
 * ours (or be a zombie nobody reaped): the socket is what tells.
 */
export async function findAnsweringDaemon(env: NodeJS.ProcessEnv = process.env): Promise<DiscoveryEntry | null> {
  const entry = findRunningDaemon(env);
  return entry && (await probeSocket(entry.socket)) === 'live' ? entry : null;
}

/** The entry, when the file is a regular 0600-or-tighter file of ours (not a link another user planted). */
function readEntry(file: string): DiscoveryEntry | null {
  let value: unknown;
  try {
    const st = fs.lstatSync(file);
    if (!st.isFile() || st.uid !== process.getuid?.() || (st.mode & 0o077) !== 0) return null;
    value = JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch {
    return null;
  }
  const e = value as Partial<DiscoveryEntry> | null;
  if (!e || typeof e.pid !== 'number' || typeof e.socket !== 'string' || typeof e.control !== 'string' || typeof e.version !== 'string') return null;
  return { pid: e.pid, socket: e.socket, control: e.control, version: e.version };
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    // ESRCH: gone. EPERM: the pid now belongs to another user, so our daemon that had it is gone too.
    return false;
  }
}
