/** Reading secrets and documents from stdin — the only channel for them besides files. */
import { CliError } from './errors.js';

/** Larger input is certainly a mistake (a token JSON or an API key is a few KiB at most). */
const MAX_STDIN_BYTES = 1024 * 1024;

/**
 * Reads all of stdin. Throws `emptyMessage` when stdin is a terminal (we never prompt: a pasted
 * secret would echo) or when nothing arrives.
 */
export async function readStdin(emptyMessage: string, stream: NodeJS.ReadStream = process.stdin): Promise<string> {
  if (stream.isTTY) throw new CliError(emptyMessage);
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of stream) {
    const buf = typeof chunk === 'string' ? Buffer.from(chunk) : (chunk as Buffer);
    size += buf.length;
    if (size > MAX_STDIN_BYTES) throw new CliError(`Input on stdin is larger than ${MAX_STDIN_BYTES} bytes`);
    chunks.push(buf);
  }
  const text = Buffer.concat(chunks).toString('utf8');
  if (text.trim().length === 0) throw new CliError(emptyMessage);
  return text;
}
