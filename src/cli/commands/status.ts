/**
 * `credproxy status`: what the host store holds and what needs attention — never a secret — and
 * which daemon the other commands would go through.
 */
import { Command } from 'commander';
import { TokenService } from '../../oauth/TokenService.js';
import { secondsToExpiry } from '../../oauth/token.js';
import type { PostgresReport } from '../../store/postgresReport.js';
import { StoreError } from '../../store/types.js';
import { describeExpiry, formatDuration } from '../util/duration.js';
import { daemonSocket } from '../util/daemonSocket.js';
import { type DaemonSocket } from '../util/proxy.js';
import { keyFileWarning, withHostStores, type HostStores } from '../util/stores.js';

/** Below this, a token without a refresh token is worth a warning before it lapses. */
const SOON_SECONDS = 10 * 60;

export interface TokenStatus {
  provider: string;
  bucket: string;
  expiry?: number;
  expiresInSeconds?: number;
  expired?: boolean;
  hasRefreshToken?: boolean;
  /** The last upstream refresh: when (epoch ms) and how it ended ('ok' or an error code). */
  lastRefresh?: { at: number; result?: string };
  /** When the running daemon will renew it (epoch ms), from its daemon_status. */
  nextRenewal?: number;
  /** Only a new login brings it back; `fix` is the command. */
  needsLogin?: boolean;
  fix?: string;
  /** Why the token could not be read (a StoreError message), instead of the fields above. */
  error?: string;
}

/** `socket` as in serve's --json and current.json; `pid` only for a discovered daemon. */
export interface DaemonStatus {
  socket: string;
  source: DaemonSocket['source'];
  pid?: number;
}

export interface StatusReport {
  store: { backend: string; reason: string; protects: string; dataDir: string };
  /** The PostgreSQL store: schema, daemons seen recently, lock waits (never the password). */
  database?: PostgresReport;
  tokens: TokenStatus[];
  keys: string[];
  warnings: string[];
  /** The daemon token, login and logout would use (null: they use the host store). */
  daemon: DaemonStatus | null;
}

/** What status learns from the running daemon's daemon_status. */
export interface DaemonFacts {
  renewals: Map<string, number>;
  /** The daemon's store, when it is a shared one that reports health. */
  storeHealth?: { state: string; detail: string };
}

async function tokenStatus(stores: HostStores, provider: string, bucket: string, nowMs: number, renewals: Map<string, number>): Promise<TokenStatus | null> {
  try {
    const token = await stores.tokens.getToken(provider, bucket);
    if (!token) return null; // removed between listing and reading
    const service = new TokenService(stores.tokens, { now: () => nowMs });
    const left = secondsToExpiry(token, nowMs);
    // Only whether a refresh token exists is reported; the value is never copied out.
    const hasRefreshToken = typeof token.refresh_token === 'string' && token.refresh_token.length > 0;
    const at = service.lastRefreshAttempt(token);
    const result = service.lastRefreshResult(token);
    const next = renewals.get(`${provider}/${bucket}`);
    const needsLogin = service.needsLogin(token);
    return {
      provider,
      bucket,
      expiry: token.expiry,
      expiresInSeconds: left,
      expired: left <= 0,
      hasRefreshToken,
      ...(at !== undefined && { lastRefresh: { at, ...(result !== undefined && { result }) } }),
      ...(next !== undefined && { nextRenewal: next }),
      needsLogin,
      ...(needsLogin && { fix: `credproxy login ${provider}${bucket === 'default' ? '' : ` --bucket ${bucket}`}` }),
    };
  } catch (err) {
    if (err instanceof StoreError) return { provider, bucket, error: err.message };
    throw err;
  }
}

