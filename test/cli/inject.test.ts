/**
 * `credproxy run --inject` end to end: the real CLI, a real `credproxy serve` with routes in its config
 * file, a local HTTPS upstream (openssl-made CA), and programs that use their route as an SDK would —
 * without a sandbox and in a real bubblewrap sandbox without network, where the route is the only
 * way out and no byte, variable or file inside holds the key.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeCerts, startHttpsUpstream, type HttpsUpstream, type TestCerts } from '../helpers/httpsUpstream.js';
import { CLI, finished, makeSandbox, ROOT, runCli, type RunResult, type Sandbox } from './cliHarness.js';

const FIXTURES = path.join(ROOT, 'test', 'fixtures');
const HAS_BWRAP = spawnSync('bwrap', ['--ro-bind', '/', '/', '--unshare-pid', 'true']).status === 0;
// CI installs bubblewrap (scripts/test.sh); there these tests must run, never skip.
const needBwrap = process.env.CI === 'true' || HAS_BWRAP;

const START = Date.now();
const KEY = `sk-inj-${randomBytes(16).toString('hex')}`;
const OTHER_KEY = `sk-other-${randomBytes(16).toString('hex')}`;
const PLACEHOLDER = 'credproxy-managed';
const MB50 = 50 * 1024 * 1024;

let certs: TestCerts;
let upstream: HttpsUpstream;
let box: Sandbox;
let ws: string;
let serve: ChildProcess;

async function cli(args: string[], input?: string): Promise<RunResult> {
  const r = await runCli(['--store', 'file', ...args], { env: box.env, ...(input !== undefined && { input }) });
  expect(r.code, r.stderr).toBe(0);
  return r;
}

beforeAll(async () => {
  certs = makeCerts();
  upstream = await startHttpsUpstream(certs.leaf);
  box = makeSandbox();
  ws = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), 'cpinj-ws-')));
  const data = box.env.CREDPROXY_HOME!;
  fs.mkdirSync(data, { recursive: true, mode: 0o700 });
  fs.copyFileSync(certs.caFile, path.join(data, 'test-ca.pem'));
  const allow = [
    { method: 'POST', path: '/v1/messages' },
    { method: 'GET', path: '/v1/download' },
    { method: 'GET', path: '/v1/models*' },
  ];
  fs.writeFileSync(
    path.join(data, 'config.json'),
    JSON.stringify({
      routes: {
        api: { upstream: upstream.url, credential: { key: 'apikey' }, header: 'x-api-key', format: '{}', allow, env: { API_BASE: '{url}', API_KEY: PLACEHOLDER }, ca: 'test-ca.pem' },
        other: { upstream: upstream.url, credential: { key: 'otherkey' }, env: { OTHER_BASE: '{url}' }, ca: 'test-ca.pem' },
      },
    }),
  );
  await cli(['keys', 'set', 'apikey'], KEY);
  await cli(['keys', 'set', 'otherkey'], OTHER_KEY);
  serve = spawn(process.execPath, [CLI, '--store', 'file', 'serve', '--json'], { env: box.env, stdio: ['ignore', 'pipe', 'pipe'] });
  await new Promise<void>((resolve, reject) => {
    let out = '';
    let err = '';
    serve.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      if (out.includes('\n')) resolve();
    });
    serve.stderr!.on('data', (d: Buffer) => (err += d.toString()));
    serve.once('exit', (code) => reject(new Error(`serve exited (${code}): ${err}`)));
  });
}, 60_000);

afterAll(async () => {
  serve?.kill('SIGTERM');
  if (serve) await new Promise((resolve) => (serve.exitCode !== null ? resolve(null) : serve.once('exit', resolve)));
  await upstream?.close();
  certs?.cleanup();
  box?.cleanup();
  if (ws) fs.rmSync(ws, { recursive: true, force: true });
});

function run(args: string[], command: string[]): Promise<RunResult> {
  const child = spawn(process.execPath, [CLI, '--store', 'file', 'run', ...args, '--', ...command], { env: box.env, cwd: ws, stdio: ['ignore', 'pipe', 'pipe'] });
  return finished(child, 120_000);
}

const client = (plan: Record<string, unknown>): string[] => [process.execPath, path.join(FIXTURES, 'inject-client.mjs'), JSON.stringify(plan)];

interface ClientReport {
  env: Record<string, string>;
  results: Array<{ status: number; body?: string; bytes?: number }>;
  direct?: string;
}

/** Starts a new peak: VmHWM drops to the current resident set (Linux clear_refs "5"). */
function resetPeakRss(pid: number): void {
  fs.writeFileSync(`/proc/${pid}/clear_refs`, '5');
}

