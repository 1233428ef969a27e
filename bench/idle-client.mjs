// Holds COUNT connections to SOCKET open past the handshake; prints "up" once all are, and closes
// them when stdin ends. argv: SOCKET COUNT.
import { connectClient } from './lib/frameClient.mjs';

const [socketPath, count] = [process.argv[2], Number(process.argv[3])];
const clients = [];
for (let i = 0; i < count; i += 50) {
  clients.push(...(await Promise.all(Array.from({ length: Math.min(50, count - i) }, () => connectClient(socketPath)))));
}
process.stdout.write('up\n');
process.stdin.resume();
process.stdin.on('end', () => {
  clients.forEach((c) => c.close());
  process.exit(0);
});
