/**
 * The published `credproxy/client` entry, tested as a consumer gets it: `npm pack` the built package,
 * unpack the tarball into fresh projects' node_modules and run real Node child processes there.
 *
 * - "lean" has credproxy and nothing else: no koffi, no @napi-rs/keyring, no zod, commander,
 *   oauth4webapi, pino or proper-lockfile. Importing anything that needs them throws
 *   ERR_MODULE_NOT_FOUND, so a sandbox that works there provably loads none of them. The client in
 *   it talks to a real `credproxy serve` daemon.
 * - "full" also has the runtime dependencies (symlinked from this checkout, as npm would hoist them):
 *   there the host mode of the root package must keep working, and a module-load recorder shows that
 *   `credproxy/client` still loads none of the native or host-only code even when it is present.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Writable } from 'node:stream';
import { promisify } from 'node:util';
import { afterAll, afterEach, beforeAll, describe, expect, it, onTestFinished } from 'vitest';
import { finished, makeSandbox, ROOT, runCli, startServe, type RunResult } from '../cli/cliHarness.js';

const run = promisify(execFile);
const RECORDER = path.join(ROOT, 'test', 'fixtures', 'load-recorder.mjs');
const NATIVE_PACKAGES = ['koffi', '@napi-rs/keyring'];

/** The runtime exports of credproxy/client (types are checked by the tsc consumer below). */
const CLIENT_EXPORTS = [
  'CAPABILITY_FD_ENV',
  'CONNECTION_LOST_MESSAGE',
  'KEY_MANAGEMENT_UNAVAILABLE',
  'ProxyClient',
  'ProxyClientError',
  'ProxyKeyStore',
  'ProxyTokenStore',
  'assertCapabilityToken',
  'createKeyStore',
  'createStores',
  'createTokenStore',
  'isCapabilityToken',
  'proxySocketFromEnv',
  'readCapabilityFromEnv',
];

let tmp: string;
let lean: string;
let full: string;
let serving: ChildProcess | undefined;

beforeAll(async () => {
  tmp = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), 'cpk-')));
  const { stdout } = await run('npm', ['pack', '--json', '--silent', '--ignore-scripts', '--pack-destination', tmp], { cwd: ROOT });
  const [packed] = JSON.parse(stdout) as Array<{ filename: string }>;
  const tarball = path.join(tmp, packed!.filename);
  lean = await project('lean', tarball);
  full = await project('full', tarball);
  // The direct runtime dependencies at the top of the consumer's node_modules; their own
  // dependencies resolve from their real location in this checkout.
  const manifest = JSON.parse(fs.readFileSync(path.join(full, 'node_modules', 'credproxy', 'package.json'), 'utf8')) as { dependencies: Record<string, string> };
  for (const dep of Object.keys(manifest.dependencies)) {
    const link = path.join(full, 'node_modules', dep);
    fs.mkdirSync(path.dirname(link), { recursive: true });
    fs.symlinkSync(path.join(ROOT, 'node_modules', dep), link, 'dir');
  }
}, 60_000);

afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

afterEach(() => {
  // Only the daemon this test started, by its own handle.
  if (serving && serving.exitCode === null && serving.signalCode === null) serving.kill('SIGKILL');
  serving = undefined;
});

/** A fresh ESM project with the tarball unpacked as node_modules/credproxy (what npm install does with it). */
async function project(name: string, tarball: string): Promise<string> {
  const dir = path.join(tmp, name);
  const pkg = path.join(dir, 'node_modules', 'credproxy');
  fs.mkdirSync(pkg, { recursive: true });
  fs.writeFileSync(path.join(dir, 'package.json'), JSON.stringify({ name: `consumer-${name}`, private: true, type: 'module' }));
  await run('tar', ['-xzf', tarball, '-C', pkg, '--strip-components=1']);
  return dir;
}

