/**
 * A device-code provider adapter whose behaviour the test scripts: how long start() takes, what each
 * poll answers and the user code it shows. Records every flow it started and whether it was
 * cancelled, for tests of the login layer's session bookkeeping.
 */
import type { PollResult, StartedFlow } from '../../src/oauth/flowTypes.js';
import type { ProviderAdapter, ProviderRegistry } from '../../src/oauth/providerTypes.js';

export interface ScriptedProviderOptions {
  name: string;
  userCode?: string;
  /** How long start() takes (ms). */
  startDelayMs?: number;
  pollIntervalMs?: number;
  /** What every poll answers (default: pending). */
  poll?: () => Promise<PollResult>;
}

export interface ScriptedProvider {
  registry: ProviderRegistry;
  /** One record per started flow, in start order. */
  started: Array<{ cancelled: boolean }>;
  /** Resolves when the first flow is cancelled. */
  firstCancel: Promise<void>;
}

export function scriptedDeviceProvider(options: ScriptedProviderOptions): ScriptedProvider {
  const started: Array<{ cancelled: boolean }> = [];
  let cancelled!: () => void;
  const firstCancel = new Promise<void>((resolve) => (cancelled = resolve));
  const interval = options.pollIntervalMs ?? 5_000;
  const adapter: ProviderAdapter = {
    name: options.name,
    flows: ['device_code'],
    publicFields: [],
    async start(): Promise<StartedFlow> {
      if (options.startDelayMs) await new Promise((r) => setTimeout(r, options.startDelayMs));
      const record = { cancelled: false };
      started.push(record);
      return {
        flowType: 'device_code',
        publicData: { verification_uri: 'https://idp.corp.internal/device', verification_url: 'https://idp.corp.internal/device', user_code: options.userCode ?? 'ABCD' },
        pollIntervalMs: () => interval,
        poll: options.poll ?? (async () => ({ status: 'pending', pollIntervalMs: interval })),
        async cancel() {
          record.cancelled = true;
          cancelled();
        },
      };
    },
  };
  const registry: ProviderRegistry = { get: (name) => (name === options.name ? adapter : undefined), list: () => [] };
  return { registry, started, firstCancel };
}
