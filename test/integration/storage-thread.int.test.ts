import { Webhook } from 'standardwebhooks';
import { afterEach, describe, expect, it } from 'vitest';
import { auth, startTestIntake, type TestIntake } from '../support/embedded-intake.js';
import { startWebhookReceiver } from '../support/webhook-receiver.js';

/**
 * The process `intake serve` runs: a storage thread owns the write connection and the subscribers,
 * this thread serves HTTP. Every path that writes more than an append crosses as a procedure.
 */
const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function start(env: Record<string, string> = {}, onStorageFailure?: (error: Error) => void): Promise<TestIntake> {
  const intake = await startTestIntake(
    { WEBHOOK_ALLOWED_HOSTS: '127.0.0.1', WEBHOOK_RETRY_SCHEDULE: '0.05,0.05', ...env },
    { storage: 'thread', ...(onStorageFailure ? { onStorageFailure } : {}) },
  );
  cleanups.push(() => intake.dispose());
  return intake;
}

const post = (intake: TestIntake, url: string, payload: unknown, headers: Record<string, string> = auth) =>
  intake.app.inject({ method: 'POST', url, headers: { ...headers, 'content-type': 'application/json' }, payload: JSON.stringify(payload) });
const get = (intake: TestIntake, url: string, headers: Record<string, string> = auth) => intake.app.inject({ method: 'GET', url, headers });

