/**
 * Kernel peer credentials (PROTOCOL.md §7): a client running as another uid is refused unless
 * allowed. Needs root (to switch uid with setpriv); CI runs as root.
 */
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sampleToken, startTestDaemon, tempDir, type TestDaemon } from '../helpers/daemon.js';
import { runSpecClient, SPEC_CLIENT } from '../helpers/specClient.js';

const NOBODY = ['setpriv', '--reuid=65534', '--regid=65534', '--clear-groups'];
const canSwitchUid = process.getuid?.() === 0 && fs.existsSync('/usr/bin/setpriv');
const mustRun = process.env.CI === 'true';

/** Opens the socket's file permissions so that only the peer-credential check stands in the way. */
function exposeToOtherUsers(t: TestDaemon): void {
  fs.chmodSync(path.dirname(t.socketPath), 0o755);
  fs.chmodSync(t.socketPath, 0o666);
}

describe.skipIf(!canSwitchUid && !mustRun)('peer credentials', () => {
  let strict: TestDaemon;
  let allowing: TestDaemon;
  let auditFile: string;
  beforeAll(async () => {
    expect(canSwitchUid, 'this test needs root and /usr/bin/setpriv').toBe(true);
    fs.chmodSync(path.dirname(SPEC_CLIENT), 0o755);
    auditFile = path.join(tempDir(), 'audit.log');
    strict = await startTestDaemon({ audit: auditFile });
    allowing = await startTestDaemon({ allowUids: [65534] });
    for (const t of [strict, allowing]) {
      exposeToOtherUsers(t);
      await t.store.saveToken('anthropic', 'default', sampleToken({ access_token: 'at-peer' }));
    }
  });
  afterAll(async () => {
    await strict?.stop();
    await allowing?.stop();
  });

  it('the socket file itself keeps other users out (mode 0600 in a 0700 directory)', async () => {
    const t = await startTestDaemon();
    const frames = await runSpecClient(t.socketPath, 'v2', [{ op: 'list_providers' }], NOBODY);
    expect(frames[0]).toEqual({ error: 'EACCES' });
    await t.stop();
  });

  it('refuses a client of another uid even when it can reach the socket', async () => {
    const frames = await runSpecClient(strict.socketPath, 'v2', [{ op: 'get_token', payload: { provider: 'anthropic' } }], NOBODY);
    // Closed without a single frame (a reset is fine: the host hung up on unread bytes).
    expect(frames.at(-1)).toEqual({ closed: true });
    expect(frames.filter((f) => 'ok' in f)).toEqual([]);
    await strict.daemon.stop();
    const audit = fs.readFileSync(auditFile, 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    expect(audit).toContainEqual(expect.objectContaining({ op: 'connection', outcome: 'PEER_REFUSED', peer: expect.objectContaining({ uid: 65534 }) }));
  });

  it('serves that uid when it is in --allow-uid', async () => {
    const frames = await runSpecClient(allowing.socketPath, 'v2', [{ op: 'get_token', payload: { provider: 'anthropic' } }], NOBODY);
    expect(frames[1]).toMatchObject({ ok: true, data: { access_token: 'at-peer' } });
  });

  it('serves the daemon\'s own uid', async () => {
    const frames = await runSpecClient(allowing.socketPath, 'v1', [{ op: 'get_token', payload: { provider: 'anthropic' } }]);
    expect(frames[1]).toMatchObject({ ok: true, data: { access_token: 'at-peer' } });
  });
});
