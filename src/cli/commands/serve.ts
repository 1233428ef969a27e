/** `credproxy serve`: run the daemon in the foreground until SIGINT/SIGTERM/SIGHUP. */
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { Command, Option } from 'commander';
import { loadPolicy, type Policy } from '../../auth/policy.js';
import { startDaemon } from '../../server/daemon.js';
import { CliError, warn } from '../util/errors.js';
import { registryFromConfig } from '../util/loginConfig.js';
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
    .option('--config <file>', 'login provider configuration for oauth_* (default: DATA_DIR/config.json)')
    .addHelpText(
      'after',
      `
DATA_DIR is $CREDPROXY_HOME, else $XDG_DATA_HOME/credproxy, else ~/.local/share/credproxy.
The chosen store backend and why are reported on stderr. The daemon stops cleanly, removing its
socket, on SIGINT, SIGTERM or SIGHUP.`,
    )
    .action(async (opts: ServeOptions, cmd: Command) => {
      // Cheap checks first, so a typo in the policy file fails before any store is touched.
      const policy = readPolicy(opts.policy);
      const registry = registryFromConfig(opts.config);
      const socketPath = opts.socket === undefined ? undefined : path.resolve(opts.socket);

      const stores = await openHostStores(storeChoice(cmd));
      try {
        let audit = opts.audit;
        if (audit === undefined) {
          // A file by default: on stderr the audit trail would drown the daemon's own messages.
          await mkdir(stores.dataDir, { recursive: true, mode: 0o700 });
          audit = path.join(stores.dataDir, 'audit.log');
        }
        const daemon = await startDaemon({
          tokens: stores.tokens,
          keys: stores.keys,
          ...(socketPath !== undefined && { socketPath }),
          ...(policy !== undefined && { policy }),
          // The daemon adds the policy file's allowUids to these.
          ...(opts.allowUid !== undefined && { allowUids: opts.allowUid }),
          audit,
          ...(opts.tcp !== undefined && { tcp: opts.tcp }),
          providers: registry,
          handleSignals: true,
          log: (line: string) => warn(line),
        }).catch((err: unknown) => {
          // The daemon's start errors (path too long, unsafe directory, address in use) are written for users.
          throw new CliError(err instanceof Error ? err.message : String(err));
        });

        // Reported once the daemon is up, so a start-up failure stays a single error line.
        warn(`store backend: ${stores.backend} (${stores.reason})`);
        // The daemon's own "listening on …" line (stderr) names the TCP address in text mode.
        const ready = opts.json
          ? JSON.stringify({ socket: daemon.socketPath, control: daemon.controlPath, ...(daemon.tcpAddress && { tcp: daemon.tcpAddress }) })
          : daemon.socketPath;
        process.stdout.write(`${ready}\n`);
        // The daemon waits for a refresh still saving its rotated refresh token before it reports closed.
        await daemon.closed;
      } finally {
        await closeHostStores(stores);
      }
    });
}
