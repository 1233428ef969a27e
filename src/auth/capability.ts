/** Capability tokens on the host side (PROTOCOL.md §7): only their SHA-256 is ever kept. */
import { createHash, randomBytes } from 'node:crypto';

export { isCapabilityToken } from '../client/capability.js';

/** SHA-256 of a capability token, as the policy and the grant registry store it. */
export function hashCapability(token: string): Buffer {
  return createHash('sha256').update(token, 'utf8').digest();
}

/** A new capability token: 32 random bytes as 64 lowercase hex chars. */
export function newCapability(): string {
  return randomBytes(32).toString('hex');
}
