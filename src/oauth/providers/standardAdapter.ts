/**
 * The adapter of any standards-compliant OAuth 2.0 server (custom providers), built on oauth4webapi:
 * RFC 8628 device grant, RFC 7636 PKCE code flows, refresh. Presets extend it (presetAdapter.ts) and
 * override the steps their provider does differently.
 */
import * as oauth from 'oauth4webapi';
import type { StoredToken } from '../../store/types.js';
import { FlowError, type FlowDeps, type FlowType, type StartedFlow } from '../flowTypes.js';
import type { ProviderAdapter } from '../providerTypes.js';
import { createDeviceCodeFlow, type DeviceAuthorization } from '../flows/deviceCodeFlow.js';
import { startBrowserRedirectFlow } from '../flows/browserRedirectFlow.js';
import { startPkcePasteFlow } from '../flows/pkcePasteFlow.js';
import { createPkce, type CodeExchange } from '../flows/pkce.js';
import { oauthRequestOptions, postJson, readTokenResponse, upstreamCall, UpstreamError } from '../upstream.js';
import { definitionProblems, type ProviderDefinition } from './definition.js';
import { mapTokenResponse } from './tokenMapping.js';

export type Grant = 'authorization_code' | 'device_code' | 'refresh_token';
/** The definition as adapters expose it: without the client secret. */
export type PublicDefinition = Readonly<Omit<ProviderDefinition, 'clientSecret'>>;
/** A device authorization plus the state needed to poll it. */
export interface DeviceStart {
  authorization: DeviceAuthorization;
  pollOnce: (signal: AbortSignal) => Promise<StoredToken | 'pending'>;
}

export class StandardAdapter implements ProviderAdapter {
  readonly definition: PublicDefinition;
  // ES private so that logging or inspecting an adapter never shows it.
  readonly #clientSecret: string | undefined;

  constructor(
    definition: ProviderDefinition,
    readonly kind: 'preset' | 'custom' = 'custom',
  ) {
    const { clientSecret, ...rest } = definition;
    this.definition = Object.freeze(rest);
    this.#clientSecret = clientSecret;
  }

  get name(): string {
    return this.definition.name;
  }
  get flows(): readonly FlowType[] {
    return this.definition.flows;
  }
  get publicFields(): readonly string[] {
    return this.definition.publicFields;
  }
  protected get clientSecret(): string | undefined {
    return this.#clientSecret;
  }

