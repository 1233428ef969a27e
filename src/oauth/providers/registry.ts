/** The built-in presets and the registry the login layer looks providers up in. */
import type { ProviderRegistry, ProviderSummary } from '../providerTypes.js';
import { anthropic } from './anthropic.js';
import { codex } from './codex.js';
import type { ProviderDefinition } from './definition.js';
import { gemini } from './gemini.js';
import { github } from './github.js';
import type { Preset } from './presetAdapter.js';
import { qwen } from './qwen.js';
import { StandardAdapter } from './standardAdapter.js';

export const PRESETS: ReadonlyMap<string, Preset> = new Map([
  ['anthropic', anthropic],
  ['codex', codex],
  ['gemini', gemini],
  ['github', github],
  ['qwen', qwen],
]);

/** The adapter for a validated definition: the preset's own adapter when the name is a preset's. */
export function createAdapter(definition: ProviderDefinition): StandardAdapter {
  const preset = PRESETS.get(definition.name);
  return preset ? preset.create(definition) : new StandardAdapter(definition, 'custom');
}

/** A registry over `adapters`. */
export function createProviderRegistry(adapters: readonly StandardAdapter[]): ProviderRegistry {
  const byName = new Map(adapters.map((a) => [a.name, a]));
  return {
    get: (name) => byName.get(name),
    list: (): ProviderSummary[] =>
      [...byName.values()]
        .map((a) => ({ name: a.name, kind: a.kind, flows: [...a.flows] }))
        .sort((x, y) => (x.name < y.name ? -1 : x.name > y.name ? 1 : 0)),
  };
}
