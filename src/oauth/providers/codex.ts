/**
 * OpenAI Codex (ChatGPT sign-in): browser redirect on the fixed loopback port 1455 (the only redirect
 * URI the client has registered), with OpenAI's own device-auth protocol as the fallback: a user-code
 * request, polls that answer 403/404 while pending and 200 with an authorization code and a
 * server-generated PKCE verifier, then a normal form code exchange. `account_id` comes from the
 * id_token claims (tokenMapping.claims); a refresh without id_token keeps the stored one.
 */
import type { StoredToken } from '../../store/types.js';
import type { FlowDeps } from '../flowTypes.js';
import { nonEmptyString, positiveNumber, postJson, readOAuthJson, UpstreamError } from '../upstream.js';
import type { ProviderDefinition } from './definition.js';
import { PresetAdapter, type Preset } from './presetAdapter.js';
import type { DeviceStart } from './standardAdapter.js';

/** The official CLI gives up on a device code after 15 minutes; the endpoint names no lifetime. */
const DEVICE_AUTH_LIFETIME_S = 15 * 60;

export class CodexAdapter extends PresetAdapter {
  override problems(): Array<{ path: string; message: string }> {
    const problems = super.problems().filter((p) => p.path !== 'endpoints.deviceAuthorization');
    if (this.flows.includes('device_code')) {
      for (const key of ['deviceAuthUserCode', 'deviceAuthToken', 'deviceAuthRedirectUri', 'verification'] as const) {
        if (!this.definition.endpoints[key]) problems.push({ path: `endpoints.${key}`, message: 'is required for the device_code flow' });
      }
    }
    return problems;
  }

  protected override async startDevice(deps: FlowDeps): Promise<DeviceStart> {
    const e = this.definition.endpoints;
    const what = 'device authorization endpoint';
    const response = await postJson(deps, e.deviceAuthUserCode!, { client_id: this.definition.clientId! }, undefined, this.headers(), what);
    const body = await readOAuthJson(response, what);
    const deviceAuthId = nonEmptyString(body.device_auth_id);
    const userCode = nonEmptyString(body.user_code) ?? nonEmptyString(body.usercode);
    if (!deviceAuthId || !userCode) throw new UpstreamError(`${what} returned an incomplete response`);

    // The exchange is a second request; it runs on the next permitted poll so that one poll never
    // waits for two upstream calls.
    let grant: { code: string; verifier: string } | undefined;
    const pollOnce = async (signal: AbortSignal): Promise<StoredToken | 'pending'> => {
      if (grant) {
        return this.exchangeCode({ code: grant.code, verifier: grant.verifier, state: '', redirectUri: e.deviceAuthRedirectUri! }, deps, signal);
      }
      grant = await this.pollDeviceAuth(deviceAuthId, userCode, deps, signal);
      return 'pending';
    };
    return {
      authorization: {
        userCode,
        verificationUri: e.verification!,
        intervalSeconds: positiveNumber(body.interval),
        expiresInSeconds: positiveNumber(body.expires_in) ?? DEVICE_AUTH_LIFETIME_S,
      },
      pollOnce,
    };
  }

  /** One poll of the device-auth token endpoint: undefined while pending. */
  private async pollDeviceAuth(
    deviceAuthId: string,
    userCode: string,
    deps: FlowDeps,
    signal: AbortSignal,
  ): Promise<{ code: string; verifier: string } | undefined> {
    const what = 'device token endpoint';
    const response = await postJson(deps, this.definition.endpoints.deviceAuthToken!, { device_auth_id: deviceAuthId, user_code: userCode }, signal, this.headers(), what);
    if (response.status === 403 || response.status === 404) {
      await response.body?.cancel();
      return undefined;
    }
    const body = await readOAuthJson(response, what);
    const code = nonEmptyString(body.authorization_code);
    const verifier = nonEmptyString(body.code_verifier);
    if (!code || !verifier) throw new UpstreamError(`${what} returned an incomplete response`);
    return { code, verifier };
  }
}

export const codex: Preset = {
  definition: {
    name: 'codex',
    clientId: 'app_EMoamEEZ73f0CkXaXp7hrann',
    issuer: 'https://auth.openai.com',
    scopes: ['openid', 'profile', 'email', 'offline_access'],
    flows: ['browser_redirect', 'device_code'],
    endpoints: {
      authorization: 'https://auth.openai.com/oauth/authorize',
      token: 'https://auth.openai.com/oauth/token',
      deviceAuthUserCode: 'https://auth.openai.com/api/accounts/deviceauth/usercode',
      deviceAuthToken: 'https://auth.openai.com/api/accounts/deviceauth/token',
      // The page the user opens; .../deviceauth/callback is the redirect_uri of the exchange.
      verification: 'https://auth.openai.com/codex/device',
      deviceAuthRedirectUri: 'https://auth.openai.com/deviceauth/callback',
    },
    callback: { host: 'localhost', port: 1455, path: '/auth/callback' },
    authParams: { id_token_add_organizations: 'true', codex_cli_simplified_flow: 'true', originator: 'codex_cli_rs' },
    publicFields: ['account_id'],
    tokenMapping: {
      claims: { account_id: [['https://api.openai.com/auth', 'chatgpt_account_id'], ['account_id']] },
    },
  },
  create: (definition: ProviderDefinition) => new CodexAdapter(definition),
};
