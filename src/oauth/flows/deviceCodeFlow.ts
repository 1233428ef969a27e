/**
 * Device authorization grant (RFC 8628), host side. The adapter did the device authorization request
 * and supplies one token request (`pollOnce`); this flow owns the timing rules: it never calls the
 * token endpoint sooner than the current interval after the previous call (§3.5), however often the
 * client polls, grows the interval by 5 s on slow_down, and maps the terminal errors.
 */
import type { StoredToken } from '../../store/types.js';
import { FlowError, type FlowDeps, type PollResult, type StartedFlow } from '../flowTypes.js';
import { UpstreamError } from '../upstream.js';

/** What the device authorization response told us (device code itself stays in the adapter). */
export interface DeviceAuthorization {
  userCode: string;
  verificationUri: string;
  verificationUriComplete?: string;
  /** Seconds between token requests; the default applies when absent. */
  intervalSeconds?: number;
  /** Lifetime of the device code; past it the flow reports SESSION_EXPIRED without a request. */
  expiresInSeconds?: number;
}

export interface DeviceCodeFlowOptions {
  authorization: DeviceAuthorization;
  /**
   * One token request. Resolves with the token or 'pending'; throws UpstreamError whose
   * `oauthError` carries authorization_pending / slow_down / expired_token / access_denied.
   */
  pollOnce: (signal: AbortSignal) => Promise<StoredToken | 'pending'>;
  /** RFC 8628 §3.2: 5 s when the provider names no interval. */
  defaultIntervalSeconds?: number;
}

const SLOW_DOWN_STEP_MS = 5_000;

class DeviceCodeFlow implements StartedFlow {
  readonly flowType = 'device_code' as const;
  readonly publicData;
  private intervalMs: number;
  private nextAllowedAt: number;
  private readonly expiresAt: number | undefined;
  private inFlight = false;
  private terminal: FlowError | undefined;
  private readonly aborter = new AbortController();

  constructor(
    private readonly options: DeviceCodeFlowOptions,
    private readonly deps: FlowDeps,
  ) {
    const auth = options.authorization;
    this.publicData = {
      verification_url: auth.verificationUri,
      verification_uri: auth.verificationUri,
      user_code: auth.userCode,
      ...(auth.verificationUriComplete ? { verification_uri_complete: auth.verificationUriComplete } : {}),
    };
    const interval = auth.intervalSeconds !== undefined && auth.intervalSeconds > 0 ? auth.intervalSeconds : (options.defaultIntervalSeconds ?? 5);
    this.intervalMs = Math.ceil(interval * 1000);
    const started = deps.now();
    // The first token request also waits one interval after the device authorization.
    this.nextAllowedAt = started + this.intervalMs;
    this.expiresAt = auth.expiresInSeconds !== undefined && auth.expiresInSeconds > 0 ? started + auth.expiresInSeconds * 1000 : undefined;
  }

  pollIntervalMs(): number {
    return this.intervalMs;
  }

  async poll(signal: AbortSignal): Promise<PollResult> {
    if (this.terminal) throw this.terminal;
    const now = this.deps.now();
    if (this.expiresAt !== undefined && now >= this.expiresAt) throw this.end(new FlowError('SESSION_EXPIRED', 'Device code expired'));
    // A concurrent poll or one inside the interval answers from memory: no upstream request.
    if (this.inFlight || now < this.nextAllowedAt) return { status: 'pending', pollIntervalMs: this.intervalMs };
    this.inFlight = true;
    this.nextAllowedAt = now + this.intervalMs;
    try {
      const result = await this.options.pollOnce(AbortSignal.any([signal, this.aborter.signal]));
      if (result === 'pending') return { status: 'pending', pollIntervalMs: this.intervalMs };
      this.end(new FlowError('POLL_FAILED', 'This login has already completed'));
      return { status: 'complete', token: result };
    } catch (err) {
      return this.onError(err, now);
    } finally {
      this.inFlight = false;
    }
  }

  private onError(err: unknown, requestedAt: number): PollResult {
    if (this.terminal) throw this.terminal; // cancelled meanwhile
    if (err instanceof FlowError) throw err;
    const upstream = err instanceof UpstreamError ? err : undefined;
    switch (upstream?.oauthError) {
      case 'authorization_pending':
        return { status: 'pending', pollIntervalMs: this.intervalMs };
      case 'slow_down': {
        const offered = (upstream.details.intervalSeconds ?? 0) * 1000;
        this.intervalMs = offered > this.intervalMs ? Math.ceil(offered) : this.intervalMs + SLOW_DOWN_STEP_MS;
        this.nextAllowedAt = requestedAt + this.intervalMs;
        return { status: 'pending', pollIntervalMs: this.intervalMs, intervalSeconds: Math.ceil(this.intervalMs / 1000) };
      }
      case 'expired_token':
        throw this.end(new FlowError('SESSION_EXPIRED', 'Device code expired'));
      case 'access_denied':
        throw this.end(new FlowError('ACCESS_DENIED', 'User denied authorization'));
    }
    // Transient or unknown: the session stays usable and the interval still applies.
    throw new FlowError('POLL_FAILED', upstream ? `Token request failed: ${upstream.message}` : 'Token request failed');
  }

  private end(error: FlowError): FlowError {
    this.terminal ??= error;
    return this.terminal;
  }

  async cancel(): Promise<void> {
    this.end(new FlowError('POLL_FAILED', 'This login was cancelled'));
    this.aborter.abort();
  }
}

/** A started device-code login over an already obtained device authorization. */
export function createDeviceCodeFlow(options: DeviceCodeFlowOptions, deps: FlowDeps): StartedFlow {
  return new DeviceCodeFlow(options, deps);
}
