/** The runtime grant registry (PROTOCOL.md §7, §11): seeded by the policy, changed while the daemon runs. */
import { describe, expect, it } from 'vitest';
import { hashCapability, newCapability } from '../../src/auth/capability.js';
import { GrantRegistry, MAIN_LISTENER, TCP_LISTENER } from '../../src/auth/GrantRegistry.js';
import { EMPTY_GRANT, FULL_GRANT, type Grant } from '../../src/auth/grants.js';
import { OPEN_POLICY, parsePolicy } from '../../src/auth/policy.js';

const grant = (id: string): Grant => ({ id, providers: { anthropic: '*' }, keys: [], ops: ['read'] });

describe('GrantRegistry', () => {
  it('from the open policy: bare main-socket connections get the full grant, TCP needs a capability', () => {
    const registry = GrantRegistry.fromPolicy(OPEN_POLICY);
    expect(registry.authorize(MAIN_LISTENER, undefined)).toBe(FULL_GRANT);
    expect(registry.authorize(TCP_LISTENER, undefined)).toBeNull();
  });

  it('from a policy: its default grant and its capabilities', () => {
    const token = newCapability();
    const policy = parsePolicy(JSON.stringify({ capabilities: [{ id: 'ci', tokenSha256: hashCapability(token).toString('hex'), ops: ['read'] }] }));
    const registry = GrantRegistry.fromPolicy(policy);
    expect(registry.authorize(MAIN_LISTENER, undefined)).toBe(EMPTY_GRANT);
    expect(registry.authorize(MAIN_LISTENER, token)?.id).toBe('ci');
    expect(registry.authorize(TCP_LISTENER, token)?.id).toBe('ci');
    expect(registry.authorize(TCP_LISTENER, newCapability())).toBeNull();
    expect(registry.authorize(TCP_LISTENER, token.toUpperCase())).toBeNull(); // not the 64-lowercase-hex form
    expect(registry.list().map((g) => [g.grant.id, g.hasCapability, g.listeners])).toEqual([
      ['none', false, [MAIN_LISTENER]],
      ['ci', true, []],
    ]);
  });

  it('grants added at run time: a capability, an exclusive listener, and revocation', () => {
    const registry = GrantRegistry.fromPolicy(OPEN_POLICY);
    const a = newCapability();
    const b = newCapability();
    registry.add(grant('run-a'), { capabilitySha256: hashCapability(a), label: 'agent a' });
    registry.add(grant('run-b'), { capabilitySha256: hashCapability(b) });
    registry.bind('sandbox-a', 'run-a', { exclusive: true });
    // Connecting to the sandbox socket is the capability...
    expect(registry.authorize('sandbox-a', undefined)?.id).toBe('run-a');
    // ...and a presented capability there must be that grant's own.
    expect(registry.authorize('sandbox-a', a)?.id).toBe('run-a');
    expect(registry.authorize('sandbox-a', b)).toBeNull();
    expect(() => registry.add(grant('run-a'))).toThrow(/already exists/);
    expect(() => registry.bind('sandbox-a', 'run-b', { exclusive: true })).toThrow(/already bound/);

    const revoked: string[] = [];
    registry.onRevoke((g) => revoked.push(g.id));
    expect(registry.revoke('run-a')).toBe(true);
    expect(registry.revoke('run-a')).toBe(false);
    expect(revoked).toEqual(['run-a']);
    expect(registry.authorize('sandbox-a', undefined)).toBeNull();
    expect(registry.authorize(MAIN_LISTENER, a)).toBeNull();
    expect(registry.authorize(MAIN_LISTENER, b)?.id).toBe('run-b');
    // The sandbox listener of a revoked grant stays exclusive: another grant's capability is no key to it.
    expect(registry.authorize('sandbox-a', b)).toBeNull();
    registry.unbind('sandbox-a');
    expect(registry.authorize('sandbox-a', b)).toBeNull();
  });

  it('a listener it was never told about refuses everything, capabilities included', () => {
    const registry = GrantRegistry.fromPolicy(OPEN_POLICY);
    const token = newCapability();
    registry.add(grant('cap'), { capabilitySha256: hashCapability(token) });
    expect(registry.authorize('no-such-listener', undefined)).toBeNull();
    expect(registry.authorize('no-such-listener', token)).toBeNull();
  });

  it('refuses a capability hash that is not a 32-byte SHA-256 (it would break the constant-time compare)', () => {
    const registry = new GrantRegistry();
    expect(() => registry.add(grant('bad'), { capabilitySha256: Buffer.from(hashCapability(newCapability()).toString('hex')) })).toThrow(/32-byte/);
    expect(registry.list()).toEqual([]);
  });

  it('a grant past its deadline selects nothing and is not listed', () => {
    let now = 1_000;
    const registry = new GrantRegistry(() => now);
    const token = newCapability();
    registry.add(grant('ttl'), { capabilitySha256: hashCapability(token), expires: 2_000 });
    registry.bind(TCP_LISTENER, null, { exclusive: false });
    expect(registry.authorize(TCP_LISTENER, token)?.id).toBe('ttl');
    now = 2_000;
    expect(registry.authorize(TCP_LISTENER, token)).toBeNull();
    expect(registry.list()).toEqual([]);
    registry.close();
  });

  it('revokes a grant at its deadline by itself', async () => {
    const registry = new GrantRegistry();
    const revoked = new Promise<string>((resolve) => registry.onRevoke((g) => resolve(g.id)));
    registry.add(grant('short'), { expires: Date.now() + 50 });
    expect(await revoked).toBe('short');
    expect(registry.get('short')).toBeUndefined();
  });
});
