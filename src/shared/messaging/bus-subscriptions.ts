import type { Kysely } from 'kysely';
import type { Logger } from 'pino';
import type { Clock } from '../clock.js';
import type { RecordedEvent } from '../events.js';
import type { EventStore } from '../event-store/event-store.js';
import { parkEvent } from '../subscriptions/checkpoints.js';
import type { Subscriber } from '../subscriptions/subscriber.js';
import { allSubjectsOf, eventOfMessage } from './event-messages.js';
import type { Consumption, MessageBus } from './message-bus.js';

type Tables = { consumed_events: { subscriber: string; event_id: string; consumed_at: string } };

export interface BusSubscriptionOptions {
  readonly bus: MessageBus;
  readonly store: EventStore;
  readonly clock: Clock;
  readonly logger: Pick<Logger, 'info' | 'warn' | 'error'>;
  /** Prefix of the durable consumer names: replicas of one role share `<role>-<subscriber>`. */
  readonly role: string;
  readonly subscribers: readonly Subscriber[];
  /** What the consumers read; NATS servers before 2.10 take one filter, so one wildcard for all. */
  readonly subjects?: readonly string[];
  readonly maxDeliver?: number;
  readonly ackWaitMs?: number;
  readonly retryDelayMs?: number;
  /** Events handled at once per subscriber; events of one entity never overlap. */
  readonly concurrency?: number;
}

/** The entity an event is about: handlers read and write its rows, so its events must not overlap. */
function entityKey(message: { id: string; data: object }): string {
  const data = message.data as Record<string, unknown>;
  for (const field of ['item_id', 'rule_id', 'visitor_id', 'app_id', 'event_type']) {
    const value = data[field];
    if (typeof value === 'string') return `${field}:${value}`;
  }
  return `id:${message.id}`;
}

export interface BusSubscriptions {
  start(): void;
  stop(): Promise<void>;
  /** Whether every consumer is attached to the broker. */
  attached(): boolean;
}

/**
 * Feeds subscribers from the broker (distributed mode). Each event is handled in its own transaction,
 * together with a row recording that this subscriber consumed it: the broker acknowledges only after
 * that commit, and a redelivered event finds its row and changes nothing. Consumers attach in the
 * background and keep retrying while the broker is unreachable.
 */
export function busSubscriptions(options: BusSubscriptionOptions): BusSubscriptions {
  const { bus, store, clock, logger } = options;
  const consumptions = new Map<string, Consumption>();
  let running = false;
  let attaching: Promise<void> | undefined;

  const claim = async (db: Kysely<object>, subscriber: string, eventId: string) => {
    const result = await db
      .withTables<Tables>()
      .insertInto('consumed_events')
      .values({ subscriber, event_id: eventId, consumed_at: clock.now().toISOString() })
      .onConflict((oc) => oc.doNothing())
      .executeTakeFirst();
    return Number(result.numInsertedOrUpdatedRows ?? 0) > 0;
  };

  /** Claims the events not consumed yet and hands those to the subscriber, all in one transaction. */
  const commit = (subscriber: Subscriber, events: readonly RecordedEvent[]) =>
    store.transaction(async (tx) => {
      const fresh: RecordedEvent[] = [];
      for (const event of events) if (await claim(tx.db, subscriber.name, event.eventId)) fresh.push(event);
      if (fresh.length > 0) await subscriber.handle(fresh, tx);
    });

  /**
   * Group commit for consumers: the events in flight at one moment (of different entities, see
   * `entityKey`) share one transaction and one fsync; each delivery is acknowledged after it. If the
   * shared transaction fails, each event is tried alone, so a poison event fails by itself.
   */
  const grouped = (subscriber: Subscriber) => {
    let waiting: Array<{ event: RecordedEvent; settle(error?: unknown): void }> = [];
    const flush = async () => {
      const batch = waiting;
      waiting = [];
      try {
        await commit(
          subscriber,
          batch.map((b) => b.event),
        );
        for (const b of batch) b.settle();
      } catch (error) {
        if (batch.length === 1) return batch[0]?.settle(error ?? new Error('handler failed'));
        for (const b of batch) {
          await commit(subscriber, [b.event]).then(
            () => b.settle(),
            (alone: unknown) => b.settle(alone ?? new Error('handler failed')),
          );
        }
      }
    };
    return (event: RecordedEvent) =>
      new Promise<void>((resolve, reject) => {
        if (waiting.length === 0) setImmediate(() => void flush());
        waiting.push({ event, settle: (error) => (error === undefined ? resolve() : reject(error)) });
      });
  };

  const attach = async (subscriber: Subscriber) => {
    const durable = `${options.role}-${subscriber.name}`;
    const handleGrouped = grouped(subscriber);
    for (let attempt = 0; running; attempt++) {
      try {
        const consumption = await bus.consume(
          durable,
          options.subjects ?? [allSubjectsOf()],
          async (message) => {
            if (!subscriber.handles.includes(message.type)) return;
            await handleGrouped(eventOfMessage(message));
          },
          {
            maxDeliver: options.maxDeliver ?? 5,
            ackWaitMs: options.ackWaitMs ?? 30_000,
            retryDelayMs: options.retryDelayMs ?? 1000,
            // Several events in flight, one entity at a time: they are committed together (see `grouped`).
            concurrency: options.concurrency ?? 16,
            prefetch: 256,
            keyOf: entityKey,
            async onParked(message, error) {
              const event = eventOfMessage(message);
              const reason = error instanceof Error ? error.message : String(error);
              await store.transaction((tx) => parkEvent(tx.db, subscriber.name, event, reason, message.attempt, clock.now().toISOString()));
              logger.error(
                { subscriber: subscriber.name, event_id: event.eventId, event_type: event.type, err: error },
                'event parked after repeated failures',
              );
            },
          },
        );
        consumptions.set(subscriber.name, consumption);
        logger.info({ consumer: durable }, 'consuming from the broker');
        return;
      } catch (error) {
        logger.warn({ consumer: durable, err: error }, 'cannot attach to the broker yet; retrying');
        await new Promise((resolve) => setTimeout(resolve, Math.min(500 * 2 ** attempt, 10_000)));
      }
    }
  };

  return {
    start() {
      if (running) return;
      running = true;
      attaching = Promise.all(options.subscribers.map(attach)).then(() => undefined);
    },
    async stop() {
      running = false;
      await attaching;
      await Promise.all([...consumptions.values()].map((c) => c.stop()));
      consumptions.clear();
    },
    attached: () => consumptions.size === options.subscribers.length,
  };
}
