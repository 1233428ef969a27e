/**
 * `credproxy run [grant options] [sandbox options] -- COMMAND [ARGS...]`: opens a grant of its own
 * on the running daemon (or on one started for this run), starts COMMAND in the chosen sandbox with
 * only that grant's socket, and closes the grant when COMMAND ends. The grant lives on this
 * process's control connection, so a `run` killed outright takes its grant with it (§11).
 */
import { randomInt } from 'node:crypto';
import path from 'node:path';
import { Command, Option } from 'commander';
import type { ProxyClient } from '../../client/ProxyClient.js';
import type { InjectListing } from '../../handlers/context.js';
import { RELAY_SCRIPT } from '../../inject/relay.js';
import { credentialPaths, real } from '../../sandbox/credentialPaths.js';
import { closeInheritedDescriptors, inheritableDescriptors } from '../../sandbox/descriptors.js';
import { GrantSpecError, grantRequest, type GrantRequest } from '../../sandbox/grantSpec.js';
import { launchPlan } from '../../sandbox/launchPlan.js';
import { MountError, parseMount, workspaceMounts } from '../../sandbox/mounts.js';
import { isCredproxyVariable, SANDBOX_KINDS, type InjectLaunch, type LaunchRequest, type SandboxKind } from '../../sandbox/plan.js';
import { runChild } from '../../sandbox/runChild.js';
import { controlClient, daemonControlPath } from '../util/control.js';
import { commandFollowsDoubleDash } from '../util/doubleDash.js';
import { CliError, warn } from '../util/errors.js';
import { storeChoice } from '../util/storeChoice.js';

interface RunOptions {
  provider: string[];
  key: string[];
  inject: string[];
  allow?: string;
  sandbox: SandboxKind;
  image?: string;
  network: boolean;
  mount: string[];
  env: string[];
  tcp?: boolean;
  daemon?: string;
  verbose?: boolean;
}

const USAGE = '[--provider P[:BUCKET[,BUCKET...]]]... [--key NAME]... [--inject ROUTE[:BUCKET]]... [--allow OPS] [--sandbox none|bwrap|docker|podman] [options] -- COMMAND [ARGS...]';

const collect = (value: string, previous: string[]): string[] => [...previous, value];

/** Usage errors that need no daemon, so a typo fails before anything starts. */
function checkOptions(opts: RunOptions): void {
  if (opts.sandbox === 'none') {
    const extra = [opts.mount.length > 0 && '--mount', !opts.network && '--no-network', opts.image !== undefined && '--image'].filter(Boolean);
    if (extra.length > 0) throw new CliError(`${extra.join(', ')} need a sandbox: add --sandbox bwrap, docker or podman`);
  } else if (opts.sandbox === 'bwrap' && opts.image !== undefined) {
    throw new CliError('--image applies to --sandbox docker and podman');
  } else if ((opts.sandbox === 'docker' || opts.sandbox === 'podman') && opts.image === undefined) {
    throw new CliError(`--sandbox ${opts.sandbox} needs --image IMAGE`);
  }
  for (const name of opts.env) {
    if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(name)) throw new CliError(`--env ${JSON.stringify(name)}: expected a variable name (its value comes from this environment, never from the command line)`);
    if (isCredproxyVariable(name)) throw new CliError(`--env ${name}: run sets the credproxy variables itself`);
  }
  if (opts.tcp && !opts.network) throw new CliError('--tcp reaches the daemon over the network; it cannot be used with --no-network');
  if (opts.inject.length > 0 && (opts.sandbox === 'docker' || opts.sandbox === 'podman')) throw new CliError('--inject works with --sandbox none and bwrap');
}

/** The relay needs a port in the sandbox's own network namespace, where nothing else listens yet. */
const relayPort = (): number => randomInt(20_000, 60_000);

/**
 * The variables of the granted routes, `{url}` being each route's base URL as the program sees it
 * (`http://127.0.0.1:PORT/ROUTE`); two routes setting one variable differently is a usage error.
 */
