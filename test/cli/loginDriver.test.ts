/**
 * The login driver's loop on its own: poll pacing (pollIntervalMs, slow_down), retries of
 * POLL_FAILED, cancellation on Ctrl-C and on failure, the paste path, and the checks on replies
 * from the wire. The backend here is a scripted LoginBackend; the real daemon and authorization
 * server are exercised end to end in login.test.ts.
 */
import { describe, expect, it } from 'vitest';
import {
  parseLoginPoll,
  parseLoginStart,
  runLogin,
  type LoginBackend,
  type LoginPoll,
  type LoginStart,
  type LoginUi,
} from '../../src/client/loginDriver.js';
import { ProxyClientError } from '../../src/client/ProxyClient.js';
import { successLine } from '../../src/cli/util/loginMessages.js';
import type { SanitizedToken } from '../../src/oauth/token.js';

const TOKEN = { access_token: 'at', expiry: 2_000_000_000, token_type: 'Bearer' } as SanitizedToken;
const DEVICE_START: LoginStart = {
  session_id: 'a'.repeat(32),
  flow_type: 'device_code',
  pollIntervalMs: 20,
  verification_uri: 'https://idp.example/device',
  verification_url: 'https://idp.example/device',
  user_code: 'ABCD-EFGH',
};

type Step = LoginPoll | Error;

class ScriptedBackend implements LoginBackend {
  readonly mode = 'proxy' as const;
  readonly calls: Array<{ op: string; at: number; arg?: string }> = [];
  cancelled: string[] = [];
  closed = false;

  constructor(
    private readonly start: LoginStart,
    private readonly steps: Step[] = [],
    private readonly exchangeResult: SanitizedToken | Error = TOKEN,
  ) {}

  async initiate(provider: string, bucket: string, flow: string | undefined): Promise<LoginStart> {
    this.calls.push({ op: 'initiate', at: Date.now(), arg: `${provider}/${bucket}/${flow ?? '-'}` });
    return this.start;
  }

  async poll(sessionId: string): Promise<LoginPoll> {
    this.calls.push({ op: 'poll', at: Date.now(), arg: sessionId });
    const step = this.steps.shift() ?? { status: 'pending', pollIntervalMs: 20 };
    if (step instanceof Error) throw step;
    return step;
  }

  async exchange(sessionId: string, code: string): Promise<SanitizedToken> {
    this.calls.push({ op: 'exchange', at: Date.now(), arg: code });
    if (this.exchangeResult instanceof Error) throw this.exchangeResult;
    return this.exchangeResult;
  }

  async cancel(sessionId: string): Promise<void> {
    this.cancelled.push(sessionId);
  }

  async close(): Promise<void> {
    this.closed = true;
  }

  polls(): number[] {
    return this.calls.filter((c) => c.op === 'poll').map((c) => c.at);
  }
}

function recordingUi(code = 'the-code'): LoginUi & { events: string[] } {
  const events: string[] = [];
  return {
    events,
    started: (s) => events.push(`started:${s.flow_type}`),
    readCode: async () => {
      events.push('readCode');
      return `  ${code}\n`;
    },
    waiting: () => events.push('waiting'),
    retrying: (m) => events.push(`retrying:${m}`),
    done: () => events.push('done'),
  };
}

const run = (backend: LoginBackend, ui: LoginUi, signal = new AbortController().signal) =>
  runLogin(backend, ui, { provider: 'myidp', bucket: 'work', flow: 'device', signal });

