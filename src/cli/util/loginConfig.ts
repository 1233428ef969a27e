/** The provider registry (presets and custom providers) of this host, for login, providers and serve. */
import { existsSync } from 'node:fs';
import { loadProviderRegistry } from '../../oauth/config.js';
import type { FlowType } from '../../oauth/flowTypes.js';
import type { ProviderRegistry } from '../../oauth/providerTypes.js';
import { CliError } from './errors.js';

/**
 * Loads the registry from `configPath` (default DATA_DIR/config.json, where a missing file means
 * presets only); a bad config is one CLI error line.
 */
export function registryFromConfig(configPath: string | undefined, env: NodeJS.ProcessEnv = process.env): ProviderRegistry {
  // A file named on the command line must exist: silently falling back to presets hides a typo.
  if (configPath !== undefined && !existsSync(configPath)) throw new CliError(`Config file ${configPath} does not exist`);
  try {
    return loadProviderRegistry({ ...(configPath !== undefined && { configPath }), env });
  } catch (err) {
    // The loader's messages name files and fields, never secret values.
    throw new CliError(err instanceof Error && err.message ? err.message : 'Cannot load the provider configuration');
  }
}

const SHORT_FLOW_NAMES: Readonly<Record<FlowType, string>> = { device_code: 'device', pkce_redirect: 'paste', browser_redirect: 'browser' };

/** The `--flow` name of a flow type (device, paste, browser). */
export function flowOption(flow: FlowType): string {
  return SHORT_FLOW_NAMES[flow] ?? flow;
}
