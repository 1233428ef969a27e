/**
 * Proactive renewal on the host (PROTOCOL.md §6.4): every stored token with a refresh token is
 * renewed at expiry − lead − jitter (both scaled with its lifetime) without waiting for a client.
 * Tokens are scheduled at start, after every change made in this process, and whenever the store's
 * change stamp moves (another process wrote it). On fire the wall clock and the store are read
 * again, and the refresh goes through the single-flight coordinator with `renewal: true`, which
 * re-checks under the store's lock that the token is still due — so daemons sharing a store renew
 * a bucket once. Failures back off (30 s doubling to 30 min, at most 10 in a row, then the bucket
 * needs attention); a rejected refresh token (REAUTH_REQUIRED) stops at once. Timers never keep the
 * process alive and stop() cancels them all.
 */
import { ProxyError } from '../protocol/errors.js';
import type { StoredToken } from '../store/types.js';
import type { RefreshRequest } from './refreshCoordinator.js';
import type { TokenService } from './TokenService.js';

/** setTimeout's largest delay; a longer one fires at once. */
const MAX_TIMER_MS = 2 ** 31 - 1;

export interface RenewalOptions {
  /** How often the store's change stamp and the wall clock are checked (2 s). */
  watchMs?: number;
  /** First back-off after a failed renewal (30 s); it doubles up to maxBackoffMs. */
  backoffMs?: number;
  maxBackoffMs?: number;
  /** Failed renewals in a row before the bucket is left alone (10). */
  maxFailures?: number;
  /** Uniform in [0, 1): the jitter. */
  random?: () => number;
  log?: (line: string) => void;
}

/** What the scheduler needs of the refresh coordinator. */
export interface Renewer {
  refresh(provider: string, bucket: string, signal?: AbortSignal, options?: RefreshRequest): Promise<StoredToken>;
  /** True when the provider can be refreshed at all (a configured adapter). */
  canRefresh(provider: string): boolean;
}

export type RenewalState = 'scheduled' | 'renewing' | 'backoff' | 'needs_login' | 'failing';

export interface RenewalStatus {
  provider: string;
  bucket: string;
  state: RenewalState;
  /** Epoch ms of the next attempt (scheduled, backoff). */
  next_renewal?: number;
  /** Failed renewals in a row. */
  failures: number;
  /** The error code of the last failure. */
  last_error?: string;
}

interface Entry {
  provider: string;
  bucket: string;
  /** The token version this entry was planned for: a new one (login, import) starts afresh. */
  version: string;
  due: number;
  timer: NodeJS.Timeout | undefined;
  state: RenewalState;
  failures: number;
  lastError?: string;
}

function describe(e: Entry): RenewalStatus {
  return {
    provider: e.provider,
    bucket: e.bucket,
    state: e.state,
    ...((e.state === 'scheduled' || e.state === 'backoff') && { next_renewal: e.due }),
    failures: e.failures,
    ...(e.lastError !== undefined && { last_error: e.lastError }),
  };
}

const keyOf = (provider: string, bucket: string): string => `${provider}\u0000${bucket}`;
const versionOf = (token: StoredToken): string => `${token.expiry}\u0000${token.access_token.length}\u0000${token.access_token.slice(-8)}`;

export class RenewalScheduler {
  private readonly entries = new Map<string, Entry>();
  private readonly watchMs: number;
  private readonly backoffMs: number;
  private readonly maxBackoffMs: number;
  private readonly maxFailures: number;
  private readonly random: () => number;
  private readonly log: (line: string) => void;
  private watch: NodeJS.Timeout | undefined;
  private stamp: string | null = null;
  private stopped = false;
  private scanning: Promise<void> | null = null;
  private readonly unsubscribe: () => void;
  /** Work in progress (plans, renewals), so stop() can wait for it. */
  private readonly pending = new Set<Promise<void>>();

  constructor(
    private readonly tokens: TokenService,
    private readonly renewer: Renewer,
    options: RenewalOptions = {},
  ) {
    this.watchMs = options.watchMs ?? 2_000;
    this.backoffMs = options.backoffMs ?? 30_000;
    this.maxBackoffMs = options.maxBackoffMs ?? 30 * 60_000;
    this.maxFailures = options.maxFailures ?? 10;
    this.random = options.random ?? Math.random;
    this.log = options.log ?? (() => {});
    this.unsubscribe = tokens.onChange((provider, bucket) => this.note(provider, bucket));
  }

