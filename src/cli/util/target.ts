/** The (provider, bucket) a command acts on, validated by the project's one name checker. */
import { assertName, DEFAULT_BUCKET } from '../../protocol/names.js';
import { CliError } from './errors.js';

export interface Target {
  provider: string;
  bucket: string;
}

/** Validates names; assertName's message says which rule a bad name broke. */
export function toTarget(provider: string, bucket: string | undefined): Target {
  try {
    return { provider: assertName('provider', provider), bucket: assertName('bucket', bucket ?? DEFAULT_BUCKET) };
  } catch (err) {
    throw new CliError((err as Error).message);
  }
}

/** Validates an API key name. */
export function toKeyName(name: string): string {
  try {
    return assertName('key', name);
  } catch (err) {
    throw new CliError((err as Error).message);
  }
}

export const label = (t: Target): string => `${t.provider}/${t.bucket}`;
