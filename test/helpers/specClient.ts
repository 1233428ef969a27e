/** Runs test/fixtures/spec-client.mjs (a client written only from PROTOCOL.md) as a child process. */
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';

export const SPEC_CLIENT = fileURLToPath(new URL('../fixtures/spec-client.mjs', import.meta.url));

export type SpecRequest = { op: string; payload?: Record<string, unknown> };

export interface SpecClientOptions {
  /** A command the client runs under, e.g. setpriv (see otherUid.ts). */
  wrapper?: string[];
  /** Another copy of the client to run (default SPEC_CLIENT). */
  client?: string;
  cwd?: string;
  env?: NodeJS.ProcessEnv;
}

/** Runs the client and returns its frames. */
export function runSpecClient(
  socketPath: string,
  range: 'v1' | 'v2',
  requests: SpecRequest[],
  options: SpecClientOptions = {},
): Promise<Array<Record<string, unknown>>> {
  const argv = [...(options.wrapper ?? []), process.execPath, options.client ?? SPEC_CLIENT, socketPath, range, JSON.stringify(requests)];
  return new Promise((resolve, reject) => {
    execFile(argv[0]!, argv.slice(1), { timeout: 20_000, cwd: options.cwd, env: options.env }, (err, stdout, stderr) => {
      if (err && !stdout) reject(new Error(`spec client failed: ${err.message} ${stderr}`));
      else resolve(stdout.trim().split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>));
    });
  });
}
