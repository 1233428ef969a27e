/**
 * Tokens and keys in the OS keyring via @napi-rs/keyring: service "credproxy", one item per token
 * (account `token:<provider>:<bucket>`, JSON) and per key (account `key:<name>`). Names cannot
 * contain ':' (protocol/names.ts), so accounts parse back unambiguously.
 *
 * Linux backend pinning: @napi-rs/keyring 2.x picks the Secret Service and silently falls back to
 * the kernel keyutils keyring, which "will not persist across reboots". Every entry here is built
 * with `{ linux: { store: 'secret-service' } }` (EntryOptions, 2.1+), which makes the constructor
 * throw instead of falling back. As a second, independent check, the first write of each store
 * instance on Linux is looked up again with findCredentialsAsync — a zbus Secret Service search, a
 * different code path from the libdbus one that wrote it — and the store refuses to continue
 * (StoreError 'unavailable') when the item is not there.
 *
 * The native library reads DBUS_SESSION_BUS_ADDRESS from the real process environment at its first
 * use and keeps that connection setting for the life of the process.
 *
 * A locked collection (a keyring nobody unlocked at login, or one the user locked) makes the library
 * ask the Secret Service to unlock it, which shows a prompt on a desktop and is dismissed at once
 * where no prompter can run. Either way the operation fails with StoreError 'unavailable' naming the
 * locked collection, without a retry (a retry would only prompt again) and without changing anything.
 *
 * Keyrings cannot be watched, so writers serialize on a lock around `<dataDir>/keyring.state` and
 * rewrite that small file after every change; its stat signature is the change stamp, and reads are
 * cached until it moves. Changes made behind credproxy's back (seahorse, secret-tool) are not seen
 * until the next credproxy write.
 */
import fs from 'node:fs';
import path from 'node:path';
import { AsyncEntry, findCredentialsAsync } from '@napi-rs/keyring';
import { isBucketName, isKeyName, isProviderName } from '../protocol/names.js';
import { ensurePrivateDir, statSignature, writeFileAtomic } from './atomicWrite.js';
import { checkKeyName, checkKeyValue, checkTokenNames, tokenToJson } from './document.js';
import { KEYRING_ENTRY_OPTIONS, KEYRING_SERVICE } from './keyringNames.js';
import { tokenLockPath, withFileLock } from './locks.js';
import { StoreError, type KeyStore, type StoredToken, type TokenStore } from './types.js';

export { KEYRING_ENTRY_OPTIONS, KEYRING_SERVICE } from './keyringNames.js';

export interface KeyringStoreOptions {
  /** Holds keyring.state and the lock directories. */
  dataDir: string;
  /** Keyring service name; tests may isolate themselves with another one. Default "credproxy". */
  service?: string;
  lockWaitMs?: number;
  refreshLockWaitMs?: number;
  lockStaleMs?: number;
}

const tokenAccount = (provider: string, bucket: string) => `token:${provider}:${bucket}`;
const keyAccount = (name: string) => `key:${name}`;

interface Listing {
  tokens: Map<string, string[]>;
  keys: string[];
}

export class KeyringStore implements TokenStore, KeyStore {
  readonly backend = 'keyring' as const;
  readonly service: string;
  readonly statePath: string;
  readonly locksDir: string;
  private readonly lockWaitMs: number;
  private readonly refreshLockWaitMs: number;
  private readonly lockStaleMs: number;
  private readonly entries = new Map<string, AsyncEntry>();
  // Read cache, valid while the change stamp equals cacheStamp.
  private cacheStamp = '';
  private readonly values = new Map<string, string | null>();
  private listing: Listing | null = null;
  private verified = process.platform !== 'linux';

  private constructor(options: KeyringStoreOptions) {
    const dir = path.resolve(options.dataDir);
    this.service = options.service ?? KEYRING_SERVICE;
    this.statePath = path.join(dir, 'keyring.state');
    this.locksDir = path.join(dir, 'locks');
    this.lockWaitMs = options.lockWaitMs ?? 15_000;
    this.refreshLockWaitMs = options.refreshLockWaitMs ?? 60_000;
    this.lockStaleMs = Math.max(2000, options.lockStaleMs ?? 10_000);
  }

