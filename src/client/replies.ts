/** Shape checks for reply data shared by the proxy stores: a malformed reply is a PROTOCOL_ERROR. */
import type { JsonObject } from '../protocol/framing.js';
import { ProxyClientError } from './ProxyClient.js';

/** NOT_FOUND becomes null; every other error propagates with its code and message. */
export async function orNullOnNotFound(request: Promise<JsonObject>): Promise<JsonObject | null> {
  try {
    return await request;
  } catch (error) {
    if (error instanceof ProxyClientError && error.code === 'NOT_FOUND') return null;
    throw error;
  }
}

export function malformed(op: string): ProxyClientError {
  return new ProxyClientError('PROTOCOL_ERROR', `Credential proxy sent a malformed ${op} reply`);
}

/** `data[field]` when it is an array of strings. */
export function stringList(data: JsonObject, field: string, op: string): string[] {
  const list = data[field];
  if (!Array.isArray(list) || !list.every((item): item is string => typeof item === 'string')) throw malformed(op);
  return list;
}
