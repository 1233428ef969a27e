/** Who is on the other end of a connection, as the kernel reports it (PROTOCOL.md §7). */
export interface PeerCredentials {
  pid?: number;
  uid: number;
  gid: number;
}

/** This process's own identity: the peer of an in-process caller such as the host-side login. */
export function ownIdentity(): PeerCredentials {
  return { uid: process.getuid?.() ?? -1, gid: process.getgid?.() ?? -1, pid: process.pid };
}
