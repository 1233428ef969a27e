/**
 * The config file: `<dataDir>/config.json` (dataDir honours CREDPROXY_HOME, then XDG_DATA_HOME,
 * else ~/.local/share/credproxy), or the path given to loadProviderRegistry. No file = presets only.
 *
 * Format:
 *
 *   {
 *     "providers": {
 *       "github": { "clientId": "Iv1.0123456789abcdef", "scopes": ["read:user"] },
 *       "anthropic": { "userAgent": "claude-cli/1.0.0 (external, cli)" },
 *       "codex": { "endpoints": { "token": "http://127.0.0.1:8080/oauth/token" }, "callback": { "port": 0 } },
 *       "my-idp": {
 *         "clientId": "credproxy",
 *         "issuer": "https://keycloak.corp.internal/realms/dev",
 *         "scopes": ["openid", "offline_access"],
 *         "flows": ["device_code", "pkce_redirect"],
 *         "endpoints": {
 *           "authorization": "https://keycloak.corp.internal/realms/dev/protocol/openid-connect/auth",
 *           "token": "https://keycloak.corp.internal/realms/dev/protocol/openid-connect/token",
 *           "deviceAuthorization": "https://keycloak.corp.internal/realms/dev/protocol/openid-connect/auth/device"
 *         },
 *         "redirectUri": "https://keycloak.corp.internal/realms/dev/oob"
 *       }
 *     }
 *   }
 *
 * A key naming a preset (anthropic, codex, gemini, github, qwen) overrides fields of that preset;
 * `endpoints`, `callback`, `tokenMapping` and `authParams` merge key by key, everything else replaces.
 * Any other key defines a custom provider (a standards-compliant OAuth 2.0 server) and needs
 * `clientId`, `flows` and `endpoints.token`. Fields:
 *
 *   clientId, clientSecret    client credentials; the secret only for installed-app clients (public by
 *                             nature), sent as client_secret_post unless tokenEndpointAuthMethod says
 *                             "client_secret_basic" ("none" never sends it). Never logged or replied.
 *   issuer                    expected `iss` of redirect responses and id_tokens; when omitted, `iss`
 *                             in a redirect is not checked and id_tokens must carry the token
 *                             endpoint's origin (custom providers validate id_tokens; presets don't).
 *   scopes                    array of scope strings.
 *   flows                     "device_code" | "pkce_redirect" | "browser_redirect", preferred first.
 *   endpoints                 authorization, token, deviceAuthorization, verification (fallback page
 *                             shown for device logins), deviceAuthUserCode / deviceAuthToken /
 *                             deviceAuthRedirectUri (OpenAI device auth, codex only). https only;
 *                             plain http is accepted for 127.0.0.0/8, ::1 and localhost.
 *   redirectUri               redirect_uri of pkce_redirect: a page that shows the code to paste.
 *                             The user may paste the bare code, CODE#STATE, or the whole redirect URL.
 *   callback                  browser_redirect loopback server: {"host": "127.0.0.1"|"localhost" (the
 *                             host written into redirect_uri; the server binds 127.0.0.1), "port": 0 =
 *                             ephemeral, "path": "/callback"}.
 *   authParams                extra authorization request parameters, e.g. {"prompt": "consent"}.
 *   tokenRequestFormat        "form" (standard) | "json" (Anthropic-style JSON bodies with state).
 *   publicFields              stored token fields that may be served to sandboxes (never secrets).
 *   userAgent                 User-Agent of token requests.
 *   devicePkce                true: PKCE on the device grant (Qwen).
 *   defaultIntervalSeconds    device poll interval when the provider names none (5).
 *   tokenMapping              {"defaultExpiresIn": 3600 (lifetime when expires_in is missing/invalid),
 *                             "nonExpiring": false (true: no expires_in = never expires),
 *                             "claims": {"field": [["claim", "nested"], ["fallback"]]} (fields read from
 *                             id_token, then access_token JWT claims)}.
 *
 * The same file's `routes` section holds inject mode's routes (src/inject/RouteTable.ts).
 * Unknown top-level keys are ignored (other subsystems may add sections); unknown provider fields are
 * errors. Errors name the file and the field, never a value.
 */
import fs from 'node:fs';
import path from 'node:path';
import type { z } from 'zod';
import { dataDir } from '../paths.js';
import { isProviderName, ruleText } from '../protocol/names.js';
import type { ProviderRegistry } from './providerTypes.js';
import { mergeDefinition, providerDefinitionSchema, providerOverrideSchema, type ProviderDefinitionInput } from './providers/definition.js';
import { createAdapter, createProviderRegistry, PRESETS } from './providers/registry.js';
import type { StandardAdapter } from './providers/standardAdapter.js';

