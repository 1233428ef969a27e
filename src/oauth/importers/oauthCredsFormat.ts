/**
 * The flat `oauth_creds.json` shape that Gemini CLI (google-auth-library's credentials) and Qwen Code
 * both write: `{"access_token", "refresh_token", "token_type", "expiry_date" (epoch ms), ...}` at the
 * top level, with a few tool-specific string fields beside them.
 */
import path from 'node:path';
import { mergeToken } from '../token.js';
import { copyWithObjectAt, Fields, homeDir, setIfString, type ToolFormat } from './toolFormat.js';

export interface OAuthCredsSpec extends Pick<ToolFormat, 'name' | 'tool' | 'provider'> {
  /** The tool's directory under $HOME (`.gemini`, `.qwen`). */
  dir: string;
  /** Optional string fields read into the stored token. */
  kept: readonly string[];
  /** Of those, the ones written back into the file after a refresh. */
  written: readonly string[];
}

export function oauthCredsFormat(spec: OAuthCredsSpec): ToolFormat {
  return {
    name: spec.name,
    tool: spec.tool,
    provider: spec.provider,
    defaultPath: (env) => path.join(homeDir(env), spec.dir, 'oauth_creds.json'),

    read(doc) {
      const f = Fields.root(doc);
      // Read in this order, so the first bad field named is the same as the file's own order of importance.
      const fields: Record<string, unknown> = {
        access_token: f.string('access_token'),
        refresh_token: f.optionalString('refresh_token'),
        expiry: f.epochMsAsSeconds('expiry_date'),
        token_type: f.optionalString('token_type'),
      };
      for (const field of spec.kept) fields[field] = f.optionalString(field);
      return { token: mergeToken(null, fields) };
    },

    write(doc, token) {
      const { copy, target } = copyWithObjectAt(doc, []);
      target.access_token = token.access_token;
      setIfString(target, 'refresh_token', token.refresh_token);
      for (const field of spec.written) setIfString(target, field, token[field]);
      target.expiry_date = token.expiry * 1000;
      return copy;
    },
  };
}
