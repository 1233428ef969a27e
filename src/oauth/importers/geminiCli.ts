/**
 * Gemini CLI's login file: `~/.gemini/oauth_creds.json`, google-auth-library's credentials:
 * `{"access_token", "refresh_token", "scope", "token_type", "id_token"?, "expiry_date" (epoch ms)}`.
 */
import path from 'node:path';
import { mergeToken } from '../token.js';
import { copyWithObjectAt, Fields, homeDir, setIfString, type ToolFormat } from './toolFormat.js';

export const geminiCli: ToolFormat = {
  name: 'gemini-cli',
  tool: 'Gemini CLI',
  provider: 'gemini',
  defaultPath: (env) => path.join(homeDir(env), '.gemini', 'oauth_creds.json'),

  read(doc) {
    const f = Fields.root(doc);
    const token = mergeToken(null, {
      access_token: f.string('access_token'),
      refresh_token: f.optionalString('refresh_token'),
      expiry: f.epochMsAsSeconds('expiry_date'),
      token_type: f.optionalString('token_type'),
      scope: f.optionalString('scope'),
      // Host-only (a secret field); kept so a write-back leaves the file's id_token consistent.
      id_token: f.optionalString('id_token'),
    });
    return { token };
  },

  write(doc, token) {
    const { copy, target } = copyWithObjectAt(doc, []);
    target.access_token = token.access_token;
    setIfString(target, 'refresh_token', token.refresh_token);
    setIfString(target, 'id_token', token.id_token);
    target.expiry_date = token.expiry * 1000;
    return copy;
  },
};
