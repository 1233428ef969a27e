/** Builds a preset adapter through the config file path, as a user would point it at a local server. */
import { providersFromConfig } from '../../../src/oauth/config.js';
import type { StandardAdapter } from '../../../src/oauth/providers/standardAdapter.js';
import { createProviderRegistry } from '../../../src/oauth/providers/registry.js';

export function configured(name: string, override: Record<string, unknown>): StandardAdapter {
  const adapters = providersFromConfig({ providers: { [name]: override } }, 'test-config.json');
  createProviderRegistry(adapters); // declares public fields, as loadProviderRegistry does
  const adapter = adapters.find((a) => a.name === name);
  if (!adapter) throw new Error(`no adapter ${name}`);
  return adapter;
}
