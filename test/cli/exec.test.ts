/**
 * `credproxy exec` against a real daemon: real child processes that look at their own environment
 * and at /proc while they run, exit codes and signals passed through.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { closeSync, existsSync, openSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { beforeEach, describe, expect, it } from 'vitest';
import { hashCapability, newCapability } from '../../src/auth/capability.js';
import { parsePolicy } from '../../src/auth/policy.js';
import { sampleToken, startTestDaemon } from '../helpers/daemon.js';
import { CLI, expectOneErrorLine, finished, runCli, spawnCli, type RunResult, useProxySandbox } from './cliHarness.js';

const NODE = process.execPath;
const sha256 = (value: string): string => createHash('sha256').update(value).digest('hex');

/**
 * A child that reports, without printing any value: the hash of each named variable, whether the
 * value shows up in its own command line or in its parent's (credproxy exec's) command line or
 * initial environment, and what its open descriptors point to.
 */
const INSPECT = `
const fs = require('fs');
const crypto = require('crypto');
const read = (file) => fs.readFileSync(file, 'latin1');
const own = read('/proc/self/cmdline');
const parentArgv = read('/proc/' + process.ppid + '/cmdline');
const parentEnviron = read('/proc/' + process.ppid + '/environ');
const report = {};
for (const name of process.argv.slice(1)) {
  const value = process.env[name];
  report[name] = value === undefined ? null : {
    sha256: crypto.createHash('sha256').update(value).digest('hex'),
    inOwnArgv: own.includes(value),
    inParentArgv: parentArgv.includes(value),
    inParentEnviron: parentEnviron.includes(value),
  };
}
const fds = fs.readdirSync('/proc/self/fd').map((fd) => { try { return fs.readlinkSync('/proc/self/fd/' + fd); } catch { return null; } });
report.$ = { capabilityFdVar: process.env.CREDPROXY_CAPABILITY_FD ?? null, fds, parentIsExec: parentArgv.split('\\0').includes('exec') };
process.stdout.write(JSON.stringify(report));
`;

const fx = useProxySandbox();
let apiKey: string;

beforeEach(async () => {
  apiKey = `sk-${randomBytes(16).toString('hex')}`;
  await fx.daemon.store.setKey('openai', apiKey);
});

const exec = (args: string[], env: NodeJS.ProcessEnv = fx.box.env): Promise<RunResult> => runCli(['exec', ...args], { env });

interface Seen {
  sha256: string;
  inOwnArgv: boolean;
  inParentArgv: boolean;
  inParentEnviron: boolean;
}
type Report = Record<string, Seen | null> & { $: { capabilityFdVar: string | null; fds: Array<string | null>; parentIsExec: boolean } };

const unseen = (value: string): Seen => ({ sha256: sha256(value), inOwnArgv: false, inParentArgv: false, inParentEnviron: false });