describe('with a storage thread', () => {
  it('stores an item before answering, reads it back at once, and carries it through the pipeline', async () => {
    const intake = await start();
    expect(intake.storageThread?.threadId).toBeGreaterThan(0);
    const created = await post(intake, '/ingest', { partner_id: 'p1', event_type: 'signup', payload: { plan: 'pro' } });
    expect(created.statusCode).toBe(201);
    const id = created.json().id as string;
    expect((await get(intake, `/ingest/${id}`)).json().payload).toEqual({ plan: 'pro' });
    await intake.subscriptions.caughtUp(20_000);
    const view = (await get(intake, `/query/${id}`)).json();
    expect(view.status).toBe('processed');
    expect(view.history.map((e: { type: string }) => e.type)).toEqual(['DataReceived', 'DataIngested', 'DataValidated', 'DataProcessed']);
  });

  it('runs the storage thread under the heap limit STORAGE_THREAD_HEAP_MB sets (1 GB by default)', async () => {
    expect((await start()).storageThread?.resourceLimits?.maxOldGenerationSizeMb).toBe(1024);
    expect((await start({ STORAGE_THREAD_HEAP_MB: '512' })).storageThread?.resourceLimits?.maxOldGenerationSizeMb).toBe(512);
  });

  it('keeps idempotency keys and batch receipts, committed in the storage thread', async () => {
    const intake = await start();
    expect((await post(intake, '/api/applications', { name: 'Shop', app_id: 'shop' })).statusCode).toBe(201);
    const first = await post(intake, '/api/ingest/shop', { event_type: 'order', payload: { n: 1 } }, { ...auth, 'idempotency-key': 'k-1' });
    const again = await post(intake, '/api/ingest/shop', { event_type: 'order', payload: { n: 1 } }, { ...auth, 'idempotency-key': 'k-1' });
    expect(again.json().data.event_id).toBe(first.json().data.event_id);

    const batch = await post(intake, '/api/ingest/shop/batch', {
      events: [
        { event_type: 'order', payload: { n: 2 }, message_id: 'm-1' },
        { event_type: 'order', payload: { n: 3 }, message_id: 'm-1' },
        { event_type: '', payload: { n: 4 } },
        { event_type: 'order', payload: { n: 5 } },
      ],
    });
    expect(batch.statusCode).toBeLessThan(300);
    const statuses = (batch.json().data?.results ?? batch.json().results ?? batch.json().receipts ?? []).map(
      (r: { status: string }) => r.status,
    );
    expect(statuses).toEqual(['accepted', 'duplicate', 'rejected', 'accepted']);
    await intake.subscriptions.caughtUp(20_000);
    const listed = (await get(intake, '/api/events/app/shop?limit=100')).json();
    expect(listed.items.length).toBe(3);
  });

  it('refuses keyed requests with 503 while the storage thread has MAX_QUEUED_APPENDS calls in hand, and stores each it took', async () => {
    const intake = await start({ MAX_QUEUED_APPENDS: '2' });
    await intake.app.inject({ method: 'POST', url: '/api/applications', headers: auth, payload: { name: 'Busy', app_id: 'busy' } });
    const answers = await Promise.all(
      Array.from({ length: 40 }, (_, i) =>
        intake.app.inject({
          method: 'POST',
          url: '/api/ingest/busy',
          headers: { ...auth, 'idempotency-key': `burst-${i}` },
          payload: { event_type: 'order', payload: { n: i } },
        }),
      ),
    );
    const refused = answers.filter((a) => a.statusCode === 503);
    expect(refused.length).toBeGreaterThan(0);
    expect(refused.every((a) => a.json().code === 'event-store.overloaded' && a.headers['retry-after'] === '1')).toBe(true);
    const taken = answers.filter((a) => a.statusCode === 201).map((a) => a.json().data.event_id as string);
    expect(taken.length + refused.length).toBe(40);
    for (const id of taken) expect((await intake.app.inject({ url: `/api/events/${id}`, headers: auth })).statusCode).toBe(200);
  });

  it('saves rules with their secret there, evaluates them here at once, and delivers from there', async () => {
    const intake = await start();
    const receiver = await startWebhookReceiver();
    cleanups.push(() => receiver.close());
    await post(intake, '/api/applications', { name: 'Shop', app_id: 'shop' });
    const rule = await post(intake, '/api/routing-rules', {
      app_id: 'shop',
      rule_name: 'all orders',
      event_type_filter: 'order',
      condition: { 'payload.total': { $gt: 10 } },
      destination_type: 'webhook',
      destination_config: { url: receiver.url },
      priority: 1,
    });
    expect(rule.statusCode).toBe(201);
    const secret = rule.json().signing_secret as string;
    const ingested = await post(intake, '/api/ingest/shop', { event_type: 'order', payload: { total: 99 } });
    expect(ingested.json().data.routing_summary).toEqual({ rules_evaluated: 1, rules_matched: 1, rules_executed: 1 });
    const [delivered] = await receiver.waitFor(1, 20_000);
    expect(delivered).toBeDefined();
    expect(() => new Webhook(secret).verify(delivered?.body ?? '', delivered?.headers as Record<string, string>)).not.toThrow();
  });

  const trackingEvent = {
    partner_id: 'p',
    campaign_id: 'c',
    visitor_id: 'v',
    interaction_type: 'click',
    source_url: 'https://a.example/x',
    destination_url: 'https://b.example/y',
  };

  it('records tracking batches, refreshes statistics and replays a view through procedures', async () => {
    const intake = await start();
    const tracking = await post(intake, '/api/v1/tracking/events/batch', {
      events: [
        {
          partner_id: 'p',
          campaign_id: 'c',
          visitor_id: 'v1',
          interaction_type: 'click',
          source_url: 'https://a.example/x',
          destination_url: 'https://b.example/y',
        },
        {
          partner_id: 'p',
          campaign_id: 'c',
          visitor_id: 'v2',
          interaction_type: 'view',
          source_url: 'https://a.example/x',
          destination_url: 'https://b.example/y',
        },
      ],
    });
    expect(tracking.statusCode).toBeLessThan(300);
    // A keyed batch is recorded once through its procedure; the retry's answer waits for the first commit.
    const keyedBatch = { events: [{ ...trackingEvent, visitor_id: 'v3' }] };
    const keyed = { ...auth, 'idempotency-key': 'batch-1' };
    const first = await post(intake, '/api/v1/tracking/events/batch', keyedBatch, keyed);
    const retried = await post(intake, '/api/v1/tracking/events/batch', keyedBatch, keyed);
    expect([first.json().recorded, retried.json().duplicates]).toEqual([1, 1]);
    expect(retried.json().receipts[0].tracking_event_id).toBe(first.json().receipts[0].tracking_event_id);
    // Concurrent retries of a batch that grows each time: every one answered, each place stored once.
    const growing = Array.from({ length: 12 }, (_, i) => ({ ...trackingEvent, visitor_id: `g${i}` }));
    const answers = await Promise.all(
      growing.map((_, i) =>
        post(intake, '/api/v1/tracking/events/batch', { events: growing.slice(0, i + 1) }, { ...auth, 'idempotency-key': 'grow' }),
      ),
    );
    expect(answers.map((answer) => answer.statusCode)).toEqual(growing.map(() => 200));
    const ids = new Set(answers.flatMap((answer) => answer.json().receipts.map((r: { tracking_event_id: string }) => r.tracking_event_id)));
    expect(ids.size).toBe(12);
    await post(intake, '/ingest', { partner_id: 'stats-app', payload: { a: 1 } });
    await intake.subscriptions.caughtUp(20_000);
    const refreshed = await post(intake, '/api/statistics/refresh/stats-app', {});
    expect(refreshed.statusCode).toBe(200);
    expect(refreshed.json().totals.total_events).toBe(1);

    const replay = await post(intake, '/api/admin/subscriptions/query/replay', {});
    expect(replay.statusCode).toBe(202);
    await intake.subscriptions.caughtUp(20_000);
    const all = (await get(intake, '/query/all')).json();
    expect(all.items.length).toBe(1);
  });

  it('merges the storage thread’s metrics into /metrics and reports subscribers in readiness', async () => {
    const intake = await start();
    await post(intake, '/ingest', { partner_id: 'p1', payload: { a: 1 } });
    await intake.subscriptions.caughtUp(20_000);
    const metrics = (await get(intake, '/metrics', {})).body;
    expect(metrics).toMatch(/^intake_events_appended_total [1-9]/m);
    expect(metrics).toMatch(/^intake_http_requests_total\{/m);
    expect(metrics).toMatch(/^intake_subscriber_lag_events\{subscriber="query"\} 0/m);
    const ready = (await get(intake, '/health/ready', {})).json();
    expect(ready.checks['subscriber:processing'].status).toBe('ok');
  });

  it('stops serving when the storage thread dies', async () => {
    const failures: Error[] = [];
    const intake = await start({}, (error) => failures.push(error));
    await intake.storageThread?.terminate();
    const deadline = Date.now() + 5000;
    while (failures.length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    expect(failures[0]?.message).toMatch(/storage thread exited/);
  });
});
