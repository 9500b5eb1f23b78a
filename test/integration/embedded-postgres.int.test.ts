import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/app/config.js';
import { lockSchemaExclusively } from '../../src/cli/role-lock.js';
import { listParked } from '../../src/shared/subscriptions/checkpoints.js';
import { testPostgresUrl } from '../../src/shared/postgres/temporary-schema.js';
import { auth, startTestIntake } from '../support/embedded-intake.js';

if (!testPostgresUrl) console.warn('skipping the embedded mode on PostgreSQL: TEST_POSTGRES_URL is not set');

async function dropSchema(schema: string): Promise<void> {
  const client = new pg.Client({ connectionString: testPostgresUrl });
  await client.connect();
  await client.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
  await client.end();
}

/**
 * The one process on a schema of its own, with a session of an operator's beside it that holds a
 * table locked while `work` runs (EXCLUSIVE: readers pass, every writer waits).
 */
async function withOperatorLocks(env: Record<string, string> = {}) {
  const prefix = `t${randomBytes(5).toString('hex')}_`;
  const schema = `${prefix}intake`;
  const intake = await startTestIntake({ DATABASE_URL: testPostgresUrl ?? '', DB_SCHEMA_PREFIX: prefix, ...env });
  const operator = new pg.Client({ connectionString: testPostgresUrl });
  await operator.connect();
  return {
    intake,
    ingest: (n: number) =>
      intake.app.inject({
        method: 'POST',
        url: '/ingest',
        headers: { ...auth, 'content-type': 'application/json' },
        payload: JSON.stringify({ partner_id: 'p1', payload: { n } }),
      }),
    async holding(table: string, work: () => Promise<void>) {
      await operator.query('BEGIN');
      await operator.query(`LOCK TABLE "${schema}"."${table}" IN EXCLUSIVE MODE`);
      try {
        await work();
      } finally {
        await operator.query('ROLLBACK');
      }
    },
    async close() {
      await operator.end();
      await intake.close();
      await dropSchema(schema);
    },
  };
}

