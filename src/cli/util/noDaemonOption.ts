/** `--no-daemon`, shared by the commands that would otherwise go through a running daemon. */
import { Option } from 'commander';

export function noDaemonOption(): Option {
  return new Option('--no-daemon', 'use the host store (--store) even when CREDPROXY_SOCKET is set or a daemon is running');
}
