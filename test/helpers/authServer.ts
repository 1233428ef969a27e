/**
 * A real OAuth 2.0 authorization server for integration tests: panva's oidc-provider, in-process on
 * 127.0.0.1 (random port, plain http, no network beyond loopback). One public client (auth method
 * 'none', PKCE S256 required) with the device flow (RFC 8628), the authorization code flow and
 * refresh tokens (rotation optional, with oidc-provider's reuse detection).
 *
 * The user is scripted, never faked: approveDevice/denyDevice/authorize drive the server's own pages
 * over http with a cookie jar, exactly as a browser would (user code form → confirm form → login →
 * consent). Login and consent are the only pages this harness serves itself, because oidc-provider
 * leaves them to the embedding application: GET /interaction/:uid completes the pending prompt via
 * provider.interactionFinished (login → the fixed test account; consent → a Grant for the missing
 * scopes), or refuses consent when the user agent adds `decision=deny`. Everything else (codes,
 * PKCE checks, token issuance, expiry, rotation) is oidc-provider's own behaviour.
 *
 * Two additions sit around the provider, both in a Koa middleware and both visible in stats: the
 * `interval` of the device authorization response (oidc-provider 9 sends none, so clients would
 * fall back to RFC 8628's 5 s), and, opt-in, RFC 8628 slow_down (oidc-provider 9 never sends it).
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { escapeHtml, page, pageKind, parseForm, ScriptedUserAgent } from './scriptedUserAgent.js';

export interface AuthServerStats {
  tokenRequests: number;
  /** Date.now() at the arrival of each token request, in order. */
  tokenRequestTimes: number[];
  deviceAuthorizationRequests: number;
  authorizationRequests: number;
  /** One entry per token request, recorded when it was answered. */
  tokenRequestLog: Array<{ at: number; grantType: string | undefined; status: number; error?: string }>;
}

export interface AuthServer {
  issuer: string;
  clientId: string;
  endpoints: { authorization: string; token: string; deviceAuthorization: string; verification: string };
  /** Scopes to request; refresh tokens are issued whatever the scope (see issueRefreshToken below). */
  scopes: string;
  redirectUris: string[];
  /** The account every login resolves to (the `sub` of issued tokens). */
  accountId: string;
  /** Approves a pending device code through the server's own pages: user code, confirm, login, consent. */
  approveDevice(userCode: string): Promise<void>;
  /** Presses the confirm page's Abort button; the device poll then gets access_denied. */
  denyDevice(userCode: string): Promise<void>;
  /** Follows an authorization URL as a scripted browser (login, consent) and returns the final redirect without fetching it. */
  authorize(authUrl: string, options?: { deny?: boolean }): Promise<URL>;
  /** Like authorize, then GETs the redirect (e.g. a loopback callback server) once, without following further redirects. */
  authorizeAndFollow(authUrl: string, options?: { deny?: boolean }): Promise<{ status: number; body: string }>;
  stats: AuthServerStats;
  /** Every secret the server handed out, so tests can assert that none leaks. */
  issued: { accessTokens: string[]; refreshTokens: string[]; deviceCodes: string[]; authorizationCodes: string[]; codeVerifiers: string[]; states: string[] };
  /** Deletes a refresh token server-side (as a user revoking access would); later use gives invalid_grant. */
  revokeRefreshToken(refreshToken: string): Promise<boolean>;
  /** The next `count` token requests get `status` with {error: 'temporarily_unavailable'} without reaching oidc-provider. */
  failNextTokenRequests(count: number, status?: number): void;
  close(): Promise<void>;
}

