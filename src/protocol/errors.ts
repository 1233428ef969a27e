/** Error codes of PROTOCOL.md §10. */
export const ERROR_CODES = [
  'INVALID_REQUEST',
  'UNKNOWN_VERSION',
  'UNAUTHORIZED',
  'NOT_FOUND',
  'RATE_LIMITED',
  'RESOURCE_EXHAUSTED',
  'CANCELLED',
  'INTERNAL_ERROR',
  'PROVIDER_NOT_FOUND',
  'FLOW_INITIATION_FAILED',
  'SESSION_NOT_FOUND',
  'SESSION_EXPIRED',
  'SESSION_ALREADY_USED',
  'EXCHANGE_FAILED',
  'ACCESS_DENIED',
  'POLL_FAILED',
  'REFRESH_NOT_AVAILABLE',
  'REAUTH_REQUIRED',
  'REFRESH_FAILED',
  'RESPONSE_TOO_LARGE',
] as const;

export type ErrorCode = (typeof ERROR_CODES)[number];

const codeSet: ReadonlySet<string> = new Set(ERROR_CODES);

/** True when `value` is one of the protocol's error codes. */
export function isErrorCode(value: unknown): value is ErrorCode {
  return typeof value === 'string' && codeSet.has(value);
}

/**
 * The one typed error handlers throw. Its message goes on the wire verbatim, so it must be
 * built from known-safe fields only (never an upstream body, token, code, verifier or state).
 */
export class ProxyError extends Error {
  override readonly name = 'ProxyError';
  constructor(
    readonly code: ErrorCode,
    message: string,
    readonly retryAfter?: number,
  ) {
    super(message);
  }
}

/** The errors several layers raise, worded once. */
export const errors = {
  cancelled: (): ProxyError => new ProxyError('CANCELLED', 'Request cancelled'),
  tokenNotFound: (provider: string, bucket: string): ProxyError => new ProxyError('NOT_FOUND', `No token for provider ${provider}, bucket ${bucket}`),
  noOAuthProvider: (provider: string): ProxyError => new ProxyError('PROVIDER_NOT_FOUND', `Provider ${provider} has no OAuth configuration on this host`),
};
