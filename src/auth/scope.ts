/** The grant check every request passes after schema validation (PROTOCOL.md §7). */
import { ProxyError } from '../protocol/errors.js';
import { type OpName, opGroup } from '../protocol/messages.js';
import { bucketOrDefault } from '../protocol/names.js';
import { allowsBucket, allowsKey, allowsOp, allowsProvider, type Grant } from './grants.js';

/** Throws UNAUTHORIZED naming what was refused. List ops are filtered by their handlers instead. */
export function checkScope(grant: Grant, op: OpName, payload: Record<string, unknown>): void {
  const group = opGroup[op];
  if (group && !allowsOp(grant, group)) {
    throw new ProxyError('UNAUTHORIZED', `Operation ${op} (${group}) is not allowed for this connection`);
  }
  const provider = payload.provider;
  if (typeof provider === 'string') {
    if (!allowsProvider(grant, provider)) throw new ProxyError('UNAUTHORIZED', `Provider ${provider} is not allowed for this connection`);
    if (op !== 'list_buckets') {
      const bucket = bucketOrDefault(payload.bucket as string | undefined);
      if (!allowsBucket(grant, provider, bucket)) {
        throw new ProxyError('UNAUTHORIZED', `Bucket ${bucket} of provider ${provider} is not allowed for this connection`);
      }
    }
  }
  if ((op === 'get_api_key' || op === 'has_api_key') && typeof payload.name === 'string' && !allowsKey(grant, payload.name)) {
    throw new ProxyError('UNAUTHORIZED', `API key ${payload.name} is not allowed for this connection`);
  }
}