  /** Field-level problems of the definition for the flows it lists (checked when the config loads). */
  problems(): Array<{ path: string; message: string }> {
    const problems = definitionProblems({ ...this.definition, clientSecret: this.#clientSecret });
    if (this.flows.includes('device_code') && !this.definition.endpoints.deviceAuthorization) {
      problems.push({ path: 'endpoints.deviceAuthorization', message: 'is required for the device_code flow' });
    }
    if (this.kind === 'custom' && !this.definition.clientId) problems.push({ path: 'clientId', message: 'is required' });
    return problems;
  }

  async start(flow: FlowType, deps: FlowDeps): Promise<StartedFlow> {
    if (!this.flows.includes(flow)) {
      throw new FlowError('FLOW_INITIATION_FAILED', `Provider ${this.name} does not support the ${flow} flow (supported: ${this.flows.join(', ')})`);
    }
    if (!this.definition.clientId) {
      throw new FlowError('FLOW_INITIATION_FAILED', `${this.name} needs a client id: set providers.${this.name}.clientId in the config file`);
    }
    const codeFlow = {
      authUrl: (p: { challenge: string; state: string; redirectUri: string }) => this.authorizationUrl(p),
      exchange: (p: CodeExchange, signal: AbortSignal) => this.exchangeCode(p, deps, signal),
      expectedIssuer: this.definition.issuer,
    };
    try {
      switch (flow) {
        case 'device_code': {
          const device = await this.startDevice(deps);
          return createDeviceCodeFlow({ ...device, defaultIntervalSeconds: this.definition.defaultIntervalSeconds }, deps);
        }
        case 'pkce_redirect':
          return await startPkcePasteFlow({ ...codeFlow, redirectUri: this.definition.redirectUri! }, deps);
        case 'browser_redirect':
          return await startBrowserRedirectFlow({ ...codeFlow, callback: this.definition.callback! }, deps);
      }
    } catch (err) {
      if (err instanceof FlowError) throw err;
      const detail = err instanceof UpstreamError ? `: ${err.message}` : '';
      throw new FlowError('FLOW_INITIATION_FAILED', `Could not start the ${flow} login for ${this.name}${detail}`);
    }
  }

  /** Refreshes a stored token; the result is to be merged into it (mergeToken). Throws UpstreamError. */
  async refresh(stored: Pick<StoredToken, 'refresh_token'>, deps: FlowDeps, signal?: AbortSignal): Promise<StoredToken> {
    if (!stored.refresh_token) throw new UpstreamError('no refresh token');
    if (this.definition.tokenRequestFormat === 'json') {
      return this.jsonTokenRequest({ grant_type: 'refresh_token', refresh_token: stored.refresh_token }, deps, signal);
    }
    const refreshToken = stored.refresh_token;
    const response = await upstreamCall('token endpoint', signal, () =>
      oauth.refreshTokenGrantRequest(this.as(), this.client(), this.clientAuth(), refreshToken, this.requestOptions(deps, this.definition.endpoints.token, signal)),
    );
    return this.tokenFrom(response, 'refresh_token', deps);
  }

  // ---- building blocks, overridden by presets ----

  protected as(): oauth.AuthorizationServer {
    const e = this.definition.endpoints;
    return {
      issuer: this.definition.issuer ?? new URL(e.token).origin,
      authorization_endpoint: e.authorization,
      token_endpoint: e.token,
      device_authorization_endpoint: e.deviceAuthorization,
    };
  }

  protected client(): oauth.Client {
    return { client_id: this.definition.clientId! };
  }

  protected clientAuth(): oauth.ClientAuth {
    const secret = this.#clientSecret;
    const method = this.definition.tokenEndpointAuthMethod ?? (secret ? 'client_secret_post' : 'none');
    if (method === 'none' || !secret) return oauth.None();
    return method === 'client_secret_basic' ? oauth.ClientSecretBasic(secret) : oauth.ClientSecretPost(secret);
  }

  protected headers(): Record<string, string> {
    return this.definition.userAgent ? { 'user-agent': this.definition.userAgent } : {};
  }

  protected requestOptions(deps: FlowDeps, url: string, signal: AbortSignal | undefined) {
    return oauthRequestOptions(deps, url, signal, this.headers());
  }

  /** The URL the user opens: extra params first (Anthropic's code=true leads), then the standard ones. */
  protected authorizationUrl(p: { challenge: string; state: string; redirectUri: string }): string {
    const url = new URL(this.definition.endpoints.authorization!);
    const q = url.searchParams;
    for (const [k, v] of Object.entries(this.definition.authParams)) q.set(k, v);
    q.set('response_type', 'code');
    q.set('client_id', this.definition.clientId!);
    q.set('redirect_uri', p.redirectUri);
    if (this.definition.scopes.length > 0) q.set('scope', this.definition.scopes.join(' '));
    q.set('code_challenge', p.challenge);
    q.set('code_challenge_method', 'S256');
    q.set('state', p.state);
    return url.href;
  }

  /** RFC 8628 §3.1–3.2 (with PKCE when the definition says so, Qwen), then polling per §3.4. */
  protected async startDevice(deps: FlowDeps): Promise<DeviceStart> {
    const url = this.definition.endpoints.deviceAuthorization!;
    const params = new URLSearchParams();
    if (this.definition.scopes.length > 0) params.set('scope', this.definition.scopes.join(' '));
    const pkce = this.definition.devicePkce ? await createPkce(deps) : undefined;
    if (pkce) {
      params.set('code_challenge', pkce.challenge);
      params.set('code_challenge_method', 'S256');
    }
    const response = await upstreamCall('device authorization endpoint', undefined, () =>
      oauth.deviceAuthorizationRequest(this.as(), this.client(), this.clientAuth(), params, this.requestOptions(deps, url, undefined)),
    );
    const device = await this.readDeviceAuthorization(response);
    const deviceCode = device.device_code;
    const extra: Record<string, string> = pkce ? { code_verifier: pkce.verifier } : {};
    return {
      authorization: {
        userCode: device.user_code,
        verificationUri: device.verification_uri,
        verificationUriComplete: device.verification_uri_complete,
        intervalSeconds: device.interval,
        expiresInSeconds: device.expires_in,
      },
      pollOnce: (signal) => this.deviceGrant(deviceCode, extra, deps, signal),
    };
  }

  protected async readDeviceAuthorization(response: Response): Promise<oauth.DeviceAuthorizationResponse> {
    return upstreamCall('device authorization endpoint', undefined, () => oauth.processDeviceAuthorizationResponse(this.as(), this.client(), response));
  }

  /** One device_code grant request. */
  protected async deviceGrant(deviceCode: string, extra: Record<string, string>, deps: FlowDeps, signal: AbortSignal): Promise<StoredToken> {
    const response = await upstreamCall('token endpoint', signal, () =>
      oauth.deviceCodeGrantRequest(this.as(), this.client(), this.clientAuth(), deviceCode, {
        ...this.requestOptions(deps, this.definition.endpoints.token, signal),
        additionalParameters: extra,
      }),
    );
    return this.tokenFrom(response, 'device_code', deps);
  }

  /** The authorization_code grant (PKCE paste and browser flows). */
  protected async exchangeCode(p: CodeExchange, deps: FlowDeps, signal: AbortSignal): Promise<StoredToken> {
    if (this.definition.tokenRequestFormat === 'json') {
      return this.jsonTokenRequest(
        { grant_type: 'authorization_code', code: p.code, state: p.state, redirect_uri: p.redirectUri, code_verifier: p.verifier },
        deps,
        signal,
      );
    }
    // The flow already checked state and iss; this only brands the parameters for oauth4webapi.
    const callback = oauth.validateAuthResponse(this.as(), this.client(), new URLSearchParams({ code: p.code }), oauth.skipStateCheck);
    const response = await upstreamCall('token endpoint', signal, () =>
      oauth.authorizationCodeGrantRequest(this.as(), this.client(), this.clientAuth(), callback, p.redirectUri, p.verifier, this.requestOptions(deps, this.definition.endpoints.token, signal)),
    );
    return this.tokenFrom(response, 'authorization_code', deps);
  }

  /** Token request with a JSON body (Anthropic): client_id (and secret) added here. */
  protected async jsonTokenRequest(body: Record<string, string>, deps: FlowDeps, signal: AbortSignal | undefined): Promise<StoredToken> {
    const full: Record<string, string> = { ...body, client_id: this.definition.clientId! };
    if (this.#clientSecret) full.client_secret = this.#clientSecret;
    const response = await postJson(deps, this.definition.endpoints.token, full, signal, this.headers(), 'token endpoint');
    return mapTokenResponse(this.definition, await readTokenResponse(response), deps.now());
  }

  private async tokenFrom(response: Response, grant: Grant, deps: FlowDeps): Promise<StoredToken> {
    return mapTokenResponse(this.definition, await this.readTokenResponse(response, grant), deps.now());
  }

  /** Standard servers get oauth4webapi's full response validation (id_token claims included). */
  protected async readTokenResponse(response: Response, grant: Grant): Promise<Record<string, unknown>> {
    const as = this.as();
    const client = this.client();
    const process =
      grant === 'device_code'
        ? oauth.processDeviceCodeResponse
        : grant === 'authorization_code'
          ? oauth.processAuthorizationCodeResponse
          : oauth.processRefreshTokenResponse;
    const body = await upstreamCall('token endpoint', undefined, () => process(as, client, response));
    return body as unknown as Record<string, unknown>;
  }
}
