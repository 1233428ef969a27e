/**
 * The request pipeline, independent of any socket: validated request → grant check → handler →
 * reply envelope → audit line. Connections (Unix, TCP, in-memory) and in-process callers such as
 * the host-side login use the same Dispatcher, so no caller can skip a step.
 */
import type { Grant } from '../auth/grants.js';
import type { PeerCredentials } from '../auth/peer.js';
import { checkScope } from '../auth/scope.js';
import { isSanitizedToken } from '../oauth/token.js';
import type { HandlerContext, HandlerOp, HandlerServices, HandlerTable } from '../handlers/context.js';
import { failure, type Failure, fromError, type Outcome, replyFrame, REQUEST_CANCELLED, RESPONSE_TOO_LARGE } from '../protocol/envelope.js';
import { ProxyError } from '../protocol/errors.js';
import { encodeFrame, type JsonObject } from '../protocol/framing.js';
import { isKnownOp, type OpName, parsePayload, V2_ONLY_OPS } from '../protocol/messages.js';
import { DEFAULT_BUCKET } from '../protocol/names.js';
import type { ProtocolVersion } from '../protocol/version.js';
import { StoreError } from '../store/types.js';
import { raceAbort } from '../abort.js';
import type { AuditEvent, AuditLog } from './audit.js';

/** Who is asking: one connection after its handshake, or an in-process caller. */
export interface Caller {
  /** Connection id in the audit log. */
  conn: number;
  peer: PeerCredentials | null;
  grant: Grant | null;
  version: ProtocolVersion;
}

/** What the audit line of a request names; never a secret (session ids are cut to 8 chars). */
export interface RequestMeta {
  id: string;
  /** A known op name, or "unknown": nothing else a client sends reaches the audit log. */
  op: string;
  provider?: string | undefined;
  bucket?: string | undefined;
  session?: string | undefined;
  started: number;
}

/** A frame whose op is known and whose payload is an object; its op's schema is not checked yet. */
export type Routed = { ok: true; meta: RequestMeta; op: OpName; payload: Record<string, unknown> } | Refused;
/**
 * Where a running request's AbortSignal comes from. Read only when a handler asks for it: most
 * requests never do, and an AbortController per request is a measurable share of a get_token.
 */
export interface SignalSource {
  readonly signal: AbortSignal;
}

/** A validated request ready to run, or the failure that ends it. */
export type Prepared = { ok: true; meta: RequestMeta; run(control: SignalSource): CallOutcome | Promise<CallOutcome> } | Refused;
type Refused = { ok: false; meta: RequestMeta; outcome: Failure };

/** How a request ended, for an in-process caller: with the original error, which never goes on a wire. */
export type CallOutcome = Outcome & { cause?: unknown };

export interface DispatcherDeps {
  handlers: HandlerTable;
  services: HandlerServices;
  audit: AuditLog;
  now: () => number;
}

/** Ops whose data is a token, and polls whose "complete" reply carries one: the sanitized-result stage checks them. */
const TOKEN_REPLIES: ReadonlySet<HandlerOp> = new Set(['get_token', 'refresh_token', 'oauth_exchange']);

export class Dispatcher {
  /** Handler work still running, including work whose request was already answered (cancel, timeout). */
  private running = 0;
  private idleWaiters: Array<() => void> = [];

  constructor(private readonly deps: DispatcherDeps) {}

  /** The audit meta of a frame before it is known to be valid (rate-limit and id refusals). */
  meta(id: string, op: unknown): RequestMeta {
    return { id, op: typeof op === 'string' && isKnownOp(op) ? op : 'unknown', started: this.deps.now() };
  }

  /** First checks of PROTOCOL.md §4: a known op (v2-only ops under v2) and an object payload. */
  route(caller: Caller, id: string, op: string, rawPayload: unknown): Routed {
    const meta = this.meta(id, op);
    if (!isKnownOp(op) || (V2_ONLY_OPS.has(op) && caller.version !== 2)) {
      return { ok: false, meta: { ...meta, op: 'unknown' }, outcome: failure('INVALID_REQUEST', `Unknown operation: ${printable(op)}`) };
    }
    const payload = rawPayload === undefined ? {} : rawPayload;
    if (!isObject(payload)) return { ok: false, meta, outcome: failure('INVALID_REQUEST', 'Invalid field "payload": must be an object') };
    if (typeof payload.provider === 'string') {
      meta.provider = payload.provider.slice(0, 64);
      meta.bucket = typeof payload.bucket === 'string' ? payload.bucket.slice(0, 64) : DEFAULT_BUCKET;
    }
    if (typeof payload.session_id === 'string') meta.session = payload.session_id.slice(0, 8);
    return { ok: true, meta, op, payload };
  }

