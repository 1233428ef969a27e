/**
 * Qwen Code's login file: `~/.qwen/oauth_creds.json`:
 * `{"access_token", "refresh_token", "token_type", "resource_url", "expiry_date" (epoch ms)}`.
 * `resource_url` is the API base the token is for (a public field of the qwen provider).
 */
import { oauthCredsFormat } from './oauthCredsFormat.js';

export const qwenCode = oauthCredsFormat({
  name: 'qwen-code',
  tool: 'Qwen Code',
  provider: 'qwen',
  dir: '.qwen',
  kept: ['resource_url'],
  written: ['resource_url'],
});
