/**
 * How the CLI reports failure: one line `credproxy: <message>` on stderr, exit code 1, never a
 * stack trace. Only messages known to be safe (ours, StoreError, proxy errors, name checks) are
 * shown verbatim.
 */
import { StoreError } from '../../store/types.js';

/** An error whose message is meant for the user as it is. */
export class CliError extends Error {
  override readonly name = 'CliError';
}

/** One line, whatever the error: newlines collapse so scripts can rely on a single line. */
export function formatError(err: unknown): string {
  return `credproxy: ${oneLine(messageOf(err))}`;
}

function messageOf(err: unknown): string {
  if (err instanceof CliError || err instanceof StoreError) return err.message;
  if (err instanceof Error) {
    // ProxyClientError (and any error with a protocol code) gets its code appended for scripts.
    const code = (err as { code?: unknown }).code;
    if (err.name === 'ProxyClientError' && typeof code === 'string') return `${err.message} (${code})`;
    return err.message || err.name;
  }
  return 'unexpected error';
}

/** Collapses line breaks so every message stays on one line. */
export function oneLine(text: string): string {
  return text.replace(/\s*[\r\n]+\s*/g, ' ').trim();
}

/** Prints a non-fatal note on stderr in the same one-line format. */
export function warn(message: string): void {
  process.stderr.write(`credproxy: ${oneLine(message)}\n`);
}
