/**
 * What `credproxy run` asks the daemon for (PROTOCOL.md §7, §11): `--provider P[:BUCKET[,BUCKET...]]`,
 * `--key NAME` and `--allow OPS` turned into a `grant_open` payload. Without `--allow` the grant is
 * the §7 default for a run sandbox: read + refresh + login when a provider is named, read when only
 * keys are, nothing else. `--inject ROUTE[:BUCKET]` names injection routes: their credentials are
 * attached by the daemon's proxy and are not part of the grant's readable providers or keys.
 */
import { assertName, DEFAULT_BUCKET } from '../protocol/names.js';
import { OP_GROUPS } from '../protocol/messages.js';

type OpGroupName = (typeof OP_GROUPS)[number];

export interface GrantRequest {
  providers: Record<string, '*' | string[]>;
  keys: string[];
  ops: OpGroupName[];
  inject: Array<{ route: string; bucket?: string }>;
}

/** A usage error in a grant option; the message names the option and the rule broken. */
export class GrantSpecError extends Error {
  override readonly name = 'GrantSpecError';
}

function named(kind: 'provider' | 'bucket' | 'key' | 'route', value: string, option: string): string {
  try {
    // Route names share the key alphabet.
    return assertName(kind === 'route' ? 'key' : kind, value);
  } catch (err) {
    throw new GrantSpecError(`${option} ${JSON.stringify(value)}: ${(err as Error).message}`);
  }
}

/** `P` (its default bucket), `P:*` (every bucket) or `P:B1,B2`; repeated providers merge their buckets. */
function addProvider(providers: GrantRequest['providers'], spec: string): void {
  const colon = spec.indexOf(':');
  const provider = named('provider', colon < 0 ? spec : spec.slice(0, colon), '--provider');
  const list = colon < 0 ? DEFAULT_BUCKET : spec.slice(colon + 1);
  // Checked before merging, so a bad bucket is refused even next to an earlier `P:*`.
  const buckets = list === '*' ? '*' : list.split(',').map((b) => named('bucket', b, `--provider ${provider}: bucket`));
  const had = providers[provider];
  providers[provider] = buckets === '*' || had === '*' ? '*' : [...new Set([...(had ?? []), ...buckets])];
}

/** `read,refresh` → the op groups; `admin` and unknown words are refused by name. */
export function parseAllow(value: string): OpGroupName[] {
  const ops = value.split(',').map((op) => op.trim());
  for (const op of ops) {
    if (!(OP_GROUPS as readonly string[]).includes(op)) {
      throw new GrantSpecError(`--allow: unknown op group ${JSON.stringify(op)} (choose from ${OP_GROUPS.join(', ')})`);
    }
  }
  return [...new Set(ops as OpGroupName[])];
}

/** `ROUTE` or `ROUTE:BUCKET` (the bucket of a route whose credential is a provider's token). */
function injectChoice(spec: string): { route: string; bucket?: string } {
  const colon = spec.indexOf(':');
  const route = named('route', colon < 0 ? spec : spec.slice(0, colon), '--inject');
  return colon < 0 ? { route } : { route, bucket: named('bucket', spec.slice(colon + 1), `--inject ${route}: bucket`) };
}

export function grantRequest(providerSpecs: readonly string[], keyNames: readonly string[], allow: string | undefined, injectSpecs: readonly string[] = []): GrantRequest {
  const providers: GrantRequest['providers'] = {};
  for (const spec of providerSpecs) addProvider(providers, spec);
  const keys = [...new Set(keyNames.map((k) => named('key', k, '--key')))];
  let ops: OpGroupName[];
  if (allow !== undefined) ops = parseAllow(allow);
  else if (providerSpecs.length > 0) ops = ['read', 'refresh', 'login'];
  else ops = keys.length > 0 ? ['read'] : [];
  return { providers, keys, ops, inject: injectSpecs.map(injectChoice) };
}
