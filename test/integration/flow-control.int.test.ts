import { afterEach, describe, expect, it } from 'vitest';
import { adminCall, startTestIntake, type TestIntake } from '../support/embedded-intake.js';

let intake: TestIntake | undefined;

afterEach(async () => {
  await intake?.dispose();
  intake = undefined;
});

const ITEMS = 1500;
const LIMIT = 20;
/** Long enough for the subscribers to catch up however slow the machine: a request goes ahead after it. */
const WAIT_MS = 30_000;

/** Starts Intake with its subscribers held back, and lets `ITEMS` items in meanwhile (nothing trails that counts). */
async function backlogged(sendItems: (app: TestIntake, count: number) => Promise<void>, items = ITEMS, limit = LIMIT): Promise<TestIntake> {
  const app = await startTestIntake(
    { SUBSCRIBER_BACKLOG_LIMIT: String(limit), SUBSCRIBER_BACKLOG_WAIT_MS: String(WAIT_MS) },
    { startSubscribers: false },
  );
  intake = app;
  for (const app_id of ['shop', 'quiet']) {
    expect((await adminCall(app, 'POST', '/api/applications', { name: app_id, app_id })).statusCode).toBe(201);
  }
  await sendItems(app, items);
  app.subscriptions.start();
  // Once they have handled a batch, they follow the head and count.
  const deadline = Date.now() + 20_000;
  for (;;) {
    const statuses = await app.subscriptions.status();
    if (statuses.every((s) => s.position > 0) && statuses.some((s) => s.lag > LIMIT)) return app;
    if (Date.now() > deadline) throw new Error(`the subscribers never trailed while moving: ${JSON.stringify(statuses)}`);
    await new Promise((resolve) => setTimeout(resolve, 1));
  }
}

const largestLag = async (app: TestIntake) => Math.max(...(await app.subscriptions.status()).map((s) => s.lag));

const order = (n: number) => ({ event_type: 'order_created', payload: { order_id: `o-${n}`, total: n } });

