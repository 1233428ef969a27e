// The daemon's own work per get_token without any socket: the Connection (framing, id, limits) and
// the Dispatcher (validation, grant check, handler, sanitized reply, audit line to a real file) on a
// transport that hands bytes over synchronously, against the floor's own work (decode the frame,
// encode a canned reply). CPU-bound and single-threaded, so steadier than any socket figure; it
// says what the daemon adds per request, which the socket benchmarks then show diluted by syscalls
// and wake-ups. Usage: node bench/pipeline.mjs [REQUESTS]   (after `npm run build`)
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { OPEN_POLICY } from '../dist/auth/policy.js';
import { buildHandlers, BucketUsage } from '../dist/handlers/index.js';
import { presetRegistry } from '../dist/oauth/config.js';
import { TokenService } from '../dist/oauth/TokenService.js';
import { encodeFrame, FrameDecoder } from '../dist/protocol/framing.js';
import { openAuditLog } from '../dist/server/audit.js';
import { Connection } from '../dist/server/connection.js';
import { Dispatcher } from '../dist/server/dispatch.js';
import { DEFAULT_LIMITS } from '../dist/server/options.js';
import { CachedTokenStore } from '../dist/store/CachedTokenStore.js';
import { MemoryStore } from '../dist/store/memory.js';
import { machine } from './lib/machine.mjs';
import { scratch } from './lib/servers.mjs';
import { median, round } from './lib/stats.mjs';

/** A transport whose bytes are delivered by the caller and whose writes land in `sink`. */
function syncTransport(sink) {
  let deliver = null;
  return {
    start(onData) {
      deliver = onData;
    },
    closed: false,
    write: (bytes) => sink.push(bytes),
    end: () => {},
    pause: () => {},
    destroy: () => {},
    feed: (bytes) => deliver(bytes),
  };
}

export async function run({ requests = 200_000, rounds = Number(process.env.PIPELINE_ROUNDS ?? 7) } = {}) {
  const { dir, cleanup } = scratch('cppipe-');
  try {
    const store = new MemoryStore();
    await store.saveToken('anthropic', 'default', { access_token: 'at-pipeline', expiry: Math.floor(Date.now() / 1000) + 3600, token_type: 'Bearer' });
    const tokens = new TokenService(new CachedTokenStore(store));
    const audit = openAuditLog(path.join(dir, 'audit.log'));
    const fields = presetRegistry();
    const services = { tokens, keys: store, usage: new BucketUsage(), refresher: null, publicFields: (p) => fields.get(p)?.publicFields ?? [] };
    const dispatcher = new Dispatcher({ handlers: buildHandlers(null), services, audit, now: Date.now });
    const sink = [];
    const transport = syncTransport(sink);
    const grant = OPEN_POLICY.defaultGrant;
    new Connection(1, transport, { pid: process.pid, uid: process.getuid() }, { dispatcher, limits: { ...DEFAULT_LIMITS, maxPerSecond: 1e9 }, now: Date.now, authorize: () => grant });
    transport.feed(encodeFrame({ v: 2, op: 'handshake', payload: { minVersion: 1, maxVersion: 2 } }));
    const frames = Array.from({ length: 1024 }, (_, i) => encodeFrame({ v: 2, id: `b${i}`, op: 'get_token', payload: { provider: 'anthropic' } }));
    // The first read fills the daemon's token cache (asynchronously); every later one is answered at once.
    transport.feed(encodeFrame({ v: 2, id: 'warm', op: 'get_token', payload: { provider: 'anthropic' } }));
    await new Promise((resolve) => setTimeout(resolve, 50));
    sink.length = 1;

    const daemon = () => {
      for (let i = 0; i < requests; i++) transport.feed(frames[i & 1023]);
      if (sink.length !== requests + 1) throw new Error(`expected ${requests} synchronous replies, got ${sink.length - 1}`);
      const last = new FrameDecoder(4 * 1024 * 1024).push(sink[sink.length - 1])[0];
      if (last.ok !== true || last.data.access_token !== 'at-pipeline') throw new Error(`unexpected reply ${JSON.stringify(last)}`);
      sink.length = 1;
    };
    const decoder = new FrameDecoder(4 * 1024 * 1024);
    const data = { access_token: 'at-pipeline', expiry: Math.floor(Date.now() / 1000) + 3600, token_type: 'Bearer' };
    const floor = () => {
      for (let i = 0; i < requests; i++) for (const f of decoder.push(frames[i & 1023])) sink.push(encodeFrame({ v: 2, id: f.id, ok: true, data }));
      sink.length = 1;
    };
    const time = (fn) => {
      const t0 = process.hrtime.bigint();
      fn();
      return Number(process.hrtime.bigint() - t0) / requests;
    };
    daemon();
    floor();
    const d = [];
    const f = [];
    for (let r = 0; r < rounds; r++) {
      f.push(time(floor));
      d.push(time(daemon));
    }
    await audit.close();
    const auditLines = fs.readFileSync(path.join(dir, 'audit.log'), 'utf8').split('\n').length - 1;
    return { requests, rounds, floorNsPerRequest: round(median(f), 0), daemonNsPerRequest: round(median(d), 0), addedNsPerRequest: round(median(d.map((x, i) => x - f[i])), 0), auditLines };
  } finally {
    cleanup();
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  console.log(JSON.stringify({ machine: machine(), ...(await run({ requests: Number(process.argv[2] ?? 200_000) })) }, null, 2));
}
