/**
 * Reading the sandbox's capability token (PROTOCOL.md §7, §8). A launcher hands the token over on an
 * inherited file descriptor named by CREDPROXY_CAPABILITY_FD, never in argv or the environment, so
 * it does not show up in `ps` or leak into child processes. Node built-ins only: this file is also
 * loaded standalone by tests in child processes.
 */
import fs from 'node:fs';

export const CAPABILITY_FD_ENV = 'CREDPROXY_CAPABILITY_FD';

const CAPABILITY_TOKEN = /^[0-9a-f]{64}$/;

/** True when `value` has the shape of a capability token (64 lowercase hex chars). */
export function isCapabilityToken(value: unknown): value is string {
  return typeof value === 'string' && CAPABILITY_TOKEN.test(value);
}

/** Throws (without echoing the value) unless `value` is a well-formed capability token. */
export function assertCapabilityToken(value: unknown, source: string): string {
  if (!isCapabilityToken(value)) {
    throw new TypeError(`${source} is not a valid capability token (expected 64 lowercase hex characters)`);
  }
  return value;
}

// The descriptor can be read only once (it is closed afterwards), so the outcome — token or
// failure — is remembered for the life of the process.
let cached: { token: string } | { error: Error } | undefined;

/**
 * Reads the capability token from the descriptor named by CREDPROXY_CAPABILITY_FD, once per
 * process: reads to EOF, trims, closes the descriptor and deletes the variable from `env` so that
 * child processes do not try to read a descriptor they may not have. Later calls return the cached
 * token (or rethrow the cached failure). Returns undefined when the variable is not set.
 */
export function readCapabilityFromEnv(env: NodeJS.ProcessEnv = process.env): string | undefined {
  if (cached) {
    if ('error' in cached) throw cached.error;
    return cached.token;
  }
  const raw = env[CAPABILITY_FD_ENV];
  if (raw === undefined || raw === '') return undefined;
  delete env[CAPABILITY_FD_ENV];
  try {
    cached = { token: readTokenFromFd(raw) };
    return cached.token;
  } catch (error) {
    cached = { error: error as Error };
    throw error;
  }
}

function readTokenFromFd(raw: string): string {
  if (!/^\d{1,9}$/.test(raw)) {
    throw new TypeError(`${CAPABILITY_FD_ENV} must be a file descriptor number, got ${JSON.stringify(raw.slice(0, 20))}`);
  }
  const fd = Number(raw);
  let content: string;
  try {
    content = fs.readFileSync(fd, 'utf8');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code ?? 'unknown error';
    throw new Error(`Cannot read the capability token from ${CAPABILITY_FD_ENV}=${fd}: ${code}`);
  } finally {
    closeQuietly(fd);
  }
  return assertCapabilityToken(content.trim(), `The value read from ${CAPABILITY_FD_ENV}=${fd}`);
}

function closeQuietly(fd: number): void {
  try {
    fs.closeSync(fd);
  } catch {
    // Already closed or never valid; nothing left to release.
  }
}