export interface AuthServerOptions {
  /** Default DEFAULT_REDIRECT_URIS. With applicationType 'native' a loopback http URI matches any port (RFC 8252 §7.3). */
  redirectUris?: string[];
  /** 'native' (default) or 'web' (exact redirect URI matching). */
  applicationType?: 'native' | 'web';
  /** Device code lifetime; default 600. */
  deviceCodeTtlSeconds?: number;
  /** `interval` added to the device authorization response; default 1; null leaves it out (RFC default 5 s). */
  deviceInterval?: number | null;
  /** Default 3600. */
  accessTokenTtlSeconds?: number;
  /** Default true (a new refresh token on each refresh; reusing an old one revokes the grant). */
  rotateRefreshTokens?: boolean;
  /** Opt-in: answer a pending device poll that comes sooner than the current interval after the previous poll of that code with slow_down. */
  enforcePollInterval?: boolean;
  /** How much each slow_down raises the interval the server enforces for that device code; default 5 (RFC 8628 §3.5). */
  slowDownIncrementSeconds?: number;
  /** Scopes accepted besides openid and offline_access (e.g. provider-specific API scopes). */
  extraScopes?: string[];
  /**
   * Issue access tokens as signed JWTs (with `exp`, for readers that take the expiry from the token,
   * like Codex CLI's) instead of opaque strings: every grant gets one resource server (RFC 8707).
   */
  jwtAccessTokens?: boolean;
}

/** The resource every grant is for when access tokens are JWTs. */
const JWT_RESOURCE = 'urn:credproxy:test-api';

/** A loopback callback (any port, for native clients) and a code-paste page that is never fetched. */
export const DEFAULT_REDIRECT_URIS = ['http://127.0.0.1/callback', 'https://auth.invalid/oauth/code'];

const CLIENT_ID = 'credproxy-test-client';
const ACCOUNT_ID = 'test-user';
const INTERACTION_PREFIX = '/interaction/';
const DEVICE_GRANT = 'urn:ietf:params:oauth:grant-type:device_code';
/** Arrival jitter tolerated before a device poll counts as too fast. */
const POLL_TOLERANCE_MS = 50;

// ---- The slice of oidc-provider's API used here (the package ships no type declarations). ----

interface OidcGrant {
  addOIDCScope(scope: string): void;
  addOIDCClaims(claims: string[]): void;
  addResourceScope(indicator: string, scope: string): void;
  save(): Promise<string>;
}
interface InteractionDetails {
  uid: string;
  grantId?: string;
  params: Record<string, unknown>;
  session?: { accountId: string };
  prompt: {
    name: string;
    details: { missingOIDCScope?: string[]; missingOIDCClaims?: string[]; missingResourceScopes?: Record<string, string[]> };
  };
}
interface KoaContext {
  method: string;
  path: string;
  status: number;
  body: unknown;
  response: { get(field: string): string };
  /** Only defined on oidc-provider's own routes. */
  oidc?: { route: string; params?: Record<string, unknown> };
}
type KoaMiddleware = (ctx: KoaContext, next: () => Promise<void>) => Promise<void>;
interface OidcProvider {
  callback(): (req: IncomingMessage, res: ServerResponse) => void;
  use(middleware: KoaMiddleware): unknown;
  pathFor(name: string): string;
  interactionDetails(req: IncomingMessage, res: ServerResponse): Promise<InteractionDetails>;
  interactionFinished(req: IncomingMessage, res: ServerResponse, result: Record<string, unknown>): Promise<void>;
  Grant: { new (init: { accountId: string; clientId: string }): OidcGrant; find(id: string): Promise<OidcGrant | undefined> };
  RefreshToken: { find(value: string): Promise<{ destroy(): Promise<void> } | undefined> };
}
type ProviderConstructor = new (issuer: string, configuration: Record<string, unknown>) => OidcProvider;

let providerClass: Promise<ProviderConstructor> | undefined;

/** Loads oidc-provider once, hiding only its import-time "Unsupported runtime" notice (it targets Node 22; it runs on 20). */
function loadProvider(): Promise<ProviderConstructor> {
  providerClass ??= (async () => {
    const specifier: string = 'oidc-provider'; // a non-literal specifier: no declarations to resolve
    const warn = console.warn;
    console.warn = (...args: unknown[]) => {
      if (typeof args[0] === 'string' && args[0].includes('oidc-provider WARNING: Unsupported runtime')) return;
      warn(...args);
    };
    try {
      const mod = (await import(specifier)) as { default: ProviderConstructor };
      return mod.default;
    } finally {
      console.warn = warn;
    }
  })();
  return providerClass;
}

