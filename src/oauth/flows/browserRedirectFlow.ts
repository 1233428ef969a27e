/**
 * Browser redirect (RFC 8252 loopback redirect): a one-shot callback server on 127.0.0.1 receives
 * the authorization response; poll() exchanges the code once. The server closes after the callback,
 * on cancel(), and after `maxLifetimeMs` in case nobody cancels an abandoned login.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { StoredToken } from '../../store/types.js';
import { FlowError, type FlowDeps, type PollResult, type StartedFlow } from '../flowTypes.js';
import { UpstreamError } from '../upstream.js';
import { createPkce, createState, matchesSecret, type AuthUrlBuilder, type CodeExchange } from './pkce.js';
import { raceAbort } from '../../abort.js';

export interface BrowserRedirectFlowOptions {
  callback: { host: '127.0.0.1' | 'localhost'; port: number; path: string };
  authUrl: AuthUrlBuilder;
  exchange: (params: CodeExchange, signal: AbortSignal) => Promise<StoredToken>;
  expectedIssuer?: string;
  /** Safety net for abandoned logins; the session layer normally cancels sooner. Default 15 min. */
  maxLifetimeMs?: number;
}

const POLL_INTERVAL_MS = 1_000;

/** Fixed pages: nothing from the request is reflected into them. */
function page(title: string, text: string): string {
  return `<!doctype html><html><head><meta charset="utf-8"><title>${title}</title></head><body><h1>${title}</h1><p>${text}</p></body></html>\n`;
}
const SUCCESS = page('Login complete', 'You can close this window and return to your terminal.');
const DENIED = page('Login failed', 'Authorization was not granted. You can close this window.');
const INVALID = page('Login failed', 'This response does not belong to the current login. Start the login again if needed.');

type Outcome = { kind: 'code'; code: string } | { kind: 'error'; error: FlowError };

class BrowserRedirectFlow implements StartedFlow {
  readonly flowType = 'browser_redirect' as const;
  readonly publicData: { auth_url: string };
  private outcome: Outcome | undefined;
  private exchanging: Promise<StoredToken> | undefined;
  private terminal: FlowError | undefined;
  private readonly aborter = new AbortController();
  private closing: Promise<void> | undefined;
  private readonly lifetime: NodeJS.Timeout;
  readonly #verifier: string;
  readonly #state: string;

  constructor(
    private readonly options: BrowserRedirectFlowOptions,
    private readonly server: http.Server,
    private readonly redirectUri: string,
    verifier: string,
    state: string,
    challenge: string,
  ) {
    this.#verifier = verifier;
    this.#state = state;
    this.publicData = { auth_url: options.authUrl({ challenge, state, redirectUri }) };
    server.on('request', (req, res) => this.onRequest(req, res));
    this.lifetime = setTimeout(() => void this.cancel(), options.maxLifetimeMs ?? 15 * 60_000);
    this.lifetime.unref();
  }

