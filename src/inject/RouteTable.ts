/**
 * The injection routes of this host: the presets, changed and extended by the config file's
 * `routes` section (the same file as the providers). An entry naming a preset overrides its fields
 * (`extraHeaders` and `env` replace, like every field); any other name defines a custom route.
 *
 *   "routes": {
 *     "anthropic": { "allow": [{ "method": "POST", "path": "/v1/messages*" }] },
 *     "internal": {
 *       "upstream": "https://llm.corp.internal",
 *       "credential": { "provider": "my-idp", "bucket": "work" },
 *       "env": { "LLM_BASE_URL": "{url}", "LLM_API_KEY": "credproxy-managed" },
 *       "ca": "corp-root.pem"
 *     }
 *   }
 *
 * A relative `ca` is resolved against the config file's directory and read when the table is built,
 * so a missing file fails at start, not at the first request.
 */
import fs from 'node:fs';
import path from 'node:path';
import { ruleText } from '../protocol/names.js';
import { ConfigError, defaultConfigPath, issuesText, readConfigFile } from '../oauth/config.js';
import { ROUTE_PRESETS } from './routePresets.js';
import { routeName, routeOverrideSchema, routeSchema, type Route, type RouteDefinition, type RouteInput } from './routeSchema.js';

/** One `--inject ROUTE[:BUCKET]` choice. */
export interface RouteChoice {
  route: string;
  bucket?: string | undefined;
}

/** A route choice that cannot be served; the message names the route. */
export class RouteError extends Error {
  override readonly name = 'RouteError';
}

export class RouteTable {
  private constructor(
    private readonly routes: ReadonlyMap<string, RouteDefinition>,
    /** PEM text of each route's `ca`, read at load. */
    private readonly cas: ReadonlyMap<string, string>,
    /** Presets the config file changed. */
    private readonly overridden: ReadonlySet<string>,
  ) {}

  /** The presets with the `routes` section of a parsed config file applied; throws ConfigError. */
  static fromConfig(config: unknown, source: string): RouteTable {
    const section = config !== null && typeof config === 'object' && !Array.isArray(config) ? ((config as Record<string, unknown>).routes ?? {}) : {};
    if (section === null || typeof section !== 'object' || Array.isArray(section)) throw new ConfigError(`Invalid config file ${source}: routes must be an object`);
    const inputs = new Map<string, RouteInput>(ROUTE_PRESETS);
    const overridden = new Set<string>();
    for (const [name, entry] of Object.entries(section as Record<string, unknown>)) {
      if (!routeName.safeParse(name).success) throw new ConfigError(`Invalid config file ${source}: routes.${name}: route names ${ruleText('key')}`);
      const preset = ROUTE_PRESETS.get(name);
      if (preset) {
        const override = routeOverrideSchema.safeParse(entry);
        if (!override.success) throw new ConfigError(issuesText(source, `routes.${name}`, override.error.issues));
        const { upstreamFrom, ...rest } = override.data;
        const changed: RouteInput = { ...preset, ...withoutUndefined(rest) };
        if (upstreamFrom === null) delete changed.upstreamFrom;
        else if (upstreamFrom !== undefined) changed.upstreamFrom = upstreamFrom;
        inputs.set(name, changed);
        overridden.add(name);
      } else {
        inputs.set(name, entry as RouteInput);
      }
    }
    const routes = new Map<string, RouteDefinition>();
    const cas = new Map<string, string>();
    for (const [name, input] of inputs) {
      const parsed = routeSchema.safeParse(input);
      if (!parsed.success) throw new ConfigError(issuesText(source, `routes.${name}`, parsed.error.issues));
      const upstream = new URL(parsed.data.upstream);
      if (upstream.search || upstream.hash || upstream.username || upstream.password) {
        throw new ConfigError(`Invalid config file ${source}: routes.${name}.upstream: must have no query, fragment or credentials`);
      }
      if (parsed.data.ca !== undefined) cas.set(name, readCa(path.resolve(path.dirname(source), parsed.data.ca), source, name));
      routes.set(name, parsed.data);
    }
    return new RouteTable(routes, cas, overridden);
  }

  /** The presets alone. */
  static presets(): RouteTable {
    return RouteTable.fromConfig({}, 'built-in routes');
  }

  names(): string[] {
    return [...this.routes.keys()].sort();
  }

  definition(name: string): RouteDefinition | undefined {
    return this.routes.get(name);
  }

  /** Where a route comes from: a preset as built in, a preset the config file changed, or the config file. */
  kindOf(name: string): 'preset' | 'changed' | 'custom' {
    return !ROUTE_PRESETS.has(name) ? 'custom' : this.overridden.has(name) ? 'changed' : 'preset';
  }

  /** PEM roots trusted for this route besides the system's, if its `ca` names a file. */
  caOf(name: string): string | undefined {
    return this.cas.get(name);
  }

  /** The routes of `--inject` choices, each with its chosen bucket; throws RouteError. */
  resolve(choices: readonly RouteChoice[]): Route[] {
    const out: Route[] = [];
    for (const { route, bucket } of choices) {
      const definition = this.routes.get(route);
      if (!definition) throw new RouteError(`No injection route ${route} (known: ${this.names().join(', ')})`);
      if (out.some((r) => r.name === route)) throw new RouteError(`Route ${route} is named twice`);
      let credential = definition.credential;
      if (bucket !== undefined) {
        if (!('provider' in credential)) throw new RouteError(`Route ${route} injects the API key ${credential.key}, which has no buckets`);
        credential = { provider: credential.provider, bucket };
      }
      out.push({ ...definition, credential, name: route });
    }
    return out;
  }
}

function withoutUndefined<T extends object>(value: T): Partial<T> {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)) as Partial<T>;
}

function readCa(file: string, source: string, name: string): string {
  let pem: string;
  try {
    pem = fs.readFileSync(file, 'utf8');
  } catch (err) {
    throw new ConfigError(`Invalid config file ${source}: routes.${name}.ca: cannot read ${file} (${(err as NodeJS.ErrnoException).code ?? 'error'})`);
  }
  if (!pem.includes('-----BEGIN CERTIFICATE-----')) throw new ConfigError(`Invalid config file ${source}: routes.${name}.ca: ${file} holds no PEM certificate`);
  return pem;
}

/** The route table of the config file (default DATA_DIR/config.json; none = presets); throws ConfigError. */
export function loadRouteTable(options: { configPath?: string; env?: NodeJS.ProcessEnv } = {}): RouteTable {
  const configPath = options.configPath ?? defaultConfigPath(options.env ?? process.env);
  return RouteTable.fromConfig(readConfigFile(configPath), configPath);
}
