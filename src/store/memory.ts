/** In-process store for tests and benchmarks: nothing is persisted. */
import {
  checkKeyName,
  checkKeyValue,
  checkTokenNames,
  deleteToken,
  emptyDocument,
  getTokenJson,
  putTokenJson,
  sortedBuckets,
  sortedProviders,
  tokenToJson,
} from './document.js';
import { withProcessLock } from './locks.js';
import type { KeyStore, StoredToken, TokenStore } from './types.js';

let instances = 0;

export class MemoryStore implements TokenStore, KeyStore {
  readonly backend = 'memory' as const;
  private readonly doc = emptyDocument();
  private readonly lockPrefix = `memory:${++instances}:`;
  private writes = 0;

  async getToken(provider: string, bucket: string): Promise<StoredToken | null> {
    checkTokenNames(provider, bucket);
    const json = getTokenJson(this.doc, provider, bucket);
    return json === undefined ? null : (JSON.parse(json) as StoredToken);
  }

  async saveToken(provider: string, bucket: string, token: StoredToken): Promise<void> {
    checkTokenNames(provider, bucket);
    putTokenJson(this.doc, provider, bucket, tokenToJson(token));
    this.writes++;
  }

  async removeToken(provider: string, bucket: string): Promise<boolean> {
    checkTokenNames(provider, bucket);
    const existed = deleteToken(this.doc, provider, bucket);
    if (existed) this.writes++;
    return existed;
  }

  async listProviders(): Promise<string[]> {
    return sortedProviders(this.doc);
  }

  async listBuckets(provider: string): Promise<string[]> {
    return sortedBuckets(this.doc, provider);
  }

  async withTokenLock<T>(provider: string, bucket: string, fn: () => Promise<T>, signal?: AbortSignal): Promise<T> {
    checkTokenNames(provider, bucket);
    return withProcessLock(`${this.lockPrefix}${provider}:${bucket}`, fn, signal);
  }

  changeStamp(): string {
    return String(this.writes);
  }

  async getKey(name: string): Promise<string | null> {
    checkKeyName(name);
    return this.doc.keys.get(name) ?? null;
  }

  async setKey(name: string, value: string): Promise<void> {
    checkKeyName(name);
    checkKeyValue(value);
    this.doc.keys.set(name, value);
    this.writes++;
  }

  async deleteKey(name: string): Promise<boolean> {
    checkKeyName(name);
    const existed = this.doc.keys.delete(name);
    if (existed) this.writes++;
    return existed;
  }

  async listKeys(): Promise<string[]> {
    return [...this.doc.keys.keys()].sort();
  }

  async hasKey(name: string): Promise<boolean> {
    checkKeyName(name);
    return this.doc.keys.has(name);
  }

  async close(): Promise<void> {}
}
