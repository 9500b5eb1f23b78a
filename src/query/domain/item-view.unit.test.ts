import { describe, expect, it } from 'vitest';
import type { DataEvent } from '../../shared/contracts/data-events.js';
import type { RoutingEvent } from '../../shared/contracts/routing-events.js';
import { evolveItemView, foldHistory, type HistoryEntry, type ItemView } from './item-view.js';

const meta = { channel: 'partner_api' as const, received_at: 't0', ip: null, user_agent: null, correlation_id: null, key_id: null };
const snapshot = {
  item_id: 'i',
  partner_id: 'p',
  event_type: 'order',
  payload: { total: 5 },
  received_at: '2026-01-01T00:00:00.000Z',
  metadata: meta,
};
const events: Array<[DataEvent, string]> = [
  [
    { type: 'DataReceived', data: { item_id: 'i', partner_id: 'p', channel: 'partner_api', received_at: snapshot.received_at } },
    '2026-01-01T00:00:00.000Z',
  ],
  [{ type: 'DataIngested', data: snapshot }, '2026-01-01T00:00:00.000Z'],
  [{ type: 'DataValidated', data: { ...snapshot, schema_version: 2, validated_at: 'x' } }, '2026-01-01T00:00:01.000Z'],
  [
    {
      type: 'DataProcessed',
      data: { item_id: 'i', partner_id: 'p', event_type: 'order', result: { total: 5 }, steps: [], processed_at: 'y' },
    },
    '2026-01-01T00:00:02.000Z',
  ],
];

