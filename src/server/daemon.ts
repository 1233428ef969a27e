/**
 * The daemon: listens on a private Unix socket (and optionally loopback TCP), checks every peer,
 * and hands each connection to a Connection. Owns startup checks and clean shutdown (PROTOCOL.md §1).
 */
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { GrantRegistry, MAIN_LISTENER, TCP_LISTENER } from '../auth/GrantRegistry.js';
import { OPEN_POLICY, type Policy } from '../auth/policy.js';
import { buildHandlers, BucketUsage, type HandlerServices } from '../handlers/index.js';
import { createLoginService, type LoginServiceOptions } from '../handlers/login.js';
import { presetRegistry } from '../oauth/config.js';
import type { ProviderRegistry } from '../oauth/providerTypes.js';
import { RefreshCoordinator, type RefreshTuning } from '../oauth/refreshCoordinator.js';
import type { SessionStore } from '../oauth/sessions.js';
import { TokenService } from '../oauth/TokenService.js';
import { CachedTokenStore } from '../store/CachedTokenStore.js';
import { openAuditLog, type AuditLog } from './audit.js';
import { Connection, type ConnectionDeps } from './connection.js';
import { Dispatcher } from './dispatch.js';
import { DEFAULT_LIMITS, type DaemonOptions } from './options.js';
import { peerCredentialsSupported, readPeerCredentials, type PeerCredentials } from './peerCredentials.js';
import { assertSocketPathLength, defaultSocketPath, ensurePrivateDir, probeSocket, removeStaleSockets } from './socketPath.js';
import { parseLoopbackAddress } from './tcpAddress.js';
import { streamTransport } from './transport.js';

export interface StartOptions extends DaemonOptions {
  /** Stop cleanly on SIGINT, SIGTERM and SIGHUP. */
  handleSignals?: boolean;
  /** Operational messages (never secrets). */
  log?: (line: string) => void;
  /**
   * OAuth providers: host-side refresh and login sessions run for these, and their public token
   * fields are served. Without it the daemon refreshes and logs in nothing, and serves the
   * built-in presets' public fields.
   */
  providers?: ProviderRegistry;
  /** Refresh behaviour (cooldown, retries, network); used with `providers`. */
  refresh?: RefreshTuning;
  /** Login session behaviour (TTL, sweep, per-owner cap, network); used with `providers`. */
  login?: Omit<LoginServiceOptions, 'registry' | 'now'>;
}

export interface Daemon {
  socketPath: string;
  tcpAddress?: { host: string; port: number };
  /** The daemon's grants at run time; the policy seeded it. */
  grants: GrantRegistry;
  /** Open login sessions (null without providers). */
  sessions: SessionStore | null;
  /** Stops accepting, lets in-flight requests finish (bounded), closes everything, removes the socket. */
  stop(): Promise<void>;
  /** Resolves once the daemon has stopped, however that happened. */
  closed: Promise<void>;
}

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

  // One clock for freshness, refresh cooldowns and login sessions.
  const tokens = new TokenService(new CachedTokenStore(options.tokens), { now });
  const providers = options.providers ?? null;
  const refresher = providers ? new RefreshCoordinator({ ...options.refresh, tokens, registry: providers }) : null;
  const login = providers ? createLoginService({ ...options.login, registry: providers, now }) : null;
  const fieldSource = providers ?? presetRegistry();
  const services: HandlerServices = {
    tokens,
    keys: options.keys,
    usage: new BucketUsage(),
    refresher,
    publicFields: (provider) => fieldSource.get(provider)?.publicFields ?? [],
  };
  const dispatcher = new Dispatcher({ handlers: buildHandlers(login), services, audit, now });
  const grants = GrantRegistry.fromPolicy(policy, now);
  const connections = new Set<Connection>();
  // A revoked grant takes its connections with it.
  grants.onRevoke((grant) => {
    for (const conn of connections) if (conn.grant?.id === grant.id) conn.destroy();
  });
  let nextConnId = 1;

  const depsFor = (listener: string): ConnectionDeps => ({
    dispatcher,
    limits,
    now,
    authorize: (capabilityToken) => grants.authorize(listener, capabilityToken),
  });
  const unixDeps = depsFor(MAIN_LISTENER);
  const tcpDeps = depsFor(TCP_LISTENER);

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
    const conn = new Connection(connId, streamTransport(socket), peer, transport === 'unix' ? unixDeps : tcpDeps);
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
      await login?.shutdown();
      // Work whose reply went out early (cancel, timeout) may still be writing the store: give it the grace too.
      await Promise.race([dispatcher.idle(), new Promise<void>((r) => (grace = setTimeout(r, limits.shutdownGraceMs)))]);
      clearTimeout(grace);
      // A refresh still running after the last reply must save its rotated refresh token before the store closes.
      await refresher?.idle();
      try {
        fs.unlinkSync(socketPath);
      } catch {
        // Already gone (removed by hand); nothing left to clean.
      }
      grants.close();
      if (options.handleSignals) for (const s of signals) process.off(s, onSignal);
      await audit.close();
      resolveClosed();
    })();
    return stopping;
  };

  if (options.handleSignals) for (const s of signals) process.on(s, onSignal);
  log(`listening on ${socketPath}${tcpAddress ? ` and ${tcpAddress.host}:${tcpAddress.port}` : ''}`);
  return { socketPath, tcpAddress, grants, sessions: login?.sessions ?? null, stop, closed };
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
