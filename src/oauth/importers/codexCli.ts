/**
 * Codex CLI's login file: `$CODEX_HOME/auth.json`, else `~/.codex/auth.json`. Shape:
 * `{"OPENAI_API_KEY": null | "sk-…", "tokens": {"id_token", "access_token", "refresh_token",
 * "account_id"}, "last_refresh": ISO-8601}`. There is no expiry field: the expiry is the access
 * token's JWT `exp`, read without verifying the signature (it only times the refresh; the provider
 * judges the token). An OPENAI_API_KEY is an API key, not part of the login.
 */
import path from 'node:path';
import { decodeJwtPayload } from '../providers/tokenMapping.js';
import { mergeToken } from '../token.js';
import { copyWithObjectAt, envDir, FieldError, Fields, homeDir, setIfString, type FoundApiKey, type ToolFormat } from './toolFormat.js';

/** Where the ChatGPT account id sits in OpenAI's id_token claims. */
const AUTH_CLAIMS = 'https://api.openai.com/auth';

function expiryOfJwt(accessToken: string): number {
  const claims = decodeJwtPayload(accessToken);
  if (!claims) throw new FieldError('tokens.access_token', 'is not a JWT, so it carries no expiry (Codex CLI keeps none of its own)');
  const exp = claims.exp;
  if (typeof exp !== 'number' || !Number.isFinite(exp) || exp <= 0) {
    throw new FieldError('tokens.access_token', 'has no numeric "exp" claim, so its expiry is unknown');
  }
  return Math.floor(exp);
}

function accountIdOf(idToken: string | undefined): string | undefined {
  const auth = decodeJwtPayload(idToken)?.[AUTH_CLAIMS];
  if (typeof auth !== 'object' || auth === null) return undefined;
  const id = (auth as Record<string, unknown>).chatgpt_account_id;
  return typeof id === 'string' && id.length > 0 ? id : undefined;
}

export const codexCli: ToolFormat = {
  name: 'codex',
  tool: 'Codex CLI',
  provider: 'codex',
  defaultPath: (env) => path.join(envDir(env, 'CODEX_HOME') ?? path.join(homeDir(env), '.codex'), 'auth.json'),

  read(doc) {
    const root = Fields.root(doc);
    const key = root.optionalString('OPENAI_API_KEY');
    const apiKey: FoundApiKey | undefined = key === undefined ? undefined : { field: 'OPENAI_API_KEY', keyName: 'openai', value: key };
    if (!root.has('tokens') && apiKey) return { token: null, apiKey };
    const tokens = root.object('tokens', ' (no ChatGPT login in this file)');
    const accessToken = tokens.string('access_token');
    const idToken = tokens.optionalString('id_token');
    const token = mergeToken(null, {
      access_token: accessToken,
      refresh_token: tokens.optionalString('refresh_token'),
      expiry: expiryOfJwt(accessToken),
      token_type: 'Bearer',
      // Host-only (a secret field); kept so a write-back leaves the file's id_token consistent.
      id_token: idToken,
      account_id: tokens.optionalString('account_id') ?? accountIdOf(idToken),
    });
    return apiKey ? { token, apiKey } : { token };
  },

  write(doc, token, nowMs) {
    const { copy, target } = copyWithObjectAt(doc, ['tokens']);
    target.access_token = token.access_token;
    setIfString(target, 'refresh_token', token.refresh_token);
    setIfString(target, 'id_token', token.id_token);
    setIfString(target, 'account_id', token.account_id);
    copy.last_refresh = new Date(nowMs).toISOString();
    return copy;
  },
};
