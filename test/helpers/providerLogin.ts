/**
 * A custom provider backed by the test authorization server: its config file (the token endpoint
 * optionally routed through a fault proxy) and real logins — a device flow approved through the
 * server's own pages, on the host side or through a daemon's socket.
 */
import fs from 'node:fs';
import { defaultFlowDeps } from '../../src/oauth/flowDeps.js';
import { loadProviderRegistry } from '../../src/oauth/config.js';
import type { ProviderRegistry } from '../../src/oauth/providerTypes.js';
import type { StoredToken } from '../../src/store/types.js';
import type { AuthServer } from './authServer.js';
import type { RawClient } from './rawClient.js';

/** Writes `{providers: {[provider]: ...}}` to `file`; `tokenOrigin` replaces the token endpoint's origin (a fault proxy). */
export function writeProviderConfig(file: string, idp: AuthServer, provider: string, tokenOrigin?: string): void {
  const token = tokenOrigin ? tokenOrigin + new URL(idp.endpoints.token).pathname : idp.endpoints.token;
  const definition = { clientId: idp.clientId, issuer: idp.issuer, scopes: idp.scopes.split(' '), flows: ['device_code'], endpoints: { ...idp.endpoints, token } };
  fs.writeFileSync(file, JSON.stringify({ providers: { [provider]: definition } }));
}

/** The registry of that config (presets plus the custom provider). */
export function registryFrom(configPath: string): ProviderRegistry {
  return loadProviderRegistry({ configPath, env: {} });
}

/** A device login on the host side; returns the full token (not stored). */
export async function deviceLogin(registry: ProviderRegistry, provider: string, idp: AuthServer, now: () => number = Date.now): Promise<StoredToken> {
  const flow = await registry.get(provider)!.start('device_code', defaultFlowDeps({ now }));
  await idp.approveDevice(flow.publicData.user_code!);
  for (;;) {
    const result = await flow.poll!(AbortSignal.timeout(15_000));
    if (result.status === 'complete') return result.token;
    await new Promise((r) => setTimeout(r, result.pollIntervalMs));
  }
}

/** A device login through a daemon (oauth_initiate, approval, oauth_poll): the daemon stores the token. */
export async function daemonLogin(c: RawClient, provider: string, bucket: string, idp: AuthServer): Promise<Record<string, unknown>> {
  const init = await c.request('oauth_initiate', { provider, bucket, flow: 'device_code' });
  if (!init.ok) throw new Error(`oauth_initiate failed: ${JSON.stringify(init)}`);
  const { session_id: sessionId, user_code: userCode } = init.data as Record<string, string>;
  await idp.approveDevice(userCode!);
  for (;;) {
    const reply = await c.request('oauth_poll', { session_id: sessionId });
    const data = reply.data as Record<string, unknown> | undefined;
    if (!reply.ok) throw new Error(`oauth_poll failed: ${JSON.stringify(reply)}`);
    if (data?.status === 'complete') return data.token as Record<string, unknown>;
    await new Promise((r) => setTimeout(r, Number(data?.pollIntervalMs ?? 1000)));
  }
}
