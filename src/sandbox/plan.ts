/**
 * A launcher turns a LaunchRequest (what to run, where its socket is, what it may see) into a
 * LaunchPlan: the host command line, its environment and what goes on the child's descriptor 3.
 * Launchers are pure apart from reading the file system, so their command lines can be checked by
 * tests without starting an engine.
 */
import type { Mount } from './mounts.js';

export const SANDBOX_KINDS = ['none', 'bwrap', 'docker', 'podman'] as const;
export type SandboxKind = (typeof SANDBOX_KINDS)[number];

export interface LaunchRequest {
  command: string;
  args: readonly string[];
  /** The grant's sandbox socket (§11); its directory is the only part of the daemon's directory shown. */
  socketPath: string;
  /** With `--tcp`: the daemon's loopback listener and the grant's capability, delivered on fd 3. */
  tcp?: { host: string; port: number; capability: string };
  cwd: string;
  /** The workspace (workspaceMounts): `--mount`s, else the working directory. */
  mounts: readonly Mount[];
  /** Host paths that must not be visible (store, data directory, daemon directory, CLI credential files). */
  protectedPaths: readonly string[];
  network: boolean;
  image?: string;
  env: NodeJS.ProcessEnv;
  uid: number;
  gid: number;
  /** stdin is a terminal: the child shares it (and its job control). */
  tty: boolean;
  /** Host variables passed in by name (`--env NAME`), besides the basics. */
  passEnv: readonly string[];
  /** Inject mode: the routes' variables (placeholders and base URLs), and the relay a network-isolated sandbox needs. */
  inject?: InjectLaunch;
}

/** What a launcher adds for injection routes (`run --inject`). */
export interface InjectLaunch {
  env: Readonly<Record<string, string>>;
  /** bwrap without network: a relay on 127.0.0.1:port inside, to the proxy's (bind-mounted) socket. */
  relay?: { port: number; socket: string; node: string; script: string };
}

export interface LaunchPlan {
  command: string;
  args: string[];
  env: NodeJS.ProcessEnv;
  /** Written to the child's descriptor 3, then closed: the capability, for launchers that pass descriptors. */
  fd3?: string;
  /** More descriptors to hand over (written, then closed): bwrap's seccomp filter. */
  inputs?: ReadonlyArray<{ fd: number; data: Buffer }>;
  /** bwrap reports its sandbox's pid on this descriptor (`--info-fd`), so signals reach the command itself. */
  infoFd?: number;
  /** Removes what the plan made on the host (the capability file of a container run). */
  cleanup(): void;
}

/** The §7/§8 variables a sandboxed program reads, and its routes' placeholders; the capability itself is never one of them. */
export function sandboxVariables(req: LaunchRequest, tcpHost?: string): Record<string, string> {
  const vars: Record<string, string> = { ...req.inject?.env, CREDPROXY_SOCKET: req.socketPath, LLXPRT_CREDENTIAL_SOCKET: req.socketPath };
  if (req.tcp) {
    const host = tcpHost ?? req.tcp.host;
    vars.CREDPROXY_TCP = `${host.includes(':') ? `[${host}]` : host}:${req.tcp.port}`;
    vars.CREDPROXY_CAPABILITY_FD = '3';
    vars.LLXPRT_CAPABILITY_FD = '3';
  }
  return vars;
}

/** What a sandbox gets of the host environment without asking: the terminal, locale and login basics. */
const SANDBOX_BASE_VARS = new Set(['PATH', 'HOME', 'USER', 'LOGNAME', 'SHELL', 'TERM', 'COLORTERM', 'LANG', 'LANGUAGE', 'TZ', 'NO_COLOR']);

/** True for the variables run sets itself (or that name another proxy); never passed on from the host. */
export function isCredproxyVariable(name: string): boolean {
  return name.startsWith('CREDPROXY_') || name === 'LLXPRT_CREDENTIAL_SOCKET' || name === 'LLXPRT_CAPABILITY_FD';
}

/**
 * What a program inherits of the host environment. Never credproxy's own settings (a passphrase, a
 * data directory, another socket or descriptor). Into an `isolated` sandbox only the basics and the
 * variables named with `--env`: the host's environment holds other secrets (API keys, cloud
 * credentials, agent sockets, the session bus) that the grant is meant to replace, not add to.
 */
export function inheritedEnv(env: NodeJS.ProcessEnv, isolated: boolean, pass: readonly string[] = []): NodeJS.ProcessEnv {
  const out: NodeJS.ProcessEnv = {};
  for (const [name, value] of Object.entries(env)) {
    if (value === undefined || isCredproxyVariable(name)) continue;
    if (isolated && !SANDBOX_BASE_VARS.has(name) && !name.startsWith('LC_') && !pass.includes(name)) continue;
    out[name] = value;
  }
  return out;
}
