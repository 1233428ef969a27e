/**
 * `doctor`'s daemon checks: the running daemon's `daemon_status` (PROTOCOL.md §11) through its
 * control socket, found by current.json or named by --daemon.
 */
import fs from 'node:fs';
import path from 'node:path';
import { z } from 'zod';
import { DISCOVERY_FILE, PACKAGE_VERSION, type DiscoveryEntry } from '../../server/discovery.js';
import { defaultSocketDir } from '../../server/socketPath.js';
import { ok, problem, sh, warnCheck, type Check } from './check.js';
import { daemonControlPath, daemonStatus } from './control.js';
import { formatDuration } from './duration.js';

/** daemon_status reads memory only; a daemon that takes longer than this is itself the finding. */
const STATUS_TIMEOUT_MS = 5000;

/**
 * The parts of daemon_status the report shows. zod drops every other key, so whatever a daemon
 * adds later never reaches the output unseen; session ids are cut to their 8-char prefix here too.
 */
const statusSchema = z.object({
  pid: z.number().int(),
  version: z.string(),
  store: z.string(),
  uptime_s: z.number(),
  listeners: z.array(
    z.object({ kind: z.string(), path: z.string().optional(), host: z.string().optional(), port: z.number().optional(), grant_id: z.string().optional() }),
  ),
  connections: z.object({ total: z.number(), limit: z.number().optional() }),
  grants: z.number(),
  sessions: z.array(
    z.object({ session: z.string().transform((id) => id.slice(0, 8)), provider: z.string(), bucket: z.string(), flow_type: z.string(), expires: z.number() }),
  ),
  tokens: z.array(z.object({ provider: z.string(), bucket: z.string(), expiry: z.number(), refresh_token: z.boolean() })),
});

/** What the report shows of a daemon: no token value, capability or full session id. */
export type DaemonSummary = z.output<typeof statusSchema>;

/** The `daemon` and (when one answers) `tokens` checks, and the daemon's summary. */
export async function daemonChecks(explicit: string | undefined, env: NodeJS.ProcessEnv, nowMs: number): Promise<{ checks: Check[]; daemon?: DaemonSummary }> {
  const target = await daemonControlPath(explicit, env);
  if (!target) return { checks: [ok('daemon', `no daemon running (no live entry in ${discoveryFile(env)}); start one with \`credproxy serve\``)] };
  let reply: unknown;
  try {
    reply = await daemonStatus(target.control, STATUS_TIMEOUT_MS);
  } catch (err) {
    return { checks: [unreachable(target.control, target.entry, err, env)] };
  }
  const parsed = statusSchema.safeParse(reply);
  if (!parsed.success) {
    const where = parsed.error.issues[0]?.path.join('.') || 'the reply';
    return { checks: [problem('daemon', `the daemon at ${target.control} answered daemon_status with a reply this CLI does not understand (at ${where})`, restart(target.entry?.pid))] };
  }
  return { checks: evaluateDaemon(parsed.data, nowMs), daemon: parsed.data };
}

/** The checks a daemon's status leads to; pure, so the rules are tested without a daemon of another version. */
export function evaluateDaemon(s: DaemonSummary, nowMs: number): Check[] {
  const limit = s.connections.limit === undefined ? '' : ` (limit ${s.connections.limit})`;
  const counts = `${plural(s.listeners.length, 'listener')}, ${plural(s.connections.total, 'connection')}${limit}, ${plural(s.grants, 'grant')}, ${plural(s.sessions.length, 'login session')}`;
  const detail = `pid ${s.pid}, version ${s.version}, ${s.store} store, up ${formatDuration(s.uptime_s)}; ${counts}`;
  const daemon =
    s.version === PACKAGE_VERSION
      ? ok('daemon', detail)
      : warnCheck('daemon', `${detail}; the daemon runs version ${s.version}, this CLI is ${PACKAGE_VERSION}`, restart(s.pid));
  return [daemon, tokensCheck(s.tokens, nowMs)];
}

function tokensCheck(tokens: DaemonSummary['tokens'], nowMs: number): Check {
  if (tokens.length === 0) return ok('tokens', 'the daemon holds no tokens');
  const expired = tokens.filter((t) => t.expiry * 1000 <= nowMs);
  // The daemon renews these on their next use; only the others need the user.
  const renewable = expired.filter((t) => t.refresh_token).length;
  const dead = expired.filter((t) => !t.refresh_token);
  const summary = `${plural(tokens.length, 'token')}${renewable ? `, ${renewable} expired with a refresh token (renewed on next use)` : ''}`;
  if (dead.length === 0) return ok('tokens', `${summary}; none is expired without a refresh token`);
  const names = dead.map((t) => `${t.provider}/${t.bucket}`).join(', ');
  const logins = dead.map((t) => `credproxy login ${sh(t.provider)}${t.bucket === 'default' ? '' : ` --bucket ${sh(t.bucket)}`}`);
  return warnCheck('tokens', `${summary}; expired without a refresh token: ${names}`, logins.join(' && '));
}

/** A daemon that was found (or named) but did not answer. */
function unreachable(control: string, entry: DiscoveryEntry | null, err: unknown, env: NodeJS.ProcessEnv): Check {
  const code = (err as { code?: unknown }).code;
  const message = `${err instanceof Error ? err.message : String(err)}${typeof code === 'string' ? ` (${code})` : ''}`;
  if (entry === null) {
    // Named with --daemon: a wrong path, or a main or sandbox socket, which refuses admin ops.
    const fix = code === 'UNAUTHORIZED' ? 'pass the control socket: the "control" path that `credproxy serve --json` prints' : 'credproxy serve --json (its "control" path is the one for --daemon)';
    return problem('daemon', `no daemon answers daemon_status at ${control}: ${message}`, fix);
  }
  const file = discoveryFile(env);
  // current.json outlives a daemon that was SIGKILLed; a reused pid then looks alive.
  const fix = fs.existsSync(control) ? restart(entry.pid) : `rm ${sh(file)}`;
  return problem('daemon', `${file} names pid ${entry.pid}, which is running, but its control socket ${control} does not answer: ${message}`, fix);
}

function restart(pid: number | undefined): string {
  return pid === undefined ? 'restart the daemon with this version: credproxy serve' : `kill ${pid} && credproxy serve`;
}

function discoveryFile(env: NodeJS.ProcessEnv): string {
  try {
    return path.join(defaultSocketDir(env), DISCOVERY_FILE);
  } catch {
    return DISCOVERY_FILE;
  }
}

function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? '' : 's'}`;
}
