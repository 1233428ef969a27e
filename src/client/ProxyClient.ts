/**
 * The reference client of PROTOCOL.md §8: one lazily opened connection per client object, a
 * handshake first, requests correlated by UUID-shaped ids (see nextRequestId), per-request timeouts that send
 * `cancel` on v2, idle close, and no replay after a lost connection. It imports only the pure,
 * dependency-free parts of src/protocol (and src/abort.ts) so that a sandboxed process loads nothing else.
 */
import net from 'node:net';
import type { z } from 'zod';
import { isErrorCode, type ErrorCode } from '../protocol/errors.js';
import { encodeFrame, FrameDecoder, HEADER_BYTES, MAX_FRAME_V1, MAX_FRAME_V2, type JsonObject } from '../protocol/framing.js';
import type { OpName, payloadSchemas } from '../protocol/messages.js';
import type { ProtocolVersion } from '../protocol/version.js';
import { assertCapabilityToken } from './capability.js';
import { raceAbort } from '../abort.js';

export const CONNECTION_LOST_MESSAGE = 'Credential proxy connection lost. Restart the session.';

/** Failures detected by the client itself, as opposed to error replies from the host. */
export type ClientErrorCode =
  | 'TIMEOUT'
  | 'ABORTED'
  | 'CONNECT_FAILED'
  | 'HANDSHAKE_TIMEOUT'
  | 'CONNECTION_LOST'
  | 'FRAME_TOO_LARGE'
  | 'PROTOCOL_ERROR'
  | 'CLOSED'
  | 'READ_ONLY';

/** Every error the client surfaces: host error replies keep the host's code, message and retryAfter. */
/**
 * Request ids: version-4 UUID strings like those llxprt's client sends, unique within this
 * process (a random prefix per process, then a counter). They are not secrets and name nothing,
 * so no cryptographic randomness: loading node:crypto is a tenth of a sandbox helper's start-up.
 */
const hex = (digits: number): string =>
  Array.from({ length: digits }, () => Math.floor(Math.random() * 16).toString(16)).join('');
const ID_PREFIX = `${hex(8)}-${hex(4)}-4${hex(3)}-${'89ab'[Math.floor(Math.random() * 4)]}${hex(3)}-`;
let idCounter = 0;
function nextRequestId(): string {
  idCounter += 1;
  return ID_PREFIX + idCounter.toString(16).padStart(12, '0');
}

export class ProxyClientError extends Error {
  override readonly name = 'ProxyClientError';
  constructor(
    readonly code: ErrorCode | ClientErrorCode,
    message: string,
    readonly retryAfter?: number,
  ) {
    super(message);
  }
}

export interface ProxyClientOptions {
  /** Unix socket of the daemon. Exactly one of socketPath and port must be given. */
  socketPath?: string;
  /** Host of the optional TCP transport (default 127.0.0.1); requires a capability token. */
  host?: string;
  port?: number;
  /** 64 lowercase hex chars; sent in the handshake only. */
  capabilityToken?: string;
  /** Default per-request timeout (30 s). 0 or Infinity disables it. */
  requestTimeoutMs?: number;
  /** Close the connection after this long without pending requests (5 min). */
  idleTimeoutMs?: number;
  /** Give up on a connection whose handshake has not completed in this time (5 s). */
  handshakeTimeoutMs?: number;
  /** Highest protocol version to offer (2). */
  maxVersion?: ProtocolVersion;
}

export interface RequestOptions {
  /** Overrides the client's requestTimeoutMs for this request. */
  timeoutMs?: number;
  /** Aborting rejects the request with ABORTED and, on v2, cancels it on the host. */
  signal?: AbortSignal;
}

/** The payload a request of `op` may carry (the input side of the op's schema). */
export type RequestPayload<O extends OpName> = z.input<(typeof payloadSchemas)[O]>;

interface Pending {
  resolve(data: JsonObject): void;
  reject(error: ProxyClientError): void;
}

