/**
 * What credproxy knows about one AI coding CLI's own login file (PROVIDERS.md, "Existing CLI
 * stores"): where it lives, which provider it belongs to, how to read it into a StoredToken and how
 * to write a refreshed token back in the tool's own shape and units. Pure: the file I/O is in
 * toolFile.ts, so each format is a JSON value in, a JSON value out.
 *
 * Errors name the field and never quote a value: these files hold secrets.
 */
import os from 'node:os';
import type { StoredToken } from '../../store/types.js';

/** An API key found beside the login (Codex's OPENAI_API_KEY): reported, stored only on request. */
export interface FoundApiKey {
  /** The field of the file that holds it. */
  field: string;
  /** The key name it would be stored under (`credproxy keys`). */
  keyName: string;
  value: string;
}

export interface ImportedLogin {
  /** null only for a file that holds an API key and no login (Codex with API-key sign-in). */
  token: StoredToken | null;
  apiKey?: FoundApiKey;
}

export interface ToolFormat {
  /** The `--from` value, also stored with a write-back target. */
  readonly name: string;
  /** The tool as users know it. */
  readonly tool: string;
  /** The credproxy provider its logins belong to. */
  readonly provider: string;
  /** How the tool can get its token from credproxy instead of refreshing it itself, if it has a way. */
  readonly tokenHelpHint?: (command: string) => string;
  /** Where the tool keeps its login on Linux, from the environment (HOME and the tool's own variables). */
  defaultPath(env: NodeJS.ProcessEnv): string;
  /** The parsed file → the token to store. Throws FieldError. */
  read(doc: unknown): ImportedLogin;
  /**
   * A copy of `doc` (the file as it is now) carrying the token's access token, refresh token and
   * expiry in the tool's own fields and units; every other field as it was. Throws FieldError when
   * the file no longer has the shape to put them in.
   */
  write(doc: unknown, token: StoredToken, nowMs: number): Record<string, unknown>;
}

/** A field of a tool's file that is missing or has the wrong type; the message names the field only. */
export class FieldError extends Error {
  override readonly name = 'FieldError';
  constructor(
    readonly field: string,
    problem: string,
  ) {
    super(field === '' ? problem : `field "${field}" ${problem}`);
  }
}

/** HOME from the environment (tests point it elsewhere), else the OS's idea of it. */
export function homeDir(env: NodeJS.ProcessEnv): string {
  return env.HOME !== undefined && env.HOME.length > 0 ? env.HOME : os.homedir();
}

/** A non-empty environment variable, or undefined. */
export function envDir(env: NodeJS.ProcessEnv, name: string): string | undefined {
  const value = env[name];
  return value !== undefined && value.length > 0 ? value : undefined;
}

const UNSAFE_KEYS: ReadonlySet<string> = new Set(['__proto__', 'constructor', 'prototype']);

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Typed, field-named reads of one JSON object of a tool's file. `null` counts as absent. */
export class Fields {
  private constructor(
    private readonly obj: Record<string, unknown>,
    private readonly prefix: string,
  ) {}

  /** The top level, which must be an object. */
  static root(doc: unknown): Fields {
    if (!isRecord(doc)) throw new FieldError('', 'the file must hold a JSON object');
    return new Fields(doc, '');
  }

  private path(name: string): string {
    return this.prefix === '' ? name : `${this.prefix}.${name}`;
  }

  private get(name: string): unknown {
    if (UNSAFE_KEYS.has(name) || !Object.hasOwn(this.obj, name)) return undefined;
    const value = this.obj[name];
    return value === null ? undefined : value;
  }

  /** Whether the field is present and not null. */
  has(name: string): boolean {
    return this.get(name) !== undefined;
  }

  /** A nested object that must be there; `hint` explains what its absence usually means. */
  object(name: string, hint = ''): Fields {
    const value = this.get(name);
    if (value === undefined) throw new FieldError(this.path(name), `is missing${hint}`);
    if (!isRecord(value)) throw new FieldError(this.path(name), 'must be an object');
    return new Fields(value, this.path(name));
  }

  /** A non-empty string that must be there. */
  string(name: string): string {
    const value = this.optionalString(name);
    if (value === undefined) throw new FieldError(this.path(name), 'is missing (a non-empty string is needed)');
    return value;
  }

  /** A string if present (an empty one counts as absent); any other type is an error. */
  optionalString(name: string): string | undefined {
    const value = this.get(name);
    if (value === undefined) return undefined;
    if (typeof value !== 'string') throw new FieldError(this.path(name), 'must be a string');
    return value.length > 0 ? value : undefined;
  }

  /** An epoch-milliseconds time that must be there, as epoch seconds (fractions dropped). */
  epochMsAsSeconds(name: string): number {
    const value = this.get(name);
    if (value === undefined) throw new FieldError(this.path(name), 'is missing (the expiry, epoch milliseconds)');
    if (typeof value !== 'number' || !Number.isFinite(value) || value <= 0) {
      throw new FieldError(this.path(name), 'must be a positive number (epoch milliseconds)');
    }
    return Math.floor(value / 1000);
  }

  /** An array of strings if present. */
  optionalStrings(name: string): string[] | undefined {
    const value = this.get(name);
    if (value === undefined) return undefined;
    if (!Array.isArray(value) || !value.every((v) => typeof v === 'string')) {
      throw new FieldError(this.path(name), 'must be an array of strings');
    }
    return value as string[];
  }
}

/**
 * A deep copy of the file's top-level object and the nested object at `path` inside the copy, where
 * a writer puts the refreshed values. Throws FieldError when the file lost that shape.
 */
export function copyWithObjectAt(doc: unknown, path: readonly string[]): { copy: Record<string, unknown>; target: Record<string, unknown> } {
  if (!isRecord(doc)) throw new FieldError('', 'the file no longer holds a JSON object');
  const copy = structuredClone(doc);
  let target: Record<string, unknown> = copy;
  for (let i = 0; i < path.length; i++) {
    const next = target[path[i]!];
    if (!isRecord(next)) throw new FieldError(path.slice(0, i + 1).join('.'), 'is no longer an object');
    target = next;
  }
  return { copy, target };
}

/** Sets `field` to `value` when the token has one (a refresh that returned no id_token leaves it). */
export function setIfString(target: Record<string, unknown>, field: string, value: unknown): void {
  if (typeof value === 'string' && value.length > 0) target[field] = value;
}
