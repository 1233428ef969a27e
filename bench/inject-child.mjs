// One process of the inject-proxy benchmark. argv: ROLE DIR
//   upstream — an HTTPS server (DIR/leaf.pem, DIR/leaf.key): GET /v1/models (small JSON),
//              GET /v1/stream (an SSE event at once, then two more), GET /v1/download?bytes=N,
//              POST /v1/upload (counts the body). Prints "ready PORT".
//   daemon   — the credproxy daemon (memory store, audit off) with a route to that upstream
//              (argv[4] = its port; DIR/ca.pem trusted), a grant injecting it, served on a Unix
//              socket and loopback TCP. Prints "ready {json}".
import https from 'node:https';
import fs from 'node:fs';
import path from 'node:path';
import { setImmediate } from 'node:timers';

const [role, dir, port] = process.argv.slice(2);

if (role === 'upstream') {
  const chunk = Buffer.alloc(64 * 1024, 0x61);
  const server = https.createServer({ key: fs.readFileSync(path.join(dir, 'leaf.key')), cert: fs.readFileSync(path.join(dir, 'leaf.pem')) }, (req, res) => {
    const url = new URL(req.url, 'https://x');
    if (url.pathname === '/v1/stream') {
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      res.write('event: message_start\ndata: {}\n\n');
      setImmediate(() => res.end('event: message_delta\ndata: {}\n\nevent: message_stop\ndata: {}\n\n'));
    } else if (url.pathname === '/v1/download') {
      let left = Number(url.searchParams.get('bytes'));
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': String(left) });
      const pump = () => {
        while (left > 0) {
          const part = left >= chunk.length ? chunk : chunk.subarray(0, left);
          left -= part.length;
          if (!res.write(part)) return void res.once('drain', pump);
        }
        res.end();
      };
      pump();
    } else if (url.pathname === '/v1/upload') {
      let n = 0;
      req.on('data', (d) => (n += d.length));
      req.on('end', () => res.end(JSON.stringify({ received: n })));
    } else {
      req.resume();
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end('{"data":[{"id":"model-a"},{"id":"model-b"}]}');
    }
  });
  server.keepAliveTimeout = 60_000;
  server.listen(0, '127.0.0.1', () => process.stdout.write(`ready ${server.address().port}\n`));
} else {
  const { startDaemon } = await import('../dist/server/daemon.js');
  const { MemoryStore } = await import('../dist/store/memory.js');
  const { RouteTable } = await import('../dist/inject/RouteTable.js');
  const { ProxyClient } = await import('../dist/client/ProxyClient.js');
  const store = new MemoryStore();
  await store.setKey('bench', 'sk-bench-not-a-real-key');
  const routes = RouteTable.fromConfig(
    { routes: { bench: { upstream: `https://127.0.0.1:${port}`, credential: { key: 'bench' }, header: 'x-api-key', format: '{}', env: { BENCH_BASE: '{url}' }, ca: 'ca.pem' } } },
    path.join(dir, 'config.json'),
  );
  const daemon = await startDaemon({ tokens: store, keys: store, socketPath: path.join(dir, 'd.sock'), audit: 'off', routes });
  const control = new ProxyClient({ socketPath: daemon.controlPath, idleTimeoutMs: Infinity });
  const grant = await control.request('grant_open', { providers: {}, keys: [], ops: [], inject: [{ route: 'bench' }], inject_tcp: true });
  process.stdout.write(`ready ${JSON.stringify(grant.inject)}\n`);
}
