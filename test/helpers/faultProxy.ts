/**
 * A fault-injecting TCP proxy in front of a local HTTP server (the test authorization server), built
 * on node:net so the faults are real bytes on a real connection, below any HTTP library:
 *
 *   pass     forward the request to the upstream port and its answer back
 *   http500  answer HTTP 500 with an OAuth-style JSON error body
 *   fail503  answer HTTP 503 (temporarily_unavailable) for the next `count` requests, then pass
 *   stall    accept, read the request and never answer (the client's timeout must end it)
 *   reset    read the request, then reset the connection (TCP RST)
 *   garbage  answer bytes that are not HTTP at all
 *   html200  answer 200 with an HTML page (a captive portal, a misrouted proxy)
 *
 * Every request is decided on its own: the proxy reads one request (head and Content-Length body)
 * and forwards it with `Connection: close`, so an HTTP client cannot slip a later request past a mode
 * switch on a kept-alive connection. `requests` records each decision; `waitForRequests(n)` lets a
 * test synchronise on the n-th request instead of sleeping.
 */
import net from 'node:net';

export type FaultMode =
  | { kind: 'pass' }
  | { kind: 'http500' }
  | { kind: 'fail503'; count: number }
  | { kind: 'stall' }
  | { kind: 'reset' }
  | { kind: 'garbage' }
  | { kind: 'html200' };

export interface ProxiedRequest {
  /** Date.now() when the request was read completely. */
  at: number;
  /** What the proxy did with it. */
  outcome: 'pass' | 'http500' | 'http503' | 'stall' | 'reset' | 'garbage' | 'html200';
  /** `METHOD /path` of the request line. */
  line: string;
}

export interface FaultProxy {
  /** `http://127.0.0.1:PORT`: use it in place of the upstream origin. */
  origin: string;
  port: number;
  requests: ProxiedRequest[];
  /** Switches what happens to the next requests (connections already stalled stay stalled). */
  set(mode: FaultMode): void;
  /** Resolves once `count` requests have been read in all. */
  waitForRequests(count: number): Promise<void>;
  /** Ends every stalled connection (their clients see the connection close). */
  releaseStalled(): void;
  close(): Promise<void>;
}

const HEAD_END = Buffer.from('\r\n\r\n');
/** A request head larger than this is not an OAuth request: the proxy gives up on it. */
const MAX_HEAD = 64 * 1024;

function httpResponse(status: string, contentType: string, body: string): string {
  return `HTTP/1.1 ${status}\r\ncontent-type: ${contentType}\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`;
}

const ANSWER_500 = httpResponse('500 Internal Server Error', 'application/json', JSON.stringify({ error: 'server_error', error_description: 'injected by the fault proxy' }));
const ANSWER_503 = httpResponse('503 Service Unavailable', 'application/json', JSON.stringify({ error: 'temporarily_unavailable', error_description: 'injected by the fault proxy' }));
const ANSWER_HTML = httpResponse('200 OK', 'text/html; charset=utf-8', '<!doctype html><html><head><title>Sign in to the network</title></head><body><form>Accept the terms</form></body></html>');
const GARBAGE = Buffer.from('\x00\xff\x13garbage, not HTTP at all\r\n\x7f\x01\x02\r\n\r\n', 'latin1');

/** The request head with any Connection header replaced by `Connection: close`. */
function closingHead(head: string): string {
  const lines = head.split('\r\n').filter((line) => !/^connection\s*:/i.test(line) && !/^keep-alive\s*:/i.test(line));
  return [...lines, 'connection: close'].join('\r\n');
}

/** Starts the proxy on 127.0.0.1 (random port) in front of 127.0.0.1:`upstreamPort`, in pass mode. */
export async function startFaultProxy(upstreamPort: number): Promise<FaultProxy> {
  let mode: FaultMode = { kind: 'pass' };
  const requests: ProxiedRequest[] = [];
  const waiters: Array<{ count: number; resolve: () => void }> = [];
  const sockets = new Set<net.Socket>();
  const stalled = new Set<net.Socket>();

  const record = (entry: ProxiedRequest): void => {
    requests.push(entry);
    for (const w of waiters.splice(0)) {
      if (requests.length >= w.count) w.resolve();
      else waiters.push(w);
    }
  };

  /** What to do with the request that just arrived (fail503 counts down to pass). */
  const decide = (): ProxiedRequest['outcome'] => {
    switch (mode.kind) {
      case 'fail503':
        if (mode.count <= 0) return 'pass';
        mode = { kind: 'fail503', count: mode.count - 1 };
        return 'http503';
      default:
        return mode.kind;
    }
  };

  const track = (socket: net.Socket): void => {
    sockets.add(socket);
    socket.on('close', () => {
      sockets.delete(socket);
      stalled.delete(socket);
    });
    socket.on('error', () => {});
  };

  const handle = (client: net.Socket, head: Buffer, rest: Buffer): void => {
    const headText = head.toString('latin1');
    const line = headText.slice(0, headText.indexOf('\r\n')).split(' ').slice(0, 2).join(' ');
    const outcome = decide();
    record({ at: Date.now(), outcome, line });
    switch (outcome) {
      case 'pass': {
        const upstream = net.connect(upstreamPort, '127.0.0.1');
        track(upstream);
        upstream.once('connect', () => {
          upstream.write(Buffer.concat([Buffer.from(closingHead(headText), 'latin1'), HEAD_END, rest]));
          upstream.pipe(client);
        });
        upstream.once('error', () => client.destroy());
        client.once('close', () => upstream.destroy());
        return;
      }
      case 'http500':
        client.end(ANSWER_500);
        return;
      case 'http503':
        client.end(ANSWER_503);
        return;
      case 'html200':
        client.end(ANSWER_HTML);
        return;
      case 'garbage':
        client.end(GARBAGE);
        return;
      case 'reset':
        client.resetAndDestroy();
        return;
      case 'stall':
        stalled.add(client);
        return;
    }
  };

  const server = net.createServer((client) => {
    track(client);
    let buffered = Buffer.alloc(0);
    let head: Buffer | null = null;
    let bodyLength = 0;
    const onData = (chunk: Buffer): void => {
      buffered = Buffer.concat([buffered, chunk]);
      if (!head) {
        const end = buffered.indexOf(HEAD_END);
        if (end < 0) {
          if (buffered.length > MAX_HEAD) client.destroy();
          return;
        }
        head = buffered.subarray(0, end);
        buffered = buffered.subarray(end + HEAD_END.length);
        const length = /\r\ncontent-length\s*:\s*(\d+)/i.exec(head.toString('latin1'));
        bodyLength = length ? Number(length[1]) : 0;
      }
      if (buffered.length < bodyLength) return;
      // One request per connection: whatever follows is not read (the head says Connection: close).
      client.off('data', onData);
      handle(client, head, buffered);
    };
    client.on('data', onData);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const port = (server.address() as net.AddressInfo).port;

  return {
    origin: `http://127.0.0.1:${port}`,
    port,
    requests,
    set(next) {
      mode = next.kind === 'fail503' ? { ...next } : next;
    },
    waitForRequests(count) {
      if (requests.length >= count) return Promise.resolve();
      return new Promise((resolve) => waiters.push({ count, resolve }));
    },
    releaseStalled() {
      for (const socket of stalled) socket.destroy();
      stalled.clear();
    },
    close() {
      return new Promise<void>((resolve) => {
        server.close(() => resolve());
        for (const socket of sockets) socket.destroy();
      });
    },
  };
}
