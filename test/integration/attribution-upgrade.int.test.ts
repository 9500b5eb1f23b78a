import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { sql } from 'kysely';
import { afterAll, describe, expect, it } from 'vitest';
import { openSqlite } from '../../src/shared/sqlite/open-sqlite.js';
import { replayRequests } from '../../src/shared/subscriptions/checkpoints.js';
import { basic, createSource } from '../support/analytics-source.js';
import { auth, startTestIntake, type TestIntake } from '../support/embedded-intake.js';

const dir = mkdtempSync(join(tmpdir(), 'intake-attribution-upgrade-'));
const running: TestIntake[] = [];
afterAll(async () => {
  for (const intake of running) await intake.dispose();
  rmSync(dir, { recursive: true, force: true });
});

async function start(): Promise<TestIntake> {
  const intake = await startTestIntake({}, {}, dir);
  running.push(intake);
  return intake;
}

const get = async (intake: TestIntake, url: string) => {
  const response = await intake.app.inject({ method: 'GET', url, headers: auth });
  return { status: response.statusCode, body: response.json() };
};

/**
 * Puts attribution's tables back as the version before decision 0029 kept them: one `visitor_id`
 * text, in which app "a:b"'s user "c" and app "a"'s user "b:c" were both "a:b:c" and shared credit.
 */
async function asWrittenByTheEarlierVersion(touchId: string, orderId: string): Promise<void> {
  const sqlite = openSqlite(join(dir, 'intake.db'));
  try {
    const db = sqlite.db;
    for (const table of ['attribution_touches', 'attribution_conversions', 'attribution_scope_visitors']) {
      await sql`DROP TABLE ${sql.table(table)}`.execute(db);
    }
    await sql`CREATE TABLE attribution_touches (tracking_event_id text PRIMARY KEY, visitor_id text NOT NULL, partner_id text NOT NULL,
              campaign_id text NOT NULL, interaction_type text NOT NULL, occurred_at text NOT NULL)`.execute(db);
    await sql`CREATE TABLE attribution_conversions (conversion_id text PRIMARY KEY, visitor_id text NOT NULL, value double precision NOT NULL,
              occurred_at text NOT NULL, recorded_at text NOT NULL)`.execute(db);
    await sql`CREATE TABLE attribution_scope_visitors (scope text NOT NULL, scope_id text NOT NULL, visitor_id text NOT NULL,
              PRIMARY KEY (scope, scope_id, visitor_id))`.execute(db);
    await sql`INSERT INTO attribution_touches VALUES (${touchId}, 'a:b:c', 'newsletter', 'colon', 'view', '2026-11-20T10:00:00.000Z')`.execute(
      db,
    );
    await sql`INSERT INTO attribution_conversions VALUES (${orderId}, 'a:b:c', 40, '2026-11-21T10:00:00.000Z', '2026-11-21T10:00:00.000Z')`.execute(
      db,
    );
    await sql`DELETE FROM attribution_credits`.execute(db);
    await sql`INSERT INTO attribution_credits VALUES (${orderId}, 'linear', 'newsletter', 'colon', 1, 40)`.execute(db);
    // And before the anonymous ids' links (0004), which came after it.
    await sql`DROP TABLE attribution_identity_links`.execute(db);
    // (0005 came after both.)
    await sql`DELETE FROM attribution_migrations WHERE name IN ('0003_visitors_of_their_application', '0004_identity_links', '0005_chains_of_ties')`.execute(
      db,
    );
  } finally {
    await sqlite.close();
  }
}

