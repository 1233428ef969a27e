/**
 * Tokens and keys in one AES-256-GCM encrypted file, `<dataDir>/store.enc` (format: crypto.ts).
 *
 * Key: scrypt(CREDPROXY_PASSPHRASE) when that variable is set, else the random `<dataDir>/store.key`.
 * Writes: re-read + modify + atomic replace under a cross-process lock on the store file, so no
 * process loses another's update. Reads take no lock: the decrypted document is cached and
 * revalidated by the file's (inode, size, mtime) signature, which is also the change stamp.
 */
import fs from 'node:fs';
import path from 'node:path';
import { ensurePrivateDir, removeStaleTemps, signatureOf, statSignature, writeFileAtomic } from './atomicWrite.js';
import {
  derivePassphraseKey,
  HeaderError,
  keyFileParams,
  newPassphraseParams,
  openStore,
  parseHeader,
  sealStore,
  type KeyKind,
  type KeyParams,
  type StoreHeader,
} from './crypto.js';
import {
  checkKeyName,
  checkKeyValue,
  checkTokenNames,
  cloneDocument,
  deleteToken,
  DocumentError,
  emptyDocument,
  getTokenJson,
  parseDocument,
  putTokenJson,
  serializeDocument,
  sortedBuckets,
  sortedProviders,
  tokenToJson,
  type CredentialDocument,
} from './document.js';
import { ensureKeyFile, readKeyFile } from './keyFile.js';
import { tokenLockPath, withFileLock } from './locks.js';
import { StoreError, type KeyStore, type StoredToken, type TokenStore } from './types.js';

export const PASSPHRASE_ENV = 'CREDPROXY_PASSPHRASE';

/** The passphrase the file store takes from `env`; an empty value counts as unset. */
export function passphraseFrom(env: NodeJS.ProcessEnv): string | undefined {
  return env[PASSPHRASE_ENV] || undefined;
}

/** Where the file store under `dataDir` keeps its files (nothing is created). */
export function fileStorePaths(dataDir: string): { storePath: string; keyPath: string; locksDir: string } {
  const dir = path.resolve(dataDir);
  return { storePath: path.join(dir, 'store.enc'), keyPath: path.join(dir, 'store.key'), locksDir: path.join(dir, 'locks') };
}

export interface FileStoreOptions {
  dataDir: string;
  /** Where CREDPROXY_PASSPHRASE is read from; defaults to process.env. */
  env?: NodeJS.ProcessEnv;
  /** Wait for the store-file lock (held for milliseconds per write). Default 15 s. */
  lockWaitMs?: number;
  /** Wait for a refresh lock (held across refresh network calls). Default 60 s. */
  refreshLockWaitMs?: number;
  /** Age after which a lock left by a crashed process is broken (min 2 s). Default 10 s. */
  lockStaleMs?: number;
}

interface Snapshot {
  /** Signature of the file this document was read from ('absent' for no file). */
  sig: string;
  doc: CredentialDocument;
  /** Key parameters of that file; null when there is no file yet. */
  params: KeyParams | null;
}

/**
 * Why a store whose header says `kind` cannot be opened with `passphrase` (set or not), or null when
 * they match. `doctor` asks the same question of the header alone.
 */
export function keySourceMismatch(paths: { storePath: string; keyPath: string }, kind: KeyKind, passphrase: string | undefined): StoreError | null {
  if (kind === 'passphrase' && !passphrase) {
    return new StoreError(
      'decrypt_failed',
      `The credential store at ${paths.storePath} was created with ${PASSPHRASE_ENV}, which is not set now; set it to the same passphrase to open the store`,
    );
  }
  if (kind === 'keyfile' && passphrase) {
    return new StoreError(
      'decrypt_failed',
      `The credential store at ${paths.storePath} is encrypted with the key file ${paths.keyPath}, not a passphrase, but ${PASSPHRASE_ENV} is set; unset it to open this store`,
    );
  }
  return null;
}

/** The error of a key-file store whose key file is gone. */
export function missingKeyFile(paths: { storePath: string; keyPath: string }): StoreError {
  return new StoreError(
    'decrypt_failed',
    `The credential store at ${paths.storePath} needs its key file ${paths.keyPath}, which is missing; restore it — the store cannot be decrypted without it`,
  );
}

