/**
 * Builds dist/ once before the test run: the CLI tests spawn the real built binary. A failed build
 * fails the run (tests against a stale dist/ would prove nothing). CREDPROXY_SKIP_BUILD=1 skips it
 * when dist/ is known to be fresh.
 */
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

export default function setup(): void {
  if (process.env.CREDPROXY_SKIP_BUILD === '1') return;
  const root = fileURLToPath(new URL('..', import.meta.url));
  try {
    execFileSync('npm', ['run', '--silent', 'build'], { cwd: root, stdio: 'pipe', encoding: 'utf8' });
  } catch (err) {
    const out = err as { stdout?: string; stderr?: string };
    throw new Error(`npm run build failed before the tests:\n${out.stdout ?? ''}${out.stderr ?? ''}`);
  }
}
