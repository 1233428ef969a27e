/**
 * `--sandbox docker|podman`: `ENGINE run` with only the grant's socket subdirectory (§11) mounted,
 * at the same path, the workspace mounts, the caller's uid:gid, and the socket variables. An engine
 * cannot pass a descriptor into a container, so with `--tcp` the capability goes through a 0400 file
 * in a private 0700 directory on the host; a /bin/sh entrypoint opens it as fd 3 and deletes it
 * before the command starts. The token is never in argv, the environment or `docker inspect`, and
 * the directory is removed when the run ends.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { masksFor, MountError, sandboxPath } from './mounts.js';
import { inheritedEnv, sandboxVariables, type LaunchPlan, type LaunchRequest } from './plan.js';

export type Engine = 'docker' | 'podman';

/** Where the capability directory is mounted inside the container. */
export const CONTAINER_CAPABILITY_DIR = '/run/credproxy-capability';
const ENTRYPOINT = `exec 3< ${CONTAINER_CAPABILITY_DIR}/capability && rm -f ${CONTAINER_CAPABILITY_DIR}/capability && exec "$@"`;

/** The name each engine gives the host inside a container (Docker Desktop, podman machine). */
const HOST_NAME: Record<Engine, string> = { docker: 'host.docker.internal', podman: 'host.containers.internal' };

/** A private directory for the capability file: the runtime directory (a tmpfs) when it is ours. */
function capabilityDir(env: NodeJS.ProcessEnv, uid: number): string {
  const runtime = env.XDG_RUNTIME_DIR;
  let base = os.tmpdir();
  try {
    if (runtime && path.isAbsolute(runtime) && fs.statSync(runtime).uid === uid) base = runtime;
  } catch {
    // no usable runtime directory: the temporary directory
  }
  return fs.mkdtempSync(path.join(base, 'credproxy-run-'));
}

export function enginePlan(engine: Engine, req: LaunchRequest): LaunchPlan {
  if (!req.image) throw new Error(`--sandbox ${engine} needs --image IMAGE`);
  const args = ['run', '--rm', '-i', '--init', '--user', `${req.uid}:${req.gid}`, '--cap-drop', 'ALL', '--security-opt', 'no-new-privileges'];
  if (req.tty && process.stdout.isTTY) args.push('-t');
  // Rootless podman maps the caller to root in the container unless told to keep the uid.
  if (engine === 'podman' && req.uid !== 0) args.push('--userns=keep-id');
  if (!req.network) args.push('--network', 'none');
  const socketDir = path.dirname(req.socketPath);
  // `--volume SRC:DST[:ro]` has no escape for ':'; refused here with the path, not by the engine.
  for (const p of [socketDir, ...req.mounts.flatMap((m) => [m.source, m.target])]) {
    if (p.includes(':')) throw new MountError(`${p} contains ':', which ${engine} --volume cannot express; run from (or --mount) a path without one`);
  }
  args.push('--volume', `${socketDir}:${socketDir}:ro`);
  for (const m of req.mounts) args.push('--volume', `${m.source}:${m.target}${m.readOnly ? ':ro' : ''}`);
  for (const mask of masksFor(req.mounts, req.protectedPaths)) {
    if (mask.kind === 'dir') args.push('--tmpfs', mask.target);
    else args.push('--volume', `/dev/null:${mask.target}:ro`);
  }
  args.push('--workdir', sandboxPath(req.cwd, req.mounts) ?? req.mounts[0]?.target ?? '/');
  const vars = sandboxVariables(req, req.tcp && HOST_NAME[engine]);
  for (const [name, value] of Object.entries(vars)) args.push('--env', `${name}=${value}`);
  // By name only: the engine takes the value from its own environment, so it stays out of argv.
  for (const name of req.passEnv) if (req.env[name] !== undefined) args.push('--env', name);

  let dir: string | undefined;
  if (req.tcp) {
    dir = capabilityDir(req.env, req.uid);
    try {
      fs.writeFileSync(path.join(dir, 'capability'), `${req.tcp.capability}\n`, { mode: 0o400, flag: 'wx' });
    } catch (err) {
      fs.rmSync(dir, { recursive: true, force: true });
      throw err;
    }
    // Docker on Linux has no such name by default; Docker Desktop and podman answer it themselves.
    if (engine === 'docker') args.push('--add-host', `${HOST_NAME.docker}:host-gateway`);
    args.push('--volume', `${dir}:${CONTAINER_CAPABILITY_DIR}`, '--entrypoint', '/bin/sh', req.image, '-c', ENTRYPOINT, 'credproxy-run');
  } else {
    args.push(req.image);
  }
  args.push(req.command, ...req.args);
  const made = dir;
  return {
    command: engine,
    args,
    env: inheritedEnv(req.env, false),
    cleanup: () => {
      if (made !== undefined) fs.rmSync(made, { recursive: true, force: true });
    },
  };
}
