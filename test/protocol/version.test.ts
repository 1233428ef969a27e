import { describe, expect, it } from 'vitest';
import { negotiateVersion } from '../../src/protocol/version.js';

describe('version negotiation (PROTOCOL.md §3)', () => {
  it.each([
    [2, 1, 1, 1],
    [2, 1, 2, 2],
    [2, 2, 2, 2],
    [1, 1, 5, 2],
    [2, 0, 1, 1],
    // 3..4 does not overlap 1..2: falls back to the frame's v
    [2, 3, 4, 2],
    [3, 3, 4, null],
    // inverted range: falls back to v
    [1, 2, 1, 1],
    [undefined, 2, 1, null],
    // bare v
    [1, undefined, undefined, 1],
    [2, undefined, undefined, 2],
    ['2', undefined, undefined, null],
    [1.5, undefined, undefined, null],
    [2, 1.5, 2, 2],
  ])('v=%s min=%s max=%s → %s', (v, min, max, expected) => {
    expect(negotiateVersion(v, min, max)).toBe(expected);
  });
});
