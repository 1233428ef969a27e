/**
 * The daemon's control plane (PROTOCOL.md §11): grants opened at run time, each with its own sandbox
 * socket in a 0700 subdirectory of the daemon's directory (`{dir}/{grant_id}/{nonce}.sock`), so a
 * launcher mounts that subdirectory alone. A grant opened without `ttl_s` lives as long as the
 * control connection that opened it; ending a grant (any way) closes its socket, its connections and
 * its login sessions. A grant with injection routes also gets its own HTTP proxy (inject mode): a
 * second Unix socket in the same subdirectory, and a loopback TCP port when asked for, both closed
 * with the grant. The credential of an injected route is never also in the grant's providers or
 * keys, so the sandbox cannot read what the proxy attaches.
 */
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import type net from 'node:net';
import path from 'node:path';
import { hashCapability, newCapability } from '../auth/capability.js';
import type { GrantRegistry } from '../auth/GrantRegistry.js';
import { allowsKey, allowsProvider, type Grant } from '../auth/grants.js';
import { RUN_GRANT_PREFIX } from '../auth/policy.js';
import type { AdminService, GrantListing, InjectListing, OpResults } from '../handlers/context.js';
import type { InjectProxy } from '../inject/InjectProxy.js';
import { RouteError, type RouteTable } from '../inject/RouteTable.js';
import type { Route } from '../inject/routeSchema.js';
import type { SessionStore } from '../oauth/sessions.js';
import { errors, ProxyError } from '../protocol/errors.js';
import type { Payload } from '../protocol/messages.js';
import { assertSocketPathLength, ensurePrivateDir } from './socketPath.js';

/** What the control plane needs from its daemon. */
export interface ControlPlaneDeps {
  /** The daemon's private directory. */
  dir: string;
  grants: GrantRegistry;
  sessions: SessionStore | null;
  now: () => number;
  /** Opens a private Unix listener whose connections belong to `listener` (the registry's name for it). */
  listen(listener: string, socketPath: string): Promise<net.Server>;
  /** Open connections holding `grantId`. */
  connectionsOf(grantId: string): number;
  /** The rest of daemon_status (listeners, connections, store, tokens). */
  status(): Promise<Record<string, unknown>>;
  /** Operational messages (never secrets). */
  log(line: string): void;
  /** Inject mode: the host's routes and a proxy for a grant's routes (null: this daemon injects nothing). */
  inject: { routes: RouteTable; proxy(grantId: string, routes: readonly Route[]): Promise<InjectProxy> } | null;
}

interface Opened {
  /** Null while grant_open is still setting the socket up. */
  server: net.Server | null;
  socketPath: string;
  /** The control connection whose close ends the grant; null with ttl_s. */
  conn: number | null;
  /** Its injection proxy, once listening. */
  inject?: { proxy: InjectProxy; listing: InjectListing };
}

/** The registry's listener name of a grant's sandbox socket. */
export function sandboxListener(grantId: string): string {
  return `sandbox:${grantId}`;
}

export class ControlPlane implements AdminService {
  private readonly opened = new Map<string, Opened>();
  /** Clean-ups of ended grants still running, by grant id. */
  private readonly endings = new Map<string, Promise<void>>();
  private readonly started: number;

  constructor(private readonly deps: ControlPlaneDeps) {
    this.started = deps.now();
    deps.grants.onRevoke((grant) => {
      const ending = this.ended(grant).catch(() => {});
      this.endings.set(grant.id, ending);
      void ending.then(() => this.endings.delete(grant.id));
    });
  }

  async openGrant(conn: number, request: Payload<'grant_open'>, signal: AbortSignal): Promise<OpResults['grant_open']> {
    const { grants, dir, now } = this.deps;
    const id = `${RUN_GRANT_PREFIX}${randomBytes(6).toString('hex')}`;
    const grant: Grant = { id, providers: request.providers, keys: request.keys, ops: request.ops };
    const routes = this.injectedRoutes(grant, request);
    const capability = request.capability ? newCapability() : undefined;
    const subdir = path.join(dir, id);
    const socketPath = path.join(subdir, `${randomBytes(16).toString('hex')}.sock`);
    try {
      assertSocketPathLength(socketPath);
    } catch (err) {
      throw new ProxyError('INTERNAL_ERROR', (err as Error).message);
    }
    grants.add(grant, {
      ...(request.label !== undefined && { label: request.label }),
      ...(capability !== undefined && { capabilitySha256: hashCapability(capability) }),
      ...(request.ttl_s !== undefined && { expires: now() + request.ttl_s * 1000 }),
    });
    // Registered before the await, so a control connection that closes meanwhile ends this grant too.
    const entry: Opened = { server: null, socketPath, conn: request.ttl_s === undefined ? conn : null };
    this.opened.set(id, entry);
    try {
      ensurePrivateDir(subdir);
      grants.bind(sandboxListener(id), id, { exclusive: true });
      entry.server = await this.deps.listen(sandboxListener(id), socketPath);
      if (routes.length > 0) await this.openInject(entry, id, routes, request.inject_tcp === true);
    } catch (err) {
      grants.revoke(id);
      throw err;
    }
    // Nobody will learn of a grant whose request was cancelled or timed out, or whose launcher is gone.
    if (signal.aborted || this.opened.get(id) !== entry) {
      if (this.opened.get(id) === entry) grants.revoke(id);
      else entry.server.close();
      throw errors.cancelled();
    }
    return { grant_id: id, socket: socketPath, ...(capability !== undefined && { capability }), ...(entry.inject && { inject: entry.inject.listing }) };
  }

