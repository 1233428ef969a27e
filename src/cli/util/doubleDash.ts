/** Commands that run another command (`exec`, `run`) insist on `-- CMD ARGS...`. */
import type { Command } from 'commander';

/** True when the arguments end with `-- CMD ARGS...`, so none of CMD's options were taken for ours. */
export function commandFollowsDoubleDash(cmd: Command, command: string, args: string[]): boolean {
  let root = cmd;
  while (root.parent) root = root.parent;
  // commander keeps the argv it parsed on the root command; it is not in its typings.
  const raw = (root as unknown as { rawArgs?: string[] }).rawArgs ?? process.argv;
  const tail = ['--', command, ...args];
  const end = raw.slice(-tail.length);
  return end.length === tail.length && end.every((arg, i) => arg === tail[i]);
}
