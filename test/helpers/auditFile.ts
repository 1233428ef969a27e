/**
 * The daemon writes audit lines in batches (AUDIT_FLUSH_MS after the first of a burst), so a test
 * that reads the log while the daemon runs waits for the line it expects instead of reading once.
 */
import fs from 'node:fs';

/** Resolves with the log's text once it matches `pattern`; rejects (showing the text) after `timeoutMs`. */
export async function waitForAudit(file: string, pattern: RegExp | string, timeoutMs = 10_000): Promise<string> {
  const matches = (text: string) => (typeof pattern === 'string' ? text.includes(pattern) : pattern.test(text));
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const text = fs.existsSync(file) ? fs.readFileSync(file, 'utf8') : '';
    if (matches(text)) return text;
    if (Date.now() > deadline) throw new Error(`audit log ${file} has no line matching ${String(pattern)}:\n${text.slice(-2000)}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}
