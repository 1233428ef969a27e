/**
 * Gemini CLI's login file: `~/.gemini/oauth_creds.json`, google-auth-library's credentials:
 * `{"access_token", "refresh_token", "scope", "token_type", "id_token"?, "expiry_date" (epoch ms)}`.
 */
import { oauthCredsFormat } from './oauthCredsFormat.js';

export const geminiCli = oauthCredsFormat({
  name: 'gemini-cli',
  tool: 'Gemini CLI',
  provider: 'gemini',
  dir: '.gemini',
  // id_token is host-only (a secret field); kept so a write-back leaves the file's id_token consistent.
  kept: ['scope', 'id_token'],
  written: ['id_token'],
});
