/** Finding a program the way a shell would, without running one. */
import { accessSync, constants, statSync } from 'node:fs';
import path from 'node:path';

/** The first executable regular file called `name` in the absolute directories of PATH, or null. */
export function onPath(name: string, env: NodeJS.ProcessEnv = process.env): string | null {
  for (const dir of (env.PATH ?? '').split(path.delimiter)) {
    if (!dir || !path.isAbsolute(dir)) continue;
    const candidate = path.join(dir, name);
    try {
      // X_OK alone passes for directories (and, for root, for any file with one x bit).
      accessSync(candidate, constants.X_OK);
      if (statSync(candidate).isFile()) return candidate;
    } catch {
      // not here
    }
  }
  return null;
}

/** Package managers, most common first, with how each installs a package. */
const PACKAGE_MANAGERS: ReadonlyArray<readonly [string, string]> = [
  ['apt-get', 'apt-get install'],
  ['dnf', 'dnf install'],
  ['yum', 'yum install'],
  ['pacman', 'pacman -S'],
  ['zypper', 'zypper install'],
  ['apk', 'apk add'],
];

/** The command that installs `packages` with the first package manager on PATH, or a list of the usual ones. */
export function installCommand(packages: string, env: NodeJS.ProcessEnv = process.env): string {
  const found = PACKAGE_MANAGERS.find(([program]) => onPath(program, env) !== null);
  if (found) return `${found[1]} ${packages}`;
  return `install ${packages} with your package manager (${PACKAGE_MANAGERS.slice(0, 4).map(([, install]) => `${install} ${packages}`).join(', ')})`;
}
