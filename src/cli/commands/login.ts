/**
 * `credproxy login PROVIDER`: an OAuth login. Through a daemon — CREDPROXY_SOCKET's, or the one
 * running for this session on the host — the daemon runs it (oauth_* ops) and stores the token, so
 * its token cache is never behind, and this process only sees URLs, the user code and the sanitized
 * token. Without a daemon it runs the flow in-process and stores the full token in the host store.
 * Prompts go to stderr; stdout gets the one success line.
 */
import { Command, InvalidArgumentError, Option } from 'commander';
import { ProxyLoginBackend, runLogin, type FlowName, type LoginBackend } from '../../client/loginDriver.js';
import { FLOW_NAMES } from '../../protocol/messages.js';
import type { ProviderRegistry } from '../../oauth/providerTypes.js';
import { FLOW_ALIASES } from '../../oauth/providerTypes.js';
import { CliError } from '../util/errors.js';
import { findBrowserOpener, type BrowserOpener } from '../util/loginBrowser.js';
import { flowOption, registryFromConfig } from '../util/loginConfig.js';
import { HostLoginBackend } from '../util/loginHost.js';
import { loginFailure, successLine, unknownProvider } from '../util/loginMessages.js';
import { TerminalLoginUi } from '../util/loginTerminal.js';
import { noDaemonOption } from '../util/noDaemonOption.js';
import { daemonSocket } from '../util/daemonSocket.js';
import { withDaemonClient } from '../util/proxy.js';
import { withHostStores } from '../util/stores.js';
import { toTarget, type Target } from '../util/target.js';

/** Exit status of a login cancelled with Ctrl-C (128 + SIGINT, as a shell reports it). */
export const CANCELLED_EXIT = 130;

interface LoginOptions {
  bucket: string;
  flow?: FlowName;
  browser: boolean;
  config?: string;
  daemon: boolean;
}

class LoginCancelled extends Error {
  override readonly name = 'LoginCancelled';
}

function parseFlow(value: string): FlowName {
  if (!(FLOW_NAMES as readonly string[]).includes(value)) throw new InvalidArgumentError('Use device, paste or browser.');
  return value as FlowName;
}

/** Host mode: fail on an unknown provider or flow before the store (and a keyring probe) is opened. */
function checkProvider(registry: ProviderRegistry, target: Target, flow: FlowName | undefined): void {
  const adapter = registry.get(target.provider);
  if (!adapter) throw unknownProvider(target.provider, 'host');
  if (flow !== undefined && !adapter.flows.includes(FLOW_ALIASES[flow]!)) {
    const supported = adapter.flows.map(flowOption).join(', ');
    throw new CliError(`${target.provider} does not support the ${flowOption(FLOW_ALIASES[flow]!)} flow; use --flow ${supported.replace(/, /g, ' or ')}`);
  }
}

/** Runs the driver with Ctrl-C wired to cancellation; prints the success line. */
async function drive(backend: LoginBackend, target: Target, flow: FlowName | undefined, openBrowser: BrowserOpener | null): Promise<void> {
  const controller = new AbortController();
  let interrupts = 0;
  const onInterrupt = (): void => {
    // A second Ctrl-C does not wait for the host to confirm the cancellation.
    if (++interrupts > 1) {
      process.stderr.write('\ncredproxy: login cancelled\n');
      process.exit(CANCELLED_EXIT);
    }
    controller.abort(new LoginCancelled('login cancelled'));
  };
  process.on('SIGINT', onInterrupt);
  const ui = new TerminalLoginUi({ provider: target.provider, bucket: target.bucket, openBrowser, onInterrupt });
  try {
    const { token } = await runLogin(backend, ui, { provider: target.provider, bucket: target.bucket, ...(flow !== undefined && { flow }), signal: controller.signal });
    process.stdout.write(`${successLine(target.provider, target.bucket, token, Date.now())}\n`);
  } catch (err) {
    if (controller.signal.aborted) {
      process.stderr.write('credproxy: login cancelled\n');
      process.exitCode = CANCELLED_EXIT;
      return;
    }
    throw loginFailure(err, target.provider, backend.mode);
  } finally {
    process.off('SIGINT', onInterrupt);
    await backend.close();
  }
}

export function loginCommand(): Command {
  return new Command('login')
    .description('log in to PROVIDER with OAuth and store the token on the host')
    .argument('<provider>', 'provider name (see credproxy providers)')
    .option('--bucket <bucket>', 'bucket (account slot) to store the token under', 'default')
    .addOption(new Option('--flow <flow>', 'login flow: device, paste or browser (default: the provider\'s first)').argParser(parseFlow))
    .option('--no-browser', 'do not open a browser (the URL is always printed)')
    .option('--config <file>', 'provider configuration (host mode; default DATA_DIR/config.json)')
    .addOption(noDaemonOption())
    .addHelpText(
      'after',
      `
Flows: device = a code to enter on a web page (any device; a QR code on a terminal);
paste = open a URL, authorize, paste the code the page shows; browser = the browser returns to a
loopback callback on the machine that runs credproxy.

With CREDPROXY_SOCKET (or LLXPRT_CREDENTIAL_SOCKET) set, the daemon runs the login and keeps the
refresh token; this process never sees it, and no browser is opened. On the host, a daemon running
for this session (serve --detach, or a serve on the default socket) runs it the same way, with its
own configuration and store. Otherwise, or with --no-daemon, the login runs here and the token goes
into the host store (--store, which applies to that case only). A browser is opened only on the
host, when a graphical session is available (DISPLAY/WAYLAND_DISPLAY and xdg-open, or macOS open).

Instructions, the URL, the user code and the paste prompt go to stderr; stdout gets one line on
success. A pasted code may also come from stdin when it is not a terminal. Ctrl-C cancels the
login on the host and exits with status 130.

  credproxy login anthropic
  credproxy login github --bucket work --flow device`,
    )
    .action(async (provider: string, opts: LoginOptions, cmd: Command) => {
      const target = toTarget(provider, opts.bucket);
      const found = await daemonSocket(opts.daemon);
      if (found) {
        if (opts.config !== undefined) {
          throw new CliError(
            found.source === 'env'
              ? '--config applies to host logins; the credential proxy uses its own configuration'
              : `--config applies to logins run here; the running daemon (pid ${found.pid}) uses its own configuration (add --no-daemon to log in here)`,
          );
        }
        // Never a browser from a sandbox: it is not the user's, and the host decides what runs there.
        // A daemon discovered on the host is the user's own, on this machine.
        const openBrowser = found.source === 'discovered' && opts.browser ? findBrowserOpener() : null;
        await withDaemonClient(found, (client) => drive(new ProxyLoginBackend(client), target, opts.flow, openBrowser));
        return;
      }
      const registry = registryFromConfig(opts.config);
      checkProvider(registry, target, opts.flow);
      const openBrowser = opts.browser ? findBrowserOpener() : null;
      await withHostStores(cmd, (stores) => drive(new HostLoginBackend(registry, stores), target, opts.flow, openBrowser));
    });
}
