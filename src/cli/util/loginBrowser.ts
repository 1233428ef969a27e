/**
 * Opening the login URL in a browser — on the host only (a sandbox has no business launching one,
 * and its "browser" would not be the user's), and only when one can actually be shown.
 */
import { spawn } from 'node:child_process';
import { onPath } from './onPath.js';

export type BrowserOpener = (url: string) => void;

/**
 * How to open a URL on this machine: macOS `open`; elsewhere `xdg-open` when a graphical session
 * is there (DISPLAY or WAYLAND_DISPLAY set). Null when no browser can be shown (SSH, headless).
 */
export function findBrowserOpener(env: NodeJS.ProcessEnv = process.env, platform: NodeJS.Platform = process.platform): BrowserOpener | null {
  let command: string | null;
  if (platform === 'darwin') command = onPath('open', env) ?? '/usr/bin/open';
  else if (env.DISPLAY || env.WAYLAND_DISPLAY) command = onPath('xdg-open', env);
  else command = null;
  if (command === null) return null;
  const launcher = command;
  // The browser (often started by this call and long-lived) has no use for the store passphrase.
  const { CREDPROXY_PASSPHRASE: _passphrase, ...childEnv } = env;
  return (url) => {
    // Only web URLs, passed as one argv entry (never through a shell).
    let parsed: URL;
    try {
      parsed = new URL(url);
    } catch {
      return;
    }
    if (parsed.protocol !== 'https:' && parsed.protocol !== 'http:') return;
    try {
      const child = spawn(launcher, [parsed.href], { detached: true, stdio: 'ignore', env: childEnv });
      child.on('error', () => {}); // the URL is printed anyway
      child.unref();
    } catch {
      // same: the user still has the printed URL
    }
  };
}