export class FileStore implements TokenStore, KeyStore {
  readonly backend = 'file' as const;
  readonly storePath: string;
  readonly keyPath: string;
  readonly locksDir: string;
  private readonly passphrase: string | undefined;
  private readonly lockWaitMs: number;
  private readonly refreshLockWaitMs: number;
  private readonly lockStaleMs: number;
  private snapshot: Snapshot | null = null;
  private fileKey: Buffer | null = null;

  private constructor(options: FileStoreOptions) {
    const paths = fileStorePaths(options.dataDir);
    this.storePath = paths.storePath;
    this.keyPath = paths.keyPath;
    this.locksDir = paths.locksDir;
    this.passphrase = passphraseFrom(options.env ?? process.env);
    this.lockWaitMs = options.lockWaitMs ?? 15_000;
    this.refreshLockWaitMs = options.refreshLockWaitMs ?? 60_000;
    this.lockStaleMs = Math.max(2000, options.lockStaleMs ?? 10_000);
  }

  /**
   * Opens (creating the data dir 0700, and the key file when needed) and reads the store once, so a
   * wrong passphrase, missing key file or damaged file fails here with a specific StoreError.
   */
  static async open(options: FileStoreOptions): Promise<FileStore> {
    const store = new FileStore(options);
    const dir = path.dirname(store.storePath);
    try {
      ensurePrivateDir(dir);
      ensurePrivateDir(store.locksDir);
      // A key file is only minted for a store that does not exist yet: an existing key-file store
      // whose key is gone must fail loudly, not be "repaired" with a key that cannot decrypt it.
      if (!store.passphrase && !fs.existsSync(store.storePath)) ensureKeyFile(store.keyPath);
    } catch (err) {
      throw asStoreError(err, `prepare the data directory ${dir}`);
    }
    await store.current();
    return store;
  }

  /** Which key new writes use: the passphrase when set, else the key file. */
  get keyKind(): KeyKind {
    return this.passphrase ? 'passphrase' : 'keyfile';
  }

  // ---- TokenStore ----

  async getToken(provider: string, bucket: string): Promise<StoredToken | null> {
    checkTokenNames(provider, bucket);
    const json = getTokenJson((await this.current()).doc, provider, bucket);
    return json === undefined ? null : (JSON.parse(json) as StoredToken);
  }

  async saveToken(provider: string, bucket: string, token: StoredToken): Promise<void> {
    checkTokenNames(provider, bucket);
    const json = tokenToJson(token);
    await this.mutate((doc) => {
      putTokenJson(doc, provider, bucket, json);
      return { result: undefined, changed: true };
    });
  }

  async removeToken(provider: string, bucket: string): Promise<boolean> {
    checkTokenNames(provider, bucket);
    return this.mutate((doc) => {
      const existed = deleteToken(doc, provider, bucket);
      return { result: existed, changed: existed };
    });
  }

  async listProviders(): Promise<string[]> {
    return sortedProviders((await this.current()).doc);
  }

  async listBuckets(provider: string): Promise<string[]> {
    return sortedBuckets((await this.current()).doc, provider);
  }

  /** Holds `<dataDir>/locks/token-<sha256>.lock` for the whole of `fn`; fn may write the store. */
  async withTokenLock<T>(provider: string, bucket: string, fn: () => Promise<T>, signal?: AbortSignal): Promise<T> {
    checkTokenNames(provider, bucket);
    const lockPath = tokenLockPath(this.locksDir, provider, bucket);
    const what = `the refresh lock of ${provider}:${bucket}`;
    return withFileLock(lockPath, { waitMs: this.refreshLockWaitMs, staleMs: this.lockStaleMs, what }, () => fn(), signal);
  }

  changeStamp(): string {
    return statSignature(this.storePath);
  }

  // ---- KeyStore ----

  async getKey(name: string): Promise<string | null> {
    checkKeyName(name);
    return (await this.current()).doc.keys.get(name) ?? null;
  }

  async setKey(name: string, value: string): Promise<void> {
    checkKeyName(name);
    checkKeyValue(value);
    await this.mutate((doc) => {
      doc.keys.set(name, value);
      return { result: undefined, changed: true };
    });
  }

  async deleteKey(name: string): Promise<boolean> {
    checkKeyName(name);
    return this.mutate((doc) => {
      const existed = doc.keys.delete(name);
      return { result: existed, changed: existed };
    });
  }

  async listKeys(): Promise<string[]> {
    return [...(await this.current()).doc.keys.keys()].sort();
  }

  async hasKey(name: string): Promise<boolean> {
    checkKeyName(name);
    return (await this.current()).doc.keys.has(name);
  }

