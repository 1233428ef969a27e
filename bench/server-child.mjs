// One server under benchmark, in its own process. argv: MODE SOCKET_PATH DATA_DIR
//   bare   — a minimal Node frame server: same framing, canned get_token reply (the floor)
//   memory — the daemon on the memory store
//   file / auto / keyring — the daemon on that store (auto = what `credproxy serve` uses by default)
// Prints "ready" once listening.
import net from 'node:net';
import { startDaemon } from '../dist/server/daemon.js';
import { openStores } from '../dist/store/open.js';
import { encodeFrame, FrameDecoder } from '../dist/protocol/framing.js';

const [mode, socketPath, dataDir] = process.argv.slice(2);
const token = { access_token: 'at-bench', expiry: Math.floor(Date.now() / 1000) + 3600, token_type: 'Bearer', refresh_token: 'rt-bench', scope: 'a b' };

if (mode === 'bare') {
  const server = net.createServer((sock) => {
    const decoder = new FrameDecoder(4 * 1024 * 1024);
    sock.on('data', (chunk) => {
      for (const f of decoder.push(chunk)) {
        if (f.op === 'handshake') sock.write(encodeFrame({ v: 2, op: 'handshake', ok: true, data: { version: 2 } }));
        else sock.write(encodeFrame({ v: 2, id: f.id, ok: true, data: { access_token: token.access_token, expiry: token.expiry, token_type: 'Bearer', scope: 'a b' } }));
      }
    });
  });
  server.listen(socketPath, () => process.stdout.write('ready\n'));
} else {
  const stores = await openStores({ backend: mode, dataDir });
  await stores.tokens.saveToken('anthropic', 'default', token);
  await startDaemon({ tokens: stores.tokens, keys: stores.keys, socketPath, audit: 'off', limits: { maxPerSecond: 1e9 } });
  process.stdout.write(`ready ${stores.backend}\n`);
}
