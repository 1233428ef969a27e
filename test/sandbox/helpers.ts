/**
 * Shared pieces of the launcher tests: a temporary host tree (a workspace holding a protected
 * directory and a protected file, a daemon directory with two grants' socket directories), launch
 * requests built on it with explicit environments, and small parsers that split a launcher's argv
 * into its options so tests assert on structure rather than on one exact string.
 */
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Mount } from '../../src/sandbox/mounts.js';
import type { LaunchRequest } from '../../src/sandbox/plan.js';

export interface HostTree {
  root: string;
  /** The workspace, mounted at /work by `request()`. */
  ws: string;
  /** A subdirectory of the workspace: the working directory of `request()`. */
  sub: string;
  /** A protected directory and a protected file inside the workspace. */
  protectedDir: string;
  protectedFile: string;
  /** A protected directory outside every mount. */
  outside: string;
  daemonDir: string;
  socketDir: string;
  socketPath: string;
  /** Another grant's socket directory, which a launch must never show. */
  otherGrantDir: string;
  /** A directory owned by us, standing in for XDG_RUNTIME_DIR. */
  runtime: string;
  home: string;
  cleanup(): void;
}

export function hostTree(): HostTree {
  const root = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), 'cpsbx-')));
  const ws = path.join(root, 'ws');
  const sub = path.join(ws, 'sub');
  const protectedDir = path.join(ws, '.data');
  const protectedFile = path.join(ws, 'creds.json');
  const outside = path.join(root, 'outside');
  const daemonDir = path.join(root, 'daemon');
  const socketDir = path.join(daemonDir, 'run-aaaaaaaaaaaa');
  const otherGrantDir = path.join(daemonDir, 'run-bbbbbbbbbbbb');
  const runtime = path.join(root, 'runtime');
  const home = path.join(root, 'home');
  for (const dir of [sub, protectedDir, outside, socketDir, otherGrantDir, runtime, home]) fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  fs.writeFileSync(protectedFile, '{"secret":true}\n');
  fs.writeFileSync(path.join(daemonDir, 'current.json'), '{}\n');
  return {
    root,
    ws,
    sub,
    protectedDir,
    protectedFile,
    outside,
    daemonDir,
    socketDir,
    socketPath: path.join(socketDir, `${'c'.repeat(32)}.sock`),
    otherGrantDir,
    runtime,
    home,
    cleanup: () => fs.rmSync(root, { recursive: true, force: true }),
  };
}

/** A host environment with everything a sandbox must not inherit, and nothing of the real one. */
export function hostEnv(t: HostTree): NodeJS.ProcessEnv {
  return {
    PATH: '/usr/bin:/bin',
    HOME: t.home,
    LANG: 'C',
    TERM: 'xterm',
    DOCKER_HOST: 'unix:///var/run/docker.sock',
    CREDPROXY_PASSPHRASE: 'host passphrase',
    CREDPROXY_HOME: path.join(t.root, 'data'),
    CREDPROXY_SOCKET: path.join(t.daemonDir, 'main.sock'),
    CREDPROXY_CAPABILITY_FD: '9',
    LLXPRT_CREDENTIAL_SOCKET: path.join(t.daemonDir, 'main.sock'),
    LLXPRT_CAPABILITY_FD: '9',
    DBUS_SESSION_BUS_ADDRESS: 'unix:path=/run/user/1000/bus',
    XDG_RUNTIME_DIR: t.runtime,
    SSH_AUTH_SOCK: '/run/user/1000/ssh-agent',
    GPG_AGENT_INFO: '/run/user/1000/gnupg/S.gpg-agent',
    GNOME_KEYRING_CONTROL: '/run/user/1000/keyring',
  };
}

export const newCapability = (): string => randomBytes(32).toString('hex');