  /** Drops the decrypted cache. Idempotent (tokens and keys are one object that both get closed). */
  async close(): Promise<void> {
    this.snapshot = null;
    this.fileKey = null;
  }

  // ---- internals ----

  /** The current document: the cache while the file's signature is unchanged, else a fresh read. */
  private async current(): Promise<Snapshot> {
    const cached = this.snapshot;
    if (cached && cached.sig === statSignature(this.storePath)) return cached;
    return this.reload();
  }

  private async reload(): Promise<Snapshot> {
    let buf: Buffer;
    let sig: string;
    try {
      // Signature from the opened descriptor, so it describes exactly the bytes that were read.
      const fd = fs.openSync(this.storePath, 'r');
      try {
        sig = signatureOf(fs.fstatSync(fd));
        buf = fs.readFileSync(fd);
      } finally {
        fs.closeSync(fd);
      }
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw asStoreError(err, `read ${this.storePath}`);
      return (this.snapshot = { sig: 'absent', doc: emptyDocument(), params: null });
    }
    let header: StoreHeader;
    try {
      header = parseHeader(buf);
    } catch (err) {
      if (!(err instanceof HeaderError)) throw err;
      throw new StoreError('corrupt', `The credential store at ${this.storePath} is damaged (${err.message}); it was left untouched — move it aside to start a new store`);
    }
    const key = await this.keyFor(header);
    const plain = openStore(buf, header, key);
    if (!plain) {
      throw new StoreError(
        'decrypt_failed',
        header.kind === 'passphrase'
          ? `Cannot decrypt the credential store at ${this.storePath}: wrong ${PASSPHRASE_ENV} or the file is damaged`
          : `Cannot decrypt the credential store at ${this.storePath}: the key file ${this.keyPath} does not belong to it or the file is damaged`,
      );
    }
    let doc: CredentialDocument;
    try {
      doc = parseDocument(plain.toString('utf8'));
    } catch (err) {
      if (!(err instanceof DocumentError)) throw err;
      throw new StoreError('corrupt', `The credential store at ${this.storePath} decrypted but is damaged (${err.message}); it was left untouched`);
    }
    const { kind, salt, logN, r, p } = header;
    return (this.snapshot = { sig, doc, params: { kind, salt, logN, r, p } });
  }

  /** The key that opens a file with `header`, or a StoreError that says which secret is missing. */
  private async keyFor(params: KeyParams): Promise<Buffer> {
    const mismatch = keySourceMismatch(this, params.kind, this.passphrase);
    if (mismatch) throw mismatch;
    if (params.kind === 'passphrase') return derivePassphraseKey(this.passphrase!, params);
    if (!this.fileKey) {
      this.fileKey = readKeyFile(this.keyPath);
      if (!this.fileKey) throw missingKeyFile(this);
    }
    return this.fileKey;
  }

  /** Key parameters for the next write: the existing file's (same salt, cached key), or fresh ones. */
  private paramsForWrite(existing: KeyParams | null): KeyParams {
    if (existing) return existing;
    if (this.passphrase) return newPassphraseParams();
    ensureKeyFile(this.keyPath);
    return keyFileParams();
  }

  /** Re-read, change and atomically rewrite the store under the store-file lock. */
  private async mutate<T>(change: (doc: CredentialDocument) => { result: T; changed: boolean }): Promise<T> {
    const options = { waitMs: this.lockWaitMs, staleMs: this.lockStaleMs, what: 'the credential store' };
    return withFileLock(this.storePath, options, async (lock) => {
      const before = await this.current();
      const doc = cloneDocument(before.doc);
      const { result, changed } = change(doc);
      if (!changed) return result;
      try {
        const params = this.paramsForWrite(before.params);
        const sealed = sealStore(Buffer.from(serializeDocument(doc), 'utf8'), await this.keyFor(params), params);
        removeStaleTemps(this.storePath);
        lock.assertHeld();
        writeFileAtomic(this.storePath, sealed);
        const sig = signatureOf(fs.statSync(this.storePath));
        this.snapshot = { sig, doc, params };
      } catch (err) {
        throw asStoreError(err, `write ${this.storePath}`);
      }
      return result;
    });
  }
}

/** Wraps a filesystem error as StoreError('io') naming the action and errno code only. */
function asStoreError(err: unknown, action: string): StoreError {
  if (err instanceof StoreError) return err;
  const code = (err as NodeJS.ErrnoException).code;
  return new StoreError('io', `Cannot ${action}: ${code ?? (err as Error).message}`);
}