describe('upgrading a database whose attribution mixed visitors', () => {
  it('rebuilds attribution from the log at the first start, with each application its own visitors', async () => {
    const first = await start();
    const ab = await createSource(first, 'a:b');
    const a = await createSource(first, 'a');
    const send = async (writeKey: string, message: object) => {
      const response = await first.app.inject({
        method: 'POST',
        url: '/v1/batch',
        headers: { ...basic(writeKey), 'content-type': 'application/json' },
        payload: { batch: [message] },
      });
      return (response.json().receipts as Array<{ event_id: string }>)[0]?.event_id ?? '';
    };
    const touchId = await send(ab.writeKey, {
      type: 'page',
      userId: 'c',
      timestamp: '2026-11-20T10:00:00.000Z',
      context: { campaign: { name: 'colon', source: 'newsletter' } },
    });
    const orderId = await send(a.writeKey, {
      type: 'track',
      userId: 'b:c',
      event: 'Order Completed',
      properties: { revenue: 40 },
      timestamp: '2026-11-21T10:00:00.000Z',
    });
    await first.subscriptions.caughtUp();
    await first.dispose();
    running.length = 0;

    await asWrittenByTheEarlierVersion(touchId, orderId);
    const upgraded = await start();
    await upgraded.subscriptions.caughtUp();

    const order = await get(upgraded, `/api/v1/attribution/conversions/${orderId}`);
    expect(order.status).toBe(200);
    expect(order.body).toMatchObject({ app_id: 'a', visitor_id: 'b:c', credits: { linear: [], last_touch: [] } });
    const touched = await get(upgraded, `/api/v1/attribution/visitors/c?app_id=${encodeURIComponent('a:b')}`);
    expect(touched.body).toMatchObject({ app_id: 'a:b', visitor_id: 'c', first_touch: { tracking_event_id: touchId }, conversions: 0 });
    expect((await get(upgraded, '/api/v1/attribution/campaigns/colon')).body).toMatchObject({ unique_visitors: 1, conversions: 0 });
    expect((await get(upgraded, `/api/v1/attribution/visitors/${encodeURIComponent('a:b:c')}`)).status).toBe(404);
    expect(await replayRequests(upgraded.db, ['attribution'])).toEqual(new Map());
  });
});

describe("upgrading a database whose attribution did not know an SDK user's anonymous ids", () => {
  it("rebuilds attribution at the first start, crediting a user's order from the campaign visit made before signing in", async () => {
    const first = await start();
    const shop = await createSource(first, 'stitch-shop');
    const send = async (messages: object[]) => {
      const response = await first.app.inject({
        method: 'POST',
        url: '/v1/batch',
        headers: { ...basic(shop.writeKey), 'content-type': 'application/json' },
        payload: { batch: messages },
      });
      return (response.json().receipts as Array<{ event_id: string }>).map((receipt) => receipt.event_id);
    };
    await send([
      {
        type: 'page',
        anonymousId: 'anon-7',
        timestamp: '2026-11-20T10:00:00.000Z',
        context: { campaign: { name: 'spring', source: 'mail' } },
      },
      { type: 'identify', userId: 'user-7', anonymousId: 'anon-7', traits: { plan: 'pro' } },
    ]);
    const [orderId] = await send([
      { type: 'track', userId: 'user-7', event: 'Order Completed', properties: { revenue: 30 }, timestamp: '2026-11-21T10:00:00.000Z' },
    ]);
    await first.subscriptions.caughtUp();
    const credited = await get(first, `/api/v1/attribution/conversions/${orderId}`);
    expect(credited.body).toMatchObject({ visitor_id: 'user-7', credits: { last_touch: [{ campaign_id: 'spring', value: 30 }] } });
    await first.dispose();
    running.length = 0;

    // As the version before the links kept it: no links, and the order credited from the user's own touches (none).
    const sqlite = openSqlite(join(dir, 'intake.db'));
    try {
      await sql`DROP TABLE attribution_identity_links`.execute(sqlite.db);
      await sql`DELETE FROM attribution_credits`.execute(sqlite.db);
      await sql`DELETE FROM attribution_migrations WHERE name IN ('0004_identity_links', '0005_chains_of_ties')`.execute(sqlite.db);
    } finally {
      await sqlite.close();
    }
    const upgraded = await start();
    await upgraded.subscriptions.caughtUp();
    const order = await get(upgraded, `/api/v1/attribution/conversions/${orderId}`);
    expect(order.body).toMatchObject({ visitor_id: 'user-7', credits: { last_touch: [{ campaign_id: 'spring', value: 30 }] } });
    expect(await replayRequests(upgraded.db, ['attribution'])).toEqual(new Map());
    // The user's journey holds the anonymous id's touch, which the order was credited from.
    const journey = await get(upgraded, '/api/v1/attribution/visitors/user-7?app_id=stitch-shop');
    expect(journey.body).toMatchObject({
      visitor_id: 'user-7',
      anonymous_ids: ['anon-7'],
      first_touch: { visitor_id: 'anon-7', campaign_id: 'spring' },
      conversions: 1,
      touches: [{ visitor_id: 'anon-7', campaign_id: 'spring' }],
    });
    // The anonymous id's own journey is its own.
    const anonymous = await get(upgraded, '/api/v1/attribution/visitors/anon-7?app_id=stitch-shop');
    expect(anonymous.body).toMatchObject({ visitor_id: 'anon-7', anonymous_ids: [], conversions: 0, touches: [{ visitor_id: 'anon-7' }] });
  });
});
