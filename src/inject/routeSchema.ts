/**
 * The shape of an injection route (inject mode): where requests go, which host credential is
 * attached in which header, what the sandbox may ask for and which variables point its clients at
 * the proxy. Presets are written in this shape, and so are custom routes in the config file's
 * `routes` section. Validation errors name the field, never a value.
 */
import { z } from 'zod';
import { nameSchema } from '../protocol/messages.js';
import { isAllowedEndpoint } from '../oauth/upstream.js';
import { fieldName } from '../oauth/providers/definition.js';
import { mayBePublic } from '../oauth/token.js';

/** What a sandbox is handed instead of a credential: worthless when it leaks. */
export const PLACEHOLDER = 'credproxy-managed';

/** Route names share the key alphabet; they are the first path segment of a proxied URL. */
export const routeName = nameSchema('key');

const headerName = z.string().regex(/^[A-Za-z0-9!#$%&'*+.^_`|~-]{1,64}$/, 'must be an HTTP header name');
/** Header values are ASCII without control characters (no CR/LF: no header splitting). */
const headerValue = z.string().regex(/^[\x20-\x7e]{0,1024}$/, 'must be printable ASCII (at most 1024 characters)');
const envName = z
  .string()
  .regex(/^[A-Za-z_][A-Za-z0-9_]{0,63}$/, 'must be an environment variable name')
  .refine((n) => !n.startsWith('CREDPROXY_') && !n.startsWith('LLXPRT_'), 'must not be a credproxy or llxprt variable');

const credential = z.union([
  z.strictObject({ provider: nameSchema('provider'), bucket: nameSchema('bucket').optional() }),
  z.strictObject({ key: nameSchema('key') }),
]);

/** A field of the stored OAuth token that may leave the host: never a secret or host bookkeeping. */
const tokenField = fieldName.refine(mayBePublic, 'names a secret, host-only or standard token field, which is never sent upstream');

/**
 * `api.example.com`, or `*.example.com` for its subdomains (two labels at least: not `*.com`); with
 * `:PORT` for an upstream off the default port (tests). The token's host, port included, must match.
 */
const hostPattern = z
  .string()
  .regex(/^(\*\.[a-z0-9-]+(\.[a-z0-9-]+)+|[a-z0-9-]+(\.[a-z0-9-]+)*)(:\d{1,5})?$/, 'must be a lower-case host name, or *.domain.tld for its subdomains, with an optional :port');

/**
 * The upstream named by a field of the stored token (Qwen's resource_url: each account has its own
 * API host). A save_token from a sandbox with write access can set such a field, so the host must
 * be in `hosts`: else the fresh access token would go wherever the sandbox pointed it.
 */
const upstreamFrom = z.strictObject({
  field: tokenField,
  hosts: z.array(hostPattern).min(1, 'must name at least one host'),
  /** Appended when the field's URL does not already end with it (Qwen: the host's API is under /v1). */
  path: z.string().regex(/^(\/[A-Za-z0-9._~-]+)+$/, 'must be a path such as /v1').optional(),
});

const allowRule = z.strictObject({
  method: z.string().regex(/^(\*|[A-Za-z]{1,16})$/, 'must be an HTTP method or *').transform((m) => m.toUpperCase()),
  /** Matched against the path after the route prefix, without the query; `*` matches anything. */
  path: z.string().regex(/^\/[^?#\s]*$/, 'must be a path starting with / (no query; * matches any characters)'),
});

/** The fields of a route; a custom route needs upstream, credential and env, the rest has defaults. */
const routeFields = {
  /** https (or http to a loopback host); a path is a prefix of every forwarded path. */
  upstream: z.string().refine(isAllowedEndpoint, { message: 'must be an https URL (plain http only for 127.0.0.1, ::1 or localhost)' }),
  credential,
  header: headerName,
  /** The header's value; `{}` stands for the credential. */
  format: headerValue.refine((f) => f.split('{}').length === 2, 'must contain {} (the credential) exactly once'),
  /** Set on every request; a value the sandbox sent for the same header is kept in front (comma list). */
  extraHeaders: z.record(headerName, headerValue),
  /** Headers set from fields of the stored OAuth token (Codex: chatgpt-account-id from account_id); the sandbox's own are dropped. */
  tokenHeaders: z.record(headerName, tokenField),
  /** Where the upstream comes from when the token names it; `upstream` serves tokens without the field. */
  upstreamFrom,
  /** Absent: every method and path; present: only these. */
  allow: z.array(allowRule).min(1, 'must name at least one rule (leave it out to allow everything)'),
  /** Set in the sandbox; `{url}` stands for the route's base URL there. */
  env: z.record(envName, z.string().regex(/^[\x20-\x7e]{0,1024}$/, 'must be printable ASCII')),
  /** A PEM file of extra trusted roots for this upstream (tests, corporate TLS proxies); system roots stay trusted. */
  ca: z.string().min(1),
};

export const routeSchema = z
  .strictObject({
    ...routeFields,
    header: routeFields.header.default('Authorization'),
    format: routeFields.format.default('Bearer {}'),
    extraHeaders: routeFields.extraHeaders.default({}),
    tokenHeaders: routeFields.tokenHeaders.default({}),
    upstreamFrom: routeFields.upstreamFrom.optional(),
    allow: routeFields.allow.optional(),
    ca: routeFields.ca.optional(),
  })
  .refine((r) => Object.keys(r.env).length > 0, { message: 'must set at least one variable', path: ['env'] })
  .refine((r) => 'provider' in r.credential || Object.keys(r.tokenHeaders).length === 0, { message: 'needs an OAuth credential ({"provider": ...}): an API key has no token fields', path: ['tokenHeaders'] })
  .refine((r) => 'provider' in r.credential || r.upstreamFrom === undefined, { message: 'needs an OAuth credential ({"provider": ...}): an API key has no token fields', path: ['upstreamFrom'] })
  .refine((r) => !Object.keys(r.tokenHeaders).some((h) => h.toLowerCase() === r.header.toLowerCase()), { message: 'must not set the header that carries the credential', path: ['tokenHeaders'] });

/** A config entry naming a preset changes some of its fields. */
export const routeOverrideSchema = z.strictObject({
  upstream: routeFields.upstream.optional(),
  credential: routeFields.credential.optional(),
  header: routeFields.header.optional(),
  format: routeFields.format.optional(),
  extraHeaders: routeFields.extraHeaders.optional(),
  tokenHeaders: routeFields.tokenHeaders.optional(),
  /** null removes the preset's (a preset route pointed at one fixed upstream). */
  upstreamFrom: routeFields.upstreamFrom.nullable().optional(),
  allow: routeFields.allow.optional(),
  env: routeFields.env.optional(),
  ca: routeFields.ca.optional(),
});

export type RouteInput = z.input<typeof routeSchema>;
export type RouteDefinition = z.output<typeof routeSchema>;
export type RouteCredential = RouteDefinition['credential'];
export type AllowRule = NonNullable<RouteDefinition['allow']>[number];

/** A route of a grant: its definition under its name, with the bucket the run chose. */
export interface Route extends RouteDefinition {
  name: string;
}
