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