/** Writes `script` into `cwd` and runs it with Node; `fd3` is written to an extra pipe on fd 3. */
function runNode(cwd: string, script: string, options: { env?: NodeJS.ProcessEnv; fd3?: string } = {}): Promise<RunResult> {
  const file = path.join(cwd, `script-${Math.random().toString(16).slice(2)}.mjs`);
  fs.writeFileSync(file, script);
  // Built from scratch so that a developer's own CREDPROXY_SOCKET or data dir never leaks in.
  const env = { PATH: process.env.PATH, HOME: tmp, LANG: 'C', ...options.env };
  const stdio: Array<'ignore' | 'pipe'> = ['ignore', 'pipe', 'pipe'];
  if (options.fd3 !== undefined) stdio.push('pipe');
  const child = spawn(process.execPath, [file], { cwd, env, stdio });
  if (options.fd3 !== undefined) (child.stdio[3] as Writable).end(options.fd3);
  return finished(child);
}

/** Runs `script`, expects exit 0 and one JSON document on stdout. */
async function runJson<T>(cwd: string, script: string, options: Parameters<typeof runNode>[2] = {}): Promise<T> {
  const result = await runNode(cwd, script, options);
  expect(result.code, result.stderr).toBe(0);
  return JSON.parse(result.stdout) as T;
}

/** Starts the real `credproxy serve` of this checkout (the host side) and resolves with its socket. */
async function serve(args: string[], env: NodeJS.ProcessEnv): Promise<string> {
  const { child, ready } = startServe(['--json', '--audit', 'off', ...args], env);
  serving = child;
  return (JSON.parse(await ready) as { socket: string }).socket;
}

describe('credproxy/client without the native and host-only dependencies installed', () => {
  it('imports, with its exports, while the root package (which needs them) cannot', async () => {
    const report = await runJson<{ exports: string[]; root: string; missing: Record<string, string>; hostMode: string }>(
      lean,
      `
      const client = await import('credproxy/client');
      const report = { exports: Object.keys(client).sort(), missing: {} };
      // Controls: the native packages really are absent here, and a module that needs them fails.
      for (const name of ${JSON.stringify(NATIVE_PACKAGES)}) {
        report.missing[name] = await import(name).then(() => 'loaded', (e) => e.code);
      }
      report.root = await import('credproxy').then(() => 'loaded', (e) => e.code);
      // Host mode is where the store backends (and their dependencies) are loaded, on demand.
      report.hostMode = await client.createTokenStore({ env: {}, backend: 'file' }).then(() => 'opened', (e) => e.code);
      process.stdout.write(JSON.stringify(report));
      `,
    );
    expect(report.exports).toEqual(CLIENT_EXPORTS);
    expect(report.missing).toEqual({ koffi: 'ERR_MODULE_NOT_FOUND', '@napi-rs/keyring': 'ERR_MODULE_NOT_FOUND' });
    expect(report.root).toBe('ERR_MODULE_NOT_FOUND');
    expect(report.hostMode).toBe('ERR_MODULE_NOT_FOUND');
    expect(fs.readdirSync(path.join(lean, 'node_modules'))).toEqual(['credproxy']);
  });

  it('serves a sandbox from a real daemon: capability from fd 3, proxy stores from the factory, a bare ProxyClient', async () => {
    // Host side: an API key in a file store, and a policy that grants access only to the capability.
    const host = makeSandbox();
    onTestFinished(() => host.cleanup());
    const keySet = await runCli(['keys', 'set', 'openai', '--store', 'file'], { env: host.env, input: 'sk-from-the-host\n' });
    expect(keySet.code, keySet.stderr).toBe(0);
    const capability = 'ab'.repeat(32);
    const policyFile = path.join(host.dir, 'policy.json');
    fs.writeFileSync(
      policyFile,
      JSON.stringify({
        capabilities: [
          { id: 'lean-sandbox', tokenSha256: createHash('sha256').update(capability).digest('hex'), providers: { anthropic: '*' }, keys: ['openai'], ops: ['read', 'write'] },
        ],
      }),
    );
    const socket = await serve(['--store', 'file', '--policy', policyFile], host.env);

    const report = await runJson<Record<string, unknown>>(
      lean,
      `
      import { createKeyStore, createTokenStore, ProxyClient, ProxyTokenStore } from 'credproxy/client';
      const out = {};
      const tokens = await createTokenStore();
      out.fdVariableAfter = process.env.CREDPROXY_CAPABILITY_FD ?? null;
      const keys = await createKeyStore();
      out.classes = [tokens instanceof ProxyTokenStore, tokens.backend, keys.backend];
      await tokens.saveToken('anthropic', undefined, {
        access_token: 'at-saved-from-the-sandbox', expiry: 4102444800, token_type: 'Bearer', refresh_token: 'rt-sandbox-attempt',
      });
      out.token = await tokens.getToken('anthropic');
      out.providers = await tokens.listProviders();
      out.key = await keys.getKey('openai');
      out.setKey = await keys.setKey('openai', 'x').then(() => 'stored', (e) => e.code);
      out.outsideGrant = await tokens.getToken('gemini').then(() => 'served', (e) => e.code);
      await tokens.close();
      await keys.close();
      // Without the capability the policy grants nothing.
      const bare = new ProxyClient({ socketPath: process.env.CREDPROXY_SOCKET });
      out.bare = await bare.request('get_token', { provider: 'anthropic' }).then(() => 'served', (e) => e.code);
      await bare.close();
      process.stdout.write(JSON.stringify(out));
      `,
      { env: { CREDPROXY_SOCKET: socket, CREDPROXY_CAPABILITY_FD: '3' }, fd3: `${capability}\n` },
    );
    expect(report).toEqual({
      fdVariableAfter: null,
      classes: [true, 'proxy', 'proxy'],
      token: { access_token: 'at-saved-from-the-sandbox', expiry: 4102444800, token_type: 'Bearer' },
      providers: ['anthropic'],
      key: 'sk-from-the-host',
      setKey: 'READ_ONLY',
      outsideGrant: 'UNAUTHORIZED',
      bare: 'UNAUTHORIZED',
    });
  });
});

