/**
 * Provider fields that may cross the socket besides the standard ones (PROTOCOL.md §5).
 * The provider registry (login issue) registers custom providers' fields through
 * `declarePublicFields`; the built-in presets are declared here.
 */
const declared = new Map<string, readonly string[]>([
  ['codex', ['account_id']],
  ['qwen', ['resource_url']],
]);

/** Declares the public fields of a provider (replacing any earlier declaration). */
export function declarePublicFields(provider: string, fields: readonly string[]): void {
  declared.set(provider, [...fields]);
}

/** The provider's declared public fields (empty for unknown providers). */
export function publicFieldsOf(provider: string): readonly string[] {
  return declared.get(provider) ?? [];
}
