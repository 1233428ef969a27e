/**
 * Property tests of the token model (PROTOCOL.md §5): whatever a stored token, a provider's public
 * field list or a client's save_token holds, no secret field goes out and no host-only field comes in.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { acceptIncoming, HOST_ONLY_TOKEN_FIELDS, mergeToken, sanitizeToken, SECRET_TOKEN_FIELDS } from '../../src/oauth/token.js';
import type { StoredToken } from '../../src/store/types.js';

const FORBIDDEN_OUT = [...SECRET_TOKEN_FIELDS, ...HOST_ONLY_TOKEN_FIELDS];
const FORBIDDEN_IN = [...SECRET_TOKEN_FIELDS, ...HOST_ONLY_TOKEN_FIELDS];
const fieldName = fc.oneof(fc.constantFrom(...FORBIDDEN_OUT, 'access_token', 'expiry', 'token_type', 'scope', 'account_id', '__proto__', 'constructor'), fc.string({ maxLength: 12 }));
const anyValue = fc.oneof(fc.string(), fc.integer(), fc.double(), fc.boolean(), fc.constant(null), fc.constant(undefined), fc.object({ maxDepth: 2 }), fc.array(fc.string()));
const extraFields = fc.dictionary(fieldName, anyValue, { maxKeys: 10 });
const storedToken: fc.Arbitrary<StoredToken> = fc
  .record({ access_token: fc.string({ minLength: 1 }), expiry: fc.integer(), token_type: fc.constantFrom('Bearer', 'bearer', 'mac'), refresh_token: fc.string({ minLength: 1 }), id_token: fc.string() })
  .chain((base) => extraFields.map((extra) => ({ ...extra, ...base }) as StoredToken));
const publicFields = fc.array(fieldName, { maxLength: 8 });

describe('token model properties', () => {
  it('sanitizeToken never yields a secret or host-only field, nor a non-primitive value', () => {
    fc.assert(
      fc.property(storedToken, publicFields, (token, fields) => {
        const out = sanitizeToken(token, fields);
        for (const f of FORBIDDEN_OUT) expect(Object.hasOwn(out, f)).toBe(false);
        for (const [k, v] of Object.entries(out)) {
          expect(v === null || typeof v === 'object').toBe(false);
          // Only standard fields and declared ones.
          expect(['access_token', 'expiry', 'token_type', 'scope', ...fields]).toContain(k);
        }
        expect(Object.getPrototypeOf(out)).toBe(Object.prototype);
      }),
      { numRuns: 500 },
    );
  });

  it('acceptIncoming never lets a secret, host-only or undeclared field in', () => {
    fc.assert(
      fc.property(extraFields, publicFields, (incoming, fields) => {
        const accepted = acceptIncoming(incoming, fields);
        for (const f of FORBIDDEN_IN) expect(Object.hasOwn(accepted, f)).toBe(false);
        for (const [k, v] of Object.entries(accepted)) {
          expect(['access_token', 'expiry', 'token_type', 'scope', ...fields]).toContain(k);
          expect(v === null || v === undefined || typeof v === 'object').toBe(false);
        }
      }),
      { numRuns: 500 },
    );
  });

  it('a client save merged into a stored token keeps the host refresh token and host bookkeeping', () => {
    fc.assert(
      fc.property(storedToken, fc.integer(), extraFields, publicFields, (stored, stamp, incoming, fields) => {
        const host = { ...stored, refresh_attempted_at: stamp };
        const merged = mergeToken(host, acceptIncoming({ access_token: 'at-new', expiry: 1, ...incoming }, fields));
        expect(merged.refresh_token).toBe(stored.refresh_token);
        expect(merged.id_token).toBe(stored.id_token);
        expect(merged.refresh_attempted_at).toBe(stamp);
      }),
      { numRuns: 500 },
    );
  });

  it('merge: every non-null incoming field wins, the rest is kept, refresh_token only by a non-empty string', () => {
    fc.assert(
      fc.property(storedToken, extraFields, (stored, incoming) => {
        const patch = { ...incoming } as Partial<StoredToken>;
        let merged: StoredToken;
        try {
          merged = mergeToken(stored, patch);
        } catch (err) {
          // Only a patch that replaces access_token or expiry with the wrong type may be refused.
          expect(err).toBeInstanceOf(TypeError);
          return;
        }
        const unsafe = new Set(['__proto__', 'constructor', 'prototype']);
        for (const [k, v] of Object.entries(patch)) {
          if (unsafe.has(k) || k === 'token_type') continue;
          if (v === undefined || v === null) expect(merged[k]).toEqual(stored[k]);
          else if (k === 'refresh_token' && (typeof v !== 'string' || v.length === 0)) expect(merged.refresh_token).toBe(stored.refresh_token);
          else expect(merged[k]).toEqual(v);
        }
        for (const [k, v] of Object.entries(stored)) if (!Object.hasOwn(patch, k) && !unsafe.has(k) && k !== 'token_type') expect(merged[k]).toEqual(v);
        expect(Object.getPrototypeOf(merged)).toBe(Object.prototype);
      }),
      { numRuns: 500 },
    );
  });
});
