/**
 * Inject mode's proxy in a real daemon, against a real local HTTPS upstream (openssl-made CA and
 * certificates) and, for OAuth routes, a real authorization server (oidc-provider): the upstream gets
 * exactly the host credential, streams pass as they are sent, refusals are one line, TLS failures
 * fail closed, 401s refresh once and retry once, concurrent requests share one refresh.
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RouteTable } from '../../src/inject/RouteTable.js';
import { OBTAINED_AT_FIELD } from '../../src/oauth/token.js';
import type { StoredToken } from '../../src/store/types.js';
import { startAuthServer, type AuthServer } from '../helpers/authServer.js';
import { AS_OTHER_UID, canSwitchUid, mustSwitchUid, OTHER_UID } from '../helpers/otherUid.js';
import { startTestDaemon, tempDir, type TestDaemon } from '../helpers/daemon.js';
import { makeCerts, SSE_EVENTS, startHttpsUpstream, type HttpsUpstream, type TestCerts } from '../helpers/httpsUpstream.js';
import { deviceLogin, registryFrom, writeProviderConfig } from '../helpers/providerLogin.js';
import { proxyCall, proxyRequest, type ProxyTarget } from '../helpers/proxyHttp.js';
import { RawClient } from '../helpers/rawClient.js';
import { waitForAudit } from '../helpers/auditFile.js';

const API_KEY = `sk-inject-${randomBytes(12).toString('hex')}`;
const PLACEHOLDER = 'credproxy-managed';

let certs: TestCerts;
let upstream: HttpsUpstream;
let wrongName: HttpsUpstream;
let selfSigned: HttpsUpstream;
let idp: AuthServer;
let dir: string;
let auditFile: string;
let d: TestDaemon;
let control: RawClient;
let testRoutes: RouteTable;

interface Opened {
  grant_id: string;
  socket: string;
  inject: { socket: string; tcp?: { host: string; port: number; key: string }; routes: Array<{ route: string; env: Record<string, string> }> };
}

async function openGrant(payload: Record<string, unknown>): Promise<Opened> {
  const reply = await control.request('grant_open', { providers: {}, keys: [], ops: [], ...payload });
  if (!reply.ok) throw new Error(`grant_open failed: ${JSON.stringify(reply)}`);
  return reply.data as unknown as Opened;
}

function unix(g: Opened): ProxyTarget {
  return { socketPath: g.inject.socket };
}

/** The audit lines of op inject, once `count` of them are written (the log is asynchronous). */
async function auditLines(count: number, grant: string): Promise<Array<Record<string, unknown>>> {
  for (;;) {
    const lines = fs.existsSync(auditFile) ? fs.readFileSync(auditFile, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>) : [];
    const mine = lines.filter((l) => l.op === 'inject' && l.grant === grant);
    if (mine.length >= count) return mine;
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

/** A device login at the test authorization server, stored under (myidp, bucket) with `change` applied. */
async function storeLogin(bucket: string, change: (t: StoredToken) => StoredToken = (t) => t): Promise<StoredToken> {
  const token = change(await deviceLogin(registryFrom(path.join(dir, 'config.json')), 'myidp', idp));
  await d.store.saveToken('myidp', bucket, token);
  return token;
}

const refreshes = (): number => idp.stats.tokenRequestLog.filter((e) => e.grantType === 'refresh_token').length;

beforeAll(async () => {
  certs = makeCerts();
  [upstream, wrongName, selfSigned] = await Promise.all([startHttpsUpstream(certs.leaf), startHttpsUpstream(certs.wrongName), startHttpsUpstream(certs.selfSigned)]);
  idp = await startAuthServer({ rotateRefreshTokens: true });
  dir = tempDir('cp-inj-');
  auditFile = path.join(dir, 'audit.log');
  writeProviderConfig(path.join(dir, 'config.json'), idp, 'myidp');
  const allow = [
    { method: 'POST', path: '/v1/messages' },
    { method: 'GET', path: '/v1/stream' },
    { method: 'GET', path: '/v1/download' },
    { method: 'GET', path: '/v1/models*' },
  ];
  testRoutes = RouteTable.fromConfig(
    {
      routes: {
        api: { upstream: upstream.url, credential: { key: 'apikey' }, header: 'x-api-key', format: '{}', allow, env: { API_BASE: '{url}', API_KEY: PLACEHOLDER }, ca: certs.caFile },
        oauth: { upstream: upstream.url, credential: { provider: 'myidp' }, env: { OAUTH_BASE: '{url}/v1' }, ca: certs.caFile },
        wrongname: { upstream: wrongName.url, credential: { key: 'apikey' }, env: { X: '{url}' }, ca: certs.caFile },
        selfsigned: { upstream: selfSigned.url, credential: { key: 'apikey' }, env: { X: '{url}' } },
        // Codex-like: a header from the token's account_id; Qwen-like: the upstream from its resource_url.
        acct: { upstream: upstream.url, credential: { provider: 'myidp' }, tokenHeaders: { 'chatgpt-account-id': 'account_id' }, env: { ACCT_BASE: '{url}' }, ca: certs.caFile },
        tokenhost: {
          upstream: `${upstream.url}/fallback`,
          credential: { provider: 'myidp' },
          upstreamFrom: { field: 'resource_url', path: '/v1', hosts: [`127.0.0.1:${upstream.port}`] },
          env: { TOKENHOST_BASE: '{url}' },
          ca: certs.caFile,
        },
      },
    },
    path.join(dir, 'config.json'),
  );
  d = await startTestDaemon({ routes: testRoutes, providers: registryFrom(path.join(dir, 'config.json')), renewal: false, audit: auditFile });
  await d.store.setKey('apikey', API_KEY);
  control = await RawClient.ready(d.daemon.controlPath);
}, 60_000);

afterAll(async () => {
  control?.close();
  await d?.stop();
  await Promise.all([upstream?.close(), wrongName?.close(), selfSigned?.close(), idp?.close()]);
  certs?.cleanup();
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

describe('inject proxy', { timeout: 60_000 }, () => {
  it('attaches exactly the host credential, drops the placeholder and every sandbox credential, and answers without cookies', async () => {
    const g = await openGrant({ inject: [{ route: 'api' }], inject_tcp: true });
    expect(g.inject.routes).toEqual([{ route: 'api', env: { API_BASE: '{url}', API_KEY: PLACEHOLDER } }]);
    expect(path.dirname(g.inject.socket)).toBe(path.dirname(g.socket));
    expect(fs.statSync(g.inject.socket).mode & 0o777).toBe(0o600);
    const from = upstream.requests.length;
    const headers = { authorization: `Bearer ${PLACEHOLDER}`, 'x-api-key': PLACEHOLDER, cookie: 'sandbox=1', 'proxy-authorization': 'Basic eA==', 'content-type': 'application/json' };
    for (const [target, prefix] of [[unix(g), ''], [g.inject.tcp!, `/${g.inject.tcp!.key}`]] as const) {
      const answer = await proxyCall(target, 'POST', `${prefix}/api/v1/messages?beta=true`, { headers, body: '{"hello":"world"}' });
      expect(answer.status).toBe(200);
      expect(JSON.parse(answer.body)).toEqual({ received: 17 });
      expect(answer.headers['x-upstream']).toBe('yes');
      expect(answer.headers['set-cookie']).toBeUndefined();
    }
    const seen = upstream.requests.slice(from);
    expect(seen.map((r) => [r.method, r.url])).toEqual([
      ['POST', '/v1/messages?beta=true'],
      ['POST', '/v1/messages?beta=true'],
    ]);
    for (const r of seen) {
      expect(r.headers['x-api-key']).toBe(API_KEY);
      for (const gone of ['authorization', 'cookie', 'proxy-authorization']) expect(r.headers[gone]).toBeUndefined();
      expect(r.headers.host).toBe(`127.0.0.1:${upstream.port}`);
      expect(JSON.stringify(r.headers)).not.toContain(PLACEHOLDER);
    }
    const lines = await auditLines(2, g.grant_id);
    expect(lines[0]).toMatchObject({ op: 'inject', grant: g.grant_id, route: 'api', method: 'POST', path: '/v1/messages', status: 200, bytes_up: 17, outcome: 'ok' });
    expect(lines[0]!.bytes_down).toBe(JSON.stringify({ received: 17 }).length);
    // The peer: over the Unix socket the kernel names the process, over the loopback port /proc/net/tcp names the uid.
    expect(lines.map((l) => l.peer)).toEqual([{ uid: process.getuid!(), pid: process.pid }, { uid: process.getuid!() }]);
    expect(typeof lines[0]!.ms).toBe('number');
    expect(fs.readFileSync(auditFile, 'utf8')).not.toContain(API_KEY);
    await control.request('grant_close', { grant_id: g.grant_id });
  });

  it('passes an upstream error through as sent, minus its cookies; a key route never retries', async () => {
    const g = await openGrant({ inject: [{ route: 'api' }] });
    upstream.refuse.add(API_KEY);
    try {
      const from = upstream.requests.length;
      const answer = await proxyCall(unix(g), 'POST', '/api/v1/messages', { body: '{}' });
      expect(answer).toMatchObject({ status: 401, body: '{"error":"invalid credential"}' });
      expect(answer.headers['content-type']).toBe('application/json');
      expect(answer.headers['set-cookie']).toBeUndefined();
      expect(upstream.requests.length - from).toBe(1);
    } finally {
      upstream.refuse.delete(API_KEY);
      await control.request('grant_close', { grant_id: g.grant_id });
    }
  });

  it('streams SSE events as they are sent: the client has each event before the upstream sends the next', async () => {
    const g = await openGrant({ inject: [{ route: 'api' }] });
    const res = await proxyRequest(unix(g), 'GET', '/api/v1/stream');
    expect(res.headers['content-type']).toBe('text/event-stream');
    let text = '';
    const reader = res[Symbol.asyncIterator]();
    for (let i = 0; i < SSE_EVENTS.length; i++) {
      while (text.length < SSE_EVENTS.slice(0, i + 1).join('').length) text += String((await reader.next()).value);
      expect(text).toBe(SSE_EVENTS.slice(0, i + 1).join(''));
      // The next event exists only once this one arrived: buffering would hang here.
      upstream.release();
    }
    expect((await reader.next()).done).toBe(true);
    await control.request('grant_close', { grant_id: g.grant_id });
  });

  it('404 for a route outside the grant, 403 outside the allowlist, each with a one-line reason and an audit line', async () => {
    const g = await openGrant({ inject: [{ route: 'api' }] });
    const from = upstream.requests.length;
    const notGranted = await proxyCall(unix(g), 'GET', '/oauth/v1/models');
    expect(notGranted).toMatchObject({ status: 404, body: 'credproxy: no route "oauth" in this grant\n' });
    const notAllowed = await proxyCall(unix(g), 'DELETE', '/api/v1/messages');
    expect(notAllowed).toMatchObject({ status: 403, body: 'credproxy: DELETE /v1/messages is not allowed on route api\n' });
    const sneaky = await proxyCall(unix(g), 'GET', '/api/v1/models/../../admin');
    expect(sneaky.status).toBe(400);
    expect(upstream.requests.length).toBe(from);
    const lines = await auditLines(3, g.grant_id);
    expect(lines.map((l) => [l.status, l.outcome])).toEqual([
      [404, 'NO_ROUTE'],
      [403, 'NOT_ALLOWED'],
      [400, 'BAD_PATH'],
    ]);
    await control.request('grant_close', { grant_id: g.grant_id });
  });

  it('fails closed with a clear 502 for a certificate of another name or a self-signed one', async () => {
    const g = await openGrant({ inject: [{ route: 'wrongname' }, { route: 'selfsigned' }] });
    const wrong = await proxyCall(unix(g), 'GET', '/wrongname/v1/models');
    expect(wrong.status).toBe(502);
    expect(wrong.body).toMatch(/^credproxy: upstream 127\.0\.0\.1:\d+: TLS verification failed \(ERR_TLS_CERT_ALTNAME_INVALID\); name the CA that signed its certificate in the route's ca\n$/);
    const self = await proxyCall(unix(g), 'GET', '/selfsigned/v1/models');
    expect(self.status).toBe(502);
    expect(self.body).toMatch(/^credproxy: upstream 127\.0\.0\.1:\d+: TLS verification failed \(DEPTH_ZERO_SELF_SIGNED_CERT\)/);
    expect(wrongName.requests).toEqual([]);
    expect(selfSigned.requests).toEqual([]);
    expect((await auditLines(2, g.grant_id)).map((l) => l.outcome)).toEqual(['UPSTREAM_TLS', 'UPSTREAM_TLS']);
    await control.request('grant_close', { grant_id: g.grant_id });
  });

  it('refuses to inject a credential the grant also hands out; the proxy ends with its grant', async () => {
    const both = await control.request('grant_open', { providers: {}, keys: ['apikey'], ops: ['read'], inject: [{ route: 'api' }] });
    expect(both).toMatchObject({ ok: false, code: 'INVALID_REQUEST', error: 'Route api injects the API key apikey, which the grant would also hand out; inject it or grant it, not both' });
    const unknown = await control.request('grant_open', { inject: [{ route: 'nope' }] });
    expect(unknown).toMatchObject({ ok: false, code: 'INVALID_REQUEST' });
    const g = await openGrant({ inject: [{ route: 'api' }], inject_tcp: true });
    const listed = (await control.request('grant_list')).data as { grants: Array<{ grant_id: string; inject?: string[]; keys: string[] }> };
    expect(listed.grants.find((x) => x.grant_id === g.grant_id)).toMatchObject({ inject: ['api'], keys: [] });
    await control.request('grant_close', { grant_id: g.grant_id });
    expect(fs.existsSync(g.inject.socket)).toBe(false);
    const refused = await new Promise<string>((resolve) => net.connect(g.inject.tcp!.port, '127.0.0.1').once('error', (e: NodeJS.ErrnoException) => resolve(e.code!)).once('connect', () => resolve('connected')));
    expect(refused).toBe('ECONNREFUSED');
  });

  it('an upstream 401 on an OAuth route forces one refresh and one retry with the new token', async () => {
    const login = await storeLogin('default');
    upstream.refuse.add(`Bearer ${login.access_token}`);
    const g = await openGrant({ inject: [{ route: 'oauth' }] });
    const before = refreshes();
    const from = upstream.requests.length;
    const answer = await proxyCall(unix(g), 'POST', '/oauth/v1/messages', { headers: { authorization: `Bearer ${PLACEHOLDER}`, 'content-type': 'application/json' }, body: '{"q":1}' });
    expect(answer.status).toBe(200);
    expect(JSON.parse(answer.body)).toEqual({ received: 7 });
    expect(refreshes() - before).toBe(1);
    const stored = (await d.store.getToken('myidp', 'default'))!;
    expect(stored.access_token).not.toBe(login.access_token);
    expect(upstream.requests.slice(from).map((r) => r.headers.authorization)).toEqual([`Bearer ${login.access_token}`, `Bearer ${stored.access_token}`]);
    await control.request('grant_close', { grant_id: g.grant_id });
  });

  it('sends a header from the stored token in place of the sandbox\'s own, and fails closed with a 502 when the token lacks the field', async () => {
    const login = await storeLogin('acct', (t) => ({ ...t, account_id: 'acct-42' }));
    await storeLogin('noacct');
    const g = await openGrant({ inject: [{ route: 'acct', bucket: 'acct' }] });
    const from = upstream.requests.length;
    const answer = await proxyCall(unix(g), 'GET', '/acct/v1/models', { headers: { authorization: `Bearer ${PLACEHOLDER}`, 'chatgpt-account-id': 'sandbox-chosen' } });
    expect(answer.status).toBe(200);
    expect(upstream.requests.slice(from).map((r) => [r.url, r.headers['chatgpt-account-id'], r.headers.authorization])).toEqual([['/v1/models', 'acct-42', `Bearer ${login.access_token}`]]);
    await control.request('grant_close', { grant_id: g.grant_id });

    const lacking = await openGrant({ inject: [{ route: 'acct', bucket: 'noacct' }] });
    const failed = await proxyCall(unix(lacking), 'GET', '/acct/v1/models');
    expect(failed.status).toBe(502);
    expect(failed.body).toBe('credproxy: the token of route acct has no account_id, which the route sends in chatgpt-account-id\n');
    expect(upstream.requests.length).toBe(from + 1);
    expect((await auditLines(1, lacking.grant_id))[0]).toMatchObject({ route: 'acct', status: 502, outcome: 'TOKEN_UNUSABLE' });
    await control.request('grant_close', { grant_id: lacking.grant_id });
  });

  it('takes the upstream from the stored token within the route\'s hosts, keeps it across a 401 refresh, and never sends the token to another host', async () => {
    const login = await storeLogin('tokenhost', (t) => ({ ...t, resource_url: `127.0.0.1:${upstream.port}` }));
    await storeLogin('elsewhere', (t) => ({ ...t, resource_url: `localhost:${upstream.port}` }));
    await storeLogin('nohost');
    upstream.refuse.add(`Bearer ${login.access_token}`);
    const g = await openGrant({ inject: [{ route: 'tokenhost', bucket: 'tokenhost' }] });
    const from = upstream.requests.length;
    const answer = await proxyCall(unix(g), 'POST', '/tokenhost/messages', { headers: { 'content-type': 'application/json' }, body: '{"q":1}' });
    expect(answer.status).toBe(200);
    const stored = (await d.store.getToken('myidp', 'tokenhost'))!;
    expect(stored.access_token).not.toBe(login.access_token);
    expect(stored.resource_url).toBe(`127.0.0.1:${upstream.port}`);
    expect(upstream.requests.slice(from).map((r) => [r.url, r.headers.authorization])).toEqual([
      ['/v1/messages', `Bearer ${login.access_token}`],
      ['/v1/messages', `Bearer ${stored.access_token}`],
    ]);
    await control.request('grant_close', { grant_id: g.grant_id });

    const elsewhere = await openGrant({ inject: [{ route: 'tokenhost', bucket: 'elsewhere' }] });
    const refused = await proxyCall(unix(elsewhere), 'GET', '/tokenhost/models');
    expect(refused.status).toBe(502);
    expect(refused.body).toBe(`credproxy: the token of route tokenhost names an upstream in resource_url on host localhost:${upstream.port}, which is not among the route's hosts (127.0.0.1:${upstream.port})\n`);
    expect(upstream.requests.length).toBe(from + 2);
    await control.request('grant_close', { grant_id: elsewhere.grant_id });

    const nohost = await openGrant({ inject: [{ route: 'tokenhost', bucket: 'nohost' }] });
    expect((await proxyCall(unix(nohost), 'GET', '/tokenhost/models')).status).toBe(200);
    expect(upstream.requests.slice(from + 2).map((r) => r.url)).toEqual(['/fallback/models']);
    await control.request('grant_close', { grant_id: nohost.grant_id });
  });

  it('past the replay budget or the connection cap, a sandbox cannot make the daemon hold more: bodies stream (no replay), extra connections close', async () => {
    const tight = await startTestDaemon({ routes: testRoutes, providers: registryFrom(path.join(dir, 'config.json')), renewal: false, audit: 'off', limits: { injectReplayBytes: 4, maxInjectConnections: 2 } });
    const own = await RawClient.ready(tight.daemon.controlPath);
    try {
      const login = await deviceLogin(registryFrom(path.join(dir, 'config.json')), 'myidp', idp);
      await tight.store.saveToken('myidp', 'default', login);
      upstream.refuse.add(`Bearer ${login.access_token}`);
      const reply = await own.request('grant_open', { providers: {}, keys: [], ops: [], inject: [{ route: 'oauth' }] });
      if (!reply.ok) throw new Error(`grant_open failed: ${JSON.stringify(reply)}`);
      const g = reply.data as unknown as Opened;
      const before = refreshes();
      // 7 bytes do not fit a 4-byte budget: sent as a stream, so the 401 comes back as it is.
      const answer = await proxyCall(unix(g), 'POST', '/oauth/v1/messages', { headers: { 'content-type': 'application/json' }, body: '{"q":1}' });
      expect(answer.status).toBe(401);
      expect(refreshes()).toBe(before);

      const held = await Promise.all([0, 1].map(() => new Promise<net.Socket>((resolve) => { const s = net.connect(g.inject.socket, () => resolve(s)); })));
      const third = net.connect(g.inject.socket);
      await new Promise((resolve) => third.once('close', resolve));
      for (const s of held) s.destroy();
      upstream.refuse.delete(`Bearer ${login.access_token}`);
      await own.request('grant_close', { grant_id: g.grant_id });
    } finally {
      own.close();
      await tight.stop();
    }
  });

  it('a client that goes away mid-upload or mid-stream is audited CANCELLED and the daemon keeps serving', async () => {
    // The OAuth route's token of the previous test; a short body is read whole (replayable) there.
    const g = await openGrant({ inject: [{ route: 'oauth' }, { route: 'api' }] });
    const partial = net.connect(g.inject.socket);
    await new Promise((resolve) => partial.once('connect', resolve));
    partial.write('POST /oauth/v1/messages HTTP/1.1\r\nhost: x\r\ncontent-length: 100\r\n\r\n0123456789');
    const stream = await proxyRequest(unix(g), 'GET', '/api/v1/stream');
    await new Promise((resolve) => stream.once('data', resolve));
    partial.destroy();
    stream.destroy();
    const lines = await (async () => {
      for (;;) {
        const mine = (await auditLines(0, g.grant_id)).filter((l) => l.outcome === 'CANCELLED');
        if (mine.length >= 2) return mine;
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
    })();
    expect(lines.map((l) => l.route).sort()).toEqual(['api', 'oauth']);
    expect((await proxyCall(unix(g), 'GET', '/api/v1/models')).status).toBe(200);
    await control.request('grant_close', { grant_id: g.grant_id });
  });

  it('50 concurrent requests with a token about to expire cause exactly one refresh at the authorization server', async () => {
    // Without its obtained-at stamp the token's lifetime is unknown: the 60 s margin applies, and 20 s are left.
    await storeLogin('b2', (t) => {
      const { [OBTAINED_AT_FIELD]: _obtained, ...rest } = t;
      return { ...rest, expiry: Math.floor(Date.now() / 1000) + 20 } as StoredToken;
    });
    const g = await openGrant({ inject: [{ route: 'oauth', bucket: 'b2' }] });
    const before = refreshes();
    const answers = await Promise.all(Array.from({ length: 50 }, () => proxyCall(unix(g), 'GET', '/oauth/v1/models')));
    expect(answers.map((a) => a.status)).toEqual(Array(50).fill(200));
    expect(refreshes() - before).toBe(1);
    expect(idp.stats.tokenRequestLog.filter((e) => e.grantType === 'refresh_token').at(-1)!.status).toBe(200);
    await control.request('grant_close', { grant_id: g.grant_id });
  });

  it.skipIf(!canSwitchUid && !mustSwitchUid)('the loopback port serves only the daemon\'s uid: another uid is cut off unanswered and audited', async () => {
    const g = await openGrant({ inject: [{ route: 'api' }], inject_tcp: true });
    const from = upstream.requests.length;
    const probe = `require('http').get('http://127.0.0.1:${g.inject.tcp!.port}/${g.inject.tcp!.key}/api/v1/models', (r) => console.log(r.statusCode)).on('error', (e) => console.log(e.code))`;
    // Asynchronously: the daemon under test runs in this process and must keep answering.
    const child = spawn(AS_OTHER_UID[0]!, [...AS_OTHER_UID.slice(1), process.execPath, '-e', probe], { cwd: '/', stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    await new Promise((resolve) => child.once('close', resolve));
    expect(out.trim()).toBe('ECONNRESET');
    expect(upstream.requests.length).toBe(from);
    const text = await waitForAudit(auditFile, /"op":"inject".*"outcome":"PEER_REFUSED"/);
    const refused = text.split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>).find((l) => l.op === 'inject' && l.outcome === 'PEER_REFUSED');
    expect(refused).toMatchObject({ peer: { uid: OTHER_UID } });
    expect((await proxyCall(g.inject.tcp!, 'GET', `/${g.inject.tcp!.key}/api/v1/models`)).status).toBe(200);
    await control.request('grant_close', { grant_id: g.grant_id });
  });

  it('the loopback port answers only requests under its grant\'s key: another run on the same machine cannot use its routes', async () => {
    const mine = await openGrant({ inject: [{ route: 'api' }], inject_tcp: true });
    const other = await openGrant({ inject: [{ route: 'api' }], inject_tcp: true });
    expect(mine.inject.tcp!.key).toMatch(/^[0-9a-f]{32}$/);
    expect(other.inject.tcp!.key).not.toBe(mine.inject.tcp!.key);
    const from = upstream.requests.length;
    for (const path of ['/api/v1/models', `/${other.inject.tcp!.key}/api/v1/models`, `/${mine.inject.tcp!.key.slice(0, 31)}/api/v1/models`, `/${mine.inject.tcp!.key}api/v1/models`]) {
      expect((await proxyCall(mine.inject.tcp!, 'GET', path)).status).toBe(404);
    }
    expect(upstream.requests.length).toBe(from);
    expect((await proxyCall(mine.inject.tcp!, 'GET', `/${mine.inject.tcp!.key}/api/v1/models`)).status).toBe(200);
    // The key is not in the daemon's status (a listing for the host user, not for the program).
    expect(JSON.stringify(await control.request('daemon_status', {}))).not.toContain(mine.inject.tcp!.key);
    for (const g of [mine, other]) await control.request('grant_close', { grant_id: g.grant_id });
  });
});
