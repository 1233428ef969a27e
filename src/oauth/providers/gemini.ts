/**
 * Google (gemini-cli's installed-app client): PKCE code-paste via codeassist.google.com, or a loopback
 * browser redirect. `access_type=offline` + `prompt=consent` or Google issues no refresh token. The
 * client secret is the one Google publishes for installed apps (not confidential, RFC 8252 §8.5).
 */
import { PresetAdapter, type Preset } from './presetAdapter.js';

export const gemini: Preset = {
  definition: {
    name: 'gemini',
    clientId: '681255809395-oo8ft2oprdrnp9e3aqf6av3hmdib135j.apps.googleusercontent.com',
    clientSecret: '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',
    issuer: 'https://accounts.google.com',
    scopes: [
      'https://www.googleapis.com/auth/cloud-platform',
      'https://www.googleapis.com/auth/userinfo.email',
      'https://www.googleapis.com/auth/userinfo.profile',
    ],
    flows: ['pkce_redirect', 'browser_redirect'],
    endpoints: {
      authorization: 'https://accounts.google.com/o/oauth2/v2/auth',
      token: 'https://oauth2.googleapis.com/token',
    },
    redirectUri: 'https://codeassist.google.com/authcode',
    // Installed-app clients accept any loopback port.
    callback: { host: '127.0.0.1', port: 0, path: '/oauth2callback' },
    authParams: { access_type: 'offline', prompt: 'consent' },
  },
  create: (definition) => new PresetAdapter(definition),
};
