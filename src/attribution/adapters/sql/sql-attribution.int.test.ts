import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CompiledQuery, sql, type Kysely, type RawBuilder } from 'kysely';
import { pino } from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { systemClock } from '../../../shared/clock.js';
import type { AppendRequest, EventStore } from '../../../shared/event-store/event-store.js';
import { sqliteEventStoreMigrations } from '../../../shared/event-store/sqlite/migrations.js';
import { sqliteEventStore } from '../../../shared/event-store/sqlite/sqlite-event-store.js';
import type { RecordedEvent } from '../../../shared/events.js';
import { uuidV7 } from '../../../shared/ids.js';
import { migrateToLatest, type MigrationSet } from '../../../shared/sqlite/migrate.js';
import { openSqlite } from '../../../shared/sqlite/open-sqlite.js';
import { postgresEventStoreMigrations } from '../../../shared/event-store/postgres/migrations.js';
import { postgresEventStore } from '../../../shared/event-store/postgres/postgres-event-store.js';
import { migratePostgresToLatest } from '../../../shared/postgres/migrate.js';
import { openTemporarySchema, testPostgresUrl } from '../../../shared/postgres/temporary-schema.js';
import { listParked, replayRequests, saveCheckpoint } from '../../../shared/subscriptions/checkpoints.js';
import { inProcessSubscriptions } from '../../../shared/subscriptions/in-process-subscriptions.js';
import { subscriptionMigrations } from '../../../shared/subscriptions/migrations.js';
import { attributionSubscriber } from '../../application/attribution-subscriber.js';
import { CHAIN_LIMITS, TIE_LIMITS } from '../../domain/analytics-message.js';
import { getConversionAttribution, getScopeAttribution, getVisitorJourney } from '../../application/queries.js';
import { lookbackOfDays, type AttributionModel } from '../../domain/attribution-models.js';
import { DEFAULT_WEIGHTS } from '../../domain/interaction-weights.js';
import { sdkVisitor, type ExternalId, type Instant } from '../../domain/values.js';
import { attributionMigrations } from './migrations.js';
import { sqlAttributionLedger } from './sql-attribution-ledger.js';
import { directTiesStatement, tiesStatement } from './attribution-tables.js';
import { onSqlite } from '../../../shared/sql/statement-shapes.js';
import { sqlAttributionViews } from './sql-attribution-views.js';

interface Opened {
  readonly db: Kysely<object>;
  readonly store: EventStore;
  /** Applies the migrations of the set not applied yet, as a start of a newer version does. */
  migrate(set: MigrationSet): Promise<string[]>;
  close(): Promise<void>;
}

/**
 * The ledger runs on SQLite in one process and on PostgreSQL in the attribution role: the same tests
 * run on both. `attribution` is the migration set to open with: an older one stands for a database
 * written by an earlier version.
 */
