/**
 * A real, private Secret Service for tests: a private dbus-daemon plus gnome-keyring-daemon
 * (secrets component, login keyring unlocked with a test password) in a throwaway HOME.
 * Debian packages: dbus (dbus-daemon, dbus-send) and gnome-keyring.
 *
 * The bus activates nothing. A stock session bus starts `gnome-keyring-daemon --start` (no
 * password, so its login collection is locked) for any call to org.freedesktop.secrets made while
 * nobody owns the name, e.g. in the gap of restartKeyring(); that daemon then keeps the name, ours
 * logs "another secret service is running", and every keyring call fails with "unlock prompt was
 * dismissed". Readiness is therefore not "someone owns the name" but: our child owns it and the
 * default collection answers Locked=false (see waitUntilReady).
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';

const execFileAsync = promisify(execFile);

export const SECRET_SERVICE_BINARIES = ['dbus-daemon', 'dbus-send', 'gnome-keyring-daemon'];
export const SECRET_SERVICE_PACKAGES = 'dbus gnome-keyring';

export function missingBinaries(): string[] {
  const dirs = (process.env.PATH ?? '').split(path.delimiter).filter(Boolean);
  return SECRET_SERVICE_BINARIES.filter((bin) => !dirs.some((dir) => isExecutable(path.join(dir, bin))));
}

function isExecutable(file: string): boolean {
  try {
    fs.accessSync(file, fs.constants.X_OK);
    return fs.statSync(file).isFile();
  } catch {
    return false;
  }
}

export interface SessionBus {
  address: string;
  env: NodeJS.ProcessEnv;
  stop(): Promise<void>;
}

export interface SecretService extends SessionBus {
  /** Object paths of Secret Service items whose `service` attribute is `service`, via D-Bus. */
  searchItems(service: string): Promise<string[]>;
  /** Stops and restarts gnome-keyring-daemon on the same HOME (the keyring file on disk). */
  restartKeyring(): Promise<void>;
  /** Throws, with gnome-keyring-daemon's stderr, unless our daemon still serves an unlocked default collection. */
  assertHealthy(): Promise<void>;
  /** Locks the default collection (no prompt needed); restartKeyring() unlocks it again. Returns its object path. */
  lockDefaultCollection(): Promise<string>;
}

const PASSWORD = 'credproxy-test-login';

function killAndWait(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    child.once('close', () => resolve());
    child.kill('SIGTERM');
    setTimeout(() => child.kill('SIGKILL'), 3000).unref();
  });
}

/**
 * Starts a private session bus without service activation: only processes started here own names,
 * and a call to a name nobody owns fails at once (ServiceUnknown) instead of starting something.
 */
