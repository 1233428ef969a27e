// What the figures were measured on, and CPU pinning when the machine allows it.
import { spawn, spawnSync } from 'node:child_process';
import os from 'node:os';

/** Cores, Node version and load average at the moment of the call. */
export function machine() {
  const cpus = os.cpus();
  return {
    cores: cpus.length,
    cpu: cpus[0]?.model ?? 'unknown',
    node: process.version,
    platform: `${process.platform} ${os.release()}`,
    loadAverage: os.loadavg().map((x) => Number(x.toFixed(2))),
    pinning: canPin() ? 'taskset' : 'none',
    date: new Date().toISOString(),
  };
}

let pinnable;
/** Whether `taskset -c 0` works here (Linux with util-linux). */
export function canPin() {
  pinnable ??= process.platform === 'linux' && spawnSync('taskset', ['-c', '0', 'true']).status === 0;
  return pinnable;
}

/** argv that runs `command args` on CPU `cpu` when pinning works, else unchanged. */
export function pinned(cpu, command, args) {
  if (cpu === null || cpu === undefined || !canPin()) return { command, args };
  return { command: 'taskset', args: ['-c', String(cpu), command, ...args] };
}

/** Moves this process to `cpus` (a taskset list such as 0 or 0-1); its children inherit it. */
export async function pinSelf(cpus) {
  if (!canPin()) return;
  await new Promise((resolve) => spawn('taskset', ['-pc', String(cpus), String(process.pid)], { stdio: 'ignore' }).once('exit', resolve));
}
