/** The random key file that encrypts the file store when no passphrase is configured. */
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { fsyncDir } from './atomicWrite.js';
import { KEY_LENGTH } from './crypto.js';
import { StoreError } from './types.js';

/**
 * Creates `keyPath` with 32 random bytes unless it exists. The key is written to an O_EXCL 0600
 * temp file and hard-linked into place, so the key file is never world-readable, never partially
 * written, and two processes racing to create it agree on one key (link fails with EEXIST).
 */
export function ensureKeyFile(keyPath: string): void {
  if (fs.existsSync(keyPath)) return;
  const temp = `${keyPath}.${process.pid}.${randomBytes(6).toString('hex')}.new`;
  const fd = fs.openSync(temp, fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_EXCL, 0o600);
  try {
    fs.writeFileSync(fd, randomBytes(KEY_LENGTH));
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
  try {
    fs.linkSync(temp, keyPath);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
  } finally {
    fs.rmSync(temp, { force: true });
  }
  fsyncDir(path.dirname(keyPath));
}

/** Reads the key; null when the file does not exist. */
export function readKeyFile(keyPath: string): Buffer | null {
  let key: Buffer;
  try {
    key = fs.readFileSync(keyPath);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw new StoreError('io', `Cannot read the key file ${keyPath}: ${(err as NodeJS.ErrnoException).code ?? 'error'}`);
  }
  if (key.length !== KEY_LENGTH) {
    throw new StoreError('corrupt', `The key file ${keyPath} is damaged (${key.length} bytes, expected ${KEY_LENGTH})`);
  }
  // Someone loosened it (a copy, a chmod): take it back to owner-only.
  const mode = fs.statSync(keyPath).mode;
  if ((mode & 0o077) !== 0) fs.chmodSync(keyPath, 0o600);
  return key;
}
