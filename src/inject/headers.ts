/**
 * The one header sanitizer of inject mode. Toward the upstream: hop-by-hop headers (RFC 9110 §7.6.1,
 * and whatever `Connection` names) and every credential-bearing header the sandbox sent are dropped,
 * then the route's own headers and the host credential are set. Toward the sandbox: hop-by-hop
 * headers and anything that carries or sets a credential (cookies) are dropped.
 */
import type { IncomingHttpHeaders, OutgoingHttpHeaders } from 'node:http';
import type { Route } from './routeSchema.js';

const HOP_BY_HOP = ['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'te', 'trailer', 'upgrade', 'proxy-authenticate'];

/** Headers that carry a credential in either direction. */
const CREDENTIAL_BEARING = ['authorization', 'proxy-authorization', 'x-api-key', 'x-goog-api-key', 'cookie', 'set-cookie', 'set-cookie2'];

const HEADER_SAFE = /^[\x20-\x7e]*$/;

/** Whether a value is fit for a header line: printable ASCII, no CR/LF. */
export function headerSafe(value: string): boolean {
  return HEADER_SAFE.test(value);
}

/** A credential that cannot be sent in a header (control characters): refused, never forwarded. */
export class UnsendableCredentialError extends Error {
  override readonly name = 'UnsendableCredentialError';
}

function dropped(headers: IncomingHttpHeaders, extra: readonly string[]): Set<string> {
  const drop = new Set([...HOP_BY_HOP, ...CREDENTIAL_BEARING, ...extra]);
  const connection = headers.connection;
  for (const token of (Array.isArray(connection) ? connection.join(',') : (connection ?? '')).split(',')) {
    const name = token.trim().toLowerCase();
    if (name) drop.add(name);
  }
  return drop;
}

/**
 * What goes to the upstream: the sandbox's headers, sanitized, plus the route's headers, the values
 * of its tokenHeaders (`fromToken`, see bindToken: these replace what the sandbox sent) and the credential.
 */
export function upstreamRequestHeaders(incoming: IncomingHttpHeaders, route: Route, credential: string, fromToken: Readonly<Record<string, string>> = {}): Record<string, string | string[]> {
  if (!headerSafe(credential)) throw new UnsendableCredentialError(`the credential of route ${route.name} cannot be sent in a header`);
  const header = route.header.toLowerCase();
  // host: the upstream's own, set by the client library; expect: Node answers 100-continue itself.
  const drop = dropped(incoming, [header, 'host', 'expect', ...Object.keys(fromToken)]);
  const out: Record<string, string | string[]> = {};
  for (const [name, value] of Object.entries(incoming)) {
    if (value === undefined || drop.has(name)) continue;
    out[name] = value;
  }
  for (const [raw, value] of Object.entries(route.extraHeaders)) {
    const name = raw.toLowerCase();
    const sent = out[name];
    const items = (Array.isArray(sent) ? sent.join(',') : (sent ?? '')).split(',').map((s) => s.trim()).filter(Boolean);
    if (!items.includes(value)) items.push(value);
    out[name] = items.join(', ');
  }
  Object.assign(out, fromToken);
  out[header] = route.format.replace('{}', credential);
  return out;
}

/** What goes back to the sandbox: the upstream's headers minus hop-by-hop and credential-bearing ones. */
export function sandboxResponseHeaders(upstream: IncomingHttpHeaders): OutgoingHttpHeaders {
  const drop = dropped(upstream, []);
  const out: OutgoingHttpHeaders = {};
  for (const [name, value] of Object.entries(upstream)) if (value !== undefined && !drop.has(name)) out[name] = value;
  return out;
}
