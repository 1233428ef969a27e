/**
 * Inject mode's egress proxy for one grant: plain HTTP in (the grant's Unix socket, and a loopback
 * TCP port when asked), HTTPS out through undici's keep-alive pools. Per request: the route matcher
 * (404 / 403 / 400), the header sanitizer, the host credential attached, bodies streamed both ways
 * (never buffered, except an OAuth request body of at most 1 MiB, kept to replay it once after an
 * upstream 401 and a forced refresh), one audit line. Upstream failures fail closed with a 502.
 */
import { randomBytes, timingSafeEqual } from 'node:crypto';
import http from 'node:http';
import type net from 'node:net';
import { pipeline, Transform, type Readable } from 'node:stream';
import type { Dispatcher } from 'undici';
import { ProxyError } from '../protocol/errors.js';
import type { AuditEvent, AuditLog } from '../server/audit.js';
import { listenPrivately } from '../server/listen.js';
import { sandboxResponseHeaders, UnsendableCredentialError, upstreamRequestHeaders } from './headers.js';
import { bindToken, TokenBindingError } from './bindToken.js';
import type { Attachment, InjectCredentials } from './InjectCredentials.js';
import type { ReplayBudget } from './replayBudget.js';
import { matchRequest } from './routeMatcher.js';
import type { Route } from './routeSchema.js';

/** The largest request body kept for a replay after a 401 (OAuth routes). */
export const REPLAY_LIMIT = 1024 * 1024;

/** Who is on the other end of a proxy connection: the uid, and the pid where the kernel tells it (Unix sockets). */
export interface InjectPeer {
  uid: number;
  pid?: number;
}

/** An admitted connection: its number among the daemon's connections, and its peer. */
export interface AdmittedPeer {
  conn: number;
  peer: InjectPeer;
}

export interface InjectProxyOptions {
  grantId: string;
  routes: readonly Route[];
  credentials: InjectCredentials;
  /** The connection pool for a route's upstream. */
  dispatcherFor(route: Route): Dispatcher;
  audit: AuditLog;
  now: () => number;
  /** Admission of a new connection by its peer (uid); null closes it unanswered. The peer goes in its audit lines. */
  admit(socket: net.Socket, kind: 'unix' | 'tcp'): AdmittedPeer | null;
  /** Bytes of request bodies that may be kept for a 401 replay, shared by the daemon's proxies. */
  replayBudget: ReplayBudget;
  /** Open connections per listener. */
  maxConnections: number;
  /** A connection idle (no byte either way) this long is closed. */
  idleMs: number;
}


/**
 * Buffered bytes per direction of a sandbox connection before the other side is paused: room for the
 * TLS records of several reads to go out in one write.
 */
const STREAM_HWM = 256 * 1024;

const TLS_FAILURE = /CERT|SELF_SIGNED|UNABLE_TO_VERIFY|UNABLE_TO_GET_ISSUER|HOSTNAME_MISMATCH|^ERR_TLS|^ERR_SSL|^EPROTO$/;

/** A one-line reason for a failed upstream call: which host and the error code, nothing it sent. */
function upstreamFailure(err: unknown, host: string): { reason: string; outcome: string } {
  const e = err as { code?: unknown; cause?: { code?: unknown } };
  const code = typeof e.cause?.code === 'string' ? e.cause.code : typeof e.code === 'string' ? e.code : 'error';
  if (TLS_FAILURE.test(code)) return { reason: `upstream ${host}: TLS verification failed (${code}); name the CA that signed its certificate in the route's ca`, outcome: 'UPSTREAM_TLS' };
  return { reason: `upstream ${host} failed (${code})`, outcome: 'UPSTREAM_FAILED' };
}

function hasBody(req: http.IncomingMessage): boolean {
  const length = req.headers['content-length'];
  return req.headers['transfer-encoding'] !== undefined || (length !== undefined && length !== '0');
}

