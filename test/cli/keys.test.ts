/** `credproxy keys` against the real CLI and a real file store. */
import { randomBytes } from 'node:crypto';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { expectOneErrorLine, makeSandbox, runCli, type RunResult, type Sandbox } from './cliHarness.js';

let box: Sandbox;
beforeEach(() => (box = makeSandbox()));
afterEach(() => box.cleanup());

const cli = (args: string[], input?: string): Promise<RunResult> => runCli([...args, '--store', 'file'], { env: box.env, input });

describe('keys set / list / rm', () => {
  it('stores a value from stdin without echoing it, lists names only, and removes', async () => {
    const value = `sk-${randomBytes(16).toString('hex')}`;
    const set = await cli(['keys', 'set', 'openai'], `${value}\n`);
    expect(set.code, set.stderr).toBe(0);
    expect(set.stdout).toBe('Stored key openai\n');
    expect(set.stdout + set.stderr).not.toContain(value);
    expect((await cli(['keys', 'set', 'groq'], 'gsk-1')).code).toBe(0);

    const list = await cli(['keys', 'list']);
    expect(list.code, list.stderr).toBe(0);
    expect(list.stdout).toBe('groq\nopenai\n');
    expect(list.stdout + list.stderr).not.toContain(value);

    const status = await cli(['status']);
    expect(status.stdout).toContain('Keys:\n  groq\n  openai\n');
    expect(status.stdout + status.stderr).not.toContain(value);

    const rm = await cli(['keys', 'rm', 'openai']);
    expect(rm.code, rm.stderr).toBe(0);
    expect(rm.stdout).toBe('Removed key openai\n');
    expect((await cli(['keys', 'list'])).stdout).toBe('groq\n');
    expect(expectOneErrorLine(await cli(['keys', 'rm', 'openai']))).toBe('credproxy: No key named openai');
  });

  it('refuses an empty value, a multi-line value, a missing stdin and a bad name', async () => {
    expect(expectOneErrorLine(await cli(['keys', 'set', 'openai'], ''))).toBe(
      'credproxy: No key value on stdin; pipe it in, e.g. credproxy keys set openai < FILE',
    );
    expect(expectOneErrorLine(await cli(['keys', 'set', 'openai'], '\n'))).toContain('No key value on stdin');
    expect(expectOneErrorLine(await cli(['keys', 'set', 'openai'], 'line1\nline2\n'))).toBe(
      'credproxy: The key value on stdin spans several lines; pipe in exactly one line',
    );
    expect(expectOneErrorLine(await cli(['keys', 'set', 'bad@name'], 'v'))).toBe(
      'credproxy: Invalid key name "bad@name": must match ^[A-Za-z0-9._-]{1,64}$',
    );
    expect((await cli(['keys', 'list'])).stdout).toBe('');
  });

  it('never takes the value from argv', async () => {
    const r = await cli(['keys', 'set', 'openai', 'sk-on-the-command-line']);
    expect(expectOneErrorLine(r)).toContain('too many arguments');
    expect((await cli(['keys', 'list'])).stdout).toBe('');
  });
});
