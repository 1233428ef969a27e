/**
 * Request schemas for every op (PROTOCOL.md §4, §6) and the op → grant-group table.
 * Unknown payload fields are stripped; a schema violation names the offending field.
 */
import { z } from 'zod';
import { nameRule, ruleText, type NameKind } from './names.js';

/** The zod schema of a name of `kind` (here rather than in names.ts, which stays free of zod). */
export function nameSchema(kind: NameKind): z.ZodString {
  return z.string().regex(nameRule(kind), ruleText(kind));
}

const provider = nameSchema('provider');
const bucket = nameSchema('bucket');
const keyName = nameSchema('key');
/** §6.2 fixes the message for a missing session id. */
const MISSING_SESSION_ID = 'Missing session_id';
const sessionId = z
  .string({ error: (issue) => (issue.input === undefined ? MISSING_SESSION_ID : 'must be a string') })
  .min(1, MISSING_SESSION_ID)
  .max(128, 'is too long');

/**
 * A token as a client may send it with save_token (PROTOCOL.md §5). Optional fields may be null
 * (= absent). Other fields pass the schema; the host's incoming allowlist decides what is kept.
 */
export const incomingTokenSchema = z.looseObject({
  access_token: z.string().min(1, 'must be a non-empty string'),
  expiry: z.number().finite(),
  token_type: z
    .string()
    .regex(/^bearer$/i, 'must be "Bearer"')
    .nullish(),
  scope: z.string().nullish(),
});

const providerBucket = z.object({ provider, bucket: bucket.optional() });

export const FLOW_NAMES = ['device', 'paste', 'browser', 'device_code', 'pkce_redirect', 'browser_redirect'] as const;

/** The op groups a grant may hold (PROTOCOL.md §7). `admin` is not one: no grant includes the admin ops. */
export const OP_GROUPS = ['read', 'refresh', 'login', 'write'] as const;

/** What a grant gives: the fields shared by the policy file and `grant_open` (PROTOCOL.md §11). */
export const grantShape = {
  providers: z.union([z.literal('*'), z.record(nameSchema('provider'), z.union([z.literal('*'), z.array(nameSchema('bucket'))]))]).default({}),
  keys: z.union([z.literal('*'), z.array(nameSchema('key'))]).default([]),
  ops: z.array(z.enum(OP_GROUPS)).default([]),
};

/** A week: the longest ttl_s a launcher may ask for. */
const MAX_GRANT_TTL_S = 7 * 24 * 3600;

export const payloadSchemas = {
  get_token: providerBucket,
  save_token: z.object({ provider, bucket: bucket.optional(), token: incomingTokenSchema }),
  remove_token: providerBucket,
  list_providers: z.object({}),
  list_buckets: z.object({ provider }),
  get_bucket_stats: providerBucket,
  get_api_key: z.object({ name: keyName }),
  list_api_keys: z.object({}),
  has_api_key: z.object({ name: keyName }),
  refresh_token: providerBucket,
  oauth_initiate: z.object({ provider, bucket: bucket.optional(), flow: z.enum(FLOW_NAMES).optional() }),
  oauth_exchange: z.object({ session_id: sessionId, code: z.string().min(1, 'must be a non-empty string').max(8192, 'is too long') }),
  oauth_poll: z.object({ session_id: sessionId }),
  oauth_cancel: z.object({ session_id: sessionId }),
  cancel: z.object({ targetId: z.union([z.string().min(1), z.number().finite()]).transform(String) }),
  // §11 admin ops: served only on the control socket.
  grant_open: z.object({
    label: z
      .string()
      .regex(/^[\x20-\x7e]{1,64}$/, 'must be 1-64 printable ASCII characters')
      .optional(),
    ...grantShape,
    ttl_s: z.int().min(1).max(MAX_GRANT_TTL_S).optional(),
    capability: z.boolean().optional(),
    /** Inject mode: routes whose credential the daemon's proxy attaches (never readable through the grant). */
    inject: z.array(z.object({ route: nameSchema('key'), bucket: bucket.optional() })).max(16, 'names at most 16 routes').default([]),
    /** Also serve the routes on a loopback TCP port (sandboxes that share the host's network). */
    inject_tcp: z.boolean().optional(),
  }),
  grant_close: z.object({ grant_id: nameSchema('grant') }),
  grant_list: z.object({}),
  daemon_status: z.object({}),
} as const;

export type OpName = keyof typeof payloadSchemas;
export type Payload<O extends OpName> = z.output<(typeof payloadSchemas)[O]>;

/**
 * Op groups (PROTOCOL.md §7, §11). `cancel` belongs to none: it only touches the caller's own
 * requests. `admin` belongs only to the control socket's own grant.
 */
export type OpGroup = (typeof OP_GROUPS)[number] | 'admin';

export const opGroup: Readonly<Record<OpName, OpGroup | null>> = {
  get_token: 'read',
  save_token: 'write',
  remove_token: 'write',
  list_providers: 'read',
  list_buckets: 'read',
  get_bucket_stats: 'read',
  get_api_key: 'read',
  list_api_keys: 'read',
  has_api_key: 'read',
  refresh_token: 'refresh',
  oauth_initiate: 'login',
  oauth_exchange: 'login',
  oauth_poll: 'login',
  oauth_cancel: 'login',
  cancel: null,
  grant_open: 'admin',
  grant_close: 'admin',
  grant_list: 'admin',
  daemon_status: 'admin',
};

/** Ops that exist only from protocol version 2 on. */
export const V2_ONLY_OPS: ReadonlySet<OpName> = new Set(['cancel']);

/** Prototype-safe op lookup: `__proto__`, `constructor` and friends are unknown ops. */
export function isKnownOp(op: string): op is OpName {
  return Object.prototype.hasOwnProperty.call(payloadSchemas, op);
}

/** Formats the first schema issue as `field "x" must ...`, never echoing the value itself. */
export function describeIssue(error: z.ZodError): string {
  const issue = error.issues[0];
  if (!issue) return 'Invalid payload';
  if (issue.message === MISSING_SESSION_ID) return MISSING_SESSION_ID;
  const path = issue.path.length > 0 ? issue.path.map(String).join('.') : 'payload';
  let detail = issue.message;
  if (issue.code === 'invalid_type') {
    detail = `must be ${issue.expected}`;
    if (/received undefined/.test(issue.message)) detail = 'is required';
  }
  return `Invalid field "${path}": ${detail}`;
}

export type ParseResult<O extends OpName> = { ok: true; payload: Payload<O> } | { ok: false; message: string };

/** Validates a payload against its op's schema. */
export function parsePayload<O extends OpName>(op: O, payload: unknown): ParseResult<O> {
  const result = payloadSchemas[op].safeParse(payload);
  if (result.success) return { ok: true, payload: result.data as Payload<O> };
  return { ok: false, message: describeIssue(result.error) };
}
