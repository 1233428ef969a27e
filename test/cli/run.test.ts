/**
 * `credproxy run` end to end: the real CLI, a real `credproxy serve` found through current.json, real
 * bubblewrap sandboxes, a real authorization server (oidc-provider) for a login started inside, and
 * programs inside that look for what they must not find. Every test starts its own runs and waits
 * on what they print, never on time.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { startAuthServer, type AuthServer } from '../helpers/authServer.js';
import { writeProviderConfig } from '../helpers/providerLogin.js';
import { RawClient } from '../helpers/rawClient.js';
import { CLI, finished, makeSandbox, ROOT, runCli, type RunResult, type Sandbox } from './cliHarness.js';

const FIXTURES = path.join(ROOT, 'test', 'fixtures');
const HAS_BWRAP = spawnSync('bwrap', ['--ro-bind', '/', '/', '--unshare-pid', 'true']).status === 0;
// CI installs bubblewrap (scripts/test.sh); there these tests must run, never skip.
const needBwrap = process.env.CI === 'true' || HAS_BWRAP;

const START = Date.now();
const GITHUB = { access: `gho_${randomBytes(12).toString('hex')}`, refresh: `ghr_${randomBytes(16).toString('hex')}` };
const GEMINI = { access: `ya29.${randomBytes(12).toString('hex')}`, refresh: `1//${randomBytes(16).toString('hex')}` };
const OPENAI_KEY = `sk-${randomBytes(12).toString('hex')}`;
const GROQ_KEY = `gsk_${randomBytes(12).toString('hex')}`;

let idp: AuthServer;
let box: Sandbox;
let ws: string;
let serve: ChildProcess;
let daemon: { socket: string; control: string; tcp: { host: string; port: number } };
const children: ChildProcess[] = [];

async function cli(args: string[], input?: string): Promise<RunResult> {
  const r = await runCli(['--store', 'file', ...args], { env: box.env, ...(input !== undefined && { input }) });
  expect(r.code, r.stderr).toBe(0);
  return r;
}

beforeAll(async () => {
  idp = await startAuthServer();
  box = makeSandbox();
  ws = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), 'cprun-ws-')));
  fs.mkdirSync(box.env.CREDPROXY_HOME!, { recursive: true, mode: 0o700 });
  writeProviderConfig(path.join(box.env.CREDPROXY_HOME!, 'config.json'), idp, 'myidp');
  const expiry = Math.floor(Date.now() / 1000) + 3600;
  await cli(['import', 'github'], JSON.stringify({ access_token: GITHUB.access, refresh_token: GITHUB.refresh, expiry }));
  await cli(['import', 'gemini'], JSON.stringify({ access_token: GEMINI.access, refresh_token: GEMINI.refresh, expiry }));
  await cli(['keys', 'set', 'openai'], OPENAI_KEY);
  await cli(['keys', 'set', 'groq'], GROQ_KEY);
  serve = spawn(process.execPath, [CLI, '--store', 'file', 'serve', '--json', '--tcp', '127.0.0.1:0'], { env: box.env, stdio: ['ignore', 'pipe', 'pipe'] });
  const line = await new Promise<string>((resolve, reject) => {
    let out = '';
    let err = '';
    serve.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      if (out.includes('\n')) resolve(out.slice(0, out.indexOf('\n')));
    });
    serve.stderr!.on('data', (d: Buffer) => (err += d.toString()));
    serve.once('exit', (code) => reject(new Error(`serve exited (${code}): ${err}`)));
  });
  daemon = JSON.parse(line) as typeof daemon;
}, 60_000);

afterAll(async () => {
  serve?.kill('SIGTERM');
  if (serve) await new Promise((resolve) => (serve.exitCode !== null ? resolve(null) : serve.once('exit', resolve)));
  await idp?.close();
  box?.cleanup();
  if (ws) fs.rmSync(ws, { recursive: true, force: true });
});

afterEach(() => {
  for (const child of children.splice(0)) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
});

interface Run {
  child: ChildProcess;
  exit: Promise<RunResult>;
  /** The first stdout line matching `re`, once it is printed. */
  line(re: RegExp): Promise<string>;
  stderrMatch(re: RegExp): Promise<RegExpExecArray>;
}

