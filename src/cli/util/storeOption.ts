/**
 * The global `--store` and `--store-url-file` options; apart from the stores so declaring them
 * loads no store code (a URL is checked, password refused, by storeChoice when a command runs).
 */
import { InvalidArgumentError, Option } from 'commander';

export const STORE_CHOICES = ['auto', 'keyring', 'file', 'memory', 'postgres'] as const;

/** The global `--store` option: one of the backends, or a postgres:// URL without a password. */
export function storeOption(): Option {
  return new Option(
    '--store <backend>',
    'host store backend: auto (OS keyring when usable, else encrypted file; CREDPROXY_STORE_URL when set), keyring, file, memory (serve only, nothing persists), postgres (the URL from CREDPROXY_STORE_URL or --store-url-file), or a postgres://user@host/db URL without a password',
  )
    .argParser(parseStore)
    .default('auto');
}

/** The global `--store-url-file` option: a file holding the PostgreSQL URL (a password may be in it). */
export function storeUrlFileOption(): Option {
  return new Option('--store-url-file <file>', 'use the PostgreSQL store whose URL (password and TLS options included) is the first line of this file');
}

function parseStore(value: string): string {
  if (/^postgres(?:ql)?:\/\//i.test(value) || (STORE_CHOICES as readonly string[]).includes(value)) return value;
  throw new InvalidArgumentError(`Allowed choices are ${STORE_CHOICES.join(', ')}, or a postgres:// URL.`);
}