/** Each route's variables; `base` is where the routes start (the relay's port, or the loopback port and its key). */
function injectEnv(inject: InjectListing, base: string): Record<string, string> {
  const env: Record<string, string> = {};
  const setBy: Record<string, string> = {};
  for (const { route, env: vars } of inject.routes) {
    for (const [name, template] of Object.entries(vars)) {
      const value = template.replaceAll('{url}', `${base}/${route}`);
      if (env[name] !== undefined && env[name] !== value) throw new CliError(`--inject ${setBy[name]} and ${route} both set ${name}; inject one of them`);
      env[name] = value;
      setBy[name] = route;
    }
  }
  return env;
}

/** What the launcher adds for the routes: their variables and, without network under bwrap, the relay. */
function injectLaunch(opts: RunOptions, inject: InjectListing | undefined): InjectLaunch | undefined {
  if (!inject) return undefined;
  if (opts.sandbox === 'bwrap' && !opts.network) {
    const port = relayPort();
    return { env: injectEnv(inject, `http://127.0.0.1:${port}`), relay: { port, socket: inject.socket, node: process.execPath, script: RELAY_SCRIPT } };
  }
  if (!inject.tcp) throw new CliError('the daemon opened no loopback port for the injection routes');
  return { env: injectEnv(inject, `http://127.0.0.1:${inject.tcp.port}/${inject.tcp.key}`) };
}

/** A label for grant_list that says which run it is without repeating arguments (they may hold secrets). */
function grantLabel(command: string): string {
  return `run ${process.pid} ${path.basename(command)}`.replace(/[^\x20-\x7e]/g, '?').slice(0, 64);
}

interface DaemonHandle {
  control: string;
  /** Stops a daemon started for this run; undefined for a running one. */
  stop?: () => Promise<void>;
}

/** The running daemon, or one started in this process on the default store for the run. */
async function useDaemon(opts: RunOptions, cmd: Command, say: (line: string) => void): Promise<DaemonHandle> {
  const running = await daemonControlPath(opts.daemon);
  if (running) {
    say(`using the daemon ${running.entry ? `pid ${running.entry.pid} ` : ''}on ${running.control}`);
    return { control: running.control };
  }
  // Loaded only here: with a daemon running, `run` needs no store, OAuth or server code.
  const [{ startHostDaemon }, stores, { registryFromConfig }, { routeTableFromConfig }] = await Promise.all([
    import('../util/hostDaemon.js'),
    import('../util/stores.js'),
    import('../util/loginConfig.js'),
    import('../util/routeConfig.js'),
  ]);
  const registry = registryFromConfig(undefined);
  const routes = routeTableFromConfig(undefined);
  const opened = await stores.openHostStores(storeChoice(cmd), process.env, { log: say });
  try {
    const daemon = await startHostDaemon(opened, {
      providers: registry,
      routes,
      // A daemon that ends with this run must not be found by another one.
      discovery: false,
      ...(opts.tcp && { tcp: '127.0.0.1:0' }),
      log: say,
    });
    say(`no daemon running: started one for this run (store: ${opened.backend}, ${opened.reason})`);
    return {
      control: daemon.controlPath,
      stop: async () => {
        await daemon.stop();
        await stores.closeHostStores(opened);
      },
    };
  } catch (err) {
    await stores.closeHostStores(opened);
    throw err;
  }
}

/** What the daemon says must stay out of a sandbox: its data directory, config, sockets. */
function daemonProtectedPaths(status: Record<string, unknown>): string[] {
  const paths = Array.isArray(status.protected_paths) ? status.protected_paths : [];
  return paths.filter((p): p is string => typeof p === 'string' && path.isAbsolute(p));
}

function tcpListener(status: Record<string, unknown>): { host: string; port: number } {
  const listeners = (status.listeners ?? []) as Array<{ kind?: string; host?: string; port?: number }>;
  const tcp = listeners.find((l) => l.kind === 'tcp' && typeof l.host === 'string' && typeof l.port === 'number');
  if (!tcp) throw new CliError('--tcp: the running daemon has no TCP listener; restart it with `credproxy serve --tcp 127.0.0.1:0`');
  return { host: tcp.host!, port: tcp.port! };
}

type OpenedGrant = { grant_id: string; socket: string; capability?: string; inject?: InjectListing };

