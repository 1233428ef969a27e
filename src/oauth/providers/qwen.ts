/**
 * Qwen: device code with PKCE — code_challenge on the device authorization, code_verifier on the
 * device grant (devicePkce). No interval in the device response: 5 s. `resource_url` in the token
 * response is the API base URL the sandbox needs, hence public.
 */
import { PresetAdapter, type Preset } from './presetAdapter.js';

export const qwen: Preset = {
  definition: {
    name: 'qwen',
    clientId: 'f0304373b74a44d2b584a3fb70ca9e56',
    scopes: ['openid', 'profile', 'email', 'model.completion'],
    flows: ['device_code'],
    endpoints: {
      deviceAuthorization: 'https://chat.qwen.ai/api/v1/oauth2/device/code',
      token: 'https://chat.qwen.ai/api/v1/oauth2/token',
    },
    devicePkce: true,
    defaultIntervalSeconds: 5,
    publicFields: ['resource_url'],
  },
  create: (definition) => new PresetAdapter(definition),
};
