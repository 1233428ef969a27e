/**
 * Encryption of the file store (AES-256-GCM) and its key derivation.
 *
 * store.enc, format version 1 (all integers unsigned bytes):
 *
 *   offset size  field
 *   0      4     magic "CPXS"
 *   4      1     format version = 1
 *   5      1     key kind: 1 = random 32-byte key file (store.key), 2 = scrypt(CREDPROXY_PASSPHRASE)
 *   6      1     scrypt log2(N)  (0 for kind 1)
 *   7      1     scrypt r        (0 for kind 1)
 *   8      1     scrypt p        (0 for kind 1)
 *   9      16    scrypt salt     (random; unused for kind 1)
 *   25     12    GCM IV, fresh random per write
 *   37     16    GCM auth tag
 *   53     ...   ciphertext of the UTF-8 JSON document
 *
 * Bytes 0..37 are the GCM additional data, so a tampered header (say, a flipped key kind or lower
 * scrypt cost) fails authentication like tampered ciphertext does.
 */
import { createCipheriv, createDecipheriv, randomBytes, scrypt } from 'node:crypto';

export const MAGIC = Buffer.from('CPXS', 'ascii');
export const FORMAT_VERSION = 1;
export const HEADER_LENGTH = 53;
const AAD_LENGTH = 37;
const SALT_LENGTH = 16;
const IV_LENGTH = 12;
export const KEY_LENGTH = 32;

export type KeyKind = 'keyfile' | 'passphrase';

export interface KeyParams {
  kind: KeyKind;
  salt: Buffer;
  logN: number;
  r: number;
  p: number;
}

export interface StoreHeader extends KeyParams {
  version: number;
  iv: Buffer;
  tag: Buffer;
}

/** scrypt cost for new stores: N = 2^15, r = 8 (32 MiB, ~0.1 s) — paid once per process. */
/** Scrypt costs a store may ask for: enough to resist guessing, bounded so a forged header cannot make opening it allocate gigabytes. */
export function scryptParamsInBounds(logN: number, r: number, p: number): boolean {
  return Number.isInteger(logN) && Number.isInteger(r) && Number.isInteger(p) && logN >= 10 && logN <= 20 && r >= 1 && r <= 32 && p >= 1 && p <= 16;
}

export function newPassphraseParams(): KeyParams {
  return { kind: 'passphrase', salt: randomBytes(SALT_LENGTH), logN: 15, r: 8, p: 1 };
}

export function keyFileParams(): KeyParams {
  return { kind: 'keyfile', salt: Buffer.alloc(SALT_LENGTH), logN: 0, r: 0, p: 0 };
}

/** Why a header could not be parsed; safe to print. */
export class HeaderError extends Error {}

export function parseHeader(buf: Buffer): StoreHeader {
  if (buf.length >= MAGIC.length && !buf.subarray(0, MAGIC.length).equals(MAGIC)) throw new HeaderError('not a credproxy store (bad magic)');
  if (buf.length < HEADER_LENGTH) throw new HeaderError(`file too short (${buf.length} bytes)`);
  const version = buf[4]!;
  if (version !== FORMAT_VERSION) throw new HeaderError(`unsupported format version ${version} (this build reads ${FORMAT_VERSION})`);
  const kindByte = buf[5]!;
  if (kindByte !== 1 && kindByte !== 2) throw new HeaderError(`unknown key kind ${kindByte}`);
  const kind: KeyKind = kindByte === 1 ? 'keyfile' : 'passphrase';
  const logN = buf[6]!;
  const r = buf[7]!;
  const p = buf[8]!;
  // Bounds keep a damaged header from asking scrypt for gigabytes.
  if (kind === 'passphrase' && !scryptParamsInBounds(logN, r, p)) {
    throw new HeaderError('scrypt parameters out of range');
  }
  return {
    version,
    kind,
    logN,
    r,
    p,
    salt: Buffer.from(buf.subarray(9, 25)),
    iv: Buffer.from(buf.subarray(25, 37)),
    tag: Buffer.from(buf.subarray(37, 53)),
  };
}

