/**
 * How the login layer sees a provider. Provider definitions (presets and custom providers from the
 * config file) are turned into adapters that know how to start each flow they support.
 */
import type { FlowDeps, FlowType, StartedFlow } from './flowTypes.js';

export interface ProviderAdapter {
  readonly name: string;
  /** Supported flows, most preferred first. */
  readonly flows: readonly FlowType[];
  /** Token fields that may cross the socket besides the standard ones (PROTOCOL.md §5). */
  readonly publicFields: readonly string[];
  /** Starts one login; throws FlowError('FLOW_INITIATION_FAILED', safe message) when upstream fails. */
  start(flow: FlowType, deps: FlowDeps): Promise<StartedFlow>;
}

export interface ProviderSummary {
  name: string;
  kind: 'preset' | 'custom';
  flows: FlowType[];
}

export interface ProviderRegistry {
  get(name: string): ProviderAdapter | undefined;
  list(): ProviderSummary[];
}

/** Client-facing flow names (`--flow device|paste|browser`) and the wire names both select a flow. */
export const FLOW_ALIASES: Readonly<Record<string, FlowType>> = {
  device: 'device_code',
  device_code: 'device_code',
  paste: 'pkce_redirect',
  pkce_redirect: 'pkce_redirect',
  browser: 'browser_redirect',
  browser_redirect: 'browser_redirect',
};
