/** Parses `--tcp HOST:PORT`; only loopback hosts are accepted (PROTOCOL.md §1). */
import net from 'node:net';

export function parseLoopbackAddress(spec: string): { host: string; port: number } {
  const match = /^(?:\[([^\]]+)\]|([^:]+)):(\d{1,5})$/.exec(spec.trim());
  if (!match) throw new Error(`Invalid TCP address "${spec}": expected 127.0.0.1:PORT or [::1]:PORT`);
  const host = (match[1] ?? match[2])!;
  const port = Number(match[3]);
  if (port > 65_535) throw new Error(`Invalid TCP port ${port}: must be 0-65535`);
  const loopback = (net.isIPv4(host) && host.startsWith('127.')) || host === '::1';
  if (!loopback) throw new Error(`TCP address ${host} is not loopback; only 127.0.0.0/8 and ::1 are allowed`);
  return { host, port };
}