  /** The op's schema, before any store is touched. `cancel` is the connection's, never a handler's. */
  prepare(caller: Caller, routed: Extract<Routed, { ok: true }>): Prepared {
    const { meta, op } = routed;
    if (op === 'cancel') return { ok: false, meta, outcome: failure('INVALID_REQUEST', 'Unknown operation: cancel') };
    const parsed = parsePayload(op, routed.payload);
    if (!parsed.ok) return { ok: false, meta, outcome: failure('INVALID_REQUEST', parsed.message) };
    return { ok: true, meta, run: (control) => this.run(caller, op, parsed.payload as Record<string, unknown>, control) };
  }

  /**
   * Route, prepare and run in one go, with the audit line; for in-process callers (no frame limit).
   * An abort of `signal` answers at once (a connection does that itself); the work runs on.
   */
  async call(caller: Caller, op: string, payload: unknown, signal: AbortSignal): Promise<CallOutcome> {
    const routed = this.route(caller, `host-${op}`, op, payload);
    const prepared = routed.ok ? this.prepare(caller, routed) : routed;
    let outcome: CallOutcome;
    if (!prepared.ok) outcome = prepared.outcome;
    // Work for a caller that already gave up is not started at all.
    else if (signal.aborted) outcome = abortFailure(signal);
    else outcome = await raceAbort(Promise.resolve(prepared.run({ signal })), signal, () => abortFailure(signal)).catch((err: unknown) => ({ ...toFailure(err), cause: err }));
    this.record(caller, prepared.meta, outcome.ok ? 'ok' : outcome.code);
    return outcome;
  }

