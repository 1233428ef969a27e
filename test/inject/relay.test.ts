/** The in-sandbox relay (bytes both ways to a Unix socket) and the loopback peer-uid lookup. */
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { loopbackPeerUid } from '../../src/inject/loopbackPeer.js';
import { parseRelayArgs, startRelay } from '../../src/inject/relay.js';
import { tempDir } from '../helpers/daemon.js';

const cleanups: Array<() => void> = [];
afterEach(() => {
  for (const c of cleanups.splice(0)) c();
});

describe('relay', () => {
  it('copies bytes both ways between 127.0.0.1:PORT and the socket', async () => {
    const dir = tempDir('cp-relay-');
    const socket = path.join(dir, 'echo.sock');
    const echo = net.createServer((s) => s.pipe(s));
    await new Promise<void>((resolve) => echo.listen(socket, resolve));
    const relay = await startRelay({ host: '127.0.0.1', port: 0, socket });
    cleanups.push(() => {
      relay.close();
      echo.close();
      fs.rmSync(dir, { recursive: true, force: true });
    });
    const { port } = relay.address() as net.AddressInfo;
    const client = net.connect(port, '127.0.0.1');
    const payload = Buffer.alloc(1024 * 1024, 7);
    client.end(payload);
    const chunks: Buffer[] = [];
    for await (const chunk of client) chunks.push(chunk as Buffer);
    expect(Buffer.concat(chunks).equals(payload)).toBe(true);
  });

  it('takes only 127.0.0.1:PORT and a socket path', () => {
    expect(parseRelayArgs(['--listen', '127.0.0.1:8080', '--socket', '/s', '--background'])).toEqual({ host: '127.0.0.1', port: 8080, socket: '/s', background: true });
    expect(() => parseRelayArgs(['--listen', '0.0.0.0:8080', '--socket', '/s'])).toThrow('--listen 0.0.0.0:8080: expected 127.0.0.1:PORT');
    expect(() => parseRelayArgs(['--listen', '127.0.0.1:8080'])).toThrow(/usage: relay/);
    expect(() => parseRelayArgs(['--what'])).toThrow(/unexpected argument "--what"/);
  });
});

describe.skipIf(process.platform !== 'linux')('loopback peer uid', () => {
  it('finds the uid of the process on the other end of a 127.0.0.1 connection', async () => {
    const server = net.createServer();
    const accepted = new Promise<net.Socket>((resolve) => server.once('connection', resolve));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const client = net.connect((server.address() as net.AddressInfo).port, '127.0.0.1');
    const socket = await accepted;
    cleanups.push(() => {
      client.destroy();
      socket.destroy();
      server.close();
    });
    expect(loopbackPeerUid(socket)).toBe(process.getuid!());
  });
});
