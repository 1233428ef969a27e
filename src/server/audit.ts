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

/** How long audit lines may wait in memory before they are written: one write per burst, not per request. */
export const AUDIT_FLUSH_MS = 20;
/** Buffered bytes that force a write at once. */
const AUDIT_FLUSH_BYTES = 64 * 1024;

/**
 * Lines are collected and written together, at most AUDIT_FLUSH_MS after the first one of a batch
 * (or at once past AUDIT_FLUSH_BYTES, and on close): a write per request costs the daemon more than
 * the request itself. A crash loses at most that window's lines.
 */
class BufferedAudit implements AuditLog {
  private lines: string[] = [];
  private bytes = 0;
  private timer: NodeJS.Timeout | null = null;
  private stampedAt = NaN;
  private stamp = '';
  private readonly subjects = new Map<number, { grant: string | undefined; pid: number | undefined; uid: number | undefined; text: string }>();

  constructor(
    private readonly write: (text: string) => void,
    private readonly release: () => void,
    private readonly now: () => number,
  ) {}

  record(event: AuditEvent): void {
    const text = `{"ts":"${this.timestamp()}",${this.subject(event)}${requestFields(event)}}\n`;
    this.lines.push(text);
    this.bytes += text.length;
    if (this.bytes >= AUDIT_FLUSH_BYTES) this.flush();
    else this.timer ??= setTimeout(() => this.flush(), AUDIT_FLUSH_MS);
  }

  /** `"conn":…,"peer":…,"grant":…` of a line: the same for every request of a connection, so serialized once per connection. */
  private subject(event: AuditEvent): string {
    const known = this.subjects.get(event.conn);
    if (known && known.grant === event.grant && known.pid === event.peer?.pid && known.uid === event.peer?.uid) return known.text;
    let text = `"conn":${jsonNumber(event.conn)}`;
    if (event.peer) text += `,"peer":${JSON.stringify({ pid: event.peer.pid, uid: event.peer.uid })}`;
    if (event.grant !== undefined) text += `,"grant":${JSON.stringify(event.grant)}`;
    if (this.subjects.size >= MAX_SUBJECTS) this.subjects.clear();
    this.subjects.set(event.conn, { grant: event.grant, pid: event.peer?.pid, uid: event.peer?.uid, text });
    return text;
  }

  /** ISO time of now, formatted once per millisecond however many lines share it. */
  private timestamp(): string {
    const now = this.now();
    if (now !== this.stampedAt) {
      this.stampedAt = now;
      this.stamp = new Date(now).toISOString();
    }
    return this.stamp;
  }

  async close(): Promise<void> {
    this.flush();
    this.release();
  }

  private flush(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    if (this.lines.length === 0) return;
    const text = this.lines.join('');
    this.lines = [];
    this.bytes = 0;
    this.write(text);
  }
}

/** Connections whose subject text is kept; past this the cache starts over. */
const MAX_SUBJECTS = 4096;

/** The fields after the subject, in this order; each is written only when set. */
const REQUEST_KEYS = ['op', 'provider', 'bucket', 'session', 'route', 'method', 'path', 'status', 'bytes_up', 'bytes_down', 'outcome', 'ms'] as const;

// Every field of AuditEvent is written: a field added there without a place here fails to compile.
const EVERY_FIELD_WRITTEN: Record<Exclude<keyof AuditEvent, 'conn' | 'peer' | 'grant' | (typeof REQUEST_KEYS)[number]>, never> = {};
void EVERY_FIELD_WRITTEN;

/**
 * `,"op":…` and the rest of a line. Never more than 8 chars of a session id, and a proxied path
 * without its query (where some APIs take keys), at most 256 characters.
 */
function requestFields(event: AuditEvent): string {
  let text = '';
  for (const key of REQUEST_KEYS) {
    let value = event[key];
    if (value === undefined) continue;
    if (key === 'session' && typeof value === 'string') value = value.slice(0, 8);
    else if (key === 'path' && typeof value === 'string') value = value.split('?')[0]!.slice(0, 256);
    text += `,"${key}":${typeof value === 'number' ? jsonNumber(value) : JSON.stringify(value)}`;
  }
  return text;
}

/** A number as JSON writes it (null for NaN and infinities). */
function jsonNumber(value: number): string {
  return Number.isFinite(value) ? String(value) : 'null';
}

const noAudit: AuditLog = { record() {}, close: async () => {} };

/**
 * `off` → nothing; `-` → stderr; anything else → a file appended with mode 0600. A failing write
 * (disk full, I/O error) is reported once through `onError` and ends the file's audit records
 * instead of crashing the daemon.
 */
export function openAuditLog(target: string | undefined, now: () => number = Date.now, onError: (err: NodeJS.ErrnoException) => void = () => {}): AuditLog {
  if (!target || target === 'off') return noAudit;
  if (target === '-') return new BufferedAudit((text) => process.stderr.write(text), () => {}, now);
  let fd: number | null = fs.openSync(target, 'a', 0o600);
  const append = (text: string): void => {
    if (fd === null) return;
    try {
      // A small append to a local file: cheaper done here than handed to the thread pool.
      const bytes = Buffer.from(text, 'utf8');
      for (let off = 0; off < bytes.length; ) off += fs.writeSync(fd, bytes, off);
    } catch (err) {
      onError(err as NodeJS.ErrnoException);
      release();
    }
  };
  const release = (): void => {
    if (fd === null) return;
    try {
      fs.closeSync(fd);
    } catch {
      // Nothing is left to report to: the descriptor is gone either way.
    }
    fd = null;
  };
  return new BufferedAudit(append, release, now);
}
