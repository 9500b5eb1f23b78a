import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { pino } from 'pino';
import { afterAll, describe, expect, it } from 'vitest';
import { natsServerAvailable, startPrivateNatsServer, type PrivateNatsServer } from '../shared/messaging/nats/private-nats-server.js';
import { digestOf } from '../shared/secrets.js';
import { loadConfig } from './config.js';
import { buildDistributed, type DistributedIntake } from './distributed.js';

const postgresUrl = process.env.TEST_POSTGRES_URL || undefined;
const runnable = Boolean(postgresUrl) && natsServerAvailable();
if (!runnable) console.warn('skipping distributed readiness through a broker outage: it needs TEST_POSTGRES_URL and nats-server');

const TOKEN = 'readiness-outage';
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

type Ready = { status: string; checks: Record<string, { status: string; detail?: string }> };

describe.skipIf(!runnable)('distributed readiness while the broker is away', () => {
  const prefix = `ready_${randomBytes(4).toString('hex')}_`;
  const natsDir = mkdtempSync(join(tmpdir(), 'intake-nats-'));
  let nats: PrivateNatsServer | undefined;
  let intake: DistributedIntake | undefined;

  afterAll(async () => {
    await intake?.close();
    await nats?.stop();
    rmSync(natsDir, { recursive: true, force: true });
    const client = new pg.Client({ connectionString: postgresUrl });
    await client.connect();
    for (const role of ['ingestion', 'query']) await client.query(`DROP SCHEMA IF EXISTS "${prefix}${role}" CASCADE`);
    await client.end();
  });

  /** Polls readiness until `wanted` holds; answers that readiness. */
  const readinessUntil = async (wanted: (body: Ready) => boolean, what: string): Promise<{ code: number; body: Ready }> => {
    const deadline = Date.now() + 20_000;
    for (;;) {
      const response = await intake?.app.inject({ method: 'GET', url: '/health/ready' });
      const body = response?.json<Ready>();
      if (body && wanted(body)) return { code: response?.statusCode ?? 0, body };
      if (Date.now() > deadline) throw new Error(`${what}: readiness still says ${response?.body}`);
      await sleep(100);
    }
  };

  /** Polls readiness until the broker check has the status wanted; answers that readiness. */
  const brokerBecomes = (status: string, what: string) => readinessUntil((body) => body.checks.broker?.status === status, what);

  /** Stores an item through the running role, as a client would. */
  const ingest = (partner: string) =>
    intake?.app.inject({
      method: 'POST',
      url: '/ingest',
      headers: { authorization: `Bearer ${TOKEN}` },
      payload: { partner_id: partner, event_type: 'order', payload: {} },
    });

  it('reports the broker degraded while it is down, stays ready for writes, and ok again once it is back', async () => {
    nats = await startPrivateNatsServer(natsDir);
    const config = loadConfig({
      DATABASE_URL: postgresUrl,
      NATS_URL: nats.url,
      ROLE: 'ingestion',
      DB_SCHEMA_PREFIX: prefix,
      ADMIN_TOKEN: TOKEN,
    });
    intake = await buildDistributed({ config, logger: pino({ level: 'silent' }), adminDigest: digestOf(TOKEN) });
    await brokerBecomes('ok', 'the consumers attach');

    await nats.stop();
    const away = await brokerBecomes('degraded', 'the outage is noticed');
    // Writes still go to the role's own log, so it stays in the load balancer's pool.
    expect(away.code).toBe(200);
    expect(away.body.checks.broker?.detail).toMatch(/NATS/);
    const stored = await ingest('p-away');
    expect(stored?.statusCode).toBe(201);

    await nats.restart();
    expect((await brokerBecomes('ok', 'the broker is back')).code).toBe(200);
  }, 30_000);

  it('says a role is not ready while one of its subscribers waits out a fault, and ready again once it healed', async () => {
    await intake?.close();
    const config = loadConfig({
      DATABASE_URL: postgresUrl,
      NATS_URL: nats?.url,
      ROLE: 'ingestion,query',
      DB_SCHEMA_PREFIX: prefix,
      ADMIN_TOKEN: TOKEN,
    });
    intake = await buildDistributed({ config, logger: pino({ level: 'silent' }), adminDigest: digestOf(TOKEN) });
    await brokerBecomes('ok', 'the consumers attach');
    const client = new pg.Client({ connectionString: postgresUrl });
    await client.connect();
    try {
      // The query view's table goes away under the running role: its consumer retries, storing nothing.
      await client.query(`ALTER TABLE "${prefix}query".query_items RENAME TO query_items_away`);
      const stored = await ingest('p-fault');
      expect(stored?.statusCode).toBe(201);
      const faulted = await readinessUntil((body) => body.checks['subscribers:query']?.status === 'down', 'the fault is noticed');
      expect(faulted.code).toBe(503);
      expect(faulted.body.checks['subscribers:query']?.detail).toMatch(/query retrying \(.*query_items/);

      await client.query(`ALTER TABLE "${prefix}query".query_items_away RENAME TO query_items`);
      const healed = await readinessUntil((body) => body.checks['subscribers:query']?.status === 'ok', 'the subscriber healed');
      expect(healed.code).toBe(200);
    } finally {
      await client.end();
    }
  }, 60_000);
});
