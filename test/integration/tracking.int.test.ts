import { localProcedures } from '../../src/shared/procedures.js';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import type { ModuleDeps } from '../../src/shared/context-module.js';
import { loadConfig } from '../../src/app/config.js';
import { buildHttpServer } from '../../src/app/http/server.js';
import { subscriptionAdminOf, subscriptionHttp } from '../../src/app/http/subscription-routes.js';
import { attributionModule, attributionTables, type AttributionOptions } from '../../src/attribution/module.js';
import { fixedClock } from '../../src/shared/clock.js';
import type { EventStore } from '../../src/shared/event-store/event-store.js';
import { sqliteEventStoreMigrations } from '../../src/shared/event-store/sqlite/migrations.js';
import { sqliteEventStore } from '../../src/shared/event-store/sqlite/sqlite-event-store.js';
import { uuidV7 } from '../../src/shared/ids.js';
import { digestOf } from '../../src/shared/secrets.js';
import { migrateToLatest } from '../../src/shared/sqlite/migrate.js';
import { openSqlite, sqlitePathFromUrl } from '../../src/shared/sqlite/open-sqlite.js';
import { inProcessSubscriptions, type Subscriptions } from '../../src/shared/subscriptions/in-process-subscriptions.js';
import { subscriptionMigrations } from '../../src/shared/subscriptions/migrations.js';
import { trackingModule, trackingTables } from '../../src/tracking/module.js';

const ADMIN_TOKEN = 'tracking-test-admin-token';
const auth = { authorization: `Bearer ${ADMIN_TOKEN}` };
const json = { ...auth, 'content-type': 'application/json' };
// Every occurred_at below is in November 2026; the clock stands after it, so none is "in the future".
const NOW = '2026-12-01T00:00:00.000Z';

interface TrackingIntake {
  readonly app: FastifyInstance;
  readonly store: EventStore;
  readonly subscriptions: Subscriptions;
  dispose(): Promise<void>;
}

/**
 * The embedded composition root (src/app/embedded.ts) cut down to tracking and attribution, so these
 * tests run before the two contexts are wired into it.
 */
