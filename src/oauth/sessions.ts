/**
 * Login sessions (PROTOCOL.md §6.1–6.3): unguessable single-use ids bound to the identity that
 * created them, with a TTL and a periodic sweep. Owns the session rules; knows nothing of sockets.
 */
import { randomBytes as nodeRandomBytes } from 'node:crypto';
import type { FlowType, StartedFlow } from './flowTypes.js';

export interface LoginSession {
  readonly id: string;
  readonly owner: string;
  /** The grant of the connection that created it. */
  readonly grantId: string;
  readonly provider: string;
  readonly bucket: string;
  readonly flow: StartedFlow;
  readonly flowType: FlowType;
  readonly expiresAt: number;
  /** Set before any exchange or store, so a session can never be redeemed twice. */
  used: boolean;
  /** A poll is talking to the provider right now. */
  polling: boolean;
}

export type SessionLookup =
  | { ok: true; session: LoginSession }
  | { ok: false; reason: 'not_found' | 'foreign' | 'used' | 'expired' };

export interface SessionStoreOptions {
  ttlMs?: number;
  sweepIntervalMs?: number;
  /** Open sessions one owner may hold (each may hold a callback port). */
  maxPerOwner?: number;
  now?: () => number;
  randomBytes?: (n: number) => Uint8Array;
}

export const DEFAULT_SESSION_TTL_MS = 10 * 60_000;
export const DEFAULT_SWEEP_INTERVAL_MS = 60_000;

export class SessionStore {
  private readonly sessions = new Map<string, LoginSession>();
  private readonly ttlMs: number;
  private readonly maxPerOwner: number;
  private readonly now: () => number;
  private readonly random: (n: number) => Uint8Array;
  private readonly sweeper: NodeJS.Timeout;

  constructor(options: SessionStoreOptions = {}) {
    this.ttlMs = options.ttlMs ?? DEFAULT_SESSION_TTL_MS;
    this.maxPerOwner = options.maxPerOwner ?? 8;
    this.now = options.now ?? Date.now;
    this.random = options.randomBytes ?? ((n) => nodeRandomBytes(n));
    this.sweeper = setInterval(() => void this.sweep(), options.sweepIntervalMs ?? DEFAULT_SWEEP_INTERVAL_MS);
    this.sweeper.unref();
  }

  get size(): number {
    return this.sessions.size;
  }

  /** Whether `owner` may open another session (spent sessions do not count). */
  hasRoomFor(owner: string): boolean {
    let count = 0;
    for (const s of this.sessions.values()) if (s.owner === owner && !s.used) count += 1;
    return count < this.maxPerOwner;
  }

  /** Registers a started flow and returns its session (id = 128 random bits, 32 lowercase hex). */
  create(owner: string, grantId: string, provider: string, bucket: string, flow: StartedFlow): LoginSession {
    let id: string;
    do id = Buffer.from(this.random(16)).toString('hex');
    while (this.sessions.has(id));
    const session: LoginSession = { id, owner, grantId, provider, bucket, flow, flowType: flow.flowType, expiresAt: this.now() + this.ttlMs, used: false, polling: false };
    this.sessions.set(id, session);
    return session;
  }

  /**
   * The §6.2 checks in order: exists → belongs to the caller → not used → not expired. An expired
   * session is deleted (and its flow cancelled) on the spot.
   */
  lookup(id: string, owner: string): SessionLookup {
    const session = this.sessions.get(id);
    if (!session) return { ok: false, reason: 'not_found' };
    if (session.owner !== owner) return { ok: false, reason: 'foreign' };
    if (session.used) return { ok: false, reason: 'used' };
    if (this.now() >= session.expiresAt) {
      void this.remove(session);
      return { ok: false, reason: 'expired' };
    }
    return { ok: true, session };
  }

  /**
   * Ends the flow of a spent session (frees ports) but keeps its id until it expires, so a replay
   * hears SESSION_ALREADY_USED rather than SESSION_NOT_FOUND.
   */
  async retire(session: LoginSession): Promise<void> {
    session.used = true;
    await session.flow.cancel().catch(() => {});
  }

  /** Deletes the session and cancels its flow (frees ports, aborts background work). */
  async remove(session: LoginSession): Promise<void> {
    if (this.sessions.get(session.id) === session) this.sessions.delete(session.id);
    await session.flow.cancel().catch(() => {});
  }

  /** Cancels `id` if it exists and belongs to `owner`; unknown ids are fine. */
  async cancel(id: string, owner: string): Promise<void> {
    const session = this.sessions.get(id);
    if (session && session.owner === owner) await this.remove(session);
  }

  /** Cancels every session opened under `grantId` (its grant ended, PROTOCOL.md §11). Returns how many. */
  async cancelGrant(grantId: string): Promise<number> {
    const owned = [...this.sessions.values()].filter((s) => s.grantId === grantId);
    await Promise.all(owned.map((s) => this.remove(s)));
    return owned.length;
  }

  /** Open sessions as daemon_status shows them: 8-char id prefixes only (the full id is a bearer secret). */
  summary(): Array<{ session: string; provider: string; bucket: string; flow_type: FlowType; expires: number }> {
    return [...this.sessions.values()].map((s) => ({ session: s.id.slice(0, 8), provider: s.provider, bucket: s.bucket, flow_type: s.flowType, expires: s.expiresAt }));
  }

  /** Removes every expired session. Returns how many went. */
  async sweep(): Promise<number> {
    const now = this.now();
    const expired = [...this.sessions.values()].filter((s) => now >= s.expiresAt);
    await Promise.all(expired.map((s) => this.remove(s)));
    return expired.length;
  }

  /** Cancels every session and stops the sweeper (daemon shutdown). */
  async close(): Promise<void> {
    clearInterval(this.sweeper);
    await Promise.all([...this.sessions.values()].map((s) => this.remove(s)));
  }
}