describe('flow control in the server', () => {
  it('answers an item sent while the subscribers trail far behind once they have caught up', async () => {
    const app = await backlogged(async (target, count) => {
      for (let n = 0; n < count; n += 100) {
        await Promise.all(
          Array.from({ length: 100 }, (_, i) => adminCall(target, 'POST', '/ingest', { partner_id: 'p', ...order(n + i) })),
        );
      }
    });
    const late = await adminCall(app, 'POST', '/ingest', { partner_id: 'p', ...order(ITEMS) });
    expect(late.statusCode).toBe(201);
    // Everything before it was handled by then; only the late item's own events (and what they lead to) may wait.
    expect(await largestLag(app)).toBeLessThanOrEqual(LIMIT);
    // Counted for operators: one request held, for some time.
    const metrics = (await app.app.inject({ method: 'GET', url: '/metrics' })).body;
    expect(metrics).toMatch(/^intake_flow_control_held_requests_total 1$/m);
    expect(metrics).toMatch(/^intake_flow_control_held_seconds_total (?!0$)[\d.e+-]+$/m);
  });

  it('holds nothing with SUBSCRIBER_BACKLOG_LIMIT=0', async () => {
    const app = await backlogged(
      async (target, count) => {
        for (let n = 0; n < count; n += 100) {
          const events = Array.from({ length: 100 }, (_, i) => order(n + i));
          expect((await adminCall(target, 'POST', '/api/ingest/shop/batch', { events })).statusCode).toBe(200);
        }
      },
      ITEMS,
      0,
    );
    expect((await adminCall(app, 'POST', '/ingest', { partner_id: 'p', ...order(ITEMS) })).statusCode).toBe(201);
    const metrics = (await app.app.inject({ method: 'GET', url: '/metrics' })).body;
    expect(metrics).toMatch(/^intake_flow_control_held_requests_total 0$/m);
  });

  it('answers a batch sent while the subscribers trail far behind once they have caught up', async () => {
    const app = await backlogged(async (target, count) => {
      for (let n = 0; n < count; n += 100) {
        const events = Array.from({ length: 100 }, (_, i) => order(n + i));
        expect((await adminCall(target, 'POST', '/api/ingest/shop/batch', { events })).statusCode).toBe(200);
      }
    });
    const late = await adminCall(app, 'POST', '/api/ingest/shop/batch', { events: [order(ITEMS)] });
    expect(late.statusCode).toBe(200);
    expect(await largestLag(app)).toBeLessThanOrEqual(LIMIT);
  });

  it('answers a tracking batch sent while the subscribers trail far behind once they have caught up', async () => {
    const touch = (n: number) => ({
      partner_id: 'p',
      campaign_id: 'spring',
      visitor_id: `v-${n}`,
      interaction_type: 'click',
      source_url: 'https://blog.example.com/post',
      destination_url: 'https://shop.example.com/spring?utm_campaign=spring',
    });
    const app = await backlogged(async (target, count) => {
      for (let n = 0; n < count; n += 100) {
        const events = Array.from({ length: 100 }, (_, i) => touch(n + i));
        expect((await adminCall(target, 'POST', '/api/v1/tracking/events/batch', { events })).json()).toMatchObject({ recorded: 100 });
      }
      // Attribution goes through touches fast: more of them, or it is done before the next request arrives.
    }, 8 * ITEMS);
    const late = await adminCall(app, 'POST', '/api/v1/tracking/events/batch', { events: [touch(8 * ITEMS)] });
    expect(late.json()).toMatchObject({ recorded: 1 });
    expect(await largestLag(app)).toBeLessThanOrEqual(LIMIT);
  });

  it('lets sources that send a sliver of the load go ahead while the flood the subscribers trail waits', async () => {
    const app = await backlogged(async (target, count) => {
      for (let n = 0; n < count; n += 100) {
        const events = Array.from({ length: 100 }, (_, i) => order(n + i));
        expect((await adminCall(target, 'POST', '/api/ingest/shop/batch', { events })).statusCode).toBe(200);
      }
    });
    // The flood goes on, and waits: it counts as it arrives, however long ago the backlog was sent.
    const flood = Promise.all(
      [0, 1, 2].map((n) =>
        adminCall(app, 'POST', '/api/ingest/shop/batch', { events: Array.from({ length: 100 }, (_, i) => order(ITEMS + n * 100 + i)) }),
      ),
    );
    const touch = (partner_id: string) => ({
      partner_id,
      campaign_id: 'spring',
      visitor_id: 'v-1',
      interaction_type: 'click',
      source_url: 'https://blog.example.com/post',
      destination_url: 'https://shop.example.com/spring',
    });
    // Every path outside data comes in by, each from a source of its own.
    expect((await adminCall(app, 'POST', '/api/ingest/quiet', order(1))).statusCode).toBe(201);
    expect((await adminCall(app, 'POST', '/api/ingest/quiet/batch', { events: [order(2)] })).statusCode).toBe(200);
    expect((await adminCall(app, 'POST', '/ingest', { partner_id: 'quiet-partner', ...order(3) })).statusCode).toBe(201);
    expect((await adminCall(app, 'POST', '/api/v1/tracking/events', touch('quiet-tracker'))).statusCode).toBe(201);
    expect((await adminCall(app, 'POST', '/api/v1/tracking/events/batch', { events: [touch('quiet-batch')] })).json()).toMatchObject({
      recorded: 1,
    });
    expect((await flood).map((answer) => answer.statusCode)).toEqual([200, 200, 200]);
    // The flood's requests waited; none of the others did.
    const metrics = (await app.app.inject({ method: 'GET', url: '/metrics' })).body;
    expect(metrics).toMatch(/^intake_flow_control_held_requests_total 3$/m);
  });
});
