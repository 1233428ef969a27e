/** PKCE (RFC 7636, S256) and state material for the code flows, from the injected randomness. */
import { timingSafeEqual } from 'node:crypto';
import * as oauth from 'oauth4webapi';
import type { FlowDeps } from '../flowTypes.js';

export interface PkcePair {
  /** 43 base64url chars (32 random bytes); stays on the host. */
  verifier: string;
  challenge: string;
}

export async function createPkce(deps: Pick<FlowDeps, 'randomBytes'>): Promise<PkcePair> {
  const verifier = Buffer.from(deps.randomBytes(32)).toString('base64url');
  return { verifier, challenge: await oauth.calculatePKCECodeChallenge(verifier) };
}

/** 256 random bits, base64url. */
export function createState(deps: Pick<FlowDeps, 'randomBytes'>): string {
  return Buffer.from(deps.randomBytes(32)).toString('base64url');
}

/** Constant-time comparison of a received value with the secret the host holds. */
export function matchesSecret(received: string | null | undefined, expected: string): boolean {
  if (typeof received !== 'string') return false;
  const a = Buffer.from(received);
  const b = Buffer.from(expected);
  return a.length === b.length && timingSafeEqual(a, b);
}

/** Parameters of one authorization-code exchange; the adapter turns them into its token request. */
export interface CodeExchange {
  code: string;
  verifier: string;
  state: string;
  redirectUri: string;
}

/** Builds the authorization URL the user opens. */
export type AuthUrlBuilder = (p: { challenge: string; state: string; redirectUri: string }) => string;
