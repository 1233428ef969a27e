/**
 * The daemon: its listeners (PROTOCOL.md §1, §11) — the main socket, a sandbox socket per run-time
 * grant, the control socket and optional loopback TCP — each connection checked (peer uid, caps)
 * and handed to a Connection over the one request pipeline. Owns startup checks, discovery
 * (`current.json`) and clean shutdown.
 */
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { GrantRegistry, MAIN_LISTENER, TCP_LISTENER } from '../auth/GrantRegistry.js';
import { CONTROL_GRANT } from '../auth/grants.js';
import { OPEN_POLICY, type Policy } from '../auth/policy.js';
import { buildHandlers, BucketUsage, type HandlerServices } from '../handlers/index.js';
import { createLoginService, type LoginServiceOptions } from '../handlers/login.js';
import { InjectCredentials } from '../inject/InjectCredentials.js';
import { ReplayBudget } from '../inject/replayBudget.js';
import { loopbackPeerUid } from '../inject/loopbackPeer.js';
import { RouteTable } from '../inject/RouteTable.js';
import type { UpstreamAgents } from '../inject/UpstreamAgents.js';
import type { AdmittedPeer, InjectPeer } from '../inject/InjectProxy.js';
import { presetRegistry } from '../oauth/config.js';
import type { ProviderRegistry } from '../oauth/providerTypes.js';
import { RefreshCoordinator, type RefreshTuning } from '../oauth/refreshCoordinator.js';
import { RenewalScheduler, type RenewalOptions } from '../oauth/RenewalScheduler.js';
import type { SessionStore } from '../oauth/sessions.js';
import { TokenService, type TokenTiming } from '../oauth/TokenService.js';
import { CachedTokenStore } from '../store/CachedTokenStore.js';
import { StoreError } from '../store/types.js';
import { openAuditLog, type AuditLog } from './audit.js';
import { Connection } from './connection.js';
import { ControlPlane } from './controlPlane.js';
import { PACKAGE_VERSION, removeDiscovery, writeDiscovery } from './discovery.js';
import { Dispatcher } from './dispatch.js';
import { listenPrivately, prepareSocketPath } from './listen.js';
import { DEFAULT_LIMITS, type DaemonOptions } from './options.js';
import { peerCredentialsSupported, readPeerCredentials, type PeerCredentials } from './peerCredentials.js';
import { assertSocketPathLength, defaultSocketPath, ensurePrivateDir, removeStaleSockets, socketFileName } from './socketPath.js';
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
  /** Write `{dir}/current.json` so host commands find this daemon (default true). */
  discovery?: boolean;
  /** The lifetime-scaled timings of §6.4 (caps of the margin, cooldown, renewal lead and jitter). */
  timing?: Partial<TokenTiming>;
  /** How long get_token of a still-valid token waits for its refresh before serving it as stored (2 s). */
  refreshWaitMs?: number;
  /**
   * Host paths that hold this daemon's secrets beyond its sockets (data directory, config file).
   * daemon_status reports them with the socket paths, so a launcher hides them from its sandbox
   * even when they are not where the launcher's own environment would look.
   */
  hostPaths?: readonly string[];
  /** Proactive renewal of stored tokens (on by default with `providers`); false turns it off. */
  renewal?: RenewalOptions | false;
  /** Inject mode's routes (default: the presets). */
  routes?: RouteTable;
}

export interface Daemon {
  socketPath: string;
  /** The control socket (§11): admin ops, own uid only. */
  controlPath: string;
  tcpAddress?: { host: string; port: number };
  /** The daemon's grants at run time; the policy seeded it. */
  grants: GrantRegistry;
  /** Open login sessions (null without providers). */
  sessions: SessionStore | null;
  /** Stops accepting, lets in-flight requests finish (bounded), closes everything, removes the sockets. */
  stop(): Promise<void>;
  /** Resolves once the daemon has stopped, however that happened. */
  closed: Promise<void>;
}

