/**
 * Qwen Code's login file: `~/.qwen/oauth_creds.json`:
 * `{"access_token", "refresh_token", "token_type", "resource_url", "expiry_date" (epoch ms)}`.
 * `resource_url` is the API base the token is for (a public field of the qwen provider).
 */
import path from 'node:path';
import { mergeToken } from '../token.js';
import { copyWithObjectAt, Fields, homeDir, setIfString, type ToolFormat } from './toolFormat.js';

export const qwenCode: ToolFormat = {
  name: 'qwen-code',
  tool: 'Qwen Code',
  provider: 'qwen',
  defaultPath: (env) => path.join(homeDir(env), '.qwen', 'oauth_creds.json'),

  read(doc) {
    const f = Fields.root(doc);
    const token = mergeToken(null, {
      access_token: f.string('access_token'),
      refresh_token: f.optionalString('refresh_token'),
      expiry: f.epochMsAsSeconds('expiry_date'),
      token_type: f.optionalString('token_type'),
      resource_url: f.optionalString('resource_url'),
    });
    return { token };
  },

  write(doc, token) {
    const { copy, target } = copyWithObjectAt(doc, []);
    target.access_token = token.access_token;
    setIfString(target, 'refresh_token', token.refresh_token);
    setIfString(target, 'resource_url', token.resource_url);
    target.expiry_date = token.expiry * 1000;
    return copy;
  },
};
