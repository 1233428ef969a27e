/**
 * Per-grant limits (policy file `limits`): a grant's own in-flight and per-second limits replace the
 * daemon's for its connections, and only for them.
 */
import { createHash } from 'node:crypto';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { parsePolicy } from '../../src/auth/policy.js';
import { startDaemon, type Daemon } from '../../src/server/daemon.js';
import { MemoryStore } from '../../src/store/memory.js';
import type { StoredToken } from '../../src/store/types.js';
import { sampleToken, tempDir } from '../helpers/daemon.js';
import { RawClient } from '../helpers/rawClient.js';

const CAPABILITY = '6f1e0b9a4c2d4e8f9a7b3c5d1e2f4a6b7c8d9e0f1a2b3c4d5e6f708192a3b4c5';

/** A store whose reads of provider "gated" wait until the test opens the gate: in flight for as long as the test says. */
class GatedStore extends MemoryStore {
  private open!: () => void;
  private readonly gate = new Promise<void>((resolve) => (this.open = resolve));
  private reads = 0;

  release(): void {
    this.open();
  }

  // Never cached by the daemon, so every get_token reaches getToken.
  override changeStamp(): string {
    return `gated-${++this.reads}`;
  }

  override async getToken(provider: string, bucket: string): Promise<StoredToken | null> {
    if (provider === 'gated') await this.gate;
    return super.getToken(provider, bucket);
  }
}

function policy(limits: Record<string, number>, defaultLimits?: Record<string, number>) {
  return parsePolicy(
    JSON.stringify({
      default: { providers: '*', keys: '*', ops: ['read'], ...(defaultLimits && { limits: defaultLimits }) },
      capabilities: [{ id: 'ci', tokenSha256: createHash('sha256').update(CAPABILITY).digest('hex'), providers: '*', keys: '*', ops: ['read'], limits }],
    }),
  );
}

let daemon: Daemon | null = null;
let store: GatedStore | null = null;
afterEach(async () => {
  store?.release();
  await daemon?.stop();
  daemon = null;
  store = null;
});

async function start(p: ReturnType<typeof policy>, now?: () => number): Promise<Daemon> {
  store = new GatedStore();
  await store.saveToken('gated', 'default', sampleToken());
  await store.saveToken('anthropic', 'default', sampleToken());
  daemon = await startDaemon({ tokens: store, keys: store, socketPath: path.join(tempDir(), 'l.sock'), audit: 'off', policy: p, ...(now && { now }) });
  return daemon;
}

describe('policy file limits', () => {
  it('accepts inFlight and perSecond on the default grant and on capabilities', () => {
    const p = policy({ inFlight: 64, perSecond: 5000 }, { perSecond: 10 });
    expect(p.capabilities[0]!.grant.limits).toEqual({ inFlight: 64, perSecond: 5000 });
    expect(p.defaultGrant.limits).toEqual({ perSecond: 10 });
  });

  it.each([
    [{ inFlight: 0 }, /limits\.inFlight/],
    [{ inFlight: 5000 }, /limits\.inFlight/],
    [{ perSecond: 1.5 }, /limits\.perSecond/],
    [{ perSecond: -1 }, /limits\.perSecond/],
    [{ burst: 3 }, /burst/],
  ])('refuses %j with an error naming the field', (limits, message) => {
    expect(() => policy(limits as Record<string, number>)).toThrow(message);
  });
});

describe('a grant with its own limits', () => {
  it('caps requests in flight at the grant\'s inFlight, below the daemon default, for that grant only', async () => {
    const d = await start(policy({ inFlight: 2 }));
    const capped = await RawClient.ready(d.socketPath, { minVersion: 1, maxVersion: 2, capabilityToken: CAPABILITY });
    for (const id of ['a', 'b', 'c']) capped.send({ v: 2, id, op: 'get_token', payload: { provider: 'gated' } });
    expect(await capped.replyFor('c')).toMatchObject({ ok: false, code: 'RESOURCE_EXHAUSTED', error: 'Too many requests in flight (limit 2)' });
    // The default grant keeps the daemon's 16.
    const plain = await RawClient.ready(d.socketPath);
    for (let i = 0; i < 3; i++) plain.send({ v: 2, id: `p${i}`, op: 'get_token', payload: { provider: 'gated' } });
    expect(await plain.request('list_providers', {}, 'still-room')).toMatchObject({ ok: true });
    store!.release();
    for (const id of ['a', 'b', 'p0', 'p1', 'p2']) expect(await (id.startsWith('p') ? plain : capped).replyFor(id)).toMatchObject({ ok: true });
    capped.close();
    plain.close();
  });

  it('raises the in-flight limit above the daemon default', async () => {
    const d = await start(policy({ inFlight: 40 }));
    const c = await RawClient.ready(d.socketPath, { minVersion: 1, maxVersion: 2, capabilityToken: CAPABILITY });
    const ids = Array.from({ length: 40 }, (_, i) => `g${i}`);
    for (const id of ids) c.send({ v: 2, id, op: 'get_token', payload: { provider: 'gated' } });
    // All 40 wait at the gate (past the daemon's 16); the 41st meets the grant's own limit.
    expect(await c.request('list_providers', {}, 'probe')).toMatchObject({ ok: false, code: 'RESOURCE_EXHAUSTED' });
    store!.release();
    for (const id of ids) expect(await c.replyFor(id)).toMatchObject({ ok: true });
    c.close();
  });

  it('rate-limits at the grant\'s perSecond; other grants keep the daemon\'s', async () => {
    // The clock stands still, so every request falls within one second however slow the machine.
    const d = await start(policy({ perSecond: 3 }), () => 1_000_000);
    const capped = await RawClient.ready(d.socketPath, { minVersion: 1, maxVersion: 2, capabilityToken: CAPABILITY });
    for (let i = 0; i < 3; i++) expect(await capped.request('get_token', { provider: 'anthropic' }, `ok${i}`)).toMatchObject({ ok: true });
    expect(await capped.request('get_token', { provider: 'anthropic' }, 'over')).toEqual({ v: 2, id: 'over', ok: false, code: 'RATE_LIMITED', error: 'Too many requests', retryAfter: 1 });
    const plain = await RawClient.ready(d.socketPath);
    for (let i = 0; i < 10; i++) expect(await plain.request('get_token', { provider: 'anthropic' }, `d${i}`)).toMatchObject({ ok: true });
    capped.close();
    plain.close();
  });
});
