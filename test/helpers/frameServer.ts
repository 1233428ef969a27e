/**
 * A scripted peer for client tests: a real Unix socket speaking the project's framing, whose every
 * reply is decided by the test (answer, delay, answer out of order, drop, reject the handshake, stay
 * silent). It is deliberately not a product handler: it knows nothing about ops or stores.
 */
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { encodeFrame, FrameDecoder, MAX_FRAME_V1, MAX_FRAME_V2, type JsonObject } from '../../src/protocol/framing.js';
import { negotiateVersion } from '../../src/protocol/version.js';

/** Decides the handshake reply; null means never answer. */
export type HandshakeScript = (frame: JsonObject, conn: PeerConnection) => JsonObject | null;

export interface FrameServerOptions {
  /** Highest version the default handshake accepts (2). */
  maxVersion?: 1 | 2;
  /** Overrides the default handshake (negotiate like the real host and accept). */
  handshake?: HandshakeScript;
  /** Called for every frame after the handshake; by default the test answers via next()/reply(). */
  onRequest?: (frame: JsonObject, conn: PeerConnection) => void;
  /** Listen on 127.0.0.1 (random port) instead of a Unix socket. */
  tcp?: boolean;
}

/** One accepted connection, seen from the server side. */
export class PeerConnection {
  /** Every frame received, the handshake first. */
  readonly frames: JsonObject[] = [];
  /** True once the client half-closed (a graceful end rather than a reset). */
  endedByClient = false;
  readonly closed: Promise<void>;
  private cursor = 0;
  private waiters: Array<() => void> = [];

  constructor(readonly socket: net.Socket) {
    this.closed = new Promise((resolve) => socket.once('close', () => resolve()));
    socket.on('end', () => {
      this.endedByClient = true;
    });
    socket.on('error', () => {
      // Resets are part of several scripts; 'close' reports them.
    });
  }

  /** Resolves when the connection has closed; rejects after timeoutMs. */
  async waitClosed(timeoutMs = 2_000): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`Connection still open after ${timeoutMs} ms`)), timeoutMs);
    });
    try {
      await Promise.race([this.closed, timeout]);
    } finally {
      clearTimeout(timer);
    }
  }

  /** Frames other than the handshake. */
  get requests(): JsonObject[] {
    return this.frames.slice(1);
  }

  /** The next frame not yet returned by next() (the handshake comes first); rejects after timeoutMs. */
  async next(timeoutMs = 2_000): Promise<JsonObject> {
    const deadline = Date.now() + timeoutMs;
    while (this.cursor >= this.frames.length) {
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`No frame arrived within ${timeoutMs} ms`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
    return this.frames[this.cursor++]!;
  }

  /** Resolves with no frame pending after `ms` of silence, or the frame that arrived meanwhile. */
  async nextWithin(ms: number): Promise<JsonObject | null> {
    try {
      return await this.next(ms);
    } catch {
      return null;
    }
  }

  send(frame: JsonObject): void {
    this.socket.write(encodeFrame(frame));
  }

  /** Success reply to `request`. */
  reply(request: JsonObject, data: JsonObject = {}): void {
    this.send({ v: request.v, id: request.id, ok: true, data });
  }

  /** Error reply to `request`. */
  fail(request: JsonObject, code: string, error: string, retryAfter?: number): void {
    this.send({ v: request.v, id: request.id, ok: false, code, error, ...(retryAfter !== undefined ? { retryAfter } : {}) });
  }

  /** Drops the connection abruptly. */
  destroy(): void {
    this.socket.destroy();
  }

  /** @internal */
  receive(frame: JsonObject): void {
    this.frames.push(frame);
    const waiters = this.waiters;
    this.waiters = [];
    for (const wake of waiters) wake();
  }
}

export class FrameServer {
  readonly connections: PeerConnection[] = [];
  private connectionWaiters: Array<() => void> = [];

  /** The TCP port when started with `tcp`. */
  port: number | undefined;

  private constructor(
    private readonly server: net.Server,
    readonly socketPath: string,
    private readonly dir: string,
  ) {}

  /** Listens on a fresh socket in a private temp directory (or on a loopback port). */
  static async start(options: FrameServerOptions = {}): Promise<FrameServer> {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cpx-'));
    const socketPath = path.join(dir, 's.sock');
    const server = net.createServer();
    const self = new FrameServer(server, socketPath, dir);
    server.on('connection', (socket: net.Socket) => self.accept(socket, options));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      if (options.tcp) server.listen(0, '127.0.0.1', () => resolve());
      else server.listen(socketPath, () => resolve());
    });
    if (options.tcp) self.port = (server.address() as net.AddressInfo).port;
    return self;
  }

  /** The n-th accepted connection (0-based), waiting for it to arrive. */
  async connection(n = 0, timeoutMs = 2_000): Promise<PeerConnection> {
    const deadline = Date.now() + timeoutMs;
    while (this.connections.length <= n) {
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`Connection #${n} did not arrive within ${timeoutMs} ms`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.connectionWaiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
    return this.connections[n]!;
  }

  async close(): Promise<void> {
    for (const conn of this.connections) conn.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
    fs.rmSync(this.dir, { recursive: true, force: true });
  }

  private accept(socket: net.Socket, options: FrameServerOptions): void {
    const conn = new PeerConnection(socket);
    this.connections.push(conn);
    const waiters = this.connectionWaiters;
    this.connectionWaiters = [];
    for (const wake of waiters) wake();

    const decoder = new FrameDecoder(MAX_FRAME_V1);
    let handshaken = false;
    socket.on('data', (chunk: Buffer) => {
      let frames: JsonObject[];
      try {
        frames = decoder.push(chunk);
      } catch {
        socket.destroy();
        return;
      }
      for (const frame of frames) {
        conn.receive(frame);
        if (handshaken) {
          options.onRequest?.(frame, conn);
          continue;
        }
        handshaken = true;
        const reply = (options.handshake ?? defaultHandshake(options.maxVersion ?? 2))(frame, conn);
        if (reply === null) continue;
        if (reply.ok === true && reply.v === 2) decoder.setMaxFrame(MAX_FRAME_V2);
        conn.send(reply);
      }
    });
  }
}

/** Negotiates like the real host (PROTOCOL.md §3), capped at `maxVersion`. */
export function defaultHandshake(maxVersion: 1 | 2): HandshakeScript {
  return (frame) => {
    const payload = (frame.payload ?? {}) as JsonObject;
    const negotiated = negotiateVersion(frame.v, payload.minVersion, payload.maxVersion);
    if (negotiated === null || frame.op !== 'handshake') {
      return { v: 2, op: 'handshake', ok: false, code: 'UNKNOWN_VERSION', error: 'Unsupported protocol version' };
    }
    const version = Math.min(negotiated, maxVersion);
    return { v: version, op: 'handshake', ok: true, data: { version } };
  };
}
