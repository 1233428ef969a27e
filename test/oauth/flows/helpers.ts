/**
 * Test helpers: a small node:http server on 127.0.0.1 that records every request and answers with
 * a scripted handler (the wire format of one provider), plus FlowDeps with a controlled clock.
 */
import { createHash, randomBytes } from 'node:crypto';
import http from 'node:http';
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import type { FlowDeps } from '../../../src/oauth/flowTypes.js';

export interface RecordedRequest {
  method: string;
  path: string;
  query: URLSearchParams;
  headers: http.IncomingHttpHeaders;
  raw: string;
  /** Parsed body: JSON object or form fields. */
  body: Record<string, unknown>;
  json: boolean;
}

export interface Reply {
  status?: number;
  body?: unknown;
  headers?: Record<string, string>;
  /** Milliseconds to wait before answering. */
  delayMs?: number;
}

export type Handler = (req: RecordedRequest) => Reply | Promise<Reply>;

export interface FakeServer {
  url: string;
  requests: RecordedRequest[];
  /** Requests to one path. */
  to(path: string): RecordedRequest[];
  close(): Promise<void>;
}

export async function startFakeServer(handler: Handler): Promise<FakeServer> {
  const requests: RecordedRequest[] = [];
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const raw = Buffer.concat(chunks).toString('utf8');
      const url = new URL(req.url ?? '/', 'http://127.0.0.1');
      const json = (req.headers['content-type'] ?? '').includes('application/json');
      let body: Record<string, unknown> = {};
      if (json) body = raw ? (JSON.parse(raw) as Record<string, unknown>) : {};
      else body = Object.fromEntries(new URLSearchParams(raw));
      const recorded: RecordedRequest = { method: req.method ?? '', path: url.pathname, query: url.searchParams, headers: req.headers, raw, body, json };
      requests.push(recorded);
      void Promise.resolve(handler(recorded)).then(async (reply) => {
        if (reply.delayMs) await new Promise((r) => setTimeout(r, reply.delayMs));
        if (res.destroyed) return;
        const payload = typeof reply.body === 'string' ? reply.body : reply.body === undefined ? '' : JSON.stringify(reply.body);
        res.writeHead(reply.status ?? 200, { 'content-type': typeof reply.body === 'string' ? 'text/plain' : 'application/json', ...reply.headers });
        res.end(payload);
      });
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    to: (path) => requests.filter((r) => r.path === path),
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

export interface TestDeps extends FlowDeps {
  clock: { t: number; advance(ms: number): void };
}

/** Real fetch and randomness, a clock the test moves. */
export function testDeps(overrides: Partial<FlowDeps> = {}): TestDeps {
  const clock = {
    t: 1_700_000_000_123,
    advance(ms: number) {
      clock.t += ms;
    },
  };
  return { fetch: globalThis.fetch, now: () => clock.t, randomBytes: (n) => randomBytes(n), httpTimeoutMs: 5_000, clock, ...overrides };
}

export function s256(verifier: string): string {
  return createHash('sha256').update(verifier).digest('base64url');
}

/** An unsigned JWT carrying `claims` (providers' id_tokens are only read for claims). */
export function fakeJwt(claims: Record<string, unknown>): string {
  const enc = (v: unknown) => Buffer.from(JSON.stringify(v)).toString('base64url');
  return `${enc({ alg: 'none', typ: 'JWT' })}.${enc(claims)}.`;
}

/** Resolves with the connect error code (ECONNREFUSED once a port is free) or 'connected'. */
export function probePort(port: number): Promise<string> {
  return new Promise((resolve) => {
    const socket = net.connect({ host: '127.0.0.1', port });
    socket.once('connect', () => {
      socket.destroy();
      resolve('connected');
    });
    socket.once('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? 'error'));
  });
}

/** A GET like a browser following the redirect; returns status and page. */
export async function browserGet(url: string): Promise<{ status: number; text: string }> {
  const res = await fetch(url);
  return { status: res.status, text: await res.text() };
}

export const never = new AbortController().signal;
