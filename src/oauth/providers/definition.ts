/**
 * The declarative provider definition: everything about an OAuth provider that is data (endpoints,
 * client, scopes, flows, redirect URIs, token mapping). Presets are written in this shape and so is a
 * custom provider in the config file; behaviour that data cannot express lives in the adapters.
 */
import { z } from 'zod';
import { nameSchema } from '../../protocol/messages.js';
import { isAllowedEndpoint } from '../upstream.js';
import { mayBePublic } from '../token.js';

/** Stored `expiry` of a token the provider says never expires (9999-12-31T23:59:59Z). */
export const NEVER_EXPIRES = 253_402_300_799;

const FLOW_TYPES = ['device_code', 'pkce_redirect', 'browser_redirect'] as const;

/** Endpoints the host calls: https, or http to a loopback host only. */
const endpointUrl = z.string().refine(isAllowedEndpoint, {
  message: 'must be an https URL (plain http only for 127.0.0.1, ::1 or localhost)',
});
const anyUrl = z.string().refine((v) => URL.canParse(v), { message: 'must be an absolute URL' });
/** The name of a stored token's field (provider fields, claims; inject routes' tokenHeaders and upstreamFrom). */
export const fieldName = z.string().regex(/^[A-Za-z0-9_.-]{1,64}$/, 'must be a token field name');

const endpointsShape = {
  /** Authorization endpoint (PKCE paste and browser flows). */
  authorization: endpointUrl,
  token: endpointUrl,
  /** RFC 8628 device authorization endpoint. */
  deviceAuthorization: endpointUrl,
  /** Page shown to the user when the device response names none (OpenAI device auth). */
  verification: anyUrl,
  /** OpenAI device auth: user-code request, poll, and the redirect URI of its code exchange. */
  deviceAuthUserCode: endpointUrl,
  deviceAuthToken: endpointUrl,
  deviceAuthRedirectUri: anyUrl,
};

