import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  natsServerAvailable,
  startPrivateNatsServer,
  type PrivateNatsServer,
} from '../../src/shared/messaging/nats/private-nats-server.js';
import { startServerProcess, type ServerProcess } from '../support/server-process.js';
import { startWebhookReceiver, type WebhookReceiver } from '../support/webhook-receiver.js';
import { INTAKE_CLI } from '../support/intake-cli.js';

const postgresUrl = process.env.TEST_POSTGRES_URL;
const runnable = Boolean(postgresUrl) && natsServerAvailable();
if (!runnable) console.warn('skipping the distributed end-to-end test: it needs TEST_POSTGRES_URL and nats-server');

const ROLES = ['ingestion', 'validation', 'processing', 'query', 'routing', 'statistics', 'tracking', 'attribution'] as const;
type Role = (typeof ROLES)[number];
/** Roles that consume from the broker and keep state from it: each is SIGKILLed once mid-stream. */
const CONSUMERS: readonly Role[] = ['validation', 'processing', 'query', 'routing', 'statistics', 'attribution'];
const TOKEN = `e2e-${randomBytes(12).toString('hex')}`;
const admin = { authorization: `Bearer ${TOKEN}` };
const json = { ...admin, 'content-type': 'application/json' };

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function until<T>(probe: () => Promise<T>, accept: (value: T) => boolean, what: string, timeoutMs = 60_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (accept(value)) return value;
    if (Date.now() > deadline) throw new Error(`${what}: not reached, last ${JSON.stringify(value)}`);
    await sleep(200);
  }
}

