/** `credproxy doctor`: a health check of the host side — changes nothing, shows no secret. */
import { Command } from 'commander';
import type { Check } from '../util/check.js';
import type { DaemonSummary } from '../util/daemonChecks.js';
import { runDoctorChecks, type DoctorReport } from '../util/doctorChecks.js';
import { describeExpiry } from '../util/duration.js';
import { warn } from '../util/errors.js';
import { storeChoice } from '../util/storeChoice.js';

const LABEL: Record<Check['status'], string> = { ok: 'ok', warn: 'warn', problem: 'PROBLEM' };

/** The human-readable report: one line per check, the daemon's details, then the fixes. */
export function renderDoctor(report: DoctorReport, nowMs: number): string {
  const width = Math.max(...report.checks.map((c) => c.name.length));
  const lines = report.checks.map((c) => `${LABEL[c.status].padEnd(7)}  ${c.name.padEnd(width)}  ${c.detail}`);
  if (report.daemon) lines.push('', ...daemonLines(report.daemon, nowMs));
  const fixes = report.checks.filter((c) => c.fix !== undefined);
  if (fixes.length) lines.push('', 'Fixes:', ...fixes.map((c) => `  ${c.name}: ${c.fix}`));
  return `${lines.join('\n')}\n`;
}

function daemonLines(d: DaemonSummary, nowMs: number): string[] {
  const nowS = nowMs / 1000;
  // pid, version, uptime and the counts are in the daemon check's line already.
  return [
    'Daemon:',
    ...d.listeners.map((l) => {
      const where = l.path ?? (l.host !== undefined ? `${l.host}:${l.port ?? ''}` : '');
      return `  listener ${l.kind.padEnd(7)}  ${where}${l.grant_id !== undefined ? ` (grant ${l.grant_id})` : ''}`;
    }),
    ...d.tokens.map((t) => `  token ${t.provider}/${t.bucket}  ${describeExpiry(t.expiry - nowS)}  refresh token: ${t.refresh_token ? 'yes' : 'no'}`),
    ...d.sessions.map((s) => `  login session ${s.session}…  ${s.provider}/${s.bucket}  ${s.flow_type}  ${describeExpiry(s.expires / 1000 - nowS)}`),
  ];
}

export function doctorCommand(): Command {
  return new Command('doctor')
    .description('check the host: socket directory, store, keyring, sandbox tools, clock and the running daemon (changes nothing, no secrets)')
    .option('--json', 'print {"checks": [{name, status, detail, fix?}], "daemon"?: {...}}')
    .option('--daemon <control-socket>', "ask this daemon's control socket (default: the running daemon current.json names)")
    .addHelpText('after', '\nEach check is ok, warn or PROBLEM; every warn and PROBLEM comes with its fix. Exit status 1 when any check is a PROBLEM.')
    .action(async (opts: { json?: boolean; daemon?: string }, cmd: Command) => {
      const now = Date.now;
      const report = await runDoctorChecks({ env: process.env, store: storeChoice(cmd), ...(opts.daemon !== undefined && { daemon: opts.daemon }), now });
      process.stdout.write(opts.json ? `${JSON.stringify(report, null, 2)}\n` : renderDoctor(report, now()));
      const problems = report.checks.filter((c) => c.status === 'problem').length;
      if (problems) {
        warn(`doctor found ${problems} problem${problems === 1 ? '' : 's'}`);
        process.exitCode = 1;
      }
    });
}