async function readAll(req: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

export class InjectProxy {
  private readonly routes: Map<string, Route>;
  private readonly servers: http.Server[] = [];
  private readonly conns = new WeakMap<net.Socket, AdmittedPeer>();
  /** The loopback port's path key (see listenTcp). */
  private readonly tcpKey = randomBytes(16).toString('hex');

  constructor(private readonly options: InjectProxyOptions) {
    this.routes = new Map(options.routes.map((r) => [r.name, r]));
  }

  /** Serves on a private (0600) Unix socket. */
  async listenUnix(socketPath: string): Promise<void> {
    await listenPrivately(this.server('unix'), socketPath);
  }

  /** Serves on 127.0.0.1 (an ephemeral port); returns the address. */
  /**
   * The loopback port. Every local process of the user can reach it (a sandbox with network shares
   * the host's loopback), so requests must start with `/<key>/`, a random key only this grant's
   * program gets (inside its base URL): the port of one run is no way into another run's routes.
   */
  async listenTcp(): Promise<{ host: string; port: number; key: string }> {
    const server = this.server('tcp');
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(0, '127.0.0.1', () => resolve());
    });
    const addr = server.address() as net.AddressInfo;
    return { host: addr.address, port: addr.port, key: this.tcpKey };
  }

  /** Stops listening and ends every connection, in-flight requests included (the grant is over). */
  async close(): Promise<void> {
    await Promise.all(
      this.servers.map(
        (s) =>
          new Promise<void>((resolve) => {
            s.close(() => resolve());
            s.closeAllConnections();
          }),
      ),
    );
  }

  private server(kind: 'unix' | 'tcp'): http.Server {
    // No request timeout: uploads and streamed answers may take as long as they take.
    const server = http.createServer({ requestTimeout: 0, highWaterMark: STREAM_HWM }, (req, res) => void this.handle(req, res, kind));
    server.on('connection', (socket: net.Socket) => {
      const admitted = this.options.admit(socket, kind);
      if (!admitted) {
        socket.destroy();
        return;
      }
      this.conns.set(socket, admitted);
    });
    server.on('clientError', (_err, socket) => socket.destroy());
    // A sandbox must not be able to hold the daemon's memory or descriptors with idle connections.
    server.maxConnections = this.options.maxConnections;
    server.timeout = this.options.idleMs;
    this.servers.push(server);
    return server;
  }

  /** One proxied request, start to audit line; nothing it does may throw into the server. */
  private async handle(req: http.IncomingMessage, res: http.ServerResponse, kind: 'unix' | 'tcp'): Promise<void> {
    const started = this.options.now();
    const x: Exchange = { req, res, method: (req.method ?? 'GET').toUpperCase(), host: '', up: 0, down: 0, aborted: new AbortController(), audit: {} };
    res.once('close', () => {
      if (!res.writableFinished) x.aborted.abort();
    });
    const conn = this.conns.get(req.socket);
    const done = (fields: Partial<AuditEvent>): void =>
      this.options.audit.record({
        conn: conn?.conn ?? 0,
        ...(conn && { peer: conn.peer }),
        grant: this.options.grantId,
        op: 'inject',
        outcome: 'ok',
        method: x.method,
        ...x.audit,
        ...fields,
        bytes_up: x.up,
        bytes_down: x.down,
        ms: this.options.now() - started,
      });
    try {
      const target = kind === 'tcp' ? this.withoutKey(req.url ?? '/') : (req.url ?? '/');
      if (target === null) {
        refuse(x, 404, 'no such route');
        return done({ status: 404, outcome: REFUSAL_OUTCOME[404] });
      }
      await this.proxy(x, target, done);
    } catch (err) {
      if (x.aborted.signal.aborted) return done({ outcome: 'CANCELLED' });
      // A failure of this code, not of the upstream: answered if still possible, never with its text.
      refuse(x, 502, 'internal error', err instanceof UnsendableCredentialError ? err.message : undefined);
      done({ status: 502, outcome: 'INTERNAL_ERROR' });
    }
  }

  /** The request target after the loopback port's `/<key>` (compared in constant time), or null without it. */
  private withoutKey(url: string): string | null {
    const prefix = `/${this.tcpKey}`;
    const given = Buffer.from(url.slice(0, prefix.length));
    if (given.length !== prefix.length || !timingSafeEqual(given, Buffer.from(prefix)) || url[prefix.length] !== '/') return null;
    return url.slice(prefix.length);
  }

  private async proxy(x: Exchange, target: string, done: (fields: Partial<AuditEvent>) => void): Promise<void> {
    const match = matchRequest(this.routes, x.method, target);
    if (!match.ok) {
      refuse(x, match.status, match.reason);
      return done({ route: match.route, path: match.path, status: match.status, outcome: REFUSAL_OUTCOME[match.status] });
    }
    const { route } = match;
    x.audit = { route: route.name, path: match.path };

    let credential: Attachment;
    try {
      credential = await this.options.credentials.current(route.credential, x.aborted.signal);
    } catch (err) {
      if (!(err instanceof ProxyError)) throw err;
      refuse(x, 502, `${err.message} (${err.code})`);
      return done({ status: 502, outcome: err.code });
    }
    // Kept only where it may be replayed: an OAuth route's body of at most REPLAY_LIMIT bytes, while
    // the daemon's replay budget has room for it.
    const length = hasBody(x.req) ? Number(x.req.headers['content-length']) : 0;
    const fits = 'provider' in route.credential && (!hasBody(x.req) || (x.req.headers['transfer-encoding'] === undefined && length <= REPLAY_LIMIT));
    const replayable = fits && this.options.replayBudget.take(length);
    let sent: Sent;
    try {
      sent = await this.exchange(x, route, match.forward, credential, replayable);
    } finally {
      if (replayable) this.options.replayBudget.give(length);
    }
    if ('failed' in sent) return done(sent.failed);
    const answer = sent.answer;
    respond(x, answer, (err) => done({ status: answer.statusCode, ...(err && { outcome: x.aborted.signal.aborted ? 'CANCELLED' : 'UPSTREAM_FAILED' }) }));
  }

  /** The upstream's answer to the request, replayed once with a renewed token after a 401 when `replayable`. */
  private async exchange(x: Exchange, route: Route, forward: string, credential: Attachment, replayable: boolean): Promise<Sent> {
    const body = await requestBody(x, replayable);
    let answer: Dispatcher.ResponseData;
    try {
      answer = await this.send(x, route, forward, body, credential);
      if (answer.statusCode === 401 && replayable) {
        const renewed = await this.options.credentials.renewed(route.credential, credential.value, x.aborted.signal);
        if (renewed !== null) {
          await answer.body.dump();
          answer = await this.send(x, route, forward, body, renewed);
        }
      }
    } catch (err) {
      if (x.aborted.signal.aborted || err instanceof UnsendableCredentialError) throw err;
      if (err instanceof TokenBindingError) {
        refuse(x, 502, err.message);
        return { failed: { status: 502, outcome: 'TOKEN_UNUSABLE' } };
      }
      const failure = upstreamFailure(err, x.host);
      refuse(x, 502, failure.reason);
      return { failed: { status: 502, outcome: failure.outcome } };
    }
    return { answer };
  }

  /** One upstream request; `forward` is the path after the route's name, the upstream's base path goes in front. */
  private send(x: Exchange, route: Route, forward: string, body: Buffer | Readable | null, credential: Attachment): Promise<Dispatcher.ResponseData> {
    const binding = bindToken(route, credential.token);
    x.host = binding.upstream.host;
    return this.options.dispatcherFor(route).request({
      origin: binding.upstream.origin,
      path: `${binding.upstream.pathname.replace(/\/+$/, '')}${forward}`,
      method: x.method as Dispatcher.HttpMethod,
      headers: upstreamRequestHeaders(x.req.headers, route, credential.value, binding.headers),
      body,
      signal: x.aborted.signal,
    });
  }
}