describe.skipIf(!runnable)('distributed mode: the eight roles as separate processes on PostgreSQL and NATS', () => {
  const prefix = `e2e_${randomBytes(4).toString('hex')}_`;
  const natsDir = mkdtempSync(join(tmpdir(), 'intake-nats-'));
  /** A role's processes: `processing` runs two replicas. */
  const processes = new Map<string, ServerProcess>();
  let nats: PrivateNatsServer;
  let hooks: WebhookReceiver;
  let db: pg.Client;
  let writeKey: Record<string, string>;

  const start = async (name: string, role: Role) => {
    const server = await startServerProcess(
      {
        DATABASE_URL: postgresUrl ?? '',
        NATS_URL: nats.url,
        DB_SCHEMA_PREFIX: prefix,
        ADMIN_TOKEN: TOKEN,
        ROLE: role,
        // The start is recognised by the "listening" line, logged at info.
        LOG_LEVEL: 'info',
        WEBHOOK_ALLOWED_HOSTS: '127.0.0.1',
        // A replica's stable name, as docs/distributed.md asks: restarted, it takes back at once the
        // attempts it had in flight, instead of after their 120 s lease.
        ROUTING_WORKER_ID: name,
      },
      ['serve'],
      90_000,
    );
    processes.set(name, server);
    return server;
  };
  const url = (name: string) => processes.get(name)?.url ?? '';
  const get = async <T>(name: string, path: string): Promise<T> =>
    (await (await fetch(`${url(name)}${path}`, { headers: admin })).json()) as T;
  const post = (name: string, path: string, body: unknown, headers: Record<string, string> = json) =>
    fetch(`${url(name)}${path}`, { method: 'POST', headers, body: JSON.stringify(body) });
  const count = async (sql: string) => Number((await db.query<{ n: string }>(sql)).rows[0]?.n);
  const consumed = async (name: string): Promise<number> => {
    const text = await (await fetch(`${url(name)}/metrics`, { headers: admin })).text();
    const line = /^intake_bus_events_consumed_total\{subscriber="processing"\} (\d+)/m.exec(text);
    return Number(line?.[1] ?? 0);
  };

  beforeAll(async () => {
    nats = await startPrivateNatsServer(natsDir);
    hooks = await startWebhookReceiver();
    db = new pg.Client({ connectionString: postgresUrl });
    await db.connect();
    // Four at a time: eight TypeScript processes starting at once on a small machine outlast the start timeout.
    await Promise.all(ROLES.slice(0, 4).map((role) => start(role, role)));
    await Promise.all(ROLES.slice(4).map((role) => start(role, role)));
    await start('processing#2', 'processing');
  }, 120_000);

  afterAll(async () => {
    await Promise.all([...processes.values()].map((p) => p.kill('SIGKILL')));
    await nats?.stop();
    await hooks?.close();
    rmSync(natsDir, { recursive: true, force: true });
    for (const role of ROLES) await db?.query(`DROP SCHEMA IF EXISTS "${prefix}${role}" CASCADE`);
    await db?.end();
  }, 60_000);

  it('carries each flow through its roles: partner item, application event to a webhook, tracking to attribution, statistics', async () => {
    // Applications live in ingestion; rules in routing, which learns of the application through its replica.
    expect((await post('ingestion', '/api/applications', { name: 'Shop', app_id: 'shop' })).status).toBe(201);
    const key = (await (await post('ingestion', '/api/applications/shop/keys', { name: 'server' })).json()) as { key: string };
    writeKey = { authorization: `Bearer ${key.key}`, 'content-type': 'application/json' };
    const rule = await until(
      () =>
        post('routing', '/api/routing-rules', {
          app_id: 'shop',
          rule_name: 'big orders',
          event_type_filter: 'order_created',
          condition: { 'payload.total': { $gt: 50 } },
          destination_type: 'webhook',
          destination_config: { url: hooks.url },
          priority: 10,
        }),
      (response) => response.status === 201,
      'routing knows the application',
    );
    expect(rule.status).toBe(201);

    // Rules are evaluated on the ingest path, by ingestion's replica of them: it matches once it has the rule.
    const matched = await until(
      async () =>
        (await (
          await post('ingestion', '/api/ingest/shop', { event_type: 'order_created', payload: { order_id: 'A17', total: 99 } }, writeKey)
        ).json()) as {
          data: { event_id: string; routing_summary: { rules_matched: number } };
        },
      (body) => body.data.routing_summary.rules_matched === 1,
      'ingestion knows the rule',
    );
    const [delivered] = await hooks.waitFor(1, 30_000);
    expect(JSON.parse(delivered?.body ?? '{}')).toMatchObject({ data: { event_id: matched.data.event_id, payload: { order_id: 'A17' } } });

    // A partner item reaches "processed" in the query role, its history gathered from three services' events.
    const ingested = (await (
      await post('ingestion', '/ingest', { partner_id: 'p-flow', event_type: 'order', payload: { email: ' Ada@Example.com ' } })
    ).json()) as { id: string };
    const item = await until(
      () => get<{ status: string; history: Array<{ type: string }> }>('query', `/query/${ingested.id}`),
      (body) => body.status === 'processed',
      'the item is processed in the query view',
    );
    expect(item.history.map((e) => e.type)).toEqual(['DataReceived', 'DataIngested', 'DataValidated', 'DataProcessed']);

    // Tracking records a touch; attribution credits it to the campaign of a conversion it recorded itself.
    const conversion = await post('attribution', '/api/v1/tracking/conversions', {
      visitor_id: 'v-e2e',
      value: 120,
      occurred_at: '2026-11-12T00:00:00Z',
    });
    expect(conversion.status).toBe(201);
    const touch = await post('tracking', '/api/v1/tracking/events', {
      partner_id: 'p-flow',
      campaign_id: 'winter',
      visitor_id: 'v-e2e',
      interaction_type: 'click',
      source_url: 'https://blog.example.com/post',
      destination_url: 'https://shop.example.com/winter',
      occurred_at: '2026-11-10T00:00:00Z',
    });
    expect(touch.status).toBe(201);
    await until(
      () => get<{ conversions: number; attributed_value: number }>('attribution', '/api/v1/attribution/campaigns/winter'),
      (body) => body.conversions === 1 && body.attributed_value === 120,
      'the conversion is attributed to the campaign',
    );

    // Statistics count the item from the events they consumed; a refresh recounts from their own tallies.
    type Dashboard = { totals: { total_events: number; processed_events: number } };
    await until(
      () => get<Dashboard>('statistics', '/api/statistics/dashboard/p-flow'),
      (body) => body.totals.total_events === 1 && body.totals.processed_events === 1,
      'statistics count the item',
    );
    const refreshed = await post('statistics', '/api/statistics/refresh/p-flow', {});
    expect(refreshed.status).toBe(200);
    // No log was read, so no position is claimed: the role's events came from several services' logs.
    expect(await refreshed.json()).toMatchObject({ items: 1, up_to_position: null, totals: { total_events: 1, processed_events: 1 } });

    // Each role operates its own subscribers; replay rebuilds the query view from the stream.
    const status = await get<{ items: Array<{ name: string; lag: number }> }>('query', '/api/admin/subscriptions');
    expect(status.items.map((s) => s.name)).toEqual(['query']);
    expect((await post('query', '/api/admin/subscriptions/query/replay', {})).status).toBe(202);
    await until(
      () => get<{ status: string }>('query', `/query/${ingested.id}`),
      (body) => body.status === 'processed',
      'the replayed view has the item again',
    );
    expect((await post('query', '/api/admin/subscriptions/processing/replay', {})).status).toBe(404);
  }, 120_000);

  it('loses nothing and doubles nothing when each consumer role is SIGKILLed mid-stream, nor through a broker outage', async () => {
    const ITEMS = 600;
    const ORDERS = 60;
    const TOUCHES = 120;
    const hooksBefore = hooks.received.length;
    let sent = 0;
    const killedAt = new Map<number, Role>(CONSUMERS.map((role, i) => [Math.round(((i + 1) * ITEMS) / (CONSUMERS.length + 1)), role]));
    const restarts: Array<Promise<unknown>> = [];
    const ids: string[] = [];
    await Promise.all(
      Array.from({ length: 16 }, async () => {
        while (sent < ITEMS) {
          const i = sent++;
          const victim = killedAt.get(i);
          // Killed without warning, restarted at once: it resumes from its durable consumer.
          if (victim)
            restarts.push(
              processes
                .get(victim)
                ?.kill('SIGKILL')
                .then(() => start(victim, victim)) ?? Promise.resolve(),
            );
          const response = await post('ingestion', '/ingest', {
            partner_id: 'p-kill',
            event_type: 'order',
            payload: { n: i, email: `u${i}@example.com` },
          });
          expect(response.status).toBe(201);
          ids.push(((await response.json()) as { id: string }).id);
          if (i < ORDERS) {
            const order = await post(
              'ingestion',
              '/api/ingest/shop',
              { event_type: 'order_created', payload: { order_id: `K${i}`, total: 100 + i } },
              writeKey,
            );
            expect(order.status).toBe(201);
          }
          if (i < TOUCHES) {
            const touched = await post('tracking', '/api/v1/tracking/events', {
              partner_id: 'p-kill',
              campaign_id: 'killing',
              visitor_id: `v-${i}`,
              interaction_type: 'view',
              source_url: 'https://blog.example.com/post',
              destination_url: 'https://shop.example.com/',
            });
            expect(touched.status).toBe(201);
          }
        }
      }),
    );
    await Promise.all(restarts);

    // The broker goes down while items keep coming: ingestion stores them, the relay catches up after.
    await nats.stop();
    for (let i = 0; i < 50; i++) {
      const response = await post('ingestion', '/ingest', { partner_id: 'p-kill', event_type: 'order', payload: { n: ITEMS + i } });
      expect(response.status).toBe(201);
      ids.push(((await response.json()) as { id: string }).id);
    }
    await nats.restart();
    const total = ids.length;

    await until(
      () => count(`SELECT count(*) AS n FROM "${prefix}query".query_items WHERE partner_id = 'p-kill' AND status = 'processed'`),
      (n) => n === total,
      'every item processed in the query view',
      90_000,
    );
    // Exactly-once effects, counted in each service's own schema.
    expect(await count(`SELECT count(*) AS n FROM "${prefix}validation".events WHERE type IN ('DataValidated', 'DataInvalid')`)).toBe(
      await count(`SELECT count(DISTINCT stream_id) AS n FROM "${prefix}validation".events`),
    );
    expect(
      await count(
        `SELECT count(*) - count(DISTINCT stream_id) AS n FROM "${prefix}processing".events WHERE type IN ('DataProcessed', 'DataProcessingFailed')`,
      ),
    ).toBe(0);
    expect(
      await count(`SELECT count(*) AS n FROM "${prefix}processing".events WHERE type = 'DataProcessed' AND data->>'partner_id' = 'p-kill'`),
    ).toBe(total);
    type Dashboard = { totals: { total_events: number; processed_events: number } };
    await until(
      () => get<Dashboard>('statistics', '/api/statistics/dashboard/p-kill'),
      (body) => body.totals.total_events === total && body.totals.processed_events === total,
      'statistics count every item once',
    );
    await until(
      () => get<{ interactions: Record<string, number> }>('attribution', '/api/v1/attribution/campaigns/killing'),
      (body) => body.interactions.view === TOUCHES,
      'attribution counts every touch once',
    );
    await hooks.waitFor(hooksBefore + ORDERS, 60_000);
    const webhookIds = hooks.received.slice(hooksBefore).map((r) => String(r.headers['webhook-id']));
    // A delivery cut short by the kill is sent again under the same webhook-id; receivers deduplicate on it.
    expect(new Set(webhookIds).size).toBe(ORDERS);
    // Each success is recorded once the receiver has answered: it may come a moment after the request.
    const succeeded = () => count(`SELECT count(*) AS n FROM "${prefix}routing".events WHERE type = 'DeliverySucceeded'`);
    await until(succeeded, (n) => n >= ORDERS + 1, 'every delivery recorded as succeeded', 30_000);
    expect(await succeeded()).toBe(ORDERS + 1);
  }, 240_000);

  it('shares the work of processing between two replicas, each event handled once', async () => {
    const before = [await consumed('processing'), await consumed('processing#2')];
    const ITEMS = 300;
    let sent = 0;
    await Promise.all(
      Array.from({ length: 16 }, async () => {
        while (sent < ITEMS) {
          sent++;
          expect((await post('ingestion', '/ingest', { partner_id: 'p-share', event_type: 'order', payload: { n: sent } })).status).toBe(
            201,
          );
        }
      }),
    );
    await until(
      () => count(`SELECT count(*) AS n FROM "${prefix}query".query_items WHERE partner_id = 'p-share' AND status = 'processed'`),
      (n) => n === ITEMS,
      'every shared item processed',
    );
    const shares = [(await consumed('processing')) - (before[0] ?? 0), (await consumed('processing#2')) - (before[1] ?? 0)];
    expect(shares[0]).toBeGreaterThan(0);
    expect(shares[1]).toBeGreaterThan(0);
    expect((shares[0] ?? 0) + (shares[1] ?? 0)).toBe(ITEMS);
  }, 120_000);

  it('replays a stopped role from the command line: ROLE=query intake replay rebuilds its view from the stream', async () => {
    const expected = await count(`SELECT count(*) AS n FROM "${prefix}query".query_items WHERE status = 'processed'`);
    expect(expected).toBeGreaterThan(900);
    await processes.get('query')?.kill('SIGTERM');
    processes.delete('query');
    await db.query(`UPDATE "${prefix}query".query_items SET status = 'stale'`);
    const child = spawn(process.execPath, [...INTAKE_CLI, 'replay'], {
      cwd: fileURLToPath(new URL('../../', import.meta.url)),
      env: {
        ...process.env,
        DATABASE_URL: postgresUrl,
        NATS_URL: nats.url,
        DB_SCHEMA_PREFIX: prefix,
        ADMIN_TOKEN: TOKEN,
        ROLE: 'query',
        LOG_LEVEL: 'info',
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
    const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
    expect(code, output).toBe(0);
    expect(output).toMatch(/replay finished: rebuilt query/);
    expect(await count(`SELECT count(*) AS n FROM "${prefix}query".query_items WHERE status = 'processed'`)).toBe(expected);
    expect(await count(`SELECT count(*) AS n FROM "${prefix}query".query_items WHERE status = 'stale'`)).toBe(0);
  }, 120_000);
});
