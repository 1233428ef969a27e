/** Parsers for `serve` flags; they throw commander's InvalidArgumentError so the message names the flag. */
import { InvalidArgumentError } from 'commander';
import { parseLoopbackAddress } from '../../server/tcpAddress.js';

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
 * `--tcp HOST:PORT` with a loopback literal host, checked by the daemon's own parser so the CLI and
 * the daemon cannot disagree. A name like "localhost" is refused: it could resolve elsewhere.
 */
export function parseTcp(value: string): string {
  try {
    parseLoopbackAddress(value);
  } catch (err) {
    throw new InvalidArgumentError((err as Error).message);
  }
  return value.trim();
}
