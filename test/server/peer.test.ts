/**
 * Kernel peer credentials (PROTOCOL.md §7): a client running as another uid is refused unless
 * allowed. Needs root (to switch uid with setpriv); CI runs as root. What the other uid runs and the
 * sockets it connects to live in an OtherUidArea, never in the checkout (which may be private).
 */
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sampleToken, startTestDaemon, tempDir, type TestDaemon } from '../helpers/daemon.js';
import { canSwitchUid, mustSwitchUid, OTHER_UID, OtherUidArea } from '../helpers/otherUid.js';
import { runSpecClient } from '../helpers/specClient.js';

describe.skipIf(!canSwitchUid && !mustSwitchUid)('peer credentials', () => {
  let area: OtherUidArea;
  let strict: TestDaemon;
  let allowing: TestDaemon;
  let auditFile: string;
  beforeAll(async () => {
    expect(canSwitchUid, 'this test needs root and /usr/bin/setpriv').toBe(true);
    area = OtherUidArea.create();
    auditFile = path.join(tempDir(), 'audit.log');
    strict = await startTestDaemon({ audit: auditFile, socketPath: area.socketPath() });
    allowing = await startTestDaemon({ allowUids: [OTHER_UID], socketPath: area.socketPath() });
    for (const t of [strict, allowing]) {
      area.expose(t.socketPath);
      await t.store.saveToken('anthropic', 'default', sampleToken({ access_token: 'at-peer' }));
    }
  });
  afterAll(async () => {
    await strict?.stop();
    await allowing?.stop();
    area?.remove();
  });

  it('the socket file itself keeps other users out (mode 0600 in a 0700 directory)', async () => {
    // In the area, so every directory above the daemon's own 0700 one is open to the other uid.
    const t = await startTestDaemon({ socketPath: area.socketPath() });
    const frames = await area.run(t.socketPath, 'v2', [{ op: 'list_providers' }]);
    expect(frames[0]).toEqual({ error: 'EACCES' });
    await t.stop();
  });

  it('refuses a client of another uid even when it can reach the socket', async () => {
    const frames = await area.run(strict.socketPath, 'v2', [{ op: 'get_token', payload: { provider: 'anthropic' } }]);
    // Closed without a single frame (a reset is fine: the host hung up on unread bytes).
    expect(frames.at(-1)).toEqual({ closed: true });
    expect(frames.filter((f) => 'ok' in f)).toEqual([]);
    await strict.daemon.stop();
    const audit = fs.readFileSync(auditFile, 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    expect(audit).toContainEqual(expect.objectContaining({ op: 'connection', outcome: 'PEER_REFUSED', peer: expect.objectContaining({ uid: OTHER_UID }) }));
  });

  it('serves that uid when it is in --allow-uid', async () => {
    const frames = await area.run(allowing.socketPath, 'v2', [{ op: 'get_token', payload: { provider: 'anthropic' } }]);
    expect(frames[1]).toMatchObject({ ok: true, data: { access_token: 'at-peer' } });
  });

  it('serves the daemon\'s own uid', async () => {
    const frames = await runSpecClient(allowing.socketPath, 'v1', [{ op: 'get_token', payload: { provider: 'anthropic' } }]);
    expect(frames[1]).toMatchObject({ ok: true, data: { access_token: 'at-peer' } });
  });
});
