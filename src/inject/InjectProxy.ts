/**
 * Inject mode's egress proxy for one grant: plain HTTP in (the grant's Unix socket, and a loopback
 * TCP port when asked), HTTPS out through undici's keep-alive pools. Per request: the route matcher
 * (404 / 403 / 400), the header sanitizer, the host credential attached, bodies streamed both ways
 * (never buffered, except an OAuth request body of at most 1 MiB, kept to replay it once after an
 * upstream 401 and a forced refresh), one audit line. Upstream failures fail closed with a 502.
 */
import http from 'node:http';
import type net from 'node:net';
import { pipeline, Transform, type Readable } from 'node:stream';
import type { Dispatcher } from 'undici';
import { ProxyError } from '../protocol/errors.js';
import type { AuditEvent, AuditLog } from '../server/audit.js';
import { listenPrivately } from '../server/listen.js';
import { sandboxResponseHeaders, UnsendableCredentialError, upstreamRequestHeaders } from './headers.js';
import type { InjectCredentials } from './InjectCredentials.js';
import { matchRequest } from './routeMatcher.js';
import type { Route } from './routeSchema.js';

/** The largest request body kept for a replay after a 401 (OAuth routes). */
export const REPLAY_LIMIT = 1024 * 1024;

export interface InjectProxyOptions {
  grantId: string;
  routes: readonly Route[];
  credentials: InjectCredentials;
  /** The connection pool for a route's upstream. */
  dispatcherFor(route: Route): Dispatcher;
  audit: AuditLog;
  now: () => number;
  /** Admission of a new connection (peer uid); false closes it unanswered. */
  admit(socket: net.Socket, kind: 'unix' | 'tcp'): boolean;
}

/** Counts the bytes that pass. */
function counter(add: (n: number) => void): Transform {
  return new Transform({
    transform(chunk: Buffer, _enc, done) {
      add(chunk.length);
      done(null, chunk);
    },
  });
}

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
  private readonly connIds = new WeakMap<net.Socket, number>();
  private nextConn = 1;

  constructor(private readonly options: InjectProxyOptions) {
    this.routes = new Map(options.routes.map((r) => [r.name, r]));
  }

  /** Serves on a private (0600) Unix socket. */
  async listenUnix(socketPath: string): Promise<void> {
    await listenPrivately(this.server('unix'), socketPath);
  }

  /** Serves on 127.0.0.1 (an ephemeral port); returns the address. */
  async listenTcp(): Promise<{ host: string; port: number }> {
    const server = this.server('tcp');
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(0, '127.0.0.1', () => resolve());
    });
    const addr = server.address() as net.AddressInfo;
    return { host: addr.address, port: addr.port };
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
    const server = http.createServer({ requestTimeout: 0 }, (req, res) => void this.handle(req, res));
    server.on('connection', (socket: net.Socket) => {
      if (!this.options.admit(socket, kind)) {
        socket.destroy();
        return;
      }
      this.connIds.set(socket, this.nextConn++);
    });
    server.on('clientError', (_err, socket) => socket.destroy());
    this.servers.push(server);
    return server;
  }

  private async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const { now, audit, grantId } = this.options;
    const started = now();
    const method = (req.method ?? 'GET').toUpperCase();
    let up = 0;
    let down = 0;
    const base: AuditEvent = { conn: this.connIds.get(req.socket) ?? 0, grant: grantId, op: 'inject', outcome: 'ok', method };
    const record = (fields: Partial<AuditEvent>): void => audit.record({ ...base, ...fields, bytes_up: up, bytes_down: down, ms: now() - started });
    const refuse = (status: number, reason: string, fields: Partial<AuditEvent>): void => {
      if (!res.headersSent) res.writeHead(status, { 'content-type': 'text/plain; charset=utf-8', connection: 'close' });
      res.end(`credproxy: ${reason}\n`);
      // The request body, if any, is not read: the connection closes after the reply.
      record({ ...fields, status });
    };

    const match = matchRequest(this.routes, method, req.url ?? '/');
    if (!match.ok) return refuse(match.status, match.reason, { route: match.route, path: match.path, outcome: match.status === 404 ? 'NO_ROUTE' : match.status === 403 ? 'NOT_ALLOWED' : 'BAD_PATH' });
    const { route, forward, path } = match;
    const at = { route: route.name, path };
    const aborted = new AbortController();
    res.once('close', () => {
      if (!res.writableFinished) aborted.abort();
    });

    let credential: string;
    try {
      credential = await this.options.credentials.current(route.credential, aborted.signal);
    } catch (err) {
      const reason = err instanceof ProxyError ? `${err.message} (${err.code})` : 'the credential could not be read';
      return refuse(502, reason, { ...at, outcome: err instanceof ProxyError ? err.code : 'INTERNAL_ERROR' });
    }

    const oauth = 'provider' in route.credential;
    const length = Number(req.headers['content-length'] ?? 0);
    const replayable = oauth && (!hasBody(req) || (req.headers['transfer-encoding'] === undefined && length <= REPLAY_LIMIT));
    let body: Buffer | Readable | null = null;
    if (hasBody(req)) {
      if (replayable) {
        body = await readAll(req);
        up = body.length;
      } else {
        body = req.pipe(counter((n) => (up += n)));
      }
    }
    const host = new URL(route.upstream).host;
    const send = (value: string): Promise<Dispatcher.ResponseData> =>
      this.options.dispatcherFor(route).request({
        origin: new URL(route.upstream).origin,
        path: forward,
        method: method as Dispatcher.HttpMethod,
        headers: upstreamRequestHeaders(req.headers, route, value),
        body,
        signal: aborted.signal,
      });

    let answer: Dispatcher.ResponseData;
    try {
      answer = await send(credential);
      if (answer.statusCode === 401 && replayable) {
        const renewed = await this.options.credentials.renewed(route.credential, credential, aborted.signal);
        if (renewed !== null) {
          await answer.body.dump();
          answer = await send(renewed);
        }
      }
    } catch (err) {
      if (aborted.signal.aborted) return record({ ...at, outcome: 'CANCELLED' });
      if (err instanceof UnsendableCredentialError) return refuse(502, err.message, { ...at, outcome: 'INTERNAL_ERROR' });
      const failure = upstreamFailure(err, host);
      return refuse(502, failure.reason, { ...at, outcome: failure.outcome });
    }

    res.writeHead(answer.statusCode, sandboxResponseHeaders(answer.headers as http.IncomingHttpHeaders));
    // Headers first, so a streamed answer's first byte is not held back by them.
    res.flushHeaders();
    // Counted beside the pipe rather than through a Transform: one stage less per chunk.
    answer.body.on('data', (chunk: Buffer) => (down += chunk.length));
    pipeline(answer.body, res, (err) => record({ ...at, status: answer.statusCode, ...(err && { outcome: aborted.signal.aborted ? 'CANCELLED' : 'UPSTREAM_FAILED' }) }));
  }
}
