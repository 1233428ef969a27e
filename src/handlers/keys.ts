/** API key ops: get_api_key, list_api_keys, has_api_key. Keys are managed on the host only. */
import { ProxyError } from '../protocol/errors.js';
import { allowsKey } from '../auth/grants.js';
import type { Handler } from './context.js';

export const getApiKey: Handler<'get_api_key'> = async (ctx, { name }) => {
  const key = await ctx.keys.getKey(name);
  if (key === null) throw new ProxyError('NOT_FOUND', `No API key named ${name}`);
  return { key };
};

export const listApiKeys: Handler<'list_api_keys'> = async (ctx) => {
  const keys = (await ctx.keys.listKeys()).filter((k) => allowsKey(ctx.grant, k));
  return { keys };
};

export const hasApiKey: Handler<'has_api_key'> = async (ctx, { name }) => {
  return { exists: await ctx.keys.hasKey(name) };
};
