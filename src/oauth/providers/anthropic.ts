/**
 * Anthropic (Claude): PKCE code-paste. The code page shows `CODE#STATE` (the paste flow splits and
 * checks it); token requests are JSON bodies that carry `state` (tokenRequestFormat json).
 */
import { PresetAdapter, type Preset } from './presetAdapter.js';

export const anthropic: Preset = {
  definition: {
    name: 'anthropic',
    clientId: '9d1c250a-e61b-44d9-88ed-5944d1962f5e',
    scopes: ['org:create_api_key', 'user:profile', 'user:inference'],
    flows: ['pkce_redirect'],
    endpoints: {
      authorization: 'https://claude.ai/oauth/authorize',
      token: 'https://console.anthropic.com/v1/oauth/token',
    },
    redirectUri: 'https://console.anthropic.com/oauth/code/callback',
    authParams: { code: 'true' },
    tokenRequestFormat: 'json',
  },
  create: (definition) => new PresetAdapter(definition),
};