  /** The routes a grant_open asks to inject, checked against the host's routes and the grant itself. */
  private injectedRoutes(grant: Grant, request: Payload<'grant_open'>): Route[] {
    if (request.inject.length === 0) return [];
    if (!this.deps.inject) throw new ProxyError('INVALID_REQUEST', 'This daemon serves no injection routes');
    let routes: Route[];
    try {
      routes = this.deps.inject.routes.resolve(request.inject);
    } catch (err) {
      if (err instanceof RouteError) throw new ProxyError('INVALID_REQUEST', err.message);
      throw err;
    }
    for (const route of routes) {
      const c = route.credential;
      const shared = 'key' in c ? allowsKey(grant, c.key) && `the API key ${c.key}` : allowsProvider(grant, c.provider) && `provider ${c.provider}`;
      if (shared) throw new ProxyError('INVALID_REQUEST', `Route ${route.name} injects ${shared}, which the grant would also hand out; inject it or grant it, not both`);
    }
    return routes;
  }

  /** Starts a grant's injection proxy beside its sandbox socket (and on loopback TCP when asked). */
  private async openInject(entry: Opened, grantId: string, routes: readonly Route[], tcp: boolean): Promise<void> {
    const proxy = await this.deps.inject!.proxy(grantId, routes);
    const socket = path.join(path.dirname(entry.socketPath), `inject-${randomBytes(8).toString('hex')}.sock`);
    const listing: InjectListing = { socket, routes: routes.map((r) => ({ route: r.name, env: r.env })) };
    entry.inject = { proxy, listing };
    try {
      assertSocketPathLength(socket);
    } catch (err) {
      throw new ProxyError('INTERNAL_ERROR', (err as Error).message);
    }
    await proxy.listenUnix(socket);
    if (tcp) listing.tcp = await proxy.listenTcp();
  }

  async closeGrant(grantId: string): Promise<boolean> {
    if (!this.opened.has(grantId)) return false;
    const revoked = this.deps.grants.revoke(grantId);
    // Answered once its socket and directory are gone, so a launcher that exits next leaves nothing.
    await this.endings.get(grantId);
    return revoked;
  }

  listGrants(): GrantListing[] {
    return this.deps.grants.list().map((info) => {
      const listing: GrantListing = {
        grant_id: info.grant.id,
        providers: info.grant.providers,
        keys: info.grant.keys,
        ops: info.grant.ops,
        created: info.created,
        connections: this.deps.connectionsOf(info.grant.id),
      };
      if (info.label !== undefined) listing.label = info.label;
      if (info.expires !== undefined) listing.expires = info.expires;
      const inject = this.opened.get(info.grant.id)?.inject;
      if (inject) listing.inject = inject.listing.routes.map((r) => r.route);
      return listing;
    });
  }

  async status(): Promise<Record<string, unknown>> {
    const sandboxes = [...this.opened].flatMap(([grant_id, o]) => [
      { kind: 'sandbox', grant_id, path: o.socketPath },
      // The port, never its key: status output is not for the grant's program.
      ...(o.inject ? [{ kind: 'inject', grant_id, path: o.inject.listing.socket, ...(o.inject.listing.tcp && { tcp: { host: o.inject.listing.tcp.host, port: o.inject.listing.tcp.port } }) }] : []),
    ]);
    const rest = await this.deps.status();
    return {
      ...rest,
      uptime_s: Math.floor((this.deps.now() - this.started) / 1000),
      listeners: [...((rest.listeners as unknown[]) ?? []), ...sandboxes],
      grants: this.listGrants().length,
      sessions: this.deps.sessions?.summary() ?? [],
    };
  }

  /** A control connection closed: the grants it opened without ttl_s end with it. */
  connectionClosed(conn: number): void {
    for (const [id, o] of this.opened) if (o.conn === conn) this.deps.grants.revoke(id);
  }

  /** Ends every opened grant (daemon stop). */
  async closeAll(): Promise<void> {
    for (const id of [...this.opened.keys()]) this.deps.grants.revoke(id);
    await Promise.all([...this.endings.values()]);
  }

  /** After a grant ended (close, ttl, control connection gone): socket, directory, sessions. */
  private async ended(grant: Grant): Promise<void> {
    const o = this.opened.get(grant.id);
    if (!o) return;
    this.opened.delete(grant.id);
    this.deps.grants.unbind(sandboxListener(grant.id));
    o.server?.close();
    try {
      await o.inject?.proxy.close();
      // First: nothing a sandbox left in its (mounted, writable) directory may keep its logins alive.
      await this.deps.sessions?.cancelGrant(grant.id);
    } finally {
      try {
        fs.rmSync(path.dirname(o.socketPath), { recursive: true, force: true });
      } catch (err) {
        this.deps.log(`could not remove the socket directory of grant ${grant.id} (${(err as NodeJS.ErrnoException).code ?? 'error'}); remove ${path.dirname(o.socketPath)} by hand`);
      }
    }
  }
}
