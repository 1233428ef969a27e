/**
 * The byte transport under a Connection (the reader/writer pair of vscode-jsonrpc's
 * createMessageConnection): a Unix or TCP socket, or an in-memory pair, run the same connection code.
 */
import type { Duplex } from 'node:stream';

export interface Transport {
  /** Starts delivering bytes and, once, the close. */
  start(onData: (chunk: Buffer) => void, onClose: () => void): void;
  /** True once nothing more can be written. */
  readonly closed: boolean;
  write(bytes: Buffer): void;
  /** Writes `bytes`, then closes once they are flushed. */
  end(bytes: Buffer): void;
  /** Stops reading (shutdown); writes still go out. */
  pause(): void;
  destroy(): void;
}

/** A transport over a stream socket (net.Socket, Unix or TCP). */
export function streamTransport(socket: Duplex): Transport {
  return {
    start(onData, onClose) {
      socket.on('data', (chunk: Buffer) => onData(chunk));
      socket.on('error', () => socket.destroy());
      socket.on('close', onClose);
    },
    get closed() {
      return socket.destroyed || !socket.writable;
    },
    write: (bytes) => void socket.write(bytes),
    end: (bytes) => void socket.end(bytes),
    pause: () => void socket.pause(),
    destroy: () => void socket.destroy(),
  };
}

/** Two transports wired to each other in memory; bytes arrive asynchronously, as on a socket. */
export function memoryTransportPair(): [Transport, Transport] {
  const a = new MemoryEnd();
  const b = new MemoryEnd();
  a.peer = b;
  b.peer = a;
  return [a, b];
}

class MemoryEnd implements Transport {
  peer!: MemoryEnd;
  private onData: ((chunk: Buffer) => void) | null = null;
  private onClose: (() => void) | null = null;
  private isClosed = false;
  private paused = false;
  private readonly queued: Buffer[] = [];

  start(onData: (chunk: Buffer) => void, onClose: () => void): void {
    this.onData = onData;
    this.onClose = onClose;
    this.flush();
  }

  get closed(): boolean {
    return this.isClosed;
  }

  write(bytes: Buffer): void {
    if (this.isClosed) return;
    const copy = Buffer.from(bytes);
    setImmediate(() => this.peer.receive(copy));
  }

  end(bytes: Buffer): void {
    this.write(bytes);
    setImmediate(() => this.destroy());
  }

  pause(): void {
    this.paused = true;
  }

  destroy(): void {
    if (this.isClosed) return;
    this.isClosed = true;
    this.onClose?.();
    this.peer.destroy();
  }

  private receive(chunk: Buffer): void {
    if (this.isClosed) return;
    this.queued.push(chunk);
    this.flush();
  }

  private flush(): void {
    while (this.onData && !this.paused && this.queued.length > 0) this.onData(this.queued.shift()!);
  }
}
