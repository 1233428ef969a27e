/**
 * The helper path: `credproxy token P` (with CREDPROXY_SOCKET set) and `credproxy git-credential OP`
 * run on every API call or git operation in a sandbox, where start-up time is the whole cost. They
 * are run from here without the command tree: no commander, and only the client, the protocol's
 * pure helpers and small CLI utils are loaded (statically, so that launcher.ts's bundle holds
 * exactly this graph). Only the plain forms are taken — known options with
 * a value, the right number of operands; anything else (help, --no-daemon, a typo) goes to the full
 * CLI, which parses and reports it as usual. The options and their defaults are the commands' own.
 */
import { proxySocketFromEnv } from '../client/proxyEnv.js';
import { DEFAULT_BUCKET } from '../protocol/names.js';
import { runGitCredential } from './util/gitCredentialHelper.js';
import { daemonAccessToken } from './util/proxy.js';
import { toTarget } from './util/target.js';

interface HelperCommand {
  /** Option name → default (undefined: no default). */
  options: Readonly<Record<string, string | undefined>>;
  operands: number;
  /** Whether this invocation belongs on the helper path (e.g. only with a proxy socket). */
  applies(env: NodeJS.ProcessEnv): boolean;
  run(operands: string[], options: Record<string, string | undefined>): Promise<void>;
}

/** The options of `git-credential` and their defaults; the command definition uses the same. */
export const GIT_CREDENTIAL_DEFAULTS = {
  provider: 'github',
  bucket: DEFAULT_BUCKET,
  // GitHub's documented username for token authentication over https; other hosts ignore or accept it.
  username: 'x-access-token',
} as const;

const HELPERS: Readonly<Record<string, HelperCommand>> = {
  token: {
    options: { bucket: DEFAULT_BUCKET },
    operands: 1,
    // Without the variable, `token` looks for a host daemon or reads the host store: not a helper.
    applies: (env) => proxySocketFromEnv(env) !== undefined,
    async run([provider], { bucket }) {
      const token = await daemonAccessToken({ socketPath: proxySocketFromEnv()!, source: 'env' }, toTarget(provider!, bucket));
      process.stdout.write(`${token}\n`);
    },
  },
  'git-credential': {
    options: { ...GIT_CREDENTIAL_DEFAULTS, host: undefined },
    operands: 1,
    applies: () => true,
    async run([operation], { provider, bucket, host, username }) {
      await runGitCredential(operation!, { provider: provider!, bucket: bucket!, username: username!, ...(host !== undefined && { host }) });
    },
  },
};

/** The helper command `args` (argv after the script) run as, or null for the full CLI. */
export function helperPath(args: readonly string[], env: NodeJS.ProcessEnv = process.env): (() => Promise<void>) | null {
  const helper = HELPERS[args[0] ?? ''];
  if (!helper || !helper.applies(env)) return null;
  const options: Record<string, string | undefined> = { ...helper.options };
  const operands: string[] = [];
  for (let i = 1; i < args.length; i++) {
    const arg = args[i]!;
    if (!arg.startsWith('-')) {
      operands.push(arg);
      continue;
    }
    const match = /^--([a-z-]+)(?:=(.*))?$/s.exec(arg);
    if (!match || !Object.hasOwn(helper.options, match[1]!)) return null;
    const value = match[2] ?? args[++i];
    if (value === undefined || (match[2] === undefined && value.startsWith('-'))) return null;
    options[match[1]!] = value;
  }
  if (operands.length !== helper.operands) return null;
  return () => helper.run(operands, options);
}
