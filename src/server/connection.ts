/**
 * One client connection: framing, handshake, per-connection limits, in-flight bookkeeping,
 * cancellation and replies (PROTOCOL.md §2–4). Each request id gets exactly one reply.
 */
import type net from 'node:net';
import { ProxyError, type ErrorCode } from '../protocol/errors.js';
import { encodeFrame, FrameDecoder, FrameError, type JsonObject, MAX_FRAME_V1, MAX_FRAME_V2 } from '../protocol/framing.js';
import { isKnownOp, type OpName, parsePayload, V2_ONLY_OPS } from '../protocol/messages.js';
import { negotiateVersion, type ProtocolVersion } from '../protocol/version.js';
import type { HandlerContext, HandlerTable } from '../handlers/index.js';
import type { AuditEvent, AuditLog } from './audit.js';
import type { Grant } from './grants.js';
import type { ConnectionLimits } from './options.js';
import type { PeerCredentials } from './peerCredentials.js';
import { StoreError } from '../store/types.js';
import { RateLimiter } from './rateLimiter.js';
import { checkScope } from './scope.js';

/** Everything a connection needs from its daemon; injected so tests and the daemon share one path. */
export interface ConnectionDeps {
  handlers: HandlerTable;
  limits: ConnectionLimits;
  audit: AuditLog;
  now: () => number;
  /** Resolves the grant for a handshake: capability token (if any) → grant, or null = refused. */
  authorize(capabilityToken: string | undefined): Grant | null;
  /** Builds the handler context shared by this connection's requests. */
  context(grant: Grant, peer: PeerCredentials | null): Omit<HandlerContext, 'signal'>;
}

interface InFlight {
  op: string;
  abort: AbortController | null;
  timer: NodeJS.Timeout | null;
  started: number;
  provider?: string | undefined;
  bucket?: string | undefined;
  /** First 8 hex chars of an OAuth session id; the full id is a bearer secret. */
  session?: string | undefined;
}

const HANDSHAKE_REJECT_GRACE_MS = 3_000;

export class Connection {
  private readonly decoder = new FrameDecoder(MAX_FRAME_V1);
  private readonly inFlight = new Map<string, InFlight>();
  private readonly rate: RateLimiter;
  private version: ProtocolVersion | null = null;
  private grant: Grant | null = null;
  private baseContext: Omit<HandlerContext, 'signal'> | null = null;
  private handshakeTimer: NodeJS.Timeout | null;
  private partialTimer: NodeJS.Timeout | null = null;
  private closing = false;
  private idleWaiters: Array<() => void> = [];

  constructor(
    readonly id: number,
    private readonly socket: net.Socket,
    private readonly peer: PeerCredentials | null,
    private readonly deps: ConnectionDeps,
  ) {
    this.rate = new RateLimiter(deps.limits.maxPerSecond);
    this.handshakeTimer = setTimeout(() => this.fail('HANDSHAKE_TIMEOUT'), deps.limits.handshakeTimeoutMs);
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('error', () => socket.destroy());
    socket.on('close', () => this.onClose());
  }

  /** Requests still being processed. */
  get pending(): number {
    return this.inFlight.size;
  }

