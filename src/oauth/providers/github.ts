/**
 * GitHub: device code. OAuth apps are per owner, so there is no built-in client id. The token
 * endpoint answers pending/slow_down/expired/denied with HTTP 200 and an `error` field (read by the
 * lenient preset reader). Tokens without `expires_in` never expire: stored with expiry NEVER_EXPIRES
 * rather than a guessed hour, after which a valid token would look dead with nothing to refresh it.
 */
import { PresetAdapter, type Preset } from './presetAdapter.js';

export const github: Preset = {
  definition: {
    name: 'github',
    flows: ['device_code'],
    endpoints: {
      deviceAuthorization: 'https://github.com/login/device/code',
      token: 'https://github.com/login/oauth/access_token',
      verification: 'https://github.com/login/device',
    },
    tokenMapping: { nonExpiring: true },
  },
  create: (definition) => new PresetAdapter(definition),
};
