/**
 * A byte-level test peer: writes arbitrary bytes, decodes replies with the project's decoder, and
 * logs every byte it ever received so tests can assert that no secret crossed the socket.
 */
import net from 'node:net';
import { encodeFrame, FrameDecoder, type JsonObject, MAX_FRAME_V2 } from '../../src/protocol/framing.js';

/** Every byte any RawClient received in this test file. */
export const receivedBytes: Buffer[] = [];

export function allReceivedText(): string {
  return Buffer.concat(receivedBytes).toString('latin1');
}

export class RawClient {
  readonly frames: JsonObject[] = [];
  private readonly decoder = new FrameDecoder(MAX_FRAME_V2 * 2);
  private waiters: Array<() => void> = [];
  closed = false;
  readonly closedPromise: Promise<void>;

  private constructor(readonly socket: net.Socket) {
    socket.on('data', (chunk: Buffer) => {
      receivedBytes.push(Buffer.from(chunk));
      for (const frame of this.decoder.push(chunk)) this.frames.push(frame);
      this.wake();
    });
    this.closedPromise = new Promise((resolve) =>
      socket.on('close', () => {
        this.closed = true;
        this.wake();
        resolve();
      }),
    );
    socket.on('error', () => {});
  }

  static connect(target: string | { host: string; port: number }): Promise<RawClient> {
    return new Promise((resolve, reject) => {
      const socket = typeof target === 'string' ? net.connect(target) : net.connect(target.port, target.host);
      socket.once('connect', () => resolve(new RawClient(socket)));
      socket.once('error', reject);
    });
  }

  /** Connects and completes a handshake; returns the client and the negotiated version. */
  static async ready(socketPath: string, payload: Record<string, unknown> = { minVersion: 1, maxVersion: 2 }, v = 2): Promise<RawClient> {
    const client = await RawClient.connect(socketPath);
    client.send({ v, op: 'handshake', payload });
    const reply = await client.next();
    if (reply.ok !== true) throw new Error(`handshake failed: ${JSON.stringify(reply)}`);
    return client;
  }

  private wake(): void {
    for (const w of this.waiters.splice(0)) w();
  }

  send(frame: JsonObject): void {
    this.socket.write(encodeFrame(frame));
  }

  sendRaw(bytes: Buffer | Uint8Array): void {
    this.socket.write(bytes);
  }

  private cursor = 0;

  /** The next unread frame; rejects if the connection closes first or after `timeoutMs`. */
  async next(timeoutMs = 5_000): Promise<JsonObject> {
    const deadline = Date.now() + timeoutMs;
    while (this.cursor >= this.frames.length) {
      if (this.closed) throw new Error('connection closed before a frame arrived');
      const left = deadline - Date.now();
      if (left <= 0) throw new Error('timed out waiting for a frame');
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left);
        this.waiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
    return this.frames[this.cursor++]!;
  }

  /** Sends a request and waits for the reply with the same id (other frames stay queued). */
  async request(op: string, payload: Record<string, unknown> = {}, id: string = `r${Math.random().toString(16).slice(2)}`): Promise<JsonObject> {
    this.send({ v: 2, id, op, payload });
    return this.replyFor(id);
  }

  async replyFor(id: string, timeoutMs = 5_000): Promise<JsonObject> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const found = this.frames.find((f) => f.id === id);
      if (found) return found;
      if (this.closed) throw new Error(`connection closed before reply ${id}`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out waiting for reply ${id}`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left);
        this.waiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
  }

  /** Resolves true if the server closes the connection within `timeoutMs`. */
  async waitClosed(timeoutMs = 8_000): Promise<boolean> {
    if (this.closed) return true;
    return Promise.race([this.closedPromise.then(() => true), new Promise<boolean>((r) => setTimeout(() => r(false), timeoutMs))]);
  }

  close(): void {
    this.socket.destroy();
  }
}
