/**
 * Grants (PROTOCOL.md §7): what one capability, or the bare socket, may do. The single place that
 * answers "may this connection do that?".
 */
import type { OpGroup } from '../protocol/messages.js';

/** `'*'` = every provider/bucket/key. Provider → its buckets (`'*'` = all buckets). */
export interface Grant {
  /** Short, non-secret id used in the audit log. */
  id: string;
  providers: '*' | Readonly<Record<string, '*' | readonly string[]>>;
  keys: '*' | readonly string[];
  ops: readonly OpGroup[];
  /** This grant's own per-connection limits (policy file), in place of the daemon's. */
  limits?: GrantLimits;
}

/** Per-connection limits a policy can set for one grant (PROTOCOL.md §4's defaults otherwise). */
export interface GrantLimits {
  /** Requests in flight at once on one connection. */
  inFlight?: number;
  /** Requests per second on one connection. */
  perSecond?: number;
}

export const FULL_GRANT: Grant = { id: 'full', providers: '*', keys: '*', ops: ['read', 'refresh', 'login', 'write'] };
export const EMPTY_GRANT: Grant = { id: 'none', providers: {}, keys: [], ops: [] };
/** The control socket's grant (§11): the admin ops and nothing else. No other grant can hold `admin`. */
export const CONTROL_GRANT: Grant = { id: 'control', providers: {}, keys: [], ops: ['admin'] };

export function allowsOp(grant: Grant, group: OpGroup): boolean {
  return grant.ops.includes(group);
}

export function allowsProvider(grant: Grant, provider: string): boolean {
  return grant.providers === '*' || Object.prototype.hasOwnProperty.call(grant.providers, provider);
}

export function allowsBucket(grant: Grant, provider: string, bucket: string): boolean {
  if (grant.providers === '*') return true;
  if (!Object.prototype.hasOwnProperty.call(grant.providers, provider)) return false;
  const buckets = grant.providers[provider]!;
  return buckets === '*' || buckets.includes(bucket);
}

export function allowsKey(grant: Grant, name: string): boolean {
  return grant.keys === '*' || grant.keys.includes(name);
}
