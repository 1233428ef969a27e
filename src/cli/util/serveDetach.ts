/**
 * `credproxy serve --detach`: starts the daemon in the background for the login session and returns
 * once it is ready — or, when one is already running, names it — so it can sit in a shell profile.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { dataDir } from '../../paths.js';
import { findAnsweringDaemon, type DiscoveryEntry } from '../../server/discovery.js';
import { defaultSocketDir, ensurePrivateDir } from '../../server/socketPath.js';
import { withFileLock } from '../../store/locks.js';
import { CliError, warn } from './errors.js';

/** How long a starting daemon may take to print its ready line (the keyring probe alone may take 2 s). */
const READY_TIMEOUT_MS = 30_000;

/** The detached daemon's stderr, in DATA_DIR. */
export const SERVE_LOG = 'serve.log';

export interface DetachOptions {
  socket?: string;
  json?: boolean;
}

/**
 * Starts `serve` with the same arguments minus --detach as a detached child and prints its ready
 * line. Without --socket, a daemon that discovery finds is reported instead of starting another.
 */
export async function serveDetached(opts: DetachOptions, argv: readonly string[] = process.argv, env: NodeJS.ProcessEnv = process.env): Promise<void> {
  // The node flags this process runs with, the same script, and every argument but --detach (a flag
  // takes no value, so no option's value can be the word itself and be dropped by mistake).
  const childArgs = [...process.execArgv, argv[1]!, ...argv.slice(2).filter((a) => a !== '--detach')];
  // An explicit socket is a deliberate extra daemon; discovery only speaks for the default directory.
  if (opts.socket !== undefined) return startDetached(childArgs, env);

  const dir = defaultDir(env);
  // Two shells opened at once (a terminal restoring its tabs) must not start two daemons: finding
  // none and starting one happen under one lock, held until the new daemon has written current.json.
  await withFileLock(path.join(dir, 'detach'), { waitMs: READY_TIMEOUT_MS + 10_000, staleMs: 10_000, what: 'the daemon start' }, async () => {
    const running = await findAnsweringDaemon(env);
    if (running) alreadyRunning(running, opts.json === true);
    else await startDetached(childArgs, env);
  });
}

/** The default socket directory, made private like the daemon makes it (the lock lives there). */
function defaultDir(env: NodeJS.ProcessEnv): string {
  try {
    const dir = defaultSocketDir(env);
    ensurePrivateDir(dir);
    return dir;
  } catch (err) {
    throw new CliError((err as Error).message);
  }
}

function alreadyRunning(entry: DiscoveryEntry, json: boolean): void {
  process.stdout.write(`${json ? JSON.stringify({ socket: entry.socket, control: entry.control }) : entry.socket}\n`);
  warn(`a daemon is already running (pid ${entry.pid}); not starting another`);
}

type Outcome = { ready: string } | { exited: string } | { failed: string } | { timedOut: true };

async function startDetached(args: string[], env: NodeJS.ProcessEnv): Promise<void> {
  const log = openLog(env);
  let child: ChildProcess;
  try {
    // Own session (setsid): no controlling terminal, so closing the terminal does not hang it up.
    // stdin is /dev/null; stdout is read here up to the ready line; stderr appends to the log.
    child = spawn(process.execPath, args, { detached: true, stdio: ['ignore', 'pipe', log.fd], env });
  } finally {
    // The child has its own descriptor for the log now.
    fs.closeSync(log.fd);
  }
  const outcome = await readyLine(child);
  if ('ready' in outcome) {
    // Nothing else keeps this process waiting on the daemon: it lives on after we exit.
    child.stdout!.destroy();
    child.unref();
    process.stdout.write(`${outcome.ready}\n`);
    warn(`daemon started (pid ${child.pid}); its messages go to ${log.file}`);
    return;
  }
  if ('timedOut' in outcome) {
    child.kill('SIGTERM');
    child.unref();
    throw new CliError(`the daemon was not ready within ${READY_TIMEOUT_MS / 1000} s and was stopped; see ${log.file}`);
  }
  if ('failed' in outcome) throw new CliError(outcome.failed);
  // Its error is the last `credproxy: …` line it wrote, the same line a foreground serve prints.
  const said = newLogLines(log.file, log.offset).filter((l) => l.startsWith('credproxy: ')).at(-1);
  throw new CliError(said ? said.slice('credproxy: '.length) : `the daemon exited (${outcome.exited}) before it was ready; see ${log.file}`);
}

function readyLine(child: ChildProcess): Promise<Outcome> {
  return new Promise((resolve) => {
    let buf = '';
    const done = (outcome: Outcome): void => {
      clearTimeout(timer);
      resolve(outcome);
    };
    const timer = setTimeout(() => done({ timedOut: true }), READY_TIMEOUT_MS);
    child.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
      buf += chunk;
      const nl = buf.indexOf('\n');
      if (nl >= 0) done({ ready: buf.slice(0, nl) });
    });
    child.once('error', (err: NodeJS.ErrnoException) => done({ failed: `Cannot start the daemon: ${err.code ?? err.message}` }));
    // The child's stderr is a file, written synchronously: its last words are in the log by now.
    child.once('exit', (code, signal) => done({ exited: signal ?? `exit code ${code}` }));
  });
}

/** Opens DATA_DIR/serve.log for appending (0600) and marks where this start's output begins. */
function openLog(env: NodeJS.ProcessEnv): { fd: number; file: string; offset: number } {
  const dir = dataDir(env);
  const file = path.join(dir, SERVE_LOG);
  try {
    fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
    const fd = fs.openSync(file, 'a', 0o600);
    // A log left by an older run with looser bits is still ours; the daemon's lines name its paths.
    if ((fs.fstatSync(fd).mode & 0o077) !== 0) fs.fchmodSync(fd, 0o600);
    fs.writeSync(fd, `--- ${new Date().toISOString()} serve --detach\n`);
    return { fd, file, offset: fs.fstatSync(fd).size };
  } catch (err) {
    throw new CliError(`Cannot open the daemon log ${file}: ${(err as NodeJS.ErrnoException).code ?? 'error'}`);
  }
}

function newLogLines(file: string, offset: number): string[] {
  try {
    return fs.readFileSync(file).subarray(offset).toString('utf8').split('\n').filter(Boolean);
  } catch {
    return [];
  }
}
