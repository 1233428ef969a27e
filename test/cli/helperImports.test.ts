/**
 * The sandbox helpers (`git-credential`, `exec`) run on every git operation or tool start, so their
 * modules must load only the client, the pure protocol helpers and small CLI utils — never the host
 * store backends, OAuth, the server or native code. A module-load recorder (a real Node loader
 * hook) lists what importing each command module loads.
 */
import { execFile, spawn } from 'node:child_process';
import fs from 'node:fs';
import { builtinModules } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sampleToken, startTestDaemon } from '../helpers/daemon.js';
import { makeSandbox, ROOT } from './cliHarness.js';

const run = promisify(execFile);
const RECORDER = path.join(ROOT, 'test', 'fixtures', 'load-recorder.mjs');
const CJS_RECORDER = path.join(ROOT, 'test', 'fixtures', 'cjs-load-recorder.cjs');
const DIST = `${pathToFileURL(path.join(ROOT, 'dist')).href}/`;
const NODE_MODULES = `${pathToFileURL(path.join(ROOT, 'node_modules')).href}/`;

/**
 * What the helpers may load from dist/. store/types.js is there because cli/util/errors.ts checks
 * for StoreError; it is the interfaces and that one class, with no imports of its own.
 */
const ALLOWED = [
  /^client\/(ProxyClient|ProxyKeyStore|ProxyTokenStore|capability|proxyEnv|replies)\.js$/,
  /^protocol\/(errors|framing|names)\.js$/,
  /^(abort|paths)\.js$/,
  /^cli\/util\/(errors|proxy|target|gitCredentialIo|gitCredentialHelper|execSpec|doubleDash)\.js$/,
  // The helper path's option table (git-credential's defaults).
  /^cli\/helperPath\.js$/,
  // Node built-ins only: how exec runs its command.
  /^sandbox\/runChild\.js$/,
  /^cli\/commands\/(gitCredential|exec)\.js$/,
  /^store\/types\.js$/,
];

let tmp: string;
beforeAll(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'cpimp-'));
});
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

async function loadedBy(file: string): Promise<string[]> {
  const log = path.join(tmp, `${path.basename(file)}.log`);
  const url = pathToFileURL(path.join(ROOT, 'dist', file)).href;
  await run(process.execPath, ['--import', RECORDER, '--input-type=module', '-e', `await import(${JSON.stringify(url)});`], {
    env: { PATH: process.env.PATH, CREDPROXY_LOAD_LOG: log },
  });
  return fs.readFileSync(log, 'utf8').split('\n').filter(Boolean);
}

describe.each(['cli/commands/gitCredential.js', 'cli/commands/exec.js'])('%s', (file) => {
  it('loads only the client, pure protocol helpers, small CLI utils and commander', async () => {
    const loaded = await loadedBy(file);
    expect(loaded).toContain(`${DIST}${file}`);
    const ours = loaded.filter((u) => u.startsWith(DIST)).map((u) => u.slice(DIST.length));
    expect(ours.filter((f) => !ALLOWED.some((rule) => rule.test(f)))).toEqual([]);
    const packages = loaded.filter((u) => u.startsWith(NODE_MODULES)).map((u) => u.slice(NODE_MODULES.length).split('/')[0]);
    expect([...new Set(packages)]).toEqual(['commander']);
    expect(loaded.filter((u) => !u.startsWith(DIST) && !u.startsWith(NODE_MODULES) && !u.startsWith('node:'))).toEqual([]);
  });
});

