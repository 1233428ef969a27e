/**
 * Read-only API key access for a sandboxed process (PROTOCOL.md §6). Keys are managed on the host
 * only, so the write methods refuse without touching the socket.
 *
 * Like SandboxTokenStore, this is not a KeyStore: KeyStore's `backend` is a host StoreBackend and
 * its synchronous `changeStamp` cannot be implemented over a socket.
 */
import type { ProxyClient } from './ProxyClient.js';
import { ProxyClientError } from './ProxyClient.js';
import { malformed, orNullOnNotFound, stringList } from './replies.js';

export const KEY_MANAGEMENT_UNAVAILABLE = 'API key management is not available in sandbox mode. Manage keys on the host.';

/** KeyStore's methods as seen from a sandbox; setKey/deleteKey always reject. */
export interface SandboxKeyStore {
  readonly backend: 'proxy';
  getKey(name: string): Promise<string | null>;
  setKey(name: string, value: string): Promise<void>;
  deleteKey(name: string): Promise<boolean>;
  listKeys(): Promise<string[]>;
  hasKey(name: string): Promise<boolean>;
  close(): Promise<void>;
}

export class ProxyKeyStore implements SandboxKeyStore {
  readonly backend = 'proxy' as const;

  /** `release` runs on close(); by default it closes the client (the factory passes a shared-client release). */
  constructor(
    private readonly client: ProxyClient,
    private readonly release: () => Promise<void> = () => client.close(),
  ) {}

  async getKey(name: string): Promise<string | null> {
    const data = await orNullOnNotFound(this.client.request('get_api_key', { name }));
    if (!data) return null;
    if (typeof data.key !== 'string') throw malformed('get_api_key');
    return data.key;
  }

  async setKey(_name: string, _value: string): Promise<void> {
    throw new ProxyClientError('READ_ONLY', KEY_MANAGEMENT_UNAVAILABLE);
  }

  async deleteKey(_name: string): Promise<boolean> {
    throw new ProxyClientError('READ_ONLY', KEY_MANAGEMENT_UNAVAILABLE);
  }

  async listKeys(): Promise<string[]> {
    return stringList(await this.client.request('list_api_keys', {}), 'keys', 'list_api_keys');
  }

  async hasKey(name: string): Promise<boolean> {
    const data = await this.client.request('has_api_key', { name });
    if (typeof data.exists !== 'boolean') throw malformed('has_api_key');
    return data.exists;
  }

  close(): Promise<void> {
    return this.release();
  }
}