/** `DATABASE_URL=postgres://…` without NATS_URL: one process, every context, in-process subscriptions on PostgreSQL. */
describe.skipIf(!testPostgresUrl)('one process on PostgreSQL', () => {
  it('carries items through the whole pipeline, with rules, statistics and replay, in one schema', async () => {
    const prefix = `t${randomBytes(5).toString('hex')}_`;
    const intake = await startTestIntake({ DATABASE_URL: testPostgresUrl ?? '', DB_SCHEMA_PREFIX: prefix });
    const post = (url: string, payload: unknown) =>
      intake.app.inject({
        method: 'POST',
        url,
        headers: { ...auth, 'content-type': 'application/json' },
        payload: JSON.stringify(payload),
      });
    try {
      const created = await post('/ingest', { partner_id: 'p1', event_type: 'signup', payload: { plan: 'pro' } });
      expect(created.statusCode).toBe(201);
      const id = created.json().id as string;
      expect((await intake.app.inject({ method: 'GET', url: `/ingest/${id}`, headers: auth })).statusCode).toBe(200);

      expect((await post('/api/applications', { name: 'Shop', app_id: 'shop' })).statusCode).toBe(201);
      const rule = await post('/api/routing-rules', {
        app_id: 'shop',
        rule_name: 'to a table',
        event_type_filter: 'order',
        condition: { 'payload.total': { $gte: 10 } },
        destination_type: 'database',
        destination_config: { table: 'big_orders' },
        priority: 1,
      });
      expect(rule.statusCode).toBe(201);
      const order = await post('/api/ingest/shop', { event_type: 'order', payload: { total: 12 } });
      expect(order.json().data.routing_summary.rules_matched).toBe(1);

      await intake.subscriptions.caughtUp(30_000);
      const view = (await intake.app.inject({ method: 'GET', url: `/query/${id}`, headers: auth })).json();
      expect(view.status).toBe('processed');
      const stats = (
        await intake.app.inject({ method: 'GET', url: '/api/statistics/dashboard/p1?time_period=daily', headers: auth })
      ).json();
      expect(JSON.stringify(stats)).toContain('"total_events":1');

      expect((await post('/api/admin/subscriptions/query/replay', {})).statusCode).toBe(202);
      await intake.subscriptions.caughtUp(30_000);
      expect((await intake.app.inject({ method: 'GET', url: `/query/${id}`, headers: auth })).json().status).toBe('processed');
      const ready = await intake.app.inject({ method: 'GET', url: '/health/ready' });
      expect(ready.statusCode).toBe(200);
    } finally {
      await intake.close();
      await dropSchema(`${prefix}intake`);
    }
  });

  it('stores one event for concurrent retries of one Idempotency-Key or messageId, whichever connection each takes', async () => {
    const prefix = `t${randomBytes(5).toString('hex')}_`;
    const intake = await startTestIntake({ DATABASE_URL: testPostgresUrl ?? '', DB_SCHEMA_PREFIX: prefix });
    try {
      await intake.app.inject({ method: 'POST', url: '/api/applications', headers: auth, payload: { name: 'Shop', app_id: 'shop' } });
      const key = (await intake.app.inject({ method: 'POST', url: '/api/applications/shop/keys', headers: auth })).json().key as string;
      const keyed = (idempotencyKey: string) =>
        intake.app.inject({
          method: 'POST',
          url: '/api/ingest/shop',
          headers: { ...auth, 'content-type': 'application/json', 'idempotency-key': idempotencyKey },
          payload: JSON.stringify({ event_type: 'order', payload: { total: 1 } }),
        });
      const basic = { authorization: `Basic ${Buffer.from(`${key}:`).toString('base64')}`, 'content-type': 'application/json' };
      const message = (messageId: string) => ({ type: 'track', userId: 'u1', event: 'Viewed', messageId });
      const segment = (messageId: string, n: number) =>
        intake.app.inject({
          method: 'POST',
          url: n % 2 === 0 ? '/v1/batch' : '/v1/track',
          headers: basic,
          payload: JSON.stringify(n % 2 === 0 ? { batch: [message(messageId)] } : message(messageId)),
        });

      const answers = await Promise.all(['k1', 'k2', 'k3'].flatMap((k) => Array.from({ length: 6 }, () => keyed(k))));
      expect(answers.map((a) => a.statusCode).filter((s) => s >= 300)).toEqual([]);
      const idsOf = (k: number) => new Set(answers.slice(k * 6, k * 6 + 6).map((a) => a.json().data.event_id as string));
      expect([idsOf(0).size, idsOf(1).size, idsOf(2).size]).toEqual([1, 1, 1]);
      await Promise.all(['m1', 'm2'].flatMap((m) => Array.from({ length: 8 }, (_, n) => segment(m, n))));

      const client = new pg.Client({ connectionString: testPostgresUrl });
      await client.connect();
      try {
        const { rows } = await client.query<{ n: string }>(
          `SELECT count(*) AS n FROM "${prefix}intake".events WHERE type = 'DataReceived'`,
        );
        expect(Number(rows[0]?.n)).toBe(5);
      } finally {
        await client.end();
      }
    } finally {
      await intake.close();
      await dropSchema(`${prefix}intake`);
    }
  }, 60_000);

  it('holds its subscribers back, parking nothing, while a replay holds the schema, and catches up once it has finished', async () => {
    const prefix = `t${randomBytes(5).toString('hex')}_`;
    const intake = await startTestIntake({ DATABASE_URL: testPostgresUrl ?? '', DB_SCHEMA_PREFIX: prefix });
    try {
      // What `intake replay` takes: as if it got in while this server's lock connection was down.
      const replay = await lockSchemaExclusively(
        loadConfig({ DATABASE_URL: testPostgresUrl ?? '', DB_SCHEMA_PREFIX: prefix }),
        'replay',
        () => '',
      );
      let id = '';
      try {
        const created = await intake.app.inject({
          method: 'POST',
          url: '/ingest',
          headers: { ...auth, 'content-type': 'application/json' },
          payload: JSON.stringify({ partner_id: 'p1', payload: {} }),
        });
        // Ingestion appends: a replay rebuilds views, and the subscribers alone keep them.
        expect(created.statusCode).toBe(201);
        id = created.json().id as string;
        const deadline = Date.now() + 30_000;
        let fault: string | undefined;
        while (fault === undefined && Date.now() < deadline) {
          fault = (await intake.subscriptions.status()).find((s) => s.state === 'retrying')?.fault;
          if (fault === undefined) await new Promise((resolve) => setTimeout(resolve, 20));
        }
        expect(fault).toMatch(new RegExp(`holds schema ${prefix}intake: subscribers wait until it has finished`));
        expect((await intake.app.inject({ method: 'GET', url: `/query/${id}`, headers: auth })).json().status).not.toBe('processed');
      } finally {
        await replay.release();
      }
      await intake.subscriptions.caughtUp(30_000);
      expect((await intake.app.inject({ method: 'GET', url: `/query/${id}`, headers: auth })).json().status).toBe('processed');
      expect(await listParked(intake.db)).toEqual([]);
    } finally {
      await intake.close();
      await dropSchema(`${prefix}intake`);
    }
  });

  it('answers 503 storage.busy instead of hanging while another session holds a table it writes, parks nothing, and heals', async () => {
    const { intake, ingest, holding, close } = await withOperatorLocks({ DATABASE_LOCK_TIMEOUT_MS: '300' });
    try {
      expect((await ingest(0)).statusCode).toBe(201);
      await holding('events', async () => {
        const refused = await ingest(1);
        expect(refused.statusCode).toBe(503);
        expect(refused.json()).toMatchObject({ code: 'storage.busy' });
        expect(refused.headers['retry-after']).toBe('2');
        // Reads still succeed, but readiness tells that writes do not.
        const ready = await intake.app.inject({ method: 'GET', url: '/health/ready' });
        expect(ready.statusCode).toBe(503);
        expect(ready.json().checks.database.detail).toMatch(/^writes failing since .*lock timeout/);
      });
      // A view's table: the subscribers wait on it, give up and try again, and park nothing for it.
      const stored: string[] = [];
      await holding('query_items', async () => {
        for (let n = 2; n < 8; n++) {
          const answer = await ingest(n);
          expect([201, 503]).toContain(answer.statusCode);
          if (answer.statusCode === 201) stored.push(answer.json().id as string);
        }
        await new Promise((resolve) => setTimeout(resolve, 700));
      });
      expect((await ingest(8)).statusCode).toBe(201);
      expect((await intake.app.inject({ method: 'GET', url: '/health/ready' })).json().checks.database.detail).toBe(
        'reads and writes succeed',
      );
      await intake.subscriptions.caughtUp(30_000);
      for (const id of stored) {
        expect((await intake.app.inject({ method: 'GET', url: `/query/${id}`, headers: auth })).json().status).toBe('processed');
      }
      expect(await listParked(intake.db)).toEqual([]);
    } finally {
      await close();
    }
  });

  it('goes on taking items while a view’s table is held locked: the subscribers give up the log’s lock, retry, and park nothing', async () => {
    const { intake, ingest, holding, close } = await withOperatorLocks();
    try {
      expect((await ingest(0)).statusCode).toBe(201);
      const stored: string[] = [];
      let slowest = 0;
      // The subscribers meet the lock with their first batch and wait on it holding the log's lock.
      await holding('query_items', async () => {
        for (let n = 1, until = performance.now() + 4000; performance.now() < until; n++) {
          const started = performance.now();
          const answer = await ingest(n);
          slowest = Math.max(slowest, performance.now() - started);
          expect(answer.statusCode).toBe(201);
          stored.push(answer.json().id as string);
        }
      });
      // Behind a subscriber that waited for the lock's release (4 s) with the log's lock in hand, one waited seconds.
      expect(slowest).toBeLessThan(2500);
      await intake.subscriptions.caughtUp(30_000);
      for (const id of stored.slice(-3)) {
        expect((await intake.app.inject({ method: 'GET', url: `/query/${id}`, headers: auth })).json().status).toBe('processed');
      }
      expect(await listParked(intake.db)).toEqual([]);
    } finally {
      await close();
    }
  });
});
