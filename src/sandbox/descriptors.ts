/**
 * Descriptors `run` inherited from whoever started it (a shell's `exec 40</`, an IDE, a CI runner)
 * would pass through bwrap into the sandbox, and an open directory there is a way around every
 * mount: `/proc/self/fd/40/...` is the host's file system. Node opens its own descriptors with
 * close-on-exec, so those without it are exactly the inherited ones: `run` closes them before it
 * starts anything. stdin, stdout and stderr are the program's and stay.
 */
import fs from 'node:fs';

/** O_CLOEXEC as /proc/PID/fdinfo prints it (octal `flags:`). */
const O_CLOEXEC = 0o2000000;

/** This process's descriptors above 2 that a child would inherit (no close-on-exec). */
export function inheritableDescriptors(): number[] {
  let fds: string[];
  try {
    fds = fs.readdirSync('/proc/self/fd');
  } catch {
    return []; // no procfs (macOS): bwrap does not run there either
  }
  const found: number[] = [];
  for (const name of fds) {
    const fd = Number(name);
    if (!Number.isInteger(fd) || fd <= 2) continue;
    try {
      const m = /^flags:\s+([0-7]+)$/m.exec(fs.readFileSync(`/proc/self/fdinfo/${fd}`, 'utf8'));
      if (m && (Number.parseInt(m[1]!, 8) & O_CLOEXEC) === 0) found.push(fd);
    } catch {
      // the descriptor readdir itself used, already closed
    }
  }
  return found;
}

/** Closes the descriptors a child would inherit; returns their numbers. */
export function closeInheritedDescriptors(): number[] {
  const closed: number[] = [];
  for (const fd of inheritableDescriptors()) {
    try {
      fs.closeSync(fd);
      closed.push(fd);
    } catch {
      // closed meanwhile
    }
  }
  return closed;
}
