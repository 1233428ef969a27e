/** The variables a sandboxed program gets, what it inherits, `--sandbox none`, and the protected paths. */
import fs from 'node:fs';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { credentialPaths } from '../../src/sandbox/credentialPaths.js';
import { launchPlan } from '../../src/sandbox/launchPlan.js';
import { inheritedEnv, sandboxVariables } from '../../src/sandbox/plan.js';
import { hostEnv, hostTree, newCapability, request, type HostTree } from './helpers.js';

let t: HostTree;

beforeEach(() => {
  t = hostTree();
});

afterEach(() => t.cleanup());

describe('sandboxVariables', () => {
  it('names the socket twice and nothing else without --tcp', () => {
    expect(sandboxVariables(request(t))).toEqual({ CREDPROXY_SOCKET: t.socketPath, LLXPRT_CREDENTIAL_SOCKET: t.socketPath });
  });

  it('adds the listener and the descriptor with --tcp, never the capability', () => {
    const capability = newCapability();
    const vars = sandboxVariables(request(t, { tcp: { host: '127.0.0.1', port: 5000, capability } }));
    expect(vars).toEqual({
      CREDPROXY_SOCKET: t.socketPath,
      LLXPRT_CREDENTIAL_SOCKET: t.socketPath,
      CREDPROXY_TCP: '127.0.0.1:5000',
      CREDPROXY_CAPABILITY_FD: '3',
      LLXPRT_CAPABILITY_FD: '3',
    });
    expect(JSON.stringify(vars)).not.toContain(capability);
  });

  it('brackets an IPv6 host', () => {
    const tcp = (host: string) => sandboxVariables(request(t, { tcp: { host, port: 7, capability: newCapability() } })).CREDPROXY_TCP;
    expect(tcp('::1')).toBe('[::1]:7');
    expect(tcp('fe80::1%lo')).toBe('[fe80::1%lo]:7');
    expect(tcp('localhost')).toBe('localhost:7');
  });

  it('uses the host name a container knows the host by, when given', () => {
    const req = request(t, { tcp: { host: '::1', port: 9, capability: newCapability() } });
    expect(sandboxVariables(req, 'host.docker.internal').CREDPROXY_TCP).toBe('host.docker.internal:9');
  });
});

describe('inheritedEnv', () => {
  it("drops credproxy's own settings and the llxprt socket variables, keeps the rest", () => {
    const env: NodeJS.ProcessEnv = { ...hostEnv(t), LLXPRT_OTHER: 'kept', UNSET: undefined };
    const out = inheritedEnv(env, false);
    expect(Object.keys(out).filter((k) => k.startsWith('CREDPROXY_'))).toEqual([]);
    expect(out).not.toHaveProperty('LLXPRT_CREDENTIAL_SOCKET');
    expect(out).not.toHaveProperty('LLXPRT_CAPABILITY_FD');
    expect(out).not.toHaveProperty('UNSET');
    expect(out.LLXPRT_OTHER).toBe('kept');
    expect(out.XDG_RUNTIME_DIR).toBe(t.runtime);
    expect(out.DBUS_SESSION_BUS_ADDRESS).toBe(env.DBUS_SESSION_BUS_ADDRESS);
    expect(out.PATH).toBe(env.PATH);
  });

  it('isolated: only the basics — not the host session, not other secrets of the environment', () => {
    const out = inheritedEnv({ ...hostEnv(t), OPENAI_API_KEY: 'sk-host', AWS_SECRET_ACCESS_KEY: 'aws', LC_ALL: 'C.UTF-8' }, true);
    expect(Object.keys(out).sort()).toEqual(['HOME', 'LANG', 'LC_ALL', 'PATH', 'TERM']);
  });

  it('isolated: variables named with --env are passed too, credproxy\'s own never', () => {
    const out = inheritedEnv({ ...hostEnv(t), NPM_CONFIG_REGISTRY: 'https://registry.example' }, true, ['NPM_CONFIG_REGISTRY', 'CREDPROXY_PASSPHRASE']);
    expect(out.NPM_CONFIG_REGISTRY).toBe('https://registry.example');
    expect(out).not.toHaveProperty('CREDPROXY_PASSPHRASE');
    expect(out).not.toHaveProperty('DOCKER_HOST');
  });

  it('does not change the environment it is given', () => {
    const env = hostEnv(t);
    const copy = { ...env };
    inheritedEnv(env, true);
    expect(env).toEqual(copy);
  });
});

describe('launchPlan', () => {
  it('none: the command as it is, with the socket variables and the capability on fd 3', () => {
    const capability = newCapability();
    const made = launchPlan('none', request(t, { tcp: { host: '127.0.0.1', port: 1234, capability } }));
    expect(made.command).toBe('my-agent');
    expect(made.args).toEqual(['--flag', 'two words']);
    expect(made.fd3).toBe(`${capability}\n`);
    expect(made.infoFd).toBeUndefined();
    expect(made.env.CREDPROXY_SOCKET).toBe(t.socketPath);
    expect(made.env.CREDPROXY_TCP).toBe('127.0.0.1:1234');
    expect(made.env).not.toHaveProperty('CREDPROXY_PASSPHRASE');
    expect(JSON.stringify({ args: made.args, env: made.env })).not.toContain(capability);
    made.cleanup();
  });

  it('none without --tcp: no fd 3', () => {
    expect(launchPlan('none', request(t)).fd3).toBeUndefined();
  });

  it('dispatches to each launcher', () => {
    expect(launchPlan('bwrap', request(t)).args[1]).toBe('bwrap');
    expect(launchPlan('docker', request(t)).command).toBe('docker');
    expect(launchPlan('podman', request(t)).command).toBe('podman');
  });
});

describe('credentialPaths', () => {
  it("lists the data directory, the daemon's, the keyring, the CLIs' credential files and the runtime directory", () => {
    const env = { HOME: t.home, CREDPROXY_HOME: path.join(t.root, 'data'), XDG_RUNTIME_DIR: t.runtime, CODEX_HOME: path.join(t.root, 'codex') };
    expect(credentialPaths(env, t.daemonDir)).toEqual([
      path.join(t.root, 'data'),
      t.daemonDir,
      path.join(t.home, '.local', 'share', 'keyrings'),
      path.join(t.home, '.claude', '.credentials.json'),
      path.join(t.root, 'codex', 'auth.json'),
      path.join(t.home, '.gemini', 'oauth_creds.json'),
      path.join(t.home, '.qwen', 'oauth_creds.json'),
      t.runtime,
    ]);
  });

  it('resolves symlinks, so a path reached another way is still protected, and lists each once', () => {
    const link = path.join(t.root, 'daemon-link');
    fs.symlinkSync(t.daemonDir, link);
    const env = { HOME: t.home, CREDPROXY_HOME: link, XDG_RUNTIME_DIR: 'relative/ignored' };
    const paths = credentialPaths(env, t.daemonDir);
    expect(paths.filter((p) => p === t.daemonDir)).toHaveLength(1);
    expect(paths).not.toContain(link);
    expect(paths.some((p) => p.includes('relative'))).toBe(false);
    expect(paths).toContain(path.join(t.home, '.codex', 'auth.json'));
  });

  it('uses $XDG_DATA_HOME when CREDPROXY_HOME is not set', () => {
    const env = { HOME: t.home, XDG_DATA_HOME: path.join(t.root, 'xdg') };
    expect(credentialPaths(env, t.daemonDir)[0]).toBe(path.join(t.root, 'xdg', 'credproxy'));
  });
});
