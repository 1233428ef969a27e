/**
 * What a sandbox sees of the host besides the system directories: the working directory (or the
 * `--mount`s), and never the credential paths under them. One place decides both, so the bwrap and
 * container launchers cannot disagree about what is exposed.
 */
import fs from 'node:fs';
import path from 'node:path';

export interface Mount {
  source: string;
  target: string;
  readOnly: boolean;
}

/** Something of the host hidden inside a mount: a directory gets an empty tmpfs, a file /dev/null. */
export interface Mask {
  target: string;
  kind: 'dir' | 'file';
}

export class MountError extends Error {
  override readonly name = 'MountError';
}

/** `SRC[:DST][:ro|:rw]`: SRC absolute or relative to `cwd`; DST a sandbox path (a relative one is taken from /), by default SRC. */
export function parseMount(spec: string, cwd: string): Mount {
  const parts = spec.split(':');
  let readOnly = false;
  if (parts.length > 1 && (parts.at(-1) === 'ro' || parts.at(-1) === 'rw')) readOnly = parts.pop() === 'ro';
  if (parts.length > 2 || parts.some((p) => p === '')) {
    throw new MountError(`--mount ${JSON.stringify(spec)}: expected SRC[:DST][:ro] (paths containing ':' are not supported)`);
  }
  const source = path.resolve(cwd, parts[0]!);
  const target = parts[1] === undefined ? source : path.resolve('/', parts[1]);
  if (!fs.existsSync(source)) throw new MountError(`--mount ${JSON.stringify(spec)}: ${source} does not exist`);
  return { source: fs.realpathSync(source), target, readOnly };
}

const inside = (child: string, parent: string): boolean => child === parent || child.startsWith(parent.endsWith('/') ? parent : `${parent}/`);

/**
 * The host paths a sandbox gets writable (or as asked): the `--mount`s, else the working directory.
 * Refused: the root directory (the whole host, writable); anything inside a protected path (the
 * store, the data directory, the daemon's sockets); a WRITABLE mount that holds a protected path —
 * a mask over it could be moved aside from inside (`mv ~/.local ~/x`), and one that does not exist
 * yet could be planted (a config with the sandbox's own token endpoint); and a writable mount of
 * `home` or above it, where the sandbox could edit ~/.bashrc and run code on the host. Read-only
 * mounts keep masks over what they hold.
 */
export function workspaceMounts(cwd: string, mounts: readonly Mount[], protectedPaths: readonly string[], home?: string): Mount[] {
  const chosen = mounts.length > 0 ? [...mounts] : [{ source: fs.realpathSync(cwd), target: fs.realpathSync(cwd), readOnly: false }];
  for (const m of chosen) {
    if (m.source === '/') {
      throw new MountError(mounts.length > 0 ? '--mount /: the root directory would expose the whole host' : 'run from a project directory, not /, or name what the sandbox may see with --mount');
    }
    if (m.target === '/') throw new MountError(`--mount ${m.source}:/ would replace the sandbox's root`);
    const exposed = protectedPaths.find((p) => inside(m.source, p));
    if (exposed !== undefined) throw new MountError(`${m.source} is inside ${exposed}, which holds credentials; it cannot be mounted into a sandbox`);
    if (m.readOnly) continue;
    const held = protectedPaths.find((p) => inside(p, m.source));
    const how = mounts.length > 0 ? `--mount ${m.source}` : `the working directory ${m.source}`;
    if (held !== undefined) throw new MountError(`${how} holds ${held}, which holds credentials; mount a project directory below it, or add :ro`);
    if (home !== undefined && inside(home, m.source)) throw new MountError(`${how} would make your home directory writable in the sandbox (its shell start-up files run on the host); run from a project directory or add :ro`);
  }
  return chosen;
}

/** The protected paths that a mount would show, as paths inside the sandbox. */
export function masksFor(mounts: readonly Mount[], protectedPaths: readonly string[]): Mask[] {
  const masks: Mask[] = [];
  for (const m of mounts) {
    for (const p of protectedPaths) {
      if (!inside(p, m.source) || p === m.source) continue;
      let st: fs.Stats;
      try {
        st = fs.lstatSync(p);
      } catch {
        continue; // not there: nothing to hide
      }
      masks.push({ target: path.join(m.target, path.relative(m.source, p)), kind: st.isDirectory() ? 'dir' : 'file' });
    }
  }
  return masks;
}

/** Where a host path appears inside the sandbox (through the mount that holds it), or undefined. */
export function sandboxPath(hostPath: string, mounts: readonly Mount[]): string | undefined {
  const m = mounts.find((x) => inside(hostPath, x.source));
  return m && path.join(m.target, path.relative(m.source, hostPath));
}