/** The workspace at /work, run from its `sub` directory, with the tree's protected paths. */
export function request(t: HostTree, over: Partial<LaunchRequest> = {}): LaunchRequest {
  const mounts: Mount[] = [{ source: t.ws, target: '/work', readOnly: false }];
  return {
    command: 'my-agent',
    args: ['--flag', 'two words'],
    socketPath: t.socketPath,
    cwd: t.sub,
    mounts,
    protectedPaths: [t.protectedDir, t.protectedFile, t.outside, t.daemonDir, t.runtime],
    network: true,
    image: 'example/image:1',
    env: hostEnv(t),
    uid: 1000,
    gid: 1000,
    tty: false,
    passEnv: [],
    ...over,
  };
}

export interface EngineArgv {
  flags: string[];
  options: Array<[string, string]>;
  image: string;
  /** Everything after the image. */
  rest: string[];
  values(name: string): string[];
}

const ENGINE_VALUED = new Set(['--user', '--cap-drop', '--security-opt', '--network', '--volume', '--tmpfs', '--workdir', '--env', '--add-host', '--entrypoint']);
const ENGINE_FLAGS = new Set(['--rm', '-i', '--init', '-t', '--userns=keep-id']);

/** Splits `ENGINE run [options] IMAGE [ARGS...]`; an option the tests do not know fails the parse. */
export function parseEngineArgv(args: readonly string[]): EngineArgv {
  if (args[0] !== 'run') throw new Error(`expected "run", got ${args[0]}`);
  const flags: string[] = [];
  const options: Array<[string, string]> = [];
  let i = 1;
  for (; i < args.length && args[i]!.startsWith('-'); i++) {
    const a = args[i]!;
    if (ENGINE_FLAGS.has(a)) flags.push(a);
    else if (ENGINE_VALUED.has(a)) {
      const value = args[++i];
      if (value === undefined) throw new Error(`${a} without a value`);
      options.push([a, value]);
    } else throw new Error(`unexpected engine option ${a}`);
  }
  const image = args[i];
  if (image === undefined) throw new Error('no image');
  return { flags, options, image, rest: args.slice(i + 1), values: (name) => options.filter(([n]) => n === name).map(([, v]) => v) };
}

export type BwrapOp = { op: string; operands: string[] };

const BWRAP_ARITY: Record<string, number> = {
  '--die-with-parent': 0,
  '--unshare-pid': 0,
  '--unshare-ipc': 0,
  '--unshare-uts': 0,
  '--unshare-cgroup-try': 0,
  '--unshare-net': 0,
  '--new-session': 0,
  '--cap-drop': 1,
  '--bind': 2,
  '--ro-bind': 2,
  '--ro-bind-try': 2,
  '--seccomp': 1,
  '--symlink': 2,
  '--tmpfs': 1,
  '--dir': 1,
  '--proc': 1,
  '--dev': 1,
  '--chdir': 1,
  '--info-fd': 1,
};

/** The operations that build the sandbox's file system, in order. */
export const BWRAP_MOUNT_OPS = new Set(['--bind', '--ro-bind', '--ro-bind-try', '--symlink', '--tmpfs', '--dir', '--proc', '--dev']);

/** Splits `bwrap OPTIONS -- COMMAND...` (args after the outer `env --ignore-signal=...`). */
export function parseBwrapArgv(args: readonly string[]): { ops: BwrapOp[]; command: string[] } {
  const ops: BwrapOp[] = [];
  let i = 0;
  for (; i < args.length && args[i] !== '--'; ) {
    const op = args[i]!;
    const arity = BWRAP_ARITY[op];
    if (arity === undefined) throw new Error(`unexpected bwrap option ${op}`);
    const operands = args.slice(i + 1, i + 1 + arity);
    if (operands.length !== arity) throw new Error(`${op} needs ${arity} operands`);
    ops.push({ op, operands });
    i += 1 + arity;
  }
  if (args[i] !== '--') throw new Error('no -- before the command');
  return { ops, command: args.slice(i + 1) };
}
