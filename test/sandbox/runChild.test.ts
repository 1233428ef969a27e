/**
 * runChild with real child processes: exit statuses as a shell reports them, a failed start, and
 * exactly what reaches descriptor 3. Children report through files (their stdio is inherited).
 * No signal is sent to the test process itself; forwarding is left to end-to-end tests.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { runChild, type ChildSpec } from '../../src/sandbox/runChild.js';
import { newCapability } from './helpers.js';

const NODE = process.execPath;
const ENV: NodeJS.ProcessEnv = { PATH: '/usr/bin:/bin', LANG: 'C' };

let dir: string;
let warnings: string[];

beforeEach(() => {
  dir = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), 'cprun-')));
  warnings = [];
});

afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

const spec = (command: string, args: string[], over: Partial<ChildSpec> = {}): ChildSpec => ({ command, args, env: ENV, warn: (line) => warnings.push(line), ...over });
const node = (script: string, ...args: string[]): ChildSpec => spec(NODE, ['-e', script, ...args]);
const report = (): unknown => JSON.parse(fs.readFileSync(path.join(dir, 'report.json'), 'utf8'));

/** A child that writes what it finds on descriptor 3 (or why it found nothing) to report.json. */
const READ_FD3 = `
const fs = require('fs');
let fd3;
try { fd3 = { data: fs.readFileSync(3, 'latin1') }; } catch (e) { fd3 = { error: e.code }; }
fs.writeFileSync(process.argv[1], JSON.stringify({ fd3, env: process.env }));
process.exit(Number(process.argv[2] ?? 0));
`;

/**
 * A shell that writes whether its descriptor 3 is open to the file fd3 (a node child cannot tell:
 * node itself takes the lowest free descriptors at start).
 */
const probeFd3 = (): ChildSpec => spec('/bin/sh', ['-c', '{ if (: <&3) 2>/dev/null; then echo open; else echo closed; fi; } > "$1"', 'probe', path.join(dir, 'fd3')]);

describe('runChild', () => {
  it.each([0, 1, 7, 255])('passes exit status %i through', async (code) => {
    expect(await runChild(node(`process.exit(${code})`))).toBe(code);
    expect(warnings).toEqual([]);
  });

  it('reports 128 + the signal number when the child is killed by a signal', async () => {
    expect(await runChild(node("process.kill(process.pid, 'SIGKILL')"))).toBe(128 + os.constants.signals.SIGKILL);
    expect(await runChild(spec('/bin/sh', ['-c', 'kill -TERM $$']))).toBe(128 + os.constants.signals.SIGTERM);
    expect(await runChild(spec('/bin/sh', ['-c', 'kill -HUP $$']))).toBe(128 + os.constants.signals.SIGHUP);
  });

  it('returns 127 for a command that does not exist, and says so', async () => {
    const missing = path.join(dir, 'no-such-command');
    expect(await runChild(spec(missing, []))).toBe(127);
    expect(warnings).toEqual([`Cannot run ${missing}: command not found`]);
    expect(await runChild(spec('credproxy-test-no-such-command', [], { env: { PATH: dir } }))).toBe(127);
    expect(warnings).toHaveLength(2);
  });

  it('returns 126 for a file that cannot be run', async () => {
    const file = path.join(dir, 'not-executable');
    fs.writeFileSync(file, '#!/bin/sh\nexit 0\n', { mode: 0o644 });
    expect(await runChild(spec(file, []))).toBe(126);
    expect(warnings).toEqual([`Cannot run ${file}: EACCES`]);
  });

  it('hands the child exactly the given string on descriptor 3, then EOF', async () => {
    const capability = newCapability();
    const out = path.join(dir, 'report.json');
    expect(await runChild({ ...node(READ_FD3, out, '4'), fd3: `${capability}\n` })).toBe(4);
    expect(report()).toMatchObject({ fd3: { data: `${capability}\n` } });
  });

  it('opens no descriptor 3 without one to give', async () => {
    expect(await runChild(probeFd3())).toBe(0);
    expect(fs.readFileSync(path.join(dir, 'fd3'), 'utf8')).toBe('closed\n');
  });

  it('gives the child exactly the environment asked for', async () => {
    const out = path.join(dir, 'report.json');
    const env = { PATH: '/usr/bin:/bin', ONLY: 'this' };
    expect(await runChild({ ...node(READ_FD3, out), env })).toBe(0);
    expect((report() as { env: unknown }).env).toEqual(env);
  });

  it('survives a child that exits without reading descriptor 3', async () => {
    expect(await runChild({ ...node('process.exit(3)'), fd3: `${newCapability()}\n` })).toBe(3);
  });

  it("reads a bwrap-style info descriptor to its end alongside descriptor 3", async () => {
    const capability = newCapability();
    const out = path.join(dir, 'report.json');
    // Stands in for bwrap: reports a pid on fd 4 in two writes, as bwrap may, then reads fd 3.
    const script = `
require('fs').writeSync(4, '{\\n    "child-pid": 123');
require('fs').writeSync(4, '45\\n}\\n');
require('fs').closeSync(4);
${READ_FD3}`;
    expect(await runChild({ ...node(script, out, '5'), fd3: `${capability}\n`, infoFd: 4 })).toBe(5);
    expect(report()).toMatchObject({ fd3: { data: `${capability}\n` } });
  });

  it('(the probe sees a descriptor 3 that is given)', async () => {
    expect(await runChild({ ...probeFd3(), fd3: 'x' })).toBe(0);
    expect(fs.readFileSync(path.join(dir, 'fd3'), 'utf8')).toBe('open\n');
  });

  it('leaves descriptor 3 closed when only the info descriptor is asked for', async () => {
    expect(await runChild({ ...probeFd3(), infoFd: 4 })).toBe(0);
    expect(fs.readFileSync(path.join(dir, 'fd3'), 'utf8')).toBe('closed\n');
  });

  it('removes its signal handlers when the child ends', async () => {
    const before = ['SIGINT', 'SIGTERM', 'SIGHUP'].map((s) => process.listenerCount(s));
    await runChild(node('process.exit(0)'));
    await runChild(spec(path.join(dir, 'missing'), []));
    expect(['SIGINT', 'SIGTERM', 'SIGHUP'].map((s) => process.listenerCount(s))).toEqual(before);
  });
});