/**
 * Counts the bytes that pass. A 'data' listener beside undici's reader cannot do it: it would start
 * the body flowing before undici reads it, and the first chunks would be lost.
 */
function counter(add: (n: number) => void): Transform {
  return new Transform({
    transform(chunk: Buffer, _enc, done) {
      add(chunk.length);
      done(null, chunk);
    },
  });
}

/** The upstream's answer, or how it failed (already answered to the sandbox with a 502). */
type Sent = { answer: Dispatcher.ResponseData } | { failed: Partial<AuditEvent> };

/** One request in flight: its streams, byte counts, cancellation and what its audit line says so far. */
interface Exchange {
  req: http.IncomingMessage;
  res: http.ServerResponse;
  method: string;
  /** The upstream host of the latest attempt (for a failure's reason). */
  host: string;
  up: number;
  down: number;
  aborted: AbortController;
  audit: Partial<AuditEvent>;
}

const REFUSAL_OUTCOME = { 400: 'BAD_PATH', 403: 'NOT_ALLOWED', 404: 'NO_ROUTE' } as const;

/** A one-line refusal from the proxy itself; the connection closes after it (an unread body stays unread). */
function refuse(x: Exchange, status: number, reason: string, detail?: string): void {
  if (x.res.headersSent) return void x.res.destroy();
  x.res.writeHead(status, { 'content-type': 'text/plain; charset=utf-8', connection: 'close' });
  x.res.end(`credproxy: ${detail ?? reason}\n`);
}

/** The body to send upstream: none, read whole (replayable), or streamed through a byte counter. */
async function requestBody(x: Exchange, replayable: boolean): Promise<Buffer | Readable | null> {
  if (!hasBody(x.req)) return null;
  if (!replayable) return x.req.pipe(counter((n) => (x.up += n)));
  const body = await readAll(x.req);
  x.up = body.length;
  return body;
}

/** The upstream's answer, streamed to the sandbox as it comes; `finished` once it is through or broken. */
function respond(x: Exchange, answer: Dispatcher.ResponseData, finished: (err: Error | null) => void): void {
  x.res.writeHead(answer.statusCode, sandboxResponseHeaders(answer.headers as http.IncomingHttpHeaders));
  // Headers first, so a streamed answer's first byte is not held back by them.
  x.res.flushHeaders();
  // The upstream's TLS records (16 KiB at most) arrive one callback each, and each would be its own
  // write to the sandbox's socket; the writes of one turn of the event loop go out together instead.
  // Counted beside the pipe rather than through a Transform: one stage less per chunk.
  let corked = false;
  const uncork = (): void => {
    corked = false;
    x.res.uncork();
  };
  answer.body.on('data', (chunk: Buffer) => {
    x.down += chunk.length;
    if (corked) return;
    corked = true;
    x.res.cork();
    setImmediate(uncork);
  });
  pipeline(answer.body, x.res, (err) => finished(err ?? null));
}
