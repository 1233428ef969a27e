/**
 * The daemon's grants at run time (PROTOCOL.md §7, §11): the source of truth for "which grant does
 * this connection get". The policy file only seeds it; `credproxy run` adds and revokes grants while
 * the daemon runs. Capabilities are kept as SHA-256 hashes and looked up in constant time.
 */
import { timingSafeEqual } from 'node:crypto';
import { hashCapability, isCapabilityToken } from './capability.js';
import type { Grant } from './grants.js';
import type { Policy } from './policy.js';

export interface GrantInfo {
  grant: Grant;
  label?: string;
  /** Epoch ms. */
  created: number;
  /** Epoch ms; absent = until revoked. */
  expires?: number;
  /** Listeners bound to this grant. */
  listeners: string[];
  /** Whether a capability token selects it. */
  hasCapability: boolean;
}

export interface AddGrantOptions {
  label?: string;
  /** SHA-256 of the capability token that selects this grant. */
  capabilitySha256?: Buffer;
  expires?: number;
}

interface Entry {
  info: Omit<GrantInfo, 'listeners' | 'hasCapability'>;
  capability: Buffer | null;
}

interface Binding {
  /** The grant of bare connections; null = they get nothing (the TCP listener). */
  grantId: string | null;
  /** A sandbox socket: connecting is the capability, and a presented capability must be this grant's. */
  exclusive: boolean;
}

/** The longest delay a Node timer takes (about 24.8 days); later deadlines are re-armed. */
const MAX_TIMER_MS = 2 ** 31 - 1;

/** Names of the daemon's built-in listeners. */
export const MAIN_LISTENER = 'main';
export const TCP_LISTENER = 'tcp';

export class GrantRegistry {
  private readonly entries = new Map<string, Entry>();
  private readonly bindings = new Map<string, Binding>();
  private readonly revokeListeners = new Set<(grant: Grant) => void>();
  private readonly deadlines = new Map<string, NodeJS.Timeout>();

  constructor(private readonly now: () => number = Date.now) {}

  /** Seeds a registry from a policy: its default grant serves bare connections of the main socket. */
  static fromPolicy(policy: Policy, now: () => number = Date.now): GrantRegistry {
    const registry = new GrantRegistry(now);
    registry.add(policy.defaultGrant);
    registry.bind(MAIN_LISTENER, policy.defaultGrant.id, { exclusive: false });
    registry.bind(TCP_LISTENER, null, { exclusive: false });
    for (const cap of policy.capabilities) registry.add(cap.grant, { capabilitySha256: cap.tokenSha256 });
    return registry;
  }

  /** Adds a grant; its id must be new. A grant with `expires` is revoked at that moment. */
  add(grant: Grant, options: AddGrantOptions = {}): void {
    if (this.entries.has(grant.id)) throw new Error(`A grant with id ${grant.id} already exists`);
    if (options.capabilitySha256 && options.capabilitySha256.length !== 32) throw new Error('A capability hash must be a 32-byte SHA-256 digest');
    const info: Entry['info'] = { grant, created: this.now() };
    if (options.label !== undefined) info.label = options.label;
    if (options.expires !== undefined) info.expires = options.expires;
    this.entries.set(grant.id, { info, capability: options.capabilitySha256 ?? null });
    if (options.expires !== undefined) this.armDeadline(grant.id, options.expires);
  }

  /**
   * Declares a listener: its bare connections get `grantId` (null = nothing). Connections to a
   * listener never declared are refused, and an exclusive listener whose grant ended stays refusing
   * until `unbind` (its socket is gone by then).
   */
  bind(listener: string, grantId: string | null, { exclusive }: { exclusive: boolean }): void {
    if (grantId !== null && !this.entries.has(grantId)) throw new Error(`No grant with id ${grantId}`);
    if (this.bindings.has(listener)) throw new Error(`Listener ${listener} is already bound to a grant`);
    this.bindings.set(listener, { grantId, exclusive });
  }

  /** Forgets a listener (its socket was closed). */
  unbind(listener: string): void {
    this.bindings.delete(listener);
  }

  /** Ends a grant: forgets its capability and tells the revoke listeners (the daemon closes its connections). */
  revoke(grantId: string): boolean {
    const entry = this.entries.get(grantId);
    if (!entry) return false;
    this.entries.delete(grantId);
    clearTimeout(this.deadlines.get(grantId));
    this.deadlines.delete(grantId);
    for (const notify of this.revokeListeners) notify(entry.info.grant);
    return true;
  }

  /** Cancels the deadline timers (daemon stop). */
  close(): void {
    for (const timer of this.deadlines.values()) clearTimeout(timer);
    this.deadlines.clear();
  }

  /** Called with every revoked grant (the daemon closes that grant's connections). */
  onRevoke(listener: (grant: Grant) => void): () => void {
    this.revokeListeners.add(listener);
    return () => this.revokeListeners.delete(listener);
  }

  get(grantId: string): Grant | undefined {
    return this.live(grantId)?.info.grant;
  }

  list(): GrantInfo[] {
    const out: GrantInfo[] = [];
    for (const [id, entry] of this.entries) {
      if (!this.live(id)) continue;
      const listeners = [...this.bindings].filter(([, b]) => b.grantId === id).map(([name]) => name);
      out.push({ ...entry.info, listeners, hasCapability: entry.capability !== null });
    }
    return out;
  }

  /**
   * The grant of a new connection on `listener` presenting `capability` (or none), or null = refuse.
   * A bare connection gets the listener's grant (the TCP listener has none, so it needs a capability);
   * on an exclusive (sandbox) listener a presented capability must be that listener's own grant's.
   */
  authorize(listener: string, capability: string | undefined): Grant | null {
    const binding = this.bindings.get(listener);
    if (!binding) return null;
    const bound = binding.grantId === null ? null : (this.get(binding.grantId) ?? null);
    if (capability === undefined) return bound;
    if (!isCapabilityToken(capability)) return null;
    const found = this.forCapability(capability);
    if (found && binding.exclusive && found.id !== binding.grantId) return null;
    return found;
  }

  /** Revokes `grantId` at `expires` (epoch ms, on this registry's clock); timers never keep the process alive. */
  private armDeadline(grantId: string, expires: number): void {
    const delay = Math.max(0, expires - this.now());
    const timer = setTimeout(() => {
      if (expires - this.now() > 0) this.armDeadline(grantId, expires);
      else this.revoke(grantId);
    }, Math.min(delay, MAX_TIMER_MS));
    timer.unref();
    this.deadlines.set(grantId, timer);
  }

  /** Compares against every capability in constant time, so the timing does not tell which matched. */
  private forCapability(token: string): Grant | null {
    const presented = hashCapability(token);
    let found: Grant | null = null;
    for (const [id, entry] of this.entries) {
      if (entry.capability && timingSafeEqual(presented, entry.capability) && found === null && this.live(id)) found = entry.info.grant;
    }
    return found;
  }

  /** The entry of a grant that has not passed its deadline. */
  private live(grantId: string): Entry | undefined {
    const entry = this.entries.get(grantId);
    if (!entry) return undefined;
    if (entry.info.expires !== undefined && entry.info.expires <= this.now()) return undefined;
    return entry;
  }
}
