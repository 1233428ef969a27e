/**
 * The login driver: one loop over the oauth_* ops (PROTOCOL.md §6.1–6.3) for every way of reaching
 * them — through a daemon (ProxyLoginBackend) or in-process on the host (the CLI's host backend).
 * The driver only ever sees what §6.1 lets a client see (URLs, user codes, the sanitized token);
 * device codes, verifiers and state stay wherever the flow runs.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { FlowType } from '../oauth/flowTypes.js';
import type { SanitizedToken } from '../oauth/token.js';
import type { FLOW_NAMES } from '../protocol/messages.js';
import { ProxyClientError, type ProxyClient } from './ProxyClient.js';
import { raceAbort } from '../abort.js';

/** The §6.1 reply of oauth_initiate. */
export interface LoginStart {
  session_id: string;
  flow_type: FlowType;
  pollIntervalMs: number;
  auth_url?: string;
  verification_url?: string;
  verification_uri?: string;
  user_code?: string;
  verification_uri_complete?: string;
}

/** The §6.2 reply of oauth_poll. */
export type LoginPoll = { status: 'pending'; pollIntervalMs: number; interval?: number } | { status: 'complete'; token: SanitizedToken };

export type FlowName = (typeof FLOW_NAMES)[number];

/**
 * Where the oauth_* ops run. Failures are errors with a string `code` (a protocol error code or a
 * client one such as ABORTED), so callers can map them the same way in every mode.
 */
export interface LoginBackend {
  readonly mode: 'host' | 'proxy';
  initiate(provider: string, bucket: string, flow: FlowName | undefined): Promise<LoginStart>;
  poll(sessionId: string, signal: AbortSignal): Promise<LoginPoll>;
  exchange(sessionId: string, code: string, signal: AbortSignal): Promise<SanitizedToken>;
  /** Ends the session on the host; unknown ids are fine. */
  cancel(sessionId: string): Promise<void>;
  /** Releases what the backend holds (connection, stores, sessions). */
  close(): Promise<void>;
}

/** What the driver needs from the user interface. */
export interface LoginUi {
  /** Shows the URL, user code and instructions (and may open a browser). */
  started(start: LoginStart): void;
  /** Reads the authorization code the user pastes (pkce_redirect); rejects when `signal` aborts. */
  readCode(signal: AbortSignal): Promise<string>;
  /** Called while waiting for the user to authorize (device_code, browser_redirect). */
  waiting(): void;
  /** A transient problem; the driver keeps trying. */
  retrying(message: string): void;
  /** Stops any animation before the caller prints the outcome. */
  done(): void;
}

export interface RunLoginOptions {
  provider: string;
  bucket: string;
  flow?: FlowName;
  /** Aborted on Ctrl-C: the driver cancels the session on the host and rejects. */
  signal: AbortSignal;
  /** Consecutive POLL_FAILED/TIMEOUT answers tolerated before giving up (§6.2: the session stays usable). */
  maxPollFailures?: number;
}

export interface LoginResult {
  start: LoginStart;
  token: SanitizedToken;
}

/** Bounds for the poll interval: never hammer the host, never wait absurdly long on a bad value. */
const MIN_POLL_MS = 100;
const MAX_POLL_MS = 5 * 60_000;
/** How long a cancellation may take before the driver gives up on telling the host. */
const CANCEL_WAIT_MS = 3_000;
/** The §4 schema limit of oauth_exchange's `code`. */
export const MAX_CODE_LENGTH = 8192;

/** The string `code` of an error from either backend, if it has one. */
export function errorCode(err: unknown): string | undefined {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : undefined;
}

/** Runs one login to its end: resolves with the sanitized token, or rejects (after cancelling the session). */
export async function runLogin(backend: LoginBackend, ui: LoginUi, options: RunLoginOptions): Promise<LoginResult> {
  const { signal } = options;
  signal.throwIfAborted();
  const initiating = backend.initiate(options.provider, options.bucket, options.flow);
  let start: LoginStart;
  try {
    start = await raceAbort(initiating, signal, () => signal.reason);
  } catch (err) {
    // Ctrl-C while the host was still starting the flow: cancel the session once it exists.
    if (signal.aborted) await bounded(initiating.then((s) => backend.cancel(s.session_id)));
    throw err;
  }

  let finished = false;
  try {
    ui.started(start);
    const token = start.flow_type === 'pkce_redirect' ? await pasteAndExchange(backend, ui, start, signal) : await pollUntilDone(backend, ui, start, options);
    finished = true;
    return { start, token };
  } finally {
    ui.done();
    // Denied, expired, failed or cancelled: the host may still hold the session (and a callback port).
    if (!finished) await bounded(backend.cancel(start.session_id));
  }
}

async function pasteAndExchange(backend: LoginBackend, ui: LoginUi, start: LoginStart, signal: AbortSignal): Promise<SanitizedToken> {
  const code = (await ui.readCode(signal)).trim();
  if (code.length > MAX_CODE_LENGTH) throw new ProxyClientError('INVALID_REQUEST', 'The pasted authorization code is too long');
  signal.throwIfAborted();
  return backend.exchange(start.session_id, code, signal);
}

