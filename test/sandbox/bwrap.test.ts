/** `--sandbox bwrap` command lines, inspected: namespaces, the file system it builds, its environment. */
import fs from 'node:fs';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { BWRAP_INFO_FD, bwrapPlan } from '../../src/sandbox/bwrap.js';
import type { LaunchPlan, LaunchRequest } from '../../src/sandbox/plan.js';
import { BWRAP_MOUNT_OPS, hostTree, newCapability, parseBwrapArgv, request, type BwrapOp, type HostTree } from './helpers.js';

let t: HostTree;

beforeEach(() => {
  t = hostTree();
});

afterEach(() => t.cleanup());

const GROUP_SIGNALS = 'INT,QUIT,TERM,HUP';

function plan(over: Partial<LaunchRequest> = {}): { made: LaunchPlan; ops: BwrapOp[]; command: string[] } {
  const made = bwrapPlan(request(t, { image: undefined, ...over }));
  expect(made.command).toBe('env');
  expect(made.args.slice(0, 2)).toEqual([`--ignore-signal=${GROUP_SIGNALS}`, 'bwrap']);
  return { made, ...parseBwrapArgv(made.args.slice(2)) };
}

const has = (ops: BwrapOp[], op: string, ...operands: string[]): boolean => ops.some((o) => o.op === op && operands.every((v, i) => o.operands[i] === v));
const mountOps = (ops: BwrapOp[]): BwrapOp[] => ops.filter((o) => BWRAP_MOUNT_OPS.has(o.op));
const indexOf = (ops: BwrapOp[], op: string, ...operands: string[]): number => ops.findIndex((o) => o.op === op && operands.every((v, i) => o.operands[i] === v));

