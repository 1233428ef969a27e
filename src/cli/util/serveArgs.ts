/** Parsers for `serve` flags; they throw commander's InvalidArgumentError so the message names the flag. */
import { InvalidArgumentError } from 'commander';

/** Largest valid uid: (uid_t)-1 is the "no uid" sentinel on Linux. */
const MAX_UID = 4_294_967_294;

/** Collects repeated `--allow-uid` values. */
export function parseUid(value: string, previous: number[] = []): number[] {
  if (!/^\d{1,10}$/.test(value) || Number(value) > MAX_UID) {
    throw new InvalidArgumentError(`UID must be a whole number from 0 to ${MAX_UID}`);
  }
  return [...previous, Number(value)];
}

/**
 * `--tcp HOST:PORT` where HOST is a loopback literal: the TCP listener exists for VM boundaries on
 * the same machine, and a name like "localhost" could resolve to a non-loopback address.
 * Returns the normalized address ("127.0.0.1:PORT" or "[::1]:PORT").
 */
export function parseTcp(value: string): string {
  const m = /^(?:\[(::1)\]|(127\.0\.0\.1)|(::1)):(\d{1,5})$/.exec(value);
  if (!m) throw new InvalidArgumentError('expected 127.0.0.1:PORT or [::1]:PORT (loopback only, with a port)');
  const port = Number(m[4]);
  if (port > 65_535) throw new InvalidArgumentError(`port ${port} is out of range (0-65535)`);
  return m[2] ? `127.0.0.1:${port}` : `[::1]:${port}`;
}
