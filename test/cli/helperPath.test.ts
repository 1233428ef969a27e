/**
 * The helper path of the binary (helperPath.ts): the plain forms of `token` and `git-credential`
 * run without the command tree, and everything else reaches the full CLI, which parses it as usual.
 * Both are checked through the built binary, so a form the helper path takes wrongly shows up as a
 * different answer, not only as a different code path.
 */
import { describe, expect, it } from 'vitest';
import { helperPath } from '../../src/cli/helperPath.js';
import { sampleToken } from '../helpers/daemon.js';
import { runCli, useProxySandbox } from './cliHarness.js';

const fx = useProxySandbox();

describe('which command lines take the helper path', () => {
  const env = { CREDPROXY_SOCKET: '/run/x.sock' };
  it.each([
    [['token', 'github']],
    [['token', 'github', '--bucket', 'work']],
    [['token', '--bucket=work', 'github']],
    [['git-credential', 'get']],
    [['git-credential', 'get', '--provider', 'corp', '--host', 'git.corp.example', '--username', 'me']],
  ])('%j does', (args) => {
    expect(helperPath(args, env)).not.toBeNull();
  });

  it.each([
    [['token', 'github', '--no-daemon']],
    [['token', 'github', '--help']],
    [['token', '-h']],
    [['token']],
    [['token', 'a', 'b']],
    [['token', 'github', '--bucket']],
    [['token', 'github', '--bucket', '--other']],
    [['token', 'github', '--bogus', 'x']],
    [['--store', 'file', 'token', 'github']],
    [['git-credential', 'get', '--provider']],
    [['status']],
    [[]],
  ])('%j does not', (args) => {
    expect(helperPath(args, env)).toBeNull();
  });

  it('`token` without a proxy socket in the environment does not (it may use a host daemon or store)', () => {
    expect(helperPath(['token', 'github'], {})).toBeNull();
  });
});

describe('through the binary', () => {
  it('serves the named bucket with --bucket as two words and as --bucket=', async () => {
    await fx.daemon.store.saveToken('github', 'work', sampleToken({ access_token: 'gho-work-bucket' }));
    for (const args of [['token', 'github', '--bucket', 'work'], ['token', '--bucket=work', 'github']]) {
      const r = await runCli(args, { env: fx.box.env });
      expect(r.code, r.stderr).toBe(0);
      expect(r.stdout).toBe('gho-work-bucket\n');
    }
  });

  it('leaves help, unknown options and bad names to the full CLI, with its own messages', async () => {
    const help = await runCli(['token', 'github', '--help'], { env: fx.box.env });
    expect(help.code).toBe(0);
    expect(help.stdout).toMatch(/^Usage: credproxy token \[options\] <provider>/);
    const unknown = await runCli(['token', 'github', '--bogus'], { env: fx.box.env });
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toBe("credproxy: unknown option '--bogus'\n");
    const badName = await runCli(['token', 'no such'], { env: fx.box.env });
    expect(badName.code).toBe(1);
    expect(badName.stderr).toMatch(/^credproxy: .*provider/);
  });

  it('git-credential get answers only its host, through the helper path', async () => {
    const answer = await runCli(['git-credential', 'get'], { env: fx.box.env, input: 'protocol=https\nhost=github.com\n\n' });
    expect(answer.code, answer.stderr).toBe(0);
    expect(answer.stdout).toContain(`password=${fx.token}\n`);
    const other = await runCli(['git-credential', 'get'], { env: fx.box.env, input: 'protocol=https\nhost=example.com\n\n' });
    expect(other).toMatchObject({ code: 0, stdout: '' });
  });
});
