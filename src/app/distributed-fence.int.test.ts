import { randomBytes } from 'node:crypto';
import { jetstreamManager } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import pg from 'pg';
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { lockRolesForReplay } from '../cli/role-lock.js';
import { testPostgresUrl } from '../shared/postgres/temporary-schema.js';
import { digestOf } from '../shared/secrets.js';
import { loadConfig } from './config.js';
import { buildDistributed } from './distributed.js';

const natsUrl = process.env.TEST_NATS_URL || undefined;
const runnable = Boolean(testPostgresUrl && natsUrl);
if (!runnable) console.warn('skipping the fenced role consumers: they need TEST_POSTGRES_URL and TEST_NATS_URL');

const TOKEN = 'fenced-role-consumers';

async function until<T>(read: () => Promise<T>, done: (value: T) => boolean, what: string): Promise<T> {
  const deadline = Date.now() + 30_000;
  for (;;) {
    const value = await read();
    if (done(value)) return value;
    if (Date.now() > deadline) throw new Error(`gave up waiting for ${what}: ${JSON.stringify(value)}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

describe.skipIf(!runnable)('a serving role while intake replay holds it', () => {
  it('consumes nothing and parks nothing until the replay has finished, then catches up', async () => {
    const suffix = randomBytes(5).toString('hex');
    const prefix = `fence_${suffix}_`;
    const stream = `INTAKE_TEST_${suffix}`;
    const config = loadConfig({
      DATABASE_URL: testPostgresUrl,
      NATS_URL: natsUrl,
      NATS_STREAM: stream,
      ROLE: 'ingestion,query',
      DB_SCHEMA_PREFIX: prefix,
      ADMIN_TOKEN: TOKEN,
    });
    const intake = await buildDistributed({ config, logger: pino({ level: 'silent' }), adminDigest: digestOf(TOKEN) });
    const headers = { authorization: `Bearer ${TOKEN}` };
    const queryConsumers = intake.roles.find((role) => role.role === 'query')?.consumers;
    try {
      // As when a replay got in while the role's lock connection was down.
      const replay = await lockRolesForReplay(config, ['query']);
      let id = '';
      try {
        const created = await intake.app.inject({ method: 'POST', url: '/ingest', headers, payload: { partner_id: 'p', payload: {} } });
        expect(created.statusCode).toBe(201);
        id = created.json<{ id: string }>().id;
        const held = await until(
          async () => (await queryConsumers?.status()) ?? [],
          (status) => status.some((s) => s.fault?.includes(`holds schema ${prefix}query`)),
          'the query consumers held back',
        );
        expect(held.every((s) => s.parked === 0)).toBe(true);
        expect((await intake.app.inject({ method: 'GET', url: `/query/${id}`, headers })).statusCode).toBe(404);
      } finally {
        await replay.release();
      }
      await until(
        async () => (await intake.app.inject({ method: 'GET', url: `/query/${id}`, headers })).statusCode,
        (code) => code === 200,
        'the item in the query view',
      );
      expect(((await queryConsumers?.status()) ?? []).every((s) => s.parked === 0)).toBe(true);
    } finally {
      await intake.close();
      const client = new pg.Client({ connectionString: testPostgresUrl });
      await client.connect();
      for (const role of ['ingestion', 'query']) await client.query(`DROP SCHEMA IF EXISTS "${prefix}${role}" CASCADE`);
      await client.end();
      const admin = await connect({ servers: natsUrl });
      await (await jetstreamManager(admin)).streams.delete(stream).catch(() => false);
      await admin.close();
    }
  }, 60_000);
});
