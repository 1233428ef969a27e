/** Starts real daemons on real sockets in a private temp directory for tests. */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { startDaemon, type Daemon, type StartOptions } from '../../src/server/daemon.js';
import { MemoryStore } from '../../src/store/memory.js';
import type { StoredToken } from '../../src/store/types.js';

/** A distinctive refresh token: no byte sequence like it may ever reach a client. */
export const HOST_REFRESH_TOKEN = 'rt-HOST-ONLY-5f1c9a7e2b4d4c0e8a3f6b1d9e7c2a4f';

export function tempDir(prefix = 'cp-'): string {
  // Short base: socket paths must stay under 100 bytes.
  return fs.mkdtempSync(path.join(os.tmpdir(), prefix));
}

export function sampleToken(overrides: Partial<StoredToken> = {}): StoredToken {
  return {
    access_token: `at-${Math.random().toString(16).slice(2)}`,
    expiry: Math.floor(Date.now() / 1000) + 3600,
    token_type: 'Bearer',
    refresh_token: HOST_REFRESH_TOKEN,
    scope: 'read write',
    id_token: 'idt-secret-never-served',
    ...overrides,
  };
}

export interface TestDaemon {
  daemon: Daemon;
  store: MemoryStore;
  dir: string;
  socketPath: string;
  stop(): Promise<void>;
}

export async function startTestDaemon(options: Partial<StartOptions> = {}): Promise<TestDaemon> {
  const dir = tempDir();
  const store = new MemoryStore();
  const daemon = await startDaemon({ tokens: store, keys: store, socketPath: path.join(dir, 'd.sock'), audit: 'off', ...options });
  return {
    daemon,
    store,
    dir,
    socketPath: daemon.socketPath,
    async stop() {
      await daemon.stop();
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}
