/** The injection routes (presets and the config file's `routes`) of this host, for serve and run. */
import { existsSync } from 'node:fs';
import { loadRouteTable, type RouteTable } from '../../inject/RouteTable.js';
import { CliError } from './errors.js';

/** Loads the route table from `configPath` (default DATA_DIR/config.json); a bad config is one CLI error line. */
export function routeTableFromConfig(configPath: string | undefined, env: NodeJS.ProcessEnv = process.env): RouteTable {
  if (configPath !== undefined && !existsSync(configPath)) throw new CliError(`Config file ${configPath} does not exist`);
  try {
    return loadRouteTable({ ...(configPath !== undefined && { configPath }), env });
  } catch (err) {
    // The loader's messages name files and fields, never values.
    throw new CliError(err instanceof Error && err.message ? err.message : 'Cannot load the route configuration');
  }
}
