/**
 * The one route matcher of inject mode: which of a grant's routes a proxied request is for (the first
 * path segment names it), whether its allowlist lets the method and path through, and the path to
 * forward. Paths that an upstream could normalise into something the allowlist did not see (dot
 * segments, encoded slashes or backslashes) are refused outright.
 */
import type { AllowRule, Route } from './routeSchema.js';

export type RouteMatch =
  | { ok: true; route: Route; /** The path after the route's name, with the query (the upstream's base path goes in front). */ forward: string; /** Without the query (audit, allowlist). */ path: string }
  | { ok: false; status: 400 | 403 | 404; reason: string; route?: string; path: string };

/** Encoded '/', '\' and '.' and plain '\': ways around a path allowlist. */
const SNEAKY = /%2f|%5c|\\/i;
/**
 * A path of RFC 3986 characters only (pchar and '/'). Anything else — '#' above all, which Node
 * accepts in a request target but URL parsers upstream cut off, so `/v1/admin#/public` would pass a
 * rule for `/v1/<any segment>/public` and reach `/v1/admin` — is refused rather than guessed at.
 */
const PATH_CHARS = /^[A-Za-z0-9\-._~!$&'()*+,;=:@%/]*$/;

function globRegex(glob: string): RegExp {
  return new RegExp(`^${glob.split('*').map((part) => part.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')).join('.*')}$`);
}

const compiled = new WeakMap<AllowRule, RegExp>();

function allows(rules: readonly AllowRule[] | undefined, method: string, path: string): boolean {
  if (rules === undefined) return true;
  return rules.some((rule) => {
    let re = compiled.get(rule);
    if (!re) compiled.set(rule, (re = globRegex(rule.path)));
    return (rule.method === '*' || rule.method === method) && re.test(path);
  });
}

/** `rawUrl` is the request target as received (`/ROUTE/rest?query`). */
export function matchRequest(routes: ReadonlyMap<string, Route>, method: string, rawUrl: string): RouteMatch {
  const q = rawUrl.indexOf('?');
  const target = q < 0 ? rawUrl : rawUrl.slice(0, q);
  const query = q < 0 ? '' : rawUrl.slice(q);
  if (!target.startsWith('/')) return { ok: false, status: 400, reason: 'the request target must be a path', path: '' };
  const slash = target.indexOf('/', 1);
  const name = slash < 0 ? target.slice(1) : target.slice(1, slash);
  const path = slash < 0 ? '/' : target.slice(slash);
  const route = routes.get(name);
  if (!route) return { ok: false, status: 404, reason: `no route ${JSON.stringify(name.slice(0, 64))} in this grant`, path: target };
  const segments = path.split('/').map((s) => {
    try {
      return decodeURIComponent(s);
    } catch {
      return s;
    }
  });
  if (!PATH_CHARS.test(path)) return { ok: false, status: 400, reason: 'the path has characters that are not forwarded (such as # or spaces)', route: name, path: path.slice(0, 200) };
  // `..;x` is a dot segment to servers that strip path parameters (Tomcat, Spring).
  if (SNEAKY.test(path) || segments.some((s) => { const bare = s.split(';')[0]; return bare === '.' || bare === '..'; })) {
    return { ok: false, status: 400, reason: 'dot segments and encoded slashes are not forwarded', route: name, path };
  }
  if (!allows(route.allow, method, path)) return { ok: false, status: 403, reason: `${method} ${path.slice(0, 200)} is not allowed on route ${name}`, route: name, path };
  return { ok: true, route, forward: `${path}${query}`, path };
}