/** Encrypts `plaintext` into a complete store file. */
export function sealStore(plaintext: Buffer, key: Buffer, params: KeyParams): Buffer {
  const iv = randomBytes(IV_LENGTH);
  const head = Buffer.alloc(AAD_LENGTH);
  MAGIC.copy(head, 0);
  head[4] = FORMAT_VERSION;
  head[5] = params.kind === 'keyfile' ? 1 : 2;
  head[6] = params.logN;
  head[7] = params.r;
  head[8] = params.p;
  params.salt.copy(head, 9);
  iv.copy(head, 25);
  const cipher = createCipheriv('aes-256-gcm', key, iv);
  cipher.setAAD(head);
  const body = Buffer.concat([cipher.update(plaintext), cipher.final()]);
  return Buffer.concat([head, cipher.getAuthTag(), body]);
}

/** Decrypts a store file; null when authentication fails (wrong key or damaged bytes). */
export function openStore(buf: Buffer, header: StoreHeader, key: Buffer): Buffer | null {
  const decipher = createDecipheriv('aes-256-gcm', key, header.iv);
  decipher.setAAD(buf.subarray(0, AAD_LENGTH));
  decipher.setAuthTag(header.tag);
  try {
    return Buffer.concat([decipher.update(buf.subarray(HEADER_LENGTH)), decipher.final()]);
  } catch {
    return null;
  }
}

interface DerivedKey {
  passphrase: string;
  key: Promise<Buffer>;
}

// scrypt is deliberately slow, so each (salt, cost, passphrase) is derived once per process.
const derived = new Map<string, DerivedKey[]>();

/** scrypt(passphrase, salt) with the header's cost, cached per process. */
export function derivePassphraseKey(passphrase: string, params: KeyParams): Promise<Buffer> {
  const id = `${params.salt.toString('hex')}:${params.logN}:${params.r}:${params.p}`;
  const list = derived.get(id) ?? [];
  const hit = list.find((d) => d.passphrase === passphrase);
  if (hit) return hit.key;
  const N = 2 ** params.logN;
  const key = new Promise<Buffer>((resolve, reject) => {
    scrypt(passphrase.normalize('NFC'), params.salt, KEY_LENGTH, { N, r: params.r, p: params.p, maxmem: 256 * N * params.r }, (err, out) =>
      err ? reject(err) : resolve(out),
    );
  });
  const entry = { passphrase, key };
  list.push(entry);
  derived.set(id, list);
  // A failed derivation must not stay cached.
  key.catch(() => derived.set(id, (derived.get(id) ?? []).filter((d) => d !== entry)));
  return key;
}

/**
 * Seals one value on its own (the PostgreSQL store's rows): IV (12) ‖ GCM tag (16) ‖ ciphertext.
 * `aad` names what the value belongs to (provider and bucket, or key name), so a value copied into
 * another row fails authentication instead of passing for that row's value.
 */
export function sealValue(plaintext: Buffer, key: Buffer, aad: Buffer): Buffer {
  const iv = randomBytes(IV_LENGTH);
  const cipher = createCipheriv('aes-256-gcm', key, iv);
  cipher.setAAD(aad);
  const body = Buffer.concat([cipher.update(plaintext), cipher.final()]);
  return Buffer.concat([iv, cipher.getAuthTag(), body]);
}

/** Opens a sealValue() result; null when authentication fails (wrong key, other row, damaged bytes). */
export function openValue(sealed: Buffer, key: Buffer, aad: Buffer): Buffer | null {
  if (sealed.length < IV_LENGTH + 16) return null;
  const decipher = createDecipheriv('aes-256-gcm', key, sealed.subarray(0, IV_LENGTH));
  decipher.setAAD(aad);
  decipher.setAuthTag(sealed.subarray(IV_LENGTH, IV_LENGTH + 16));
  try {
    return Buffer.concat([decipher.update(sealed.subarray(IV_LENGTH + 16)), decipher.final()]);
  } catch {
    return null;
  }
}
