/** `credproxy providers`: the login providers this host knows — presets and custom ones — with their flows. */
import { Command } from 'commander';
import type { ProviderSummary } from '../../oauth/providerTypes.js';
import { columns } from '../util/columns.js';
import { flowOption, registryFromConfig } from '../util/loginConfig.js';

/** One provider as `providers --json` prints it. */
export interface ProviderListing {
  name: string;
  kind: 'preset' | 'custom';
  /** Wire names (PROTOCOL.md §6.1), most preferred first; the first is the default. */
  flows: string[];
  /** The same flows as `--flow` values: device, paste, browser. */
  flowOptions: string[];
}

export function listing(summary: ProviderSummary): ProviderListing {
  return { name: summary.name, kind: summary.kind, flows: [...summary.flows], flowOptions: summary.flows.map(flowOption) };
}

/** A table: NAME, KIND, FLOWS (the default flow first). */
export function renderProviders(providers: ProviderListing[]): string {
  if (providers.length === 0) return 'No login providers are configured.\n';
  return columns([['NAME', 'KIND', 'FLOWS (first = default)'], ...providers.map((p) => [p.name, p.kind, p.flowOptions.join(', ')])]);
}

export function providersCommand(): Command {
  return new Command('providers')
    .description('list the login providers (presets and custom providers) and their flows')
    .option('--json', 'print {"providers": [{name, kind, flows, flowOptions}]}')
    .option('--config <file>', 'provider configuration (default DATA_DIR/config.json)')
    .addHelpText(
      'after',
      `
Reads this machine's configuration, so run it where logins run: on the host. Custom providers and
preset overrides live in DATA_DIR/config.json (or --config). FLOWS are --flow values for login.`,
    )
    .action((opts: { json?: boolean; config?: string }) => {
      const providers = registryFromConfig(opts.config)
        .list()
        .map(listing)
        .sort((a, b) => (a.kind === b.kind ? a.name.localeCompare(b.name) : a.kind === 'preset' ? -1 : 1));
      process.stdout.write(opts.json ? `${JSON.stringify({ providers }, null, 2)}\n` : renderProviders(providers));
    });
}