describe('item view', () => {
  it('walks received → ingested → validated → processed', () => {
    const statuses: string[] = [];
    events.reduce<ReturnType<typeof evolveItemView> | undefined>((view, [event, at]) => {
      const next = evolveItemView(view, event, at);
      statuses.push(next.status);
      return next;
    }, undefined);
    expect(statuses).toEqual(['received', 'ingested', 'validated', 'processed']);
  });

  it('shows the item from its later stages while its DataIngested has not been folded (it showed type data and no payload)', () => {
    const [received, ingested, validated, processed] = events.map(
      ([event, at]) =>
        (view: ItemView | undefined) =>
          evolveItemView(view, event, at),
    );
    const without = [received, validated, processed].reduce<ItemView | undefined>((view, step) => step?.(view), undefined);
    expect(without).toMatchObject({ partnerId: 'p', eventType: 'order', payload: { total: 5 }, metadata: meta, status: 'processed' });
    expect(ingested?.(without)).toEqual({ ...without, updatedAt: without?.updatedAt });
  });

  it('reaches the same view whatever order the events arrive in', () => {
    const inOrder = events.reduce<ReturnType<typeof evolveItemView> | undefined>((v, [e, at]) => evolveItemView(v, e, at), undefined);
    const shuffled = [events[3], events[1], events[0], events[2]] as Array<[DataEvent, string]>;
    const outOfOrder = shuffled.reduce<ReturnType<typeof evolveItemView> | undefined>((v, [e, at]) => evolveItemView(v, e, at), undefined);
    expect(outOfOrder).toEqual(inOrder);
  });

  it('rebuilds the item as it stood at a point in time', () => {
    const history: HistoryEntry[] = events.map(([event, at], i) => ({
      eventId: `e${i}`,
      type: event.type,
      version: i + 1,
      recordedAt: at,
      data: event.data,
    }));
    expect(foldHistory(history, '2026-01-01T00:00:01.500Z')?.status).toBe('validated');
    expect(foldHistory(history, '2026-01-01T00:00:00.000Z')?.status).toBe('ingested');
    expect(foldHistory(history, '2025-12-31T00:00:00.000Z')).toBeUndefined();
    expect(foldHistory(history)?.status).toBe('processed');
  });

  describe('deliveries', () => {
    const ids = { item_id: 'i', rule_id: 'r-db' };
    const routed: RoutingEvent = {
      type: 'DataRouted',
      data: {
        item_id: 'i',
        app_id: 'p',
        deliveries: [
          { delivery_id: 'd-db', rule_id: 'r-db', destination_type: 'database', delivered_at: '2026-01-01T00:00:03.000Z' },
          { delivery_id: 'd-hook', rule_id: 'r-hook', destination_type: 'webhook' },
        ],
        routed_at: '2026-01-01T00:00:03.000Z',
      },
    };
    const fold = (list: RoutingEvent[]) =>
      list
        .reduce<ItemView | undefined>((v, e) => evolveItemView(v, e, '2026-01-01T00:00:03.000Z'), undefined)
        ?.deliveries.map(({ deliveryId, status, attempts }) => ({ deliveryId, status, attempts }));

    it('takes a delivery DataRouted says was made as succeeded at its first attempt, and the others as pending', () => {
      expect(fold([routed])).toEqual([
        { deliveryId: 'd-db', status: 'succeeded', attempts: 1 },
        { deliveryId: 'd-hook', status: 'pending', attempts: 0 },
      ]);
    });

    it('lets a later attempt of a delivery made at routing win, in either order', () => {
      const replayed: RoutingEvent = {
        type: 'DeliveryFailed',
        data: { ...ids, delivery_id: 'd-db', attempt: 2, reason: 'gone', status_code: null, next_attempt_at: null, failed_at: 'z' },
      };
      const expected = [
        { deliveryId: 'd-db', status: 'dead_lettered', attempts: 2 },
        { deliveryId: 'd-hook', status: 'pending', attempts: 0 },
      ];
      expect(fold([routed, replayed])).toEqual(expected);
      expect(fold([replayed, routed])).toEqual(expected);
    });

    it('forgets why a dead letter was given up once it is replayed, until its next attempt says otherwise', () => {
      const hook = { ...ids, rule_id: 'r-hook', delivery_id: 'd-hook' };
      const lastErrorOf = (list: RoutingEvent[]) =>
        list.reduce<ItemView | undefined>((v, e) => evolveItemView(v, e, 'z'), undefined)?.deliveries.find((d) => d.deliveryId === 'd-hook')
          ?.lastError;
      const gaveUp: RoutingEvent = {
        type: 'DeliveryDeadLettered',
        data: { ...hook, attempt: 3, reason: 'HTTP 500 (gave up after 3 attempts)', dead_lettered_at: 'x' },
      };
      const replayed: RoutingEvent = { type: 'DeliveryReplayed', data: { ...hook, attempt: 4, replayed_at: 'y' } };
      const failedAgain: RoutingEvent = {
        type: 'DeliveryFailed',
        data: { ...hook, attempt: 4, reason: 'HTTP 503', status_code: 503, next_attempt_at: 'z', failed_at: 'z' },
      };
      expect(lastErrorOf([routed, gaveUp])).toBe('HTTP 500 (gave up after 3 attempts)');
      expect(lastErrorOf([routed, gaveUp, replayed])).toBeNull();
      expect(lastErrorOf([routed, gaveUp, replayed, failedAgain])).toBe('HTTP 503');
      const succeeded: RoutingEvent = {
        type: 'DeliverySucceeded',
        data: { ...hook, attempt: 5, status_code: 200, duration_ms: 3, delivered_at: 'z' },
      };
      // A retry that gets through: the failure before it no longer says anything about the delivery.
      expect(lastErrorOf([routed, gaveUp, replayed, failedAgain, succeeded])).toBeNull();
    });

    it('shows a dead letter replayed and given up before its next attempt (its rule deleted) with the attempts it had', () => {
      const hook = { ...ids, rule_id: 'r-hook', delivery_id: 'd-hook' };
      const viewOf = (list: RoutingEvent[]) =>
        list
          .reduce<ItemView | undefined>((v, e) => evolveItemView(v, e, 'z'), undefined)
          ?.deliveries.find((d) => d.deliveryId === 'd-hook');
      const gaveUp: RoutingEvent = {
        type: 'DeliveryDeadLettered',
        data: { ...hook, attempt: 3, reason: 'HTTP 500 (gave up after 3 attempts)', dead_lettered_at: 'x' },
      };
      const replayed: RoutingEvent = { type: 'DeliveryReplayed', data: { ...hook, attempt: 4, replayed_at: 'y' } };
      const deleted: RoutingEvent = {
        type: 'DeliveryDeadLettered',
        data: { ...hook, attempt: 4, reason: 'the rule was deleted', dead_lettered_at: 'z' },
      };
      expect(viewOf([routed, gaveUp, replayed, deleted])).toMatchObject({
        status: 'dead_lettered',
        attempts: 3,
        lastError: 'the rule was deleted',
      });
    });

    it('reads the older form too: a database delivery followed by its DeliveryAttempted and DeliverySucceeded', () => {
      const older: RoutingEvent = {
        type: 'DataRouted',
        data: {
          item_id: 'i',
          app_id: 'p',
          deliveries: [{ delivery_id: 'd-db', rule_id: 'r-db', destination_type: 'database' }],
          routed_at: 'x',
        },
      };
      const attempt = { ...ids, delivery_id: 'd-db', attempt: 1 };
      expect(
        fold([
          older,
          { type: 'DeliveryAttempted', data: { ...attempt, attempted_at: 'x' } },
          { type: 'DeliverySucceeded', data: { ...attempt, status_code: null, duration_ms: 0, delivered_at: 'x' } },
        ]),
      ).toEqual([{ deliveryId: 'd-db', status: 'succeeded', attempts: 1 }]);
    });

    it("names a replay job's delivery's destination type from its attempt, which no DataRouted precedes, in either order", () => {
      const attempt = { item_id: 'i', rule_id: 'r-hook', delivery_id: 'rpl_1', attempt: 1 };
      const attempted: RoutingEvent = { type: 'DeliveryAttempted', data: { ...attempt, attempted_at: 'x', destination_type: 'webhook' } };
      const succeeded: RoutingEvent = {
        type: 'DeliverySucceeded',
        data: { ...attempt, status_code: 200, duration_ms: 3, delivered_at: 'x' },
      };
      const replayOf = (list: RoutingEvent[]) =>
        list
          .reduce<ItemView | undefined>((v, e) => evolveItemView(v, e, 'x'), undefined)
          ?.deliveries.map(({ deliveryId, destinationType, status }) => ({ deliveryId, destinationType, status }));
      const expected = [{ deliveryId: 'rpl_1', destinationType: 'webhook', status: 'succeeded' }];
      expect(replayOf([attempted, succeeded])).toEqual(expected);
      expect(replayOf([succeeded, attempted])).toEqual(expected);
    });

    it('names the type an attempt went to once its rule was pointed at another, in any order of its events', () => {
      const routed: RoutingEvent = {
        type: 'DataRouted',
        data: {
          item_id: 'i',
          app_id: 'p',
          routed_at: 'x',
          deliveries: [{ delivery_id: 'd-1', rule_id: 'r-1', destination_type: 'webhook' }],
        },
      };
      const first = { item_id: 'i', rule_id: 'r-1', delivery_id: 'd-1', attempt: 1 };
      const second = { ...first, attempt: 2 };
      const events: RoutingEvent[] = [
        routed,
        { type: 'DeliveryAttempted', data: { ...first, attempted_at: 'x' } },
        { type: 'DeliveryFailed', data: { ...first, reason: 'HTTP 503', status_code: 503, next_attempt_at: 'y', failed_at: 'x' } },
        { type: 'DeliveryAttempted', data: { ...second, attempted_at: 'y', destination_type: 'database' } },
        { type: 'DeliverySucceeded', data: { ...second, status_code: null, duration_ms: 0, delivered_at: 'y' } },
      ];
      const viewOf = (list: RoutingEvent[]) =>
        list
          .reduce<ItemView | undefined>((v, e) => evolveItemView(v, e, 'x'), undefined)
          ?.deliveries.map(({ deliveryId, destinationType, status, attempts }) => ({ deliveryId, destinationType, status, attempts }));
      const expected = [{ deliveryId: 'd-1', destinationType: 'database', status: 'succeeded', attempts: 2 }];
      expect(viewOf(events)).toEqual(expected);
      expect(viewOf([...events].reverse())).toEqual(expected);
      expect(viewOf([events[3], events[0], events[4], events[1], events[2]] as RoutingEvent[])).toEqual(expected);
      // Before the second attempt, the type its DataRouted named.
      expect(viewOf(events.slice(0, 3))).toEqual([{ deliveryId: 'd-1', destinationType: 'webhook', status: 'retrying', attempts: 1 }]);
    });
  });
});
