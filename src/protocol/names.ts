/**
 * The one place the name rules of PROTOCOL.md §4 live, with their messages: the zod schemas, the
 * policy parser, the provider config, the stores and the CLI all check names through here.
 * Dependency-free on purpose: the sandbox client (credproxy/client) loads it, and must not load zod;
 * the zod schema of a name is nameSchema in messages.ts.
 */

export type NameKind = 'provider' | 'bucket' | 'key' | 'grant';

const RULES: Readonly<Record<NameKind, RegExp>> = {
  provider: /^[A-Za-z0-9._@-]{1,64}$/,
  // Buckets share the provider alphabet (llxprt-code uses account names such as "me@work").
  bucket: /^[A-Za-z0-9._@-]{1,64}$/,
  key: /^[A-Za-z0-9._-]{1,64}$/,
  // Grant ids show up in audit lines and session owners; the key alphabet keeps them plain.
  grant: /^[A-Za-z0-9._-]{1,64}$/,
};

export const DEFAULT_BUCKET = 'default';

/** The rule of one kind of name (messages.ts builds nameSchema from it). */
export function nameRule(kind: NameKind): RegExp {
  return RULES[kind];
}

/** True when `value` is a valid name of `kind`. */
export function isName(kind: NameKind, value: unknown): value is string {
  return typeof value === 'string' && RULES[kind].test(value);
}

export const isProviderName = (value: unknown): value is string => isName('provider', value);
export const isBucketName = (value: unknown): value is string => isName('bucket', value);
export const isKeyName = (value: unknown): value is string => isName('key', value);

/** "must match ^…$": the detail every name error ends with. */
export function ruleText(kind: NameKind): string {
  return `must match ${RULES[kind].source}`;
}

/** The full message for a bad name; shows at most 80 chars of it and never a non-string value. */
export function invalidNameMessage(kind: NameKind, value: unknown): string {
  const shown = typeof value === 'string' ? JSON.stringify(value.slice(0, 80)) : typeof value;
  return `Invalid ${kind} name ${shown}: ${ruleText(kind)}`;
}

/** An omitted bucket means "default" everywhere. */
export function bucketOrDefault(bucket: string | undefined | null): string {
  return bucket ?? DEFAULT_BUCKET;
}

/** Returns a valid name or throws a TypeError saying which rule it broke. */
export function assertName(kind: NameKind, value: unknown): string {
  if (!isName(kind, value)) throw new TypeError(invalidNameMessage(kind, value));
  return value;
}
