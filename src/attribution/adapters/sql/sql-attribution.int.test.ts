import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { sql, type Kysely, type RawBuilder } from 'kysely';
import { pino } from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { systemClock } from '../../../shared/clock.js';
import type { AppendRequest, EventStore } from '../../../shared/event-store/event-store.js';
import { sqliteEventStoreMigrations } from '../../../shared/event-store/sqlite/migrations.js';
import { sqliteEventStore } from '../../../shared/event-store/sqlite/sqlite-event-store.js';
import type { RecordedEvent } from '../../../shared/events.js';
import { uuidV7 } from '../../../shared/ids.js';
import { migrateToLatest } from '../../../shared/sqlite/migrate.js';
import { openSqlite } from '../../../shared/sqlite/open-sqlite.js';
import { postgresEventStoreMigrations } from '../../../shared/event-store/postgres/migrations.js';
import { postgresEventStore } from '../../../shared/event-store/postgres/postgres-event-store.js';
import { migratePostgresToLatest } from '../../../shared/postgres/migrate.js';
import { openTemporarySchema, testPostgresUrl } from '../../../shared/postgres/temporary-schema.js';
import { listParked } from '../../../shared/subscriptions/checkpoints.js';
import { inProcessSubscriptions } from '../../../shared/subscriptions/in-process-subscriptions.js';
import { subscriptionMigrations } from '../../../shared/subscriptions/migrations.js';
import { attributionSubscriber } from '../../application/attribution-subscriber.js';
import { getConversionAttribution, getScopeAttribution, getVisitorJourney } from '../../application/queries.js';
import { lookbackOfDays, type AttributionModel } from '../../domain/attribution-models.js';
import { DEFAULT_WEIGHTS } from '../../domain/interaction-weights.js';
import { attributionMigrations } from './migrations.js';
import { sqlAttributionLedger } from './sql-attribution-ledger.js';
import { sqlAttributionViews } from './sql-attribution-views.js';

interface Opened {
  readonly db: Kysely<object>;
  readonly store: EventStore;
  close(): Promise<void>;
}

/** The ledger runs on SQLite in one process and on PostgreSQL in the attribution role: the same tests run on both. */
const backends: ReadonlyArray<{ readonly name: string; readonly available: boolean; open(): Promise<Opened> }> = [
  {
    name: 'SQLite',
    available: true,
    async open() {
      const dir = mkdtempSync(join(tmpdir(), 'intake-attribution-'));
      const sqlite = openSqlite(join(dir, 'db.sqlite'));
      await migrateToLatest(sqlite.db, [sqliteEventStoreMigrations, subscriptionMigrations, attributionMigrations]);
      const store = await sqliteEventStore({ sqlite, clock: systemClock, newId: uuidV7, durability: 'process-crash' });
      return {
        db: sqlite.db,
        store,
        async close() {
          await store.close();
          await sqlite.close();
          rmSync(dir, { recursive: true, force: true });
        },
      };
    },
  },
  {
    name: 'PostgreSQL',
    available: testPostgresUrl !== undefined,
    async open() {
      const postgres = await openTemporarySchema(testPostgresUrl ?? '');
      await migratePostgresToLatest(postgres, [postgresEventStoreMigrations, subscriptionMigrations, attributionMigrations]);
      const store = await postgresEventStore({ postgres, clock: systemClock, newId: uuidV7 });
      return {
        db: postgres.db,
        store,
        async close() {
          await store.close();
          await postgres.close();
        },
      };
    },
  },
];
if (!testPostgresUrl) console.warn('skipping attribution on PostgreSQL: TEST_POSTGRES_URL is not set');

