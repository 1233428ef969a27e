/**
 * Reading and rewriting a CLI tool's own login file. A rewrite keeps what the tool would notice:
 * the file's layout (indentation, final newline, key order), its mode and, when credproxy runs as
 * root, its owner; it replaces the file atomically (temp file in the same directory, fsync, rename)
 * so the tool never reads half a file.
 */
import fs from 'node:fs';
import { signatureOf, writeFileAtomic } from '../../store/atomicWrite.js';

/** Far more than any login file; a bigger file is not one. */
const MAX_BYTES = 1024 * 1024;

/** Why a tool's file cannot be read; the message names the file and never its content. */
export class ToolFileError extends Error {
  override readonly name = 'ToolFileError';
  constructor(
    readonly file: string,
    readonly reason: 'missing' | 'unreadable' | 'malformed',
    message: string,
  ) {
    super(message);
  }
}

/** A tool's file as read: its parsed JSON, its text (for the layout) and its stat signature. */
export interface ToolFile {
  path: string;
  doc: unknown;
  text: string;
  signature: string;
}

function readFailure(file: string, err: unknown): ToolFileError {
  const code = (err as NodeJS.ErrnoException).code;
  if (code === 'ENOENT') return new ToolFileError(file, 'missing', `${file} does not exist`);
  if (code === 'EACCES' || code === 'EPERM') return new ToolFileError(file, 'unreadable', `Cannot read ${file}: permission denied`);
  if (code === 'EISDIR') return new ToolFileError(file, 'unreadable', `Cannot read ${file}: it is a directory`);
  return new ToolFileError(file, 'unreadable', `Cannot read ${file}: ${code ?? 'read failed'}`);
}

/** Reads and parses `file` (an absolute path). Throws ToolFileError. */
export function readToolFile(file: string): ToolFile {
  let fd: number;
  try {
    fd = fs.openSync(file, 'r');
  } catch (err) {
    throw readFailure(file, err);
  }
  let text: string;
  let signature: string;
  try {
    const st = fs.fstatSync(fd);
    if (!st.isFile()) throw new ToolFileError(file, 'unreadable', `Cannot read ${file}: it is not a regular file`);
    if (st.size > MAX_BYTES) throw new ToolFileError(file, 'malformed', `${file} is too large to be a login file`);
    signature = signatureOf(st);
    text = fs.readFileSync(fd, 'utf8');
  } catch (err) {
    if (err instanceof ToolFileError) throw err;
    throw readFailure(file, err);
  } finally {
    fs.closeSync(fd);
  }
  if (text.trim().length === 0) throw new ToolFileError(file, 'malformed', `${file} is empty`);
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch {
    // JSON.parse's message quotes part of the text, which holds secrets.
    throw new ToolFileError(file, 'malformed', `${file} is not valid JSON`);
  }
  return { path: file, doc, text, signature };
}

/** JSON text in the layout of `original`: its indentation (or none) and its final newline. */
function inLayoutOf(original: string, doc: unknown): string {
  const indent = /^\{\r?\n([ \t]+)\S/.exec(original)?.[1];
  const eol = original.includes('\r\n') ? '\r\n' : '\n';
  let text = JSON.stringify(doc, null, indent);
  if (indent !== undefined && eol === '\r\n') text = text.replace(/\n/g, '\r\n');
  return /\r?\n$/.test(original) ? text + eol : text;
}

/**
 * Replaces the file `read` came from with `doc`, unless the file changed since it was read (then
 * returns false and writes nothing: the caller decided on content it no longer has). A symlink is
 * followed, so the link stays and its target is replaced. Throws on I/O errors.
 */
export function rewriteToolFile(read: ToolFile, doc: unknown): boolean {
  const target = fs.realpathSync(read.path);
  const st = fs.statSync(target);
  if (signatureOf(st) !== read.signature) return false;
  const owner = process.getuid?.() === 0 ? { uid: Number(st.uid), gid: Number(st.gid) } : undefined;
  writeFileAtomic(target, inLayoutOf(read.text, doc), { mode: Number(st.mode) & 0o7777, ...(owner && { owner }) });
  return true;
}
