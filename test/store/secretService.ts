/**
 * A real, private Secret Service for tests: a session dbus-daemon plus gnome-keyring-daemon
 * (secrets component, login keyring unlocked with a test password) in a throwaway HOME.
 * Debian packages: dbus (dbus-daemon, dbus-send) and gnome-keyring.
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

/** Starts a session bus; `bare` uses a config without service activation (nothing answers). */
export async function startSessionBus(options: { bare?: boolean } = {}): Promise<SessionBus> {
  const home = fs.mkdtempSync(path.join(os.tmpdir(), 'cps-ss-'));
  const runtime = path.join(home, 'run');
  fs.mkdirSync(runtime, { mode: 0o700 });
  const env: NodeJS.ProcessEnv = { ...process.env, HOME: home, XDG_RUNTIME_DIR: runtime, XDG_DATA_HOME: path.join(home, 'data'), XDG_CONFIG_HOME: path.join(home, 'config') };
  delete env.DBUS_SESSION_BUS_ADDRESS;
  const args = ['--nofork', '--print-address=1', '--nopidfile'];
  if (options.bare) {
    const config = path.join(home, 'bus.conf');
    fs.writeFileSync(
      config,
      `<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN" "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig><type>session</type><listen>unix:dir=${home}</listen><auth>EXTERNAL</auth>
<policy context="default"><allow send_destination="*" eavesdrop="true"/><allow eavesdrop="true"/><allow own="*"/></policy></busconfig>`,
    );
    args.unshift(`--config-file=${config}`);
  } else {
    args.unshift('--session');
  }
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

export async function startSecretService(): Promise<SecretService> {
  const bus = await startSessionBus();
  const { env } = bus;
  const dbusSend = (...args: string[]) => execFileAsync('dbus-send', ['--session', '--print-reply', ...args], { env, encoding: 'utf8' });

  let keyring: ChildProcess | undefined;
  const startKeyring = async () => {
    const child = spawn('gnome-keyring-daemon', ['--foreground', '--unlock', '--components=secrets'], { env, stdio: ['pipe', 'ignore', 'pipe'] });
    let err = '';
    child.stderr!.setEncoding('utf8').on('data', (d: string) => (err += d));
    child.stdin!.end(PASSWORD);
    keyring = child;
    const deadline = Date.now() + 10_000;
    for (;;) {
      if (child.exitCode !== null) throw new Error(`gnome-keyring-daemon exited (${child.exitCode}): ${err}`);
      const { stdout } = await dbusSend('--dest=org.freedesktop.DBus', '/org/freedesktop/DBus', 'org.freedesktop.DBus.NameHasOwner', 'string:org.freedesktop.secrets');
      if (/boolean true/.test(stdout)) return;
      if (Date.now() > deadline) throw new Error(`gnome-keyring-daemon did not take org.freedesktop.secrets within 10 s: ${err}`);
      await new Promise((resolve) => setTimeout(resolve, 25));
    }
  };
  try {
    await startKeyring();
  } catch (err) {
    if (keyring) await killAndWait(keyring);
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
      if (keyring) await killAndWait(keyring);
      await startKeyring();
    },
    async stop() {
      if (keyring) await killAndWait(keyring);
      await bus.stop();
    },
  };
}