  /**
   * Prepares the data dir and state file. It does not contact the keyring: a keyring that hangs would
   * block the process in the synchronous native constructor, so openStores probes it in a child first.
   */
  static async open(options: KeyringStoreOptions): Promise<KeyringStore> {
    const store = new KeyringStore(options);
    try {
      ensurePrivateDir(path.dirname(store.statePath));
      ensurePrivateDir(store.locksDir);
    } catch (err) {
      throw new StoreError('io', `Cannot prepare the data directory ${path.dirname(store.statePath)}: ${(err as NodeJS.ErrnoException).code ?? 'error'}`);
    }
    if (!fs.existsSync(store.statePath)) await store.write(async () => undefined);
    return store;
  }

  // ---- TokenStore ----

  async getToken(provider: string, bucket: string): Promise<StoredToken | null> {
    checkTokenNames(provider, bucket);
    const account = tokenAccount(provider, bucket);
    const json = await this.read(account);
    if (json === null) return null;
    try {
      return JSON.parse(json) as StoredToken;
    } catch {
      throw new StoreError('corrupt', `The keyring item ${this.service}/${account} does not hold valid JSON`);
    }
  }

  async saveToken(provider: string, bucket: string, token: StoredToken): Promise<void> {
    checkTokenNames(provider, bucket);
    const json = tokenToJson(token);
    await this.write(() => this.set(tokenAccount(provider, bucket), json));
  }

  async removeToken(provider: string, bucket: string): Promise<boolean> {
    checkTokenNames(provider, bucket);
    return this.write(() => this.remove(tokenAccount(provider, bucket)));
  }

  async listProviders(): Promise<string[]> {
    return [...(await this.list()).tokens.keys()].sort();
  }

  async listBuckets(provider: string): Promise<string[]> {
    return [...((await this.list()).tokens.get(provider) ?? [])].sort();
  }

  async withTokenLock<T>(provider: string, bucket: string, fn: () => Promise<T>, signal?: AbortSignal): Promise<T> {
    checkTokenNames(provider, bucket);
    const what = `the refresh lock of ${provider}:${bucket}`;
    const options = { waitMs: this.refreshLockWaitMs, staleMs: this.lockStaleMs, what };
    return withFileLock(tokenLockPath(this.locksDir, provider, bucket), options, () => fn(), signal);
  }

  changeStamp(): string {
    return statSignature(this.statePath);
  }

  // ---- KeyStore ----

  async getKey(name: string): Promise<string | null> {
    checkKeyName(name);
    return this.read(keyAccount(name));
  }

  async setKey(name: string, value: string): Promise<void> {
    checkKeyName(name);
    checkKeyValue(value);
    await this.write(() => this.set(keyAccount(name), value));
  }

  async deleteKey(name: string): Promise<boolean> {
    checkKeyName(name);
    return this.write(() => this.remove(keyAccount(name)));
  }

  async listKeys(): Promise<string[]> {
    return [...(await this.list()).keys].sort();
  }

  async hasKey(name: string): Promise<boolean> {
    return (await this.getKey(name)) !== null;
  }

  /** Drops cached entries and values. Idempotent. */
  async close(): Promise<void> {
    this.entries.clear();
    this.values.clear();
    this.listing = null;
  }

  // ---- internals ----

  /** Resets the read cache when another writer (or this one) moved the stamp. */
  private syncCache(): void {
    const stamp = this.changeStamp();
    if (stamp !== this.cacheStamp) {
      this.values.clear();
      this.listing = null;
      this.cacheStamp = stamp;
    }
  }

  private async read(account: string): Promise<string | null> {
    this.syncCache();
    const cached = this.values.get(account);
    if (cached !== undefined) return cached;
    // Cached under the stamp read before the fetch: a write racing this read bumps the stamp after
    // its keyring change, so a stale value never outlives the next syncCache.
    const stamp = this.cacheStamp;
    const value = await this.call(account, 'read', (entry) => entry.getPassword());
    if (this.cacheStamp === stamp) this.values.set(account, value);
    return value;
  }

  private async list(): Promise<Listing> {
    this.syncCache();
    if (this.listing) return this.listing;
    const stamp = this.cacheStamp;
    const listing: Listing = { tokens: new Map(), keys: [] };
    let found: { account: string; password: string }[];
    try {
      found = await findCredentialsAsync(this.service);
    } catch (err) {
      throw keyringError('list', err);
    }
    for (const { account, password } of found) {
      const [kind, a, b, extra] = account.split(':');
      if (kind === 'token' && isProviderName(a) && isBucketName(b) && extra === undefined) {
        listing.tokens.set(a, [...(listing.tokens.get(a) ?? []), b]);
      } else if (kind === 'key' && isKeyName(a) && b === undefined) {
        listing.keys.push(a);
      } else {
        continue;
      }
      if (this.cacheStamp === stamp) this.values.set(account, password);
    }
    if (this.cacheStamp === stamp) this.listing = listing;
    return listing;
  }