describe('values reach the child through its environment only', () => {
  it('a token in VAR: the child has it, neither its argv nor credproxy exec’s argv nor environ shows it', async () => {
    const r = await exec(['--provider', 'github', '--env', 'GH_TOKEN', '--', NODE, '-e', INSPECT, 'GH_TOKEN']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const report = JSON.parse(r.stdout) as Report;
    expect(report.GH_TOKEN).toEqual(unseen(fx.token));
    expect(report.$.parentIsExec).toBe(true);
    expect(r.stdout).not.toContain(fx.token);
  });

  it('several variables from tokens and keys, a bucket, and one value in two variables', async () => {
    const work = `tok-${randomBytes(8).toString('hex')}`;
    await fx.daemon.store.saveToken('github', 'work', sampleToken({ access_token: work }));
    const r = await exec([
      '--provider', 'github', '--env', 'GH_TOKEN', '--env', 'GITHUB_TOKEN',
      '--provider', 'github', '--bucket', 'work', '--env', 'WORK_TOKEN',
      '--key', 'openai', '--env', 'OPENAI_API_KEY',
      '--', NODE, '-e', INSPECT, 'GH_TOKEN', 'GITHUB_TOKEN', 'WORK_TOKEN', 'OPENAI_API_KEY', 'NOT_SET',
    ]);
    expect(r.code, r.stderr).toBe(0);
    const report = JSON.parse(r.stdout) as Report;
    expect(report.GH_TOKEN).toEqual(unseen(fx.token));
    expect(report.GITHUB_TOKEN).toEqual(unseen(fx.token));
    expect(report.WORK_TOKEN).toEqual(unseen(work));
    expect(report.OPENAI_API_KEY).toEqual(unseen(apiKey));
    expect(report.NOT_SET).toBeNull();
  });

  it('the rest of the environment is passed on, and the command line after -- is the child’s own', async () => {
    const env = { ...fx.box.env, KEEP_ME: 'kept' };
    const r = await exec(['--provider', 'github', '--env', 'T', '--', 'sh', '-c', 'printf "%s|" "$KEEP_ME" "$@"', 'sh', '--env', 'x', '--'], env);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toBe('kept|--env|x|--|');
  });

  it('with a capability on CREDPROXY_CAPABILITY_FD: granted, and the child gets neither the variable nor the descriptor', async () => {
    const capability = newCapability();
    const restricted = await startTestDaemon({
      policy: parsePolicy(
        JSON.stringify({ capabilities: [{ id: 'exec-box', tokenSha256: hashCapability(capability).toString('hex'), providers: { github: '*' }, keys: [], ops: ['read'] }] }),
      ),
    });
    try {
      await restricted.store.saveToken('github', 'default', sampleToken({ access_token: fx.token }));
      // A file rather than a pipe, so that an inherited copy would be recognisable in the child's /proc/self/fd.
      const capabilityFile = path.join(fx.box.dir, 'capability');
      writeFileSync(capabilityFile, `${capability}\n`);
      const fd = openSync(capabilityFile, 'r');
      const env = { ...fx.box.env, CREDPROXY_SOCKET: restricted.socketPath, CREDPROXY_CAPABILITY_FD: '3' };
      const child = spawn(NODE, [CLI, 'exec', '--provider', 'github', '--env', 'GH_TOKEN', '--', NODE, '-e', INSPECT, 'GH_TOKEN'], {
        env,
        stdio: ['pipe', 'pipe', 'pipe', fd],
      });
      closeSync(fd);
      const done = finished(child);
      child.stdin!.end();
      const r = await done;
      expect(r.code, r.stderr).toBe(0);
      const report = JSON.parse(r.stdout) as Report;
      expect(report.GH_TOKEN).toEqual(unseen(fx.token));
      expect(report.$.capabilityFdVar).toBeNull();
      expect(report.$.fds.length).toBeGreaterThan(3);
      expect(report.$.fds).not.toContain(capabilityFile);
      expect(r.stdout).not.toContain(capability);
    } finally {
      await restricted.stop();
    }
  });
});

describe('exit status', () => {
  it('is the child’s exit code', async () => {
    expect((await exec(['--provider', 'github', '--env', 'T', '--', NODE, '-e', 'process.exit(7)'])).code).toBe(7);
    expect((await exec(['--provider', 'github', '--env', 'T', '--', NODE, '-e', 'process.exit(0)'])).code).toBe(0);
  });

  it('is 128 + N when the child is killed by signal N', async () => {
    const term = await exec(['--provider', 'github', '--env', 'T', '--', NODE, '-e', 'process.kill(process.pid, "SIGTERM"); setInterval(() => {}, 1000)']);
    expect(term).toMatchObject({ code: 143, signal: null, stderr: '' });
    const kill = await exec(['--provider', 'github', '--env', 'T', '--', NODE, '-e', 'process.kill(process.pid, "SIGKILL")']);
    expect(kill.code).toBe(137);
  });

  it('127 with one line when the command does not exist', async () => {
    const r = await exec(['--provider', 'github', '--env', 'T', '--', path.join(fx.box.dir, 'no-such-command')]);
    expect(r.code).toBe(127);
    expect(r.stderr).toBe(`credproxy: Cannot run ${path.join(fx.box.dir, 'no-such-command')}: command not found\n`);
  });

  it('126 when it exists but cannot be run', async () => {
    expect((await exec(['--provider', 'github', '--env', 'T', '--', fx.box.dir])).code).toBe(126);
  });
});

describe('signals sent to credproxy exec reach the child', () => {
  /** Resolves once the child has printed "ready": its handlers are installed, and so are credproxy's. */
  function readyLine(child: ChildProcess): Promise<void> {
    return new Promise((resolve) => {
      let out = '';
      child.stdout!.on('data', (d: Buffer) => {
        out += d.toString();
        if (out.includes('ready\n')) resolve();
      });
    });
  }

  const HANDLES = `
for (const [sig, code] of [['SIGINT', 41], ['SIGTERM', 42], ['SIGHUP', 43]]) process.on(sig, () => { console.log('got ' + sig); process.exit(code); });
setInterval(() => {}, 1000);
console.log('ready');
`;

  for (const [signal, code] of [['SIGINT', 41], ['SIGTERM', 42], ['SIGHUP', 43]] as const) {
    it(`${signal} is forwarded; credproxy exits with the child's code`, async () => {
      const child = spawnCli(['exec', '--provider', 'github', '--env', 'T', '--', NODE, '-e', HANDLES], fx.box.env);
      child.stdin!.end();
      const ready = readyLine(child);
      const done = finished(child);
      await ready;
      child.kill(signal);
      const r = await done;
      expect(r).toMatchObject({ code, signal: null, stdout: `ready\ngot ${signal}\n`, stderr: '' });
    });
  }

  it('a child without a handler dies of the forwarded signal: 130 for SIGINT', async () => {
    const child = spawnCli(['exec', '--provider', 'github', '--env', 'T', '--', NODE, '-e', 'setInterval(() => {}, 1000); console.log("ready")'], fx.box.env);
    child.stdin!.end();
    const ready = readyLine(child);
    const done = finished(child);
    await ready;
    child.kill('SIGINT');
    expect(await done).toMatchObject({ code: 130, signal: null });
  });
});

describe('errors: one line, non-zero, and the command does not run', () => {
  const marker = (): string => path.join(fx.box.dir, 'ran');
  const touch = (): string[] => [NODE, '-e', `require('fs').writeFileSync(${JSON.stringify(marker())}, 'x')`];

  async function refused(args: string[], env: NodeJS.ProcessEnv = fx.box.env): Promise<string> {
    const r = await exec(args, env);
    const line = expectOneErrorLine(r);
    expect(r.stdout).toBe('');
    expect(existsSync(marker())).toBe(false);
    expect(r.stderr).not.toContain(fx.token);
    return line;
  }

  it('the marker command does run when nothing is wrong', async () => {
    expect((await exec(['--provider', 'github', '--env', 'T', '--', ...touch()])).code).toBe(0);
    expect(existsSync(marker())).toBe(true);
  });

  it('no socket in the environment', async () => {
    const env = { ...fx.box.env };
    delete env.CREDPROXY_SOCKET;
    expect(await refused(['--provider', 'github', '--env', 'T', '--', ...touch()], env)).toBe(
      'credproxy: exec gets credentials from the credproxy daemon: set CREDPROXY_SOCKET (or LLXPRT_CREDENTIAL_SOCKET) to its socket',
    );
  });

  it('a provider outside the grant gets the daemon’s UNAUTHORIZED message', async () => {
    const restricted = await startTestDaemon({ policy: parsePolicy(JSON.stringify({ default: { providers: { anthropic: '*' }, keys: '*', ops: ['read'] } })) });
    try {
      await restricted.store.saveToken('github', 'default', sampleToken({ access_token: fx.token }));
      const env = { ...fx.box.env, CREDPROXY_SOCKET: restricted.socketPath };
      expect(await refused(['--provider', 'github', '--env', 'T', '--', ...touch()], env)).toBe(
        'credproxy: Provider github is not allowed for this connection (UNAUTHORIZED)',
      );
    } finally {
      await restricted.stop();
    }
  });

  it('nothing stored', async () => {
    expect(await refused(['--provider', 'github', '--bucket', 'nope', '--env', 'T', '--', ...touch()])).toBe('credproxy: No token for github/nope');
    expect(await refused(['--key', 'missing', '--env', 'K', '--', ...touch()])).toBe('credproxy: No API key named missing');
  });

  it('a value with a NUL byte, which no environment can hold, is refused without showing it', async () => {
    await fx.daemon.store.setKey('nul', 'before\0after');
    const line = await refused(['--key', 'nul', '--env', 'K', '--', ...touch()]);
    expect(line).toBe('credproxy: The API key nul contains a NUL byte');
  });

  it('options out of order or incomplete', async () => {
    const cmd = ['--', ...touch()];
    expect(await refused(['--env', 'T', '--provider', 'github', ...cmd])).toBe('credproxy: --env T must follow --provider or --key');
    expect(await refused(['--provider', 'github', ...cmd])).toBe('credproxy: --provider github needs an --env VAR after it');
    expect(await refused(['--key', 'openai', '--provider', 'github', '--env', 'T', ...cmd])).toBe('credproxy: --key openai needs an --env VAR after it');
    expect(await refused(['--bucket', 'work', '--provider', 'github', '--env', 'T', ...cmd])).toBe('credproxy: --bucket work must follow --provider P (before its --env)');
    expect(await refused(['--key', 'openai', '--bucket', 'work', '--env', 'T', ...cmd])).toBe('credproxy: --bucket work must follow --provider P (before its --env)');
    expect(await refused(['--provider', 'github', '--env', 'T', '--env', 'T', ...cmd])).toBe('credproxy: --env T is given twice');
    expect(await refused(['--provider', 'github', '--env', '1X', ...cmd])).toBe(
      'credproxy: --env "1X" is not a variable name (letters, digits and _, not starting with a digit)',
    );
    expect(await refused(cmd)).toBe('credproxy: exec needs at least one --provider P --env VAR or --key NAME --env VAR');
    expect(await refused(['--provider', 'bad/name', '--env', 'T', ...cmd])).toBe('credproxy: Invalid provider name "bad/name": must match ^[A-Za-z0-9._@-]{1,64}$');
  });

  it('the command must come after --', async () => {
    expect(await refused(['--provider', 'github', '--env', 'T', NODE, 'x.js'])).toBe(
      'credproxy: Put -- before the command: credproxy exec --provider P [--bucket B] --env VAR [--key NAME --env VAR]... -- CMD [ARGS...]',
    );
    expect(await refused(['--provider', 'github', '--env', 'T', 'stray', '--', ...touch()])).toContain('credproxy: Put -- before the command');
  });
});
