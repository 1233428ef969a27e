/** A plain HTTP client for inject mode's proxy, over its Unix socket or loopback TCP port. */
import http from 'node:http';
import type { Readable } from 'node:stream';

export type ProxyTarget = { socketPath: string } | { host: string; port: number };

export interface ProxyAnswer {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
}

/** Starts a request; the caller reads the response (for streams). */
export function proxyRequest(target: ProxyTarget, method: string, path: string, options: { headers?: http.OutgoingHttpHeaders; body?: Buffer | string | Readable } = {}): Promise<http.IncomingMessage> {
  return new Promise((resolve, reject) => {
    const req = http.request({ ...target, method, path, headers: options.headers ?? {}, agent: false }, resolve);
    req.on('error', reject);
    const { body } = options;
    if (body === undefined) req.end();
    else if (typeof body === 'string' || Buffer.isBuffer(body)) req.end(body);
    else body.pipe(req);
  });
}

/** A request answered in full. */
export async function proxyCall(target: ProxyTarget, method: string, path: string, options: Parameters<typeof proxyRequest>[3] = {}): Promise<ProxyAnswer> {
  const res = await proxyRequest(target, method, path, options);
  const chunks: Buffer[] = [];
  for await (const chunk of res) chunks.push(chunk as Buffer);
  return { status: res.statusCode!, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') };
}
