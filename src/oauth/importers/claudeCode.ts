/**
 * Claude Code's login file: `~/.claude/.credentials.json` (`$CLAUDE_CONFIG_DIR/.credentials.json`
 * when that is set; macOS keeps it in the Keychain instead). Shape:
 * `{"claudeAiOauth": {"accessToken", "refreshToken", "expiresAt" (epoch ms), "scopes": [..], ...}}`,
 * often next to other sections (MCP logins) that a write-back leaves alone.
 */
import path from 'node:path';
import { mergeToken } from '../token.js';
import { copyWithObjectAt, envDir, Fields, homeDir, setIfString, type ToolFormat } from './toolFormat.js';

const SECTION = 'claudeAiOauth';

export const claudeCode: ToolFormat = {
  name: 'claude-code',
  tool: 'Claude Code',
  provider: 'anthropic',
  tokenHelpHint: (command) => `(settings.json: "apiKeyHelper": "${command}")`,
  defaultPath: (env) => path.join(envDir(env, 'CLAUDE_CONFIG_DIR') ?? path.join(homeDir(env), '.claude'), '.credentials.json'),

  read(doc) {
    const oauth = Fields.root(doc).object(SECTION, ' (no Claude subscription login in this file)');
    const scopes = oauth.optionalStrings('scopes');
    const token = mergeToken(null, {
      access_token: oauth.string('accessToken'),
      refresh_token: oauth.optionalString('refreshToken'),
      expiry: oauth.epochMsAsSeconds('expiresAt'),
      token_type: 'Bearer',
      scope: scopes?.join(' '),
    });
    return { token };
  },

  write(doc, token) {
    const { copy, target } = copyWithObjectAt(doc, [SECTION]);
    target.accessToken = token.access_token;
    setIfString(target, 'refreshToken', token.refresh_token);
    target.expiresAt = token.expiry * 1000;
    return copy;
  },
};
