/** The global `--store` option; apart from the stores so declaring it loads no store code. */
import { Option, type Command } from 'commander';

export const STORE_CHOICES = ['auto', 'keyring', 'file', 'memory'] as const;
export type StoreChoice = (typeof STORE_CHOICES)[number];

/** The global `--store` option; commander rejects any other value with the list of choices. */
export function storeOption(): Option {
  return new Option(
    '--store <backend>',
    'host store backend (auto: OS keyring when usable, else encrypted file; memory: serve only, nothing persists)',
  )
    .choices(STORE_CHOICES)
    .default('auto');
}

/** The `--store` value of a subcommand (declared once on the program). */
export function storeChoice(cmd: Command): StoreChoice {
  return (cmd.optsWithGlobals() as { store?: StoreChoice }).store ?? 'auto';
}
