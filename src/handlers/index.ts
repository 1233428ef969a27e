/** The op → handler table. `cancel` is not here: the connection owns it. */
import { adminHandlers } from './admin.js';
import type { HandlerTable } from './context.js';
import { getApiKey, hasApiKey, listApiKeys } from './keys.js';
import { type LoginService, oauthHandlers, refreshToken } from './oauth.js';
import { getBucketStats, getToken, listBuckets, listProviders, removeToken, saveToken } from './tokens.js';

export function buildHandlers(login: LoginService | null): HandlerTable {
  return {
    get_token: getToken,
    save_token: saveToken,
    remove_token: removeToken,
    list_providers: listProviders,
    list_buckets: listBuckets,
    get_bucket_stats: getBucketStats,
    get_api_key: getApiKey,
    list_api_keys: listApiKeys,
    has_api_key: hasApiKey,
    refresh_token: refreshToken,
    ...oauthHandlers(login),
    ...adminHandlers,
  };
}

export type { AdminService, GrantListing, Handler, HandlerContext, HandlerOp, HandlerServices, HandlerTable, OpResults, Refresher } from './context.js';
export type { LoginService } from './oauth.js';
export { BucketUsage } from './bucketUsage.js';
