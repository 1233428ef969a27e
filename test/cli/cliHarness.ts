/**
 * Runs the real built CLI (dist/cli/main.js) as a child process, each test in its own temporary
 * CREDPROXY_HOME, with an environment built from scratch so a developer's own CREDPROXY_SOCKET or
 * keyring never leaks in.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, realpathSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { randomBytes } from 'node:crypto';
import { afterAll, afterEach, beforeAll, beforeEach } from 'vitest';
import type { StoredToken } from '../../src/store/types.js';
import { sampleToken, startTestDaemon, type TestDaemon } from '../helpers/daemon.js';

export const ROOT = fileURLToPath(new URL('../..', import.meta.url));
/** The binary as installed (package.json "bin"): the bundled launcher, which loads main.js for all but the helper path. */
export const CLI = path.join(ROOT, 'dist', 'cli', 'credproxy.cjs');

export interface RunResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

export interface Sandbox {
  dir: string;
  env: NodeJS.ProcessEnv;
  cleanup(): void;
}

/** A fresh home: data dir, runtime dir (0700, for default socket paths) and a passphrase. */
export function makeSandbox(): Sandbox {
  const dir = realpathSync(mkdtempSync(path.join(os.tmpdir(), 'cpcli-')));
  const env: NodeJS.ProcessEnv = {
    PATH: process.env.PATH,
    HOME: dir,
    CREDPROXY_HOME: path.join(dir, 'data'),
    CREDPROXY_PASSPHRASE: 'test passphrase for the cli tests',
    XDG_RUNTIME_DIR: dir,
    LANG: 'C',
  };
  return { dir, env, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

export interface ProxySandbox {
  daemon: TestDaemon;
  box: Sandbox;
  /** The github access token stored for the current test. */
  token: string;
}

/**
 * For the test file of a sandbox-side command: one daemon for the whole file and, for each test, a
 * fresh sandbox whose CREDPROXY_SOCKET names it and a fresh github token stored there (with
 * `tokenFields`). Read the fields inside tests and hooks: they are set by this helper's hooks.
 */
export function useProxySandbox(tokenFields: Partial<StoredToken> = {}): ProxySandbox {
  const fx = {} as ProxySandbox;
  beforeAll(async () => {
    fx.daemon = await startTestDaemon();
  });
  afterAll(() => fx.daemon.stop());
  beforeEach(async () => {
    fx.box = makeSandbox();
    fx.box.env.CREDPROXY_SOCKET = fx.daemon.socketPath;
    fx.token = `gho_${randomBytes(16).toString('hex')}`;
    await fx.daemon.store.saveToken('github', 'default', sampleToken({ access_token: fx.token, ...tokenFields }));
  });
  afterEach(() => fx.box.cleanup());
  return fx;
}

export interface RunOptions {
  env: NodeJS.ProcessEnv;
  /** Written to stdin, which is then closed; undefined = stdin closed at once (empty). */
  input?: string;
  timeoutMs?: number;
}

/** Starts the CLI; the caller decides when it ends (used by `serve`). */
export function spawnCli(args: string[], env: NodeJS.ProcessEnv): ChildProcess {
  return spawn(process.execPath, [CLI, ...args], { env, stdio: ['pipe', 'pipe', 'pipe'] });
}

/** Collects output until the process exits. */
export function finished(child: ChildProcess, timeoutMs = 20_000): Promise<RunResult> {
  let stdout = '';
  let stderr = '';
  child.stdout?.setEncoding('utf8').on('data', (d: string) => (stdout += d));
  child.stderr?.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`CLI did not exit within ${timeoutMs} ms; stdout=${stdout} stderr=${stderr}`));
    }, timeoutMs);
    child.once('error', reject);
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
  });
}

/**
 * Starts `credproxy serve ARGS`: `ready` resolves with its first stdout line (the socket path, or
 * the `--json` document) and rejects if it exits first; `exit` resolves when it ends.
 */
export function startServe(args: string[], env: NodeJS.ProcessEnv, timeoutMs = 30_000): { child: ChildProcess; ready: Promise<string>; exit: Promise<RunResult> } {
  const child = spawnCli(['serve', ...args], env);
  child.stdin?.end();
  const exit = finished(child, timeoutMs);
  const ready = new Promise<string>((resolve, reject) => {
    let buf = '';
    child.stdout!.on('data', (d: Buffer | string) => {
      buf += d.toString();
      const nl = buf.indexOf('\n');
      if (nl >= 0) resolve(buf.slice(0, nl));
    });
    exit.then((r) => reject(new Error(`serve exited early (${r.code}): ${r.stderr}`)), reject);
  });
  return { child, ready, exit };
}

/** Runs `credproxy ARGS` to completion. */
export function runCli(args: string[], options: RunOptions): Promise<RunResult> {
  const child = spawnCli(args, options.env);
  const done = finished(child, options.timeoutMs);
  child.stdin?.end(options.input ?? '');
  return done;
}

/** Runs the CLI with a pseudo-terminal as stdin (util-linux `script`), to test the "stdin is a TTY" path. */
export function runCliWithTtyStdin(args: string[], env: NodeJS.ProcessEnv): Promise<RunResult> {
  const quoted = [process.execPath, CLI, ...args].map((a) => `'${a.replace(/'/g, `'\\''`)}'`).join(' ');
  const child = spawn('script', ['-qec', quoted, '/dev/null'], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  return finished(child);
}

/** The single error line format every failing command must use. */
export function expectOneErrorLine(result: RunResult): string {
  const lines = result.stderr.split('\n').filter((l) => l.length > 0);
  if (result.code === 0) throw new Error(`expected failure, got exit 0; stdout=${result.stdout}`);
  if (lines.length !== 1 || !lines[0]!.startsWith('credproxy: ')) {
    throw new Error(`expected one "credproxy: …" line on stderr, got: ${JSON.stringify(result.stderr)}`);
  }
  return lines[0]!;
}
