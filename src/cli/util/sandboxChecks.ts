/**
 * `doctor`'s sandbox checks: bubblewrap, Docker and Podman on PATH, and whether bubblewrap can
 * actually make a sandbox here (unprivileged user namespaces are often switched off).
 */
import { execFile, type ExecFileException } from 'node:child_process';
import fs from 'node:fs';
import { ok, warnCheck, type Check } from './check.js';
import { installCommand, onPath } from './onPath.js';

/** The namespaces and mounts `credproxy run --sandbox bwrap` needs, so a pass here means run can start. */
const TRIAL_ARGS = ['--ro-bind', '/', '/', '--unshare-pid', '--unshare-ipc', '--unshare-uts', '--proc', '/proc', '--dev', '/dev', '--cap-drop', 'ALL', 'true'];

/** `--version` answers at once; a tool that hangs on it must not hold the report up. */
const VERSION_TIMEOUT_MS = 3000;
/** Making an empty sandbox takes milliseconds; this only bounds a bwrap that hangs. */
const SANDBOX_TIMEOUT_MS = 5000;

/** The bwrap, docker and podman checks, in that order. */
export function sandboxChecks(env: NodeJS.ProcessEnv): Promise<Check[]> {
  return Promise.all([bwrapCheck(env), toolCheck('docker', 'Docker', env), toolCheck('podman', 'Podman', env)]);
}

async function bwrapCheck(env: NodeJS.ProcessEnv): Promise<Check> {
  const file = onPath('bwrap', env);
  if (!file) {
    if (process.platform !== 'linux') return ok('bwrap', `not found; bubblewrap sandboxes are Linux-only (this is ${process.platform})`);
    return warnCheck('bwrap', 'bubblewrap (bwrap) is not on PATH; bubblewrap sandboxes need it', installCommand('bubblewrap', env));
  }
  const [version, trial] = await Promise.all([versionOf(file, env), run(file, TRIAL_ARGS, env, SANDBOX_TIMEOUT_MS)]);
  if (trial.ok) return ok('bwrap', `${file} (${version}); \`bwrap ${TRIAL_ARGS.join(' ')}\` made a sandbox`);
  const said = firstLine(trial.stderr);
  return warnCheck('bwrap', `${file} (${version}) cannot make a sandbox: \`bwrap ${TRIAL_ARGS.join(' ')}\` ${trial.why}${said ? `: ${said}` : ''}`, userNamespaceFix(readSysctl));
}

async function toolCheck(name: string, label: string, env: NodeJS.ProcessEnv): Promise<Check> {
  const file = onPath(name, env);
  if (!file) return ok(name, `not found on PATH (needed only for ${label} sandboxes)`);
  return ok(name, `${file} (${await versionOf(file, env)})`);
}

/**
 * The sysctl that turns unprivileged user namespaces back on, judged from the /proc/sys files
 * `read` returns (null: absent). Ubuntu 23.10+ restricts them through AppArmor, Debian kernels had
 * their own switch, and any kernel can cap their number at 0.
 */
export function userNamespaceFix(read: (name: string) => string | null): string {
  if (read('kernel/apparmor_restrict_unprivileged_userns') === '1') return 'sysctl -w kernel.apparmor_restrict_unprivileged_userns=0';
  if (read('kernel/unprivileged_userns_clone') === '0') return 'sysctl -w kernel.unprivileged_userns_clone=1';
  if (read('user/max_user_namespaces') === '0') return 'sysctl -w user.max_user_namespaces=15000';
  return 'no user-namespace sysctl is off on this kernel; inside a container, its default seccomp and AppArmor profiles block the namespaces bwrap needs (docker run --security-opt seccomp=unconfined --security-opt apparmor=unconfined …)';
}

function readSysctl(name: string): string | null {
  try {
    return fs.readFileSync(`/proc/sys/${name}`, 'utf8').trim();
  } catch {
    return null;
  }
}

async function versionOf(file: string, env: NodeJS.ProcessEnv): Promise<string> {
  const result = await run(file, ['--version'], env, VERSION_TIMEOUT_MS);
  return result.ok ? firstLine(result.stdout) || 'no version printed' : `--version ${result.why}`;
}

interface RunResult {
  ok: boolean;
  stdout: string;
  stderr: string;
  /** How it failed, when it did: "exited with 1", "did not finish within 5 s", "EACCES". */
  why?: string;
}

/** Runs a program without a shell, its output capped and its life bounded; it gets no store passphrase. */
function run(file: string, args: string[], env: NodeJS.ProcessEnv, timeoutMs: number): Promise<RunResult> {
  const { CREDPROXY_PASSPHRASE: _passphrase, ...childEnv } = env;
  return new Promise((resolve) => {
    const options = { env: childEnv, timeout: timeoutMs, killSignal: 'SIGKILL' as const, maxBuffer: 64 * 1024, encoding: 'utf8' as const };
    execFile(file, args, options, (err: ExecFileException | null, stdout: string, stderr: string) => {
      if (!err) return resolve({ ok: true, stdout, stderr });
      let why: string;
      if (err.killed) why = `did not finish within ${timeoutMs / 1000} s`;
      else if (typeof err.code === 'number') why = `exited with ${err.code}`;
      else if (err.signal) why = `was killed by ${err.signal}`;
      else why = `could not run (${err.code ?? err.message})`;
      resolve({ ok: false, stdout, stderr, why });
    });
  });
}

function firstLine(text: string): string {
  return text.trim().split('\n')[0]?.trim().slice(0, 200) ?? '';
}