describe.each(backends)('attribution on $name', ({ available, open }) => {
  let db: Kysely<object>;
  let store: EventStore;
  let opened: Opened | undefined;

  beforeEach(async () => {
    if (!available) return;
    opened = await open();
    ({ db, store } = opened);
  });

  afterEach(async () => {
    await opened?.close();
    opened = undefined;
  });

  const subscriber = attributionSubscriber({ ledger: sqlAttributionLedger, lookbackMs: lookbackOfDays(30) });
  const views = () => sqlAttributionViews(db);
  const campaign = (id: string, model: AttributionModel = 'last_touch') =>
    getScopeAttribution(views(), DEFAULT_WEIGHTS)({ kind: 'campaign', id }, model);
  const partner = (id: string, model: AttributionModel = 'last_touch') =>
    getScopeAttribution(views(), DEFAULT_WEIGHTS)({ kind: 'partner', id }, model);

  /** What tracking appends for one event: `tracking_event.recorded.v1` on its own stream. */
  function tracked(id: string, visitor: string, campaignId: string, partnerId: string, type: string, occurredAt: string): AppendRequest {
    return {
      streamId: `tracking-${id}`,
      events: [
        {
          type: 'TrackingEventRecorded',
          data: {
            tracking_event_id: id,
            partner_id: partnerId,
            campaign_id: campaignId,
            visitor_id: visitor,
            interaction_type: type,
            source_url: 'https://source.example/',
            destination_url: 'https://shop.example/',
            occurred_at: occurredAt,
            recorded_at: occurredAt,
          },
          metadata: { schema_version: 1, published_as: 'tracking_event.recorded.v1' },
        },
      ],
    };
  }

  function converted(id: string, visitor: string, value: number, occurredAt: string): AppendRequest {
    return {
      streamId: `conversion-${id}`,
      events: [
        {
          type: 'ConversionRecorded',
          data: { conversion_id: id, visitor_id: visitor, value, occurred_at: occurredAt, recorded_at: occurredAt },
          metadata: { schema_version: 1, published_as: 'conversion.recorded.v1' },
        },
      ],
    };
  }

  async function append(...requests: AppendRequest[]): Promise<RecordedEvent[]> {
    const events: RecordedEvent[] = [];
    for (const request of requests) events.push(...(await store.append(request)).events);
    return events;
  }

  /**
   * Until the last of these events is readable. On PostgreSQL a commit is read once every older
   * transaction has ended, in any schema (another test file's too), and caughtUp waits for what is
   * readable: without this it could answer before these events were.
   */
  const readable = (events: readonly RecordedEvent[]) =>
    expect.poll(() => store.headPosition(), { timeout: 10_000 }).toBe(events.at(-1)?.position ?? 0);

  const deliver = (events: readonly RecordedEvent[]) => store.transaction((tx) => subscriber.handle(events, tx));
  const reset = () => store.transaction(async (tx) => subscriber.reset?.(tx));

  /** Every attribution table, rows in key order: two equal dumps are two identical views. */
  async function dump() {
    const rows = async (query: RawBuilder<unknown>) => (await query.execute(db)).rows;
    return {
      touches: await rows(sql`SELECT * FROM attribution_touches ORDER BY tracking_event_id`),
      conversions: await rows(sql`SELECT * FROM attribution_conversions ORDER BY conversion_id`),
      totals: await rows(sql`SELECT * FROM attribution_scope_totals ORDER BY scope, scope_id`),
      visitors: await rows(sql`SELECT * FROM attribution_scope_visitors ORDER BY scope, scope_id, visitor_id`),
      credits: await rows(sql`SELECT * FROM attribution_credits ORDER BY conversion_id, model, partner_id, campaign_id`),
    };
  }

  /** A deterministic shuffle (seeded LCG), so a failure is reproducible. */
  function shuffled<T>(items: readonly T[], seed: number): T[] {
    const copy = [...items];
    let state = seed;
    for (let i = copy.length - 1; i > 0; i--) {
      state = (state * 1103515245 + 12345) % 2 ** 31;
      const j = state % (i + 1);
      [copy[i], copy[j]] = [copy[j] as T, copy[i] as T];
    }
    return copy;
  }

  /** A little world: 3 visitors, 4 campaigns of 2 partners, 30 touches and 6 conversions over two months. */
  function world(): AppendRequest[] {
    const requests: AppendRequest[] = [];
    const types = ['view', 'click', 'engagement'];
    for (let i = 0; i < 30; i++) {
      const day = String(1 + ((i * 7) % 28)).padStart(2, '0');
      const month = i % 2 ? '10' : '11';
      requests.push(
        tracked(
          `t-${String(i).padStart(2, '0')}`,
          `v-${i % 3}`,
          `c-${i % 4}`,
          i % 4 < 2 ? 'A' : 'B',
          types[i % 3] ?? 'view',
          `2026-${month}-${day}T08:00:00.000Z`,
        ),
      );
    }
    for (let i = 0; i < 6; i++) {
      requests.push(converted(`k-${i}`, `v-${i % 3}`, 10 * (i + 1), `2026-11-${String(10 + i * 3).padStart(2, '0')}T12:00:00.000Z`));
    }
    return requests;
  }

  describe.skipIf(!available)('attribution totals per campaign and partner', () => {
    it('counts interactions by type, unique visitors and the weighted score', async () => {
      await deliver(
        await append(
          tracked('t1', 'v-1', 'c1', 'A', 'view', '2026-11-01T00:00:00.000Z'),
          tracked('t2', 'v-1', 'c1', 'A', 'click', '2026-11-02T00:00:00.000Z'),
          tracked('t3', 'v-2', 'c1', 'A', 'engagement', '2026-11-03T00:00:00.000Z'),
          tracked('t4', 'v-2', 'c2', 'A', 'click', '2026-11-04T00:00:00.000Z'),
        ),
      );
      // c1: 1 view × 1 + 1 click × 3 + 1 engagement × 5 = 9, visitors v-1 and v-2.
      expect(await campaign('c1')).toMatchObject({ interactions: { view: 1, click: 1, engagement: 1 }, uniqueVisitors: 2, score: 9 });
      // Partner A across c1 and c2: 1 view + 2 clicks + 1 engagement = 1 + 6 + 5 = 12, still 2 visitors.
      expect(await partner('A')).toMatchObject({ interactions: { view: 1, click: 2, engagement: 1 }, uniqueVisitors: 2, score: 12 });
      await expect(campaign('unknown')).rejects.toThrow(/no tracking events for campaign unknown/);
    });
  });

  describe.skipIf(!available)('duplicate delivery', () => {
    it('changes nothing, whether the same batch comes twice or an event twice in one batch', async () => {
      const events = await append(
        tracked('t1', 'v-1', 'c1', 'A', 'click', '2026-11-01T00:00:00.000Z'),
        tracked('t2', 'v-1', 'c2', 'B', 'view', '2026-11-02T00:00:00.000Z'),
        converted('k1', 'v-1', 100, '2026-11-03T00:00:00.000Z'),
      );
      await deliver(events);
      const once = await dump();
      await deliver(events);
      await deliver([...events, ...events].reverse());
      expect(await dump()).toEqual(once);
      expect(await campaign('c1')).toMatchObject({ interactions: { click: 1 }, uniqueVisitors: 1, conversions: 0, attributedValue: 0 });
      expect(await campaign('c2')).toMatchObject({ interactions: { view: 1 }, conversions: 1, attributedValue: 100 });
    });
  });

  describe.skipIf(!available)('out-of-order arrival', () => {
    it('re-credits a conversion when an earlier touch arrives after it', async () => {
      const [late] = await append(tracked('t0', 'v-1', 'c0', 'A', 'view', '2026-11-01T00:00:00.000Z'));
      const onTime = await append(
        tracked('t1', 'v-1', 'c1', 'B', 'click', '2026-11-10T00:00:00.000Z'),
        converted('k1', 'v-1', 90, '2026-11-20T00:00:00.000Z'),
      );
      await deliver(onTime);
      // Before t0 arrives, c1 is the visitor's only touch and takes everything under every model.
      expect(await campaign('c1', 'first_touch')).toMatchObject({ conversions: 1, attributedValue: 90 });

      await deliver(late ? [late] : []);
      // t0 happened first: it is now the first touch, and shares the conversion with t1.
      expect(await campaign('c0', 'first_touch')).toMatchObject({ conversions: 1, attributedValue: 90 });
      expect(await campaign('c1', 'first_touch')).toMatchObject({ conversions: 0, attributedValue: 0 });
      expect(await campaign('c1', 'last_touch')).toMatchObject({ conversions: 1, attributedValue: 90 });
      // Two touches: linear and position-based both split 50/50, 45 each.
      expect(await campaign('c0', 'linear')).toMatchObject({ conversions: 0.5, attributedValue: 45 });
      expect(await partner('B', 'position_based')).toMatchObject({ conversions: 0.5, attributedValue: 45 });

      const journey = await getVisitorJourney(views())('v-1', { limit: 10 });
      expect(journey.firstTouch?.trackingEventId).toBe('t0');
      expect(journey.lastTouch?.trackingEventId).toBe('t1');
      expect(journey.touches.items.map((t) => t.trackingEventId)).toEqual(['t0', 't1']);
      const credits = await getConversionAttribution(views())('k1');
      expect(credits.credits.first_touch).toEqual([{ model: 'first_touch', partnerId: 'A', campaignId: 'c0', share: 1, value: 90 }]);
    });

    it('ends in identical tables whatever the order and batching of delivery', async () => {
      const events = await append(...world());
      await deliver(events);
      const inOrder = await dump();
      expect(inOrder.credits.length).toBeGreaterThan(0);
      for (const seed of [1, 2, 3]) {
        await reset();
        const order = shuffled(events, seed);
        const batchSize = seed * 4;
        for (let i = 0; i < order.length; i += batchSize) await deliver(order.slice(i, i + batchSize));
        expect(await dump()).toEqual(inOrder);
      }
    });
  });

  describe.skipIf(!available)('replay', () => {
    it('rebuilds views identical to the ones kept live', async () => {
      const subscriptions = inProcessSubscriptions({
        store,
        db,
        clock: systemClock,
        logger: pino({ level: 'silent' }),
        subscribers: [subscriber],
        batchSize: 7,
      });
      subscriptions.start();
      try {
        // Appended one by one while the subscriber runs, so the live view is built in many small batches.
        await readable(await append(...world()));
        await subscriptions.caughtUp();
        const live = await dump();
        expect(subscriptions.replayable()).toEqual(['attribution']);
        await subscriptions.replay('attribution');
        await subscriptions.caughtUp();
        expect(await dump()).toEqual(live);
      } finally {
        await subscriptions.stop();
      }
    });

    it('parks an event it cannot read and keeps attributing the others', async () => {
      const subscriptions = inProcessSubscriptions({
        store,
        db,
        clock: systemClock,
        logger: pino({ level: 'silent' }),
        subscribers: [subscriber],
        retryBaseMs: 1,
        maxAttempts: 2,
      });
      subscriptions.start();
      try {
        await readable(
          await append(
            {
              streamId: 'tracking-bad',
              events: [{ type: 'TrackingEventRecorded', data: { tracking_event_id: 'bad' }, metadata: { schema_version: 1 } }],
            },
            tracked('t1', 'v-1', 'c1', 'A', 'click', '2026-11-01T00:00:00.000Z'),
          ),
        );
        await subscriptions.caughtUp();
        // Parked after its retries, which a loaded machine may still be waiting out.
        await expect
          .poll(() => listParked(db, 'attribution'), { timeout: 10_000 })
          .toEqual([expect.objectContaining({ streamId: 'tracking-bad', eventType: 'TrackingEventRecorded' })]);
        expect(await campaign('c1')).toMatchObject({ interactions: { click: 1 } });
      } finally {
        await subscriptions.stop();
      }
    });
  });
});
