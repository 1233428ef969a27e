/**
 * The daemon: listens on a private Unix socket (and optionally loopback TCP), checks every peer,
 * and hands each connection to a Connection. Owns startup checks and clean shutdown (PROTOCOL.md §1).
 */
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { buildHandlers, BucketUsage, type LoginService, type Refresher } from '../handlers/index.js';
import { openAuditLog, type AuditLog } from './audit.js';
import { Connection, type ConnectionDeps } from './connection.js';
import type { Grant } from './grants.js';
import { DEFAULT_LIMITS, type DaemonOptions } from './options.js';
import { peerCredentialsSupported, readPeerCredentials, type PeerCredentials } from './peerCredentials.js';
import { grantForCapability, OPEN_POLICY, type Policy } from './policy.js';
import { assertSocketPathLength, defaultSocketPath, ensurePrivateDir, probeSocket, removeStaleSockets } from './socketPath.js';
import { CachedTokenStore } from './tokenCache.js';
import { parseLoopbackAddress } from './tcpAddress.js';

export interface StartOptions extends DaemonOptions {
  /** Stop cleanly on SIGINT, SIGTERM and SIGHUP. */
  handleSignals?: boolean;
  /** Operational messages (never secrets). */
  log?: (line: string) => void;
  /** Host-side refresh, plugged in by the refresh subsystem. */
  refresher?: Refresher;
  /** Host-side login sessions, plugged in by the OAuth subsystem. */
  login?: LoginService;
}

export interface Daemon {
  socketPath: string;
  tcpAddress?: { host: string; port: number };
  /** Stops accepting, lets in-flight requests finish (bounded), closes everything, removes the socket. */
  stop(): Promise<void>;
  /** Resolves once the daemon has stopped, however that happened. */
  closed: Promise<void>;
}

const CAPABILITY_FORMAT = /^[0-9a-f]{64}$/;

/** Starts a daemon; throws a clear Error when the socket cannot be set up safely. */
export async function startDaemon(options: StartOptions): Promise<Daemon> {
  const limits = { ...DEFAULT_LIMITS, ...options.limits };
  const now = options.now ?? Date.now;
  const policy: Policy = options.policy ?? OPEN_POLICY;
  const allowUids = new Set([...(options.allowUids ?? []), ...policy.allowUids]);
  const ownUid = process.getuid?.() ?? -1;
  const log = options.log ?? (() => {});

  // Linux must be able to read SO_PEERCRED; elsewhere peer identity is best-effort (PROTOCOL.md §7).
  const requirePeerCredentials = process.platform === 'linux';
  if (requirePeerCredentials && !peerCredentialsSupported()) {
    throw new Error('Cannot read peer credentials (SO_PEERCRED) on this system; refusing to serve without them');
  }
  const socketPath = await prepareSocketPath(options.socketPath, log);
  const tcp = options.tcp ? parseLoopbackAddress(options.tcp) : null;
  const audit: AuditLog = openAuditLog(options.audit, now, (err) => log(`audit log ${options.audit} failed (${err.code ?? 'error'}); audit records are no longer written`));

  const tokens = new CachedTokenStore(options.tokens);
  const usage = new BucketUsage();
  const handlers = buildHandlers(options.login ?? null);
  const connections = new Set<Connection>();
  let nextConnId = 1;

  const depsFor = (transport: 'unix' | 'tcp'): ConnectionDeps => ({
    handlers,
    limits,
    audit,
    now,
    authorize(capabilityToken): Grant | null {
      if (capabilityToken === undefined) return transport === 'unix' ? policy.defaultGrant : null;
      if (!CAPABILITY_FORMAT.test(capabilityToken)) return null;
      return grantForCapability(policy, capabilityToken);
    },
    context: (grant, peer) => ({ tokens, keys: options.keys, grant, peer, usage, refresher: options.refresher ?? null, now }),
  });
  const unixDeps = depsFor('unix');
  const tcpDeps = depsFor('tcp');

  const accept = (socket: net.Socket, transport: 'unix' | 'tcp'): void => {
    const connId = nextConnId++;
    let peer: PeerCredentials | null = null;
    if (transport === 'unix') {
      peer = readPeerCredentials(socket);
      // On Linux the kernel always knows the peer; not learning it means something is wrong: fail closed.
      if (!peer && requirePeerCredentials) {
        audit.record({ conn: connId, op: 'connection', outcome: 'PEER_UNKNOWN' });
        socket.destroy();
        return;
      }
      if (peer && peer.uid !== ownUid && !allowUids.has(peer.uid)) {
        audit.record({ conn: connId, peer: { pid: peer.pid, uid: peer.uid }, op: 'connection', outcome: 'PEER_REFUSED' });
        socket.destroy();
        return;
      }
    }
    const conn = new Connection(connId, socket, peer, transport === 'unix' ? unixDeps : tcpDeps);
    connections.add(conn);
    socket.once('close', () => connections.delete(conn));
  };

  const unixServer = net.createServer((s) => accept(s, 'unix'));
  await listenPrivately(unixServer, socketPath);

  let tcpServer: net.Server | null = null;
  let tcpAddress: { host: string; port: number } | undefined;
  if (tcp) {
    tcpServer = net.createServer((s) => accept(s, 'tcp'));
    try {
      await new Promise<void>((resolve, reject) => {
        tcpServer!.once('error', reject);
        tcpServer!.listen(tcp.port, tcp.host, () => resolve());
      });
    } catch (err) {
      unixServer.close();
      fs.rmSync(socketPath, { force: true });
      throw new Error(`Cannot listen on ${options.tcp}: ${(err as NodeJS.ErrnoException).code ?? 'error'}`);
    }
    const addr = tcpServer.address() as net.AddressInfo;
    tcpAddress = { host: addr.address, port: addr.port };
  }

  let resolveClosed!: () => void;
  const closed = new Promise<void>((resolve) => (resolveClosed = resolve));
  let stopping: Promise<void> | null = null;

  const signals: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP'];
  const onSignal = (signal: NodeJS.Signals): void => {
    log(`received ${signal}, shutting down`);
    void stop();
  };

  const stop = (): Promise<void> => {
    stopping ??= (async () => {
      unixServer.close();
      tcpServer?.close();
      for (const conn of connections) conn.stopReading();
      const idle = Promise.all([...connections].map((c) => c.whenIdle()));
      let grace: NodeJS.Timeout | undefined;
      await Promise.race([idle, new Promise<void>((r) => (grace = setTimeout(r, limits.shutdownGraceMs)))]);
      clearTimeout(grace);
      for (const conn of connections) conn.destroy();
      await options.login?.shutdown();
      try {
        fs.unlinkSync(socketPath);
      } catch {
        // Already gone (removed by hand); nothing left to clean.
      }
      if (options.handleSignals) for (const s of signals) process.off(s, onSignal);
      await audit.close();
      resolveClosed();
    })();
    return stopping;
  };

  if (options.handleSignals) for (const s of signals) process.on(s, onSignal);
  log(`listening on ${socketPath}${tcpAddress ? ` and ${tcpAddress.host}:${tcpAddress.port}` : ''}`);
  return { socketPath, tcpAddress, stop, closed };
}

/** Resolves the socket path, prepares its directory and clears stale sockets; never removes a live one. */
async function prepareSocketPath(explicit: string | undefined, log: (line: string) => void): Promise<string> {
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
async function listenPrivately(server: net.Server, socketPath: string): Promise<void> {
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
