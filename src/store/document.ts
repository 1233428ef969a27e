/**
 * The in-memory credential document shared by the memory and file stores, plus the name and
 * token checks every backend applies. Tokens are held as JSON text: a read is one JSON.parse, which
 * both is cheap and hands the caller a fresh copy that cannot alias the cache.
 */
import { invalidNameMessage, isName, type NameKind } from '../protocol/names.js';
import { StoreError, type StoredToken } from './types.js';

export interface CredentialDocument {
  /** provider → bucket → token JSON. Maps, so names like `__proto__` are plain data. */
  tokens: Map<string, Map<string, string>>;
  /** key name → value. */
  keys: Map<string, string>;
}

export function emptyDocument(): CredentialDocument {
  return { tokens: new Map(), keys: new Map() };
}

/** Why a decrypted document is unusable; safe to print (never contains values). */
export class DocumentError extends Error {}

/** Parses `{tokens:{provider:{bucket:token}}, keys:{name:value}}`. */
export function parseDocument(text: string): CredentialDocument {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    throw new DocumentError('content is not valid JSON');
  }
  if (!isRecord(raw) || !isRecord(raw.tokens) || !isRecord(raw.keys)) throw new DocumentError('content lacks the tokens/keys objects');
  const doc = emptyDocument();
  for (const [provider, buckets] of Object.entries(raw.tokens)) {
    if (!isRecord(buckets)) throw new DocumentError(`tokens of provider ${JSON.stringify(provider)} are not an object`);
    const map = new Map<string, string>();
    for (const [bucket, token] of Object.entries(buckets)) {
      if (!isStoredToken(token)) throw new DocumentError(`token ${provider}:${bucket} is malformed`);
      map.set(bucket, JSON.stringify(token));
    }
    if (map.size > 0) doc.tokens.set(provider, map);
  }
  for (const [name, value] of Object.entries(raw.keys)) {
    if (typeof value !== 'string') throw new DocumentError(`key ${JSON.stringify(name)} is not a string`);
    doc.keys.set(name, value);
  }
  return doc;
}

/** Serializes by splicing the stored token JSON, so tokens are not re-parsed on every write. */
export function serializeDocument(doc: CredentialDocument): string {
  const providers = [...doc.tokens].map(
    ([provider, buckets]) => `${JSON.stringify(provider)}:{${[...buckets].map(([b, json]) => `${JSON.stringify(b)}:${json}`).join(',')}}`,
  );
  return `{"tokens":{${providers.join(',')}},"keys":${JSON.stringify(Object.fromEntries(doc.keys))}}`;
}

export function cloneDocument(doc: CredentialDocument): CredentialDocument {
  return { tokens: new Map([...doc.tokens].map(([p, b]) => [p, new Map(b)])), keys: new Map(doc.keys) };
}

export function getTokenJson(doc: CredentialDocument, provider: string, bucket: string): string | undefined {
  return doc.tokens.get(provider)?.get(bucket);
}

export function putTokenJson(doc: CredentialDocument, provider: string, bucket: string, json: string): void {
  let buckets = doc.tokens.get(provider);
  if (!buckets) doc.tokens.set(provider, (buckets = new Map()));
  buckets.set(bucket, json);
}

export function deleteToken(doc: CredentialDocument, provider: string, bucket: string): boolean {
  const buckets = doc.tokens.get(provider);
  if (!buckets?.delete(bucket)) return false;
  if (buckets.size === 0) doc.tokens.delete(provider);
  return true;
}

export function sortedProviders(doc: CredentialDocument): string[] {
  return [...doc.tokens.keys()].sort();
}

export function sortedBuckets(doc: CredentialDocument, provider: string): string[] {
  return [...(doc.tokens.get(provider)?.keys() ?? [])].sort();
}

// ---- checks every backend applies ----

export function checkTokenNames(provider: string, bucket: string): void {
  if (!isName('provider', provider)) throw invalidName('provider', provider);
  if (!isName('bucket', bucket)) throw invalidName('bucket', bucket);
}

export function checkKeyName(name: string): void {
  if (!isName('key', name)) throw invalidName('key', name);
}

function invalidName(kind: NameKind, name: unknown): StoreError {
  return new StoreError('invalid_name', invalidNameMessage(kind, name));
}

/** JSON of a token to store; throws TypeError (naming no values) when it is not a StoredToken. */
export function tokenToJson(token: StoredToken): string {
  if (!isStoredToken(token)) {
    throw new TypeError('Refusing to store a token without string access_token, finite numeric expiry and string token_type');
  }
  return JSON.stringify(token);
}

export function checkKeyValue(value: string): void {
  if (typeof value !== 'string') throw new TypeError('An API key value must be a string');
}

function isStoredToken(value: unknown): value is StoredToken {
  return (
    isRecord(value) &&
    typeof value.access_token === 'string' &&
    typeof value.expiry === 'number' &&
    Number.isFinite(value.expiry) &&
    typeof value.token_type === 'string'
  );
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
