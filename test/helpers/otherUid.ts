/**
 * Runs the spec client as another uid (65534 via setpriv) from files that uid can actually read.
 *
 * CI may clone the project anywhere, including inside a 0700 directory, so nothing the other uid
 * runs may come from the checkout, and the checkout's modes are never loosened. Instead each
 * OtherUidArea is a fresh 0755 temp dir (under a base every uid can traverse) that holds a 0644
 * copy of the spec client and the 0700 socket directories of the daemons the other uid talks to;
 * a test opens a socket up with expose() and removes the area afterwards.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { runSpecClient, SPEC_CLIENT, type SpecRequest } from './specClient.js';

export const OTHER_UID = 65534;
export const AS_OTHER_UID = ['setpriv', `--reuid=${OTHER_UID}`, `--regid=${OTHER_UID}`, '--clear-groups'];
export const canSwitchUid = process.getuid?.() === 0 && fs.existsSync('/usr/bin/setpriv');
/** With CI=true the other-uid tests must run (and fail when they cannot), never skip. */
export const mustSwitchUid = process.env.CI === 'true';

/** The first directory on `file`'s path that a process of another uid (no shared group) cannot pass. */
function blockerFor(file: string, finalMode: number): string | null {
  const parts = path.resolve(file).split(path.sep).filter(Boolean);
  for (let i = 0; i <= parts.length; i++) {
    const p = path.sep + parts.slice(0, i).join(path.sep);
    const mode = fs.statSync(p).mode;
    const needed = i === parts.length ? finalMode : 0o001;
    if ((mode & needed) !== needed) return p;
  }
  return null;
}

/** A base for the area: os.tmpdir() when other uids can traverse it, else /tmp. */
function reachableBase(): string {
  for (const base of [os.tmpdir(), '/tmp']) {
    if (fs.existsSync(base) && blockerFor(base, 0o001) === null) return base;
  }
  throw new Error(`neither ${os.tmpdir()} nor /tmp can be traversed by uid ${OTHER_UID}; the other-uid tests need one of them`);
}

/** The fixture is copied alone, so it may import only Node built-ins (no dist/, no node_modules). */
function assertSelfContained(source: string, file: string): void {
  const specifiers = [...source.matchAll(/(?:\bfrom\s*|\bimport\s*\(?\s*|\brequire\s*\(\s*)['"]([^'"]+)['"]/g)].map((m) => m[1]!);
  const foreign = specifiers.filter((s) => !s.startsWith('node:'));
  if (foreign.length > 0) throw new Error(`${file} imports ${foreign.join(', ')}: a fixture run as another uid may import only node: built-ins`);
}

export class OtherUidArea {
  /** The copy of test/fixtures/spec-client.mjs that the other uid runs. */
  readonly specClient: string;

  private constructor(readonly dir: string) {
    this.specClient = path.join(dir, 'spec-client.mjs');
  }

  /** Makes the area. Throws (with the reason) when the other uid could not reach it or node. */
  static create(): OtherUidArea {
    const nodeBlocker = blockerFor(process.execPath, 0o005);
    if (nodeBlocker) throw new Error(`uid ${OTHER_UID} cannot run ${process.execPath}: ${nodeBlocker} is closed to other users`);
    const source = fs.readFileSync(SPEC_CLIENT, 'utf8');
    assertSelfContained(source, SPEC_CLIENT);
    const area = new OtherUidArea(fs.mkdtempSync(path.join(reachableBase(), 'cpu-')));
    fs.chmodSync(area.dir, 0o755);
    fs.writeFileSync(area.specClient, source, { mode: 0o644 });
    fs.chmodSync(area.specClient, 0o644); // the umask may have narrowed the mode given above
    return area;
  }

  /** A socket path in a new private (0700) directory of the area, as the daemon requires. */
  socketPath(name = 'd.sock'): string {
    return path.join(fs.mkdtempSync(path.join(this.dir, 's')), name);
  }

  /** Opens a daemon's socket to other uids, so that only the peer-credential check stands in the way. */
  expose(socketPath: string): void {
    if (!socketPath.startsWith(this.dir + path.sep)) throw new Error(`${socketPath} is not in this area`);
    fs.chmodSync(path.dirname(socketPath), 0o755);
    fs.chmodSync(socketPath, 0o666);
  }

  /** Runs the spec client as the other uid, from the area, with nothing of this process's environment but PATH. */
  run(socketPath: string, range: 'v1' | 'v2', requests: SpecRequest[]): Promise<Array<Record<string, unknown>>> {
    return runSpecClient(socketPath, range, requests, { wrapper: AS_OTHER_UID, client: this.specClient, cwd: this.dir, env: { PATH: process.env.PATH ?? '/usr/bin:/bin' } });
  }

  remove(): void {
    fs.rmSync(this.dir, { recursive: true, force: true });
  }
}
