/**
 * The audit log (PROTOCOL.md §9): one JSON object per line. It records who did what and how it
 * ended — never a token, key, code, verifier, state, device code, capability or full session id.
 * Callers pass only the fields below; there is no free-form field to leak a secret through. A
 * proxied request's path is cut at its query (where some APIs take keys) and at 256 characters.
 */
import fs from 'node:fs';

export interface AuditEvent {
  conn: number;
  peer?: { pid?: number; uid?: number } | undefined;
  grant?: string | undefined;
  op: string;
  provider?: string | undefined;
  bucket?: string | undefined;
  /** `ok` or an error code (or a connection-level reason such as `FRAME_OVERSIZE`). */
  outcome: string;
  ms?: number | undefined;
  /** First 8 hex chars of an OAuth session id, never more. */
  session?: string | undefined;
  /** Inject mode (op `inject`): the route, the method, the path without its query, the HTTP status and body bytes each way. */
  route?: string | undefined;
  method?: string | undefined;
  path?: string | undefined;
  status?: number | undefined;
  bytes_up?: number | undefined;
  bytes_down?: number | undefined;
}

export interface AuditLog {
  record(event: AuditEvent): void;
  close(): Promise<void>;
}

class StreamAudit implements AuditLog {
  constructor(
    private readonly write: (line: string) => void,
    private readonly closer: () => Promise<void>,
    private readonly now: () => number,
  ) {}

  record(event: AuditEvent): void {
    const line: Record<string, unknown> = { ts: new Date(this.now()).toISOString(), ...event };
    if (typeof line.session === 'string') line.session = line.session.slice(0, 8);
    if (typeof line.path === 'string') line.path = line.path.split('?')[0]!.slice(0, 256);
    this.write(`${JSON.stringify(line)}\n`);
  }

  close(): Promise<void> {
    return this.closer();
  }
}

const noAudit: AuditLog = { record() {}, close: async () => {} };

/**
 * `off` → nothing; `-` → stderr; anything else → a file appended with mode 0600. A failing write
 * (disk full, I/O error) is reported once through `onError` instead of crashing the daemon with an
 * unhandled stream 'error'.
 */
export function openAuditLog(target: string | undefined, now: () => number = Date.now, onError: (err: NodeJS.ErrnoException) => void = () => {}): AuditLog {
  if (!target || target === 'off') return noAudit;
  if (target === '-') return new StreamAudit((l) => process.stderr.write(l), async () => {}, now);
  const fd = fs.openSync(target, 'a', 0o600);
  const stream = fs.createWriteStream('', { fd, autoClose: true });
  let reported = false;
  stream.on('error', (err) => {
    if (!reported) onError(err);
    reported = true;
  });
  return new StreamAudit(
    (l) => stream.write(l),
    () => new Promise<void>((resolve) => stream.end(resolve)),
    now,
  );
}
