/**
 * `--sandbox bwrap`: the system directories read-only, private /tmp, /home, /run and $HOME, the
 * workspace mounts, and of the daemon's directory only the grant's own socket subdirectory (§11).
 * Protected paths under a mount are masked. New pid, ipc and uts namespaces (and a new network
 * namespace with `--no-network`); every capability dropped, so a sandbox run as root cannot remount.
 * With injection routes and no network, a relay inside (node and one script, bound read-only) is
 * the program's only way out: 127.0.0.1:PORT in the sandbox to the grant's proxy socket.
 */
import fs from 'node:fs';
import path from 'node:path';
import { masksFor, sandboxPath, type Mount } from './mounts.js';
import { inheritedEnv, sandboxVariables, type LaunchPlan, type LaunchRequest } from './plan.js';
import { ttyInjectionFilter } from './seccomp.js';

/** Read-only from the host; a symlink (merged /usr) is recreated as the same symlink. */
const SYSTEM_DIRS = ['/usr', '/bin', '/sbin', '/lib', '/lib32', '/lib64', '/libx32', '/etc', '/opt'];

/**
 * Terminal-generated and hang-up signals go to the whole foreground process group, bwrap included,
 * and bwrap dies of them — killing the sandbox before the program could react. So bwrap runs with
 * them ignored, and the program gets them back at their defaults (`env`, coreutils ≥ 8.31).
 */
const GROUP_SIGNALS = 'INT,QUIT,TERM,HUP';

/** The descriptor bwrap writes its `{"child-pid": N}` to; 3 is the capability's. */
export const BWRAP_INFO_FD = 4;

/** The descriptor bwrap reads its seccomp filter from. */
export const BWRAP_SECCOMP_FD = 5;

/** Where inject mode's relay (node and the relay script) is bound inside the sandbox. */
const RELAY_NODE = '/run/credproxy-relay/node';
const RELAY_SCRIPT_PATH = '/run/credproxy-relay/relay.mjs';

/**
 * Starts the relay in the background, then execs the program (it keeps the pid bwrap reports, and
 * so its signals). The relay ends with the sandbox's pid namespace. 125: the relay did not start.
 */
const RELAY_SHELL = '"$1" "$2" --listen "$3" --socket "$4" --background || exit 125; shift 4; exec "$@"';

/** The bind and symlink arguments of the system directories, and the directories bound (for masking). */
function systemBinds(): { args: string[]; bound: Mount[] } {
  const args: string[] = [];
  const bound: Mount[] = [];
  for (const dir of SYSTEM_DIRS) {
    let st: fs.Stats;
    try {
      st = fs.lstatSync(dir);
    } catch {
      continue;
    }
    if (st.isSymbolicLink()) args.push('--symlink', fs.readlinkSync(dir), dir);
    else if (st.isDirectory()) {
      args.push('--ro-bind', dir, dir);
      bound.push({ source: dir, target: dir, readOnly: true });
    }
  }
  return { args, bound };
}

export function bwrapPlan(req: LaunchRequest): LaunchPlan {
  const args = ['--ignore-signal=' + GROUP_SIGNALS, 'bwrap', '--die-with-parent', '--unshare-pid', '--unshare-ipc', '--unshare-uts', '--unshare-cgroup-try'];
  if (!req.network) args.push('--unshare-net');
  // The program must not type into the host's terminal (TIOCSTI): a filter refuses the ioctls; where
  // there is none for this architecture, or no terminal to share anyway, a new session takes the
  // terminal away.
  const filter = ttyInjectionFilter();
  if (filter) args.push('--seccomp', String(BWRAP_SECCOMP_FD));
  if (!req.tty || !filter) args.push('--new-session');
  const system = systemBinds();
  // /proc/sys read-only: a sandbox run as root (no user namespace) could otherwise set sysctls
  // such as kernel.core_pattern, a way to run code on the host.
  args.push('--cap-drop', 'ALL', ...system.args, '--proc', '/proc', '--ro-bind', '/proc/sys', '/proc/sys', '--ro-bind-try', '/proc/sysrq-trigger', '/proc/sysrq-trigger', '--dev', '/dev');
  const home = req.env.HOME && path.isAbsolute(req.env.HOME) ? req.env.HOME : undefined;
  const privateDirs = ['/tmp', '/var/tmp', '/home', '/run'];
  if (home !== undefined && !privateDirs.some((d) => home === d || home.startsWith(`${d}/`)) && home !== '/') privateDirs.push(home);
  for (const dir of privateDirs) args.push('--tmpfs', dir);
  // An empty, private home: programs expect $HOME to exist.
  if (home !== undefined && home !== '/') args.push('--dir', home);
  for (const m of req.mounts) args.push(m.readOnly ? '--ro-bind' : '--bind', m.source, m.target);
  // The system directories are shown too, so what they hold of the protected paths (a data
  // directory under /opt, say) is masked like what the workspace holds.
  for (const mask of masksFor([...system.bound, ...req.mounts], req.protectedPaths)) {
    if (mask.kind === 'dir') args.push('--tmpfs', mask.target);
    else args.push('--ro-bind', '/dev/null', mask.target);
  }
  // Last, so no mount or mask above can cover it; read-only is enough to connect().
  const socketDir = path.dirname(req.socketPath);
  args.push('--ro-bind', socketDir, socketDir);
  const workdir = sandboxPath(req.cwd, req.mounts) ?? req.mounts[0]?.target ?? '/';
  const program = ['env', '--default-signal=' + GROUP_SIGNALS, req.command, ...req.args];
  const relay = req.inject?.relay;
  if (relay) {
    // Bound where no mount above can cover them, so the relay runs whatever the sandbox shows of $HOME.
    args.push('--ro-bind', relay.node, RELAY_NODE, '--ro-bind', relay.script, RELAY_SCRIPT_PATH);
    args.push('--chdir', workdir, '--info-fd', String(BWRAP_INFO_FD), '--', 'sh', '-c', RELAY_SHELL, 'credproxy-relay', RELAY_NODE, RELAY_SCRIPT_PATH, `127.0.0.1:${relay.port}`, relay.socket, ...program);
  } else {
    args.push('--chdir', workdir, '--info-fd', String(BWRAP_INFO_FD), '--', ...program);
  }
  return {
    command: 'env',
    args,
    env: { ...inheritedEnv(req.env, true, req.passEnv), ...sandboxVariables(req) },
    ...(req.tcp && { fd3: `${req.tcp.capability}\n` }),
    ...(filter && { inputs: [{ fd: BWRAP_SECCOMP_FD, data: filter }] }),
    infoFd: BWRAP_INFO_FD,
    cleanup: () => {},
  };
}
