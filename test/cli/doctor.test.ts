/**
 * `credproxy doctor` end to end: the real CLI in a private sandbox (HOME, CREDPROXY_HOME,
 * XDG_RUNTIME_DIR), against real directories, a real daemon started with `serve`, and real (or
 * stand-in) programs on PATH. Plus the pure rules that turn a daemon's status into checks.
 */
import type { ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { evaluateDaemon, type DaemonSummary } from '../../src/cli/util/daemonChecks.js';
import { userNamespaceFix } from '../../src/cli/util/sandboxChecks.js';
import { PACKAGE_VERSION } from '../../src/server/discovery.js';
import { makeSandbox, runCli, startServe, type RunResult, type Sandbox } from './cliHarness.js';

interface Check {
  name: string;
  status: 'ok' | 'warn' | 'problem';
  detail: string;
  fix?: string;
}
interface Report {
  checks: Check[];
  daemon?: DaemonSummary;
}

const CHECKS = ['socket-dir', 'store', 'data-dir', 'keyring', 'bwrap', 'docker', 'podman', 'clock', 'daemon'];

let box: Sandbox;
let serving: ChildProcess | undefined;
beforeEach(() => (box = makeSandbox()));
afterEach(() => {
  // Only the daemon this test started, by its own handle.
  if (serving && serving.exitCode === null && serving.signalCode === null) serving.kill('SIGKILL');
  serving = undefined;
  box.cleanup();
});

/** `doctor --json ARGS`; checks the promises every run keeps: JSON on stdout, a fix for every warn and problem, exit 1 exactly on a problem. */
async function doctor(args: string[] = [], env: NodeJS.ProcessEnv = box.env): Promise<{ result: RunResult; report: Report }> {
  const result = await runCli(['doctor', '--json', ...args], { env });
  const report = JSON.parse(result.stdout) as Report;
  for (const c of report.checks) if (c.status !== 'ok') expect(c.fix, `${c.name} has no fix`).toEqual(expect.any(String));
  const problems = report.checks.filter((c) => c.status === 'problem').length;
  expect(result.code, result.stderr).toBe(problems ? 1 : 0);
  expect(result.stderr).toBe(problems ? `credproxy: doctor found ${problems} problem${problems === 1 ? '' : 's'}\n` : '');
  return { result, report };
}

function check(report: Report, name: string): Check {
  const found = report.checks.find((c) => c.name === name);
  if (!found) throw new Error(`no ${name} check in ${JSON.stringify(report.checks.map((c) => c.name))}`);
  return found;
}

const socketDir = (): string => path.join(box.dir, 'credproxy');
const nowSec = (): number => Math.floor(Date.now() / 1000);

describe('doctor on a fresh host', () => {
  it('lists every check, finds no problem, and creates neither the data dir nor the socket dir', async () => {
    const { report } = await doctor();
    expect(report.checks.map((c) => c.name)).toEqual(CHECKS);
    expect(report.checks.filter((c) => c.status === 'problem')).toEqual([]);
    expect(check(report, 'socket-dir').detail).toBe(`${socketDir()} does not exist yet; serve creates it 0700`);
    expect(check(report, 'data-dir').detail).toContain('does not exist yet');
    // No session bus in the sandbox: auto falls back to the file store, keyed by the sandbox's passphrase.
    expect(check(report, 'store')).toMatchObject({ status: 'ok', detail: expect.stringMatching(/^file store: no D-Bus session bus .*; encrypted with CREDPROXY_PASSPHRASE/) });
    expect(check(report, 'keyring').status).toBe('ok');
    expect(check(report, 'daemon')).toMatchObject({ status: 'ok', detail: expect.stringContaining('no daemon running') });
    expect(report.daemon).toBeUndefined();

    const human = await runCli(['doctor'], { env: box.env });
    expect(human.code, human.stderr).toBe(0);
    const lines = human.stdout.split('\n');
    CHECKS.forEach((name, i) => expect(lines[i]).toMatch(new RegExp(`^(ok|warn|PROBLEM) +${name} +\\S`)));

    expect(existsSync(box.env.CREDPROXY_HOME!)).toBe(false);
    expect(existsSync(socketDir())).toBe(false);
  });

  it('without CREDPROXY_PASSPHRASE: the key-file store and the missing keyring are warnings with fixes, still exit 0', async () => {
    const { CREDPROXY_PASSPHRASE: _unset, ...env } = box.env;
    const { report } = await doctor([], env);
    expect(check(report, 'store')).toMatchObject({ status: 'warn', detail: expect.stringContaining('CREDPROXY_PASSPHRASE is unset'), fix: expect.stringContaining('export CREDPROXY_PASSPHRASE=') });
    expect(check(report, 'keyring')).toMatchObject({ status: 'warn', detail: expect.stringContaining('DBUS_SESSION_BUS_ADDRESS is not set') });
    expect(existsSync(box.env.CREDPROXY_HOME!)).toBe(false);
  });
});

describe('doctor on loosened directories', () => {
  it('a 0755 socket directory is a problem fixed by chmod 700', async () => {
    mkdirSync(socketDir(), { mode: 0o755 });
    chmodSync(socketDir(), 0o755); // whatever the umask left
    const { report } = await doctor();
    expect(check(report, 'socket-dir')).toMatchObject({ status: 'problem', detail: expect.stringContaining('has mode 755'), fix: `chmod 700 ${socketDir()}` });

    // Fixed as told, the directory passes; a current.json others can read is the next problem.
    chmodSync(socketDir(), 0o700);
    const file = path.join(socketDir(), 'current.json');
    writeFileSync(file, '{}', { mode: 0o644 });
    chmodSync(file, 0o644);
    const again = await doctor();
    expect(check(again.report, 'socket-dir')).toMatchObject({ status: 'problem', detail: expect.stringContaining(`${file} has mode 644`), fix: `chmod 600 ${file}` });
  });

  it('a symlink in place of the socket directory is a problem (serve refuses it too)', async () => {
    const elsewhere = path.join(box.dir, 'elsewhere');
    mkdirSync(elsewhere, { mode: 0o700 });
    symlinkSync(elsewhere, socketDir());
    const { report } = await doctor();
    expect(check(report, 'socket-dir')).toMatchObject({ status: 'problem', detail: expect.stringContaining('is a symlink'), fix: expect.stringMatching(/^rm /) });
  });

  it('a data dir others can list is a problem fixed by chmod 700', async () => {
    const dir = box.env.CREDPROXY_HOME!;
    mkdirSync(dir, { mode: 0o755 });
    chmodSync(dir, 0o755);
    const { report } = await doctor();
    expect(check(report, 'data-dir')).toMatchObject({ status: 'problem', fix: `chmod 700 ${dir}` });
  });

  it('a file credproxy wrote with a later mtime than the clock is a clock problem', async () => {
    const dir = box.env.CREDPROXY_HOME!;
    mkdirSync(dir, { mode: 0o700 });
    const audit = path.join(dir, 'audit.log');
    writeFileSync(audit, '', { mode: 0o600 });
    const aDayAhead = new Date(Date.now() + 24 * 3600_000);
    utimesSync(audit, aDayAhead, aDayAhead);
    const { report } = await doctor();
    expect(check(report, 'clock')).toMatchObject({ status: 'problem', detail: expect.stringContaining(`${audit} was modified at`), fix: expect.any(String) });
  });
});

describe('doctor and the sandbox tools on PATH', () => {
  it('a bwrap that cannot make a sandbox is a warning naming its error, with the user-namespace fix', async () => {
    const bin = path.join(box.dir, 'bin');
    mkdirSync(bin);
    const fake = path.join(bin, 'bwrap');
    writeFileSync(fake, `#!/bin/sh\n[ "$1" = --version ] && { echo 'bubblewrap 0.0-test'; exit 0; }\necho 'bwrap: setting up uid map: Permission denied' >&2\nexit 1\n`, { mode: 0o755 });
    const { report } = await doctor([], { ...box.env, PATH: bin });
    expect(check(report, 'bwrap')).toMatchObject({
      status: 'warn',
      detail: `${fake} (bubblewrap 0.0-test) cannot make a sandbox: \`bwrap --ro-bind / / --unshare-pid --unshare-ipc --unshare-uts --proc /proc --dev /dev --cap-drop ALL true\` exited with 1: bwrap: setting up uid map: Permission denied`,
      fix: expect.stringContaining('sysctl'),
    });
    expect(check(report, 'docker')).toEqual({ name: 'docker', status: 'ok', detail: 'not found on PATH (needed only for Docker sandboxes)' });
  });

  it('no bwrap at all is a warning with an install command', async () => {
    const empty = path.join(box.dir, 'empty-bin');
    mkdirSync(empty);
    const { report } = await doctor([], { ...box.env, PATH: empty });
    expect(check(report, 'bwrap')).toMatchObject({ status: 'warn', fix: expect.stringContaining('bubblewrap') });
  });

  it('the user-namespace fix follows what /proc/sys says', () => {
    const sysctl = (values: Record<string, string>) => (name: string) => values[name] ?? null;
    expect(userNamespaceFix(sysctl({ 'kernel/apparmor_restrict_unprivileged_userns': '1' }))).toBe('sysctl -w kernel.apparmor_restrict_unprivileged_userns=0');
    expect(userNamespaceFix(sysctl({ 'kernel/apparmor_restrict_unprivileged_userns': '0', 'kernel/unprivileged_userns_clone': '0' }))).toBe('sysctl -w kernel.unprivileged_userns_clone=1');
    expect(userNamespaceFix(sysctl({ 'user/max_user_namespaces': '0' }))).toBe('sysctl -w user.max_user_namespaces=15000');
    expect(userNamespaceFix(sysctl({ 'user/max_user_namespaces': '63000' }))).toContain('container');
  });
});

describe('doctor and a running daemon', () => {
  it('reports its pid, listeners and tokens, warns about an expired token without a refresh token, and shows no token value', async () => {
    const secrets = [`at-${randomBytes(12).toString('hex')}`, `rt-${randomBytes(12).toString('hex')}`, `at-${randomBytes(12).toString('hex')}`];
    const put = (args: string[], token: object) => runCli(['import', ...args, '--store', 'file'], { env: box.env, input: JSON.stringify(token) });
    expect((await put(['github'], { access_token: secrets[0], refresh_token: secrets[1], expiry: nowSec() + 3600 })).code).toBe(0);
    expect((await put(['anthropic', '--bucket', 'work'], { access_token: secrets[2], expiry: nowSec() - 3600 })).code).toBe(0);

    const { child, ready, exit } = startServe(['--store', 'file', '--json'], box.env);
    serving = child;
    const { socket, control } = JSON.parse(await ready) as { socket: string; control: string };

    // Found through current.json in the sandbox's socket directory, and named with --daemon.
    for (const args of [[], ['--daemon', control]]) {
      const { result, report } = await doctor(args);
      for (const s of secrets) expect(result.stdout).not.toContain(s);
      expect(check(report, 'daemon')).toMatchObject({ status: 'ok', detail: expect.stringMatching(new RegExp(`^pid ${child.pid}, version ${PACKAGE_VERSION.replace(/\./g, '\\.')}, file store, up `)) });
      expect(report.daemon).toMatchObject({ pid: child.pid, version: PACKAGE_VERSION, store: 'file', sessions: [] });
      expect(report.daemon!.listeners).toEqual(expect.arrayContaining([{ kind: 'main', path: socket }, { kind: 'control', path: control }]));
      expect(report.daemon!.tokens).toEqual([
        { provider: 'anthropic', bucket: 'work', expiry: expect.any(Number), refresh_token: false },
        { provider: 'github', bucket: 'default', expiry: expect.any(Number), refresh_token: true },
      ]);
      expect(check(report, 'tokens')).toMatchObject({ status: 'warn', detail: expect.stringContaining('expired without a refresh token: anthropic/work'), fix: 'credproxy login anthropic --bucket work' });
      expect(check(report, 'socket-dir')).toMatchObject({ status: 'ok', detail: expect.stringContaining('current.json and 2 sockets owner-only') });
    }

    const human = await runCli(['doctor'], { env: box.env });
    for (const s of secrets) expect(human.stdout + human.stderr).not.toContain(s);
    expect(human.stdout).toMatch(new RegExp(`^ok +daemon +pid ${child.pid},`, 'm'));
    expect(human.stdout).toContain(`  listener main     ${socket}\n`);
    expect(human.stdout).toContain(`  listener control  ${control}\n`);
    expect(human.stdout).toMatch(/^ {2}token github\/default {2}expires in (59m|1h) {2}refresh token: yes$/m);
    expect(human.stdout).toMatch(/^ {2}tokens: credproxy login anthropic --bucket work$/m);

    // The main socket serves no admin op: naming it is a problem that points at the control socket.
    const wrong = await doctor(['--daemon', socket]);
    expect(check(wrong.report, 'daemon')).toMatchObject({ status: 'problem', detail: expect.stringContaining('UNAUTHORIZED'), fix: expect.stringContaining('control') });

    child.kill('SIGTERM');
    expect((await exit).code).toBe(0);
  });

  it('--daemon naming a control socket that does not exist is a problem, not a stack trace', async () => {
    const missing = path.join(box.dir, 'no-such.ctl');
    const { result, report } = await doctor(['--daemon', missing]);
    expect(check(report, 'daemon')).toMatchObject({ status: 'problem', detail: expect.stringContaining(`at ${missing}: Cannot connect`), fix: expect.stringContaining('credproxy serve') });
    expect(check(report, 'daemon').detail).toContain('ENOENT');
    expect(result.stderr).toBe('credproxy: doctor found 1 problem\n');
  });
});

describe('the daemon status rules', () => {
  const status = (overrides: Partial<DaemonSummary> = {}): DaemonSummary => ({
    pid: 4242,
    version: PACKAGE_VERSION,
    store: 'keyring',
    uptime_s: 90,
    listeners: [{ kind: 'main', path: '/run/x.sock' }],
    connections: { total: 0, limit: 4096 },
    grants: 1,
    sessions: [],
    tokens: [],
    ...overrides,
  });
  const now = Date.UTC(2030, 0, 1);

  it('a daemon of another version is a warning with the restart command', () => {
    const [daemon] = evaluateDaemon(status({ version: '0.0.1-old' }), now);
    expect(daemon).toMatchObject({ status: 'warn', detail: expect.stringContaining(`runs version 0.0.1-old, this CLI is ${PACKAGE_VERSION}`), fix: 'kill 4242 && credproxy serve' });
  });

  it('an expired token with a refresh token is fine (the daemon renews it); without one it needs a login', () => {
    const expired = now / 1000 - 60;
    const renewable = evaluateDaemon(status({ tokens: [{ provider: 'github', bucket: 'default', expiry: expired, refresh_token: true }] }), now);
    expect(renewable[1]).toMatchObject({ name: 'tokens', status: 'ok' });
    const dead = evaluateDaemon(status({ tokens: [{ provider: 'gemini', bucket: 'default', expiry: expired, refresh_token: false }] }), now);
    expect(dead[1]).toMatchObject({ name: 'tokens', status: 'warn', fix: 'credproxy login gemini' });
  });
});
