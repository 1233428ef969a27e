/**
 * The keyring store's service name and entry options, apart from keyring.ts so that choosing a
 * backend (open.ts, the probe) does not load the native keyring library.
 */
import type { EntryOptions } from '@napi-rs/keyring';

export const KEYRING_SERVICE = 'credproxy';

/** Pins the Secret Service on Linux; ignored elsewhere. Never the kernel keyring. */
export const KEYRING_ENTRY_OPTIONS: EntryOptions = { linux: { store: 'secret-service' } };
