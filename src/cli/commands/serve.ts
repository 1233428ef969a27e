/** `credproxy serve`: run the daemon in the foreground until SIGINT/SIGTERM/SIGHUP, or start it in the background (--detach). */
import path from 'node:path';
import { Command, Option } from 'commander';
import { loadPolicy, type Policy } from '../../auth/policy.js';
import { CliError, warn } from '../util/errors.js';
import { startHostDaemon } from '../util/hostDaemon.js';
import { registryFromConfig } from '../util/loginConfig.js';
import { routeTableFromConfig } from '../util/routeConfig.js';
import { SERVE_LOG, serveDetached } from '../util/serveDetach.js';
import { parseTcp, parseUid } from '../util/serveArgs.js';
import { closeHostStores, openHostStores, storeChoice } from '../util/stores.js';

interface ServeOptions {
  socket?: string;
  policy?: string;
  allowUid?: number[];
  audit?: string;
  tcp?: string;
  json?: boolean;
  config?: string;
  detach?: boolean;
}

function readPolicy(file: string | undefined): Policy | undefined {
  if (file === undefined) return undefined;
  try {
    return loadPolicy(file);
  } catch (err) {
    throw new CliError((err as Error).message);
  }
}

export function serveCommand(): Command {
  return new Command('serve')
    .description('run the credential daemon in the foreground; prints the socket path once it is ready')
    .option('--socket <path>', 'socket path (default: $XDG_RUNTIME_DIR/credproxy/… or $TMPDIR/credproxy-UID/…)')
    .option('--policy <file>', 'grants policy JSON (default: same-uid connections get full access)')
    .addOption(new Option('--allow-uid <uid>', 'also accept connections from this uid (repeatable)').argParser(parseUid))
    .option('--audit <target>', 'audit log: a file path, "-" for stderr, or "off" (default: DATA_DIR/audit.log)')
    .addOption(new Option('--tcp <addr>', 'also listen on loopback TCP, 127.0.0.1:PORT or [::1]:PORT (PORT 0 = any; clients need a capability token)').argParser(parseTcp))
    .option('--json', 'print {"socket": PATH, "control": PATH, "tcp": {host, port}} instead of the bare path')
    .option('--config <file>', 'provider and injection route configuration (default: DATA_DIR/config.json)')
    .option('--detach', `start the daemon in the background and exit once it is ready (stderr: DATA_DIR/${SERVE_LOG}); if one is running already, print its socket`)
    .addHelpText(
      'after',
      `
DATA_DIR is $CREDPROXY_HOME, else $XDG_DATA_HOME/credproxy, else ~/.local/share/credproxy.
The chosen store backend and why are reported on stderr. The daemon stops cleanly, removing its
socket, on SIGINT, SIGTERM or SIGHUP.

--detach prints what serve prints (the socket path, or --json's document) and exits 0 once the
daemon is ready; the daemon runs in its own session, its stderr appended to DATA_DIR/${SERVE_LOG}.
Without --socket, a daemon already running for this session (current.json in the default socket
directory) is reported instead, with exit 0 — the other options apply only to a daemon it starts —
so this fits in a shell profile:

  credproxy serve --detach >/dev/null 2>&1

Stop it with SIGTERM to the pid in current.json (credproxy status names it).`,
    )
    .action(async (opts: ServeOptions, cmd: Command) => {
      if (opts.detach) return serveDetached(opts);
      // Cheap checks first, so a typo in the policy file fails before any store is touched.
      const policy = readPolicy(opts.policy);
      const registry = registryFromConfig(opts.config);
      const routes = routeTableFromConfig(opts.config);
      const socketPath = opts.socket === undefined ? undefined : path.resolve(opts.socket);

      const stores = await openHostStores(storeChoice(cmd), process.env, { log: (line: string) => warn(line) });
      try {
        const daemon = await startHostDaemon(stores, {
          ...(socketPath !== undefined && { socketPath }),
          ...(policy !== undefined && { policy }),
          // The daemon adds the policy file's allowUids to these.
          ...(opts.allowUid !== undefined && { allowUids: opts.allowUid }),
          ...(opts.audit !== undefined && { audit: opts.audit }),
          ...(opts.tcp !== undefined && { tcp: opts.tcp }),
          ...(opts.config !== undefined && { configPath: opts.config }),
          providers: registry,
          routes,
          handleSignals: true,
          log: (line: string) => warn(line),
        });

        // Reported once the daemon is up, so a start-up failure stays a single error line.
        warn(`store backend: ${stores.backend} (${stores.reason})`);
        // The daemon's own "listening on …" line (stderr) names the TCP address in text mode.
        const ready = opts.json
          ? JSON.stringify({ socket: daemon.socketPath, control: daemon.controlPath, ...(daemon.tcpAddress && { tcp: daemon.tcpAddress }) })
          : daemon.socketPath;
        // Nothing else may go to stdout: under --detach it is a pipe whose reader exits after this line.
        process.stdout.write(`${ready}\n`);
        // The daemon waits for a refresh still saving its rotated refresh token before it reports closed.
        await daemon.closed;
      } finally {
        await closeHostStores(stores);
      }
    });
}
