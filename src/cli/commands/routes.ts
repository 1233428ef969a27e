/** `credproxy routes`: the injection routes this host serves — presets, changed presets and custom ones. */
import { Command } from 'commander';
import type { RouteTable } from '../../inject/RouteTable.js';
import type { RouteDefinition } from '../../inject/routeSchema.js';
import { columns } from '../util/columns.js';
import { routeTableFromConfig } from '../util/routeConfig.js';

/** One route as `routes --json` prints it: where it goes and what it attaches, never a credential. */
export interface RouteListing {
  name: string;
  kind: 'preset' | 'changed' | 'custom';
  upstream: string;
  /** The token field that names the upstream host, the hosts it may name and the path used there. */
  upstreamFrom?: { field: string; hosts: string[]; path: string };
  /** `provider P[/B]` or `key NAME`. */
  credential: string;
  header: string;
  /** Variable names set in the program. */
  env: string[];
  /** Allowlist rules as `METHOD /path`; absent: everything. */
  allow?: string[];
}

function credentialText(c: RouteDefinition['credential']): string {
  return 'key' in c ? `key ${c.key}` : `provider ${c.provider}${c.bucket !== undefined ? `/${c.bucket}` : ''}`;
}

function listing(table: RouteTable, name: string): RouteListing {
  const r = table.definition(name)!;
  return {
    name,
    kind: table.kindOf(name),
    upstream: r.upstream,
    ...(r.upstreamFrom && { upstreamFrom: { field: r.upstreamFrom.field, hosts: [...r.upstreamFrom.hosts], path: r.upstreamFrom.path ?? '/' } }),
    credential: credentialText(r.credential),
    header: r.header,
    env: Object.keys(r.env),
    ...(r.allow && { allow: r.allow.map((a) => `${a.method} ${a.path}`) }),
  };
}

/** A table: NAME, KIND, CREDENTIAL, HEADER, UPSTREAM. */
export function renderRoutes(routes: RouteListing[]): string {
  return columns([
    ['NAME', 'KIND', 'CREDENTIAL', 'HEADER', 'UPSTREAM'],
    ...routes.map((r) => [r.name, r.kind, r.credential, r.header, r.upstreamFrom ? `https://<token's ${r.upstreamFrom.field}>${r.upstreamFrom.path === '/' ? '' : r.upstreamFrom.path}, else ${r.upstream}` : r.upstream]),
  ]);
}

export function routesCommand(): Command {
  return new Command('routes')
    .description('list the injection routes (presets and the config file\'s routes) for run --inject')
    .option('--json', 'print {"routes": [{name, kind (preset, changed, custom), upstream, upstreamFrom?, credential, header, env, allow?}]}')
    .option('--config <file>', 'route configuration (default DATA_DIR/config.json)')
    .addHelpText(
      'after',
      `
Reads and checks this machine's configuration (the "routes" section beside "providers"), so run it on
the host. A route is used with: credproxy run --inject ROUTE[:BUCKET] -- COMMAND`,
    )
    .action((opts: { json?: boolean; config?: string }) => {
      const table = routeTableFromConfig(opts.config);
      const routes = table
        .names()
        .map((name) => listing(table, name))
        .sort((a, b) => (a.kind === 'custom') === (b.kind === 'custom') ? a.name.localeCompare(b.name) : a.kind === 'custom' ? 1 : -1);
      process.stdout.write(opts.json ? `${JSON.stringify({ routes }, null, 2)}\n` : renderRoutes(routes));
    });
}