function watch(stream: NodeJS.ReadableStream, exit: Promise<RunResult>): (re: RegExp) => Promise<RegExpExecArray> {
  let text = '';
  stream.on('data', (d: Buffer | string) => (text += d.toString()));
  return (re) =>
    new Promise((resolve, reject) => {
      const check = (): boolean => {
        const m = re.exec(text);
        if (m) resolve(m);
        return m !== null;
      };
      if (check()) return;
      const onData = (): void => void (check() && stream.off('data', onData));
      stream.on('data', onData);
      void exit.then((r) => reject(new Error(`run exited (${r.code}) before ${re}: ${r.stdout}${r.stderr}`)));
    });
}

/** `credproxy run ARGS -- COMMAND...` from the workspace, as the host user would type it. */
function run(args: string[], command: string[], { stdin = 'close' as 'close' | 'keep', env = {} as NodeJS.ProcessEnv, cwd = '', extraFd = undefined as number | undefined } = {}): Run {
  // extraFd: an inheritable descriptor on / at fd 40, as a shell's `exec 40</` would leave open.
  const stdio: Array<'pipe' | 'ignore' | number> = ['pipe', 'pipe', 'pipe'];
  if (extraFd !== undefined) {
    while (stdio.length < 40) stdio.push('ignore');
    stdio.push(extraFd);
  }
  const child = spawn(process.execPath, [CLI, '--store', 'file', 'run', ...args, '--', ...command], { env: { ...box.env, ...env }, cwd: cwd || ws, stdio });
  children.push(child);
  const exit = finished(child, 60_000);
  if (stdin === 'close') child.stdin!.end();
  const out = watch(child.stdout!, exit);
  return { child, exit, line: async (re) => (await out(new RegExp(`^.*${re.source}.*$`, 'm')))[0], stderrMatch: watch(child.stderr!, exit) };
}

/** bwrap with the project (node, the CLI, the fixtures) read-only and the workspace writable. */
const bwrap = (): string[] => ['--sandbox', 'bwrap', '--mount', `${ROOT}:${ROOT}:ro`, '--mount', ws];
const node = (script: string, ...args: string[]): string[] => [process.execPath, path.join(FIXTURES, script), ...args];
const credproxy = (...args: string[]): string[] => [process.execPath, CLI, ...args];

async function grants(): Promise<Array<{ grant_id: string; label?: string }>> {
  const c = await RawClient.ready(daemon.control);
  try {
    return ((await c.request('grant_list')).data as { grants: Array<{ grant_id: string; label?: string }> }).grants;
  } finally {
    c.close();
  }
}

/** Handshakes over TCP with `capability`: true when the daemon accepts it. */
async function capabilityWorks(capability: string): Promise<boolean> {
  const c = await RawClient.connect(daemon.tcp);
  try {
    c.send({ v: 2, op: 'handshake', payload: { minVersion: 1, maxVersion: 2, capabilityToken: capability } });
    return ((await c.next()) as { ok: boolean }).ok;
  } finally {
    c.close();
  }
}

