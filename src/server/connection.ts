/**
 * One client connection (PROTOCOL.md §2–4): framing, handshake, request ids, per-connection limits,
 * in-flight bookkeeping, cancellation and timeouts. Everything about what a request means is the
 * Dispatcher's. Each request id gets exactly one reply.
 */
import type { Grant } from '../auth/grants.js';
import type { PeerCredentials } from '../auth/peer.js';
import {
  type Failure,
  failure,
  HANDSHAKE_REQUIRED,
  INVALID_CAPABILITY,
  type Outcome,
  replyFrame,
  REQUEST_CANCELLED,
  UNSUPPORTED_VERSION,
} from '../protocol/envelope.js';
import { encodeFrame, FrameDecoder, FrameError, type JsonObject, MAX_FRAME_V1, MAX_FRAME_V2 } from '../protocol/framing.js';
import { parsePayload } from '../protocol/messages.js';
import { negotiateVersion } from '../protocol/version.js';
import { type Caller, type Dispatcher, isObject, type RequestMeta } from './dispatch.js';
import type { ConnectionLimits } from './options.js';
import { RateLimiter } from './rateLimiter.js';
import type { Transport } from './transport.js';

/** Everything a connection needs from its daemon; injected so tests and the daemon share one path. */
export interface ConnectionDeps {
  dispatcher: Dispatcher;
  limits: ConnectionLimits;
  now: () => number;
  /** Resolves the grant for a handshake: capability token (if any) → grant, or null = refused. */
  authorize(capabilityToken: string | undefined): Grant | null;
}

interface InFlight {
  meta: RequestMeta;
  /** Made when the handler first asks for its signal, or when the request is stopped. */
  abort: AbortController | null;
  /** performance.now() past which the request is answered with a timeout. */
  deadline: number;
}

const HANDSHAKE_REJECT_GRACE_MS = 3_000;
const TIMED_OUT = failure('INTERNAL_ERROR', 'Operation timed out');
const CONNECTION_CLOSED = failure('CANCELLED', 'Connection closed');

export class Connection {
  private readonly decoder = new FrameDecoder(MAX_FRAME_V1);
  private readonly inFlight = new Map<string, InFlight>();
  private rate: RateLimiter;
  /** The daemon's limits, with the grant's own in-flight and per-second limits once it is known. */
  private limits: ConnectionLimits;
  /** Set by a successful handshake. */
  private caller: Caller | null = null;
  private handshakeTimer: NodeJS.Timeout | null;
  private partialTimer: NodeJS.Timeout | null = null;
  /** One timer for every in-flight request's timeout, not one per request (see armDeadline). */
  private deadlineTimer: NodeJS.Timeout | null = null;
  private closing = false;
  private idleWaiters: Array<() => void> = [];

  constructor(
    readonly id: number,
    private readonly transport: Transport,
    private readonly peer: PeerCredentials | null,
    private readonly deps: ConnectionDeps,
  ) {
    this.limits = deps.limits;
    this.rate = new RateLimiter(deps.limits.maxPerSecond);
    this.handshakeTimer = setTimeout(() => this.fail('HANDSHAKE_TIMEOUT'), deps.limits.handshakeTimeoutMs);
    transport.start(
      (chunk) => this.onData(chunk),
      () => this.onClose(),
    );
  }

  /** The grant of this connection once its handshake succeeded. */
  get grant(): Grant | null {
    return this.caller?.grant ?? null;
  }

