/**
 * Write-back of refreshed tokens into the CLI tool's own login file, for logins imported with
 * `credproxy import --from TOOL --write-back`: the stored token's host-only WRITE_BACK_FIELD names
 * the format and the file. After each refresh the new access token, refresh token and expiry go
 * into that file in the tool's shape and units, so the tool keeps working on the login credproxy
 * now refreshes instead of spending a refresh token credproxy already rotated.
 *
 * The file is only overwritten while it still holds the refresh token credproxy held before the
 * refresh (the one it imported or last wrote there). Any other refresh token means the file moved on
 * without credproxy — the user logged in again in the tool, or the tool refreshed by itself — and
 * overwriting it would throw that login away: the file is left alone and the skip is logged. A file
 * that is gone is not recreated.
 *
 * Runs after the refreshed token is stored: it never throws, since a file that cannot be updated
 * must not turn a successful refresh into a failed one. What it could not do goes to `log`.
 */
import path from 'node:path';
import type { StoredToken } from '../../store/types.js';
import { WRITE_BACK_FIELD } from '../token.js';
import { toolFormat } from './registry.js';
import { readToolFile, rewriteToolFile, ToolFileError } from './toolFile.js';
import { FieldError, type ToolFormat } from './toolFormat.js';

/** The write-back target as stored (host-only): which format, which absolute path. */
export interface WriteBackTarget {
  format: string;
  path: string;
}

export interface WriteBackOptions {
  /** The clock for timestamps the tool keeps (Codex's last_refresh). */
  now: () => number;
  /** Where skips and failures are reported (never a secret: only the file and what went wrong). */
  log?: (line: string) => void;
}

export type WriteBackOutcome =
  | { status: 'off' }
  | { status: 'written'; file: string }
  | { status: 'skipped'; file?: string; reason: string };

/** The value of WRITE_BACK_FIELD for `format` and `file` (made absolute). */
export function writeBackTarget(format: ToolFormat, file: string): WriteBackTarget {
  return { format: format.name, path: path.resolve(file) };
}

function targetOf(token: StoredToken): { format: ToolFormat; file: string } | 'absent' | 'invalid' {
  const value = token[WRITE_BACK_FIELD];
  if (value === undefined || value === null) return 'absent';
  if (typeof value !== 'object') return 'invalid';
  const { format: name, path: file } = value as Record<string, unknown>;
  const format = typeof name === 'string' ? toolFormat(name) : undefined;
  if (!format || typeof file !== 'string' || !path.isAbsolute(file)) return 'invalid';
  return { format, file };
}

/**
 * Writes `token` (just stored by a refresh that started from `previous`) back into the tool file its
 * write-back field names; does nothing when it names none. Never throws.
 */
export function writeBack(token: StoredToken, previous: StoredToken, options: WriteBackOptions): WriteBackOutcome {
  const log = (line: string): void => {
    try {
      options.log?.(line);
    } catch {
      // A broken log sink must not surface as a failed refresh either.
    }
  };
  try {
    return attempt(token, previous, options.now, log);
  } catch (err) {
    // Only a bug gets here; attempt() turns every expected failure into a skip.
    log(`write-back skipped: unexpected ${err instanceof Error ? err.name : 'error'}`);
    return { status: 'skipped', reason: 'unexpected error' };
  }
}

function attempt(token: StoredToken, previous: StoredToken, now: () => number, log: (line: string) => void): WriteBackOutcome {
  const target = targetOf(token);
  if (target === 'absent') return { status: 'off' };
  if (target === 'invalid') {
    const reason = 'the stored write-back setting is not valid; import the login again to set it';
    log(`write-back skipped: ${reason}`);
    return { status: 'skipped', reason };
  }
  const { format, file } = target;
  const skip = (reason: string): WriteBackOutcome => {
    log(`write-back to ${file} skipped: ${reason}`);
    return { status: 'skipped', file, reason };
  };
  try {
    const current = readToolFile(file);
    let held: string | undefined;
    try {
      held = format.read(current.doc).token?.refresh_token;
    } catch (err) {
      if (err instanceof FieldError) return skip(`it no longer holds a ${format.tool} login (${err.message}); left unchanged`);
      throw err;
    }
    if (held !== previous.refresh_token && held !== token.refresh_token) {
      return skip(
        `it now holds a different refresh token than the one credproxy last wrote (a new ${format.tool} login?); left unchanged — ` +
          `run credproxy import --from ${format.name} again to take that login over`,
      );
    }
    const updated = format.write(current.doc, token, now());
    if (!rewriteToolFile(current, updated)) return skip(`it changed while being updated; left as ${format.tool} wrote it`);
    return { status: 'written', file };
  } catch (err) {
    if (err instanceof ToolFileError) return skip(err.reason === 'missing' ? 'the file is gone (logged out?); not recreated' : err.message);
    if (err instanceof FieldError) return skip(`${err.message}; left unchanged`);
    const code = (err as NodeJS.ErrnoException | undefined)?.code;
    return skip(`writing failed (${code ?? (err instanceof Error ? err.name : 'error')})`);
  }
}