/** grant_open; the routes get a loopback port unless a relay inside the sandbox reaches their socket. */
async function openGrant(client: ProxyClient, grant: GrantRequest, command: string, opts: RunOptions): Promise<OpenedGrant> {
  const injectTcp = grant.inject.length > 0 && !(opts.sandbox === 'bwrap' && !opts.network);
  const data = await client.request('grant_open', { label: grantLabel(command), ...grant, ...(opts.tcp && { capability: true }), ...(injectTcp && { inject_tcp: true }) });
  return data as unknown as OpenedGrant;
}

async function run(command: string, args: string[], opts: RunOptions, cmd: Command): Promise<number> {
  checkOptions(opts);
  let grant: GrantRequest;
  try {
    grant = grantRequest(opts.provider, opts.key, opts.allow, opts.inject);
  } catch (err) {
    if (err instanceof GrantSpecError) throw new CliError(err.message);
    throw err;
  }
  const cwd = process.cwd();
  const mounts = opts.mount.map((spec) => {
    try {
      return parseMount(spec, cwd);
    } catch (err) {
      throw err instanceof MountError ? new CliError(err.message) : err;
    }
  });
  const say = opts.verbose ? (line: string) => warn(line) : () => {};
  // First, before anything of ours is opened (a keyring library's descriptors may lack close-on-exec):
  // nothing inherited from run's own parent may reach the program, an open directory is a way out.
  const closed = closeInheritedDescriptors();
  if (closed.length > 0) say(`closed inherited descriptors ${closed.join(', ')}`);

  const daemon = await useDaemon(opts, cmd, say);
  const client = controlClient(daemon.control);
  let opened: { grant_id: string } | undefined;
  try {
    const status = await client.request('daemon_status', {});
    const tcp = opts.tcp ? tcpListener(status) : undefined;
    const grantOpened = await openGrant(client, grant, command, opts);
    opened = grantOpened;
    say(`grant ${grantOpened.grant_id}: socket ${grantOpened.socket}${grantOpened.inject ? `, injection proxy ${grantOpened.inject.socket}` : ''}`);
    const inject = injectLaunch(opts, grantOpened.inject);
    const protectedPaths = credentialPaths(process.env, path.dirname(daemon.control), daemonProtectedPaths(status));
    const request: LaunchRequest = {
      command,
      args,
      socketPath: grantOpened.socket,
      ...(tcp && grantOpened.capability !== undefined && { tcp: { ...tcp, capability: grantOpened.capability } }),
      cwd,
      mounts: opts.sandbox === 'none' ? [] : workspaceMountsOrUsage(cwd, mounts, protectedPaths, realHome()),
      protectedPaths,
      network: opts.network,
      ...(opts.image !== undefined && { image: opts.image }),
      env: process.env,
      uid: process.getuid?.() ?? 0,
      gid: process.getgid?.() ?? 0,
      tty: process.stdin.isTTY === true,
      passEnv: opts.env,
      ...(inject && { inject }),
    };
    // Opened since (by a store library of the daemon started here) and inheritable: fail closed.
    const leaking = inheritableDescriptors();
    if (leaking.length > 0) throw new CliError(`descriptors ${leaking.join(', ')} would be inherited by the sandbox; start the daemon separately (credproxy serve --detach) and run again`);
    let plan: ReturnType<typeof launchPlan>;
    try {
      plan = launchPlan(opts.sandbox, request);
    } catch (err) {
      throw err instanceof MountError ? new CliError(err.message) : err;
    }
    say(`starting: ${plan.command} ${plan.args.join(' ')}`);
    try {
      return await runChild({ ...plan, warn });
    } finally {
      plan.cleanup();
    }
  } finally {
    // Closed explicitly, so its socket and directory are gone before this command returns.
    if (opened) await client.request('grant_close', { grant_id: opened.grant_id }).catch(() => {});
    await client.close();
    await daemon.stop?.();
  }
}

/** $HOME through its symlinks (mounts are compared by real path), or undefined without one. */
function realHome(): string | undefined {
  const home = process.env.HOME;
  return home && path.isAbsolute(home) ? real(home) : undefined;
}