describe('runLogin', () => {
  it('device flow: polls at the host interval until complete; no cancel after success', async () => {
    const backend = new ScriptedBackend(DEVICE_START, [
      { status: 'pending', pollIntervalMs: 20 },
      { status: 'pending', pollIntervalMs: 20 },
      { status: 'complete', token: TOKEN },
    ]);
    const ui = recordingUi();
    const result = await run(backend, ui);
    expect(result.token).toEqual(TOKEN);
    expect(backend.calls[0]).toMatchObject({ op: 'initiate', arg: 'myidp/work/device' });
    expect(backend.polls()).toHaveLength(3);
    expect(backend.cancelled).toEqual([]);
    expect(ui.events[0]).toBe('started:device_code');
    expect(ui.events.at(-1)).toBe('done');
  });

  it('slow_down: the next poll waits for the larger of interval and pollIntervalMs', async () => {
    const backend = new ScriptedBackend({ ...DEVICE_START, pollIntervalMs: 10 }, [
      { status: 'pending', pollIntervalMs: 10, interval: 0.4 },
      { status: 'complete', token: TOKEN },
    ]);
    await run(backend, recordingUi());
    const [first, second] = backend.polls();
    expect(second! - first!).toBeGreaterThanOrEqual(390);
  });

  it('a grown pollIntervalMs is respected too', async () => {
    const backend = new ScriptedBackend({ ...DEVICE_START, pollIntervalMs: 10 }, [
      { status: 'pending', pollIntervalMs: 300 },
      { status: 'complete', token: TOKEN },
    ]);
    await run(backend, recordingUi());
    const [first, second] = backend.polls();
    expect(second! - first!).toBeGreaterThanOrEqual(290);
  });

  it('POLL_FAILED is retried (the session stays usable), then given up after five in a row', async () => {
    const failed = () => new ProxyClientError('POLL_FAILED', 'The provider did not answer');
    const recovers = new ScriptedBackend(DEVICE_START, [failed(), failed(), { status: 'complete', token: TOKEN }]);
    const ui = recordingUi();
    await expect(run(recovers, ui)).resolves.toMatchObject({ token: TOKEN });
    expect(ui.events.filter((e) => e.startsWith('retrying:'))).toEqual(['retrying:The provider did not answer', 'retrying:The provider did not answer']);

    const never = new ScriptedBackend(DEVICE_START, Array.from({ length: 10 }, failed));
    await expect(run(never, recordingUi())).rejects.toMatchObject({ code: 'POLL_FAILED' });
    expect(never.polls()).toHaveLength(5);
    expect(never.cancelled).toEqual([DEVICE_START.session_id]);
  });

  it('ACCESS_DENIED ends the login at once and still tells the host to drop the session', async () => {
    const backend = new ScriptedBackend(DEVICE_START, [new ProxyClientError('ACCESS_DENIED', 'User denied authorization')]);
    await expect(run(backend, recordingUi())).rejects.toMatchObject({ code: 'ACCESS_DENIED' });
    expect(backend.polls()).toHaveLength(1);
    expect(backend.cancelled).toEqual([DEVICE_START.session_id]);
  });

  it('Ctrl-C (abort) while waiting cancels the session on the host and rejects with the abort reason', async () => {
    const backend = new ScriptedBackend({ ...DEVICE_START, pollIntervalMs: 10_000 });
    const controller = new AbortController();
    const ui = recordingUi();
    const running = run(backend, ui, controller.signal);
    await new Promise((r) => setTimeout(r, 50));
    const reason = new Error('login cancelled');
    controller.abort(reason);
    await expect(running).rejects.toBe(reason);
    expect(backend.polls()).toHaveLength(0);
    expect(backend.cancelled).toEqual([DEVICE_START.session_id]);
    expect(ui.events.at(-1)).toBe('done');
  });

  it('Ctrl-C while the host is still starting the flow cancels the session once it exists', async () => {
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const backend = new ScriptedBackend(DEVICE_START);
    const slowInitiate = backend.initiate.bind(backend);
    backend.initiate = async (...args) => {
      await gate;
      return slowInitiate(...args);
    };
    const controller = new AbortController();
    const running = run(backend, recordingUi(), controller.signal);
    controller.abort(new Error('login cancelled'));
    setTimeout(release, 20);
    await expect(running).rejects.toThrow('login cancelled');
    expect(backend.cancelled).toEqual([DEVICE_START.session_id]);
  });

  it('paste flow: reads the code, trims it, exchanges it; never polls', async () => {
    const start: LoginStart = { session_id: 'b'.repeat(32), flow_type: 'pkce_redirect', pollIntervalMs: 5000, auth_url: 'https://idp.example/authorize?x=1' };
    const backend = new ScriptedBackend(start);
    const ui = recordingUi('CODE#STATE');
    const result = await run(backend, ui);
    expect(result.token).toEqual(TOKEN);
    expect(backend.calls.map((c) => c.op)).toEqual(['initiate', 'exchange']);
    expect(backend.calls[1]!.arg).toBe('CODE#STATE');
    expect(ui.events).toEqual(['started:pkce_redirect', 'readCode', 'done']);
  });

  it('paste flow: EXCHANGE_FAILED propagates with its code', async () => {
    const start: LoginStart = { session_id: 'c'.repeat(32), flow_type: 'pkce_redirect', pollIntervalMs: 5000, auth_url: 'https://idp.example/a' };
    const backend = new ScriptedBackend(start, [], new ProxyClientError('EXCHANGE_FAILED', 'State mismatch'));
    await expect(run(backend, recordingUi())).rejects.toMatchObject({ code: 'EXCHANGE_FAILED' });
  });
});

describe('reply checks', () => {
  it('keeps only §6.1 fields and refuses replies that cannot drive a login', () => {
    const parsed = parseLoginStart({ ...DEVICE_START, device_code: 'must-not-pass', state: 'nor-this' } as Record<string, unknown>);
    expect(parsed).toEqual(DEVICE_START);
    expect(() => parseLoginStart({ flow_type: 'device_code' })).toThrow(/session_id/);
    expect(() => parseLoginStart({ session_id: 'x', flow_type: 'magic' })).toThrow(/flow_type/);
    expect(() => parseLoginStart({ session_id: 'x', flow_type: 'device_code', verification_uri: 'https://a' })).toThrow(/user_code/);
    expect(() => parseLoginStart({ session_id: 'x', flow_type: 'pkce_redirect' })).toThrow(/auth_url/);
  });

  it('poll replies: pending with interval, complete with a token, anything else refused', () => {
    expect(parseLoginPoll({ status: 'pending', pollIntervalMs: 7000, interval: 7 })).toEqual({ status: 'pending', pollIntervalMs: 7000, interval: 7 });
    expect(parseLoginPoll({ status: 'complete', token: TOKEN })).toEqual({ status: 'complete', token: TOKEN });
    expect(() => parseLoginPoll({ status: 'complete', token: { access_token: 'x' } })).toThrow(/token/);
    expect(() => parseLoginPoll({ status: 'done' })).toThrow(/status/);
  });
});

describe('success line', () => {
  it('names provider, bucket, time left and the UTC expiry; a non-expiring token says so', () => {
    const now = Date.UTC(2026, 10, 28, 13, 4, 0);
    const token = { ...TOKEN, expiry: Math.floor(now / 1000) + 59 * 60 + 30 };
    expect(successLine('myidp', 'work', token, now)).toBe('Logged in to myidp (bucket work); token expires in 59m (2026-11-28 14:03 UTC)');
    expect(successLine('github', 'default', { ...TOKEN, expiry: 253_402_300_799 }, now)).toBe('Logged in to github (bucket default); the token does not expire');
  });
});