/** How one listener's connections are admitted. */
interface ListenerSpec {
  /** The registry's name for it (grant binding). */
  name: string;
  kind: 'main' | 'sandbox' | 'control' | 'tcp';
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
  // The control socket, current.json and sandbox-socket directories live in a private directory:
  // the main socket's when it is one (0700, ours), else the default one (an explicit --socket may
  // sit in a shared directory).
  const dir = await controlDirFor(socketPath, log);
  // Its own nonce: knowing the main socket's name (often mounted into sandboxes) says nothing of it.
  const controlPath = path.join(dir, socketFileName().replace(/\.sock$/, '.ctl'));
  assertSocketPathLength(controlPath);
  const tcp = options.tcp ? parseLoopbackAddress(options.tcp) : null;
  const audit: AuditLog = openAuditLog(options.audit, now, (err) => log(`audit log ${options.audit} failed (${err.code ?? 'error'}); audit records are no longer written`));

  // One clock for freshness, refresh cooldowns, login sessions and grant deadlines.
  const tokens = new TokenService(new CachedTokenStore(options.tokens), { now, ...(options.timing && { timing: options.timing }) });
  const providers = options.providers ?? null;
  const refresher = providers ? new RefreshCoordinator({ log, ...options.refresh, tokens, registry: providers }) : null;
  const renewal = refresher && options.renewal !== false ? new RenewalScheduler(tokens, refresher, { log, ...options.renewal }) : null;
  const login = providers ? createLoginService({ ...options.login, registry: providers, now }) : null;
  const fieldSource = providers ?? presetRegistry();
  const grants = GrantRegistry.fromPolicy(policy, now);
  const connections = new Map<Connection, ListenerSpec>();
  const countOn = (listener: string): number => [...connections.values()].filter((l) => l.name === listener).length;
  // A revoked grant takes its connections with it.
  grants.onRevoke((grant) => {
    for (const conn of connections.keys()) if (conn.grant?.id === grant.id) conn.destroy();
  });

  const servers: net.Server[] = [];
  // The proxy and undici (its connection pools) are loaded with the first grant that injects: a
  // daemon without one does not carry them (~8 MB of memory).
  let upstreams: Promise<UpstreamAgents> | null = null;
  const replayBudget = new ReplayBudget(limits.injectReplayBytes);
  const upstreamAgents = (): Promise<UpstreamAgents> => (upstreams ??= import('../inject/UpstreamAgents.js').then((m) => new m.UpstreamAgents()));
  const routes = options.routes ?? RouteTable.presets();
  const credentials = new InjectCredentials({ tokens, keys: options.keys, refresher, ...(options.refreshWaitMs !== undefined && { refreshWaitMs: options.refreshWaitMs }) });
  // One numbering for every connection of the daemon, proxy connections included: audit lines name them.
  let nextConnId = 1;
  /** Who is on a proxy connection: SO_PEERCRED on the Unix socket, /proc/net/tcp on the loopback port. */
  const injectPeer = (socket: net.Socket, kind: 'unix' | 'tcp'): InjectPeer | null => {
    if (kind === 'tcp') {
      const uid = loopbackPeerUid(socket);
      return uid === null ? null : { uid };
    }
    const creds = readPeerCredentials(socket);
    return creds && { uid: creds.uid, ...(creds.pid !== undefined && { pid: creds.pid }) };
  };
  /** Inject proxies admit like the Unix listeners: the daemon's uid and the allowed ones; the peer is kept for the audit lines. */
  const admitInject = (socket: net.Socket, kind: 'unix' | 'tcp'): AdmittedPeer | null => {
    const peer = injectPeer(socket, kind);
    if (peer && (peer.uid === ownUid || allowUids.has(peer.uid))) return { conn: nextConnId++, peer };
    audit.record({ conn: 0, op: 'inject', outcome: peer ? 'PEER_REFUSED' : 'PEER_UNKNOWN', ...(peer && { peer }) });
    return null;
  };
  const control = new ControlPlane({
    inject: {
      routes,
      proxy: async (grantId, granted) => {
        const [agents, { InjectProxy }] = await Promise.all([upstreamAgents(), import('../inject/InjectProxy.js')]);
        return new InjectProxy({
          grantId,
          routes: granted,
          credentials,
          dispatcherFor: (r) => agents.for(routes.caOf(r.name)),
          audit,
          now,
          admit: admitInject,
          replayBudget,
          maxConnections: limits.maxInjectConnections,
          idleMs: limits.injectIdleMs,
        });
      },
    },
    dir,
    grants,
    sessions: login?.sessions ?? null,
    now,
    listen: (name, file) => listenUnix({ name, kind: 'sandbox' }, file),
    connectionsOf: (grantId) => [...connections.keys()].filter((c) => c.grant?.id === grantId).length,
    log,
    status: async () => ({
      pid: process.pid,
      version: PACKAGE_VERSION,
      store: options.tokens.backend,
      // A shared store that cannot be reached: still-valid cached tokens are served, writes fail.
      ...(options.tokens.health && { store_health: options.tokens.health() }),
      listeners: [
        { kind: 'main', path: socketPath },
        { kind: 'control', path: controlPath },
        ...(tcpAddress ? [{ kind: 'tcp', ...tcpAddress }] : []),
      ],
      connections: { total: connections.size, limit: limits.maxConnections },
      // Paths, not secrets: what a launcher must keep out of a sandbox (§11 launcher rules).
      protected_paths: [...new Set([...(options.hostPaths ?? []).map((p) => path.resolve(p)), socketPath, controlPath, dir])],
      // A shared store that is down cannot be listed; the rest of the status still answers.
      ...(await tokenSummary(tokens, renewal).then(
        (list) => ({ tokens: list }),
        (err: unknown) => {
          if (!(err instanceof StoreError)) throw err;
          return { tokens: [], tokens_unavailable: err.message };
        },
      )),
    }),
  });
  const services: HandlerServices = {
    tokens,
    keys: options.keys,
    usage: new BucketUsage(),
    refresher,
    ...(options.refreshWaitMs !== undefined && { refreshWaitMs: options.refreshWaitMs }),
    publicFields: (provider) => fieldSource.get(provider)?.publicFields ?? [],
    admin: control,
  };
  const dispatcher = new Dispatcher({ handlers: buildHandlers(login), services, audit, now });

