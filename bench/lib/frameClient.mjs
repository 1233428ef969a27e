// A minimal protocol client for the benchmarks: one socket, handshake, request/reply by id. It uses
// the project's framing, as the floor server does, so both sides of every ratio pay the same codec.
import net from 'node:net';
import { encodeFrame, FrameDecoder } from '../../dist/protocol/framing.js';

/** Connects to a Unix socket and completes the v2 handshake. */
export async function connectClient(socketPath, { capabilityToken } = {}) {
  const sock = net.connect(socketPath);
  await new Promise((resolve, reject) => {
    sock.once('connect', resolve);
    sock.once('error', reject);
  });
  const decoder = new FrameDecoder(4 * 1024 * 1024);
  const waiting = new Map();
  let handshakeWaiter = null;
  sock.on('data', (chunk) => {
    for (const frame of decoder.push(chunk)) {
      if (frame.op === 'handshake') handshakeWaiter?.(frame);
      else {
        const done = waiting.get(frame.id);
        waiting.delete(frame.id);
        done?.(frame);
      }
    }
  });
  let closed = null;
  sock.on('close', () => {
    closed = new Error('connection closed');
    for (const done of waiting.values()) done({ ok: false, code: 'CLOSED' });
    waiting.clear();
  });
  const hello = await new Promise((resolve) => {
    handshakeWaiter = resolve;
    sock.write(encodeFrame({ v: 2, op: 'handshake', payload: { minVersion: 1, maxVersion: 2, ...(capabilityToken && { capabilityToken }) } }));
  });
  if (hello.ok !== true) throw new Error(`handshake refused: ${hello.code}`);
  let seq = 0;
  return {
    /** One request; resolves with the reply frame. */
    request(op, payload) {
      if (closed) return Promise.reject(closed);
      const id = `q${seq++}`;
      return new Promise((resolve) => {
        waiting.set(id, resolve);
        sock.write(encodeFrame({ v: 2, id, op, payload }));
      });
    },
    close: () => sock.destroy(),
  };
}
