import { randomBytes } from 'node:crypto';
import { jetstreamManager } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import pg from 'pg';
import { pino } from 'pino';
import { afterAll, describe, expect, it } from 'vitest';
import { digestOf } from '../shared/secrets.js';
import { loadConfig } from './config.js';
import { buildDistributed, buildDistributedRebuild, type DistributedIntake } from './distributed.js';

const postgresUrl = process.env.TEST_POSTGRES_URL || undefined;
const natsUrl = process.env.TEST_NATS_URL || undefined;
if (!postgresUrl || !natsUrl) console.warn('skipping side-by-side deployments: TEST_POSTGRES_URL and TEST_NATS_URL are needed');

const TOKEN = 'side-by-side';
const auth = { authorization: `Bearer ${TOKEN}` };
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe.skipIf(!postgresUrl || !natsUrl)('two deployments on one NATS', () => {
  const suffix = randomBytes(4).toString('hex');
  const deployments: Array<{ intake: DistributedIntake; prefix: string; stream: string }> = [];

  const deploy = async (name: string, subjectPrefix?: string) => {
    const prefix = `dep_${name}_${suffix}_`;
    const stream = `INTAKE_${name.toUpperCase()}_${suffix}`;
    const config = loadConfig({
      DATABASE_URL: postgresUrl,
      NATS_URL: natsUrl,
      NATS_STREAM: stream,
      ...(subjectPrefix ? { NATS_SUBJECT_PREFIX: subjectPrefix } : {}),
      ROLE: 'ingestion,query',
      DB_SCHEMA_PREFIX: prefix,
      ADMIN_TOKEN: TOKEN,
    });
    const intake = await buildDistributed({ config, logger: pino({ level: 'silent' }), adminDigest: digestOf(TOKEN) });
    deployments.push({ intake, prefix, stream });
    return intake;
  };
  const configOf = (name: string, streamOf: string) =>
    loadConfig({
      DATABASE_URL: postgresUrl,
      NATS_URL: natsUrl,
      NATS_STREAM: `INTAKE_${streamOf.toUpperCase()}_${suffix}`,
      ROLE: 'ingestion,query',
      DB_SCHEMA_PREFIX: `dep_${name}_${suffix}_`,
      ADMIN_TOKEN: TOKEN,
    });

  afterAll(async () => {
    for (const { intake } of deployments) await intake.close();
    const client = new pg.Client({ connectionString: postgresUrl });
    await client.connect();
    const nats = await connect({ servers: natsUrl ?? '' });
    const jsm = await jetstreamManager(nats);
    for (const { prefix, stream } of deployments) {
      for (const role of ['ingestion', 'query']) await client.query(`DROP SCHEMA IF EXISTS "${prefix}${role}" CASCADE`);
      await jsm.streams.delete(stream).catch(() => false);
    }
    await client.end();
    await nats.close();
  });

  const ingest = async (intake: DistributedIntake, partner: string) => {
    const response = await intake.app.inject({
      method: 'POST',
      url: '/ingest',
      headers: auth,
      payload: { partner_id: partner, event_type: 'order', payload: { n: 1 } },
    });
    expect(response.statusCode).toBe(201);
    return response.json<{ id: string }>().id;
  };
  const partnerItems = async (intake: DistributedIntake, partner: string) =>
    (await intake.app.inject({ method: 'GET', url: `/query/partner/${partner}`, headers: auth })).json<{ items: unknown[] }>().items.length;

  it('keeps each deployment to its own stream and subjects: both attach, neither sees the other', async () => {
    const a = await deploy('a');
    const b = await deploy('b');
    const deadline = Date.now() + 20_000;
    while (!a.roles.every((r) => r.consumers.attached()) || !b.roles.every((r) => r.consumers.attached())) {
      if (Date.now() > deadline) throw new Error('the consumers of both deployments did not attach');
      await sleep(50);
    }
    await ingest(a, `pa-${suffix}`);
    await ingest(b, `pb-${suffix}`);
    for (;;) {
      if ((await partnerItems(a, `pa-${suffix}`)) === 1 && (await partnerItems(b, `pb-${suffix}`)) === 1) break;
      if (Date.now() > deadline) throw new Error('the items did not reach their query views');
      await sleep(50);
    }
    // Given time to arrive, the other deployment's item would be in the view by now.
    await sleep(500);
    expect(await partnerItems(a, `pb-${suffix}`)).toBe(0);
    expect(await partnerItems(b, `pa-${suffix}`)).toBe(0);
    // The query role lists items with the history it keeps of its own.
    const listed = (await a.app.inject({ method: 'GET', url: `/query/partner/pa-${suffix}`, headers: auth })).json<{
      items: Array<{ history: Array<{ type: string }> }>;
    }>();
    expect(listed.items[0]?.history.map((entry) => entry.type)).toContain('DataIngested');
    const ready = (await b.app.inject({ method: 'GET', url: '/health/ready' })).json<{ checks: Record<string, { status: string }> }>();
    expect(ready.checks.broker?.status).toBe('ok');
    // Each subscriber's lag, from its durable consumer, and what this process consumed.
    const metrics = (await a.app.inject({ method: 'GET', url: '/metrics', headers: auth })).body;
    expect(metrics).toMatch(/^intake_subscriber_lag_events\{subscriber="query"\} 0$/m);
    expect(metrics).toMatch(/^intake_bus_events_consumed_total\{subscriber="query"\} [1-9]/m);
  }, 40_000);

  it('refuses to open a deployment’s schemas with another stream, as a role or a replay would without its NATS_STREAM', async () => {
    // Deployment "a" (from the first test) bound its schemas to its stream; "b"'s stream is another.
    const logger = pino({ level: 'silent' });
    await expect(buildDistributed({ config: configOf('a', 'b'), logger, adminDigest: digestOf(TOKEN) })).rejects.toThrow(
      /schema dep_a_\w+_ingestion belongs to the deployment on NATS stream "INTAKE_A_\w+".*give this role the NATS_STREAM/,
    );
    await expect(buildDistributedRebuild({ config: configOf('a', 'b'), logger })).rejects.toThrow(
      /belongs to the deployment on NATS stream/,
    );
  }, 40_000);

  it('lets a deployment refused another’s stream start again with its own, as the refusal asked', async () => {
    const logger = pino({ level: 'silent' });
    // Deployment "r" forgot its NATS_STREAM and took deployment "a"'s: refused, and not ready.
    const refused = await buildDistributed({ config: configOf('r', 'a'), logger, adminDigest: digestOf(TOKEN) });
    try {
      const deadline = Date.now() + 20_000;
      while ((await refused.app.inject({ method: 'GET', url: '/health/ready' })).statusCode !== 503) {
        if (Date.now() > deadline) throw new Error('the refused deployment became ready');
        await sleep(100);
      }
    } finally {
      await refused.close();
    }
    // Started again with a stream of its own, it runs: its schemas were never the other deployment's.
    const r = await buildDistributed({ config: configOf('r', 'r'), logger, adminDigest: digestOf(TOKEN) });
    deployments.push({ intake: r, prefix: `dep_r_${suffix}_`, stream: `INTAKE_R_${suffix}` });
    const deadline = Date.now() + 20_000;
    while (!r.roles.every((role) => role.consumers.attached())) {
      if (Date.now() > deadline) throw new Error('deployment r did not attach to its own stream');
      await sleep(50);
    }
    await ingest(r, `pr-${suffix}`);
    for (;;) {
      if ((await partnerItems(r, `pr-${suffix}`)) === 1) break;
      if (Date.now() > deadline) throw new Error('the item did not reach the query view');
      await sleep(50);
    }
    // Taken by the broker now, its binding stands: the forgotten NATS_STREAM is refused again at start.
    for (;;) {
      const client = new pg.Client({ connectionString: postgresUrl });
      await client.connect();
      const rows = await client.query(`SELECT 1 FROM "dep_r_${suffix}_ingestion".bus_binding WHERE name = 'accepted'`);
      await client.end();
      if (rows.rowCount === 1) break;
      if (Date.now() > deadline) throw new Error('the binding was not recorded as accepted');
      await sleep(50);
    }
    await expect(buildDistributed({ config: configOf('r', 'a'), logger, adminDigest: digestOf(TOKEN) })).rejects.toThrow(
      /belongs to the deployment on NATS stream "INTAKE_R_\w+"/,
    );
  }, 60_000);

  it('keeps a role that only publishes, refused another deployment’s stream, not ready', async () => {
    const prefix = `dep_t_${suffix}_`;
    const config = loadConfig({
      DATABASE_URL: postgresUrl,
      NATS_URL: natsUrl,
      NATS_STREAM: `INTAKE_A_${suffix}`,
      ROLE: 'tracking',
      DB_SCHEMA_PREFIX: prefix,
      ADMIN_TOKEN: TOKEN,
    });
    const tracking = await buildDistributed({ config, logger: pino({ level: 'silent' }), adminDigest: digestOf(TOKEN) });
    try {
      const deadline = Date.now() + 20_000;
      for (;;) {
        const response = await tracking.app.inject({ method: 'GET', url: '/health/ready' });
        const broker = response.json<{ checks: Record<string, { status: string; detail?: string }> }>().checks.broker;
        if (response.statusCode === 503 && broker?.status === 'down') {
          expect(broker.detail).toMatch(/belongs to another Intake deployment/);
          break;
        }
        if (Date.now() > deadline) throw new Error(`still ${response.statusCode}: ${response.body}`);
        await sleep(100);
      }
    } finally {
      await tracking.close();
      const client = new pg.Client({ connectionString: postgresUrl });
      await client.connect();
      await client.query(`DROP SCHEMA IF EXISTS "${prefix}tracking" CASCADE`);
      await client.end();
    }
  }, 40_000);

  it('is not ready when its stream would overlap another deployment’s subjects, and says why', async () => {
    // Deployment "a" (from the test above) owns `intake_a_<suffix>.>`; this one claims the same subjects.
    const c = await deploy('c', `intake_a_${suffix}`);
    const deadline = Date.now() + 20_000;
    for (;;) {
      const response = await c.app.inject({ method: 'GET', url: '/health/ready' });
      const broker = response.json<{ checks: Record<string, { status: string; detail?: string }> }>().checks.broker;
      if (response.statusCode === 503 && broker?.status === 'down') {
        expect(broker.detail).toMatch(/overlap another stream's/);
        return;
      }
      if (Date.now() > deadline) throw new Error(`still ${response.statusCode}: ${response.body}`);
      await sleep(100);
    }
  }, 40_000);
});