async function pollUntilDone(backend: LoginBackend, ui: LoginUi, start: LoginStart, options: RunLoginOptions): Promise<SanitizedToken> {
  const { signal } = options;
  const maxFailures = options.maxPollFailures ?? 5;
  let intervalMs = clampInterval(start.pollIntervalMs);
  let failures = 0;
  for (;;) {
    ui.waiting();
    await sleep(intervalMs, undefined, { signal }).catch(() => signal.throwIfAborted());
    let reply: LoginPoll;
    try {
      reply = await backend.poll(start.session_id, signal);
    } catch (err) {
      const code = errorCode(err);
      // §6.2: anything but denial/expiry leaves the session usable, so a flaky upstream is retried.
      if (!signal.aborted && (code === 'POLL_FAILED' || code === 'TIMEOUT') && ++failures < maxFailures) {
        ui.retrying((err as Error).message);
        continue;
      }
      throw err;
    }
    failures = 0;
    if (reply.status === 'complete') return reply.token;
    // slow_down: the host says how long to wait now; never poll faster than either value.
    const slowDownMs = typeof reply.interval === 'number' ? reply.interval * 1000 : 0;
    intervalMs = clampInterval(Math.max(reply.pollIntervalMs, slowDownMs));
  }
}

function clampInterval(ms: number): number {
  if (!Number.isFinite(ms)) return 5_000;
  return Math.min(MAX_POLL_MS, Math.max(MIN_POLL_MS, ms));
}

/** Waits for a best-effort clean-up step, at most CANCEL_WAIT_MS, swallowing its failure. */
async function bounded(step: Promise<unknown>): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const cap = new Promise<void>((resolve) => (timer = setTimeout(resolve, CANCEL_WAIT_MS)));
  await Promise.race([step.then(() => {}, () => {}), cap]);
  clearTimeout(timer);
}

// --- through the daemon ------------------------------------------------------------------------

const FLOW_TYPES: readonly string[] = ['device_code', 'pkce_redirect', 'browser_redirect'];
const PUBLIC_START_FIELDS = ['auth_url', 'verification_url', 'verification_uri', 'user_code', 'verification_uri_complete'] as const;

function malformed(op: string, what: string): ProxyClientError {
  return new ProxyClientError('PROTOCOL_ERROR', `The credential proxy sent a malformed ${op} reply (${what})`);
}

/** Checks a §6.1 reply from the wire and keeps only its known fields. */
export function parseLoginStart(data: Record<string, unknown>): LoginStart {
  const { session_id: id, flow_type: flowType, pollIntervalMs } = data;
  if (typeof id !== 'string' || id.length === 0) throw malformed('oauth_initiate', 'session_id');
  if (typeof flowType !== 'string' || !FLOW_TYPES.includes(flowType)) throw malformed('oauth_initiate', 'flow_type');
  const start: LoginStart = {
    session_id: id,
    flow_type: flowType as FlowType,
    pollIntervalMs: typeof pollIntervalMs === 'number' && Number.isFinite(pollIntervalMs) ? pollIntervalMs : 5_000,
  };
  for (const field of PUBLIC_START_FIELDS) {
    const value = data[field];
    if (typeof value === 'string' && value.length > 0) start[field] = value;
  }
  if (start.flow_type === 'device_code' && (!start.user_code || !(start.verification_uri ?? start.verification_url))) {
    throw malformed('oauth_initiate', 'user_code/verification_uri');
  }
  if (start.flow_type !== 'device_code' && !start.auth_url) throw malformed('oauth_initiate', 'auth_url');
  return start;
}

function parseToken(op: string, value: unknown): SanitizedToken {
  const token = value as Partial<SanitizedToken> | null;
  if (typeof token !== 'object' || token === null || typeof token.access_token !== 'string' || typeof token.expiry !== 'number') {
    throw malformed(op, 'token');
  }
  return token as SanitizedToken;
}

/** Checks a §6.2 reply from the wire. */
export function parseLoginPoll(data: Record<string, unknown>): LoginPoll {
  if (data.status === 'complete') return { status: 'complete', token: parseToken('oauth_poll', data.token) };
  if (data.status !== 'pending') throw malformed('oauth_poll', 'status');
  const reply: LoginPoll = { status: 'pending', pollIntervalMs: typeof data.pollIntervalMs === 'number' ? data.pollIntervalMs : 5_000 };
  if (typeof data.interval === 'number') reply.interval = data.interval;
  return reply;
}

/** The oauth_* ops through a credential proxy daemon (sandbox side). */
export class ProxyLoginBackend implements LoginBackend {
  readonly mode = 'proxy' as const;

  constructor(private readonly client: ProxyClient) {}

  async initiate(provider: string, bucket: string, flow: FlowName | undefined): Promise<LoginStart> {
    return parseLoginStart(await this.client.request('oauth_initiate', { provider, bucket, ...(flow !== undefined && { flow }) }));
  }

  async poll(sessionId: string, signal: AbortSignal): Promise<LoginPoll> {
    return parseLoginPoll(await this.client.request('oauth_poll', { session_id: sessionId }, { signal }));
  }

  async exchange(sessionId: string, code: string, signal: AbortSignal): Promise<SanitizedToken> {
    return parseToken('oauth_exchange', await this.client.request('oauth_exchange', { session_id: sessionId, code }, { signal }));
  }

  async cancel(sessionId: string): Promise<void> {
    await this.client.request('oauth_cancel', { session_id: sessionId }, { timeoutMs: CANCEL_WAIT_MS });
  }

  close(): Promise<void> {
    return this.client.close();
  }
}