interface Connection {
  readonly socket: net.Socket;
  readonly pending: Map<string, Pending>;
  version: ProtocolVersion;
  maxFrame: number;
  idleTimer: NodeJS.Timeout | undefined;
}

// setTimeout clamps larger delays to 1 ms, which would turn "very long" into "immediately".
const MAX_TIMER_MS = 2_147_483_647;

export class ProxyClient {
  private readonly requestTimeoutMs: number;
  private readonly idleTimeoutMs: number;
  private readonly handshakeTimeoutMs: number;
  private readonly maxVersion: ProtocolVersion;
  private readonly token: string | undefined;
  private conn: Connection | null = null;
  private connecting: Promise<Connection> | null = null;
  private closed = false;

  constructor(private readonly options: ProxyClientOptions) {
    if ((options.socketPath === undefined) === (options.port === undefined)) {
      throw new TypeError('ProxyClient needs exactly one of socketPath or port');
    }
    if (options.capabilityToken !== undefined) {
      this.token = assertCapabilityToken(options.capabilityToken, 'capabilityToken');
    } else if (options.port !== undefined) {
      throw new TypeError('The TCP transport requires a capability token');
    }
    this.requestTimeoutMs = options.requestTimeoutMs ?? 30_000;
    this.idleTimeoutMs = options.idleTimeoutMs ?? 5 * 60_000;
    this.handshakeTimeoutMs = options.handshakeTimeoutMs ?? 5_000;
    this.maxVersion = options.maxVersion ?? 2;
    if (this.maxVersion !== 1 && this.maxVersion !== 2) throw new TypeError('maxVersion must be 1 or 2');
  }

  /** The version negotiated on the current connection, or undefined while disconnected. */
  get version(): ProtocolVersion | undefined {
    return this.conn?.version;
  }

  /** Whether a handshaken connection is currently open. */
  get connected(): boolean {
    return this.conn !== null;
  }

  /** Sends one request and resolves its `data`; rejects with ProxyClientError on any failure. */
  async request<O extends OpName>(op: O, payload: RequestPayload<O>, options: RequestOptions = {}): Promise<JsonObject> {
    const { signal } = options;
    if (this.closed) throw closedError();
    if (signal?.aborted) throw abortedError(op);
    const conn = await this.connection(signal, op);
    if (signal?.aborted) throw abortedError(op);
    return this.send(conn, op, payload as JsonObject, options);
  }

  /**
   * Ends the connection gracefully and makes the client unusable. Requests still pending are
   * rejected with CLOSED; later requests too.
   */
  async close(): Promise<void> {
    this.closed = true;
    const conn = this.conn;
    if (!conn) return;
    this.conn = null;
    this.rejectAll(conn, closedError());
    // An explicit close is awaited by its caller: keep the process alive until it completes.
    await this.retire(conn, true);
  }

  private connection(signal: AbortSignal | undefined, op: string): Promise<Connection> {
    if (this.conn) return Promise.resolve(this.conn);
    // Concurrent first requests share one connect and one handshake.
    this.connecting ??= this.connect().finally(() => {
      this.connecting = null;
    });
    return signal ? raceAbort(this.connecting, signal, () => abortedError(op)) : this.connecting;
  }

