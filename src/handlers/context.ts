/** What every op handler receives besides its validated payload, and what each op answers. */
import type { Grant } from '../auth/grants.js';
import type { PeerCredentials } from '../auth/peer.js';
import type { FlowPublicData, FlowType } from '../oauth/flowTypes.js';
import type { Refresher } from '../oauth/freshToken.js';
import type { TokenService } from '../oauth/TokenService.js';
import type { SanitizedToken } from '../oauth/token.js';
import type { OpName, Payload } from '../protocol/messages.js';
import type { KeyStore } from '../store/types.js';
import type { BucketUsage } from './bucketUsage.js';

export type { Refresher } from '../oauth/freshToken.js';

/** The services of a daemon (or of an in-process caller) that handlers use. */
export interface HandlerServices {
  tokens: TokenService;
  keys: KeyStore;
  usage: BucketUsage;
  refresher: Refresher | null;
  /** How long get_token of a still-valid token waits for its refresh before serving it as stored (~2 s). */
  refreshWaitMs?: number;
  /** The provider's public token fields (PROTOCOL.md §5), from its preset or config. */
  publicFields(provider: string): readonly string[];
  /** The daemon's control plane (§11); only the control socket's grant may reach it. */
  admin?: AdminService;
}

/** Where a grant's injection routes are served and what each sets in the sandbox (`{url}`: its base URL there). */
export type InjectListing = {
  socket: string;
  /** The loopback port; requests start with `/<key>/` (the key is for the grant's program only). */
  tcp?: { host: string; port: number; key: string };
  routes: Array<{ route: string; env: Record<string, string> }>;
};

/** One grant as grant_list shows it. */
export type GrantListing = {
  grant_id: string;
  label?: string;
  providers: Grant['providers'];
  keys: Grant['keys'];
  ops: Grant['ops'];
  created: number;
  expires?: number;
  connections: number;
  /** Names of its injection routes, when it has any. */
  inject?: string[];
};

/** The admin ops of PROTOCOL.md §11, implemented by the daemon. */
export interface AdminService {
  /** `conn` is the control connection: a grant without ttl_s ends when it closes. */
  openGrant(conn: number, request: Payload<'grant_open'>, signal: AbortSignal): Promise<OpResults['grant_open']>;
  /** False when no grant of that id was opened through grant_open. */
  closeGrant(grantId: string): Promise<boolean>;
  listGrants(): GrantListing[];
  status(): Promise<Record<string, unknown>>;
}

export interface HandlerContext extends HandlerServices {
  /** The connection's id (audit; control-connection lifetimes). */
  conn: number;
  grant: Grant;
  peer: PeerCredentials | null;
  /** Aborted when the request is cancelled or times out. */
  signal: AbortSignal;
}

export type Empty = Record<string, never>;

/** §6.1: session id, flow type, poll interval and the flow's public data. */
export type InitiateData = { session_id: string; flow_type: FlowType; pollIntervalMs: number } & FlowPublicData;

/** §6.2. */
export type PollData = { status: 'pending'; pollIntervalMs: number; interval?: number } | { status: 'complete'; token: SanitizedToken };

/** The data each op replies with. Token data is always a SanitizedToken, so a stored token does not compile. */
export type OpResults = {
  get_token: SanitizedToken;
  save_token: Empty;
  remove_token: Empty;
  list_providers: { providers: string[] };
  list_buckets: { buckets: string[] };
  get_bucket_stats: { bucket: string; requestCount: number; percentage: number; lastUsed?: number };
  get_api_key: { key: string };
  list_api_keys: { keys: string[] };
  has_api_key: { exists: boolean };
  refresh_token: SanitizedToken;
  oauth_initiate: InitiateData;
  oauth_exchange: SanitizedToken;
  oauth_poll: PollData;
  oauth_cancel: Empty;
  grant_open: { grant_id: string; socket: string; capability?: string; inject?: InjectListing };
  grant_close: Empty;
  grant_list: { grants: GrantListing[] };
  daemon_status: Record<string, unknown>;
};

/** Ops served by handlers; `cancel` belongs to the connection. */
export type HandlerOp = Exclude<OpName, 'cancel'>;

/** A handler answers with its data, or a promise of it when it has to wait (the dispatcher takes both). */
export type Handler<O extends HandlerOp> = (ctx: HandlerContext, payload: Payload<O>) => Promise<OpResults[O]> | OpResults[O];

export type HandlerTable = { [O in HandlerOp]: Handler<O> };