  /** Resolves once no request is in flight. */
  whenIdle(): Promise<void> {
    if (this.inFlight.size === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  /** Stops reading new frames (shutdown); in-flight requests still get their replies. */
  stopReading(): void {
    this.closing = true;
    this.transport.pause();
  }

  destroy(): void {
    this.transport.destroy();
  }

  private get subject() {
    return { conn: this.id, peer: this.peer, grant: this.caller?.grant ?? null };
  }

  /** Closes the connection for a transport-level violation; no reply can be correlated. */
  private fail(reason: string): void {
    if (this.transport.closed) return;
    this.deps.dispatcher.note(this.subject, 'connection', reason);
    this.transport.destroy();
  }

  private onData(chunk: Buffer): void {
    if (this.closing) return;
    let frames: JsonObject[];
    try {
      frames = this.decoder.push(chunk);
    } catch (err) {
      this.fail(err instanceof FrameError ? `FRAME_${err.reason.toUpperCase()}` : 'FRAME_ERROR');
      return;
    }
    this.armPartialTimer(frames.length > 0);
    for (const frame of frames) {
      if (this.transport.closed || this.closing) return;
      if (this.caller === null) this.onHandshake(frame);
      else this.onRequest(this.caller, frame);
    }
  }

  /**
   * A partial frame (even 1–3 header bytes) may sit in the buffer for at most the partial-frame
   * timeout. The clock is per frame: when a frame completes, what is left over is a new frame.
   */
  private armPartialTimer(frameCompleted: boolean): void {
    if (this.decoder.pendingBytes === 0 || frameCompleted) {
      if (this.partialTimer) clearTimeout(this.partialTimer);
      this.partialTimer = null;
    }
    if (this.decoder.pendingBytes > 0 && !this.partialTimer) {
      this.partialTimer = setTimeout(() => this.fail('PARTIAL_FRAME_TIMEOUT'), this.deps.limits.partialFrameTimeoutMs);
    }
  }

  private onHandshake(frame: JsonObject): void {
    // A first frame that is not a handshake gets §3's bare envelope (no v, no op).
    if (frame.op !== 'handshake') return this.rejectHandshake({}, HANDSHAKE_REQUIRED);
    const payload = isObject(frame.payload) ? frame.payload : {};
    const version = negotiateVersion(frame.v, payload.minVersion, payload.maxVersion);
    if (version === null) return this.rejectHandshake({ v: 2, op: 'handshake' }, UNSUPPORTED_VERSION);
    const token = payload.capabilityToken;
    const grant = token === undefined || typeof token === 'string' ? this.authorize(token) : null;
    if (!grant) return this.rejectHandshake({ v: 2, op: 'handshake' }, INVALID_CAPABILITY);
    if (this.handshakeTimer) clearTimeout(this.handshakeTimer);
    this.handshakeTimer = null;
    this.caller = { conn: this.id, peer: this.peer, grant, version };
    const own = grant.limits;
    if (own) {
      const base = this.deps.limits;
      this.limits = { ...base, maxInFlight: own.inFlight ?? base.maxInFlight, maxPerSecond: own.perSecond ?? base.maxPerSecond };
      this.rate = new RateLimiter(this.limits.maxPerSecond);
    }
    this.decoder.setMaxFrame(version === 2 ? MAX_FRAME_V2 : MAX_FRAME_V1);
    this.write(encodeFrame(replyFrame({ v: version, op: 'handshake' }, { ok: true, data: { version } })));
    this.deps.dispatcher.note(this.subject, 'handshake', 'ok');
  }

  /** The grant for a presented capability (or none); a failing lookup refuses rather than crashing the daemon. */
  private authorize(token: string | undefined): Grant | null {
    try {
      return this.deps.authorize(token);
    } catch {
      return null;
    }
  }

  /** Sends the rejection, then ends the connection; force-closes if the peer does not read it. */
  private rejectHandshake(head: { v?: number; op?: string }, outcome: Failure): void {
    this.closing = true;
    this.deps.dispatcher.note(this.subject, 'handshake', outcome.code);
    if (this.handshakeTimer) clearTimeout(this.handshakeTimer);
    this.handshakeTimer = null;
    this.transport.end(encodeFrame(replyFrame(head, outcome)));
    setTimeout(() => this.transport.destroy(), HANDSHAKE_REJECT_GRACE_MS).unref();
  }

  private onRequest(caller: Caller, frame: JsonObject): void {
    const dispatcher = this.deps.dispatcher;
    const id = requestId(frame.id);
    const op = typeof frame.op === 'string' && frame.op.length > 0 ? frame.op : null;
    // Every frame counts against the rate, malformed ones too: each costs a reply and an audit line.
    if (!this.rate.tryTake(this.deps.now())) return this.answer(dispatcher.meta(id ?? 'unknown', op), failure('RATE_LIMITED', 'Too many requests', 1));
    if (id === null || op === null) {
      return this.answer(dispatcher.meta('unknown', op), failure('INVALID_REQUEST', id === null ? 'Missing or invalid request id' : 'Missing or invalid op'));
    }
    if (this.inFlight.has(id)) return this.answer(dispatcher.meta(id, op), failure('INVALID_REQUEST', 'Duplicate request id'));
    const routed = dispatcher.route(caller, id, op, frame.payload);
    if (!routed.ok) return this.answer(routed.meta, routed.outcome);
    if (routed.op === 'cancel') return this.onCancel(routed.meta, routed.payload);
    if (this.inFlight.size >= this.limits.maxInFlight) {
      return this.answer(routed.meta, failure('RESOURCE_EXHAUSTED', `Too many requests in flight (limit ${this.limits.maxInFlight})`));
    }
    const prepared = dispatcher.prepare(caller, routed);
    if (!prepared.ok) return this.answer(prepared.meta, prepared.outcome);
    const entry: InFlight = { meta: prepared.meta, abort: null, deadline: performance.now() + this.deps.limits.operationTimeoutMs };
    this.inFlight.set(id, entry);
    this.deadlineTimer ??= this.armDeadline(this.deps.limits.operationTimeoutMs);
    const control = {
      get signal(): AbortSignal {
        return (entry.abort ??= new AbortController()).signal;
      },
    };
    const outcome = prepared.run(control);
    if (outcome instanceof Promise) void outcome.then((o) => this.finish(entry, o));
    else this.finish(entry, outcome);
  }

  /**
   * Times out what is due, then waits for the oldest request left. Requests share one timeout and
   * the map keeps arrival order, so the first entry not yet due ends the scan. The timer is not
   * cleared when a request finishes: it runs out at most once per timeout period and is armed again
   * only while requests are in flight.
   */
  private armDeadline(ms: number): NodeJS.Timeout {
    return setTimeout(() => {
      this.deadlineTimer = null;
      const now = performance.now();
      for (const entry of this.inFlight.values()) {
        if (entry.deadline > now) {
          this.deadlineTimer = this.armDeadline(entry.deadline - now);
          return;
        }
        this.finish(entry, TIMED_OUT, true);
      }
    }, Math.max(1, Math.ceil(ms)));
  }

  /**
   * The one reply of an in-flight request, unless it was already answered. A cancel or timeout
   * answers at once and aborts the work; the handler's later outcome is then dropped.
   */
  private finish(entry: InFlight, outcome: Outcome, stopWork = false): void {
    if (this.inFlight.get(entry.meta.id) !== entry) return;
    this.inFlight.delete(entry.meta.id);
    // Made here if the handler has not asked yet, so a signal it reads later is already aborted.
    if (stopWork) (entry.abort ??= new AbortController()).abort(outcome);
    this.answer(entry.meta, outcome);
    if (this.inFlight.size === 0) for (const wake of this.idleWaiters.splice(0)) wake();
  }

  private onCancel(meta: RequestMeta, payload: Record<string, unknown>): void {
    const parsed = parsePayload('cancel', payload);
    if (!parsed.ok) return this.answer(meta, failure('INVALID_REQUEST', parsed.message));
    const target = this.inFlight.get(parsed.payload.targetId);
    if (target) this.finish(target, REQUEST_CANCELLED, true);
    this.answer(meta, { ok: true, data: { cancelled: target !== undefined } });
  }

  private answer(meta: RequestMeta, outcome: Outcome): void {
    const max = this.caller?.version === 2 ? MAX_FRAME_V2 : MAX_FRAME_V1;
    this.write(this.deps.dispatcher.reply(this.caller!, meta, outcome, max));
  }

  /** One frame, one write. */
  private write(bytes: Buffer): void {
    if (!this.transport.closed) this.transport.write(bytes);
  }

  private onClose(): void {
    if (this.handshakeTimer) clearTimeout(this.handshakeTimer);
    if (this.partialTimer) clearTimeout(this.partialTimer);
    if (this.deadlineTimer) clearTimeout(this.deadlineTimer);
    this.deadlineTimer = null;
    for (const entry of this.inFlight.values()) {
      (entry.abort ??= new AbortController()).abort(CONNECTION_CLOSED);
      // No reply can reach the client any more; the audit log still says the request existed.
      if (this.caller) this.deps.dispatcher.abandoned(this.caller, entry.meta);
    }
    this.inFlight.clear();
    for (const wake of this.idleWaiters.splice(0)) wake();
  }
}

/** A non-empty string id, or a number echoed as its decimal string. */
function requestId(id: unknown): string | null {
  if (typeof id === 'string' && id.length > 0 && id.length <= 256) return id;
  if (typeof id === 'number' && Number.isFinite(id)) return String(id);
  return null;
}
