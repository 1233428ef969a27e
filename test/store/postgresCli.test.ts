/**
 * The PostgreSQL store through the built CLI: where the URL may come from (never a password in
 * argv), a serve daemon registering its heartbeat, and status / doctor showing the database (host
 * and database, schema version, daemons seen, lock waits) without its password.
 */
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { makeSandbox, runCli, startServe } from '../cli/cliHarness.js';
import { freshDatabase, pgSkipReason, usePostgres } from './postgresHelpers.js';

const server = usePostgres();

describe('credproxy with --store postgres://…', () => {
  it('refuses a URL with a password on the command line, naming the safe places and not the password', async () => {
    const box = makeSandbox();
    try {
      const r = await runCli(['--store', 'postgres://alice:hunter2secret@db.invalid/creds', 'keys', 'list'], { env: box.env });
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(/^credproxy: Refusing a PostgreSQL URL with a password on the command line .*--store-url-file.*CREDPROXY_STORE_URL.*PGPASSFILE/);
      expect(r.stderr).not.toContain('hunter2secret');
      const bad = await runCli(['--store', 'mysql://x', 'keys', 'list'], { env: box.env });
      expect(bad.code).toBe(1);
      expect(bad.stderr).toMatch(/postgres:\/\/ URL/);
      const none = await runCli(['--store', 'postgres', 'keys', 'list'], { env: box.env });
      expect(none.stderr).toMatch(/--store postgres needs the database URL: set CREDPROXY_STORE_URL or give --store-url-file/);
    } finally {
      box.cleanup();
    }
  });

  it.skipIf(pgSkipReason !== null)('serve registers its heartbeat; status and doctor show the database; keys written by one host are read by another', { timeout: 90_000 }, async () => {
    const { url } = await freshDatabase(server());
    const first = makeSandbox();
    const second = makeSandbox();
    try {
      // The URL from a file on the first host, from the environment on the second; same passphrase.
      const urlFile = path.join(first.dir, 'store-url');
      fs.writeFileSync(urlFile, `${url}\n`, { mode: 0o600 });
      const setKey = await runCli(['--store-url-file', urlFile, 'keys', 'set', 'OPENAI'], { env: first.env, input: 'sk-shared-value\n' });
      expect(setKey.stderr).toBe('');
      expect(setKey.code).toBe(0);
      const secondEnv = { ...second.env, CREDPROXY_STORE_URL: url, CREDPROXY_PASSPHRASE: first.env.CREDPROXY_PASSPHRASE };
      const listed = await runCli(['keys', 'list'], { env: secondEnv });
      expect(listed.stdout.trim()).toBe('OPENAI');

      // A host joining without the fleet's passphrase: doctor says what it lacks, before any open.
      const keyless = await runCli(['doctor', '--json'], { env: { ...second.env, CREDPROXY_PASSPHRASE: '', CREDPROXY_STORE_URL: url }, timeoutMs: 30_000 });
      const keyCheck = (JSON.parse(keyless.stdout) as { checks: Array<{ name: string; status: string; detail: string; fix?: string }> }).checks.find((c) => c.name === 'database')!;
      expect(keyCheck).toMatchObject({ status: 'problem' });
      expect(keyCheck.detail).toMatch(/was created with CREDPROXY_PASSPHRASE, which is not set now/);
      expect(keyCheck.fix).toMatch(/^export CREDPROXY_PASSPHRASE=/);

      const serve = startServe(['--audit', 'off'], secondEnv);
      await serve.ready;
      try {
        const status = await runCli(['--store-url-file', urlFile, 'status', '--json'], { env: first.env });
        expect(status.code).toBe(0);
        const report = JSON.parse(status.stdout) as { store: { backend: string; reason: string }; database: { schemaVersion: number; hosts: Array<{ pid: number }>; lockWaiters: number; connected: boolean } };
        expect(report.store.backend).toBe('postgres');
        expect(report.store.reason).toMatch(/^PostgreSQL store .*\/t\d+_\d+; sealed with CREDPROXY_PASSPHRASE$/);
        expect(report.database).toMatchObject({ schemaVersion: 1, connected: true, lockWaiters: 0 });
        expect(report.database.hosts.map((h) => h.pid)).toEqual([serve.child.pid]);
        const text = await runCli(['--store-url-file', urlFile, 'status'], { env: first.env });
        expect(text.stdout).toMatch(/database: .*schema version 1, connected/);
        expect(text.stdout).toMatch(new RegExp(`pid ${serve.child.pid} \\(credproxy `));

        const doctor = await runCli(['--store-url-file', urlFile, 'doctor', '--json'], { env: first.env, timeoutMs: 30_000 });
        const checks = (JSON.parse(doctor.stdout) as { checks: Array<{ name: string; status: string; detail: string }> }).checks;
        const database = checks.find((c) => c.name === 'database')!;
        expect(database.status).toBe('ok');
        expect(database.detail).toMatch(new RegExp(`schema version 1; daemons seen in the last 5 minutes: .*:${serve.child.pid}; refresh locks waited for now: 0`));
        // The database goes away: status says so (exit 1), and relays the daemon's degraded store.
        let serveLog = '';
        const logged = (text: string): Promise<void> =>
          new Promise<void>((resolve) => {
            const check = (): void => {
              if (serveLog.includes(text)) resolve();
            };
            serve.child.stderr!.on('data', check);
            check();
          });
        serve.child.stderr!.on('data', (d: Buffer) => (serveLog += d.toString()));
        const lost = logged('lost the connection to PostgreSQL');
        await server().stop();
        await lost;
        const down = await runCli(['status'], { env: secondEnv });
        expect(down.code).toBe(1);
        expect(down.stdout).toMatch(/^Store: postgres \(PostgreSQL store .* \(from CREDPROXY_STORE_URL\)/);
        expect(down.stdout).toMatch(/the store cannot be read from here: The PostgreSQL store at .* is unavailable/);
        expect(down.stdout).toMatch(/the daemon's store is degraded: PostgreSQL .* unreachable since .*still-valid cached tokens are served/);
        const doctorDown = await runCli(['doctor', '--json'], { env: secondEnv, timeoutMs: 30_000 });
        const downCheck = (JSON.parse(doctorDown.stdout) as { checks: Array<{ name: string; status: string; detail: string; fix?: string }> }).checks.find((c) => c.name === 'database')!;
        expect(downCheck.status).toBe('problem');
        expect(downCheck.detail).toMatch(/^PostgreSQL .*\/t\d+_\d+ cannot be reached \(/);
        expect(downCheck.fix).toMatch(/PGPASSFILE/);
        const back = logged('reconnected to PostgreSQL');
        await server().start();
        await back;
      } finally {
        serve.child.kill('SIGTERM');
        await serve.exit;
      }
      const after = await runCli(['--store-url-file', urlFile, 'status', '--json'], { env: first.env });
      expect((JSON.parse(after.stdout) as { database: { hosts: unknown[] } }).database.hosts).toEqual([]);
    } finally {
      first.cleanup();
      second.cleanup();
    }
  });
});
