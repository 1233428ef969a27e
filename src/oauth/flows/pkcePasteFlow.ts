/**
 * PKCE code-paste (RFC 7636 S256): the user opens `auth_url`, authorizes, and pastes back what the
 * provider's page shows. Verifier and state are generated and checked on the host only.
 */
import type { StoredToken } from '../../store/types.js';
import { FlowError, type FlowDeps, type StartedFlow } from '../flowTypes.js';
import { UpstreamError } from '../upstream.js';
import { createPkce, createState, matchesSecret, type AuthUrlBuilder, type CodeExchange } from './pkce.js';

export interface PkcePasteFlowOptions {
  redirectUri: string;
  authUrl: AuthUrlBuilder;
  /** One token request; throws UpstreamError (safe message) on failure. */
  exchange: (params: CodeExchange, signal: AbortSignal) => Promise<StoredToken>;
  /** When set, an `iss` in a pasted redirect URL must equal it (RFC 9207). */
  expectedIssuer?: string;
}

export interface PastedCode {
  code?: string;
  state?: string;
  error?: string;
  iss?: string;
}

/**
 * Reads what the user pasted: a full redirect URL (`...?code=..&state=..`), Anthropic's `CODE#STATE`,
 * or a bare code.
 */
export function parsePastedCode(pasted: string): PastedCode {
  const value = pasted.trim().replace(/^["']|["']$/g, '');
  if (/^https?:\/\//i.test(value) && URL.canParse(value)) {
    const url = new URL(value);
    // Some pages put the response in the fragment; the query wins when both have one.
    const params = url.searchParams.has('code') || url.searchParams.has('error') ? url.searchParams : new URLSearchParams(url.hash.slice(1));
    const pick = (k: string) => params.get(k) ?? undefined;
    return { code: pick('code'), state: pick('state'), error: pick('error'), iss: pick('iss') };
  }
  const hash = value.indexOf('#');
  if (hash >= 0) return { code: value.slice(0, hash) || undefined, state: value.slice(hash + 1) || undefined };
  return { code: value || undefined };
}

class PkcePasteFlow implements StartedFlow {
  readonly flowType = 'pkce_redirect' as const;
  readonly publicData: { auth_url: string };
  private used = false;
  private readonly aborter = new AbortController();
  // ES private: never shown by util.inspect or JSON.stringify of the flow.
  readonly #verifier: string;
  readonly #state: string;

  constructor(
    private readonly options: PkcePasteFlowOptions,
    verifier: string,
    state: string,
    authUrl: string,
  ) {
    this.#verifier = verifier;
    this.#state = state;
    this.publicData = { auth_url: authUrl };
  }

  pollIntervalMs(): number {
    return 5_000;
  }

  async exchange(pasted: string, signal: AbortSignal): Promise<StoredToken> {
    if (this.used) throw new FlowError('EXCHANGE_FAILED', 'This login was already used; start a new one');
    const parsed = parsePastedCode(pasted);
    if (parsed.error !== undefined) {
      this.used = true;
      if (parsed.error === 'access_denied') throw new FlowError('ACCESS_DENIED', 'User denied authorization');
      throw new FlowError('EXCHANGE_FAILED', 'The provider returned an error instead of a code; start the login again');
    }
    if (!parsed.code) throw new FlowError('EXCHANGE_FAILED', 'No authorization code found in the pasted value');
    if (parsed.state !== undefined && !matchesSecret(parsed.state, this.#state)) {
      this.used = true;
      throw new FlowError('EXCHANGE_FAILED', 'State mismatch: the pasted code does not belong to this login');
    }
    if (parsed.iss !== undefined && this.options.expectedIssuer !== undefined && parsed.iss !== this.options.expectedIssuer) {
      this.used = true;
      throw new FlowError('EXCHANGE_FAILED', 'Issuer mismatch: the pasted code comes from another server');
    }
    // Marked before the request: an authorization code is single use, a retry could only fail.
    this.used = true;
    const params: CodeExchange = { code: parsed.code, verifier: this.#verifier, state: this.#state, redirectUri: this.options.redirectUri };
    try {
      return await this.options.exchange(params, AbortSignal.any([signal, this.aborter.signal]));
    } catch (err) {
      if (err instanceof FlowError) throw err;
      const detail = err instanceof UpstreamError ? `: ${err.message}` : '';
      throw new FlowError('EXCHANGE_FAILED', `Token exchange failed${detail}`);
    }
  }

  async cancel(): Promise<void> {
    this.used = true;
    this.aborter.abort();
  }
}

/** Starts a code-paste login: fresh verifier, challenge and state; `auth_url` for the user. */
export async function startPkcePasteFlow(options: PkcePasteFlowOptions, deps: FlowDeps): Promise<StartedFlow> {
  const { verifier, challenge } = await createPkce(deps);
  const state = createState(deps);
  const authUrl = options.authUrl({ challenge, state, redirectUri: options.redirectUri });
  return new PkcePasteFlow(options, verifier, state, authUrl);
}
