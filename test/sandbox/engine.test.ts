/**
 * `--sandbox docker|podman` command lines, inspected (no engine runs here), and the --tcp
 * capability file with its entrypoint, which is run for real with /bin/sh against the file the
 * plan made.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { CONTAINER_CAPABILITY_DIR, enginePlan, type Engine } from '../../src/sandbox/engine.js';
import type { LaunchPlan } from '../../src/sandbox/plan.js';
import { hostTree, newCapability, parseEngineArgv, request, type HostTree } from './helpers.js';

let t: HostTree;
const plans: LaunchPlan[] = [];
const uid = process.getuid!();
const gid = process.getgid!();

beforeEach(() => {
  t = hostTree();
});

afterEach(() => {
  for (const plan of plans.splice(0)) plan.cleanup();
  t.cleanup();
});

/** A plan whose host-side leftovers are removed after the test. */
function plan(engine: Engine, over: Parameters<typeof request>[1] = {}): LaunchPlan {
  const made = enginePlan(engine, request(t, over));
  plans.push(made);
  return made;
}

/** The host side of a `--volume SRC:DST[:ro]`. */
const volumeSource = (spec: string): string => spec.split(':')[0]!;
const inside = (p: string, dir: string): boolean => p === dir || p.startsWith(`${dir}/`);

