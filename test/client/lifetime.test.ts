/**
 * Process lifetime with a real client in a child process: an idle connection must not keep a
 * finished process alive for the 5-minute idle timeout, while a pending request must keep it alive
 * until the reply arrives. The child runs the client transpiled on the fly (no build needed).
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { FrameServer } from '../helpers/frameServer.js';
import { transpileSources } from './transpile.js';

// Deliberately no client.close(): the process must still exit once nothing is pending.
const CHILD = `
import { ProxyClient } from './client/ProxyClient.js';
const client = new ProxyClient({ socketPath: process.argv[2], requestTimeoutMs: Number(process.argv[3]) });
const data = await client.request('list_providers', {});
process.stdout.write(JSON.stringify(data));
`;

let dir: string;
let server: FrameServer | undefined;

beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cpx-life-'));
  transpileSources(dir, ['abort.ts', 'client/ProxyClient.ts', 'client/capability.ts', 'protocol/errors.ts', 'protocol/framing.ts']);
  fs.writeFileSync(path.join(dir, 'child.mjs'), CHILD);
});

afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

afterEach(async () => {
  await server?.close();
  server = undefined;
});

/** Runs the child; resolves with its stdout and how long it lived, or rejects if it outlives `limitMs`. */
function runChild(socketPath: string, requestTimeoutMs: number, limitMs: number): Promise<{ stdout: string; ms: number }> {
  const started = Date.now();
  const child = spawn(process.execPath, ['child.mjs', socketPath, String(requestTimeoutMs)], { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`child still running after ${limitMs} ms`));
    }, limitMs);
    child.once('close', (code) => {
      clearTimeout(timer);
      if (code === 0) resolve({ stdout, ms: Date.now() - started });
      else reject(new Error(`child exited ${code}: ${stderr}`));
    });
  });
}

describe('ProxyClient process lifetime', () => {
  it('lets the process exit once no request is pending, without close()', async () => {
    server = await FrameServer.start({ onRequest: (f, c) => c.reply(f, { providers: ['p'] }) });
    const { stdout } = await runChild(server.socketPath, 30_000, 10_000);
    expect(JSON.parse(stdout)).toEqual({ providers: ['p'] });
    const conn = server.connections[0]!;
    await conn.waitClosed();
  });

  // Without a request timer (timeout disabled) only the socket itself can keep the process alive.
  it('keeps the process alive while a request is pending', async () => {
    server = await FrameServer.start({ onRequest: (f, c) => setTimeout(() => c.reply(f, { providers: ['late'] }), 700) });
    const { stdout, ms } = await runChild(server.socketPath, 0, 10_000);
    expect(JSON.parse(stdout)).toEqual({ providers: ['late'] });
    expect(ms).toBeGreaterThanOrEqual(700);
  });
});