/** Peak resident set of a process since the last reset (VmHWM), in MiB. */
function peakRssMiB(pid: number): number {
  const kb = Number(/VmHWM:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'))![1]);
  return kb / 1024;
}

describe('credproxy run --inject (no sandbox)', { timeout: 120_000 }, () => {
  it('the program gets a base URL and a placeholder; the upstream gets the key; the grant holds no key', async () => {
    const from = upstream.requests.length;
    const r = await run(['--inject', 'api'], [
      'sh',
      '-c',
      `${client({ base: 'API_BASE', requests: [{ method: 'POST', path: '/api/v1/messages', body: '{"a":1}', headers: { 'x-api-key': '$API_KEY', authorization: 'Bearer sandbox' } }] }).map((a) => `'${a}'`).join(' ')} && ${[process.execPath, CLI, 'keys', 'get', 'apikey'].join(' ')}`,
    ]);
    const report = JSON.parse(r.stdout.split('\n')[0]!) as ClientReport;
    expect(report.env).toEqual({ API_BASE: expect.stringMatching(/^http:\/\/127\.0\.0\.1:\d+\/[0-9a-f]{32}\/api$/), API_KEY: PLACEHOLDER });
    expect(report.results).toEqual([{ status: 200, body: '{"received":7}' }]);
    // Inside the run the key is not readable through the grant's socket.
    expect(r.code).not.toBe(0);
    expect(r.stdout + r.stderr).not.toContain(KEY);
    const seen = upstream.requests.slice(from);
    expect(seen.map((s) => [s.headers['x-api-key'], s.headers.authorization])).toEqual([[KEY, undefined]]);
  });

  it('50 MB up and 50 MB down pass through with bounded daemon memory', async () => {
    // Warm-up: TLS sessions, undici's pool and V8's heap grow once by about the same whatever the size
    // (45 MB for 50 MB as for 200 MB); a small transfer first, so the measured one shows what scales.
    const transfer = (n: number) => client({ base: 'API_BASE', requests: [{ method: 'POST', path: '/api/v1/messages', upload: n }, { method: 'GET', path: `/api/v1/download?bytes=${n}` }] });
    expect((await run(['--inject', 'api'], transfer(8 * 1024 * 1024))).code).toBe(0);
    resetPeakRss(serve.pid!);
    const before = peakRssMiB(serve.pid!);
    const r = await run(['--inject', 'api'], transfer(MB50));
    expect(r.code, r.stderr).toBe(0);
    const report = JSON.parse(r.stdout) as ClientReport;
    expect(report.results).toEqual([
      { status: 200, body: JSON.stringify({ received: MB50 }) },
      { status: 200, bytes: MB50 },
    ]);
    const after = peakRssMiB(serve.pid!);
    console.log(`inject: daemon RSS ${before.toFixed(1)} MiB before, peak ${after.toFixed(1)} MiB during 50 MB up + 50 MB down`);
    // Buffering either body would add at least 50 MB; streaming adds socket, pool and heap slack only.
    expect(after - before).toBeLessThan(35);
  });

  it('refuses --inject with a container engine, a bad route name and a route the daemon does not know', async () => {
    const engine = await run(['--inject', 'api', '--sandbox', 'docker', '--image', 'x'], ['true']);
    expect(engine.stderr).toBe('credproxy: --inject works with --sandbox none and bwrap\n');
    const bad = await run(['--inject', 'bad name'], ['true']);
    expect(bad.stderr).toMatch(/^credproxy: --inject "bad name": /);
    const unknown = await run(['--inject', 'nope'], ['true']);
    expect(unknown.stderr).toMatch(/No injection route nope \(known: anthropic, anthropic-oauth, api, /);
    const both = await run(['--inject', 'api', '--key', 'apikey'], ['true']);
    expect(both.stderr).toContain('Route api injects the API key apikey, which the grant would also hand out');
  });

  it('serve refuses a bad route in its config file with one line naming the field, before touching the store', async () => {
    const bad = path.join(box.dir, 'bad-routes.json');
    fs.writeFileSync(bad, JSON.stringify({ routes: { x: { upstream: 'https://a.test', credential: { key: 'k' }, format: 'Bearer sk-never-shown', env: { X: '{url}' } } } }));
    const r = await runCli(['--store', 'file', 'serve', '--config', bad], { env: box.env });
    expect(r.code).toBe(1);
    expect(r.stderr).toBe(`credproxy: Invalid config file ${bad}: routes.x.format: must contain {} (the credential) exactly once\n`);
  });
});

describe.skipIf(!needBwrap)('credproxy run --inject --sandbox bwrap --no-network', { timeout: 120_000 }, () => {
  it('the route is the only way out: allowed requests reach the upstream with the key, 403 outside the allowlist, 404 outside the grant, no direct connection, and no key in any byte, variable or file', async () => {
    const bytes = path.join(ws, `bytes-${randomBytes(4).toString('hex')}`);
    const from = upstream.requests.length;
    const plan = {
      base: 'API_BASE',
      bytes,
      direct: upstream.port,
      requests: [
        { method: 'POST', path: '/api/v1/messages', body: '{"hi":true}', headers: { 'x-api-key': PLACEHOLDER } },
        { method: 'GET', path: '/api/v1/models' },
        { method: 'DELETE', path: '/api/v1/models' },
        { method: 'GET', path: '/other/v1/models' },
      ],
    };
    const scan = { paths: [box.env.CREDPROXY_HOME!], reversed: [...KEY].reverse().join(''), since: START };
    const r = await run(['--sandbox', 'bwrap', '--no-network', '--mount', `${ROOT}:${ROOT}:ro`, '--mount', ws, '--inject', 'api'], [
      'sh',
      '-c',
      `${client(plan).map((a) => `'${a}'`).join(' ')} && exec ${process.execPath} ${path.join(FIXTURES, 'sandbox-scan.mjs')} '${JSON.stringify(scan)}'`,
    ]);
    expect(r.code, r.stderr).toBe(0);
    const [first, second] = r.stdout.trimEnd().split('\n');
    const report = JSON.parse(first!) as ClientReport;
    expect(report.env).toEqual({ API_BASE: expect.stringMatching(/^http:\/\/127\.0\.0\.1:\d+\/api$/), API_KEY: PLACEHOLDER });
    expect(report.results.map((x) => x.status)).toEqual([200, 200, 403, 404]);
    expect(report.results[2]!.body).toBe('credproxy: DELETE /v1/models is not allowed on route api\n');
    expect(report.results[3]!.body).toBe('credproxy: no route "other" in this grant\n');
    // No network namespace of the host: the upstream's port does not exist in there.
    expect(report.direct).toBe('ECONNREFUSED');
    const { visible, hits, files } = JSON.parse(second!) as { visible: string[]; hits: string[]; files: number };
    expect(visible).toEqual([]);
    expect(hits).toEqual([]);
    expect(files).toBeGreaterThan(0);
    const received = Buffer.from(fs.readFileSync(bytes, 'utf8'), 'base64').toString('latin1');
    expect(received).toContain('{"received":11}');
    for (const secret of [KEY, OTHER_KEY]) expect(received + r.stdout + r.stderr).not.toContain(secret);
    expect(upstream.requests.slice(from).map((s) => [s.method, s.url, s.headers['x-api-key']])).toEqual([
      ['POST', '/v1/messages', KEY],
      ['GET', '/v1/models', KEY],
    ]);
  });

  it('with network, the sandbox reaches the daemon\'s loopback port (which admits only this uid)', async () => {
    const from = upstream.requests.length;
    const r = await run(['--sandbox', 'bwrap', '--mount', `${ROOT}:${ROOT}:ro`, '--mount', ws, '--inject', 'api'], client({ base: 'API_BASE', requests: [{ method: 'GET', path: '/api/v1/models' }] }));
    expect(r.code, r.stderr).toBe(0);
    expect((JSON.parse(r.stdout) as ClientReport).results).toEqual([{ status: 200, body: '{"path":"/v1/models"}' }]);
    expect(upstream.requests.slice(from).map((s) => s.headers['x-api-key'])).toEqual([KEY]);
  });
});