/** Waits until the daemon lists no grant labelled for `pid`'s run (its clean-up is asynchronous after a kill). */
async function grantGone(pid: number): Promise<void> {
  const deadline = Date.now() + 30_000; // a failure message rather than a hung test
  for (;;) {
    if (Date.now() > deadline) throw new Error(`the grant of run ${pid} is still listed`);
    if (!(await grants()).some((g) => g.label?.startsWith(`run ${pid} `))) return;
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

function daemonDirEntries(): string[] {
  return fs.readdirSync(path.dirname(daemon.control)).sort();
}

describe('credproxy run (no sandbox)', { timeout: 60_000 }, () => {
  it('the program gets its own socket with only the granted provider; the grant and socket end with it', async () => {
    const r = run(['--provider', 'github'], ['sh', '-c', `${credproxy('token', 'github').join(' ')} && ${credproxy('token', 'gemini').join(' ')}; echo "socket=$CREDPROXY_SOCKET llxprt=$LLXPRT_CREDENTIAL_SOCKET"; exit 7`]);
    const result = await r.exit;
    expect(result.code).toBe(7);
    expect(result.stdout.split('\n')[0]).toBe(GITHUB.access);
    expect(result.stderr).toContain('credproxy: Provider gemini is not allowed for this connection (UNAUTHORIZED)');
    const [, socket, llxprt] = /socket=(\S+) llxprt=(\S+)/.exec(result.stdout)!;
    expect(llxprt).toBe(socket);
    expect(path.dirname(path.dirname(socket!))).toBe(path.dirname(daemon.control));
    // Gone before run returned: the socket, its directory and the grant.
    expect(fs.existsSync(path.dirname(socket!))).toBe(false);
    expect((await grants()).filter((g) => g.label?.startsWith(`run ${r.child.pid} `))).toEqual([]);
  });

  it('prints nothing of its own; exit codes and deaths by signal come back as a shell reports them', async () => {
    expect(await run([], ['sh', '-c', 'exit 0']).exit).toMatchObject({ code: 0, stdout: '', stderr: '' });
    expect((await run([], ['sh', '-c', 'exit 42']).exit).code).toBe(42);
    expect((await run([], ['sh', '-c', 'kill -TERM $$']).exit).code).toBe(143);
    const missing = await run([], ['no-such-command-credproxy']).exit;
    expect(missing.code).toBe(127);
    expect(missing.stderr).toBe('credproxy: Cannot run no-such-command-credproxy: command not found\n');
  });

  it('forwards SIGTERM, SIGHUP and (off a terminal) SIGINT to the program', async () => {
    for (const signal of ['SIGTERM', 'SIGHUP', 'SIGINT'] as const) {
      const r = run([], node('run-hold.mjs'), { stdin: 'keep' });
      await r.line(/"socket"/);
      r.child.kill(signal);
      const result = await r.exit;
      expect(result.code).toBe(9);
      expect(result.stdout).toContain(signal);
    }
  });

  it('with --tcp: the capability comes on fd 3 only (never argv or environment) and works over TCP until the run ends', async () => {
    const r = run(['--provider', 'github', '--tcp'], node('run-hold.mjs'), { stdin: 'keep' });
    const { capability } = JSON.parse(await r.line(/"capability"/)) as { capability: string };
    expect(capability).toMatch(/^[0-9a-f]{64}$/);
    const pid = r.child.pid!;
    for (const file of ['cmdline', 'environ']) expect(fs.readFileSync(`/proc/${pid}/${file}`, 'utf8')).not.toContain(capability);
    expect(await capabilityWorks(capability)).toBe(true);
    r.child.stdin!.end();
    expect((await r.exit).code).toBe(0);
    expect(await capabilityWorks(capability)).toBe(false);
  });

  it('SIGKILL of the program: run reports 137 and its grant ends; SIGKILL of run itself ends the grant too', async () => {
    const a = run(['--provider', 'github', '--tcp'], node('run-hold.mjs'), { stdin: 'keep' });
    const capA = (JSON.parse(await a.line(/"capability"/)) as { capability: string }).capability;
    const program = Number(fs.readFileSync(`/proc/${a.child.pid}/task/${a.child.pid}/children`, 'utf8').trim().split(/\s+/)[0]);
    process.kill(program, 'SIGKILL');
    expect((await a.exit).code).toBe(137);
    expect(await capabilityWorks(capA)).toBe(false);

    const b = run(['--provider', 'github', '--tcp'], node('run-hold.mjs'), { stdin: 'keep' });
    const capB = (JSON.parse(await b.line(/"capability"/)) as { capability: string }).capability;
    expect(await capabilityWorks(capB)).toBe(true);
    b.child.kill('SIGKILL');
    await b.exit;
    await grantGone(b.child.pid!);
    expect(await capabilityWorks(capB)).toBe(false);
  });

  it('refuses bad options before touching the daemon, each with one clear line', async () => {
    const cases: Array<[string[], RegExp]> = [
      [['--provider', 'bad name'], /--provider "bad name"/],
      [['--allow', 'read,admin'], /--allow: unknown op group "admin"/],
      [['--sandbox', 'docker'], /--sandbox docker needs --image IMAGE/],
      [['--mount', '/tmp'], /need a sandbox/],
      [['--sandbox', 'bwrap', '--tcp', '--no-network'], /--tcp .* cannot be used with --no-network/],
      [['--daemon', path.join(box.dir, 'nothing.ctl')], /nothing\.ctl/],
    ];
    for (const [args, message] of cases) {
      const result = await run(args, ['true']).exit;
      expect(result.code, result.stderr).toBe(1);
      expect(result.stderr).toMatch(message);
      expect(result.stderr.trimEnd().split('\n')).toHaveLength(1);
    }
    const noDash = await runCli(['run', 'true'], { env: box.env });
    expect(noDash.stderr).toContain('Put -- before the command');
  });

  it('without a running daemon it starts one for the run (saying so with --verbose) and leaves nothing behind', async () => {
    const other = makeSandbox();
    try {
      fs.cpSync(box.env.CREDPROXY_HOME!, other.env.CREDPROXY_HOME!, { recursive: true });
      const child = spawn(process.execPath, [CLI, '--store', 'file', 'run', '--verbose', '--provider', 'github', '--', ...credproxy('token', 'github')], { env: other.env, cwd: ws, stdio: ['ignore', 'pipe', 'pipe'] });
      children.push(child);
      const result = await finished(child, 60_000);
      expect(result.code, result.stderr).toBe(0);
      expect(result.stdout).toBe(`${GITHUB.access}\n`);
      expect(result.stderr).toContain('no daemon running: started one for this run');
      // Its sockets, sandbox directory and (never written) current.json are all gone.
      expect(fs.readdirSync(path.join(other.dir, 'credproxy'))).toEqual([]);
    } finally {
      other.cleanup();
    }
  });
});

describe.skipIf(!needBwrap)('credproxy run --sandbox bwrap', { timeout: 90_000 }, () => {
  it('inside: the granted token and key; UNAUTHORIZED for the others, which no list shows; no admin op; no refresh token in any byte', async () => {
    const bytes = path.join(ws, `bytes-${randomBytes(4).toString('hex')}`);
    const requests = [
      { op: 'get_token', payload: { provider: 'github' } },
      { op: 'get_token', payload: { provider: 'gemini' } },
      { op: 'get_api_key', payload: { name: 'openai' } },
      { op: 'get_api_key', payload: { name: 'groq' } },
      { op: 'list_providers' },
      { op: 'list_api_keys' },
      { op: 'grant_list' },
      { op: 'refresh_token', payload: { provider: 'gemini' } },
    ];
    const r = run([...bwrap(), '--provider', 'github', '--key', 'openai'], node('llxprt-child.mjs', JSON.stringify(requests), bytes));
    const result = await r.exit;
    expect(result.code, result.stderr).toBe(0);
    const { replies, capability } = JSON.parse(result.stdout) as { replies: Array<Record<string, unknown>>; capability: string };
    expect(capability).toBe('none');
    expect(replies.map((x) => (x.ok ? 'ok' : x.code))).toEqual(['ok', 'UNAUTHORIZED', 'ok', 'UNAUTHORIZED', 'ok', 'ok', 'UNAUTHORIZED', 'UNAUTHORIZED']);
    expect(replies[0]!.data).toMatchObject({ access_token: GITHUB.access });
    expect(replies[0]!.data).not.toHaveProperty('refresh_token');
    expect(replies[2]!.data).toEqual({ key: OPENAI_KEY });
    expect(replies[4]!.data).toEqual({ providers: ['github'] });
    expect(replies[5]!.data).toEqual({ keys: ['openai'] });
    const received = Buffer.from(fs.readFileSync(bytes, 'utf8'), 'base64').toString('utf8');
    expect(received).toContain(GITHUB.access);
    for (const secret of [GITHUB.refresh, GEMINI.refresh, GEMINI.access, GROQ_KEY]) expect(received).not.toContain(secret);

    const viaCli = await run([...bwrap(), '--provider', 'github'], credproxy('token', 'github')).exit;
    expect(viaCli).toMatchObject({ code: 0, stdout: `${GITHUB.access}\n` });
  });

  it('inside: no host store, data directory, config, main or control socket, other sockets or refresh token anywhere', async () => {
    const data = box.env.CREDPROXY_HOME!;
    const paths = [data, ...fs.readdirSync(data).map((f) => path.join(data, f)), daemon.socket, daemon.control, path.join(path.dirname(daemon.control), 'current.json')];
    const scan = { paths, reversed: [...GITHUB.refresh].reverse().join(''), since: START };
    const r = run([...bwrap(), '--provider', 'github'], ['sh', '-c', `ls -A "$(dirname "$(dirname "$CREDPROXY_SOCKET")")"; exec ${node('sandbox-scan.mjs').join(' ')} '${JSON.stringify(scan)}'`]);
    const result = await r.exit;
    expect(result.code, result.stderr).toBe(0);
    const [listing, report] = result.stdout.trimEnd().split('\n');
    // Of the daemon's directory only this run's own subdirectory is there.
    expect(listing).toMatch(/^run-[0-9a-f]{12}$/);
    const { visible, hits, files } = JSON.parse(report!) as { visible: string[]; hits: string[]; files: number };
    expect(visible).toEqual([]);
    expect(hits).toEqual([]);
    expect(files).toBeGreaterThan(0); // the walk saw the files written since the test began (the workspace's)
    // The host has what the sandbox could not see (the scan would have found it there).
    expect(fs.readdirSync(data).length).toBeGreaterThan(0);
  });

  it('a device login started inside stores the full token in the HOST store', async () => {
    const r = run([...bwrap(), '--provider', 'myidp'], credproxy('login', 'myidp', '--flow', 'device'));
    const [, userCode] = await r.stderrMatch(/enter the code: (\S+)/);
    await idp.approveDevice(userCode!);
    const result = await r.exit;
    expect(result.code, result.stderr).toBe(0);
    expect(result.stdout).toMatch(/^Logged in to myidp \(bucket default\)/);
    for (const secret of [...idp.issued.refreshTokens, ...idp.issued.deviceCodes]) expect(result.stdout + result.stderr).not.toContain(secret);
    const status = JSON.parse((await cli(['status', '--json'])).stdout) as { tokens: Array<{ provider: string; hasRefreshToken?: boolean }> };
    expect(status.tokens.find((t) => t.provider === 'myidp')).toMatchObject({ hasRefreshToken: true });
  });

  it('two runs with different grants cannot reach each other\'s socket or use each other\'s capability', async () => {
    const a = run([...bwrap(), '--provider', 'github', '--tcp'], node('run-hold.mjs'), { stdin: 'keep' });
    const seenA = JSON.parse(await a.line(/"capability"/)) as { socket: string; capability: string };
    const probe = { paths: [seenA.socket, path.dirname(seenA.socket)], reversed: 'x', since: Date.now() + 3_600_000 };
    const requests = JSON.stringify([{ op: 'get_token', payload: { provider: 'github' } }]);
    const b = run([...bwrap(), '--provider', 'gemini'], [
      'sh',
      '-c',
      `${node('sandbox-scan.mjs').join(' ')} '${JSON.stringify(probe)}'; LLXPRT_CAPABILITY_FD=3 ${node('llxprt-child.mjs').join(' ')} '${requests}' 3<<EOF\n${seenA.capability}\nEOF`,
    ]);
    const result = await b.exit;
    const [scanLine, clientLine] = result.stdout.trimEnd().split('\n');
    expect((JSON.parse(scanLine!) as { visible: string[] }).visible).toEqual([]);
    // A's capability presented on B's own socket: refused at the handshake.
    expect((JSON.parse(clientLine!) as { replies: Array<Record<string, unknown>> }).replies).toEqual([expect.objectContaining({ op: 'handshake', ok: false, code: 'UNAUTHORIZED' })]);
    a.child.stdin!.end();
    expect((await a.exit).code).toBe(0);
  });

  it('git inside, with credproxy as its credential helper, gets the granted token (git credential fill)', async () => {
    const helper = `!${process.execPath} ${CLI} git-credential`;
    const child = spawn(process.execPath, [CLI, '--store', 'file', 'run', ...bwrap(), '--provider', 'github', '--', 'git', '-c', `credential.helper=${helper}`, 'credential', 'fill'], {
      env: box.env,
      cwd: ws,
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    children.push(child);
    const exit = finished(child, 60_000);
    child.stdin!.end('protocol=https\nhost=github.com\n\n');
    const result = await exit;
    expect(result.code, result.stderr).toBe(0);
    expect(result.stdout).toContain('username=x-access-token\n');
    expect(result.stdout).toContain(`password=${GITHUB.access}\n`);
  });

  it('inside: only the basic host variables and those named with --env; never credproxy\'s', async () => {
    const result = await run([...bwrap(), '--env', 'PASS_ME'], ['sh', '-c', 'echo "[$HOST_SECRET_VAR|$PASS_ME|$CREDPROXY_PASSPHRASE|$CREDPROXY_HOME|$HOME]"'], {
      env: { HOST_SECRET_VAR: 'should-not-pass', PASS_ME: 'passed' },
    }).exit;
    expect(result.code, result.stderr).toBe(0);
    expect(result.stdout).toBe(`[|passed|||${box.env.HOME}]\n`);
  });

  it('a descriptor run inherited (an open directory: a way around every mount) does not reach the program', async () => {
    const dirFd = fs.openSync('/', 'r');
    try {
      const r = run([...bwrap()], ['sh', '-c', 'ls /proc/self/fd; ls /proc/self/fd/40/ 2>&1 | head -1'], { extraFd: dirFd });
      const result = await r.exit;
      expect(result.code, result.stderr).toBe(0);
      expect(result.stdout.split('\n')).not.toContain('40');
      expect(result.stdout).toMatch(/No such file or directory/);
    } finally {
      fs.closeSync(dirFd);
    }
  });

  it('the program cannot type into the terminal (TIOCSTI, TIOCLINUX, also with high bits set) nor write sysctls', async () => {
    // perl is in every Debian system (perl-base); EPERM is the filter's answer (a pipe would say ENOTTY).
    const script = path.join(ws, 'ioctl.pl');
    fs.writeFileSync(script, 'for my $req (0x5412, 0x541C, 0x100005412) { my $buf = "x"; my $r = ioctl(STDIN, $req, $buf); print(($r ? "ok" : ($!{EPERM} ? "EPERM" : "other")), "\\n") }\n');
    const result = await run([...bwrap()], ['sh', '-c', `perl ${script}; (cat /proc/sys/kernel/printk_ratelimit > /proc/sys/kernel/printk_ratelimit) 2>/dev/null && echo sysctl-written || echo sysctl-refused`]).exit;
    expect(result.code, result.stderr).toBe(0);
    expect(result.stdout).toBe('EPERM\nEPERM\nEPERM\nsysctl-refused\n');
  });

  it('refuses to make the home directory, or a directory holding credproxy\'s data, writable', async () => {
    const fromHome = await run(['--sandbox', 'bwrap'], ['true'], { cwd: box.dir }).exit;
    expect(fromHome.code).toBe(1);
    expect(fromHome.stderr).toMatch(/credentials|would make your home directory writable/);
    const dataParent = await run(['--sandbox', 'bwrap', '--mount', box.dir], ['true']).exit;
    expect(dataParent.code).toBe(1);
    expect(dataParent.stderr).toMatch(/credentials|would make your home directory writable/);
  });

  it('hides what the DAEMON reports as its own, even when run\'s environment names another data directory', async () => {
    // run's environment points elsewhere; only daemon_status's protected_paths names the real data dir.
    const elsewhere = path.join(ws, 'not-the-daemons');
    const env = { CREDPROXY_HOME: elsewhere, XDG_RUNTIME_DIR: elsewhere, HOME: elsewhere };
    const result = await run(['--daemon', daemon.control, '--sandbox', 'bwrap', '--mount', `${box.env.CREDPROXY_HOME!}:/d:ro`], ['ls', '/d'], { env }).exit;
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(/is inside .*, which holds credentials; it cannot be mounted into a sandbox/);
    expect(result.stdout).toBe('');
  });

  it('an llxprt-code-style child: socket from LLXPRT_CREDENTIAL_SOCKET, with --tcp the token from fd 3 as 64 hex + newline', async () => {
    const requests = JSON.stringify([{ op: 'get_token', payload: { provider: 'github' } }]);
    for (const extra of [[], ['--tcp']]) {
      const result = await run([...bwrap(), '--provider', 'github', ...extra], ['env', '-u', 'CREDPROXY_SOCKET', '-u', 'CREDPROXY_CAPABILITY_FD', ...node('llxprt-child.mjs', requests)]).exit;
      expect(result.code, result.stderr).toBe(0);
      const out = JSON.parse(result.stdout) as { capability: string; replies: Array<Record<string, unknown>> };
      expect(out.capability).toBe(extra.length ? 'fd' : 'none');
      expect(out.replies).toEqual([expect.objectContaining({ ok: true, data: expect.objectContaining({ access_token: GITHUB.access }) })]);
    }
  });

  it('SIGKILL of run takes the sandbox and the grant with it; signals reach the program, not bwrap', async () => {
    const t = run([...bwrap(), '--provider', 'github'], node('run-hold.mjs'), { stdin: 'keep' });
    await t.line(/"socket"/);
    t.child.kill('SIGTERM');
    expect(await t.exit).toMatchObject({ code: 9, stdout: expect.stringContaining('SIGTERM') });

    const k = run([...bwrap(), '--provider', 'github', '--tcp'], node('run-hold.mjs'), { stdin: 'keep' });
    const { capability } = JSON.parse(await k.line(/"capability"/)) as { capability: string };
    const bwrapPid = Number(fs.readFileSync(`/proc/${k.child.pid}/task/${k.child.pid}/children`, 'utf8').trim().split(/\s+/)[0]);
    k.child.kill('SIGKILL');
    await k.exit;
    await grantGone(k.child.pid!);
    expect(await capabilityWorks(capability)).toBe(false);
    // bwrap (and with it the program: --die-with-parent) is gone, not left running.
    await new Promise<void>((resolve) => {
      const check = (): void => {
        try {
          process.kill(bwrapPid, 0);
          // A zombie until its reaper sees it; `State: Z` counts as gone.
          if (/State:\s+Z/.test(fs.readFileSync(`/proc/${bwrapPid}/status`, 'utf8'))) return resolve();
          setTimeout(check, 25);
        } catch {
          resolve();
        }
      };
      check();
    });
  });

  it('--no-network: no network inside; nothing of the run is left in the daemon\'s directory afterwards', async () => {
    const before = daemonDirEntries();
    const result = await run([...bwrap(), '--no-network'], ['sh', '-c', 'cat /proc/net/dev | tail -n +3 | cut -d: -f1 | tr -d " "']).exit;
    expect(result.code, result.stderr).toBe(0);
    expect(result.stdout.trim().split('\n')).toEqual(['lo']);
    expect(daemonDirEntries()).toEqual(before);
    expect(before.filter((e) => e.startsWith('run-'))).toEqual([]);
  });
});
