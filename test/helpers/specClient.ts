/** Runs test/fixtures/spec-client.mjs (a client written only from PROTOCOL.md) as a child process. */
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';

export const SPEC_CLIENT = fileURLToPath(new URL('../fixtures/spec-client.mjs', import.meta.url));

/** Runs the client, optionally through a wrapper command (e.g. setpriv), and returns its frames. */
export function runSpecClient(
  socketPath: string,
  range: 'v1' | 'v2',
  requests: Array<{ op: string; payload?: Record<string, unknown> }>,
  wrapper: string[] = [],
): Promise<Array<Record<string, unknown>>> {
  const argv = [...wrapper, process.execPath, SPEC_CLIENT, socketPath, range, JSON.stringify(requests)];
  return new Promise((resolve, reject) => {
    execFile(argv[0]!, argv.slice(1), { timeout: 20_000 }, (err, stdout, stderr) => {
      if (err && !stdout) reject(new Error(`spec client failed: ${err.message} ${stderr}`));
      else resolve(stdout.trim().split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>));
    });
  });
}