describe.each(['docker', 'podman'] as const)('%s', (engine) => {
  it('runs a removed, init-reaped container as the caller with nothing extra allowed', () => {
    const argv = parseEngineArgv(plan(engine).args);
    const made = plan(engine);
    expect(made.command).toBe(engine);
    expect(made.args.slice(0, 4)).toEqual(['run', '--rm', '-i', '--init']);
    expect(argv.values('--user')).toEqual(['1000:1000']);
    expect(argv.values('--cap-drop')).toEqual(['ALL']);
    expect(argv.values('--security-opt')).toEqual(['no-new-privileges']);
    expect(argv.values('--entrypoint')).toEqual([]);
    expect(argv.values('--add-host')).toEqual([]);
    expect(argv.image).toBe('example/image:1');
    expect(argv.rest).toEqual(['my-agent', '--flag', 'two words']);
    expect(made.fd3).toBeUndefined();
    expect(made.infoFd).toBeUndefined();
  });

  it('cuts the network only with network:false', () => {
    expect(parseEngineArgv(plan(engine, { network: false }).args).values('--network')).toEqual(['none']);
    expect(parseEngineArgv(plan(engine, { network: true }).args).values('--network')).toEqual([]);
  });

  it('allocates no terminal without one', () => {
    expect(parseEngineArgv(plan(engine, { tty: false }).args).flags).not.toContain('-t');
  });

  it("keeps the caller's uid under rootless podman only for a non-root caller", () => {
    const flags = (u: number) => parseEngineArgv(plan(engine, { uid: u, gid: u }).args).flags;
    expect(flags(1000).includes('--userns=keep-id')).toBe(engine === 'podman');
    expect(flags(0)).not.toContain('--userns=keep-id');
    expect(parseEngineArgv(plan(engine, { uid: 0, gid: 0 }).args).values('--user')).toEqual(['0:0']);
  });

  it("mounts the socket's directory at the same path read-only, and nothing else of the daemon's directory", () => {
    const made = plan(engine);
    const argv = parseEngineArgv(made.args);
    const volumes = argv.values('--volume');
    expect(volumes).toContain(`${t.socketDir}:${t.socketDir}:ro`);
    const daemonVolumes = volumes.filter((v) => inside(volumeSource(v), t.daemonDir));
    expect(daemonVolumes).toEqual([`${t.socketDir}:${t.socketDir}:ro`]);
    // No other grant's directory, no main socket, no current.json, in any argument.
    const text = made.args.join('\n');
    expect(text).not.toContain(t.otherGrantDir);
    expect(text).not.toContain('current.json');
    expect(made.args.filter((a) => a.includes(t.daemonDir)).every((a) => a.includes(t.socketDir))).toBe(true);
  });

  it('mounts the workspace, masks the protected paths under it and maps the working directory', () => {
    const argv = parseEngineArgv(plan(engine).args);
    const workspace = argv.values('--volume').filter((v) => !inside(volumeSource(v), t.daemonDir) && volumeSource(v) !== '/dev/null');
    expect(workspace).toEqual([`${t.ws}:/work`]);
    expect(argv.values('--tmpfs')).toEqual(['/work/.data']);
    expect(argv.values('--volume')).toContain('/dev/null:/work/creds.json:ro');
    expect(argv.values('--workdir')).toEqual(['/work/sub']);
    // The protected path outside the workspace is simply not mounted.
    expect(argv.options.some(([, v]) => v.includes(t.outside))).toBe(false);
  });

  it('mounts read-only workspaces :ro, and masks the daemon directory when the workspace holds it', () => {
    const mounts = [
      { source: t.ws, target: t.ws, readOnly: true },
      { source: t.root, target: '/r', readOnly: false },
    ];
    const argv = parseEngineArgv(plan(engine, { mounts, cwd: t.root }).args);
    expect(argv.values('--volume')).toEqual([`${t.socketDir}:${t.socketDir}:ro`, `${t.ws}:${t.ws}:ro`, `${t.root}:/r`, `/dev/null:${t.protectedFile}:ro`, '/dev/null:/r/ws/creds.json:ro']);
    expect(argv.values('--tmpfs')).toEqual([t.protectedDir, '/r/ws/.data', '/r/outside', '/r/daemon', '/r/runtime']);
    expect(argv.values('--workdir')).toEqual(['/r']);
  });

  it('falls back to the first mount, then /, for a working directory outside the mounts', () => {
    expect(parseEngineArgv(plan(engine, { cwd: t.outside }).args).values('--workdir')).toEqual(['/work']);
    expect(parseEngineArgv(plan(engine, { cwd: t.outside, mounts: [] }).args).values('--workdir')).toEqual(['/']);
  });

  it('passes the socket variables and nothing else into the container', () => {
    const made = plan(engine);
    expect(parseEngineArgv(made.args).values('--env')).toEqual([`CREDPROXY_SOCKET=${t.socketPath}`, `LLXPRT_CREDENTIAL_SOCKET=${t.socketPath}`]);
    // The engine's client keeps its own environment (DOCKER_HOST, the runtime directory) minus credproxy's.
    expect(made.env.DOCKER_HOST).toBe('unix:///var/run/docker.sock');
    expect(made.env.XDG_RUNTIME_DIR).toBe(t.runtime);
    expect(Object.keys(made.env).filter((k) => k.startsWith('CREDPROXY_') || k.startsWith('LLXPRT_'))).toEqual([]);
  });

  it('passes --env variables by name only, so their values stay out of argv; unset ones not at all', () => {
    const made = plan(engine, { passEnv: ['NPM_TOKEN', 'NOT_SET'], env: { ...request(t).env, NPM_TOKEN: 'npm_secret_value' } });
    const envs = parseEngineArgv(made.args).values('--env');
    expect(envs).toContain('NPM_TOKEN');
    expect(envs).not.toContain('NOT_SET');
    expect(JSON.stringify(made.args)).not.toContain('npm_secret_value');
    expect(made.env.NPM_TOKEN).toBe('npm_secret_value');
  });

  it('needs an image', () => {
    expect(() => enginePlan(engine, request(t, { image: undefined }))).toThrow(`--sandbox ${engine} needs --image IMAGE`);
  });

  describe('with --tcp', () => {
    const hostName = engine === 'docker' ? 'host.docker.internal' : 'host.containers.internal';

    function tcpPlan(capability: string, over: Parameters<typeof request>[1] = {}): { made: LaunchPlan; argv: ReturnType<typeof parseEngineArgv>; dir: string } {
      const made = plan(engine, { tcp: { host: '127.0.0.1', port: 43117, capability }, uid, gid, ...over });
      const argv = parseEngineArgv(made.args);
      const capVolumes = argv.values('--volume').filter((v) => v.endsWith(`:${CONTAINER_CAPABILITY_DIR}`));
      expect(capVolumes).toHaveLength(1);
      return { made, argv, dir: capVolumes[0]!.slice(0, -(CONTAINER_CAPABILITY_DIR.length + 1)) };
    }

    it('never puts the capability in argv or the environment', () => {
      const capability = newCapability();
      const { made } = tcpPlan(capability);
      const visible = JSON.stringify({ command: made.command, args: made.args, env: made.env });
      expect(visible).not.toContain(capability);
      expect(visible).not.toContain(capability.slice(0, 16));
      expect(made.fd3).toBeUndefined();
    });

    it('writes exactly the 64 hex and a newline to a 0400 file alone in a fresh 0700 directory', () => {
      const capability = newCapability();
      const { dir } = tcpPlan(capability);
      expect(path.dirname(dir)).toBe(t.runtime); // the runtime directory, which is ours
      const dirStat = fs.statSync(dir);
      expect(dirStat.isDirectory()).toBe(true);
      expect(dirStat.mode & 0o777).toBe(0o700);
      expect(dirStat.uid).toBe(uid);
      expect(fs.readdirSync(dir)).toEqual(['capability']);
      const file = path.join(dir, 'capability');
      expect(fs.statSync(file).mode & 0o777).toBe(0o400);
      expect(fs.readFileSync(file, 'utf8')).toBe(`${capability}\n`);
    });

    it('uses the temporary directory when the runtime directory is not the caller\'s or not set', () => {
      const capability = newCapability();
      const notOurs = tcpPlan(capability, { uid: uid + 4242 });
      expect(path.dirname(notOurs.dir)).toBe(os.tmpdir());
      expect(fs.readFileSync(path.join(notOurs.dir, 'capability'), 'utf8')).toBe(`${capability}\n`);
      const env = { ...request(t).env };
      delete env.XDG_RUNTIME_DIR;
      expect(path.dirname(tcpPlan(capability, { env }).dir)).toBe(os.tmpdir());
    });

    it('mounts the directory at the container path and opens it on fd 3 from a /bin/sh entrypoint', () => {
      const { argv, dir } = tcpPlan(newCapability());
      expect(argv.values('--volume')).toContain(`${dir}:${CONTAINER_CAPABILITY_DIR}`);
      expect(argv.values('--entrypoint')).toEqual(['/bin/sh']);
      expect(argv.image).toBe('example/image:1');
      const [dashC, script, name, ...command] = argv.rest;
      expect(dashC).toBe('-c');
      expect(name).toBe('credproxy-run');
      expect(command).toEqual(['my-agent', '--flag', 'two words']);
      expect(script).toContain(`exec 3< ${CONTAINER_CAPABILITY_DIR}/capability`);
      expect(script).toContain(`rm -f ${CONTAINER_CAPABILITY_DIR}/capability`);
      expect(script).toMatch(/exec "\$@"$/);
    });

    it('tells the program where to connect and where its capability is', () => {
      const { argv } = tcpPlan(newCapability());
      expect(argv.values('--env')).toEqual([
        `CREDPROXY_SOCKET=${t.socketPath}`,
        `LLXPRT_CREDENTIAL_SOCKET=${t.socketPath}`,
        `CREDPROXY_TCP=${hostName}:43117`,
        'CREDPROXY_CAPABILITY_FD=3',
        'LLXPRT_CAPABILITY_FD=3',
      ]);
      expect(argv.values('--add-host')).toEqual(engine === 'docker' ? ['host.docker.internal:host-gateway'] : []);
    });

    it('cleanup() removes the directory (and may be called again)', () => {
      const { made, dir } = tcpPlan(newCapability());
      made.cleanup();
      expect(fs.existsSync(dir)).toBe(false);
      made.cleanup();
    });

    it('the entrypoint hands the token on fd 3 and removes the file before the command starts', () => {
      const capability = newCapability();
      const { argv, dir } = tcpPlan(capability);
      const script = argv.rest[1]!.replaceAll(CONTAINER_CAPABILITY_DIR, dir);
      expect(script).not.toContain(CONTAINER_CAPABILITY_DIR);
      const cmd = ['sh', '-c', 'cat <&3; ls -A "$1"; printf "[%s]" "$2"', 'cmd', dir, 'two words'];
      const r = spawnSync('/bin/sh', ['-c', script, 'credproxy-run', ...cmd], { encoding: 'utf8', env: { PATH: '/usr/bin:/bin' } });
      expect(r.stderr).toBe('');
      expect(r.status).toBe(0);
      // The token, then an empty listing (the file is gone), then the argument intact.
      expect(r.stdout).toBe(`${capability}\n[two words]`);
      expect(fs.readdirSync(dir)).toEqual([]);
    });

    it('the entrypoint runs nothing when the capability file is missing', () => {
      const { argv, dir } = tcpPlan(newCapability());
      fs.rmSync(path.join(dir, 'capability'), { force: true });
      const script = argv.rest[1]!.replaceAll(CONTAINER_CAPABILITY_DIR, dir);
      const r = spawnSync('/bin/sh', ['-c', script, 'credproxy-run', 'sh', '-c', 'echo RAN'], { encoding: 'utf8', env: { PATH: '/usr/bin:/bin' } });
      expect(r.status).not.toBe(0);
      expect(r.stdout).toBe('');
    });
  });
});