/** Collects the report; exported for reuse by tests and other front ends. */
export async function collectStatus(
  stores: HostStores,
  nowMs: number,
  env: NodeJS.ProcessEnv,
  daemon: DaemonSocket | null = null,
  facts: DaemonFacts = { renewals: new Map() },
): Promise<StatusReport> {
  const renewals = facts.renewals;
  const tokens: TokenStatus[] = [];
  for (const provider of await stores.tokens.listProviders()) {
    for (const bucket of await stores.tokens.listBuckets(provider)) {
      const entry = await tokenStatus(stores, provider, bucket, nowMs, renewals);
      if (entry) tokens.push(entry);
    }
  }
  const warnings: string[] = [];
  for (const t of tokens) {
    const name = `${t.provider}/${t.bucket}`;
    if (t.error !== undefined) warnings.push(`${name} cannot be read: ${t.error}`);
    else if (t.needsLogin && t.hasRefreshToken) warnings.push(`${name}: the provider rejected its refresh token; run ${t.fix}`);
    else if (t.expired && !t.hasRefreshToken) warnings.push(`${name} is expired and has no refresh token; import a new token`);
    else if (!t.hasRefreshToken && (t.expiresInSeconds ?? 0) < SOON_SECONDS) {
      warnings.push(`${name} ${describeExpiry(t.expiresInSeconds ?? 0)} and has no refresh token`);
    }
  }
  const keyFile = keyFileWarning(stores.backend, stores.dataDir, env);
  if (keyFile) warnings.push(keyFile);
  if (facts.storeHealth?.state === 'degraded') warnings.push(`the daemon's store is degraded: ${facts.storeHealth.detail}`);
  const database = await databaseReport(stores);
  return {
    store: { backend: stores.backend, reason: stores.reason, protects: stores.protects, dataDir: stores.dataDir },
    ...(database && { database }),
    tokens,
    keys: await stores.keys.listKeys(),
    warnings,
    daemon: daemonEntry(daemon),
  };
}

/** The PostgreSQL store's own report (the other backends have none). */
async function databaseReport(stores: HostStores): Promise<PostgresReport | undefined> {
  const shared = stores.tokens as Partial<{ report(): Promise<PostgresReport> }>;
  return typeof shared.report === 'function' ? shared.report() : undefined;
}

function databaseLines(d: PostgresReport, nowMs: number): string[] {
  const hosts = d.hosts.map(
    (h) => `    ${h.host} pid ${h.pid} (credproxy ${h.version}): last seen ${describeAgo(nowMs - Date.parse(h.lastSeen))}, lock waits ${h.lockWaits}`,
  );
  return [
    `  database: ${d.target}, schema version ${d.schemaVersion}, ${d.connected ? 'connected' : `UNREACHABLE since ${new Date(d.degradedSince ?? nowMs).toISOString()}`}`,
    `  refresh locks waited for now: ${d.lockWaiters}`,
    '  daemons seen in the last 5 minutes:',
    ...(hosts.length ? hosts : ['    (none)']),
  ];
}

function daemonEntry(daemon: DaemonSocket | null): DaemonStatus | null {
  return daemon && { socket: daemon.socketPath, source: daemon.source, ...(daemon.pid !== undefined && { pid: daemon.pid }) };
}

function daemonLine(d: DaemonStatus): string {
  if (d.source === 'env') return `Daemon: ${d.socket} (from the environment; token, login and logout go through it)`;
  return `Daemon: pid ${d.pid}, socket ${d.socket} (token, login and logout go through it)`;
}

function tokenLine(t: TokenStatus, width: number, nowMs: number): string {
  const name = `${t.provider}/${t.bucket}`.padEnd(width);
  if (t.error !== undefined) return `  ${name}  UNREADABLE`;
  const parts = [describeExpiry(t.expiresInSeconds ?? 0), `refresh token: ${t.hasRefreshToken ? 'yes' : 'no'}`];
  if (t.lastRefresh) parts.push(`last refresh: ${describeAgo(nowMs - t.lastRefresh.at)} ${t.lastRefresh.result ?? ''}`.trimEnd());
  if (t.nextRenewal !== undefined) parts.push(`next renewal: ${describeIn(t.nextRenewal - nowMs)}`);
  if (t.needsLogin) parts.push(`NEEDS LOGIN: ${t.fix}`);
  return `  ${name}  ${parts.join('  ')}`;
}

/** "42s ago", "5m ago", "3h 5m ago" (the project's one duration format). */
function describeAgo(ms: number): string {
  return `${formatDuration(ms / 1000)} ago`;
}

/** "in 42s", or "now" for a due time already passed. */
function describeIn(ms: number): string {
  return ms <= 0 ? 'now' : `in ${formatDuration(ms / 1000)}`;
}

