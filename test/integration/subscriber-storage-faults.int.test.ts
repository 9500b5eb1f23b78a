import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, expect, it } from 'vitest';
import { auth, startTestIntake, type TestIntake } from '../support/embedded-intake.js';

let intake: TestIntake | undefined;
afterEach(async () => {
  await intake?.dispose();
  intake = undefined;
});

async function until<T>(read: () => Promise<T>, done: (value: T) => boolean, timeoutMs = 15_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await read();
    if (done(value) || Date.now() > deadline) return value;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

it('retries a subscriber whose table went missing, parks nothing for it, and heals once the table is back', async () => {
  const running = (intake = await startTestIntake());
  const ingest = () =>
    running.app.inject({ method: 'POST', url: '/api/ingest/shop', headers: auth, payload: { event_type: 'order', payload: { n: 1 } } });
  expect((await ingest()).statusCode).toBe(201);
  await running.subscriptions.caughtUp();

  // Someone changes the database under the running service.
  const outside = new Database(join(running.dir, 'intake.db'));
  outside.exec('ALTER TABLE statistics_items RENAME TO statistics_items_moved');
  for (let i = 0; i < 5; i++) expect((await ingest()).statusCode).toBe(201);

  const statisticsOf = async () => (await running.subscriptions.status()).find((s) => s.name === 'statistics');
  const failing = await until(statisticsOf, (s) => s?.state === 'retrying');
  expect(failing).toMatchObject({ state: 'retrying', parked: 0 });
  expect(failing?.fault).toContain('no such table');
  const ready = await running.app.inject({ url: '/health/ready' });
  expect(JSON.stringify(ready.json())).toContain('no such table');

  outside.exec('ALTER TABLE statistics_items_moved RENAME TO statistics_items');
  outside.close();
  const healed = await until(statisticsOf, (s) => s?.state === 'running' && s.lag === 0);
  expect(healed).toMatchObject({ state: 'running', parked: 0, lag: 0 });
  await running.subscriptions.caughtUp();
  const dashboard = await running.app.inject({ url: '/api/statistics/dashboard/shop?time_period=hourly', headers: auth });
  expect(dashboard.json().totals.total_events).toBe(6);
});