const callbackShape = {
  /** Host written into the redirect URI; the server itself always binds 127.0.0.1. */
  host: z.enum(['127.0.0.1', 'localhost']),
  /** 0 = an ephemeral port chosen at each login. */
  port: z.int().min(0).max(65_535),
  path: z.string().regex(/^\/[^?#\s]*$/, 'must be a path starting with /'),
};

const tokenMappingShape = {
  /** Lifetime assumed when `expires_in` is missing, not a number or ≤ 0 (PROVIDERS.md: 3600). */
  defaultExpiresIn: z.int().positive(),
  /** A response without `expires_in` is a token that never expires (expiry = NEVER_EXPIRES). */
  nonExpiring: z.boolean(),
  /**
   * Stored fields read from JWT claims of the id_token (then the access_token): each candidate is a
   * path of claim names, the first present string/number wins. Codex: account_id.
   */
  claims: z.record(fieldName, z.array(z.array(z.string().min(1)).min(1)).min(1)),
};

/** The fields every definition may carry; shared by full definitions and preset overrides. */
const fields = {
  clientId: z.string().min(1),
  /** Installed-app client secret (public by nature, RFC 8252 §8.5); still never logged or replied. */
  clientSecret: z.string().min(1),
  tokenEndpointAuthMethod: z.enum(['none', 'client_secret_post', 'client_secret_basic']),
  /** Expected `iss` of callbacks and id_tokens; defaults to the token endpoint's origin. */
  issuer: endpointUrl,
  scopes: z.array(z.string().regex(/^[\x21\x23-\x5b\x5d-\x7e]+$/, 'must be a scope token')),
  /** Supported flows, most preferred first. */
  flows: z.array(z.enum(FLOW_TYPES)).min(1),
  /** redirect_uri of the PKCE code-paste flow (a page that shows the code to paste). */
  redirectUri: anyUrl,
  /** Extra authorization request parameters (access_type=offline, code=true, ...). */
  authParams: z.record(z.string().min(1), z.string()),
  tokenRequestFormat: z.enum(['form', 'json']),
  /** Stored token fields that may cross the socket (PROTOCOL.md §5); secrets can never be public. */
  publicFields: z.array(
    fieldName.refine(mayBePublic, { message: 'names a secret, host-only or standard field, which cannot be declared public' }),
  ),
  userAgent: z.string().min(1).max(256),
  /** Send a PKCE challenge with the device authorization and the verifier with the device grant (Qwen). */
  devicePkce: z.boolean(),
  /** Device poll interval when the provider names none. */
  defaultIntervalSeconds: z.number().positive().max(300),
};

/** A full definition as written (presets, custom providers). Defaults fill what is omitted. */
export const providerDefinitionSchema = z.strictObject({
  name: nameSchema('provider'),
  clientId: fields.clientId.optional(),
  clientSecret: fields.clientSecret.optional(),
  tokenEndpointAuthMethod: fields.tokenEndpointAuthMethod.optional(),
  issuer: fields.issuer.optional(),
  scopes: fields.scopes.default([]),
  flows: fields.flows,
  endpoints: z.strictObject({
    ...endpointsShape,
    authorization: endpointsShape.authorization.optional(),
    deviceAuthorization: endpointsShape.deviceAuthorization.optional(),
    verification: endpointsShape.verification.optional(),
    deviceAuthUserCode: endpointsShape.deviceAuthUserCode.optional(),
    deviceAuthToken: endpointsShape.deviceAuthToken.optional(),
    deviceAuthRedirectUri: endpointsShape.deviceAuthRedirectUri.optional(),
  }),
  redirectUri: fields.redirectUri.optional(),
  callback: z
    .strictObject({
      host: callbackShape.host.default('127.0.0.1'),
      port: callbackShape.port.default(0),
      path: callbackShape.path.default('/callback'),
    })
    .optional(),
  authParams: fields.authParams.default({}),
  tokenRequestFormat: fields.tokenRequestFormat.default('form'),
  publicFields: fields.publicFields.default([]),
  userAgent: fields.userAgent.optional(),
  devicePkce: fields.devicePkce.default(false),
  defaultIntervalSeconds: fields.defaultIntervalSeconds.default(5),
  tokenMapping: z
    .strictObject({
      defaultExpiresIn: tokenMappingShape.defaultExpiresIn.default(3600),
      nonExpiring: tokenMappingShape.nonExpiring.default(false),
      claims: tokenMappingShape.claims.default({}),
    })
    .prefault({}),
});

/** A definition with its defaults applied; what adapters work from. */
export type ProviderDefinition = z.output<typeof providerDefinitionSchema>;
/** A definition as written. */
export type ProviderDefinitionInput = z.input<typeof providerDefinitionSchema>;

/** Config entry that adjusts a preset: any field but the name; nested objects merge key by key. */
export const providerOverrideSchema = z.strictObject({
  ...fields,
  endpoints: z.strictObject(endpointsShape).partial(),
  callback: z.strictObject(callbackShape).partial(),
  tokenMapping: z.strictObject(tokenMappingShape).partial(),
}).partial();

export type ProviderOverride = z.output<typeof providerOverrideSchema>;

/** Applies an override to a preset as written; the result is validated again as a whole. */
export function mergeDefinition(base: ProviderDefinitionInput, override: ProviderOverride): ProviderDefinitionInput {
  const { endpoints, callback, tokenMapping, authParams, ...rest } = override;
  return {
    ...base,
    ...rest,
    endpoints: { ...base.endpoints, ...endpoints },
    callback: base.callback || callback ? { ...base.callback, ...callback } : undefined,
    tokenMapping: { ...base.tokenMapping, ...tokenMapping },
    authParams: { ...base.authParams, ...authParams },
  };
}

/** Field-level problems a definition has for the flows it lists (path relative to the definition). */
export function definitionProblems(def: ProviderDefinition): Array<{ path: string; message: string }> {
  const problems: Array<{ path: string; message: string }> = [];
  const need = (ok: unknown, path: string, flow: string) => {
    if (!ok) problems.push({ path, message: `is required for the ${flow} flow` });
  };
  for (const flow of def.flows) {
    if (flow === 'pkce_redirect') {
      need(def.endpoints.authorization, 'endpoints.authorization', flow);
      need(def.redirectUri, 'redirectUri', flow);
    } else if (flow === 'browser_redirect') {
      need(def.endpoints.authorization, 'endpoints.authorization', flow);
      need(def.callback, 'callback', flow);
    }
  }
  if (new Set(def.flows).size !== def.flows.length) problems.push({ path: 'flows', message: 'lists a flow twice' });
  if (def.tokenEndpointAuthMethod && def.tokenEndpointAuthMethod !== 'none' && !def.clientSecret) {
    problems.push({ path: 'clientSecret', message: `is required by tokenEndpointAuthMethod ${def.tokenEndpointAuthMethod}` });
  }
  return problems;
}
