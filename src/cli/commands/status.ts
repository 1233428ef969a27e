/**
 * `credproxy status`: what the host store holds and what needs attention — never a secret — and
 * which daemon the other commands would go through.
 */
import { Command } from 'commander';
import { secondsToExpiry } from '../../oauth/token.js';
import { StoreError } from '../../store/types.js';
import { describeExpiry } from '../util/duration.js';
import { daemonSocket, type DaemonSocket } from '../util/proxy.js';
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
  tokens: TokenStatus[];
  keys: string[];
  warnings: string[];
  /** The daemon token, login and logout would use (null: they use the host store). */
  daemon: DaemonStatus | null;
}

async function tokenStatus(stores: HostStores, provider: string, bucket: string, nowMs: number): Promise<TokenStatus | null> {
  try {
    const token = await stores.tokens.getToken(provider, bucket);
    if (!token) return null; // removed between listing and reading
    const left = secondsToExpiry(token, nowMs);
    // Only whether a refresh token exists is reported; the value is never copied out.
    const hasRefreshToken = typeof token.refresh_token === 'string' && token.refresh_token.length > 0;
    return { provider, bucket, expiry: token.expiry, expiresInSeconds: left, expired: left <= 0, hasRefreshToken };
  } catch (err) {
    if (err instanceof StoreError) return { provider, bucket, error: err.message };
    throw err;
  }
}

/** Collects the report; exported for reuse by tests and other front ends. */
export async function collectStatus(stores: HostStores, nowMs: number, env: NodeJS.ProcessEnv, daemon: DaemonSocket | null = null): Promise<StatusReport> {
  const tokens: TokenStatus[] = [];
  for (const provider of await stores.tokens.listProviders()) {
    for (const bucket of await stores.tokens.listBuckets(provider)) {
      const entry = await tokenStatus(stores, provider, bucket, nowMs);
      if (entry) tokens.push(entry);
    }
  }
  const warnings: string[] = [];
  for (const t of tokens) {
    const name = `${t.provider}/${t.bucket}`;
    if (t.error !== undefined) warnings.push(`${name} cannot be read: ${t.error}`);
    else if (t.expired && !t.hasRefreshToken) warnings.push(`${name} is expired and has no refresh token; import a new token`);
    else if (!t.hasRefreshToken && (t.expiresInSeconds ?? 0) < SOON_SECONDS) {
      warnings.push(`${name} ${describeExpiry(t.expiresInSeconds ?? 0)} and has no refresh token`);
    }
  }
  const keyFile = keyFileWarning(stores.backend, stores.dataDir, env);
  if (keyFile) warnings.push(keyFile);
  return {
    store: { backend: stores.backend, reason: stores.reason, protects: stores.protects, dataDir: stores.dataDir },
    tokens,
    keys: await stores.keys.listKeys(),
    warnings,
    daemon: daemon && { socket: daemon.socketPath, source: daemon.source, ...(daemon.pid !== undefined && { pid: daemon.pid }) },
  };
}

function daemonLine(d: DaemonStatus): string {
  if (d.source === 'env') return `Daemon: ${d.socket} (from the environment; token, login and logout go through it)`;
  return `Daemon: pid ${d.pid}, socket ${d.socket} (token, login and logout go through it)`;
}

function tokenLine(t: TokenStatus, width: number): string {
  const name = `${t.provider}/${t.bucket}`.padEnd(width);
  if (t.error !== undefined) return `  ${name}  UNREADABLE`;
  return `  ${name}  ${describeExpiry(t.expiresInSeconds ?? 0)}  refresh token: ${t.hasRefreshToken ? 'yes' : 'no'}`;
}

/** The human-readable report. */
export function renderStatus(r: StatusReport): string {
  const width = Math.max(0, ...r.tokens.map((t) => t.provider.length + t.bucket.length + 1));
  const lines = [
    `Store: ${r.store.backend} (${r.store.reason})`,
    `  protects: ${r.store.protects}`,
    `  data dir: ${r.store.dataDir}`,
    ...(r.daemon ? [daemonLine(r.daemon)] : []),
    'Tokens:',
    ...(r.tokens.length ? r.tokens.map((t) => tokenLine(t, width)) : ['  (none)']),
    'Keys:',
    ...(r.keys.length ? r.keys.map((k) => `  ${k}`) : ['  (none)']),
  ];
  if (r.warnings.length) lines.push('Warnings:', ...r.warnings.map((w) => `  - ${w}`));
  return `${lines.join('\n')}\n`;
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
      const report = await withHostStores(cmd, (stores) => collectStatus(stores, Date.now(), process.env, daemon));
      process.stdout.write(opts.json ? `${JSON.stringify(report, null, 2)}\n` : renderStatus(report));
    });
}
