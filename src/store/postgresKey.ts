/**
 * The key of the PostgreSQL store, under the file store's rules (crypto.ts, keyFile.ts,
 * fileStore.ts): scrypt(CREDPROXY_PASSPHRASE) when it is set, else the random key file
 * `<dataDir>/store.key`. The first host records the key's parameters (the scrypt salt and cost, or
 * "key file") and a sealed check value in the database; every later host must bring the same
 * secret, and is told at open when it does not.
 */
import type { ClientBase } from 'pg';
import { derivePassphraseKey, keyFileParams, newPassphraseParams, openValue, scryptParamsInBounds, sealValue, type KeyKind, type KeyParams } from './crypto.js';
import { keySourceMismatch, missingKeyFile, PASSPHRASE_ENV } from './fileStore.js';
import { ensureKeyFile, readKeyFile } from './keyFile.js';
import { StoreError } from './types.js';

const CHECK_PLAINTEXT = Buffer.from('credproxy postgres store key check v1', 'utf8');
const CHECK_AAD = Buffer.from('credproxy\u0000check', 'utf8');

/** What every error about the key ends with: the rule a fleet must follow. */
export const KEY_SHARING =
  'every host sharing the database must use the same key: the same CREDPROXY_PASSPHRASE, or a copy of the first host\'s store.key in its data directory';

interface KeyRow {
  key_kind: KeyKind;
  salt: Buffer;
  log_n: number;
  r: number;
  p: number;
  key_check: Buffer;
}

export interface StoreKeySource {
  /** The passphrase (CREDPROXY_PASSPHRASE), if set. */
  passphrase: string | undefined;
  /** Where this host keeps the key file (used when no passphrase is set). */
  keyPath: string;
  /** The store, as printed ("host/db"). */
  label: string;
}

/** The key of the store `client` is connected to; records its parameters when the store has none yet. */
export async function storeKey(client: ClientBase, source: StoreKeySource): Promise<Buffer> {
  let row = await readRow(client);
  if (!row) {
    const params = source.passphrase ? newPassphraseParams() : mintKeyFile(source.keyPath);
    const key = await keyOf(params, source);
    await client.query(
      'INSERT INTO credproxy_key_params (id, key_kind, salt, log_n, r, p, key_check) VALUES (1, $1, $2, $3, $4, $5, $6) ON CONFLICT (id) DO NOTHING',
      [params.kind, params.salt, params.logN, params.r, params.p, sealValue(CHECK_PLAINTEXT, key, CHECK_AAD)],
    );
    // Another host may have been first: its parameters win, and are checked below like any others.
    row = (await readRow(client))!;
  }
  const params: KeyParams = { kind: row.key_kind, salt: row.salt, logN: row.log_n, r: row.r, p: row.p };
  // Whoever can write the database must not be able to make every host's open allocate gigabytes.
  if (params.kind === 'passphrase' && !scryptParamsInBounds(params.logN, params.r, params.p)) {
    throw new StoreError('corrupt', `The key parameters in the PostgreSQL store (${source.label}) are out of range (scrypt logN ${params.logN}, r ${params.r}, p ${params.p})`);
  }
  const paths = { storePath: `postgres ${source.label}`, keyPath: source.keyPath };
  const mismatch = keySourceMismatch(paths, params.kind, source.passphrase);
  if (mismatch) throw new StoreError('decrypt_failed', `${mismatch.message}; ${KEY_SHARING}`);
  const key = await keyOf(params, source);
  if (!openValue(row.key_check, key, CHECK_AAD)?.equals(CHECK_PLAINTEXT)) {
    const which = params.kind === 'passphrase' ? `this host's ${PASSPHRASE_ENV}` : `this host's key file ${source.keyPath}`;
    throw new StoreError('decrypt_failed', `Cannot decrypt the PostgreSQL store at ${source.label}: ${which} is not the key it was created with; ${KEY_SHARING}`);
  }
  return key;
}

async function readRow(client: ClientBase): Promise<KeyRow | undefined> {
  const { rows } = await client.query<KeyRow>('SELECT key_kind, salt, log_n, r, p, key_check FROM credproxy_key_params WHERE id = 1');
  return rows[0];
}

/** A key file for a store that has no key yet (never for an existing one: that must fail loudly). */
function mintKeyFile(keyPath: string): KeyParams {
  try {
    ensureKeyFile(keyPath);
  } catch (err) {
    throw new StoreError('io', `Cannot create the key file ${keyPath}: ${(err as NodeJS.ErrnoException).code ?? 'error'}`);
  }
  return keyFileParams();
}

async function keyOf(params: KeyParams, source: StoreKeySource): Promise<Buffer> {
  if (params.kind === 'passphrase') return derivePassphraseKey(source.passphrase!, params);
  const key = readKeyFile(source.keyPath);
  if (!key) throw new StoreError('decrypt_failed', `${missingKeyFile({ storePath: `postgres ${source.label}`, keyPath: source.keyPath }).message}; ${KEY_SHARING}`);
  return key;
}
