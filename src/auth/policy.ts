/**
 * The grants policy file (`serve --policy FILE`):
 *
 *   {
 *     "default": { "providers": {"anthropic": ["default"], "gemini": "*"}, "keys": ["openai"], "ops": ["read", "refresh"] },
 *     "allowUids": [1001],
 *     "capabilities": [
 *       { "id": "ci", "tokenSha256": "<64 hex>", "providers": "*", "keys": [], "ops": ["read"],
 *         "limits": { "inFlight": 64, "perSecond": 5000 } }
 *     ]
 *   }
 *
 * `default` applies to same-uid (or allowed-uid) Unix connections that present no capability token;
 * when omitted they get nothing. Capability tokens are stored only as their SHA-256. `limits`
 * (optional, on `default` or a capability) replaces the daemon's per-connection in-flight and
 * per-second limits for that grant's connections.
 */
import { readFileSync } from 'node:fs';
import { z } from 'zod';
import { describeIssue, grantShape, nameSchema } from '../protocol/messages.js';
import { EMPTY_GRANT, FULL_GRANT, type Grant, type GrantLimits } from './grants.js';

/** Ids the daemon uses for its own grants; a capability must not be mistaken for them in audit or session ownership. */
export const RESERVED_GRANT_IDS = ['default', 'full', 'none', 'control'];
/** Grants opened at run time (grant_open) are named `run-…`. */
export const RUN_GRANT_PREFIX = 'run-';
const grantId = nameSchema('grant')
  .refine((id) => !RESERVED_GRANT_IDS.includes(id), { message: `must not be one of ${RESERVED_GRANT_IDS.join(', ')} (reserved)` })
  .refine((id) => !id.startsWith(RUN_GRANT_PREFIX), { message: `must not start with "${RUN_GRANT_PREFIX}" (reserved for grants opened at run time)` });

/** Per-connection limits of one grant; bounded so a typo cannot disable them altogether. */
const limitsSchema = z
  .strictObject({
    inFlight: z.number().int().min(1).max(4096).optional(),
    perSecond: z.number().int().min(1).max(1_000_000).optional(),
  })
  .optional();

const policySchema = z.strictObject({
  default: z.strictObject({ ...grantShape, limits: limitsSchema }).optional(),
  allowUids: z.array(z.number().int().nonnegative()).default([]),
  capabilities: z
    .array(z.strictObject({ id: grantId, tokenSha256: z.string().regex(/^[0-9a-f]{64}$/, 'must be 64 lowercase hex chars'), ...grantShape, limits: limitsSchema }))
    .default([]),
});

export interface CapabilityGrant {
  grant: Grant;
  tokenSha256: Buffer;
}

export interface Policy {
  defaultGrant: Grant;
  allowUids: number[];
  capabilities: CapabilityGrant[];
}

/** The policy in force when no file is given: same-uid connections get everything. */
export const OPEN_POLICY: Policy = { defaultGrant: FULL_GRANT, allowUids: [], capabilities: [] };

/** Parses policy JSON text; throws an Error naming the file and the offending field. */
export function parsePolicy(text: string, source = 'policy'): Policy {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    throw new Error(`${source}: not valid JSON (${(err as Error).message})`);
  }
  const result = policySchema.safeParse(raw);
  if (!result.success) throw new Error(`${source}: ${describeIssue(result.error)}`);
  const p = result.data;
  const ids = new Set<string>();
  const capabilities = p.capabilities.map((c) => {
    if (ids.has(c.id)) throw new Error(`${source}: duplicate capability id "${c.id}"`);
    ids.add(c.id);
    return { grant: withLimits({ id: c.id, providers: c.providers, keys: c.keys, ops: c.ops }, c.limits), tokenSha256: Buffer.from(c.tokenSha256, 'hex') };
  });
  const defaultGrant = p.default ? withLimits({ id: 'default', providers: p.default.providers, keys: p.default.keys, ops: p.default.ops }, p.default.limits) : EMPTY_GRANT;
  return { defaultGrant, allowUids: p.allowUids, capabilities };
}

function withLimits(grant: Grant, limits: GrantLimits | undefined): Grant {
  if (!limits) return grant;
  const own: GrantLimits = {};
  if (limits.inFlight !== undefined) own.inFlight = limits.inFlight;
  if (limits.perSecond !== undefined) own.perSecond = limits.perSecond;
  return { ...grant, limits: own };
}

/** Reads and parses a policy file with a specific error when it cannot be read. */
export function loadPolicy(file: string): Policy {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? 'error';
    throw new Error(`Cannot read policy file ${file}: ${code}`);
  }
  return parsePolicy(text, `Policy file ${file}`);
}
