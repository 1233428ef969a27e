/**
 * The credential options of `credproxy exec`, in the order they were given:
 *
 *   (--provider P [--bucket B] | --key NAME) --env VAR [--env VAR]...   repeated
 *
 * Each --env names a variable for the closest --provider or --key before it; --bucket belongs to
 * the --provider right before it. Reading left to right there is only one way to pair them, and
 * every other order is an error that says which rule it broke.
 */
import { CliError } from './errors.js';
import { toKeyName, toTarget, type Target } from './target.js';

export type ExecOptionKind = 'provider' | 'bucket' | 'key' | 'env';

/** One option occurrence, as commander reported it. */
export interface ExecOption {
  kind: ExecOptionKind;
  value: string;
}

/** Where the value of some variables comes from: an access token (get_token) or an API key (get_api_key). */
export type ExecSource = { kind: 'token'; target: Target; vars: string[] } | { kind: 'key'; name: string; vars: string[] };

/** POSIX's portable variable names; anything else cannot reliably reach a child through a shell. */
const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

interface Pending {
  kind: 'provider' | 'key';
  value: string;
  bucket?: string;
  vars: string[];
}

const optionText = (p: Pending): string => `--${p.kind} ${p.value}`;

/** Pairs the options into sources; throws a CliError naming the misplaced option. */
export function parseExecOptions(options: readonly ExecOption[]): ExecSource[] {
  const pending: Pending[] = [];
  const seenVars = new Set<string>();
  const current = (): Pending | undefined => pending[pending.length - 1];
  const close = (): void => {
    const last = current();
    if (last && last.vars.length === 0) throw new CliError(`${optionText(last)} needs an --env VAR after it`);
  };

  for (const { kind, value } of options) {
    switch (kind) {
      case 'provider':
      case 'key':
        close();
        pending.push({ kind, value, vars: [] });
        break;
      case 'bucket': {
        const last = current();
        if (!last || last.kind !== 'provider' || last.vars.length > 0) {
          throw new CliError(`--bucket ${value} must follow --provider P (before its --env)`);
        }
        if (last.bucket !== undefined) throw new CliError(`${optionText(last)} has two --bucket options`);
        last.bucket = value;
        break;
      }
      case 'env': {
        const last = current();
        if (!last) throw new CliError(`--env ${value} must follow --provider or --key`);
        if (!ENV_NAME.test(value)) {
          throw new CliError(`--env ${JSON.stringify(value.slice(0, 80))} is not a variable name (letters, digits and _, not starting with a digit)`);
        }
        if (seenVars.has(value)) throw new CliError(`--env ${value} is given twice`);
        seenVars.add(value);
        last.vars.push(value);
        break;
      }
    }
  }
  close();
  if (pending.length === 0) throw new CliError('exec needs at least one --provider P --env VAR or --key NAME --env VAR');
  return pending.map((p) =>
    p.kind === 'provider' ? { kind: 'token', target: toTarget(p.value, p.bucket), vars: p.vars } : { kind: 'key', name: toKeyName(p.value), vars: p.vars },
  );
}