  private connect(): Promise<Connection> {
    return new Promise<Connection>((resolve, reject) => {
      const { socketPath, host = '127.0.0.1', port } = this.options;
      const socket = socketPath !== undefined ? net.createConnection({ path: socketPath }) : net.createConnection({ host, port: port! });
      const where = socketPath ?? `${host}:${port}`;
      const decoder = new FrameDecoder(MAX_FRAME_V1);
      const conn: Connection = { socket, pending: new Map(), version: 1, maxFrame: MAX_FRAME_V1, idleTimer: undefined };
      let handshaken = false;
      let failed = false;

      const fail = (error: ProxyClientError): void => {
        if (handshaken || failed) return;
        failed = true;
        clearTimeout(timer);
        socket.destroy();
        reject(error);
      };
      const timer = setTimeout(() => {
        fail(new ProxyClientError('HANDSHAKE_TIMEOUT', `Credential proxy at ${where} did not complete the handshake within ${this.handshakeTimeoutMs} ms`));
      }, this.handshakeTimeoutMs);

      const onHandshakeReply = (frame: JsonObject): void => {
        if (frame.ok !== true) {
          const message = typeof frame.error === 'string' ? this.redact(frame.error) : 'Handshake rejected';
          fail(new ProxyClientError(isErrorCode(frame.code) ? frame.code : 'PROTOCOL_ERROR', message));
          return;
        }
        const data = isObject(frame.data) ? frame.data : {};
        const version = data.version ?? frame.v;
        if ((version !== 1 && version !== 2) || version > this.maxVersion) {
          fail(new ProxyClientError('PROTOCOL_ERROR', `Credential proxy negotiated an unsupported protocol version (${String(version)})`));
          return;
        }
        if (this.closed) {
          fail(closedError());
          return;
        }
        handshaken = true;
        clearTimeout(timer);
        conn.version = version;
        conn.maxFrame = version === 2 ? MAX_FRAME_V2 : MAX_FRAME_V1;
        decoder.setMaxFrame(conn.maxFrame);
        this.conn = conn;
        this.markIdle(conn);
        resolve(conn);
      };

      socket.once('connect', () => socket.write(encodeFrame(this.handshakeFrame())));
      socket.on('data', (chunk: Buffer) => {
        let frames: JsonObject[];
        try {
          frames = decoder.push(chunk);
        } catch (error) {
          // Framing cannot resynchronize: the connection is unusable.
          fail(new ProxyClientError('PROTOCOL_ERROR', `Credential proxy sent an invalid frame: ${(error as Error).message}`));
          socket.destroy();
          return;
        }
        for (const frame of frames) {
          if (failed) return;
          if (!handshaken) onHandshakeReply(frame);
          else this.onResponse(conn, frame);
        }
      });
      socket.on('error', (error: NodeJS.ErrnoException) => {
        fail(new ProxyClientError('CONNECT_FAILED', `Cannot connect to the credential proxy at ${where} (${error.code ?? error.message})`));
      });
      socket.on('close', () => {
        fail(new ProxyClientError('CONNECT_FAILED', `Credential proxy at ${where} closed the connection during the handshake`));
        if (handshaken) this.onClose(conn);
      });
    });
  }

  private handshakeFrame(): JsonObject {
    const payload: JsonObject = { minVersion: 1, maxVersion: this.maxVersion };
    if (this.token !== undefined) payload.capabilityToken = this.token;
    return { v: this.maxVersion, op: 'handshake', payload };
  }

  private send(conn: Connection, op: OpName, payload: JsonObject, options: RequestOptions): Promise<JsonObject> {
    const id = nextRequestId();
    const frame = encodeFrame({ v: conn.version, id, op, payload });
    const size = frame.length - HEADER_BYTES;
    if (size > conn.maxFrame) {
      return Promise.reject(
        new ProxyClientError('FRAME_TOO_LARGE', `Request ${op} is ${size} bytes, over the ${conn.maxFrame}-byte frame limit of protocol version ${conn.version}`),
      );
    }
    const { signal } = options;
    const timeoutMs = options.timeoutMs ?? this.requestTimeoutMs;
    return new Promise<JsonObject>((resolve, reject) => {
      let timer: NodeJS.Timeout | undefined;
      const cleanup = (): void => {
        clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
      };
      const entry: Pending = {
        resolve: (data) => {
          cleanup();
          resolve(data);
        },
        reject: (error) => {
          cleanup();
          reject(error);
        },
      };
      // Timeout and abort give up on the request locally; on v2 the host is told to stop too. Its
      // eventual reply (CANCELLED or the real one) finds no pending entry and is dropped.
      const abandon = (error: ProxyClientError): void => {
        if (conn.pending.get(id) !== entry) return;
        conn.pending.delete(id);
        entry.reject(error);
        if (conn.version >= 2 && this.conn === conn) {
          conn.socket.write(encodeFrame({ v: conn.version, id: nextRequestId(), op: 'cancel', payload: { targetId: id } }));
        }
        if (conn.pending.size === 0) this.markIdle(conn);
      };
      const onAbort = (): void => abandon(abortedError(op));

      conn.pending.set(id, entry);
      this.markBusy(conn);
      if (timeoutMs > 0 && timeoutMs <= MAX_TIMER_MS) {
        timer = setTimeout(() => abandon(new ProxyClientError('TIMEOUT', `Credential proxy request ${op} timed out after ${timeoutMs} ms`)), timeoutMs);
      }
      signal?.addEventListener('abort', onAbort, { once: true });
      conn.socket.write(frame);
    });
  }