  /** Resolves once no request is in flight. */
  whenIdle(): Promise<void> {
    if (this.inFlight.size === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  /** Stops reading new frames (shutdown); in-flight requests still get their replies. */
  stopReading(): void {
    this.closing = true;
    this.socket.pause();
  }

  destroy(): void {
    this.socket.destroy();
  }

  private audit(op: string, outcome: string, extra: Pick<AuditEvent, 'provider' | 'bucket' | 'session' | 'ms'> = {}): void {
    this.deps.audit.record({
      conn: this.id,
      peer: this.peer ? { pid: this.peer.pid, uid: this.peer.uid } : undefined,
      grant: this.grant?.id,
      op,
      outcome,
      ...extra,
    });
  }

  /** Closes the connection for a transport-level violation; no reply can be correlated. */
  private fail(reason: string): void {
    if (this.socket.destroyed) return;
    this.audit('connection', reason);
    this.socket.destroy();
  }

  private onData(chunk: Buffer): void {
    if (this.closing) return;
    let frames: JsonObject[];
    try {
      frames = this.decoder.push(chunk);
    } catch (err) {
      const reason = err instanceof FrameError ? `FRAME_${err.reason.toUpperCase()}` : 'FRAME_ERROR';
      this.fail(reason);
      return;
    }
    this.armPartialTimer(frames.length > 0);
    for (const frame of frames) {
      if (this.socket.destroyed || this.closing) return;
      if (this.version === null) this.onHandshake(frame);
      else this.onRequest(frame);
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
    if (frame.op !== 'handshake') {
      this.rejectHandshake({ ok: false, code: 'INVALID_REQUEST', error: 'Handshake required' }, 'INVALID_REQUEST');
      return;
    }
    const payload = isObject(frame.payload) ? frame.payload : {};
    const version = negotiateVersion(frame.v, payload.minVersion, payload.maxVersion);
    if (version === null) {
      this.rejectHandshake({ v: 2, op: 'handshake', ok: false, code: 'UNKNOWN_VERSION', error: 'Unsupported protocol version' }, 'UNKNOWN_VERSION');
      return;
    }
    const token = payload.capabilityToken;
    const grant = token === undefined || typeof token === 'string' ? this.deps.authorize(token) : null;
    if (!grant) {
      this.rejectHandshake(
        { v: 2, op: 'handshake', ok: false, code: 'UNAUTHORIZED', error: 'Invalid or missing capability token' },
        'UNAUTHORIZED',
      );
      return;
    }
    if (this.handshakeTimer) clearTimeout(this.handshakeTimer);
    this.handshakeTimer = null;
    this.version = version;
    this.grant = grant;
    this.baseContext = this.deps.context(grant, this.peer);
    this.decoder.setMaxFrame(version === 2 ? MAX_FRAME_V2 : MAX_FRAME_V1);
    this.write({ v: version, op: 'handshake', ok: true, data: { version } });
    this.audit('handshake', 'ok');
  }

  /** Sends the rejection, then ends the connection; force-closes if the peer does not read it. */
  private rejectHandshake(reply: JsonObject, outcome: ErrorCode): void {
    this.closing = true;
    this.audit('handshake', outcome);
    if (this.handshakeTimer) clearTimeout(this.handshakeTimer);
    this.handshakeTimer = null;
    this.socket.end(encodeFrame(reply));
    setTimeout(() => this.socket.destroy(), HANDSHAKE_REJECT_GRACE_MS).unref();
  }

  private onRequest(frame: JsonObject): void {
    const id = requestId(frame.id);
    const op = typeof frame.op === 'string' && frame.op.length > 0 ? frame.op : null;
    // Only known op names reach the audit log; anything else a client sends is "unknown".
    const auditOp = op !== null && isKnownOp(op) ? op : 'unknown';
    // Every frame counts against the rate, malformed ones too: each costs a reply and an audit line.
    if (!this.rate.tryTake(this.deps.now())) {
      this.replyError(id ?? 'unknown', 'RATE_LIMITED', 'Too many requests', 1);
      this.audit(auditOp, 'RATE_LIMITED');
      return;
    }
    if (id === null || op === null) {
      this.replyError('unknown', 'INVALID_REQUEST', id === null ? 'Missing or invalid request id' : 'Missing or invalid op');
      this.audit(auditOp, 'INVALID_REQUEST');
      return;
    }
    if (this.inFlight.has(id)) {
      this.replyError(id, 'INVALID_REQUEST', 'Duplicate request id');
      this.audit(auditOp, 'INVALID_REQUEST');
      return;
    }
    if (!isKnownOp(op) || (V2_ONLY_OPS.has(op) && this.version !== 2)) {
      this.replyError(id, 'INVALID_REQUEST', `Unknown operation: ${printable(op)}`);
      this.audit('unknown', 'INVALID_REQUEST');
      return;
    }
    const rawPayload = frame.payload === undefined ? {} : frame.payload;
    if (!isObject(rawPayload)) {
      this.replyError(id, 'INVALID_REQUEST', 'Invalid field "payload": must be an object');
      this.audit(op, 'INVALID_REQUEST');
      return;
    }
    if (op === 'cancel') {
      this.onCancel(id, rawPayload);
      return;
    }
    if (this.inFlight.size >= this.deps.limits.maxInFlight) {
      this.replyError(id, 'RESOURCE_EXHAUSTED', `Too many requests in flight (limit ${this.deps.limits.maxInFlight})`);
      this.audit(op, 'RESOURCE_EXHAUSTED');
      return;
    }
    this.start(id, op, rawPayload);
  }

  private start(id: string, op: Exclude<OpName, 'cancel'>, rawPayload: Record<string, unknown>): void {
    const parsed = parsePayload(op, rawPayload);
    const provider = typeof rawPayload.provider === 'string' ? rawPayload.provider.slice(0, 64) : undefined;
    const bucket = provider === undefined ? undefined : typeof rawPayload.bucket === 'string' ? rawPayload.bucket.slice(0, 64) : 'default';
    if (!parsed.ok) {
      this.replyError(id, 'INVALID_REQUEST', parsed.message);
      this.audit(op, 'INVALID_REQUEST', { provider, bucket });
      return;
    }
    const session = typeof rawPayload.session_id === 'string' ? rawPayload.session_id.slice(0, 8) : undefined;
    const entry: InFlight = { op, abort: null, started: this.deps.now(), provider, bucket, session, timer: null };
    this.inFlight.set(id, entry);
    entry.timer = setTimeout(() => {
      entry.abort?.abort();
      this.finish(id, entry, { ok: false, code: 'INTERNAL_ERROR', error: 'Operation timed out' });
    }, this.deps.limits.operationTimeoutMs);
    const ctx = new RequestContext(this.baseContext!, entry);
    const handler = this.deps.handlers[op] as (c: HandlerContext, p: unknown) => Promise<Record<string, unknown>>;
    let pending: Promise<Record<string, unknown>>;
    try {
      checkScope(ctx.grant, op, parsed.payload as Record<string, unknown>);
      pending = handler(ctx, parsed.payload);
    } catch (err) {
      pending = Promise.reject(err);
    }
    pending.then(
      (data) => this.finish(id, entry, { ok: true, data }),
      (err: unknown) => this.finish(id, entry, errorReply(err)),
    );
  }

  /** Sends the one reply of `id`, unless it was already answered (cancelled or timed out). */
  private finish(id: string, entry: InFlight, result: { ok: true; data: Record<string, unknown> } | ErrorReply): void {
    if (this.inFlight.get(id) !== entry) return;
    this.inFlight.delete(id);
    if (entry.timer) clearTimeout(entry.timer);
    if (result.ok) this.reply({ v: this.version, id, ok: true, data: result.data });
    else this.replyError(id, result.code, result.error, result.retryAfter);
    this.audit(entry.op, result.ok ? 'ok' : result.code, {
      provider: entry.provider,
      bucket: entry.bucket,
      session: entry.session,
      ms: this.deps.now() - entry.started,
    });
    if (this.inFlight.size === 0) for (const wake of this.idleWaiters.splice(0)) wake();
  }

  private onCancel(id: string, payload: Record<string, unknown>): void {
    const parsed = parsePayload('cancel', payload);
    if (!parsed.ok) {
      this.replyError(id, 'INVALID_REQUEST', parsed.message);
      this.audit('cancel', 'INVALID_REQUEST');
      return;
    }
    const target = this.inFlight.get(parsed.payload.targetId);
    if (target) {
      target.abort?.abort();
      this.finish(parsed.payload.targetId, target, { ok: false, code: 'CANCELLED', error: 'Request cancelled' });
    }
    this.reply({ v: this.version, id, ok: true, data: { cancelled: target !== undefined } });
    this.audit('cancel', 'ok');
  }

  private replyError(id: string, code: ErrorCode, error: string, retryAfter?: number): void {
    const frame: JsonObject = { v: this.version, id, ok: false, code, error };
    if (retryAfter !== undefined) frame.retryAfter = retryAfter;
    this.reply(frame);
  }

  /** One frame, one write. A reply over the negotiated limit becomes an error the client can read. */
  private reply(frame: JsonObject): void {
    let bytes = encodeFrame(frame);
    const max = this.version === 2 ? MAX_FRAME_V2 : MAX_FRAME_V1;
    if (bytes.length - 4 > max) {
      bytes = encodeFrame({ v: this.version, id: frame.id, ok: false, code: 'INTERNAL_ERROR', error: 'Response too large for the negotiated protocol version' });
    }
    this.write(bytes);
  }

  private write(frame: JsonObject | Buffer): void {
    if (this.socket.destroyed || !this.socket.writable) return;
    this.socket.write(Buffer.isBuffer(frame) ? frame : encodeFrame(frame));
  }

  private onClose(): void {
    if (this.handshakeTimer) clearTimeout(this.handshakeTimer);
    if (this.partialTimer) clearTimeout(this.partialTimer);
    for (const entry of this.inFlight.values()) {
      entry.abort?.abort();
      if (entry.timer) clearTimeout(entry.timer);
    }
    this.inFlight.clear();
    for (const wake of this.idleWaiters.splice(0)) wake();
  }
}

/** A handler's context; its AbortSignal is made on first use (most reads never look at it). */
class RequestContext implements HandlerContext {
  readonly tokens: HandlerContext['tokens'];
  readonly keys: HandlerContext['keys'];
  readonly grant: HandlerContext['grant'];
  readonly peer: HandlerContext['peer'];
  readonly usage: HandlerContext['usage'];
  readonly refresher: HandlerContext['refresher'];
  readonly now: HandlerContext['now'];

  constructor(
    base: Omit<HandlerContext, 'signal'>,
    private readonly entry: InFlight,
  ) {
    this.tokens = base.tokens;
    this.keys = base.keys;
    this.grant = base.grant;
    this.peer = base.peer;
    this.usage = base.usage;
    this.refresher = base.refresher;
    this.now = base.now;
  }

  get signal(): AbortSignal {
    return (this.entry.abort ??= new AbortController()).signal;
  }
}

type ErrorReply = { ok: false; code: ErrorCode; error: string; retryAfter?: number };

function isObject(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

/** A non-empty string id, or a number echoed as its decimal string. */
function requestId(id: unknown): string | null {
  if (typeof id === 'string' && id.length > 0 && id.length <= 256) return id;
  if (typeof id === 'number' && Number.isFinite(id)) return String(id);
  return null;
}

/** Op names are echoed in errors; keep them short and printable. */
function printable(op: string): string {
  return op.slice(0, 64).replace(/[^\x20-\x7e]/g, '?');
}

/** Turns anything a handler threw into a reply built from known-safe fields only. */
function errorReply(err: unknown): ErrorReply {
  if (err instanceof ProxyError) {
    const reply: ErrorReply = { ok: false, code: err.code, error: err.message };
    if (err.retryAfter !== undefined) reply.retryAfter = err.retryAfter;
    return reply;
  }
  // Store messages name host paths (the user's home); the sandbox learns only what kind of failure it was.
  if (err instanceof StoreError) {
    const error = err.reason === 'locked' ? 'The credential store is busy (locked by another process); try again' : 'The credential store on the host cannot be used';
    return { ok: false, code: 'INTERNAL_ERROR', error };
  }
  return { ok: false, code: 'INTERNAL_ERROR', error: 'Internal error' };
}