  private onRequest(req: http.IncomingMessage, res: http.ServerResponse): void {
    const reply = (status: number, body: string, done = false) => {
      res.writeHead(status, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store', connection: 'close' });
      res.end(body, () => {
        if (done) void this.closeServer();
      });
    };
    // A request target such as `//[` is not a valid URL; new URL() would throw in this event handler
    // and take the daemon down.
    const target = req.url ?? '/';
    const url = URL.canParse(target, 'http://127.0.0.1') ? new URL(target, 'http://127.0.0.1') : undefined;
    if (!url || req.method !== 'GET' || url.pathname !== this.options.callback.path) {
      res.writeHead(404, { 'content-type': 'text/plain; charset=utf-8', connection: 'close' }).end('Not found\n');
      return;
    }
    if (this.outcome) return reply(400, INVALID);
    const q = url.searchParams;
    // Without the right state a request may come from any local page: refuse it and keep waiting.
    if (!matchesSecret(q.get('state'), this.#state)) return reply(400, INVALID);
    const iss = q.get('iss');
    if (iss !== null && this.options.expectedIssuer !== undefined && iss !== this.options.expectedIssuer) return reply(400, INVALID);
    const error = q.get('error');
    if (error !== null) {
      this.outcome = {
        kind: 'error',
        error: error === 'access_denied'
          ? new FlowError('ACCESS_DENIED', 'User denied authorization')
          : new FlowError('POLL_FAILED', 'The provider returned an error instead of a code; start the login again'),
      };
      return reply(200, DENIED, true);
    }
    const code = q.get('code');
    if (!code) return reply(400, INVALID);
    this.outcome = { kind: 'code', code };
    reply(200, SUCCESS, true);
  }

  pollIntervalMs(): number {
    return POLL_INTERVAL_MS;
  }

  async poll(signal: AbortSignal): Promise<PollResult> {
    if (this.terminal) throw this.terminal;
    const outcome = this.outcome;
    if (!outcome) return { status: 'pending', pollIntervalMs: POLL_INTERVAL_MS };
    if (outcome.kind === 'error') throw this.end(outcome.error);
    // Exchanged once, in the flow's own lifetime: a poll whose caller gives up does not lose the code.
    if (!this.exchanging) {
      this.exchanging = this.options.exchange(
        { code: outcome.code, verifier: this.#verifier, state: this.#state, redirectUri: this.redirectUri },
        this.aborter.signal,
      );
      // A poll that gives up before the exchange settles leaves nobody awaiting it; its failure is
      // for the next poll to report, not an unhandled rejection that would end the process.
      this.exchanging.catch(() => {});
    }
    let token: StoredToken;
    try {
      token = await raceAbort(this.exchanging, signal, () => signal.reason);
    } catch (err) {
      if (signal.aborted && !this.terminal) throw new FlowError('POLL_FAILED', 'Poll cancelled');
      if (this.terminal) throw this.terminal;
      if (err instanceof FlowError) throw this.end(err);
      const detail = err instanceof UpstreamError ? `: ${err.message}` : '';
      throw this.end(new FlowError('POLL_FAILED', `Token exchange failed${detail}; start the login again`));
    }
    if (this.terminal) throw this.terminal;
    this.end(new FlowError('POLL_FAILED', 'This login has already completed'));
    return { status: 'complete', token };
  }

  private end(error: FlowError): FlowError {
    this.terminal ??= error;
    void this.closeServer();
    return this.terminal;
  }

  /** Stops listening and drops open connections (browsers keep them alive). */
  private closeServer(): Promise<void> {
    this.closing ??= new Promise<void>((resolve) => {
      clearTimeout(this.lifetime);
      this.server.close(() => resolve());
      this.server.closeAllConnections();
    });
    return this.closing;
  }

  async cancel(): Promise<void> {
    this.terminal ??= new FlowError('POLL_FAILED', 'This login was cancelled');
    this.aborter.abort();
    await this.closeServer();
  }
}

function listen(server: http.Server, port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen({ host: '127.0.0.1', port, exclusive: true }, () => {
      server.off('error', reject);
      resolve((server.address() as AddressInfo).port);
    });
  });
}

/** Starts the callback server (port 0 = ephemeral) and returns the login whose `auth_url` points at it. */
export async function startBrowserRedirectFlow(options: BrowserRedirectFlowOptions, deps: FlowDeps): Promise<StartedFlow> {
  const { verifier, challenge } = await createPkce(deps);
  const state = createState(deps);
  const server = http.createServer();
  server.keepAliveTimeout = 1_000;
  server.requestTimeout = 10_000;
  let port: number;
  try {
    port = await listen(server, options.callback.port);
  } catch (err) {
    server.close();
    const inUse = (err as NodeJS.ErrnoException).code === 'EADDRINUSE';
    throw new FlowError(
      'FLOW_INITIATION_FAILED',
      inUse
        ? `Callback port ${options.callback.port} on 127.0.0.1 is in use (another login running?); finish or cancel it first`
        : 'Could not open the loopback callback server',
    );
  }
  server.unref();
  const redirectUri = `http://${options.callback.host}:${port}${options.callback.path}`;
  return new BrowserRedirectFlow(options, server, redirectUri, verifier, state, challenge);
}