let signingKey: Record<string, unknown> | undefined;
/** One RSA key per test process: ID tokens default to RS256, and key generation is the slow part of start-up. */
function testSigningKey(): Record<string, unknown> {
  signingKey ??= generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ format: 'jwk' }) as Record<string, unknown>;
  return signingKey;
}

/**
 * Storage for oidc-provider models. Passing an adapter silences the dev-adapter warning, and unlike the
 * bundled LRU adapter nothing is evicted at expiry, so an expired device code still answers expired_token
 * (the provider checks expiry itself) instead of disappearing into invalid_grant.
 */
function createAdapterFactory(): (model: string) => unknown {
  const store = new Map<string, Record<string, unknown>>();
  const userCodes = new Map<string, string>();
  const sessionUids = new Map<string, string>();
  return (model: string) => {
    const key = (id: string) => `${model}:${id}`;
    const find = async (id: string | undefined) => {
      const found = id === undefined ? undefined : store.get(key(id));
      return found === undefined ? undefined : structuredClone(found);
    };
    return {
      async upsert(id: string, payload: Record<string, unknown>) {
        store.set(key(id), structuredClone(payload));
        if (typeof payload.userCode === 'string') userCodes.set(payload.userCode, id);
        if (model === 'Session' && typeof payload.uid === 'string') sessionUids.set(payload.uid, id);
      },
      find,
      findByUserCode: (userCode: string) => find(userCodes.get(userCode)),
      findByUid: (uid: string) => find(sessionUids.get(uid)),
      async consume(id: string) {
        const found = store.get(key(id));
        if (found) found.consumed = Math.floor(Date.now() / 1000);
      },
      async destroy(id: string) {
        store.delete(key(id));
      },
      async revokeByGrantId(grantId: string) {
        for (const [k, payload] of store) {
          if (k.startsWith(`${model}:`) && payload.grantId === grantId) store.delete(k);
        }
      },
    };
  };
}