  /** Admission (PROTOCOL.md §7, §11): peer uid on every Unix listener, own uid only on the control socket, caps. */
  const accept = (socket: net.Socket, listener: ListenerSpec): void => {
    const connId = nextConnId++;
    let peer: PeerCredentials | null = null;
    const refuse = (outcome: string): void => {
      dispatcher.note({ conn: connId, peer, grant: null }, 'connection', outcome);
      socket.destroy();
    };
    if (listener.kind !== 'tcp') {
      peer = readPeerCredentials(socket);
      // On Linux the kernel always knows the peer; not learning it means something is wrong: fail
      // closed. The control socket fails closed everywhere: it must know the peer is us.
      if (!peer && (requirePeerCredentials || listener.kind === 'control')) return refuse('PEER_UNKNOWN');
      const allowed = listener.kind === 'control' ? peer?.uid === ownUid : peer?.uid === ownUid || allowUids.has(peer?.uid ?? -1);
      if (peer && !allowed) return refuse('PEER_REFUSED');
    }
    // The control socket (own uid only) is outside the daemon-wide cap, so connections that never
    // authenticate (TCP is open to every local uid) cannot lock its owner out.
    if (listener.kind !== 'control' && connections.size >= limits.maxConnections) return refuse('CONNECTION_LIMIT');
    if (listener.kind === 'sandbox' && countOn(listener.name) >= limits.maxSandboxConnections) return refuse('CONNECTION_LIMIT');
    const conn = new Connection(connId, streamTransport(socket), peer, {
      dispatcher,
      limits,
      now,
      authorize: (capability) => (listener.kind === 'control' ? (capability === undefined ? CONTROL_GRANT : null) : grants.authorize(listener.name, capability)),
    });
    connections.set(conn, listener);
    socket.once('close', () => {
      connections.delete(conn);
      if (listener.kind === 'control') control.connectionClosed(connId);
    });
  };

  async function listenUnix(listener: ListenerSpec, file: string): Promise<net.Server> {
    const server = net.createServer((s) => accept(s, listener));
    await listenPrivately(server, file);
    servers.push(server);
    server.once('close', () => servers.splice(servers.indexOf(server), 1));
    return server;
  }