async function startTrackingIntake(attribution: AttributionOptions = {}): Promise<TrackingIntake> {
  const dir = mkdtempSync(join(tmpdir(), 'intake-tracking-'));
  const config = loadConfig({ DATABASE_URL: `sqlite:${join(dir, 'intake.db')}`, ADMIN_TOKEN, LOG_LEVEL: 'silent' });
  const logger = pino({ level: 'silent' });
  const clock = fixedClock(NOW);
  const sqlite = openSqlite(sqlitePathFromUrl(config.databaseUrl));
  const tables = [trackingTables, attributionTables];
  await migrateToLatest(sqlite.db, [sqliteEventStoreMigrations, subscriptionMigrations, ...tables.flatMap((t) => t.migrations)]);
  const store = await sqliteEventStore({
    sqlite,
    clock,
    newId: uuidV7,
    durability: config.durability,
    inlineProjections: tables.flatMap((t) => t.inlineProjections ?? []),
  });
  const deps: ModuleDeps = { store, db: sqlite.db, clock, newId: uuidV7, logger, procedures: localProcedures() };
  const modules = [trackingModule(deps), attributionModule(deps, attribution)];
  const subscriptions = inProcessSubscriptions({
    store,
    db: sqlite.db,
    clock,
    logger,
    subscribers: modules.flatMap((m) => m.subscribers ?? []),
  });
  const app = await buildHttpServer({
    logger,
    version: 'test',
    bodyLimitBytes: config.bodyLimitBytes,
    adminDigest: digestOf(ADMIN_TOKEN),
    readiness: async () => ({ database: { status: 'ok' } }),
    contexts: [...modules.flatMap((m) => m.http ?? []), subscriptionHttp(subscriptionAdminOf(subscriptions, sqlite.db))],
  });
  subscriptions.start();
  return {
    app,
    store,
    subscriptions,
    async dispose() {
      await app.close();
      await subscriptions.stop();
      await store.close();
      await sqlite.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

let intake: TrackingIntake | undefined;
afterEach(async () => {
  await intake?.dispose();
  intake = undefined;
});

async function start(attribution: AttributionOptions = {}): Promise<TrackingIntake> {
  intake = await startTrackingIntake(attribution);
  return intake;
}

const post = (app: TrackingIntake, url: string, body: unknown, headers: Record<string, string> = json) =>
  app.app.inject({ method: 'POST', url, headers, payload: typeof body === 'string' ? body : JSON.stringify(body) });
const get = (app: TrackingIntake, url: string, headers: Record<string, string> = auth) => app.app.inject({ method: 'GET', url, headers });
const storedCount = async (app: TrackingIntake) => (await app.store.readAll({ after: 0, limit: 100_000 })).length;

const event = (overrides: Record<string, unknown> = {}) => ({
  partner_id: 'partner123',
  campaign_id: 'spring',
  visitor_id: 'v-42',
  interaction_type: 'click',
  source_url: 'https://blog.example.com/post',
  destination_url: 'https://shop.example.com/spring?utm_campaign=spring',
  ...overrides,
});

describe('POST /api/v1/tracking/events', () => {
  it('records the event durably and answers 201 with exactly the four contract fields; a GET right after finds it', async () => {
    const app = await start();
    const response = await post(app, '/api/v1/tracking/events', event({ occurred_at: '2026-11-24T10:00:00Z' }), {
      ...json,
      'x-correlation-id': 'corr-7',
    });
    expect(response.statusCode).toBe(201);
    const body = response.json();
    expect(Object.keys(body).sort()).toEqual(['message', 'processing_time_ms', 'status', 'tracking_event_id']);
    expect(body).toMatchObject({ status: 'recorded', message: 'Tracking event recorded successfully' });
    expect(body.tracking_event_id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[0-9a-f]{4}-[0-9a-f]{12}$/);
    expect(typeof body.processing_time_ms).toBe('number');
    expect(body.processing_time_ms).toBeGreaterThanOrEqual(0);
    expect(response.headers.location).toBe(`/api/v1/tracking/events/${body.tracking_event_id}`);

    const fetched = await get(app, `/api/v1/tracking/events/${body.tracking_event_id}`);
    expect(fetched.statusCode).toBe(200);
    expect(fetched.json()).toEqual({
      tracking_event_id: body.tracking_event_id,
      status: 'recorded',
      ...event(),
      occurred_at: '2026-11-24T10:00:00.000Z',
      recorded_at: NOW,
    });

    const [recorded] = await app.store.readStream(`tracking-${body.tracking_event_id}`);
    expect(recorded?.type).toBe('TrackingEventRecorded');
    expect(recorded?.metadata).toEqual({ schema_version: 1, published_as: 'tracking_event.recorded.v1', correlationId: 'corr-7' });
  });

  it('refuses bad input with a 400 problem listing every invalid field, and stores nothing', async () => {
    const app = await start();
    const response = await post(app, '/api/v1/tracking/events', {
      partner_id: 'p'.repeat(256),
      campaign_id: '',
      interaction_type: 'purchase',
      source_url: '/relative',
      destination_url: 'javascript:alert(document.cookie)',
    });
    expect(response.statusCode).toBe(400);
    expect(response.headers['content-type']).toMatch(/^application\/problem\+json/);
    const problem = response.json();
    expect(problem).toMatchObject({ status: 400, code: 'tracking.invalid-event', type: 'urn:intake:problem:tracking.invalid-event' });
    expect(problem.errors).toEqual([
      { path: 'partner_id', message: 'must be at most 255 characters' },
      { path: 'campaign_id', message: 'must not be empty' },
      { path: 'visitor_id', message: 'is required' },
      { path: 'interaction_type', message: 'must be one of click, view, engagement' },
      { path: 'source_url', message: 'must be an absolute http or https URL' },
      { path: 'destination_url', message: 'must be an absolute http or https URL' },
    ]);
    expect(problem.detail).toMatch(/^invalid tracking event: partner_id must be at most 255 characters; campaign_id/);
    expect(await storedCount(app)).toBe(0);
  });

  it('lists every missing field of an empty object', async () => {
    const app = await start();
    const response = await post(app, '/api/v1/tracking/events', {});
    expect(response.statusCode).toBe(400);
    expect(response.json().errors.map((e: { path: string }) => e.path)).toEqual([
      'partner_id',
      'campaign_id',
      'visitor_id',
      'interaction_type',
      'source_url',
      'destination_url',
    ]);
  });

  it.each([
    ['malformed JSON', '{"partner_id": "p",', 'request.malformed-json'],
    ['an array body', [event()], 'request.invalid'],
  ])('refuses %s whole', async (_name, body, code) => {
    const app = await start();
    const response = await post(app, '/api/v1/tracking/events', body);
    expect(response.statusCode).toBe(400);
    expect(response.json().code).toBe(code);
    expect(await storedCount(app)).toBe(0);
  });

  it('needs a token', async () => {
    const app = await start();
    expect((await post(app, '/api/v1/tracking/events', event(), { 'content-type': 'application/json' })).statusCode).toBe(401);
  });

  it('answers 404 for an unknown event', async () => {
    const app = await start();
    const response = await get(app, '/api/v1/tracking/events/0193f2a0-0000-7000-8000-000000000000');
    expect(response.statusCode).toBe(404);
    expect(response.json().code).toBe('tracking.event-not-found');
  });
});

describe('POST /api/v1/tracking/events/batch', () => {
  it('records the valid events and rejects each invalid one with its reasons, in request order', async () => {
    const app = await start();
    const response = await post(app, '/api/v1/tracking/events/batch', {
      events: [event(), event({ interaction_type: 'share', source_url: 'ftp://x' }), event({ interaction_type: 'view' })],
    });
    expect(response.statusCode).toBe(200);
    const body = response.json();
    expect(body).toMatchObject({ recorded: 2, rejected: 1 });
    expect(body.receipts).toEqual([
      { index: 0, status: 'recorded', tracking_event_id: expect.any(String) },
      {
        index: 1,
        status: 'rejected',
        errors: [
          { path: 'interaction_type', message: 'must be one of click, view, engagement' },
          { path: 'source_url', message: 'must be an absolute http or https URL' },
        ],
      },
      { index: 2, status: 'recorded', tracking_event_id: expect.any(String) },
    ]);
    const viewed = await get(app, `/api/v1/tracking/events/${body.receipts[2].tracking_event_id}`);
    expect(viewed.json()).toMatchObject({ interaction_type: 'view', status: 'recorded' });
    expect(await storedCount(app)).toBe(2);
  });

  it.each([
    ['an empty batch', { events: [] }],
    ['501 events', { events: Array.from({ length: 501 }, () => event()) }],
    ['an element that is not an object', { events: [event(), 'click'] }],
    ['no events field', { items: [event()] }],
  ])('refuses %s whole, storing nothing', async (_name, body) => {
    const app = await start();
    const response = await post(app, '/api/v1/tracking/events/batch', body);
    expect(response.statusCode).toBe(400);
    expect(await storedCount(app)).toBe(0);
  });

  it('takes 500 events in one request', async () => {
    const app = await start();
    const response = await post(app, '/api/v1/tracking/events/batch', {
      events: Array.from({ length: 500 }, (_, i) => event({ visitor_id: `v-${i}` })),
    });
    expect(response.statusCode).toBe(200);
    expect(response.json()).toMatchObject({ recorded: 500, rejected: 0 });
    expect(await storedCount(app)).toBe(500);
  });
});

describe('Idempotency-Key on the tracking and conversion API', () => {
  const keyed = (key: string) => ({ ...json, 'idempotency-key': key });

  it('records a keyed tracking event once: a retry answers the first id, replayed; another event under the key is refused', async () => {
    const app = await start();
    const first = await post(app, '/api/v1/tracking/events', event(), keyed('TE-1'));
    expect(first.statusCode).toBe(201);
    expect(first.headers['idempotent-replayed']).toBeUndefined();
    // The same event built again, its fields in another order, is the same request.
    const reordered = Object.fromEntries(Object.entries(event()).reverse());
    const retry = await post(app, '/api/v1/tracking/events', reordered, keyed('TE-1'));
    expect([retry.statusCode, retry.headers['idempotent-replayed']]).toEqual([201, 'true']);
    expect(retry.json().tracking_event_id).toBe(first.json().tracking_event_id);
    const other = await post(app, '/api/v1/tracking/events', event({ visitor_id: 'v-43' }), keyed('TE-1'));
    expect([other.statusCode, other.json().code]).toEqual([422, 'tracking.idempotency-key-reused']);
    expect(await storedCount(app)).toBe(1);
    expect((await get(app, `/api/v1/tracking/events/${first.json().tracking_event_id}`)).statusCode).toBe(200);
  });

  it('scopes a tracking key to its partner: two partners may use the same key', async () => {
    const app = await start();
    const a = await post(app, '/api/v1/tracking/events', event({ partner_id: 'A' }), keyed('shared'));
    const b = await post(app, '/api/v1/tracking/events', event({ partner_id: 'B' }), keyed('shared'));
    expect([a.statusCode, b.statusCode]).toEqual([201, 201]);
    expect(b.headers['idempotent-replayed']).toBeUndefined();
    expect(await storedCount(app)).toBe(2);
  });

  it('records a retried keyed batch once, answering duplicates with the first ids, and records a fixed event at its place', async () => {
    const app = await start();
    const events = [event({ visitor_id: 'v-1' }), event({ interaction_type: 'share' }), event({ visitor_id: 'v-3' })];
    const first = await post(app, '/api/v1/tracking/events/batch', { events }, keyed('TB-1'));
    expect(first.json()).toMatchObject({ recorded: 2, duplicates: 0, rejected: 1 });
    const fixed = [events[0], event({ visitor_id: 'v-2' }), events[2]];
    const retry = await post(app, '/api/v1/tracking/events/batch', { events: fixed }, keyed('TB-1'));
    expect(retry.statusCode).toBe(200);
    expect(retry.json()).toMatchObject({ recorded: 1, duplicates: 2, rejected: 0 });
    const ids = (response: typeof first) => response.json().receipts.map((r: { tracking_event_id?: string }) => r.tracking_event_id);
    expect(retry.json().receipts.map((r: { status: string }) => r.status)).toEqual(['duplicate', 'recorded', 'duplicate']);
    expect([ids(retry)[0], ids(retry)[2]]).toEqual([ids(first)[0], ids(first)[2]]);
    expect(await storedCount(app)).toBe(3);
    const changed = await post(app, '/api/v1/tracking/events/batch', { events: [event({ visitor_id: 'v-9' })] }, keyed('TB-1'));
    expect([changed.statusCode, changed.json().code]).toEqual([422, 'tracking.idempotency-key-reused']);
    expect(await storedCount(app)).toBe(3);
  });

  it('answers every one of concurrent retries of a growing keyed batch, storing each place once', async () => {
    const app = await start();
    const events = Array.from({ length: 10 }, (_, i) => event({ visitor_id: `v-${i}` }));
    const answers = await Promise.all(
      events.map((_, i) => post(app, '/api/v1/tracking/events/batch', { events: events.slice(0, i + 1) }, keyed('GROWING'))),
    );
    expect(answers.map((answer) => answer.statusCode)).toEqual(events.map(() => 200));
    expect(await storedCount(app)).toBe(10);
    // Every answer names, at each place, the one event stored there.
    const idAt = new Map<number, string>();
    for (const answer of answers) {
      for (const receipt of answer.json().receipts as Array<{ index: number; tracking_event_id: string }>) {
        expect(idAt.get(receipt.index) ?? receipt.tracking_event_id).toBe(receipt.tracking_event_id);
        idAt.set(receipt.index, receipt.tracking_event_id);
      }
    }
    expect(idAt.size).toBe(10);
  });

  it('keeps a single event’s key apart from the keys a batch derives from its header', async () => {
    const app = await start();
    const batch = await post(app, '/api/v1/tracking/events/batch', { events: [event()] }, keyed('export'));
    const single = await post(app, '/api/v1/tracking/events', event(), keyed('export#0'));
    expect([single.statusCode, single.headers['idempotent-replayed']]).toEqual([201, undefined]);
    expect(single.json().tracking_event_id).not.toBe(batch.json().receipts[0].tracking_event_id);
    const changed = await post(app, '/api/v1/tracking/events/batch', { events: [event({ visitor_id: 'v-9' })] }, keyed('export'));
    expect(changed.json().detail).toMatch(/Idempotency-Key "export" .*event 0/);
  });

  it('credits a retried keyed conversion once; the key with another value is refused', async () => {
    const app = await start();
    await post(app, '/api/v1/tracking/events', event({ partner_id: 'A', campaign_id: 'spring', occurred_at: '2026-11-10T00:00:00Z' }));
    const conversion = { visitor_id: 'v-42', value: 80, occurred_at: '2026-11-12T00:00:00Z' };
    const first = await post(app, '/api/v1/tracking/conversions', conversion, keyed('ORDER-17'));
    const retry = await post(app, '/api/v1/tracking/conversions', conversion, keyed('ORDER-17'));
    expect([first.statusCode, retry.statusCode, retry.headers['idempotent-replayed']]).toEqual([201, 201, 'true']);
    expect(retry.json().conversion_id).toBe(first.json().conversion_id);
    const other = await post(app, '/api/v1/tracking/conversions', { ...conversion, value: 81 }, keyed('ORDER-17'));
    expect([other.statusCode, other.json().code]).toEqual([422, 'attribution.idempotency-key-reused']);
    await app.subscriptions.caughtUp();
    const spring = (await get(app, '/api/v1/attribution/campaigns/spring?model=last_touch')).json();
    expect(spring.conversions).toBe(1);
    expect(spring.attributed_value).toBe(80);
  });
});

describe('GET /api/v1/tracking/health', () => {
  it('answers ok without a token, like /health', async () => {
    const app = await start();
    const response = await get(app, '/api/v1/tracking/health', {});
    expect(response.statusCode).toBe(200);
    expect(response.json()).toEqual({
      status: 'ok',
      service: 'tracking',
      publishes: ['tracking_event.recorded.v1'],
      checks: { database: { status: 'ok' } },
    });
  });
});

describe('attribution over HTTP', () => {
  /**
   * The worked example. Visitor v-42 converts for 200 on 2026-11-12; its touches in the 30-day window:
   *   t1 2026-11-01 partner A, campaign spring, view
   *   t2 2026-11-05 partner B, campaign newsletter, click
   *   t3 2026-11-10 partner A, campaign spring, engagement
   * and visitor v-7 clicks spring once (a second visitor, no conversion). The conversion is posted
   * before the touches, so its credits must be corrected as they arrive.
   */
  async function workedExample(app: TrackingIntake): Promise<string> {
    const conversion = await post(app, '/api/v1/tracking/conversions', {
      visitor_id: 'v-42',
      value: 200,
      occurred_at: '2026-11-12T00:00:00Z',
    });
    expect(conversion.statusCode).toBe(201);
    const touches = await post(app, '/api/v1/tracking/events/batch', {
      events: [
        event({ partner_id: 'A', campaign_id: 'spring', interaction_type: 'engagement', occurred_at: '2026-11-10T00:00:00Z' }),
        event({ partner_id: 'B', campaign_id: 'newsletter', interaction_type: 'click', occurred_at: '2026-11-05T00:00:00Z' }),
        event({ partner_id: 'A', campaign_id: 'spring', interaction_type: 'view', occurred_at: '2026-11-01T00:00:00Z' }),
        event({
          partner_id: 'A',
          campaign_id: 'spring',
          interaction_type: 'click',
          visitor_id: 'v-7',
          occurred_at: '2026-11-02T00:00:00Z',
        }),
      ],
    });
    expect(touches.json()).toMatchObject({ recorded: 4 });
    await app.subscriptions.caughtUp();
    return conversion.json().conversion_id;
  }

  const campaign = async (app: TrackingIntake, id: string, model?: string) =>
    (await get(app, `/api/v1/attribution/campaigns/${id}${model ? `?model=${model}` : ''}`)).json();

  it('records a conversion with 201 and the contract fields', async () => {
    const app = await start();
    const response = await post(app, '/api/v1/tracking/conversions', { visitor_id: 'v-1', value: 10 });
    expect(response.statusCode).toBe(201);
    expect(Object.keys(response.json()).sort()).toEqual(['conversion_id', 'message', 'processing_time_ms', 'status']);
    expect(response.headers.location).toBe(`/api/v1/attribution/conversions/${response.json().conversion_id}`);
  });

  it('refuses a bad conversion listing every invalid field', async () => {
    const app = await start();
    const response = await post(app, '/api/v1/tracking/conversions', { value: -3, occurred_at: 'soon' });
    expect(response.statusCode).toBe(400);
    expect(response.json()).toMatchObject({
      code: 'attribution.invalid-conversion',
      errors: [
        { path: 'visitor_id', message: 'is required' },
        { path: 'value', message: 'must not be negative' },
        { path: 'occurred_at', message: 'must be an RFC 3339 date-time such as 2026-11-24T10:00:00Z' },
      ],
    });
    expect(await storedCount(app)).toBe(0);
  });

  it('answers a campaign’s totals and credits under each model, computed by hand', async () => {
    const app = await start();
    await workedExample(app);
    // spring: 1 view × 1 + 1 click × 3 + 1 engagement × 5 = 9; visitors v-42 and v-7.
    const totals = { interactions: { view: 1, click: 1, engagement: 1 }, unique_visitors: 2, score: 9 };
    // Default model: last touch. t3 (spring) is v-42's last touch: the whole conversion, 200.
    expect(await campaign(app, 'spring')).toEqual({
      campaign_id: 'spring',
      model: 'last_touch',
      ...totals,
      conversions: 1,
      attributed_value: 200,
    });
    // First touch: t1 (spring) → 1 conversion, 200.
    expect(await campaign(app, 'spring', 'first_touch')).toMatchObject({ conversions: 1, attributed_value: 200 });
    // Linear: 3 touches, 1/3 each; spring has t1 + t3 = 2/3 → 0.666667 and 200 × 2/3 = 133.333333.
    expect(await campaign(app, 'spring', 'linear')).toMatchObject({ conversions: 0.666667, attributed_value: 133.333333 });
    // Position-based, 3 touches: 40% t1 + 40% t3 = 80% → 160; the middle t2 gets 20% → 40.
    expect(await campaign(app, 'spring', 'position_based')).toMatchObject({ conversions: 0.8, attributed_value: 160 });
    expect(await campaign(app, 'newsletter', 'position_based')).toMatchObject({
      interactions: { view: 0, click: 1, engagement: 0 },
      unique_visitors: 1,
      score: 3,
      conversions: 0.2,
      attributed_value: 40,
    });
    expect(await campaign(app, 'newsletter', 'last_touch')).toMatchObject({ conversions: 0, attributed_value: 0 });
  });

  it('answers a partner’s attribution across its campaigns', async () => {
    const app = await start();
    await workedExample(app);
    const partner = (await get(app, '/api/v1/attribution/partners/B?model=linear')).json();
    // B has only t2: linear 1/3 → 0.333333 and 200 / 3 = 66.666667.
    expect(partner).toEqual({
      partner_id: 'B',
      model: 'linear',
      interactions: { view: 0, click: 1, engagement: 0 },
      unique_visitors: 1,
      score: 3,
      conversions: 0.333333,
      attributed_value: 66.666667,
    });
  });

  it('shows a visitor’s touches in the order they occurred, with first and last touch, page by page', async () => {
    const app = await start();
    await workedExample(app);
    const first = (await get(app, '/api/v1/attribution/visitors/v-42?limit=2')).json();
    expect(first).toMatchObject({
      visitor_id: 'v-42',
      first_touch: { campaign_id: 'spring', interaction_type: 'view', occurred_at: '2026-11-01T00:00:00.000Z' },
      last_touch: { campaign_id: 'spring', interaction_type: 'engagement', occurred_at: '2026-11-10T00:00:00.000Z' },
      conversions: 1,
    });
    expect(first.touches.map((t: { occurred_at: string }) => t.occurred_at)).toEqual([
      '2026-11-01T00:00:00.000Z',
      '2026-11-05T00:00:00.000Z',
    ]);
    const second = (await get(app, `/api/v1/attribution/visitors/v-42?limit=2&cursor=${first.next_cursor}`)).json();
    expect(second.touches.map((t: { campaign_id: string }) => t.campaign_id)).toEqual(['spring']);
    expect(second.next_cursor).toBeNull();
  });

  it('shows how one conversion was credited under every model', async () => {
    const app = await start();
    const id = await workedExample(app);
    const credits = (await get(app, `/api/v1/attribution/conversions/${id}`)).json();
    expect(credits).toMatchObject({ conversion_id: id, visitor_id: 'v-42', value: 200, occurred_at: '2026-11-12T00:00:00.000Z' });
    expect(credits.credits.position_based).toEqual([
      { partner_id: 'A', campaign_id: 'spring', share: 0.8, value: 160 },
      { partner_id: 'B', campaign_id: 'newsletter', share: 0.2, value: 40 },
    ]);
    expect(credits.credits.first_touch).toEqual([{ partner_id: 'A', campaign_id: 'spring', share: 1, value: 200 }]);
  });

  it('scores with the weights it was given', async () => {
    const app = await start({ weights: { click: 10 } });
    await workedExample(app);
    // 1 view × 1 + 1 click × 10 + 1 engagement × 5 = 16
    expect((await campaign(app, 'spring')).score).toBe(16);
  });

  it('refuses an unknown model and answers 404 for what it has not seen', async () => {
    const app = await start();
    await workedExample(app);
    expect((await get(app, '/api/v1/attribution/campaigns/spring?model=u_shaped')).statusCode).toBe(400);
    for (const url of ['/api/v1/attribution/campaigns/nope', '/api/v1/attribution/partners/nope', '/api/v1/attribution/visitors/nope']) {
      const response = await get(app, url);
      expect(response.statusCode).toBe(404);
      expect(response.headers['content-type']).toMatch(/^application\/problem\+json/);
    }
  });

  it('rebuilds attribution by replay into the same answers', async () => {
    const app = await start();
    const id = await workedExample(app);
    const urls = [
      ...['first_touch', 'last_touch', 'linear', 'position_based'].flatMap((model) => [
        `/api/v1/attribution/campaigns/spring?model=${model}`,
        `/api/v1/attribution/partners/B?model=${model}`,
      ]),
      '/api/v1/attribution/visitors/v-42',
      `/api/v1/attribution/conversions/${id}`,
    ];
    const answers = async () => Promise.all(urls.map(async (url) => (await get(app, url)).json()));
    const before = await answers();
    const replay = await post(app, '/api/admin/subscriptions/attribution/replay', '', auth);
    expect(replay.statusCode).toBe(202);
    await app.subscriptions.caughtUp();
    expect(await answers()).toEqual(before);
  });
});

describe('OpenAPI', () => {
  it('documents the tracking and attribution routes', async () => {
    const app = await start();
    const paths = Object.keys((await get(app, '/openapi.json', {})).json().paths);
    expect(paths).toEqual(
      expect.arrayContaining([
        '/api/v1/tracking/events',
        '/api/v1/tracking/events/batch',
        '/api/v1/tracking/events/{id}',
        '/api/v1/tracking/health',
        '/api/v1/tracking/conversions',
        '/api/v1/attribution/campaigns/{campaign_id}',
        '/api/v1/attribution/partners/{partner_id}',
        '/api/v1/attribution/visitors/{visitor_id}',
        '/api/v1/attribution/conversions/{conversion_id}',
      ]),
    );
  });

  it('gives the tracking event its types and required fields, and documents health as public', async () => {
    const app = await start();
    const doc = (await get(app, '/openapi.json', {})).json();
    const body = doc.paths['/api/v1/tracking/events'].post.requestBody.content['application/json'].schema;
    expect(body.type).toBe('object');
    expect(body.required).toEqual(['partner_id', 'campaign_id', 'visitor_id', 'interaction_type', 'source_url', 'destination_url']);
    expect(body.properties.partner_id).toMatchObject({ type: 'string', minLength: 1, maxLength: 255 });
    expect(body.properties.source_url).toMatchObject({ type: 'string', format: 'uri' });
    expect(body.properties.occurred_at).toMatchObject({ type: 'string', format: 'date-time' });
    const batch = doc.paths['/api/v1/tracking/events/batch'].post.requestBody.content['application/json'].schema;
    expect(batch.properties.events.items.required).toContain('interaction_type');
    expect(doc.paths['/api/v1/tracking/health'].get.security).toEqual([]);
  });

  it('gives the conversion its types and required fields, and both writes their Idempotency-Key', async () => {
    const app = await start();
    const doc = (await get(app, '/openapi.json', {})).json();
    const post = doc.paths['/api/v1/tracking/conversions'].post;
    const body = post.requestBody.content['application/json'].schema;
    expect(body.required).toEqual(['visitor_id', 'value']);
    expect(body.properties.value).toMatchObject({ type: 'number', minimum: 0 });
    expect(body.properties.occurred_at).toMatchObject({ type: 'string', format: 'date-time' });
    for (const path of ['/api/v1/tracking/conversions', '/api/v1/tracking/events', '/api/v1/tracking/events/batch']) {
      expect(doc.paths[path].post.parameters).toContainEqual(expect.objectContaining({ in: 'header', name: 'idempotency-key' }));
    }
    // How a retry's answer is marked, on the routes that take a key.
    expect(doc.paths['/api/v1/tracking/conversions'].post.responses['201'].headers).toHaveProperty('Idempotent-Replayed');
    expect(doc.paths['/api/v1/tracking/health'].get.responses['200'].headers).toBeUndefined();
  });
});