  /**
   * Plans every stored token, then watches the store and the clock. When the store cannot be read
   * now this rejects, and the watch still starts: the store is planned at its next change.
   */
  async start(): Promise<void> {
    this.stamp = this.tokens.changeStamp();
    try {
      await this.scan();
    } finally {
      if (!this.stopped) {
        this.watch = setInterval(() => this.tick(), this.watchMs);
        this.watch.unref();
      }
    }
  }

  /** (Re)plans one bucket after it changed, was served or was refreshed. */
  note(provider: string, bucket: string): void {
    if (this.stopped) return;
    this.track(this.plan(provider, bucket));
  }

  /** One line per planned bucket, for daemon_status and status. */
  status(): RenewalStatus[] {
    return [...this.entries.values()].map(describe);
  }

  /** The plan of one bucket, or undefined when none is planned. */
  statusOf(provider: string, bucket: string): RenewalStatus | undefined {
    const e = this.entries.get(keyOf(provider, bucket));
    return e && describe(e);
  }

  /** Cancels every timer; resolves once no plan or renewal of this scheduler is still running. */
  async stop(): Promise<void> {
    this.stopped = true;
    this.unsubscribe();
    clearInterval(this.watch);
    for (const e of this.entries.values()) clearTimeout(e.timer);
    while (this.pending.size > 0) await Promise.allSettled([...this.pending]);
    for (const e of this.entries.values()) clearTimeout(e.timer);
  }

  private track(work: Promise<void>): void {
    const guarded = work.catch((err: unknown) => this.log(`renewal: ${err instanceof Error ? err.message : String(err)}`));
    this.pending.add(guarded);
    void guarded.finally(() => this.pending.delete(guarded));
  }

  /** The periodic check: writes by other processes (the change stamp) and a wall clock that jumped. */
  private tick(): void {
    const stamp = this.tokens.changeStamp();
    // A change during a scan is taken in by the next scan: the running one may have read past it.
    if (stamp !== this.stamp && !this.scanning) {
      this.stamp = stamp;
      this.track(this.scan());
    }
    // After a suspend the timers lag the wall clock; whatever is past due goes now.
    const now = this.tokens.now();
    for (const e of this.entries.values()) {
      if ((e.state === 'scheduled' || e.state === 'backoff') && e.due <= now) this.fire(e);
    }
  }

  private async scan(): Promise<void> {
    const scanning = (async () => {
      const seen = new Set<string>();
      for (const provider of await this.tokens.listProviders()) {
        for (const bucket of await this.tokens.listBuckets(provider)) {
          seen.add(keyOf(provider, bucket));
          await this.plan(provider, bucket);
        }
      }
      for (const [key, e] of this.entries) {
        if (!seen.has(key)) this.forget(e);
      }
    })();
    this.scanning = scanning;
    try {
      await scanning;
    } finally {
      this.scanning = null;
    }
  }

  private forget(e: Entry): void {
    clearTimeout(e.timer);
    const key = keyOf(e.provider, e.bucket);
    // A newer plan of the same bucket is not this entry's to drop.
    if (this.entries.get(key) === e) this.entries.delete(key);
  }

  /** Reads the bucket and sets its timer for the renewal time of what is stored now. */
  private async plan(provider: string, bucket: string): Promise<void> {
    const token = await this.tokens.read(provider, bucket);
    if (this.stopped) return;
    const key = keyOf(provider, bucket);
    const existing = this.entries.get(key);
    if (!token || !token.refresh_token || !this.renewer.canRefresh(provider)) {
      if (existing) this.forget(existing);
      return;
    }
    const version = versionOf(token);
    if (existing?.version === version) {
      // The same token: its plan (and back-off, or stop) stands; a renewal in progress will replan.
      return;
    }
    if (existing) clearTimeout(existing.timer);
    const entry: Entry = { provider, bucket, version, due: 0, timer: undefined, state: 'scheduled', failures: 0 };
    this.entries.set(key, entry);
    if (this.tokens.lastRefreshResult(token) === 'REAUTH_REQUIRED') {
      entry.state = 'needs_login';
      entry.lastError = 'REAUTH_REQUIRED';
      return;
    }
    const jitter = this.random() * this.tokens.renewalJitterMs(token);
    let due = token.expiry * 1000 - this.tokens.renewalLeadMs(token) - jitter;
    // Inside the cooldown a renewal would only return the token unchanged.
    const attempt = this.tokens.lastRefreshAttempt(token);
    if (attempt !== undefined) due = Math.max(due, attempt + this.tokens.cooldownMs(token));
    this.arm(entry, due);
  }

