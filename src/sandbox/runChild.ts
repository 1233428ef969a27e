/**
 * Runs a command to its end the way a shell would: the terminal stays its own, SIGTERM and SIGHUP
 * (and SIGINT off a terminal) are passed on, and the exit status is its own or 128 + the signal
 * number that killed it. Optionally hands it a string on descriptor 3 (the capability, §7) and, for
 * bwrap, learns the sandboxed program's pid so signals reach the program rather than bwrap.
 * Node built-ins only: `credproxy exec` runs this on the sandbox's helper path.
 */
import { spawn, type StdioOptions } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import type { Readable, Writable } from 'node:stream';

const FORWARDED_SIGNALS = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const;

export interface ChildSpec {
  command: string;
  args: readonly string[];
  env: NodeJS.ProcessEnv;
  /** Written to descriptor 3, which is then closed on our side. */
  fd3?: string;
  /** More descriptors to hand over the same way (bwrap's --seccomp filter). */
  inputs?: ReadonlyArray<{ fd: number; data: string | Buffer }>;
  /** A descriptor on which the child (bwrap `--info-fd`) writes `{"child-pid": N}`. */
  infoFd?: number;
  /** Told about a failed start (the exit status is then 127 or 126). */
  warn(line: string): void;
}

/** The program bwrap's pid 1 (`init`) runs: its only child, checked to still be init's (not a reused pid). */
function sandboxedProgram(init: number): number | undefined {
  try {
    const n = Number.parseInt(fs.readFileSync(`/proc/${init}/task/${init}/children`, 'utf8'), 10);
    if (!Number.isInteger(n) || n <= 0) return undefined;
    const ppid = /^PPid:\s+(\d+)$/m.exec(fs.readFileSync(`/proc/${n}/status`, 'utf8'));
    return ppid && Number(ppid[1]) === init ? n : undefined;
  } catch {
    return undefined;
  }
}

/** True when `pid` ignores `signal` (its SigIgn mask in /proc); unknown counts as not ignoring. */
function ignores(pid: number, signal: NodeJS.Signals): boolean {
  try {
    const m = /^SigIgn:\s+([0-9a-f]+)$/m.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
    const n = os.constants.signals[signal];
    return m !== null && ((BigInt(`0x${m[1]}`) >> BigInt(n - 1)) & 1n) === 1n;
  } catch {
    return false;
  }
}

/** Collects the `child-pid` bwrap reports, or undefined once the descriptor closes without one. */
function readInfoPid(stream: Readable): Promise<number | undefined> {
  return new Promise((resolve) => {
    let text = '';
    stream.setEncoding('utf8');
    stream.on('data', (d: string) => {
      text += d;
      const m = /"child-pid"\s*:\s*(\d+)/.exec(text);
      // Read on to the end: bwrap may write the rest later, and a closed pipe would kill it (SIGPIPE).
      if (m) resolve(Number(m[1]));
    });
    stream.once('close', () => resolve(undefined));
    stream.once('error', () => resolve(undefined));
  });
}

export function runChild(spec: ChildSpec): Promise<number> {
  return new Promise((resolve) => {
    // Descriptors handed over: 3 (the capability) and bwrap's own (a seccomp filter); each is written
    // once and closed on our side.
    const inputs = new Map<number, string | Buffer>(spec.inputs?.map((i) => [i.fd, i.data]) ?? []);
    if (spec.fd3 !== undefined) inputs.set(3, spec.fd3);
    const last = Math.max(2, spec.infoFd ?? 0, ...inputs.keys());
    const stdio: StdioOptions = ['inherit', 'inherit', 'inherit'];
    for (let fd = 3; fd <= last; fd++) stdio.push(inputs.has(fd) || fd === spec.infoFd ? 'pipe' : 'ignore');
    const child = spawn(spec.command, [...spec.args], { stdio, env: spec.env });
    for (const [fd, data] of inputs) {
      const stream = child.stdio[fd] as Writable | null;
      stream?.on('error', () => {}); // a child that exits without reading it
      stream?.end(data);
    }
    // Inside bwrap the program is the child of bwrap's own pid 1, which ignores forwarded signals.
    const initPid = spec.infoFd !== undefined ? readInfoPid(child.stdio[spec.infoFd] as Readable) : Promise.resolve(undefined);
    const running = (): boolean => child.exitCode === null && child.signalCode === null;

    async function deliver(signal: NodeJS.Signals, attempt = 0): Promise<void> {
      if (!running()) return;
      if (spec.infoFd === undefined) {
        child.kill(signal);
        return;
      }
      const init = await initPid;
      const program = init !== undefined ? sandboxedProgram(init) : undefined;
      // Until bwrap's `env --default-signal` has run, the program still ignores the group signals:
      // a signal sent then would be lost, so it waits (briefly) for the program to take them. A
      // program that ignores the signal on purpose gets it after that wait, as it would anyway.
      if (program !== undefined && (!ignores(program, signal) || attempt >= 25)) {
        process.kill(program, signal);
      } else if (init !== undefined && attempt < 100) {
        setTimeout(() => void deliver(signal, attempt + 1).catch(() => {}), 20);
      } else {
        child.kill('SIGKILL'); // no program to signal: end the sandbox (it dies with bwrap)
      }
    }
    // A Ctrl-C on a terminal already reaches the program (it is in the terminal's foreground process
    // group); forwarding it too would deliver it twice, and a second Ctrl-C means "quit" to many
    // interactive tools. Sent by kill(1) to credproxy alone, it is forwarded.
    const interactive = process.stdin.isTTY === true;
    const forward = (signal: NodeJS.Signals): void => {
      if (signal === 'SIGINT' && interactive) return;
      void deliver(signal).catch(() => {});
    };
    // Listening also keeps these signals from killing credproxy before the program has reacted.
    for (const signal of FORWARDED_SIGNALS) process.on(signal, forward);
    const done = (status: number): void => {
      for (const signal of FORWARDED_SIGNALS) process.off(signal, forward);
      resolve(status);
    };
    child.once('error', (err: NodeJS.ErrnoException) => {
      // Also emitted when a kill fails; only a failed start ends the command here.
      if (child.pid !== undefined) return;
      // Shell conventions: 127 = not found, 126 = found but not runnable.
      spec.warn(`Cannot run ${spec.command}: ${err.code === 'ENOENT' ? 'command not found' : (err.code ?? err.message)}`);
      done(err.code === 'ENOENT' ? 127 : 126);
    });
    child.once('exit', (code, signal) => {
      if (signal) done(128 + (os.constants.signals[signal] ?? 0));
      else done(code ?? 1);
    });
  });
}
