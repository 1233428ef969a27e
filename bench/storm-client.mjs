// The load of the refresh storm, in its own process so that it does not share an event loop with
// the authorization server (which runs in storm.mjs): COUNT requests at once, alternating get_token
// and refresh_token on each connection, over CONNECTIONS connections spread across the SOCKETS.
// argv: PROVIDER COUNT CONNECTIONS SOCKET... Prints {latencies, failures, tokens} as JSON.
import { connectClient } from './lib/frameClient.mjs';

const [provider, count, connections, ...sockets] = [process.argv[2], Number(process.argv[3]), Number(process.argv[4]), ...process.argv.slice(5)];
const clients = await Promise.all(Array.from({ length: connections }, (_, c) => connectClient(sockets[c % sockets.length])));
// Connected and handshaken: the parent now makes the token expire, then says go.
process.stdout.write('ready\n');
await new Promise((resolve) => process.stdin.once('data', resolve));
const latencies = [];
const failures = {};
const tokens = new Set();
await Promise.all(
  Array.from({ length: count }, async (_, i) => {
    const op = Math.floor(i / connections) % 2 === 0 ? 'get_token' : 'refresh_token';
    const t = process.hrtime.bigint();
    const reply = await clients[i % connections].request(op, { provider });
    latencies.push(Number(process.hrtime.bigint() - t) / 1e6);
    if (reply.ok) tokens.add(reply.data.access_token);
    else failures[reply.code] = (failures[reply.code] ?? 0) + 1;
  }),
);
clients.forEach((c) => c.close());
process.stdout.write(`${JSON.stringify({ latencies, failures, tokens: [...tokens] })}\n`);
