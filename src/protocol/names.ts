/** The one place the name rules of PROTOCOL.md §4 live. */

export const PROVIDER_NAME = /^[A-Za-z0-9._@-]{1,64}$/;
export const BUCKET_NAME = PROVIDER_NAME;
export const KEY_NAME = /^[A-Za-z0-9._-]{1,64}$/;
export const DEFAULT_BUCKET = 'default';

export function isProviderName(name: unknown): name is string {
  return typeof name === 'string' && PROVIDER_NAME.test(name);
}

export function isBucketName(name: unknown): name is string {
  return typeof name === 'string' && BUCKET_NAME.test(name);
}

export function isKeyName(name: unknown): name is string {
  return typeof name === 'string' && KEY_NAME.test(name);
}

/** An omitted bucket means "default" everywhere. */
export function bucketOrDefault(bucket: string | undefined | null): string {
  return bucket ?? DEFAULT_BUCKET;
}

/** Throws a specific error when a name breaks its rule; used by CLI and stores alike. */
export function assertName(kind: 'provider' | 'bucket' | 'key', name: unknown): string {
  const ok = kind === 'key' ? isKeyName(name) : isProviderName(name);
  if (!ok) {
    const rule = kind === 'key' ? KEY_NAME.source : PROVIDER_NAME.source;
    const shown = typeof name === 'string' ? JSON.stringify(name.slice(0, 80)) : typeof name;
    throw new TypeError(`Invalid ${kind} name ${shown}: must match ${rule}`);
  }
  return name as string;
}
