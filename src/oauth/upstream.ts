/**
 * HTTP plumbing shared by provider adapters and flows: the loopback-only insecure rule, request
 * options for oauth4webapi (injected fetch, timeout, caller's signal), JSON requests for providers
 * that do not speak form-encoded OAuth, and errors whose messages are safe to put on the wire.
 */
import * as oauth from 'oauth4webapi';
import type { FlowDeps } from './flowTypes.js';

/** A failed upstream call. `message` never contains a body, token, code, verifier or state. */
export class UpstreamError extends Error {
  override readonly name = 'UpstreamError';
  constructor(
    message: string,
    readonly details: { oauthError?: string; status?: number; intervalSeconds?: number } = {},
  ) {
    super(message);
  }
  get oauthError(): string | undefined {
    return this.details.oauthError;
  }
}

/** 127.0.0.0/8, ::1 and localhost: the only hosts that may be reached over plain http. */
export function isLoopbackHost(hostname: string): boolean {
  const host = hostname.replace(/^\[|\]$/g, '').toLowerCase();
  if (host === 'localhost' || host === '::1') return true;
  const m = /^127\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(host);
  return m !== null && m.slice(1).every((octet) => Number(octet) <= 255);
}

/** https anywhere, http only to a loopback host. */
export function isAllowedEndpoint(value: string): boolean {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    return false;
  }
  return url.protocol === 'https:' || (url.protocol === 'http:' && isLoopbackHost(url.hostname));
}

function isInsecureLoopback(url: string): boolean {
  const parsed = new URL(url);
  return parsed.protocol === 'http:' && isLoopbackHost(parsed.hostname);
}

/** The caller's signal combined with the per-call timeout (PROTOCOL.md §4: 15 s). */
function callSignal(deps: FlowDeps, signal?: AbortSignal): AbortSignal {
  const timeout = AbortSignal.timeout(deps.httpTimeoutMs);
  return signal ? AbortSignal.any([signal, timeout]) : timeout;
}

/** Options for one oauth4webapi request to `url`. */
export function oauthRequestOptions(deps: FlowDeps, url: string, signal: AbortSignal | undefined, headers: Record<string, string>) {
  return {
    [oauth.customFetch]: (u: string, init: oauth.CustomFetchOptions<'POST', URLSearchParams>) => deps.fetch(u, init as RequestInit),
    // Production presets are https; plain http is allowed for loopback servers (tests, local IdPs).
    [oauth.allowInsecureRequests]: isInsecureLoopback(url),
    signal: callSignal(deps, signal),
    headers,
  };
}

/** OAuth error codes are registry tokens; anything else is not echoed. */
function safeCode(value: unknown): string | undefined {
  return typeof value === 'string' && /^[A-Za-z0-9_.-]{1,64}$/.test(value) ? value : undefined;
}

/** A positive number, or a positive numeric string (OpenAI sends its interval as one). */
export function positiveNumber(value: unknown): number | undefined {
  const n = typeof value === 'number' ? value : typeof value === 'string' && value.trim() !== '' ? Number(value) : NaN;
  return Number.isFinite(n) && n > 0 ? n : undefined;
}

export function nonEmptyString(value: unknown): string | undefined {
  return typeof value === 'string' && value.length > 0 ? value : undefined;
}

/** An OAuth error body (`{"error": ...}`) as an UpstreamError; `what` names the endpoint. */
function oauthBodyError(what: string, body: Record<string, unknown>, status: number): UpstreamError {
  const code = safeCode(body.error);
  const details: UpstreamError['details'] = { status, oauthError: typeof body.error === 'string' ? body.error : undefined };
  const interval = positiveNumber(body.interval);
  if (interval !== undefined) details.intervalSeconds = interval;
  return new UpstreamError(`${what} answered ${code ?? `an error (HTTP ${status})`}`, details);
}

/** Converts whatever a request or oauth4webapi threw into an UpstreamError with a safe message. */
function toUpstreamError(err: unknown, what: string, signal?: AbortSignal): UpstreamError {
  if (err instanceof UpstreamError) return err;
  if (err instanceof oauth.ResponseBodyError) return oauthBodyError(what, err.cause, err.status);
  if (err instanceof oauth.WWWAuthenticateChallengeError) {
    return new UpstreamError(`${what} rejected the client (HTTP ${err.status})`, { status: err.status, oauthError: 'invalid_client' });
  }
  if (err instanceof oauth.OperationProcessingError) {
    const status = err.cause instanceof Response ? err.cause.status : undefined;
    if (err.code === oauth.RESPONSE_IS_NOT_CONFORM && status !== undefined) {
      return new UpstreamError(`${what} failed with HTTP ${status}`, { status });
    }
    return new UpstreamError(`${what} returned an invalid response`);
  }
  const name = err instanceof Error ? err.name : '';
  if (name === 'TimeoutError') return new UpstreamError(`${what} timed out`);
  if (name === 'AbortError' || signal?.aborted) return new UpstreamError(`${what} request was cancelled`);
  return new UpstreamError(`Could not reach the ${what}`);
}

/** Runs one upstream call, turning whatever it throws into an UpstreamError. */
export async function upstreamCall<T>(what: string, signal: AbortSignal | undefined, call: () => Promise<T>): Promise<T> {
  try {
    return await call();
  } catch (err) {
    throw toUpstreamError(err, what, signal);
  }
}

/** Reads a JSON object body; never throws anything but UpstreamError. */
async function readJsonObject(response: Response, what: string): Promise<Record<string, unknown> | undefined> {
  let text: string;
  try {
    text = await response.text();
  } catch (err) {
    throw toUpstreamError(err, what);
  }
  try {
    const value: unknown = JSON.parse(text);
    return value !== null && typeof value === 'object' && !Array.isArray(value) ? (value as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}

/** A successful JSON object answer; an `error` field is a failure whatever the HTTP status. */
export async function readOAuthJson(response: Response, what: string): Promise<Record<string, unknown>> {
  const body = await readJsonObject(response, what);
  if (body && body.error !== undefined && body.error !== null) throw oauthBodyError(what, body, response.status);
  if (!response.ok) throw new UpstreamError(`${what} failed with HTTP ${response.status}`, { status: response.status });
  if (!body) throw new UpstreamError(`${what} returned a response that is not a JSON object`);
  return body;
}

/**
 * A lenient token-endpoint reader for providers with quirks: an `error` field means failure whatever
 * the HTTP status (GitHub answers pending with 200), `token_type` may be missing (Google), and an
 * id_token is kept without OIDC validation (it is only read for public claims; TLS authenticates it).
 */
export async function readTokenResponse(response: Response, what = 'token endpoint'): Promise<Record<string, unknown>> {
  const body = await readOAuthJson(response, what);
  if (typeof body.access_token !== 'string' || body.access_token.length === 0) {
    throw new UpstreamError(`${what} returned no access_token`);
  }
  return body;
}

/** POSTs a JSON body (Anthropic's token endpoint, OpenAI's device-auth endpoints). */
export async function postJson(
  deps: FlowDeps,
  url: string,
  body: Record<string, string>,
  signal: AbortSignal | undefined,
  headers: Record<string, string>,
  what: string,
): Promise<Response> {
  if (!isAllowedEndpoint(url)) throw new UpstreamError(`${what} must be an https URL`);
  const combined = callSignal(deps, signal);
  return upstreamCall(what, combined, () =>
    deps.fetch(url, {
      method: 'POST',
      headers: { ...headers, 'content-type': 'application/json', accept: 'application/json' },
      body: JSON.stringify(body),
      redirect: 'manual',
      signal: combined,
    }),
  );
}
