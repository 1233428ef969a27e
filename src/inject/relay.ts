/**
 * `credproxy relay` (hidden): the byte relay that gives a network-isolated sandbox its way to the
 * injection proxy. It listens on 127.0.0.1:PORT in the sandbox's own network namespace and copies
 * bytes both ways to the proxy's Unix socket, bind-mounted in. It holds nothing secret and parses
 * nothing. Node built-ins only, so a launcher can bind this one file (as .mjs) into a sandbox that
 * cannot see the rest of credproxy, and run it with the bound node binary.
 *
 *   relay --listen 127.0.0.1:PORT --socket PATH [--background]
 *
 * `--background` returns (exit 0) once the listener is up and leaves it running, so a shell can
 * start the relay and then exec the sandboxed command, which keeps its pid and its signals.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import type { Readable } from 'node:stream';
import { fileURLToPath, pathToFileURL } from 'node:url';

/** This file, for launchers that bind it into a sandbox. */
export const RELAY_SCRIPT = fileURLToPath(import.meta.url);

export interface RelayOptions {
  host: string;
  port: number;
  socket: string;
  background: boolean;
  readyFd?: number;
}

export function parseRelayArgs(argv: readonly string[]): RelayOptions {
  const opts: Partial<RelayOptions> = { background: false };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    const value = argv[i + 1];
    if (arg === '--background') opts.background = true;
    else if (arg === '--listen' && value !== undefined) {
      const m = /^127\.0\.0\.1:(\d{1,5})$/.exec(value);
      if (!m || Number(m[1]) < 1 || Number(m[1]) > 65_535) throw new Error(`--listen ${value}: expected 127.0.0.1:PORT`);
      opts.host = '127.0.0.1';
      opts.port = Number(m[1]);
      i++;
    } else if (arg === '--socket' && value !== undefined) {
      opts.socket = value;
      i++;
    } else if (arg === '--ready-fd' && value !== undefined && /^\d+$/.test(value)) {
      opts.readyFd = Number(value);
      i++;
    } else throw new Error(`unexpected argument ${JSON.stringify(arg)}; usage: relay --listen 127.0.0.1:PORT --socket PATH [--background]`);
  }
  if (opts.port === undefined || opts.socket === undefined) throw new Error('usage: relay --listen 127.0.0.1:PORT --socket PATH [--background]');
  return opts as RelayOptions;
}

/** Listens and relays each connection to the socket; resolves once listening. */
export async function startRelay(opts: Pick<RelayOptions, 'host' | 'port' | 'socket'>): Promise<net.Server> {
  // Half-open both ways: a side that finished sending still gets the rest of the answer.
  const server = net.createServer({ allowHalfOpen: true }, (client) => {
    const upstream = net.connect({ path: opts.socket, allowHalfOpen: true });
    client.setNoDelay(true);
    const end = (): void => {
      client.destroy();
      upstream.destroy();
    };
    client.on('error', end);
    upstream.on('error', end);
    client.pipe(upstream);
    upstream.pipe(client);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port, opts.host, () => resolve());
  });
  return server;
}

/** Runs the relay; with --background resolves once a detached copy is listening. */
export async function relayMain(argv: readonly string[]): Promise<void> {
  const opts = parseRelayArgs(argv);
  if (!opts.background) {
    await startRelay(opts);
    if (opts.readyFd !== undefined) {
      fs.writeSync(opts.readyFd, 'ready\n');
      fs.closeSync(opts.readyFd);
    }
    return;
  }
  const args = ['--listen', `${opts.host}:${opts.port}`, '--socket', opts.socket, '--ready-fd', '3'];
  const child = spawn(process.execPath, [RELAY_SCRIPT, ...args], { stdio: ['ignore', 'ignore', 'inherit', 'pipe'] });
  const ready = child.stdio[3] as Readable;
  await new Promise<void>((resolve, reject) => {
    let text = '';
    ready.on('data', (d: Buffer) => {
      text += d.toString();
      if (text.includes('ready\n')) resolve();
    });
    child.once('exit', (code) => reject(new Error(`the relay exited before listening (status ${code})`)));
    child.once('error', reject);
  });
  ready.destroy();
  child.unref();
}

// Run directly (`node relay.mjs ...`, as inside a sandbox) rather than imported by the CLI.
if (process.argv[1] !== undefined && pathToFileURL(process.argv[1]).href === import.meta.url) {
  relayMain(process.argv.slice(2)).catch((err: unknown) => {
    process.stderr.write(`credproxy relay: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(1);
  });
}