  /** Resolves once no handler work is running (so the stores can be closed after it). */
  idle(): Promise<void> {
    if (this.running === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  /** The audit line of a request that can no longer be answered: its connection closed first. */
  abandoned(caller: Caller, meta: RequestMeta): void {
    this.record(caller, meta, 'CONNECTION_CLOSED');
  }

  /**
   * The one reply frame of a request, with its audit line: data or error as the envelope says, and
   * RESPONSE_TOO_LARGE (same id) when the frame would exceed `maxFrame`.
   */
  reply(caller: Caller, meta: RequestMeta, outcome: Outcome, maxFrame: number): Buffer {
    const head = { v: caller.version, id: meta.id };
    let bytes = encodeFrame(replyFrame(head, outcome));
    let result = outcome.ok ? 'ok' : outcome.code;
    if (bytes.length - 4 > maxFrame) {
      bytes = encodeFrame(replyFrame(head, RESPONSE_TOO_LARGE));
      result = RESPONSE_TOO_LARGE.code;
    }
    this.record(caller, meta, result);
    return bytes;
  }

  /** An audit line for a connection-level event (handshake, frame errors, refused peers). */
  note(subject: Pick<Caller, 'conn' | 'peer' | 'grant'>, op: string, outcome: string): void {
    this.deps.audit.record(auditEvent(subject, op, outcome));
  }

  /**
   * Grant check, handler and the sanitized-result check. A handler that answers at once (a cached
   * get_token) is answered in the same turn, with no promise in between.
   */
  private run(caller: Caller, op: HandlerOp, payload: Record<string, unknown>, control: SignalSource): CallOutcome | Promise<CallOutcome> {
    if (!caller.grant) return failure('UNAUTHORIZED', 'No grant for this connection');
    const ctx = new RequestContext(this.deps.services, caller, caller.grant, control);
    const handler = this.deps.handlers[op] as (c: HandlerContext, p: unknown) => Promise<JsonObject> | JsonObject;
    let result: Promise<JsonObject> | JsonObject;
    try {
      checkScope(caller.grant, op, payload);
      result = handler(ctx, payload);
    } catch (err) {
      return { ...toFailure(err), cause: err };
    }
    if (!(result instanceof Promise)) return resultOutcome(op, result);
    this.running += 1;
    return result.then(
      (data) => this.settled(resultOutcome(op, data)),
      (err: unknown) => this.settled({ ...toFailure(err), cause: err }),
    );
  }

  /** Handler work that had to wait is over (idle() waits for all of it). */
  private settled(outcome: CallOutcome): CallOutcome {
    this.running -= 1;
    if (this.running === 0) for (const wake of this.idleWaiters.splice(0)) wake();
    return outcome;
  }

  private record(caller: Caller, meta: RequestMeta, outcome: string): void {
    const event = auditEvent(caller, meta.op, outcome);
    if (meta.provider !== undefined) event.provider = meta.provider;
    if (meta.bucket !== undefined) event.bucket = meta.bucket;
    if (meta.session !== undefined) event.session = meta.session;
    event.ms = this.deps.now() - meta.started;
    this.deps.audit.record(event);
  }
}

/** A handler's context: the daemon's services, the caller's identity and, when asked for, the request's signal. */
class RequestContext implements HandlerContext {
  readonly tokens: HandlerServices['tokens'];
  readonly keys: HandlerServices['keys'];
  readonly usage: HandlerServices['usage'];
  readonly refresher: HandlerServices['refresher'];
  readonly refreshWaitMs: HandlerServices['refreshWaitMs'];
  readonly publicFields: HandlerServices['publicFields'];
  readonly admin: HandlerServices['admin'];
  readonly conn: number;
  readonly peer: PeerCredentials | null;

  constructor(
    services: HandlerServices,
    caller: Caller,
    readonly grant: Grant,
    private readonly control: SignalSource,
  ) {
    this.tokens = services.tokens;
    this.keys = services.keys;
    this.usage = services.usage;
    this.refresher = services.refresher;
    this.refreshWaitMs = services.refreshWaitMs;
    this.publicFields = services.publicFields;
    this.admin = services.admin;
    this.conn = caller.conn;
    this.peer = caller.peer;
  }

  get signal(): AbortSignal {
    return this.control.signal;
  }
}

/** The reply of a handler's data: refused unless token data came out of sanitizeToken. */
function resultOutcome(op: HandlerOp, data: JsonObject): CallOutcome {
  return sanitizedResult(op, data) ? { ok: true, data } : failure('INTERNAL_ERROR', 'Internal error');
}

/** Token data must be a token that came out of sanitizeToken, not a copy with fields added back. */
function sanitizedResult(op: HandlerOp, data: JsonObject): boolean {
  if (TOKEN_REPLIES.has(op)) return isSanitizedToken(data);
  if (op === 'oauth_poll' && data.status === 'complete') return isSanitizedToken(data.token);
  return true;
}

function auditEvent(subject: Pick<Caller, 'conn' | 'peer' | 'grant'>, op: string, outcome: string): AuditEvent {
  const event: AuditEvent = { conn: subject.conn, op, outcome };
  if (subject.peer) event.peer = { pid: subject.peer.pid, uid: subject.peer.uid };
  if (subject.grant) event.grant = subject.grant.id;
  return event;
}

/** Turns anything a handler threw (or an abort reason) into a reply built from known-safe fields only. */
function toFailure(err: unknown): Failure {
  if (isFailure(err)) return err;
  if (err instanceof ProxyError) return fromError(err);
  // Store messages name host paths (the user's home); the sandbox learns only what kind of failure it was.
  if (err instanceof StoreError) {
    if (err.reason === 'locked') return failure('INTERNAL_ERROR', 'The credential store is busy (locked by another process); try again');
    if (err.reason === 'unavailable') return failure('INTERNAL_ERROR', 'The credential store on the host is unreachable right now; try again later');
    return failure('INTERNAL_ERROR', 'The credential store on the host cannot be used');
  }
  return failure('INTERNAL_ERROR', 'Internal error');
}

/** Why an aborted request ended: the connection's reason (timeout, cancel), else a cancellation. */
function abortFailure(signal: AbortSignal): Failure {
  return isFailure(signal.reason) ? signal.reason : REQUEST_CANCELLED;
}

function isFailure(value: unknown): value is Failure {
  return isObject(value) && value.ok === false && typeof value.code === 'string' && typeof value.error === 'string';
}

export function isObject(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

/** Op names are echoed in errors; keep them short and printable. */
function printable(op: string): string {
  return op.slice(0, 64).replace(/[^\x20-\x7e]/g, '?');
}