  private async set(account: string, value: string): Promise<void> {
    await this.call(account, 'write', (entry) => entry.setPassword(value));
    if (!this.verified) await this.verifySecretService(account);
  }

  private async remove(account: string): Promise<boolean> {
    return this.call(account, 'delete', (entry) => entry.deleteCredential());
  }

  /** See the module comment: the written item must be visible through a Secret Service search. */
  private async verifySecretService(account: string): Promise<void> {
    let found: { account: string }[];
    try {
      found = await findCredentialsAsync(this.service);
    } catch (err) {
      throw keyringError('verify', err);
    }
    if (!found.some((c) => c.account === account)) {
      await this.call(account, 'delete', (entry) => entry.deleteCredential()).catch(() => undefined);
      throw new StoreError(
        'unavailable',
        'The OS keyring accepted a write that the Secret Service cannot find (it may have gone to the kernel keyring, which loses data on reboot); refusing to use the keyring backend',
      );
    }
    this.verified = true;
  }

  /**
   * Runs a keyring call; a broken cached entry (say, the Secret Service restarted) is rebuilt once.
   * A locked collection is not retried: the entry is fine and a retry would only prompt again.
   */
  private async call<T>(account: string, action: string, op: (entry: AsyncEntry) => Promise<T>): Promise<T> {
    for (let attempt = 0; ; attempt++) {
      try {
        return await op(this.entry(account));
      } catch (err) {
        if (isLockedCollection(err)) throw keyringError(action, err);
        this.entries.delete(account);
        if (attempt >= 1) throw keyringError(action, err);
      }
    }
  }

  private entry(account: string): AsyncEntry {
    let entry = this.entries.get(account);
    if (!entry) {
      entry = new AsyncEntry(this.service, account, KEYRING_ENTRY_OPTIONS);
      this.entries.set(account, entry);
    }
    return entry;
  }

  /** Runs a change under the keyring-state lock and then moves the stamp, even if the change failed. */
  private async write<T>(change: () => Promise<T>): Promise<T> {
    const options = { waitMs: this.lockWaitMs, staleMs: this.lockStaleMs, what: 'the keyring state' };
    return withFileLock(this.statePath, options, async () => {
      try {
        return await change();
      } finally {
        this.bumpState();
      }
    });
  }

  private bumpState(): void {
    let counter = 0;
    try {
      counter = Number.parseInt(fs.readFileSync(this.statePath, 'utf8'), 10) || 0;
    } catch {
      // absent or unreadable: start over, the signature changes either way
    }
    try {
      writeFileAtomic(this.statePath, `${counter + 1}\n`);
    } catch (err) {
      throw new StoreError('io', `Cannot update ${this.statePath}: ${(err as NodeJS.ErrnoException).code ?? 'error'}`);
    }
    this.syncCache();
  }
}

function errorText(err: unknown): string {
  return String((err as Error)?.message ?? err);
}

/**
 * The library's ways of saying the collection is locked: dbus-secret-service (entries) reports a
 * dismissed unlock prompt or a locked object, the zbus secret-service path (searches) the Secret
 * Service's IsLocked error or its own dismissed prompt.
 */
function isLockedCollection(err: unknown): boolean {
  return /unlock prompt was dismissed|prompt dismissed|object locked|Error\.IsLocked/i.test(errorText(err));
}

/** Native keyring errors describe D-Bus/keychain failures, never secret values; keep them short. */
function keyringError(action: string, err: unknown): StoreError {
  const detail = errorText(err).slice(0, 300);
  if (isLockedCollection(err)) {
    return new StoreError(
      'unavailable',
      `The OS keyring failed to ${action}: its default collection (the Secret Service collection with the alias "default", normally the "login" keyring) is locked and was not unlocked (${detail}). Unlock it, for example by logging in to the desktop session or with \`gnome-keyring-daemon --unlock\`, and try again`,
    );
  }
  return new StoreError('unavailable', `The OS keyring failed to ${action}: ${detail}`);
}
