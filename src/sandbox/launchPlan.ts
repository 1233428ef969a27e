/** Picks the launcher of a sandbox kind; `none` runs the command as it is, with only the grant's socket. */
import { bwrapPlan } from './bwrap.js';
import { enginePlan } from './engine.js';
import { inheritedEnv, sandboxVariables, type LaunchPlan, type LaunchRequest, type SandboxKind } from './plan.js';

/**
 * `none` is no boundary: the program runs as the caller and could read the host store itself. It is
 * for programs that are trusted but should only be handed a scoped grant (and for testing).
 */
function nonePlan(req: LaunchRequest): LaunchPlan {
  return {
    command: req.command,
    args: [...req.args],
    env: { ...inheritedEnv(req.env, false), ...sandboxVariables(req) },
    ...(req.tcp && { fd3: `${req.tcp.capability}\n` }),
    cleanup: () => {},
  };
}

export function launchPlan(kind: SandboxKind, req: LaunchRequest): LaunchPlan {
  switch (kind) {
    case 'none':
      return nonePlan(req);
    case 'bwrap':
      return bwrapPlan(req);
    case 'docker':
    case 'podman':
      return enginePlan(kind, req);
  }
}