  private arm(entry: Entry, due: number): void {
    clearTimeout(entry.timer);
    entry.due = due;
    const delay = Math.min(MAX_TIMER_MS, Math.max(0, due - this.tokens.now()));
    entry.timer = setTimeout(() => this.fire(entry), delay);
    entry.timer.unref();
  }

  private fire(entry: Entry): void {
    if (this.stopped || this.entries.get(keyOf(entry.provider, entry.bucket)) !== entry) return;
    clearTimeout(entry.timer);
    // A capped timer (a due time beyond 2^31-1 ms) fires early: plan again for the rest.
    if (entry.due > this.tokens.now()) {
      this.arm(entry, entry.due);
      return;
    }
    entry.state = 'renewing';
    this.track(this.renew(entry));
  }

  private async renew(entry: Entry): Promise<void> {
    const { provider, bucket } = entry;
    try {
      const token = await this.renewer.refresh(provider, bucket, undefined, { renewal: true });
      if (this.stopped) return;
      if (this.entries.get(keyOf(provider, bucket)) === entry && versionOf(token) === entry.version && this.tokens.lastRefreshResult(token) === 'REFRESH_FAILED') {
        // Left alone inside the cooldown because another process (or a get_token here) tried moments
        // ago and failed: that failure is this renewal's too. Planning afresh would reset the count
        // and the back-off, so daemons sharing a store would retry a down server every cooldown.
        this.failed(entry, new ProxyError('REFRESH_FAILED', `The last refresh of ${provider}/${bucket} failed`));
        return;
      }
      // What is stored now (renewed here or by another process, or left alone inside the cooldown,
      // which plan() waits out) gets its own plan. The save of a renewed token has already planned
      // it (onChange): that plan is dropped with its timer, or the timer would outlive stop().
      const current = this.entries.get(keyOf(provider, bucket));
      if (current) this.forget(current);
      await this.plan(provider, bucket);
    } catch (err) {
      // A new token stored meanwhile has its own plan; this failure is about the old one.
      if (this.stopped || this.entries.get(keyOf(provider, bucket)) !== entry) return;
      this.failed(entry, err);
    }
  }

  private failed(entry: Entry, err: unknown): void {
    const code = err instanceof ProxyError ? err.code : 'INTERNAL_ERROR';
    const name = `${entry.provider}/${entry.bucket}`;
    entry.lastError = code;
    if (code === 'NOT_FOUND' || code === 'REFRESH_NOT_AVAILABLE' || code === 'PROVIDER_NOT_FOUND') {
      this.forget(entry);
      return;
    }
    if (code === 'REAUTH_REQUIRED') {
      entry.state = 'needs_login';
      this.log(`renewal of ${name} stopped: the provider rejected the refresh token; log in again`);
      return;
    }
    if (code === 'RATE_LIMITED' && err instanceof ProxyError && err.retryAfter !== undefined) {
      entry.state = 'scheduled';
      this.arm(entry, this.tokens.now() + err.retryAfter * 1000);
      return;
    }
    entry.failures += 1;
    if (entry.failures >= this.maxFailures) {
      entry.state = 'failing';
      this.log(`renewal of ${name} stopped after ${entry.failures} failures in a row (${code}); it needs attention`);
      return;
    }
    entry.state = 'backoff';
    const wait = Math.min(this.maxBackoffMs, this.backoffMs * 2 ** (entry.failures - 1));
    this.log(`renewal of ${name} failed (${code}); next try in ${Math.round(wait / 1000)} s`);
    this.arm(entry, this.tokens.now() + wait);
  }
}