describe('credproxy/client next to the installed dependencies', () => {
  const LOAD_REPORT = `
    import fs from 'node:fs';
    await import(process.argv[2]);
    process.stdout.write(JSON.stringify(fs.readFileSync(process.env.CREDPROXY_LOAD_LOG, 'utf8').trim().split('\\n')));
  `;

  /** The URLs of every module Node loads for `import(specifier)` in the full project. */
  async function loadedBy(specifier: string): Promise<string[]> {
    const log = path.join(tmp, `loads-${Math.random().toString(16).slice(2)}.log`);
    const file = path.join(full, 'load-report.mjs');
    fs.writeFileSync(file, LOAD_REPORT);
    const child = await run(process.execPath, ['--import', RECORDER, file, specifier], {
      cwd: full,
      env: { PATH: process.env.PATH, HOME: tmp, CREDPROXY_LOAD_LOG: log },
    });
    return JSON.parse(child.stdout) as string[];
  }

  it('loads only node built-ins and the client, protocol helpers and paths of the package', async () => {
    const dist = `file://${path.join(full, 'node_modules', 'credproxy', 'dist')}/`;
    const [script, ...loaded] = await loadedBy('credproxy/client');
    expect(script).toBe(`file://${path.join(full, 'load-report.mjs')}`);
    expect(loaded).toContain(`${dist}client/index.js`);
    const foreign = loaded.filter((url) => !url.startsWith('node:') && !url.startsWith(dist));
    expect(foreign).toEqual([]);
    const hostOnly = loaded.filter((url) => /\/dist\/(index\.js|store\/|server\/|oauth\/|handlers\/|cli\/|protocol\/messages\.js)/.test(url));
    expect(hostOnly).toEqual([]);

    // Control: the recorder does see the native packages when the root package loads them.
    const rootLoads = await loadedBy('credproxy');
    for (const name of NATIVE_PACKAGES) expect(rootLoads.some((url) => url.includes(`/node_modules/${name}/`))).toBe(true);
  });

  it('host mode of the root package keeps working, and credproxy/client opens the same host store on demand', async () => {
    const home = path.join(tmp, 'full-home');
    const report = await runJson<Record<string, unknown>>(
      full,
      `
      import * as root from 'credproxy';
      import * as client from 'credproxy/client';
      const out = {};
      const tokens = await root.createTokenStore({ backend: 'file' });
      out.rootBackend = tokens.backend;
      await tokens.saveToken('anthropic', 'default', { access_token: 'at-host', expiry: 4102444800, token_type: 'Bearer', refresh_token: 'rt-host' });
      await tokens.close?.();
      const stores = await client.createStores({ backend: 'file' });
      out.clientMode = [stores.mode, stores.backend];
      out.refreshOnHost = (await stores.tokens.getToken('anthropic', 'default'))?.refresh_token ?? null;
      await stores.tokens.close?.();
      // One module instance behind both entries, so instanceof works across them.
      out.sameExports = ${JSON.stringify(CLIENT_EXPORTS)}.filter((name) => root[name] !== client[name]);
      process.stdout.write(JSON.stringify(out));
      `,
      { env: { CREDPROXY_HOME: home, CREDPROXY_PASSPHRASE: 'host mode test' } },
    );
    expect(report).toEqual({ rootBackend: 'file', clientMode: ['host', 'file'], refreshOnHost: 'rt-host', sameExports: [] });
  });

  it('gives TypeScript consumers (NodeNext) the declarations of both entries', async () => {
    fs.writeFileSync(
      path.join(full, 'tsconfig.json'),
      JSON.stringify({
        // skipLibCheck as in this project (checking every dependency's declarations takes seconds);
        // the consumer's own code is still checked against credproxy's declarations.
        compilerOptions: {
          module: 'NodeNext',
          moduleResolution: 'NodeNext',
          target: 'ES2022',
          strict: true,
          noEmit: true,
          skipLibCheck: true,
          types: ['node'],
          typeRoots: [path.join(ROOT, 'node_modules', '@types')],
        },
        files: ['consumer.ts'],
      }),
    );
    fs.writeFileSync(
      path.join(full, 'consumer.ts'),
      `
      import { ProxyClient, ProxyTokenStore, createTokenStore, type ErrorCode, type SanitizedToken, type SandboxTokenStore } from 'credproxy/client';
      import { createTokenStore as hostCreateTokenStore, FileStore, type ErrorCode as RootErrorCode, type TokenStore } from 'credproxy';
      const client = new ProxyClient({ socketPath: '/nonexistent.sock' });
      const store: SandboxTokenStore = new ProxyTokenStore(client);
      const token: Promise<SanitizedToken | null> = store.getToken('anthropic');
      const code: ErrorCode = 'NOT_FOUND' satisfies RootErrorCode;
      // @ts-expect-error the declarations are real: a proxy store's backend is 'proxy', not a number
      const backend: number = store.backend;
      const either: Promise<TokenStore | ProxyTokenStore> = createTokenStore();
      const host: Promise<TokenStore | ProxyTokenStore> = hostCreateTokenStore();
      export { token, code, backend, either, host, FileStore };
      `,
    );
    const tsc = path.join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc');
    const result = await run(process.execPath, [tsc, '-p', full]).then(
      () => ({ ok: true, out: '' }),
      (e: { stdout?: string }) => ({ ok: false, out: e.stdout ?? String(e) }),
    );
    expect(result.out).toBe('');
    expect(result.ok).toBe(true);
  }, 60_000);
});