  let tcpAddress: { host: string; port: number } | undefined;
  await listenUnix({ name: MAIN_LISTENER, kind: 'main' }, socketPath);
  try {
    await listenUnix({ name: 'control', kind: 'control' }, controlPath);
    if (tcp) tcpAddress = await listenTcp(tcp, options.tcp!, (s) => accept(s, { name: TCP_LISTENER, kind: 'tcp' }), servers);
    if (options.discovery !== false) writeDiscovery(dir, { pid: process.pid, socket: socketPath, control: controlPath, version: PACKAGE_VERSION });
    // Plans what the store holds; a store that cannot be listed now is planned at its next change.
    await renewal?.start().catch((err: unknown) => log(`renewal: cannot read the store (${err instanceof Error ? err.message : String(err)})`));
  } catch (err) {
    for (const server of [...servers]) server.close();
    fs.rmSync(socketPath, { force: true });
    fs.rmSync(controlPath, { force: true });
    await login?.shutdown();
    grants.close();
    await audit.close();
    throw err;
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
      if (options.discovery !== false) removeDiscovery(dir, process.pid);
      for (const server of servers) server.close();
      for (const conn of connections.keys()) conn.stopReading();
      const idle = Promise.all([...connections.keys()].map((c) => c.whenIdle()));
      let grace: NodeJS.Timeout | undefined;
      await Promise.race([idle, new Promise<void>((r) => (grace = setTimeout(r, limits.shutdownGraceMs)))]);
      clearTimeout(grace);
      for (const conn of connections.keys()) conn.destroy();
      await renewal?.stop();
      await control.closeAll();
      await (await upstreams)?.close();
      await login?.shutdown();
      // Work whose reply went out early (cancel, timeout) may still be writing the store: give it the grace too.
      await Promise.race([dispatcher.idle(), new Promise<void>((r) => (grace = setTimeout(r, limits.shutdownGraceMs)))]);
      clearTimeout(grace);
      // A refresh still running after the last reply must save its rotated refresh token before the store closes.
      await refresher?.idle();
      // Already gone when removed by hand; nothing left to clean then.
      fs.rmSync(socketPath, { force: true });
      fs.rmSync(controlPath, { force: true });
      grants.close();
      if (options.handleSignals) for (const s of signals) process.off(s, onSignal);
      await audit.close();
      resolveClosed();
    })();
    return stopping;
  };

  if (options.handleSignals) for (const s of signals) process.on(s, onSignal);
  log(`listening on ${socketPath}${tcpAddress ? ` and ${tcpAddress.host}:${tcpAddress.port}` : ''}`);
  return { socketPath, controlPath, tcpAddress, grants, sessions: login?.sessions ?? null, stop, closed };
}

/** The main socket's directory when it is private and ours, else the default socket directory (made private, stale entries cleared). */
async function controlDirFor(socketPath: string, log: (line: string) => void): Promise<string> {
  const own = path.dirname(socketPath);
  const st = fs.lstatSync(own);
  if (st.isDirectory() && st.uid === process.getuid?.() && (st.mode & 0o777) === 0o700) return own;
  const { dir } = defaultSocketPath();
  ensurePrivateDir(dir);
  for (const removed of await removeStaleSockets(dir)) log(`removed stale socket ${removed}`);
  return dir;
}

/** The loopback TCP listener (§1); a start failure names the address. */
async function listenTcp(tcp: { host: string; port: number }, spec: string, onSocket: (s: net.Socket) => void, servers: net.Server[]) {
  const server = net.createServer(onSocket);
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(tcp.port, tcp.host, () => resolve());
    });
  } catch (err) {
    throw new Error(`Cannot listen on ${spec}: ${(err as NodeJS.ErrnoException).code ?? 'error'}`);
  }
  servers.push(server);
  const addr = server.address() as net.AddressInfo;
  return { host: addr.address, port: addr.port };
}

/** daemon_status's tokens: where they are, when they expire, how the last refresh went and the next renewal — never a value. */
async function tokenSummary(tokens: TokenService, renewal: RenewalScheduler | null): Promise<Array<Record<string, unknown>>> {
  const out = [];
  for (const provider of await tokens.listProviders()) {
    for (const bucket of await tokens.listBuckets(provider)) {
      const token = await tokens.read(provider, bucket);
      if (!token) continue;
      const plan = renewal?.statusOf(provider, bucket);
      const attempted = tokens.lastRefreshAttempt(token);
      const result = tokens.lastRefreshResult(token);
      out.push({
        provider,
        bucket,
        expiry: token.expiry,
        refresh_token: Boolean(token.refresh_token),
        ...(attempted !== undefined && { last_refresh: { at: attempted, ...(result !== undefined && { result }) } }),
        ...(plan?.next_renewal !== undefined && { next_renewal: Math.round(plan.next_renewal) }),
        ...(plan && { renewal: plan.state, ...(plan.failures > 0 && { renewal_failures: plan.failures }) }),
        needs_login: plan?.state === 'needs_login' || tokens.needsLogin(token),
      });
    }
  }
  return out;
}