/** The human-readable report. */
export function renderStatus(r: StatusReport, nowMs = Date.now()): string {
  const width = Math.max(0, ...r.tokens.map((t) => t.provider.length + t.bucket.length + 1));
  const lines = [
    `Store: ${r.store.backend} (${r.store.reason})`,
    `  protects: ${r.store.protects}`,
    `  data dir: ${r.store.dataDir}`,
    ...(r.database ? databaseLines(r.database, nowMs) : []),
    ...(r.daemon ? [daemonLine(r.daemon)] : []),
    'Tokens:',
    ...(r.tokens.length ? r.tokens.map((t) => tokenLine(t, width, nowMs)) : ['  (none)']),
    'Keys:',
    ...(r.keys.length ? r.keys.map((k) => `  ${k}`) : ['  (none)']),
  ];
  if (r.warnings.length) lines.push('Warnings:', ...r.warnings.map((w) => `  - ${w}`));
  return `${lines.join('\n')}\n`;
}

/** When the running daemon will renew each bucket, and its store's health (its daemon_status); none on any failure. */
async function daemonFacts(): Promise<DaemonFacts> {
  const times = new Map<string, number>();
  const facts: DaemonFacts = { renewals: times };
  const { daemonControlPath, daemonStatus } = await import('../util/control.js');
  const target = await daemonControlPath(undefined);
  if (!target) return facts;
  try {
    const status = await daemonStatus(target.control, 2_000);
    for (const t of (status.tokens ?? []) as Array<{ provider?: unknown; bucket?: unknown; next_renewal?: unknown }>) {
      if (typeof t.provider === 'string' && typeof t.bucket === 'string' && typeof t.next_renewal === 'number') times.set(`${t.provider}/${t.bucket}`, t.next_renewal);
    }
    const health = status.store_health as { state?: unknown; detail?: unknown } | undefined;
    if (typeof health?.state === 'string' && typeof health.detail === 'string') facts.storeHealth = { state: health.state, detail: health.detail };
  } catch {
    // The report stands without the renewal times.
  }
  return facts;
}

/**
 * The report when a shared store cannot be reached: what it is and why it failed, and what the
 * running daemon says of it (it may still be serving cached tokens). Null for any other failure.
 */
async function unreachableStore(cmd: Command, err: unknown, daemon: DaemonSocket | null, facts: DaemonFacts): Promise<StatusReport | null> {
  if (!(err instanceof StoreError) || err.reason !== 'unavailable') return null;
  const [{ decideBackend, describeStore }, { storeChoice }, { dataDir }] = await Promise.all([
    import('../../store/open.js'),
    import('../util/storeChoice.js'),
    import('../../paths.js'),
  ]);
  const dir = dataDir(process.env);
  const decision = await decideBackend({ backend: storeChoice(cmd), dataDir: dir, env: process.env }).catch(() => null);
  if (decision?.backend !== 'postgres') return null;
  const { reason, protects } = describeStore(decision, dir, process.env);
  const warnings = [`the store cannot be read from here: ${err.message}`];
  if (facts.storeHealth?.state === 'degraded') warnings.push(`the daemon's store is degraded: ${facts.storeHealth.detail}`);
  return {
    store: { backend: 'postgres', reason, protects, dataDir: dir },
    tokens: [],
    keys: [],
    warnings,
    daemon: daemonEntry(daemon),
  };
}

export function statusCommand(): Command {
  return new Command('status')
    .description('show the store backend, tokens with their expiry, key names and warnings (no secrets)')
    .option('--json', 'print the report as JSON')
    .addHelpText(
      'after',
      `
The report is always of the host store (--store). When CREDPROXY_SOCKET is set or a daemon runs
for this session, a "Daemon:" line (JSON: "daemon") names it: token, login and logout go through
it, and it may use another store (serve --store).`,
    )
    .action(async (opts: { json?: boolean }, cmd: Command) => {
      const daemon = await daemonSocket();
      const facts = daemon?.source === 'discovered' ? await daemonFacts() : { renewals: new Map<string, number>() };
      let report: StatusReport;
      try {
        report = await withHostStores(cmd, (stores) => collectStatus(stores, Date.now(), process.env, daemon, facts));
      } catch (err) {
        const unreachable = await unreachableStore(cmd, err, daemon, facts);
        if (!unreachable) throw err;
        report = unreachable;
        // The report is printed, but the store could not be read: scripts must see that.
        process.exitCode = 1;
      }
      process.stdout.write(opts.json ? `${JSON.stringify(report, null, 2)}\n` : renderStatus(report));
    });
}
