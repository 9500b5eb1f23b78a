import { expect, it } from 'vitest';
import { attemptsShown, type Attempt, type Delivery } from './ports.js';

const delivery = (fields: Partial<Delivery>): Delivery => ({
  deliveryId: 'msg_1',
  ruleId: 'r1',
  itemId: 'i1',
  appId: 'shop',
  eventType: 'order',
  destinationType: 'database',
  body: '{}',
  status: 'succeeded',
  attempts: 1,
  nextAttemptAt: null,
  lastError: null,
  createdAt: '2026-12-03T10:00:00.000Z',
  updatedAt: '2026-12-03T10:00:01.000Z',
  orderingKey: null,
  position: 1,
  receivedAt: '2026-12-03T10:00:00.000Z',
  earlierAttempts: 0,
  webhookId: 'msg_1',
  replayJobId: null,
  ...fields,
});

it('shows a delivery made as it was scheduled with its one attempt, and any other with the attempts stored', () => {
  expect(attemptsShown(delivery({}), [])).toEqual([
    { deliveryId: 'msg_1', attempt: 1, at: '2026-12-03T10:00:01.000Z', outcome: 'delivered', statusCode: null, error: null, durationMs: 0 },
  ]);
  const stored: Attempt[] = [
    { deliveryId: 'msg_1', attempt: 1, at: 'then', outcome: 'delivered', statusCode: 200, error: null, durationMs: 12 },
  ];
  expect(attemptsShown(delivery({ destinationType: 'webhook' }), stored)).toBe(stored);
  // Not tried yet: nothing to show.
  expect(attemptsShown(delivery({ status: 'pending', attempts: 0, destinationType: 'webhook' }), [])).toEqual([]);
});
