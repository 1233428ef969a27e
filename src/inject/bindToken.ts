/**
 * What of a request depends on the stored OAuth token besides the access token itself: the
 * upstream, when the route takes it from a token field (Qwen's resource_url), and the route's
 * tokenHeaders (Codex's chatgpt-account-id). A save_token from a sandbox with write access can set
 * these fields, so an upstream outside the route's hosts and a value that cannot be a header line
 * are refused: the request fails closed rather than sending the credential somewhere unplanned.
 */
import { isAllowedEndpoint } from '../oauth/upstream.js';
import type { StoredToken } from '../store/types.js';
import { headerSafe } from './headers.js';
import type { Route } from './routeSchema.js';

/** A token whose fields this route cannot use; the message names the route and field, never a secret. */
export class TokenBindingError extends Error {
  override readonly name = 'TokenBindingError';
}

export interface Binding {
  /** Origin and base path of the upstream for this request. */
  upstream: URL;
  /** tokenHeaders with their values. */
  headers: Record<string, string>;
}

/** `host` is URL.host: the name, and the port when it is not the default. */
function hostAllowed(patterns: readonly string[], host: string): boolean {
  return patterns.some((p) => (p.startsWith('*.') ? host.endsWith(p.slice(1)) && host.length > p.length - 1 : host === p));
}

function fieldText(token: StoredToken | null, field: string): string | undefined {
  const value = token?.[field];
  if (typeof value === 'string') return value === '' ? undefined : value;
  if (typeof value === 'number' && Number.isFinite(value)) return String(value);
  return undefined;
}

function upstreamOf(route: Route, token: StoredToken | null): URL {
  const from = route.upstreamFrom;
  const named = from && fieldText(token, from.field);
  if (!from || named === undefined) return new URL(route.upstream);
  const fault = `the token of route ${route.name} names an upstream in ${from.field}`;
  let url: URL;
  try {
    url = new URL(/^[A-Za-z][A-Za-z0-9+.-]*:\/\//.test(named) ? named : `https://${named}`);
  } catch {
    throw new TokenBindingError(`${fault} that is not a host name or URL`);
  }
  if (!isAllowedEndpoint(url.href) || url.username || url.password || url.search || url.hash) {
    throw new TokenBindingError(`${fault} that is not an https URL without credentials or query`);
  }
  if (!hostAllowed(from.hosts, url.host)) {
    throw new TokenBindingError(`${fault} on host ${url.host}, which is not among the route's hosts (${from.hosts.join(', ')})`);
  }
  // The token picks the host, never the path: a path of its own would move the credential past what
  // the route's allowlist (matched after the route name) was written for.
  const base = url.pathname.replace(/\/+$/, '');
  if (base !== '' && base !== from.path) throw new TokenBindingError(`${fault} with a path other than ${from.path ?? '/'}`);
  url.pathname = from.path ?? '/';
  return url;
}

/** The upstream and token headers of a request on `route` carrying `token` (null: an API key). Throws TokenBindingError. */
export function bindToken(route: Route, token: StoredToken | null): Binding {
  const headers: Record<string, string> = {};
  for (const [header, field] of Object.entries(route.tokenHeaders)) {
    const value = fieldText(token, field);
    if (value === undefined) throw new TokenBindingError(`the token of route ${route.name} has no ${field}, which the route sends in ${header}`);
    if (value.length > 1024 || !headerSafe(value)) throw new TokenBindingError(`the ${field} of the token of route ${route.name} cannot be sent in a header`);
    headers[header.toLowerCase()] = value;
  }
  return { upstream: upstreamOf(route, token), headers };
}
