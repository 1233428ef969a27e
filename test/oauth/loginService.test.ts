/** The login service's session bookkeeping around oauth_initiate, with a scripted provider adapter. */
import { describe, expect, it } from 'vitest';
import { BucketUsage } from '../../src/handlers/bucketUsage.js';
import type { HandlerContext } from '../../src/handlers/context.js';
import { createLoginService } from '../../src/handlers/login.js';
import { FULL_GRANT } from '../../src/auth/grants.js';
import { TokenService } from '../../src/oauth/TokenService.js';
import { MemoryStore } from '../../src/store/memory.js';
import { scriptedDeviceProvider } from '../helpers/scriptedProvider.js';

/** A device-code provider whose start() takes `delayMs`; records every flow it started and cancelled. */
const slowProvider = (delayMs: number) => scriptedDeviceProvider({ name: 'slow', startDelayMs: delayMs });

function context(signal: AbortSignal): HandlerContext {
  const store = new MemoryStore();
  return { conn: 1, tokens: new TokenService(store), keys: store, grant: FULL_GRANT, peer: { uid: 1000, gid: 1000 }, usage: new BucketUsage(), refresher: null, publicFields: () => [], signal };
}

describe('oauth_initiate session bookkeeping', () => {
  it('a request cancelled (or timed out) while the flow starts leaves no orphan session behind', async () => {
    const { registry, started } = slowProvider(100);
    const service = createLoginService({ registry });
    try {
      const aborter = new AbortController();
      const initiating = service.initiate(context(aborter.signal), { provider: 'slow' });
      setTimeout(() => aborter.abort(), 20);
      await expect(initiating).rejects.toMatchObject({ code: 'CANCELLED' });
      expect(service.sessions.size).toBe(0);
      expect(started).toEqual([{ cancelled: true }]);
    } finally {
      await service.shutdown();
    }
  });

  it('concurrent initiates cannot open more sessions than maxPerOwner', async () => {
    const { registry, started } = slowProvider(30);
    const service = createLoginService({ registry, maxPerOwner: 2 });
    try {
      const ctx = context(new AbortController().signal);
      const results = await Promise.allSettled([1, 2, 3].map(() => service.initiate(ctx, { provider: 'slow' })));
      expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(2);
      expect(results.filter((r) => r.status === 'rejected').map((r) => (r as PromiseRejectedResult).reason)).toEqual([
        expect.objectContaining({ code: 'RESOURCE_EXHAUSTED' }),
      ]);
      expect(service.sessions.size).toBe(2);
      expect(started.filter((s) => s.cancelled)).toHaveLength(1);
    } finally {
      await service.shutdown();
    }
  });
});
