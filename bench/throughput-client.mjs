// One client process of the throughput benchmark: CONNS connections, each a closed loop of
// get_token (next request as soon as the reply is in) from START_AT for DURATION_MS.
// argv: SOCKET CONNS DURATION_MS START_AT. Prints {"done": N, "ms": M}.
import { connectClient } from './lib/frameClient.mjs';

const [socketPath, conns, durationMs, startAt] = [process.argv[2], Number(process.argv[3]), Number(process.argv[4]), Number(process.argv[5])];
const clients = await Promise.all(Array.from({ length: conns }, () => connectClient(socketPath)));
const wait = startAt - Date.now();
if (wait > 0) await new Promise((r) => setTimeout(r, wait));
const t0 = process.hrtime.bigint();
const end = t0 + BigInt(durationMs) * 1_000_000n;
let done = 0;
await Promise.all(
  clients.map(async (c) => {
    while (process.hrtime.bigint() < end) {
      const reply = await c.request('get_token', { provider: 'anthropic' });
      if (reply.ok !== true) throw new Error(`get_token failed: ${reply.code}`);
      done++;
    }
  }),
);
const ms = Number(process.hrtime.bigint() - t0) / 1e6;
clients.forEach((c) => c.close());
process.stdout.write(JSON.stringify({ done, ms }));