export async function startSessionBus(): Promise<SessionBus> {
  const home = fs.mkdtempSync(path.join(os.tmpdir(), 'cps-ss-'));
  const runtime = path.join(home, 'run');
  fs.mkdirSync(runtime, { mode: 0o700 });
  const env: NodeJS.ProcessEnv = { ...process.env, HOME: home, XDG_RUNTIME_DIR: runtime, XDG_DATA_HOME: path.join(home, 'data'), XDG_CONFIG_HOME: path.join(home, 'config') };
  delete env.DBUS_SESSION_BUS_ADDRESS;
  const config = path.join(home, 'bus.conf');
  // The stock session.conf minus <standard_session_servicedirs/> (and its resource limits).
  fs.writeFileSync(
    config,
    `<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN" "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig><type>session</type><listen>unix:dir=${home}</listen><auth>EXTERNAL</auth>
<policy context="default"><allow send_destination="*" eavesdrop="true"/><allow eavesdrop="true"/><allow own="*"/></policy></busconfig>`,
  );
  const args = [`--config-file=${config}`, '--nofork', '--print-address=1', '--nopidfile'];
  const bus = spawn('dbus-daemon', args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let busErr = '';
  bus.stderr!.setEncoding('utf8').on('data', (d: string) => (busErr += d));
  const address = await new Promise<string>((resolve, reject) => {
    let out = '';
    bus.stdout!.setEncoding('utf8').on('data', (d: string) => {
      out += d;
      if (out.includes('\n')) resolve(out.trim());
    });
    bus.once('close', (code) => reject(new Error(`dbus-daemon exited (${code}): ${busErr}`)));
    setTimeout(() => reject(new Error(`dbus-daemon printed no address within 10 s: ${busErr}`)), 10_000).unref();
  });
  env.DBUS_SESSION_BUS_ADDRESS = address;
  return {
    address,
    env,
    async stop() {
      await killAndWait(bus);
      fs.rmSync(home, { recursive: true, force: true });
    },
  };
}

/** How long a daemon may take to become ready on a loaded machine before the harness gives up. */
const READY_TIMEOUT_MS = 30_000;

export async function startSecretService(): Promise<SecretService> {
  const bus = await startSessionBus();
  const { env } = bus;
  const dbusSend = (...args: string[]) => execFileAsync('dbus-send', ['--session', '--print-reply', ...args], { env, encoding: 'utf8' });

  let keyring: ChildProcess | undefined;
  let keyringErr = '';
  let expectedExit = false;
  let unexpectedExit: string | undefined;

  /** Why the service is not (yet) usable through our own daemon, or null when it is. */
  const notReady = (child: ChildProcess): Promise<string | null> =>
    probe(child).catch((err: unknown) => `D-Bus call failed: ${String((err as Error).message ?? err).trim().split('\n')[0]}`);
  const probe = async (child: ChildProcess): Promise<string | null> => {
    if (child.exitCode !== null || child.signalCode !== null) return `gnome-keyring-daemon exited (${child.exitCode ?? child.signalCode})`;
    const owner = await dbusSend('--dest=org.freedesktop.DBus', '/org/freedesktop/DBus', 'org.freedesktop.DBus.GetConnectionUnixProcessID', 'string:org.freedesktop.secrets').then(
      ({ stdout }) => Number(/uint32 (\d+)/.exec(stdout)?.[1]),
      () => null,
    );
    if (owner === null) return 'nobody owns org.freedesktop.secrets yet';
    if (owner !== child.pid) return `org.freedesktop.secrets is owned by pid ${owner}, not by our gnome-keyring-daemon (pid ${child.pid})`;
    const alias = await dbusSend('--dest=org.freedesktop.secrets', '/org/freedesktop/secrets', 'org.freedesktop.Secret.Service.ReadAlias', 'string:default');
    const collection = /object path "([^"]+)"/.exec(alias.stdout)?.[1];
    if (!collection || collection === '/') return 'the default collection does not exist yet';
    const { stdout } = await dbusSend('--dest=org.freedesktop.secrets', collection, 'org.freedesktop.DBus.Properties.Get', 'string:org.freedesktop.Secret.Collection', 'string:Locked');
    if (!/boolean false/.test(stdout)) return `the default collection ${collection} is locked`;
    return null;
  };

  /** Polls notReady until it clears: a readiness condition, not a fixed sleep. */
  const waitUntilReady = async (child: ChildProcess) => {
    const deadline = Date.now() + READY_TIMEOUT_MS;
    for (;;) {
      const why = await notReady(child);
      if (why === null) return;
      if (child.exitCode !== null || child.signalCode !== null || why.includes('owned by pid') || Date.now() > deadline) {
        throw new Error(`the test Secret Service is not usable: ${why}; gnome-keyring-daemon said: ${keyringErr.trim() || '(nothing)'}`);
      }
      await new Promise((resolve) => setTimeout(resolve, 25));
    }
  };

  const startKeyring = async () => {
    keyringErr = '';
    expectedExit = false;
    unexpectedExit = undefined;
    const child = spawn('gnome-keyring-daemon', ['--foreground', '--unlock', '--components=secrets'], { env, stdio: ['pipe', 'ignore', 'pipe'] });
    child.stderr!.setEncoding('utf8').on('data', (d: string) => (keyringErr += d));
    child.once('exit', (code, signal) => {
      if (!expectedExit) unexpectedExit = `gnome-keyring-daemon (pid ${child.pid}) exited unexpectedly (${code ?? signal})`;
    });
    child.stdin!.end(PASSWORD);
    keyring = child;
    await waitUntilReady(child);
  };
  const stopKeyring = async () => {
    expectedExit = true;
    if (keyring) await killAndWait(keyring);
  };
  try {
    await startKeyring();
  } catch (err) {
    await stopKeyring();
    await bus.stop();
    throw err;
  }

  return {
    ...bus,
    async searchItems(service) {
      const { stdout } = await dbusSend('--dest=org.freedesktop.secrets', '/org/freedesktop/secrets', 'org.freedesktop.Secret.Service.SearchItems', `dict:string:string:service,${service}`);
      return [...stdout.matchAll(/object path "([^"]+)"/g)].map((m) => m[1]!);
    },
    async restartKeyring() {
      await stopKeyring();
      await startKeyring();
    },
    async assertHealthy() {
      const why = unexpectedExit ?? (keyring ? await notReady(keyring) : 'not started');
      if (why !== null) throw new Error(`the test Secret Service broke: ${why}; gnome-keyring-daemon said: ${keyringErr.trim() || '(nothing)'}`);
    },
    async lockDefaultCollection() {
      const alias = await dbusSend('--dest=org.freedesktop.secrets', '/org/freedesktop/secrets', 'org.freedesktop.Secret.Service.ReadAlias', 'string:default');
      const collection = /object path "([^"]+)"/.exec(alias.stdout)![1]!;
      await dbusSend('--dest=org.freedesktop.secrets', '/org/freedesktop/secrets', 'org.freedesktop.Secret.Service.Lock', `array:objpath:${collection}`);
      return collection;
    },
    async stop() {
      await stopKeyring();
      await bus.stop();
    },
  };
}
