import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { decodeBody, encodeFrame, FrameDecoder, FrameError, MAX_FRAME_V1, MAX_FRAME_V2 } from '../../src/protocol/framing.js';

function header(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n, 0);
  return b;
}

describe('frame encoding', () => {
  it('writes a 4-byte big-endian length followed by UTF-8 JSON', () => {
    const frame = encodeFrame({ a: 'é' });
    const body = Buffer.from('{"a":"é"}', 'utf8');
    expect(frame.readUInt32BE(0)).toBe(body.length);
    expect(frame.subarray(4).equals(body)).toBe(true);
  });

  it('round-trips objects split into arbitrary chunks', () => {
    fc.assert(
      fc.property(fc.array(fc.dictionary(fc.string(), fc.jsonValue()), { minLength: 1, maxLength: 5 }), fc.integer({ min: 1, max: 7 }), (objects, step) => {
        const stream = Buffer.concat(objects.map((o) => encodeFrame(o as Record<string, unknown>)));
        const decoder = new FrameDecoder(MAX_FRAME_V2);
        const out: unknown[] = [];
        for (let i = 0; i < stream.length; i += step) out.push(...decoder.push(stream.subarray(i, i + step)));
        expect(out).toEqual(objects.map((o) => JSON.parse(JSON.stringify(o))));
        expect(decoder.pendingBytes).toBe(0);
      }),
    );
  });
});

describe('frame decoding limits', () => {
  it('rejects a length over the limit before any body arrives', () => {
    const decoder = new FrameDecoder(MAX_FRAME_V1);
    expect(() => decoder.push(header(MAX_FRAME_V1 + 1))).toThrow(FrameError);
  });

  it('accepts a body exactly at the limit', () => {
    const body = Buffer.from(JSON.stringify({ p: 'x'.repeat(MAX_FRAME_V1 - 8) }));
    expect(body.length).toBe(MAX_FRAME_V1);
    const frames = new FrameDecoder(MAX_FRAME_V1).push(Buffer.concat([header(body.length), body]));
    expect(frames).toHaveLength(1);
  });

  it('holds 1-3 stray header bytes as pending', () => {
    for (const n of [1, 2, 3]) {
      const decoder = new FrameDecoder();
      expect(decoder.push(Buffer.alloc(n))).toEqual([]);
      expect(decoder.pendingBytes).toBe(n);
    }
  });

  it('rejects invalid UTF-8, invalid JSON and non-object values', () => {
    const reasons = [Buffer.from([0xff, 0xfe]), Buffer.from('{"a":'), Buffer.from('[1,2]'), Buffer.from('null'), Buffer.from('"str"'), Buffer.from('42')].map((body) => {
      try {
        decodeBody(body);
        return 'accepted';
      } catch (err) {
        return (err as FrameError).reason;
      }
    });
    expect(reasons).toEqual(['invalid_utf8', 'invalid_json', 'not_object', 'not_object', 'not_object', 'not_object']);
  });

  it('raises the limit after setMaxFrame', () => {
    const decoder = new FrameDecoder(MAX_FRAME_V1);
    decoder.setMaxFrame(MAX_FRAME_V2);
    expect(decoder.push(header(MAX_FRAME_V2))).toEqual([]);
    expect(() => new FrameDecoder(MAX_FRAME_V2).push(header(MAX_FRAME_V2 + 1))).toThrow(/exceeds/);
  });
});
