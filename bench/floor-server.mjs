// The floor: the least a Node server on a Unix socket can do for a get_token — decode the frame with
// the project's framing and answer a canned reply. Every daemon figure is also a ratio to this.
// argv: SOCKET_PATH. Prints "ready" once listening.
import net from 'node:net';
import { encodeFrame, FrameDecoder } from '../dist/protocol/framing.js';

const data = { access_token: 'at-bench-floor', expiry: Math.floor(Date.now() / 1000) + 3600, token_type: 'Bearer' };
const server = net.createServer((sock) => {
  const decoder = new FrameDecoder(4 * 1024 * 1024);
  sock.on('error', () => sock.destroy());
  sock.on('data', (chunk) => {
    for (const f of decoder.push(chunk)) {
      if (f.op === 'handshake') sock.write(encodeFrame({ v: 2, op: 'handshake', ok: true, data: { version: 2 } }));
      else sock.write(encodeFrame({ v: 2, id: f.id, ok: true, data }));
    }
  });
});
server.listen(process.argv[2], () => process.stdout.write('ready\n'));
process.on('SIGTERM', () => server.close(() => process.exit(0)));
