/**
 * Kernel peer credentials of a Unix-socket connection (PROTOCOL.md §7): SO_PEERCRED on Linux,
 * getpeereid on macOS. Read synchronously in the connection callback, before any byte is processed,
 * so the identity belongs to the process that connected.
 */
import type net from 'node:net';
import koffi from 'koffi';
import type { PeerCredentials } from '../auth/peer.js';

export type { PeerCredentials };

type Reader = (fd: number) => PeerCredentials | null;

const SOL_SOCKET = 1;
const SO_PEERCRED = 17;

function linuxReader(): Reader {
  const libc = koffi.load('libc.so.6');
  const getsockopt = libc.func('int getsockopt(int fd, int level, int name, _Out_ void *val, _Inout_ uint32_t *len)');
  return (fd) => {
    const ucred = Buffer.alloc(12); // struct ucred { pid_t pid; uid_t uid; gid_t gid; }
    const len = [12];
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, ucred, len) !== 0 || len[0] !== 12) return null;
    return { pid: ucred.readInt32LE(0), uid: ucred.readUInt32LE(4), gid: ucred.readUInt32LE(8) };
  };
}

function darwinReader(): Reader {
  const libc = koffi.load('libc.dylib');
  const getpeereid = libc.func('int getpeereid(int fd, _Out_ uint32_t *uid, _Out_ uint32_t *gid)');
  return (fd) => {
    const uid = [0];
    const gid = [0];
    if (getpeereid(fd, uid, gid) !== 0) return null;
    return { uid: uid[0]!, gid: gid[0]! };
  };
}

let reader: Reader | null | undefined;

function platformReader(): Reader | null {
  if (reader !== undefined) return reader;
  try {
    reader = process.platform === 'linux' ? linuxReader() : process.platform === 'darwin' ? darwinReader() : null;
  } catch {
    reader = null;
  }
  return reader;
}

/** True when this platform can tell who is on the other end of a Unix socket. */
export function peerCredentialsSupported(): boolean {
  return platformReader() !== null;
}

/** The peer of an accepted Unix-socket connection, or null when it cannot be determined. */
export function readPeerCredentials(socket: net.Socket): PeerCredentials | null {
  const read = platformReader();
  // libuv keeps the descriptor on the handle; there is no public accessor for it.
  const fd = (socket as unknown as { _handle?: { fd?: number } })._handle?.fd;
  if (!read || typeof fd !== 'number' || fd < 0) return null;
  return read(fd);
}
