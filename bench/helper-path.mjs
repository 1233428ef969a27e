// The helper path: wall time of `credproxy token P` through the proxy (a sandbox's apiKeyHelper) and
// of `git credential fill` through `credproxy git-credential` (every git operation), against
// `node -e 0` on the same machine. Each iteration runs the three back to back; the figure is the
// median of the per-iteration ratios after one warm-up of each.
// Usage: node bench/helper-path.mjs [N]   (after `npm run build`)
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { machine } from './lib/machine.mjs';
import { CLI, scratch, seedToken, startServer } from './lib/servers.mjs';
import { median, ratioSummary, round } from './lib/stats.mjs';

function wallMs(command, args, options) {
  const start = process.hrtime.bigint();
  const r = spawnSync(command, args, { stdio: ['pipe', 'pipe', 'pipe'], ...options });
  if (r.status !== 0) throw new Error(`${command} ${args.join(' ')} failed: ${r.stderr}`);
  return { ms: Number(process.hrtime.bigint() - start) / 1e6, stdout: r.stdout.toString() };
}

export async function run({ iterations = 10 } = {}) {
  const { dir, cleanup } = scratch();
  try {
    const server = await startServer('memory', { dir });
    await seedToken(server, 'github');
    // git reads only this config: the helper, no system or user settings.
    const gitConfig = path.join(dir, 'gitconfig');
    fs.writeFileSync(gitConfig, `[credential]\n\thelper = "!'${process.execPath}' '${CLI}' git-credential"\n`);
    const env = { PATH: process.env.PATH, HOME: dir, CREDPROXY_SOCKET: server.socketPath, GIT_CONFIG_GLOBAL: gitConfig, GIT_CONFIG_NOSYSTEM: '1', GIT_TERMINAL_PROMPT: '0' };
    const fill = 'protocol=https\nhost=github.com\n\n';
    const cases = {
      node: () => wallMs(process.execPath, ['-e', '0'], { env }),
      token: () => wallMs(process.execPath, [CLI, 'token', 'github'], { env }),
      gitFill: () => wallMs('git', ['credential', 'fill'], { env, input: fill }),
      gitAlone: () => wallMs('git', ['credential', 'fill'], { env: { ...env, GIT_CONFIG_GLOBAL: '/dev/null' }, input: 'protocol=https\nhost=github.com\nusername=u\npassword=p\n\n' }),
    };
    // Each must work before it is timed.
    if (!cases.token().stdout.includes('at-bench-memory')) throw new Error('credproxy token did not print the token');
    if (!cases.gitFill().stdout.includes('password=at-bench-memory')) throw new Error('git credential fill did not get the token');
    const times = Object.fromEntries(Object.keys(cases).map((k) => [k, []]));
    for (let i = 0; i < iterations; i++) for (const [k, fn] of Object.entries(cases)) times[k].push(fn().ms);
    await server.stop();
    const out = Object.fromEntries(Object.entries(times).map(([k, v]) => [k, round(median(v), 1)]));
    return {
      iterations,
      medianMs: out,
      tokenToNode: mapRound(ratioSummary(times.token, times.node)),
      gitFillToNode: mapRound(ratioSummary(times.gitFill, times.node)),
      gitFillOverGitAloneMs: round(median(times.gitFill.map((x, i) => x - times.gitAlone[i])), 1),
    };
  } finally {
    cleanup();
  }
}

const mapRound = (r) => Object.fromEntries(Object.entries(r).map(([k, v]) => [k, k === 'pairs' ? v : round(v)]));

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const result = await run({ iterations: Number(process.argv[2] ?? 10) });
  console.log(JSON.stringify({ machine: machine(), ...result }, null, 2));
}
