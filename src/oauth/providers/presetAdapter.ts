/**
 * Base of the built-in presets. Their servers are known to bend the standard (GitHub answers errors
 * with HTTP 200, Google may omit token_type and uses verification_url, id_tokens are only read for
 * claims), so responses are read leniently; requests still go through oauth4webapi where the wire
 * format is standard.
 */
import type * as oauth from 'oauth4webapi';
import { oauthBodyError, readJsonObject, readTokenResponse, UpstreamError } from '../upstream.js';
import { StandardAdapter, type Grant } from './standardAdapter.js';
import type { ProviderDefinition, ProviderDefinitionInput } from './definition.js';

export class PresetAdapter extends StandardAdapter {
  constructor(definition: ProviderDefinition) {
    super(definition, 'preset');
  }

  protected override async readTokenResponse(response: Response, _grant: Grant): Promise<Record<string, unknown>> {
    return readTokenResponse(response);
  }

  protected override async readDeviceAuthorization(response: Response): Promise<oauth.DeviceAuthorizationResponse> {
    const what = 'device authorization endpoint';
    const body = await readJsonObject(response, what);
    if (body && typeof body.error === 'string') throw oauthBodyError(what, body, response.status);
    if (!response.ok) throw new UpstreamError(`${what} failed with HTTP ${response.status}`, { status: response.status });
    const str = (v: unknown) => (typeof v === 'string' && v.length > 0 ? v : undefined);
    const num = (v: unknown) => {
      const n = typeof v === 'string' ? Number(v) : v;
      return typeof n === 'number' && Number.isFinite(n) && n > 0 ? n : undefined;
    };
    const deviceCode = str(body?.device_code);
    const userCode = str(body?.user_code);
    const verificationUri = str(body?.verification_uri) ?? str(body?.verification_url) ?? this.definition.endpoints.verification;
    if (!deviceCode || !userCode || !verificationUri) throw new UpstreamError(`${what} returned an incomplete response`);
    return {
      device_code: deviceCode,
      user_code: userCode,
      verification_uri: verificationUri,
      verification_uri_complete: str(body?.verification_uri_complete),
      expires_in: num(body?.expires_in) ?? 0,
      interval: num(body?.interval),
    };
  }
}

/** A built-in provider: its definition as written and how to build its adapter. */
export interface Preset {
  definition: ProviderDefinitionInput;
  create(definition: ProviderDefinition): StandardAdapter;
}
