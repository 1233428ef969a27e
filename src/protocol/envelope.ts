/**
 * The one builder of reply frames (PROTOCOL.md §3–4, §10): request replies, handshake replies and
 * every error envelope, so no code path writes a reply shape by hand. Pure.
 */
import { type ErrorCode, errors, type ProxyError } from './errors.js';
import type { JsonObject } from './framing.js';

/** How one request (or handshake) ended. */
export type Outcome = { ok: true; data: JsonObject } | Failure;
export interface Failure {
  ok: false;
  code: ErrorCode;
  error: string;
  /** Seconds; only with RATE_LIMITED. */
  retryAfter?: number;
}

/** What a reply belongs to. Request replies carry `id`; handshake replies carry `op`. */
export interface FrameHead {
  v?: number | null;
  id?: string;
  op?: string;
}

export function failure(code: ErrorCode, error: string, retryAfter?: number): Failure {
  return retryAfter === undefined ? { ok: false, code, error } : { ok: false, code, error, retryAfter };
}

/** The reply of a typed error; its message is safe by construction (see ProxyError). */
export function fromError(err: ProxyError): Failure {
  return failure(err.code, err.message, err.retryAfter);
}

/** Fixed replies of §3, §4 and §10. */
export const REQUEST_CANCELLED = fromError(errors.cancelled());
export const HANDSHAKE_REQUIRED = failure('INVALID_REQUEST', 'Handshake required');
export const UNSUPPORTED_VERSION = failure('UNKNOWN_VERSION', 'Unsupported protocol version');
export const INVALID_CAPABILITY = failure('UNAUTHORIZED', 'Invalid or missing capability token');
export const RESPONSE_TOO_LARGE = failure('RESPONSE_TOO_LARGE', 'Response too large for the negotiated protocol version');

/** The frame for `outcome`; head fields that are undefined are left out. */
export function replyFrame(head: FrameHead, outcome: Outcome): JsonObject {
  const frame: JsonObject = {};
  if (head.v !== undefined) frame.v = head.v;
  if (head.id !== undefined) frame.id = head.id;
  if (head.op !== undefined) frame.op = head.op;
  if (outcome.ok) {
    frame.ok = true;
    frame.data = outcome.data;
    return frame;
  }
  frame.ok = false;
  frame.code = outcome.code;
  frame.error = outcome.error;
  if (outcome.retryAfter !== undefined) frame.retryAfter = outcome.retryAfter;
  return frame;
}