  private onResponse(conn: Connection, frame: JsonObject): void {
    const id = typeof frame.id === 'number' ? String(frame.id) : frame.id;
    if (typeof id !== 'string') return;
    const entry = conn.pending.get(id);
    // No entry: a reply to a request already given up on, or to a cancel. Both are ignored.
    if (!entry) return;
    conn.pending.delete(id);
    if (frame.ok === true) {
      entry.resolve(isObject(frame.data) ? frame.data : {});
    } else {
      const message = typeof frame.error === 'string' ? this.redact(frame.error) : 'Credential proxy request failed';
      const retryAfter = typeof frame.retryAfter === 'number' && Number.isFinite(frame.retryAfter) ? frame.retryAfter : undefined;
      entry.reject(new ProxyClientError(isErrorCode(frame.code) ? frame.code : 'PROTOCOL_ERROR', message, retryAfter));
    }
    if (conn.pending.size === 0) this.markIdle(conn);
  }

  private onClose(conn: Connection): void {
    clearTimeout(conn.idleTimer);
    if (this.conn === conn) this.conn = null;
    // Requests are never replayed: the host may already have acted on them.
    this.rejectAll(conn, new ProxyClientError('CONNECTION_LOST', CONNECTION_LOST_MESSAGE));
  }

  private rejectAll(conn: Connection, error: ProxyClientError): void {
    const entries = [...conn.pending.values()];
    conn.pending.clear();
    for (const entry of entries) entry.reject(error);
  }

  /** While requests are pending the socket keeps the process alive and the idle timer is off. */
  private markBusy(conn: Connection): void {
    clearTimeout(conn.idleTimer);
    conn.idleTimer = undefined;
    conn.socket.ref();
  }

  /** An idle connection must not keep the process alive; it closes itself after idleTimeoutMs. */
  private markIdle(conn: Connection): void {
    clearTimeout(conn.idleTimer);
    conn.socket.unref();
    if (this.idleTimeoutMs > MAX_TIMER_MS) return;
    conn.idleTimer = setTimeout(() => {
      if (this.conn === conn) this.conn = null;
      void this.retire(conn);
    }, this.idleTimeoutMs);
    conn.idleTimer.unref();
  }

  /**
   * Graceful end; resolves once the socket is closed (destroyed if the host does not close within
   * 2 s). `holdProcess` keeps the event loop alive meanwhile; an idle retirement must not.
   */
  private retire(conn: Connection, holdProcess = false): Promise<void> {
    clearTimeout(conn.idleTimer);
    const { socket } = conn;
    if (socket.closed) return Promise.resolve();
    return new Promise((resolve) => {
      const force = setTimeout(() => socket.destroy(), 2_000);
      if (holdProcess) socket.ref();
      else force.unref();
      socket.once('close', () => {
        clearTimeout(force);
        resolve();
      });
      socket.end();
    });
  }

  /** Host messages are safe by contract; this also guards against a host that echoes the token. */
  private redact(message: string): string {
    return this.token ? message.split(this.token).join('[redacted]') : message;
  }
}

function isObject(value: unknown): value is JsonObject {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

function closedError(): ProxyClientError {
  return new ProxyClientError('CLOSED', 'Credential proxy client is closed');
}

function abortedError(op: string): ProxyClientError {
  return new ProxyClientError('ABORTED', `Credential proxy request ${op} was aborted`);
}
