/** Version negotiation of PROTOCOL.md §3. */

export const MIN_SUPPORTED_VERSION = 1;
export const MAX_SUPPORTED_VERSION = 2;

export type ProtocolVersion = 1 | 2;

function isInt(value: unknown): value is number {
  return typeof value === 'number' && Number.isInteger(value);
}

/**
 * Returns the negotiated version, or null when the handshake must be rejected with UNKNOWN_VERSION.
 * `v` is the frame's top-level version; the range comes from the handshake payload.
 */
export function negotiateVersion(v: unknown, minVersion: unknown, maxVersion: unknown): ProtocolVersion | null {
  if (
    isInt(minVersion) &&
    isInt(maxVersion) &&
    minVersion <= maxVersion &&
    minVersion <= MAX_SUPPORTED_VERSION &&
    maxVersion >= MIN_SUPPORTED_VERSION
  ) {
    return Math.min(MAX_SUPPORTED_VERSION, maxVersion) as ProtocolVersion;
  }
  if (isInt(v) && v >= MIN_SUPPORTED_VERSION && v <= MAX_SUPPORTED_VERSION) {
    return v as ProtocolVersion;
  }
  return null;
}