function workspaceMountsOrUsage(...args: Parameters<typeof workspaceMounts>): ReturnType<typeof workspaceMounts> {
  try {
    return workspaceMounts(...args);
  } catch (err) {
    throw err instanceof MountError ? new CliError(err.message) : err;
  }
}

export function runCommand(): Command {
  return new Command('run')
    .description('run COMMAND in a sandbox with its own scoped grant: only the credentials named here, through its own socket')
    .usage(USAGE)
    .option('--provider <spec>', 'grant the tokens of PROVIDER (its default bucket; P:B1,B2 for buckets, P:* for all); repeatable', collect, [])
    .option('--key <name>', 'grant the API key NAME; repeatable', collect, [])
    .option('--inject <route>', 'inject mode: the daemon attaches ROUTE\'s credential to COMMAND\'s requests (ROUTE:BUCKET for a token\'s bucket); COMMAND gets a base URL and a placeholder, never the credential; repeatable', collect, [])
    .option('--allow <ops>', 'op groups of the grant, comma-separated from read,refresh,login,write (default: read,refresh,login with a --provider, read with only --key)')
    .addOption(new Option('--sandbox <kind>', 'how COMMAND is isolated').choices(SANDBOX_KINDS).default('none'))
    .option('--image <image>', 'container image (--sandbox docker|podman)')
    .option('--no-network', 'no network in the sandbox (bwrap: a new network namespace; docker/podman: --network none)')
    .option('--mount <spec>', 'SRC[:DST][:ro] visible in the sandbox instead of the working directory; repeatable', collect, [])
    .option('--env <name>', 'pass the host variable NAME into the sandbox (otherwise bwrap gets only PATH, HOME, USER, SHELL, TERM, locale and TZ, a container none); repeatable', collect, [])
    .option('--tcp', 'also hand COMMAND a capability on fd 3 for the daemon\'s loopback TCP listener (VM boundaries: Docker Desktop, podman machine)')
    .option('--daemon <control-socket>', 'the control socket of the daemon to use (default: the running daemon\'s, from current.json)')
    .option('--verbose', 'say what run does on stderr (otherwise it prints nothing of its own)')
    .argument('<command>', 'the command to run, after --')
    .argument('[args...]', 'its arguments')
    .addHelpText(
      'after',
      `
COMMAND gets CREDPROXY_SOCKET and LLXPRT_CREDENTIAL_SOCKET naming its own socket, which serves the
grant and nothing else; with --tcp also CREDPROXY_TCP, and the capability on descriptor 3
(CREDPROXY_CAPABILITY_FD=3, LLXPRT_CAPABILITY_FD=3) — never in argv or the environment.
Sandboxes: none (no isolation, only the scoped socket), bwrap (system read-only, private /tmp,
/home and /run, the working directory or --mounts writable, credproxy's own files never mounted),
docker and podman (the socket's directory and the workspace mounted, --user UID:GID).
With no daemon running, one is started for the run on the default store (--store).
--inject ROUTE (presets: anthropic, anthropic-oauth, openai, gemini, github; more in the config
file's "routes") sets the route's variables, e.g. ANTHROPIC_BASE_URL=http://127.0.0.1:PORT/anthropic
and ANTHROPIC_API_KEY=credproxy-managed; the daemon's proxy drops whatever credential COMMAND sends
and attaches the real one (refreshing OAuth tokens). With --sandbox bwrap --no-network the routes
are COMMAND's only way out (a relay inside reaches the proxy's socket); otherwise PORT is a loopback
port of the daemon that serves only your uid. The injected credential is not readable through the
grant's socket.
The exit status is COMMAND's, or 128 + N when it is killed by signal N; the grant ends with it.

  credproxy run --provider github --sandbox bwrap -- git pull
  credproxy run --provider anthropic --key openai --sandbox docker --image node:20 -- npx my-agent
  credproxy run --inject anthropic --sandbox bwrap --no-network -- claude`,
    )
    .action(async (command: string, args: string[], opts: RunOptions, cmd: Command) => {
      if (!commandFollowsDoubleDash(cmd, command, args)) throw new CliError(`Put -- before the command: credproxy run ${USAGE}`);
      process.exitCode = await run(command, args, opts, cmd);
    });
}
