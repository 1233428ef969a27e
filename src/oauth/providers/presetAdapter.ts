/**
 * Base of the built-in presets. Their servers are known to bend the standard (GitHub answers errors
 * with HTTP 200, Google may omit token_type and uses verification_url, id_tokens are only read for
 * claims), so responses are read leniently; requests still go through oauth4webapi where the wire
 * format is standard.
 */
import type * as oauth from 'oauth4webapi';
import { nonEmptyString, positiveNumber, readOAuthJson, readTokenResponse, UpstreamError } from '../upstream.js';
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
    const body = await readOAuthJson(response, what);
    const deviceCode = nonEmptyString(body.device_code);
    const userCode = nonEmptyString(body.user_code);
    const verificationUri = nonEmptyString(body.verification_uri) ?? nonEmptyString(body.verification_url) ?? this.definition.endpoints.verification;
    if (!deviceCode || !userCode || !verificationUri) throw new UpstreamError(`${what} returned an incomplete response`);
    return {
      device_code: deviceCode,
      user_code: userCode,
      verification_uri: verificationUri,
      verification_uri_complete: nonEmptyString(body.verification_uri_complete),
      expires_in: positiveNumber(body.expires_in) ?? 0,
      interval: positiveNumber(body.interval),
    };
  }
}

/** A built-in provider: its definition as written and how to build its adapter. */
export interface Preset {
  definition: ProviderDefinitionInput;
  create(definition: ProviderDefinition): StandardAdapter;
}
