import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { jetstreamManager } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import pg from 'pg';
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { loadConfig, type Config } from '../app/config.js';
import { buildEmbedded } from '../app/embedded.js';
import { fixedClock } from '../shared/clock.js';
import { digestOf } from '../shared/secrets.js';
import { testPostgresUrl } from '../shared/postgres/temporary-schema.js';
import { outputFor } from './output.js';
import { replay } from './replay.js';
import { startWebhookReceiver } from '../../test/support/webhook-receiver.js';

const natsUrl = process.env.TEST_NATS_URL || undefined;
const runnable = Boolean(testPostgresUrl && natsUrl);
if (!runnable) console.warn('skipping the distributed replay command: it needs TEST_POSTGRES_URL and TEST_NATS_URL');

describe.skipIf(!runnable)('ROLE=<role> intake replay', () => {
  it('says there is nothing to replay for roles that keep no views, instead of "rebuilt  in 200 ms"', async () => {
    const suffix = randomBytes(5).toString('hex');
    const prefix = `t${suffix}_`;
    const stream = `INTAKE_TEST_${suffix}`;
    const config = loadConfig({
      DATABASE_URL: testPostgresUrl,
      NATS_URL: natsUrl,
      ROLE: 'validation,tracking',
      DB_SCHEMA_PREFIX: prefix,
      NATS_STREAM: stream,
    });
    const human: string[] = [];
    const json: string[] = [];
    try {
      await replay(
        config,
        pino({ level: 'silent' }),
        outputFor(false, (text) => human.push(text)),
        undefined,
      );
      await replay(
        config,
        pino({ level: 'silent' }),
        outputFor(true, (text) => json.push(text)),
        undefined,
      );
      expect(human).toEqual(['nothing to replay: ROLE=validation,tracking keeps no views to rebuild\n']);
      expect(JSON.parse(json[0] ?? '{}')).toEqual({ replayed: [], ms: 0 });
    } finally {
      const client = new pg.Client({ connectionString: testPostgresUrl });
      await client.connect();
      for (const role of ['validation', 'tracking']) await client.query(`DROP SCHEMA IF EXISTS "${prefix}${role}" CASCADE`);
      await client.end();
      const admin = await connect({ servers: natsUrl });
      await (await jetstreamManager(admin)).streams.delete(stream).catch(() => false);
      await admin.close();
    }
  });
});

const backends = [
  { name: 'SQLite', runnable: true },
  { name: 'PostgreSQL (one process)', runnable: Boolean(testPostgresUrl) },
];

describe.each(backends)('intake replay on $name', ({ name, runnable: backendRunnable }) => {
  it.skipIf(!backendRunnable)('rebuilds views and sends nothing: a delivery due now waits for the server', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'intake-replay-quiet-'));
    const prefix = `rq${randomBytes(4).toString('hex')}_`;
    const hooks = await startWebhookReceiver();
    hooks.respondWith(503);
    const config: Config = loadConfig({
      DATABASE_URL: name === 'SQLite' ? `sqlite:${join(dir, 'intake.db')}` : (testPostgresUrl ?? ''),
      DB_SCHEMA_PREFIX: prefix,
      DATA_DIR: dir,
      ADMIN_TOKEN: 'replay-quiet',
      INTAKE_SECRET_KEY: 'replay-quiet-secret-key',
      WEBHOOK_ALLOWED_HOSTS: '127.0.0.1',
      WEBHOOK_RETRY_SCHEDULE: '60',
    });
    try {
      // The server's clock stands still an hour ago: its first attempt fails, and the second, a minute
      // later by that clock, never comes due for it. By the wall clock it is due once the server stops.
      const server = await buildEmbedded({
        config,
        logger: pino({ level: 'silent' }),
        adminDigest: digestOf('replay-quiet'),
        clock: fixedClock(new Date(Date.now() - 3600_000)),
      });
      try {
        const headers = { authorization: 'Bearer replay-quiet' };
        await server.app.inject({ method: 'POST', url: '/api/applications', headers, payload: { name: 'Shop', app_id: 'shop' } });
        const rule = await server.app.inject({
          method: 'POST',
          url: '/api/routing-rules',
          headers,
          payload: { app_id: 'shop', rule_name: 'orders', destination_type: 'webhook', destination_config: { url: hooks.url } },
        });
        expect(rule.statusCode).toBe(201);
        await server.app.inject({ method: 'POST', url: '/api/ingest/shop', headers, payload: { event_type: 'order', payload: {} } });
        await hooks.waitFor(1);
        await server.subscriptions.caughtUp(30_000);
        for (;;) {
          const deliveries = await server.app.inject({ method: 'GET', url: '/api/routing/deliveries', headers });
          if ((deliveries.json() as { items: Array<{ attempts: number }> }).items[0]?.attempts === 1) break;
          await new Promise((resolve) => setTimeout(resolve, 20));
        }
      } finally {
        await server.close();
      }

      const printed: string[] = [];
      await replay(
        config,
        pino({ level: 'silent' }),
        outputFor(false, (text) => printed.push(text)),
        undefined,
      );

      expect(printed[0]).toMatch(/^replay finished: rebuilt .*query/);
      // The second attempt is the server's to make when it starts again, not the replay's.
      expect(hooks.received).toHaveLength(1);
      const restarted = await buildEmbedded({ config, logger: pino({ level: 'silent' }), adminDigest: digestOf('replay-quiet') });
      try {
        await hooks.waitFor(2);
      } finally {
        await restarted.close();
      }
    } finally {
      await hooks.close();
      rmSync(dir, { recursive: true, force: true });
      if (name !== 'SQLite') {
        const client = new pg.Client({ connectionString: testPostgresUrl });
        await client.connect();
        await client.query(`DROP SCHEMA IF EXISTS "${prefix}intake" CASCADE`);
        await client.end();
      }
    }
  });
});
