/**
 * Length-prefixed JSON framing (PROTOCOL.md §2): a 4-byte unsigned big-endian length, then that
 * many bytes of UTF-8 JSON whose value must be an object. Pure: no sockets, no timers.
 */

export const HEADER_BYTES = 4;
/** Frame limit before the handshake and while version 1 is negotiated. */
export const MAX_FRAME_V1 = 65_536;
/** Frame limit once version 2 is negotiated. */
export const MAX_FRAME_V2 = 4 * 1024 * 1024;

export type JsonObject = Record<string, unknown>;

/** Why a stream can no longer be decoded; the connection must be closed. */
export class FrameError extends Error {
  override readonly name = 'FrameError';
  constructor(
    readonly reason: 'oversize' | 'invalid_utf8' | 'invalid_json' | 'not_object',
    message: string,
  ) {
    super(message);
  }
}

/** Encodes one value as a single frame buffer (header + body), ready for one write. */
export function encodeFrame(value: JsonObject): Buffer {
  const json = JSON.stringify(value);
  // Sized first and written in place: one buffer per frame, no intermediate copy.
  const length = Buffer.byteLength(json, 'utf8');
  const frame = Buffer.allocUnsafe(HEADER_BYTES + length);
  frame.writeUInt32BE(length, 0);
  frame.write(json, HEADER_BYTES, 'utf8');
  return frame;
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

/** Parses one frame body; throws FrameError for anything that is not a UTF-8 JSON object. */
export function decodeBody(body: Uint8Array): JsonObject {
  let text: string;
  try {
    text = utf8.decode(body);
  } catch {
    throw new FrameError('invalid_utf8', 'Frame body is not valid UTF-8');
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new FrameError('invalid_json', 'Frame body is not valid JSON');
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw new FrameError('not_object', 'Frame body is not a JSON object');
  }
  return value as JsonObject;
}

/**
 * Incremental decoder. Feed it chunks as they arrive; it returns every complete frame and keeps
 * the remainder. The length is checked against the current limit before any body is buffered.
 */
export class FrameDecoder {
  private chunks: Buffer[] = [];
  private buffered = 0;

  constructor(private maxFrame: number = MAX_FRAME_V1) {}

  /** Changes the size limit for frames not yet decoded (after version negotiation). */
  setMaxFrame(max: number): void {
    this.maxFrame = max;
  }

  /** Bytes of an incomplete frame currently held (0 when the stream sits on a frame boundary). */
  get pendingBytes(): number {
    return this.buffered;
  }

  /** Consumes `chunk` and returns the complete frames it finished. Throws FrameError on bad input. */
  push(chunk: Buffer): JsonObject[] {
    if (chunk.length === 0) return [];
    this.chunks.push(chunk);
    this.buffered += chunk.length;
    const frames: JsonObject[] = [];
    while (this.buffered >= HEADER_BYTES) {
      const header = this.peek(HEADER_BYTES);
      const length = header.readUInt32BE(0);
      if (length > this.maxFrame) {
        throw new FrameError('oversize', `Frame of ${length} bytes exceeds the ${this.maxFrame}-byte limit`);
      }
      if (this.buffered < HEADER_BYTES + length) break;
      const whole = this.take(HEADER_BYTES + length);
      frames.push(decodeBody(whole.subarray(HEADER_BYTES)));
    }
    return frames;
  }

  private peek(n: number): Buffer {
    const first = this.chunks[0]!;
    if (first.length >= n) return first.subarray(0, n);
    this.chunks = [Buffer.concat(this.chunks)];
    return this.chunks[0]!.subarray(0, n);
  }

  private take(n: number): Buffer {
    const all = this.chunks.length === 1 ? this.chunks[0]! : Buffer.concat(this.chunks);
    const out = all.subarray(0, n);
    const rest = all.subarray(n);
    this.chunks = rest.length > 0 ? [rest] : [];
    this.buffered = rest.length;
    return out;
  }
}
