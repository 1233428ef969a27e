/** Crash-safe file replacement and the cheap stat signature the stores use as change stamps. */
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';

const TEMP_SUFFIX = '.tmp';

/** Temp files of `target` look like `.<base>.<pid>.<random>.tmp` in the same directory. */
function tempPathFor(target: string): string {
  return path.join(path.dirname(target), `.${path.basename(target)}.${process.pid}.${randomBytes(6).toString('hex')}${TEMP_SUFFIX}`);
}

/**
 * Stat signature (inode, size, mtime) of a file; `absent` when it does not exist. Taken on every
 * cached read (get_token), so it uses plain-number stats: BigInt stats cost twice as much, and
 * mtimeMs as a double still resolves the 10 µs steps writeFileAtomic forces between two writes.
 */
export function statSignature(file: string): string {
  let st: fs.Stats | undefined;
  try {
    st = fs.statSync(file, { throwIfNoEntry: false });
  } catch (err) {
    // A sync getter must not throw; a distinct value makes the caller re-read and see the real error.
    return `error:${(err as NodeJS.ErrnoException).code ?? 'unknown'}`;
  }
  return st ? signatureOf(st) : 'absent';
}

export function signatureOf(st: fs.Stats): string {
  return `${st.ino}:${st.size}:${st.mtimeMs}`;
}

/** What the replacement file gets instead of the defaults (0600, owned by this process). */
export interface AtomicWriteOptions {
  /** Permission bits of the new file. */
  mode?: number;
  /** Owner of the new file (only root may give a file away). */
  owner?: { uid: number; gid: number };
}

/**
 * Replaces `target` with `data` so that a crash at any moment leaves either the old or the new
 * content: write a 0600 temp file in the same directory (then `options`' mode and owner), fsync it,
 * rename it over, fsync the dir.
 *
 * The new file's mtime is forced strictly above the old one's: after the rename the old inode is
 * freed and the next temp file may reuse its number, and with same-size content and a coarse
 * clock tick the (ino, size, mtime) signature could otherwise repeat, hiding a change from
 * readers that cache by signature. Callers must hold the file's write lock.
 */
export function writeFileAtomic(target: string, data: Uint8Array | string, options: AtomicWriteOptions = {}): void {
  const previous = fs.statSync(target, { bigint: true, throwIfNoEntry: false });
  const temp = tempPathFor(target);
  const fd = fs.openSync(temp, fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_EXCL, 0o600);
  let renamed = false;
  try {
    fs.writeFileSync(fd, data);
    // Owner first: a chown may clear set-id bits that the chmod then sets as asked.
    if (options.owner) fs.fchownSync(fd, options.owner.uid, options.owner.gid);
    if (options.mode !== undefined) fs.fchmodSync(fd, options.mode);
    if (previous) forceMtimeAbove(fd, previous.mtimeNs);
    fs.fsyncSync(fd);
    fs.closeSync(fd);
    fs.renameSync(temp, target);
    renamed = true;
    fsyncDir(path.dirname(target));
  } catch (err) {
    if (!renamed) {
      try {
        fs.closeSync(fd);
      } catch {
        // already closed
      }
      fs.rmSync(temp, { force: true });
    }
    throw err;
  }
}

function forceMtimeAbove(fd: number, previousNs: bigint): void {
  const now = fs.fstatSync(fd, { bigint: true }).mtimeNs;
  if (now > previousNs) return;
  // 10 µs steps survive the double-precision seconds that futimes takes.
  let wanted = previousNs + 10_000n;
  fs.futimesSync(fd, new Date(), Number(wanted) / 1e9);
  if (fs.fstatSync(fd, { bigint: true }).mtimeNs > previousNs) return;
  // The filesystem keeps coarser timestamps (whole seconds): step to the next second.
  wanted = (previousNs / 1_000_000_000n + 1n) * 1_000_000_000n;
  fs.futimesSync(fd, new Date(), Number(wanted / 1_000_000_000n));
}

/** Makes a rename durable; some platforms cannot open directories, which is then best effort. */
export function fsyncDir(dir: string): void {
  let fd: number | undefined;
  try {
    fd = fs.openSync(dir, 'r');
    fs.fsyncSync(fd);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code !== 'EISDIR' && code !== 'EPERM' && code !== 'EINVAL') throw err;
  } finally {
    if (fd !== undefined) fs.closeSync(fd);
  }
}

/** Removes temp files left by writers of `target` that crashed; call only while holding its write lock. */
export function removeStaleTemps(target: string): void {
  const dir = path.dirname(target);
  const prefix = `.${path.basename(target)}.`;
  for (const name of fs.readdirSync(dir)) {
    if (name.startsWith(prefix) && name.endsWith(TEMP_SUFFIX)) fs.rmSync(path.join(dir, name), { force: true });
  }
}

/** Creates `dir` (and parents) and makes sure `dir` itself is 0700. */
export function ensurePrivateDir(dir: string): void {
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  const st = fs.statSync(dir);
  if (!st.isDirectory()) throw new Error(`${dir} is not a directory`);
  // Tighten a dir someone loosened; chmod fails with EPERM when it is not ours, which callers report.
  if ((st.mode & 0o077) !== 0) fs.chmodSync(dir, 0o700);
}
