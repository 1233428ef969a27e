/** The real outside world for flows and refreshes: one definition of the defaults. */
import { randomBytes } from 'node:crypto';
import type { FlowDeps } from './flowTypes.js';

/** Per upstream HTTP call (PROTOCOL.md §4). */
export const UPSTREAM_TIMEOUT_MS = 15_000;

/** Global fetch, the given clock (default Date.now), crypto randomness and the 15 s HTTP limit. */
export function defaultFlowDeps(overrides: Partial<FlowDeps> = {}): FlowDeps {
  return {
    fetch: globalThis.fetch,
    now: Date.now,
    randomBytes: (n) => randomBytes(n),
    httpTimeoutMs: UPSTREAM_TIMEOUT_MS,
    ...overrides,
  };
}
