import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, expect, it } from 'vitest';
import { sqlDeliveryStore } from '../../src/routing/adapters/sql/sql-deliveries.js';
import type { NewDelivery } from '../../src/routing/application/ports.js';
import { adminCall, startTestIntake, type TestIntake } from '../support/embedded-intake.js';

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

const LONG_AGO = '2020-01-01T00:00:00.000Z';
const delivery = (id: string, at: string, delivered: boolean): NewDelivery => ({
  deliveryId: id,
  ruleId: 'r1',
  itemId: `item-${id}`,
  appId: 'shop',
  eventType: 'order',
  destinationType: delivered ? 'database' : 'webhook',
  body: '{}',
  createdAt: at,
  orderingKey: null,
  position: 1,
  receivedAt: at,
  ...(delivered ? { deliveredAt: at } : {}),
});

it('deletes succeeded deliveries past DELIVERY_RETENTION_DAYS on the storage thread of the one process, shortly after it starts', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'intake-retention-'));
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  // Written by a first start whose background work is held: a delivery that succeeded long ago, one
  // that succeeded now, and a dead letter of long ago.
  const seeding = await startTestIntake({}, { startBackgroundWork: false }, dir);
  const now = new Date().toISOString();
  await sqlDeliveryStore(seeding.db).schedule([
    delivery('old', LONG_AGO, true),
    delivery('new', now, true),
    delivery('dead', LONG_AGO, false),
  ]);
  await sqlDeliveryStore(seeding.db).record(
    { deliveryId: 'dead', status: 'dead_lettered', attempts: 1, nextAttemptAt: null, lastError: 'refused', at: LONG_AGO },
    undefined,
  );
  await seeding.dispose();

  const intake: TestIntake = await startTestIntake({ DELIVERY_RETENTION_DAYS: '30' }, { storage: 'thread' }, dir);
  cleanups.push(() => intake.dispose());
  const status = async (id: string) => (await adminCall(intake, 'GET', `/api/routing/deliveries/${id}`)).statusCode;
  for (const deadline = performance.now() + 10_000; (await status('old')) === 200 && performance.now() < deadline;)
    await new Promise((resolve) => setTimeout(resolve, 50));
  expect(await status('old')).toBe(404);
  expect(await status('new')).toBe(200);
  expect(await status('dead')).toBe(200);
});
