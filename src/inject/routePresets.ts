/**
 * Built-in injection routes (PROVIDERS.md, "Injection routes"). Each names where the upstream takes
 * its credential and which variables common clients read; the config file can change any field.
 * API-key routes read the key stored under the route's own name (`credproxy keys set openai`).
 */
import { PLACEHOLDER, type RouteInput } from './routeSchema.js';

export const ROUTE_PRESETS: ReadonlyMap<string, RouteInput> = new Map<string, RouteInput>([
  // Anthropic API keys go in x-api-key (docs.anthropic.com, "Authentication").
  [
    'anthropic',
    {
      upstream: 'https://api.anthropic.com',
      credential: { key: 'anthropic' },
      header: 'x-api-key',
      format: '{}',
      env: { ANTHROPIC_BASE_URL: '{url}', ANTHROPIC_API_KEY: PLACEHOLDER },
    },
  ],
  // Claude subscription tokens: a Bearer token, accepted only with the OAuth beta flag.
  [
    'anthropic-oauth',
    {
      upstream: 'https://api.anthropic.com',
      credential: { provider: 'anthropic' },
      extraHeaders: { 'anthropic-beta': 'oauth-2025-04-20' },
      env: { ANTHROPIC_BASE_URL: '{url}', ANTHROPIC_AUTH_TOKEN: PLACEHOLDER },
    },
  ],
  // The OpenAI SDKs expect the /v1 suffix in their base URL.
  ['openai', { upstream: 'https://api.openai.com', credential: { key: 'openai' }, env: { OPENAI_BASE_URL: '{url}/v1', OPENAI_API_KEY: PLACEHOLDER } }],
  [
    'gemini',
    {
      upstream: 'https://generativelanguage.googleapis.com',
      credential: { key: 'gemini' },
      header: 'x-goog-api-key',
      format: '{}',
      env: { GOOGLE_GEMINI_BASE_URL: '{url}', GEMINI_API_KEY: PLACEHOLDER },
    },
  ],
  // ChatGPT-plan Codex: the Responses API under chatgpt.com's backend, for the account the token was
  // issued to. Codex CLI's built-in provider reads OPENAI_BASE_URL and appends /responses.
  [
    'codex',
    {
      upstream: 'https://chatgpt.com/backend-api/codex',
      credential: { provider: 'codex' },
      tokenHeaders: { 'chatgpt-account-id': 'account_id' },
      env: { OPENAI_BASE_URL: '{url}', OPENAI_API_KEY: PLACEHOLDER },
    },
  ],
  // Qwen OAuth: each token names its API host in resource_url (portal.qwen.ai); the OpenAI-style API
  // is under /v1 there. Qwen Code's default for a token without one is DashScope's compatible mode.
  [
    'qwen',
    {
      upstream: 'https://dashscope.aliyuncs.com/compatible-mode/v1',
      credential: { provider: 'qwen' },
      upstreamFrom: { field: 'resource_url', path: '/v1', hosts: ['*.qwen.ai', 'dashscope.aliyuncs.com', 'dashscope-intl.aliyuncs.com'] },
      env: { OPENAI_BASE_URL: '{url}', OPENAI_API_KEY: PLACEHOLDER },
    },
  ],
  ['github', { upstream: 'https://api.github.com', credential: { provider: 'github' }, env: { GITHUB_API_URL: '{url}', GH_TOKEN: PLACEHOLDER } }],
]);
