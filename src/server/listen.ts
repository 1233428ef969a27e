/**
 * Unix listeners born private (PROTOCOL.md §1, §11): the socket directory checks, stale cleanup, and
 * a bind under a 0177 umask so a socket is never connectable by another user, verified afterwards.
 */
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { assertSocketPathLength, defaultSocketPath, ensurePrivateDir, probeSocket, removeStaleSockets } from './socketPath.js';

/** Resolves the socket path, prepares its directory and clears stale sockets; never removes a live one. */
export async function prepareSocketPath(explicit: string | undefined, log: (line: string) => void): Promise<string> {
  if (!explicit) {
    const { dir, socketPath } = defaultSocketPath();
    ensurePrivateDir(dir);
    for (const removed of await removeStaleSockets(dir)) log(`removed stale socket ${removed}`);
    return socketPath;
  }
  const socketPath = path.resolve(explicit);
  assertSocketPathLength(socketPath);
  const dir = path.dirname(socketPath);
  if (!fs.existsSync(dir)) throw new Error(`Socket directory ${dir} does not exist`);
  let existing: fs.Stats | null = null;
  try {
    existing = fs.lstatSync(socketPath);
  } catch {
    existing = null;
  }
  if (existing) {
    if (!existing.isSocket()) throw new Error(`${socketPath} exists and is not a socket; refusing to replace it`);
    const state = await probeSocket(socketPath);
    if (state === 'live') throw new Error(`Another daemon is already listening on ${socketPath}`);
    fs.rmSync(socketPath, { force: true });
    log(`removed stale socket ${socketPath}`);
  }
  return socketPath;
}

/**
 * Binds with a 0177 umask so the socket is born 0600 — there is no moment when another user could
 * connect — then verifies the mode. Node binds synchronously inside listen(), so restoring the
 * umask right after the call covers the bind.
 */
export async function listenPrivately(server: net.Server, socketPath: string): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    server.once('error', (err: NodeJS.ErrnoException) => reject(new Error(`Cannot listen on ${socketPath}: ${err.code ?? err.message}`)));
    const previous = process.umask(0o177);
    try {
      server.listen(socketPath, () => resolve());
    } finally {
      process.umask(previous);
    }
  });
  const mode = fs.statSync(socketPath).mode & 0o777;
  if (mode !== 0o600) {
    server.close();
    fs.rmSync(socketPath, { force: true });
    throw new Error(`Socket ${socketPath} was created with mode ${mode.toString(8)} instead of 600; refusing to serve`);
  }
}
