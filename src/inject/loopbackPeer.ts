/**
 * The uid behind a loopback TCP connection on Linux, read from /proc/net/tcp: the client's own socket
 * is the entry whose local port is the connection's remote port and whose remote port is ours. So
 * inject mode's loopback listener, like its Unix socket, serves only the daemon's own uid (and the
 * allowed uids), not every local user who can reach 127.0.0.1.
 */
import fs from 'node:fs';
import type net from 'node:net';

const hexPort = (port: number): string => port.toString(16).toUpperCase().padStart(4, '0');

/** The peer's uid, or null when it cannot be learnt (not Linux, not IPv4 loopback, already gone). */
export function loopbackPeerUid(socket: net.Socket): number | null {
  const { remotePort, localPort, remoteAddress } = socket;
  if (process.platform !== 'linux' || remotePort === undefined || localPort === undefined || remoteAddress !== '127.0.0.1') return null;
  let table: string;
  try {
    table = fs.readFileSync('/proc/net/tcp', 'latin1');
  } catch {
    return null;
  }
  const local = `:${hexPort(remotePort)}`;
  const remote = `:${hexPort(localPort)}`;
  for (const line of table.split('\n')) {
    const fields = line.trim().split(/\s+/);
    if (fields.length > 7 && fields[1]!.endsWith(local) && fields[2]!.endsWith(remote)) {
      // Both ends on 127.0.0.1, in either byte order of the kernel's hex.
      if (![fields[1], fields[2]].every((a) => a!.startsWith('0100007F:') || a!.startsWith('7F000001:'))) continue;
      const uid = Number(fields[7]);
      return Number.isInteger(uid) ? uid : null;
    }
  }
  return null;
}