const backends: ReadonlyArray<{ readonly name: string; readonly available: boolean; open(attribution?: MigrationSet): Promise<Opened> }> = [
  {
    name: 'SQLite',
    available: true,
    async open(attribution = attributionMigrations) {
      const dir = mkdtempSync(join(tmpdir(), 'intake-attribution-'));
      const sqlite = openSqlite(join(dir, 'db.sqlite'));
      await migrateToLatest(sqlite.db, [sqliteEventStoreMigrations, subscriptionMigrations, attribution]);
      const store = await sqliteEventStore({ sqlite, clock: systemClock, newId: uuidV7, durability: 'process-crash' });
      return {
        db: sqlite.db,
        store,
        migrate: (set) => migrateToLatest(sqlite.db, [set]),
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
    async open(attribution = attributionMigrations) {
      const postgres = await openTemporarySchema(testPostgresUrl ?? '');
      await migratePostgresToLatest(postgres, [postgresEventStoreMigrations, subscriptionMigrations, attribution]);
      const store = await postgresEventStore({ postgres, clock: systemClock, newId: uuidV7 });
      return {
        db: postgres.db,
        store,
        migrate: (set) => migratePostgresToLatest(postgres, [set]),
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

  /** Opens the backend afresh, closing what the test had open. */
  async function reopen(attribution?: MigrationSet) {
    await opened?.close();
    opened = await open(attribution);
    ({ db, store } = opened);
  }

  beforeEach(async () => {
    if (!available) return;
    await reopen();
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

  /** What ingestion appends for a Segment/RudderStack message of the application: attribution reads its DataIngested. */
  function sdkMessage(itemId: string, appId: string, message: Record<string, unknown>): AppendRequest {
    const at = String(message.timestamp);
    return {
      streamId: `data-${itemId}`,
      events: [
        {
          type: 'DataIngested',
          data: {
            item_id: itemId,
            partner_id: appId,
            event_type: String(message.event ?? message.type),
            payload: message,
            received_at: at,
            metadata: { channel: 'analytics_api', received_at: at, ip: null, user_agent: null, correlation_id: null, key_id: null },
          },
          metadata: {},
        },
      ],
    };
  }
  const sdkTouch = (itemId: string, appId: string, userId: string, campaign: string, at: string) =>
    sdkMessage(itemId, appId, { type: 'page', userId, timestamp: at, context: { campaign: { name: campaign, source: 'ads' } } });
  const sdkOrder = (itemId: string, appId: string, userId: string, revenue: number, at: string) =>
    sdkMessage(itemId, appId, { type: 'track', event: 'Order Completed', userId, properties: { revenue }, timestamp: at });

  /** Visitors of every namespace whose ids once read alike: none may take another's credit. */
  function lookalikes(): AppendRequest[] {
    return [
      // App "a:b", user "c", and app "a", user "b:c": both were "a:b:c".
      sdkTouch('s-1', 'a:b', 'c', 'colon', '2026-11-01T00:00:00.000Z'),
      sdkOrder('s-2', 'a', 'b:c', 40, '2026-11-02T00:00:00.000Z'),
      // The tracking API's visitor "shop:u1" and app shop's user "u1".
      tracked('t-1', 'shop:u1', 'injected', 'blog', 'click', '2026-11-01T00:00:00.000Z'),
      sdkOrder('s-3', 'shop', 'u1', 90, '2026-11-02T00:00:00.000Z'),
      // App shop's user "u2" and the tracking API's "shop:u2", converting.
      sdkTouch('s-4', 'shop', 'u2', 'own', '2026-11-01T00:00:00.000Z'),
      converted('k-1', 'shop:u2', 10, '2026-11-02T00:00:00.000Z'),
      // The same user id in two applications and in the tracking API: three visitors of one campaign.
      sdkTouch('s-5', 'shop', 'same', 'shared', '2026-11-01T00:00:00.000Z'),
      sdkTouch('s-6', 'blog', 'same', 'shared', '2026-11-01T00:00:00.000Z'),
      tracked('t-2', 'same', 'shared', 'ads', 'view', '2026-11-01T00:00:00.000Z'),
    ];
  }

  /** What lookalikes() must come to, read through the queries. */
  async function expectLookalikesApart() {
    const credited = async (id: string) => (await getConversionAttribution(views())(id)).credits.linear;
    expect(await credited('s-2')).toEqual([]);
    expect(await credited('s-3')).toEqual([]);
    expect(await credited('k-1')).toEqual([]);
    expect(await campaign('shared')).toMatchObject({ interactions: { view: 3, click: 0, engagement: 0 }, uniqueVisitors: 3 });
    const journey = (appId: string | null, id: string) => getVisitorJourney(views())({ appId, id: id as ExternalId }, { limit: 10 });
    expect((await journey('a:b', 'c')).touches.items.map((t) => t.campaignId)).toEqual(['colon']);
    expect(await journey('a', 'b:c')).toMatchObject({ firstTouch: null, conversions: 1 });
    await expect(journey(null, 'a:b:c')).rejects.toThrow(/no touches of visitor a:b:c of the tracking API/);
    expect(await journey(null, 'shop:u1')).toMatchObject({ conversions: 0, firstTouch: { campaignId: 'injected' } });
    expect(await journey('shop', 'u1')).toMatchObject({ conversions: 1, firstTouch: null });
    expect((await getConversionAttribution(views())('s-3')).conversion.visitor).toEqual({ appId: 'shop', id: 'u1' });
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
      visitors: await rows(sql`SELECT * FROM attribution_scope_visitors ORDER BY scope, scope_id, app_id, visitor_id`),
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

  const alias = (itemId: string, userId: string, previousId: string, at: string) =>
    sdkMessage(itemId, 'shop', { type: 'alias', userId, previousId, timestamp: at });
  const identify = (itemId: string, userId: string, anonymousId: string, at: string) =>
    sdkMessage(itemId, 'shop', { type: 'identify', userId, anonymousId, timestamp: at });

  /** SDK users u1, u2, u3 of a chain of aliases, and "other", who shares u1's browser a1. */
  function chainWorld(): AppendRequest[] {
    return [
      sdkTouch('m-01', 'shop', 'u1', 'winter', '2026-11-01T00:00:00.000Z'),
      sdkTouch('m-02', 'shop', 'u2', 'spring', '2026-11-02T00:00:00.000Z'),
      sdkTouch('m-03', 'shop', 'a1', 'summer', '2026-11-03T00:00:00.000Z'),
      sdkTouch('m-04', 'shop', 'u3', 'autumn', '2026-11-20T00:00:00.000Z'),
      sdkOrder('m-05', 'shop', 'u3', 60, '2026-11-05T00:00:00.000Z'),
      sdkOrder('m-06', 'shop', 'u2', 30, '2026-11-06T00:00:00.000Z'),
      sdkOrder('m-07', 'shop', 'other', 20, '2026-11-07T00:00:00.000Z'),
      sdkOrder('m-08', 'shop', 'u3', 10, '2026-11-25T00:00:00.000Z'),
      alias('m-09', 'u2', 'u1', '2026-11-02T00:00:00.000Z'),
      alias('m-10', 'u3', 'u2', '2026-11-03T00:00:00.000Z'),
      identify('m-11', 'u1', 'a1', '2026-11-03T00:00:00.000Z'),
      identify('m-12', 'other', 'a1', '2026-11-04T00:00:00.000Z'),
    ];
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

  describe.skipIf(!available)('visitors', () => {
    it('keep every application and the tracking API apart, whatever their ids hold', async () => {
      await deliver(await append(...lookalikes()));
      await expectLookalikesApart();
      // A conversion of the application's own user still takes its own touches.
      await deliver(await append(sdkOrder('s-7', 'shop', 'u2', 30, '2026-11-03T00:00:00.000Z')));
      expect((await getConversionAttribution(views())('s-7')).credits.linear).toEqual([
        { model: 'linear', partnerId: 'ads', campaignId: 'own', share: 1, value: 30 },
      ]);
    });
  });

  describe.skipIf(!available)('upgrade from visitors written as one text', () => {
    const before0003: MigrationSet = {
      owner: attributionMigrations.owner,
      migrations: Object.fromEntries(Object.entries(attributionMigrations.migrations).filter(([name]) => name < '0003')),
    };

    it('starts the tables over and rebuilds them from the facts once the subscriber runs', async () => {
      await reopen(before0003);
      const events = await append(...lookalikes());
      // What the earlier version kept: SDK users as "<app>:<user>", mixed with the tracking API's visitors.
      const old = (id: string, visitor: string, campaign: string) =>
        sql`INSERT INTO attribution_touches (tracking_event_id, visitor_id, partner_id, campaign_id, interaction_type, occurred_at)
            VALUES (${id}, ${visitor}, 'ads', ${campaign}, 'view', '2026-11-01T00:00:00.000Z')`.execute(db);
      await old('s-1', 'a:b:c', 'colon');
      await old('t-1', 'shop:u1', 'injected');
      await sql`INSERT INTO attribution_conversions (conversion_id, visitor_id, value, occurred_at, recorded_at)
                VALUES ('s-2', 'a:b:c', 40, '2026-11-02T00:00:00.000Z', '2026-11-02T00:00:00.000Z')`.execute(db);
      await sql`INSERT INTO attribution_credits (conversion_id, model, partner_id, campaign_id, share, value)
                VALUES ('s-2', 'linear', 'ads', 'colon', 1, 40)`.execute(db);
      await store.transaction((tx) => saveCheckpoint(tx.db, 'attribution', events.at(-1)?.position ?? 0, new Date().toISOString()));

      expect(await opened?.migrate(attributionMigrations)).toEqual([
        'attribution/0003_visitors_of_their_application',
        'attribution/0004_identity_links',
        'attribution/0005_chains_of_ties',
      ]);
      expect([...(await replayRequests(db, ['attribution'])).keys()]).toEqual(['attribution']);
      expect(await dump()).toEqual({ touches: [], conversions: [], totals: [], visitors: [], credits: [] });

      const subscriptions = inProcessSubscriptions({
        store,
        db,
        clock: systemClock,
        logger: pino({ level: 'silent' }),
        subscribers: [subscriber],
      });
      subscriptions.start();
      try {
        await readable(events);
        await subscriptions.caughtUp();
        await expectLookalikesApart();
        expect(await replayRequests(db, ['attribution'])).toEqual(new Map());
      } finally {
        await subscriptions.stop();
      }
    });

    it('asks for no rebuild when there was nothing to rebuild', async () => {
      await reopen(before0003);
      await opened?.migrate(attributionMigrations);
      expect(await replayRequests(db, ['attribution'])).toEqual(new Map());
    });
  });

  describe.skipIf(!available)("an SDK user's anonymous ids", () => {
    it('keeps each link once, finds it both ways, and reads the touches of several visitors in the order they occurred', async () => {
      const ledger = sqlAttributionLedger(db);
      const visitor = (id: string, appId = 'shop') => sdkVisitor(appId, id as ExternalId);
      const link = { anonymous: visitor('a1'), user: visitor('u1') };
      expect(await ledger.addLinks([link, link, { anonymous: visitor('a2'), user: visitor('u1') }], TIE_LIMITS)).toHaveLength(2);
      expect(await ledger.addLinks([link, { anonymous: visitor('a1'), user: visitor('u1', 'blog') }], TIE_LIMITS)).toEqual([
        { anonymous: visitor('a1'), user: visitor('u1', 'blog') },
      ]);
      expect((await ledger.anonymousIdsOf(visitor('u1'))).map((v) => v.id).sort()).toEqual(['a1', 'a2']);
      expect(await ledger.usersOf(visitor('a1'))).toEqual([visitor('u1')]);
      expect(await ledger.usersOf(visitor('a1', 'other'))).toEqual([]);

      const touch = (id: string, who: string, at: string) => ({
        trackingEventId: id,
        visitor: visitor(who),
        partnerId: 'ads' as ExternalId,
        campaignId: 'winter' as ExternalId,
        interactionType: 'view' as const,
        occurredAt: at as Instant,
      });
      await ledger.addTouches([
        touch('t3', 'u1', '2026-11-03T00:00:00.000Z'),
        touch('t1', 'a1', '2026-11-01T00:00:00.000Z'),
        touch('t2', 'a2', '2026-11-02T00:00:00.000Z'),
        touch('t4', 'a1', '2026-11-04T00:00:00.000Z'),
      ]);
      const all = { from: '2026-10-01T00:00:00.000Z' as Instant, to: '2026-12-01T00:00:00.000Z' as Instant };
      const read = await ledger.touchesOf([visitor('u1'), visitor('a1'), visitor('a2')], all);
      expect(read.map((t) => t.trackingEventId)).toEqual(['t1', 't2', 't3', 't4']);
      expect(await ledger.hasTouches([visitor('nobody'), visitor('a2')], all)).toBe(true);
      expect(await ledger.hasTouches([visitor('nobody')], all)).toBe(false);
      expect(await ledger.touchSpan([visitor('a1')])).toEqual({ from: '2026-11-01T00:00:00.000Z', to: '2026-11-04T00:00:00.000Z' });
      expect(await ledger.touchSpan([visitor('a2'), visitor('u1'), visitor('nobody')])).toEqual({
        from: '2026-11-02T00:00:00.000Z',
        to: '2026-11-03T00:00:00.000Z',
      });
      expect(await ledger.touchSpan([visitor('nobody')])).toBeUndefined();

      // The user's journey: its anonymous ids' touches with its own, a page at a time in the order they occurred.
      const journey = getVisitorJourney(views());
      const first = await journey(visitor('u1'), { limit: 3 });
      expect(first.anonymousIds.map((v) => v.id)).toEqual(['a1', 'a2']);
      expect([first.firstTouch?.trackingEventId, first.lastTouch?.trackingEventId]).toEqual(['t1', 't4']);
      expect(first.touches.items.map((t) => t.trackingEventId)).toEqual(['t1', 't2', 't3']);
      const second = await journey(visitor('u1'), { limit: 3, cursor: first.touches.nextCursor ?? undefined });
      expect(second.touches.items.map((t) => t.trackingEventId)).toEqual(['t4']);
      expect((await journey(visitor('a2'), { limit: 10 })).touches.items.map((t) => t.trackingEventId)).toEqual(['t2']);
    });
  });

  describe.skipIf(!available)('chains of ties', () => {
    const visitor = (id: string, appId = 'shop') => sdkVisitor(appId, id as ExternalId);
    const tie = (anonymous: string, user: string) => ({ anonymous: visitor(anonymous), user: visitor(user) });
    const ids = (visitors: readonly { id: string }[]) => visitors.map((v) => v.id);
    /** Ties written as they are, past the limits addLinks keeps to: a table written by anything. */
    const insertTies = async (ties: ReadonlyArray<readonly [string, string]>) => {
      for (let i = 0; i < ties.length; i += 500) {
        await db
          .withTables<{ attribution_identity_links: { app_id: string; anonymous_id: string; user_id: string } }>()
          .insertInto('attribution_identity_links')
          .values(ties.slice(i, i + 500).map(([anonymous, user]) => ({ app_id: 'shop', anonymous_id: anonymous, user_id: user })))
          .execute();
      }
    };

    it("finds a user's ids down the chain and an id's users up it, never a user's other users", async () => {
      const ledger = sqlAttributionLedger(db);
      // alias(u2 <- u1), alias(u3 <- u2); u1 and u3 signed in from browsers a1 and a3; a1 is also "other"'s.
      await ledger.addLinks([tie('u1', 'u2'), tie('u2', 'u3'), tie('a1', 'u1'), tie('a3', 'u3'), tie('a1', 'other')], TIE_LIMITS);
      expect(ids(await ledger.anonymousIdsOf(visitor('u3')))).toEqual(['a1', 'a3', 'u1', 'u2']);
      expect(ids(await ledger.anonymousIdsOf(visitor('u2')))).toEqual(['a1', 'u1']);
      expect(ids(await ledger.anonymousIdsOf(visitor('other')))).toEqual(['a1']);
      expect(ids(await ledger.usersOf(visitor('a1')))).toEqual(['other', 'u1', 'u2', 'u3']);
      expect(ids(await ledger.usersOf(visitor('u1')))).toEqual(['u2', 'u3']);
      expect(await ledger.usersOf(visitor('u3'))).toEqual([]);
      expect(await ledger.anonymousIdsOf(visitor('u3', 'blog'))).toEqual([]);
    });

    it('reads each step of a walk, and the ties a new tie is checked against, both ways, through an index of the ties it follows', async () => {
      const sqlite = onSqlite(db);
      // Enough ties of the application that reading them all at each step costs more than an index's.
      await insertTies(Array.from({ length: 5000 }, (_, i) => [`a${i}`, `u${i % 1000}`] as const));
      if (!sqlite) await sql`ANALYZE attribution_identity_links`.execute(db);
      const statements = (['user_id', 'anonymous_id'] as const).flatMap((by) => [
        { by, steps: 2, statement: tiesStatement(db, visitor('u1'), by).compile(db) },
        { by, steps: 1, statement: directTiesStatement(db, 'shop', by, by === 'user_id' ? 'u1' : 'a1', 250).compile(db) },
      ]);
      for (const { by, steps, statement } of statements) {
        const plan = await db.transaction().execute(async (tx) => {
          // PostgreSQL would read a table this small whole: with that off, only an index that cannot serve the step makes it.
          if (!sqlite) {
            for (const setting of ['enable_seqscan', 'enable_bitmapscan', 'enable_hashjoin', 'enable_mergejoin'])
              await sql`SELECT set_config(${setting}, 'off', true)`.execute(tx);
          }
          const explain = `${sqlite ? 'EXPLAIN QUERY PLAN' : 'EXPLAIN'} ${statement.sql}`;
          const { rows } = await tx.executeQuery<Record<string, string>>(CompiledQuery.raw(explain, [...statement.parameters]));
          return rows.map((row) => (sqlite ? row.detail : row['QUERY PLAN'])).join('\n');
        });
        if (sqlite) {
          expect(plan.match(new RegExp(`SEARCH l USING .*\\(app_id=\\? AND ${by}=\\?\\)`, 'g'))).toHaveLength(steps);
          expect(plan).not.toMatch(/SCAN l\b/);
        } else {
          expect(plan.match(new RegExp(`Index Cond: \\(\\(app_id = 'shop'::text\\) AND \\(${by} = `, 'g'))).toHaveLength(steps);
          expect(plan).not.toMatch(/Seq Scan|Bitmap|Join Filter/);
        }
      }
    });

    it('ends in a cycle of ties, the starting id left out', async () => {
      const ledger = sqlAttributionLedger(db);
      await ledger.addLinks([tie('u1', 'u2'), tie('u2', 'u1'), tie('u2', 'u3'), tie('u3', 'u1')], TIE_LIMITS);
      expect(ids(await ledger.anonymousIdsOf(visitor('u1')))).toEqual(['u2', 'u3']);
      expect(ids(await ledger.usersOf(visitor('u1')))).toEqual(['u2', 'u3']);
    });

    it(`follows ${CHAIN_LIMITS.steps} ties and ${CHAIN_LIMITS.ids} ids at most, the nearest first`, async () => {
      const ledger = sqlAttributionLedger(db);
      // A chain c0 <- c1 <- ... <- c14: c0's ids are the ten nearest, c14's users likewise.
      const chain = Array.from({ length: 15 }, (_, i) => `c${String(i).padStart(2, '0')}`);
      await insertTies(chain.slice(1).map((id, i) => [id, chain[i] ?? ''] as const));
      expect(ids(await ledger.anonymousIdsOf(visitor('c00')))).toEqual(chain.slice(1, 1 + CHAIN_LIMITS.steps));
      expect(ids(await ledger.usersOf(visitor('c14')))).toEqual(chain.slice(14 - CHAIN_LIMITS.steps, 14));
      // A user with 100 ids, two of them with 100 ids each: its 100 and the first 150 of the next step, by id.
      const first = Array.from({ length: 100 }, (_, i) => `f${String(i).padStart(3, '0')}`);
      const second = Array.from({ length: 200 }, (_, i) => `s${String(i).padStart(3, '0')}`);
      await insertTies([...first.map((id) => [id, 'wide'] as const), ...second.map((id, i) => [id, i < 100 ? 'f098' : 'f099'] as const)]);
      expect(ids(await ledger.anonymousIdsOf(visitor('wide')))).toEqual([...first, ...second.slice(0, CHAIN_LIMITS.ids - 100)]);
    });

    it('reads a bounded number of rows of a web of ties, whatever it holds', async () => {
      const ledger = sqlAttributionLedger(db);
      // 150 ids, each tied to the next 100: every step from the second on holds all 150 again.
      const web = Array.from({ length: 150 }, (_, i) => `w${String(i).padStart(3, '0')}`);
      await insertTies(web.flatMap((user, i) => Array.from({ length: 100 }, (_, j) => [web[(i + j + 1) % 150] ?? '', user] as const)));
      expect(ids(await ledger.anonymousIdsOf(visitor('w000')))).toEqual(web.slice(1));
      expect(ids(await ledger.usersOf(visitor('w000')))).toEqual(web.slice(1));
    });

    it('leaves out whole the step it stops reading in, wherever the database read its ids', async () => {
      const ledger = sqlAttributionLedger(db);
      // A web of 60 ids, each tied to the next 50, beside a chain q1 <- ... <- q9 from v00, and 700 ids
      // tied to q6: 356 rows in the first six steps, then 761 in the seventh, which passes 1,000.
      const web = Array.from({ length: 60 }, (_, i) => `v${String(i).padStart(2, '0')}`);
      const chain = Array.from({ length: 9 }, (_, i) => `q${i + 1}`);
      await insertTies([
        ...web.flatMap((user, i) => Array.from({ length: 50 }, (_, j) => [web[(i + j + 1) % 60] ?? '', user] as const)),
        ...chain.map((id, i) => [id, i === 0 ? 'v00' : (chain[i - 1] ?? '')] as const),
        ...Array.from({ length: 700 }, (_, i) => [`r${String(i).padStart(3, '0')}`, 'q6'] as const),
      ]);
      expect(ids(await ledger.anonymousIdsOf(visitor('v00')))).toEqual([...chain.slice(0, 6), ...web.slice(1)]);
    });

    const creditedCampaigns = async (conversionId: string) =>
      (await getConversionAttribution(views())(conversionId)).credits.linear.map((credit) => credit.campaignId).sort();

    it("credits the last user's order from the first user's touch, whichever alias of the chain arrives first", async () => {
      const events = await append(
        sdkTouch('m-1', 'shop', 'u1', 'winter', '2026-11-01T00:00:00.000Z'),
        sdkOrder('m-2', 'shop', 'u3', 60, '2026-11-05T00:00:00.000Z'),
        alias('m-3', 'u2', 'u1', '2026-11-02T00:00:00.000Z'),
        alias('m-4', 'u3', 'u2', '2026-11-03T00:00:00.000Z'),
      );
      const [touch, order, first, second] = events;
      for (const batches of [
        [[touch], [order], [first], [second]],
        [[touch], [order], [second], [first]],
        [[second], [first], [order], [touch]],
        [[order, second, touch, first]],
      ]) {
        await reset();
        for (const batch of batches) await deliver(batch.filter((e) => e !== undefined));
        expect(await creditedCampaigns('m-2')).toEqual(['winter']);
      }
      const journey = await getVisitorJourney(views())(visitor('u3'), { limit: 10 });
      expect(ids(journey.anonymousIds)).toEqual(['u1', 'u2']);
      expect(journey.touches.items.map((t) => t.trackingEventId)).toEqual(['m-1']);
    });

    it("ends in identical tables whatever the order and batching, and gives no other user sharing an id the chain's touches", async () => {
      const events = await append(...chainWorld());
      await deliver(events);
      const inOrder = await dump();
      expect(await creditedCampaigns('m-05')).toEqual(['spring', 'summer', 'winter']);
      expect(await creditedCampaigns('m-06')).toEqual(['spring', 'summer', 'winter']);
      // "other" shares a1 with u1: a1's touch is theirs too, the chain's are not.
      expect(await creditedCampaigns('m-07')).toEqual(['summer']);
      expect(await creditedCampaigns('m-08')).toEqual(['autumn', 'spring', 'summer', 'winter']);
      for (const seed of [1, 2, 3, 4, 5]) {
        await reset();
        const order = shuffled(events, seed);
        const batchSize = seed;
        for (let i = 0; i < order.length; i += batchSize) await deliver(order.slice(i, i + batchSize));
        expect(await dump()).toEqual(inOrder);
      }
    });
  });

  describe.skipIf(!available)('upgrade to credits along chains of ties', () => {
    const before0005: MigrationSet = {
      owner: attributionMigrations.owner,
      migrations: Object.fromEntries(Object.entries(attributionMigrations.migrations).filter(([name]) => name < '0005')),
    };
    const tie = (anonymous: string, user: string) => ({
      anonymous: sdkVisitor('shop', anonymous as ExternalId),
      user: sdkVisitor('shop', user as ExternalId),
    });

    it('rebuilds the credits once where an anonymous id is a user with ties of its own', async () => {
      await reopen(before0005);
      await sqlAttributionLedger(db).addLinks([tie('a1', 'u1'), tie('u1', 'u2')], TIE_LIMITS);
      expect(await opened?.migrate(attributionMigrations)).toEqual(['attribution/0005_chains_of_ties']);
      expect([...(await replayRequests(db, ['attribution'])).keys()]).toEqual(['attribution']);
    });

    it('asks for no rebuild when no tie makes a chain', async () => {
      await reopen(before0005);
      // a1 is tied to two users, and u1 to two ids: no id is both.
      await sqlAttributionLedger(db).addLinks([tie('a1', 'u1'), tie('a1', 'u2'), tie('a2', 'u1')], TIE_LIMITS);
      await opened?.migrate(attributionMigrations);
      expect(await replayRequests(db, ['attribution'])).toEqual(new Map());
    });
  });

  describe.skipIf(!available)('ties beyond their limits', () => {
    it("keeps a user's first anonymous ids and an anonymous id's first users, in the order given, and ignores the rest", async () => {
      const ledger = sqlAttributionLedger(db);
      const visitor = (id: string) => sdkVisitor('shop', id as ExternalId);
      const tie = (anonymous: string, user: string) => ({ anonymous: visitor(anonymous), user: visitor(user) });
      const limits = { anonymousIdsPerUser: 2, usersPerAnonymousId: 2 };
      const kept = await ledger.addLinks([tie('a1', 'u1'), tie('a2', 'u1'), tie('a3', 'u1'), tie('a1', 'u2')], limits);
      expect(kept).toEqual([tie('a1', 'u1'), tie('a2', 'u1'), tie('a1', 'u2')]);
      // Later batches see the limits reached by earlier ones.
      expect(await ledger.addLinks([tie('a4', 'u1'), tie('a1', 'u3'), tie('a5', 'u3')], limits)).toEqual([tie('a5', 'u3')]);
      expect((await ledger.anonymousIdsOf(visitor('u1'))).map((v) => v.id).sort()).toEqual(['a1', 'a2']);
      expect((await ledger.usersOf(visitor('a1'))).map((v) => v.id).sort()).toEqual(['u1', 'u2']);
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

      const journey = await getVisitorJourney(views())({ appId: null, id: 'v-1' as ExternalId }, { limit: 10 });
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
        await readable(await append(...world(), ...chainWorld()));
        await subscriptions.caughtUp();
        const live = await dump();
        // u3's order is credited from u1's visit, two aliases away.
        expect(live.credits).toContainEqual(
          expect.objectContaining({ conversion_id: 'm-05', model: 'first_touch', campaign_id: 'winter' }),
        );
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
