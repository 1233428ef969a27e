/** One finding of `credproxy doctor`, and the shell quoting its fix commands use. */

export type CheckStatus = 'ok' | 'warn' | 'problem';

/** A check's result; `fix` is set for every warn and problem. Never holds a secret. */
export interface Check {
  name: string;
  status: CheckStatus;
  /** One line: what was looked at and what was found. */
  detail: string;
  /** The command (or, where no single command can, the step) that fixes it. */
  fix?: string;
}

export function ok(name: string, detail: string): Check {
  return { name, status: 'ok', detail };
}

export function warnCheck(name: string, detail: string, fix: string): Check {
  return { name, status: 'warn', detail, fix };
}

export function problem(name: string, detail: string, fix: string): Check {
  return { name, status: 'problem', detail, fix };
}

/** `word` as one POSIX shell word, so a fix with a path in it can be pasted as it is. */
export function sh(word: string): string {
  return /^[A-Za-z0-9_@%+=:,./-]+$/.test(word) ? word : `'${word.replace(/'/g, `'\\''`)}'`;
}
