/**
 * readCapabilityFromEnv reads a real inherited descriptor once per process, so each case runs in a
 * fresh child process. The child loads src/client/capability.ts transpiled on the fly, so these
 * tests need no build.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { transpileSources } from './transpile.js';

const TOKEN = '0123456789abcdef'.repeat(4);

interface ChildReport {
  first?: string | null;
  firstError?: string;
  second?: string | null;
  secondError?: string;
  envAfter: string | null;
  fdOpen: boolean;
}

const CHILD = `
import fs from 'node:fs';
import { readCapabilityFromEnv } from './client/capability.js';
const out = {};
try { out.first = readCapabilityFromEnv() ?? null; } catch (e) { out.firstError = e.message; }
out.envAfter = process.env.CREDPROXY_CAPABILITY_FD ?? null;
try { out.second = readCapabilityFromEnv() ?? null; } catch (e) { out.secondError = e.message; }
try { fs.fstatSync(3); out.fdOpen = true; } catch { out.fdOpen = false; }
process.stdout.write(JSON.stringify(out));
`;

let dir: string;

beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cpx-cap-'));
  transpileSources(dir, ['client/capability.ts']);
  fs.writeFileSync(path.join(dir, 'child.mjs'), CHILD);
});

afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

function collect(child: ReturnType<typeof spawn>): Promise<ChildReport> {
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  return new Promise((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (code) => {
      if (code !== 0) reject(new Error(`child exited ${code}: ${stderr}`));
      else resolve(JSON.parse(stdout) as ChildReport);
    });
  });
}

/** Runs the child with `content` written to an extra stdio pipe on fd 3 (how a Node launcher does it). */
function runWithNodePipe(content: string, fdValue: string | null = '3'): Promise<ChildReport> {
  const env: NodeJS.ProcessEnv = { ...process.env };
  delete env.CREDPROXY_CAPABILITY_FD;
  if (fdValue !== null) env.CREDPROXY_CAPABILITY_FD = fdValue;
  const child = spawn(process.execPath, ['child.mjs'], { cwd: dir, env, stdio: ['ignore', 'pipe', 'pipe', 'pipe'] });
  const report = collect(child);
  const channel = child.stdio[3] as Writable;
  // A child that never reads fd 3 exits with the data unread, which resets the socket pair.
  channel.on('error', () => {});
  channel.end(content);
  return report;
}

/** Runs the child with `content` arriving on fd 3 through a pipe(2) made by the shell. */
function runWithShellPipe(content: string): Promise<ChildReport> {
  const env: NodeJS.ProcessEnv = { ...process.env, CREDPROXY_CAPABILITY_FD: '3' };
  const child = spawn('sh', ['-c', `cat | "${process.execPath}" child.mjs 3<&0 0</dev/null`], { cwd: dir, env, stdio: ['pipe', 'pipe', 'pipe'] });
  const report = collect(child);
  child.stdin!.end(content);
  return report;
}

describe('readCapabilityFromEnv', () => {
  it('reads the token from an inherited pipe once, closes it and clears the variable', async () => {
    const report = await runWithNodePipe(`${TOKEN}\n`);
    expect(report).toEqual({ first: TOKEN, second: TOKEN, envAfter: null, fdOpen: false });
  });

  it('reads from a real pipe(2) descriptor', async () => {
    const report = await runWithShellPipe(`  ${TOKEN}\n`);
    expect(report).toEqual({ first: TOKEN, second: TOKEN, envAfter: null, fdOpen: false });
  });

  it('returns undefined when the variable is not set, leaving the descriptor alone', async () => {
    const report = await runWithNodePipe(TOKEN, null);
    expect(report).toEqual({ first: null, second: null, envAfter: null, fdOpen: true });
  });

  it('rejects a malformed token without echoing it, and keeps rejecting', async () => {
    const secret = 'SECRET-VALUE-' + 'F'.repeat(51);
    const report = await runWithNodePipe(secret);
    expect(report.firstError).toMatch(/CREDPROXY_CAPABILITY_FD=3 is not a valid capability token \(expected 64 lowercase hex characters\)/);
    expect(report.firstError).not.toContain('SECRET');
    expect(report.secondError).toBe(report.firstError);
    expect(report.envAfter).toBeNull();
    expect(report.fdOpen).toBe(false);
  });

  it('rejects uppercase hex', async () => {
    const report = await runWithNodePipe(TOKEN.toUpperCase());
    expect(report.firstError).toMatch(/64 lowercase hex/);
  });

  it('reports a descriptor that is not open', async () => {
    const report = await runWithNodePipe(TOKEN, '57');
    expect(report.firstError).toBe('Cannot read the capability token from CREDPROXY_CAPABILITY_FD=57: EBADF');
  });

  it('rejects a value that is not a descriptor number', async () => {
    const report = await runWithNodePipe(TOKEN, '/dev/fd/3');
    expect(report.firstError).toMatch(/must be a file descriptor number/);
    expect(report.fdOpen).toBe(true);
  });
});
