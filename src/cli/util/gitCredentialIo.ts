/**
 * git's credential-helper wire format (git-credential(1), "INPUT/OUTPUT FORMAT"): one `key=value`
 * per line, no quoting, ended by a blank line or end of input. Keys cannot contain `=`, newline or
 * NUL; values cannot contain newline or NUL. Unknown keys are ignored, as git itself does.
 */
import { CliError } from './errors.js';

/** A description git sends is a few hundred bytes (more with wwwauth[] headers); far more is not git. */
const MAX_INPUT_BYTES = 64 * 1024;

/** The attributes a helper acts on; the last value of a repeated key wins. */
export interface CredentialRequest {
  protocol?: string;
  host?: string;
  path?: string;
  username?: string;
}

/**
 * Reads one credential description: stops at the first blank line (git closes stdin after it, but a
 * person typing one by hand may not) or at end of input.
 */
export async function readCredentialRequest(stream: NodeJS.ReadableStream = process.stdin): Promise<CredentialRequest> {
  let text = '';
  for await (const chunk of stream) {
    text += typeof chunk === 'string' ? chunk : (chunk as Buffer).toString('utf8');
    if (text.length > MAX_INPUT_BYTES) throw new CliError(`Credential description on stdin is larger than ${MAX_INPUT_BYTES} bytes`);
    if (text.startsWith('\n') || text.includes('\n\n')) break;
  }
  return parseCredentialRequest(text);
}

/** Parses the lines up to the first blank one; lines without a key are skipped. */
export function parseCredentialRequest(text: string): CredentialRequest {
  const attributes = new Map<string, string>();
  for (const line of text.split('\n')) {
    if (line === '') break;
    const eq = line.indexOf('=');
    if (eq <= 0) continue;
    attributes.set(line.slice(0, eq), line.slice(eq + 1));
  }
  const request: CredentialRequest = {};
  // `url=` stands for its parts (git-credential(1)); explicit attributes take precedence.
  const url = attributes.get('url');
  if (url !== undefined) Object.assign(request, partsOfUrl(url));
  for (const key of ['protocol', 'host', 'path', 'username'] as const) {
    const value = attributes.get(key);
    if (value !== undefined) request[key] = value;
  }
  return request;
}

function partsOfUrl(value: string): CredentialRequest {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    return {};
  }
  const parts: CredentialRequest = { protocol: url.protocol.replace(/:$/, ''), host: url.host };
  if (url.pathname.length > 1) parts.path = url.pathname.slice(1);
  if (url.username) parts.username = decodeURIComponent(url.username);
  return parts;
}

/**
 * Formats the answer to `get`. A value with a line break or NUL would let a token inject other
 * attributes (or cut itself short), so it is refused; the message names the attribute, never the value.
 */
export function formatCredentialAnswer(attributes: ReadonlyArray<readonly [string, string]>): string {
  let out = '';
  for (const [key, value] of attributes) {
    if (/[\n\0]/.test(value)) throw new CliError(`The ${key} for git contains a line break or NUL byte; refusing to pass it on`);
    out += `${key}=${value}\n`;
  }
  return out;
}