describe('the whole helper path through the CLI', () => {
  /** main.js takes the helper path (helperPath.ts) without the command tree or commander. */
  const BINARY = [...ALLOWED, /^cli\/(main|runCli|commandWord)\.js$/];

  it.each([
    ['token', ['token', 'github'], ''],
    ['git-credential', ['git-credential', 'get'], 'protocol=https\nhost=github.com\n\n'],
  ])('`credproxy %s` through the proxy loads no store, OAuth, daemon, native code or commander', async (_name, args, input) => {
    const d = await startTestDaemon();
    try {
      await d.store.saveToken('github', 'default', sampleToken({ access_token: 'gho-lean-path' }));
      const log = path.join(tmp, `main-${args[0]}.log`);
      const out = await new Promise<string>((resolve, reject) => {
        const child = execFile(process.execPath, ['--import', RECORDER, path.join(ROOT, 'dist', 'cli', 'main.js'), ...args], {
          env: { PATH: process.env.PATH, CREDPROXY_LOAD_LOG: log, CREDPROXY_SOCKET: d.socketPath },
        }, (err, stdout) => (err ? reject(err) : resolve(stdout)));
        child.stdin!.end(input);
      });
      expect(out).toContain('gho-lean-path');
      const loaded = fs.readFileSync(log, 'utf8').split('\n').filter(Boolean);
      const ours = loaded.filter((u) => u.startsWith(DIST)).map((u) => u.slice(DIST.length));
      expect(ours.filter((f) => !BINARY.some((rule) => rule.test(f)))).toEqual([]);
      expect(loaded.filter((u) => u.startsWith(NODE_MODULES))).toEqual([]);
    } finally {
      await d.stop();
    }
  });

  it.each([
    ['token', ['token', 'github'], ''],
    ['git-credential', ['git-credential', 'get'], 'protocol=https\nhost=github.com\n\n'],
  ])('the bundled binary (credproxy.cjs) runs `credproxy %s` loading nothing but node built-ins', async (_name, args, input) => {
    const d = await startTestDaemon();
    try {
      await d.store.saveToken('github', 'default', sampleToken({ access_token: 'gho-bundled-path' }));
      const esmLog = path.join(tmp, `bin-esm-${args[0]}.log`);
      const cjsLog = path.join(tmp, `bin-cjs-${args[0]}.log`);
      fs.writeFileSync(esmLog, '');
      const out = await new Promise<string>((resolve, reject) => {
        const child = execFile(process.execPath, ['--require', CJS_RECORDER, path.join(ROOT, 'dist', 'cli', 'credproxy.cjs'), ...args], {
          env: { PATH: process.env.PATH, CREDPROXY_LOAD_LOG: cjsLog, CREDPROXY_SOCKET: d.socketPath },
        }, (err, stdout) => (err ? reject(err) : resolve(stdout)));
        child.stdin!.end(input);
      });
      expect(out).toContain('gho-bundled-path');
      const required = fs.readFileSync(cjsLog, 'utf8').split('\n').filter(Boolean);
      expect(required.length).toBeGreaterThan(0);
      // The first request is the bundle itself, as the main module.
      expect(required[0]).toBe(path.join(ROOT, 'dist', 'cli', 'credproxy.cjs'));
      expect(required.slice(1).filter((id) => !builtinModules.includes(id.replace(/^node:/, '')))).toEqual([]);
      // And no ES module at all: the full CLI (main.js) was not loaded.
      const again = await new Promise<string>((resolve, reject) => {
        const child = execFile(process.execPath, ['--import', RECORDER, path.join(ROOT, 'dist', 'cli', 'credproxy.cjs'), ...args], {
          env: { PATH: process.env.PATH, CREDPROXY_LOAD_LOG: esmLog, CREDPROXY_SOCKET: d.socketPath },
        }, (err, stdout) => (err ? reject(err) : resolve(stdout)));
        child.stdin!.end(input);
      });
      expect(again).toContain('gho-bundled-path');
      const modules = fs.readFileSync(esmLog, 'utf8').split('\n').filter((u) => u.startsWith(DIST));
      expect(modules.filter((u) => !u.endsWith('/cli/credproxy.cjs'))).toEqual([]);
    } finally {
      await d.stop();
    }
  });
});

describe('the daemon loads only what its store and grants use', () => {
  it('`serve` on the file store loads neither the keyring library, the PostgreSQL client nor inject mode\'s undici', async () => {
    const box = makeSandbox();
    const log = path.join(tmp, 'serve.log');
    try {
      const child = spawn(process.execPath, ['--import', RECORDER, path.join(ROOT, 'dist', 'cli', 'main.js'), '--store', 'file', 'serve', '--socket', path.join(box.dir, 's.sock'), '--audit', 'off'], {
        env: { ...box.env, CREDPROXY_LOAD_LOG: log },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      await new Promise<void>((resolve, reject) => {
        child.stdout!.once('data', () => resolve());
        child.once('exit', (code) => reject(new Error(`serve exited ${code}`)));
      });
      child.kill('SIGTERM');
      await new Promise((resolve) => child.once('exit', resolve));
      const packages = new Set(fs.readFileSync(log, 'utf8').split('\n').filter((u) => u.startsWith(NODE_MODULES)).map((u) => u.slice(NODE_MODULES.length).split('/').slice(0, 2).join('/')));
      // The loader sees the daemon's own modules: the test would notice if it saw none.
      expect([...packages].some((p) => p.startsWith('zod'))).toBe(true);
      expect([...packages].filter((p) => /^(@napi-rs\/|pg\/|pg-|undici\/)/.test(p))).toEqual([]);
    } finally {
      box.cleanup();
    }
  });
});
