/** The browser opener of `credproxy login` on the host. */
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { findBrowserOpener } from '../../src/cli/util/loginBrowser.js';

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

async function waitFor(check: () => boolean, ms = 5_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe('findBrowserOpener', () => {
  it('does not hand CREDPROXY_PASSPHRASE to the browser it launches', async () => {
    if (process.platform !== 'linux') return;
    const dir = mkdtempSync(path.join(os.tmpdir(), 'cp-browser-'));
    dirs.push(dir);
    const bin = path.join(dir, 'bin');
    mkdirSync(bin);
    const dump = path.join(dir, 'env.txt');
    writeFileSync(path.join(bin, 'xdg-open'), `#!/bin/sh\nenv > '${dump}.tmp' && mv '${dump}.tmp' '${dump}'\n`);
    chmodSync(path.join(bin, 'xdg-open'), 0o755);
    const open = findBrowserOpener({ DISPLAY: ':99', PATH: `${bin}${path.delimiter}/usr/bin:/bin`, CREDPROXY_PASSPHRASE: 'pp-do-not-leak' }, 'linux');
    expect(open).not.toBeNull();
    open!('https://idp.test/authorize?state=s');
    await waitFor(() => existsSync(dump));
    const env = readFileSync(dump, 'utf8');
    expect(env).toContain('DISPLAY=:99');
    expect(env).not.toContain('pp-do-not-leak');
  });
});
