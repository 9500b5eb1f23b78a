import { spawnSync } from 'node:child_process';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import { serverLockKey } from '../../src/shared/postgres/schema-lock.js';
import { INTAKE_CLI } from '../support/intake-cli.js';
import { startServerProcess, type ServerProcess } from '../support/server-process.js';

const postgresUrl = process.env.TEST_POSTGRES_URL || undefined;
if (!postgresUrl) console.warn('skipping the PostgreSQL single-process locks: TEST_POSTGRES_URL is not set');

const root = fileURLToPath(new URL('../../', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'intake-pg-locks-'));

const cli = (args: string[], env: Record<string, string>) =>
  spawnSync(process.execPath, [...INTAKE_CLI, ...args], {
    cwd: root,
    env: { ...process.env, LOG_LEVEL: 'info', ...env },
    encoding: 'utf8',
    timeout: 60_000,
  });

async function query<T extends pg.QueryResultRow>(text: string, values: unknown[] = []): Promise<T[]> {
  const client = new pg.Client({ connectionString: postgresUrl });
  await client.connect();
  try {
    return (await client.query<T>(text, values)).rows;
  } finally {
    await client.end();
  }
}

async function until(done: () => Promise<boolean> | boolean, what: string, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await done())) {
    if (Date.now() > deadline) throw new Error(`gave up waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** `DATABASE_URL=postgres://…` without NATS_URL: the same guards as the SQLite pid file, from PostgreSQL advisory locks. */
describe.skipIf(!postgresUrl)('one process on PostgreSQL, guarded like SQLite', () => {
  const prefix = `pglock_${randomBytes(4).toString('hex')}_`;
  const env = {
    DATABASE_URL: postgresUrl ?? '',
    DB_SCHEMA_PREFIX: prefix,
    ADMIN_TOKEN: 'postgres-locks',
    INTAKE_SECRET_KEY: 'postgres-locks-secret-key',
    DATA_DIR: dir,
  };
  const servers: ServerProcess[] = [];
  afterAll(async () => {
    for (const server of servers) await server.kill('SIGKILL');
    await query(`DROP SCHEMA IF EXISTS "${prefix}intake" CASCADE`);
    rmSync(dir, { recursive: true, force: true });
  });

  it('refuses a replay, a second server, a key adoption and migrations while a server runs, and replays once it died even by SIGKILL', async () => {
    const server = await startServerProcess(env);
    servers.push(server);
    const pid = server.process.pid ?? 0;
    const place = `schema ${prefix}intake at ${postgresUrl}`;

    const replay = cli(['replay'], env);
    expect(replay.status).toBe(1);
    expect(replay.stderr).toBe(
      `intake: a running Intake (pid ${pid}, intake serve) holds ${place}: stop it first, ` +
        'or replay on the running server with POST /api/admin/subscriptions/{name}/replay\n',
    );
    const second = cli(['serve'], { ...env, HOST: '127.0.0.1', PORT: '0' });
    expect(second.status).toBe(1);
    expect(second.stderr).toBe(`intake: another Intake (pid ${pid}, intake serve) is using ${place}; stop it first\n`);
    const adopt = cli(['secret-key', 'adopt'], env);
    expect(adopt.status).toBe(1);
    expect(adopt.stderr).toBe(`intake: a running Intake (pid ${pid}, intake serve) holds ${place}: stop it first\n`);
    const migrate = cli(['migrate'], env);
    expect(migrate.status).toBe(1);
    expect(migrate.stderr).toBe(`intake: a running Intake (pid ${pid}, intake serve) holds ${place}: stop it first\n`);
    expect((await fetch(`${server.url}/health`)).status).toBe(200);

    // No file is left to go stale: the lock went with the dead process's connection.
    await server.kill('SIGKILL');
    const replayed = cli(['replay', '--json'], env);
    expect(replayed.status).toBe(0);
    expect(JSON.parse(replayed.stdout)).toMatchObject({ replayed: expect.arrayContaining(['query']) });
  }, 180_000);

  it('pauses its subscribers when the connection holding its lock is terminated, and carries on once it took it again', async () => {
    // A receiver that always fails: its delivery is tried every 0.2 s, until the lock is lost.
    let hits = 0;
    const receiver = createServer((request, response) => {
      request.resume();
      request.on('end', () => {
        hits += 1;
        response.writeHead(500).end();
      });
    });
    await new Promise<void>((resolve) => receiver.listen(0, '127.0.0.1', resolve));
    const server = await startServerProcess({
      ...env,
      WEBHOOK_ALLOWED_HOSTS: '127.0.0.1',
      WEBHOOK_RETRY_SCHEDULE: Array.from({ length: 100 }, () => '0.2').join(','),
      ROUTING_BREAKER_THRESHOLD: '1000',
    });
    servers.push(server);
    const headers = { authorization: 'Bearer postgres-locks', 'content-type': 'application/json' };
    await fetch(`${server.url}/api/ingest/hooked`, { method: 'POST', headers, body: JSON.stringify({ event_type: 'warm', payload: {} }) });
    const rule = await fetch(`${server.url}/api/routing-rules`, {
      method: 'POST',
      headers,
      body: JSON.stringify({
        app_id: 'hooked',
        rule_name: 'failing',
        destination_type: 'webhook',
        destination_config: { url: `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/hooks` },
      }),
    });
    expect(rule.status).toBe(201);
    await fetch(`${server.url}/api/ingest/hooked`, { method: 'POST', headers, body: JSON.stringify({ event_type: 'e', payload: {} }) });
    await until(() => hits >= 2, 'the delivery retried');
    // Another server could take the lock meanwhile: here the test does, and holds it a while.
    const other = new pg.Client({ connectionString: postgresUrl });
    await other.connect();
    try {
      // The server takes the lock again as soon as its work has paused: the test cuts its connection
      // until it gets in first, as a second server starting at that moment would.
      const takeOver = async (): Promise<boolean> => {
        const terminated = await query<{ done: boolean }>(
          'SELECT pg_terminate_backend(pid) AS done FROM pg_stat_activity WHERE application_name = $1',
          [`intake serve, pid ${server.process.pid} on ${hostname()}`.slice(0, 63)],
        );
        expect(terminated).toEqual([{ done: true }]);
        for (const deadline = Date.now() + 500; Date.now() < deadline; await new Promise((resolve) => setTimeout(resolve, 2))) {
          const taken = await other.query<{ locked: boolean }>('SELECT pg_try_advisory_lock($1::bigint) AS locked', [
            serverLockKey(`${prefix}intake`),
          ]);
          if (taken.rows[0]?.locked) return true;
        }
        return false;
      };
      let tries = 0;
      while (!(await takeOver())) expect(++tries).toBeLessThan(20);
      await until(() => server.output().includes('cannot take the lock again yet'), 'the retake refused');
      // Without the lock, no writes: reads still answer.
      const refused = await fetch(`${server.url}/ingest`, {
        method: 'POST',
        headers,
        body: JSON.stringify({ partner_id: 'p', payload: {} }),
      });
      expect([refused.status, ((await refused.json()) as { code?: string }).code]).toEqual([503, 'storage.lock-lost']);
      expect(refused.headers.get('retry-after')).toBe('2');
      expect((await fetch(`${server.url}/query/all`, { headers })).status).toBe(200);
      const ready = (await (await fetch(`${server.url}/health/ready`)).json()) as {
        checks: Record<string, { status: string; detail?: string }>;
      };
      expect(ready.checks.database).toMatchObject({ status: 'down', detail: expect.stringMatching(/writes refused/) });
      // Nor deliveries: another server may be sending them meanwhile.
      const hitsWithoutLock = hits;
      await new Promise((resolve) => setTimeout(resolve, 1500));
      expect(hits).toBe(hitsWithoutLock);
    } finally {
      await other.end();
    }
    const hitsBefore = hits;
    await until(() => hits > hitsBefore, 'deliveries going on once the lock is back');
    receiver.closeAllConnections();
    receiver.close();
    await until(() => server.output().includes('lock taken again; the subscribers resume'), 'the lock taken again');
    expect(server.output()).toContain('lost the connection holding the lock: pausing the subscribers until it is taken again');

    const created = await fetch(`${server.url}/ingest`, {
      method: 'POST',
      headers,
      body: JSON.stringify({ partner_id: 'p', payload: {} }),
    });
    expect(created.status).toBe(201);
    const { id } = (await created.json()) as { id: string };
    await until(
      async () => ((await (await fetch(`${server.url}/query/${id}`, { headers })).json()) as { status?: string }).status === 'processed',
      'the item processed',
    );
    // Still the one server of the schema.
    expect(cli(['replay'], env).stderr).toContain(`a running Intake (pid ${server.process.pid}, intake serve)`);
    await server.kill();
  }, 180_000);
});