/** Starts oidc-provider on 127.0.0.1 on a random port. */
export async function startAuthServer(options: AuthServerOptions = {}): Promise<AuthServer> {
  const Provider = await loadProvider();
  const redirectUris = options.redirectUris ?? [...DEFAULT_REDIRECT_URIS];
  const deviceInterval = options.deviceInterval === undefined ? 1 : options.deviceInterval;
  const slowDownIncrementMs = (options.slowDownIncrementSeconds ?? 5) * 1000;

  const server: Server = createServer();
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const issuer = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

  const provider = new Provider(issuer, {
    adapter: createAdapterFactory(),
    jwks: { keys: [testSigningKey()] },
    cookies: { keys: [randomBytes(32).toString('base64url')] },
    clients: [
      {
        client_id: CLIENT_ID,
        token_endpoint_auth_method: 'none',
        application_type: options.applicationType ?? 'native',
        redirect_uris: redirectUris,
        response_types: ['code'],
        grant_types: ['authorization_code', 'refresh_token', DEVICE_GRANT],
      },
    ],
    scopes: ['openid', 'offline_access', ...(options.extraScopes ?? [])],
    pkce: { required: () => true }, // oidc-provider 9 only knows S256
    // Refresh tokens for every grant, not only for offline_access + prompt=consent (which the
    // provider demands at the authorization endpoint): real providers differ, tests should not care.
    issueRefreshToken: async (_ctx: unknown, client: { grantTypeAllowed(type: string): boolean }) =>
      client.grantTypeAllowed('refresh_token'),
    expiresWithSession: async () => false,
    rotateRefreshToken: options.rotateRefreshTokens ?? true,
    findAccount: async (_ctx: unknown, sub: string) => ({ accountId: sub, claims: async () => ({ sub }) }),
    interactions: { url: (_ctx: unknown, interaction: { uid: string }) => `${INTERACTION_PREFIX}${interaction.uid}` },
    features: {
      devInteractions: { enabled: false },
      ...(options.jwtAccessTokens && {
        resourceIndicators: {
          enabled: true,
          defaultResource: async () => JWT_RESOURCE,
          useGrantedResource: async () => true,
          getResourceServerInfo: async () => ({
            scope: '',
            audience: JWT_RESOURCE,
            accessTokenFormat: 'jwt',
            accessTokenTTL: options.accessTokenTtlSeconds ?? 3600,
          }),
        },
      }),
      deviceFlow: {
        enabled: true,
        userCodeInputSource: async (ctx: KoaContext, form: string, out?: { error?: string }, err?: Error) => {
          ctx.body = page('device-input', form, err ? `${err.name}:${out?.error ?? ''}` : '');
        },
        userCodeConfirmSource: async (ctx: KoaContext, form: string) => {
          ctx.body = page('device-confirm', form);
        },
        successSource: async (ctx: KoaContext) => {
          ctx.body = page('device-success', '<p>Sign-in complete.</p>');
        },
      },
    },
    ttl: {
      AccessToken: options.accessTokenTtlSeconds ?? 3600,
      AuthorizationCode: 60,
      DeviceCode: options.deviceCodeTtlSeconds ?? 600,
      IdToken: 3600,
      RefreshToken: 14 * 24 * 3600,
      Interaction: 600,
      Session: 3600,
      Grant: 14 * 24 * 3600,
    },
    clientBasedCORS: () => true,
    renderError: async (ctx: KoaContext, out: Record<string, unknown>) => {
      ctx.body = page('error', escapeHtml(JSON.stringify(out)), String(out.error ?? 'error'));
    },
  });

  const paths = {
    authorization: provider.pathFor('authorization'),
    token: provider.pathFor('token'),
    deviceAuthorization: provider.pathFor('device_authorization'),
    verification: provider.pathFor('code_verification'),
  };
  const endpoints = {
    authorization: issuer + paths.authorization,
    token: issuer + paths.token,
    deviceAuthorization: issuer + paths.deviceAuthorization,
    verification: issuer + paths.verification,
  };

  const stats: AuthServerStats = {
    tokenRequests: 0,
    tokenRequestTimes: [],
    deviceAuthorizationRequests: 0,
    authorizationRequests: 0,
    tokenRequestLog: [],
  };
  const issued: AuthServer['issued'] = { accessTokens: [], refreshTokens: [], deviceCodes: [], authorizationCodes: [], codeVerifiers: [], states: [] };
  const polls = new Map<string, { at: number; intervalMs: number }>();
  let injectedFailures = { count: 0, status: 503 };

  provider.use(async (ctx, next) => {
    const at = Date.now();
    const isToken = ctx.method === 'POST' && ctx.path === paths.token;
    if (isToken) {
      stats.tokenRequests++;
      stats.tokenRequestTimes.push(at);
    }
    if (ctx.method === 'POST' && ctx.path === paths.deviceAuthorization) stats.deviceAuthorizationRequests++;
    if (ctx.path === paths.authorization) stats.authorizationRequests++;

    if (isToken && injectedFailures.count > 0) {
      injectedFailures.count--;
      ctx.status = injectedFailures.status;
      ctx.body = { error: 'temporarily_unavailable', error_description: 'failure injected by the test harness' };
      stats.tokenRequestLog.push({ at, grantType: undefined, status: ctx.status, error: 'temporarily_unavailable' });
      return;
    }

    await next();

    const route = ctx.oidc?.route;
    const body = (ctx.body ?? {}) as Record<string, unknown>;
    if (route === 'device_authorization' && ctx.status === 200) {
      if (typeof body.device_code === 'string') issued.deviceCodes.push(body.device_code);
      if (deviceInterval !== null) body.interval = deviceInterval;
    }
    if (route === 'authorization' && typeof ctx.oidc?.params?.state === 'string') issued.states.push(ctx.oidc.params.state);
    if (route === 'token') {
      const grantType = ctx.oidc?.params?.grant_type as string | undefined;
      if (typeof ctx.oidc?.params?.code_verifier === 'string') issued.codeVerifiers.push(ctx.oidc.params.code_verifier);
      const deviceCode = ctx.oidc?.params?.device_code;
      if (options.enforcePollInterval && grantType === DEVICE_GRANT && typeof deviceCode === 'string') {
        // RFC 8628 §3.5, done here because oidc-provider 9 never answers slow_down. Only a pending
        // answer is rewritten: a poll that already got tokens must keep them.
        const previous = polls.get(deviceCode);
        const intervalMs = previous?.intervalMs ?? (deviceInterval ?? 5) * 1000;
        const tooFast = previous !== undefined && at - previous.at < previous.intervalMs - POLL_TOLERANCE_MS;
        if (tooFast && body.error === 'authorization_pending') {
          ctx.status = 400;
          ctx.body = { error: 'slow_down', error_description: 'polling too fast; add 5 seconds to the interval' };
          polls.set(deviceCode, { at, intervalMs: intervalMs + slowDownIncrementMs });
        } else {
          polls.set(deviceCode, { at, intervalMs });
        }
      }
      const answer = (ctx.body ?? {}) as Record<string, unknown>;
      if (ctx.status === 200) {
        if (typeof answer.access_token === 'string') issued.accessTokens.push(answer.access_token);
        if (typeof answer.refresh_token === 'string') issued.refreshTokens.push(answer.refresh_token);
      }
      const entry: AuthServerStats['tokenRequestLog'][number] = { at, grantType, status: ctx.status };
      if (typeof answer.error === 'string') entry.error = answer.error;
      stats.tokenRequestLog.push(entry);
    }
    const location = ctx.response.get('location');
    if (location && (route === 'authorization' || route === 'resume')) {
      const code = URL.parse(location)?.searchParams.get('code');
      if (code) issued.authorizationCodes.push(code);
    }
  });

  /** The login and consent "pages": complete the pending prompt at once, as a user who always agrees would (or refuses consent on decision=deny). */
  async function handleInteraction(req: IncomingMessage, res: ServerResponse, url: URL): Promise<void> {
    try {
      const details = await provider.interactionDetails(req, res);
      if (url.pathname !== `${INTERACTION_PREFIX}${details.uid}`) throw new Error('interaction mismatch');
      let result: Record<string, unknown>;
      if (details.prompt.name === 'login') {
        result = { login: { accountId: ACCOUNT_ID } };
      } else if (details.prompt.name === 'consent' && url.searchParams.get('decision') === 'deny') {
        result = { error: 'access_denied', error_description: 'End-User refused consent' };
      } else if (details.prompt.name === 'consent') {
        const clientId = String(details.params.client_id);
        const accountId = details.session?.accountId ?? ACCOUNT_ID;
        const grant = (details.grantId ? await provider.Grant.find(details.grantId) : undefined) ?? new provider.Grant({ accountId, clientId });
        const missing = details.prompt.details;
        if (missing.missingOIDCScope?.length) grant.addOIDCScope(missing.missingOIDCScope.join(' '));
        if (missing.missingOIDCClaims?.length) grant.addOIDCClaims(missing.missingOIDCClaims);
        for (const [indicator, scopes] of Object.entries(missing.missingResourceScopes ?? {})) grant.addResourceScope(indicator, scopes.join(' '));
        result = { consent: { grantId: await grant.save() } };
      } else {
        throw new Error(`unsupported prompt ${details.prompt.name}`);
      }
      await provider.interactionFinished(req, res, result);
    } catch (err) {
      if (res.headersSent) return;
      res.writeHead(400, { 'content-type': 'text/html' });
      res.end(page('error', escapeHtml(String(err)), 'interaction_failed'));
    }
  }

  const providerHandler = provider.callback();
  server.on('request', (req: IncomingMessage, res: ServerResponse) => {
    const url = new URL(req.url ?? '/', issuer);
    if (req.method === 'GET' && url.pathname.startsWith(INTERACTION_PREFIX)) void handleInteraction(req, res, url);
    else providerHandler(req, res);
  });

  /** Enters the user code on the verification page and presses Continue or Abort on the confirm page. */
  async function deviceDecision(userCode: string, approve: boolean): Promise<void> {
    const ua = new ScriptedUserAgent(issuer);
    const input = await ua.navigate(new URL(endpoints.verification));
    if ('leftTo' in input) throw new Error(`verification page redirected to ${input.leftTo.href}`);
    const inputForm = parseForm(input.html, input.url);
    const confirm = await ua.navigate(new URL(inputForm.action), { form: { ...inputForm.fields, user_code: userCode } });
    if ('leftTo' in confirm) throw new Error(`user code form redirected to ${confirm.leftTo.href}`);
    if (pageKind(confirm.html).kind !== 'device-confirm') {
      throw new Error(`user code ${userCode} was not accepted: ${pageKind(confirm.html).error || confirm.status}`);
    }
    const confirmForm = parseForm(confirm.html, confirm.url);
    const decision = approve ? confirmForm.fields : { ...confirmForm.fields, abort: 'yes' }; // the Abort button submits the same form with abort=yes
    const done = await ua.navigate(new URL(confirmForm.action), { form: decision });
    if ('leftTo' in done) throw new Error(`device flow redirected to ${done.leftTo.href}`);
    const outcome = pageKind(done.html);
    const expected = approve ? outcome.kind === 'device-success' : outcome.error.startsWith('AbortedError');
    if (!expected) throw new Error(`device ${approve ? 'approval' : 'denial'} failed: ${outcome.kind} ${outcome.error} (HTTP ${done.status})`);
  }

  async function authorize(authUrl: string, opts: { deny?: boolean } = {}): Promise<URL> {
    const start = new URL(authUrl);
    if (start.origin !== issuer) throw new Error(`${authUrl} is not on ${issuer}`);
    const ua = new ScriptedUserAgent(issuer);
    const onRedirect = (url: URL) => {
      if (opts.deny && url.origin === issuer && url.pathname.startsWith(INTERACTION_PREFIX)) url.searchParams.set('decision', 'deny');
      return url;
    };
    const result = await ua.navigate(start, { onRedirect });
    if ('leftTo' in result) return result.leftTo;
    const { kind, error } = pageKind(result.html);
    throw new Error(`authorization stopped on a ${kind} page (HTTP ${result.status}): ${error} ${result.html.slice(0, 300)}`);
  }

  return {
    issuer,
    clientId: CLIENT_ID,
    endpoints,
    scopes: 'openid offline_access',
    redirectUris,
    accountId: ACCOUNT_ID,
    stats,
    issued,
    approveDevice: (userCode) => deviceDecision(userCode, true),
    denyDevice: (userCode) => deviceDecision(userCode, false),
    authorize,
    async authorizeAndFollow(authUrl, opts) {
      const target = await authorize(authUrl, opts);
      const res = await fetch(target, { redirect: 'manual' });
      return { status: res.status, body: await res.text() };
    },
    async revokeRefreshToken(refreshToken) {
      const token = await provider.RefreshToken.find(refreshToken);
      if (!token) return false;
      await token.destroy();
      return true;
    },
    failNextTokenRequests(count, status = 503) {
      injectedFailures = { count, status };
    },
    close: () =>
      new Promise<void>((resolve, reject) => {
        server.close((err) => (err ? reject(err) : resolve()));
        server.closeAllConnections();
      }),
  };
}
