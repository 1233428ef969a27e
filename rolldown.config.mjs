// Bundles the `credproxy` binary's helper path (src/cli/launcher.ts and what it imports, from tsc's
// output) into one CommonJS file: see launcher.ts for why. Node built-ins stay imports; anything
// else reachable from the helper path is a build error, so a heavy import cannot slip in unnoticed.
import { builtinModules } from 'node:module';

const builtins = new Set([...builtinModules, ...builtinModules.map((m) => `node:${m}`)]);

export default {
  input: 'dist/cli/launcher.js',
  platform: 'node',
  external: (id, importer) => {
    if (builtins.has(id)) return true;
    // The full CLI, loaded at run time from next to the bundle.
    if (id === './main.js' && importer?.endsWith('/dist/cli/launcher.js')) return true;
    if (!id.startsWith('.') && !id.startsWith('/')) throw new Error(`the helper path must not import the package ${id} (from ${importer})`);
    return false;
  },
  output: { file: 'dist/cli/credproxy.cjs', format: 'cjs', codeSplitting: false },
};