describe('bwrap plan', () => {
  it('dies with its parent, in new pid, ipc and uts namespaces, with every capability dropped', () => {
    const { ops } = plan();
    for (const flag of ['--die-with-parent', '--unshare-pid', '--unshare-ipc', '--unshare-uts']) expect(has(ops, flag)).toBe(true);
    expect(has(ops, '--cap-drop', 'ALL')).toBe(true);
    expect(ops.map((o) => o.op)).not.toContain('--bind-try');
  });

  it('makes /tmp, /var/tmp, /home and /run private, and an empty $HOME', () => {
    const { ops } = plan();
    for (const dir of ['/tmp', '/var/tmp', '/home', '/run']) expect(has(ops, '--tmpfs', dir)).toBe(true);
    expect(has(ops, '--dir', t.home)).toBe(true);
    // $HOME is under /tmp here, already private: not a second tmpfs.
    expect(has(ops, '--tmpfs', t.home)).toBe(false);
  });

  it('gives a $HOME outside the private directories its own tmpfs', () => {
    const { ops } = plan({ env: { ...request(t).env, HOME: '/srv/someone' } });
    expect(indexOf(ops, '--tmpfs', '/srv/someone')).toBeGreaterThan(-1);
    expect(indexOf(ops, '--dir', '/srv/someone')).toBeGreaterThan(indexOf(ops, '--tmpfs', '/srv/someone'));
  });

  it('unshares the network only with network:false', () => {
    expect(has(plan({ network: false }).ops, '--unshare-net')).toBe(true);
    expect(has(plan({ network: true }).ops, '--unshare-net')).toBe(false);
  });

  it('starts a new session only without a terminal', () => {
    expect(has(plan({ tty: false }).ops, '--new-session')).toBe(true);
    expect(has(plan({ tty: true }).ops, '--new-session')).toBe(false);
  });

  it('binds the system directories read-only (or recreates their symlinks)', () => {
    const { ops } = plan();
    for (const dir of ['/usr', '/etc']) {
      if (fs.lstatSync(dir).isSymbolicLink()) expect(has(ops, '--symlink', fs.readlinkSync(dir), dir)).toBe(true);
      else expect(has(ops, '--ro-bind', dir, dir)).toBe(true);
    }
    expect(has(ops, '--proc', '/proc')).toBe(true);
    expect(has(ops, '--dev', '/dev')).toBe(true);
    expect(ops.some((o) => o.op === '--bind' && o.operands[0] === '/')).toBe(false);
    expect(ops.some((o) => o.op === '--ro-bind' && o.operands[0] === '/')).toBe(false);
  });

  it('binds the workspace, masks the protected paths under it, and binds the socket directory last', () => {
    const { ops } = plan({ mounts: [{ source: t.ws, target: '/work', readOnly: false }, { source: t.root, target: '/r', readOnly: true }] });
    const mounts = mountOps(ops);
    const last = mounts.at(-1)!;
    expect(last).toEqual({ op: '--ro-bind', operands: [t.socketDir, t.socketDir] });
    const socketAt = mounts.length - 1;
    const expected: Array<[string, ...string[]]> = [
      ['--bind', t.ws, '/work'],
      ['--ro-bind', t.root, '/r'],
      ['--tmpfs', '/work/.data'],
      ['--ro-bind', '/dev/null', '/work/creds.json'],
      ['--tmpfs', '/r/ws/.data'],
      ['--ro-bind', '/dev/null', '/r/ws/creds.json'],
      ['--tmpfs', '/r/outside'],
      ['--tmpfs', '/r/daemon'],
      ['--tmpfs', '/r/runtime'],
    ];
    const positions = expected.map(([op, ...operands]) => indexOf(mounts, op, ...operands));
    for (const p of positions) expect(p).toBeGreaterThan(-1);
    expect([...positions].sort((a, b) => a - b)).toEqual(positions);
    expect(Math.max(...positions)).toBeLessThan(socketAt);
    // The masks come after every workspace bind, so no mount can uncover them.
    expect(positions[2]!).toBeGreaterThan(positions[1]!);
  });

  it("shows nothing else of the daemon's directory", () => {
    const { made } = plan();
    const text = made.args.join('\n');
    expect(text).not.toContain(t.otherGrantDir);
    expect(made.args.filter((a) => a.includes(t.daemonDir))).toEqual([t.socketDir, t.socketDir]);
  });

  it('masks protected paths under the system directories too', () => {
    // Paths that exist on every Linux host: a directory under /usr and a file under /etc.
    const dir = fs.realpathSync('/usr/bin');
    const file = fs.realpathSync('/etc/passwd');
    const { ops } = plan({ protectedPaths: [dir, file] });
    const mounts = mountOps(ops);
    expect(indexOf(mounts, '--tmpfs', dir)).toBeGreaterThan(indexOf(mounts, '--ro-bind', '/usr', '/usr'));
    expect(indexOf(mounts, '--ro-bind', '/dev/null', file)).toBeGreaterThan(indexOf(mounts, '--ro-bind', '/etc', '/etc'));
    expect(mounts.at(-1)).toEqual({ op: '--ro-bind', operands: [t.socketDir, t.socketDir] });
  });

  it('binds a read-only mount read-only', () => {
    const { ops } = plan({ mounts: [{ source: t.ws, target: t.ws, readOnly: true }] });
    expect(has(ops, '--ro-bind', t.ws, t.ws)).toBe(true);
    expect(ops.some((o) => o.op === '--bind')).toBe(false);
  });

  it('changes to the working directory as the sandbox sees it', () => {
    expect(plan().ops.filter((o) => o.op === '--chdir')).toEqual([{ op: '--chdir', operands: ['/work/sub'] }]);
    expect(plan({ cwd: t.outside }).ops.filter((o) => o.op === '--chdir')).toEqual([{ op: '--chdir', operands: ['/work'] }]);
  });

  it('reports its pid on descriptor 4 and restores the group signals before the command', () => {
    const { made, ops, command } = plan();
    expect(BWRAP_INFO_FD).toBe(4);
    expect(made.infoFd).toBe(4);
    expect(ops.filter((o) => o.op === '--info-fd')).toEqual([{ op: '--info-fd', operands: ['4'] }]);
    expect(command).toEqual(['env', `--default-signal=${GROUP_SIGNALS}`, 'my-agent', '--flag', 'two words']);
  });

  it('gives the socket variables and none of credproxy\'s or the host session\'s', () => {
    const { made } = plan();
    expect(made.env.CREDPROXY_SOCKET).toBe(t.socketPath);
    expect(made.env.LLXPRT_CREDENTIAL_SOCKET).toBe(t.socketPath);
    for (const name of ['CREDPROXY_PASSPHRASE', 'CREDPROXY_HOME', 'CREDPROXY_CAPABILITY_FD', 'LLXPRT_CAPABILITY_FD', 'CREDPROXY_TCP', 'DBUS_SESSION_BUS_ADDRESS', 'XDG_RUNTIME_DIR', 'SSH_AUTH_SOCK', 'GPG_AGENT_INFO', 'GNOME_KEYRING_CONTROL']) {
      expect(made.env, name).not.toHaveProperty(name);
    }
    expect(made.env.PATH).toBe('/usr/bin:/bin');
    expect(made.env.HOME).toBe(t.home);
    expect(made.fd3).toBeUndefined();
  });

  it('with --tcp: the capability on fd 3 only, the listener in CREDPROXY_TCP', () => {
    const capability = newCapability();
    const { made } = plan({ tcp: { host: '127.0.0.1', port: 40001, capability } });
    expect(made.fd3).toBe(`${capability}\n`);
    expect(JSON.stringify({ command: made.command, args: made.args, env: made.env })).not.toContain(capability);
    expect(made.env.CREDPROXY_TCP).toBe('127.0.0.1:40001');
    expect(made.env.CREDPROXY_CAPABILITY_FD).toBe('3');
    expect(made.env.LLXPRT_CAPABILITY_FD).toBe('3');
    made.cleanup();
  });

  it('with injection routes and no network: the relay (node and its script, bound read-only, last) starts before the program, which keeps the pid', () => {
    const socket = `${t.root}/daemon/run-x/inject-1.sock`;
    const relay = { port: 43210, socket, node: process.execPath, script: '/opt/credproxy/dist/inject/relay.js' };
    const { made, ops, command } = plan({ network: false, inject: { env: { API_BASE: 'http://127.0.0.1:43210/api', API_KEY: 'credproxy-managed' }, relay } });
    expect(has(ops, '--unshare-net')).toBe(true);
    expect(has(ops, '--ro-bind', process.execPath, '/run/credproxy-relay/node')).toBe(true);
    expect(has(ops, '--ro-bind', relay.script, '/run/credproxy-relay/relay.mjs')).toBe(true);
    expect(mountOps(ops).slice(-2).map((o) => o.operands[1])).toEqual(['/run/credproxy-relay/node', '/run/credproxy-relay/relay.mjs']);
    expect(command.slice(0, 2)).toEqual(['sh', '-c']);
    expect(command.slice(3)).toEqual(['credproxy-relay', '/run/credproxy-relay/node', '/run/credproxy-relay/relay.mjs', '127.0.0.1:43210', socket, 'env', `--default-signal=${GROUP_SIGNALS}`, ...request(t).command.split(' ').slice(0, 1), ...request(t).args]);
    expect(command[2]).toContain('exec "$@"');
    expect(made.env).toMatchObject({ API_BASE: 'http://127.0.0.1:43210/api', API_KEY: 'credproxy-managed' });
  });
});