export interface LoadProviderRegistryOptions {
  /** Default: `<dataDir(env)>/config.json`. */
  configPath?: string;
  env?: NodeJS.ProcessEnv;
}

/** Where the config file is looked for by default. */
export function defaultConfigPath(env: NodeJS.ProcessEnv = process.env): string {
  return path.join(dataDir(env), 'config.json');
}

/** A config file that cannot be used; the message names the file and the field. */
export class ConfigError extends Error {
  override readonly name = 'ConfigError';
}

/** Zod issues as one config error line (at most ten), each naming its field. */
export function issuesText(source: string, prefix: string, issues: readonly z.core.$ZodIssue[]): string {
  const lines = issues.slice(0, 10).map((i) => {
    const where = [prefix, ...i.path.map(String)].filter(Boolean).join('.');
    return `${where}: ${i.message}`;
  });
  return `Invalid config file ${source}: ${lines.join('; ')}`;
}

/** Builds the provider adapters from a parsed config value (presets, overridden, plus custom ones). */
export function providersFromConfig(config: unknown, source: string): StandardAdapter[] {
  if (config === null || typeof config !== 'object' || Array.isArray(config)) {
    throw new ConfigError(`Invalid config file ${source}: the top level must be a JSON object`);
  }
  const entries = (config as Record<string, unknown>).providers ?? {};
  if (entries === null || typeof entries !== 'object' || Array.isArray(entries)) {
    throw new ConfigError(`Invalid config file ${source}: providers must be an object`);
  }
  const definitions = new Map<string, ProviderDefinitionInput>([...PRESETS].map(([name, p]) => [name, p.definition]));
  for (const [name, entry] of Object.entries(entries as Record<string, unknown>)) {
    const prefix = `providers.${name}`;
    if (!isProviderName(name)) throw new ConfigError(`Invalid config file ${source}: ${prefix}: provider names ${ruleText('provider')}`);
    if (entry === null || typeof entry !== 'object' || Array.isArray(entry)) {
      throw new ConfigError(`Invalid config file ${source}: ${prefix}: must be an object`);
    }
    if (Object.hasOwn(entry, 'name')) throw new ConfigError(`Invalid config file ${source}: ${prefix}.name: not allowed (the key is the name)`);
    const preset = PRESETS.get(name);
    if (preset) {
      const override = providerOverrideSchema.safeParse(entry);
      if (!override.success) throw new ConfigError(issuesText(source, prefix, override.error.issues));
      definitions.set(name, mergeDefinition(preset.definition, override.data));
    } else {
      definitions.set(name, { ...(entry as ProviderDefinitionInput), name });
    }
  }
  const adapters: StandardAdapter[] = [];
  for (const [name, input] of definitions) {
    const prefix = `providers.${name}`;
    const parsed = providerDefinitionSchema.safeParse(input);
    if (!parsed.success) throw new ConfigError(issuesText(source, prefix, parsed.error.issues));
    const adapter = createAdapter(parsed.data);
    const problems = adapter.problems();
    if (problems.length > 0) {
      throw new ConfigError(`Invalid config file ${source}: ${problems.map((p) => `${prefix}.${p.path}: ${p.message}`).join('; ')}`);
    }
    adapters.push(adapter);
  }
  return adapters;
}

/**
 * Loads the provider registry: built-in presets, adjusted and extended by the config file. A missing
 * file means presets only; an unreadable or invalid file throws ConfigError naming path and field.
 */
export function loadProviderRegistry(options: LoadProviderRegistryOptions = {}): ProviderRegistry {
  const configPath = options.configPath ?? defaultConfigPath(options.env ?? process.env);
  return createProviderRegistry(providersFromConfig(readConfigFile(configPath), configPath));
}

/**
 * The parsed config file, `{}` when there is none; an unreadable or non-JSON file throws ConfigError.
 * Providers and injection routes are read from the same file.
 */
export function readConfigFile(configPath: string): unknown {
  let text: string | undefined;
  try {
    text = fs.readFileSync(configPath, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code !== 'ENOENT') throw new ConfigError(`Cannot read config file ${configPath}: ${code ?? 'read failed'}`);
  }
  let config: unknown = {};
  if (text !== undefined) {
    try {
      config = JSON.parse(text);
    } catch {
      // JSON.parse messages quote the source text, which may hold a client secret.
      throw new ConfigError(`Invalid config file ${configPath}: not valid JSON`);
    }
  }
  return config;
}

let presets: ProviderRegistry | undefined;

/** The built-in presets alone, as a config file without providers gives them. */
export function presetRegistry(): ProviderRegistry {
  presets ??= createProviderRegistry(providersFromConfig({}, 'built-in presets'));
  return presets;
}
